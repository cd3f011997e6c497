// Wav bytes come from outside: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]
//! Reading audio files, writing wav files.
//!
//! [`load`] (and [`read_audio`] under it) is the one entry point that reads a file: the format is
//! found from the content, never from the name alone. Wav (a RIFF header) goes to hound, the
//! fast path that FSDD and most recorders take: any PCM integer depth hound reads
//! (8/16/24/32-bit) and 32-bit float. Everything else goes to symphonia's probe, with the
//! extension as a hint ([`compressed`]: FLAC, Ogg Vorbis and Opus, MP3, M4A/AAC, WebM). Any
//! channel count is averaged to mono, any sample rate resampled to the front end's rate. Anything
//! unreadable is refused with the file name and the reason, never misread: no NaN or Inf reaches
//! the model.

mod compressed;

pub use compressed::FORMATS;

use crate::resample::resample;
use crate::{Error, Result};
use std::path::Path;

/// File extensions (lower case) that folder scans pick up: wav and what [`compressed`] reads.
/// Reading itself goes by the content, so a misnamed file still reads if it is listed.
pub const EXTENSIONS: &[&str] =
    &["wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "m4a", "mp4", "aac", "webm", "mka"];

/// Whether `path` has one of the [`EXTENSIONS`], in any case.
pub fn has_audio_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

/// Highest sample rate accepted (anything above is a corrupt or absurd header).
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// Largest float sample magnitude accepted.
pub const MAX_FLOAT_SAMPLE: f32 = 64.0;
/// Default limit on a file's duration; longer files are refused rather than read whole.
pub const DEFAULT_MAX_SECONDS: f64 = 600.0;

/// Mono samples in [-1, 1] at a known rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Clip {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Reads a wav file (hound only) as mono at its own rate. Refuses files longer than
/// `max_seconds`.
pub fn read_wav(path: &Path, max_seconds: f64) -> Result<Clip> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size <= SMALL_FILE {
        return read_wav_bytes(path, &read_whole(&mut file, size, path)?, max_seconds);
    }
    // Larger files stream, so the length check refuses a long one before its samples are read.
    let reader = hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| describe(path, e))?;
    decode(path, reader, max_seconds)
}

/// Files up to this size are read whole.
const SMALL_FILE: u64 = 1 << 20;

/// The `size` bytes of an open clip-sized file, in one read of the size just looked up (all of
/// FSDD): open, stat, read, close, where buffered or read_to_end reads add a seek, a second stat
/// and a read to find the end. A file that shrank in between ends early, as a truncated one.
fn read_whole(file: &mut std::fs::File, size: u64, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = vec![0; size as usize];
    std::io::Read::read_exact(file, &mut bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => describe(path, hound::Error::IoError(e)),
        _ => Error::io(path, e),
    })?;
    Ok(bytes)
}

/// Reads a wav file from memory (used by tests and the fuzz target).
pub fn read_wav_bytes(name: &Path, bytes: &[u8], max_seconds: f64) -> Result<Clip> {
    let opened = hound::WavReader::new(std::io::Cursor::new(bytes));
    if to_symphonia(&opened) {
        return compressed::read(name, Box::new(std::io::Cursor::new(bytes)), max_seconds);
    }
    decode(name, opened.map_err(|e| describe(name, e))?, max_seconds)
}

/// hound reads PCM and 32-bit float wav; the encodings it does not (telephone recordings'
/// mu-law and A-law) go to symphonia's RIFF reader: whether `opened` does.
fn to_symphonia<R: std::io::Read>(opened: &hound::Result<hound::WavReader<R>>) -> bool {
    matches!(opened, Err(hound::Error::Unsupported))
}

/// Reads an audio file of any format read here as mono at its own rate. Refuses files longer
/// than `max_seconds`, before decoding them where the container declares its length.
pub fn read_audio(path: &Path, max_seconds: f64) -> Result<Clip> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size <= SMALL_FILE {
        return read_audio_bytes(path, &read_whole(&mut file, size, path)?, max_seconds);
    }
    let mut head = [0u8; 4];
    std::io::Read::read_exact(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
    std::io::Seek::rewind(&mut file).map_err(|e| Error::io(path, e))?;
    if is_wav(&head) {
        let opened = hound::WavReader::new(std::io::BufReader::new(file));
        if to_symphonia(&opened) {
            let again = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            return compressed::read(path, Box::new(again), max_seconds);
        }
        return decode(path, opened.map_err(|e| describe(path, e))?, max_seconds);
    }
    compressed::read(path, Box::new(file), max_seconds)
}

