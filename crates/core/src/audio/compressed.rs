// Compressed bytes come from outside: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]
//! Reading the compressed formats: FLAC, Ogg Vorbis, Ogg Opus, MP3, M4A/MP4 (AAC, ALAC) and
//! WebM/Matroska (Opus, Vorbis, FLAC).
//!
//! symphonia probes the container from the bytes (the extension is only a hint) and decodes
//! every codec but Opus, which it demuxes but does not decode: those packets go to the pure-Rust
//! `opus-pure`, at Opus's own 48 kHz. Whatever the codec, each decoded block is mixed to mono
//! as it comes, the duration the container declares is checked against `--max-seconds` before
//! anything is decoded (and the decoded length after every block, for streams that declare
//! none), and a decoder panic on corrupt data becomes an error naming the file.

use super::{Clip, MAX_FLOAT_SAMPLE, MAX_SAMPLE_RATE, check_samples};
use crate::{Error, Result};
use std::path::Path;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{BufReader, MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

/// The formats this module reads, for error messages and `--help`.
pub const FORMATS: &str = "wav, FLAC, Ogg Vorbis, Ogg Opus, MP3, M4A/AAC, WebM/Opus";

/// How a probe that found no format starts its reason.
pub(super) const UNRECOGNISED: &str = "not a recognised audio format";

/// The highest OpusHead version read (RFC 7845: the major version, the high nibble, is 0).
const OPUS_MAX_VERSION: u8 = 0x0f;

/// The rate Opus is decoded at: its native rate, so no quality is lost before our resampler.
const OPUS_RATE: u32 = 48_000;

/// Reads a compressed file from `source` as mono at its own rate (see the module doc).
pub(super) fn read(path: &Path, source: Box<dyn MediaSource + '_>, max_seconds: f64) -> Result<Clip> {
    // symphonia's decoders index into packet data, and a corrupt packet can make one panic
    // instead of returning an error: that must cost one file, not the run.
    match guard(|| decode(path, source, max_seconds)) {
        Some(result) => result,
        None => Err(Error::audio(path, "the decoder failed on corrupt data (it panicked)")),
    }
}

/// Runs `f`, turning a panic inside it into `None`, with the panic message kept off stderr.
pub(super) fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    quiet_panics::install();
    quiet_panics::QUIET.with(|q| q.set(q.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    quiet_panics::QUIET.with(|q| q.set(q.get().saturating_sub(1)));
    result.ok()
}

/// A panic hook that stays silent on threads inside [`guard`] and hands every other panic to
/// the hook that was there before, so real bugs elsewhere still print.
mod quiet_panics {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        pub static QUIET: Cell<u32> = const { Cell::new(0) };
    }

    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if QUIET.with(Cell::get) == 0 {
                    previous(info);
                }
            }));
        });
    }
}

fn decode(path: &Path, source: Box<dyn MediaSource + '_>, max_seconds: f64) -> Result<Clip> {
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(&ext.to_ascii_lowercase());
    }
    let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut format = symphonia::default::get_probe()
        .probe(&hint, stream, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| describe(path, &e))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| Error::audio(path, "the file has no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| Error::audio(path, "the audio track has no codec parameters"))?;
    let declared_frames = track.num_frames;
    let rate = if params.codec == CODEC_ID_OPUS { Some(OPUS_RATE) } else { params.sample_rate };
    let rate = rate.ok_or_else(|| Error::audio(path, "the stream does not give its sample rate"))?;
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(Error::audio(path, format!("sample rate {rate} Hz is outside 1..={MAX_SAMPLE_RATE} Hz")));
    }
    // The declared length refuses a long file before any of it is decoded.
    if let Some(frames) = declared_frames {
        check_length(path, frames, rate, max_seconds, true)?;
    }
    let mut decoder = Decoder::new(path, &params, track.delay)?;
    let limit = (max_seconds * f64::from(rate)).max(0.0) as u64;
    let mut samples: Vec<f32> = Vec::with_capacity(declared_frames.map_or(0, |f| f.min(limit) as usize));
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A chained Ogg stream (another recording appended): the first one is the clip.
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(describe(path, &e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        decoder.decode(&packet, rate, &mut samples).map_err(|e| match e {
            Failed::Codec(e) => describe(path, &e),
            Failed::Reason(reason) => Error::audio(path, reason),
        })?;
        // Streams that declare no length (plain MP3, some Ogg) are stopped at the limit.
        check_length(path, samples.len() as u64, rate, max_seconds, false)?;
    }
    // A container that declared its length and delivered much less was cut short. Lossy
    // decoders may differ from the declared count by their priming and padding (a few packets
    // at most), so only a clear shortfall counts.
    if let Some(frames) = declared_frames {
        let decoded = samples.len() as u64;
        let slack = params.max_frames_per_packet.unwrap_or(0).max(u64::from(rate / 20));
        if decoded + slack < frames {
            return Err(Error::audio(
                path,
                format!(
                    "the file ends early (truncated): {:.2} s of the {:.2} s it declares",
                    decoded as f64 / f64::from(rate),
                    frames as f64 / f64::from(rate)
                ),
            ));
        }
    }
    check_samples(path, &samples)?;
    Ok(Clip { samples, sample_rate: rate })
}

