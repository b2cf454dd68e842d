//! The page: what each section shows, and the template that lays it out.

use std::path::{Path, PathBuf};

use cnnspot_eval::report::{mean_pct, pct, GeneratorResult, MeanRow};
use cnnspot_eval::robustness::RobustnessDoc;
use cnnspot_eval::scores::{short_hash, CheckpointId, ScoreRow, Settings};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::embed::{self, Embedded};
use crate::error::{ReportError, Result};
use crate::inputs::{read_eval, read_robustness, EvalInputs};
use crate::{RenderedReport, ReportOptions};
use cnnspot_files::layout::{PR_CURVES_PNG, SPECTRA_GRID_PNG};

/// The name decides autoescaping: `.html.j2` escapes as HTML.
const TEMPLATE_NAME: &str = "report.html.j2";
const TEMPLATE: &str = include_str!("report.html.j2");

/// Files left out listed in the page at most; the rest are counted.
const MAX_LEFT_OUT_SHOWN: usize = 200;

#[derive(Debug, Serialize)]
struct Fact {
    name: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
struct Nav {
    id: &'static str,
    title: &'static str,
}

#[derive(Debug, Serialize)]
struct Figure {
    img: Embedded,
    alt: String,
    file: String,
}

#[derive(Debug, Serialize)]
struct RowView {
    name: String,
    n_real: usize,
    n_fake: usize,
    ap: String,
    acc: String,
    r_acc: String,
    f_acc: String,
    left_out: usize,
}

#[derive(Debug, Serialize)]
struct LeftOutView {
    path: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct EvalView {
    source: String,
    rows: Vec<RowView>,
    mean: RowView,
    footnote: Option<String>,
    pr: Option<Figure>,
    pr_missing: Option<String>,
    left_out: Vec<LeftOutView>,
    left_out_more: usize,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Thumb {
    img: Option<Embedded>,
    why: Option<String>,
    path: String,
    label: &'static str,
    probability: String,
    /// The decision at the threshold disagrees with the true label.
    wrong: bool,
}

#[derive(Debug, Serialize)]
struct ExampleRow {
    name: String,
    scored: usize,
    fake: Vec<Thumb>,
    real: Vec<Thumb>,
}

#[derive(Debug, Serialize)]
struct ExamplesView {
    per_end: usize,
    /// Thumbnail side, for the size of placeholders.
    side: u32,
    root: String,
    generators: Vec<ExampleRow>,
}

#[derive(Debug, Serialize)]
struct SweepRow {
    name: String,
    mean: bool,
    cells: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SweepView {
    perturbation: String,
    axis: String,
    columns: Vec<String>,
    rows: Vec<SweepRow>,
    plot: Option<Figure>,
    plot_missing: Option<String>,
}

#[derive(Debug, Serialize)]
struct RobustnessView {
    setup: String,
    sweeps: Vec<SweepView>,
}

/// A section: its content, or the line saying how to get it.
#[derive(Debug, Serialize)]
struct Section<T> {
    content: Option<T>,
    missing: Option<String>,
}

impl<T> Section<T> {
    fn shown(content: T) -> Self {
        Section {
            content: Some(content),
            missing: None,
        }
    }

    fn missing(line: impl Into<String>) -> Self {
        Section {
            content: None,
            missing: Some(line.into()),
        }
    }
}

#[derive(Debug, Serialize)]
struct Page {
    title: String,
    tool: String,
    facts: Vec<Fact>,
    nav: Vec<Nav>,
    eval: Section<EvalView>,
    examples: Section<ExamplesView>,
    spectra: Section<Figure>,
    robustness: Section<RobustnessView>,
    warnings: Vec<String>,
}

fn row_view(r: &GeneratorResult) -> RowView {
    let m = &r.metrics;
    RowView {
        name: r.name.clone(),
        n_real: m.n_real,
        n_fake: m.n_fake,
        ap: pct(m.ap),
        acc: pct(m.acc),
        r_acc: pct(m.r_acc),
        f_acc: pct(m.f_acc),
        left_out: r.left_out,
    }
}

fn mean_view(m: &MeanRow, left_out: usize) -> RowView {
    let n = m.generators;
    RowView {
        name: "mean".into(),
        n_real: m.n_real,
        n_fake: m.n_fake,
        ap: mean_pct(m.ap, m.ap_of, n),
        acc: mean_pct(m.acc, m.acc_of, n),
        r_acc: mean_pct(m.r_acc, m.r_acc_of, n),
        f_acc: mean_pct(m.f_acc, m.f_acc_of, n),
        left_out,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Counts and warnings gathered while the page is built.
#[derive(Default)]
struct Tally {
    figures: usize,
    thumbnails: usize,
    placeholders: usize,
    warnings: Vec<String>,
}

impl Tally {
    /// The figure at `path` embedded, `None` when absent; a figure that is
    /// there but cannot be embedded is a warning and `Err(line)` for the
    /// page.
    fn figure(&mut self, path: &Path, alt: &str) -> Option<std::result::Result<Figure, String>> {
        if !path.exists() {
            return None;
        }
        Some(match embed::figure(path) {
            Ok(img) => {
                self.figures += 1;
                Ok(Figure {
                    img,
                    alt: alt.to_string(),
                    file: file_name(path),
                })
            }
            Err(why) => {
                let line = format!("cannot embed {}: {why}", path.display());
                self.warnings.push(line.clone());
                Err(line)
            }
        })
    }
}

pub(crate) fn render(dir: &Path, opts: &ReportOptions) -> Result<RenderedReport> {
    let mut tally = Tally::default();
    let eval_in = read_eval(dir, &mut tally.warnings)?;
    let robust_in = read_robustness(dir)?;
    let grid_path = dir.join(SPECTRA_GRID_PNG);
    if eval_in.table.is_none() && robust_in.is_none() && !grid_path.exists() {
        return Err(ReportError::NothingToReport {
            dir: dir.to_path_buf(),
        });
    }

    let eval = eval_section(dir, &eval_in, &mut tally);
    let examples = examples_section(&eval_in, opts, &mut tally);
    let spectra = match tally.figure(
        &grid_path,
        "Mean spectra per generator: real, fake, fake minus real",
    ) {
        Some(Ok(f)) => Section::shown(f),
        Some(Err(line)) => Section::missing(line),
        None => Section::missing(
            "No spectra here: run `cnnspot spectrum ROOT --out DIR` into this folder.",
        ),
    };
    let robustness = match &robust_in {
        Some(r) => Section::shown(robustness_view(dir, r, &mut tally)),
        None => Section::missing(
            "No robustness sweep here: run `cnnspot robustness ROOT --out DIR` into this folder.",
        ),
    };

    let mut nav = Vec::new();
    let mut sections = Vec::new();
    for (shown, id, title) in [
        (eval.content.is_some(), "evaluation", "Evaluation"),
        (
            examples.content.is_some(),
            "examples",
            "Most fake and most real",
        ),
        (spectra.content.is_some(), "spectra", "Spectra"),
        (robustness.content.is_some(), "robustness", "Robustness"),
    ] {
        if shown {
            nav.push(Nav { id, title });
            sections.push(id);
        }
    }

    let title = opts.title.clone().unwrap_or_else(|| {
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        format!("cnnspot report: {name}")
    });
    let page = Page {
        title,
        tool: cnnspot_eval::tool_version(),
        facts: facts(dir, &eval_in, robust_in.as_ref(), opts),
        nav,
        eval,
        examples,
        spectra,
        robustness,
        warnings: tally.warnings.clone(),
    };
    let html = render_template(&page)?;
    Ok(RenderedReport {
        html,
        sections,
        figures: tally.figures,
        thumbnails: tally.thumbnails,
        placeholders: tally.placeholders,
        warnings: tally.warnings,
    })
}

fn render_template(page: &Page) -> Result<String> {
    let mut env = Environment::new();
    // A misspelt field fails the tests instead of printing nothing.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template(TEMPLATE_NAME, TEMPLATE)
        .map_err(|e| ReportError::Template(e.to_string()))?;
    let tmpl = env
        .get_template(TEMPLATE_NAME)
        .map_err(|e| ReportError::Template(e.to_string()))?;
    tmpl.render(page)
        .map_err(|e| ReportError::Template(format!("{e:#}")))
}

/// The header: where the numbers come from.
fn facts(
    dir: &Path,
    eval: &EvalInputs,
    robust: Option<&RobustnessDoc>,
    opts: &ReportOptions,
) -> Vec<Fact> {
    let mut out = vec![Fact {
        name: "Results folder",
        value: dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
    }];
    let results = eval.results.as_ref();
    let root = eval
        .meta
        .as_ref()
        .map(|m| m.root.clone())
        .or_else(|| results.and_then(|r| r.root.clone()))
        .or_else(|| robust.map(|r| r.root.clone()));
    if let Some(root) = root {
        out.push(Fact {
            name: "Dataset",
            value: root.display().to_string(),
        });
    }
    if let Some(r) = &opts.root {
        out.push(Fact {
            name: "Images read from",
            value: r.display().to_string(),
        });
    }
    let checkpoint = eval
        .meta
        .as_ref()
        .map(|m| m.checkpoint.clone())
        .or_else(|| results.and_then(|r| r.checkpoint.clone()))
        .or_else(|| robust.map(|r| r.checkpoint.clone()));
    if let Some(c) = checkpoint {
        out.push(Fact {
            name: "Weights",
            value: weights_text(&c),
        });
    }
    let settings: Option<Settings> = eval
        .meta
        .as_ref()
        .map(|m| m.settings.clone())
        .or_else(|| results.and_then(|r| r.settings.clone()))
        .or_else(|| robust.map(|r| r.settings.clone()));
    if let Some(s) = settings {
        out.push(Fact {
            name: "Crop",
            value: crop_text(s.crop),
        });
        out.push(Fact {
            name: "Pixel limit",
            value: format!("{} pixels", s.max_pixels),
        });
    }
    let made_by = eval
        .meta
        .as_ref()
        .map(|m| m.tool.clone())
        .or_else(|| results.map(|r| r.tool.clone()))
        .or_else(|| robust.map(|r| r.tool.clone()));
    if let Some(t) = made_by {
        out.push(Fact {
            name: "Scores made by",
            value: t,
        });
    }
    out
}

fn crop_text(crop: Option<u32>) -> String {
    crop.map_or_else(
        || "none (whole image)".to_string(),
        |c| format!("{c} × {c} center crop"),
    )
}

fn weights_text(c: &CheckpointId) -> String {
    format!(
        "{} (sha256 {}), {}, {:.1} M parameters",
        c.path.display(),
        short_hash(&c.sha256),
        c.arch,
        c.parameters as f64 / 1e6
    )
}

fn eval_section(dir: &Path, eval: &EvalInputs, tally: &mut Tally) -> Section<EvalView> {
    let Some(table) = &eval.table else {
        return Section::missing(
            "No evaluation here: run `cnnspot eval ROOT --out DIR` into this folder.",
        );
    };
    let pr_path = dir.join(PR_CURVES_PNG);
    let (pr, pr_missing) = match tally.figure(&pr_path, "Precision-recall curve per generator") {
        Some(Ok(f)) => (Some(f), None),
        Some(Err(line)) => (None, Some(line)),
        None => (
            None,
            Some(format!(
                "No {PR_CURVES_PNG} here: `cnnspot eval --out DIR` draws it."
            )),
        ),
    };
    let m = &table.mean;
    let n = m.generators;
    let footnote = [m.ap_of, m.acc_of, m.r_acc_of, m.f_acc_of]
        .iter()
        .any(|&k| k < n)
        .then(|| {
            format!(
                "* mean over the generators where the metric is defined (AP {}, acc {}, r_acc {}, f_acc {} of {n})",
                m.ap_of, m.acc_of, m.r_acc_of, m.f_acc_of
            )
        });
    let source = if eval.from_scores {
        "Recomputed from scores.jsonl."
    } else {
        "From results.json (no scores.jsonl here)."
    };
    let notes = eval
        .results
        .as_ref()
        .map(|r| r.warnings.clone())
        .unwrap_or_default();
    Section::shown(EvalView {
        source: source.into(),
        rows: table.generators.iter().map(row_view).collect(),
        mean: mean_view(m, table.left_out.len()),
        footnote,
        pr,
        pr_missing,
        left_out: table
            .left_out
            .iter()
            .take(MAX_LEFT_OUT_SHOWN)
            .map(|l| LeftOutView {
                path: l.path.clone(),
                reason: l.reason.clone(),
            })
            .collect(),
        left_out_more: table.left_out.len().saturating_sub(MAX_LEFT_OUT_SHOWN),
        notes,
    })
}

/// The `n` highest and then the `n` lowest of a generator's scored rows,
/// never the same row twice: the highest first, the lowest first.
fn extremes(rows: &[&ScoreRow], n: usize) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let p = |i: usize| rows[i].usable_probability().unwrap_or(f64::NAN);
    // Ties by path, so that the same scores give the same page.
    order.sort_by(|&a, &b| {
        p(b).total_cmp(&p(a))
            .then_with(|| rows[a].path.cmp(&rows[b].path))
    });
    let top = n.min(order.len());
    let bottom = n.min(order.len() - top);
    let high = order[..top].to_vec();
    let low = order[order.len() - bottom..]
        .iter()
        .rev()
        .copied()
        .collect();
    (high, low)
}

fn examples_section(
    eval: &EvalInputs,
    opts: &ReportOptions,
    tally: &mut Tally,
) -> Section<ExamplesView> {
    if eval.rows.is_empty() {
        return Section::missing(
            "No per-image scores (scores.jsonl) here: run `cnnspot eval ROOT --out DIR` into this folder.",
        );
    }
    if opts.thumbnails == 0 {
        return Section::missing("Thumbnails were turned off (--thumbnails 0).");
    }
    let root: Option<PathBuf> = opts
        .root
        .clone()
        .or_else(|| eval.meta.as_ref().map(|m| m.root.clone()))
        .or_else(|| eval.results.as_ref().and_then(|r| r.root.clone()));
    let Some(root) = root else {
        let line = "The dataset root is unknown (no scores.meta.json): give it with --root DIR.";
        tally.warnings.push(line.into());
        return Section::missing(line);
    };
    if !root.is_dir() {
        let line = format!(
            "The dataset is not at {} any more: give its folder with --root DIR.",
            root.display()
        );
        tally.warnings.push(line.clone());
        return Section::missing(line);
    }
    let max_pixels = eval
        .meta
        .as_ref()
        .map(|m| m.settings.max_pixels)
        .unwrap_or(cnnspot_image::DEFAULT_MAX_PIXELS);
    let mut generators = Vec::new();
    for name in &eval.order {
        let scored: Vec<&ScoreRow> = eval
            .rows
            .iter()
            .filter(|r| &r.generator == name && r.usable_probability().is_some())
            .collect();
        let (high, low) = extremes(&scored, opts.thumbnails);
        let mut thumbs = |idx: Vec<usize>| -> Vec<Thumb> {
            idx.into_iter()
                .map(|i| thumb(scored[i], &root, opts.thumb_size, max_pixels, tally))
                .collect()
        };
        let fake = thumbs(high);
        let real = thumbs(low);
        generators.push(ExampleRow {
            name: name.clone(),
            scored: scored.len(),
            fake,
            real,
        });
    }
    Section::shown(ExamplesView {
        per_end: opts.thumbnails,
        side: opts.thumb_size,
        root: root.display().to_string(),
        generators,
    })
}

fn thumb(row: &ScoreRow, root: &Path, side: u32, max_pixels: u64, tally: &mut Tally) -> Thumb {
    let probability = row.usable_probability().unwrap_or(f64::NAN);
    let fake = row.label == 1;
    let path = root.join(&row.path);
    let (img, why) = match embed::thumbnail(&path, side, max_pixels) {
        Ok(img) => {
            tally.thumbnails += 1;
            (Some(img), None)
        }
        Err(why) => {
            tally.placeholders += 1;
            tally
                .warnings
                .push(format!("no thumbnail of {}: {why}", path.display()));
            (None, Some(why))
        }
    };
    Thumb {
        img,
        why,
        path: row.path.clone(),
        label: if fake { "fake" } else { "real" },
        probability: probability_text(probability),
        wrong: (probability > cnnspot_eval::metrics::THRESHOLD) != fake,
    }
}

/// Three decimals, except that tiny probabilities keep a significant digit
/// (an untrained or very sure detector gives many below 0.0005).
fn probability_text(p: f64) -> String {
    if p > 0.0 && p < 0.0005 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

fn robustness_view(dir: &Path, r: &RobustnessDoc, tally: &mut Tally) -> RobustnessView {
    let setup = [
        format!("crop: {}", crop_text(r.settings.crop)),
        format!("weights: {}", weights_text(&r.checkpoint)),
        format!("JPEG encoder: {}", r.jpeg_encoder),
    ];
    let mut sweeps = Vec::new();
    for s in &r.sweeps {
        let columns: Vec<String> = s.points.iter().map(|p| p.label.clone()).collect();
        let mut names: Vec<String> = Vec::new();
        for p in &s.points {
            for g in &p.generators {
                if !names.contains(&g.name) {
                    names.push(g.name.clone());
                }
            }
        }
        let mut rows: Vec<SweepRow> = names
            .iter()
            .map(|name| SweepRow {
                name: name.clone(),
                mean: false,
                cells: s
                    .points
                    .iter()
                    .map(|p| {
                        pct(p
                            .generators
                            .iter()
                            .find(|g| &g.name == name)
                            .and_then(|g| g.metrics.ap))
                    })
                    .collect(),
            })
            .collect();
        rows.push(SweepRow {
            name: "mean".into(),
            mean: true,
            cells: s
                .points
                .iter()
                .map(|p| mean_pct(p.mean.ap, p.mean.ap_of, p.mean.generators))
                .collect(),
        });
        let axis = s.axis.clone();
        // The kind is one of a closed set, so the file name cannot leave the folder.
        let path = dir.join(format!("robustness_{}.png", s.perturbation.name()));
        let (plot, plot_missing) = match tally.figure(&path, &format!("AP against {axis}")) {
            Some(Ok(f)) => (Some(f), None),
            Some(Err(line)) => (None, Some(line)),
            None => (None, Some(format!("No {} here.", file_name(&path)))),
        };
        sweeps.push(SweepView {
            perturbation: s.perturbation.name().to_string(),
            axis,
            columns,
            rows,
            plot,
            plot_missing,
        });
    }
    RobustnessView {
        setup: setup.join("; "),
        sweeps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, p: f64) -> ScoreRow {
        // Through JSON, as the rows are read, so that fields the scores
        // format gains later keep their defaults here.
        serde_json::from_value(serde_json::json!({
            "path": path, "generator": "g", "label": 1, "probability": p, "logit": 0.0
        }))
        .unwrap()
    }

    #[test]
    fn extremes_never_repeat_an_image() {
        let rows: Vec<ScoreRow> = [0.2, 0.9, 0.5, 0.1, 0.7]
            .iter()
            .enumerate()
            .map(|(i, &p)| row(&format!("{i}.png"), p))
            .collect();
        let refs: Vec<&ScoreRow> = rows.iter().collect();
        assert_eq!(extremes(&refs, 2), (vec![1, 4], vec![3, 0]));
        // Fewer than 2n: the highest first, the rest as the lowest.
        assert_eq!(extremes(&refs, 3), (vec![1, 4, 2], vec![3, 0]));
        assert_eq!(extremes(&refs, 9), (vec![1, 4, 2, 0, 3], vec![]));
        assert_eq!(extremes(&[], 3), (vec![], vec![]));
    }

    #[test]
    fn numbers_as_the_eval_table_prints_them() {
        assert_eq!(pct(Some(0.94186)), "94.2");
        assert_eq!(pct(None), "n/a");
        assert_eq!(mean_pct(Some(0.5), 1, 2), "50.0*");
        assert_eq!(mean_pct(Some(0.5), 2, 2), "50.0");
        assert_eq!(probability_text(0.73812), "0.738");
        assert_eq!(probability_text(0.000_021), "2.1e-5");
        assert_eq!(probability_text(0.0), "0.000");
    }
}
