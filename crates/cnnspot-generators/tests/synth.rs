//! The synth pipeline on a folder of test-made JPEG photos, with simple
//! test generators (no network, no shared files).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cnnspot_generators::synth::{
    parse_splits, photo_splits, read_manifest, run, SynthEvent, SynthPlan, MANIFEST,
};
use cnnspot_generators::{Generator, GeneratorError, Kind};
use image::{Rgb, RgbImage};

/// "Super-resolution" x2: 2x2 box average, then nearest x2.
struct NearestX2(&'static str);

impl Generator for NearestX2 {
    fn name(&self) -> &str {
        self.0
    }
    fn kind(&self) -> Kind {
        Kind::SuperResolution { scale: 2 }
    }
    fn make(&self, real: &RgbImage, _seed: u64) -> Result<RgbImage, GeneratorError> {
        let (w, h) = real.dimensions();
        Ok(RgbImage::from_fn(w, h, |x, y| {
            let (bx, by) = (x / 2 * 2, y / 2 * 2);
            let mut acc = [0u32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = real.get_pixel((bx + dx).min(w - 1), (by + dy).min(h - 1));
                for c in 0..3 {
                    acc[c] += u32::from(p[c]);
                }
            }
            Rgb([(acc[0] / 4) as u8, (acc[1] / 4) as u8, (acc[2] / 4) as u8])
        }))
    }
}

/// Fails on every pair whose seed is odd.
struct Flaky;

impl Generator for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn kind(&self) -> Kind {
        Kind::Autoencoder
    }
    fn make(&self, real: &RgbImage, seed: u64) -> Result<RgbImage, GeneratorError> {
        if seed % 2 == 1 {
            return Err(GeneratorError::Failed {
                generator: "flaky".into(),
                reason: "odd seed".into(),
            });
        }
        Ok(real.clone())
    }
}

fn make_photos(dir: &Path, n: usize) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..n {
        let (w, h) = (90 + 13 * i as u32, 70 + 7 * i as u32);
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 3 + y * 5 + i as u32 * 31) % 256;
            Rgb([v as u8, ((x * y + i as u32) % 256) as u8, (255 - v) as u8])
        });
        let path = if i % 3 == 0 {
            dir.join("sub").join(format!("photo{i}.JPG"))
        } else {
            dir.join(format!("photo{i}.jpg"))
        };
        img.save_with_format(&path, image::ImageFormat::Jpeg)
            .unwrap();
    }
    // Not photos: ignored.
    fs::write(dir.join("notes.txt"), "hello").unwrap();
    // Too small for a 32-pixel crop: never used.
    RgbImage::new(20, 20).save(dir.join("tiny.png")).unwrap();
}

fn plan(reals: &Path, out: &Path, gens: Vec<Box<dyn Generator>>) -> SynthPlan {
    let mut p = SynthPlan::new(reals.to_path_buf(), out.to_path_buf(), gens);
    p.per_generator = 10;
    p.size = 32;
    p.seed = 7;
    p.splits = parse_splits("train=0.8,val=0.2").unwrap();
    p
}

fn two_gens() -> Vec<Box<dyn Generator>> {
    vec![Box::new(NearestX2("nn2a")), Box::new(NearestX2("nn2b"))]
}

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, fs::read(e.path()).unwrap())
        })
        .collect()
}

fn quiet(_: &SynthEvent) {}

