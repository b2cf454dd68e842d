//! One convolution outside the detector, for the generator interpreters
//! (`cnnspot-ncnn`, `cnnspot-onnx`): the same kernels, Winograd included,
//! on an image in the channel-major layout those runtimes use.

use rayon::prelude::*;

use crate::conv::{Act, Conv, Pool};
use crate::kernel::Isa;

/// Output channels per vector of the f32 kernels.
const LANES: usize = 16;

/// A convolution with a bias and the same zero padding on every side.
#[derive(Debug)]
pub struct ConvLayer {
    conv: Conv,
    /// Pixels cut from each side of `conv`'s output: an unpadded 3x3
    /// convolution runs as the padded one (Winograd's form) on the same
    /// image, whose output is the unpadded one with a 1-pixel border.
    crop: usize,
    isa: Isa,
}

impl ConvLayer {
    /// Whether these kernels suit a convolution with `cout` outputs: they
    /// compute whole vectors of 16 output channels, so a layer with 8 (or 3)
    /// would waste half (or 80%) of its work, where a general matrix product
    /// does not.
    pub fn suits(cout: usize) -> bool {
        cout.div_ceil(LANES) * LANES * 4 <= cout * 5
    }

    /// `weight` is laid out `[cout][cin][kh][kw]` (PyTorch, ncnn, ONNX),
    /// `shape` is `[cout, cin, kh, kw]`; `bias` has `cout` values.
    ///
    /// # Panics
    /// If the lengths disagree with `shape` or `stride` is 0 (a bug in the
    /// caller, which checks the model file first).
    pub fn new(
        weight: &[f32],
        shape: [usize; 4],
        bias: Option<&[f32]>,
        stride: usize,
        pad: usize,
    ) -> ConvLayer {
        let cout = shape[0];
        assert_eq!(weight.len(), shape.iter().product::<usize>(), "weights");
        assert!(stride > 0, "stride");
        let zeros = vec![0f32; cout];
        let ones = vec![1f32; cout];
        let bias = bias.unwrap_or(&zeros);
        assert_eq!(bias.len(), cout, "bias");
        // A BatchNorm of scale 1/sqrt(1 + 0) = 1 and shift `bias` folds into
        // exactly the weights and bias given.
        let crop = usize::from(shape[2] == 3 && shape[3] == 3 && stride == 1 && pad == 0);
        let conv = Conv::folded(
            weight,
            &shape,
            &ones,
            bias,
            &zeros,
            &ones,
            0.0,
            stride,
            pad + crop,
        );
        ConvLayer {
            conv,
            crop,
            isa: Isa::detect(),
        }
    }

    /// The output size for an input of `h x w` pixels, or `None` when the
    /// padded input is smaller than the kernel.
    pub fn out_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (c, pad) = (&self.conv, self.conv.pad - self.crop);
        (h + 2 * pad >= c.kh && w + 2 * pad >= c.kw).then(|| {
            let (oh, ow) = c.out_size(h, w);
            (oh - 2 * self.crop, ow - 2 * self.crop)
        })
    }

    /// The convolution of one `[cin][h][w]` image: `([cout][oh][ow], oh, ow)`.
    ///
    /// # Panics
    /// If `x` is not `cin * h * w` values or the image is smaller than the
    /// kernel (see [`ConvLayer::out_size`]).
    pub fn forward_chw(&self, x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
        let (cin, cout) = (self.conv.cin, self.conv.cout);
        assert_eq!(x.len(), cin * h * w, "input size");
        let (oh, ow) = self.out_size(h, w).expect("image smaller than the kernel");
        // A pool per call, not per layer: a generator has hundreds of
        // layers, and buffers kept by each (2.2 GB for Real-ESRGAN x4plus)
        // would cost more than allocating them again.
        let pool = Pool::default();
        pool.begin((h * w).max(oh * ow));
        let mut nhwc = pool.take(h * w * cin);
        transpose(x, &mut nhwc, cin, h * w);
        let input = Act {
            n: 1,
            h,
            w,
            c: cin,
            data: nhwc,
        };
        let out = self.conv.forward(self.isa, &pool, &input, None, false);
        pool.give(input.data);
        let out = if self.crop > 0 {
            let cropped = crop_nhwc(&pool, &out, self.crop);
            pool.give(out.data);
            cropped
        } else {
            out.data
        };
        let mut chw = vec![0f32; cout * oh * ow];
        transpose(&out, &mut chw, oh * ow, cout);
        (chw, oh, ow)
    }
}

