//! Docker's credential-helper protocol, the `get` half: runs
//! `docker-credential-NAME get` with the server URL on standard input and
//! reads `{"ServerURL": …, "Username": …, "Secret": …}` from standard output.
//!
//! The helper is an external program (often talking to a keyring or a GPG
//! agent), so it is bounded: [`HELPER_TIMEOUT`] to answer, [`HELPER_OUTPUT_MAX`]
//! bytes of output. Its answer is a secret: it is never logged, and never
//! repeated in an error (only the output of a *failed* helper, which is its
//! error message, is quoted).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::auth::Credentials;

/// The longest a credential helper may take to answer.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most output read from a credential helper (each stream).
pub const HELPER_OUTPUT_MAX: u64 = 64 << 10;

/// The program prefix of Docker's credential helpers.
pub const HELPER_PREFIX: &str = "docker-credential-";

/// What a helper prints when it holds nothing for the server (exit status 1);
/// the text is the protocol's (`credentials.ErrCredentialsNotFound`).
const NOT_FOUND: &str = "credentials not found in native keychain";

/// A credential helper that could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The helper's name would make another program's path.
    #[error("invalid credential helper name {name:?} in {config}")]
    InvalidName {
        /// The name in the config file.
        name: String,
        /// The config file that names it.
        config: PathBuf,
    },
    /// The helper is not installed (not on `PATH`).
    #[error(
        "credential helper {program} (named in {config}) is not installed or not on PATH: {source}"
    )]
    Missing {
        /// `docker-credential-NAME`.
        program: String,
        /// The config file that names it.
        config: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The helper ran and failed.
    #[error(
        "credential helper {program} (named in {config}) failed for {registry} ({status}){}",
        detail(output)
    )]
    Failed {
        /// `docker-credential-NAME`.
        program: String,
        /// The config file that names it.
        config: PathBuf,
        /// The registry asked for.
        registry: String,
        /// Its exit status.
        status: String,
        /// The start of its error output.
        output: String,
    },
    /// The helper did not answer within [`HELPER_TIMEOUT`].
    #[error("credential helper {program} (named in {config}) did not answer for {registry} within {} s", timeout.as_secs())]
    Timeout {
        /// `docker-credential-NAME`.
        program: String,
        /// The config file that names it.
        config: PathBuf,
        /// The registry asked for.
        registry: String,
        /// The time it had.
        timeout: Duration,
    },
    /// The helper answered something that is not the protocol's JSON (its
    /// output is not repeated: it may hold the secret).
    #[error(
        "credential helper {program} (named in {config}) answered for {registry} with {reason}"
    )]
    BadAnswer {
        /// `docker-credential-NAME`.
        program: String,
        /// The config file that names it.
        config: PathBuf,
        /// The registry asked for.
        registry: String,
        /// What is wrong with the answer.
        reason: &'static str,
    },
}

fn detail(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

/// One helper to ask: its name (`NAME` of `docker-credential-NAME`), the
/// config file naming it, and extra environment for it.
#[derive(Debug, Clone)]
pub struct Helper<'a> {
    /// The name, as in `credHelpers` or `credsStore`.
    pub name: &'a str,
    /// The config file that names it.
    pub config: &'a std::path::Path,
    /// Variables added to the inherited environment.
    pub env: &'a [(OsString, OsString)],
}

