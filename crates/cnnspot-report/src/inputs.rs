//! What the other commands wrote into a results folder, read leniently:
//! fields a newer or older cnnspot does not write are simply absent, so that
//! a report can be made of any results folder that still parses as JSON.

use std::path::{Path, PathBuf};

use cnnspot_eval::report::{generator_order, Report};
use cnnspot_eval::scores::{read_meta, read_rows, RunMeta, ScoreRow, META_FILE, SCORES_FILE};
use serde::Deserialize;

use crate::error::{ReportError, Result};

/// `cnnspot eval --out`: the table with settings and checkpoint.
pub const RESULTS_FILE: &str = "results.json";
/// `cnnspot eval --out`: the precision-recall curves.
pub const PR_CURVES_FILE: &str = "pr_curves.png";
/// `cnnspot spectrum --out`: the grid of mean spectra.
pub const SPECTRA_GRID_FILE: &str = "spectra_grid.png";
/// `cnnspot robustness --out`: AP under each perturbation.
pub const ROBUSTNESS_FILE: &str = "robustness.json";

/// Preprocessing settings as results.json and robustness.json record them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SettingsJson {
    pub crop: Option<u32>,
    pub max_pixels: Option<u64>,
}

/// The weights as results.json and robustness.json record them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CheckpointJson {
    pub path: Option<PathBuf>,
    pub sha256: Option<String>,
    pub arch: Option<String>,
    pub parameters: Option<u64>,
}

/// One generator's line of a table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RowJson {
    pub name: String,
    pub n_real: usize,
    pub n_fake: usize,
    pub ap: Option<f64>,
    pub acc: Option<f64>,
    pub r_acc: Option<f64>,
    pub f_acc: Option<f64>,
    pub left_out: usize,
}

/// The mean line of a table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MeanJson {
    pub generators: usize,
    pub n_real: usize,
    pub n_fake: usize,
    pub ap: Option<f64>,
    pub ap_of: usize,
    pub acc: Option<f64>,
    pub acc_of: usize,
    pub r_acc: Option<f64>,
    pub r_acc_of: usize,
    pub f_acc: Option<f64>,
    pub f_acc_of: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LeftOutJson {
    pub path: String,
    pub reason: String,
}

/// results.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResultsJson {
    pub tool: Option<String>,
    pub root: Option<PathBuf>,
    pub settings: Option<SettingsJson>,
    pub checkpoint: Option<CheckpointJson>,
    pub generators: Vec<RowJson>,
    pub mean: Option<MeanJson>,
    pub left_out: Vec<LeftOutJson>,
    pub warnings: Vec<String>,
}

/// One point of a robustness sweep.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PointJson {
    /// A string as written by `cnnspot robustness`; anything else is shown
    /// as its JSON text.
    pub label: serde_json::Value,
    pub value: Option<f64>,
    pub generators: Vec<RowJson>,
    pub mean: Option<MeanJson>,
}

impl PointJson {
    pub fn label_text(&self) -> String {
        match &self.label {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => self.value.map_or_else(|| "?".into(), |v| v.to_string()),
            other => other.to_string(),
        }
    }
}

/// One sweep of robustness.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SweepJson {
    pub perturbation: String,
    pub axis: Option<String>,
    pub points: Vec<PointJson>,
}

/// robustness.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RobustnessJson {
    pub tool: Option<String>,
    pub root: Option<PathBuf>,
    pub settings: Option<SettingsJson>,
    pub checkpoint: Option<CheckpointJson>,
    pub jpeg_encoder: Option<String>,
    pub sweeps: Vec<SweepJson>,
}

/// A table of per-generator results with its mean line, from either
/// scores.jsonl (recomputed by the library) or results.json.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub rows: Vec<RowJson>,
    pub mean: MeanJson,
    pub left_out: Vec<LeftOutJson>,
}

