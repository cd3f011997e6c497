//! The condition suite: recordings as people make them, made from clean clips.
//!
//! Each [`Condition`] turns a clean clip at the front end's rate into what a real recording of
//! the same word might hold (a long window of room noise, a click before a second of silence,
//! mains hum, DC offset, pink noise, other voices, a room's echo, clipping, a telephone line,
//! a quiet microphone), deterministically: every draw comes from a generator seeded by the run's
//! seed, the condition and the file's name ([`file_seed`]). [`evaluate`] scores a model on each.
//!
//! Levels are set against the word's *speech level* ([`speech_rms`]): the RMS over the 16 ms
//! frames within [`ACTIVE_DB`] of the clip's loudest frame, so the silence around a word does not
//! lower it. 0 dBFS is an RMS of 1.0 (full-scale square wave). Every condition's output is what
//! a 16-bit file would hold: clamped to full scale and rounded to 16 bits.

use crate::dataset::Recording;
use crate::metrics::Scores;
use crate::model::{Model, argmax};
use crate::{Error, Result, audio};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Frames within this many dB of the loudest 16 ms frame count as speech for [`speech_rms`].
pub const ACTIVE_DB: f32 = 30.0;
/// `long`: the window the word is placed in (s) and how far below the word the room noise is.
pub const LONG_SECONDS: f32 = 3.0;
pub const LONG_NOISE_DB: f32 = 30.0;
/// `long`'s room noise: pink noise through a first-order low-pass at this corner (Hz), so that
/// above it the spectrum falls by 9 dB per octave: the rumble of a fan or a building, little
/// hiss.
pub const ROOM_NOISE_CORNER_HZ: f32 = 500.0;
/// `click`: a full-scale pulse this long (s), then silence drawn from this range (s).
pub const CLICK_SECONDS: f32 = 0.002;
pub const CLICK_SILENCE_SECONDS: (f32, f32) = (0.5, 1.5);
/// `hum`: mains at 50 or 60 Hz, this many harmonics above the fundamental, this far below
/// the word.
pub const HUM_HARMONICS: usize = 3;
pub const HUM_DB: f32 = 20.0;
/// `dc`: the offset, as a fraction of full scale.
pub const DC_OFFSET: f32 = 0.2;
/// `pink` and `babble`: signal-to-noise ratio (dB, speech level to noise level).
pub const NOISE_SNR_DB: f32 = 10.0;
/// `babble`: how many other speakers talk at once.
pub const BABBLE_VOICES: usize = 3;
/// `reverb`: the room's reverberation time (s) and its direct-to-reverberant energy ratio (dB;
/// 0: as much energy in the echo as in the direct path, a small room at arm's length).
pub const REVERB_RT60: f32 = 0.6;
pub const REVERB_DRR_DB: f32 = 0.0;
/// `clip`: the clipping level as a fraction of the clip's peak.
pub const CLIP_FRACTION: f32 = 0.25;
/// `phone`: the telephone band (Hz) and the companding law's mu (8-bit G.711).
pub const PHONE_BAND_HZ: (f32, f32) = (300.0, 3400.0);
pub const MU: f32 = 255.0;
/// `quiet`: the word's speech level (dBFS).
pub const QUIET_DBFS: f32 = -45.0;

/// How strong each condition is. [`Strengths::SUITE`] is the suite's (the issue's);
/// [`Strengths::draw`] draws a random set around it for training.
#[derive(Debug, Clone, PartialEq)]
pub struct Strengths {
    pub long_seconds: f32,
    pub long_noise_db: f32,
    pub click_silence_seconds: (f32, f32),
    pub hum_db: f32,
    pub dc_offset: f32,
    pub snr_db: f32,
    pub rt60: f32,
    pub drr_db: f32,
    pub clip_fraction: f32,
    pub quiet_dbfs: f32,
}

impl Strengths {
    /// The suite's strengths.
    pub const SUITE: Strengths = Strengths {
        long_seconds: LONG_SECONDS,
        long_noise_db: LONG_NOISE_DB,
        click_silence_seconds: CLICK_SILENCE_SECONDS,
        hum_db: HUM_DB,
        dc_offset: DC_OFFSET,
        snr_db: NOISE_SNR_DB,
        rt60: REVERB_RT60,
        drr_db: REVERB_DRR_DB,
        clip_fraction: CLIP_FRACTION,
        quiet_dbfs: QUIET_DBFS,
    };

    /// Strengths for one augmented training example: ranges around (and past) the suite's, so
    /// the network learns the kind of condition rather than one setting of it.
    pub fn draw<R: Rng + ?Sized>(rng: &mut R) -> Strengths {
        Strengths {
            long_seconds: rng.random_range(1.2..=4.0),
            long_noise_db: rng.random_range(20.0..=40.0),
            click_silence_seconds: (0.05, 1.5),
            hum_db: rng.random_range(10.0..=30.0),
            dc_offset: rng.random_range(-0.3..=0.3),
            snr_db: rng.random_range(5.0..=20.0),
            rt60: rng.random_range(0.2..=0.9),
            drr_db: rng.random_range(-3.0..=6.0),
            clip_fraction: rng.random_range(0.15..=0.6),
            quiet_dbfs: rng.random_range(-50.0..=-30.0),
        }
    }
}

