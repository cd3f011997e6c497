//! Cutting a live stream into utterances and sequences.
//!
//! A [`Segmenter`] takes mono samples at the front end's rate in pushes of any size, frames
//! them for the VAD ([`crate::vad`]), and emits each finished utterance (its samples from a
//! short pre-roll before the onset, so the word's soft start is kept, as in FSDD's tightly
//! trimmed clips) and a sequence break once no one has spoken for `gap` seconds.
//!
//! [`loudest_window`] is the push-to-talk alternative: the loudest fixed-length window of a
//! recording, found in one pass with a running sum.

use crate::vad::{FrameScorer, Vad, VadConfig, VadEvent, VadKind, scorer};
use crate::{Error, FeatureConfig, Result};

/// Audio kept before a detected onset by default (seconds): FSDD's clips start about this
/// close to the word.
pub const PREROLL_SECONDS: f64 = 0.05;

/// The stream's first frames are held this long (seconds) and the VAD's scorer is set up from
/// them ([`FrameScorer::prime`](crate::vad::FrameScorer::prime)) before any is scored: a
/// recording that starts with the word would otherwise lose it. Only the first utterance of a
/// stream can be reported this much later.
pub const WARMUP_SECONDS: f64 = 0.5;

/// How the stream is cut.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmenterConfig {
    pub kind: VadKind,
    pub vad: VadConfig,
    /// Audio kept before the detected onset (seconds), never reaching back into the previous
    /// utterance.
    pub preroll_seconds: f64,
    /// Silence after an utterance that ends its sequence (seconds).
    pub gap_seconds: f64,
}

impl SegmenterConfig {
    /// The defaults for a VAD kind: 50 ms pre-roll ([`PREROLL_SECONDS`]), 1 s gap.
    pub fn new(kind: VadKind) -> Self {
        SegmenterConfig {
            kind,
            vad: VadConfig::for_kind(kind),
            preroll_seconds: PREROLL_SECONDS,
            gap_seconds: 1.0,
        }
    }

    /// The defaults for a VAD kind and a model's front end. One that trims silence itself gets
    /// a 200 ms pre-roll: a VAD hears a word's vowel, not the weak consonant before it (the /s/
    /// of "six", the /th/ of "three", 100-200 ms), and the trim cuts the silence that comes
    /// with it. One that does not (the original recipe, trained on FSDD's tight cuts, which
    /// hears a word differently where it sits later in the window) keeps 50 ms.
    pub fn for_front_end(kind: VadKind, features: &FeatureConfig) -> Self {
        let preroll_seconds = if features.trim_db.is_some() { 0.2 } else { PREROLL_SECONDS };
        SegmenterConfig { preroll_seconds, ..SegmenterConfig::new(kind) }
    }
}

/// One utterance cut from the stream. Times are seconds since the first sample pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// From `preroll` before the onset (or the previous utterance's end, if later) to the last
    /// voiced frame.
    pub samples: Vec<f32>,
    /// Onset (without the pre-roll).
    pub start_s: f64,
    pub end_s: f64,
    /// Cut at the maximum length rather than ended by silence.
    pub forced: bool,
}

/// What the segmenter reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Utterance(Utterance),
    /// `gap` seconds of silence followed the last utterance: its sequence is complete.
    SequenceEnd,
}

/// Streaming segmenter; see the module documentation.
pub struct Segmenter {
    rate: u32,
    frame_len: usize,
    vad: Vad,
    scorer: Box<dyn FrameScorer>,
    /// The frame being filled.
    frame: Vec<f32>,
    /// Recent samples; `history[0]` is stream sample `history_start`.
    history: Vec<f32>,
    history_start: usize,
    preroll: usize,
    gap_frames: usize,
    /// End frame of the last utterance of the open sequence.
    last_end: Option<usize>,
    /// First sample after the last utterance: where the next one's pre-roll stops.
    utterance_end: usize,
    /// Frames held before the scorer is primed ([`WARMUP_SECONDS`]).
    warmup: usize,
    /// Frames held so far; `None` once the scorer is primed.
    held: Option<usize>,
}