impl Helper<'_> {
    /// `docker-credential-NAME`.
    pub fn program(&self) -> String {
        format!("{HELPER_PREFIX}{}", self.name)
    }

    /// Asks the helper for the credentials of `server_url` (reported as
    /// `registry`); `None` when it holds none.
    pub fn get(
        &self,
        server_url: &str,
        registry: &str,
    ) -> Result<Option<Credentials>, HelperError> {
        let valid = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !self.name.starts_with('.');
        if !valid {
            return Err(HelperError::InvalidName {
                name: self.name.to_owned(),
                config: self.config.to_owned(),
            });
        }
        let started = Instant::now();
        let result = self.run(server_url, registry);
        let outcome = match &result {
            Ok(Some(_)) => "found",
            Ok(None) => "not found",
            Err(_) => "failed",
        };
        tracing::info!(
            helper = %self.program(),
            registry,
            outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "credential helper asked"
        );
        result
    }

    fn run(&self, server_url: &str, registry: &str) -> Result<Option<Credentials>, HelperError> {
        let program = self.program();
        let mut child = Command::new(&program)
            .arg("get")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HelperError::Missing {
                program: program.clone(),
                config: self.config.to_owned(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading its input is judged by
            // its answer, not by this write.
            let _ = stdin.write_all(server_url.as_bytes());
        }
        let stdout = read_bounded(child.stdout.take());
        let stderr = read_bounded(child.stderr.take());
        let deadline = Instant::now() + HELPER_TIMEOUT;
        let timeout = || HelperError::Timeout {
            program: program.clone(),
            config: self.config.to_owned(),
            registry: registry.to_owned(),
            timeout: HELPER_TIMEOUT,
        };
        let Some(status) = wait_until(&mut child, deadline) else {
            return Err(timeout());
        };
        // A helper's own children (a GPG agent) may hold the pipes open:
        // what the helper wrote is there by now, or never comes.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let stdout = stdout.recv_timeout(remaining).map_err(|_| timeout())?;
        let stderr = stderr
            .recv_timeout(Duration::from_millis(200))
            .ok()
            .and_then(Result::ok)
            .map(|(bytes, _)| bytes)
            .unwrap_or_default();
        let bad_answer = |reason| HelperError::BadAnswer {
            program: program.clone(),
            config: self.config.to_owned(),
            registry: registry.to_owned(),
            reason,
        };
        let (stdout, truncated) = stdout.map_err(|_| bad_answer("output that cannot be read"))?;
        if !status.success() {
            let said = String::from_utf8_lossy(&stdout);
            if said.trim() == NOT_FOUND {
                return Ok(None);
            }
            let text = if said.trim().is_empty() {
                String::from_utf8_lossy(&stderr).into_owned()
            } else {
                said.into_owned()
            };
            return Err(HelperError::Failed {
                program,
                config: self.config.to_owned(),
                registry: registry.to_owned(),
                status: status.to_string(),
                output: shorten(&text),
            });
        }
        if truncated {
            return Err(bad_answer("more output than the protocol allows"));
        }
        parse_answer(&stdout).map_err(bad_answer)
    }
}

/// The credentials of a helper's JSON answer.
fn parse_answer(stdout: &[u8]) -> Result<Option<Credentials>, &'static str> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        #[serde(default)]
        username: String,
        #[serde(default)]
        secret: String,
    }
    let answer: Answer =
        serde_json::from_slice(stdout).map_err(|_| "something that is not the protocol's JSON")?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    if answer.username.is_empty() {
        return Err("a secret without a user name");
    }
    Ok(Some(Credentials::new(answer.username, answer.secret)))
}

type Output = std::io::Result<(Vec<u8>, bool)>;

/// Reads up to [`HELPER_OUTPUT_MAX`] bytes of `stream` on a thread; the bool
/// says whether there was more.
fn read_bounded(stream: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Output> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = match stream {
            None => Ok((bytes, false)),
            Some(stream) => {
                let mut limited = stream.take(HELPER_OUTPUT_MAX + 1);
                limited.read_to_end(&mut bytes).map(|_| {
                    let truncated = bytes.len() as u64 > HELPER_OUTPUT_MAX;
                    bytes.truncate(HELPER_OUTPUT_MAX as usize);
                    // Drain the rest so that the helper is not blocked on a
                    // full pipe before it exits.
                    let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
                    (bytes, truncated)
                })
            }
        };
        let _ = sender.send(result);
    });
    receiver
}

/// Waits for `child` until `deadline`; kills it (and reaps it) past that.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The start of a helper's error output, on one line.
fn shorten(text: &str) -> String {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_parse() {
        let found = parse_answer(br#"{"ServerURL":"r","Username":"u","Secret":"s"}"#).unwrap();
        let found = found.unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("u", "s")
        );
        assert!(
            parse_answer(br#"{"ServerURL":"r","Username":"","Secret":""}"#)
                .unwrap()
                .is_none()
        );
        assert!(parse_answer(br#"{"Secret":"s"}"#).is_err());
        assert!(parse_answer(b"not json").is_err());
    }
}
