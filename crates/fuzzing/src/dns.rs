//! DNS queries to the tunnel server's responder.

use std::net::Ipv4Addr;

use tunnel::server::answer_for_one_name;

/// The one name the responder knows.
const NAME: &str = "vmi-vnc.bold-tesla.svc.cluster.local";
/// Its address.
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);
/// The largest DNS answer over UDP without EDNS.
const MAX_MESSAGE: usize = 512;

/// Answers `data` as a DNS query and checks the answer's shape: at most
/// 512 bytes, a whole header, a response carrying the query's ID.
///
/// # Panics
///
/// When an answer breaks that shape.
pub fn dns(data: &[u8]) {
    let Some(answer) = answer_for_one_name(data, NAME, ADDRESS) else {
        return;
    };
    assert!(
        (12..=MAX_MESSAGE).contains(&answer.len()),
        "an answer of {} bytes",
        answer.len()
    );
    assert_eq!(answer.get(..2), data.get(..2), "the ID is not echoed");
    assert_eq!(answer[2] & 0x80, 0x80, "the answer is not a response");
}
