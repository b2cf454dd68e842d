//! Robustness to post-processing (paper Sec. 4.3): AP and accuracies per
//! generator when every test image is JPEG-compressed at a given quality,
//! or Gaussian-blurred with a given sigma, before the usual crop and
//! normalisation.
//!
//! Each point of a sweep is a plain [`evaluate_with`] run whose images go
//! through [`Perturbation::apply`] after decoding; the JPEG round trip and
//! the blur are the training augmentation's own (`cnnspot-augment`: Pillow's
//! libjpeg-turbo encoder, SciPy's `gaussian_filter`). With an output folder
//! each point keeps its per-image scores, resumable like `eval`'s: the
//! unperturbed point in the folder itself (so an earlier `cnnspot eval
//! --out` with the same settings is reused, not rescored), the others in
//! `robustness/<jpeg-qNN|blur-sN>/`.
//!
//! Both sweeps start at the unperturbed images: JPEG at quality 100 is not
//! lossless (Pillow's settings subsample the chroma 4:2:0 at every quality,
//! and the colour conversion and DCT round), so "none" is a point of its
//! own before 100, and sigma 0 is the blur sweep's first point.

use cnnspot_files::layout::{robustness_figure, ROBUSTNESS_CSV, ROBUSTNESS_JSON};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cnnspot_augment::{gaussian_blur, jpeg_roundtrip, JpegEncoder};
use cnnspot_core::image::{load_rgb, preprocess_path, preprocess_rgb, ImageError, RgbImage};
use cnnspot_core::{Batching, Detector, PreprocessOptions};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{io_err, EvalError, Result};
use crate::plot::{plot_error, render_png, render_svg, COLOURS};
use crate::report::{csv_mean_row, csv_row, pct, GeneratorResult, MeanRow, Report, CSV_METRICS};
use crate::run::{evaluate_with, Progress};
use crate::scores::{to_json, write_atomic, CheckpointId, RunMeta, ScoreStore, Settings};

/// Folder (under the output folder) of the perturbed points' scores.
pub const POINTS_DIR: &str = "robustness";

/// The paper's JPEG qualities: 100 down to 30 in steps of 10.
pub const DEFAULT_QUALITIES: [u8; 8] = [100, 90, 80, 70, 60, 50, 40, 30];
/// The paper's blur sigmas.
pub const DEFAULT_SIGMAS: [f64; 5] = [0.0, 1.0, 2.0, 3.0, 4.0];

/// What is done to each decoded image before it is scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Perturbation {
    /// Nothing: the images as `eval` scores them.
    None,
    /// A JPEG round trip at this quality (1..=100).
    Jpeg(u8),
    /// A Gaussian blur with this sigma in pixels (> 0).
    Blur(f64),
}

impl Perturbation {
    /// A blur of sigma 0 (or less) is the identity, as in SciPy.
    fn normalised(self) -> Perturbation {
        match self {
            Perturbation::Blur(s) if s.is_nan() || s <= 0.0 => Perturbation::None,
            p => p,
        }
    }

    /// Applies the perturbation (`encoder` compresses for [`Perturbation::Jpeg`]).
    pub fn apply(&self, img: RgbImage, encoder: JpegEncoder) -> Result<RgbImage, ImageError> {
        match self.normalised() {
            Perturbation::None => Ok(img),
            Perturbation::Jpeg(q) => {
                jpeg_roundtrip(&img, q, encoder).map_err(|e| ImageError::PostProcess(e.to_string()))
            }
            Perturbation::Blur(s) => Ok(gaussian_blur(&img, s)),
        }
    }

    /// How `scores.meta.json` records it; `None` for the identity.
    pub fn describe(&self, encoder: JpegEncoder) -> Option<String> {
        match self.normalised() {
            Perturbation::None => None,
            Perturbation::Jpeg(q) => Some(format!("jpeg {q} {}", encoder.name())),
            Perturbation::Blur(s) => Some(format!("blur {s}")),
        }
    }

    /// The folder of its scores, relative to the output folder.
    pub fn scores_dir(&self) -> PathBuf {
        match self.normalised() {
            Perturbation::None => PathBuf::new(),
            Perturbation::Jpeg(q) => Path::new(POINTS_DIR).join(format!("jpeg-q{q}")),
            Perturbation::Blur(s) => Path::new(POINTS_DIR).join(format!("blur-s{s}")),
        }
    }
}

