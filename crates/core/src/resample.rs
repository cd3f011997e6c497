//! Sample-rate conversion with rubato's synchronous FFT resampler (fixed ratio, high quality):
//! whole clips ([`resample`]) and streams in arbitrary-size pushes ([`StreamResampler`],
//! [`StreamConverter`], which also mixes interleaved channels to mono).

use crate::{Error, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

/// Resamples a whole mono clip from `from` Hz to `to` Hz; the output is aligned with the input
/// (rubato trims its delay) and has `ceil(len * to / from)` samples.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| Error::Resample(format!("{from} Hz -> {to} Hz: {e}"));
    // One FFT per 4096-sample chunk (no sub-chunks), for a cutoff close to the new Nyquist:
    // see StreamResampler::new for what rubato's default sub-chunking does to 3-4 kHz.
    let mut resampler = Fft::<f32>::new_custom(
        from as usize,
        to as usize,
        4096,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Both,
    )
    .map_err(|e| err(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(&e))?;
    let out = resampler.process_all(&input, samples.len(), None).map_err(|e| err(&e))?;
    Ok(out.take_data())
}

/// A mono resampler for a stream that arrives in pieces of any size.
///
/// rubato processes fixed input chunks; input that does not fill a chunk waits in `pending`
/// for the next push. The resampler's startup delay is dropped, so output sample `k` is at the
/// time of input sample `k * from / to`, and [`StreamResampler::flush`] pushes the tail out.
/// All buffers are allocated here once; pushing allocates only if a push is larger than any
/// before it.
pub struct StreamResampler {
    resampler: Fft<f32>,
    from: u32,
    to: u32,
    pending: Vec<f32>,
    out_buf: Vec<f32>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
    samples_in: u64,
    samples_out: u64,
}

impl StreamResampler {
    /// `chunk`: input samples per rubato call; the delay is about half a chunk.
    ///
    /// One FFT per chunk (no sub-chunks): rubato's default splits a chunk into ~256-sample
    /// sub-chunks, whose short filters cut 48 kHz -> 8 kHz at 3.0 kHz (measured cutoff 0.125 of
    /// the input Nyquist); one 40 ms chunk cuts at 3.84 kHz. The model hears the 3-4 kHz band:
    /// with the 3 kHz cut, hold-out recordings captured at 48 kHz came out as wrong digits.
    pub fn new(from: u32, to: u32, chunk: usize) -> Result<Self> {
        let err = |e: &dyn std::fmt::Display| Error::Resample(format!("{from} Hz -> {to} Hz: {e}"));
        if from == 0 || to == 0 {
            return Err(err(&"sample rates must be positive"));
        }
        let resampler = Fft::<f32>::new_custom(
            from as usize,
            to as usize,
            chunk.max(1),
            1,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )
        .map_err(|e| err(&e))?;
        let out_buf = vec![0.0; resampler.output_frames_max()];
        Ok(StreamResampler {
            skip: resampler.output_delay(),
            pending: Vec::with_capacity(2 * resampler.input_frames_max()),
            resampler,
            from,
            to,
            out_buf,
            samples_in: 0,
            samples_out: 0,
        })
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.samples_in += input.len() as u64;
        self.pending.extend_from_slice(input);
        self.drain(out)
    }

    fn drain(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let err =
            |e: &dyn std::fmt::Display| Error::Resample(format!("{} Hz -> {} Hz: {e}", self.from, self.to));
        let mut offset = 0;
        loop {
            let need = self.resampler.input_frames_next();
            if self.pending.len() - offset < need {
                break;
            }
            let input = InterleavedSlice::new(&self.pending[offset..], 1, need).map_err(|e| err(&e))?;
            let frames = self.out_buf.len();
            let mut output = InterleavedSlice::new_mut(&mut self.out_buf, 1, frames).map_err(|e| err(&e))?;
            let (used, made) =
                self.resampler.process_into_buffer(&input, &mut output, None).map_err(|e| err(&e))?;
            offset += used;
            let dropped = self.skip.min(made);
            self.skip -= dropped;
            out.extend_from_slice(&self.out_buf[dropped..made]);
            self.samples_out += (made - dropped) as u64;
        }
        self.pending.drain(..offset);
        Ok(())
    }

    /// Ends the stream: pushes zeros through until every input sample has its output, then
    /// resets, so the resampler can start a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let expected = (self.samples_in * u64::from(self.to)).div_ceil(u64::from(self.from));
        let (start, already) = (out.len(), self.samples_out);
        while self.samples_out < expected {
            let zeros = self.resampler.input_frames_next();
            self.pending.resize(self.pending.len() + zeros, 0.0);
            self.drain(out)?;
        }
        out.truncate(start + expected.saturating_sub(already) as usize);
        self.resampler.reset();
        self.skip = self.resampler.output_delay();
        self.pending.clear();
        self.samples_in = 0;
        self.samples_out = 0;
        Ok(())
    }
}

/// Interleaved frames of any channel count and rate in, mono at the target rate out: the
/// worker-side half of the microphone path.
pub struct StreamConverter {
    channels: usize,
    resampler: Option<StreamResampler>,
    /// Clipped peaks redrawn at the input's own rate, where they are flat ([`crate::declip`]),
    /// when the stream is resampled (as `audio::load` does for files).
    repair: crate::declip::StreamRepair,
    repaired: Vec<f32>,
    /// A trailing partial frame waiting for the rest of its channels.
    partial: Vec<f32>,
    mono: Vec<f32>,
}

