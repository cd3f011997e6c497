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
    /// Speed perturbation range (playback-rate factor; changes tempo, pitch and formants
    /// together, the cheapest way to hear other vocal tracts). `(1, 1)`: off.
    #[serde(default = "no_range")]
    pub speed: (f32, f32),
    /// Vocal tract length perturbation range: the mel filterbank's frequencies are scaled by a
    /// factor drawn from it (formants move, pitch and tempo stay; Jaitly and Hinton 2013).
    /// `(1, 1)`: off.
    #[serde(default = "no_range")]
    pub vtlp: (f32, f32),
    /// Random equalisation (microphone and room variety): three peaking filters at random
    /// frequencies, each with a gain drawn from `-eq_db..=eq_db` dB. 0: off.
    #[serde(default)]
    pub eq_db: f32,
    /// Random treble cut (a microphone that rolls off the highs): with this probability, a
    /// high-shelf filter from a corner between 1/8 and 3/8 of the sample rate (1 to 3 kHz at
    /// 8 kHz) with a gain drawn from `-treble_cut_db..=0` dB. 0: off.
    #[serde(default)]
    pub treble_cut: f64,
    /// The deepest treble cut, in dB (positive).
    #[serde(default)]
    pub treble_cut_db: f32,
    /// Random lead-in: up to this fraction of the clip of silence before the word, after the
    /// front end's trimming (which undoes a shift of the waveform), drawn with probability `p`.
    /// 0: off.
    #[serde(default)]
    pub lead_in: f64,
    /// Random end cut: up to this fraction of the (trimmed) word cut from its end, drawn with
    /// probability `p`. 0: off.
    #[serde(default)]
    pub end_cut: f32,
    /// Recording conditions (the suite's kinds, [`crate::conditions::augment`]): with this
    /// probability an augmented example also gets one of long, click, hum, dc, pink, babble
    /// (three other training clips), reverb, clip, phone or quiet, at a random strength. 0: off.
    #[serde(default)]
    pub conditions: f64,
    /// Conditions drawn more (or less) often than the others, which weigh 1 (empty: all alike).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub condition_weights: Vec<(crate::conditions::Condition, f64)>,
    /// SpecAugment on the feature map: up to this many time masks of up to `time_mask_width`
    /// frames, and frequency masks of up to `freq_mask_width` coefficients. 0: off.
    #[serde(default)]
    pub time_masks: usize,
    #[serde(default)]
    pub time_mask_width: usize,
    #[serde(default)]
    pub freq_masks: usize,
    #[serde(default)]
    pub freq_mask_width: usize,
}

/// Widest SpecAugment time mask (frames) when masks are asked for without a width.
pub const TIME_MASK_WIDTH: usize = 6;
/// Widest SpecAugment frequency mask (rows) when masks are asked for without a width.
pub const FREQ_MASK_WIDTH: usize = 2;

/// A factor range that changes nothing: `(1, 1)` (serde's default for ranges added later).
pub(crate) fn no_range() -> (f32, f32) {
    (1.0, 1.0)
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            p: 0.5,
            max_shift: 0.1,
            gain_db: (-10.0, 5.0),
            snr_db: (0.0, 15.0),
            speed: no_range(),
            vtlp: no_range(),
            eq_db: 0.0,
            treble_cut: 0.0,
            treble_cut_db: 0.0,
            lead_in: 0.0,
            end_cut: 0.0,
            conditions: 0.0,
            condition_weights: Vec::new(),
            time_masks: 0,
            time_mask_width: 0,
            freq_masks: 0,
            freq_mask_width: 0,
        }
    }
}

/// Augments a clip (already padded to its model length) in place.
pub fn augment<R: Rng + ?Sized>(clip: &mut [f32], cfg: &AugmentConfig, rng: &mut R) {
    if clip.is_empty() {
        return;
    }
    if cfg.speed.0 < cfg.speed.1 && rng.random_bool(cfg.p) {
        change_speed(clip, rng.random_range(cfg.speed.0..=cfg.speed.1));
    }
    if rng.random_bool(cfg.p) {
        let max = (clip.len() as f64 * cfg.max_shift) as i64;
        let shift = rng.random_range(-max..=max);
        // Circular roll like torch.roll: positive moves samples later.
        let k = shift.rem_euclid(clip.len() as i64) as usize;
        clip.rotate_right(k);
    }
    if cfg.eq_db > 0.0 && rng.random_bool(cfg.p) {
        for _ in 0..3 {
            // Centre between 1/50 and 9/20 of the sample rate (160 Hz to 3.6 kHz at 8 kHz).
            let centre = (rng.random_range(0.02f32.ln()..=0.45f32.ln())).exp();
            let q = rng.random_range(0.7..=2.0);
            peaking_filter(clip, centre, q, rng.random_range(-cfg.eq_db..=cfg.eq_db));
        }
    }
    if cfg.treble_cut > 0.0 && rng.random_bool(cfg.treble_cut) {
        let corner = rng.random_range(0.125f32.ln()..=0.375f32.ln()).exp();
        high_shelf(clip, corner, -rng.random_range(0.0..=cfg.treble_cut_db));
    }
    if rng.random_bool(cfg.p) {
        let gain = 10f32.powf(rng.random_range(cfg.gain_db.0..=cfg.gain_db.1) / 20.0);
        clip.iter_mut().for_each(|s| *s *= gain);
    }
    if rng.random_bool(cfg.p) {
        add_noise(clip, rng.random_range(cfg.snr_db.0..=cfg.snr_db.1), rng);
    }
}