/// One recording condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The clip as it is.
    Clean,
    /// The word at a random place in a [`LONG_SECONDS`] window of room noise [`LONG_NOISE_DB`]
    /// below it.
    Long,
    /// A full-scale [`CLICK_SECONDS`] click at 0 s, then 0.5-1.5 s of silence before the word.
    Click,
    /// 50 or 60 Hz with [`HUM_HARMONICS`] harmonics, [`HUM_DB`] below the word.
    Hum,
    /// An offset of [`DC_OFFSET`] of full scale.
    Dc,
    /// Pink noise at [`NOISE_SNR_DB`].
    Pink,
    /// [`BABBLE_VOICES`] other speakers' words mixed at [`NOISE_SNR_DB`].
    Babble,
    /// A synthetic room: RT60 [`REVERB_RT60`].
    Reverb,
    /// Clipped at [`CLIP_FRACTION`] of the peak (a hot microphone gain).
    Clip,
    /// The telephone band and 8-bit mu-law.
    Phone,
    /// The word at [`QUIET_DBFS`].
    Quiet,
}

impl Condition {
    /// Every condition, clean first.
    pub const ALL: [Condition; 11] = [
        Condition::Clean,
        Condition::Long,
        Condition::Click,
        Condition::Hum,
        Condition::Dc,
        Condition::Pink,
        Condition::Babble,
        Condition::Reverb,
        Condition::Clip,
        Condition::Phone,
        Condition::Quiet,
    ];

    /// The name `evaluate --condition` takes.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Clean => "clean",
            Condition::Long => "long",
            Condition::Click => "click",
            Condition::Hum => "hum",
            Condition::Dc => "dc",
            Condition::Pink => "pink",
            Condition::Babble => "babble",
            Condition::Reverb => "reverb",
            Condition::Clip => "clip",
            Condition::Phone => "phone",
            Condition::Quiet => "quiet",
        }
    }

    /// One line saying what the condition does, at its strength.
    pub fn description(self) -> &'static str {
        match self {
            Condition::Clean => "the recording as it is",
            Condition::Long => "the word at a random place in 3 s of room noise 30 dB below it",
            Condition::Click => "a full-scale 2 ms click at 0 s, 0.5-1.5 s of silence, the word",
            Condition::Hum => "50 or 60 Hz mains hum with 3 harmonics, 20 dB below the word",
            Condition::Dc => "a DC offset of 0.2 of full scale",
            Condition::Pink => "pink noise at 10 dB SNR",
            Condition::Babble => "3 other speakers' words at 10 dB SNR",
            Condition::Reverb => "a synthetic room, RT60 0.6 s",
            Condition::Clip => "clipped at 25% of the peak",
            Condition::Phone => "300-3400 Hz telephone band and 8-bit mu-law",
            Condition::Quiet => "the word at -45 dBFS",
        }
    }

    /// Parses a comma-separated list of names, `all` meaning every condition; repeats are
    /// kept once, in the order given.
    pub fn parse_list(text: &str) -> Result<Vec<Condition>> {
        let mut out: Vec<Condition> = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let add: Vec<Condition> =
                if name == "all" { Condition::ALL.to_vec() } else { vec![name.parse()?] };
            for c in add {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::Config("no condition named (all, or a comma list of names)".into()));
        }
        Ok(out)
    }

    /// Applies the condition to a clean clip at `rate` Hz. `voices` are the other speakers'
    /// clips that `babble` mixes in (the others ignore them); `rng` is the file's generator.
    pub fn apply<R: Rng + ?Sized>(self, clip: &[f32], rate: u32, voices: &[&[f32]], rng: &mut R) -> Vec<f32> {
        self.apply_at(&Strengths::SUITE, clip, rate, voices, rng)
    }

    /// [`Condition::apply`] at other strengths.
    pub fn apply_at<R: Rng + ?Sized>(
        self,
        k: &Strengths,
        clip: &[f32],
        rate: u32,
        voices: &[&[f32]],
        rng: &mut R,
    ) -> Vec<f32> {
        if self == Condition::Clean {
            return clip.to_vec();
        }
        let level = speech_rms(clip, rate);
        let fs = rate as f32;
        let mut out = match self {
            Condition::Clean => clip.to_vec(),
            Condition::Long => {
                let window = ((k.long_seconds * fs) as usize).max(clip.len());
                let mut noise = coloured_noise(window, rate, room_noise_amplitude, rng);
                scale_to_rms(&mut noise, level * db_to_amplitude(-k.long_noise_db));
                let at = rng.random_range(0..=window - clip.len());
                for (n, &s) in noise[at..].iter_mut().zip(clip) {
                    *n += s;
                }
                noise
            }
            Condition::Click => {
                let click = ((CLICK_SECONDS * fs).round() as usize).max(1);
                let silence = (rng.random_range(k.click_silence_seconds.0..=k.click_silence_seconds.1) * fs)
                    .round() as usize;
                let mut out = vec![1.0; click];
                out.resize(click + silence, 0.0);
                out.extend_from_slice(clip);
                out
            }
            Condition::Hum => {
                let mains = if rng.random_bool(0.5) { 50.0 } else { 60.0 };
                let phases: Vec<f32> =
                    (0..=HUM_HARMONICS).map(|_| rng.random_range(0.0..std::f32::consts::TAU)).collect();
                // Harmonic k (1 the fundamental) at amplitude 1/k, as a transformer's hum falls off.
                let mut hum: Vec<f32> = (0..clip.len())
                    .map(|i| {
                        let t = i as f32 / fs;
                        phases
                            .iter()
                            .enumerate()
                            .map(|(k, p)| {
                                let k = (k + 1) as f32;
                                (std::f32::consts::TAU * mains * k * t + p).sin() / k
                            })
                            .sum()
                    })
                    .collect();
                scale_to_rms(&mut hum, level * db_to_amplitude(-k.hum_db));
                clip.iter().zip(&hum).map(|(s, h)| s + h).collect()
            }
            Condition::Dc => clip.iter().map(|s| s + k.dc_offset).collect(),
            Condition::Pink => {
                let mut noise = coloured_noise(clip.len(), rate, pink_amplitude, rng);
                scale_to_rms(&mut noise, level * db_to_amplitude(-k.snr_db));
                clip.iter().zip(&noise).map(|(s, n)| s + n).collect()
            }
            Condition::Babble => {
                let mut babble = vec![0.0f32; clip.len()];
                for voice in voices {
                    // Each voice at its own speech level, placed anywhere that overlaps the clip.
                    let gain = 1.0 / speech_rms(voice, rate).max(1e-9);
                    let start = rng
                        .random_range(-(voice.len() as i64) / 2..=clip.len() as i64 - voice.len() as i64 / 2);
                    for (i, &v) in voice.iter().enumerate() {
                        if let Some(b) =
                            usize::try_from(start + i as i64).ok().and_then(|j| babble.get_mut(j))
                        {
                            *b += gain * v;
                        }
                    }
                }
                let babble_level = speech_rms(&babble, rate);
                if babble_level > 0.0 {
                    let gain = level * db_to_amplitude(-k.snr_db) / babble_level;
                    babble.iter_mut().for_each(|b| *b *= gain);
                }
                clip.iter().zip(&babble).map(|(s, b)| s + b).collect()
            }
            Condition::Reverb => {
                let rir = room_impulse_response(rate, k.rt60, k.drr_db, rng);
                let mut wet = convolve(clip, &rir);
                // The echo lengthens the recording; the level stays the word's.
                let wet_level = speech_rms(&wet, rate);
                if wet_level > 0.0 {
                    let gain = level / wet_level;
                    wet.iter_mut().for_each(|s| *s *= gain);
                }
                wet
            }
            Condition::Clip => {
                // A gain that drives the peak to 1 / CLIP_FRACTION of full scale, then the
                // converter's full scale: clipped at a quarter of the peak, and loud.
                let peak = clip.iter().fold(0.0f32, |m, s| m.max(s.abs()));
                let gain = if peak > 0.0 { 1.0 / (k.clip_fraction * peak) } else { 1.0 };
                clip.iter().map(|s| (s * gain).clamp(-1.0, 1.0)).collect()
            }
            Condition::Phone => {
                let mut band = clip.to_vec();
                telephone_band(&mut band, rate);
                band.iter().map(|&s| mu_law(s)).collect()
            }
            Condition::Quiet => {
                let gain = if level > 0.0 { db_to_amplitude(k.quiet_dbfs) / level } else { 1.0 };
                clip.iter().map(|s| s * gain).collect()
            }
        };
        to_16_bit(&mut out);
        out
    }
}