impl StreamConverter {
    /// Converts `channels` x `from` Hz to mono at `to` Hz, resampling in 40 ms chunks.
    pub fn new(channels: usize, from: u32, to: u32) -> Result<Self> {
        if channels == 0 {
            return Err(Error::Config("an audio stream needs at least one channel".into()));
        }
        let resampler = if from == to {
            None
        } else {
            Some(StreamResampler::new(from, to, (from as usize / 25).max(1))?)
        };
        Ok(StreamConverter {
            channels,
            resampler,
            repair: crate::declip::StreamRepair::new(),
            repaired: Vec::new(),
            partial: Vec::with_capacity(channels),
            mono: Vec::new(),
        })
    }

    /// Mixes `interleaved` to mono (channel average) and resamples it, appending to `out`.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) -> Result<()> {
        match &mut self.resampler {
            None => {
                mix_into(self.channels, &mut self.partial, interleaved, out);
                Ok(())
            }
            Some(r) => {
                self.mono.clear();
                mix_into(self.channels, &mut self.partial, interleaved, &mut self.mono);
                self.repaired.clear();
                self.repair.push(&self.mono, &mut self.repaired);
                r.push(&self.repaired, out)
            }
        }
    }

    /// Ends the stream, pushing out what the resampler still holds.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<()> {
        self.partial.clear();
        match &mut self.resampler {
            Some(r) => {
                self.repaired.clear();
                self.repair.finish(&mut self.repaired);
                r.push(&self.repaired, out)?;
                r.flush(out)
            }
            None => Ok(()),
        }
    }
}

/// Averages interleaved frames into `out`, carrying an incomplete last frame in `partial`.
fn mix_into(channels: usize, partial: &mut Vec<f32>, mut interleaved: &[f32], out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let inv = 1.0 / channels as f32;
    if !partial.is_empty() {
        let take = (channels - partial.len()).min(interleaved.len());
        partial.extend_from_slice(&interleaved[..take]);
        interleaved = &interleaved[take..];
        if partial.len() == channels {
            out.push(partial.iter().sum::<f32>() * inv);
            partial.clear();
        }
    }
    let mut frames = interleaved.chunks_exact(channels);
    out.extend(frames.by_ref().map(|f| f.iter().sum::<f32>() * inv));
    partial.extend_from_slice(frames.remainder());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_3_to_4_khz_band_survives_48k_to_8k() {
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        for hz in [3000.0f32, 3600.0] {
            let input: Vec<f32> =
                (0..48_000).map(|i| (std::f32::consts::TAU * hz * i as f32 / 48_000.0).sin() * 0.5).collect();
            let out = resample(&input, 48_000, 8_000).unwrap();
            let ratio = rms(&out[500..7500]) / rms(&input[3000..45_000]);
            assert!(ratio > 0.9, "{hz} Hz kept only {ratio:.2} of its level");
        }
    }

    #[test]
    fn sine_survives_48k_to_8k_aligned_within_a_sample() {
        let tone = |rate: u32, n: usize, delay: f32| -> Vec<f32> {
            (0..n)
                .map(|i| (2.0 * std::f32::consts::PI * 440.0 * (i as f32 - delay) / rate as f32).sin() * 0.5)
                .collect()
        };
        let out = resample(&tone(48_000, 48_000, 0.0), 48_000, 8_000).unwrap();
        assert_eq!(out.len(), 8_000);
        // The FFT resampler may land up to half an output sample late; never more.
        let best = [0.0f32, 0.5, -0.5]
            .iter()
            .map(|&d| {
                let expected = tone(8_000, 8_000, d);
                // Ignore the edges, where the filter sees zeros beyond the clip.
                out[200..7800]
                    .iter()
                    .zip(&expected[200..7800])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max)
            })
            .fold(f32::INFINITY, f32::min);
        assert!(best < 0.01, "max error {best}");
    }

    #[test]
    fn streaming_in_odd_pieces_matches_the_whole_clip() {
        let tone: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 48_000.0).sin() * 0.5)
            .collect();
        let mut r = StreamResampler::new(48_000, 8_000, 960).unwrap();
        let mut out = vec![];
        for piece in tone.chunks(333) {
            r.push(piece, &mut out).unwrap();
        }
        r.flush(&mut out).unwrap();
        assert_eq!(out.len(), 8_000);
        let expected: Vec<f32> = (0..8_000)
            .map(|i| (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 8_000.0).sin() * 0.5)
            .collect();
        let err =
            out[200..7800].iter().zip(&expected[200..7800]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
        // After a flush the same resampler serves a new stream.
        let mut again = vec![];
        r.push(&tone[..4800], &mut again).unwrap();
        r.flush(&mut again).unwrap();
        assert_eq!(again.len(), 800);
    }

    #[test]
    fn converter_mixes_split_stereo_frames_to_mono() {
        let mut c = StreamConverter::new(2, 8_000, 8_000).unwrap();
        let mut out = vec![];
        c.push(&[1.0, 0.0, 0.5], &mut out).unwrap();
        c.push(&[0.5, -1.0, -1.0], &mut out).unwrap();
        assert_eq!(out, vec![0.5, 0.5, -1.0]);
        let mut c = StreamConverter::new(3, 44_100, 8_000).unwrap();
        let mut out = vec![];
        for _ in 0..10 {
            c.push(&vec![0.25; 3 * 4410], &mut out).unwrap();
        }
        c.flush(&mut out).unwrap();
        assert_eq!(out.len(), 8_000);
        assert!(out[100..7900].iter().all(|v| (v - 0.25).abs() < 0.01));
    }
}
