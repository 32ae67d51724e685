//! The byte level of a session: big-endian numbers, bounded strings and
//! skipping, over a buffered stream that can also be written to.
//!
//! Every read is exact (a short read is [`RfbError::Read`]) and every
//! length the server announces is either bounded before allocating or
//! skipped without buffering, so a hostile server cannot make the client
//! allocate more than [`MAX_TEXT_KEPT`] for a string.

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::RfbError;

/// The most bytes of a server string (desktop name, failure reason) kept;
/// the rest is read and dropped.
pub const MAX_TEXT_KEPT: u32 = 64 * 1024;

/// How long the rest of a message may take once its first byte came.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A byte stream to a VNC server whose reads can time out: a TCP or Unix
/// socket, or anything else that can say how long a read may block.
pub trait Transport: Read + Write {
    /// Sets how long one read may block (`None`: forever).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

/// A buffered RFB byte stream.
pub(crate) struct Wire<S: Transport> {
    reader: BufReader<S>,
}

impl<S: Transport> Wire<S> {
    /// Wraps `stream`; reads wait at most [`MESSAGE_TIMEOUT`].
    pub(crate) fn new(stream: S) -> Result<Wire<S>, RfbError> {
        stream
            .set_read_timeout(Some(MESSAGE_TIMEOUT))
            .map_err(RfbError::Wait)?;
        Ok(Wire {
            reader: BufReader::with_capacity(1 << 16, stream),
        })
    }

    /// The stream underneath.
    pub(crate) fn stream(&self) -> &S {
        self.reader.get_ref()
    }

    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RfbError> {
        self.reader.read_exact(buf).map_err(RfbError::Read)
    }

    pub(crate) fn read_array<const N: usize>(&mut self) -> Result<[u8; N], RfbError> {
        let mut buf = [0u8; N];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }

    pub(crate) fn read_u8(&mut self) -> Result<u8, RfbError> {
        Ok(self.read_array::<1>()?[0])
    }

    pub(crate) fn read_u16(&mut self) -> Result<u16, RfbError> {
        Ok(u16::from_be_bytes(self.read_array()?))
    }

    pub(crate) fn read_u32(&mut self) -> Result<u32, RfbError> {
        Ok(u32::from_be_bytes(self.read_array()?))
    }

    pub(crate) fn read_i32(&mut self) -> Result<i32, RfbError> {
        Ok(i32::from_be_bytes(self.read_array()?))
    }

    /// Reads and drops `len` bytes without buffering them all.
    pub(crate) fn skip(&mut self, len: u64) -> Result<(), RfbError> {
        let copied =
            io::copy(&mut (&mut self.reader).take(len), &mut io::sink()).map_err(RfbError::Read)?;
        if copied != len {
            return Err(RfbError::Closed);
        }
        Ok(())
    }

    /// A string prefixed by its 32-bit length; at most [`MAX_TEXT_KEPT`]
    /// bytes are kept, the rest is skipped.
    pub(crate) fn read_text(&mut self) -> Result<String, RfbError> {
        let len = self.read_u32()?;
        let kept = len.min(MAX_TEXT_KEPT);
        // `kept` ≤ 64 KiB, so it fits any usize.
        let mut text = vec![0u8; kept as usize];
        self.read_exact(&mut text)?;
        self.skip(u64::from(len - kept))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), RfbError> {
        let stream = self.reader.get_mut();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(RfbError::Write)
    }

    /// Waits up to `wait` for the first byte of the next server message;
    /// `None` when none came in time.
    pub(crate) fn next_byte(&mut self, wait: Duration) -> Result<Option<u8>, RfbError> {
        let stream = self.reader.get_ref();
        stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(RfbError::Wait)?;
        let mut byte = [0u8; 1];
        let result = self.reader.read(&mut byte);
        self.reader
            .get_ref()
            .set_read_timeout(Some(MESSAGE_TIMEOUT))
            .map_err(RfbError::Wait)?;
        match result {
            Ok(0) => Err(RfbError::Closed),
            Ok(_) => Ok(Some(byte[0])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(RfbError::Wait(e)),
        }
    }
}
