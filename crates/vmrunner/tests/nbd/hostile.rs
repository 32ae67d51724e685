//! Clients that break the protocol or ask too much, written here with a
//! raw socket: each gets a bounded answer (an error reply, or the
//! connection closed), and the server goes on serving the next client.
//! Also the old way in (`NBD_OPT_EXPORT_NAME`), which has no error reply.

use std::io::Write;
use std::sync::Arc;

use testkit::XorShift;
use vmrunner::nbd::NbdServer;

use super::support::*;

const EXPORT: &str = "disk";
const SIZE: usize = 1 << 20;

/// A server on 1 MiB of random bytes, and those bytes.
fn server(dir: &tempfile::TempDir) -> (NbdServer, Vec<u8>) {
    let bytes = XorShift::new(7).bytes(SIZE);
    let source = Arc::new(MemorySource(bytes.clone()));
    let server = NbdServer::serve(&dir.path().join("nbd.sock"), EXPORT, source).unwrap();
    (server, bytes)
}

/// A well-behaved client still gets the right bytes.
fn assert_still_serving(server: &NbdServer, bytes: &[u8]) {
    let (mut client, size, _) = open_export(server.socket(), EXPORT);
    assert_eq!(size, SIZE as u64);
    assert_eq!(read_export(&mut client, 9, 4096, 512), bytes[4096..4608]);
}

#[test]
fn garbage_client_flags_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let mut client = connect(server.socket());
    greet(&mut client, 0xdead_beef);
    assert_closed(&mut client);
    assert_still_serving(&server, &bytes);
}

#[test]
fn an_option_of_4_gib_is_refused_too_big_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let mut client = connect(server.socket());
    greet(&mut client, 3);
    let mut header = IHAVEOPT.to_be_bytes().to_vec();
    header.extend_from_slice(&OPT_GO.to_be_bytes());
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    client.write_all(&header).unwrap();
    let (option, reply, _) = read_option_reply(&mut client);
    assert_eq!(
        (option, reply),
        (OPT_GO, (1 << 31) + 9),
        "NBD_REP_ERR_TOO_BIG"
    );
    assert_closed(&mut client);
    assert_still_serving(&server, &bytes);
}

#[test]
fn options_are_answered_and_bounded_in_number() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let mut client = connect(server.socket());
    greet(&mut client, 3);
    send_option(&mut client, 3, &[]); // NBD_OPT_LIST: our export, then ACK
    let (_, reply, data) = read_option_reply(&mut client);
    assert_eq!((reply, &data[4..]), (2, EXPORT.as_bytes()));
    assert_eq!(read_option_reply(&mut client).1, REP_ACK);
    send_option(&mut client, 6, &info_request("other", &[])); // NBD_OPT_INFO
    assert_eq!(
        read_option_reply(&mut client).1,
        (1 << 31) + 6,
        "ERR_UNKNOWN"
    );
    send_option(&mut client, 6, &info_request(EXPORT, &[3])); // with BLOCK_SIZE
    let replies: Vec<_> = (0..3).map(|_| read_option_reply(&mut client)).collect();
    assert_eq!(replies[0].2[..2], [0, 0], "NBD_INFO_EXPORT first");
    assert_eq!(replies[1].2.len(), 14, "NBD_INFO_BLOCK_SIZE");
    assert_eq!(replies[2].1, REP_ACK);
    // Structured replies and the rest: unsupported, up to the bound.
    for _ in 3..32 {
        send_option(&mut client, 8, &[]);
        assert_eq!(read_option_reply(&mut client).1, (1 << 31) + 1, "ERR_UNSUP");
    }
    // That was the 32nd option without NBD_OPT_GO: the server hangs up.
    assert_closed(&mut client);
    assert_still_serving(&server, &bytes);
}

#[test]
fn out_of_bounds_reads_get_einval_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let (mut client, _, _) = open_export(server.socket(), EXPORT);
    send_request(&mut client, CMD_READ, 1, SIZE as u64 - 512, 1024);
    assert_eq!(read_simple_reply(&mut client), (EINVAL, 1), "past the end");
    send_request(&mut client, CMD_READ, 2, 0, 1 << 30);
    assert_eq!(read_simple_reply(&mut client), (EINVAL, 2), "1 GiB");
    send_request(&mut client, CMD_READ, 3, u64::MAX - 10, 512);
    assert_eq!(
        read_simple_reply(&mut client),
        (EINVAL, 3),
        "offset overflow"
    );
    assert_eq!(read_export(&mut client, 4, 0, 4096), bytes[..4096]);
    assert_still_serving(&server, &bytes);
}

#[test]
fn writes_are_refused_with_their_payload_swallowed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let (mut client, _, flags) = open_export(server.socket(), EXPORT);
    assert_eq!(flags & 0b11, 0b11, "HAS_FLAGS | READ_ONLY");
    send_request(&mut client, 1, 1, 0, 4096); // NBD_CMD_WRITE
    client.write_all(&[0x55; 4096]).unwrap();
    assert_eq!(read_simple_reply(&mut client), (1, 1), "EPERM");
    send_request(&mut client, 4, 2, 0, 4096); // NBD_CMD_TRIM
    assert_eq!(read_simple_reply(&mut client), (1, 2), "EPERM");
    send_request(&mut client, 3, 3, 0, 0); // NBD_CMD_FLUSH
    assert_eq!(read_simple_reply(&mut client), (0, 3));
    send_request(&mut client, 99, 4, 0, 0);
    assert_eq!(read_simple_reply(&mut client), (EINVAL, 4), "unknown");
    assert_eq!(read_export(&mut client, 5, 0, 4096), bytes[..4096]);
    send_request(&mut client, 1, 6, 0, 64 << 20); // a 64 MiB write
    assert_closed(&mut client);
    assert_still_serving(&server, &bytes);
}

#[test]
fn a_request_without_magic_closes_and_disc_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let (mut client, _, _) = open_export(server.socket(), EXPORT);
    client.write_all(&[0x42; 28]).unwrap();
    assert_closed(&mut client);
    let (mut client, _, _) = open_export(server.socket(), EXPORT);
    send_request(&mut client, 2, 1, 0, 0); // NBD_CMD_DISC
    assert_closed(&mut client);
    assert_still_serving(&server, &bytes);
}

#[test]
fn export_name_is_answered_old_style_and_an_unknown_name_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, bytes) = server(&dir);
    let mut client = connect(server.socket());
    greet(&mut client, 1); // fixed newstyle, but with the 124 zeroes
    send_option(&mut client, 1, EXPORT.as_bytes());
    assert_eq!(read_u64(&mut client), SIZE as u64);
    assert_eq!(read_u16(&mut client) & 0b11, 0b11, "HAS_FLAGS | READ_ONLY");
    let mut zeroes = [0xff; 124];
    std::io::Read::read_exact(&mut client, &mut zeroes).unwrap();
    assert_eq!(zeroes, [0; 124]);
    assert_eq!(read_export(&mut client, 1, 512, 512), bytes[512..1024]);
    let mut stranger = connect(server.socket());
    greet(&mut stranger, 3);
    send_option(&mut stranger, 1, b"other");
    assert_closed(&mut stranger);
    assert_still_serving(&server, &bytes);
}
