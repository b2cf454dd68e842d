//! `synth`: a ForenSynths-layout dataset of (real crop, fake) pairs made from
//! a folder of real photos.
//!
//! Layout: `ROOT/<split>/<generator>/{0_real,1_fake}/<index>.png`, plus
//! `ROOT/manifest.csv` (one row per file: split, generator, class, path,
//! source photo, resize factor, crop box, generator kind, scale, seed).
//!
//! * The *photos* (not the crops) are divided between the splits, by a hash
//!   of their relative path and the seed: a photo is in exactly one split,
//!   whatever the crop size or the generators.
//! * Each pair draws, from its own random stream (derived from the seed, the
//!   generator's name, the split and the pair's index: no dependence on
//!   threads or on the order of work), a photo of its split, a resize factor
//!   in `[0.5, 1.0)` (raised when needed so that the resized photo still holds
//!   a crop) and a crop position. The photo is resized with Pillow's Lanczos
//!   filter (antialiased), then cropped to `size` x `size`: that crop is
//!   the real image of the pair, and the generator's output for it the fake.
//!   Both share their content, so a detector has to look at how the pixels
//!   were made, not at what they show. A noise-to-image generator (fixed
//!   output size, [`crate::Generator::native_size`]) ignores the crop; its
//!   real is the crop shrunk to the generator's size (Lanczos), so that both
//!   classes of the pair have one size.
//! * **Why the resize**: real photos are usually JPEGs, whose 8x8 block grid
//!   (blocking, quantisation noise) survives in any crop, while the fakes are
//!   made afresh. Without the resize a detector could learn "JPEG grid = real"
//!   instead of generator traces. Resizing by a non-integer factor smears the
//!   grid before the crop is taken. Photos whose shorter side is not larger
//!   than `size` are skipped (they cannot be shrunk and still hold a crop).
//! * Every file is written atomically (a temporary file in the same folder,
//!   then renamed). A rerun with the same arguments skips the pairs whose two
//!   files exist, and the same seed always gives byte-identical files.
//! * A generator that fails on one pair costs that pair only: the failure is
//!   reported and counted, and the run goes on.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cnnspot_augment::{resize, Interp};
use image::{ImageEncoder, RgbImage};
use rayon::prelude::*;

use crate::rng::{combine, hash_str, SplitMix64};
use crate::Generator;

/// File extensions read as photos (case-insensitive).
pub const PHOTO_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];

/// One split and the share of photos and pairs it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Folder name (`train`).
    pub name: String,
    /// Share in `(0, 1]`; the shares of a plan add up to 1.
    pub fraction: f64,
}

/// Errors of the synth pipeline (per-pair failures are not errors; see
/// [`SynthSummary::failures`]).
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The split list is malformed.
    #[error("bad split list {text:?}: {reason}")]
    BadSplits {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plan is inconsistent.
    #[error("{0}")]
    BadPlan(String),
    /// No readable photo.
    #[error("no readable photo ({}) under {dir}", PHOTO_EXTENSIONS.join(", "))]
    NoPhotos {
        /// The folder searched.
        dir: PathBuf,
    },
    /// A split that must hold pairs has no photo large enough.
    #[error("split {split} has no photo larger than {size} pixels on its shorter side ({photos} photos in it)")]
    NoPhotoLargeEnough {
        /// The split.
        split: String,
        /// The crop size.
        size: u32,
        /// Photos in the split.
        photos: usize,
    },
    /// A file system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The manifest could not be written.
    #[error("writing {path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Parses `train=0.9,val=0.1`. Shares must be positive and add up to 1
/// (within 1e-6); names must be plain folder names and distinct.
pub fn parse_splits(text: &str) -> Result<Vec<Split>, SynthError> {
    let bad = |reason: String| SynthError::BadSplits {
        text: text.to_string(),
        reason,
    };
    let mut out: Vec<Split> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, frac) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not NAME=SHARE")))?;
        let name = name.trim();
        if !is_plain_name(name) {
            return Err(bad(format!("{name:?} is not a plain folder name")));
        }
        let fraction: f64 = frac
            .trim()
            .parse()
            .map_err(|_| bad(format!("{frac:?} is not a number")))?;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(bad(format!("the share of {name} must be in (0, 1]")));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(bad(format!("{name} appears twice")));
        }
        out.push(Split {
            name: name.to_string(),
            fraction,
        });
    }
    if out.is_empty() {
        return Err(bad("no split given".into()));
    }
    let sum: f64 = out.iter().map(|s| s.fraction).sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(bad(format!("the shares add up to {sum}, not 1")));
    }
    Ok(out)
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.')
}

