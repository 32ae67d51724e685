//! [`FakeRegistry`]: a small registry on the fake server of `testkit`, for
//! faults a real one does not make (500s, wrong digests, a chunk kept in
//! part, a download cut once, Bearer tokens).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use containerdisk::Digest;
use testkit::http::{Reply, Request, Response};

/// How a [`FakeRegistry`] misbehaves.
#[derive(Debug, Clone, Default)]
pub struct FakeConfig {
    /// Answer everything with 500.
    pub always_500: bool,
    /// Answer the blob PUT with a wrong `Docker-Content-Digest`.
    pub wrong_digest: bool,
    /// Once, drop the connection after this many bytes of PATCH bodies in
    /// all, keeping what arrived (a registry that can resume mid-chunk).
    pub cut_once_at: Option<u64>,
    /// Require a Bearer token from `/token`, given for these credentials.
    pub bearer: Option<(String, String)>,
    /// Once, end a blob download after this many bytes (then serve Range
    /// requests).
    pub cut_download_once_at: Option<usize>,
}

/// What a [`FakeRegistry`] saw and holds.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Blobs by digest.
    pub blobs: HashMap<String, Vec<u8>>,
    /// Manifests by reference: media type, bytes.
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    uploads: HashMap<String, Vec<u8>>,
    next_upload: u64,
    /// PATCH body bytes received in all.
    pub patch_bytes: u64,
    cut_done: bool,
    /// Token requests.
    pub token_requests: u64,
    /// Blob downloads with a `Range` header.
    pub range_requests: u64,
    download_cut_done: bool,
    /// Requests seen: `METHOD path`.
    pub requests: Vec<String>,
}

/// A small in-process registry (one request per connection).
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its state.
    pub state: Arc<Mutex<FakeState>>,
}

const TOKEN: &str = "fake-token-0123";

impl FakeRegistry {
    /// Starts it.
    pub fn start(config: FakeConfig) -> FakeRegistry {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = Arc::clone(&state);
        let server = testkit::http::fake(move |request| answer(&config, &shared, request));
        FakeRegistry {
            host: server.host,
            state,
        }
    }
}

/// An answer with `status`, `headers` and `body`.
fn respond(status: u16, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let response = headers
        .iter()
        .fold(Response::new(status), |response, (name, value)| {
            response.header(name, value)
        });
    Reply::Send(response.body(body))
}

