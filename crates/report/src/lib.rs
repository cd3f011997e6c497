//! Pictures people read instead of numbers: the confusion matrix and training curves `train`
//! writes beside its metrics, the per-speaker chart of a leave-one-speaker-out run, and
//! `analyze`'s view of one recording.
//!
//! Drawn with plotters into an RGB buffer and encoded as PNG, each file written atomically. Text
//! uses the DejaVu Sans font compiled into the library (see `build.rs`), so plots render the
//! same on a headless machine without fontconfig, and from an installed binary.
//!
//! A crate of its own so that the library, `predict-file` and `listen` need neither plotters nor
//! a font: built on a machine without one, this crate still builds, and drawing returns an error
//! that says how to get the font.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use spoken_digits::analysis::Analysis;
use spoken_digits::metrics::Scores;
use spoken_digits::train::{EpochStats, LosoReport, TrainReport};
use spoken_digits::{Error, NUM_CLASSES, Result};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Pixel size (width, height) of the confusion-matrix picture.
pub const CONFUSION_SIZE: (u32, u32) = (760, 700);
/// Pixel size of the training-curves picture.
pub const CURVES_SIZE: (u32, u32) = (1200, 480);
/// Pixel size of the per-speaker accuracy picture.
pub const SPEAKERS_SIZE: (u32, u32) = (900, 500);
/// Pixel size of `analyze`'s picture.
pub const ANALYSIS_SIZE: (u32, u32) = (1200, 1100);

const FONT: &str = "sans-serif";
/// Most spectrogram columns drawn: about one per pixel.
const MAX_COLUMNS: usize = 1000;
static FONT_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plot-font.ttf"));

// matplotlib's tab10 blue and orange for train and validation, green for speech.
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);
const GOOD: RGBColor = RGBColor(44, 160, 44);
const GREY: RGBColor = RGBColor(120, 120, 120);
const TEXT: RGBColor = RGBColor(30, 30, 30);

type DrawResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// `x.metrics.json` -> `x.<kind>.png`: where a picture of a metrics file goes.
pub fn png_path(metrics: &Path, kind: &str) -> PathBuf {
    let name = metrics.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".metrics.json").or_else(|| name.strip_suffix(".json")).unwrap_or(&name);
    metrics.with_file_name(format!("{stem}.{kind}.png"))
}

/// Writes the pictures of a training run beside its metrics file: `<name>.confusion.png` and
/// `<name>.curves.png`. Returns their paths.
pub fn train_plots(report: &TrainReport, metrics: &Path) -> Result<Vec<PathBuf>> {
    let confusion_png = png_path(metrics, "confusion");
    let title = format!(
        "Test set ({} split): {:.1}% ({}/{})",
        report.config.split,
        100.0 * report.test.accuracy,
        report.test.correct,
        report.test.total
    );
    confusion(&confusion_png, &report.test, &title)?;
    let curves_png = png_path(metrics, "curves");
    curves(&curves_png, &report.history, (report.best_epoch, &report.kept()))?;
    Ok(vec![confusion_png, curves_png])
}

/// Writes the pictures of a leave-one-speaker-out run beside its metrics file:
/// `<name>.speakers.png` (accuracy per held-out speaker) and `<name>.confusion.png` (all folds
/// pooled). Returns their paths.
pub fn loso_plots(report: &LosoReport, metrics: &Path) -> Result<Vec<PathBuf>> {
    let speakers_png = png_path(metrics, "speakers");
    speakers(&speakers_png, report)?;
    let confusion_png = png_path(metrics, "confusion");
    let title = format!(
        "Unseen speakers, {} folds pooled: {:.1}% ({}/{})",
        report.folds.len(),
        100.0 * report.pooled.accuracy,
        report.pooled.correct,
        report.pooled.total
    );
    confusion(&confusion_png, &report.pooled, &title)?;
    Ok(vec![speakers_png, confusion_png])
}