/// What [`run`] needs.
pub struct SynthPlan {
    /// Folder of real photos (searched recursively).
    pub reals_dir: PathBuf,
    /// Dataset root to write.
    pub out_root: PathBuf,
    /// The generators, each with a distinct name.
    pub generators: Vec<Box<dyn Generator>>,
    /// Pairs per generator, over all splits.
    pub per_generator: usize,
    /// Side of the square crops (default 256).
    pub size: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// The splits (default `train=0.9,val=0.1`).
    pub splits: Vec<Split>,
    /// Range `[min, max)` of the resize factor applied to a photo before
    /// cropping (default `[0.5, 1.0)`).
    pub downscale: (f64, f64),
}

impl SynthPlan {
    /// A plan with the defaults: 500 pairs per generator, 256 px, seed 0,
    /// `train=0.9,val=0.1`, resize factor in `[0.5, 1.0)`.
    pub fn new(reals_dir: PathBuf, out_root: PathBuf, generators: Vec<Box<dyn Generator>>) -> Self {
        SynthPlan {
            reals_dir,
            out_root,
            generators,
            per_generator: 500,
            size: 256,
            seed: 0,
            splits: vec![
                Split {
                    name: "train".into(),
                    fraction: 0.9,
                },
                Split {
                    name: "val".into(),
                    fraction: 0.1,
                },
            ],
            downscale: (0.5, 1.0),
        }
    }
}

/// A real photo found under the reals folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// Path relative to the reals folder.
    pub rel: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The photos of a reals folder, divided between splits.
#[derive(Debug, Clone)]
pub struct PhotoSplits {
    /// The reals folder.
    pub reals_dir: PathBuf,
    /// Every readable photo, sorted by relative path.
    pub photos: Vec<Photo>,
    /// For each split (in the plan's order): its name and the indices (into
    /// `photos`) of its photos, sorted.
    pub splits: Vec<(String, Vec<usize>)>,
    /// Files with a photo extension whose size could not be read.
    pub unreadable: Vec<PathBuf>,
}

impl PhotoSplits {
    /// Absolute paths of the photos of split `name` (empty for an unknown
    /// split); e.g. what a simulator trains on.
    pub fn paths_of(&self, name: &str) -> Vec<PathBuf> {
        self.splits
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, idx)| {
                idx.iter()
                    .map(|&i| self.reals_dir.join(&self.photos[i].rel))
            })
            .collect()
    }
}

/// Lists the photos under `reals_dir` (recursively, by extension, following
/// no symbolic links to folders) and divides them between `splits` by a
/// hash of their relative path and `seed`.
pub fn photo_splits(
    reals_dir: &Path,
    splits: &[Split],
    seed: u64,
) -> Result<PhotoSplits, SynthError> {
    let mut photos = Vec::new();
    let mut unreadable = Vec::new();
    for item in walkdir::WalkDir::new(reals_dir).sort_by_file_name() {
        let item = item.map_err(|e| SynthError::Io {
            path: e.path().unwrap_or(reals_dir).to_path_buf(),
            source: e.into(),
        })?;
        if !item.file_type().is_file() && !item.path().is_file() {
            continue;
        }
        let is_photo = item
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| PHOTO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_photo {
            continue;
        }
        let rel = item
            .path()
            .strip_prefix(reals_dir)
            .unwrap_or(item.path())
            .to_path_buf();
        match image::image_dimensions(item.path()) {
            Ok((width, height)) => photos.push(Photo { rel, width, height }),
            Err(_) => unreadable.push(item.path().to_path_buf()),
        }
    }
    if photos.is_empty() {
        return Err(SynthError::NoPhotos {
            dir: reals_dir.to_path_buf(),
        });
    }
    photos.sort_by(|a, b| a.rel.cmp(&b.rel));
    // Order by a seeded hash of the relative path ('/'-separated), then cut
    // by the cumulative shares.
    let mut order: Vec<(u64, usize)> = photos
        .iter()
        .enumerate()
        .map(|(i, p)| (combine(&[seed, hash_str(&rel_string(&p.rel))]), i))
        .collect();
    order.sort_unstable();
    let bounds = cumulative_counts(photos.len(), splits);
    let mut out = Vec::with_capacity(splits.len());
    for (k, s) in splits.iter().enumerate() {
        let mut idx: Vec<usize> = order[bounds[k]..bounds[k + 1]]
            .iter()
            .map(|&(_, i)| i)
            .collect();
        idx.sort_unstable();
        out.push((s.name.clone(), idx));
    }
    Ok(PhotoSplits {
        reals_dir: reals_dir.to_path_buf(),
        photos,
        splits: out,
        unreadable,
    })
}