/// Which sweeps to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    /// JPEG qualities, in plotting order; empty for no JPEG sweep.
    pub qualities: Vec<u8>,
    /// Blur sigmas, in plotting order; empty for no blur sweep.
    pub sigmas: Vec<f64>,
    /// The JPEG encoder.
    pub encoder: JpegEncoder,
}

impl Default for SweepPlan {
    /// The paper's sweeps with Pillow's encoder.
    fn default() -> Self {
        SweepPlan {
            qualities: DEFAULT_QUALITIES.to_vec(),
            sigmas: DEFAULT_SIGMAS.to_vec(),
            encoder: JpegEncoder::LibjpegTurbo,
        }
    }
}

impl SweepPlan {
    /// The points of each sweep, each starting at the unperturbed images.
    pub fn sweeps(&self) -> Vec<(SweepKind, Vec<Perturbation>)> {
        let mut out = Vec::new();
        if !self.qualities.is_empty() {
            let mut points = vec![Perturbation::None];
            points.extend(self.qualities.iter().map(|&q| Perturbation::Jpeg(q)));
            out.push((SweepKind::Jpeg, points));
        }
        if !self.sigmas.is_empty() {
            let mut points: Vec<Perturbation> =
                self.sigmas.iter().map(|&s| Perturbation::Blur(s)).collect();
            if !points.iter().any(|p| p.normalised() == Perturbation::None) {
                points.insert(0, Perturbation::Blur(0.0));
            }
            out.push((SweepKind::Blur, points));
        }
        out
    }

    /// Every distinct perturbation, in the order they are first needed:
    /// the unperturbed images are scored once for both sweeps.
    pub fn distinct(&self) -> Vec<Perturbation> {
        let mut out: Vec<Perturbation> = Vec::new();
        for (_, points) in self.sweeps() {
            for p in points {
                let p = p.normalised();
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Checks the qualities and sigmas.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(q) = self.qualities.iter().find(|q| !(1..=100).contains(*q)) {
            return Err(format!("JPEG quality {q} is outside 1..=100"));
        }
        if let Some(s) = self
            .sigmas
            .iter()
            .find(|s| !s.is_finite() || **s < 0.0 || **s > 64.0)
        {
            return Err(format!("blur sigma {s} is outside 0..=64"));
        }
        if self.qualities.is_empty() && self.sigmas.is_empty() {
            return Err("nothing to sweep: give JPEG qualities or blur sigmas".into());
        }
        Ok(())
    }
}

/// The two kinds of sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepKind {
    /// JPEG quality.
    Jpeg,
    /// Gaussian blur sigma.
    Blur,
}

impl SweepKind {
    /// The axis title.
    pub fn axis(self) -> &'static str {
        match self {
            SweepKind::Jpeg => "JPEG quality",
            SweepKind::Blur => "Gaussian blur sigma",
        }
    }

    /// `jpeg` or `blur`, as in file names.
    pub fn name(self) -> &'static str {
        match self {
            SweepKind::Jpeg => "jpeg",
            SweepKind::Blur => "blur",
        }
    }
}

/// One point of a sweep: the table at one quality or sigma.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// As shown on the axis: `none`, `90`, `2`...
    pub label: String,
    /// The quality or sigma; `None` for the unperturbed JPEG point.
    pub value: Option<f64>,
    /// Per generator.
    pub generators: Vec<GeneratorResult>,
    /// Mean over generators.
    pub mean: MeanRow,
    /// Images left out at this point (could not be read or processed).
    #[serde(default)]
    pub left_out: usize,
}

/// One sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Which perturbation.
    pub perturbation: SweepKind,
    /// The axis title.
    pub axis: String,
    /// Its points, in order.
    pub points: Vec<SweepPoint>,
}

/// `robustness.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessDoc {
    /// `cnnspot <version>`.
    pub tool: String,
    /// The dataset root.
    pub root: PathBuf,
    /// Crop and pixel limit (no perturbation: that is per point).
    pub settings: Settings,
    /// The weights.
    pub checkpoint: CheckpointId,
    /// The encoder of the JPEG sweep.
    pub jpeg_encoder: String,
    /// The sweeps.
    pub sweeps: Vec<Sweep>,
}

