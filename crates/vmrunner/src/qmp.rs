//! A minimal QMP client (the QEMU Machine Protocol) over a Unix socket.
//!
//! QMP is one JSON object per line. The server greets, the client enters
//! command mode with `qmp_capabilities`, then each command gets a `return`
//! or an `error`; asynchronous `event`s may come in between and are skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// The longest a QMP line may be (a `query-pci` of a big machine is a few
/// KiB; anything near this is not QEMU).
const LINE_MAX: usize = 4 << 20;

/// A QMP connection in command mode.
#[derive(Debug)]
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and negotiates capabilities.
    pub(crate) fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, String> {
        let stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| format!("socket options: {e}"))?;
        let writer = stream.try_clone().map_err(|e| format!("socket: {e}"))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("expected the QMP greeting, got {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Changes how long a command may take.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        let _ = self.writer.set_read_timeout(Some(timeout));
        let _ = self.writer.set_write_timeout(Some(timeout));
    }

    /// Runs `command` with `arguments`; returns its `return` value.
    pub(crate) fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("sending {command}: {e}"))?;
        loop {
            let message = self.read_message()?;
            if message.get("event").is_some() {
                continue;
            }
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let class = error.get("class").and_then(Value::as_str).unwrap_or("");
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("");
                return Err(format!("{command} failed: {class}: {desc}"));
            }
            return Err(format!("unexpected QMP message {message}"));
        }
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = Vec::new();
        loop {
            let buf = self
                .reader
                .fill_buf()
                .map_err(|e| format!("reading: {e}"))?;
            if buf.is_empty() {
                return Err("QEMU closed the QMP connection".into());
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&buf[..end]);
                    self.reader.consume(end + 1);
                    break;
                }
                None => {
                    let n = buf.len();
                    line.extend_from_slice(buf);
                    self.reader.consume(n);
                }
            }
            if line.len() > LINE_MAX {
                return Err("a QMP message is too long".into());
            }
        }
        serde_json::from_slice(&line).map_err(|e| format!("malformed QMP message: {e}"))
    }
}
