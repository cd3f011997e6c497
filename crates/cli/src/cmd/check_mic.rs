//! `check-mic`: is there a microphone `listen` can use, and how loud is it?

use crate::Verbosity;
use crate::mic::{self, DeviceChoice, Request, quietly};
use clap::Parser;
use cpal::traits::{DeviceTrait, HostTrait};
use spoken_digits::FeatureConfig;
use spoken_digits::live::Source;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Check the microphone: list audio hosts and input devices, then record a few seconds with a
/// level meter and say whether the input works.
///
/// Exit status 0 when a usable input was found (verdict works, too quiet or clipping: the
/// device delivers sound), 1 when there is no usable device or it records only silence.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
pub struct CheckMicArgs {
    /// Input device to test: its index or name from the list [default: the default input].
    #[arg(long, short, value_name = "NAME|INDEX")]
    pub device: Option<DeviceChoice>,
    /// Only list the devices and open the input; do not record.
    #[arg(long)]
    pub no_record: bool,
    /// Seconds to record.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// -q skips the device list and prints only the result.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `println!` that does not panic when stdout is closed (`check-mic | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// The verdicts, in the words printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Works,
    TooQuiet,
    Clipping,
    Silent,
    NoDevice,
}

impl Verdict {
    fn usable(self) -> bool {
        matches!(self, Verdict::Works | Verdict::TooQuiet | Verdict::Clipping)
    }

    fn words(self) -> &'static str {
        match self {
            Verdict::Works => "works",
            Verdict::TooQuiet => "too quiet",
            Verdict::Clipping => "clipping",
            Verdict::Silent => "silent",
            Verdict::NoDevice => "no device",
        }
    }
}

/// The whole command: what `check-mic` does with its flags.
pub fn check_mic(args: CheckMicArgs) -> anyhow::Result<ExitCode> {
    if !args.verbosity.quiet {
        list_devices();
    }
    let choice = args.device.clone().unwrap_or(DeviceChoice::Default);
    let rate = FeatureConfig::default().sample_rate;
    let opened = mic::find_device(&choice).and_then(|device| {
        let capture = mic::choose_config(&device, rate, Request::default())?;
        Ok((device, capture))
    });
    let (device, capture) = match opened {
        Ok(x) => x,
        Err(e) => {
            return Ok(verdict(Verdict::NoDevice, &sentences(&format!("{e:#}"), &mic::no_device_hint())));
        }
    };
    let name = mic::device_name(&device);
    say!("\ninput: '{name}', capturing {capture}");
    if args.no_record {
        // Opening the stream is the real test (ALSA names devices it cannot open).
        return Ok(match mic::start(&device, capture, 1.0) {
            Ok(_) => {
                say!("the input opens; run without --no-record to test the level");
                ExitCode::SUCCESS
            }
            Err(e) => verdict(Verdict::NoDevice, &sentences(&format!("{e:#}"), &mic::no_device_hint())),
        });
    }
    let mut input = match mic::start(&device, capture, args.seconds + 2.0) {
        Ok(i) => i,
        Err(e) => {
            return Ok(verdict(Verdict::NoDevice, &sentences(&format!("{e:#}"), &mic::no_device_hint())));
        }
    };
    say!("recording {:.0} s: say something, e.g. count to three", args.seconds);
    let level = record(&mut input, args.seconds)?;
    let dbfs =
        |x: f64| if x > 0.0 { format!("{:.1} dBFS", 20.0 * x.log10()) } else { "-inf dBFS".to_string() };
    say!(
        "level: RMS {}, peak {} over {:.1} s ({} samples)",
        dbfs(level.rms()),
        dbfs(level.peak),
        level.samples as f64 / f64::from(capture.config.sample_rate) / f64::from(capture.config.channels),
        level.samples
    );
    let (v, hint) = if let Some(e) = level.error {
        (Verdict::NoDevice, sentences(&e, &mic::no_device_hint()))
    } else if level.samples == 0 {
        (Verdict::NoDevice, format!("the input opened but delivered no audio. {}", mic::no_device_hint()))
    } else if level.peak == 0.0 {
        (
            Verdict::Silent,
            "the input delivers nothing but exact zeros: the microphone is muted (alsamixer, pavucontrol or \
             the system's sound settings), or this is not a real input (ALSA's `null` device); pick another \
             with --device N"
                .to_string(),
        )
    } else if level.peak >= 0.989 {
        (
            Verdict::Clipping,
            "the signal hits full scale: lower the input gain or move away from the microphone".into(),
        )
    } else if level.peak < 0.03 {
        (
            Verdict::TooQuiet,
            "peaks stay below -30 dBFS: speak closer, raise the input gain (alsamixer, pavucontrol), or check \
             that this is the microphone you are speaking into"
                .into(),
        )
    } else {
        (Verdict::Works, "ready for `listen`".into())
    };
    Ok(verdict(v, &hint))
}

