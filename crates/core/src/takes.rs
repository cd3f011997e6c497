// File names come from outside: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]
//! Enrollment takes: a user's own takes of each digit, saved as FSDD-named recordings
//! (`{digit}_{speaker}_{index}.wav`, 8 kHz mono 16-bit) that `train --extra-data` adds to the
//! training set. `listen --enroll` records them (its session is `spoken_digits_cli::enroll`);
//! this module names, numbers and writes them.

use crate::dataset::parse_name;
use crate::resample::resample;
use crate::{Error, NUM_CLASSES, Result, audio};
use std::path::{Path, PathBuf};

/// FSDD's sample rate: every take is saved at it, whatever the model's front end uses.
pub const SAMPLE_RATE: u32 = 8000;

/// A speaker name usable in an FSDD file name: the ASCII letters (lower-cased) and digits of
/// `raw`, nothing else (an `_` would break the name's three parts apart). May be empty.
pub fn speaker_name(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The digits in the order they are asked for: `takes` rounds of 0-9, so a session stopped
/// early already holds a take of every digit it got through, and no digit is said many times in
/// a row.
pub fn prompts(takes: usize) -> Vec<u8> {
    (0..takes).flat_map(|_| 0..NUM_CLASSES as u8).collect()
}

/// A folder of one speaker's takes. Each digit's takes are numbered after the highest index
/// already there for that digit and speaker, so a second session adds takes and never
/// replaces one.
#[derive(Debug)]
pub struct TakeFolder {
    dir: PathBuf,
    speaker: String,
    next: [u32; NUM_CLASSES],
}

impl TakeFolder {
    /// Opens (creating it when missing) the folder `dir` for `speaker`, a name made by
    /// [`speaker_name`].
    pub fn open(dir: &Path, speaker: &str) -> Result<Self> {
        if speaker.is_empty() || speaker_name(speaker) != speaker {
            return Err(Error::Config(format!(
                "speaker name '{speaker}' must be lower-case letters and digits only"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut next = [0u32; NUM_CLASSES];
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let name = entry.map_err(|e| Error::io(dir, e))?.file_name();
            if let Some((digit, who, index)) = name.to_str().and_then(parse_name)
                && who == speaker
                && let Some(n) = next.get_mut(usize::from(digit))
            {
                *n = (*n).max(index.saturating_add(1));
            }
        }
        Ok(TakeFolder { dir: dir.to_path_buf(), speaker: speaker.to_string(), next })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn speaker(&self) -> &str {
        &self.speaker
    }

    /// The index the next take of `digit` will get (`None` for a number that is not a digit).
    pub fn next_index(&self, digit: u8) -> Option<u32> {
        self.next.get(usize::from(digit)).copied()
    }

    /// Saves one take of `digit` (mono samples at `rate`) as the next
    /// `{digit}_{speaker}_{index}.wav`, resampled to [`SAMPLE_RATE`] and written atomically.
    /// Returns its path.
    pub fn save(&mut self, digit: u8, samples: &[f32], rate: u32) -> Result<PathBuf> {
        let dir = &self.dir;
        let speaker = &self.speaker;
        let next = self
            .next
            .get_mut(usize::from(digit))
            .ok_or_else(|| Error::Config(format!("{digit} is not a digit")))?;
        // A file written since the folder was opened (another session) is skipped, not replaced.
        let path = loop {
            let path = dir.join(format!("{digit}_{speaker}_{next}.wav"));
            if !path.exists() {
                break path;
            }
            *next += 1;
        };
        let samples = resample(samples, rate, SAMPLE_RATE)?;
        audio::write_wav(&path, &samples, SAMPLE_RATE)?;
        *next += 1;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_names_keep_letters_and_digits() {
        assert_eq!(speaker_name("Jean-Luc_O'Neil 2"), "jeanluconeil2");
        assert_eq!(speaker_name("élodie"), "lodie");
        assert_eq!(speaker_name("__"), "");
    }

    #[test]
    fn prompts_go_round_the_digits() {
        let p = prompts(2);
        assert_eq!(p.len(), 20);
        assert_eq!(&p[..11], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
    }

    #[test]
    fn takes_are_numbered_after_those_already_there() {
        let dir = std::env::temp_dir().join(format!("enroll-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["3_me_0.wav", "3_me_4.wav", "3_you_9.wav", "5_me_x.wav", "notes.txt"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let mut folder = TakeFolder::open(&dir, "me").unwrap();
        assert_eq!(
            (folder.next_index(3), folder.next_index(5), folder.next_index(10)),
            (Some(5), Some(0), None)
        );
        let tone: Vec<f32> = (0..1600).map(|i| 0.3 * (i as f32 * 0.2).sin()).collect();
        let a = folder.save(3, &tone, 16_000).unwrap();
        // Taken by someone else meanwhile: skipped.
        std::fs::write(dir.join("3_me_6.wav"), b"").unwrap();
        let b = folder.save(3, &tone, 16_000).unwrap();
        assert_eq!(a.file_name().unwrap(), "3_me_5.wav");
        assert_eq!(b.file_name().unwrap(), "3_me_7.wav");
        let clip = audio::read_wav(&a, 10.0).unwrap();
        assert_eq!((clip.sample_rate, clip.samples.len()), (8000, 800));
        assert!(folder.save(10, &tone, 16_000).is_err());
        assert!(TakeFolder::open(&dir, "Me").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