impl std::str::FromStr for Condition {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Condition::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Condition::ALL.iter().map(|c| c.name()).collect();
            Error::Config(format!("unknown condition '{s}' ({}, or all)", names.join(", ")))
        })
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The generator of one file under one condition: the same file, condition and seed always
/// give the same recording, whatever split or order it is scored in.
pub fn file_seed(seed: u64, condition: Condition, file_name: &str) -> u64 {
    // FNV-1a over the name, then the condition and seed mixed in (splitmix64's finaliser).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file_name.bytes().chain(condition.name().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The word's speech level: the RMS over the non-overlapping 16 ms frames whose energy is within
/// [`ACTIVE_DB`] of the loudest frame's (a short last frame counts with its own length). 0 for
/// silence.
pub fn speech_rms(samples: &[f32], rate: u32) -> f32 {
    let frame = crate::features::block_samples(rate);
    let energies: Vec<(f64, usize)> = samples
        .chunks(frame)
        .map(|c| (c.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>(), c.len()))
        .collect();
    let loudest = energies.iter().map(|(e, n)| e / *n as f64).fold(0.0, f64::max);
    if loudest <= 0.0 {
        return 0.0;
    }
    let floor = loudest * 10f64.powf(-f64::from(ACTIVE_DB) / 10.0);
    let (sum, count) = energies
        .iter()
        .filter(|(e, n)| e / *n as f64 >= floor)
        .fold((0.0, 0usize), |(s, c), (e, n)| (s + e, c + n));
    (sum / count.max(1) as f64).sqrt() as f32
}

/// The RMS over all of `samples`.
pub fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
        as f32
}

