//! Spoken digit recognition (0-9) on the Free Spoken Digit Dataset.
//!
//! The library does the work; the binaries in `spoken-digits-cli` only parse arguments and
//! report. One front end ([`FeatureConfig`] + [`FrontEnd`]) serves training, file prediction and the
//! live microphone alike (cut into utterances by [`stream`] and [`vad`]), and its configuration
//! travels with the weights ([`model::ModelConfig`]).

pub mod analysis;
pub mod atomic;
pub mod audio;
pub mod augment;
pub mod conditions;
pub mod ctc;
pub mod dataset;
pub mod declip;
pub mod error;
pub mod features;
pub mod live;
pub mod metrics;
pub mod model;
pub mod overrides;
pub mod parallel;
pub mod predict;
pub mod prediction;
pub mod recogniser;
pub mod resample;
pub mod rescore;
pub mod stream;
pub mod strings;
pub mod takes;
pub mod train;
pub mod vad;

pub use error::{Error, Result};
pub use features::{FeatureConfig, FrontEnd};

/// Number of classes: the digits 0-9.
pub const NUM_CLASSES: usize = 10;
