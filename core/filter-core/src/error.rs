use std::io;

/// Result of an [`EgressFilter`](crate::EgressFilter) operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in an engine. Every variant names the object, limit or command involved,
/// and the [`Display`](std::fmt::Display) text says what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The list cannot be applied as it is; nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A kernel or engine limit would be exceeded; nothing was changed.
    #[error("{limit} exceeded: {requested} requested, at most {max} allowed; {hint}")]
    Limit {
        /// Which limit (for example `ipset maxelem` or `available memory`).
        limit: &'static str,
        /// What the operation needed.
        requested: u64,
        /// The limit.
        max: u64,
        /// What the user can do about it.
        hint: String,
    },

    /// The kernel refused a request.
    #[error("kernel refused {operation}: {message} (error {code})")]
    Kernel {
        /// The request, with the object it named.
        operation: String,
        /// The kernel's error number (errno or a protocol-specific code).
        code: i32,
        /// The error in words.
        message: String,
    },

    /// A helper program failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to standard error (trimmed).
        stderr: String,
    },

    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A change failed, and putting the previous list back failed too: the kernel may hold
    /// parts of both lists, or none (tear the filter down and load again).
    #[error(
        "{failed}; putting the previous list back failed too ({restore}): the filter may hold \
         parts of both lists; tear it down and load again"
    )]
    RestoreFailed {
        /// Why the change failed.
        failed: Box<Error>,
        /// Why the previous list could not be put back.
        restore: Box<Error>,
    },

    /// The engine (or the way it was made) does not offer this.
    #[error("{engine} does not support {feature}; {hint}")]
    Unsupported {
        /// What was asked for.
        feature: &'static str,
        /// The engine's name.
        engine: &'static str,
        /// What to do instead.
        hint: String,
    },

    /// The operation needs a loaded list (call `load` first).
    #[error("no list is loaded; call load() first")]
    NotLoaded,

    /// `load` was called twice (use `replace` to change a loaded list).
    #[error("a list is already loaded; use replace() to change it")]
    AlreadyLoaded,
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// A request the kernel refused: what was asked, and its answer. Engines' error types carry
/// it, and it becomes [`Error::Kernel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel refused {operation}: {message} (error {code})")]
pub struct Refusal {
    /// The request, with the object it named.
    pub operation: String,
    /// The kernel's error number (errno or a protocol-specific code).
    pub code: i32,
    /// The error in words.
    pub message: String,
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Kernel {
            operation: r.operation,
            code: r.code,
            message: r.message,
        }
    }
}
