//! Spectra of synthetic images with and without upsampling artifacts, the
//! median filter, `.npy` output and a whole (tiny) dataset run.

use std::path::Path;

use cnnspot_analysis::render::write_outputs;
use cnnspot_analysis::{
    generator_spectra, median_filter, HighPass, Spectrum2d, SpectrumAccumulator, SpectrumOptions,
};
use cnnspot_eval::dataset::Dataset;
use cnnspot_linalg::{Complex, Fft2F32};
use image::{Rgb, RgbImage};

const N: usize = 256;

/// A small deterministic generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// Smooth noise: white noise box-blurred (5x5, wrapping), per channel.
fn smooth_noise(side: usize, rng: &mut Rng) -> Vec<[f32; 3]> {
    let white: Vec<[f32; 3]> = (0..side * side)
        .map(|_| [rng.next(), rng.next(), rng.next()])
        .collect();
    let mut out = vec![[0f32; 3]; side * side];
    for y in 0..side {
        for x in 0..side {
            let mut s = [0f32; 3];
            for dy in 0..5 {
                for dx in 0..5 {
                    let p = white[((y + dy) % side) * side + (x + dx) % side];
                    for c in 0..3 {
                        s[c] += p[c] / 25.0;
                    }
                }
            }
            out[y * side + x] = s;
        }
    }
    out
}

fn to_image(values: &[[f32; 3]], side: usize) -> RgbImage {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in values.iter().flatten() {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    let span = (hi - lo).max(1e-6);
    RgbImage::from_fn(side as u32, side as u32, |x, y| {
        let p = values[y as usize * side + x as usize];
        Rgb(p.map(|v| (20.0 + 215.0 * (v - lo) / span).round() as u8))
    })
}

/// A "generated" image: smooth noise at half size, upsampled 2x by zero
/// insertion and then filtered with a fixed asymmetric 2x2 kernel (what a
/// stride-2 transposed convolution does); its spectrum has replicas of the
/// low frequencies at the Nyquist frequency.
fn upsampled_image(rng: &mut Rng) -> RgbImage {
    let half = N / 2;
    let low = smooth_noise(half, rng);
    let k = [[0.5f32, 0.3], [0.15, 0.05]];
    let mut out = vec![[0f32; 3]; N * N];
    for y in 0..N {
        for x in 0..N {
            let mut s = [0f32; 3];
            for (ky, row) in k.iter().enumerate() {
                for (kx, w) in row.iter().enumerate() {
                    // Zero-inserted input u[y'][x'] is nonzero only at even
                    // coordinates.
                    let (sy, sx) = ((y + N - ky) % N, (x + N - kx) % N);
                    if sy % 2 == 0 && sx % 2 == 0 {
                        let p = low[(sy / 2) * half + sx / 2];
                        for c in 0..3 {
                            s[c] += w * p[c];
                        }
                    }
                }
            }
            out[y * N + x] = s;
        }
    }
    to_image(&out, N)
}

/// Natural-image-like noise: random phases with a 1/f amplitude spectrum,
/// per channel, by inverse FFT.
fn pink_noise(rng: &mut Rng) -> RgbImage {
    let fft = Fft2F32::inverse(N, N);
    let mut planes = Vec::new();
    for _ in 0..3 {
        let mut buf: Vec<Complex<f32>> = (0..N * N)
            .map(|i| {
                let (ky, kx) = (i / N, i % N);
                let fy = ky.min(N - ky) as f32;
                let fx = kx.min(N - kx) as f32;
                let f = (fy * fy + fx * fx).sqrt();
                let amp = if f == 0.0 { 0.0 } else { 1.0 / f };
                let phase = rng.next() * std::f32::consts::TAU;
                Complex::from_polar(amp, phase)
            })
            .collect();
        fft.process(&mut buf);
        // Transposed, as this noise has always been laid out.
        planes.push(
            (0..N * N)
                .map(|i| buf[(i % N) * N + i / N].re)
                .collect::<Vec<f32>>(),
        );
    }
    let values: Vec<[f32; 3]> = (0..N * N)
        .map(|i| [planes[0][i], planes[1][i], planes[2][i]])
        .collect();
    to_image(&values, N)
}

/// The value at (row, col) of a centred spectrum minus the median of the
/// ring of pixels at Chebyshev distance 3 to 6 around it (wrapping).
fn peak_margin(spec: &[f32], n: usize, row: usize, col: usize) -> f32 {
    let mut ring = Vec::new();
    for dy in -6i64..=6 {
        for dx in -6i64..=6 {
            if dy.abs().max(dx.abs()) < 3 {
                continue;
            }
            let r = (row as i64 + dy).rem_euclid(n as i64) as usize;
            let c = (col as i64 + dx).rem_euclid(n as i64) as usize;
            ring.push(spec[r * n + c]);
        }
    }
    ring.sort_by(f32::total_cmp);
    spec[row * n + col] - ring[ring.len() / 2]
}

/// The Nyquist points of a centred spectrum: (row, col) of
/// (N/2, 0), (0, N/2) and (N/2, N/2) relative to the centre.
fn nyquist_points(n: usize) -> [(usize, usize); 3] {
    [(0, n / 2), (n / 2, 0), (0, 0)]
}

/// The peak criterion, in the log domain: 2.0 is a factor e^2 (7.4) in
/// magnitude over the ring's median. (Upsampled images reach about 5.5,
/// 1/f noise and real photos stay below 0.4.)
const MARGIN: f32 = 2.0;

fn mean_spectrum(images: &[RgbImage], opts: SpectrumOptions) -> Vec<f32> {
    let s = Spectrum2d::new(opts).unwrap();
    let mut acc = SpectrumAccumulator::new(s.side() * s.side());
    for img in images {
        acc.add(&s.image_spectrum(img));
    }
    acc.mean().unwrap()
}

#[test]
fn upsampling_artifacts_peak_at_nyquist() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let images: Vec<RgbImage> = (0..4).map(|_| upsampled_image(&mut rng)).collect();
    for gray in [false, true] {
        for highpass in [HighPass::Median3, HighPass::Median5] {
            let opts = SpectrumOptions {
                crop: N as u32,
                highpass,
                gray,
            };
            let spec = mean_spectrum(&images, opts);
            for (r, c) in nyquist_points(N) {
                let m = peak_margin(&spec, N, r, c);
                assert!(m > MARGIN, "{opts:?}: no peak at ({r}, {c}): margin {m:.2}");
            }
        }
    }
}

