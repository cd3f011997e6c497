//! Training options on top of a recipe: [`Overrides`] holds what the user changed (every field
//! `None` unless given), [`Overrides::apply`] lays it over [`TrainConfig::recipe`] and checks the
//! result, [`TrainSplit`] is `--split` (a [`Split`], or every leave-one-speaker-out fold),
//! [`recipe_values`] says what each recipe sets (the `[recipe: ...]` notes of `train --help`), and
//! [`choose_output`] is the rule that never replaces a model with a worse or partial one. The
//! `train` binary only parses flags into these and reports.

use crate::augment::{FREQ_MASK_WIDTH, TIME_MASK_WIDTH};
use crate::dataset::Split;
use crate::model::{self, Arch};
use crate::train::{Keep, Recipe, Schedule, TrainConfig, TrainReport};
use crate::{Error, FeatureConfig, Result};
use std::path::{Path, PathBuf};

/// The options a training run may change on top of its recipe; `None` keeps the recipe's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub schedule: Option<Schedule>,
    pub weight_decay: Option<f64>,
    pub mixup: Option<f64>,
    pub label_smoothing: Option<f64>,
    pub keep: Option<Keep>,
    pub val_fraction: Option<f64>,
    pub augmented_copies: Option<usize>,
    pub aug_prob: Option<f64>,
    pub max_shift: Option<f64>,
    pub gain_db: Option<(f32, f32)>,
    pub snr_db: Option<(f32, f32)>,
    pub speed: Option<(f32, f32)>,
    pub vtlp: Option<(f32, f32)>,
    pub eq_db: Option<f32>,
    /// Probability and deepest cut (dB).
    pub treble_cut: Option<(f64, f32)>,
    pub conditions: Option<f64>,
    pub condition_weights: Option<Vec<(crate::conditions::Condition, f64)>>,
    pub find_word: Option<bool>,
    pub declip: Option<bool>,
    pub lead_in: Option<f64>,
    pub end_cut: Option<f32>,
    pub time_masks: Option<usize>,
    pub freq_masks: Option<usize>,
    pub arch: Option<Arch>,
    /// 0 or below: no trimming.
    pub trim_db: Option<f32>,
    pub normalize: Option<bool>,
    pub n_mels: Option<usize>,
    /// Unless given, the rows follow the front end (see [`Overrides::apply`]).
    pub n_mfcc: Option<usize>,
    pub log_mel: Option<bool>,
}

impl Overrides {
    /// `recipe` with every given option applied and `seed`, checked: a value out of range is an
    /// [`Error::Usage`] naming its flag, a front end that does not hold together
    /// [`Error::Config`].
    pub fn apply(&self, recipe: Recipe, seed: u64) -> Result<TrainConfig> {
        let mut c = TrainConfig::recipe(recipe);
        c.seed = seed;
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        let a = &mut c.augment;
        set(&mut a.p, &self.aug_prob);
        set(&mut a.max_shift, &self.max_shift);
        set(&mut a.gain_db, &self.gain_db);
        set(&mut a.snr_db, &self.snr_db);
        set(&mut a.speed, &self.speed);
        set(&mut a.vtlp, &self.vtlp);
        set(&mut a.eq_db, &self.eq_db);
        set(&mut a.lead_in, &self.lead_in);
        set(&mut a.end_cut, &self.end_cut);
        set(&mut a.time_masks, &self.time_masks);
        set(&mut a.freq_masks, &self.freq_masks);
        set(&mut a.conditions, &self.conditions);
        set(&mut a.condition_weights, &self.condition_weights);
        set(&mut c.epochs, &self.epochs);
        set(&mut c.batch_size, &self.batch_size);
        set(&mut c.learning_rate, &self.learning_rate);
        set(&mut c.schedule, &self.schedule);
        set(&mut c.weight_decay, &self.weight_decay);
        set(&mut c.mixup, &self.mixup);
        set(&mut c.label_smoothing, &self.label_smoothing);
        set(&mut c.keep, &self.keep);
        set(&mut c.val_fraction, &self.val_fraction);
        set(&mut c.augmented_copies, &self.augmented_copies);
        set(&mut c.arch, &self.arch);
        let f = &mut c.features;
        set(&mut f.normalize, &self.normalize);
        set(&mut f.n_mels, &self.n_mels);
        set(&mut f.n_mfcc, &self.n_mfcc);
        set(&mut f.log_mel, &self.log_mel);
        set(&mut f.find_word, &self.find_word);
        set(&mut f.declip, &self.declip);
        // Unless given, the rows follow the front end: every mel band of a log-mel map, else the
        // original's 13 MFCCs.
        if self.n_mfcc.is_none() {
            f.n_mfcc = if f.log_mel { f.n_mels } else { FeatureConfig::default().n_mfcc };
        }
        if let Some(t) = self.trim_db {
            f.trim_db = (t > 0.0).then_some(t);
        }
        if c.augment.time_masks > 0 && c.augment.time_mask_width == 0 {
            c.augment.time_mask_width = TIME_MASK_WIDTH;
        }
        if c.augment.freq_masks > 0 && c.augment.freq_mask_width == 0 {
            c.augment.freq_mask_width = FREQ_MASK_WIDTH;
        }
        if let Some((p, db)) = self.treble_cut {
            (c.augment.treble_cut, c.augment.treble_cut_db) = (p, db);
        }
        validate(&c)?;
        Ok(c)
    }
}