/// The pixels of one NHWC image `x` at least `crop` from every side.
fn crop_nhwc(pool: &Pool, x: &Act, crop: usize) -> Vec<f32> {
    let (h, w, c) = (x.h - 2 * crop, x.w - 2 * crop, x.c);
    let mut out = pool.take(h * w * c);
    out.par_chunks_mut(w * c).enumerate().for_each(|(y, row)| {
        let start = ((y + crop) * x.w + crop) * c;
        row.copy_from_slice(&x.data[start..start + w * c]);
    });
    out
}

/// `dst[j][i] = src[i][j]` for a `rows x cols` matrix `src`, in cache-sized
/// blocks, a band of `dst` rows per task.
fn transpose(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    const B: usize = 32;
    if rows == 0 {
        return;
    }
    dst.par_chunks_mut(B * rows)
        .enumerate()
        .for_each(|(band, out)| {
            let j0 = band * B;
            let jn = out.len() / rows;
            for i0 in (0..rows).step_by(B) {
                for i in i0..(i0 + B).min(rows) {
                    let row = &src[i * cols + j0..i * cols + j0 + jn];
                    for (jj, &v) in row.iter().enumerate() {
                        out[jj * rows + i] = v;
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook convolution, in f64.
    #[allow(clippy::too_many_arguments)]
    fn direct(
        x: &[f32],
        cin: usize,
        h: usize,
        w: usize,
        wt: &[f32],
        cout: usize,
        k: usize,
        bias: &[f32],
        stride: usize,
        pad: usize,
    ) -> Vec<f32> {
        let oh = (h + 2 * pad - k) / stride + 1;
        let ow = (w + 2 * pad - k) / stride + 1;
        let mut out = vec![0f32; cout * oh * ow];
        for o in 0..cout {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut s = bias[o] as f64;
                    for c in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (y * stride + ky) as isize - pad as isize;
                                let ix = (xo * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                s += x[(c * h + iy as usize) * w + ix as usize] as f64
                                    * wt[((o * cin + c) * k + ky) * k + kx] as f64;
                            }
                        }
                    }
                    out[(o * oh + y) * ow + xo] = s as f32;
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn a_layer_is_the_textbook_convolution_in_every_geometry() {
        // Winograd (3x3/1 pad 1 on a large enough image), direct 3x3 on a
        // small one, strided, unpadded, 1x1, odd channel counts (the first
        // layer of an RGB network, SRMD's 18 planes), outputs past one panel or
        // short of one (Winograd included).
        let cases = [
            (3, 64, 3, 1, 1, 20, 17),
            (16, 40, 3, 1, 1, 12, 12),
            (32, 32, 3, 1, 1, 9, 16),
            (18, 5, 3, 1, 1, 3, 4),
            (8, 70, 3, 2, 1, 13, 9),
            (5, 7, 3, 1, 0, 9, 11),
            (8, 32, 3, 1, 0, 14, 12),
            (6, 16, 3, 1, 0, 3, 5),
            (64, 130, 1, 1, 0, 6, 7),
            (4, 3, 5, 1, 2, 12, 10),
        ];
        for (i, &(cin, cout, k, stride, pad, h, w)) in cases.iter().enumerate() {
            let x = values(cin * h * w, i as u64);
            let wt = values(cout * cin * k * k, 100 + i as u64);
            let bias = values(cout, 200 + i as u64);
            let layer = ConvLayer::new(&wt, [cout, cin, k, k], Some(&bias), stride, pad);
            let (got, oh, ow) = layer.forward_chw(&x, h, w);
            let want = direct(&x, cin, h, w, &wt, cout, k, &bias, stride, pad);
            assert_eq!(got.len(), want.len(), "case {i}");
            assert_eq!((oh, ow), layer.out_size(h, w).unwrap(), "case {i}");
            let tol = 1e-5 * (cin * k * k) as f32;
            for (j, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!((g - e).abs() <= tol, "case {i} value {j}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn layers_that_would_waste_panel_columns_are_not_suited() {
        for cout in [13, 16, 32, 64, 128] {
            assert!(ConvLayer::suits(cout), "{cout}");
        }
        for cout in [3, 8, 12, 17] {
            assert!(!ConvLayer::suits(cout), "{cout}");
        }
    }

    #[test]
    fn an_image_smaller_than_the_kernel_has_no_output_size() {
        let layer = ConvLayer::new(&[0.0; 2 * 25], [2, 1, 5, 5], None, 1, 1);
        assert_eq!(layer.out_size(2, 9), None);
        assert_eq!(layer.out_size(3, 3), Some((1, 1)));
        // Unpadded 3x3: run padded, then cropped.
        let layer = ConvLayer::new(&[0.0; 2 * 9], [2, 1, 3, 3], None, 1, 0);
        assert_eq!(layer.out_size(2, 5), None);
        assert_eq!(layer.out_size(3, 4), Some((1, 2)));
    }
}
