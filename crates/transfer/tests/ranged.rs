#![allow(clippy::unwrap_used)]
//! The resumable ranged GET against the fake server of `testkit`: what each
//! kind of sink does when a server ignores the range, the validators, the
//! checks of a resumed answer, cancellation. (`vmnetx`'s fetch tests and
//! the registry tests of `containerdisk` cover the rest through their
//! callers.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use testkit::http::{FakeServer, Reply, Response as Answer};
use transfer::ranged::{Origin, Position, RangedError, RangedGet, Resume, Sink};
use transfer::{Backoff, Progress, Retries};

const LEN: usize = 300_000;

/// Why a test download failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot send: {0}")]
    Send(#[from] reqwest::Error),
    #[error(transparent)]
    Ranged(#[from] RangedError),
}

/// A plain origin: no authentication, broken bodies worth a retry.
struct Plain {
    client: Client,
    url: String,
}

impl Origin for Plain {
    type Error = Failure;

    fn send(&mut self, resume: &Resume) -> Result<Response, Failure> {
        Ok(resume.apply(self.client.get(&self.url)).send()?)
    }

    fn fail(&mut self, error: RangedError) -> Failure {
        Failure::Ranged(error)
    }

    fn retryable(&self, error: &Failure, _at: &Position) -> bool {
        matches!(
            error,
            Failure::Ranged(RangedError::Truncated { .. } | RangedError::Interrupted { .. })
        )
    }

    fn give_up(&self, _failures: u32, last: Failure) -> Failure {
        last
    }
}

/// A stream: it cannot be emptied.
#[derive(Default)]
struct Stream(Vec<u8>);

impl Sink for Stream {
    fn write_piece(&mut self, piece: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(piece);
        Ok(())
    }

    fn rewind(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }
}

#[derive(Default)]
struct Recorder {
    starts: Vec<Option<u64>>,
    advanced: u64,
    cancel: bool,
}

impl Progress for Recorder {
    fn start(&mut self, total: Option<u64>) {
        self.starts.push(total);
    }
    fn advance(&mut self, bytes: u64) {
        self.advanced += bytes;
    }
    fn cancelled(&self) -> bool {
        self.cancel
    }
}

fn body() -> Vec<u8> {
    testkit::XorShift::new(7).bytes(LEN)
}

/// A server whose first answer breaks after 100 000 bytes, and that answers
/// a resumed request with `resumed` (given the first byte asked for).
fn breaking_server(
    resumed: impl Fn(usize, Vec<u8>) -> Answer + Send + Sync + 'static,
) -> FakeServer {
    let answers = AtomicUsize::new(0);
    testkit::http::fake(move |request| {
        let full = Answer::new(200).header("ETag", "\"v1\"").body(body());
        Reply::Send(
            match (
                answers.fetch_add(1, Ordering::SeqCst),
                request.range_start(),
            ) {
                (0, _) => full.cut_after(100_000),
                (_, Some(start)) => resumed(start as usize, body()),
                (_, None) => full,
            },
        )
    })
}

fn get(
    server: &FakeServer,
    validators: bool,
    sink: &mut dyn Sink,
    progress: &mut Recorder,
) -> Result<u64, Failure> {
    let mut origin = Plain {
        client: Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        url: server.url("/blob"),
    };
    let retries = Retries::new(
        2,
        Backoff {
            first: Duration::ZERO,
            max: Duration::ZERO,
        },
    );
    RangedGet::new(retries)
        .validators(validators)
        .run(&mut origin, sink, progress)
}

#[test]
fn a_stream_skips_what_it_has_when_the_range_is_ignored() {
    let server = breaking_server(|_, body| Answer::new(200).body(body));
    let (mut sink, mut progress) = (Stream::default(), Recorder::default());
    assert_eq!(
        get(&server, false, &mut sink, &mut progress).unwrap(),
        LEN as u64
    );
    assert!(sink.0 == body(), "each byte once, in order");
    assert_eq!(progress.starts, vec![Some(LEN as u64)]);
    assert_eq!(progress.advanced, LEN as u64);
    let seen = server.seen();
    assert_eq!(seen[1].header("range"), Some("bytes=100000-"));
    assert_eq!(seen[1].header("if-range"), None, "no validators");
}

#[test]
fn a_file_starts_over_when_the_range_is_ignored() {
    let server = breaking_server(|_, body| Answer::new(200).body(body));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("download");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut progress = Recorder::default();
    assert_eq!(
        get(&server, true, &mut file, &mut progress).unwrap(),
        LEN as u64
    );
    assert!(std::fs::read(&path).unwrap() == body());
    assert_eq!(progress.starts, vec![Some(LEN as u64); 2]);
    assert_eq!(server.seen()[1].header("if-range"), Some("\"v1\""));
}

#[test]
fn a_resumed_answer_continues_exactly_where_the_sink_stands() {
    let partial = |start: usize, body: Vec<u8>| {
        Answer::new(206)
            .header("Content-Range", format!("bytes {start}-{}/{LEN}", LEN - 1))
            .body(body[start..].to_vec())
    };
    let honest = breaking_server(partial);
    let mut sink = Stream::default();
    get(&honest, true, &mut sink, &mut Recorder::default()).unwrap();
    assert!(sink.0 == body());

    let shifted = breaking_server(move |start, body| partial(start + 1, body));
    let error = get(
        &shifted,
        true,
        &mut Stream::default(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            Failure::Ranged(RangedError::BadRange {
                received: 100_000,
                ..
            })
        ),
        "{error:?}"
    );

    let resized = breaking_server(|start, body| {
        Answer::new(206)
            .header(
                "Content-Range",
                format!("bytes {start}-{}/{}", LEN - 1, LEN + 1),
            )
            .body(body[start..].to_vec())
    });
    let error = get(
        &resized,
        true,
        &mut Stream::default(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&format!("size went from {LEN} bytes to {} bytes", LEN + 1)),
        "{text}"
    );
}

#[test]
fn cancellation_stops_the_download() {
    let server = breaking_server(|_, body| Answer::new(200).body(body));
    let mut progress = Recorder {
        cancel: true,
        ..Recorder::default()
    };
    let error = get(&server, true, &mut Stream::default(), &mut progress).unwrap_err();
    assert!(
        matches!(error, Failure::Ranged(RangedError::Cancelled)),
        "{error:?}"
    );
    assert_eq!(server.seen().len(), 1);
}