/// Refuses `frames` above `max_seconds`: the declared length (`declared`), or what has been
/// decoded so far, which says only that the file is longer than the limit.
fn check_length(path: &Path, frames: u64, rate: u32, max_seconds: f64, declared: bool) -> Result<()> {
    let seconds = frames as f64 / f64::from(rate);
    if seconds > max_seconds {
        let length = if declared { format!("{seconds:.1} s long") } else { "longer".to_string() };
        return Err(Error::audio(
            path,
            format!("{length}, above the {max_seconds:.0} s limit (--max-seconds)"),
        ));
    }
    Ok(())
}

fn describe(path: &Path, e: &SymphoniaError) -> Error {
    let reason = match e {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends early (truncated or empty)".to_string()
        }
        SymphoniaError::IoError(io) => io.to_string(),
        SymphoniaError::Unsupported(what) if what.contains("no suitable format reader") => {
            format!("{UNRECOGNISED} (read: {FORMATS})")
        }
        // symphonia says "unsupported" both for features it lacks and for a container too
        // damaged to parse (a cut-off M4A has no moov atom).
        SymphoniaError::Unsupported(what) => format!("unsupported or damaged: {what}"),
        SymphoniaError::DecodeError(what) => format!("corrupt data: {what}"),
        SymphoniaError::LimitError(what) => format!("corrupt data (a decoder limit was reached: {what})"),
        _ => e.to_string(),
    };
    Error::audio(path, reason)
}

/// Why a packet could not be decoded.
enum Failed {
    Codec(SymphoniaError),
    Reason(String),
}

/// symphonia's decoder for the track's codec, or opus-pure's for Opus.
enum Decoder {
    Symphonia(Box<dyn AudioDecoder>, Vec<f32>),
    Opus(Box<Opus>),
}

/// An Opus stream's decoder and what its header says to do with the output.
struct Opus {
    decoder: opus_pure::OpusDecoder,
    channels: usize,
    /// Frames still to drop from the start: the encoder's pre-skip.
    skip: usize,
    /// The header's output gain, as a factor.
    gain: f32,
    pcm: Vec<f32>,
}

impl Decoder {
    fn new(path: &Path, params: &AudioCodecParameters, delay: Option<u32>) -> Result<Self> {
        if params.codec == CODEC_ID_OPUS {
            return Ok(Decoder::Opus(Box::new(Opus::new(path, params, delay)?)));
        }
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => {
                    Error::audio(path, format!("unsupported codec {} (read: {FORMATS})", params.codec))
                }
                e => describe(path, &e),
            })?;
        Ok(Decoder::Symphonia(decoder, Vec::new()))
    }

    /// Decodes one packet, appending its frames mixed to mono to `out`.
    fn decode(&mut self, packet: &Packet, rate: u32, out: &mut Vec<f32>) -> Result<(), Failed> {
        match self {
            Decoder::Symphonia(decoder, scratch) => {
                let block = decoder.decode(packet).map_err(Failed::Codec)?;
                let spec = block.spec();
                if spec.rate() != rate {
                    return Err(Failed::Reason(format!(
                        "the sample rate changes from {rate} Hz to {} Hz mid-stream (corrupt?)",
                        spec.rate()
                    )));
                }
                let channels = spec.channels().count();
                block.copy_to_vec_interleaved(scratch);
                mix_into(scratch, channels, out)
            }
            Decoder::Opus(opus) => opus.decode(packet, out),
        }
    }
}

