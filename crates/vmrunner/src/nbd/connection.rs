//! One client: the handshake, then the transmission loop. The loop reads
//! requests one after the other and answers all but reads at once; each
//! read runs on a thread of its own, so a read blocked on bytes still
//! downloading does not hold up reads of bytes already there. At most
//! [`MAX_IN_FLIGHT`] reads run at once (QEMU sends up to 16); the loop
//! waits for a free slot beyond that. Replies are written whole under one
//! mutex, so they never interleave.
//!
//! [`Connection::close`] (the server stopping) shuts the socket down, which
//! wakes the loop wherever it waits; reads still blocked in the source
//! finish on their own later and their replies are dropped.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use super::BlockSource;
use super::handshake::{Export, Outcome, negotiate};
use super::protocol::{
    CMD_DISC, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, EINVAL, EIO, EPERM,
    MAX_PAYLOAD, Request, SIMPLE_REPLY_HEADER, read_request, simple_reply, violation,
};

/// How many reads of one connection may run at once.
const MAX_IN_FLIGHT: usize = 16;
/// How long a client may take over each step of the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server and the read threads share about one client.
pub(crate) struct Connection {
    /// Replies go through here, one whole reply per lock.
    writer: Mutex<UnixStream>,
    /// A handle on the same socket to shut it down without the writer's
    /// lock (a reply blocked on a client that does not read holds it).
    control: UnixStream,
    slots: Mutex<Slots>,
    slot_freed: Condvar,
}

struct Slots {
    in_flight: usize,
    closed: bool,
}

impl Connection {
    /// Wraps an accepted socket.
    pub(crate) fn new(stream: &UnixStream) -> io::Result<Connection> {
        Ok(Connection {
            writer: Mutex::new(stream.try_clone()?),
            control: stream.try_clone()?,
            slots: Mutex::new(Slots {
                in_flight: 0,
                closed: false,
            }),
            slot_freed: Condvar::new(),
        })
    }

    /// Ends the connection: the socket is shut down (waking whatever waits
    /// on it) and nothing more is sent.
    pub(crate) fn close(&self) {
        self.lock_slots().closed = true;
        self.slot_freed.notify_all();
        // Already shut down or reset by the client: nothing left to do.
        let _ = self.control.shutdown(std::net::Shutdown::Both);
    }

    /// Sends one whole reply; a failed send closes the connection (the
    /// stream is out of step once part of a reply is gone).
    fn send(&self, reply: &[u8]) {
        if self.lock_slots().closed {
            return;
        }
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = io::Write::write_all(&mut *writer, reply) {
            tracing::debug!(%error, "NBD reply not sent; closing the connection");
            drop(writer);
            self.close();
        }
    }