/// "a." + "b" -> "a. b" (cpal's messages end with a full stop, anyhow's do not).
fn sentences(first: &str, second: &str) -> String {
    format!("{}. {second}", first.trim_end_matches('.'))
}

fn verdict(v: Verdict, hint: &str) -> ExitCode {
    say!("verdict: {}: {hint}", v.words());
    if v.usable() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Hosts, their input devices with supported configurations, the default marked with `*`.
/// Indices are what `--device` takes. libasound's chatter while probing is hidden.
fn list_devices() {
    let default_host = cpal::default_host().id();
    for host_id in cpal::available_hosts() {
        let mark = if host_id == default_host { " (default)" } else { "" };
        say!("host {}{mark}", host_id.name());
        let host = match quietly(|| cpal::host_from_id(host_id)) {
            Ok(h) => h,
            Err(e) => {
                say!("  unavailable: {e}");
                continue;
            }
        };
        let default_id = quietly(|| host.default_input_device()).and_then(|d| d.id().ok());
        let devices = match mic::input_devices(&host) {
            Ok(d) => d,
            Err(e) => {
                say!("  cannot list input devices: {e:#}");
                continue;
            }
        };
        if devices.is_empty() {
            say!("  no input devices");
        }
        for (i, device) in devices.iter().enumerate() {
            let is_default = default_id.is_some() && device.id().ok() == default_id;
            let id = device.id().map(|id| id.to_string()).unwrap_or_default();
            say!(
                "  {}[{i}] {id} ({}): {}",
                if is_default { "*" } else { " " },
                mic::device_name(device),
                summarise(device)
            );
        }
    }
}

/// One line for a device's input configurations: channels, rates, sample formats.
fn summarise(device: &cpal::Device) -> String {
    let ranges: Vec<_> = match quietly(|| device.supported_input_configs()) {
        Ok(r) => r.collect(),
        Err(e) => return format!("cannot be opened ({e})"),
    };
    if ranges.is_empty() {
        return "no input configurations".into();
    }
    let ch = (ranges.iter().map(|r| r.channels()).min(), ranges.iter().map(|r| r.channels()).max());
    let hz =
        (ranges.iter().map(|r| r.min_sample_rate()).min(), ranges.iter().map(|r| r.max_sample_rate()).max());
    let formats: BTreeSet<String> = ranges.iter().map(|r| r.sample_format().to_string()).collect();
    let span = |(a, b): (Option<u32>, Option<u32>)| match (a, b) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "?".into(),
    };
    format!(
        "{} ch, {} Hz, {}",
        span((ch.0.map(u32::from), ch.1.map(u32::from))),
        span(hz),
        formats.into_iter().collect::<Vec<_>>().join("/")
    )
}

/// Levels over a recording.
#[derive(Debug, Default)]
struct Level {
    samples: u64,
    sum_sq: f64,
    peak: f64,
    error: Option<String>,
}

impl Level {
    fn rms(&self) -> f64 {
        (self.sum_sq / self.samples.max(1) as f64).sqrt()
    }
}

/// Records for `seconds`, drawing a level meter on a terminal's stderr.
fn record(input: &mut mic::Input, seconds: f64) -> anyhow::Result<Level> {
    let meter = std::io::stderr().is_terminal();
    let mut level = Level::default();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut block_peak = 0.0f64;
    let mut next_draw = Instant::now();
    let mut buf = Vec::new();
    while Instant::now() < end {
        buf.clear();
        if let Err(e) = input.read(&mut buf, usize::MAX) {
            level.error = Some(e.to_string());
            break;
        }
        for &s in &buf {
            let s = f64::from(s);
            level.sum_sq += s * s;
            level.peak = level.peak.max(s.abs());
            block_peak = block_peak.max(s.abs());
        }
        level.samples += buf.len() as u64;
        if meter && Instant::now() >= next_draw {
            let db = if block_peak > 0.0 { 20.0 * block_peak.log10() } else { -90.0 };
            let filled = ((db + 60.0) / 60.0 * 40.0).clamp(0.0, 40.0) as usize;
            eprint!("\r  [{}{}] {db:6.1} dBFS peak ", "#".repeat(filled), " ".repeat(40 - filled));
            let _ = std::io::stderr().flush();
            block_peak = 0.0;
            next_draw += Duration::from_millis(100);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if meter {
        eprintln!();
    }
    Ok(level)
}