impl Segmenter {
    /// A segmenter for mono samples at `rate` Hz.
    pub fn new(config: &SegmenterConfig, rate: u32) -> Result<Self> {
        let frame_len = (f64::from(rate) * config.vad.frame_seconds).round() as usize;
        if frame_len == 0 {
            return Err(Error::Config(format!("a VAD frame at {rate} Hz has no samples")));
        }
        if config.gap_seconds.is_nan() || config.gap_seconds <= config.vad.hangover_seconds {
            return Err(Error::Config(format!(
                "the sequence gap ({} s) must be longer than the VAD hangover ({} s)",
                config.gap_seconds, config.vad.hangover_seconds
            )));
        }
        let frame_seconds = frame_len as f64 / f64::from(rate);
        let max_samples = (config.vad.max_utterance_seconds + config.preroll_seconds) * f64::from(rate);
        Ok(Segmenter {
            rate,
            frame_len,
            vad: Vad::new(&config.vad)?,
            scorer: scorer(config.kind, &config.vad, rate, frame_len)?,
            frame: Vec::with_capacity(frame_len),
            history: Vec::with_capacity(2 * max_samples as usize + 4 * frame_len),
            history_start: 0,
            preroll: (config.preroll_seconds.max(0.0) * f64::from(rate)).round() as usize,
            gap_frames: (config.gap_seconds / frame_seconds).ceil() as usize,
            last_end: None,
            utterance_end: 0,
            warmup: (WARMUP_SECONDS / frame_seconds).round().max(1.0) as usize,
            held: Some(0),
        })
    }

    /// Samples per VAD frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Seconds of audio pushed so far (whole frames).
    pub fn seconds(&self) -> f64 {
        self.seconds_at(self.vad.frames_seen())
    }

    fn seconds_at(&self, frame: usize) -> f64 {
        (frame * self.frame_len) as f64 / f64::from(self.rate)
    }

    /// Feeds samples, appending finished segments to `out`.
    pub fn push(&mut self, mut samples: &[f32], out: &mut Vec<Segment>) {
        while !samples.is_empty() {
            let take = (self.frame_len - self.frame.len()).min(samples.len());
            self.frame.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.frame.len() == self.frame_len {
                self.process_frame(out);
                self.frame.clear();
            }
        }
    }

    /// Ends the stream: a trailing partial frame is dropped, an utterance in progress is
    /// closed, and an open sequence ends.
    pub fn finish(&mut self, out: &mut Vec<Segment>) {
        self.prime(out);
        if let Some(event) = self.vad.finish() {
            self.handle(event, out);
        }
        if self.last_end.take().is_some() {
            out.push(Segment::SequenceEnd);
        }
    }

    fn process_frame(&mut self, out: &mut Vec<Segment>) {
        self.history.extend_from_slice(&self.frame);
        match &mut self.held {
            Some(held) => {
                *held += 1;
                if *held >= self.warmup {
                    self.prime(out);
                }
            }
            None => self.step(self.history_start + self.history.len() - self.frame_len, out),
        }
    }

    /// Primes the scorer with the held frames and scores them (nothing once primed). Nothing is
    /// trimmed from the history while frames are held, so they all are in it.
    fn prime(&mut self, out: &mut Vec<Segment>) {
        let Some(held) = self.held.take() else { return };
        let frames: Vec<&[f32]> = self.history.chunks_exact(self.frame_len).take(held).collect();
        self.scorer.prime(&frames);
        let first = self.history_start;
        for i in 0..held {
            self.step(first + i * self.frame_len, out);
        }
    }

    /// Scores the frame that starts at stream sample `at` (in the history) and reports what it
    /// ends.
    fn step(&mut self, at: usize, out: &mut Vec<Segment>) {
        let from = at - self.history_start;
        let score = self.scorer.score(&self.history[from..from + self.frame_len]);
        if let Some(event) = self.vad.push(score) {
            self.handle(event, out);
        }
        let gap_over = self.last_end.is_some_and(|end| self.vad.frames_seen() - end >= self.gap_frames);
        if gap_over && self.vad.is_idle() {
            self.last_end = None;
            out.push(Segment::SequenceEnd);
        }
        self.trim();
    }

    fn handle(&mut self, event: VadEvent, out: &mut Vec<Segment>) {
        if let VadEvent::End { start, end, forced } = event {
            let from = (start * self.frame_len)
                .saturating_sub(self.preroll)
                .max(self.utterance_end)
                .max(self.history_start);
            let to = (end * self.frame_len).min(self.history_start + self.history.len()).max(from);
            self.utterance_end = to;
            let samples = self.history[from - self.history_start..to - self.history_start].to_vec();
            out.push(Segment::Utterance(Utterance {
                samples,
                start_s: self.seconds_at(start),
                end_s: self.seconds_at(end),
                forced,
            }));
            self.last_end = Some(end);
        }
    }