/// dB to an amplitude ratio.
pub fn db_to_amplitude(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

fn scale_to_rms(samples: &mut [f32], target: f32) {
    let now = rms(samples);
    if now > 0.0 {
        let gain = target / now;
        samples.iter_mut().for_each(|s| *s *= gain);
    }
}

/// Clamped to full scale and rounded to 16 bits, as a 16-bit file holds it.
fn to_16_bit(samples: &mut [f32]) {
    for s in samples.iter_mut() {
        *s = (s.clamp(-1.0, 1.0) * 32767.0).round() / 32767.0;
    }
}

/// Pink noise's amplitude spectrum: power falls by 3 dB per octave.
pub fn pink_amplitude(hz: f32) -> f32 {
    1.0 / hz.sqrt()
}

/// Room noise's amplitude spectrum: pink, then a first-order low-pass at
/// [`ROOM_NOISE_CORNER_HZ`].
pub fn room_noise_amplitude(hz: f32) -> f32 {
    pink_amplitude(hz) / (1.0 + (hz / ROOM_NOISE_CORNER_HZ).powi(2)).sqrt()
}

/// Gaussian noise of `n` samples whose amplitude spectrum follows `shape` (Hz to amplitude),
/// made in the frequency domain: random complex Gaussian bins times the shape, one inverse FFT.
/// Nothing below 20 Hz (no microphone records it), RMS 1.
pub fn coloured_noise<R: Rng + ?Sized>(n: usize, rate: u32, shape: fn(f32) -> f32, rng: &mut R) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    let mut spectrum = vec![Complex32::default(); n];
    for k in 1..=n / 2 {
        let hz = k as f32 * rate as f32 / n as f32;
        let a = if hz < 20.0 { 0.0 } else { shape(hz) };
        let (re, im): (f32, f32) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
        spectrum[k] = Complex32::new(a * re, a * im);
        // The mirror bin makes the signal real (Nyquist, for even n, is its own mirror).
        spectrum[n - k] = spectrum[k].conj();
    }
    FftPlanner::<f32>::new().plan_fft_inverse(n).process(&mut spectrum);
    let mut out: Vec<f32> = spectrum.iter().map(|c| c.re).collect();
    scale_to_rms(&mut out, 1.0);
    out
}

/// A synthetic room impulse response: a direct path (1 at sample 0), then exponentially decaying
/// Gaussian noise from 1 ms on that falls by 60 dB in `rt60` seconds, scaled so that the
/// direct path has `drr_db` more energy than the tail; `1.2 * rt60` long.
pub fn room_impulse_response<R: Rng + ?Sized>(rate: u32, rt60: f32, drr_db: f32, rng: &mut R) -> Vec<f32> {
    let fs = rate as f32;
    let len = ((1.2 * rt60 * fs) as usize).max(2);
    let onset = ((0.001 * fs) as usize).clamp(1, len - 1);
    // Amplitude falls 60 dB (a factor 1000) in rt60: exp(-ln(1000) t / rt60).
    let decay = 1000f32.ln() / (rt60 * fs);
    let mut rir = vec![0.0f32; len];
    rir[0] = 1.0;
    for (i, r) in rir.iter_mut().enumerate().skip(onset) {
        let n: f32 = StandardNormal.sample(rng);
        *r = n * (-decay * i as f32).exp();
    }
    let tail: f32 = rir[onset..].iter().map(|r| r * r).sum();
    if tail > 0.0 {
        let gain = (db_to_amplitude(-drr_db).powi(2) / tail).sqrt();
        rir[onset..].iter_mut().for_each(|r| *r *= gain);
    }
    rir
}

/// The full linear convolution of `a` and `b` (`a.len() + b.len() - 1` samples), by FFT.
pub fn convolve(a: &[f32], b: &[f32]) -> Vec<f32> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let len = a.len() + b.len() - 1;
    let n = len.next_power_of_two();
    let mut planner = FftPlanner::<f32>::new();
    let (forward, inverse) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let spectrum = |x: &[f32]| {
        let mut s: Vec<Complex32> = x.iter().map(|&v| Complex32::new(v, 0.0)).collect();
        s.resize(n, Complex32::default());
        forward.process(&mut s);
        s
    };
    let (sa, sb) = (spectrum(a), spectrum(b));
    let mut product: Vec<Complex32> = sa.iter().zip(&sb).map(|(x, y)| x * y).collect();
    inverse.process(&mut product);
    product[..len].iter().map(|c| c.re / n as f32).collect()
}

/// The telephone band in place: fourth-order Butterworth high-pass at [`PHONE_BAND_HZ`]'s low
/// edge and low-pass at its high edge (each two biquads, Q 0.541 and 1.307).
pub fn telephone_band(samples: &mut [f32], rate: u32) {
    let fs = rate as f32;
    for q in [0.541_196_1, 1.306_563] {
        biquad(samples, butterworth(PHONE_BAND_HZ.0 / fs, q, true));
        if PHONE_BAND_HZ.1 < fs / 2.0 {
            biquad(samples, butterworth(PHONE_BAND_HZ.1 / fs, q, false));
        }
    }
}

/// RBJ's cookbook high- or low-pass at `corner` (a fraction of the sample rate): `[b0, b1, b2,
/// a1, a2]` divided by a0.
pub(crate) fn butterworth(corner: f32, q: f32, high: bool) -> [f32; 5] {
    let w0 = std::f32::consts::TAU * corner;
    let (cos, alpha) = (w0.cos(), w0.sin() / (2.0 * q));
    let a0 = 1.0 + alpha;
    let (b0, b1) = if high { ((1.0 + cos) / 2.0, -(1.0 + cos)) } else { ((1.0 - cos) / 2.0, 1.0 - cos) };
    [b0 / a0, b1 / a0, b0 / a0, -2.0 * cos / a0, (1.0 - alpha) / a0]
}

/// One biquad section in place.
pub(crate) fn biquad(samples: &mut [f32], [b0, b1, b2, a1, a2]: [f32; 5]) {
    let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
    for s in samples.iter_mut() {
        let y = b0 * *s + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        (x2, x1, y2, y1) = (x1, *s, y1, y);
        *s = y;
    }
}

