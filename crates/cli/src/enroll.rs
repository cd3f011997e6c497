//! `listen --enroll`: asks for each digit in turn, takes the next utterance of the live pipeline
//! ([`Listener::next_utterance`]: the same VAD cut and resampling as `listen`), saves it at once
//! with [`TakeFolder`] and shows what the current model heard, so the user sees which digits it
//! gets wrong before training on their voice.

use crate::live::{OutputFormat, Render};
use crate::paint;
use anyhow::Context;
use spoken_digits::NUM_CLASSES;
use spoken_digits::live::{Listener, Next};
use spoken_digits::stream::PREROLL_SECONDS;
use spoken_digits::takes::TakeFolder;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One saved take.
#[derive(Debug, Clone)]
pub struct Take {
    /// The digit asked for (the file's label).
    pub prompt: u8,
    /// What the current model heard: `None` when it was less sure than `--min-confidence`.
    pub heard: Option<u8>,
    pub best_guess: u8,
    pub confidence: f32,
    pub path: PathBuf,
}

impl Take {
    /// The model heard the digit that was asked for.
    pub fn right(&self) -> bool {
        self.heard == Some(self.prompt)
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// Every take was recorded.
    Complete,
    /// Ctrl-C.
    Stopped,
    /// The file or pipe ended before the last take.
    InputEnded,
    /// The input failed, or a take could not be saved or printed.
    Failed(anyhow::Error),
}

/// What a session did: the takes saved (all on disk, whatever the end) and how it ended.
#[derive(Debug)]
pub struct Enrollment {
    pub takes: Vec<Take>,
    pub planned: usize,
    pub end: End,
}

/// Records one take per entry of `prompts` (digits, in order) into `folder`. Each take is on
/// disk before the next prompt; a failure ends the session and keeps what was saved.
pub fn record(
    session: &mut Listener,
    render: &mut Render,
    folder: &mut TakeFolder,
    prompts: &[u8],
    format: OutputFormat,
) -> Enrollment {
    let mut takes: Vec<Take> = vec![];
    let end = loop {
        let Some(&digit) = prompts.get(takes.len()) else { break End::Complete };
        // The prompt is the interface, so it is printed even with -q (like push-to-talk's).
        let s = paint::STRONG;
        anstream::eprintln!("{s}say {digit}{s:#}  (take {}/{})", takes.len() + 1, prompts.len());
        let heard = match session.next_utterance(&mut |e| render.event(e)) {
            Ok(Next::Utterance(heard)) => heard,
            Ok(Next::Resumed) => continue,
            Ok(Next::Ended) => break End::InputEnded,
            Ok(Next::Stopped) => break End::Stopped,
            Err(e) => break End::Failed(e.into()),
        };
        // As tightly cut as FSDD's clips, whatever pre-roll the model's front end asked for.
        let clip = heard.with_lead_in(session.sample_rate(), PREROLL_SECONDS);
        let path = match folder.save(digit, clip, session.sample_rate()) {
            Ok(path) => path,
            Err(e) => {
                break End::Failed(anyhow::Error::new(e).context(format!("saving the take of {digit}")));
            }
        };
        let take = Take {
            prompt: digit,
            heard: heard.digit,
            best_guess: heard.prediction.digit,
            confidence: heard.prediction.confidence,
            path,
        };
        let printed = print_take(&take, heard.start_s, heard.end_s, format);
        takes.push(take);
        if let Err(e) = printed {
            break End::Failed(e);
        }
    };
    Enrollment { takes, planned: prompts.len(), end }
}

fn print_take(t: &Take, start_s: f64, end_s: f64, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    match format {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::json!({
                "prompt": t.prompt,
                "digit": t.heard,
                "confidence": t.confidence,
                "start_s": (start_s * 1000.0).round() / 1000.0,
                "end_s": (end_s * 1000.0).round() / 1000.0,
                "file": t.path,
            })
        ),
        OutputFormat::Text => {
            let (ok, bad) = (paint::OK, paint::BAD);
            let heard = match t.heard {
                Some(d) => format!("{d}"),
                None => "?".to_string(),
            };
            let verdict = if t.right() {
                format!("{ok}ok{ok:#}   ")
            } else if t.heard.is_none() {
                format!("{bad}WRONG{bad:#} (unsure, best guess {})", t.best_guess)
            } else {
                format!("{bad}WRONG{bad:#}")
            };
            let n = paint::NOTE;
            writeln!(
                out,
                "  the model heard {heard}  {:5.1}%  {verdict}  {n}saved {}{n:#}",
                100.0 * t.confidence,
                t.path.display()
            )
        }
    }
    .and_then(|()| out.flush())
    .context("writing to stdout")
}

/// The command that trains on FSDD plus the takes in `dir`, and the one that listens with the
/// result.
pub fn next_commands(dir: &Path, speaker: &str) -> [String; 2] {
    let model = format!("models/{speaker}.safetensors");
    [
        format!("cargo run --release --bin train -- --extra-data {} --out {model}", shell_quote(dir)),
        format!("cargo run --release --bin listen -- --model {model}"),
    ]
}

/// `path` as one shell word.
fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Prints what was saved, which digits the current model got wrong, and the commands to run
/// next (stdout). Nothing when no take was saved.
pub fn print_summary(e: &Enrollment, folder: &TakeFolder, format: OutputFormat) -> anyhow::Result<()> {
    if e.takes.is_empty() {
        return Ok(());
    }
    let dir = folder.dir();
    let [train, listen] = next_commands(dir, folder.speaker());
    let right = e.takes.iter().filter(|t| t.right()).count();
    let mut out = anstream::stdout().lock();
    match format {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::json!({
                "saved": e.takes.len(),
                "planned": e.planned,
                "right": right,
                "dir": dir,
                "speaker": folder.speaker(),
                "next": [train, listen],
            })
        )?,
        OutputFormat::Text => {
            let s = paint::STRONG;
            writeln!(
                out,
                "\n{s}saved {} take(s) of speaker '{}' in {}{s:#}",
                e.takes.len(),
                folder.speaker(),
                dir.display()
            )?;
            let mut wrong = vec![];
            for d in 0..NUM_CLASSES as u8 {
                let of_d: Vec<&Take> = e.takes.iter().filter(|t| t.prompt == d).collect();
                let missed = of_d.iter().filter(|t| !t.right()).count();
                if missed > 0 {
                    wrong.push(format!("{d} ({missed} of {})", of_d.len()));
                }
            }
            let misheard =
                if wrong.is_empty() { String::new() } else { format!("; misheard: {}", wrong.join(", ")) };
            writeln!(out, "the current model heard {right}/{} right{misheard}", e.takes.len())?;
            writeln!(
                out,
                "next, train a model on FSDD plus these takes (about two minutes), then listen with it:"
            )?;
            writeln!(out, "  {train}\n  {listen}")?;
        }
    }
    out.flush().context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_quoted_only_when_needed() {
        assert_eq!(shell_quote(Path::new("my_voice/")), "my_voice/");
        assert_eq!(shell_quote(Path::new("my voice")), "'my voice'");
        assert_eq!(shell_quote(Path::new("it's")), r"'it'\''s'");
        let [train, _] = next_commands(Path::new("v"), "me");
        assert_eq!(train, "cargo run --release --bin train -- --extra-data v --out models/me.safetensors");
    }
}