/// Told what [`sweep`] is doing.
pub trait SweepProgress {
    /// Point `index` (0-based) of `total` distinct points begins.
    fn point(&mut self, _perturbation: &Perturbation, _index: usize, _total: usize) {}
    /// Where the scoring of the current point reports.
    fn scoring(&mut self) -> &mut dyn Progress;
}

impl SweepProgress for crate::run::NoProgress {
    fn scoring(&mut self) -> &mut dyn Progress {
        self
    }
}

fn point_label(p: Perturbation) -> (String, Option<f64>) {
    match p {
        Perturbation::None => ("none".into(), None),
        Perturbation::Jpeg(q) => (q.to_string(), Some(f64::from(q))),
        Perturbation::Blur(s) => (s.to_string(), Some(s)),
    }
}

/// Scores `dataset` under every perturbation of `plan` and tabulates each
/// point. With `out`, per-image scores are kept (and reused) as the module
/// documentation says; nothing else is written (see [`write_outputs`]).
pub fn sweep(
    dataset: &Dataset,
    detector: &Detector,
    opts: &PreprocessOptions,
    batching: &Batching,
    plan: &SweepPlan,
    out: Option<&Path>,
    progress: &mut dyn SweepProgress,
) -> Result<RobustnessDoc> {
    let checkpoint = CheckpointId::of(detector)?;
    let settings = Settings {
        crop: opts.crop,
        max_pixels: opts.max_pixels,
        perturbation: None,
        precision: Settings::precision_of(detector),
    };
    // Each point's scores are described as this, with its perturbation.
    let base = RunMeta::new(&dataset.root, settings.clone(), checkpoint.clone());
    let order: Vec<String> = dataset.generators.iter().map(|g| g.name.clone()).collect();
    let distinct = plan.distinct();
    let mut reports: Vec<(Perturbation, Report)> = Vec::with_capacity(distinct.len());
    for (index, &perturbation) in distinct.iter().enumerate() {
        progress.point(&perturbation, index, distinct.len());
        let mut store = match out {
            Some(dir) => {
                let mut meta = base.clone();
                meta.settings.perturbation = perturbation.describe(plan.encoder);
                Some(ScoreStore::open(
                    &dir.join(perturbation.scores_dir()),
                    &meta,
                )?)
            }
            None => None,
        };
        let encoder = plan.encoder;
        let plain = |path: &Path| preprocess_path(path, opts);
        let perturbed = |path: &Path| {
            let img = load_rgb(path, opts.max_pixels)?;
            preprocess_rgb(&perturbation.apply(img, encoder)?, opts.crop)
        };
        // The unperturbed point reads images exactly as `eval` does.
        let prepare: &(dyn Fn(&Path) -> std::result::Result<_, ImageError> + Sync) =
            if perturbation == Perturbation::None {
                &plain
            } else {
                &perturbed
            };
        let eval = evaluate_with(
            dataset,
            detector,
            prepare,
            batching,
            store.as_mut(),
            progress.scoring(),
        )?;
        reports.push((perturbation, Report::from_rows(&eval.rows, &order)));
    }
    Ok(assemble(plan, &reports, &order, base, settings, checkpoint))
}

/// The document of a sweep from the report of each distinct point.
fn assemble(
    plan: &SweepPlan,
    reports: &[(Perturbation, Report)],
    order: &[String],
    base: RunMeta,
    settings: Settings,
    checkpoint: CheckpointId,
) -> RobustnessDoc {
    let sweeps = plan
        .sweeps()
        .into_iter()
        .map(|(kind, points)| Sweep {
            perturbation: kind,
            axis: kind.axis().into(),
            points: points
                .into_iter()
                .map(|p| {
                    let (label, value) = point_label(p);
                    let report = reports
                        .iter()
                        .find(|(q, _)| *q == p.normalised())
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| Report::from_rows(&[], order));
                    SweepPoint {
                        label,
                        value,
                        left_out: report.left_out.len(),
                        generators: report.generators,
                        mean: report.mean,
                    }
                })
                .collect(),
        })
        .collect();
    RobustnessDoc {
        tool: crate::tool_version(),
        root: base.root,
        settings,
        checkpoint,
        jpeg_encoder: plan.encoder.name().into(),
        sweeps,
    }
}

