//! The `vmi` chart in `charts/` and the values `convert` writes agree.
//! (Helm and Kubernetes cannot run here: the templates themselves are
//! checked for the values they must use, not rendered.)
#![allow(clippy::unwrap_used)]

use sinfonia::vmi::VmiValues;

fn chart_file(path: &str) -> String {
    let full = format!("{}/../../charts/vmi/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[test]
fn default_values_have_the_shape_convert_writes() {
    let values: serde_json::Map<String, serde_json::Value> =
        serde_saphyr::from_str(&chart_file("values.yaml")).unwrap();
    let parsed = VmiValues::from_values(&values).unwrap();
    assert_eq!(
        parsed.virtvnc.fullname_override, "vmi",
        "the VNC service must be vmi-vnc"
    );
    assert_eq!(parsed.container_disk.bus, "sata");
    assert_eq!(
        parsed.machine.map(|m| m.network),
        Some(false),
        "no guest network by default"
    );
}

#[test]
fn chart_versions() {
    let chart: serde_json::Value = serde_saphyr::from_str(&chart_file("Chart.yaml")).unwrap();
    assert_eq!(chart["version"], "0.2.0");
    assert_eq!(chart["dependencies"][0]["name"], "virtvnc");
    let sub: serde_json::Value =
        serde_saphyr::from_str(&chart_file("charts/virtvnc/Chart.yaml")).unwrap();
    assert_eq!(sub["version"], chart["dependencies"][0]["version"]);
}

#[test]
fn templates_use_every_value_convert_writes() {
    let templates = [
        "templates/vmi.yaml",
        "templates/_helpers.tpl",
        "templates/secret.yaml",
    ]
    .map(chart_file)
    .join("\n");
    for used in [
        ".Values.containerDisk.bus",
        "$disk.digest",
        "$disk.repository",
        "$disk.name",
        "$disk.tag",
        ".Values.resources",
        ".Values.machine.network",
        ".Values.machine.type",
        ".Values.containerDiskCredentials",
        "kubernetes.io/dockerconfigjson",
        "autoattachPodInterface: false",
    ] {
        assert!(templates.contains(used), "the templates do not use {used}");
    }
    let services = chart_file("charts/virtvnc/templates/service.yaml");
    assert!(services.contains("-vnc") && services.contains("port: 5900"));
    assert!(services.contains("-novnc") && services.contains("port: 5800"));
    let rbac = chart_file("charts/virtvnc/templates/rbac.yaml");
    assert!(rbac.contains("virtualmachineinstances/vnc") && rbac.contains("[\"get\"]"));
}