    /// Forgets samples no future utterance can need: everything before the pending onset's
    /// pre-roll, or before the last `preroll` samples when idle. Drains in bulk, not per frame.
    fn trim(&mut self) {
        let now = self.history_start + self.history.len();
        let keep_from = match self.vad.pending_start() {
            Some(start) => (start * self.frame_len).saturating_sub(self.preroll),
            None => now.saturating_sub(self.preroll),
        };
        let excess = keep_from.saturating_sub(self.history_start);
        if excess > self.history.capacity() / 2 {
            self.history.drain(..excess);
            self.history_start += excess;
        }
    }
}

/// The loudest `window` samples of `samples` (by energy; the whole slice when shorter), in
/// O(n): a running sum of squares slides one sample at a time.
pub fn loudest_window(samples: &[f32], window: usize) -> &[f32] {
    if window == 0 || samples.len() <= window {
        return samples;
    }
    // f64: adding and subtracting 10^5 squares in f32 would drift.
    let mut sum: f64 = samples[..window].iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let (mut best, mut best_start) = (sum, 0);
    for start in 1..=samples.len() - window {
        let out = f64::from(samples[start - 1]);
        let inn = f64::from(samples[start + window - 1]);
        sum += inn * inn - out * out;
        if sum > best {
            best = sum;
            best_start = start;
        }
    }
    &samples[best_start..best_start + window]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|i| amp * (i as f32 * 0.3).sin()).collect()
    }

    fn segment(samples: &[f32], piece: usize, gap: f64) -> Vec<Segment> {
        let mut cfg = SegmenterConfig::new(VadKind::Energy);
        cfg.gap_seconds = gap;
        let mut s = Segmenter::new(&cfg, 8000).unwrap();
        let mut out = vec![];
        for p in samples.chunks(piece) {
            s.push(p, &mut out);
        }
        s.finish(&mut out);
        out
    }

    /// Silence, 0.4 s tone, 0.3 s silence, 0.5 s tone, 1.5 s silence, 0.4 s tone, silence.
    fn stream() -> Vec<f32> {
        let mut x = vec![0.0; 4000];
        x.extend(tone(3200, 0.3));
        x.extend(vec![0.0; 2400]);
        x.extend(tone(4000, 0.3));
        x.extend(vec![0.0; 12000]);
        x.extend(tone(3200, 0.3));
        x.extend(vec![0.0; 4000]);
        x
    }

    #[test]
    fn tones_become_utterances_and_a_long_pause_ends_the_sequence() {
        let out = segment(&stream(), 1000, 1.0);
        // (start, end) of each utterance, None for a sequence end.
        let got: Vec<Option<(f64, f64)>> = out
            .iter()
            .map(|s| match s {
                Segment::Utterance(u) => Some((u.start_s, u.end_s)),
                Segment::SequenceEnd => None,
            })
            .collect();
        let expected = [Some((0.5, 0.9)), Some((1.2, 1.7)), None, Some((3.2, 3.6)), None];
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (g, e) in got.iter().zip(expected) {
            match (g, e) {
                // Boundaries are accurate to one 16 ms frame.
                (Some(g), Some(e)) => {
                    assert!((g.0 - e.0).abs() <= 0.017 && (g.1 - e.1).abs() <= 0.017, "{got:?}")
                }
                (None, None) => {}
                _ => panic!("{got:?}"),
            }
        }
        let Segment::Utterance(u) = &out[0] else { panic!() };
        // 50 ms pre-roll of silence, then the tone.
        assert_eq!(u.samples.len(), ((u.end_s - u.start_s) * 8000.0).round() as usize + 400);
        assert!(u.samples[..400].iter().all(|&s| s == 0.0));
        assert!(u.samples[500..600].iter().any(|&s| s != 0.0));
    }

    /// A recording that starts with the word: 0.4 s of tone over quiet noise, then the noise.
    fn starts_with_the_word(noise: f32) -> Vec<f32> {
        let mut x: Vec<f32> = tone(3200, 0.3);
        x.extend(vec![0.0; 8000]);
        // Deterministic hiss (a fixed pattern is enough for frame energies).
        x.iter_mut().enumerate().for_each(|(i, v)| *v += noise * ((i * 7919 % 97) as f32 / 48.0 - 1.0));
        x
    }

    #[test]
    fn a_word_at_the_very_start_is_heard() {
        // The scorer's floor used to start at the first frame: the word itself, never heard.
        for noise in [0.0, 1e-3] {
            for piece in [1, 160, 100_000] {
                let out = segment(&starts_with_the_word(noise), piece, 1.0);
                let spans: Vec<(f64, f64)> = out
                    .iter()
                    .filter_map(
                        |s| if let Segment::Utterance(u) = s { Some((u.start_s, u.end_s)) } else { None },
                    )
                    .collect();
                assert_eq!(spans.len(), 1, "noise {noise}, pushes of {piece}: {spans:?}");
                assert!(spans[0].0 <= 0.017 && (spans[0].1 - 0.4).abs() <= 0.017, "{spans:?}");
                assert_eq!(out.last(), Some(&Segment::SequenceEnd));
            }
        }
    }

    #[test]
    fn a_stream_shorter_than_the_warm_up_is_still_read() {
        // A 0.3 s word (a tone that swells and fades) and nothing after it: every frame is still
        // held when the stream ends.
        let word: Vec<f32> = tone(2400, 0.3)
            .iter()
            .enumerate()
            .map(|(i, s)| s * (std::f32::consts::PI * i as f32 / 2400.0).sin().powi(2))
            .collect();
        let out = segment(&word, 2400, 1.0);
        let spans: Vec<Option<(f64, f64)>> = out
            .iter()
            .map(|s| if let Segment::Utterance(u) = s { Some((u.start_s, u.end_s)) } else { None })
            .collect();
        assert!(matches!(spans[..], [Some((start, end)), None] if start < 0.1 && end > 0.2), "{spans:?}");
    }

    #[test]
    fn the_pre_roll_stops_at_the_previous_utterance() {
        // 0.5 s of pre-roll would reach 0.2 s into the first tone before the 0.3 s pause.
        let mut cfg = SegmenterConfig::new(VadKind::Energy);
        cfg.preroll_seconds = 0.5;
        let mut s = Segmenter::new(&cfg, 8000).unwrap();
        let mut out = vec![];
        s.push(&stream(), &mut out);
        let utterances: Vec<&Utterance> =
            out.iter().filter_map(|s| if let Segment::Utterance(u) = s { Some(u) } else { None }).collect();
        let (first, second) = (utterances[0], utterances[1]);
        // The second starts where the first ended: the silence between, then its own tone.
        let lead = ((second.start_s - first.end_s) * 8000.0).round() as usize;
        assert_eq!(second.samples.len(), lead + ((second.end_s - second.start_s) * 8000.0).round() as usize);
        assert!(second.samples[..lead].iter().all(|&s| s == 0.0), "the first tone leaked in");
        // The first, with nothing before it, gets the whole lead-in (shorter than its pre-roll).
        assert_eq!(first.samples.len(), (first.end_s * 8000.0).round() as usize);
    }

    #[test]
    fn push_size_does_not_change_the_result() {
        let x = stream();
        let reference = segment(&x, 1000, 1.0);
        for piece in [1, 7, 128, 129, 5000, x.len()] {
            assert_eq!(segment(&x, piece, 1.0), reference, "pieces of {piece}");
        }
    }

    #[test]
    fn a_front_end_that_trims_gets_the_long_pre_roll() {
        let trimming = FeatureConfig { trim_db: Some(40.0), ..FeatureConfig::default() };
        assert_eq!(SegmenterConfig::for_front_end(VadKind::Energy, &trimming).preroll_seconds, 0.2);
        let original = SegmenterConfig::for_front_end(VadKind::Earshot, &FeatureConfig::default());
        assert_eq!(original, SegmenterConfig::new(VadKind::Earshot));
    }

    #[test]
    fn gap_must_exceed_the_hangover() {
        let mut cfg = SegmenterConfig::new(VadKind::Energy);
        cfg.gap_seconds = 0.1;
        assert!(Segmenter::new(&cfg, 8000).is_err());
    }

    #[test]
    fn loudest_window_finds_the_burst_in_linear_time() {
        let mut x = vec![0.01; 12000];
        x[7000..8000].fill(0.5);
        let w = loudest_window(&x, 8000);
        assert_eq!(w.len(), 8000);
        let start = w.as_ptr() as usize - x.as_ptr() as usize;
        // Any window containing the burst ties on energy; the first one wins.
        assert_eq!(start / 4, 0);
        x[11000..12000].fill(0.6);
        let w = loudest_window(&x, 8000);
        assert_eq!((w.as_ptr() as usize - x.as_ptr() as usize) / 4, 4000);
        assert_eq!(loudest_window(&x[..100], 8000).len(), 100);
    }
}
