// File names and manifests come from outside: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]
//! The Free Spoken Digit Dataset: file names, the hold-out manifest and the splits.
//!
//! Recordings are named `{digit}_{speaker}_{index}.wav` (or any other extension that
//! [`audio::EXTENSIONS`] lists, so a folder of FLAC or M4A takes trains too). FSDD's own split
//! puts index 0-4 in the test set. The recordings listed in the hold-out manifest (`holdout.txt`,
//! copied to `inference_audio/` by setup) are excluded from training, validation and test in every
//! split, whatever format a copy of one is in.
//! Extra recordings (a user's own voice, from `listen --enroll`) join the training set only
//! ([`split_with_extra`]).

use crate::{Error, NUM_CLASSES, Result, audio};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One labelled recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub path: PathBuf,
    pub digit: u8,
    pub speaker: String,
    pub index: u32,
}

/// `(digit, speaker, index)` from a name like `7_jackson_32.wav` (or `.flac`, `.M4A`, any of
/// [`audio::EXTENSIONS`] in any case), or `None`.
pub fn parse_name(name: &str) -> Option<(u8, String, u32)> {
    let (stem, ext) = name.rsplit_once('.')?;
    if !audio::EXTENSIONS.iter().any(|known| ext.eq_ignore_ascii_case(known)) {
        return None;
    }
    let mut parts = stem.splitn(3, '_');
    let digit: u8 = parts.next()?.parse().ok()?;
    let speaker = parts.next()?;
    let index: u32 = parts.next()?.parse().ok()?;
    let ok = usize::from(digit) < NUM_CLASSES && !speaker.is_empty();
    ok.then(|| (digit, speaker.to_string(), index))
}

/// The digit a file name announces (`7_...`), used to score predictions on any folder.
pub fn label_from_name(path: &Path) -> Option<u8> {
    let name = path.file_name()?.to_str()?;
    let (head, _) = name.split_once('_')?;
    let digit: u8 = head.parse().ok()?;
    (head.len() == 1 && usize::from(digit) < NUM_CLASSES).then_some(digit)
}

/// Reads the hold-out manifest: one file name per line, `#` starts a comment.
pub fn read_holdout(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// The recordings found in a folder.
#[derive(Debug, Default)]
pub struct Scan {
    pub recordings: Vec<Recording>,
    /// Files whose names do not parse (reported once, then ignored).
    pub ignored: Vec<PathBuf>,
    /// Hold-out files that were present and left out.
    pub held_out: usize,
}

/// Lists the FSDD-named recordings of `dir` (sorted), leaving out `holdout`.
pub fn scan(dir: &Path, holdout: &HashSet<String>) -> Result<Scan> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    // The manifest names wav files; a copy in another format is the same recording.
    let held: HashSet<&str> = holdout.iter().map(|n| stem(n)).collect();
    let mut scan = Scan::default();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if held.contains(stem(&name)) {
            scan.held_out += 1;
        } else if let Some((digit, speaker, index)) = parse_name(&name) {
            scan.recordings.push(Recording { path, digit, speaker, index });
        } else {
            scan.ignored.push(path);
        }
    }
    if scan.recordings.is_empty() {
        return Err(Error::Dataset(format!(
            "no recordings named <digit>_<speaker>_<index>.wav (or .flac, .mp3, ...) in {} (run scripts/setup)",
            dir.display()
        )));
    }
    scan.recordings.sort_by(|a, b| a.path.cmp(&b.path));
    scan.ignored.sort();
    Ok(scan)
}

/// A file name without its extension.
fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// The share of the non-test recordings that validates (`train --val-fraction`'s default, and
/// the split `evaluate` and the string model's training rebuild).
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

/// How recordings are divided into train, validation and test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// FSDD's own: index 0-4 test, 5-49 train, a seeded validation slice of the train part.
    Official,
    /// The original project's shuffled 80/10/10.
    Random,
    /// One speaker held out entirely as the test set.
    Speaker(String),
}

