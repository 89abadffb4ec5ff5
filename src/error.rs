//! Typed errors of the library. Every variant names the offending value so that the CLI can print
//! a single line and exit with code 2; the binary wraps these in `anyhow` for the cause chain.

use thiserror::Error;

/// Everything the engine can refuse or fail at.
#[derive(Debug, Error)]
pub enum Error {
    /// A size or option is out of its valid range (`s = 0`, `n = 0`, `s > m·d`, ...).
    #[error("invalid {name} = {value}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
    /// Two buffers that must agree in length do not.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Data contains NaN or infinity.
    #[error("non-finite value {value} in {what} at index {index}")]
    NonFinite {
        what: &'static str,
        index: usize,
        value: f32,
    },
    /// The index space `m·d` does not fit the 32-bit indices the engine uses.
    #[error(
        "model too large: m·d = {0} weights; the engine indexes fewer than 2^32 − 1 = 4294967295"
    )]
    TooLarge(u128),
    /// No GPU adapter could be opened; the text lists what was found.
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU reported an error (validation, out of memory, lost device).
    #[error("GPU error in {what}: {message}")]
    Gpu { what: &'static str, message: String },
    /// A malformed input file (IDX, image), with the path and what is wrong.
    #[error("{path}: {why}")]
    Format { path: String, why: String },
    /// An I/O failure, with the path it concerns (the cause follows in the error chain).
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Library result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `Ok` when `got == expected`, else [`Error::ShapeMismatch`].
    pub fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
        if expected == got {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what,
                expected,
                got,
            })
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(name: &'static str, value: impl ToString, why: impl ToString) -> Self {
        Error::Invalid {
            name,
            value: value.to_string(),
            why: why.to_string(),
        }
    }
}
