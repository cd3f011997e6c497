//! Waveform augmentation: the original recipe's time shift, gain and noise.
//!
//! Each transform is applied with its own probability. Every draw comes from the generator the
//! caller passes, so a seeded generator makes augmentation reproducible.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Augmentation settings (the original's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Probability of each transform.
    pub p: f64,
    /// Largest circular shift, as a fraction of the clip.
    pub max_shift: f64,
    /// Gain range in dB.
    pub gain_db: (f32, f32),
    /// Signal-to-noise range in dB for additive white noise.
    pub snr_db: (f32, f32),
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig { p: 0.5, max_shift: 0.1, gain_db: (-10.0, 5.0), snr_db: (0.0, 15.0) }
    }
}

/// Augments a clip (already padded to its model length) in place.
pub fn augment<R: Rng + ?Sized>(clip: &mut [f32], cfg: &AugmentConfig, rng: &mut R) {
    if clip.is_empty() {
        return;
    }
    if rng.random_bool(cfg.p) {
        let max = (clip.len() as f64 * cfg.max_shift) as i64;
        let shift = rng.random_range(-max..=max);
        // Circular roll like torch.roll: positive moves samples later.
        let k = shift.rem_euclid(clip.len() as i64) as usize;
        clip.rotate_right(k);
    }
    if rng.random_bool(cfg.p) {
        let gain = 10f32.powf(rng.random_range(cfg.gain_db.0..=cfg.gain_db.1) / 20.0);
        clip.iter_mut().for_each(|s| *s *= gain);
    }
    if rng.random_bool(cfg.p) {
        add_noise(clip, rng.random_range(cfg.snr_db.0..=cfg.snr_db.1), rng);
    }
}

/// Adds white Gaussian noise at `snr_db` relative to the clip's mean power.
pub fn add_noise<R: Rng + ?Sized>(clip: &mut [f32], snr_db: f32, rng: &mut R) {
    let power = clip.iter().map(|s| s * s).sum::<f32>() / clip.len().max(1) as f32;
    let sigma = (power / 10f32.powf(snr_db / 10.0)).sqrt();
    for s in clip.iter_mut() {
        let n: f32 = StandardNormal.sample(rng);
        *s += sigma * n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn noise_hits_the_requested_snr() {
        let mut rng = StdRng::seed_from_u64(7);
        let clean: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let mut noisy = clean.clone();
        add_noise(&mut noisy, 10.0, &mut rng);
        let p_sig: f32 = clean.iter().map(|s| s * s).sum();
        let p_noise: f32 = noisy.iter().zip(&clean).map(|(a, b)| (a - b) * (a - b)).sum();
        let snr = 10.0 * (p_sig / p_noise).log10();
        assert!((snr - 10.0).abs() < 0.3, "snr {snr}");
    }

    #[test]
    fn seeded_augmentation_is_reproducible() {
        let clip: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.01).sin()).collect();
        let run = |seed| {
            let mut c = clip.clone();
            augment(&mut c, &AugmentConfig::default(), &mut StdRng::seed_from_u64(seed));
            c
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