#[test]
fn layout_counts_manifest_and_shared_content() {
    let tmp = tempfile::tempdir().unwrap();
    let (reals, out) = (tmp.path().join("reals"), tmp.path().join("out"));
    make_photos(&reals, 12);
    let events = Mutex::new(Vec::new());
    let summary = run(&plan(&reals, &out, two_gens()), &|e: &SynthEvent| {
        events.lock().unwrap().push(e.clone())
    })
    .unwrap();
    assert_eq!(summary.photos, 13);
    assert!(summary.failures.is_empty());
    for g in &summary.generators {
        assert_eq!((g.written, g.skipped, g.failed), (10, 0, 0), "{}", g.name);
        assert!(g.seconds_per_fake().is_some());
    }
    let events = events.into_inner().unwrap();
    assert_eq!(events[0], SynthEvent::Started { total: 20 });
    assert_eq!(events.len(), 21);

    for g in ["nn2a", "nn2b"] {
        for (split, n) in [("train", 8), ("val", 2)] {
            for class in ["0_real", "1_fake"] {
                let dir = out.join(split).join(g).join(class);
                assert_eq!(fs::read_dir(&dir).unwrap().count(), n, "{}", dir.display());
            }
        }
    }
    // Manifest rows are exactly the files on disk.
    let rows = read_manifest(&out.join(MANIFEST)).unwrap();
    assert_eq!(rows.len(), 40);
    let on_disk: BTreeSet<String> = files_under(&out)
        .into_keys()
        .filter(|k| k != MANIFEST)
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|r| r.path.clone()).collect();
    assert_eq!(on_disk, listed);
    let mut train_src = BTreeSet::new();
    let mut val_src = BTreeSet::new();
    for r in &rows {
        assert!((0.5..1.0).contains(&r.resize_factor), "{}", r.resize_factor);
        assert_eq!((r.crop_w, r.crop_h), (32, 32));
        assert!(r.crop_x + 32 <= r.resized_w && r.crop_y + 32 <= r.resized_h);
        assert_eq!(r.scale, Some(2));
        assert_eq!(r.kind, "super-resolution");
        assert_ne!(r.source, "tiny.png");
        let img = image::open(out.join(&r.path)).unwrap();
        assert_eq!((img.width(), img.height()), (32, 32));
        if r.split == "train" {
            train_src.insert(r.source.clone());
        } else {
            val_src.insert(r.source.clone());
        }
    }
    assert!(train_src.is_disjoint(&val_src), "{train_src:?} {val_src:?}");
    // Real and fake of a pair share content.
    for pair in rows.chunks(2) {
        assert_eq!(pair[0].class, "0_real");
        assert_eq!(pair[1].class, "1_fake");
        assert_eq!(pair[0].source, pair[1].source);
        let a = image::open(out.join(&pair[0].path)).unwrap().to_rgb8();
        let b = image::open(out.join(&pair[1].path)).unwrap().to_rgb8();
        let diff: f64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| f64::from((i16::from(*x) - i16::from(*y)).unsigned_abs()))
            .sum::<f64>()
            / a.as_raw().len() as f64;
        assert!(diff < 40.0, "mean abs diff {diff}");
    }
}

#[test]
fn photos_are_in_exactly_one_split() {
    let tmp = tempfile::tempdir().unwrap();
    make_photos(tmp.path(), 20);
    let splits = parse_splits("train=0.7,val=0.2,test=0.1").unwrap();
    for seed in 0..5 {
        let ps = photo_splits(tmp.path(), &splits, seed).unwrap();
        let mut all: Vec<usize> = ps.splits.iter().flat_map(|(_, i)| i.clone()).collect();
        assert_eq!(all.len(), ps.photos.len());
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), ps.photos.len());
        assert_eq!(ps.splits[0].1.len(), 15); // round(0.7 * 21)
        let train: Vec<PathBuf> = ps.paths_of("train");
        assert!(train.iter().all(|p| p.starts_with(tmp.path())));
    }
}

#[test]
fn same_seed_gives_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let reals = tmp.path().join("reals");
    make_photos(&reals, 8);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run(&plan(&reals, &a, two_gens()), &quiet).unwrap();
    run(&plan(&reals, &b, two_gens()), &quiet).unwrap();
    let (fa, fb) = (files_under(&a), files_under(&b));
    assert_eq!(fa.len(), 41);
    assert!(fa == fb, "the two runs differ");
    // Another seed draws other crops.
    let c = tmp.path().join("c");
    let mut p = plan(&reals, &c, two_gens());
    p.seed = 8;
    run(&p, &quiet).unwrap();
    assert!(files_under(&c) != fa);
}

#[test]
fn rerun_only_remakes_missing_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let (reals, out) = (tmp.path().join("reals"), tmp.path().join("out"));
    make_photos(&reals, 8);
    run(&plan(&reals, &out, two_gens()), &quiet).unwrap();
    let before = files_under(&out);
    let victim = out.join("val/nn2b/1_fake/000001.png");
    fs::remove_file(&victim).unwrap();
    let summary = run(&plan(&reals, &out, two_gens()), &quiet).unwrap();
    let a = &summary.generators[0];
    let b = &summary.generators[1];
    assert_eq!((a.written, a.skipped), (0, 10));
    assert_eq!((b.written, b.skipped), (1, 9));
    assert!(
        files_under(&out) == before,
        "the remade pair or manifest differs"
    );
}

