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

/// Keeps freed memory in the process instead of handing it back to the system at every free.
///
/// libtorch allocates each batch's activations and gradients afresh (megabytes each) through the
/// C allocator, whose defaults return large blocks to the kernel on free (mmap/munmap, and
/// trimming the heap top), so every batch faulted its pages in again: perf on the training step
/// showed a quarter of its time in the kernel's page-fault and unmap paths. With the blocks kept,
/// `bench train-compute` (robust recipe, one epoch, one thread) took 25.4 -> 20.1 s for the wide
/// network and 18.0 -> 11.1 s for ds; the default recipe for two epochs 38.8 -> 31.0 s of CPU,
/// the same peak memory (540 MB) and byte-identical weights. Called once the training data is
/// loaded (see `fit::train`); glibc only (elsewhere this does nothing).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Blocks up to 32 MiB (glibc's largest mmap threshold) from the heap, not mmap; freed
        // memory at the heap's top up to 512 MiB kept; the heap grown 64 MiB at a time.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 512 << 20;
        const TOP_PAD: libc::c_int = 64 << 20;
        // SAFETY: mallopt only sets allocator parameters; it is called with valid parameter
        // numbers and values, and glibc's allocator takes its lock while changing them.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
        }
    }
}

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
