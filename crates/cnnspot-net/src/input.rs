//! What a network does to the normalised image before its stem.
//!
//! The transforms have no parameters and need no gradient, so every engine
//! runs them on the host values of an NCHW batch with [`apply`].
//!
//! A checkpoint says which transform it was trained with: NPR's residual
//! comes with the NPR architecture; any other choice is recorded by a
//! one-value marker tensor in the state dict ([`SPECTRUM_MARKER`]), so that
//! it travels through every weight format and conversion unchanged.

use cnnspot_linalg::{Complex, Fft2F64};

use crate::spec::Arch;
use crate::state::{StateDict, StateTensor};

/// What the network does to the normalised image before its stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputTransform {
    /// The image as it is.
    Rgb,
    /// NPR's residual `x - up(down(x))` (nearest, factor 2) times 2/3.
    NeighbouringPixelResidual,
    /// The centred log-magnitude 2-D DFT of each channel (Zhang et al.,
    /// "Detecting and Simulating Artifacts in GAN Fake Images", WIFS 2019),
    /// standardised per image and channel; see [`log_spectrum`].
    Spectrum,
}

/// Name of the marker tensor (shape `[1]`) whose presence in a state dict
/// means the network reads [`InputTransform::Spectrum`].
pub const SPECTRUM_MARKER: &str = "input_spectrum";

/// Added to every magnitude before the logarithm, as Zhang et al.'s code does.
pub const SPECTRUM_EPS: f32 = 1e-3;

impl InputTransform {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InputTransform::Rgb => "rgb",
            InputTransform::NeighbouringPixelResidual => "npr",
            InputTransform::Spectrum => "spectrum",
        }
    }

    /// Parses `rgb`, `npr` or `spectrum`.
    pub fn parse(s: &str) -> Option<InputTransform> {
        [
            InputTransform::Rgb,
            InputTransform::NeighbouringPixelResidual,
            InputTransform::Spectrum,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The transform an architecture reads when nothing else is recorded.
    pub fn default_for(arch: Arch) -> InputTransform {
        match arch {
            Arch::Npr => InputTransform::NeighbouringPixelResidual,
            _ => InputTransform::Rgb,
        }
    }

    /// The transform a state dict of `arch` was trained with.
    pub fn of_state(state: &StateDict, arch: Arch) -> InputTransform {
        InputTransform::of_names(state.keys().map(String::as_str), arch)
    }

    /// The transform a network of `arch` whose tensors have these names
    /// reads (for a checkpoint not yet converted to a [`StateDict`]).
    pub fn of_names<'a>(names: impl IntoIterator<Item = &'a str>, arch: Arch) -> InputTransform {
        if names.into_iter().any(is_input_marker) {
            InputTransform::Spectrum
        } else {
            InputTransform::default_for(arch)
        }
    }

    /// The marker tensor to store with a network reading this transform
    /// on `arch`, if one is needed.
    pub fn marker(self, arch: Arch) -> Option<(String, StateTensor)> {
        (self == InputTransform::Spectrum && InputTransform::default_for(arch) != self)
            .then(|| (SPECTRUM_MARKER.to_string(), (vec![1], vec![1.0])))
    }
}

/// Whether `name` is a marker tensor rather than a parameter.
pub fn is_input_marker(name: &str) -> bool {
    name == SPECTRUM_MARKER
}

/// Applies `transform` in place to an NCHW batch of planes `h` x `w`.
pub fn apply(transform: InputTransform, data: &mut [f32], h: usize, w: usize) {
    match transform {
        InputTransform::Rgb => {}
        InputTransform::NeighbouringPixelResidual => npr_residual(data, h, w),
        InputTransform::Spectrum => log_spectrum(data, h, w),
    }
}

/// NPR's input: `x - up(down(x))` with nearest resampling by 2, times 2/3,
/// on an NCHW batch. For even sizes this is NPR's own
/// `x - interpolate(interpolate(x, 0.5), 2)`; the reference code fails on
/// odd sizes, where here a last odd row or column is its own neighbour
/// (residual 0).
pub fn npr_residual(data: &mut [f32], h: usize, w: usize) {
    if h == 0 || w == 0 {
        return;
    }
    for plane in data.chunks_mut(h * w) {
        // Bottom-right first, so that each anchor (even row, even column)
        // is read before it is overwritten.
        for y in (0..h).rev() {
            let ay = y & !1;
            for x in (0..w).rev() {
                let ax = x & !1;
                let anchor = plane[ay * w + ax];
                let v = &mut plane[y * w + x];
                *v = (*v - anchor) * (2.0 / 3.0);
            }
        }
    }
}