/// `[0, round(c1*n), round(c2*n), ..., n]` for the cumulative shares `c`.
fn cumulative_counts(n: usize, splits: &[Split]) -> Vec<usize> {
    let mut bounds = vec![0];
    let mut cum = 0.0;
    for (k, s) in splits.iter().enumerate() {
        cum += s.fraction;
        let b = if k + 1 == splits.len() {
            n
        } else {
            ((cum * n as f64).round() as usize).min(n)
        };
        bounds.push(b.max(*bounds.last().unwrap_or(&0)));
    }
    bounds
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything drawn for one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDraw {
    /// Index into [`PhotoSplits::photos`].
    pub photo: usize,
    /// Resize factor.
    pub factor: f64,
    /// Size of the resized photo.
    pub resized: (u32, u32),
    /// Crop box `(x, y, w, h)` in the resized photo.
    pub crop: (u32, u32, u32, u32),
    /// Seed given to the generator.
    pub seed: u64,
}

/// Draws pair `index` of `generator` in `split` among `eligible` photos.
fn draw_pair(
    plan: &SynthPlan,
    photos: &[Photo],
    eligible: &[usize],
    generator: &str,
    split: &str,
    index: usize,
) -> PairDraw {
    let mut rng = SplitMix64::new(combine(&[
        plan.seed,
        hash_str(generator),
        hash_str(split),
        index as u64,
    ]));
    let photo = eligible[rng.below(eligible.len() as u64) as usize];
    let p = &photos[photo];
    let short = p.width.min(p.height);
    let (lo, hi) = plan.downscale;
    let lo = lo.max(f64::from(plan.size) / f64::from(short));
    let factor = lo + (hi - lo) * rng.next_f64();
    let rw = ((f64::from(p.width) * factor).round() as u32).max(plan.size);
    let rh = ((f64::from(p.height) * factor).round() as u32).max(plan.size);
    let x = rng.below(u64::from(rw - plan.size) + 1) as u32;
    let y = rng.below(u64::from(rh - plan.size) + 1) as u32;
    let seed = rng.next_u64();
    PairDraw {
        photo,
        factor,
        resized: (rw, rh),
        crop: (x, y, plan.size, plan.size),
        seed,
    }
}

/// Whether a photo can give a crop: the lowest usable factor is below the
/// top of the range.
fn eligible(p: &Photo, size: u32, downscale: (f64, f64)) -> bool {
    let short = p.width.min(p.height);
    short > 0 && downscale.0.max(f64::from(size) / f64::from(short)) < downscale.1
}

/// What happened to one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOutcome {
    /// Both files were written.
    Written,
    /// Both files existed already.
    Skipped,
    /// The photo or the generator failed; nothing was kept.
    Failed,
}

/// Progress of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub enum SynthEvent {
    /// The work is planned: `total` pairs.
    Started {
        /// Pairs in all.
        total: usize,
    },
    /// One pair is done.
    Pair {
        /// Generator name.
        generator: String,
        /// What happened.
        outcome: PairOutcome,
        /// For a failure, what went wrong (names the generator).
        message: Option<String>,
    },
}

/// A pair that could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairFailure {
    /// Generator name.
    pub generator: String,
    /// Split.
    pub split: String,
    /// Pair index.
    pub index: usize,
    /// What went wrong.
    pub message: String,
}