/// What the registry answers to `request`.
fn answer(config: &FakeConfig, state: &Mutex<FakeState>, request: &Request) -> Reply {
    let path = request.path();
    state
        .lock()
        .unwrap()
        .requests
        .push(format!("{} {path}", request.method));
    if config.always_500 {
        let body = br#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"the disk is on fire"}]}"#;
        return respond(500, &[("Content-Type", "application/json".into())], body);
    }
    if let Some((user, password)) = &config.bearer
        && let Some(refusal) = authenticate(user, password, state, request)
    {
        return refusal;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let find = |word: &str| segments.iter().rposition(|s| *s == word);
    if let Some(i) = find("uploads").filter(|&i| i >= 2 && segments[i - 1] == "blobs") {
        let repo = segments[1..i - 1].join("/");
        let id = segments.get(i + 1).copied().unwrap_or("");
        return upload(config, state, request, &repo, id);
    }
    if let Some(i) = find("blobs").filter(|&i| i >= 2) {
        let digest = segments.get(i + 1).copied().unwrap_or("");
        return blob(config, state, request, digest);
    }
    if let Some(i) = find("manifests").filter(|&i| i >= 2) {
        let reference = segments.get(i + 1).copied().unwrap_or("");
        if let Some(reply) = manifest(state, request, reference) {
            return reply;
        }
    }
    if path == "/v2/" {
        return respond(200, &[], b"{}");
    }
    respond(404, &[], b"")
}

/// Answers `/token`, or refuses a request without the token; `None` lets
/// an authenticated request through.
fn authenticate(
    user: &str,
    password: &str,
    state: &Mutex<FakeState>,
    request: &Request,
) -> Option<Reply> {
    if request.path() == "/token" && request.method == "POST" {
        state.lock().unwrap().token_requests += 1;
        return Some(refresh(user, password, request));
    }
    if request.path() == "/token" {
        state.lock().unwrap().token_requests += 1;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let scope = request.query("scope").unwrap_or_default();
        if request.header("authorization") != Some(expected.as_str())
            || !scope.starts_with("repository:")
        {
            return Some(respond(401, &[], br#"{"details":"bad credentials"}"#));
        }
        let body = format!(r#"{{"access_token":"{TOKEN}"}}"#);
        return Some(respond(200, &[], body.as_bytes()));
    }
    if request.header("authorization") == Some(format!("Bearer {TOKEN}").as_str()) {
        return None;
    }
    let host = request.header("host").unwrap_or("");
    let challenge = format!(r#"Bearer realm="http://{host}/token",service="fake-registry""#);
    let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    Some(respond(401, &[("WWW-Authenticate", challenge)], body))
}

/// The OAuth2 refresh-token grant: an identity token (user `<token>`)
/// exchanged for an access token.
fn refresh(user: &str, password: &str, request: &Request) -> Reply {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let valid = user == containerdisk::auth::IDENTITY_TOKEN_USER
        && field("grant_type") == Some("refresh_token")
        && field("refresh_token") == Some(password)
        && field("service") == Some("fake-registry")
        && field("scope").is_some_and(|scope| scope.starts_with("repository:"))
        && request.header("authorization").is_none();
    if !valid {
        return respond(401, &[], br#"{"details":"bad refresh token"}"#);
    }
    let body = format!(r#"{{"access_token":"{TOKEN}"}}"#);
    respond(200, &[], body.as_bytes())
}

/// `…/blobs/uploads/[id]`: open, send chunks to, ask about, close an upload.
fn upload(
    config: &FakeConfig,
    state: &Mutex<FakeState>,
    request: &Request,
    repo: &str,
    id: &str,
) -> Reply {
    let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}?state=opaque%2Fvalue");
    let mut st = state.lock().unwrap();
    match (request.method.as_str(), id) {
        ("POST", "") => {
            st.next_upload += 1;
            let id = format!("upload-{}", st.next_upload);
            st.uploads.insert(id.clone(), Vec::new());
            respond(
                202,
                &[("Location", location(&id)), ("Range", "0-0".into())],
                b"",
            )
        }
        ("PATCH", id) => {
            let Some(current) = st.uploads.get(id).map(Vec::len) else {
                return respond(404, &[], br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}"#);
            };
            let start = request
                .header("content-range")
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<usize>().ok());
            if start != Some(current) {
                return respond(416, &[], b"");
            }
            let length = request.body.len() as u64;
            let cut_at = match config.cut_once_at {
                Some(at) if !st.cut_done && st.patch_bytes + length > at => {
                    Some(at - st.patch_bytes)
                }
                _ => None,
            };
            let take = cut_at.unwrap_or(length);
            st.patch_bytes += take;
            let upload = st.uploads.get_mut(id).unwrap();
            upload.extend_from_slice(&request.body[..usize::try_from(take).unwrap()]);
            let end = upload.len().saturating_sub(1);
            if cut_at.is_some() {
                // Keep what arrived, and drop the connection unanswered.
                st.cut_done = true;
                return Reply::Close;
            }
            respond(
                202,
                &[("Location", location(id)), ("Range", format!("0-{end}"))],
                b"",
            )
        }
        ("GET", id) => match st.uploads.get(id).map(Vec::len) {
            Some(len) => respond(
                204,
                &[
                    ("Location", location(id)),
                    ("Range", format!("0-{}", len.saturating_sub(1))),
                ],
                b"",
            ),
            None => respond(404, &[], b""),
        },
        ("PUT", id) => {
            let state_ok = request.query("state").as_deref() == Some("opaque/value");
            let digest = request.query("digest").unwrap_or_default();
            let Some(mut blob) = st.uploads.remove(id) else {
                return respond(404, &[], b"");
            };
            blob.extend_from_slice(&request.body);
            let actual = Digest::of(&blob).to_string();
            if actual != digest || !state_ok {
                return respond(400, &[], br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#);
            }
            st.blobs.insert(actual.clone(), blob);
            let answered = if config.wrong_digest {
                format!("sha256:{}", "0".repeat(64))
            } else {
                actual.clone()
            };
            respond(
                201,
                &[
                    ("Location", format!("/v2/{repo}/blobs/{actual}")),
                    ("Docker-Content-Digest", answered),
                ],
                b"",
            )
        }
        _ => respond(405, &[], b""),
    }
}

/// `…/blobs/<digest>`: `HEAD` and `GET`, with `Range`, cut once if asked.
fn blob(config: &FakeConfig, state: &Mutex<FakeState>, request: &Request, digest: &str) -> Reply {
    let unknown = || {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
        respond(404, &[], body)
    };
    let mut st = state.lock().unwrap();
    let Some(blob) = st.blobs.get(digest).cloned() else {
        return unknown();
    };
    match request.method.as_str() {
        "HEAD" => Reply::Send(
            Response::new(200)
                .header("Docker-Content-Digest", digest)
                .announce(blob.len() as u64),
        ),
        "GET" => {
            let cut = config
                .cut_download_once_at
                .filter(|_| !st.download_cut_done);
            st.download_cut_done |= cut.is_some();
            if let Some(cut) = cut {
                return Reply::Send(Response::new(200).body(blob).cut_after(cut as u64));
            }
            let range = request.range().and_then(|(first, last)| {
                let first = usize::try_from(first).ok()?;
                let last = last.map_or(Some(blob.len() - 1), |l| usize::try_from(l).ok())?;
                (first <= last && last < blob.len()).then_some((first, last))
            });
            match range {
                Some((start, last)) => {
                    st.range_requests += 1;
                    let content_range = format!("bytes {start}-{last}/{}", blob.len());
                    respond(
                        206,
                        &[("Content-Range", content_range)],
                        &blob[start..=last],
                    )
                }
                _ => respond(200, &[("Docker-Content-Digest", digest.to_owned())], &blob),
            }
        }
        _ => unknown(),
    }
}

/// `…/manifests/<reference>`: `PUT` and `GET`; `None` for other methods.
fn manifest(state: &Mutex<FakeState>, request: &Request, reference: &str) -> Option<Reply> {
    let mut st = state.lock().unwrap();
    match request.method.as_str() {
        "PUT" => {
            let body = request.body.clone();
            let digest = Digest::of(&body).to_string();
            let media_type = request.header("content-type").unwrap_or("").to_owned();
            st.manifests
                .insert(reference.to_owned(), (media_type.clone(), body.clone()));
            st.manifests.insert(digest.clone(), (media_type, body));
            Some(respond(201, &[("Docker-Content-Digest", digest)], b""))
        }
        "GET" => Some(match st.manifests.get(reference) {
            Some((media_type, body)) => respond(200, &[("Content-Type", media_type.clone())], body),
            None => respond(404, &[], b""),
        }),
        _ => None,
    }
}
