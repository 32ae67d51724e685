//! The load a tier 2 reports to tier 1, measured from `/proc`.
//!
//! A Sinfonia tier 2 asks its cluster's Prometheus for four numbers and
//! sends them in `resources`; this machine has no Prometheus, so
//! [`ResourceSampler`] reads the same counters node-exporter reads and
//! computes what those queries mean:
//!
//! | name | meaning | from |
//! |---|---|---|
//! | [`CPU_RATIO`] | share of CPU time not idle over the last minute, 0 to 1 | `/proc/stat`, the `cpu` line |
//! | [`MEM_RATIO`] | share of memory not available, 0 to 1 | `/proc/meminfo` |
//! | [`NET_RX_RATE`] | bytes a second received, every interface but `lo`, over the last 5 minutes | `/proc/net/dev` |
//! | [`NET_TX_RATE`] | the same, sent | `/proc/net/dev` |
//!
//! Rates need two samples: the sampler keeps the samples of the last
//! [`NET_WINDOW`] and compares the newest with the oldest one inside each
//! window (a measure taken seconds after the start covers those seconds).
//! A number that cannot be measured yet is left out, as Sinfonia leaves out
//! a query that fails.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// `resources` key: CPU busy ratio (0 to 1).
pub const CPU_RATIO: &str = "cpu_ratio";
/// `resources` key: memory in use ratio (0 to 1).
pub const MEM_RATIO: &str = "mem_ratio";
/// `resources` key: bytes a second received (not counting loopback).
pub const NET_RX_RATE: &str = "net_rx_rate";
/// `resources` key: bytes a second sent (not counting loopback).
pub const NET_TX_RATE: &str = "net_tx_rate";
/// `resources` key (ours): how many more VMs this cloudlet would start.
pub const VM_SLOTS_FREE: &str = "vm_slots_free";

/// The window of [`CPU_RATIO`] (Prometheus `rate(…[1m])`).
pub const CPU_WINDOW: Duration = Duration::from_secs(60);
/// The window of the network rates (Prometheus `…:rate5m`).
pub const NET_WINDOW: Duration = Duration::from_secs(300);

/// The counters read at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When.
    pub at: Instant,
    /// CPU time not idle, in ticks (user, nice, system, iowait, irq,
    /// softirq, steal: node-exporter's every mode but `idle`).
    pub cpu_busy: u64,
    /// CPU time in total, in ticks.
    pub cpu_total: u64,
    /// Bytes received by every interface but `lo`.
    pub rx_bytes: u64,
    /// Bytes sent by every interface but `lo`.
    pub tx_bytes: u64,
}

/// The samples of the last [`NET_WINDOW`], and the measures from them.
#[derive(Debug, Default)]
pub struct ResourceSampler {
    samples: VecDeque<Sample>,
}

impl ResourceSampler {
    /// A sampler with no sample yet.
    pub fn new() -> ResourceSampler {
        ResourceSampler::default()
    }

    /// Reads `/proc` now and keeps the sample (nothing is kept when a file
    /// cannot be read).
    pub fn sample(&mut self) {
        let stat = std::fs::read_to_string("/proc/stat");
        let dev = std::fs::read_to_string("/proc/net/dev");
        let (Ok(stat), Ok(dev)) = (stat, dev) else {
            return;
        };
        if let Some((cpu_busy, cpu_total)) = parse_cpu(&stat) {
            let (rx_bytes, tx_bytes) = parse_net_dev(&dev);
            self.push(Sample {
                at: Instant::now(),
                cpu_busy,
                cpu_total,
                rx_bytes,
                tx_bytes,
            });
        }
    }

