//! Per-generator results, their mean, and the table, CSV and JSON forms.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::metrics::{mean_defined, precision_recall_curve, Metrics, PrPoint};
use crate::scores::{short_hash, CheckpointId, ScoreRow, Settings};

/// One generator's line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorResult {
    /// Generator name.
    pub name: String,
    /// Its metrics, over its scored images.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Its images left out because they could not be scored.
    pub left_out: usize,
}

/// The last line of the table: the mean over generators, as in the paper.
/// Each metric is averaged over the generators where it is defined; how
/// many that were is kept beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanRow {
    /// Generators in the table.
    pub generators: usize,
    /// Real images over all generators.
    pub n_real: usize,
    /// Fake images over all generators.
    pub n_fake: usize,
    /// Mean AP.
    pub ap: Option<f64>,
    /// Generators with a defined AP.
    pub ap_of: usize,
    /// Mean accuracy.
    pub acc: Option<f64>,
    /// Generators with a defined accuracy.
    pub acc_of: usize,
    /// Mean real accuracy.
    pub r_acc: Option<f64>,
    /// Generators with a defined real accuracy.
    pub r_acc_of: usize,
    /// Mean fake accuracy.
    pub f_acc: Option<f64>,
    /// Generators with a defined fake accuracy.
    pub f_acc_of: usize,
}

/// A file left out of the metrics, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    /// Path relative to the dataset root.
    pub path: String,
    /// Its generator.
    pub generator: String,
    /// Why it has no score.
    pub reason: String,
}

/// Everything the table shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// One entry per generator, in table order.
    pub generators: Vec<GeneratorResult>,
    /// The mean row.
    pub mean: MeanRow,
    /// Files left out, in row order.
    pub left_out: Vec<LeftOut>,
}

impl Report {
    /// Groups `rows` by generator, in the order of `order` (generators not
    /// in it are ignored), and computes each generator's metrics over its
    /// scored images.
    pub fn from_rows(rows: &[ScoreRow], order: &[String]) -> Report {
        let mut generators = Vec::with_capacity(order.len());
        let mut left_out = Vec::new();
        for name in order {
            let mut y_true = Vec::new();
            let mut y_score = Vec::new();
            let mut bad = 0;
            for row in rows.iter().filter(|r| &r.generator == name) {
                match row.usable_probability() {
                    Some(p) => {
                        y_true.push(row.label == 1);
                        y_score.push(p);
                    }
                    None => {
                        bad += 1;
                        left_out.push(LeftOut {
                            path: row.path.clone(),
                            generator: name.clone(),
                            reason: row
                                .error
                                .clone()
                                .unwrap_or_else(|| "no score was recorded".into()),
                        });
                    }
                }
            }
            generators.push(GeneratorResult {
                name: name.clone(),
                metrics: Metrics::compute(&y_true, &y_score),
                left_out: bad,
            });
        }
        let m =
            |f: fn(&Metrics) -> Option<f64>| mean_defined(generators.iter().map(|g| f(&g.metrics)));
        let (ap, ap_of) = m(|x| x.ap);
        let (acc, acc_of) = m(|x| x.acc);
        let (r_acc, r_acc_of) = m(|x| x.r_acc);
        let (f_acc, f_acc_of) = m(|x| x.f_acc);
        let mean = MeanRow {
            generators: generators.len(),
            n_real: generators.iter().map(|g| g.metrics.n_real).sum(),
            n_fake: generators.iter().map(|g| g.metrics.n_fake).sum(),
            ap,
            ap_of,
            acc,
            acc_of,
            r_acc,
            r_acc_of,
            f_acc,
            f_acc_of,
        };
        Report {
            generators,
            mean,
            left_out,
        }
    }
}

/// Generator names in order of first appearance in `rows`, sorted as the
/// dataset discovery sorts them.
pub fn generator_order(rows: &[ScoreRow]) -> Vec<String> {
    let mut names: Vec<String> = rows.iter().map(|r| r.generator.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// The precision-recall curve of each generator with a defined AP.
pub fn pr_curves(rows: &[ScoreRow], report: &Report) -> Vec<(String, f64, Vec<PrPoint>)> {
    report
        .generators
        .iter()
        .filter_map(|g| {
            let ap = g.metrics.ap?;
            let (t, s): (Vec<bool>, Vec<f64>) = rows
                .iter()
                .filter(|r| r.generator == g.name)
                .filter_map(|r| r.usable_probability().map(|p| (r.label == 1, p)))
                .unzip();
            Some((g.name.clone(), ap, precision_recall_curve(&t, &s)))
        })
        .collect()
}

/// Counts of images in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Images found.
    pub total: usize,
    /// Images with a score.
    pub scored: usize,
    /// Images left out (no score).
    pub left_out: usize,
    /// Images scored by this run (the rest came from scores.jsonl).
    pub scored_now: usize,
    /// Images whose scores were reused from an earlier run.
    pub reused: usize,
}

/// `results.json`: the table with everything needed to know what produced it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsDoc {
    /// `cnnspot <version>`.
    pub tool: String,
    /// The dataset root.
    pub root: Option<PathBuf>,
    /// Preprocessing settings.
    pub settings: Option<Settings>,
    /// The weights and their SHA-256.
    pub checkpoint: Option<CheckpointId>,
    /// The threshold of the accuracies (strict `>`).
    pub threshold: f64,
    /// Image counts.
    #[serde(default)]
    pub images: Counts,
    /// Seconds the run took (scoring included), when scores were made.
    pub wall_seconds: Option<f64>,
    /// Per generator.
    pub generators: Vec<GeneratorResult>,
    /// Mean over generators.
    pub mean: MeanRow,
    /// Files left out of the metrics and why.
    #[serde(default)]
    pub left_out: Vec<LeftOut>,
    /// Layout warnings (missing label folders...).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A metric as the tables print it: percent with one decimal, `n/a` when
/// undefined.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{:.1}", v * 100.0))
}

