//! The NBD wire format we speak (fixed newstyle handshake, simple replies),
//! after `doc/proto.md` of the NBD project, and the limits this server puts
//! on what a client may send. One home for every magic number, flag, code
//! and bound; the handshake and the transmission loop only import them.
//!
//! Every number on the wire is big-endian. A message a client sends wrongly
//! becomes an [`io::ErrorKind::InvalidData`] error ([`violation`]), which
//! the connection logs as a warning and answers by closing.

use std::io::{self, Read};

/// `NBDMAGIC`, the first word of the server's greeting.
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the greeting's second word and the start of every option.
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The magic of every option reply.
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// The magic of every transmission request.
const REQUEST_MAGIC: u32 = 0x2560_9513;
/// The magic of a simple reply.
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Handshake flag: we speak fixed newstyle.
const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag: a client may ask us to skip the 124 zeroes.
const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: the client speaks fixed newstyle.
pub(crate) const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: no zeroes after `NBD_OPT_EXPORT_NAME`'s answer.
pub(crate) const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flags: flags present, read-only, `NBD_CMD_FLUSH` accepted,
/// and several connections may share the export (there is no cache to
/// keep coherent). Nothing else is advertised, so a well-behaved client
/// sends nothing else.
pub(crate) const TRANSMISSION_FLAGS: u16 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 8);

/// Options (`NBD_OPT_*`) we answer other than with `NBD_REP_ERR_UNSUP`.
pub(crate) const OPT_EXPORT_NAME: u32 = 1;
/// `NBD_OPT_ABORT`.
pub(crate) const OPT_ABORT: u32 = 2;
/// `NBD_OPT_LIST`.
pub(crate) const OPT_LIST: u32 = 3;
/// `NBD_OPT_INFO`.
pub(crate) const OPT_INFO: u32 = 6;
/// `NBD_OPT_GO`.
pub(crate) const OPT_GO: u32 = 7;

/// Option replies (`NBD_REP_*`).
pub(crate) const REP_ACK: u32 = 1;
/// `NBD_REP_SERVER`: one export of a list.
pub(crate) const REP_SERVER: u32 = 2;
/// `NBD_REP_INFO`: one item about an export.
pub(crate) const REP_INFO: u32 = 3;
/// `NBD_REP_ERR_UNSUP`: an option we do not implement.
pub(crate) const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
/// `NBD_REP_ERR_INVALID`: a malformed option.
pub(crate) const REP_ERR_INVALID: u32 = (1 << 31) + 3;
/// `NBD_REP_ERR_UNKNOWN`: no export by that name.
pub(crate) const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
/// `NBD_REP_ERR_TOO_BIG`: an option longer than [`MAX_OPTION_LENGTH`].
pub(crate) const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;

/// `NBD_INFO_EXPORT`: size and transmission flags.
const INFO_EXPORT: u16 = 0;
/// `NBD_INFO_BLOCK_SIZE`: the size constraints.
pub(crate) const INFO_BLOCK_SIZE: u16 = 3;

/// Commands (`NBD_CMD_*`).
pub(crate) const CMD_READ: u16 = 0;
/// `NBD_CMD_WRITE`: refused, after its payload is read off the socket.
pub(crate) const CMD_WRITE: u16 = 1;
/// `NBD_CMD_DISC`: the client's clean goodbye.
pub(crate) const CMD_DISC: u16 = 2;
/// `NBD_CMD_FLUSH`: nothing to flush on a read-only export.
pub(crate) const CMD_FLUSH: u16 = 3;
/// `NBD_CMD_TRIM`: refused.
pub(crate) const CMD_TRIM: u16 = 4;
/// `NBD_CMD_WRITE_ZEROES`: refused.
pub(crate) const CMD_WRITE_ZEROES: u16 = 6;

/// Error values of a simple reply.
pub(crate) const EPERM: u32 = 1;
/// `NBD_EIO`: the block source failed.
pub(crate) const EIO: u32 = 5;
/// `NBD_EINVAL`: out of bounds, or a command we do not know.
pub(crate) const EINVAL: u32 = 22;

/// The largest read (and write payload) we accept: the protocol's default
/// maximum payload, 32 MiB. Longer reads get `NBD_EINVAL`; longer writes
/// close the connection (their payload would have to be swallowed).
pub(crate) const MAX_PAYLOAD: u32 = 32 << 20;
/// The preferred block size we advertise.
const PREFERRED_BLOCK: u32 = 4096;
/// The longest option data we read; a longer one is a hostile client.
pub(crate) const MAX_OPTION_LENGTH: u32 = 4096;
/// How many options a client may send before it starts transmission.
pub(crate) const MAX_OPTIONS: usize = 32;
/// The size of a simple reply's header, before a read's data.
pub(crate) const SIMPLE_REPLY_HEADER: usize = 16;

/// An error for a client that broke the protocol.
pub(crate) fn violation(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The server's greeting: magic, `IHAVEOPT`, handshake flags.
pub(crate) fn greeting() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(18);
    bytes.extend_from_slice(&NBDMAGIC.to_be_bytes());
    bytes.extend_from_slice(&IHAVEOPT.to_be_bytes());
    bytes.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    bytes
}

/// Reads the client's flags, refusing any we did not offer.
pub(crate) fn read_client_flags(reader: &mut impl Read) -> io::Result<u32> {
    let flags = u32::from_be_bytes(read_array(reader)?);
    if flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(violation(format!("unknown client flags {flags:#x}")));
    }
    Ok(flags)
}