/// Samples of silence to put before an augmented clip of `clip_samples` after trimming: 0, or
/// (with probability `p`) up to `lead_in` of the clip. Draws nothing when the lead-in is off.
pub fn lead_in<R: Rng + ?Sized>(clip_samples: usize, cfg: &AugmentConfig, rng: &mut R) -> usize {
    if cfg.lead_in <= 0.0 || !rng.random_bool(cfg.p) {
        return 0;
    }
    rng.random_range(0..=(clip_samples as f64 * cfg.lead_in.min(1.0)) as usize)
}

/// The fraction of the trimmed word to keep: 1, or (with probability `p`) down to
/// `1 - end_cut`. Draws nothing when the end cut is off.
pub fn keep_fraction<R: Rng + ?Sized>(cfg: &AugmentConfig, rng: &mut R) -> f32 {
    if cfg.end_cut <= 0.0 || !rng.random_bool(cfg.p) {
        return 1.0;
    }
    1.0 - rng.random_range(0.0..=cfg.end_cut.min(1.0))
}

/// Plays the clip `factor` times faster (linear interpolation; the end is zero-filled or cut).
pub fn change_speed(clip: &mut [f32], factor: f32) {
    let src = clip.to_vec();
    for (i, out) in clip.iter_mut().enumerate() {
        let pos = i as f32 * factor;
        let j = pos as usize;
        let frac = pos - j as f32;
        *out = match (src.get(j), src.get(j + 1)) {
            (Some(a), Some(b)) => a + (b - a) * frac,
            (Some(a), None) => *a,
            _ => 0.0,
        };
    }
}

/// Filters the clip in place with a peaking equaliser (RBJ's audio EQ cookbook): `gain_db` at
/// `centre` (a fraction of the sample rate), bandwidth set by `q`.
pub fn peaking_filter(clip: &mut [f32], centre: f32, q: f32, gain_db: f32) {
    let a = 10f32.powf(gain_db / 40.0);
    let w0 = 2.0 * std::f32::consts::PI * centre;
    let alpha = w0.sin() / (2.0 * q);
    let a0 = 1.0 + alpha / a;
    // b1 and a1 are the same coefficient.
    let mid = -2.0 * w0.cos() / a0;
    let (b0, b2) = ((1.0 + alpha * a) / a0, (1.0 - alpha * a) / a0);
    biquad(clip, [b0, mid, b2], [mid, (1.0 - alpha / a) / a0]);
}

/// Filters the clip in place with a high shelf (RBJ's audio EQ cookbook, slope 1): `gain_db`
/// above `corner` (a fraction of the sample rate), 0 dB well below it.
pub fn high_shelf(clip: &mut [f32], corner: f32, gain_db: f32) {
    let a = 10f32.powf(gain_db / 40.0);
    let w0 = 2.0 * std::f32::consts::PI * corner;
    let (cos, beta) = (w0.cos(), a.sqrt() * w0.sin() * std::f32::consts::FRAC_1_SQRT_2);
    let a0 = (a + 1.0) - (a - 1.0) * cos + 2.0 * beta;
    let b = [
        a * ((a + 1.0) + (a - 1.0) * cos + 2.0 * beta) / a0,
        -2.0 * a * ((a - 1.0) + (a + 1.0) * cos) / a0,
        a * ((a + 1.0) + (a - 1.0) * cos - 2.0 * beta) / a0,
    ];
    let a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cos) / a0;
    biquad(clip, b, [a1, ((a + 1.0) - (a - 1.0) * cos - 2.0 * beta) / a0]);
}

/// One biquad section, coefficients divided by a0: y = b0 x + b1 x1 + b2 x2 - a1 y1 - a2 y2.
fn biquad(clip: &mut [f32], [b0, b1, b2]: [f32; 3], [a1, a2]: [f32; 2]) {
    let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
    for s in clip.iter_mut() {
        let y = b0 * *s + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        (x2, x1, y2, y1) = (x1, *s, y1, y);
        *s = y;
    }
}