    /// Keeps `sample`, forgetting those older than [`NET_WINDOW`] before it.
    pub fn push(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while self
            .samples
            .front()
            .is_some_and(|old| sample.at.duration_since(old.at) > NET_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Samples now, then the measures: the ratios and rates that can be
    /// computed (memory from `/proc/meminfo` read now).
    pub fn measure(&mut self) -> BTreeMap<String, f64> {
        self.sample();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        self.measures(parse_mem_ratio(&meminfo))
    }

    /// The measures from the samples kept, with `mem_ratio` as given.
    pub fn measures(&self, mem_ratio: Option<f64>) -> BTreeMap<String, f64> {
        let mut measures = BTreeMap::new();
        let Some(newest) = self.samples.back() else {
            return measures;
        };
        if let Some(oldest) = self.oldest_within(newest, CPU_WINDOW) {
            let total = newest.cpu_total.saturating_sub(oldest.cpu_total);
            let busy = newest.cpu_busy.saturating_sub(oldest.cpu_busy);
            if total > 0 {
                measures.insert(CPU_RATIO.into(), (busy as f64 / total as f64).min(1.0));
            }
        }
        if let Some(oldest) = self.oldest_within(newest, NET_WINDOW) {
            let seconds = newest.at.duration_since(oldest.at).as_secs_f64();
            // A counter that went back (an interface removed) is no traffic.
            let rate = |new: u64, old: u64| new.saturating_sub(old) as f64 / seconds;
            measures.insert(NET_RX_RATE.into(), rate(newest.rx_bytes, oldest.rx_bytes));
            measures.insert(NET_TX_RATE.into(), rate(newest.tx_bytes, oldest.tx_bytes));
        }
        if let Some(ratio) = mem_ratio {
            measures.insert(MEM_RATIO.into(), ratio);
        }
        measures
    }

    /// The oldest sample at most `window` before `newest`, if it is
    /// another moment than `newest`'s.
    fn oldest_within(&self, newest: &Sample, window: Duration) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|old| newest.at.duration_since(old.at) <= window)
            .filter(|old| old.at < newest.at)
    }
}

/// The `cpu` line of `/proc/stat`: (busy, total) ticks. The fields are
/// user, nice, system, idle, iowait, irq, softirq, steal, then guest times
/// already counted in user and nice (so left out).
pub fn parse_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let idle = *fields.get(3)?;
    let total: u64 = fields.iter().sum();
    Some((total - idle, total))
}

/// `/proc/net/dev`: bytes (received, sent) summed over every interface
/// but `lo`.
pub fn parse_net_dev(dev: &str) -> (u64, u64) {
    let mut sums = (0u64, 0u64);
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|field| field.parse().ok())
            .collect();
        // Received: bytes packets errs drop fifo frame compressed
        // multicast; then sent: bytes …
        if let (Some(rx), Some(tx)) = (counters.first(), counters.get(8)) {
            sums.0 = sums.0.saturating_add(*rx);
            sums.1 = sums.1.saturating_add(*tx);
        }
    }
    sums
}

/// `1 - MemAvailable / MemTotal` from `/proc/meminfo`.
pub fn parse_mem_ratio(meminfo: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        let line = meminfo.lines().find(|line| line.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0.0).then(|| (1.0 - available / total).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const STAT: &str = "cpu  100 10 50 800 20 5 5 10 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
    const DEV: &str = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
        lo: 5000 10 0 0 0 0 0 0 5000 10 0 0 0 0 0 0\n\
        eth0: 1000 4 0 0 0 0 0 0 300 2 0 0 0 0 0 0\n\
        wg0: 24 1 0 0 0 0 0 0 76 1 0 0 0 0 0 0\n";

    #[test]
    fn proc_files_are_read_as_node_exporter_reads_them() {
        assert_eq!(parse_cpu(STAT), Some((200, 1000)));
        assert_eq!(parse_net_dev(DEV), (1024, 376));
        let meminfo = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n";
        assert_eq!(parse_mem_ratio(meminfo), Some(0.75));
        assert_eq!(parse_mem_ratio(""), None);
    }

    #[test]
    fn rates_compare_the_oldest_sample_inside_each_window() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let sample = |secs, busy, total, bytes| Sample {
            at: at(secs),
            cpu_busy: busy,
            cpu_total: total,
            rx_bytes: bytes,
            tx_bytes: bytes / 2,
        };
        let mut sampler = ResourceSampler::new();
        sampler.push(sample(0, 0, 0, 0));
        assert!(sampler.measures(None).is_empty(), "one sample, no rate");
        sampler.push(sample(50, 100, 400, 3000));
        sampler.push(sample(100, 300, 800, 10_000));
        let measures = sampler.measures(Some(0.5));
        // CPU: since t=50, the oldest sample within the minute.
        assert_eq!(measures[CPU_RATIO], 0.5);
        // Network: since t=0.
        assert_eq!(measures[NET_RX_RATE], 100.0);
        assert_eq!(measures[NET_TX_RATE], 50.0);
        assert_eq!(measures[MEM_RATIO], 0.5);
        sampler.push(sample(400, 400, 900, 10_000));
        assert_eq!(sampler.samples.len(), 2, "older than 5 minutes forgotten");
    }
}
