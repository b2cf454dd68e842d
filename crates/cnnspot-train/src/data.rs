//! Training and validation images: listing them, ordering each epoch, and
//! loading augmented batches on worker threads while the model trains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use cnnspot_augment::rand::seq::SliceRandom;
use cnnspot_augment::rand::RngExt;
use cnnspot_augment::{augment_train, augment_val, sample_rng, AugmentConfig, VALIDATION_EPOCH};

use cnnspot_eval::dataset::{Dataset, Label};

use crate::{Result, TrainError};

/// One image and its label (0 real, 1 fake).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// 0 for real, 1 for fake.
    pub label: f32,
}

/// Lists `root/<class>/{0_real,1_fake}` for the given classes (all class
/// folders when `classes` is empty), or `root/{0_real,1_fake}` directly, as
/// the reference's concatenated `ImageFolder`s do: real images then fake
/// ones per class, each sorted. The folders are walked by the one dataset
/// walker, `cnnspot_eval::dataset::Dataset` (a training class is what eval
/// calls a generator).
pub fn list_samples(root: &Path, classes: &[String]) -> Result<Vec<Sample>> {
    let data_err = |why: String| TrainError::Data {
        path: root.to_path_buf(),
        why,
    };
    let mut dataset = Dataset::discover(root).map_err(|e| data_err(e.to_string()))?;
    if !classes.is_empty() {
        dataset
            .select(classes)
            .map_err(|e| data_err(e.to_string()))?;
    }
    let mut out = Vec::new();
    for g in &dataset.generators {
        for label in [Label::Real, Label::Fake] {
            let mut paths: Vec<&PathBuf> = g
                .items
                .iter()
                .filter(|i| i.label == label)
                .map(|i| &i.path)
                .collect();
            paths.sort();
            out.extend(paths.into_iter().map(|p| Sample {
                path: p.clone(),
                label: f32::from(label.as_u8()),
            }));
        }
    }
    if out.is_empty() {
        return Err(data_err(
            "no images found in <class>/0_real or <class>/1_fake folders".into(),
        ));
    }
    Ok(out)
}

/// The order of one epoch: a seeded shuffle, or with `balanced` a draw with
/// replacement weighting each sample by 1/(count of its label), as the
/// reference's `WeightedRandomSampler`.
pub fn epoch_order(samples: &[Sample], seed: u64, epoch: u64, balanced: bool) -> Vec<usize> {
    // A stream of its own (index u64::MAX is never a sample's).
    let mut rng = sample_rng(seed, epoch, u64::MAX);
    let n = samples.len();
    if !balanced {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        return order;
    }
    let fakes: Vec<usize> = (0..n).filter(|&i| samples[i].label > 0.5).collect();
    let reals: Vec<usize> = (0..n).filter(|&i| samples[i].label <= 0.5).collect();
    (0..n)
        .map(|_| {
            let pick_fake = reals.is_empty() || (!fakes.is_empty() && rng.random::<bool>());
            let pool = if pick_fake { &fakes } else { &reals };
            pool[rng.random_range(0..pool.len())]
        })
        .collect()
}

/// A batch ready for the model.
#[derive(Debug, Clone)]
pub struct Batch {
    /// NCHW, normalised.
    pub images: Vec<f32>,
    /// The labels of the batch, in order.
    pub labels: Vec<f32>,
    /// Side of the square crops.
    pub size: usize,
    /// Files that could not be used, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn load_one(
    sample: &Sample,
    index: usize,
    cfg: &AugmentConfig,
    seed: u64,
    epoch: Option<u64>,
    max_pixels: u64,
) -> std::result::Result<Vec<f32>, String> {
    let img = cnnspot_image::load_rgb(&sample.path, max_pixels).map_err(|e| e.to_string())?;
    let augmented = match epoch {
        Some(e) => augment_train(&img, cfg, &mut sample_rng(seed, e, index as u64)),
        None => augment_val(
            &img,
            cfg,
            &mut sample_rng(seed, VALIDATION_EPOCH, index as u64),
        ),
    }
    .map_err(|e| e.to_string())?;
    Ok(cnnspot_image::normalize(&augmented.image))
}

/// Loads the batches `order.chunks(batch_size)` from `first_batch` on, on
/// `workers` threads, and hands them to `consume` in order. Memory stays
/// bounded: workers wait while a few batches are queued. `epoch` None
/// means validation (fixed augmentation). `consume` returns false to stop.
#[allow(clippy::too_many_arguments)]
pub fn for_each_batch(
    samples: &[Sample],
    order: &[usize],
    batch_size: usize,
    first_batch: usize,
    cfg: &AugmentConfig,
    seed: u64,
    epoch: Option<u64>,
    max_pixels: u64,
    workers: usize,
    mut consume: impl FnMut(usize, Batch) -> Result<bool>,
) -> Result<()> {
    let chunks: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let next = AtomicUsize::new(first_batch);
    let stop = AtomicBool::new(false);
    let workers = workers.max(1);
    let (tx, rx) = mpsc::sync_channel::<(usize, Batch)>(workers);
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, chunks) = (&next, &stop, &chunks);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(b) else { break };
                let mut batch = Batch {
                    images: Vec::new(),
                    labels: Vec::new(),
                    size: cfg.crop_size as usize,
                    skipped: Vec::new(),
                };
                for &i in chunk.iter() {
                    let s = &samples[i];
                    match load_one(s, i, cfg, seed, epoch, max_pixels) {
                        Ok(x) => {
                            batch.images.extend(x);
                            batch.labels.push(s.label);
                        }
                        Err(why) => batch.skipped.push((s.path.clone(), why)),
                    }
                }
                if tx.send((b, batch)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut expected = first_batch;
        for (b, batch) in rx.iter() {
            waiting.insert(b, batch);
            while let Some(batch) = waiting.remove(&expected) {
                if !consume(expected, batch)? {
                    stop.store(true, Ordering::Relaxed);
                    // Drain so that blocked workers can finish.
                    for _ in rx.try_iter() {}
                    return Ok(());
                }
                expected += 1;
            }
        }
        Ok(())
    })?;
    Ok(())
}
