//! The tunnel server's DNS responder: answers one client's own service
//! names, as the cluster DNS of a Sinfonia cloudlet (CoreDNS) does for the
//! client's deployment namespace, and nothing else.
//!
//! Messages are parsed and built by hand, bounded by the query's length:
//! any input, however malformed, gives an answer or nothing, never a panic.
//!
//! - `A` of a known name → its address (TTL [`TTL`]);
//! - `AAAA` or any other type of a known name → NOERROR without answers;
//! - any other name → NXDOMAIN;
//! - a response, a truncated or undecodable message → no answer at all;
//! - a query whose header is readable but whose question is not (several
//!   questions, a compressed name, an overlong label) → FORMERR;
//! - another opcode → NOTIMP; another class than IN → REFUSED.

use std::net::Ipv4Addr;

/// TTL of the answers, in seconds: short, as CoreDNS's 5 s, so that a
/// client sees a redeployment soon.
pub(crate) const TTL: u32 = 5;
/// The largest answer we build (a UDP DNS message without EDNS).
const MAX_MESSAGE: usize = 512;
/// The largest name in a question (RFC 1035: 255 octets on the wire).
const MAX_NAME: usize = 255;

const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// The name a question asks for: its labels, as they came.
pub(crate) struct Name<'a> {
    labels: Vec<&'a [u8]>,
}

impl Name<'_> {
    /// Whether this is `dotted` (e.g. `vmi-vnc.bold-tesla.svc.cluster.local`,
    /// a trailing dot allowed), label by label, ignoring ASCII case.
    pub(crate) fn is(&self, dotted: &str) -> bool {
        let dotted = dotted.strip_suffix('.').unwrap_or(dotted);
        if dotted.is_empty() {
            return self.labels.is_empty();
        }
        let mut expected = dotted.split('.');
        self.labels.iter().all(|label| {
            expected
                .next()
                .is_some_and(|part| part.as_bytes().eq_ignore_ascii_case(label))
        }) && expected.next().is_none()
    }
}

