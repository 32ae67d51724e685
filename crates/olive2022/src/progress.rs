//! Progress bars and status lines on standard error.
//!
//! Bars draw only on a terminal and never in `--quiet` mode; the libraries
//! report progress through small callbacks and never draw anything.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How chatty the command is.
#[derive(Debug, Clone, Copy)]
pub struct Verbosity {
    /// Only errors and final results.
    pub quiet: bool,
    /// More detail.
    pub verbose: bool,
}

impl Verbosity {
    /// Prints a status line unless quiet.
    pub fn status(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Prints a detail line in verbose mode.
    pub fn detail(&self, line: impl std::fmt::Display) {
        if self.verbose {
            eprintln!("{line}");
        }
    }

    /// A byte-counting bar with rate and ETA, labelled `label`.
    pub fn bytes_bar(&self, label: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.target());
        bar.set_style(bytes_style(false));
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A spinner with the elapsed time, labelled `label`.
    pub fn spinner(&self, label: &str) -> ProgressBar {
        let spinner = ProgressBar::with_draw_target(None, self.target());
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        spinner.set_style(style);
        spinner.set_message(label.to_owned());
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}

/// The style of a byte bar; without a known total it shows a spinner.
pub fn bytes_style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{msg:12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
    } else {
        "{msg:12} {spinner} {bytes} {binary_bytes_per_sec}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Draws a transfer (download or upload) on a byte bar; Ctrl-C cancels it.
pub struct TransferBar {
    bar: ProgressBar,
}

impl TransferBar {
    /// A bar labelled `label`.
    pub fn new(verbosity: Verbosity, label: &str) -> TransferBar {
        TransferBar {
            bar: verbosity.bytes_bar(label),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn start(&self, total: Option<u64>) {
        self.bar.reset();
        if let Some(total) = total {
            self.bar.set_length(total);
        }
        self.bar.set_style(bytes_style(total.is_some()));
    }

    fn retry(&self, attempt: u32, error: &dyn std::fmt::Display) {
        self.bar.println(format!(
            "transfer interrupted ({error}); resuming, attempt {attempt}"
        ));
    }
}

/// One trait for downloads and registry transfers (`transfer::Progress`,
/// re-exported by both crates).
impl vmnetx::fetch::Progress for TransferBar {
    fn start(&mut self, total: Option<u64>) {
        TransferBar::start(self, total);
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn retry(&mut self, attempt: u32, error: &dyn std::error::Error) {
        TransferBar::retry(self, attempt, error);
    }

    fn cancelled(&self) -> bool {
        crate::interrupt::requested()
    }
}