/// Zhang et al.'s spectrum input, on every plane of an NCHW batch:
/// `ln(|DFT2(x)| + 1e-3)`, shifted so that the zero frequency sits at
/// `(h / 2, w / 2)` (numpy's `fftshift`), then standardised to mean 0 and
/// standard deviation 1 over the plane (a constant plane becomes 0). The
/// standardisation makes the input independent of the image's contrast and
/// of the pixel normalisation before it.
pub fn log_spectrum(data: &mut [f32], h: usize, w: usize) {
    if h == 0 || w == 0 {
        return;
    }
    let fft = Fft2F64::forward(h, w);
    let mut buf = vec![Complex::new(0.0f64, 0.0); h * w];
    let mut shifted = vec![0.0f64; h * w];
    for plane in data.chunks_mut(h * w) {
        for (b, &v) in buf.iter_mut().zip(plane.iter()) {
            *b = Complex::new(f64::from(v), 0.0);
        }
        // In f64: the logarithm magnifies the rounding of near-zero
        // frequencies, which f32 leaves at 1e-4 of the output's scale.
        fft.process(&mut buf);
        for y in 0..h {
            let sy = (y + h / 2) % h;
            for x in 0..w {
                let sx = (x + w / 2) % w;
                shifted[sy * w + sx] = (buf[y * w + x].norm() + f64::from(SPECTRUM_EPS)).ln();
            }
        }
        let n = (h * w) as f64;
        let mean = shifted.iter().sum::<f64>() / n;
        let var = shifted.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let std = var.sqrt();
        let scale = if std > 1e-9 { 1.0 / std } else { 0.0 };
        for (p, &s) in plane.iter_mut().zip(shifted.iter()) {
            *p = ((s - mean) * scale) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npr_residual_matches_nearest_down_then_up() {
        let (h, w) = (4, 6);
        let x: Vec<f32> = (0..h * w).map(|i| (i * i % 17) as f32).collect();
        let mut r = x.clone();
        npr_residual(&mut r, h, w);
        for y in 0..h {
            for c in 0..w {
                let want = (x[y * w + c] - x[(y / 2 * 2) * w + c / 2 * 2]) * (2.0 / 3.0);
                assert_eq!(r[y * w + c], want);
            }
        }
    }

    /// The textbook DFT, in f64, O(h^2 w^2): an independent reference.
    fn direct_log_spectrum(x: &[f32], h: usize, w: usize) -> Vec<f64> {
        let mut out = vec![0.0; h * w];
        for u in 0..h {
            for v in 0..w {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for y in 0..h {
                    for c in 0..w {
                        let a = -2.0
                            * std::f64::consts::PI
                            * ((u * y) as f64 / h as f64 + (v * c) as f64 / w as f64);
                        re += x[y * w + c] as f64 * a.cos();
                        im += x[y * w + c] as f64 * a.sin();
                    }
                }
                let (su, sv) = ((u + h / 2) % h, (v + w / 2) % w);
                out[su * w + sv] = ((re * re + im * im).sqrt() + 1e-3).ln();
            }
        }
        let n = out.len() as f64;
        let mean = out.iter().sum::<f64>() / n;
        let std = (out.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        out.iter().map(|v| (v - mean) / std).collect()
    }

    #[test]
    fn log_spectrum_matches_a_direct_dft_on_odd_and_even_sizes() {
        for (h, w) in [(8, 8), (6, 10), (7, 5)] {
            // Two planes, so a plane boundary bug would show.
            let x: Vec<f32> = (0..2 * h * w)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let mut got = x.clone();
            log_spectrum(&mut got, h, w);
            for p in 0..2 {
                let want = direct_log_spectrum(&x[p * h * w..(p + 1) * h * w], h, w);
                for (i, (g, e)) in got[p * h * w..(p + 1) * h * w]
                    .iter()
                    .zip(&want)
                    .enumerate()
                {
                    assert!(
                        (*g as f64 - e).abs() < 1e-4,
                        "{h}x{w} plane {p} [{i}]: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_pure_horizontal_wave_peaks_off_centre_and_a_constant_is_zero() {
        let (h, w) = (8, 8);
        // cos(2 pi x / 4): energy at horizontal frequency +-2, row 0.
        let mut x: Vec<f32> = (0..h * w)
            .map(|i| (2.0 * std::f32::consts::PI * (i % w) as f32 / 4.0).cos())
            .collect();
        log_spectrum(&mut x, h, w);
        let max = x.iter().cloned().fold(f32::MIN, f32::max);
        // After the shift, frequency (0, +-2) sits at row 4, columns 2 and 6.
        assert_eq!(x[4 * w + 2], max);
        assert_eq!(x[4 * w + 6], max);
        let mut c = vec![0.5f32; h * w];
        log_spectrum(&mut c, h, w);
        // One DC value, the rest ln(eps): standardised, never NaN.
        assert!(c.iter().all(|v| v.is_finite()));
        let mut z = vec![0.0f32; h * w];
        log_spectrum(&mut z, h, w);
        assert!(z.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_marker_says_spectrum_and_only_where_needed() {
        let mut state = StateDict::new();
        assert_eq!(
            InputTransform::of_state(&state, Arch::ResNet18),
            InputTransform::Rgb
        );
        assert_eq!(
            InputTransform::of_state(&state, Arch::Npr),
            InputTransform::NeighbouringPixelResidual
        );
        let (name, value) = InputTransform::Spectrum.marker(Arch::Npr).unwrap();
        state.insert(name, value);
        assert_eq!(
            InputTransform::of_state(&state, Arch::Npr),
            InputTransform::Spectrum
        );
        assert!(InputTransform::Rgb.marker(Arch::ResNet50).is_none());
        assert_eq!(
            InputTransform::parse("Spectrum"),
            Some(InputTransform::Spectrum)
        );
        assert_eq!(InputTransform::parse("fft"), None);
    }
}
