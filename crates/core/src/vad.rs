//! Voice activity detection: per-frame speech scores and the state machine that turns them into
//! utterance boundaries.
//!
//! Two scorers share one [`Vad`] state machine:
//! - [`EnergyScorer`]: frame energy in dB above an adaptive noise floor (no model, no latency);
//! - [`EarshotScorer`]: the `earshot` crate's small neural VAD (16 kHz, 16 ms frames), fed by a
//!   streaming 2x upsampler.
//!
//! The state machine is pure: frames in, events out, no clock and no audio device, so it is
//! tested on synthetic frames. All lengths are in frames of [`VadConfig::frame_seconds`]; a
//! frame is 16 ms because that is earshot's frame, so both scorers decide at the same instants.

use crate::resample::StreamResampler;
use crate::{Error, Result};
use std::str::FromStr;

/// Frame duration shared by both scorers (earshot's 256 samples at 16 kHz).
pub const FRAME_SECONDS: f64 = 0.016;

/// Which per-frame scorer feeds the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadKind {
    /// Energy above an adaptive noise floor.
    Energy,
    /// The earshot neural VAD.
    Earshot,
}

impl FromStr for VadKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "energy" => Ok(VadKind::Energy),
            "earshot" => Ok(VadKind::Earshot),
            _ => Err(Error::Config(format!("unknown VAD '{s}' (energy, earshot)"))),
        }
    }
}

impl std::fmt::Display for VadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VadKind::Energy => "energy",
            VadKind::Earshot => "earshot",
        })
    }
}

/// Timing and thresholds of the state machine. Times are seconds; scores are in the scorer's
/// unit (dB above the noise floor for energy, probability for earshot).
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    pub frame_seconds: f64,
    /// A frame at or above this score may start speech.
    pub start_threshold: f32,
    /// Once speaking, a frame at or above this score keeps it going (hysteresis: below start).
    pub stay_threshold: f32,
    /// Consecutive starting frames needed before speech is declared (rejects clicks).
    pub onset_seconds: f64,
    /// Quiet time after the last voiced frame before the utterance ends. Short, because digits
    /// in a sequence are separated by short pauses; long enough to bridge the stop consonants
    /// inside a word ("six", "eight").
    pub hangover_seconds: f64,
    /// Shorter utterances are discarded as noise.
    pub min_utterance_seconds: f64,
    /// Longer utterances are cut here (the model sees one second anyway).
    pub max_utterance_seconds: f64,
}

impl VadConfig {
    /// Defaults tuned for `kind` on the synthetic FSDD streams (see the README's VAD table).
    pub fn for_kind(kind: VadKind) -> Self {
        let base = VadConfig {
            frame_seconds: FRAME_SECONDS,
            start_threshold: 0.0,
            stay_threshold: 0.0,
            onset_seconds: 0.048,
            hangover_seconds: 0.176,
            min_utterance_seconds: 0.12,
            max_utterance_seconds: 1.2,
        };
        match kind {
            VadKind::Energy => VadConfig { start_threshold: 9.0, stay_threshold: 5.0, ..base },
            // earshot scores 8 kHz band-limited silence near 0.2 but band-limited noise at 0.4-0.6.
            VadKind::Earshot => VadConfig { start_threshold: 0.65, stay_threshold: 0.5, ..base },
        }
    }

    fn frames(&self, seconds: f64) -> usize {
        (seconds / self.frame_seconds).round().max(1.0) as usize
    }

    /// Checks the numbers make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("VAD: {m}")));
        if self.frame_seconds.is_nan() || self.frame_seconds <= 0.0 {
            return bad("frame_seconds must be positive");
        }
        if self.stay_threshold > self.start_threshold {
            return bad("stay_threshold must not exceed start_threshold");
        }
        if self.min_utterance_seconds > self.max_utterance_seconds {
            return bad("min_utterance_seconds must not exceed max_utterance_seconds");
        }
        Ok(())
    }
}

