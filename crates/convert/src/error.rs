//! Why a pipeline failed: what we were doing, and the cause from the room
//! below.

use std::error::Error as StdError;

/// A boxed cause from the crate that failed.
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Why `extract` or `convert` failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A step failed; `context` says which, `source` why.
    #[error("{context}")]
    Step {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// The input or the settings cannot work.
    #[error("{0}")]
    Invalid(String),
}

impl ConvertError {
    /// Whether this failure is the caller's cancellation (Ctrl-C), at any
    /// depth of the cause chain.
    pub fn is_cancelled(&self) -> bool {
        is_cancellation(self)
    }
}

/// Whether `error` or any of its causes is a cancellation by the caller.
pub fn is_cancellation(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if matches!(error.downcast_ref(), Some(diskimage::Error::Cancelled))
            || matches!(
                error.downcast_ref(),
                Some(vmnetx::fetch::FetchError::Cancelled)
            )
            || matches!(
                error.downcast_ref(),
                Some(containerdisk::registry::RegistryError::Cancelled)
            )
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Adds what we were doing to an error from below.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl Into<String>) -> Result<T, ConvertError>;
    /// Wraps the error with a lazily built context.
    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T, ConvertError>;
}

impl<T, E: Into<Cause>> Context<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T, ConvertError> {
        self.map_err(|source| ConvertError::Step {
            context: context.into(),
            source: source.into(),
        })
    }

    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T, ConvertError> {
        self.map_err(|source| ConvertError::Step {
            context: context().into(),
            source: source.into(),
        })
    }
}
