//! `cnnspot report`: one self-contained HTML page gathering what
//! `cnnspot eval --out DIR`, `cnnspot spectrum ROOT --out DIR` and
//! `cnnspot robustness ROOT --out DIR` wrote into a results folder.
//!
//! The page needs no network and no script: every image is a `data:` URI
//! and the style sheet is inline. Its sections, each shown only when its
//! inputs are there (otherwise one line names the command that makes them):
//!
//! * **Evaluation**: the paper's table (AP and accuracies per generator and
//!   their mean), recomputed from `scores.jsonl` with
//!   [`cnnspot_eval::report::Report`] (or read from `results.json` when the
//!   scores are absent), and the precision-recall curves `pr_curves.png`;
//! * **Most fake and most real images** (the paper's Fig. 6): per generator,
//!   thumbnails of the images with the highest and the lowest probability,
//!   each with its true label, so that mistakes show;
//! * **Spectra**: `spectra_grid.png` (Fig. 7);
//! * **Robustness**: per sweep of `robustness.json`, its plot and the AP of
//!   each generator at each point.
//!
//! ```no_run
//! use cnnspot_report::{write_report, ReportOptions};
//! let done = write_report("results".as_ref(), "results/report.html".as_ref(), &ReportOptions::default())?;
//! for w in &done.warnings {
//!     eprintln!("warning: {w}");
//! }
//! println!("{} bytes, {} thumbnails", done.html.len(), done.thumbnails);
//! # Ok::<(), cnnspot_report::ReportError>(())
//! ```

#![warn(missing_docs)]
mod embed;
mod error;
mod inputs;
mod page;

use std::path::{Path, PathBuf};

pub use cnnspot_files::layout;
pub use embed::MAX_FIGURE_BYTES;
pub use error::{ReportError, Result};

/// Thumbnails per generator at each end (most fake, most real) by default.
pub const DEFAULT_THUMBNAILS: usize = 6;
/// Longer side of a thumbnail in pixels by default.
pub const DEFAULT_THUMB_SIZE: u32 = 160;

/// How the report is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Where the dataset is, when it is no longer at the root recorded in
    /// `scores.meta.json` (thumbnails are read from it).
    pub root: Option<PathBuf>,
    /// Thumbnails per generator at each end; 0 leaves the section out.
    pub thumbnails: usize,
    /// Longer side of a thumbnail in pixels (smaller images keep their size).
    pub thumb_size: u32,
    /// Page title; `None` gives `cnnspot report: <folder name>`.
    pub title: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            root: None,
            thumbnails: DEFAULT_THUMBNAILS,
            thumb_size: DEFAULT_THUMB_SIZE,
            title: None,
        }
    }
}

/// A rendered page and what went into it.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    /// The page.
    pub html: String,
    /// The sections shown, in page order (`"evaluation"`, `"examples"`,
    /// `"spectra"`, `"robustness"`).
    pub sections: Vec<&'static str>,
    /// Figures embedded (PR curves, spectra grid, robustness plots).
    pub figures: usize,
    /// Thumbnails embedded.
    pub thumbnails: usize,
    /// Thumbnails shown as a placeholder with the reason instead (file
    /// missing or unreadable).
    pub placeholders: usize,
    /// Things the reader of the page should know, one sentence each
    /// (missing images, a stale results.json...); also listed in the page.
    pub warnings: Vec<String>,
}

impl RenderedReport {
    /// All `<img>` elements of the page.
    pub fn images(&self) -> usize {
        self.figures + self.thumbnails
    }
}

/// Makes the page for the results folder `dir`. Fails when `dir` holds
/// none of the inputs, or when an input that is there cannot be parsed;
/// images that cannot be embedded become warnings.
pub fn render_report(dir: &Path, opts: &ReportOptions) -> Result<RenderedReport> {
    if opts.thumb_size == 0 {
        return Err(ReportError::Invalid(
            "the thumbnail size must be at least 1 pixel".into(),
        ));
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(ReportError::NotAFolder {
                path: dir.to_path_buf(),
                why: "not a folder (give the folder that `cnnspot eval --out` wrote)".into(),
            })
        }
        Err(e) => {
            return Err(ReportError::NotAFolder {
                path: dir.to_path_buf(),
                why: e.to_string(),
            })
        }
    }
    page::render(dir, opts)
}

/// [`render_report`], then writes the page to `output` atomically (readers
/// see the old page or the new one, never a part).
pub fn write_report(dir: &Path, output: &Path, opts: &ReportOptions) -> Result<RenderedReport> {
    let report = render_report(dir, opts)?;
    cnnspot_eval::scores::write_atomic(output, report.html.as_bytes())?;
    Ok(report)
}