    /// Waits for a free read slot; `None` once the connection is closed.
    fn acquire_slot(self: &Arc<Self>) -> Option<Slot> {
        let mut slots = self.lock_slots();
        while slots.in_flight >= MAX_IN_FLIGHT && !slots.closed {
            slots = self
                .slot_freed
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if slots.closed {
            return None;
        }
        slots.in_flight += 1;
        Some(Slot(Arc::clone(self)))
    }

    /// Waits until every read has been answered, or the connection closed.
    fn wait_idle(&self) {
        let mut slots = self.lock_slots();
        while slots.in_flight > 0 && !slots.closed {
            slots = self
                .slot_freed
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock_slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read in flight; dropping it frees its slot, even if the read panics.
struct Slot(Arc<Connection>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.lock_slots().in_flight -= 1;
        self.0.slot_freed.notify_all();
    }
}

/// Serves one client on `stream` until it leaves, breaks the protocol or
/// the connection is closed; then closes it.
pub(crate) fn serve_client(
    mut stream: UnixStream,
    connection: &Arc<Connection>,
    export: &Export,
    source: &Arc<dyn BlockSource>,
) {
    let result = stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .and_then(|()| negotiate(&mut stream, export))
        .and_then(|outcome| match outcome {
            Outcome::Aborted => Ok(()),
            Outcome::Transmission => {
                stream.set_read_timeout(None)?;
                transmit(&mut stream, connection, export, source)
            }
        });
    match result {
        Err(error) if error.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!(%error, "NBD client broke the protocol; closing its connection");
        }
        Err(error) => tracing::debug!(%error, "NBD connection ended"),
        Ok(()) => {}
    }
    connection.close();
}

/// The transmission loop: one request after the other until `NBD_CMD_DISC`
/// or the end of the stream.
fn transmit(
    stream: &mut UnixStream,
    connection: &Arc<Connection>,
    export: &Export,
    source: &Arc<dyn BlockSource>,
) -> io::Result<()> {
    while let Some(request) = read_request(stream)? {
        let (command, cookie) = (request.command, request.cookie);
        let answer = match command {
            CMD_READ => match check_read(&request, export.size) {
                Ok(()) => {
                    let Some(slot) = connection.acquire_slot() else {
                        return Ok(());
                    };
                    spawn_read(request, slot, source)
                }
                Err(error) => Some(error),
            },
            CMD_WRITE => {
                discard_payload(stream, request.length)?;
                Some(EPERM)
            }
            CMD_TRIM | CMD_WRITE_ZEROES => Some(EPERM),
            CMD_FLUSH => Some(0),
            CMD_DISC => {
                connection.wait_idle();
                return Ok(());
            }
            _ => Some(EINVAL),
        };
        if let Some(error) = answer {
            connection.send(&simple_reply(error, cookie));
        }
    }
    Ok(())
}

/// `Ok` if the read fits the export and our maximum payload, else the
/// error to answer (the connection stays usable).
fn check_read(request: &Request, size: u64) -> Result<(), u32> {
    let end = request.offset.checked_add(u64::from(request.length));
    let in_bounds = end.is_some_and(|end| end <= size);
    if request.length == 0 || request.length > MAX_PAYLOAD || !in_bounds {
        return Err(EINVAL);
    }
    Ok(())
}

/// Reads and drops a refused write's payload, so the next request starts
/// where the client thinks it does; one longer than we would ever accept
/// ends the connection instead.
fn discard_payload(stream: &mut UnixStream, length: u32) -> io::Result<()> {
    if length > MAX_PAYLOAD {
        return Err(violation(format!("a write of {length} bytes")));
    }
    let copied = io::copy(&mut stream.take(u64::from(length)), &mut io::sink())?;
    if copied < u64::from(length) {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Starts a thread that reads and answers `request`; its slot goes with it.
/// Returns the error to answer at once, `None` when the thread answers.
fn spawn_read(request: Request, slot: Slot, source: &Arc<dyn BlockSource>) -> Option<u32> {
    let source = Arc::clone(source);
    let spawned = thread::Builder::new()
        .name("nbd-read".into())
        .spawn(move || read_and_reply(&request, &slot, source.as_ref()));
    match spawned {
        // Detached: a read blocked in the source must not hold up a stop.
        Ok(_detached) => None,
        Err(error) => {
            tracing::warn!(%error, "cannot start an NBD read thread");
            Some(EIO)
        }
    }
}

fn read_and_reply(request: &Request, slot: &Slot, source: &dyn BlockSource) {
    // The header goes in front of the data, so the reply is one write.
    let mut reply = vec![0; SIMPLE_REPLY_HEADER + request.length as usize];
    let data = &mut reply[SIMPLE_REPLY_HEADER..];
    // A source that panics is answered like one that fails: the client
    // must not wait forever for this cookie.
    let read = panic::catch_unwind(AssertUnwindSafe(|| source.read_at(request.offset, data)))
        .unwrap_or_else(|_| Err(io::Error::other("the block source panicked")));
    match read {
        Ok(()) => {
            reply[..SIMPLE_REPLY_HEADER].copy_from_slice(&simple_reply(0, request.cookie));
            slot.0.send(&reply);
        }
        Err(error) => {
            tracing::warn!(%error, offset = request.offset, length = request.length, "NBD export read failed");
            slot.0.send(&simple_reply(EIO, request.cookie));
        }
    }
}