impl FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "official" => Ok(Split::Official),
            "random" => Ok(Split::Random),
            _ => match s.strip_prefix("speaker:") {
                Some(name) if !name.is_empty() => Ok(Split::Speaker(name.to_string())),
                _ => Err(Error::Config(format!("unknown split '{s}' (official, random, speaker:<name>)"))),
            },
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Official => f.write_str("official"),
            Split::Random => f.write_str("random"),
            Split::Speaker(s) => write!(f, "speaker:{s}"),
        }
    }
}

/// Train, validation and test recordings.
#[derive(Debug, Clone, Default)]
pub struct Sets {
    pub train: Vec<Recording>,
    pub val: Vec<Recording>,
    pub test: Vec<Recording>,
}

/// Divides `recordings` by `split`; `val_fraction` of the non-test part is the validation set.
/// Every split is a pure function of its inputs and `seed`.
pub fn split(recordings: &[Recording], split: &Split, val_fraction: f64, seed: u64) -> Result<Sets> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut pool, test): (Vec<Recording>, Vec<Recording>) = match split {
        Split::Official => recordings.iter().cloned().partition(|r| r.index >= 5),
        Split::Speaker(name) => {
            if !recordings.iter().any(|r| &r.speaker == name) {
                let mut speakers: Vec<&str> = recordings.iter().map(|r| r.speaker.as_str()).collect();
                speakers.sort_unstable();
                speakers.dedup();
                return Err(Error::Dataset(format!("no speaker '{name}'; known: {}", speakers.join(", "))));
            }
            recordings.iter().cloned().partition(|r| &r.speaker != name)
        }
        Split::Random => {
            let mut all = recordings.to_vec();
            all.shuffle(&mut rng);
            let n_test = all.len() / 10;
            let test = all.split_off(all.len() - n_test);
            (all, test)
        }
    };
    if !matches!(split, Split::Random) {
        pool.shuffle(&mut rng);
    }
    let n_val = ((pool.len() as f64) * val_fraction).round() as usize;
    let train = pool.split_off(n_val);
    let sets = Sets { train, val: pool, test };
    check_classes("training", &sets.train)?;
    check_classes("test", &sets.test)?;
    Ok(sets)
}

/// [`split`] of `recordings`, then `extra` added to the training set. The extra recordings
/// never reach validation or test, and the FSDD sets are exactly those [`split`] gives without
/// them, so test accuracies stay comparable.
pub fn split_with_extra(
    recordings: &[Recording],
    extra: &[Recording],
    split: &Split,
    val_fraction: f64,
    seed: u64,
) -> Result<Sets> {
    let mut sets = self::split(recordings, split, val_fraction, seed)?;
    sets.train.extend_from_slice(extra);
    Ok(sets)
}

