//! Fitting, determinism, caching and the spectral signature of the
//! simulators, on small synthetic "photos" (smooth gradients and soft-edged
//! shapes) and tiny step counts, so that the whole file runs in about a
//! minute on two cores.

use std::path::PathBuf;

use cnnspot_generators::{Generator, Kind};
use cnnspot_linalg::{Complex, Fft2F64};
use cnnspot_simulators::{fit, names, prepare_with, FitOptions, SimulatorError};
use image::{Rgb, RgbImage};

/// A smooth synthetic photo: a colour gradient, a soft disc and a soft
/// rectangle, placed by `k`.
fn photo(k: u32, size: u32) -> RgbImage {
    let s = size as f32;
    let (cx, cy, r) = (
        s * (0.3 + 0.1 * (k % 3) as f32),
        s * (0.6 - 0.1 * (k % 2) as f32),
        s * 0.2,
    );
    RgbImage::from_fn(size, size, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let g = xf / s;
        let h = yf / s;
        let d = ((xf - cx).powi(2) + (yf - cy).powi(2)).sqrt();
        let disc = 1.0 / (1.0 + ((d - r) / 1.5).exp());
        let rx = (xf - s * 0.65).abs() < s * 0.15 && (yf - s * 0.3).abs() < s * 0.1;
        let rect = if rx { 1.0 } else { 0.0 };
        let ripple = 0.5 + 0.5 * ((xf * 0.3 + k as f32) * (1.0 + 0.1 * k as f32)).sin();
        let c = |a: f32, b: f32, c: f32, off: f32| {
            (255.0
                * (0.2 + 0.5 * a * g + 0.3 * b * h + 0.3 * c * disc - 0.2 * rect
                    + 0.05 * ripple
                    + off))
                .clamp(0.0, 255.0) as u8
        };
        Rgb([
            c(1.0, 0.2, 0.9, 0.0),
            c(0.3, 1.0, -0.5, 0.1),
            c(-0.4, 0.5, 0.6, 0.3),
        ])
    })
}

fn photos(n: u32, size: u32) -> Vec<RgbImage> {
    (0..n).map(|k| photo(k, size)).collect()
}

fn tiny(steps: usize) -> FitOptions {
    FitOptions {
        steps,
        batch: 4,
        crop: 32,
        lr: 3e-3,
    }
}

#[test]
fn names_are_known_and_unknown_names_fail() {
    let n = names();
    assert!(n.contains(&"autogan") && n.contains(&"up-convt4") && n.contains(&"up-shuffle-in"));
    let err = fit("up-bogus", &photos(1, 48), 0, &tiny(1), &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(err, SimulatorError::UnknownName { .. }), "{err}");
    let err = fit("up-convt4", &[], 0, &tiny(1), &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(err, SimulatorError::NoPhotos { .. }), "{err}");
}

/// The untrained net outputs near grey (its last convolution starts small),
/// so its L1 loss is about the mean |pixel| in [-1, 1] (~0.3-0.5 here); a net
/// that reconstructs the smooth photos at all gets far below half of that.
#[test]
fn fitting_lowers_the_loss_and_keeps_the_size() {
    let reals = photos(3, 64);
    for name in ["up-convt4", "up-nearest-in", "autogan"] {
        let steps = if name == "autogan" { 150 } else { 60 };
        let mut seen = 0;
        let sim = fit(name, &reals, 1, &tiny(steps), &mut |s, n, _| {
            seen = s;
            assert_eq!(n, steps);
        })
        .unwrap();
        assert_eq!(seen, steps);
        let l = &sim.report().losses;
        let first = l[0];
        let last = l[l.len() - 5..].iter().sum::<f32>() / 5.0;
        eprintln!("{name}: L1 {first:.4} -> {last:.4} ({})", sim.report().arch);
        assert!(last < first / 2.0, "{name}: {first} -> {last}");
        assert_eq!(sim.kind(), Kind::Autoencoder);
        // Sizes that are not a multiple of the stride come back unchanged.
        let odd = photo(7, 50);
        let out = sim.make(&odd, 0).unwrap();
        assert_eq!(out.dimensions(), odd.dimensions());
    }
}

#[test]
fn same_seed_same_net_cache_reloads_different_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let reals: Vec<PathBuf> = photos(2, 48)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let path = dir.path().join(format!("real{i}.png"));
            p.save(&path).unwrap();
            path
        })
        .collect();
    let probe = photo(5, 40);
    let cache = dir.path().join("cache");
    let opts = tiny(8);
    let name = "up-shuffle-in";
    let a = prepare_with(name, &reals, &cache, 3, &opts, &mut |_, _, _| {}).unwrap();
    assert!(!a.report().cached);
    let file = cache
        .join("simulators")
        .join(format!("{name}-s3.safetensors"));
    assert!(file.is_file());
    // Same seed, fitted again from scratch (elsewhere): byte-identical output.
    let b = fit(name, &photos(2, 48), 3, &opts, &mut |_, _, _| {}).unwrap();
    let out_a = a.make(&probe, 0).unwrap();
    assert_eq!(out_a.as_raw(), b.make(&probe, 0).unwrap().as_raw());
    assert_eq!(a.report().losses, b.report().losses);
    // From the cache: no fitting, identical output.
    let c = prepare_with(name, &reals, &cache, 3, &opts, &mut |_, _, _| {
        panic!("refitted")
    })
    .unwrap();
    assert!(c.report().cached);
    assert_eq!(out_a.as_raw(), c.make(&probe, 0).unwrap().as_raw());
    // Another seed: another net.
    let d = fit(name, &photos(2, 48), 4, &opts, &mut |_, _, _| {}).unwrap();
    assert_ne!(out_a.as_raw(), d.make(&probe, 0).unwrap().as_raw());
    // A corrupt cache file is a typed error, not a panic.
    std::fs::write(&file, b"not safetensors").unwrap();
    let err = prepare_with(name, &reals, &cache, 3, &opts, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(err, SimulatorError::Weights { .. }), "{err}");
}