/// The confusion matrix: rows true digits, columns predicted, each cell its count, shaded by
/// the fraction of its row.
pub fn confusion(path: &Path, scores: &Scores, title: &str) -> Result<()> {
    render(path, CONFUSION_SIZE, |root| {
        let n = scores.confusion.len().max(1);
        let top = n as f64 - 0.5;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(20)
            .margin_right(40)
            .x_label_area_size(55)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..top, -0.5..top)?;
        // Row t is drawn at y = n - 1 - t, so digit 0 is on top as in a printed matrix.
        let flip = |y: f64| n as f64 - 1.0 - y.round();
        let x_fmt = |x: &f64| integer_label(*x);
        let y_fmt = |y: &f64| integer_label(flip(*y));
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("predicted digit")
            .y_desc("true digit")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .draw()?;
        for (t, row) in scores.confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let (x, y) = (p as f64, flip(t as f64));
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    blues(share).filled(),
                )))?;
                if count > 0 {
                    let colour = if share > 0.5 { WHITE } else { TEXT };
                    let style = TextStyle::from((FONT, 17).into_font()).color(&colour).pos(CENTRE);
                    chart.draw_series(std::iter::once(Text::new(count.to_string(), (x, y), style)))?;
                }
            }
        }
        // A frame around the grid.
        chart
            .draw_series(std::iter::once(Rectangle::new([(-0.5, -0.5), (top, top)], GREY.stroke_width(1))))?;
        Ok(())
    })
}

/// Loss and accuracy per epoch, train and validation, side by side; the kept epoch (the last
/// one averaged, if so) marked at `kept.0` and named `kept.1` in the legend.
pub fn curves(path: &Path, history: &[EpochStats], kept: (usize, &str)) -> Result<()> {
    render(path, CURVES_SIZE, |root| {
        let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
        let last = history.iter().map(|s| s.epoch).max().unwrap_or(1).max(2) as f64;
        let epochs = 0.7..last + 0.3;

        let max_loss = history.iter().flat_map(|s| [s.train_loss, s.val_loss]).fold(0.0f64, f64::max);
        // Head room for the legend, top right, where falling losses are not.
        let loss_top = if max_loss.is_finite() && max_loss > 0.0 { max_loss * 1.3 } else { 1.0 };
        let loss: Vec<[(f64, f64); 2]> =
            history.iter().map(|s| [(s.epoch as f64, s.train_loss), (s.epoch as f64, s.val_loss)]).collect();
        let fmt = |v: &f64| format!("{v:.2}");
        let legend = SeriesLabelPosition::UpperRight;
        panel(
            &left,
            "Loss (cross-entropy)",
            epochs.clone(),
            0.0..loss_top,
            &loss,
            kept,
            "loss",
            &fmt,
            legend,
        )?;

        let min_acc = history.iter().flat_map(|s| [s.train_accuracy, s.val_accuracy]).fold(1.0f64, f64::min);
        // Room below the lowest accuracy for the legend, bottom right, where rising curves are not.
        let acc_bottom = ((100.0 * min_acc - 15.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0;
        let acc: Vec<[(f64, f64); 2]> = history
            .iter()
            .map(|s| [(s.epoch as f64, 100.0 * s.train_accuracy), (s.epoch as f64, 100.0 * s.val_accuracy)])
            .collect();
        let fmt = |v: &f64| format!("{v:.0}%");
        let legend = SeriesLabelPosition::LowerRight;
        panel(&right, "Accuracy", epochs, acc_bottom..100.5, &acc, kept, "accuracy", &fmt, legend)
    })
}

/// One panel of [`curves`]: `points[i] = [train, validation]` at epoch i.
#[allow(clippy::too_many_arguments)]
fn panel(
    area: &Area<'_>,
    caption: &str,
    epochs: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    points: &[[(f64, f64); 2]],
    (kept_epoch, kept_label): (usize, &str),
    y_desc: &str,
    y_fmt: &dyn Fn(&f64) -> String,
    legend: SeriesLabelPosition,
) -> DrawResult {
    let (bottom, top) = (y.start, y.end);
    let ticks = (epochs.end - epochs.start).ceil().min(12.0) as usize;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 22))
        .margin(18)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(epochs, y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ticks)
        .y_labels(8)
        .x_label_formatter(&|x| integer_label(*x))
        .y_label_formatter(y_fmt)
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    if kept_epoch > 0 {
        let b = kept_epoch as f64;
        let kept = GREY.mix(0.6).stroke_width(2);
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(b, bottom), (b, top)], kept)))?
            .label(format!("kept: {kept_label}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], kept));
    }
    for (i, (name, colour)) in [("train", TRAIN), ("validation", VAL)].into_iter().enumerate() {
        let line: Vec<(f64, f64)> = points.iter().map(|p| p[i]).collect();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), colour.stroke_width(3)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3)));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()?;
    Ok(())
}

