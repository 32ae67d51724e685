//! [`Reply`]: what a fake server does with a request, and [`Response`]: an
//! answer with every fault a client must survive.
//!
//! A [`Response`] is written as the test asks, right or wrong: any status
//! and headers, a `Content-Length` that matches the body, lies about it or
//! is left out, a chunked body, a body cut after some bytes, a pause after
//! every piece (a slow server), silence after the body (a stalled one).
//! Bytes beyond `Content-Length` are a body longer than
//! [`Response::announce`]; a lying `Content-Range`, a redirect or a server
//! that ignores `Range` are headers and statuses the handler picks.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::Request;
use super::forward::Forward;

/// The size of the pieces a body is written in (and of chunks).
const PIECE: usize = 64 << 10;

/// What a fake server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An answer: status, extra headers, body (`Content-Length` and
    /// `Connection: close` are added). Short for [`Reply::Send`].
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// A [`Response`], faults included.
    Send(Response),
    /// Read the request, then say nothing until the client gives up.
    Hang,
    /// Close the connection without an answer.
    Close,
    /// Write these bytes as they are, then close (garbage; a plain answer
    /// to a TLS client).
    Raw(Vec<u8>),
    /// Pass the request on to another server and its answer back: a proxy,
    /// which can cut the request.
    Forward(Forward),
}

impl Reply {
    /// Carries the reply out on `stream`, the connection of `request`.
    pub(super) fn deliver(self, request: &Request, mut stream: TcpStream) -> std::io::Result<()> {
        match self {
            Reply::Answer(status, headers, body) => {
                let mut response = Response::new(status).body(body);
                response.headers = headers;
                response.write(&mut stream)
            }
            Reply::Send(response) => response.write(&mut stream),
            Reply::Hang => {
                std::thread::sleep(Duration::from_secs(600));
                Ok(())
            }
            Reply::Close => stream.shutdown(Shutdown::Both),
            Reply::Raw(bytes) => {
                stream.write_all(&bytes)?;
                stream.flush()
            }
            Reply::Forward(forward) => forward.deliver(request, &mut stream),
        }
    }
}

/// What `Content-Length` a [`Response`] announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// The length of the body.
    Exact,
    /// This many bytes, whatever the body.
    Announce(u64),
    /// None: the end of the connection ends the body.
    Omit,
}

/// An answer, right or wrong (built with the methods below).
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    length: Length,
    chunked: bool,
    cut_after: Option<u64>,
    pause: Option<Duration>,
    stall: Option<Duration>,
}

impl Response {
    /// An answer with `status`, no body, the right `Content-Length`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            length: Length::Exact,
            chunked: false,
            cut_after: None,
            pause: None,
            stall: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl ToString) -> Response {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Announces `length` bytes whatever the body holds: fewer bytes than
    /// announced, or bytes beyond `Content-Length` (also the length a `HEAD`
    /// answer announces without a body).
    pub fn announce(mut self, length: u64) -> Response {
        self.length = Length::Announce(length);
        self
    }

    /// Sends no `Content-Length`: the body ends with the connection.
    pub fn without_length(mut self) -> Response {
        self.length = Length::Omit;
        self
    }

    /// Sends the body with `Transfer-Encoding: chunked` (in 64 KiB chunks;
    /// a `Content-Length` is still announced unless left out).
    pub fn chunked(mut self) -> Response {
        self.chunked = true;
        self
    }

    /// Sends only the first `bytes` of the body, then closes.
    pub fn cut_after(mut self, bytes: u64) -> Response {
        self.cut_after = Some(bytes);
        self
    }

    /// Pauses this long after every 64 KiB of body: a slow server.
    pub fn pause_every_piece(mut self, pause: Duration) -> Response {
        self.pause = Some(pause);
        self
    }

    /// After the body (or its cut), says nothing for `silence`, then
    /// closes: a stalled server.
    pub fn stall(mut self, silence: Duration) -> Response {
        self.stall = Some(silence);
        self
    }

    /// Writes the answer, faults included.
    fn write(&self, out: &mut TcpStream) -> std::io::Result<()> {
        out.write_all(self.head().as_bytes())?;
        let cut = self.cut_after.map_or(self.body.len(), |cut| {
            usize::try_from(cut)
                .unwrap_or(usize::MAX)
                .min(self.body.len())
        });
        for piece in self.body[..cut].chunks(PIECE) {
            if self.chunked {
                write!(out, "{:x}\r\n", piece.len())?;
                out.write_all(piece)?;
                out.write_all(b"\r\n")?;
            } else {
                out.write_all(piece)?;
            }
            if let Some(pause) = self.pause {
                out.flush()?;
                std::thread::sleep(pause);
            }
        }
        if self.chunked && self.cut_after.is_none() {
            out.write_all(b"0\r\n\r\n")?;
        }
        out.flush()?;
        if let Some(silence) = self.stall {
            std::thread::sleep(silence);
        }
        Ok(())
    }

    /// The status line and the headers.
    fn head(&self) -> String {
        let mut head = format!("HTTP/1.1 {} Fake\r\n", self.status);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let length = match self.length {
            Length::Exact => Some(self.body.len() as u64),
            Length::Announce(length) => Some(length),
            Length::Omit => None,
        };
        if let Some(length) = length {
            head.push_str(&format!("Content-Length: {length}\r\n"));
        }
        if self.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        head
    }
}
