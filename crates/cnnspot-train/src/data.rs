//! Training and validation images: listing them, ordering each epoch, and
//! loading augmented batches on worker threads while the model trains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use cnnspot_augment::rand::seq::SliceRandom;
use cnnspot_augment::rand::RngExt;
use cnnspot_augment::{augment_train, augment_val, sample_rng, AugmentConfig, VALIDATION_EPOCH};

use crate::{Result, TrainError};

/// One image and its label (0 real, 1 fake).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// 0 for real, 1 for fake.
    pub label: f32,
}

fn images_under(dir: &Path, label: f32, out: &mut Vec<Sample>) {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| cnnspot_image::is_image_name(p))
        .collect();
    found.sort();
    out.extend(found.into_iter().map(|path| Sample { path, label }));
}

fn has_labels(dir: &Path) -> bool {
    dir.join("0_real").is_dir() || dir.join("1_fake").is_dir()
}

/// Lists `root/<class>/{0_real,1_fake}` for the given classes (all class
/// folders when `classes` is empty), or `root/{0_real,1_fake}` directly, as
/// the reference's concatenated `ImageFolder`s do.
pub fn list_samples(root: &Path, classes: &[String]) -> Result<Vec<Sample>> {
    let data_err = |why: String| TrainError::Data {
        path: root.to_path_buf(),
        why,
    };
    let folders: Vec<PathBuf> = if has_labels(root) {
        vec![root.to_path_buf()]
    } else if classes.is_empty() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(|e| data_err(format!("cannot read the folder: {e}")))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir() && has_labels(p))
            .collect();
        dirs.sort();
        dirs
    } else {
        let mut dirs = Vec::new();
        for c in classes {
            let d = root.join(c);
            if !has_labels(&d) {
                return Err(data_err(format!(
                    "class {c} has no 0_real or 1_fake folder"
                )));
            }
            dirs.push(d);
        }
        dirs
    };
    let mut out = Vec::new();
    for f in &folders {
        images_under(&f.join("0_real"), 0.0, &mut out);
        images_under(&f.join("1_fake"), 1.0, &mut out);
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
