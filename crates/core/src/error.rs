//! The library's error type. Binaries wrap it with `anyhow` and add the offending path.

use std::path::PathBuf;

/// Everything that can go wrong in the library, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable audio file: {reason}")]
    Audio { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An option's value out of its range, said with the option's name
    /// ("--aug-prob must be in [0, 1]").
    #[error("{0}")]
    Usage(String),
    #[error("resampling failed: {0}")]
    Resample(String),
    /// A live input (device, file or pipe) was lost or failed, said as the source says it.
    #[error("{0}")]
    Input(String),
    #[error("plotting: {0}")]
    Plot(String),
    /// A libtorch error, as text: holding `tch::TchError` itself would make every binary that
    /// prints an error link libtorch, prediction included.
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shorthand used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn audio(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Audio { path: path.into(), reason: reason.into() }
    }
    pub fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Model { path: path.into(), reason: reason.into() }
    }
}
