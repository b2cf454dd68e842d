//! Scoring every image of a dataset, generator by generator, reusing and
//! extending the scores of an output folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cnnspot_core::image::ImageError;
use cnnspot_core::{Batching, Detector, PreprocessOptions, Preprocessed};

use crate::dataset::{Dataset, Item};
use crate::error::Result;
use crate::scores::{ScoreRow, ScoreStore};

/// Told about the progress of [`evaluate`]; every method does nothing by
/// default.
pub trait Progress {
    /// Scoring of a generator begins: `total` images, of which `reused`
    /// already have scores.
    fn start(&mut self, _generator: &str, _total: usize, _reused: usize) {}
    /// One more image was scored (or failed).
    fn advance(&mut self) {}
    /// The generator is done: `scored` images were scored now.
    fn finish(&mut self, _generator: &str, _scored: usize, _seconds: f64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The result of [`evaluate`].
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// One row per image of the dataset, in the dataset's order.
    pub rows: Vec<ScoreRow>,
    /// Images scored in this call.
    pub scored_now: usize,
    /// Images whose scores were taken from the store.
    pub reused: usize,
    /// Images scored in this call that were refused for being above the
    /// detector's pixel budget (so that a caller can say how to score them).
    pub over_budget: usize,
}

/// Scores every image of `dataset`, one generator at a time, through
/// [`Detector::score_paths`]. With a `store`, images it already has a score
/// for are not scored again (earlier failures are retried), and each new
/// row is appended to it as soon as it exists, so that an interrupted run
/// loses nothing already scored.
pub fn evaluate(
    dataset: &Dataset,
    detector: &Detector,
    opts: &PreprocessOptions,
    batching: &Batching,
    store: Option<&mut ScoreStore>,
    progress: &mut dyn Progress,
) -> Result<Evaluation> {
    let read = |path: &Path| cnnspot_core::image::preprocess_path(path, opts);
    evaluate_with(dataset, detector, &read, batching, store, progress)
}

/// [`evaluate`] with each image read and preprocessed by `prepare` (see
/// [`Detector::score_paths_with`]): the robustness sweeps compress or blur
/// the decoded image before the usual crop and normalisation.
pub fn evaluate_with(
    dataset: &Dataset,
    detector: &Detector,
    prepare: &(dyn Fn(&Path) -> std::result::Result<Preprocessed, ImageError> + Sync),
    batching: &Batching,
    mut store: Option<&mut ScoreStore>,
    progress: &mut dyn Progress,
) -> Result<Evaluation> {
    let mut rows = Vec::with_capacity(dataset.len());
    let mut scored_now = 0;
    let mut reused = 0;
    let mut over_budget = 0;
    for g in &dataset.generators {
        let started = Instant::now();
        // Cloned: the store is appended to while these are in use.
        let known: HashMap<&str, ScoreRow> = match store.as_deref() {
            Some(s) => g
                .items
                .iter()
                .filter_map(|i| s.existing().get(&i.key).map(|r| (i.key.as_str(), r)))
                .filter(|(_, r)| r.error.is_none())
                .map(|(k, r)| (k, r.clone()))
                .collect(),
            None => HashMap::new(),
        };
        let todo: Vec<&Item> = g
            .items
            .iter()
            .filter(|i| !known.contains_key(i.key.as_str()))
            .collect();
        progress.start(&g.name, g.items.len(), g.items.len() - todo.len());
        let paths: Vec<PathBuf> = todo.iter().map(|i| i.path.clone()).collect();
        let mut fresh: HashMap<&str, ScoreRow> = HashMap::with_capacity(todo.len());
        let mut write_error = None;
        detector.score_paths_with(&paths, prepare, batching, |i, _path, result| {
            let item = todo[i];
            let row = match result {
                Ok(score) if score.logit.is_finite() => ScoreRow::scored(&g.name, item, &score),
                Ok(score) => ScoreRow::failed(
                    &g.name,
                    item,
                    format!("the network gave a logit of {}", score.logit),
                ),
                Err(e) => {
                    if matches!(e, cnnspot_core::Error::TooLarge { .. }) {
                        over_budget += 1;
                    }
                    ScoreRow::failed(&g.name, item, reason(&e))
                }
            };
            if let (Some(s), None) = (store.as_deref_mut(), write_error.as_ref()) {
                if let Err(e) = s.append(&row) {
                    write_error = Some(e);
                }
            }
            fresh.insert(item.key.as_str(), row);
            progress.advance();
        });
        if let Some(e) = write_error {
            return Err(e);
        }
        for item in &g.items {
            let key = item.key.as_str();
            let row = match (fresh.remove(key), known.get(key)) {
                (Some(row), _) => row,
                (None, Some(old)) => {
                    reused += 1;
                    // The folder is the truth for the label and generator.
                    let mut row = old.clone();
                    row.generator = g.name.clone();
                    row.class = item.class.clone();
                    row.label = item.label.as_u8();
                    row
                }
                (None, None) => {
                    ScoreRow::failed(&g.name, item, "the scorer returned no result".into())
                }
            };
            rows.push(row);
        }
        scored_now += todo.len();
        progress.finish(&g.name, todo.len(), started.elapsed().as_secs_f64());
    }
    Ok(Evaluation {
        rows,
        scored_now,
        reused,
        over_budget,
    })
}

/// The reason alone: the row already names the file.
fn reason(e: &cnnspot_core::Error) -> String {
    match e {
        cnnspot_core::Error::Image { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