/// What the state machine reports. Frame indices count from the first frame pushed; `end` is
/// exclusive and points just past the last voiced frame (the hangover is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech confirmed (after the onset frames); `start` is the first of them.
    Start { start: usize },
    /// An utterance of acceptable length ended. `forced` when cut at the maximum length.
    End { start: usize, end: usize, forced: bool },
    /// A started utterance turned out shorter than the minimum: forget it.
    Discard { start: usize, end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Silence,
    /// Candidate onset: `voiced` consecutive starting frames since `start`.
    Onset {
        start: usize,
        voiced: usize,
    },
    Speech {
        start: usize,
        last_voiced: usize,
    },
    /// After a forced cut: wait for a hangover of quiet before a new onset, so the rest of an
    /// over-long sound is not taken for a new word.
    Cooldown {
        quiet: usize,
    },
}

/// The utterance state machine: one score per frame in, [`VadEvent`]s out.
#[derive(Debug, Clone)]
pub struct Vad {
    start_threshold: f32,
    stay_threshold: f32,
    onset: usize,
    hangover: usize,
    min_len: usize,
    max_len: usize,
    state: State,
    frame: usize,
}

impl Vad {
    pub fn new(config: &VadConfig) -> Result<Self> {
        config.validate()?;
        Ok(Vad {
            start_threshold: config.start_threshold,
            stay_threshold: config.stay_threshold,
            onset: config.frames(config.onset_seconds),
            hangover: config.frames(config.hangover_seconds),
            min_len: config.frames(config.min_utterance_seconds),
            max_len: config.frames(config.max_utterance_seconds),
            state: State::Silence,
            frame: 0,
        })
    }

    /// Frames seen so far.
    pub fn frames_seen(&self) -> usize {
        self.frame
    }

    /// True when no utterance is in progress or about to be confirmed.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Silence | State::Cooldown { .. })
    }

    /// The frame where the utterance in progress (or candidate onset) began, if any.
    pub fn pending_start(&self) -> Option<usize> {
        match self.state {
            State::Onset { start, .. } | State::Speech { start, .. } => Some(start),
            _ => None,
        }
    }

    /// Advances one frame with its score; at most one event per frame.
    pub fn push(&mut self, score: f32) -> Option<VadEvent> {
        let i = self.frame;
        self.frame += 1;
        let starts = score >= self.start_threshold;
        let stays = score >= self.stay_threshold;
        let (next, event) = match self.state {
            State::Silence if starts => self.onset_step(i, 1),
            State::Silence => (State::Silence, None),
            State::Onset { start, voiced } if starts => self.onset_step(start, voiced + 1),
            // One weak frame breaks a candidate onset: clicks and noise bursts are short.
            State::Onset { .. } => (State::Silence, None),
            State::Speech { start, last_voiced } => {
                let last_voiced = if stays { i } else { last_voiced };
                if i + 1 - start >= self.max_len {
                    let end = i + 1;
                    (State::Cooldown { quiet: 0 }, Some(VadEvent::End { start, end, forced: true }))
                } else if i - last_voiced >= self.hangover {
                    (State::Silence, Some(self.finish_utterance(start, last_voiced + 1)))
                } else {
                    (State::Speech { start, last_voiced }, None)
                }
            }
            State::Cooldown { quiet } => {
                let quiet = if stays { 0 } else { quiet + 1 };
                if quiet >= self.hangover {
                    (State::Silence, None)
                } else {
                    (State::Cooldown { quiet }, None)
                }
            }
        };
        self.state = next;
        event
    }

    /// Ends the stream: an utterance in progress ends at its last voiced frame.
    pub fn finish(&mut self) -> Option<VadEvent> {
        let event = match self.state {
            State::Speech { start, last_voiced } => Some(self.finish_utterance(start, last_voiced + 1)),
            _ => None,
        };
        self.state = State::Silence;
        event
    }

    fn onset_step(&self, start: usize, voiced: usize) -> (State, Option<VadEvent>) {
        if voiced >= self.onset {
            (State::Speech { start, last_voiced: start + voiced - 1 }, Some(VadEvent::Start { start }))
        } else {
            (State::Onset { start, voiced }, None)
        }
    }

    fn finish_utterance(&self, start: usize, end: usize) -> VadEvent {
        if end - start >= self.min_len {
            VadEvent::End { start, end, forced: false }
        } else {
            VadEvent::Discard { start, end }
        }
    }
}