/// Reads an audio file of any format read here from memory (used by tests and the fuzz target).
pub fn read_audio_bytes(name: &Path, bytes: &[u8], max_seconds: f64) -> Result<Clip> {
    if is_wav(bytes) {
        return read_wav_bytes(name, bytes, max_seconds);
    }
    let wav_named = name.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    if bytes.is_empty() && !wav_named {
        return Err(Error::audio(name, "the file is empty (0 bytes)"));
    }
    let result = compressed::read(name, Box::new(std::io::Cursor::new(bytes)), max_seconds);
    // A file named .wav that is nothing symphonia knows either gets hound's account of its
    // header, which says more about a broken wav than "not a recognised format".
    match result {
        Err(Error::Audio { reason, .. }) if wav_named && reason.starts_with(compressed::UNRECOGNISED) => {
            read_wav_bytes(name, bytes, max_seconds)
        }
        other => other,
    }
}

/// Whether the bytes start like a wav file (RIFF): those go to hound.
fn is_wav(bytes: &[u8]) -> bool {
    bytes.starts_with(b"RIFF")
}

/// Reads an audio file, mixes it to mono and resamples it to `rate` ([`read_for`]).
pub fn load(path: &Path, rate: u32, max_seconds: f64) -> Result<Vec<f32>> {
    let clip = read_for(path, rate, max_seconds)?;
    if clip.sample_rate == rate { Ok(clip.samples) } else { resample(&clip.samples, clip.sample_rate, rate) }
}

/// Reads an audio file mixed to mono at its own rate, for a model at `rate`: a clipped recording
/// at another rate is repaired at its own rate ([`crate::declip`]), as resampling will round its
/// flat tops and only here are they exact. (At `rate` itself the front end repairs it when the
/// model's config says `declip`.)
pub fn read_for(path: &Path, rate: u32, max_seconds: f64) -> Result<Clip> {
    let mut clip = read_audio(path, max_seconds)?;
    if clip.sample_rate != rate {
        crate::declip::repair(&mut clip.samples);
    }
    Ok(clip)
}

fn describe(path: &Path, e: hound::Error) -> Error {
    let reason = match e {
        hound::Error::IoError(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof
                || io.to_string().contains("Failed to read enough bytes") =>
        {
            "the file ends early (truncated or empty)".to_string()
        }
        hound::Error::IoError(io) => io.to_string(),
        hound::Error::FormatError(m) => format!("malformed header: {m}"),
        hound::Error::TooWide => "sample bit depth is wider than 32 bits".to_string(),
        hound::Error::UnfinishedSample => "the data ends in the middle of a sample (truncated)".to_string(),
        hound::Error::Unsupported => {
            "unsupported encoding (PCM, 32-bit float, mu-law and A-law are read; convert ADPCM, \
             64-bit float and others to PCM first)"
                .to_string()
        }
        hound::Error::InvalidSampleFormat => "the sample format does not match its bit depth".to_string(),
    };
    Error::audio(path, reason)
}

fn decode<R: std::io::Read>(path: &Path, mut reader: hound::WavReader<R>, max_seconds: f64) -> Result<Clip> {
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(Error::audio(path, "the header says 0 channels"));
    }
    if spec.sample_rate == 0 || spec.sample_rate > MAX_SAMPLE_RATE {
        return Err(Error::audio(
            path,
            format!("sample rate {} Hz is outside 1..={MAX_SAMPLE_RATE} Hz", spec.sample_rate),
        ));
    }
    let frames = reader.duration() as usize;
    let seconds = frames as f64 / f64::from(spec.sample_rate);
    if seconds > max_seconds {
        return Err(Error::audio(
            path,
            format!("{seconds:.1} s long, above the {max_seconds:.0} s limit (--max-seconds)"),
        ));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(Error::audio(
                    path,
                    format!("{}-bit float is not supported", spec.bits_per_sample),
                ));
            }
            let samples = collect(path, reader.samples::<f32>())?;
            if samples.iter().any(|s| !s.is_finite()) {
                return Err(Error::audio(path, "float samples contain NaN or infinity"));
            }
            // Float audio lives in [-1, 1]; a little over is tolerated, wild values are misread
            // bytes, and their squares would overflow the spectrum.
            if samples.iter().any(|s| s.abs() > MAX_FLOAT_SAMPLE) {
                return Err(Error::audio(
                    path,
                    format!("float samples far outside [-1, 1] (above {MAX_FLOAT_SAMPLE})"),
                ));
            }
            samples
        }
        hound::SampleFormat::Int if spec.bits_per_sample == 16 => {
            // The common case (FSDD, most recorders): one read of the data chunk instead of
            // hound's per-sample iterator, which was a quarter of the front end's time. The
            // header is hound's; the reader stands at the first sample.
            let mut bytes = vec![0u8; reader.len() as usize * 2];
            std::io::Read::read_exact(&mut reader.into_inner(), &mut bytes)
                .map_err(|e| describe(path, hound::Error::IoError(e)))?;
            bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes(b.try_into().unwrap_or([0; 2]))) * (1.0 / 32768.0))
                .collect()
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !(1..=32).contains(&bits) {
                return Err(Error::audio(path, format!("{bits}-bit integer samples are not supported")));
            }
            // 8-bit wav is unsigned; hound already re-centres it on 0.
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            collect(path, reader.samples::<i32>())?.into_iter().map(|s| s as f32 * scale).collect()
        }
    };
    if !interleaved.len().is_multiple_of(channels) {
        return Err(Error::audio(path, "the data ends in the middle of a frame (truncated)"));
    }
    check_samples(path, &interleaved)?;
    let samples = if channels == 1 {
        interleaved
    } else {
        let inv = 1.0 / channels as f32;
        interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() * inv).collect()
    };
    Ok(Clip { samples, sample_rate: spec.sample_rate })
}