/// Counts for one generator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeneratorSummary {
    /// Generator name.
    pub name: String,
    /// Pairs written.
    pub written: usize,
    /// Pairs already there.
    pub skipped: usize,
    /// Pairs that failed.
    pub failed: usize,
    /// Seconds spent in the generator for the written pairs.
    pub make_seconds: f64,
}

impl GeneratorSummary {
    /// Average seconds per fake written (`None` when none was).
    pub fn seconds_per_fake(&self) -> Option<f64> {
        (self.written > 0).then(|| self.make_seconds / self.written as f64)
    }
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// One per generator, in the plan's order.
    pub generators: Vec<GeneratorSummary>,
    /// Every failed pair.
    pub failures: Vec<PairFailure>,
    /// Readable photos found, and per split (name, photos, pairs).
    pub photos: usize,
    /// Per split: name, photos in it, pairs per generator.
    pub splits: Vec<(String, usize, usize)>,
    /// Photo files whose size could not be read (left out).
    pub unreadable: Vec<PathBuf>,
    /// The manifest written.
    pub manifest: PathBuf,
}

/// One row of `manifest.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestRow {
    /// Split.
    pub split: String,
    /// Generator name.
    pub generator: String,
    /// `0_real` or `1_fake`.
    pub class: String,
    /// Path relative to the dataset root, `/`-separated.
    pub path: String,
    /// The source photo, relative to the reals folder, `/`-separated.
    pub source: String,
    /// Resize factor applied to the photo.
    pub resize_factor: f64,
    /// Width of the resized photo.
    pub resized_w: u32,
    /// Height of the resized photo.
    pub resized_h: u32,
    /// Crop box left.
    pub crop_x: u32,
    /// Crop box top.
    pub crop_y: u32,
    /// Crop box width.
    pub crop_w: u32,
    /// Crop box height.
    pub crop_h: u32,
    /// Generator kind ([`crate::Kind::name`]).
    pub kind: String,
    /// Upscaling factor, empty for other kinds.
    pub scale: Option<u32>,
    /// Seed given to the generator.
    pub seed: u64,
}

/// The file name of manifest in the dataset root.
pub const MANIFEST: &str = "manifest.csv";

