//! Training the spoken-digit CNN and the string model ([`ctc`]) with libtorch (through tch).
//!
//! Kept apart from the `spoken-digits` crate on purpose: prediction and the live recogniser use
//! that crate's pure-Rust forward pass ([`spoken_digits::model::Model`]) and must not link
//! libtorch, whose loading alone costs a process about 0.45 s. Only `train` and `bench` link
//! this crate. Both crates read and write the same safetensors files.

pub mod cnn;
pub mod ctc;
pub mod train;

pub use tch::Device;

use spoken_digits::{Error, Result};

/// A libtorch result.
pub type TchResult<T> = std::result::Result<T, tch::TchError>;

/// Turns libtorch's errors into the library's (`tch::TchError` cannot convert with `?`: both
/// types are foreign here).
pub trait Tch<T> {
    fn tch(self) -> Result<T>;
}

impl<T> Tch<T> for TchResult<T> {
    fn tch(self) -> Result<T> {
        self.map_err(|e| Error::Torch(e.to_string()))
    }
}