/// Refuses a clip with no samples or only zeros, whatever its format.
fn check_samples(path: &Path, samples: &[f32]) -> Result<()> {
    if samples.is_empty() {
        return Err(Error::audio(path, "the file contains no samples"));
    }
    if samples.iter().all(|&s| s == 0.0) {
        return Err(Error::audio(path, "the file is digital silence (every sample is zero)"));
    }
    Ok(())
}

fn collect<T, I>(path: &Path, samples: I) -> Result<Vec<T>>
where
    I: Iterator<Item = hound::Result<T>>,
{
    samples.collect::<hound::Result<Vec<T>>>().map_err(|e| describe(path, e))
}

/// Writes mono samples in [-1, 1] as 16-bit PCM, atomically.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    crate::atomic::write_with(path, |tmp| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let fail = |e: hound::Error| Error::audio(tmp, e.to_string());
        let mut w = hound::WavWriter::create(tmp, spec).map_err(fail)?;
        for &s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(fail)?;
        }
        w.finalize().map_err(fail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes(
        spec: hound::WavSpec,
        write: impl FnOnce(&mut hound::WavWriter<&mut std::io::Cursor<Vec<u8>>>),
    ) -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
            write(&mut w);
            w.finalize().unwrap();
        }
        cursor.into_inner()
    }

    #[test]
    fn stereo_is_averaged_and_16_bit_scaled_like_torchaudio() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, |w| {
            for (l, r) in [(16384i16, 0i16), (-32768, -32768)] {
                w.write_sample(l).unwrap();
                w.write_sample(r).unwrap();
            }
        });
        let clip = read_wav_bytes(Path::new("t.wav"), &bytes, 10.0).unwrap();
        assert_eq!(clip.samples, vec![0.25, -1.0]);
    }

    #[test]
    fn eight_bit_unsigned_is_centred() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, |w| {
            for s in [0i8, 64, -128] {
                w.write_sample(s).unwrap();
            }
        });
        let clip = read_wav_bytes(Path::new("t.wav"), &bytes, 10.0).unwrap();
        assert_eq!(clip.samples, vec![0.0, 0.5, -1.0]);
    }

    #[test]
    fn nan_float_is_refused() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let bytes = wav_bytes(spec, |w| {
            w.write_sample(0.5f32).unwrap();
            w.write_sample(f32::NAN).unwrap();
        });
        let err = read_wav_bytes(Path::new("t.wav"), &bytes, 10.0).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
    }

    #[test]
    fn garbage_and_truncation_are_errors_naming_the_file() {
        let err = read_wav_bytes(Path::new("junk.wav"), b"hello world", 10.0).unwrap_err().to_string();
        assert!(err.starts_with("junk.wav"), "{err}");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, |w| {
            for _ in 0..100 {
                w.write_sample(1000i16).unwrap();
            }
        });
        let err = read_wav_bytes(Path::new("cut.wav"), &bytes[..bytes.len() - 51], 10.0).unwrap_err();
        assert!(err.to_string().contains("cut.wav"), "{err}");
    }

    #[test]
    fn long_files_are_refused_before_reading() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, |w| {
            for _ in 0..16000 {
                w.write_sample(0i16).unwrap();
            }
        });
        let err = read_wav_bytes(Path::new("long.wav"), &bytes, 1.0).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
    }
}