/// Pairs per split for `per_generator` pairs: cumulative rounding, so the
/// counts add up to `per_generator`.
pub fn pairs_per_split(per_generator: usize, splits: &[Split]) -> Vec<usize> {
    let b = cumulative_counts(per_generator, splits);
    b.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Runs the plan; see the module documentation.
pub fn run(
    plan: &SynthPlan,
    progress: &(dyn Fn(&SynthEvent) + Sync),
) -> Result<SynthSummary, SynthError> {
    if plan.size == 0 {
        return Err(SynthError::BadPlan("the crop size must be positive".into()));
    }
    let (lo, hi) = plan.downscale;
    if !(lo > 0.0 && lo < hi && hi <= 1.0) {
        return Err(SynthError::BadPlan(format!(
            "the resize range [{lo}, {hi}) must satisfy 0 < min < max <= 1"
        )));
    }
    let mut names: Vec<&str> = plan.generators.iter().map(|g| g.name()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(SynthError::BadPlan(format!(
            "generator {} is listed twice",
            w[0]
        )));
    }
    if let Some(g) = plan.generators.iter().find(|g| !is_plain_name(g.name())) {
        return Err(SynthError::BadPlan(format!(
            "generator name {:?} is not a plain folder name",
            g.name()
        )));
    }
    let ps = photo_splits(&plan.reals_dir, &plan.splits, plan.seed)?;
    let counts = pairs_per_split(plan.per_generator, &plan.splits);
    let mut eligible_by_split = Vec::new();
    for ((name, idx), &count) in ps.splits.iter().zip(&counts) {
        let el: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| eligible(&ps.photos[i], plan.size, plan.downscale))
            .collect();
        if count > 0 && el.is_empty() && !plan.generators.is_empty() {
            return Err(SynthError::NoPhotoLargeEnough {
                split: name.clone(),
                size: plan.size,
                photos: idx.len(),
            });
        }
        eligible_by_split.push(el);
    }
    // Every pair, in manifest order.
    let mut tasks = Vec::new();
    for (g, gen) in plan.generators.iter().enumerate() {
        for (s, split) in plan.splits.iter().enumerate() {
            for i in 0..counts[s] {
                tasks.push((g, s, i, gen.name(), split.name.as_str()));
            }
        }
    }
    for (g, _) in plan.generators.iter().enumerate() {
        for split in &plan.splits {
            for class in ["0_real", "1_fake"] {
                let dir = plan
                    .out_root
                    .join(&split.name)
                    .join(plan.generators[g].name())
                    .join(class);
                fs::create_dir_all(&dir).map_err(|source| SynthError::Io { path: dir, source })?;
            }
        }
    }
    progress(&SynthEvent::Started { total: tasks.len() });
    let results: Vec<PairResult> = tasks
        .par_iter()
        .map(|&(g, s, i, gen_name, split_name)| {
            let draw = draw_pair(
                plan,
                &ps.photos,
                &eligible_by_split[s],
                gen_name,
                split_name,
                i,
            );
            let r = make_pair(plan, &ps, plan.generators[g].as_ref(), split_name, i, &draw);
            let (outcome, message) = match &r.outcome {
                Ok(o) => (*o, None),
                Err(m) => (PairOutcome::Failed, Some(m.clone())),
            };
            progress(&SynthEvent::Pair {
                generator: gen_name.to_string(),
                outcome,
                message,
            });
            r
        })
        .collect();

    let mut summaries: Vec<GeneratorSummary> = plan
        .generators
        .iter()
        .map(|g| GeneratorSummary {
            name: g.name().to_string(),
            ..Default::default()
        })
        .collect();
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for (r, &(g, _, i, gen_name, split_name)) in results.into_iter().zip(&tasks) {
        let sum = &mut summaries[g];
        match r.outcome {
            Ok(PairOutcome::Written) => {
                sum.written += 1;
                sum.make_seconds += r.seconds;
            }
            Ok(_) => sum.skipped += 1,
            Err(message) => {
                sum.failed += 1;
                failures.push(PairFailure {
                    generator: gen_name.to_string(),
                    split: split_name.to_string(),
                    index: i,
                    message,
                });
                continue;
            }
        }
        rows.extend(r.rows);
    }
    let manifest = plan.out_root.join(MANIFEST);
    write_manifest(&manifest, &rows)?;
    Ok(SynthSummary {
        generators: summaries,
        failures,
        photos: ps.photos.len(),
        splits: ps
            .splits
            .iter()
            .zip(&counts)
            .map(|((n, idx), &c)| (n.clone(), idx.len(), c))
            .collect(),
        unreadable: ps.unreadable,
        manifest,
    })
}

struct PairResult {
    outcome: Result<PairOutcome, String>,
    seconds: f64,
    rows: Vec<ManifestRow>,
}

/// The relative path of a pair's file.
pub fn pair_path(split: &str, generator: &str, class: &str, index: usize) -> String {
    format!("{split}/{generator}/{class}/{index:06}.png")
}

