//! Pre/post-processing of the ncnn super-resolution generators, with
//! hand-made networks; and, when the real packages are in the cache and the
//! `ncnn` feature is on, one real network end to end.

use cnnspot_generators::catalogue::find;
use cnnspot_generators::sr::{NcnnSuperResolution, SrNetwork, Tensor};
use cnnspot_generators::{Generator, Kind};
use image::{Rgb, RgbImage};

/// Nearest x`scale` upsampling that loses `border` output pixels on each
/// side (as valid convolutions do), on the first 3 channels.
struct Nearest {
    scale: usize,
    border: usize,
    zero: bool,
}

impl SrNetwork for Nearest {
    fn run(&self, t: &Tensor) -> Result<Tensor, String> {
        let s = self.scale;
        let (h, w) = (t.h * s - 2 * self.border, t.w * s - 2 * self.border);
        let mut out = Tensor::zeros(3, h, w);
        if !self.zero {
            for c in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        out.data[(c * h + y) * w + x] =
                            t.at(c, (y + self.border) / s, (x + self.border) / s);
                    }
                }
            }
        }
        Ok(out)
    }
}

struct Broken;
impl SrNetwork for Broken {
    fn run(&self, _: &Tensor) -> Result<Tensor, String> {
        Err("boom".into())
    }
}

fn photo(n: u32) -> RgbImage {
    RgbImage::from_fn(n, n, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 11 % 256) as u8,
            ((x + y) * 3 % 256) as u8,
        ])
    })
}

fn nearest_of(low: &RgbImage, s: u32) -> RgbImage {
    RgbImage::from_fn(low.width() * s, low.height() * s, |x, y| {
        *low.get_pixel(x / s, y / s)
    })
}

#[test]
fn crop_back_after_valid_convolutions() {
    let e = find("waifu2x-photo-x2").unwrap();
    let real = photo(64);
    let low = cnnspot_augment::resize(&real, 32, 32, cnnspot_augment::Interp::Bicubic);
    for border in [0, 2, 14] {
        let g = NcnnSuperResolution::with_network(
            e,
            Box::new(Nearest {
                scale: 2,
                border,
                zero: false,
            }),
        )
        .unwrap();
        assert_eq!(g.kind(), Kind::SuperResolution { scale: 2 });
        assert_eq!(g.scale(), Some(2));
        let fake = g.make(&real, 0).unwrap();
        assert!(fake == nearest_of(&low, 2), "border {border}");
    }
}

#[test]
fn realcugan_x4_adds_the_nearest_input() {
    let e = find("realcugan-se-x4").unwrap();
    let real = photo(64);
    let low = cnnspot_augment::resize(&real, 16, 16, cnnspot_augment::Interp::Bicubic);
    let g = NcnnSuperResolution::with_network(
        e,
        Box::new(Nearest {
            scale: 4,
            border: 0,
            zero: true,
        }),
    )
    .unwrap();
    assert!(g.make(&real, 0).unwrap() == nearest_of(&low, 4));
}

#[test]
fn errors_name_the_generator() {
    let e = find("srmd-x4").unwrap();
    let g = NcnnSuperResolution::with_network(e, Box::new(Broken)).unwrap();
    let err = g.make(&photo(32), 0).unwrap_err().to_string();
    assert!(err.contains("srmd-x4") && err.contains("boom"), "{err}");
    // An output of the wrong size is an error, not a panic.
    let g = NcnnSuperResolution::with_network(
        e,
        Box::new(Nearest {
            scale: 8,
            border: 0,
            zero: false,
        }),
    )
    .unwrap();
    assert!(g.make(&photo(32), 0).is_err());
}

#[test]
fn real_waifu2x_photo_x2_when_cached() {
    let Some(cache) = std::env::var_os("CNNSPOT_CACHE_DIR").map(std::path::PathBuf::from) else {
        eprintln!("skipped: CNNSPOT_CACHE_DIR is not set");
        return;
    };
    let e = find("waifu2x-photo-x2").unwrap();
    if !cnnspot_generators::fetch::is_cached(e, &cache) {
        eprintln!("skipped: waifu2x-photo-x2 is not in {}", cache.display());
        return;
    }
    let g = match NcnnSuperResolution::load(e, &cache) {
        Ok(g) => g,
        Err(err) if !cfg!(feature = "ncnn") => {
            eprintln!("skipped: {err}");
            return;
        }
        Err(err) => panic!("{err}"),
    };
    let real = photo(64);
    let t = std::time::Instant::now();
    let fake = g.make(&real, 0).unwrap();
    eprintln!("waifu2x-photo-x2 64x64 in {:?}", t.elapsed());
    assert_eq!(fake.dimensions(), (64, 64));
    // About as close to the real crop as bicubic upscaling.
    let low = cnnspot_augment::resize(&real, 32, 32, cnnspot_augment::Interp::Bicubic);
    let bicubic = cnnspot_augment::resize(&low, 64, 64, cnnspot_augment::Interp::Bicubic);
    let mad = |a: &RgbImage| {
        a.as_raw()
            .iter()
            .zip(real.as_raw())
            .map(|(x, y)| f64::from((i16::from(*x) - i16::from(*y)).unsigned_abs()))
            .sum::<f64>()
            / a.as_raw().len() as f64
    };
    let (m_fake, m_bic) = (mad(&fake), mad(&bicubic));
    eprintln!("mean abs diff to the real: network {m_fake:.2}, bicubic {m_bic:.2}");
    assert!(
        m_fake < m_bic * 1.5 + 2.0,
        "network {m_fake}, bicubic {m_bic}"
    );
}

