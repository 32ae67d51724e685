//! What the NBD tests share: block sources (in memory, gated, failing), a
//! raw NBD client written from the protocol text (to act as a hostile
//! client too), and QEMU's tools run with a deadline.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vmrunner::nbd::BlockSource;

/// How long any answer of the server may take in these tests.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const OPT_GO: u32 = 7;
pub const REP_ACK: u32 = 1;
pub const REP_INFO: u32 = 3;
pub const CMD_READ: u16 = 0;
pub const EINVAL: u32 = 22;

/// An export in memory.
pub struct MemorySource(pub Vec<u8>);

impl BlockSource for MemorySource {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }
}

/// An export whose bytes from `gate` on are "still downloading": reads
/// touching them block until [`GateSource::open`].
pub struct GateSource {
    pub bytes: Vec<u8>,
    pub gate: u64,
    open: Mutex<bool>,
    opened: Condvar,
}

impl GateSource {
    pub fn new(bytes: Vec<u8>, gate: u64) -> GateSource {
        GateSource {
            bytes,
            gate,
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl BlockSource for GateSource {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset + buf.len() as u64 > self.gate {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
        let start = offset as usize;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
        Ok(())
    }
}

/// An export whose download failed.
pub struct FailingSource(pub u64);

impl BlockSource for FailingSource {
    fn size(&self) -> u64 {
        self.0
    }
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<()> {
        Err(io::Error::other("download failed"))
    }
}

/// Connects with [`ANSWER_TIMEOUT`] on every read.
pub fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    stream
}

pub fn read_u16(stream: &mut UnixStream) -> u16 {
    let mut bytes = [0; 2];
    stream.read_exact(&mut bytes).unwrap();
    u16::from_be_bytes(bytes)
}

pub fn read_u32(stream: &mut UnixStream) -> u32 {
    let mut bytes = [0; 4];
    stream.read_exact(&mut bytes).unwrap();
    u32::from_be_bytes(bytes)
}

pub fn read_u64(stream: &mut UnixStream) -> u64 {
    let mut bytes = [0; 8];
    stream.read_exact(&mut bytes).unwrap();
    u64::from_be_bytes(bytes)
}

/// Reads the greeting and sends `client_flags`; returns the handshake flags.
pub fn greet(stream: &mut UnixStream, client_flags: u32) -> u16 {
    assert_eq!(read_u64(stream), NBDMAGIC);
    assert_eq!(read_u64(stream), IHAVEOPT);
    let flags = read_u16(stream);
    stream.write_all(&client_flags.to_be_bytes()).unwrap();
    flags
}

pub fn send_option(stream: &mut UnixStream, option: u32, data: &[u8]) {
    let mut bytes = IHAVEOPT.to_be_bytes().to_vec();
    bytes.extend_from_slice(&option.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(data);
    stream.write_all(&bytes).unwrap();
}

/// One option reply: (option, reply type, data).
pub fn read_option_reply(stream: &mut UnixStream) -> (u32, u32, Vec<u8>) {
    assert_eq!(read_u64(stream), OPTION_REPLY_MAGIC);
    let option = read_u32(stream);
    let reply = read_u32(stream);
    let mut data = vec![0; read_u32(stream) as usize];
    stream.read_exact(&mut data).unwrap();
    (option, reply, data)
}

/// The data of `NBD_OPT_GO`/`NBD_OPT_INFO` for `export` and `items`.
pub fn info_request(export: &str, items: &[u16]) -> Vec<u8> {
    let mut data = (export.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(export.as_bytes());
    data.extend_from_slice(&(items.len() as u16).to_be_bytes());
    for item in items {
        data.extend_from_slice(&item.to_be_bytes());
    }
    data
}

/// A client in transmission on `export`; returns it with the export's
/// size and transmission flags.
pub fn open_export(socket: &Path, export: &str) -> (UnixStream, u64, u16) {
    let mut stream = connect(socket);
    greet(&mut stream, 3);
    send_option(&mut stream, OPT_GO, &info_request(export, &[]));
    let (mut size, mut flags) = (None, 0);
    loop {
        let (option, reply, data) = read_option_reply(&mut stream);
        assert_eq!(option, OPT_GO);
        match reply {
            REP_INFO if data[..2] == [0, 0] => {
                size = Some(u64::from_be_bytes(data[2..10].try_into().unwrap()));
                flags = u16::from_be_bytes(data[10..12].try_into().unwrap());
            }
            REP_INFO => {}
            REP_ACK => break,
            other => panic!("NBD_OPT_GO answered {other:#x}"),
        }
    }
    (
        stream,
        size.expect("no NBD_INFO_EXPORT before the ACK"),
        flags,
    )
}

pub fn send_request(stream: &mut UnixStream, command: u16, cookie: u64, offset: u64, length: u32) {
    let mut bytes = REQUEST_MAGIC.to_be_bytes().to_vec();
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&command.to_be_bytes());
    bytes.extend_from_slice(&cookie.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    bytes.extend_from_slice(&length.to_be_bytes());
    stream.write_all(&bytes).unwrap();
}

/// A simple reply's (error, cookie).
pub fn read_simple_reply(stream: &mut UnixStream) -> (u32, u64) {
    assert_eq!(read_u32(stream), SIMPLE_REPLY_MAGIC);
    (read_u32(stream), read_u64(stream))
}

/// Reads `length` bytes at `offset` and returns them, asserting success.
pub fn read_export(stream: &mut UnixStream, cookie: u64, offset: u64, length: u32) -> Vec<u8> {
    send_request(stream, CMD_READ, cookie, offset, length);
    assert_eq!(read_simple_reply(stream), (0, cookie));
    let mut data = vec![0; length as usize];
    stream.read_exact(&mut data).unwrap();
    data
}

/// Asserts the server closes the connection within [`ANSWER_TIMEOUT`]
/// (after whatever it still had to say).
pub fn assert_closed(stream: &mut UnixStream) {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the server did not close the connection: {error}"),
    }
}

/// Runs a QEMU tool; kills it and fails if it takes longer than a minute.
pub fn run_bounded(dir: &Path, program: &str, args: &[&str]) -> Output {
    let stdout = dir.join(format!("{program}.out"));
    let stderr = dir.join(format!("{program}.err"));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): install qemu-utils"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`{program} {}` hung", args.join(" "));
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(stdout).unwrap(),
        stderr: std::fs::read(stderr).unwrap(),
    }
}

/// [`run_bounded`], asserting success; returns standard output.
pub fn run_ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = run_bounded(dir, program, args);
    testkit::assert_succeeded(program, args, &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}