/// Accuracy per held-out speaker, with the mean as a line.
pub fn speakers(path: &Path, report: &LosoReport) -> Result<()> {
    render(path, SPEAKERS_SIZE, |root| {
        let n = report.folds.len().max(1);
        let names: Vec<&str> = report.folds.iter().map(|f| f.speaker.as_str()).collect();
        let lowest = report.folds.iter().map(|f| f.accuracy).fold(f64::INFINITY, f64::min);
        let lowest =
            if lowest.is_finite() { format!(", lowest {:.1}%", 100.0 * lowest) } else { String::new() };
        let title =
            format!("Accuracy on each unseen speaker (mean {:.1}%{lowest})", 100.0 * report.mean_accuracy);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(65)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..108.0)?;
        let x_fmt = |x: &f64| category(*x, &names);
        let y_fmt = |y: &f64| format!("{y:.0}%");
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .y_labels(6)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("held-out speaker")
            .y_desc("accuracy")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        // The mean first, so the bars hide it and the labels stay on top.
        let mean = 100.0 * report.mean_accuracy;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, mean), (n as f64 - 0.5, mean)],
                VAL.stroke_width(2),
            )))?
            .label(format!("mean {mean:.1}%"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], VAL.stroke_width(2)));
        for (i, f) in report.folds.iter().enumerate() {
            let (x, acc) = (i as f64, 100.0 * f.accuracy);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.32, 0.0), (x + 0.32, acc)],
                TRAIN.filled(),
            )))?;
        }
        for (i, f) in report.folds.iter().enumerate() {
            let (x, acc) = (i as f64, 100.0 * f.accuracy);
            let style = TextStyle::from((FONT, 16).into_font())
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            let label = format!("{acc:.1}% ({}/{})", f.correct, f.total);
            chart.draw_series(std::iter::once(Text::new(label, (x, acc + 1.0), style)))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()?;
        Ok(())
    })
}

/// `analyze`'s picture of one recording: waveform with the speech segment and the model's
/// window, spectrogram, the feature map the model sees (MFCC or log-mel), and the predicted
/// probabilities.
pub fn analysis(path: &Path, a: &Analysis) -> Result<()> {
    render(path, ANALYSIS_SIZE, |root| {
        let title = match a.probabilities {
            Some(p) => {
                let (digit, confidence) = spoken_digits::model::argmax(&p);
                format!("{}: heard \"{digit}\" ({:.1}%)", a.name, 100.0 * confidence)
            }
            None => a.name.clone(),
        };
        let title = match &a.reading {
            Some(r) if !r.sequence.is_empty() => {
                format!("{title}; string model: \"{}\" ({:.1}%)", r.sequence, 100.0 * r.confidence)
            }
            _ => title,
        };
        let body = root.titled(&title, (FONT, 26))?;
        let (wave, rest) = body.split_vertically(270);
        let (spec, bottom) = rest.split_vertically(370);
        let (mfcc, probs) = bottom.split_horizontally(730);
        waveform(&wave, a)?;
        spectrogram(&spec, a)?;
        feature_map(&mfcc, a)?;
        probabilities(&probs, a.probabilities.as_ref())
    })
}

/// The time axis shared by the waveform and the spectrogram: the recording, or the model's
/// window where that runs past the end of a short recording.
fn time_axis(a: &Analysis) -> f64 {
    let rate = f64::from(a.sample_rate.max(1));
    a.seconds().max(a.window.end as f64 / rate).max(1e-3)
}

/// Width of the colour-bar column right of the spectrogram and MFCC map (kept empty beside the
/// waveform so the time axes line up).
const BAR_WIDTH: u32 = 90;

