//! Whether the page is there: the server counts its WebSockets, and the
//! launch lives until the first one has come and the last one has gone
//! for longer than a reload takes.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::browser::error::BrowserError;

/// How long the page may be away (a reload, a flaky network) before the
/// launch ends.
pub const RELOAD_GRACE: Duration = Duration::from_secs(5);

/// The WebSockets of the server, as the server updates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    /// WebSockets open now.
    pub open: usize,
    /// Whether any WebSocket was ever opened.
    pub seen: bool,
    /// Counts the sockets opened: a bridge whose number is no longer the
    /// latest has been superseded by a newer page.
    pub latest: u64,
}

/// The server's side: records sockets as they open and close.
#[derive(Debug, Clone)]
pub struct PresenceTracker {
    sender: watch::Sender<Presence>,
}

impl PresenceTracker {
    /// A tracker with no socket yet, and the receiver that waits on it.
    pub fn new() -> (PresenceTracker, watch::Receiver<Presence>) {
        let (sender, receiver) = watch::channel(Presence::default());
        (PresenceTracker { sender }, receiver)
    }

    /// Records a new socket; returns its number.
    pub fn opened(&self) -> u64 {
        let mut number = 0;
        self.sender.send_modify(|presence| {
            presence.open += 1;
            presence.seen = true;
            presence.latest += 1;
            number = presence.latest;
        });
        number
    }

    /// Records that a socket closed.
    pub fn closed(&self) {
        self.sender
            .send_modify(|presence| presence.open = presence.open.saturating_sub(1));
    }

    /// Completes once a socket newer than `number` has opened.
    pub async fn superseded(&self, number: u64) {
        let mut receiver = self.sender.subscribe();
        // An error means the tracker is gone with the server: nothing will
        // supersede this socket any more.
        if receiver
            .wait_for(|presence| presence.latest != number)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits until the page has connected (by `first_by`, else
/// [`BrowserError::NeverConnected`] naming `total_seconds`) and then
/// stayed away for `grace`.
pub async fn until_page_leaves(
    mut presence: watch::Receiver<Presence>,
    first_by: Instant,
    grace: Duration,
    total_seconds: u64,
) -> Result<(), BrowserError> {
    let first = tokio::time::timeout_at(first_by, presence.wait_for(|now| now.seen))
        .await
        .map(|seen| seen.map(|_| ()));
    match first {
        Err(_) => {
            return Err(BrowserError::NeverConnected {
                seconds: total_seconds,
            });
        }
        Ok(Err(_)) => return Ok(()),
        Ok(Ok(_)) => {}
    }
    loop {
        if presence.wait_for(|now| now.open == 0).await.is_err() {
            return Ok(());
        }
        tracing::debug!(
            grace_seconds = grace.as_secs(),
            "no page connected; waiting for a reload"
        );
        let back = tokio::time::timeout(grace, presence.wait_for(|now| now.open > 0))
            .await
            .map(|open| open.map(|_| ()));
        match back {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reload_within_the_grace_keeps_the_launch() {
        let (tracker, presence) = PresenceTracker::new();
        let grace = Duration::from_secs(5);
        let started = Instant::now();
        let waiting = tokio::spawn(until_page_leaves(
            presence,
            started + Duration::from_secs(60),
            grace,
            60,
        ));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let first = tracker.opened();
        tokio::time::sleep(Duration::from_secs(10)).await;
        // A reload: the new page comes before the old one's socket closes,
        // and supersedes it.
        let second = tracker.opened();
        tokio::time::timeout(Duration::from_millis(1), tracker.superseded(first))
            .await
            .expect("the first socket is superseded");
        tracker.closed();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiting.is_finished());
        assert!(
            tokio::time::timeout(Duration::from_secs(60), tracker.superseded(second))
                .await
                .is_err()
        );
        tracker.closed();
        waiting.await.expect("join").expect("the page left");
        // 10 + 10 + 10, 60 in the check above, then the grace.
        assert_eq!(started.elapsed(), Duration::from_secs(95));
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_that_never_comes_is_an_error() {
        let (_tracker, presence) = PresenceTracker::new();
        let started = Instant::now();
        let error = until_page_leaves(
            presence,
            started + Duration::from_secs(30),
            RELOAD_GRACE,
            30,
        )
        .await
        .expect_err("never connected");
        assert!(matches!(
            error,
            BrowserError::NeverConnected { seconds: 30 }
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
