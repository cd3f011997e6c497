//! The live loop: a [`Source`] of samples in, [`Event`]s out.
//!
//! One loop for every input `listen` has: a microphone (the binaries implement [`Source`] for
//! their audio device), a recording or raw PCM from a pipe ([`Feeder`], which plays the part of
//! the audio callback: a thread fills a ring buffer, paced in real time unless asked not to, so
//! `--input` tests the very path a microphone takes). The [`Listener`] drains the source on the
//! caller's thread, mixes and resamples to the model's rate, runs the [`Recogniser`], and hands
//! each result to the caller as an [`Event`]; it prints nothing itself.
//!
//! A lost input (a device unplugged, an audio server gone) ends the loop with its error,
//! unless a [`Reopen`] is given: then the listener reports [`Event::Lost`], tries to open the
//! input again every [`REOPEN_INTERVAL`] until it comes back ([`Event::Reconnected`]) or the
//! stop flag is set.

use crate::audio::{self, DEFAULT_MAX_SECONDS};
use crate::recogniser::{Heard, HeardDigit, Recogniser};
use crate::resample::StreamConverter;
use crate::stream::loudest_window;
use crate::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Ring buffer length of a [`Feeder`] (seconds).
const FEED_RING_SECONDS: f64 = 2.0;

/// Time between attempts to reopen a lost input.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Digital silence this long from a device gets a warning (a muted microphone, a `null` device).
const SILENCE_WARNING_SECONDS: u64 = 5;

/// Push-to-talk: what is recorded after Enter, and the window classified within it (seconds).
const PUSH_TO_TALK_RECORD_SECONDS: f64 = 1.5;
const PUSH_TO_TALK_WINDOW_SECONDS: f64 = 1.0;

/// What [`Source::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Samples were appended.
    Data,
    /// Nothing yet: the source is alive and waiting for audio.
    Idle,
    /// A file or pipe has ended and everything in it was read.
    Ended,
}

/// Where samples come from: interleaved f32 at its own rate and channel count.
pub trait Source {
    /// Sample rate (Hz).
    fn rate(&self) -> u32;
    /// Channels of the interleaved samples.
    fn channels(&self) -> usize;
    /// Appends up to `max` available samples (interleaved) to `out`. An error means the input
    /// is lost or failed.
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<Status>;
    /// Samples lost because the reader fell behind (a device's ring buffer overflowed).
    fn dropped(&self) -> u64 {
        0
    }
    /// A live device, whose long digital silence is suspicious (a file's is not).
    fn is_device(&self) -> bool {
        false
    }
}

/// Opens the input again after it was lost: the new source, and how to name it.
pub type Reopen = Box<dyn FnMut() -> Result<(Box<dyn Source>, String)>>;

/// What the listener reports, in order.
#[derive(Debug)]
pub enum Event {
    /// An utterance, classified; `latency_ms` from the detected end of speech to now.
    Digit { heard: HeardDigit, latency_ms: f64 },
    /// A pause ended a sequence: its digits in order (`?` for unsure ones).
    Sequence(String),
    /// The input was lost; with a [`Reopen`], the listener now tries to open it again.
    Lost(String),
    /// The input is back (after `attempts` tries), named as the [`Reopen`] named it.
    Reconnected { name: String, attempts: u64 },
    /// The worker fell behind the device: this many more samples were dropped.
    Overflow(u64),
    /// The device has delivered nothing but exact zeros for a while (once per listener).
    DigitalSilence { seconds: u64 },
    /// Push-to-talk: ready for the next press.
    ReadyToRecord,
    /// Push-to-talk: recording now.
    Recording { seconds: f64 },
}

/// Push-to-talk's commands (Enter and `q` on a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Record,
    Quit,
}

/// What [`Listener::next_utterance`] found.
#[derive(Debug)]
pub enum Next {
    /// The next utterance, classified.
    Utterance(HeardDigit),
    /// The input was lost and has been reopened; what was being said is gone.
    Resumed,
    /// The file or pipe ended.
    Ended,
    /// The stop flag was set.
    Stopped,
}

/// What a session did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub utterances: usize,
    pub sequences: usize,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    pub latencies_ms: Vec<f64>,
    pub dropped: u64,
    pub stopped_by_user: bool,
}