fn waveform(area: &Area<'_>, a: &Analysis) -> DrawResult {
    let rate = f64::from(a.sample_rate.max(1));
    let seconds = time_axis(a);
    let peak = a.samples.iter().fold(0.0f32, |m, s| m.max(s.abs())).max(1e-3) as f64 * 1.15;
    let (area, _) = area.split_horizontally(area.dim_in_pixel().0 - BAR_WIDTH);
    let mut chart = ChartBuilder::on(&area)
        .caption("Waveform", (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, -peak..peak)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("amplitude")
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{:.2}", if v.abs() < 5e-3 { 0.0 } else { *v }))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .draw()?;
    let (s0, s1) = (a.segment.start as f64 / rate, a.segment.end as f64 / rate);
    let segment_label =
        if a.trimmed { "speech segment (what trim keeps)" } else { "speech segment (energy, 40 dB)" };
    chart
        .draw_series(std::iter::once(Rectangle::new([(s0, -peak), (s1, peak)], GOOD.mix(0.15).filled())))?
        .label(segment_label)
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 24, y + 6)], GOOD.mix(0.3).filled()));
    // One vertical min..max stroke per pixel column keeps long files light; each stroke reaches
    // the previous column's last sample so the trace stays connected.
    let columns = 1100usize;
    let per = a.samples.len().div_ceil(columns).max(1);
    let envelope = a.samples.chunks(per).enumerate().map(|(i, c)| {
        let previous = (i * per).checked_sub(1).and_then(|j| a.samples.get(j)).copied();
        let values = c.iter().copied().chain(previous);
        let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let t = (i * per) as f64 / rate;
        PathElement::new(vec![(t, f64::from(lo)), (t, f64::from(hi))], TRAIN.stroke_width(1))
    });
    chart.draw_series(envelope)?;
    let end = a.samples.len() as f64 / rate;
    if end < seconds {
        let style =
            TextStyle::from((FONT, 14).into_font()).color(&GREY).pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series(std::iter::once(Text::new(
            "  (end of recording: zero padding)",
            (end, 0.0),
            style,
        )))?;
    }
    if let Some(reading) = &a.reading {
        // The string model's digits: each one's span, its digit and confidence above it.
        let spans = reading.digits.iter().map(|d| {
            Rectangle::new([(d.start_s, -peak * 0.8), (d.end_s, peak * 0.8)], VAL.mix(0.15).filled())
        });
        chart
            .draw_series(spans)?
            .label("the string model's digits")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 24, y + 6)], VAL.mix(0.3).filled()));
        let style =
            TextStyle::from((FONT, 16).into_font()).color(&TEXT).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(reading.digits.iter().map(|d| {
            let label = format!("{} {:.0}%", d.digit, 100.0 * d.confidence);
            Text::new(label, ((d.start_s + d.end_s) / 2.0, peak * 0.8), style.clone())
        }))?;
    }
    let (w0, w1) = (a.window.start as f64 / rate, a.window.end.max(a.window.start + 1) as f64 / rate);
    let y = peak * 0.93;
    chart
        .draw_series(std::iter::once(PathElement::new(vec![(w0, y), (w1, y)], VAL.stroke_width(4))))?
        .label("the model's 1 s window")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], VAL.stroke_width(4)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()?;
    Ok(())
}

fn spectrogram(area: &Area<'_>, a: &Analysis) -> DrawResult {
    let s = &a.spectrogram;
    let rate = f64::from(a.sample_rate.max(1));
    let nyquist = rate / 2.0;
    let seconds = time_axis(a);
    let (area, bar) = area.split_horizontally(area.dim_in_pixel().0 - BAR_WIDTH);
    let mut chart = ChartBuilder::on(&area)
        .caption("Spectrogram", (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds.max(1e-3), 0.0..nyquist)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time (s)")
        .y_desc("frequency (Hz)")
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    let (lo, hi) = range(&s.db);
    // At most MAX_COLUMNS columns (the loudest frame of each group), so long files stay quick.
    let group = s.n_frames.div_ceil(MAX_COLUMNS).max(1);
    let columns = s.n_frames.div_ceil(group);
    let (dt, df) = ((group * s.hop) as f64 / rate, nyquist / (s.n_bins.max(2) - 1) as f64);
    let cells = (0..s.n_bins).flat_map(|k| {
        (0..columns).map(move |c| {
            let row = s.db.get(k * s.n_frames..(k + 1) * s.n_frames).unwrap_or(&[]);
            let frames = row.get(c * group..((c + 1) * group).min(row.len())).unwrap_or(&[]);
            let v = frames.iter().copied().fold(lo, f32::max);
            let (x, y) = (c as f64 * dt, (k as f64 - 0.5) * df);
            Rectangle::new([(x, y), (x + dt, y + df)], magma((v - lo) / (hi - lo).max(1e-6)).filled())
        })
    });
    chart.draw_series(cells)?;
    for b in [a.segment.start, a.segment.end] {
        let x = b as f64 / rate;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, nyquist)],
            GOOD.stroke_width(2),
        )))?;
    }
    colour_bar(&bar, lo, hi, "dB", magma)
}