/// A mean as the tables print it: [`pct`], marked `*` when it is over
/// fewer than all `total` generators.
pub fn mean_pct(v: Option<f64>, of: usize, total: usize) -> String {
    match v {
        Some(_) if of < total => format!("{}*", pct(v)),
        _ => pct(v),
    }
}

impl ResultsDoc {
    /// The paper-style table: AP and accuracies in percent with one
    /// decimal, "n/a" where a metric is undefined, the mean as last row,
    /// then the files left out.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let crop = match &self.settings {
            Some(s) => s
                .crop
                .map_or("no crop".to_string(), |c| format!("crop {c}")),
            None => "settings unknown".to_string(),
        };
        let weights = match &self.checkpoint {
            Some(c) => format!(
                "{} (sha256 {})",
                c.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                short_hash(&c.sha256)
            ),
            None => "weights unknown".into(),
        };
        let _ = writeln!(out, "{crop}, {weights}, threshold 0.5");
        let width = self
            .generators
            .iter()
            .map(|g| g.name.len())
            .max()
            .unwrap_or(0)
            .max(9);
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
            "generator", "#real", "#fake", "AP", "acc", "r_acc", "f_acc"
        );
        let rule = "-".repeat(width + 2 + 6 * 8);
        let _ = writeln!(out, "{rule}");
        for g in &self.generators {
            let m = &g.metrics;
            let _ = writeln!(
                out,
                "{:<width$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
                g.name,
                m.n_real,
                m.n_fake,
                pct(m.ap),
                pct(m.acc),
                pct(m.r_acc),
                pct(m.f_acc)
            );
        }
        let _ = writeln!(out, "{rule}");
        let m = &self.mean;
        let n = m.generators;
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
            "mean",
            m.n_real,
            m.n_fake,
            mean_pct(m.ap, m.ap_of, n),
            mean_pct(m.acc, m.acc_of, n),
            mean_pct(m.r_acc, m.r_acc_of, n),
            mean_pct(m.f_acc, m.f_acc_of, n)
        );
        if [m.ap_of, m.acc_of, m.r_acc_of, m.f_acc_of]
            .iter()
            .any(|&k| k < n)
        {
            let _ = writeln!(
                out,
                "* mean over the generators where the metric is defined (AP {}, acc {}, r_acc {}, f_acc {} of {n})",
                m.ap_of, m.acc_of, m.r_acc_of, m.f_acc_of
            );
        }
        let _ = writeln!(
            out,
            "{} images scored, {} left out",
            self.images.scored, self.images.left_out
        );
        for f in &self.left_out {
            let _ = writeln!(out, "  left out: {}: {}", f.path, f.reason);
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        out
    }

    /// `results.csv`: one line per generator and the mean, metrics as
    /// fractions in full precision, empty where undefined.
    pub fn csv(&self) -> String {
        let mut out = format!("generator,{CSV_METRICS}\n");
        for g in &self.generators {
            out.push_str(&csv_row(g));
        }
        out.push_str(&csv_mean_row(&self.mean, self.images.left_out));
        out
    }
}

/// The metric columns of a CSV table line, after the generator's name.
pub(crate) const CSV_METRICS: &str = "n_real,n_fake,ap,acc,r_acc,f_acc,left_out";

fn csv_number(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// A generator's CSV line (with its newline): fractions in full precision,
/// empty where undefined.
pub(crate) fn csv_row(g: &GeneratorResult) -> String {
    let m = &g.metrics;
    format!(
        "{},{},{},{},{},{},{},{}\n",
        csv_field(&g.name),
        m.n_real,
        m.n_fake,
        csv_number(m.ap),
        csv_number(m.acc),
        csv_number(m.r_acc),
        csv_number(m.f_acc),
        g.left_out
    )
}

/// The mean's CSV line, named `mean`.
pub(crate) fn csv_mean_row(m: &MeanRow, left_out: usize) -> String {
    format!(
        "mean,{},{},{},{},{},{},{}\n",
        m.n_real,
        m.n_fake,
        csv_number(m.ap),
        csv_number(m.acc),
        csv_number(m.r_acc),
        csv_number(m.f_acc),
        left_out
    )
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