impl Summary {
    /// Median latency from detected end of speech to the reported digit.
    pub fn median_latency_ms(&self) -> Option<f64> {
        let mut l = self.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        l.get(l.len() / 2).copied()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} utterance(s), {} sequence(s)", self.utterances, self.sequences)?;
        if let Some(m) = self.median_latency_ms() {
            write!(f, "; median latency {m:.1} ms")?;
        }
        write!(
            f,
            "; {:.1} s of audio in {:.2} s (real-time factor {:.3})",
            self.audio_seconds,
            self.wall_seconds,
            self.wall_seconds / self.audio_seconds.max(1e-9)
        )?;
        if self.dropped > 0 {
            write!(f, "; WARNING: {} samples dropped (the worker fell behind)", self.dropped)?;
        }
        if self.stopped_by_user {
            write!(f, "; stopped")?;
        }
        Ok(())
    }
}

/// Receives the listener's events; an error (e.g. stdout closed) ends the loop with it.
pub type OnEvent<'a> = dyn FnMut(Event) -> Result<()> + 'a;

/// The loop: drains a source, converts, recognises, reports.
pub struct Listener<'m> {
    source: Box<dyn Source>,
    recogniser: Recogniser<'m>,
    stop: Arc<AtomicBool>,
    converter: StreamConverter,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    heard: Vec<Heard>,
    summary: Summary,
    reported_drops: u64,
    /// Converted samples from a device that were all exactly zero so far.
    silent_samples: u64,
    warned_silence: bool,
    reopen: Option<Reopen>,
    /// Samples dropped by inputs that were lost and replaced.
    dropped_before: u64,
    /// The file or pipe has ended and the recogniser has been flushed.
    ended: bool,
}

impl<'m> Listener<'m> {
    /// Listens to `source` with `recogniser` until it ends or `stop` is set.
    pub fn new(source: Box<dyn Source>, recogniser: Recogniser<'m>, stop: Arc<AtomicBool>) -> Result<Self> {
        let converter = StreamConverter::new(source.channels(), source.rate(), recogniser.sample_rate())?;
        Ok(Listener {
            source,
            recogniser,
            stop,
            converter,
            interleaved: Vec::new(),
            mono: Vec::new(),
            heard: Vec::new(),
            summary: Summary::default(),
            reported_drops: 0,
            silent_samples: 0,
            warned_silence: false,
            reopen: None,
            dropped_before: 0,
            ended: false,
        })
    }

    /// When the input is lost, reopen it with `reopen` (retrying every [`REOPEN_INTERVAL`] until
    /// it comes back or the stop flag is set) instead of ending with an error.
    pub fn reconnect_with(&mut self, reopen: Reopen) {
        self.reopen = Some(reopen);
    }

    /// The rate of the utterances' samples (the model's front end rate).
    pub fn sample_rate(&self) -> u32 {
        self.recogniser.sample_rate()
    }

