//! The live loop shared by every source of `listen`: a [`Feed`] (microphone, wav file or stdin)
//! fills a ring buffer of interleaved samples; the [`Session`] drains it on this thread, mixes
//! and resamples to the model's rate, runs the recogniser and prints results as they come.
//!
//! Files and stdin go through the same ring buffer and worker as the microphone (a feeder
//! thread plays the part of the audio callback, paced in real time unless asked not to), so
//! `--input` tests the very path a microphone takes.
//!
//! A lost microphone ends the session, unless a [`Reopen`] is given (`listen --reconnect`):
//! then the session tries to open the input again every second until it comes back.

use crate::mic;
use anyhow::{Context, anyhow, bail};
use clap::ValueEnum;
use spoken_digits::audio::{self, DEFAULT_MAX_SECONDS};
use spoken_digits::recogniser::{Heard, HeardDigit, Recogniser};
use spoken_digits::resample::StreamConverter;
use spoken_digits::stream::loudest_window;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Ring buffer length for file and stdin feeds (seconds).
const FEED_RING_SECONDS: f64 = 2.0;

/// Time between attempts to reopen a lost input.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Opens the input again after it was lost (`listen --reconnect`): the new feed, and how to
/// name it in the "listening again on ..." message.
pub type Reopen = Box<dyn FnMut() -> anyhow::Result<(Feed, String)>>;

/// What [`Session::next_utterance`] found.
pub enum Next {
    /// The next utterance, classified.
    Utterance(HeardDigit),
    /// The input was lost and has been reopened (`--reconnect`); what was being said is gone.
    Resumed,
    /// The file or pipe ended.
    Ended,
    /// Ctrl-C.
    Stopped,
}

/// Where samples come from.
pub struct Feed {
    pub rate: u32,
    pub channels: usize,
    source: Source,
}

enum Source {
    Mic(mic::Input),
    Feeder { consumer: rtrb::Consumer<f32>, done: Arc<AtomicBool>, error: Arc<Mutex<Option<String>>> },
}

impl Feed {
    /// A running microphone stream.
    pub fn microphone(input: mic::Input) -> Self {
        Feed {
            rate: input.capture.config.sample_rate,
            channels: usize::from(input.capture.config.channels),
            source: Source::Mic(input),
        }
    }

    fn consumer(&mut self) -> &mut rtrb::Consumer<f32> {
        match &mut self.source {
            Source::Mic(input) => &mut input.consumer,
            Source::Feeder { consumer, .. } => consumer,
        }
    }

    /// Samples the microphone's ring had no room for.
    fn dropped(&self) -> u64 {
        match &self.source {
            Source::Mic(input) => input.shared.dropped.load(Ordering::Relaxed),
            Source::Feeder { .. } => 0,
        }
    }
}

/// An audio file (wav or any format [`audio::read_audio`] reads), fed through the ring buffer by a
/// thread. The file is read whole (mono at its
/// own rate) before listening starts, so a bad file fails at once.
pub fn file_feed(path: &Path, realtime: bool) -> anyhow::Result<Feed> {
    let clip = audio::read_audio(path, DEFAULT_MAX_SECONDS)?;
    let rate = clip.sample_rate;
    let mut samples = clip.samples.into_iter();
    let block = (rate as usize / 100).max(1);
    Ok(spawn_feeder(rate, realtime, move |buf| {
        buf.extend(samples.by_ref().take(block));
        Ok(!buf.is_empty())
    }))
}