/// The ranges `train`'s options must keep, each refusal naming its flag.
fn validate(c: &TrainConfig) -> Result<()> {
    let a = &c.augment;
    let checks = [
        ((0.0..1.0).contains(&c.val_fraction), "--val-fraction must be in [0, 1)"),
        ((0.0..=1.0).contains(&a.p), "--aug-prob must be in [0, 1]"),
        (a.speed.0 > 0.0 && a.vtlp.0 > 0.0, "--speed and --vtlp factors must be positive"),
        ((0.0..1.0).contains(&c.label_smoothing), "--label-smoothing must be in [0, 1)"),
        (c.mixup >= 0.0 && c.mixup.is_finite(), "--mixup must be 0 (off) or a positive alpha"),
        ((0.0..=0.5).contains(&a.lead_in), "--lead-in must be between 0 and 0.5"),
        ((0.0..=0.9).contains(&a.end_cut), "--end-cut must be between 0 and 0.9"),
        ((0.0..=1.0).contains(&a.conditions), "--conditions must be in [0, 1]"),
        (!c.features.find_word || c.features.trim_db.is_some(), "--find-word needs trimming (--trim-db)"),
        ((0.0..=40.0).contains(&a.eq_db), "--eq-db must be between 0 and 40"),
    ];
    if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(Error::Usage(message.to_string()));
    }
    c.features.validate()
}

/// `train --split`: one split, or every leave-one-speaker-out fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainSplit {
    One(Split),
    /// Every speaker held out in turn (`loso`).
    Loso,
}

impl std::str::FromStr for TrainSplit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "loso" { Ok(TrainSplit::Loso) } else { s.parse().map(TrainSplit::One) }
    }
}

impl std::fmt::Display for TrainSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainSplit::One(split) => split.fmt(f),
            TrainSplit::Loso => f.write_str("loso"),
        }
    }
}

impl Recipe {
    /// Whether the recipe trains on the synthetic voices of `scripts/setup` too (as extra
    /// data): the robust one does (leave-one-speaker-out 90.5% -> 94.3%, seed 42).
    pub fn uses_synthetic(self) -> bool {
        self == Recipe::Robust
    }

    /// The recipe's name, as `--recipe` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Original => "original",
            Recipe::Robust => "robust",
        }
    }

    /// Every recipe, in the order `--help` names them.
    pub const ALL: [Recipe; 2] = [Recipe::Original, Recipe::Robust];
}

/// What each recipe sets, in words: `"64"` when they agree, else `"original 10, robust 15"`.
/// `value` says one recipe's setting.
pub fn recipe_values(value: impl Fn(Recipe) -> String) -> String {
    let values: Vec<(Recipe, String)> = Recipe::ALL.iter().map(|&r| (r, value(r))).collect();
    if values.iter().all(|(_, v)| *v == values[0].1) {
        return values[0].1.clone();
    }
    values.iter().map(|(r, v)| format!("{} {v}", r.name())).collect::<Vec<_>>().join(", ")
}

