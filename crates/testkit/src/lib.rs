//! Test streams for the VADs and the recogniser (dev-only; not part of the library's API):
//! "spoken sequences" with known answers, recordings joined by pauses into groups, white noise
//! at a chosen SNR over the whole stream, and a scorer that compares what a recogniser heard
//! with the truth. Used by the core crate's stream tests and its `vad_compare` example.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use spoken_digits::recogniser::Heard;

/// How recordings are arranged.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Silence before the first recording (seconds).
    pub lead_in: f64,
    /// Pause between recordings of one group, drawn uniformly from this range (seconds).
    pub pause: (f64, f64),
    /// Pause between groups (seconds); longer than the recogniser's gap.
    pub group_pause: f64,
    /// Every recording is scaled to this RMS level (dBFS) first, like speakers at one distance
    /// from one microphone; `None` keeps the recordings as they are. FSDD's speakers differ by
    /// 20 dB (theo's clips average -44 dBFS, jackson's -22), so without this a single noise level
    /// would be 20 dB SNR for one speaker and 0 dB for another.
    pub level_dbfs: Option<f32>,
    /// White noise over the whole stream at this SNR (dB, relative to the recordings' mean
    /// power), or none.
    pub snr_db: Option<f32>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout { lead_in: 0.5, pause: (0.3, 0.6), group_pause: 1.6, level_dbfs: Some(-26.0), snr_db: None }
    }
}

/// Where one recording sits in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub digit: u8,
    pub start_s: f64,
    pub end_s: f64,
}

/// A stream and its truth.
#[derive(Debug, Clone)]
pub struct Stream {
    pub samples: Vec<f32>,
    pub rate: u32,
    /// Recordings in order, grouped as they should be reported.
    pub groups: Vec<Vec<Placed>>,
}

impl Stream {
    /// The expected sequences, e.g. `["415", "92"]`.
    pub fn expected_sequences(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.iter().map(|p| char::from(b'0' + p.digit)).collect()).collect()
    }
}

/// Lays out `groups` of `(digit, samples)` at `rate`; every random draw comes from `rng`.
pub fn build<R: Rng + ?Sized>(
    groups: &[Vec<(u8, &[f32])>],
    rate: u32,
    layout: &Layout,
    rng: &mut R,
) -> Stream {
    let secs = |n: usize| n as f64 / f64::from(rate);
    let silence = |s: f64| (s * f64::from(rate)).round() as usize;
    let mut samples = vec![0.0f32; silence(layout.lead_in)];
    let mut placed_groups = vec![];
    let (mut speech_power, mut speech_len) = (0.0f64, 0usize);
    for (g, group) in groups.iter().enumerate() {
        if g > 0 {
            samples.resize(samples.len() + silence(layout.group_pause), 0.0);
        }
        let mut placed = vec![];
        for (i, &(digit, clip)) in group.iter().enumerate() {
            if i > 0 {
                let pause = rng.random_range(layout.pause.0..=layout.pause.1);
                samples.resize(samples.len() + silence(pause), 0.0);
            }
            let start = samples.len();
            let power = clip.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
            let gain = match layout.level_dbfs {
                Some(db) if power > 0.0 => {
                    (10f64.powf(f64::from(db) / 10.0) * clip.len() as f64 / power).sqrt() as f32
                }
                _ => 1.0,
            };
            samples.extend(clip.iter().map(|&s| (s * gain).clamp(-1.0, 1.0)));
            speech_power += power * f64::from(gain) * f64::from(gain);
            speech_len += clip.len();
            placed.push(Placed { digit, start_s: secs(start), end_s: secs(samples.len()) });
        }
        placed_groups.push(placed);
    }
    samples.resize(samples.len() + silence(layout.group_pause), 0.0);
    if let Some(snr) = layout.snr_db {
        let power = speech_power / speech_len.max(1) as f64;
        let sigma = (power / 10f64.powf(f64::from(snr) / 10.0)).sqrt() as f32;
        for s in &mut samples {
            let n: f32 = StandardNormal.sample(rng);
            *s = (*s + sigma * n).clamp(-1.0, 1.0);
        }
    }
    Stream { samples, rate, groups: placed_groups }
}

/// How well what was heard matches the truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Recordings in the stream.
    pub recordings: usize,
    /// Utterances the recogniser reported.
    pub utterances: usize,
    /// Recordings overlapped by exactly one utterance that overlaps no other recording.
    pub segmented: usize,
    /// Of those, the ones classified as the right digit.
    pub correct: usize,
    /// Utterances overlapping no recording (noise taken for speech).
    pub false_alarms: usize,
    /// Recordings no utterance overlaps.
    pub missed: usize,
    /// Groups in the stream, and groups reported as exactly the right sequence in the right
    /// place (sequences compared in order).
    pub groups: usize,
    pub groups_exact: usize,
}

impl Score {
    /// Adds another stream's score.
    pub fn add(&mut self, o: &Score) {
        self.recordings += o.recordings;
        self.utterances += o.utterances;
        self.segmented += o.segmented;
        self.correct += o.correct;
        self.false_alarms += o.false_alarms;
        self.missed += o.missed;
        self.groups += o.groups;
        self.groups_exact += o.groups_exact;
    }
}