/// Joins the shards of a sharded sweep (each made by [`sweep`] into
/// `dir/shards/K-of-N/`, with [`crate::shard::write_record`] after it)
/// point by point, as [`crate::shard::merge_at`] checks them; writes each
/// point's merged scores where an unsharded sweep keeps them, and returns
/// the document an unsharded sweep of `plan` gives.
pub fn merge_sweep(dir: &Path, plan: &SweepPlan) -> Result<RobustnessDoc> {
    let mut reports = Vec::new();
    let mut first: Option<(RunMeta, Vec<String>)> = None;
    for perturbation in plan.distinct() {
        let sub = perturbation.scores_dir();
        let merged = crate::shard::merge_at(dir, &sub)?;
        let wanted = perturbation.describe(plan.encoder);
        if merged.meta.settings.perturbation != wanted {
            return Err(EvalError::Shards {
                dir: dir.to_path_buf(),
                problems: vec![format!(
                    "the scores in shards/*/{} were made with {}, not {}: merge with the sweep flags the shards were run with",
                    sub.display(),
                    merged.meta.settings.perturbation.as_deref().unwrap_or("no perturbation"),
                    wanted.as_deref().unwrap_or("no perturbation"),
                )],
            });
        }
        crate::shard::write_merged_scores(&dir.join(&sub), &merged)?;
        let order = merged.dataset.generators.clone();
        reports.push((perturbation, Report::from_rows(&merged.rows, &order)));
        if first.is_none() {
            let mut base = merged.meta.clone();
            base.settings.perturbation = None;
            first = Some((base, order));
        }
    }
    let Some((base, order)) = first else {
        return Err(EvalError::Shards {
            dir: dir.to_path_buf(),
            problems: vec!["the sweep has no point".into()],
        });
    };
    let (settings, checkpoint) = (base.settings.clone(), base.checkpoint.clone());
    Ok(assemble(plan, &reports, &order, base, settings, checkpoint))
}