/// 8-bit mu-law coding and decoding of one sample: the continuous law (mu = 255) quantised to
/// 255 levels, -127 to 127 (G.711's segments approximate the same curve).
pub fn mu_law(x: f32) -> f32 {
    let x = x.clamp(-1.0, 1.0);
    let y = x.signum() * (1.0 + MU * x.abs()).ln() / (1.0 + MU).ln();
    let code = (y * 127.0).round() / 127.0;
    code.signum() * ((1.0 + MU).powf(code.abs()) - 1.0) / MU
}

/// Training's recording-condition augmentation: one condition other than clean, drawn
/// uniformly (babble only when `voices` has some), at [`Strengths::draw`]'s strengths.
pub fn augment<R: Rng + ?Sized>(clip: &[f32], rate: u32, voices: &[&[f32]], rng: &mut R) -> Vec<f32> {
    augment_weighted(clip, rate, voices, &[], rng)
}

/// [`augment`] with the conditions in `weights` drawn that many times as often as the others
/// (weight 1); with no weights, the same draws as [`augment`].
pub fn augment_weighted<R: Rng + ?Sized>(
    clip: &[f32],
    rate: u32,
    voices: &[&[f32]],
    weights: &[(Condition, f64)],
    rng: &mut R,
) -> Vec<f32> {
    let choices: Vec<Condition> = Condition::ALL
        .into_iter()
        .filter(|&c| c != Condition::Clean && (c != Condition::Babble || !voices.is_empty()))
        .collect();
    let condition = if weights.is_empty() {
        choices[rng.random_range(0..choices.len())]
    } else {
        let weight = |c: Condition| weights.iter().find(|(w, _)| *w == c).map_or(1.0, |&(_, w)| w.max(0.0));
        let total: f64 = choices.iter().map(|&c| weight(c)).sum();
        let mut at = rng.random::<f64>() * total;
        let mut pick = choices[choices.len() - 1];
        for &c in &choices {
            if at < weight(c) {
                pick = c;
                break;
            }
            at -= weight(c);
        }
        pick
    };
    let strengths = Strengths::draw(rng);
    condition.apply_at(&strengths, clip, rate, voices, rng)
}

/// Accuracy under one condition.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionScore {
    pub condition: Condition,
    pub description: &'static str,
    #[serde(flatten)]
    pub scores: Scores,
}

/// Scores `model` on `test` under each of `conditions`. `babble_pool` are the recordings whose
/// words `babble` mixes in: for each file, [`BABBLE_VOICES`] speakers other than its own, and one
/// recording of each, drawn by the file's generator. With `opinion`, each word is decided with
/// the string models' second opinion ([`crate::predict::read_words`]).
pub fn evaluate(
    model: &Model,
    opinion: crate::predict::SecondOpinion<'_>,
    test: &[Recording],
    babble_pool: &[Recording],
    conditions: &[Condition],
    seed: u64,
    threads: usize,
) -> Result<Vec<ConditionScore>> {
    let rate = model.config().features.sample_rate;
    let clean = load_all(test, rate, threads)?;
    let mut out = Vec::with_capacity(conditions.len());
    for &condition in conditions {
        let clips = conditioned(test, &clean, babble_pool, condition, seed, rate, threads)?;
        let probs = crate::predict::read_words(model, opinion, &clips, threads)?;
        let scores = Scores::from_pairs(test.iter().map(|r| r.digit).zip(probs.iter().map(|p| argmax(p).0)));
        out.push(ConditionScore { condition, description: condition.description(), scores });
    }
    Ok(out)
}

/// Every recording read at `rate`, on `threads` threads.
fn load_all(recordings: &[Recording], rate: u32, threads: usize) -> Result<Vec<Vec<f32>>> {
    crate::parallel::map(
        recordings,
        threads,
        || (),
        |_, _, r| audio::load(&r.path, rate, audio::DEFAULT_MAX_SECONDS),
    )?
    .into_iter()
    .collect()
}

/// Every test clip (`clips`: the `test` recordings read at `rate`) under `condition`, as
/// [`evaluate`] reads them (each seeded by the run's seed, the condition and the file's name;
/// babble takes its voices from `babble_pool`).
pub fn conditioned(
    test: &[Recording],
    clips: &[Vec<f32>],
    babble_pool: &[Recording],
    condition: Condition,
    seed: u64,
    rate: u32,
    threads: usize,
) -> Result<Vec<Vec<f32>>> {
    let pool =
        if condition == Condition::Babble { load_all(babble_pool, rate, threads)? } else { Vec::new() };
    let mut speakers: Vec<&str> = babble_pool.iter().map(|r| r.speaker.as_str()).collect();
    speakers.sort_unstable();
    speakers.dedup();
    let items: Vec<(&Recording, &Vec<f32>)> = test.iter().zip(clips).collect();
    crate::parallel::map(
        &items,
        threads,
        || (),
        |_, _, (r, clip)| -> Result<Vec<f32>> {
            let name = r.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let mut rng = StdRng::seed_from_u64(file_seed(seed, condition, name));
            let voices = if condition == Condition::Babble {
                babble_voices(r, babble_pool, &pool, &speakers, &mut rng)?
            } else {
                Vec::new()
            };
            Ok(condition.apply(clip, rate, &voices, &mut rng))
        },
    )?
    .into_iter()
    .collect()
}