impl Table {
    fn from_report(report: &Report) -> Table {
        let m = &report.mean;
        Table {
            rows: report
                .generators
                .iter()
                .map(|g| RowJson {
                    name: g.name.clone(),
                    n_real: g.metrics.n_real,
                    n_fake: g.metrics.n_fake,
                    ap: g.metrics.ap,
                    acc: g.metrics.acc,
                    r_acc: g.metrics.r_acc,
                    f_acc: g.metrics.f_acc,
                    left_out: g.left_out,
                })
                .collect(),
            mean: MeanJson {
                generators: m.generators,
                n_real: m.n_real,
                n_fake: m.n_fake,
                ap: m.ap,
                ap_of: m.ap_of,
                acc: m.acc,
                acc_of: m.acc_of,
                r_acc: m.r_acc,
                r_acc_of: m.r_acc_of,
                f_acc: m.f_acc,
                f_acc_of: m.f_acc_of,
            },
            left_out: report
                .left_out
                .iter()
                .map(|l| LeftOutJson {
                    path: l.path.clone(),
                    reason: l.reason.clone(),
                })
                .collect(),
        }
    }
}

/// What `cnnspot eval --out` left in the folder.
#[derive(Debug, Default)]
pub(crate) struct EvalInputs {
    /// The per-image scores of the table's generators, in table order.
    pub rows: Vec<ScoreRow>,
    pub meta: Option<RunMeta>,
    pub results: Option<ResultsJson>,
    /// Generators in table order.
    pub order: Vec<String>,
    /// `None` when neither scores nor results are there.
    pub table: Option<Table>,
    /// Whether the table was recomputed from scores.jsonl.
    pub from_scores: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        why: format!("not {what} ({e})"),
    })
}

/// Reads scores.jsonl, scores.meta.json and results.json where present.
/// Warnings go to `warnings`.
pub(crate) fn read_eval(dir: &Path, warnings: &mut Vec<String>) -> Result<EvalInputs> {
    let scores_path = dir.join(SCORES_FILE);
    let meta_path = dir.join(META_FILE);
    let results_path = dir.join(RESULTS_FILE);
    let mut out = EvalInputs::default();
    if meta_path.is_file() {
        out.meta = Some(read_meta(&meta_path)?);
    }
    if results_path.is_file() {
        out.results = Some(read_json(&results_path, "a cnnspot eval results.json")?);
    }
    let rows = if scores_path.is_file() {
        let (rows, _) = read_rows(&scores_path)?;
        if rows.is_empty() {
            warnings.push(format!("{} holds no score rows", scores_path.display()));
        }
        rows
    } else {
        Vec::new()
    };
    let from_results: Vec<String> = out
        .results
        .as_ref()
        .map(|r| r.generators.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default();
    if !rows.is_empty() {
        // results.json keeps the order (and the subset) that `eval
        // --generators` asked for; scores.jsonl may also hold generators of
        // earlier runs into the same folder.
        let order = if !from_results.is_empty()
            && from_results
                .iter()
                .all(|n| rows.iter().any(|r| &r.generator == n))
        {
            from_results
        } else {
            generator_order(&rows)
        };
        let rows: Vec<ScoreRow> = rows
            .into_iter()
            .filter(|r| order.contains(&r.generator))
            .collect();
        let report = Report::from_rows(&rows, &order);
        let table = Table::from_report(&report);
        if let Some(results) = &out.results {
            check_agreement(&table, results, &results_path, &scores_path, warnings);
        }
        out.rows = rows;
        out.order = order;
        out.table = Some(table);
        out.from_scores = true;
    } else if let Some(results) = &out.results {
        out.order = from_results;
        out.table = Some(Table {
            rows: results.generators.clone(),
            mean: results.mean.clone().unwrap_or_default(),
            left_out: results.left_out.clone(),
        });
    }
    Ok(out)
}

/// A results.json older than scores.jsonl (an eval interrupted before it
/// rewrote the table) would contradict the page; the page shows the
/// recomputed numbers and says so.
fn check_agreement(
    table: &Table,
    results: &ResultsJson,
    results_path: &Path,
    scores_path: &Path,
    warnings: &mut Vec<String>,
) {
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9,
        (None, None) => true,
        _ => false,
    };
    for row in &table.rows {
        let Some(old) = results.generators.iter().find(|g| g.name == row.name) else {
            continue;
        };
        if !close(row.ap, old.ap) || !close(row.acc, old.acc) || row.n_real != old.n_real {
            warnings.push(format!(
                "{} disagrees with {} for {} (stale?); the report shows the numbers recomputed from the scores",
                results_path.display(),
                scores_path.display(),
                row.name
            ));
        }
    }
}

/// Reads robustness.json when present.
pub(crate) fn read_robustness(dir: &Path) -> Result<Option<RobustnessJson>> {
    let path = dir.join(ROBUSTNESS_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    read_json(&path, "a cnnspot robustness.json").map(Some)
}