    /// Hands-free: utterances and sequences as the VAD finds them, until the input ends or the
    /// stop flag is set.
    pub fn hands_free(&mut self, on: &mut OnEvent<'_>) -> Result<Summary> {
        let started = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.summary.stopped_by_user = true;
                break;
            }
            let arrived = Instant::now();
            match self.pull(on) {
                Ok(true) => {}
                Ok(false) => break,
                Err(lost) => {
                    // The digits heard up to the loss are reported before waiting for the input.
                    self.end_stream()?;
                    self.emit(on)?;
                    self.reopen(lost, on)?;
                    continue;
                }
            }
            if self.mono.is_empty() {
                continue;
            }
            self.recogniser.push(&self.mono, arrived, &mut self.heard)?;
            self.mono.clear();
            self.emit(on)?;
        }
        // The end of the input (or the stop): what the resampler and the VAD still hold.
        self.end_stream()?;
        self.emit(on)?;
        Ok(self.finish_summary(started, self.recogniser.seconds()))
    }

    /// For enrollment: the next utterance the VAD cuts from the stream, classified. Sequence
    /// breaks are skipped; at the end of a file or pipe, what the VAD still holds comes first.
    pub fn next_utterance(&mut self, on: &mut OnEvent<'_>) -> Result<Next> {
        loop {
            if let Some(i) = self.heard.iter().position(|h| matches!(h, Heard::Digit(_)))
                && let Heard::Digit(d) = self.heard.remove(i)
            {
                return Ok(Next::Utterance(d));
            }
            self.heard.clear();
            if self.ended {
                return Ok(Next::Ended);
            }
            if self.stop.load(Ordering::SeqCst) {
                self.summary.stopped_by_user = true;
                return Ok(Next::Stopped);
            }
            let arrived = Instant::now();
            match self.pull(on) {
                Ok(true) => {}
                Ok(false) => {
                    self.end_stream()?;
                    self.ended = true;
                    continue;
                }
                Err(lost) => {
                    // An utterance cut short by the loss is not a take: drop it.
                    self.end_stream()?;
                    self.heard.clear();
                    self.reopen(lost, on)?;
                    return Ok(if self.stop.load(Ordering::SeqCst) { Next::Stopped } else { Next::Resumed });
                }
            }
            if !self.mono.is_empty() {
                self.recogniser.push(&self.mono, arrived, &mut self.heard)?;
                self.mono.clear();
            }
        }
    }

    /// Push-to-talk (the original project's behaviour): each [`Command::Record`] records
    /// [`PUSH_TO_TALK_RECORD_SECONDS`] and classifies its loudest second; [`Command::Quit`], a
    /// closed channel, the end of the input or the stop flag ends it.
    pub fn push_to_talk(
        &mut self,
        commands: &mpsc::Receiver<Command>,
        on: &mut OnEvent<'_>,
    ) -> Result<Summary> {
        let rate = self.recogniser.sample_rate() as usize;
        let record = (PUSH_TO_TALK_RECORD_SECONDS * rate as f64).round() as usize;
        let window = (PUSH_TO_TALK_WINDOW_SECONDS * rate as f64).round() as usize;
        on(Event::ReadyToRecord)?;
        let started = Instant::now();
        let mut seen = 0usize;
        let mut recording: Option<(Vec<f32>, usize)> = None;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.summary.stopped_by_user = true;
                break;
            }
            // Keep draining while idle, so the ring never overflows and a recording starts
            // with fresh audio.
            match self.pull(on) {
                Ok(true) => {}
                Ok(false) => break,
                Err(lost) => {
                    // A recording cut short by the loss is dropped.
                    let dropped = recording.take().is_some();
                    self.reopen(lost, on)?;
                    if dropped {
                        on(Event::ReadyToRecord)?;
                    }
                    continue;
                }
            }
            if let Some((buf, at)) = &mut recording {
                buf.extend_from_slice(&self.mono);
                if buf.len() >= record {
                    let done = Instant::now();
                    let clip = loudest_window(&buf[..record], window);
                    let offset = clip.as_ptr() as usize - buf.as_ptr() as usize;
                    let start = *at + offset / std::mem::size_of::<f32>();
                    let prediction = self.recogniser.classify(clip)?;
                    let heard = HeardDigit {
                        digit: prediction.sure_digit(self.recogniser.min_confidence()),
                        prediction,
                        start_s: start as f64 / rate as f64,
                        end_s: (start + window) as f64 / rate as f64,
                        detected: done,
                        samples: clip.to_vec(),
                    };
                    self.report_digit(heard, on)?;
                    recording = None;
                    on(Event::ReadyToRecord)?;
                }
            }
            seen += self.mono.len();
            self.mono.clear();
            match commands.try_recv() {
                Ok(Command::Quit) | Err(mpsc::TryRecvError::Disconnected) => break,
                Ok(Command::Record) if recording.is_none() => {
                    on(Event::Recording { seconds: PUSH_TO_TALK_RECORD_SECONDS })?;
                    recording = Some((Vec::with_capacity(record + rate), seen));
                }
                Ok(Command::Record) | Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        Ok(self.finish_summary(started, seen as f64 / rate as f64))
    }

    /// Pushes out what the resampler and the VAD still hold (the utterance in progress and the
    /// open sequence) into `self.heard`.
    fn end_stream(&mut self) -> Result<()> {
        self.converter.flush(&mut self.mono)?;
        self.recogniser.push(&self.mono, Instant::now(), &mut self.heard)?;
        self.mono.clear();
        self.recogniser.finish(&mut self.heard)?;
        Ok(())
    }

    /// The input was `lost`. Without a [`Reopen`] that is the loop's error. With one, try every
    /// [`REOPEN_INTERVAL`] until the input opens again (then carry on with it) or the stop flag.
    fn reopen(&mut self, lost: Error, on: &mut OnEvent<'_>) -> Result<()> {
        if self.reopen.is_none() {
            return Err(lost);
        }
        on(Event::Lost(lost.to_string()))?;
        let mut attempts = 0u64;
        loop {
            let next_try = Instant::now() + REOPEN_INTERVAL;
            while Instant::now() < next_try {
                if self.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            attempts += 1;
            let Some(reopen) = self.reopen.as_mut() else { return Ok(()) };
            match reopen() {
                Ok((source, name)) => {
                    self.converter = StreamConverter::new(
                        source.channels(),
                        source.rate(),
                        self.recogniser.sample_rate(),
                    )?;
                    self.dropped_before += self.source.dropped();
                    self.source = source;
                    self.reported_drops = 0;
                    self.silent_samples = 0;
                    return on(Event::Reconnected { name, attempts });
                }
                Err(e) => tracing::info!(attempts, "the input does not open yet: {e}"),
            }
        }
    }

    /// Moves what the source has into `self.mono` (converted). Returns false at the end of a
    /// file or pipe; errors when the input is lost. Sleeps briefly when nothing is there.
    fn pull(&mut self, on: &mut OnEvent<'_>) -> Result<bool> {
        // At most ~20 ms per step, so a digit's latency is not inflated by a large backlog.
        let step = (self.source.rate() as usize / 50).max(1) * self.source.channels();
        self.interleaved.clear();
        match self.source.read(&mut self.interleaved, step)? {
            Status::Ended => return Ok(false),
            Status::Idle => {
                std::thread::sleep(Duration::from_millis(2));
                return Ok(true);
            }
            Status::Data => {}
        }
        self.converter.push(&self.interleaved, &mut self.mono)?;
        self.watch_input(on)?;
        Ok(true)
    }

    /// Input health: dropped samples, and digital silence from a device.
    fn watch_input(&mut self, on: &mut OnEvent<'_>) -> Result<()> {
        let dropped = self.source.dropped();
        if dropped > self.reported_drops {
            on(Event::Overflow(dropped - self.reported_drops))?;
            self.reported_drops = dropped;
        }
        if self.source.is_device() && !self.warned_silence {
            if self.mono.iter().all(|&s| s == 0.0) {
                self.silent_samples += self.mono.len() as u64;
            } else {
                self.silent_samples = 0;
            }
            if self.silent_samples > SILENCE_WARNING_SECONDS * u64::from(self.recogniser.sample_rate()) {
                self.warned_silence = true;
                on(Event::DigitalSilence { seconds: SILENCE_WARNING_SECONDS })?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, on: &mut OnEvent<'_>) -> Result<()> {
        for heard in std::mem::take(&mut self.heard) {
            match heard {
                Heard::Digit(d) => self.report_digit(d, on)?,
                Heard::Sequence(s) => {
                    self.summary.sequences += 1;
                    on(Event::Sequence(s))?;
                }
            }
        }
        Ok(())
    }

    fn report_digit(&mut self, heard: HeardDigit, on: &mut OnEvent<'_>) -> Result<()> {
        let latency_ms = heard.detected.elapsed().as_secs_f64() * 1000.0;
        on(Event::Digit { heard, latency_ms })?;
        self.summary.utterances += 1;
        self.summary.latencies_ms.push(latency_ms);
        Ok(())
    }

    fn finish_summary(&mut self, started: Instant, audio_seconds: f64) -> Summary {
        self.summary.audio_seconds = audio_seconds;
        self.summary.wall_seconds = started.elapsed().as_secs_f64();
        self.summary.dropped = self.dropped_before + self.source.dropped();
        self.summary.clone()
    }
}

/// A file or pipe played like a microphone: a thread pushes mono blocks into a ring buffer,
/// in real time or as fast as the listener takes them.
pub struct Feeder {
    rate: u32,
    consumer: rtrb::Consumer<f32>,
    done: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
}

impl Feeder {
    /// A recording (wav or any format [`audio::read_audio`] reads), read whole (mono at its own
    /// rate) before listening starts, so a bad file fails at once; clipped, at a rate other than
    /// the model's (`model_rate`), it is repaired first ([`audio::read_for`]).
    pub fn file(path: &Path, model_rate: u32, realtime: bool) -> Result<Self> {
        let clip = audio::read_for(path, model_rate, DEFAULT_MAX_SECONDS)?;
        let rate = clip.sample_rate;
        let mut samples = clip.samples.into_iter();
        let block = (rate as usize / 100).max(1);
        Ok(Self::spawn(rate, realtime, move |buf| {
            buf.extend(samples.by_ref().take(block));
            Ok(!buf.is_empty())
        }))
    }

    /// Raw signed 16-bit little-endian mono PCM at `rate` Hz from `reader` (stdin).
    pub fn pcm(mut reader: impl Read + Send + 'static, rate: u32, realtime: bool) -> Result<Self> {
        if rate == 0 || rate > audio::MAX_SAMPLE_RATE {
            return Err(Error::Config(format!("--rate {rate} is outside 1..={} Hz", audio::MAX_SAMPLE_RATE)));
        }
        let mut bytes = vec![0u8; 2 * (rate as usize / 100).max(1)];
        let mut odd: Option<u8> = None;
        Ok(Self::spawn(rate, realtime, move |buf| {
            let n = reader.read(&mut bytes)?;
            if n == 0 {
                return Ok(false);
            }
            // A read may end in the middle of a sample: carry the odd byte over.
            let mut data: Vec<u8> = odd.take().into_iter().chain(bytes[..n].iter().copied()).collect();
            if data.len() % 2 == 1 {
                odd = data.pop();
            }
            buf.extend(data.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0));
            Ok(true)
        }))
    }

    /// Starts the thread: `next` appends the next block of mono samples (false at the end).
    /// Real time: each block is pushed when its time comes. Otherwise as fast as the listener
    /// takes them (waiting, never dropping, when the ring is full: unlike a microphone, a file
    /// can wait).
    fn spawn<F>(rate: u32, realtime: bool, mut next: F) -> Self
    where
        F: FnMut(&mut Vec<f32>) -> std::io::Result<bool> + Send + 'static,
    {
        let (mut producer, consumer) =
            rtrb::RingBuffer::<f32>::new((f64::from(rate) * FEED_RING_SECONDS) as usize);
        let done = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let (done2, error2) = (Arc::clone(&done), Arc::clone(&error));
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut pushed = 0u64;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match next(&mut buf) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        if let Ok(mut slot) = error2.lock() {
                            *slot = Some(format!("reading the input: {e}"));
                        }
                        break;
                    }
                }
                if realtime {
                    let due = start + Duration::from_secs_f64(pushed as f64 / f64::from(rate));
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                let mut rest = &buf[..];
                while !rest.is_empty() {
                    if producer.is_abandoned() {
                        return;
                    }
                    let (written, _) = producer.push_partial_slice(rest);
                    rest = &rest[written.len()..];
                    if !rest.is_empty() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                pushed += buf.len() as u64;
            }
            done2.store(true, Ordering::Release);
        });
        Feeder { rate, consumer, done, error }
    }
}

impl Source for Feeder {
    fn rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> usize {
        1
    }

    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<Status> {
        let available = self.consumer.slots();
        if available == 0 {
            let error =
                self.error.lock().map_err(|_| Error::Config("the feeder's state is poisoned".into()))?;
            if let Some(e) = error.clone() {
                return Err(Error::Input(e));
            }
            return Ok(if self.done.load(Ordering::Acquire) && self.consumer.is_empty() {
                Status::Ended
            } else {
                Status::Idle
            });
        }
        read_ring(&mut self.consumer, out, max)
    }
}

/// Appends up to `max` samples of a ring buffer to `out`.
pub fn read_ring(consumer: &mut rtrb::Consumer<f32>, out: &mut Vec<f32>, max: usize) -> Result<Status> {
    let n = consumer.slots().min(max);
    if n == 0 {
        return Ok(Status::Idle);
    }
    let chunk = consumer.read_chunk(n).map_err(|e| Error::Input(format!("reading the ring buffer: {e}")))?;
    let (a, b) = chunk.as_slices();
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    chunk.commit_all();
    Ok(Status::Data)
}
