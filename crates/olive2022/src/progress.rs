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

/// Shows a pipeline's progress and status on the terminal, and asks for a
/// VM's name when the package has none and standard input is a terminal.
pub struct TerminalObserver {
    /// How chatty to be.
    pub verbosity: Verbosity,
}

impl convert::Observer for TerminalObserver {
    fn status(&mut self, line: &str) {
        self.verbosity.status(line);
    }

    fn detail(&mut self, line: &str) {
        self.verbosity.detail(line);
    }

    fn progress(&mut self, phase: convert::Phase) -> Box<dyn convert::PhaseProgress> {
        Box::new(BytesBar {
            bar: self.verbosity.bytes_bar(phase.label()),
        })
    }

    fn ask_vm_name(&mut self) -> Option<String> {
        use std::io::{BufRead, IsTerminal, Write};
        if !std::io::stdin().is_terminal() {
            return None;
        }
        loop {
            eprint!("VM image name: ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) if line.trim().is_empty() || line.trim() == "Virtual Machine" => continue,
                Ok(_) => return Some(line.trim().to_owned()),
            }
        }
    }
}

/// One phase's byte bar.
struct BytesBar {
    bar: ProgressBar,
}

impl convert::PhaseProgress for BytesBar {
    fn start(&mut self, total: Option<u64>) {
        self.bar.reset();
        if let Some(total) = total {
            self.bar.set_length(total);
        }
        self.bar.set_style(bytes_style(total.is_some()));
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn set_position(&mut self, done: u64) {
        self.bar.set_position(done);
    }

    fn retry(&mut self, attempt: u32, error: &dyn std::fmt::Display) {
        self.bar.println(format!(
            "transfer interrupted ({error}); resuming, attempt {attempt}"
        ));
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Launches report their steps and the wait for the display the same way.
impl launch::Observer for TerminalObserver {
    fn status(&mut self, line: &str) {
        self.verbosity.status(line);
    }

    fn detail(&mut self, line: &str) {
        self.verbosity.detail(line);
    }

    fn waiting(&mut self, label: &str) -> Box<dyn launch::Waiting> {
        Box::new(Spinner {
            spinner: self.verbosity.spinner(label),
        })
    }
}

/// One wait's spinner.
struct Spinner {
    spinner: ProgressBar,
}

impl launch::Waiting for Spinner {
    fn finish(&mut self) {
        self.spinner.finish_and_clear();
    }
}