/// [`BABBLE_VOICES`] speakers of the pool other than `r`'s, and one clip of each.
fn babble_voices<'a>(
    r: &Recording,
    pool: &[Recording],
    clips: &'a [Vec<f32>],
    speakers: &[&str],
    rng: &mut StdRng,
) -> Result<Vec<&'a [f32]>> {
    let mut others: Vec<&str> = speakers.iter().copied().filter(|s| *s != r.speaker).collect();
    if others.len() < BABBLE_VOICES {
        return Err(Error::Dataset(format!(
            "babble needs {BABBLE_VOICES} speakers other than {}; the pool has {}",
            r.speaker,
            others.len()
        )));
    }
    others.shuffle(rng);
    others
        .iter()
        .take(BABBLE_VOICES)
        .map(|speaker| {
            let theirs: Vec<usize> = (0..pool.len()).filter(|&i| pool[i].speaker == *speaker).collect();
            let pick = theirs[rng.random_range(0..theirs.len())];
            Ok(clips[pick].as_slice())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 8000;

    /// A word-like clip: 0.2 s of silence, 0.5 s of a vowel (harmonics of 150 Hz under a smooth
    /// envelope), 0.2 s of silence.
    fn word() -> Vec<f32> {
        let mut clip = vec![0.0f32; 1600];
        clip.extend((0..4000).map(|i| {
            let t = i as f32 / RATE as f32;
            let env = (std::f32::consts::PI * i as f32 / 4000.0).sin();
            0.3 * env
                * (1..=8)
                    .map(|k| (std::f32::consts::TAU * 150.0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
        }));
        clip.resize(clip.len() + 1600, 0.0);
        clip
    }

    fn apply(c: Condition, clip: &[f32], voices: &[&[f32]]) -> Vec<f32> {
        c.apply(clip, RATE, voices, &mut StdRng::seed_from_u64(file_seed(1, c, "7_test_0.wav")))
    }

    fn db(x: f32) -> f32 {
        20.0 * x.log10()
    }

    /// The power of `x` in a band (Hz), from its spectrum.
    fn band_power(x: &[f32], lo: f32, hi: f32) -> f32 {
        let n = x.len();
        let mut s: Vec<Complex32> = x.iter().map(|&v| Complex32::new(v, 0.0)).collect();
        FftPlanner::<f32>::new().plan_fft_forward(n).process(&mut s);
        (1..n / 2)
            .filter(|&k| (lo..hi).contains(&(k as f32 * RATE as f32 / n as f32)))
            .map(|k| s[k].norm_sqr())
            .sum()
    }

    #[test]
    fn speech_level_ignores_the_silence_around_the_word() {
        let clip = word();
        let active = rms(&clip[1600..5600]);
        let level = speech_rms(&clip, RATE);
        // The envelope's quiet edges (more than 30 dB down) are left out too: a little above.
        assert!((db(level) - db(active)).abs() < 0.5, "{} vs {}", db(level), db(active));
        assert!(db(rms(&clip)) < db(level) - 1.0);
        assert_eq!(speech_rms(&[0.0; 500], RATE), 0.0);
    }

    #[test]
    fn names_parse_and_all_lists_every_condition() {
        assert_eq!(Condition::parse_list("all").unwrap(), Condition::ALL.to_vec());
        assert_eq!(Condition::parse_list("hum, click,hum").unwrap(), vec![Condition::Hum, Condition::Click]);
        assert!(
            Condition::parse_list("hum,loud").unwrap_err().to_string().contains("unknown condition 'loud'")
        );
        assert!(Condition::parse_list(",").is_err());
        for c in Condition::ALL {
            assert_eq!(c.name().parse::<Condition>().unwrap(), c);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_recording() {
        let clip = word();
        for c in Condition::ALL {
            assert_eq!(apply(c, &clip, &[&clip]), apply(c, &clip, &[&clip]), "{c}");
        }
        let other = |seed| Condition::Pink.apply(&clip, RATE, &[], &mut StdRng::seed_from_u64(seed));
        assert_ne!(other(1), other(2));
        assert_ne!(file_seed(1, Condition::Pink, "a.wav"), file_seed(1, Condition::Pink, "b.wav"));
        assert_ne!(file_seed(1, Condition::Pink, "a.wav"), file_seed(1, Condition::Hum, "a.wav"));
        assert_eq!(apply(Condition::Clean, &clip, &[]), clip);
    }

    #[test]
    fn long_puts_the_word_in_three_seconds_of_room_noise_30_db_below() {
        let clip = word();
        let mut starts = Vec::new();
        for seed in 0..20 {
            let out = Condition::Long.apply(&clip, RATE, &[], &mut StdRng::seed_from_u64(seed));
            assert_eq!(out.len(), 24000);
            // Find the word by matching its loudest stretch.
            let start = (0..=out.len() - clip.len())
                .max_by(|&a, &b| {
                    let e = |o: usize| {
                        out[o + 1600..o + 5600].iter().zip(&clip[1600..5600]).map(|(x, y)| x * y).sum::<f32>()
                    };
                    e(a).total_cmp(&e(b))
                })
                .unwrap();
            let noise: Vec<f32> = out
                .iter()
                .enumerate()
                .map(|(i, &s)| s - if i >= start { clip.get(i - start).copied().unwrap_or(0.0) } else { 0.0 })
                .collect();
            let snr = db(speech_rms(&clip, RATE)) - db(rms(&noise));
            assert!((snr - 30.0).abs() < 0.5, "seed {seed}: noise {snr} dB below the word");
            // Room noise: more power below the corner than in the octaves above it.
            assert!(band_power(&noise, 100.0, 500.0) > 10.0 * band_power(&noise, 1000.0, 4000.0));
            starts.push(start);
        }
        assert!(starts.iter().any(|&s| s < 4000) && starts.iter().any(|&s| s > 12000), "{starts:?}");
    }

    #[test]
    fn click_is_a_full_scale_2_ms_pulse_then_silence_then_the_word() {
        let clip = word();
        for seed in 0..10 {
            let out = Condition::Click.apply(&clip, RATE, &[], &mut StdRng::seed_from_u64(seed));
            assert!(out[..16].iter().all(|&s| s == 1.0), "16 samples at full scale");
            let silence = out.len() - 16 - clip.len();
            assert!((4000..=12000).contains(&silence), "{silence} samples of silence");
            assert!(out[16..16 + silence].iter().all(|&s| s == 0.0));
            let back = &out[16 + silence..];
            assert!(back.iter().zip(&clip).all(|(a, b)| (a - b).abs() <= 1.0 / 32767.0));
        }
    }

    #[test]
    fn hum_is_mains_and_harmonics_20_db_below_the_word() {
        let clip = word();
        let mut mains = Vec::new();
        for seed in 0..12 {
            let out = Condition::Hum.apply(&clip, RATE, &[], &mut StdRng::seed_from_u64(seed));
            let hum: Vec<f32> = out.iter().zip(&clip).map(|(a, b)| a - b).collect();
            let below = db(speech_rms(&clip, RATE)) - db(rms(&hum));
            assert!((below - 20.0).abs() < 0.3, "{below}");
            // All the hum's power is at the fundamental and three harmonics.
            let f0 = if band_power(&hum, 45.0, 55.0) > band_power(&hum, 55.0, 65.0) { 50.0 } else { 60.0 };
            let at_lines: f32 =
                (1..=4).map(|k| band_power(&hum, k as f32 * f0 - 5.0, k as f32 * f0 + 5.0)).sum();
            assert!(at_lines > 0.95 * band_power(&hum, 0.0, 4000.0));
            assert!(
                band_power(&hum, 4.0 * f0 - 5.0, 4.0 * f0 + 5.0) > 0.02 * at_lines,
                "the third harmonic is there"
            );
            mains.push(f0);
        }
        assert!(mains.contains(&50.0) && mains.contains(&60.0));
    }

    #[test]
    fn dc_offsets_by_a_fifth_of_full_scale() {
        let clip = word();
        let out = apply(Condition::Dc, &clip, &[]);
        assert!(out.iter().zip(&clip).all(|(a, b)| (a - b - 0.2).abs() <= 1.0 / 32767.0));
    }

    #[test]
    fn pink_noise_at_10_db_falls_3_db_per_octave() {
        let clip = word();
        let out = apply(Condition::Pink, &clip, &[]);
        let noise: Vec<f32> = out.iter().zip(&clip).map(|(a, b)| a - b).collect();
        assert!((db(speech_rms(&clip, RATE)) - db(rms(&noise)) - 10.0).abs() < 0.2);
        // Equal power per octave.
        let (low, high) = (band_power(&noise, 250.0, 500.0), band_power(&noise, 1000.0, 2000.0));
        assert!((10.0 * (low / high).log10()).abs() < 1.5, "{low} vs {high}");
    }

    #[test]
    fn babble_mixes_the_voices_10_db_below_the_word() {
        let clip = word();
        let voices: Vec<Vec<f32>> = (0..3)
            .map(|v| (0..5000).map(|i| ((i as f32) * (0.05 + 0.03 * v as f32)).sin() * 0.5).collect())
            .collect();
        let refs: Vec<&[f32]> = voices.iter().map(|v| v.as_slice()).collect();
        let out = apply(Condition::Babble, &clip, &refs);
        let babble: Vec<f32> = out.iter().zip(&clip).map(|(a, b)| a - b).collect();
        assert!((db(speech_rms(&clip, RATE)) - db(speech_rms(&babble, RATE)) - 10.0).abs() < 0.2);
        // Each voice is in it.
        for v in 0..3 {
            let f = (0.05 + 0.03 * v as f32) * RATE as f32 / std::f32::consts::TAU;
            assert!(
                band_power(&babble, f - 10.0, f + 10.0) > 0.05 * band_power(&babble, 0.0, 4000.0),
                "voice {v}"
            );
        }
    }

    #[test]
    fn the_room_decays_60_db_in_0_6_s() {
        for seed in 0..5 {
            let rir = room_impulse_response(RATE, 0.6, 0.0, &mut StdRng::seed_from_u64(seed));
            assert_eq!(rir[0], 1.0);
            let tail: f32 = rir[8..].iter().map(|r| r * r).sum();
            assert!((10.0 * tail.log10()).abs() < 0.01, "direct and reverberant energy equal");
            // Schroeder's backward integral of the tail; its slope from -5 to -35 dB, times two.
            let mut energy: Vec<f64> = rir[8..].iter().map(|&r| f64::from(r * r)).collect();
            for i in (0..energy.len() - 1).rev() {
                energy[i] += energy[i + 1];
            }
            let when = |db: f64| energy.iter().position(|&e| 10.0 * (e / energy[0]).log10() < db).unwrap();
            let rt60 = 2.0 * (when(-35.0) - when(-5.0)) as f64 / f64::from(RATE);
            assert!((rt60 - 0.6).abs() < 0.06, "seed {seed}: RT60 {rt60}");
        }
        let clip = word();
        let out = apply(Condition::Reverb, &clip, &[]);
        assert_eq!(out.len(), clip.len() + rir_len() - 1);
        assert!((db(speech_rms(&out, RATE)) - db(speech_rms(&clip, RATE))).abs() < 0.1);
        // The echo fills the silence after the word.
        assert!(rms(&out[5700..7000]) > 0.01 * speech_rms(&clip, RATE));
    }

    fn rir_len() -> usize {
        (1.2 * 0.6 * RATE as f32) as usize
    }

    #[test]
    fn convolution_by_fft_is_the_direct_sum() {
        let (a, b) = ([1.0, 2.0, 3.0], [0.5, -1.0]);
        let c = convolve(&a, &b);
        for (x, y) in c.iter().zip([0.5, 0.0, -0.5, -3.0]) {
            assert!((x - y).abs() < 1e-5, "{c:?}");
        }
    }

    #[test]
    fn clip_flattens_the_peaks_at_a_quarter() {
        let clip = word();
        let out = apply(Condition::Clip, &clip, &[]);
        let peak = clip.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        for (o, s) in out.iter().zip(&clip) {
            let expected = (s / (0.25 * peak)).clamp(-1.0, 1.0);
            assert!((o - expected).abs() <= 1.0 / 32767.0);
        }
        let flat = out.iter().filter(|s| s.abs() == 1.0).count();
        assert!(flat > 500, "{flat} samples clipped");
    }

    #[test]
    fn phone_keeps_the_band_and_has_255_mu_law_levels() {
        // Tones at 100 Hz (out), 1 kHz (in) and 3.8 kHz (out).
        let tone = |f: f32| -> Vec<f32> {
            (0..8000).map(|i| 0.3 * (std::f32::consts::TAU * f * i as f32 / RATE as f32).sin()).collect()
        };
        let gain = |f: f32| db(rms(&apply(Condition::Phone, &tone(f), &[])[4000..]) / rms(&tone(f)[4000..]));
        assert!(gain(1000.0).abs() < 0.5, "{}", gain(1000.0));
        assert!(gain(100.0) < -30.0, "{}", gain(100.0));
        assert!(gain(3800.0) < -10.0, "{}", gain(3800.0));
        let out = apply(Condition::Phone, &word(), &[]);
        let mut levels: Vec<i32> = out.iter().map(|s| (s * 32767.0).round() as i32).collect();
        levels.sort_unstable();
        levels.dedup();
        assert!(levels.len() <= 255 && levels.len() > 50, "{} levels", levels.len());
        // mu-law's steps grow with the level: fine near zero, coarse near full scale.
        assert_eq!(mu_law(0.0), 0.0);
        assert!((mu_law(1.0) - 1.0).abs() < 1e-6);
        let step_near = |x: f32| {
            let y = mu_law(x);
            let mut z = x;
            while mu_law(z) == y {
                z += 1e-6;
            }
            mu_law(z) - y
        };
        assert!(step_near(0.5) > 20.0 * step_near(0.001));
        assert!((step_near(0.5) / 0.5 - 0.044).abs() < 0.01, "about 4% of the level: {}", step_near(0.5));
    }

    #[test]
    fn training_draws_every_kind_reproducibly() {
        // Seeded draws repeat; over many draws every condition but clean turns up (each leaves
        // its mark: another length, level or shape), babble only with voices to mix.
        let clip = word();
        let voice = word();
        let run =
            |seed: u64, voices: &[&[f32]]| augment(&clip, RATE, voices, &mut StdRng::seed_from_u64(seed));
        assert_eq!(run(3, &[&voice]), run(3, &[&voice]));
        let outputs: Vec<Vec<f32>> = (0..60).map(|s| run(s, &[])).collect();
        assert!(outputs.iter().all(|o| o != &clip), "every draw changes the clip");
        assert!(outputs.iter().any(|o| o.len() > 2 * clip.len()), "long windows and clicks");
        assert!(outputs.iter().any(|o| o.len() == clip.len()), "same-length conditions");
    }

    #[test]
    fn weights_choose_how_often_each_condition_is_drawn() {
        // Every condition but quiet at weight 0: every draw is quiet (-50 to -30 dBFS).
        let clip = word();
        let weights: Vec<(Condition, f64)> =
            Condition::ALL.into_iter().map(|c| (c, if c == Condition::Quiet { 1.0 } else { 0.0 })).collect();
        for seed in 0..20 {
            let out = augment_weighted(&clip, RATE, &[], &weights, &mut StdRng::seed_from_u64(seed));
            let level = db(speech_rms(&out, RATE));
            assert!(out.len() == clip.len() && (-50.5..=-29.5).contains(&level), "seed {seed}: {level} dBFS");
        }
        // No weights: the same draws as the plain augmentation.
        let plain = augment(&clip, RATE, &[], &mut StdRng::seed_from_u64(7));
        assert_eq!(augment_weighted(&clip, RATE, &[], &[], &mut StdRng::seed_from_u64(7)), plain);
    }

    #[test]
    fn quiet_puts_the_word_at_minus_45_dbfs() {
        let out = apply(Condition::Quiet, &word(), &[]);
        assert!((db(speech_rms(&out, RATE)) + 45.0).abs() < 0.1, "{}", db(speech_rms(&out, RATE)));
    }
}