/// Scores frames of mono samples; one score per frame, in the unit of its [`VadConfig`].
pub trait FrameScorer: Send {
    /// Score of the next frame (`frame_len` samples at the stream's rate).
    fn score(&mut self, frame: &[f32]) -> f32;

    /// Sets the scorer up from the stream's first frames before any of them is scored (they
    /// are scored next, in order). A scorer with no state to set ignores them.
    fn prime(&mut self, _frames: &[&[f32]]) {}
}

/// Energy above an adaptive noise floor, in dB.
///
/// The floor follows quiet frames quickly downward and slowly upward, and almost freezes while
/// the frame is loud, so a word does not raise it but a fan switched on does within seconds.
/// Frames quieter than `min_speech_db` (absolute, dBFS) score 0: without it, a stream of exact
/// digital zeros would make the faintest hiss look like speech.
#[derive(Debug, Clone)]
pub struct EnergyScorer {
    floor_db: Option<f32>,
    /// Per-frame smoothing weights: toward quieter frames, louder quiet frames, loud frames.
    down: f32,
    up_quiet: f32,
    up_loud: f32,
    loud_db: f32,
    min_speech_db: f32,
}

/// Where a stream's first frames hold more than noise, its first noise floor lies at least this
/// far under the loudest of them (see [`EnergyScorer`]'s `prime`): a clip that is all word, or a
/// word alone among zeros, has no quieter frame to measure.
const PRIME_RANGE_DB: f32 = 20.0;

/// First frames whose levels spread over this much hold more than steady noise (white or room
/// noise spreads over 2-4 dB in 16 ms frames; a word over 10-30 dB).
const PRIME_NOISE_SPREAD_DB: f32 = 10.0;

/// Energies are clamped here (dBFS) so log(0) never appears.
const ENERGY_FLOOR_DB: f32 = -100.0;

impl EnergyScorer {
    /// `loud_db`: a frame this far above the floor counts as loud (the stay threshold).
    pub fn new(frame_seconds: f64, loud_db: f32) -> Self {
        // Time constants: 50 ms down, 2 s up while quiet, 30 s up while loud.
        let w = |tau: f64| (1.0 - (-frame_seconds / tau).exp()) as f32;
        EnergyScorer {
            floor_db: None,
            down: w(0.05),
            up_quiet: w(2.0),
            up_loud: w(30.0),
            loud_db,
            min_speech_db: -60.0,
        }
    }

    /// The current noise floor (dBFS), once a frame has been seen.
    pub fn floor_db(&self) -> Option<f32> {
        self.floor_db
    }
}

/// Mean power of a frame in dBFS (full-scale sine = -3 dB).
pub fn frame_db(frame: &[f32]) -> f32 {
    let power = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    (10.0 * power.max(1e-10).log10()).max(ENERGY_FLOOR_DB)
}