#[test]
fn natural_like_noise_has_no_nyquist_peaks() {
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    let images: Vec<RgbImage> = (0..4).map(|_| pink_noise(&mut rng)).collect();
    for gray in [false, true] {
        let opts = SpectrumOptions {
            crop: N as u32,
            highpass: HighPass::Median3,
            gray,
        };
        let spec = mean_spectrum(&images, opts);
        for (r, c) in nyquist_points(N) {
            let m = peak_margin(&spec, N, r, c);
            assert!(m < MARGIN, "{opts:?}: peak at ({r}, {c}): margin {m:.2}");
        }
    }
}

#[test]
fn real_photos_have_no_nyquist_peaks() {
    let shared = cnnspot_testdata::require_shared!();
    let dir = shared.join("data/dev/superres_espcn_x4_bsd100/0_real");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let images: Vec<RgbImage> = paths
        .iter()
        .take(4)
        .map(|p| cnnspot_image::load_rgb(p, 1 << 27).unwrap())
        .collect();
    assert!(!images.is_empty(), "{}: no images", dir.display());
    let spec = mean_spectrum(&images, SpectrumOptions::default());
    for (r, c) in nyquist_points(N) {
        let m = peak_margin(&spec, N, r, c);
        assert!(m < MARGIN, "peak at ({r}, {c}): margin {m:.2}");
    }
}