fn feature_map(area: &Area<'_>, a: &Analysis) -> DrawResult {
    let (rows, cols) = (a.n_mfcc.max(1), a.n_frames.max(1));
    let (area, bar) = area.split_horizontally(area.dim_in_pixel().0 - BAR_WIDTH);
    // Without per-utterance normalisation c0 (loudness) spans hundreds of dB and would wash out
    // the rest, so each coefficient is then shaded over its own range. Log-mel bands share one
    // scale (dB), normalised or not.
    let (kind, row_name) = if a.log_mel { ("Log-mel", "mel band") } else { ("MFCC", "coefficient") };
    let shared = a.normalized || a.log_mel;
    let scale = match (a.normalized, a.log_mel) {
        (true, _) => "normalised",
        (false, true) => "dB",
        (false, false) => "each row scaled",
    };
    let caption = format!("{kind} map the model sees ({rows} x {cols}, {scale})");
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..cols as f64 - 0.5, -0.5..rows as f64 - 0.5)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("frame (16 ms apart)")
        .y_desc(row_name)
        .x_labels(8)
        .y_labels(rows.min(7))
        .x_label_formatter(&|v| integer_label(*v))
        .y_label_formatter(&|v| integer_label(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    let (glo, ghi) = range(&a.mfcc);
    let cells = a.mfcc.chunks(cols).enumerate().flat_map(|(c, row)| {
        let (lo, hi) = if shared { (glo, ghi) } else { range(row) };
        row.iter().enumerate().map(move |(t, &v)| {
            let (x, y) = (t as f64, c as f64);
            Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                viridis((v - lo) / (hi - lo).max(1e-6)).filled(),
            )
        })
    });
    chart.draw_series(cells)?;
    if shared {
        colour_bar(&bar, glo, ghi, if a.normalized { "z" } else { "dB" }, viridis)
    } else {
        colour_bar(&bar, 0.0, 1.0, "within each row", viridis)
    }
}

fn probabilities(area: &Area<'_>, p: Option<&[f32; NUM_CLASSES]>) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .caption("Probabilities", (FONT, 20))
        .margin(12)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5..NUM_CLASSES as f64 - 0.5, 0.0..112.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(NUM_CLASSES)
        .y_labels(6)
        .x_label_formatter(&|v| integer_label(*v))
        .y_label_formatter(&|v| format!("{v:.0}%"))
        .x_desc("digit")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .draw()?;
    let Some(p) = p else {
        let style = TextStyle::from((FONT, 18).into_font()).color(&GREY).pos(CENTRE);
        chart.draw_series(std::iter::once(Text::new("no model", (4.5, 56.0), style)))?;
        return Ok(());
    };
    let (best, _) = spoken_digits::model::argmax(p);
    for (d, &v) in p.iter().enumerate() {
        let (x, v) = (d as f64, 100.0 * f64::from(v));
        let colour = if d == usize::from(best) { VAL } else { TRAIN };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.38, 0.0), (x + 0.38, v)],
            colour.filled(),
        )))?;
        if v >= 0.5 {
            let style = TextStyle::from((FONT, 13).into_font())
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(std::iter::once(Text::new(format!("{v:.0}"), (x, v + 1.5), style)))?;
        }
    }
    Ok(())
}

/// A vertical colour scale from `lo` to `hi` labelled with `unit`.
fn colour_bar(area: &Area<'_>, lo: f32, hi: f32, unit: &str, map: fn(f32) -> RGBColor) -> DrawResult {
    let (lo, hi) = (f64::from(lo), f64::from(hi).max(f64::from(lo) + 1e-6));
    let mut chart = ChartBuilder::on(area)
        .margin_top(45)
        .margin_bottom(52)
        .margin_right(8)
        .y_label_area_size(0)
        .right_y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, lo..hi)?
        .set_secondary_coord(0.0..1.0, lo..hi);
    let steps = 64;
    let h = (hi - lo) / steps as f64;
    chart.draw_series((0..steps).map(|i| {
        let y = lo + i as f64 * h;
        Rectangle::new([(0.0, y), (1.0, y + h)], map((i as f32 + 0.5) / steps as f32).filled())
    }))?;
    let fmt = |v: &f64| if (hi - lo) >= 10.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    chart
        .configure_secondary_axes()
        .y_labels(5)
        .y_label_formatter(&fmt)
        .y_desc(unit)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    Ok(())
}