impl Opus {
    fn new(path: &Path, params: &AudioCodecParameters, delay: Option<u32>) -> Result<Self> {
        // The identification header (OpusHead) is the codec's extra data in Ogg and in WebM.
        // symphonia's Ogg reader gives its pre-skip as the track's delay but trims nothing, and
        // its WebM reader gives neither, so the header is read here for both.
        let head = params.extra_data.as_deref().and_then(|data| {
            symphonia_common::xiph::audio::opus::OpusHead::read(&mut BufReader::new(data), OPUS_MAX_VERSION)
                .ok()
        });
        let channels =
            params.channels.as_ref().or(head.as_ref().map(|h| &h.channels)).map_or(0, |c| c.count());
        if !(1..=2).contains(&channels) {
            return Err(Error::audio(
                path,
                format!("Opus with {channels} channels is not supported (only mono and stereo)"),
            ));
        }
        let decoder = opus_pure::OpusDecoder::new(OPUS_RATE as i32, channels)
            .map_err(|e| Error::audio(path, format!("Opus decoder: {e}")))?;
        let skip = head.as_ref().map(|h| u32::from(h.pre_skip)).or(delay).unwrap_or(0) as usize;
        // The gain is in 1/256 dB (RFC 7845 section 5.1); almost always 0.
        let gain = head.as_ref().map_or(1.0, |h| 10f32.powf(f32::from(h.gain) / (20.0 * 256.0)));
        let pcm = vec![0.0; opus_pure::MAX_PACKET_SAMPLES * channels];
        Ok(Opus { decoder, channels, skip, gain, pcm })
    }

    fn decode(&mut self, packet: &Packet, out: &mut Vec<f32>) -> Result<(), Failed> {
        let frames = self
            .decoder
            .decode(&packet.data, opus_pure::MAX_PACKET_SAMPLES, &mut self.pcm)
            .map_err(|e| Failed::Reason(format!("corrupt Opus packet: {e}")))?;
        // The Ogg reader marks the last page's padding (in 48 kHz frames) as the packet's end
        // trim; a start trim, where a reader gives one, counts against the pre-skip.
        let trim_start = packet.trim_start.get() as usize;
        let start = trim_start.max(self.skip).min(frames);
        self.skip = self.skip.saturating_sub(start);
        let end = frames.saturating_sub(packet.trim_end.get() as usize).max(start);
        let kept = self.pcm.get_mut(start * self.channels..end * self.channels).unwrap_or_default();
        if self.gain != 1.0 {
            kept.iter_mut().for_each(|s| *s *= self.gain);
        }
        mix_into(kept, self.channels, out)
    }
}

/// Appends interleaved `samples` of `channels` channels to `out` as their mean.
fn mix_into(samples: &[f32], channels: usize, out: &mut Vec<f32>) -> Result<(), Failed> {
    if channels == 0 {
        return Err(Failed::Reason("a decoded block has 0 channels".to_string()));
    }
    // Lossy decoders overshoot [-1, 1] a little on loud input; wild values are misdecoded
    // bytes, and their squares would overflow the spectrum (as for float wav).
    if samples.iter().any(|s| !s.is_finite() || s.abs() > MAX_FLOAT_SAMPLE) {
        return Err(Failed::Reason(format!(
            "decoded samples are NaN, infinite or far outside [-1, 1] (above {MAX_FLOAT_SAMPLE})"
        )));
    }
    if channels == 1 {
        out.extend_from_slice(samples);
    } else {
        let inv = 1.0 / channels as f32;
        out.extend(samples.chunks_exact(channels).map(|f| f.iter().sum::<f32>() * inv));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_inside_the_guard_is_an_error_and_the_guard_unwinds_cleanly() {
        assert_eq!(guard(|| 7), Some(7));
        assert_eq!(guard(|| -> u8 { panic!("corrupt packet") }), None);
        // The thread is no longer quiet: the counter went back to zero.
        assert_eq!(quiet_panics::QUIET.with(std::cell::Cell::get), 0);
        // Nested guards (a decoder inside a decoder) count down to zero too.
        assert_eq!(guard(|| guard(|| -> u8 { panic!("inner") })), Some(None));
        assert_eq!(quiet_panics::QUIET.with(std::cell::Cell::get), 0);
    }

    #[test]
    fn text_is_no_known_format() {
        let err = read(Path::new("notes.ogg"), Box::new(std::io::Cursor::new(b"plain words".to_vec())), 10.0)
            .map(|c| c.samples.len())
            .map_err(|e| e.to_string());
        assert_eq!(err, Err(format!("notes.ogg: not a usable audio file: {UNRECOGNISED} (read: {FORMATS})")));
    }
}