fn check_classes(what: &str, set: &[Recording]) -> Result<()> {
    let mut counts = [0usize; NUM_CLASSES];
    for r in set {
        if let Some(count) = counts.get_mut(usize::from(r.digit)) {
            *count += 1;
        }
    }
    let missing: Vec<String> =
        counts.iter().enumerate().filter(|(_, n)| **n == 0).map(|(d, _)| d.to_string()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Dataset(format!("the {what} set has no recording of digit(s) {}", missing.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(n_speakers: usize) -> Vec<Recording> {
        let mut v = vec![];
        for s in 0..n_speakers {
            for d in 0..10u8 {
                for i in 0..50 {
                    let speaker = format!("s{s}");
                    v.push(Recording {
                        path: format!("{d}_{speaker}_{i}.wav").into(),
                        digit: d,
                        speaker,
                        index: i,
                    });
                }
            }
        }
        v
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_name("7_jackson_32.wav"), Some((7, "jackson".into(), 32)));
        assert_eq!(parse_name("12_jackson_32.wav"), None);
        assert_eq!(parse_name("7_jackson.wav"), None);
        assert_eq!(parse_name("7_jackson_32.FLAC"), Some((7, "jackson".into(), 32)));
        assert_eq!(parse_name("7_jackson_32.m4a"), Some((7, "jackson".into(), 32)));
        assert_eq!(parse_name("7_jackson_32.txt"), None);
        assert_eq!(parse_name("7_jackson_32"), None);
        assert_eq!(parse_name("readme.txt"), None);
        assert_eq!(label_from_name(Path::new("a/3_x.wav")), Some(3));
        assert_eq!(label_from_name(Path::new("a/x_3.wav")), None);
    }

    #[test]
    fn scan_takes_every_audio_extension_and_holds_out_copies_of_held_out_recordings() {
        let dir = std::env::temp_dir().join(format!("spoken-digits-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["3_me_0.flac", "3_me_1.WAV", "4_me_0.m4a", "0_george_12.opus", "notes.txt"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let holdout: HashSet<String> = ["0_george_12.wav".to_string()].into();
        let scan = scan(&dir, &holdout).unwrap();
        let names: Vec<_> = scan
            .recordings
            .iter()
            .map(|r| r.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["3_me_0.flac", "3_me_1.WAV", "4_me_0.m4a"]);
        assert_eq!(scan.held_out, 1);
        assert_eq!(scan.ignored, [dir.join("notes.txt")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn official_split_tests_on_index_0_to_4() {
        let sets = split(&fake(6), &Split::Official, 0.1, 1).unwrap();
        assert_eq!(sets.test.len(), 300);
        assert!(sets.test.iter().all(|r| r.index < 5));
        assert_eq!(sets.val.len(), 270);
        assert_eq!(sets.train.len(), 2430);
    }

    #[test]
    fn speaker_split_holds_out_the_speaker_and_seeds_matter() {
        let sets = split(&fake(6), &Split::Speaker("s2".into()), 0.1, 1).unwrap();
        assert!(sets.test.iter().all(|r| r.speaker == "s2"));
        assert!(sets.train.iter().chain(&sets.val).all(|r| r.speaker != "s2"));
        let again = split(&fake(6), &Split::Speaker("s2".into()), 0.1, 1).unwrap();
        assert_eq!(sets.val, again.val);
        let other = split(&fake(6), &Split::Speaker("s2".into()), 0.1, 2).unwrap();
        assert_ne!(sets.val, other.val);
        assert!(split(&fake(6), &Split::Speaker("nobody".into()), 0.1, 1).is_err());
    }

    #[test]
    fn random_split_is_80_10_10() {
        let sets = split(&fake(6), &Split::Random, 1.0 / 9.0, 3).unwrap();
        assert_eq!((sets.train.len(), sets.val.len(), sets.test.len()), (2400, 300, 300));
    }

    #[test]
    fn extra_recordings_join_training_only_in_every_split() {
        let fsdd = fake(6);
        // An enrolled speaker, and one who shares a name (and indexes 0-4) with an FSDD speaker.
        let extra: Vec<Recording> = ["me", "s2"]
            .iter()
            .flat_map(|s| {
                (0..10u8).flat_map(move |d| {
                    (0..3).map(move |i| Recording {
                        path: format!("extra/{d}_{s}_{i}.wav").into(),
                        digit: d,
                        speaker: s.to_string(),
                        index: i,
                    })
                })
            })
            .collect();
        let mut splits = vec![Split::Official, Split::Random];
        // Every leave-one-speaker-out fold.
        splits.extend((0..6).map(|s| Split::Speaker(format!("s{s}"))));
        for sp in &splits {
            let plain = split(&fsdd, sp, 0.1, 7).unwrap();
            let sets = split_with_extra(&fsdd, &extra, sp, 0.1, 7).unwrap();
            let is_extra = |r: &Recording| r.path.starts_with("extra");
            assert!(!sets.test.iter().chain(&sets.val).any(is_extra), "{sp}");
            assert_eq!(sets.train.iter().filter(|r| is_extra(r)).count(), extra.len(), "{sp}");
            assert_eq!((&sets.val, &sets.test), (&plain.val, &plain.test), "{sp}");
            assert_eq!(sets.train[..plain.train.len()], plain.train[..], "{sp}");
        }
    }

    #[test]
    fn split_names_round_trip() {
        for s in ["official", "random", "speaker:theo"] {
            assert_eq!(s.parse::<Split>().unwrap().to_string(), s);
        }
        assert!("speaker:".parse::<Split>().is_err());
    }
}