impl FrameScorer for EnergyScorer {
    /// The first noise floor is the quietest of the first frames that is not digital silence
    /// (below `min_speech_db`), not the first frame: a recording that starts with the word
    /// (FSDD's clips, a phrase cut tight, a click) would take the word for the floor and lose
    /// it. Where the first frames hold more than noise, which varies little from frame to frame
    /// (their levels spread over [`PRIME_NOISE_SPREAD_DB`] or more, or digital silence lies
    /// among them: a recording that may be all word), the floor is also at least
    /// [`PRIME_RANGE_DB`] under the loudest frame. Where every frame is digital silence, their
    /// level.
    fn prime(&mut self, frames: &[&[f32]]) {
        let db: Vec<f32> = frames.iter().map(|f| frame_db(f)).collect();
        let Some(loudest) = db.iter().copied().max_by(f32::total_cmp) else { return };
        let heard = db.iter().copied().filter(|&d| d >= self.min_speech_db).min_by(f32::total_cmp);
        let silence = db.iter().any(|&d| d < self.min_speech_db);
        self.floor_db = Some(match heard {
            Some(quietest) if silence || loudest - quietest >= PRIME_NOISE_SPREAD_DB => {
                quietest.min(loudest - PRIME_RANGE_DB)
            }
            Some(quietest) => quietest,
            None => loudest,
        });
    }

    fn score(&mut self, frame: &[f32]) -> f32 {
        let db = frame_db(frame);
        let floor = *self.floor_db.get_or_insert(db);
        let above = db - floor;
        let weight = if above < 0.0 {
            self.down
        } else if above < self.loud_db {
            self.up_quiet
        } else {
            self.up_loud
        };
        self.floor_db = Some(floor + weight * (db - floor));
        if db < self.min_speech_db { 0.0 } else { above }
    }
}

/// earshot's neural VAD behind a streaming upsampler to its 16 kHz.
pub struct EarshotScorer {
    detector: Box<earshot::Detector>,
    upsampler: Option<StreamResampler>,
    /// Upsampled samples not yet scored (less than one 256-sample frame between calls).
    pending: Vec<f32>,
    scratch: Vec<f32>,
    last: f32,
}

/// earshot's rate and frame.
const EARSHOT_RATE: u32 = 16_000;
const EARSHOT_FRAME: usize = 256;

impl EarshotScorer {
    /// For frames of `frame_len` samples at `rate` Hz; they must last earshot's 16 ms.
    pub fn new(rate: u32, frame_len: usize) -> Result<Self> {
        if frame_len as u64 * u64::from(EARSHOT_RATE) != EARSHOT_FRAME as u64 * u64::from(rate) {
            return Err(Error::Config(format!(
                "earshot needs 16 ms frames; {frame_len} samples at {rate} Hz is not"
            )));
        }
        let upsampler = if rate == EARSHOT_RATE {
            None
        } else {
            Some(StreamResampler::new(rate, EARSHOT_RATE, frame_len)?)
        };
        Ok(EarshotScorer {
            detector: earshot::Detector::default_boxed(),
            upsampler,
            pending: Vec::with_capacity(4 * EARSHOT_FRAME),
            scratch: Vec::with_capacity(4 * EARSHOT_FRAME),
            last: 0.0,
        })
    }
}

impl FrameScorer for EarshotScorer {
    fn score(&mut self, frame: &[f32]) -> f32 {
        match &mut self.upsampler {
            Some(up) => {
                self.scratch.clear();
                // A failure here means a bug in the chunking; score the frame as silence.
                if up.push(frame, &mut self.scratch).is_err() {
                    return 0.0;
                }
                self.pending.extend(self.scratch.iter().map(|s| s.clamp(-1.0, 1.0)));
            }
            None => self.pending.extend(frame.iter().map(|s| s.clamp(-1.0, 1.0))),
        }
        // The upsampler's delay means the first calls may have less than a frame; keep the
        // previous score until the next frame is complete.
        let mut consumed = 0;
        while self.pending.len() - consumed >= EARSHOT_FRAME {
            self.last = self.detector.predict_f32(&self.pending[consumed..consumed + EARSHOT_FRAME]);
            consumed += EARSHOT_FRAME;
        }
        self.pending.drain(..consumed);
        self.last
    }
}

