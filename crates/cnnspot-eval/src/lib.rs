//! The evaluation protocol of Wang et al. (CVPR 2020) over datasets in the
//! ForenSynths layout, as `cnnspot eval` and `cnnspot dataset check` run it:
//!
//! * [`dataset`]: finding generators, classes and labelled images;
//! * [`metrics`]: average precision and accuracies exactly as scikit-learn
//!   computes them, `None` where a metric is undefined;
//! * [`run`]: scoring every image through [`cnnspot_core::Detector::score_paths`],
//!   appending per-image rows to a [`scores::ScoreStore`] so that an
//!   interrupted run resumes;
//! * [`report`]: the per-generator table with the mean row, as table, CSV
//!   and JSON;
//! * [`plot`]: precision-recall curves as SVG and PNG;
//! * [`robustness`]: the same protocol under JPEG and blur sweeps (paper
//!   Sec. 4.3), with line plots;
//! * [`check`] and [`jpeg`]: formats, sizes and JPEG qualities of real and
//!   fake images, and the shortcuts they offer a detector.
//!
//! ```no_run
//! use cnnspot_core::{Batching, Detector, PreprocessOptions};
//! use cnnspot_eval::{dataset::Dataset, report::Report, run};
//! let dataset = Dataset::discover("data/test".as_ref())?;
//! let detector = Detector::load("blur_jpg_prob0.5.pth".as_ref())?;
//! let opts = PreprocessOptions { crop: Some(224), ..Default::default() };
//! let eval = run::evaluate(&dataset, &detector, &opts, &Batching::default(), None, &mut run::NoProgress)?;
//! let names: Vec<String> = dataset.generators.iter().map(|g| g.name.clone()).collect();
//! let report = Report::from_rows(&eval.rows, &names);
//! println!("mean AP {:?}", report.mean.ap);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
pub mod calibrate;
pub mod check;
pub mod dataset;
pub mod error;
pub mod jpeg;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod robustness;
pub mod run;
pub mod scores;
pub mod shard;

pub use error::{EvalError, Result};

/// `cnnspot <version>`, written into results and scores descriptions.
pub fn tool_version() -> String {
    format!("cnnspot {}", env!("CARGO_PKG_VERSION"))
}
