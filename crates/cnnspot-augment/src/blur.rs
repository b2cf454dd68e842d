//! Gaussian blur as CNNDetection applies it:
//!
//! ```python
//! gaussian_filter(img[:,:,c], output=img[:,:,c], sigma=sigma)   # c = 0, 1, 2
//! ```
//!
//! SciPy filters axis 0 (down the columns) then axis 1 (along the rows) and,
//! because `output` is the uint8 image itself, stores each pass in uint8 by a
//! C cast: the fractional part is dropped twice. A float blur rounded once
//! differs from this by up to 2 grey levels and is about 0.85 of a level
//! brighter on average, so the truncations are reproduced here, as is the
//! order of the floating-point operations (kernel weights, numpy's pairwise
//! sum, `correlate1d`'s symmetric accumulation). The result is bit-identical to
//! SciPy where numpy's `exp` is the C library's (no mismatch in 1.8 million
//! samples over 200 random sigmas). Recent numpy uses its own `exp` on CPUs
//! with AVX-512, which differs by an ulp for some arguments; SciPy's output
//! there differs from its output elsewhere in about 0.4% of a photo's
//! samples, by one grey level (see `tests/data/generate.py`).

use image::RgbImage;

/// SciPy's default `truncate`: the kernel reaches 4 standard deviations.
pub const TRUNCATE: f64 = 4.0;

/// SciPy skips an axis whose sigma is at most this (the output is the input).
const MIN_SIGMA: f64 = 1e-15;

/// Kernel radius as SciPy computes it: `int(truncate * sigma + 0.5)`.
pub fn kernel_radius(sigma: f64) -> usize {
    (TRUNCATE * sigma + 0.5) as usize
}

/// numpy's `np.add.reduce` on a contiguous float64 array: pairwise summation
/// with 8 accumulators per block of up to 128 elements.
fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, &v| acc + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// The normalised 1-D Gaussian of `scipy.ndimage._gaussian_kernel1d(sigma,
/// 0, radius)`, from `-radius` to `radius`.
pub fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = kernel_radius(sigma) as i64;
    let c = -0.5 / (sigma * sigma);
    let phi: Vec<f64> = (-radius..=radius)
        .map(|x| (c * (x * x) as f64).exp())
        .collect();
    let total = numpy_sum(&phi);
    phi.iter().map(|v| v / total).collect()
}

/// Index into a line of `n` samples extended by SciPy's mode `'reflect'`
/// (`d c b a | a b c d | d c b a`, the edge sample repeated), for any offset.
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let m = i.rem_euclid(2 * n);
    (if m < n { m } else { 2 * n - 1 - m }) as usize
}

/// `correlate1d` with a symmetric kernel over one line already extended by
/// `radius` samples on each side, cast back to uint8 as SciPy stores it.
/// `w` holds the kernel's centre and right half (`w[0]` the centre).
fn filter_line(ext: &[f64], w: &[f64], out: &mut [u8]) {
    let r = w.len() - 1;
    for (x, o) in out.iter_mut().enumerate() {
        let c = x + r;
        let mut acc = ext[c] * w[0];
        // SciPy accumulates from the outermost pair inwards.
        for j in (1..=r).rev() {
            acc += (ext[c - j] + ext[c + j]) * w[j];
        }
        // A C cast from double to uint8: truncation (values are in [0, 256)).
        *o = acc as u8;
    }
}

/// One channel plane (row-major, `width` x `height`) filtered down the
/// columns, then along the rows, each pass truncated to uint8.
fn blur_plane(plane: &mut [u8], width: usize, height: usize, w: &[f64]) {
    let r = w.len() - 1;
    let mut ext = vec![0.0f64; width.max(height) + 2 * r];
    let mut line = vec![0u8; width.max(height)];
    // Axis 0: columns.
    for x in 0..width {
        for (k, e) in ext[..height + 2 * r].iter_mut().enumerate() {
            *e = f64::from(plane[reflect(k as i64 - r as i64, height) * width + x]);
        }
        filter_line(&ext[..height + 2 * r], w, &mut line[..height]);
        for (y, &v) in line[..height].iter().enumerate() {
            plane[y * width + x] = v;
        }
    }
    // Axis 1: rows, reading the uint8 result of the first pass.
    for y in 0..height {
        let row = &mut plane[y * width..(y + 1) * width];
        for (k, e) in ext[..width + 2 * r].iter_mut().enumerate() {
            *e = f64::from(row[reflect(k as i64 - r as i64, width)]);
        }
        filter_line(&ext[..width + 2 * r], w, row);
    }
}

/// Gaussian blur of each channel with standard deviation `sigma` (pixels),
/// exactly as CNNDetection's `gaussian_blur` (SciPy's `gaussian_filter`,
/// truncate 4.0, mode `'reflect'`, uint8 output). A sigma of 0 (at most
/// 1e-15), negative or NaN leaves the image unchanged, as in SciPy.
pub fn gaussian_blur(img: &RgbImage, sigma: f64) -> RgbImage {
    // SciPy's test is `sigma > 1e-15`, so NaN is skipped too.
    let skip = sigma.is_nan() || sigma <= MIN_SIGMA;
    if skip || img.width() == 0 || img.height() == 0 {
        return img.clone();
    }
    let kernel = gaussian_kernel(sigma);
    let r = kernel.len() / 2;
    // Centre and right half; the kernel is exactly symmetric (exp of x^2).
    let w = &kernel[r..];
    let (width, height) = (img.width() as usize, img.height() as usize);
    let mut out = img.clone();
    let mut plane = vec![0u8; width * height];
    for c in 0..3 {
        for (p, px) in plane.iter_mut().zip(img.as_raw().chunks_exact(3)) {
            *p = px[c];
        }
        blur_plane(&mut plane, width, height, w);
        for (px, &p) in out.chunks_exact_mut(3).zip(plane.iter()) {
            px[c] = p;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_half_sample_symmetric() {
        let idx: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        // a b c d d c b a | a b c d | d c b a a b c d (period 2n)
        assert_eq!(idx, [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
        assert!((-3..4).all(|i| reflect(i, 1) == 0));
    }

    #[test]
    fn kernel_matches_scipy() {
        // scipy.ndimage._filters._gaussian_kernel1d(1.0, 0, 4)
        let k = gaussian_kernel(1.0);
        let expected = [
            0.000_133_830_624_614_741_75,
            0.004_431_861_620_031_265_5,
            0.053_991_127_420_704_41,
            0.241_971_445_656_600_73,
            0.398_943_469_356_097_76,
        ];
        assert_eq!(k.len(), 9);
        for (a, b) in k.iter().zip(expected.iter()) {
            assert!((a - b).abs() <= 1e-17, "{a} vs {b}");
        }
        assert_eq!(kernel_radius(3.0), 12);
        assert_eq!(kernel_radius(0.1), 0);
        assert_eq!(kernel_radius(0.125), 1);
    }

    #[test]
    fn zero_sigma_is_identity() {
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7]));
        assert_eq!(gaussian_blur(&img, 0.0), img);
        assert_eq!(gaussian_blur(&img, f64::NAN), img);
        // Radius 0: a one-tap kernel of weight 1.
        assert_eq!(gaussian_blur(&img, 0.1), img);
    }
}