/// [`recipe_values`] of one [`TrainConfig`] field.
pub fn recipe_setting(value: impl Fn(&TrainConfig) -> String) -> String {
    recipe_values(|r| value(&TrainConfig::recipe(r)))
}

/// A number as `--help` writes it: `1e-3` rather than `0.001`, an `f32` in its own digits.
pub fn number<T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp>(x: T) -> String {
    let v: f64 = x.into();
    if v != 0.0 && v.abs() < 0.01 { format!("{x:e}") } else { format!("{x}") }
}

/// A range as its flag takes it: `MIN,MAX`.
pub fn pair(p: (f32, f32)) -> String {
    format!("{},{}", number(p.0), number(p.1))
}

/// Where a finished run goes, and why not where asked (a warning for the user), if so.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub path: PathBuf,
    pub warning: Option<String>,
}

/// Never replaces a model with a partial one, or with a worse one on the same split, unless
/// `force`: such a model goes beside it as `<name>.new.safetensors` or
/// `<name>.interrupted.safetensors`.
pub fn choose_output(out: &Path, report: &TrainReport, force: bool) -> Output {
    let keep = Output { path: out.to_path_buf(), warning: None };
    if force || !out.exists() {
        return keep;
    }
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if report.interrupted {
        let alt = out.with_file_name(format!("{stem}.interrupted.safetensors"));
        let warning = format!("interrupted run: keeping {} and writing {}", out.display(), alt.display());
        return Output { path: alt, warning: Some(warning) };
    }
    let existing = std::fs::read_to_string(model::metrics_path(out))
        .ok()
        .and_then(|t| serde_json::from_str::<TrainReport>(&t).ok());
    if let Some(old) = existing
        && old.config.split == report.config.split
        && old.test.accuracy > report.test.accuracy
    {
        let alt = out.with_file_name(format!("{stem}.new.safetensors"));
        let warning = format!(
            "{} scored {:.2}% on this split, better than this run's {:.2}%: keeping it and writing {} (--force replaces it)",
            out.display(),
            100.0 * old.test.accuracy,
            100.0 * report.test.accuracy,
            alt.display()
        );
        return Output { path: alt, warning: Some(warning) };
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_overrides_is_the_recipe() {
        for recipe in Recipe::ALL {
            let applied = Overrides::default().apply(recipe, 42).unwrap();
            let want = TrainConfig::recipe(recipe);
            assert_eq!(serde_json::to_string(&applied).unwrap(), serde_json::to_string(&want).unwrap());
        }
    }

    #[test]
    fn overrides_apply_and_out_of_range_values_name_their_flag() {
        let o =
            Overrides { epochs: Some(3), time_masks: Some(1), trim_db: Some(0.0), ..Overrides::default() };
        let c = Overrides { find_word: Some(false), ..o }.apply(Recipe::Original, 7).unwrap();
        assert_eq!((c.epochs, c.seed, c.features.trim_db), (3, 7, None));
        assert_eq!(c.augment.time_mask_width, TIME_MASK_WIDTH, "a mask gets the default width");
        let bad = Overrides { label_smoothing: Some(1.0), ..Overrides::default() };
        let err = bad.apply(Recipe::Robust, 42).unwrap_err().to_string();
        assert_eq!(err, "--label-smoothing must be in [0, 1)");
        let no_trim = Overrides { trim_db: Some(0.0), ..Overrides::default() };
        assert!(no_trim.apply(Recipe::Robust, 42).unwrap_err().to_string().contains("--find-word"));
    }

    #[test]
    fn recipe_values_name_each_recipe_only_where_they_differ() {
        assert_eq!(recipe_setting(|c| c.batch_size.to_string()), "64");
        assert_eq!(recipe_setting(|c| c.epochs.to_string()), "original 10, robust 15");
        assert_eq!(recipe_setting(|c| number(c.learning_rate)), "original 1e-3, robust 3e-3");
        assert_eq!(recipe_setting(|c| pair(c.augment.gain_db)), "-10,5");
        assert_eq!("loso".parse::<TrainSplit>().unwrap(), TrainSplit::Loso);
        assert_eq!("speaker:theo".parse::<TrainSplit>().unwrap().to_string(), "speaker:theo");
        assert!("nonsense".parse::<TrainSplit>().is_err());
    }
}