/// A scorer of either kind, built for a stream at `rate` Hz with `frame_len`-sample frames.
pub fn scorer(
    kind: VadKind,
    config: &VadConfig,
    rate: u32,
    frame_len: usize,
) -> Result<Box<dyn FrameScorer>> {
    Ok(match kind {
        VadKind::Energy => Box::new(EnergyScorer::new(config.frame_seconds, config.stay_threshold)),
        VadKind::Earshot => Box::new(EarshotScorer::new(rate, frame_len)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_energy_floor_starts_at_the_quietest_first_frame_that_is_not_digital_silence() {
        let frame = |amp: f32| vec![amp; 128];
        let (loud, hiss, zeros) = (frame(0.3), frame(1e-2), frame(0.0));
        let floor = |frames: &[&[f32]]| {
            let mut scorer = EnergyScorer::new(FRAME_SECONDS, 5.0);
            scorer.prime(frames);
            scorer.floor_db().unwrap()
        };
        // Noise, then the word: the noise is the floor, and the word is well above it.
        assert_eq!(floor(&[&hiss, &loud, &hiss]), frame_db(&hiss));
        // All word, a little quieter at its end: well under the loudest.
        assert_eq!(floor(&[&loud, &frame(0.05)]), frame_db(&loud) - PRIME_RANGE_DB);
        // Noise alone (no word in the first frames): its own level, not lower.
        assert_eq!(floor(&[&hiss, &frame(1.2e-2)]), frame_db(&hiss));
        // Digital silence is no noise floor; with it, the floor is also well under the loudest.
        assert_eq!(floor(&[&loud, &zeros, &hiss, &loud]), frame_db(&hiss));
        assert_eq!(floor(&[&loud, &zeros, &zeros]), frame_db(&loud) - PRIME_RANGE_DB);
        assert_eq!(floor(&[&zeros, &zeros]), ENERGY_FLOOR_DB);
    }

    /// Timing in whole frames: onset 3, hangover 4, min 5, max 20.
    fn vad() -> Vad {
        let f = FRAME_SECONDS;
        Vad::new(&VadConfig {
            frame_seconds: f,
            start_threshold: 10.0,
            stay_threshold: 5.0,
            onset_seconds: 3.0 * f,
            hangover_seconds: 4.0 * f,
            min_utterance_seconds: 5.0 * f,
            max_utterance_seconds: 20.0 * f,
        })
        .unwrap()
    }

    /// Runs scores through the machine, returning (frame index, event) pairs.
    fn run(vad: &mut Vad, scores: &[f32]) -> Vec<(usize, VadEvent)> {
        let mut out = vec![];
        for &s in scores {
            let i = vad.frames_seen();
            if let Some(e) = vad.push(s) {
                out.push((i, e));
            }
        }
        out
    }

    fn frames(parts: &[(f32, usize)]) -> Vec<f32> {
        parts.iter().flat_map(|&(v, n)| std::iter::repeat_n(v, n)).collect()
    }

    #[test]
    fn an_utterance_starts_after_the_onset_and_ends_after_the_hangover() {
        let mut v = vad();
        let events = run(&mut v, &frames(&[(0.0, 5), (20.0, 8), (0.0, 10)]));
        assert_eq!(
            events,
            vec![
                (7, VadEvent::Start { start: 5 }),
                // Last voiced frame 12; the hangover of 4 quiet frames ends it at frame 16.
                (16, VadEvent::End { start: 5, end: 13, forced: false }),
            ]
        );
        assert!(v.is_idle());
    }

    #[test]
    fn hysteresis_keeps_speech_through_weaker_frames_and_short_dips() {
        let mut v = vad();
        // Strong, weak (above stay), a 3-frame dip (shorter than the hangover), strong again.
        let events = run(&mut v, &frames(&[(20.0, 4), (6.0, 4), (0.0, 3), (20.0, 2), (0.0, 6)]));
        assert_eq!(
            events,
            vec![(2, VadEvent::Start { start: 0 }), (16, VadEvent::End { start: 0, end: 13, forced: false })]
        );
    }

    #[test]
    fn clicks_shorter_than_the_onset_never_start() {
        let mut v = vad();
        let events = run(&mut v, &frames(&[(20.0, 2), (0.0, 3), (20.0, 1), (4.0, 1), (20.0, 2), (0.0, 9)]));
        assert!(events.is_empty(), "{events:?}");
        // A weak frame (above stay, below start) also breaks a candidate onset.
        assert!(run(&mut v, &frames(&[(20.0, 2), (6.0, 1), (20.0, 2), (0.0, 9)])).is_empty());
    }

    #[test]
    fn short_utterances_are_discarded() {
        let mut v = vad();
        let events = run(&mut v, &frames(&[(20.0, 4), (0.0, 10)]));
        assert_eq!(
            events,
            vec![(2, VadEvent::Start { start: 0 }), (7, VadEvent::Discard { start: 0, end: 4 })]
        );
    }

    #[test]
    fn long_sounds_are_cut_at_the_maximum_and_need_quiet_before_the_next() {
        let mut v = vad();
        let events = run(&mut v, &frames(&[(20.0, 30), (0.0, 3), (20.0, 5), (0.0, 4), (20.0, 6), (0.0, 6)]));
        assert_eq!(
            events,
            vec![
                (2, VadEvent::Start { start: 0 }),
                (19, VadEvent::End { start: 0, end: 20, forced: true }),
                // Frames 20-29 loud, 30-32 quiet (< hangover), 33-37 loud: still cooling down.
                // 38-41 quiet ends the cooldown; 42-47 is a new utterance.
                (44, VadEvent::Start { start: 42 }),
                (51, VadEvent::End { start: 42, end: 48, forced: false }),
            ]
        );
    }

    #[test]
    fn finish_closes_an_utterance_in_progress() {
        let mut v = vad();
        run(&mut v, &frames(&[(20.0, 7), (0.0, 2)]));
        assert_eq!(v.finish(), Some(VadEvent::End { start: 0, end: 7, forced: false }));
        assert_eq!(v.finish(), None);
    }

    #[test]
    fn energy_floor_tracks_noise_and_ignores_digital_silence() {
        let mut s = EnergyScorer::new(FRAME_SECONDS, 7.0);
        let noise: Vec<f32> = (0..128).map(|i| if i % 2 == 0 { 0.01 } else { -0.01 }).collect();
        for _ in 0..200 {
            s.score(&noise);
        }
        let floor = s.floor_db().unwrap();
        assert!((floor + 40.0).abs() < 0.5, "{floor}");
        let loud: Vec<f32> = noise.iter().map(|x| x * 30.0).collect();
        let score = s.score(&loud);
        assert!((score - 29.5).abs() < 0.5, "{score}");
        // A second of speech barely moves the floor.
        for _ in 0..60 {
            s.score(&loud);
        }
        assert!(s.floor_db().unwrap() < floor + 2.0);
        // Exact zeros: the floor drops, but faint sound below -60 dBFS is not speech.
        let mut z = EnergyScorer::new(FRAME_SECONDS, 7.0);
        for _ in 0..50 {
            assert_eq!(z.score(&[0.0; 128]), 0.0);
        }
        assert_eq!(z.score(&vec![0.0005; 128]), 0.0);
    }

    #[test]
    fn earshot_scores_silence_low_and_needs_16_ms_frames() {
        let mut e = EarshotScorer::new(8000, 128).unwrap();
        // Silence settles near 0.15, below the stay threshold.
        let silence: Vec<f32> = (0..100).map(|_| e.score(&[0.0; 128])).collect();
        let stay = VadConfig::for_kind(VadKind::Earshot).stay_threshold;
        assert!(silence.iter().all(|&p| p < stay), "{silence:?}");
        assert!(EarshotScorer::new(8000, 100).is_err());
    }
}