#[test]
fn a_failing_generator_costs_only_its_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let (reals, out) = (tmp.path().join("reals"), tmp.path().join("out"));
    make_photos(&reals, 8);
    let gens: Vec<Box<dyn Generator>> = vec![Box::new(Flaky), Box::new(NearestX2("nn2a"))];
    let messages = Mutex::new(Vec::new());
    let summary = run(&plan(&reals, &out, gens), &|e: &SynthEvent| {
        if let SynthEvent::Pair {
            message: Some(m), ..
        } = e
        {
            messages.lock().unwrap().push(m.clone());
        }
    })
    .unwrap();
    let flaky = &summary.generators[0];
    assert!(flaky.failed > 0, "no odd seed in 10 pairs?");
    assert_eq!(flaky.written + flaky.failed, 10);
    assert_eq!(summary.generators[1].written, 10);
    assert_eq!(summary.failures.len(), flaky.failed);
    for f in &summary.failures {
        assert_eq!(f.generator, "flaky");
        assert!(f.message.contains("flaky"), "{}", f.message);
        let p = out
            .join(&f.split)
            .join("flaky/1_fake")
            .join(format!("{:06}.png", f.index));
        assert!(!p.exists());
    }
    assert_eq!(messages.into_inner().unwrap().len(), flaky.failed);
    let rows = read_manifest(&out.join(MANIFEST)).unwrap();
    assert_eq!(rows.len(), 2 * (flaky.written + 10));
    assert!(rows
        .iter()
        .filter(|r| r.generator == "flaky")
        .all(|r| r.scale.is_none()));
}

#[test]
fn bad_plans_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (reals, out) = (tmp.path().join("reals"), tmp.path().join("out"));
    fs::create_dir_all(&reals).unwrap();
    assert!(
        run(&plan(&reals, &out, two_gens()), &quiet).is_err(),
        "no photos"
    );
    make_photos(&reals, 3);
    let mut p = plan(&reals, &out, two_gens());
    p.size = 4000;
    let e = run(&p, &quiet).unwrap_err().to_string();
    assert!(e.contains("no photo larger"), "{e}");
    let gens: Vec<Box<dyn Generator>> = vec![Box::new(NearestX2("x")), Box::new(NearestX2("x"))];
    assert!(
        run(&plan(&reals, &out, gens), &quiet).is_err(),
        "duplicate names"
    );
}

/// A noise-to-image "GAN" of fixed 12x12 output: a flat colour from the seed.
struct Flat12;

impl Generator for Flat12 {
    fn name(&self) -> &str {
        "flat12"
    }
    fn kind(&self) -> Kind {
        Kind::NoiseToImage
    }
    fn native_size(&self) -> Option<u32> {
        Some(12)
    }
    fn make(&self, real: &RgbImage, seed: u64) -> Result<RgbImage, GeneratorError> {
        assert_eq!(real.dimensions(), (12, 12), "synth gives the shrunk crop");
        Ok(RgbImage::from_pixel(
            12,
            12,
            Rgb([(seed % 256) as u8, 0, 0]),
        ))
    }
}

#[test]
fn fixed_size_generators_get_reals_of_their_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (reals, out) = (tmp.path().join("reals"), tmp.path().join("out"));
    make_photos(&reals, 6);
    let summary = run(&plan(&reals, &out, vec![Box::new(Flat12)]), &quiet).unwrap();
    assert_eq!(summary.generators[0].written, 10);
    let rows = read_manifest(&out.join(MANIFEST)).unwrap();
    assert_eq!(rows.len(), 20);
    for r in &rows {
        let img = image::open(out.join(&r.path)).unwrap();
        assert_eq!((img.width(), img.height()), (12, 12), "{}", r.path);
        assert_eq!(r.kind, "noise-to-image");
        // The crop box stays the 32-pixel crop the real was shrunk from.
        assert_eq!((r.crop_w, r.crop_h), (32, 32));
    }
}