#[test]
fn every_cached_entry_when_cached() {
    let Some(cache) = std::env::var_os("CNNSPOT_CACHE_DIR").map(std::path::PathBuf::from) else {
        eprintln!("skipped: CNNSPOT_CACHE_DIR is not set");
        return;
    };
    if !cfg!(feature = "ncnn") {
        eprintln!("skipped: built without the ncnn feature");
        return;
    }
    // Smooth shapes, as in photos (a sawtooth pattern would test hallucination).
    let real = RgbImage::from_fn(64, 64, |x, y| {
        let (fx, fy) = (x as f32 - 30.0, y as f32 - 26.0);
        let disk = fx * fx + fy * fy < 300.0;
        let base = [(x * 3) as u8, (y * 3) as u8, 120];
        if disk {
            Rgb([220, 180u8.saturating_sub((x / 2) as u8), 40])
        } else {
            Rgb(base)
        }
    });
    let dump = std::env::var_os("SR_DUMP").map(std::path::PathBuf::from);
    if let Some(d) = &dump {
        real.save(d.join("real.png")).unwrap();
    }
    let mad = |a: &RgbImage| {
        a.as_raw()
            .iter()
            .zip(real.as_raw())
            .map(|(x, y)| f64::from((i16::from(*x) - i16::from(*y)).unsigned_abs()))
            .sum::<f64>()
            / a.as_raw().len() as f64
    };
    for e in cnnspot_generators::catalogue::CATALOGUE {
        if e.scale().is_none() {
            continue;
        }
        if !cnnspot_generators::fetch::is_cached(e, &cache) {
            eprintln!("{}: not cached, skipped", e.name);
            continue;
        }
        let g = NcnnSuperResolution::load(e, &cache).unwrap();
        let t = std::time::Instant::now();
        let fake = g.make(&real, 0).unwrap_or_else(|err| panic!("{err}"));
        if let Some(d) = &dump {
            fake.save(d.join(format!("{}.png", e.name))).unwrap();
        }
        let low = cnnspot_augment::resize(
            &real,
            64 / e.scale().unwrap(),
            64 / e.scale().unwrap(),
            cnnspot_augment::Interp::Bicubic,
        );
        let bicubic = cnnspot_augment::resize(&low, 64, 64, cnnspot_augment::Interp::Bicubic);
        let (m, b) = (mad(&fake), mad(&bicubic));
        eprintln!(
            "{:28} {:?}  mad {m:6.2}  bicubic {b:6.2}",
            e.name,
            t.elapsed()
        );
        assert_eq!(fake.dimensions(), (64, 64));
        assert!(m < 3.0 * b + 10.0, "{}: {m} vs bicubic {b}", e.name);
    }
}

#[test]
fn synth_with_real_networks_when_cached() {
    use cnnspot_generators::synth::{parse_splits, read_manifest, run, SynthPlan, MANIFEST};
    let Some(cache) = std::env::var_os("CNNSPOT_CACHE_DIR").map(std::path::PathBuf::from) else {
        eprintln!("skipped: CNNSPOT_CACHE_DIR is not set");
        return;
    };
    let mut gens: Vec<Box<dyn Generator>> = Vec::new();
    for name in ["waifu2x-photo-x2", "srmdnf-x4"] {
        let e = find(name).unwrap();
        match NcnnSuperResolution::load(e, &cache) {
            Ok(g) => gens.push(Box::new(g)),
            Err(err) => {
                eprintln!("skipped: {err}");
                return;
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let reals = tmp.path().join("reals");
    std::fs::create_dir_all(&reals).unwrap();
    for i in 0..4u32 {
        let img = RgbImage::from_fn(200 + 10 * i, 150, |x, y| {
            Rgb([(x + 20 * i) as u8, y as u8, ((x * y) / 97 % 256) as u8])
        });
        img.save_with_format(reals.join(format!("p{i}.jpg")), image::ImageFormat::Jpeg)
            .unwrap();
    }
    let mut plan = SynthPlan::new(reals, tmp.path().join("out"), gens);
    plan.per_generator = 4;
    plan.size = 64;
    plan.splits = parse_splits("train=0.5,val=0.5").unwrap();
    let summary = run(&plan, &|_| {}).unwrap();
    for g in &summary.generators {
        eprintln!(
            "{}: {} written, {:?} s/fake",
            g.name,
            g.written,
            g.seconds_per_fake()
        );
        assert_eq!((g.written, g.failed), (4, 0));
    }
    let rows = read_manifest(&plan.out_root.join(MANIFEST)).unwrap();
    assert_eq!(rows.len(), 16);
    assert!(rows.iter().any(|r| r.scale == Some(4)));
}
