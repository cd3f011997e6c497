//! The microphone side of `listen` and `check-mic`: finding an input device, choosing its
//! configuration, and a capture stream whose callback only hands samples off.
//!
//! Facts this is built on (see ../shared/AUDIO.md): with no audio server, ALSA still names a
//! `default` device and only fails when it is opened, so "is there a microphone" means "does the
//! input give a config and a stream"; ALSA's `null` device records endless zeros, so nothing here
//! ever falls back to another device; and libasound/JACK print to stderr while enumerating, which
//! [`quietly`] hides.

use anyhow::{Context, anyhow, bail};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{BufferSize, FromSample, Sample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize};
use spoken_digits::live::{Source, Status, read_ring};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `f` with the process's stderr sent to /dev/null, restoring it afterwards.
///
/// libasound and its plugins write straight to file descriptor 2 (not through any Rust API),
/// so the only way to keep their noise off the terminal is to point fd 2 elsewhere for the
/// duration. Other threads' stderr output in that window is lost, so keep `f` short.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let _guard = StderrToNull::new();
    f()
}

struct StderrToNull {
    saved: Option<libc::c_int>,
}

impl StderrToNull {
    fn new() -> Self {
        // SAFETY: plain descriptor calls on fds this function owns; every failure leaves fd 2
        // as it was.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null < 0 {
                return StderrToNull { saved: None };
            }
            let saved = libc::dup(2);
            if saved < 0 || libc::dup2(null, 2) < 0 {
                libc::close(null);
                if saved >= 0 {
                    libc::close(saved);
                }
                return StderrToNull { saved: None };
            }
            libc::close(null);
            StderrToNull { saved: Some(saved) }
        }
    }
}

impl Drop for StderrToNull {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: `saved` is the descriptor dup'ed in `new` and not closed since.
            unsafe {
                libc::dup2(saved, 2);
                libc::close(saved);
            }
        }
    }
}

/// `--device`: the default input, an index into [`input_devices`], or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    Default,
    Index(usize),
    Name(String),
}

impl std::str::FromStr for DeviceChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<usize>() {
            Ok(i) => DeviceChoice::Index(i),
            Err(_) if s == "default" => DeviceChoice::Default,
            Err(_) => DeviceChoice::Name(s.to_string()),
        })
    }
}

/// A device's display name (its description, else its id).
pub fn device_name(device: &cpal::Device) -> String {
    match device.description() {
        Ok(d) => d.name().to_string(),
        Err(_) => device.id().map(|id| id.to_string()).unwrap_or_else(|_| "(unnamed device)".into()),
    }
}

/// The default host's input devices, in the order `check-mic` numbers them.
pub fn input_devices(host: &cpal::Host) -> anyhow::Result<Vec<cpal::Device>> {
    let devices = quietly(|| host.input_devices()).context("listing input devices")?;
    Ok(devices.collect())
}

