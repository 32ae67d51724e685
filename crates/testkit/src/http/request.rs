//! [`Request`]: one request as a fake server read it, and how it is read.
//!
//! A request is read whole (head, then the body its `Content-Length`
//! announces) before the handler sees it. Something that is not HTTP (a TLS
//! `ClientHello` sent to a plain server) is not waited for: it reaches the
//! handler at once, as a request with an empty method.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// One request as a fake server saw it (headers lower-cased; the body is
/// read only when `Content-Length` says there is one).
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …; empty when what arrived is not HTTP.
    pub method: String,
    /// The request target, query included.
    pub target: String,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (for something that is not HTTP: the first bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether what arrived is an HTTP request at all.
    pub fn is_http(&self) -> bool {
        !self.method.is_empty()
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| percent_decode(value))
    }

    /// The first byte asked for by `Range: bytes=N-`, if any.
    pub fn range_start(&self) -> Option<u64> {
        match self.range()? {
            (start, None) => Some(start),
            _ => None,
        }
    }

    /// `Range: bytes=FIRST-` or `bytes=FIRST-LAST`, if any.
    pub fn range(&self) -> Option<(u64, Option<u64>)> {
        let spec = self.header("range")?.strip_prefix("bytes=")?.trim();
        let (first, last) = spec.split_once('-')?;
        let first = first.parse().ok()?;
        if last.is_empty() {
            return Some((first, None));
        }
        Some((first, Some(last.parse().ok()?)))
    }

    /// The request as HTTP/1.1 bytes, as [`Forward`](super::Forward) passes
    /// it on: with `Connection: close`, so the upstream server ends its
    /// answer by closing.
    pub fn encode(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in self.headers.iter().filter(|(name, _)| name != "connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one request from `reader`.
pub(super) fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let first = reader.fill_buf()?;
    if first.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !first[0].is_ascii_uppercase() {
        return Ok(Request {
            method: String::new(),
            target: String::new(),
            headers: Vec::new(),
            body: first.to_vec(),
        });
    }
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body: Vec::new(),
    };
    let length = request
        .header("content-length")
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    reader.take(length).read_to_end(&mut request.body)?;
    Ok(request)
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = text
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