/// An option's header: which option, and how many data bytes follow.
pub(crate) struct OptionHeader {
    /// `NBD_OPT_*`.
    pub(crate) option: u32,
    /// The length of the data after the header.
    pub(crate) length: u32,
}

/// Reads an option's header, checking its magic.
pub(crate) fn read_option_header(reader: &mut impl Read) -> io::Result<OptionHeader> {
    let bytes: [u8; 16] = read_array(reader)?;
    if u64::from_be_bytes(word(&bytes, 0)) != IHAVEOPT {
        return Err(violation("an option without IHAVEOPT"));
    }
    Ok(OptionHeader {
        option: u32::from_be_bytes(word(&bytes, 8)),
        length: u32::from_be_bytes(word(&bytes, 12)),
    })
}

/// One option reply: magic, the option answered, the reply type, data.
pub(crate) fn option_reply(option: u32, reply: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(20 + data.len());
    bytes.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    bytes.extend_from_slice(&option.to_be_bytes());
    bytes.extend_from_slice(&reply.to_be_bytes());
    bytes.extend_from_slice(&len_u32(data.len()).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The data of `NBD_REP_SERVER`: the export's name, length first.
pub(crate) fn server_entry(name: &str) -> Vec<u8> {
    let mut bytes = len_u32(name.len()).to_be_bytes().to_vec();
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

/// The data of `NBD_REP_INFO` / `NBD_INFO_EXPORT`.
pub(crate) fn info_export(size: u64) -> Vec<u8> {
    let mut bytes = INFO_EXPORT.to_be_bytes().to_vec();
    bytes.extend_from_slice(&size.to_be_bytes());
    bytes.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
    bytes
}

/// The data of `NBD_REP_INFO` / `NBD_INFO_BLOCK_SIZE`: the protocol's
/// defaults (any alignment, 4 KiB preferred, [`MAX_PAYLOAD`]).
pub(crate) fn info_block_size() -> Vec<u8> {
    let mut bytes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
    for value in [1, PREFERRED_BLOCK, MAX_PAYLOAD] {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    bytes
}

/// The old-style answer to `NBD_OPT_EXPORT_NAME`: size, flags, and 124
/// zeroes unless the client asked for none.
pub(crate) fn export_name_answer(size: u64, no_zeroes: bool) -> Vec<u8> {
    let mut bytes = size.to_be_bytes().to_vec();
    bytes.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
    if !no_zeroes {
        bytes.extend_from_slice(&[0; 124]);
    }
    bytes
}

/// What `NBD_OPT_INFO` and `NBD_OPT_GO` ask: an export and info items.
pub(crate) struct InfoRequest<'a> {
    /// The export's name, as sent.
    pub(crate) name: &'a [u8],
    /// The `NBD_INFO_*` items asked for.
    pub(crate) items: Vec<u16>,
}

/// Parses the data of `NBD_OPT_INFO`/`NBD_OPT_GO`; `None` if malformed
/// (lengths that do not add up to the option's length).
pub(crate) fn parse_info_request(data: &[u8]) -> Option<InfoRequest<'_>> {
    let (name_length, rest) = data.split_first_chunk::<4>()?;
    let name_length = usize::try_from(u32::from_be_bytes(*name_length)).ok()?;
    let name = rest.get(..name_length)?;
    let (count, items) = rest.get(name_length..)?.split_first_chunk::<2>()?;
    if items.len() != 2 * usize::from(u16::from_be_bytes(*count)) {
        return None;
    }
    let items = items
        .chunks_exact(2)
        .map(|item| u16::from_be_bytes([item[0], item[1]]))
        .collect();
    Some(InfoRequest { name, items })
}

/// A transmission request's header.
pub(crate) struct Request {
    /// `NBD_CMD_*`.
    pub(crate) command: u16,
    /// The client's cookie, echoed in the reply.
    pub(crate) cookie: u64,
    /// Where in the export.
    pub(crate) offset: u64,
    /// How many bytes.
    pub(crate) length: u32,
}

/// Reads a request's header, checking its magic; `None` when the client
/// closed the connection between requests.
pub(crate) fn read_request(reader: &mut impl Read) -> io::Result<Option<Request>> {
    let mut bytes = [0; 28];
    match reader.read_exact(&mut bytes) {
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    if u32::from_be_bytes(word(&bytes, 0)) != REQUEST_MAGIC {
        return Err(violation("a request without NBD_REQUEST_MAGIC"));
    }
    // Command flags (bytes 4..6) are ignored: we advertised none that
    // changes how a read-only server answers.
    Ok(Some(Request {
        command: u16::from_be_bytes(word(&bytes, 6)),
        cookie: u64::from_be_bytes(word(&bytes, 8)),
        offset: u64::from_be_bytes(word(&bytes, 16)),
        length: u32::from_be_bytes(word(&bytes, 24)),
    }))
}

/// A simple reply's header: magic, error (0 for success), cookie.
pub(crate) fn simple_reply(error: u32, cookie: u64) -> [u8; SIMPLE_REPLY_HEADER] {
    let mut bytes = [0; SIMPLE_REPLY_HEADER];
    bytes[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    bytes[4..8].copy_from_slice(&error.to_be_bytes());
    bytes[8..].copy_from_slice(&cookie.to_be_bytes());
    bytes
}

fn read_array<const N: usize>(reader: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The `N` bytes of `bytes` at `at` (in bounds: callers read fixed headers).
fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Option data is bounded by [`MAX_OPTION_LENGTH`] and names by it too, so
/// a length always fits the wire's 32 bits.
fn len_u32(length: usize) -> u32 {
    u32::try_from(length).unwrap_or(u32::MAX)
}
