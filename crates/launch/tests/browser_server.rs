//! The browser view's server against a stand-in display (a TCP server that
//! sends an RFB banner and echoes what it gets) and Debian's real noVNC
//! files: the page and its scripts are served, the WebSocket carries raw
//! bytes both ways, a newer page supersedes an older one, and requests
//! without the token, with another Host or another Origin get 403.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use launch::browser::novnc::{DEFAULT_NOVNC_DIR, NoVnc};
use launch::browser::server::BrowserServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const BANNER: &[u8] = b"RFB 003.008\n";

/// A display that sends the banner, then echoes.
async fn echo_display() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                stream.write_all(BANNER).await.unwrap();
                let mut buffer = [0u8; 4096];
                while let Ok(count) = stream.read(&mut buffer).await {
                    if count == 0 || stream.write_all(&buffer[..count]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

async fn server() -> BrowserServer {
    let novnc = NoVnc::find(None).unwrap_or_else(|e| {
        panic!("{e}: noVNC must be in {DEFAULT_NOVNC_DIR} (scripts/setup.sh installs novnc)")
    });
    BrowserServer::start(novnc, echo_display().await)
        .await
        .unwrap()
}

/// One raw HTTP/1.1 request; returns the status code and the whole answer.
async fn request(port: u16, head: &str) -> (u16, String) {
    request_within(port, head, Duration::from_secs(5)).await
}

/// [`request`], its answer awaited at most `limit`.
async fn request_within(port: u16, head: &str, limit: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer));
    let _ = read.await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    (status, answer)
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

/// The token-bearing path of `file`, from the page's URL.
fn path_of(server: &BrowserServer, file: &str) -> String {
    let url = server.page_url();
    let rest = url.strip_prefix(server.origin()).unwrap();
    let token = rest.split('/').nth(1).unwrap();
    format!("/{token}/{file}")
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test]
async fn the_page_and_its_files_are_served_to_the_right_host() {
    let server = server().await;
    let host = format!("127.0.0.1:{}", server.port());
    let origin = format!("Origin: {}\r\n", server.origin());
    let url = server.page_url();
    assert!(
        url.contains("/vnc.html?autoconnect=true&resize=scale"),
        "{url}"
    );
    assert!(url.ends_with("%2Fwebsockify"), "{url}");

    let (status, page) = request(
        server.port(),
        &get(&path_of(&server, "vnc.html"), &host, ""),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let page = page.to_ascii_lowercase();
    for header in [
        "content-type: text/html",
        "cache-control: no-store",
        "referrer-policy: no-referrer",
    ] {
        assert!(page.contains(header), "{header}");
    }
    assert!(page.contains("novnc"));
    // A module script, fetched as the page does (with its Origin).
    let (status, script) = request(
        server.port(),
        &get(&path_of(&server, "app/ui.js"), &host, &origin),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        script
            .to_ascii_lowercase()
            .contains("content-type: text/javascript")
    );
    let (status, _) = request(
        server.port(),
        &get(&path_of(&server, "../../etc/passwd"), &host, ""),
    )
    .await;
    assert_eq!(status, 404);
    server.shutdown();
}

#[tokio::test]
async fn wrong_tokens_hosts_and_origins_get_403() {
    let server = server().await;
    let port = server.port();
    let host = format!("127.0.0.1:{port}");
    let page = path_of(&server, "vnc.html");
    let socket = path_of(&server, "websockify");
    let wrong_token = page.replacen(|c: char| c.is_ascii_hexdigit(), "x", 1);
    let cases = [
        ("no token", get("/vnc.html", &host, "")),
        ("wrong token", get(&wrong_token, &host, "")),
        (
            "wrong token, socket",
            get(
                &socket.replacen(|c: char| c.is_ascii_hexdigit(), "x", 1),
                &host,
                UPGRADE,
            ),
        ),
        ("localhost", get(&page, &format!("localhost:{port}"), "")),
        (
            "rebinding",
            get(&page, &format!("attacker.example:{port}"), ""),
        ),
        ("no port", get(&page, "127.0.0.1", "")),
        ("no host", format!("GET {page} HTTP/1.0\r\n\r\n")),
        (
            "other origin",
            get(&page, &host, "Origin: http://attacker.example\r\n"),
        ),
        (
            "other origin, socket",
            get(
                &socket,
                &host,
                &format!("Origin: http://attacker.example\r\n{UPGRADE}"),
            ),
        ),
        (
            "other port",
            get(
                &socket,
                &host,
                &format!("Origin: http://127.0.0.1:1\r\n{UPGRADE}"),
            ),
        ),
    ];
    for (case, head) in cases {
        let (status, answer) = request(port, &head).await;
        assert_eq!(status, 403, "{case}: {answer}");
    }
    // Nothing refused ever reached the display.
    assert!(!server.presence().borrow().seen);
    server.shutdown();
}

#[tokio::test]
async fn the_websocket_carries_rfb_bytes_and_a_new_page_supersedes_the_old() {
    let server = server().await;
    let url = format!(
        "ws://127.0.0.1:{}{}",
        server.port(),
        path_of(&server, "websockify")
    );
    let connect = || async {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", server.origin().parse().unwrap());
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "binary");
        socket
    };
    let mut first = connect().await;
    let banner = first.next().await.unwrap().unwrap();
    assert_eq!(banner, Message::Binary(BANNER.to_vec().into()));
    first
        .send(Message::Binary(b"\x03\x01".to_vec().into()))
        .await
        .unwrap();
    let echo = first.next().await.unwrap().unwrap();
    assert_eq!(echo, Message::Binary(b"\x03\x01".to_vec().into()));
    assert_eq!(server.presence().borrow().open, 1);

    // A reload: the new page's socket takes over, the old one is closed.
    let mut second = connect().await;
    assert_eq!(
        second.next().await.unwrap().unwrap(),
        Message::Binary(BANNER.to_vec().into())
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), first.next())
        .await
        .unwrap();
    assert!(
        matches!(
            closed,
            Some(Ok(Message::Close(_))) | None | Some(Err(WsError::ConnectionClosed))
        ),
        "{closed:?}"
    );
    second.close(None).await.unwrap();
    let mut presence = server.presence();
    tokio::time::timeout(
        Duration::from_secs(5),
        presence.wait_for(|now| now.open == 0),
    )
    .await
    .unwrap()
    .unwrap();
    server.shutdown();
}

