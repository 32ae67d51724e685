//! Congestion control of the relayed connections (see [`Flow`]): smoltcp
//! has none by default, and the server's stacks send the bulk of a VNC
//! session. The stack tells a connection's [`Flow`] about every segment it
//! sends ([`Flow::on_segment`]), and the relay writes into the socket only
//! what the window allows ([`Flow::write_within`]).

use std::time::{Duration, Instant};

use smoltcp::socket::tcp;
use smoltcp::wire::TcpSeqNumber;

/// Buffers of each relayed connection. The bulk of a VNC session flows from
/// the service to the client: a large send buffer keeps a scaled window
/// open; what the client sends is small.
pub(super) const TCP_RX_BUFFER: usize = 256 << 10;
pub(super) const TCP_TX_BUFFER: usize = 1 << 20;

/// The window of a [`Flow`]: the bytes a connection may have in flight at least (and at first), the
/// step it grows by (about a segment), and how often it may grow.
///
/// The floor is what a client with the system's default UDP receive buffer
/// (about 200 KiB of packets, as wireguard-go has) takes in one burst
/// without loss; growth is in time rather than per round trip (on a LAN a
/// round trip is a fraction of a millisecond, and growing per round trip
/// would hit the next loss at once), slow enough that probing rarely costs
/// a loss, fast enough to fill a long path within seconds.
const MIN_WINDOW: usize = 96 << 10;
const WINDOW_STEP: usize = 1380;
const GROWTH_INTERVAL: Duration = Duration::from_millis(25);

/// Congestion control of one connection, on top of smoltcp (which has
/// none by default, and recovers from a loss by sending everything in
/// flight again): the bytes allowed in the socket's send queue,
/// unacknowledged or not yet sent, grow by a step every
/// [`GROWTH_INTERVAL`] while the window (not the service) limits the
/// connection, and shrink by 30 % (not below [`MIN_WINDOW`]) when a segment
/// is sent again (a loss). Without it smoltcp sends its whole window at
/// once, and a client with a small UDP receive buffer drops most of it:
/// in our tests wireguard-go as a client got 2 MiB/s instead of 40.
pub(super) struct Flow {
    /// Bytes the socket's send queue may hold.
    window: usize,
    /// The end of the highest segment sent.
    sent_end: Option<TcpSeqNumber>,
    /// A segment sent again below this belongs to a loss already counted.
    recover: Option<TcpSeqNumber>,
    /// The socket's send queue after our last write.
    queued: usize,
    /// Whether the window, not the service, limited that write: a window
    /// that is not used does not grow (a VNC server idles, then sends a
    /// whole screen at once).
    limited: bool,
    /// When the window last grew.
    last_growth: Instant,
}

impl Flow {
    /// A new connection's flow, at the floor.
    pub fn new() -> Flow {
        Flow {
            window: MIN_WINDOW,
            sent_end: None,
            recover: None,
            queued: 0,
            limited: false,
            last_growth: Instant::now(),
        }
    }

    /// A data segment the stack sends.
    pub fn on_segment(&mut self, seq: TcpSeqNumber, len: usize) {
        if len == 0 {
            return;
        }
        let end = seq + len;
        let Some(sent_end) = self.sent_end else {
            self.sent_end = Some(end);
            return;
        };
        if seq >= sent_end {
            self.sent_end = Some(end);
            return;
        }
        // Sent again. A keep-alive probe (the last byte again) is no loss.
        if len == 1 && end == sent_end {
            return;
        }
        if self.recover.is_none_or(|recover| seq >= recover) {
            self.recover = Some(sent_end);
            self.window = (self.window * 7 / 10).max(MIN_WINDOW);
        }
        if end > sent_end {
            self.sent_end = Some(end);
        }
    }

    /// Lets `write` move bytes into `socket`'s send queue up to the
    /// window (its second argument); learns from the queue before (what
    /// was acknowledged since) and after (whether the window limited the
    /// write). Returns what `write` returns: whether anything changed.
    pub fn write_within(
        &mut self,
        socket: &mut tcp::Socket<'_>,
        write: impl FnOnce(&mut tcp::Socket<'_>, usize) -> bool,
    ) -> bool {
        self.on_acked(
            self.queued.saturating_sub(socket.send_queue()),
            Instant::now(),
        );
        let changed = write(socket, self.window);
        self.queued = socket.send_queue();
        self.limited = self.queued + WINDOW_STEP >= self.window;
        changed
    }

    /// More bytes were acknowledged.
    fn on_acked(&mut self, acked: usize, now: Instant) {
        if acked > 0 && self.limited && now.duration_since(self.last_growth) >= GROWTH_INTERVAL {
            self.window = (self.window + WINDOW_STEP).min(TCP_TX_BUFFER);
            self.last_growth = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_shrinks_on_loss_and_grows_when_used() {
        let seq = |n: usize| TcpSeqNumber(0) + n;
        let mut flow = Flow::new();
        let start = Instant::now();
        for i in 0..100 {
            flow.on_segment(seq(i * 1000), 1000);
        }
        // Not limited by the window: no growth.
        flow.on_acked(50_000, start + GROWTH_INTERVAL);
        assert_eq!(flow.window, MIN_WINDOW);
        // Limited: a step per interval, not per acknowledgement.
        flow.limited = true;
        let mut now = start;
        for _ in 0..100 {
            now += GROWTH_INTERVAL;
            flow.on_acked(1000, now);
            flow.on_acked(1000, now);
        }
        assert_eq!(flow.window, MIN_WINDOW + 100 * WINDOW_STEP);
        let grown = flow.window;
        // A keep-alive probe is no loss; a retransmission is one, and what
        // is sent again of that window counts once.
        flow.on_segment(seq(99_999), 1);
        assert_eq!(flow.window, grown);
        flow.on_segment(seq(50_000), 1000);
        assert_eq!(flow.window, grown * 7 / 10);
        for i in 51..100 {
            flow.on_segment(seq(i * 1000), 1000);
        }
        assert_eq!(flow.window, grown * 7 / 10);
        // A later loss counts again, down to the floor.
        for round in 0..20 {
            let base = 100_000 + round * 10_000;
            flow.on_segment(seq(base), 1000);
            flow.on_segment(seq(base), 1000);
        }
        assert_eq!(flow.window, MIN_WINDOW);
        // Sequence numbers wrap.
        let mut flow = Flow::new();
        flow.on_segment(TcpSeqNumber(i32::MAX - 500), 1000);
        flow.on_segment(TcpSeqNumber(i32::MAX - 500) + 1000, 1000);
        assert_eq!(flow.recover, None);
    }
}