/// The answer to `query`, or `None` when it deserves none. `lookup` gives
/// the address of a name that exists for the asking client.
pub(crate) fn respond(
    query: &[u8],
    lookup: impl Fn(&Name<'_>) -> Option<Ipv4Addr>,
) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & 0x8000 != 0 {
        return None; // a response: never answer one (no loops)
    }
    let opcode = ((flags >> 11) & 0x0f) as u8;
    let recursion_desired = flags & 0x0100 != 0;
    let header = |rcode: u8, questions: u16, answers: u16| {
        let mut out = Vec::with_capacity(MAX_MESSAGE);
        out.extend_from_slice(&query[..2]);
        // QR, the opcode, AA (we are the authority for these names), RD
        // copied, RA clear, the rcode.
        let flags = 0x8000
            | (u16::from(opcode) << 11)
            | 0x0400
            | if recursion_desired { 0x0100 } else { 0 }
            | u16::from(rcode);
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&questions.to_be_bytes());
        out.extend_from_slice(&answers.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    };
    if opcode != 0 {
        return Some(header(RCODE_NOTIMP, 0, 0));
    }
    let questions = u16::from_be_bytes([query[4], query[5]]);
    if questions != 1 {
        return Some(header(RCODE_FORMERR, 0, 0));
    }
    let Some((name, end)) = parse_name(query, 12) else {
        return Some(header(RCODE_FORMERR, 0, 0));
    };
    let Some(fixed) = query.get(end..end + 4) else {
        return Some(header(RCODE_FORMERR, 0, 0));
    };
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = &query[12..end + 4];
    let (rcode, address) = if qclass != CLASS_IN && qclass != CLASS_ANY {
        (RCODE_REFUSED, None)
    } else {
        match lookup(&name) {
            None => (RCODE_NXDOMAIN, None),
            Some(ip) if qtype == TYPE_A || qtype == TYPE_ANY => (RCODE_NOERROR, Some(ip)),
            Some(_) => (RCODE_NOERROR, None),
        }
    };
    let mut out = header(rcode, 1, u16::from(address.is_some()));
    out.extend_from_slice(question);
    if let Some(ip) = address {
        out.extend_from_slice(&[0xc0, 12]); // the name: a pointer to the question's
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// The answer to `query` of a responder that knows exactly one name,
/// `name` (dotted, matched as [`respond`] matches a client's names) at
/// `address`, or `None` when the query deserves no answer.
///
/// The server itself calls [`respond`] with each client's own names; this
/// door exists so that fuzzing and tests outside the crate can feed the
/// message parser any bytes without a running server.
pub fn answer_for_one_name(query: &[u8], name: &str, address: Ipv4Addr) -> Option<Vec<u8>> {
    respond(query, |asked| asked.is(name).then_some(address))
}

/// The uncompressed name at `start`, and where it ends; `None` when it is
/// cut short, compressed, or too long.
fn parse_name(message: &[u8], start: usize) -> Option<(Name<'_>, usize)> {
    let mut labels = Vec::new();
    let mut at = start;
    let mut wire_length = 0;
    loop {
        let length = usize::from(*message.get(at)?);
        wire_length += length + 1;
        if wire_length > MAX_NAME || length > 63 {
            return None; // too long, or a pointer / reserved label type
        }
        at += 1;
        if length == 0 {
            return Some((Name { labels }, at));
        }
        labels.push(message.get(at..at + length)?);
        at += length;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NAME: &str = "vmi-vnc.bold-tesla.svc.cluster.local";
    const IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);

    fn lookup(name: &Name<'_>) -> Option<Ipv4Addr> {
        name.is(NAME).then_some(IP)
    }

    /// A query as dig sends it: RD set, one question, an EDNS OPT record.
    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
        for label in name.split('.').filter(|label| !label.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        out
    }

    fn rcode(answer: &[u8]) -> u8 {
        answer[3] & 0x0f
    }

    fn answers(answer: &[u8]) -> u16 {
        u16::from_be_bytes([answer[6], answer[7]])
    }

    #[test]
    fn a_known_name_gets_its_address() {
        let q = query(0x1234, "VMI-vnc.bold-tesla.svc.Cluster.local.", TYPE_A);
        let answer = respond(&q, lookup).unwrap();
        assert_eq!(&answer[..2], &[0x12, 0x34]);
        assert_eq!(answer[2] & 0x80, 0x80, "QR");
        assert_eq!(answer[2] & 0x04, 0x04, "AA");
        assert_eq!(answer[2] & 0x01, 0x01, "RD copied");
        assert_eq!(rcode(&answer), RCODE_NOERROR);
        assert_eq!(answers(&answer), 1);
        assert_eq!(&answer[answer.len() - 4..], &IP.octets());
        // The question is echoed as it came.
        let question_end = q.len() - 11;
        assert_eq!(&answer[12..question_end], &q[12..question_end]);
    }

    #[test]
    fn aaaa_is_empty_and_others_do_not_exist() {
        let answer = respond(&query(1, NAME, 28), lookup).unwrap();
        assert_eq!((rcode(&answer), answers(&answer)), (RCODE_NOERROR, 0));
        for other in [
            "vmi-vnc.calm-curie.svc.cluster.local",
            "vmi-vnc.svc.cluster.local",
            "vmi-vnc",
            "bold-tesla.svc.cluster.local",
            "x.vmi-vnc.bold-tesla.svc.cluster.local",
            "example.com",
            "",
        ] {
            let answer = respond(&query(2, other, TYPE_A), lookup).unwrap();
            assert_eq!(
                (rcode(&answer), answers(&answer)),
                (RCODE_NXDOMAIN, 0),
                "{other}"
            );
        }
    }

    #[test]
    fn a_label_with_a_dot_inside_is_not_a_match() {
        let mut q = query(3, "x", TYPE_A);
        q.truncate(12);
        q.push(NAME.len() as u8);
        q.extend_from_slice(NAME.as_bytes());
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let answer = respond(&q, lookup).unwrap();
        assert_eq!(rcode(&answer), RCODE_NXDOMAIN);
    }

    #[test]
    fn malformed_queries() {
        // Too short for a header, or a response: no answer.
        assert!(respond(&[0; 11], lookup).is_none());
        let mut response = query(4, NAME, TYPE_A);
        response[2] |= 0x80;
        assert!(respond(&response, lookup).is_none());
        // Two questions, a compressed name, a cut name: FORMERR.
        let mut two = query(5, NAME, TYPE_A);
        two[5] = 2;
        assert_eq!(rcode(&respond(&two, lookup).unwrap()), RCODE_FORMERR);
        let mut compressed = query(6, "x", TYPE_A);
        compressed.truncate(12);
        compressed.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(rcode(&respond(&compressed, lookup).unwrap()), RCODE_FORMERR);
        let cut = &query(7, NAME, TYPE_A)[..20];
        assert_eq!(rcode(&respond(cut, lookup).unwrap()), RCODE_FORMERR);
        // Another opcode, another class.
        let mut status = query(8, NAME, TYPE_A);
        status[2] |= 2 << 3;
        assert_eq!(rcode(&respond(&status, lookup).unwrap()), RCODE_NOTIMP);
        let mut chaos = query(9, NAME, TYPE_A);
        let class_at = 12 + NAME.len() + 2 + 2;
        chaos[class_at + 1] = 3;
        assert_eq!(rcode(&respond(&chaos, lookup).unwrap()), RCODE_REFUSED);
    }

    /// Random bytes, and real queries with random bytes flipped: never a
    /// panic, never an answer larger than the 512-byte UDP limit.
    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = query(10, NAME, TYPE_A);
        for round in 0..200_000 {
            let message: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 600) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut message = base.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % message.len();
                    message[at] = next() as u8;
                }
                message.truncate((next() as usize) % (message.len() + 1));
                message
            };
            if let Some(answer) = respond(&message, lookup) {
                assert!(answer.len() >= 12 && answer.len() <= MAX_MESSAGE);
                assert_eq!(answer[2] & 0x80, 0x80);
            }
        }
    }
}