/// Any local user may connect to 127.0.0.1: connections are bounded in
/// number and idle ones are closed after the header timeout, so the page
/// still loads, once the idle ones are gone.
#[tokio::test]
async fn idle_connections_are_closed_and_bounded_in_number() {
    use launch::browser::connections::{HEADER_TIMEOUT, MAX_CONNECTIONS};
    let server = server().await;
    let host = format!("127.0.0.1:{}", server.port());
    // More silent connections than the cap, and one that sends half a
    // request line.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 4 {
        idle.push(
            TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .unwrap(),
        );
    }
    let mut slow = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    slow.write_all(b"GET /").await.unwrap();

    // The page waits behind the cap until the idle ones time out, then
    // comes.
    let asked = tokio::time::Instant::now();
    let page = get(&path_of(&server, "vnc.html"), &host, "");
    let (status, _) = request_within(server.port(), &page, HEADER_TIMEOUT * 4).await;
    assert_eq!(status, 200);
    let waited = asked.elapsed();
    assert!(
        waited >= HEADER_TIMEOUT - Duration::from_secs(1),
        "no bound on connections: the page came after {waited:?}"
    );

    // Every idle connection was closed by the server (hyper may first
    // answer the half request with a 408).
    for stream in idle.iter_mut().chain([&mut slow]) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(HEADER_TIMEOUT * 4, stream.read_to_end(&mut rest));
        assert!(read.await.is_ok(), "an idle connection was kept open");
    }
    server.shutdown();
}