#[test]
fn median_filter_hand_computed() {
    // Red: an impulse in a flat field disappears (3x3 and 5x5); green: a
    // ramp; blue: hand-checked corner values with replicated edges.
    let red = [
        [10u8, 10, 10, 10],
        [10, 250, 10, 10],
        [10, 10, 10, 10],
        [10, 10, 10, 10],
    ];
    let blue = [
        [1u8, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10, 11, 12],
        [13, 14, 15, 200],
    ];
    let img = RgbImage::from_fn(4, 4, |x, y| {
        let (x, y) = (x as usize, y as usize);
        Rgb([red[y][x], (x * 20) as u8, blue[y][x]])
    });
    let m3 = median_filter(&img, 3);
    let m5 = median_filter(&img, 5);
    for (x, y, p) in m3.enumerate_pixels() {
        assert_eq!(p[0], 10, "3x3 red at ({x}, {y})");
        assert_eq!(p[1], (x * 20) as u8, "3x3 green ramp at ({x}, {y})");
        assert_eq!(m5.get_pixel(x, y)[0], 10, "5x5 red at ({x}, {y})");
    }
    // Blue, 3x3, replicated edges:
    // (0,0): {1,1,2, 1,1,2, 5,5,6} -> 2
    // (1,1): {1,2,3,5,6,7,9,10,11} -> 6
    // (3,3): {11,12,12, 15,200,200, 15,200,200} -> 15
    // (3,0): {3,4,4, 3,4,4, 7,8,8} -> 4
    assert_eq!(m3.get_pixel(0, 0)[2], 2);
    assert_eq!(m3.get_pixel(1, 1)[2], 6);
    assert_eq!(m3.get_pixel(3, 3)[2], 15);
    assert_eq!(m3.get_pixel(3, 0)[2], 4);
    // 5x5 at (0,0): rows 0,0,0,1,2 x cols 0,0,0,1,2:
    // {1,1,1,2,3}x3, {5,5,5,6,7}, {9,9,9,10,11} -> sorted 13th of 25 = 3
    assert_eq!(m5.get_pixel(0, 0)[2], 3);
}

fn save(img: &RgbImage, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

#[test]
fn dataset_run_writes_outputs_and_survives_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut rng = Rng(42);
    for i in 0..3 {
        save(
            &pink_noise(&mut rng),
            &root.join(format!("gan/0_real/{i}.png")),
        );
        save(
            &upsampled_image(&mut rng),
            &root.join(format!("gan/1_fake/{i}.png")),
        );
    }
    // A corrupt file and a small image (padded by the center crop).
    std::fs::write(root.join("gan/1_fake/broken.png"), b"not a png").unwrap();
    save(
        &RgbImage::from_pixel(40, 30, Rgb([9, 99, 199])),
        &root.join("gan/0_real/small.png"),
    );
    let dataset = Dataset::discover(&root).unwrap();
    let spectrum = Spectrum2d::new(SpectrumOptions::default()).unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let g = generator_spectra(&dataset.generators[0], &spectrum, 200, 1 << 27, &tick);
    assert_eq!(calls.into_inner(), 8);
    assert_eq!((g.n_real, g.n_fake), (4, 3));
    assert_eq!(g.failures.len(), 1);
    assert!(g.failures[0].path.ends_with("broken.png"));
    // The fakes' mean spectrum peaks at Nyquist, well above the reals'.
    let (real, fake) = (g.real.clone().unwrap(), g.fake.clone().unwrap());
    for (r, c) in nyquist_points(N) {
        assert!(peak_margin(&fake, N, r, c) > MARGIN);
        assert!(fake[r * N + c] > real[r * N + c] + MARGIN);
    }
    // --max-images bounds the images per class.
    let g1 = generator_spectra(&dataset.generators[0], &spectrum, 2, 1 << 27, &|| {});
    assert_eq!(g1.n_real + g1.n_fake + g1.failures.len(), 4);

    let out = dir.path().join("out");
    let written = write_outputs(&[g], &out).unwrap();
    for name in [
        "spectra/gan_real.png",
        "spectra/gan_fake.png",
        "spectra/gan_diff.png",
        "spectra/gan_real.npy",
        "spectra/gan_fake.npy",
        "spectra_grid.png",
    ] {
        assert!(written.contains(&out.join(name)), "{name} not written");
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let (shape, values) =
        cnnspot_testdata::read_npy_f32(&out.join("spectra/gan_fake.npy")).unwrap();
    assert_eq!(shape, vec![N, N]);
    assert_eq!(values, fake);
    let grid = image::open(out.join("spectra_grid.png")).unwrap();
    assert!(grid.width() >= 3 * N as u32 && grid.height() >= N as u32);
}

#[test]
fn bad_crop_is_an_error() {
    let opts = SpectrumOptions {
        crop: 0,
        ..Default::default()
    };
    assert!(Spectrum2d::new(opts).is_err());
}
