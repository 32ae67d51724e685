//! Which names to ask for, in which order: the resolv.conf rules the
//! original client set up (`search …` and `options ndots:5`).

use sinfonia::wireguard::NDOTS;

/// The fully qualified names to try for `name`: a name with at least
/// `NDOTS` dots (or a trailing dot) is tried as it is first, any other name
/// with each search domain first, as glibc's resolver does.
pub fn search_order(name: &str, search_domains: &[String]) -> Vec<String> {
    let name = name.trim();
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_owned()];
    }
    let searched = search_domains
        .iter()
        .map(|domain| format!("{name}.{}", domain.trim_matches('.')));
    if name.matches('.').count() >= usize::from(NDOTS) {
        std::iter::once(name.to_owned()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_owned())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_go_through_the_search_list_first() {
        let search = [
            "bold-tesla.svc.cluster.local".to_owned(),
            "svc.cluster.local".to_owned(),
        ];
        assert_eq!(
            search_order("vmi-vnc", &search),
            [
                "vmi-vnc.bold-tesla.svc.cluster.local",
                "vmi-vnc.svc.cluster.local",
                "vmi-vnc"
            ]
        );
        assert_eq!(search_order("a.b.c.d.e.f", &search)[0], "a.b.c.d.e.f");
        assert_eq!(search_order("vmi-vnc.", &search), ["vmi-vnc"]);
    }
}