/// Finds the device `choice` names on the default host. Never substitutes another device.
pub fn find_device(choice: &DeviceChoice) -> anyhow::Result<cpal::Device> {
    let host = cpal::default_host();
    match choice {
        DeviceChoice::Default => quietly(|| host.default_input_device())
            .ok_or_else(|| anyhow!("the {} host has no default input device", host.id().name())),
        DeviceChoice::Index(i) => {
            let devices = input_devices(&host)?;
            let n = devices.len();
            devices.into_iter().nth(*i).ok_or_else(|| {
                anyhow!("there is no input device {i} (found {n}; `check-mic --no-record` lists them)")
            })
        }
        DeviceChoice::Name(name) => {
            let devices = input_devices(&host)?;
            let names: Vec<String> = devices.iter().map(device_name).collect();
            let ids: Vec<String> =
                devices.iter().map(|d| d.id().map(|i| i.to_string()).unwrap_or_default()).collect();
            let exact = (0..devices.len()).find(|&i| names[i] == *name || ids[i] == *name);
            let partial: Vec<usize> =
                (0..devices.len()).filter(|&i| names[i].contains(name.as_str())).collect();
            let pick = match (exact, partial.as_slice()) {
                (Some(i), _) => i,
                (None, [i]) => *i,
                (None, []) => bail!("no input device is named '{name}' (`check-mic --no-record` lists them)"),
                (None, _) => bail!(
                    "'{name}' matches several input devices: {}",
                    partial.iter().map(|&i| names[i].as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            devices.into_iter().nth(pick).ok_or_else(|| anyhow!("input device '{name}' vanished"))
        }
    }
}

/// What to ask the device for. `None` fields mean "the front end's rate, mono if possible".
#[derive(Debug, Clone, Copy, Default)]
pub struct Request {
    pub rate: Option<u32>,
    pub channels: Option<u16>,
}

/// The chosen capture configuration.
#[derive(Debug, Clone, Copy)]
pub struct Capture {
    pub config: StreamConfig,
    pub format: SampleFormat,
}

impl std::fmt::Display for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz, {} ch, {}", self.config.sample_rate, self.config.channels, self.format)
    }
}

/// Preference among sample formats: float first, then the common integer ones. DSD is never
/// picked (it is not PCM).
fn format_rank(f: SampleFormat) -> Option<u8> {
    Some(match f {
        SampleFormat::F32 => 0,
        SampleFormat::I16 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::I24 => 3,
        SampleFormat::F64 => 4,
        SampleFormat::U16 => 5,
        SampleFormat::U8 => 6,
        SampleFormat::I8 => 7,
        SampleFormat::U24 | SampleFormat::U32 => 8,
        SampleFormat::I64 | SampleFormat::U64 => 9,
        _ => return None,
    })
}

/// Chooses a capture configuration, always naming the rate explicitly: `request.rate`, else
/// the device's own (default) rate, mono when offered at that rate, float samples preferred.
/// The front end's `want_rate` is asked for directly only when it is the device's own rate.
///
/// Why not always ask for 8 kHz: a PulseAudio input offers any rate, but converts with its
/// own resampler, and what PulseAudio's default resampler makes of 48 kHz -> 8 kHz turned
/// hold-out "one" and "five" into "nine" on the virtual microphone, while capturing at 48 kHz
/// (or 44.1 or 16 kHz) and resampling here with rubato read all ten right. Real sound cards
/// without a server usually offer 44.1/48 kHz only, where ALSA's plug layer would convert.
pub fn choose_config(device: &cpal::Device, want_rate: u32, request: Request) -> anyhow::Result<Capture> {
    let native = quietly(|| device.default_input_config()).ok().map(|c| c.sample_rate());
    let rate = request.rate.or(native).unwrap_or(want_rate);
    let ranges: Vec<cpal::SupportedStreamConfigRange> = quietly(|| device.supported_input_configs())
        .map_err(|e| anyhow!("{e}"))
        .context("the input device does not answer (no audio server or sound card?)")?
        .collect();
    let mut best: Option<((bool, u16, u8), cpal::SupportedStreamConfig)> = None;
    for range in ranges {
        let Some(rank) = format_rank(range.sample_format()) else { continue };
        if request.channels.is_some_and(|c| c != range.channels()) {
            continue;
        }
        let Some(cfg) = range.try_with_sample_rate(rate) else { continue };
        let key = (cfg.channels() != 1, cfg.channels(), rank);
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, cfg));
        }
    }
    let chosen = match best {
        Some((_, cfg)) => cfg,
        None if request.rate.is_some() || request.channels.is_some() => {
            bail!("the input device offers no configuration with {rate} Hz and the requested channels")
        }
        None => quietly(|| device.default_input_config())
            .map_err(|e| anyhow!("{e}"))
            .context("the input device has no usable configuration")?,
    };
    if format_rank(chosen.sample_format()).is_none() {
        bail!("the input device only offers {} samples, which are not PCM", chosen.sample_format());
    }
    // About 20 ms per callback when the device says what it allows: small blocks keep the
    // latency low, and the ring buffer absorbs the rest.
    let frames = (chosen.sample_rate() / 50).max(1);
    let buffer_size = match chosen.buffer_size() {
        SupportedBufferSize::Range { min, max } if (*min..=*max).contains(&frames) => {
            BufferSize::Fixed(frames)
        }
        _ => BufferSize::Default,
    };
    let mut config = chosen.config();
    config.buffer_size = buffer_size;
    Ok(Capture { config, format: chosen.sample_format() })
}