/// Raw signed 16-bit little-endian mono PCM on stdin at `rate` Hz.
pub fn stdin_feed(rate: u32, realtime: bool) -> anyhow::Result<Feed> {
    if rate == 0 || rate > audio::MAX_SAMPLE_RATE {
        bail!("--rate {rate} is outside 1..={} Hz", audio::MAX_SAMPLE_RATE);
    }
    let mut stdin = std::io::stdin();
    let mut bytes = vec![0u8; 2 * (rate as usize / 100).max(1)];
    let mut odd: Option<u8> = None;
    Ok(spawn_feeder(rate, realtime, move |buf| {
        let n = stdin.read(&mut bytes)?;
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

/// Starts a thread that plays the audio callback for a file or pipe: `next` appends the next
/// block of mono samples (false at the end). Real time: each block is pushed when its time
/// comes. Otherwise as fast as the worker takes them (waiting, never dropping, when the ring
/// is full: unlike a microphone, a file can wait).
fn spawn_feeder<F>(rate: u32, realtime: bool, mut next: F) -> Feed
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
    Feed { rate, channels: 1, source: Source::Feeder { consumer, done, error } }
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per digit with its confidence, one line per sequence.
    Text,
    /// JSON Lines: `{"digit","confidence","start_s","end_s","latency_ms"}` per utterance and
    /// `{"sequence"}` per sequence.
    Json,
}

/// Writes results to stdout, flushed line by line so a pipe sees each digit at once.
pub struct Output {
    format: OutputFormat,
}

impl Output {
    pub fn new(format: OutputFormat) -> Self {
        Output { format }
    }

    fn digit(&self, d: &HeardDigit, latency_ms: f64) -> std::io::Result<()> {
        let line = match self.format {
            OutputFormat::Json => serde_json::json!({
                "digit": d.digit,
                "confidence": d.prediction.confidence,
                "start_s": round3(d.start_s),
                "end_s": round3(d.end_s),
                "latency_ms": round3(latency_ms),
            })
            .to_string(),
            OutputFormat::Text => {
                let what = match d.digit {
                    Some(digit) => format!("{digit}  {:5.1}%", 100.0 * d.prediction.confidence),
                    None => format!(
                        "?  {:5.1}% (best guess {})",
                        100.0 * d.prediction.confidence,
                        d.prediction.digit
                    ),
                };
                format!("  {what}   {:.2}-{:.2} s   {latency_ms:.1} ms", d.start_s, d.end_s)
            }
        };
        write_line(&line)
    }

    fn sequence(&self, s: &str) -> std::io::Result<()> {
        match self.format {
            OutputFormat::Json => write_line(&serde_json::json!({ "sequence": s }).to_string()),
            OutputFormat::Text => write_line(s),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn write_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// What a session did, printed on stderr at the end.
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
    /// Median latency from detected end of speech to printed digit.
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

/// The worker: drains the feed, converts, recognises, prints.
pub struct Session<'m> {
    feed: Feed,
    recogniser: Recogniser<'m>,
    output: Output,
    stop: Arc<AtomicBool>,
    converter: StreamConverter,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    heard: Vec<Heard>,
    summary: Summary,
    reported_drops: u64,
    /// Microphone liveness: (callbacks seen, when that count last changed).
    last_audio: (u64, Instant),
    /// Converted samples that were all exactly zero so far (microphones only).
    silent_samples: u64,
    warned_silence: bool,
    /// Set with [`Session::reconnect_with`]: how to reopen a lost microphone.
    reopen: Option<Reopen>,
    /// Samples dropped by inputs that were lost and replaced.
    dropped_before: u64,
    /// The file or pipe has ended and the recogniser has been flushed.
    ended: bool,
}

impl<'m> Session<'m> {
    pub fn new(
        feed: Feed,
        recogniser: Recogniser<'m>,
        output: Output,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let converter = StreamConverter::new(feed.channels, feed.rate, recogniser.sample_rate())?;
        Ok(Session {
            feed,
            recogniser,
            output,
            stop,
            converter,
            interleaved: Vec::new(),
            mono: Vec::new(),
            heard: Vec::new(),
            summary: Summary::default(),
            reported_drops: 0,
            last_audio: (0, Instant::now()),
            silent_samples: 0,
            warned_silence: false,
            reopen: None,
            dropped_before: 0,
            ended: false,
        })
    }

    /// When the microphone is lost, reopen it with `reopen` (retrying every second until it
    /// comes back or Ctrl-C) instead of ending the session with an error.
    pub fn reconnect_with(&mut self, reopen: Reopen) {
        self.reopen = Some(reopen);
    }

    /// The rate of the utterances' samples (the model's front end rate).
    pub fn sample_rate(&self) -> u32 {
        self.recogniser.sample_rate()
    }

    /// Hands-free: utterances and sequences as the VAD finds them, until the input ends or
    /// Ctrl-C.
    pub fn hands_free(&mut self) -> anyhow::Result<Summary> {
        let started = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.summary.stopped_by_user = true;
                break;
            }
            let arrived = Instant::now();
            match self.pull() {
                Ok(true) => {}
                Ok(false) => break,
                Err(lost) => {
                    // The digits heard up to the loss are printed before waiting for the input.
                    self.end_stream()?;
                    self.emit()?;
                    self.reopen(lost)?;
                    continue;
                }
            }
            if self.mono.is_empty() {
                continue;
            }
            self.recogniser.push(&self.mono, arrived, &mut self.heard)?;
            self.mono.clear();
            self.emit()?;
        }
        // The end of the input (or Ctrl-C): what the resampler and the VAD still hold.
        self.end_stream()?;
        self.emit()?;
        Ok(self.finish_summary(started, self.recogniser.seconds()))
    }

    /// For enrollment: the next utterance the VAD cuts from the stream, classified. Sequence
    /// breaks are skipped; at the end of a file or pipe, what the VAD still holds comes first.
    pub fn next_utterance(&mut self) -> anyhow::Result<Next> {
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
            match self.pull() {
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
                    self.reopen(lost)?;
                    return Ok(if self.stop.load(Ordering::SeqCst) { Next::Stopped } else { Next::Resumed });
                }
            }
            if !self.mono.is_empty() {
                self.recogniser.push(&self.mono, arrived, &mut self.heard)?;
                self.mono.clear();
            }
        }
    }

    /// Pushes out what the resampler and the VAD still hold (the utterance in progress and the
    /// open sequence) into `self.heard`.
    fn end_stream(&mut self) -> anyhow::Result<()> {
        self.converter.flush(&mut self.mono)?;
        self.recogniser.push(&self.mono, Instant::now(), &mut self.heard)?;
        self.mono.clear();
        self.recogniser.finish(&mut self.heard)?;
        Ok(())
    }

    /// The microphone was `lost`. Without a [`Reopen`] that is the session's error. With one,
    /// try every second until the input opens again (then carry on with it) or Ctrl-C.
    ///
    /// The dead stream is not closed (see `mic::Input`'s `Drop`: closing it can hang for good),
    /// so each loss leaks one stuck audio thread; a new stream does not depend on it.
    fn reopen(&mut self, lost: anyhow::Error) -> anyhow::Result<()> {
        let Some(reopen) = self.reopen.as_mut() else { return Err(lost) };
        eprintln!("warning: {lost:#}; trying to reopen the input every second (Ctrl-C to stop)");
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
            match reopen() {
                Ok((feed, name)) => {
                    self.converter =
                        StreamConverter::new(feed.channels, feed.rate, self.recogniser.sample_rate())?;
                    self.dropped_before += self.feed.dropped();
                    self.feed = feed;
                    self.reported_drops = 0;
                    self.last_audio = (0, Instant::now());
                    self.silent_samples = 0;
                    eprintln!("listening again on {name} (after {attempts} attempt(s))");
                    return Ok(());
                }
                Err(e) => tracing::info!(attempts, "the input does not open yet: {e:#}"),
            }
        }
    }

    /// Push-to-talk: Enter records 1.5 s, the loudest second is classified; `q` quits.
    pub fn push_to_talk(&mut self) -> anyhow::Result<Summary> {
        let rate = self.recogniser.sample_rate() as usize;
        let (record, window) = (rate * 3 / 2, rate);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        eprintln!("press Enter and say one digit; q then Enter quits");
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
            match self.pull() {
                Ok(true) => {}
                Ok(false) => break,
                Err(lost) => {
                    // A recording cut short by the loss is dropped.
                    let dropped = recording.take().is_some();
                    self.reopen(lost)?;
                    if dropped {
                        eprintln!("press Enter and say one digit; q then Enter quits");
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
                    let digit = HeardDigit {
                        digit: (prediction.confidence >= self.recogniser.min_confidence())
                            .then_some(prediction.digit),
                        prediction,
                        start_s: start as f64 / rate as f64,
                        end_s: (start + window) as f64 / rate as f64,
                        detected: done,
                        samples: clip.to_vec(),
                    };
                    self.print_digit(&digit)?;
                    recording = None;
                    eprintln!("press Enter and say one digit; q then Enter quits");
                }
            }
            seen += self.mono.len();
            self.mono.clear();
            match rx.try_recv() {
                Ok(line) if line.trim().eq_ignore_ascii_case("q") => break,
                Ok(_) if recording.is_none() => {
                    eprintln!("recording 1.5 s...");
                    recording = Some((Vec::with_capacity(record + rate), seen));
                }
                Ok(_) | Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        }
        Ok(self.finish_summary(started, seen as f64 / rate as f64))
    }

    /// Moves what the feed has into `self.mono` (converted). Returns false at the end of a
    /// file or pipe; errors when the microphone fails. Sleeps briefly when nothing is there.
    fn pull(&mut self) -> anyhow::Result<bool> {
        // At most ~20 ms per step, so a digit's latency is not inflated by a large backlog.
        let step = (self.feed.rate as usize / 50).max(1) * self.feed.channels;
        let available = self.feed.consumer().slots();
        if available == 0 {
            match &mut self.feed.source {
                Source::Mic(input) => input.check(&mut self.last_audio)?,
                Source::Feeder { consumer, done, error } => {
                    if let Some(e) = error.lock().map_err(|_| anyhow!("feeder state poisoned"))?.clone() {
                        bail!("{e}");
                    }
                    if done.load(Ordering::Acquire) && consumer.is_empty() {
                        return Ok(false);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
            return Ok(true);
        }
        let n = available.min(step);
        let chunk = self.feed.consumer().read_chunk(n).context("reading the ring buffer")?;
        let (a, b) = chunk.as_slices();
        self.interleaved.clear();
        self.interleaved.extend_from_slice(a);
        self.interleaved.extend_from_slice(b);
        chunk.commit_all();
        self.converter.push(&self.interleaved, &mut self.mono)?;
        self.watch_input();
        Ok(true)
    }

    /// Microphone health reports: dropped samples, and a warning when the input has been
    /// nothing but exact zeros for 5 s (a muted microphone or a `null` device).
    fn watch_input(&mut self) {
        let dropped = self.feed.dropped();
        if dropped > self.reported_drops {
            eprintln!(
                "warning: {} samples dropped: the worker fell behind the audio",
                dropped - self.reported_drops
            );
            self.reported_drops = dropped;
        }
        if matches!(self.feed.source, Source::Mic(_)) && !self.warned_silence {
            if self.mono.iter().all(|&s| s == 0.0) {
                self.silent_samples += self.mono.len() as u64;
            } else {
                self.silent_samples = 0;
            }
            if self.silent_samples > 5 * u64::from(self.recogniser.sample_rate()) {
                eprintln!(
                    "warning: the input has been exact digital silence for 5 s: is the microphone muted, \
                     or is this the wrong device? (check-mic tests it)"
                );
                self.warned_silence = true;
            }
        }
    }

    fn emit(&mut self) -> anyhow::Result<()> {
        for heard in std::mem::take(&mut self.heard) {
            match heard {
                Heard::Digit(d) => self.print_digit(&d)?,
                Heard::Sequence(s) => {
                    self.summary.sequences += 1;
                    self.output.sequence(&s).context("writing to stdout")?;
                }
            }
        }
        Ok(())
    }

    fn print_digit(&mut self, d: &HeardDigit) -> anyhow::Result<()> {
        let latency_ms = d.detected.elapsed().as_secs_f64() * 1000.0;
        self.output.digit(d, latency_ms).context("writing to stdout")?;
        self.summary.utterances += 1;
        self.summary.latencies_ms.push(latency_ms);
        Ok(())
    }

    fn finish_summary(&mut self, started: Instant, audio_seconds: f64) -> Summary {
        self.summary.audio_seconds = audio_seconds;
        self.summary.wall_seconds = started.elapsed().as_secs_f64();
        self.summary.dropped = self.dropped_before + self.feed.dropped();
        self.summary.clone()
    }
}
