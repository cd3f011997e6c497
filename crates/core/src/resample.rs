//! Sample-rate conversion with rubato's synchronous FFT resampler (fixed ratio, high quality).

use crate::{Error, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Resamples a whole mono clip from `from` Hz to `to` Hz; the output is aligned with the input
/// (rubato trims its delay) and has `ceil(len * to / from)` samples.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| Error::Resample(format!("{from} Hz -> {to} Hz: {e}"));
    let mut resampler =
        Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Both).map_err(|e| err(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(&e))?;
    let out = resampler.process_all(&input, samples.len(), None).map_err(|e| err(&e))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_survives_48k_to_8k_aligned_within_a_sample() {
        let tone = |rate: u32, n: usize, delay: f32| -> Vec<f32> {
            (0..n)
                .map(|i| (2.0 * std::f32::consts::PI * 440.0 * (i as f32 - delay) / rate as f32).sin() * 0.5)
                .collect()
        };
        let out = resample(&tone(48_000, 48_000, 0.0), 48_000, 8_000).unwrap();
        assert_eq!(out.len(), 8_000);
        // The FFT resampler may land up to half an output sample late; never more.
        let best = [0.0f32, 0.5, -0.5]
            .iter()
            .map(|&d| {
                let expected = tone(8_000, 8_000, d);
                // Ignore the edges, where the filter sees zeros beyond the clip.
                out[200..7800]
                    .iter()
                    .zip(&expected[200..7800])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max)
            })
            .fold(f32::INFINITY, f32::min);
        assert!(best < 0.01, "max error {best}");
    }
}