/// Mean over `images` of |FFT| of the high-pass residual (grey minus its 3x3
/// box blur, wrapped), `n` x `n` (images are cropped to it).
fn residual_spectrum(images: &[RgbImage], n: usize) -> Vec<f64> {
    let fft = Fft2F64::forward(n, n);
    let mut acc = vec![0f64; n * n];
    for img in images {
        let g: Vec<f64> = (0..n * n)
            .map(|i| {
                let p = img.get_pixel((i % n) as u32, (i / n) as u32);
                0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
            })
            .collect();
        let mut buf: Vec<Complex<f64>> = (0..n * n)
            .map(|i| {
                let (x, y) = (i % n, i / n);
                let mut blur = 0.0;
                for dy in [n - 1, 0, 1] {
                    for dx in [n - 1, 0, 1] {
                        blur += g[((y + dy) % n) * n + (x + dx) % n];
                    }
                }
                Complex::new(g[i] - blur / 9.0, 0.0)
            })
            .collect();
        fft.process(&mut buf);
        for (a, b) in acc.iter_mut().zip(&buf) {
            *a += b.norm() / images.len() as f64;
        }
    }
    acc
}

/// How much the spectrum spikes at the frequencies of a period-2 (Nyquist)
/// and period-4 (half-Nyquist) grid: each grid frequency against its
/// neighbours one and two bins away along the line it lies on (the axis for
/// (h, 0) and (0, h), the diagonal otherwise), so that the 1/f spectrum of
/// straight edges, which runs along the axes, is not taken for a peak; the
/// larger of the two grids' mean ratios.
fn grid_peak(spec: &[f64], n: usize) -> f64 {
    let at = |u: usize, v: usize| spec[(v % n) * n + u % n];
    let spike = |u: usize, v: usize| {
        let (du, dv) = match (u, v) {
            (_, 0) => (1, 0),
            (0, _) => (0, 1),
            _ => (1, 1),
        };
        let around: f64 = [n - 2, n - 1, 1, 2]
            .iter()
            .map(|&d| at(u + du * d, v + dv * d))
            .sum::<f64>()
            / 4.0;
        at(u, v) / around.max(1e-12)
    };
    let h = n / 2;
    let q = n / 4;
    let nyq = (spike(h, 0) + spike(0, h) + spike(h, h)) / 3.0;
    let half = (spike(q, 0)
        + spike(0, q)
        + spike(q, q)
        + spike(n - q, 0)
        + spike(0, n - q)
        + spike(n - q, q))
        / 6.0;
    nyq.max(half)
}

/// The defining property of the upsampling makers: their output's residual
/// spectrum spikes at the grid frequencies of their upsampling more than the
/// input's does. After 40 tiny steps (measured, input 0.86): up-convt4-in,
/// up-convt3-in and up-shuffle spike 2.6-8.4, at least twice the input;
/// up-convt4, up-convt3, up-nearest(-in) and up-shuffle-in 1.07-1.93, at
/// least 1.2 times it; up-bilinear, whose upsampling is smooth, 0.98-1.04,
/// the control that the measure does not invent peaks.
#[test]
fn upsampling_leaves_spectral_peaks() {
    let n = 64;
    let reals = photos(4, 96);
    let probes: Vec<RgbImage> = (10..14).map(|k| photo(k, n as u32)).collect();
    let input_peak = grid_peak(&residual_spectrum(&probes, n), n);
    eprintln!("input: grid peak {input_peak:.2}");
    for name in names().into_iter().filter(|n| n.starts_with("up-")) {
        let mut peaks = Vec::new();
        for seed in [0u64, 1] {
            let sim = fit(name, &reals, seed, &tiny(40), &mut |_, _, _| {}).unwrap();
            let outs: Vec<RgbImage> = probes.iter().map(|p| sim.make(p, 0).unwrap()).collect();
            let peak = grid_peak(&residual_spectrum(&outs, n), n);
            eprintln!(
                "{name} s{seed}: grid peak {peak:.2} ({})",
                sim.report().arch
            );
            peaks.push(peak);
        }
        let strong = ["up-convt4-in", "up-convt3-in", "up-shuffle"].contains(&name);
        for p in peaks {
            if name.starts_with("up-bilinear") {
                assert!(p < 1.5 * input_peak, "{name}: {p} vs input {input_peak}");
            } else if strong {
                assert!(p > 2.0 * input_peak, "{name}: {p} vs input {input_peak}");
            } else {
                assert!(p > 1.2 * input_peak, "{name}: {p} vs input {input_peak}");
            }
        }
    }
}
