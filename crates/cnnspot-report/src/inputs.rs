//! What the other commands wrote into a results folder, read with the
//! library's own types (one schema for writer and reader).

use std::path::Path;

use cnnspot_eval::report::{generator_order, Report, ResultsDoc};
use cnnspot_eval::robustness::RobustnessDoc;
use cnnspot_eval::scores::{read_meta, read_rows, RunMeta, ScoreRow};
use cnnspot_files::layout::RESULTS_JSON;
use cnnspot_files::layout::{ROBUSTNESS_JSON, SCORES_JSONL, SCORES_META_JSON};
use serde::Deserialize;

use crate::error::{ReportError, Result};

/// What `cnnspot eval --out` left in the folder.
#[derive(Debug, Default)]
pub(crate) struct EvalInputs {
    /// The per-image scores of the table's generators, in table order.
    pub rows: Vec<ScoreRow>,
    pub meta: Option<RunMeta>,
    pub results: Option<ResultsDoc>,
    /// Generators in table order.
    pub order: Vec<String>,
    /// `None` when neither scores nor results are there.
    pub table: Option<Report>,
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
    let scores_path = dir.join(SCORES_JSONL);
    let meta_path = dir.join(SCORES_META_JSON);
    let results_path = dir.join(RESULTS_JSON);
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
        let table = Report::from_rows(&rows, &order);
        if let Some(results) = &out.results {
            check_agreement(&table, results, &results_path, &scores_path, warnings);
        }
        out.rows = rows;
        out.order = order;
        out.table = Some(table);
        out.from_scores = true;
    } else if let Some(results) = &out.results {
        out.order = from_results;
        out.table = Some(Report {
            generators: results.generators.clone(),
            mean: results.mean.clone(),
            left_out: results.left_out.clone(),
        });
    }
    Ok(out)
}

/// A results.json older than scores.jsonl (an eval interrupted before it
/// rewrote the table) would contradict the page; the page shows the
/// recomputed numbers and says so.
fn check_agreement(
    table: &Report,
    results: &ResultsDoc,
    results_path: &Path,
    scores_path: &Path,
    warnings: &mut Vec<String>,
) {
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9,
        (None, None) => true,
        _ => false,
    };
    for row in &table.generators {
        let Some(old) = results.generators.iter().find(|g| g.name == row.name) else {
            continue;
        };
        let (new, old) = (&row.metrics, &old.metrics);
        if !close(new.ap, old.ap) || !close(new.acc, old.acc) || new.n_real != old.n_real {
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
pub(crate) fn read_robustness(dir: &Path) -> Result<Option<RobustnessDoc>> {
    let path = dir.join(ROBUSTNESS_JSON);
    if !path.is_file() {
        return Ok(None);
    }
    read_json(&path, "a cnnspot robustness.json").map(Some)
}