/// State the audio thread shares with the worker. The callback only touches atomics.
#[derive(Debug, Default)]
pub struct Shared {
    /// Samples the ring buffer had no room for.
    pub dropped: AtomicU64,
    /// Callbacks so far.
    pub callbacks: AtomicU64,
    /// A fatal stream error reported by the error callback (not the data callback).
    pub error: Mutex<Option<String>>,
}

impl Shared {
    /// The fatal error, if one was reported.
    pub fn error(&self) -> Option<String> {
        self.error.lock().map(|e| e.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// A running input stream feeding a ring buffer of interleaved f32 samples.
pub struct Input {
    /// Dropping the stream stops the callbacks; see `Drop` for when it is not dropped.
    stream: std::mem::ManuallyDrop<cpal::Stream>,
    /// Set when the device failed.
    failed: bool,
    pub consumer: rtrb::Consumer<f32>,
    pub shared: Arc<Shared>,
    pub capture: Capture,
    pub started: Instant,
    /// Liveness: callbacks seen, and when that count last changed.
    last_audio: (u64, Instant),
}

impl Input {
    /// Checks the stream is alive: no fatal error, first audio within 3 s of starting, and no
    /// pause in the callbacks longer than 2 s. A device pulled out (or an audio server that dies)
    /// either reports an error or simply stops calling back; both end here.
    fn check(&mut self) -> anyhow::Result<()> {
        let result = self.liveness();
        self.failed |= result.is_err();
        result
    }

    fn liveness(&mut self) -> anyhow::Result<()> {
        if let Some(e) = self.shared.error() {
            bail!("the input device failed: {e}");
        }
        let n = self.shared.callbacks.load(Ordering::Relaxed);
        let now = Instant::now();
        if n != self.last_audio.0 {
            self.last_audio = (n, now);
            return Ok(());
        }
        if n == 0 && now - self.started > Duration::from_secs(3) {
            bail!("the input device delivered no audio within 3 s of starting");
        }
        if n > 0 && now - self.last_audio.1 > Duration::from_secs(2) {
            bail!("the input device stopped delivering audio (unplugged, or the audio server went away)");
        }
        Ok(())
    }
}

/// The microphone as the live loop's source: the ring buffer the callback fills, its liveness
/// checked whenever it is empty.
impl Source for Input {
    fn rate(&self) -> u32 {
        self.capture.config.sample_rate
    }

    fn channels(&self) -> usize {
        usize::from(self.capture.config.channels)
    }

    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> spoken_digits::Result<Status> {
        if self.consumer.slots() == 0 {
            self.check().map_err(|e| spoken_digits::Error::Input(format!("{e:#}")))?;
            return Ok(Status::Idle);
        }
        read_ring(&mut self.consumer, out, max)
    }

    fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn is_device(&self) -> bool {
        true
    }
}

/// Finds the device `choice` names, chooses its configuration ([`choose_config`]) and starts
/// it ([`start`]). Returns the running input and the device's name. Errors say what a user can do.
pub fn open(
    choice: &DeviceChoice,
    want_rate: u32,
    request: Request,
    ring_seconds: f64,
) -> anyhow::Result<(Input, String)> {
    let device = find_device(choice).map_err(|e| e.context(no_device_hint()))?;
    let name = device_name(&device);
    let capture = choose_config(&device, want_rate, request)
        .with_context(|| format!("no usable input on '{name}': {}", no_device_hint()))?;
    let input = start(&device, capture, ring_seconds)
        .with_context(|| format!("no usable input on '{name}': {}", no_device_hint()))?;
    Ok((input, name))
}

/// Opens `device` with `capture` and starts it. The ring holds `ring_seconds` of audio.
pub fn start(device: &cpal::Device, capture: Capture, ring_seconds: f64) -> anyhow::Result<Input> {
    let len =
        (f64::from(capture.config.sample_rate) * f64::from(capture.config.channels) * ring_seconds) as usize;
    let (producer, consumer) = rtrb::RingBuffer::<f32>::new(len.max(1024));
    let shared = Arc::new(Shared::default());
    let stream = quietly(|| build(device, capture, producer, Arc::clone(&shared)))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("opening the input stream ({capture})"))?;
    quietly(|| stream.play()).map_err(|e| anyhow!("{e}")).context("starting the input stream")?;
    Ok(Input {
        stream: std::mem::ManuallyDrop::new(stream),
        failed: false,
        consumer,
        shared,
        capture,
        started: Instant::now(),
        last_audio: (0, Instant::now()),
    })
}

impl Drop for Input {
    fn drop(&mut self) {
        // Closing a stream joins cpal's audio thread. When the audio server died under it,
        // that thread is stuck for good inside the ALSA pulse plugin (measured: a deadlock on
        // the plugin's mainloop mutex), and the join would hang the process instead of letting
        // it report the error and exit. A failed stream is therefore leaked; the process is
        // about to end anyway.
        if !self.failed {
            // SAFETY: dropped exactly once, here, and never used afterwards.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.stream) };
        }
    }
}

fn build(
    device: &cpal::Device,
    capture: Capture,
    producer: rtrb::Producer<f32>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error> {
    match capture.format {
        SampleFormat::I8 => build_typed::<i8>(device, capture.config, producer, shared),
        SampleFormat::I16 => build_typed::<i16>(device, capture.config, producer, shared),
        SampleFormat::I24 => build_typed::<cpal::I24>(device, capture.config, producer, shared),
        SampleFormat::I32 => build_typed::<i32>(device, capture.config, producer, shared),
        SampleFormat::I64 => build_typed::<i64>(device, capture.config, producer, shared),
        SampleFormat::U8 => build_typed::<u8>(device, capture.config, producer, shared),
        SampleFormat::U16 => build_typed::<u16>(device, capture.config, producer, shared),
        SampleFormat::U24 => build_typed::<cpal::U24>(device, capture.config, producer, shared),
        SampleFormat::U32 => build_typed::<u32>(device, capture.config, producer, shared),
        SampleFormat::U64 => build_typed::<u64>(device, capture.config, producer, shared),
        SampleFormat::F32 => build_typed::<f32>(device, capture.config, producer, shared),
        SampleFormat::F64 => build_typed::<f64>(device, capture.config, producer, shared),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("{other} samples are not supported"),
        )),
    }
}

/// One callback for every sample type: convert to f32 and copy into the ring. No locks, no
/// allocation, no blocking; what does not fit is counted as dropped.
fn build_typed<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut producer: rtrb::Producer<f32>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let on_data = Arc::clone(&shared);
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let room = producer.slots().min(data.len());
            if let Ok(chunk) = producer.write_chunk_uninit(room) {
                chunk.fill_from_iter(data.iter().map(|&s| f32::from_sample(s)));
            }
            if room < data.len() {
                on_data.dropped.fetch_add((data.len() - room) as u64, Ordering::Relaxed);
            }
            on_data.callbacks.fetch_add(1, Ordering::Relaxed);
        },
        move |err: cpal::Error| match err.kind() {
            // Non-fatal: a glitch (xrun), a format change, no real-time priority.
            cpal::ErrorKind::Xrun | cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied => {}
            _ => {
                let mut slot = shared.error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| err.to_string());
            }
        },
        None,
    )
}

/// Why no input could be opened, in words a user can act on.
pub fn no_device_hint() -> String {
    if let Some(server) = std::env::var_os("PULSE_SERVER") {
        return format!(
            "PULSE_SERVER={} is set, but no audio server answers there: start it, or unset \
             PULSE_SERVER to use the system's default",
            server.to_string_lossy()
        );
    }
    let cards = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
    let no_cards = cards.trim().is_empty() || cards.contains("no soundcards");
    if no_cards && !std::path::Path::new("/dev/snd").exists() {
        return "this machine (or container) has no sound card and no audio server: on a desktop, start \
                PulseAudio or PipeWire; in Docker, pass --device /dev/snd or share the host's audio \
                server (-v $XDG_RUNTIME_DIR/pulse:/run/pulse -e PULSE_SERVER=unix:/run/pulse/native)"
            .to_string();
    }
    "the default input could not be opened: plug in or unmute a microphone, check that it is the \
     default input in the system's sound settings, or pick one from the list with --device N"
        .to_string()
}