/// Scores `heard` (in the order reported) against `stream`'s truth.
pub fn score(stream: &Stream, heard: &[Heard]) -> Score {
    let truth: Vec<&Placed> = stream.groups.iter().flatten().collect();
    let utterances: Vec<_> = heard
        .iter()
        .filter_map(|h| match h {
            Heard::Digit(d) => Some(d),
            Heard::Sequence(_) => None,
        })
        .collect();
    let overlaps = |a: (f64, f64), b: (f64, f64)| a.0 < b.1 && b.0 < a.1;
    let mut s = Score {
        recordings: truth.len(),
        utterances: utterances.len(),
        groups: stream.groups.len(),
        ..Score::default()
    };
    for t in &truth {
        let hits: Vec<_> =
            utterances.iter().filter(|u| overlaps((u.start_s, u.end_s), (t.start_s, t.end_s))).collect();
        match hits.as_slice() {
            [] => s.missed += 1,
            [u] => {
                let others =
                    truth.iter().filter(|o| overlaps((u.start_s, u.end_s), (o.start_s, o.end_s))).count();
                if others == 1 {
                    s.segmented += 1;
                    s.correct += usize::from(u.digit == Some(t.digit));
                }
            }
            _ => {}
        }
    }
    s.false_alarms = utterances
        .iter()
        .filter(|u| !truth.iter().any(|t| overlaps((u.start_s, u.end_s), (t.start_s, t.end_s))))
        .count();
    // Each reported sequence belongs to the group its digits overlap; a group is exact when
    // exactly one sequence belongs to it and reads right.
    let expected = stream.expected_sequences();
    let spans: Vec<(f64, f64)> = stream
        .groups
        .iter()
        .map(|g| (g.first().map_or(0.0, |p| p.start_s), g.last().map_or(0.0, |p| p.end_s)))
        .collect();
    let mut owners: Vec<Vec<&str>> = vec![vec![]; spans.len()];
    let mut span: Option<(f64, f64)> = None;
    for h in heard {
        match h {
            Heard::Digit(d) => {
                span = Some(span.map_or((d.start_s, d.end_s), |(a, b)| (a.min(d.start_s), b.max(d.end_s))));
            }
            Heard::Sequence(text) => {
                let Some(sp) = span.take() else { continue };
                let hits: Vec<usize> = (0..spans.len()).filter(|&g| overlaps(sp, spans[g])).collect();
                if let [g] = hits.as_slice() {
                    owners[*g].push(text);
                }
            }
        }
    }
    s.groups_exact = owners.iter().zip(&expected).filter(|(o, e)| o.len() == 1 && o[0] == e.as_str()).count();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use spoken_digits::prediction::Prediction;
    use spoken_digits::recogniser::HeardDigit;

    #[test]
    fn layout_places_clips_and_noise_has_the_requested_snr() {
        let clip = vec![0.1f32; 800];
        let groups = vec![vec![(1u8, &clip[..]), (2, &clip[..])], vec![(3, &clip[..])]];
        let layout = Layout { snr_db: Some(10.0), level_dbfs: None, ..Layout::default() };
        let s = build(&groups, 8000, &layout, &mut StdRng::seed_from_u64(1));
        assert_eq!(s.expected_sequences(), vec!["12", "3"]);
        let first = &s.groups[0][0];
        assert!((first.start_s - 0.5).abs() < 1e-9 && (first.end_s - 0.6).abs() < 1e-9);
        // Noise power in the lead-in: speech power (0.01) / 10.
        let lead = &s.samples[..4000];
        let p = lead.iter().map(|x| x * x).sum::<f32>() / 4000.0;
        assert!((p / 0.001 - 1.0).abs() < 0.1, "{p}");
    }

    #[test]
    fn scoring_counts_splits_misses_and_false_alarms() {
        let clip = vec![0.1f32; 800];
        let groups = vec![vec![(1u8, &clip[..]), (2, &clip[..])]];
        let s = build(&groups, 8000, &Layout::default(), &mut StdRng::seed_from_u64(1));
        let (a, b) = (&s.groups[0][0], &s.groups[0][1]);
        let heard = |digit: u8, start_s: f64, end_s: f64| {
            let mut p = [0.0; 10];
            p[usize::from(digit)] = 1.0;
            Heard::Digit(HeardDigit {
                digit: Some(digit),
                prediction: Prediction::from_probabilities(p),
                start_s,
                end_s,
                detected: std::time::Instant::now(),
                samples: vec![],
            })
        };
        let perfect =
            [heard(1, a.start_s, a.end_s), heard(2, b.start_s, b.end_s), Heard::Sequence("12".into())];
        let sc = score(&s, &perfect);
        assert_eq!((sc.segmented, sc.correct, sc.groups_exact, sc.false_alarms), (2, 2, 1, 0));
        // One utterance spanning both recordings, plus noise in the lead-in.
        let merged = [heard(0, 0.1, 0.2), heard(1, a.start_s, b.end_s), Heard::Sequence("01".into())];
        let sc = score(&s, &merged);
        assert_eq!((sc.segmented, sc.missed, sc.false_alarms, sc.groups_exact), (0, 0, 1, 0));
    }
}
