//! `cnnspot eval`: the paper's evaluation protocol over a dataset in the
//! ForenSynths layout, or recomputed from the per-image scores of an
//! earlier run.

use cnnspot_files::layout;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cnnspot_eval::report::{generator_order, pct, pr_curves, Counts, Report, ResultsDoc};
use cnnspot_eval::run::{evaluate, Progress};
use cnnspot_eval::scores::{
    read_meta, read_rows, to_json, write_atomic, CheckpointId, RunMeta, ScoreRow, ScoreStore,
    Settings,
};
use cnnspot_eval::shard::{
    keys_digest, write_merged_scores, write_record, ShardRecord, SHARD_FORMAT,
};
use cnnspot_eval::{plot, tool_version};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::model_args::ModelArgs;
use crate::scoring_args::ScoringArgs;
use crate::shard_arg::{task_images, ShardArg, TaskImages};

/// How the table is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalFormat {
    /// The paper's table: percent with one decimal.
    Table,
    /// results.csv: fractions in full precision.
    Csv,
    /// results.json: the table with settings, checkpoint and left-out files.
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Dataset root: ROOT/<generator>/[<class>/]{0_real,1_fake}/ (or one
    /// generator's folder holding 0_real and 1_fake).
    #[arg(
        value_name = "ROOT",
        required_unless_present_any = ["from_scores", "merge"],
        conflicts_with_all = ["from_scores", "merge"]
    )]
    root: Option<PathBuf>,

    /// With --shard: scores go into DIR/shards/K-of-N/ (see --merge).
    #[command(flatten)]
    shard: ShardArg,

    /// Join the shards in DIR/shards/ (each made by `--shard K/N --out DIR`)
    /// into the results an unsharded run writes into DIR, after checking
    /// that they are complete, disjoint and made with the same settings
    /// and weights.
    #[arg(long, value_name = "DIR",
          conflicts_with_all = ["from_scores", "out", "shard", "crop", "no_crop", "generators"])]
    merge: Option<PathBuf>,

    /// Recompute the tables from the scores.jsonl of an earlier run instead
    /// of scoring images (its scores.meta.json, if beside it, gives the
    /// settings).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["crop", "no_crop"])]
    from_scores: Option<PathBuf>,

    /// Only these generators (comma-separated folder names), in this order.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    generators: Vec<String>,

    /// Write scores.jsonl (per image, appended as scored: a rerun resumes
    /// from it), scores.meta.json, results.csv, results.json and
    /// pr_curves.{svg,png} into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// What to print on standard output.
    #[arg(long, value_enum, default_value = "table")]
    format: EvalFormat,

    #[command(flatten)]
    scoring: ScoringArgs,

    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let models: Vec<String> = args
        .model
        .weights
        .as_deref()
        .map(|w| {
            w.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if models.len() > 1 {
        return compare(args, &models);
    }
    let started = Instant::now();
    let (doc, rows) = match (&args.from_scores, &args.merge) {
        (Some(file), _) => from_scores(&args, file)?,
        (None, Some(dir)) => merge(&args, dir)?,
        (None, None) => score_dataset(&args, started)?,
    };
    // A shard's table covers a part of the dataset: its results are the
    // merge's to write.
    let results_dir = match (&args.merge, args.shard.shard) {
        (Some(dir), _) => Some(dir),
        (None, Some(_)) => None,
        (None, None) => args.out.as_ref(),
    };
    if let Some(dir) = results_dir {
        write_results(dir, &doc, &rows)?;
    }
    let text = match args.format {
        EvalFormat::Table => doc.table(),
        EvalFormat::Csv => doc.csv(),
        EvalFormat::Json => {
            String::from_utf8_lossy(&to_json(Path::new(layout::RESULTS_JSON), &doc)?).into_owned()
        }
    };
    crate::output::print_stdout(&text, "the results")?;
    if doc.images.scored == 0 {
        eprintln!("no image could be scored: every metric is undefined");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn score_dataset(args: &EvalArgs, started: Instant) -> Result<(ResultsDoc, Vec<ScoreRow>)> {
    let Some(root) = &args.root else {
        bail!("give a dataset folder or --from-scores FILE");
    };
    let task = task_images(
        root,
        &args.generators,
        &args.shard,
        args.out.as_deref(),
        args.scoring.quiet,
    )?;
    let TaskImages {
        dataset,
        whole,
        shard,
        out_dir,
    } = task;
    let detector = args.model.open()?;
    let checkpoint = CheckpointId::of(&detector)?;
    let settings = Settings {
        crop: args.scoring.crop,
        max_pixels: args.scoring.max_pixels,
        perturbation: None,
        precision: Settings::precision_of(&detector),
    };
    let meta = RunMeta::new(root, settings.clone(), checkpoint.clone());
    let mut store = match &out_dir {
        Some(dir) => Some(ScoreStore::open(dir, &meta)?),
        None => None,
    };
    if let Some(s) = &store {
        let reusable = dataset
            .generators
            .iter()
            .flat_map(|g| &g.items)
            .filter(|i| s.existing().get(&i.key).is_some_and(|r| r.error.is_none()))
            .count();
        if reusable > 0 && !args.scoring.quiet {
            eprintln!(
                "resuming: {reusable} of {} images already scored in {}",
                dataset.len(),
                s.path().display()
            );
        }
    }
    let opts = args.scoring.preprocess();
    let batching = args.scoring.batching(1);
    let mut progress = Bars::new(args.scoring.quiet, dataset.generators.len());
    let eval = evaluate(
        &dataset,
        &detector,
        &opts,
        &batching,
        store.as_mut(),
        &mut progress,
    )?;
    let order: Vec<String> = dataset.generators.iter().map(|g| g.name.clone()).collect();
    let report = Report::from_rows(&eval.rows, &order);
    let wall = started.elapsed().as_secs_f64();
    if let (Some(shard), Some(dir), Some(out)) = (shard, &out_dir, &args.out) {
        let record = ShardRecord {
            format: SHARD_FORMAT.to_string(),
            shard,
            dataset: whole,
            images: eval.rows.len(),
            keys_sha256: keys_digest(eval.rows.iter().map(|r| r.path.as_str())),
            scored_now: eval.scored_now,
            reused: eval.reused,
            wall_seconds: wall,
        };
        write_record(dir, &record)?;
        if !args.scoring.quiet {
            eprintln!(
                "shard {shard} finished; when all {} have: cnnspot eval --merge {}",
                shard.count,
                out.display()
            );
        }
    }
    if !args.scoring.quiet {
        eprintln!(
            "scored {} images, reused {}, in {wall:.1} s",
            eval.scored_now, eval.reused
        );
    }
    if eval.over_budget > 0 {
        eprintln!(
            "{}",
            crate::detect::OVER_BUDGET_HINT.replace("{n}", &eval.over_budget.to_string())
        );
    }
    let warnings = dataset
        .generators
        .iter()
        .flat_map(|g| g.warnings.iter().cloned())
        .collect();
    let doc = doc(
        report,
        Some(meta.root),
        Some(settings),
        Some(checkpoint),
        eval.rows.len(),
        (eval.scored_now, eval.reused),
        Some(wall),
        warnings,
    );
    Ok((doc, eval.rows))
}

/// `--merge DIR`: the shards' rows, checked and joined, as one run's.
fn merge(args: &EvalArgs, dir: &Path) -> Result<(ResultsDoc, Vec<ScoreRow>)> {
    let started = Instant::now();
    let merged = cnnspot_eval::shard::merge(dir)?;
    write_merged_scores(dir, &merged)?;
    let report = Report::from_rows(&merged.rows, &merged.dataset.generators);
    if !args.scoring.quiet {
        eprintln!(
            "merged {} shards, {} images, in {:.2} s",
            merged.records.len(),
            merged.rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let doc = doc(
        report,
        Some(merged.meta.root.clone()),
        Some(merged.meta.settings.clone()),
        Some(merged.meta.checkpoint.clone()),
        merged.rows.len(),
        (merged.scored_now(), merged.reused()),
        Some(merged.wall_seconds()),
        merged.dataset.warnings.clone(),
    );
    Ok((doc, merged.rows))
}

fn from_scores(args: &EvalArgs, file: &Path) -> Result<(ResultsDoc, Vec<ScoreRow>)> {
    let (rows, _) = read_rows(file)?;
    if rows.is_empty() {
        bail!("{} holds no score rows", file.display());
    }
    let meta_path = file
        .parent()
        .unwrap_or(Path::new("."))
        .join(layout::SCORES_META_JSON);
    let meta = if meta_path.exists() {
        Some(read_meta(&meta_path)?)
    } else {
        None
    };
    let known = generator_order(&rows);
    let order = if args.generators.is_empty() {
        known
    } else {
        for g in &args.generators {
            if !known.contains(g) {
                bail!(
                    "{} has no scores for the generator {g} (found: {})",
                    file.display(),
                    known.join(", ")
                );
            }
        }
        args.generators.clone()
    };
    let rows: Vec<ScoreRow> = rows
        .into_iter()
        .filter(|r| order.contains(&r.generator))
        .collect();
    let report = Report::from_rows(&rows, &order);
    let (root, settings, checkpoint) = match meta {
        Some(m) => (Some(m.root), Some(m.settings), Some(m.checkpoint)),
        None => (None, None, None),
    };
    let doc = doc(
        report,
        root,
        settings,
        checkpoint,
        rows.len(),
        (0, rows.len()),
        None,
        Vec::new(),
    );
    Ok((doc, rows))
}

#[allow(clippy::too_many_arguments)] // one call per mode; a struct would only rename them
fn doc(
    report: Report,
    root: Option<PathBuf>,
    settings: Option<Settings>,
    checkpoint: Option<CheckpointId>,
    total: usize,
    (scored_now, reused): (usize, usize),
    wall_seconds: Option<f64>,
    warnings: Vec<String>,
) -> ResultsDoc {
    let left_out = report.left_out.len();
    ResultsDoc {
        tool: tool_version(),
        root,
        settings,
        checkpoint,
        threshold: cnnspot_eval::metrics::THRESHOLD,
        images: Counts {
            total,
            scored: total - left_out,
            left_out,
            scored_now,
            reused,
        },
        wall_seconds,
        generators: report.generators,
        mean: report.mean,
        left_out: report.left_out,
        warnings,
    }
}

/// results.csv, results.json and the precision-recall figures, each
/// replaced atomically.
fn write_results(dir: &Path, doc: &ResultsDoc, rows: &[ScoreRow]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let json_path = dir.join(layout::RESULTS_JSON);
    write_atomic(&json_path, &to_json(&json_path, doc)?)?;
    write_atomic(&dir.join(layout::RESULTS_CSV), doc.csv().as_bytes())?;
    write_curves(dir, doc, rows)
}

/// Draws the precision-recall curves of `rows` into `dir`.
fn write_curves(dir: &Path, doc: &ResultsDoc, rows: &[ScoreRow]) -> Result<()> {
    let order: Vec<String> = doc.generators.iter().map(|g| g.name.clone()).collect();
    let curves = pr_curves(rows, &Report::from_rows(rows, &order));
    let crop = match &doc.settings {
        Some(s) => s
            .crop
            .map_or(", no crop".to_string(), |c| format!(", crop {c}")),
        None => String::new(),
    };
    let title = format!("Precision-recall per generator{crop}");
    plot::write_svg(&dir.join(layout::PR_CURVES_SVG), &title, &curves)?;
    plot::write_png(&dir.join(layout::PR_CURVES_PNG), &title, &curves)?;
    Ok(())
}

/// One progress bar per generator on a terminal; one line per generator
/// otherwise (unless quiet).
pub(crate) struct Bars {
    quiet: bool,
    /// A line per finished generator (off where a caller prints its own).
    lines: bool,
    terminal: bool,
    generators: usize,
    index: usize,
    reused: usize,
    bar: ProgressBar,
}

impl Bars {
    pub(crate) fn new(quiet: bool, generators: usize) -> Bars {
        Bars {
            quiet,
            lines: true,
            terminal: std::io::stderr().is_terminal(),
            generators,
            index: 0,
            reused: 0,
            bar: ProgressBar::hidden(),
        }
    }

    /// Bars on a terminal, no per-generator lines.
    pub(crate) fn bars_only(quiet: bool, generators: usize) -> Bars {
        Bars {
            lines: false,
            ..Bars::new(quiet, generators)
        }
    }

    /// Counts generators from the first again (a new pass over the dataset).
    pub(crate) fn restart(&mut self) {
        self.index = 0;
    }
}

impl Progress for Bars {
    fn start(&mut self, generator: &str, total: usize, reused: usize) {
        self.index += 1;
        self.reused = reused;
        if self.quiet || !self.terminal {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} {pos}/{len} {wide_bar} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("[{}/{}] {generator}", self.index, self.generators));
        bar.set_position(reused as u64);
        bar.reset_eta();
        self.bar = bar;
    }

    fn advance(&mut self) {
        self.bar.inc(1);
    }

    fn finish(&mut self, generator: &str, scored: usize, seconds: f64) {
        self.bar.finish_and_clear();
        self.bar = ProgressBar::hidden();
        if !self.quiet && self.lines {
            eprintln!(
                "[{}/{}] {generator}: {scored} images scored in {seconds:.1} s, {} reused",
                self.index, self.generators, self.reused
            );
        }
    }
}

/// A folder name for a model in a comparison's output folder.
fn model_folder(name: &str) -> String {
    let base = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `--weights a,b,c`: every model over the same dataset, each into its own
/// results folder (`DIR/<model>/`), and one table with a column of AP and
/// accuracy per model per generator (the paper's Fig. 4 comparison).
fn compare(args: EvalArgs, models: &[String]) -> Result<ExitCode> {
    if args.from_scores.is_some() || args.merge.is_some() {
        bail!("--from-scores and --merge read one run; compare models by scoring the dataset");
    }
    if args.shard.shard.is_some() {
        bail!("--shard scores one model: run a sharded eval per model, each with its own --out");
    }
    let mut docs = Vec::new();
    for name in models {
        let mut one = args.clone();
        one.model.weights = Some(name.clone());
        one.out = args.out.as_ref().map(|d| d.join(model_folder(name)));
        if !args.scoring.quiet {
            eprintln!("== {name}");
        }
        let (doc, rows) = score_dataset(&one, Instant::now())?;
        if let Some(dir) = &one.out {
            write_results(dir, &doc, &rows)?;
        }
        docs.push((name.clone(), doc));
    }
    let mut out = String::new();
    let mut header = format!("{:<40}", "generator");
    for (name, _) in &docs {
        header.push_str(&format!(
            " | {:>22}",
            format!("{} AP / acc", model_folder(name))
        ));
    }
    out.push_str(&header);
    out.push('\n');
    let generators: Vec<String> = docs[0]
        .1
        .generators
        .iter()
        .map(|g| g.name.clone())
        .collect();
    for g in &generators {
        let mut line = format!("{g:<40}");
        for (_, doc) in &docs {
            let m = doc
                .generators
                .iter()
                .find(|r| &r.name == g)
                .map(|r| &r.metrics);
            line.push_str(&format!(
                " | {:>22}",
                format!(
                    "{} / {}",
                    pct(m.and_then(|m| m.ap)),
                    pct(m.and_then(|m| m.acc))
                )
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    let mut line = format!("{:<40}", "mean");
    for (_, doc) in &docs {
        line.push_str(&format!(
            " | {:>22}",
            format!("{} / {}", pct(doc.mean.ap), pct(doc.mean.acc))
        ));
    }
    out.push_str(&line);
    out.push('\n');
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        write_atomic(&dir.join("comparison.txt"), out.as_bytes())?;
    }
    crate::output::print_stdout(&out, "the comparison")?;
    Ok(ExitCode::SUCCESS)
}