fn make_pair(
    plan: &SynthPlan,
    ps: &PhotoSplits,
    generator: &dyn Generator,
    split: &str,
    index: usize,
    draw: &PairDraw,
) -> PairResult {
    let name = generator.name();
    let photo = &ps.photos[draw.photo];
    let kind = generator.kind();
    let rows: Vec<ManifestRow> = ["0_real", "1_fake"]
        .iter()
        .map(|class| ManifestRow {
            split: split.to_string(),
            generator: name.to_string(),
            class: class.to_string(),
            path: pair_path(split, name, class, index),
            source: rel_string(&photo.rel),
            resize_factor: draw.factor,
            resized_w: draw.resized.0,
            resized_h: draw.resized.1,
            crop_x: draw.crop.0,
            crop_y: draw.crop.1,
            crop_w: draw.crop.2,
            crop_h: draw.crop.3,
            kind: kind.name().to_string(),
            scale: generator.scale(),
            seed: draw.seed,
        })
        .collect();
    let real_path = plan.out_root.join(&rows[0].path);
    let fake_path = plan.out_root.join(&rows[1].path);
    if real_path.is_file() && fake_path.is_file() {
        return PairResult {
            outcome: Ok(PairOutcome::Skipped),
            seconds: 0.0,
            rows,
        };
    }
    let fail = |m: String| PairResult {
        outcome: Err(m),
        seconds: 0.0,
        rows: Vec::new(),
    };
    let src = ps.reals_dir.join(&photo.rel);
    let img = match image::open(&src) {
        Ok(i) => i.to_rgb8(),
        Err(e) => {
            return fail(format!(
                "{name}: could not read photo {}: {e}",
                src.display()
            ))
        }
    };
    let crop = crop_of(&img, draw);
    // A generator of fixed-size images is paired with the crop shrunk to
    // that size, so that both classes have the same size.
    let crop = match generator.native_size() {
        Some(n) if n != crop.width() || n != crop.height() => resize(&crop, n, n, Interp::Lanczos),
        _ => crop,
    };
    let t = Instant::now();
    let fake = match generator.make(&crop, draw.seed) {
        Ok(f) => f,
        Err(e) => {
            return fail(format!(
                "generator {name} failed on {split} pair {index}: {e}"
            ))
        }
    };
    let seconds = t.elapsed().as_secs_f64();
    if fake.dimensions() != crop.dimensions() {
        return fail(format!(
            "generator {name} gave a {}x{} image for a {}x{} crop ({split} pair {index})",
            fake.width(),
            fake.height(),
            crop.width(),
            crop.height()
        ));
    }
    for (img, path) in [(&crop, &real_path), (&fake, &fake_path)] {
        if let Err(e) = write_png_atomic(img, path) {
            return fail(format!("{name}: writing {}: {e}", path.display()));
        }
    }
    PairResult {
        outcome: Ok(PairOutcome::Written),
        seconds,
        rows,
    }
}

/// The crop of a pair: the photo resized (Pillow Lanczos) and cropped.
fn crop_of(img: &RgbImage, draw: &PairDraw) -> RgbImage {
    let (rw, rh) = draw.resized;
    let resized = resize(img, rw, rh, Interp::Lanczos);
    let (x, y, w, h) = draw.crop;
    image::imageops::crop_imm(&resized, x, y, w, h).to_image()
}

/// Writes a PNG atomically ([`cnnspot_files::write_atomic_with`]).
pub fn write_png_atomic(img: &RgbImage, path: &Path) -> io::Result<()> {
    cnnspot_files::write_atomic_with(path, |w| {
        image::codecs::png::PngEncoder::new(w)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(io::Error::other)
    })
}

fn write_manifest(path: &Path, rows: &[ManifestRow]) -> Result<(), SynthError> {
    let err = |reason: String| SynthError::Manifest {
        path: path.to_path_buf(),
        reason,
    };
    cnnspot_files::write_atomic_with(path, |w| {
        let mut w = csv::Writer::from_writer(w);
        for r in rows {
            w.serialize(r).map_err(io::Error::other)?;
        }
        w.flush()
    })
    .map_err(|e| err(e.to_string()))
}

/// Reads a manifest written by [`run`].
pub fn read_manifest(path: &Path) -> Result<Vec<ManifestRow>, SynthError> {
    let err = |reason: String| SynthError::Manifest {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
    r.deserialize()
        .map(|row| row.map_err(|e| err(e.to_string())))
        .collect()
}

/// Pair counts per generator and split, for display: `(generator, split) ->
/// pairs` from manifest rows.
pub fn count_pairs(rows: &[ManifestRow]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in rows.iter().filter(|r| r.class == "1_fake") {
        *m.entry((r.generator.clone(), r.split.clone())).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parse() {
        let s = parse_splits("train=0.9, val=0.1").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "val");
        assert!(parse_splits("train=0.5").is_err());
        assert!(parse_splits("a=0.5,a=0.5").is_err());
        assert!(parse_splits("../x=1").is_err());
        assert!(parse_splits("x").is_err());
    }

    #[test]
    fn counts_add_up() {
        let s = parse_splits("train=0.9,val=0.1").unwrap();
        assert_eq!(pairs_per_split(500, &s), vec![450, 50]);
        assert_eq!(pairs_per_split(7, &s), vec![6, 1]);
        let s = parse_splits("a=0.34,b=0.33,c=0.33").unwrap();
        assert_eq!(pairs_per_split(10, &s).iter().sum::<usize>(), 10);
    }
}
