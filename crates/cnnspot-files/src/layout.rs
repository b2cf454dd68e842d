//! The results folder: the file names that `eval --out`, `robustness --out`
//! and `spectrum --out` write and `report` reads, defined once.
//!
//! ```text
//! DIR/results.json         eval: the table, settings and checkpoint
//! DIR/results.csv          eval: the same table as CSV
//! DIR/scores.jsonl         eval: one row per image (appended as scored; resumes)
//! DIR/scores.meta.json     eval: the settings and checkpoint the scores were made with
//! DIR/pr_curves.{png,svg}  eval: precision-recall curve per generator
//! DIR/shards/K-of-N/       eval --shard K/N: that shard's scores.jsonl, scores.meta.json, shard.json
//! DIR/robustness.json      robustness: AP and accuracy at every perturbation
//! DIR/robustness.csv       robustness: the same as CSV
//! DIR/robustness_<kind>.{png,svg}  robustness: AP against JPEG quality / blur sigma
//! DIR/spectra_grid.png     spectrum: mean spectra of every generator
//! DIR/report.html          report: the page built from all of the above
//! ```

/// `eval`: the table with settings and checkpoint.
pub const RESULTS_JSON: &str = "results.json";
/// `eval`: the table as CSV.
pub const RESULTS_CSV: &str = "results.csv";
/// `eval`: the per-image scores, one JSON object per line.
pub const SCORES_JSONL: &str = "scores.jsonl";
/// `eval`: the settings and checkpoint of `scores.jsonl`.
pub const SCORES_META_JSON: &str = "scores.meta.json";
/// `eval`: the precision-recall curves (PNG).
pub const PR_CURVES_PNG: &str = "pr_curves.png";
/// `eval`: the precision-recall curves (SVG).
pub const PR_CURVES_SVG: &str = "pr_curves.svg";
/// `eval --shard`: the folder of the shards' folders (`K-of-N`).
pub const SHARDS_DIR: &str = "shards";
/// `eval --shard`: written into a shard's folder when it has finished.
pub const SHARD_JSON: &str = "shard.json";
/// `robustness`: AP and accuracy under each perturbation.
pub const ROBUSTNESS_JSON: &str = "robustness.json";
/// `robustness`: the same as CSV.
pub const ROBUSTNESS_CSV: &str = "robustness.csv";
/// `spectrum`: the grid of mean spectra.
pub const SPECTRA_GRID_PNG: &str = "spectra_grid.png";
/// `report`: the page.
pub const REPORT_HTML: &str = "report.html";

/// `robustness`: the figure of one sweep (`kind`: `jpeg`, `blur`; `ext`:
/// `png`, `svg`).
pub fn robustness_figure(kind: &str, ext: &str) -> String {
    format!("robustness_{kind}.{ext}")
}
