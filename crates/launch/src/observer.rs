//! What the caller of a launch sees: status lines, details, and the waits
//! worth a spinner (the VM's display coming up).
//!
//! The same shape as the convert pipeline's observer: the library says what
//! happens, the caller decides how (and whether) to show it.

/// What a launch reports to its caller.
pub trait Observer {
    /// A status line: one step started or ended.
    fn status(&mut self, line: &str);
    /// A detail for the curious.
    fn detail(&mut self, line: &str);
    /// A wait of unknown length begins, labelled `label`; it lasts until
    /// the returned [`Waiting`] is finished.
    fn waiting(&mut self, label: &str) -> Box<dyn Waiting>;
}

/// One wait in progress (a spinner, on a terminal).
pub trait Waiting {
    /// The wait is over, whatever its outcome.
    fn finish(&mut self);
}

/// An observer that shows nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn status(&mut self, _line: &str) {}
    fn detail(&mut self, _line: &str) {}
    fn waiting(&mut self, _label: &str) -> Box<dyn Waiting> {
        Box::new(Silent)
    }
}

impl Waiting for Silent {
    fn finish(&mut self) {}
}
