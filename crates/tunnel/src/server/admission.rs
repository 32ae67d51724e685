//! Packet admission: which decrypted packets may enter a client's stack,
//! and which packets a stack emits may leave to a client. This is the
//! isolation between clients, as WireGuard's allowed IPs would give it: a
//! key's packets enter only the stacks of its own addresses, and a stack's
//! packets go only to the key owning its address.

use std::net::Ipv4Addr;

use smoltcp::wire::Ipv4Packet;

/// The source of a decrypted packet if it may enter the stacks: a
/// well-formed IPv4 packet whose source is one of the sending key's
/// addresses. Anything else (a spoofed source, another client's address,
/// garbage) is dropped.
pub(super) fn inbound_source(packet: &[u8], addresses: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.version() != 4 {
        return None;
    }
    let source = ip.src_addr();
    addresses.contains(&source).then_some(source)
}

/// Whether a packet a client's stack emits may go to that client: a
/// well-formed IPv4 packet to its address.
pub(super) fn outbound_allowed(packet: &[u8], address: Ipv4Addr) -> bool {
    Ipv4Packet::new_checked(packet).is_ok_and(|ip| ip.version() == 4 && ip.dst_addr() == address)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpProtocol, Ipv4Repr};

    fn packet(source: Ipv4Addr, destination: Ipv4Addr) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: source,
            dst_addr: destination,
            next_header: IpProtocol::Udp,
            payload_len: 8,
            hop_limit: 64,
        };
        let mut bytes = vec![0u8; repr.buffer_len() + 8];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut bytes),
            &ChecksumCapabilities::default(),
        );
        bytes
    }

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 3);
    const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);

    #[test]
    fn spoofed_sources_are_dropped() {
        let own = [CLIENT];
        assert_eq!(inbound_source(&packet(CLIENT, SERVICE), &own), Some(CLIENT));
        // Another client's address, any other address: dropped.
        assert_eq!(inbound_source(&packet(OTHER, SERVICE), &own), None);
        assert_eq!(
            inbound_source(&packet(Ipv4Addr::new(127, 0, 0, 1), SERVICE), &own),
            None
        );
        // A key with several addresses may use each.
        assert_eq!(
            inbound_source(&packet(OTHER, SERVICE), &[CLIENT, OTHER]),
            Some(OTHER)
        );
        // Garbage, truncated packets, IPv6: dropped.
        let good = packet(CLIENT, SERVICE);
        for len in 0..good.len() {
            assert_eq!(inbound_source(&good[..len], &own), None, "{len}");
        }
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(inbound_source(&v6, &own), None);
        assert_eq!(inbound_source(&[0xff; 64], &own), None);
    }

    #[test]
    fn packets_leave_only_to_their_client() {
        assert!(outbound_allowed(&packet(SERVICE, CLIENT), CLIENT));
        assert!(!outbound_allowed(&packet(SERVICE, OTHER), CLIENT));
        assert!(!outbound_allowed(&[0x45, 0, 0], CLIENT));
    }
}
