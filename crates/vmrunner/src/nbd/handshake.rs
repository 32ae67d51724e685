//! Option haggling: the fixed newstyle handshake, from our greeting to the
//! start of transmission (`NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME`), an abort,
//! or a client refused. Bounded against hostile clients: option data of at
//! most [`MAX_OPTION_LENGTH`] bytes, at most [`MAX_OPTIONS`] options.

use std::io::{self, Read, Write};

use super::protocol::{
    FLAG_C_NO_ZEROES, INFO_BLOCK_SIZE, MAX_OPTION_LENGTH, MAX_OPTIONS, OPT_ABORT, OPT_EXPORT_NAME,
    OPT_GO, OPT_INFO, OPT_LIST, REP_ACK, REP_ERR_INVALID, REP_ERR_TOO_BIG, REP_ERR_UNKNOWN,
    REP_ERR_UNSUP, REP_INFO, REP_SERVER, export_name_answer, greeting, info_block_size,
    info_export, option_reply, parse_info_request, read_client_flags, read_option_header,
    server_entry, violation,
};

/// The one export a server offers.
pub(crate) struct Export {
    /// Its name.
    pub(crate) name: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// How the handshake ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The client chose our export: transmission starts.
    Transmission,
    /// The client aborted (`NBD_OPT_ABORT`).
    Aborted,
}

/// Runs the handshake on `stream` (nobody else writes to it yet).
pub(crate) fn negotiate(stream: &mut (impl Read + Write), export: &Export) -> io::Result<Outcome> {
    stream.write_all(&greeting())?;
    let no_zeroes = read_client_flags(stream)? & FLAG_C_NO_ZEROES != 0;
    for _ in 0..MAX_OPTIONS {
        let header = read_option_header(stream)?;
        if header.length > MAX_OPTION_LENGTH {
            // Reading (or skipping) up to 4 GiB would let a client keep us
            // busy at will: say why, then hang up.
            stream.write_all(&option_reply(header.option, REP_ERR_TOO_BIG, &[]))?;
            return Err(violation(format!(
                "option {} with {} bytes of data",
                header.option, header.length
            )));
        }
        let mut data = vec![0; header.length as usize];
        stream.read_exact(&mut data)?;
        if let Some(outcome) = answer(stream, export, header.option, &data, no_zeroes)? {
            return Ok(outcome);
        }
    }
    Err(violation(format!(
        "more than {MAX_OPTIONS} options without NBD_OPT_GO"
    )))
}

/// Answers one option; `Some` when it ends the handshake.
fn answer(
    stream: &mut impl Write,
    export: &Export,
    option: u32,
    data: &[u8],
    no_zeroes: bool,
) -> io::Result<Option<Outcome>> {
    match option {
        OPT_EXPORT_NAME => {
            // The old option has no way to say no but hanging up.
            if data != export.name.as_bytes() {
                return Err(violation("NBD_OPT_EXPORT_NAME of an unknown export"));
            }
            stream.write_all(&export_name_answer(export.size, no_zeroes))?;
            Ok(Some(Outcome::Transmission))
        }
        OPT_ABORT => {
            stream.write_all(&option_reply(option, REP_ACK, &[]))?;
            Ok(Some(Outcome::Aborted))
        }
        OPT_LIST => {
            if data.is_empty() {
                let entry = option_reply(option, REP_SERVER, &server_entry(&export.name));
                stream.write_all(&entry)?;
                stream.write_all(&option_reply(option, REP_ACK, &[]))?;
            } else {
                stream.write_all(&option_reply(option, REP_ERR_INVALID, &[]))?;
            }
            Ok(None)
        }
        OPT_INFO | OPT_GO => {
            let accepted = answer_info(stream, export, option, data)?;
            Ok((accepted && option == OPT_GO).then_some(Outcome::Transmission))
        }
        _ => {
            stream.write_all(&option_reply(option, REP_ERR_UNSUP, &[]))?;
            Ok(None)
        }
    }
}

/// Answers `NBD_OPT_INFO`/`NBD_OPT_GO`; true if it ended in `NBD_REP_ACK`.
fn answer_info(
    stream: &mut impl Write,
    export: &Export,
    option: u32,
    data: &[u8],
) -> io::Result<bool> {
    let Some(request) = parse_info_request(data) else {
        stream.write_all(&option_reply(option, REP_ERR_INVALID, &[]))?;
        return Ok(false);
    };
    if request.name != export.name.as_bytes() {
        stream.write_all(&option_reply(option, REP_ERR_UNKNOWN, &[]))?;
        return Ok(false);
    }
    stream.write_all(&option_reply(option, REP_INFO, &info_export(export.size)))?;
    // Our constraints are the protocol's defaults: told only when asked.
    if request.items.contains(&INFO_BLOCK_SIZE) {
        stream.write_all(&option_reply(option, REP_INFO, &info_block_size()))?;
    }
    stream.write_all(&option_reply(option, REP_ACK, &[]))?;
    Ok(true)
}