impl RobustnessDoc {
    /// One block per sweep: generators down, points across, AP in percent;
    /// the mean accuracy as the last line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for sweep in &self.sweeps {
            let width = sweep
                .points
                .first()
                .map(|p| p.generators.iter().map(|g| g.name.len()).max().unwrap_or(0))
                .unwrap_or(0)
                .max(12);
            let _ = write!(out, "AP by {:<w$}", sweep.axis, w = width.saturating_sub(3));
            for p in &sweep.points {
                let _ = write!(out, " {:>6}", p.label);
            }
            out.push('\n');
            let names: Vec<&str> = sweep
                .points
                .first()
                .map(|p| p.generators.iter().map(|g| g.name.as_str()).collect())
                .unwrap_or_default();
            for (i, name) in names.iter().enumerate() {
                let _ = write!(out, "{name:<width$}");
                for p in &sweep.points {
                    let _ = write!(
                        out,
                        " {:>6}",
                        pct(p.generators.get(i).and_then(|g| g.metrics.ap))
                    );
                }
                out.push('\n');
            }
            for (title, get) in [
                (
                    "mean AP",
                    (|m: &MeanRow| m.ap) as fn(&MeanRow) -> Option<f64>,
                ),
                ("mean acc", |m: &MeanRow| m.acc),
            ] {
                let _ = write!(out, "{title:<width$}");
                for p in &sweep.points {
                    let _ = write!(out, " {:>6}", pct(get(&p.mean)));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// `robustness.csv`: one line per sweep, point and generator (and the
    /// mean), metrics as fractions in full precision, empty where undefined.
    pub fn csv(&self) -> String {
        let mut out = format!("perturbation,point,value,generator,{CSV_METRICS}\n");
        for sweep in &self.sweeps {
            for p in &sweep.points {
                let value = p.value.map_or_else(String::new, |v| v.to_string());
                let head = format!("{},{},{value},", sweep.perturbation.name(), p.label);
                for g in &p.generators {
                    out.push_str(&head);
                    out.push_str(&csv_row(g));
                }
                out.push_str(&head);
                out.push_str(&csv_mean_row(&p.mean, p.left_out));
            }
        }
        out
    }
}

/// Writes `robustness.json`, `robustness.csv` and, per sweep,
/// `robustness_<jpeg|blur>.{png,svg}` into `dir`; returns the files written.
pub fn write_outputs(doc: &RobustnessDoc, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the folder"))?;
    let mut written = Vec::new();
    let json = dir.join(ROBUSTNESS_JSON);
    write_atomic(&json, &to_json(&json, doc)?)?;
    written.push(json);
    let csv = dir.join(ROBUSTNESS_CSV);
    write_atomic(&csv, doc.csv().as_bytes())?;
    written.push(csv);
    for sweep in &doc.sweeps {
        let kind = sweep.perturbation.name();
        let svg_path = dir.join(robustness_figure(kind, "svg"));
        write_svg(&svg_path, sweep)?;
        written.push(svg_path);
        let png_path = dir.join(robustness_figure(kind, "png"));
        write_png(&png_path, sweep)?;
        written.push(png_path);
    }
    Ok(written)
}

/// A named polyline and how it is drawn.
type Line = (String, Vec<(f64, f64)>, ShapeStyle);

/// Figure size: two panels side by side.
const SWEEP_FIGURE: (u32, u32) = (1200, 560);

fn draw_sweep<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    sweep: &Sweep,
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root
        .titled(&format!("Robustness to {}", sweep.axis), ("sans-serif", 22))
        .map_err(|x| e(&x))?;
    let panels = root.split_evenly((1, 2));
    let labels: Vec<String> = sweep.points.iter().map(|p| p.label.clone()).collect();
    let n = labels.len().max(1);
    let names: Vec<String> = sweep
        .points
        .first()
        .map(|p| p.generators.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default();
    type Get = fn(&crate::metrics::Metrics) -> Option<f64>;
    type GetMean = fn(&MeanRow) -> Option<f64>;
    let metrics: [(&str, Get, GetMean); 2] = [
        ("AP", |m| m.ap, |m| m.ap),
        ("accuracy", |m| m.acc, |m| m.acc),
    ];
    for (panel, (title, get, get_mean)) in panels.iter().zip(metrics) {
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.2f64..(n as f64 - 0.8), 0f64..1.02f64)
            .map_err(|x| e(&x))?;
        let label_of = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&label_of)
            .x_desc(sweep.axis.as_str())
            .y_desc(title)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|x| e(&x))?;
        let mut series: Vec<Line> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let pts = sweep
                    .points
                    .iter()
                    .enumerate()
                    .filter_map(|(x, p)| {
                        p.generators
                            .get(i)
                            .and_then(|g| get(&g.metrics))
                            .map(|v| (x as f64, v))
                    })
                    .collect();
                (
                    name.clone(),
                    pts,
                    COLOURS[i % COLOURS.len()].stroke_width(2),
                )
            })
            .collect();
        let mean: Vec<(f64, f64)> = sweep
            .points
            .iter()
            .enumerate()
            .filter_map(|(x, p)| get_mean(&p.mean).map(|v| (x as f64, v)))
            .collect();
        series.push(("mean".into(), mean, BLACK.stroke_width(4)));
        for (name, pts, style) in series {
            chart
                .draw_series(
                    pts.windows(2)
                        .map(move |w| PathElement::new(vec![w[0], w[1]], style)),
                )
                .map_err(|x| e(&x))?;
            chart
                .draw_series(pts.iter().map(move |&p| Circle::new(p, 3, style.filled())))
                .map_err(|x| e(&x))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

fn write_svg(path: &Path, sweep: &Sweep) -> Result<()> {
    let svg = render_svg(SWEEP_FIGURE, |root| draw_sweep(root, sweep)).map_err(plot_error(path))?;
    write_atomic(path, svg.as_bytes())
}

fn write_png(path: &Path, sweep: &Sweep) -> Result<()> {
    let png = render_png(SWEEP_FIGURE, |root| draw_sweep(root, sweep)).map_err(plot_error(path))?;
    write_atomic(path, &png)
}