/// SpecAugment masks on an `n_rows x n_cols` feature map (rows: coefficients, columns: frames),
/// setting masked values to `fill`.
pub fn mask_features<R: Rng + ?Sized>(
    features: &mut [f32],
    n_rows: usize,
    cfg: &AugmentConfig,
    fill: f32,
    rng: &mut R,
) {
    let n_cols = features.len() / n_rows.max(1);
    for _ in 0..cfg.time_masks {
        let w = rng.random_range(0..=cfg.time_mask_width.min(n_cols));
        let t0 = rng.random_range(0..=n_cols - w);
        for row in features.chunks_exact_mut(n_cols) {
            row[t0..t0 + w].fill(fill);
        }
    }
    for _ in 0..cfg.freq_masks {
        let h = rng.random_range(0..=cfg.freq_mask_width.min(n_rows));
        let f0 = rng.random_range(0..=n_rows - h);
        features[f0 * n_cols..(f0 + h) * n_cols].fill(fill);
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
    fn peaking_filter_boosts_its_band_only() {
        // A tone at the centre gains gain_db; one far from it keeps its level.
        let level = |freq: f32, gain_db: f32| {
            let mut c: Vec<f32> =
                (0..8000).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * freq).sin()).collect();
            peaking_filter(&mut c, 0.1, 1.0, gain_db);
            let rms = (c[4000..].iter().map(|s| s * s).sum::<f32>() / 4000.0).sqrt();
            20.0 * (rms * 2f32.sqrt()).log10()
        };
        assert!((level(0.1, 6.0) - 6.0).abs() < 0.1, "{}", level(0.1, 6.0));
        assert!((level(0.1, -6.0) + 6.0).abs() < 0.1, "{}", level(0.1, -6.0));
        assert!(level(0.4, 6.0).abs() < 0.5, "{}", level(0.4, 6.0));
    }

    #[test]
    fn high_shelf_cuts_the_highs_only() {
        let level = |freq: f32| {
            let mut c: Vec<f32> =
                (0..8000).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * freq).sin()).collect();
            high_shelf(&mut c, 0.25, -20.0);
            let rms = (c[4000..].iter().map(|s| s * s).sum::<f32>() / 4000.0).sqrt();
            20.0 * (rms * 2f32.sqrt()).log10()
        };
        assert!(level(0.02).abs() < 0.5, "{}", level(0.02));
        // Half the gain at the corner, the whole gain near Nyquist.
        assert!((level(0.25) + 10.0).abs() < 0.5, "{}", level(0.25));
        assert!((level(0.48) + 20.0).abs() < 1.0, "{}", level(0.48));
    }

    #[test]
    fn a_treble_cut_quietens_the_highs_only_when_drawn() {
        let tone = |freq: f32| -> Vec<f32> {
            (0..8000).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * freq).sin()).collect()
        };
        let power = |c: &[f32]| c[4000..].iter().map(|s| s * s).sum::<f32>();
        // Every other transform off (p = 0), the treble cut always on.
        let cfg = AugmentConfig { p: 0.0, treble_cut: 1.0, treble_cut_db: 30.0, ..Default::default() };
        let mut rng = StdRng::seed_from_u64(9);
        let (mut low, mut high) = (tone(0.02), tone(0.48));
        augment(&mut low, &cfg, &mut rng);
        augment(&mut high, &cfg, &mut rng);
        assert!((power(&low) / power(&tone(0.02)) - 1.0).abs() < 0.1);
        assert!(power(&high) < power(&tone(0.48)));
        let off = AugmentConfig { p: 0.0, ..Default::default() };
        let mut same = tone(0.48);
        augment(&mut same, &off, &mut rng);
        assert_eq!(same, tone(0.48));
    }

    #[test]
    fn speed_and_masks() {
        let mut c: Vec<f32> = (0..10).map(|i| i as f32).collect();
        change_speed(&mut c, 2.0);
        assert_eq!(&c[..5], &[0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(&c[5..], &[0.0; 5]);
        let cfg = AugmentConfig {
            time_masks: 1,
            time_mask_width: 5,
            freq_masks: 1,
            freq_mask_width: 2,
            ..Default::default()
        };
        let mut f = vec![1.0f32; 13 * 63];
        mask_features(&mut f, 13, &cfg, 0.0, &mut StdRng::seed_from_u64(3));
        let zeros = f.iter().filter(|v| **v == 0.0).count();
        assert!(zeros <= 5 * 13 + 2 * 63);
    }

    #[test]
    fn lead_in_and_end_cut_draws_stay_in_range() {
        let cfg = AugmentConfig { lead_in: 0.1, p: 1.0, ..Default::default() };
        let mut rng = StdRng::seed_from_u64(5);
        let draws: Vec<usize> = (0..200).map(|_| lead_in(8000, &cfg, &mut rng)).collect();
        assert!(draws.iter().all(|&d| d <= 800));
        assert!(draws.iter().any(|&d| d > 700) && draws.iter().any(|&d| d < 100));
        let off = AugmentConfig::default();
        assert_eq!(lead_in(8000, &off, &mut rng), 0);
        let cut = AugmentConfig { end_cut: 0.3, p: 1.0, ..Default::default() };
        let keeps: Vec<f32> = (0..200).map(|_| keep_fraction(&cut, &mut rng)).collect();
        assert!(keeps.iter().all(|&k| (0.7..=1.0).contains(&k)));
        assert!(keeps.iter().any(|&k| k < 0.75) && keeps.iter().any(|&k| k > 0.95));
        assert_eq!(keep_fraction(&off, &mut rng), 1.0);
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
