//! How `listen` shows what the live loop ([`spoken_digits::live::Listener`]) reports: digits and
//! sequences on stdout (text or JSON Lines, flushed line by line so a pipe sees each digit at
//! once), warnings and status on stderr, status silenced by `-q`.

use crate::warn;
use clap::ValueEnum;
use spoken_digits::live::Event;
use spoken_digits::recogniser::HeardDigit;
use spoken_digits::{Error, Result};
use std::io::Write;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per digit with its confidence, one line per sequence.
    Text,
    /// JSON Lines: `{"digit","confidence","start_s","end_s","latency_ms"}` per digit and
    /// `{"sequence","confidence","digits":[{"digit","confidence","start_s","end_s"}]}` per
    /// sequence.
    Json,
}

/// Prints the listener's events.
pub struct Render {
    format: OutputFormat,
    quiet: bool,
    /// The digits of the open sequence, for its JSON line.
    open: Vec<serde_json::Value>,
    /// The product of their confidences.
    confidence: f64,
}

impl Render {
    /// `quiet`: no status lines on stderr (results, warnings and prompts still print).
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        Render { format, quiet, open: vec![], confidence: 1.0 }
    }

    /// Shows one event.
    pub fn event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Digit { heard, latency_ms } => self.digit(&heard, latency_ms),
            Event::Sequence(s) => self.sequence(&s),
            Event::Lost(reason) => {
                warn(format!("{reason}; trying to reopen the input every second (Ctrl-C to stop)"));
                Ok(())
            }
            Event::Reconnected { name, attempts } => {
                if !self.quiet {
                    eprintln!("listening again on {name} (after {attempts} attempt(s))");
                }
                Ok(())
            }
            Event::Overflow(n) => {
                warn(format!("{n} samples dropped: the worker fell behind the audio"));
                Ok(())
            }
            Event::DigitalSilence { seconds } => {
                warn(format!(
                    "the input has been exact digital silence for {seconds} s: is the microphone muted, \
                     or is this the wrong device? (check-mic tests it)"
                ));
                Ok(())
            }
            // Push-to-talk's prompts are its interface: printed even with -q.
            Event::ReadyToRecord => {
                eprintln!("press Enter and say one digit; q then Enter quits");
                Ok(())
            }
            Event::Recording { seconds } => {
                eprintln!("recording {seconds} s...");
                Ok(())
            }
        }
    }

    fn digit(&mut self, d: &HeardDigit, latency_ms: f64) -> Result<()> {
        self.open.push(serde_json::json!({
            "digit": d.digit,
            "confidence": d.prediction.confidence,
            "start_s": round3(d.start_s),
            "end_s": round3(d.end_s),
        }));
        self.confidence *= f64::from(d.prediction.confidence);
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

    fn sequence(&mut self, s: &str) -> Result<()> {
        let digits = std::mem::take(&mut self.open);
        let confidence = std::mem::replace(&mut self.confidence, 1.0);
        match self.format {
            OutputFormat::Json => write_line(
                &serde_json::json!({ "sequence": s, "confidence": confidence, "digits": digits }).to_string(),
            ),
            OutputFormat::Text => write_line(s),
        }
    }
}

/// Seconds rounded to the millisecond, as the JSON lines give them.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn write_line(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| Error::io("writing to stdout", e))
}