/// Draws into an RGB buffer with `draw`, then writes it to `path` as PNG, atomically.
fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<()> {
    if FONT_BYTES.is_empty() {
        return Err(Error::Plot(format!(
            "{}: not drawn: this build has no font for the plots (install fonts-dejavu-core, or run \
             scripts/setup, or set SPOKEN_DIGITS_FONT=<a .ttf file>, then rebuild)",
            path.display()
        )));
    }
    register_font();
    let mut buffer = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(|e| e.into()).and_then(|()| draw(&root));
        drawn.and_then(|()| root.present().map_err(|e| e.into())).map_err(|e| Error::Plot(e.to_string()))?;
    }
    spoken_digits::atomic::write_with(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let fail = |e: png::EncodingError| Error::Plot(format!("{}: {e}", tmp.display()));
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&buffer).map_err(fail)?;
        writer.finish().map_err(fail)
    })?;
    tracing::info!(path = %path.display(), "wrote plot");
    Ok(())
}

/// Makes the embedded font plotters' `sans-serif`, once.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            tracing::warn!("the embedded plot font is not a usable TrueType file; plots will have no text");
        }
    });
}

const CENTRE: Pos = Pos { h_pos: HPos::Center, v_pos: VPos::Center };

/// `x` as an integer label when it is one, else nothing (ticks between categories).
fn integer_label(x: f64) -> String {
    if (x - x.round()).abs() < 1e-6 { format!("{}", x.round() as i64) } else { String::new() }
}

/// The category name at integer `x`.
fn category(x: f64, names: &[&str]) -> String {
    if (x - x.round()).abs() > 1e-6 || x < -0.5 {
        return String::new();
    }
    names.get(x.round() as usize).map(|s| s.to_string()).unwrap_or_default()
}

/// Smallest and largest finite value (0..1 when there are none).
fn range(values: &[f32]) -> (f32, f32) {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo <= hi { (lo, hi) } else { (0.0, 1.0) }
}

/// White to dark blue, for shares of a row (0..1).
fn blues(share: f64) -> RGBColor {
    interpolate(
        &[(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)],
        share as f32,
    )
}

/// matplotlib's viridis, sampled at 9 points.
fn viridis(t: f32) -> RGBColor {
    interpolate(
        &[
            (68, 1, 84),
            (71, 44, 122),
            (59, 81, 139),
            (44, 113, 142),
            (33, 144, 141),
            (39, 173, 129),
            (92, 200, 99),
            (170, 220, 50),
            (253, 231, 37),
        ],
        t,
    )
}

/// matplotlib's magma, sampled at 9 points.
fn magma(t: f32) -> RGBColor {
    interpolate(
        &[
            (0, 0, 4),
            (28, 16, 68),
            (79, 18, 123),
            (129, 37, 129),
            (181, 54, 122),
            (229, 80, 100),
            (251, 135, 97),
            (254, 194, 135),
            (252, 253, 191),
        ],
        t,
    )
}

/// Linear interpolation between evenly spaced colour stops, `t` clamped to 0..1.
fn interpolate(stops: &[(u8, u8, u8)], t: f32) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let last = stops.len().saturating_sub(1);
    let pos = t * last as f32;
    let i = (pos.floor() as usize).min(last.saturating_sub(1));
    let f = pos - i as f32;
    let (Some(a), Some(b)) = (stops.get(i), stops.get((i + 1).min(last))) else { return RGBColor(0, 0, 0) };
    let mix = |x: u8, y: u8| (f32::from(x) + (f32::from(y) - f32::from(x)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_paths_sit_beside_the_metrics() {
        assert_eq!(png_path(Path::new("m/x.metrics.json"), "curves"), Path::new("m/x.curves.png"));
        assert_eq!(
            png_path(Path::new("loso-original.metrics.json"), "speakers"),
            Path::new("loso-original.speakers.png")
        );
    }

    #[test]
    fn colour_maps_hit_their_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(magma(f32::NAN), RGBColor(0, 0, 4));
        assert_eq!(integer_label(3.0), "3");
        assert_eq!(integer_label(2.5), "");
        assert_eq!(category(1.0, &["a", "b"]), "b");
    }
}
