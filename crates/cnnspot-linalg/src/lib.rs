//! Dense linear algebra that cnnspot's generator interpreters (ncnn, ONNX),
//! its spectrum analyses and the spectrum input of the detector share.
//!
//! Every function here is concrete (no generics), so the code of `gemm` and
//! `rustfft` is generated once, in this crate, rather than once per crate
//! (and per test) that uses it: rustfft alone cost about 25 s of compile
//! time in each of five places.
//!
//! ```
//! use cnnspot_linalg::{matmul, Complex, Fft2F64};
//! let mut c = [0.0f32; 4];
//! matmul(&mut c, 2, 2, 2, &[1.0, 2.0, 3.0, 4.0], 2, &[1.0, 0.0, 0.0, 1.0], 2);
//! assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
//! let mut plane = vec![Complex::new(1.0, 0.0); 6];
//! Fft2F64::forward(2, 3).process(&mut plane);
//! assert_eq!(plane[0], Complex::new(6.0, 0.0));
//! ```

#![warn(missing_docs)]

use std::sync::Arc;

pub use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// `dst[m x n] = a[m x k] * b[k x n]` (overwrites dst). `a` rows are
/// `a_rs` apart, `b` rows `b_rs` apart, `dst` rows `n` apart; all rows dense.
///
/// # Panics
/// If a slice is too small for the sizes given (a bug in the caller).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst[..m * n].fill(0.0);
        return;
    }
    assert!(dst.len() >= m * n, "matmul: dst too small");
    assert!(a.len() >= (m - 1) * a_rs + k, "matmul: lhs too small");
    assert!(b.len() >= (k - 1) * b_rs + n, "matmul: rhs too small");
    // SAFETY: the assertions above guarantee that every element gemm reads
    // (lhs rows 0..m with stride a_rs and k columns, rhs rows 0..k with stride
    // b_rs and n columns) and writes (dst m x n, row stride n) lies inside the
    // given slices; dst does not alias a or b (it is a distinct &mut slice).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            1,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

macro_rules! fft2 {
    ($name:ident, $t:ty, $what:literal) => {
        #[doc = concat!("A planned 2-D DFT of row-major `h` x `w` planes in ", $what, ",")]
        /// forward (`exp(-2 pi i ...)`, unnormalised, as numpy's `fft2`) or
        /// inverse (unnormalised). Rows first, then columns; the result is
        /// row-major like the input.
        pub struct $name {
            h: usize,
            w: usize,
            rows: Arc<dyn Fft<$t>>,
            cols: Arc<dyn Fft<$t>>,
        }

        impl $name {
            /// The forward transform of `h` x `w` planes.
            pub fn forward(h: usize, w: usize) -> Self {
                let mut planner = FftPlanner::<$t>::new();
                Self {
                    h,
                    w,
                    rows: planner.plan_fft_forward(w),
                    cols: planner.plan_fft_forward(h),
                }
            }

            /// The inverse transform (no `1 / (h w)` scaling).
            pub fn inverse(h: usize, w: usize) -> Self {
                let mut planner = FftPlanner::<$t>::new();
                Self {
                    h,
                    w,
                    rows: planner.plan_fft_inverse(w),
                    cols: planner.plan_fft_inverse(h),
                }
            }

            /// Transforms `plane` (`h * w` values, row-major) in place.
            ///
            /// # Panics
            /// If `plane` does not hold `h * w` values.
            pub fn process(&self, plane: &mut [Complex<$t>]) {
                let (h, w) = (self.h, self.w);
                assert_eq!(plane.len(), h * w, "fft2: plane is not {h}x{w}");
                if h == 0 || w == 0 {
                    return;
                }
                let len = self
                    .rows
                    .get_inplace_scratch_len()
                    .max(self.cols.get_inplace_scratch_len());
                let zero = Complex::new(0.0, 0.0);
                let mut scratch = vec![zero; len];
                self.rows.process_with_scratch(plane, &mut scratch);
                let mut t = vec![zero; h * w];
                for y in 0..h {
                    for x in 0..w {
                        t[x * h + y] = plane[y * w + x];
                    }
                }
                self.cols.process_with_scratch(&mut t, &mut scratch);
                for x in 0..w {
                    for y in 0..h {
                        plane[y * w + x] = t[x * h + y];
                    }
                }
            }
        }
    };
}

fft2!(Fft2F32, f32, "`f32`");
fft2!(Fft2F64, f64, "`f64`");

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook DFT in f64: an independent reference.
    fn direct(x: &[Complex<f64>], h: usize, w: usize, sign: f64) -> Vec<Complex<f64>> {
        let mut out = vec![Complex::new(0.0, 0.0); h * w];
        for u in 0..h {
            for v in 0..w {
                let mut acc = Complex::new(0.0, 0.0);
                for y in 0..h {
                    for c in 0..w {
                        let a = sign
                            * 2.0
                            * std::f64::consts::PI
                            * ((u * y) as f64 / h as f64 + (v * c) as f64 / w as f64);
                        acc += x[y * w + c] * Complex::new(a.cos(), a.sin());
                    }
                }
                out[u * w + v] = acc;
            }
        }
        out
    }

    #[test]
    fn both_precisions_and_directions_match_a_direct_dft() {
        for (h, w) in [(4, 4), (3, 5), (8, 6), (1, 7)] {
            let x: Vec<Complex<f64>> = (0..h * w)
                .map(|i| Complex::new(((i * 37 % 23) as f64 - 11.0) / 7.0, (i % 3) as f64))
                .collect();
            for (sign, fwd) in [(-1.0, true), (1.0, false)] {
                let want = direct(&x, h, w, sign);
                let mut y64 = x.clone();
                let f64plan = if fwd {
                    Fft2F64::forward(h, w)
                } else {
                    Fft2F64::inverse(h, w)
                };
                f64plan.process(&mut y64);
                let mut y32: Vec<Complex<f32>> = x
                    .iter()
                    .map(|c| Complex::new(c.re as f32, c.im as f32))
                    .collect();
                let f32plan = if fwd {
                    Fft2F32::forward(h, w)
                } else {
                    Fft2F32::inverse(h, w)
                };
                f32plan.process(&mut y32);
                for i in 0..h * w {
                    assert!((y64[i] - want[i]).norm() < 1e-9, "{h}x{w} f64 [{i}]");
                    let d = Complex::new(y32[i].re as f64, y32[i].im as f64) - want[i];
                    assert!(d.norm() < 1e-4, "{h}x{w} f32 [{i}]");
                }
            }
        }
    }

    #[test]
    fn matmul_honours_row_strides() {
        // a: 2x3 inside rows of 4; b: 3x2 inside rows of 3.
        let a = [1.0, 2.0, 3.0, 99.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 99.0, 0.0, 1.0, 99.0, 1.0, 1.0];
        let mut c = [0.0f32; 4];
        matmul(&mut c, 2, 2, 3, &a, 4, &b, 3);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        let mut z = [7.0f32; 4];
        matmul(&mut z, 2, 2, 0, &[], 0, &[], 0);
        assert_eq!(z, [0.0; 4]);
    }
}
