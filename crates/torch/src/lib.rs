//! Training the spoken-digit CNN and the string model ([`ctc`]) with libtorch (through tch).
//!
//! Kept apart from the `spoken-digits` crate on purpose: prediction and the live recogniser use
//! that crate's pure-Rust forward pass ([`spoken_digits::model::Model`]) and must not link
//! libtorch, whose loading alone costs a process about 0.45 s. Only `train` and `bench` link
//! this crate. Both crates read and write the same safetensors files.

pub mod cnn;
pub mod ctc;
pub mod fit;

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

/// Copies checked weights (`spoken_digits::model::read_weights`) into a var store's variables of
/// the same names.
pub(crate) fn copy_weights(vs: &tch::nn::VarStore, tensors: &spoken_digits::model::Tensors) -> Result<()> {
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, (shape, values)) in tensors {
            if let Some(var) = vars.get(name) {
                let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let tensor =
                    tch::Tensor::f_from_slice(values).and_then(|t| t.f_view(dims.as_slice())).tch()?;
                var.shallow_clone().f_copy_(&tensor).tch()?;
            }
        }
        Ok(())
    })
}

/// Writes a var store's weights (sorted by name, on the CPU) and the config beside them, each
/// atomically.
pub(crate) fn save_weights(
    vs: &tch::nn::VarStore,
    config: &spoken_digits::model::ModelConfig,
    path: &std::path::Path,
) -> Result<()> {
    let mut named: Vec<(String, tch::Tensor)> =
        vs.variables().into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    spoken_digits::atomic::write_with(path, |tmp| tch::Tensor::write_safetensors(&named, tmp).tch())?;
    spoken_digits::atomic::write_json(&spoken_digits::model::config_path(path), config)
}
