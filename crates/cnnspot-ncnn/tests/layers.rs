//! Tiny hand-written graphs: each layer against a straightforward reference,
//! and malformed inputs against the error they must produce.
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use cnnspot_ncnn::{Mat, NcnnError, Net};

/// Builds a `.bin` stream.
#[derive(Default)]
struct Bin(Vec<u8>);

impl Bin {
    /// Weights stored as float32 (flag 0), as `ModelBin::load(n, 0)` reads them.
    fn tagged(mut self, v: &[f32]) -> Self {
        self.0.extend_from_slice(&0u32.to_le_bytes());
        self.raw_in(v);
        self
    }
    /// Weights stored as float16 (tag 0x01306B47), padded to 4 bytes.
    fn fp16(mut self, v: &[f32]) -> Self {
        self.0.extend_from_slice(&0x0130_6B47u32.to_le_bytes());
        for &x in v {
            self.0.extend_from_slice(&f32_to_f16(x).to_le_bytes());
        }
        if v.len() % 2 == 1 {
            self.0.extend_from_slice(&[0, 0]);
        }
        self
    }
    /// Raw float32 without a flag (biases, slopes, scales).
    fn raw(mut self, v: &[f32]) -> Self {
        self.raw_in(v);
        self
    }
    fn raw_in(&mut self, v: &[f32]) {
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Exact for the values used here (small dyadic fractions).
fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    if x == 0.0 {
        return sign;
    }
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let frac = ((b >> 13) & 0x3ff) as u16;
    sign | ((exp as u16) << 10) | frac
}

fn seq(n: usize, scale: f32, offset: f32) -> Vec<f32> {
    // Deterministic values in about [-1, 1], not all equal.
    (0..n)
        .map(|i| ((i * 7 + 3) % 11) as f32 * scale + offset)
        .collect()
}

fn net(param: &str, bin: Bin) -> Net {
    Net::from_bytes(param, &bin.0).unwrap_or_else(|e| panic!("load failed: {e}"))
}

fn mat(c: usize, h: usize, w: usize) -> Mat {
    Mat::new(c, h, w, seq(c * h * w, 0.17, -0.8)).expect("mat")
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

/// Direct convolution: weights `[cout][cin/groups][kh][kw]`, explicit padding.
#[allow(clippy::too_many_arguments)]
fn ref_conv(
    x: &Mat,
    cout: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    pad: (usize, usize, usize, usize), // l r t b
    groups: usize,
    w: &[f32],
    b: &[f32],
) -> Mat {
    let (kh, kw) = k;
    let (pl, pr, pt, pb) = pad;
    let outh = (x.h + pt + pb - (d.0 * (kh - 1) + 1)) / s.0 + 1;
    let outw = (x.w + pl + pr - (d.1 * (kw - 1) + 1)) / s.1 + 1;
    let cin_g = x.c / groups;
    let cout_g = cout / groups;
    let mut out = vec![0.0; cout * outh * outw];
    for oc in 0..cout {
        let g = oc / cout_g;
        for oy in 0..outh {
            for ox in 0..outw {
                let mut acc = b.get(oc).copied().unwrap_or(0.0);
                for ic in 0..cin_g {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * s.0 + ky * d.0) as isize - pt as isize;
                            let ix = (ox * s.1 + kx * d.1) as isize - pl as isize;
                            if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                continue;
                            }
                            let c = g * cin_g + ic;
                            acc += x.data[(c * x.h + iy as usize) * x.w + ix as usize]
                                * w[((oc * cin_g + ic) * kh + ky) * kw + kx];
                        }
                    }
                }
                out[(oc * outh + oy) * outw + ox] = acc;
            }
        }
    }
    Mat::new(cout, outh, outw, out).expect("ref")
}

#[test]
fn convolution_3x3_pad1_bias_leaky() {
    let (cin, cout) = (2, 3);
    let w = seq(cout * cin * 9, 0.1, -0.5);
    let b = vec![0.1, -0.2, 0.3];
    let p = format!(
        "7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data out 0={cout} 1=3 4=1 5=1 6={} 9=2 -23310=1,0.2\n",
        w.len()
    );
    let n = net(&p, Bin::default().tagged(&w).raw(&b));
    let x = mat(cin, 5, 4);
    let y = n.run(&x).expect("run");
    let mut r = ref_conv(&x, cout, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1, &w, &b);
    r.data.iter_mut().for_each(|v| {
        if *v < 0.0 {
            *v *= 0.2
        }
    });
    assert_eq!((y.c, y.h, y.w), (3, 5, 4));
    close(&y.data, &r.data, 1e-5);
}

#[test]
fn convolutions_on_the_engine_kernels_match_the_reference() {
    // 64 and 128 outputs take the detector engine's kernels (3x3 "same" at
    // stride 1 on a Winograd-sized image, explicit pad 1 at stride 2, 1x1);
    // 3 outputs stay on the general route. Leaky ReLU is applied after.
    let (cin, c1, c2, c3) = (5, 64, 128, 3);
    let w1 = seq(c1 * cin * 9, 0.08, -0.4);
    let b1 = seq(c1, 0.05, -0.25);
    let w2 = seq(c2 * c1 * 9, 0.01, -0.05);
    let w3 = seq(c3 * c2, 0.02, -0.1);
    let b3 = vec![0.2, -0.1, 0.0];
    let p = format!(
        "7767517\n4 4\nInput in 0 1 data\n\
         Convolution c1 1 1 data a 0={c1} 1=3 4=-233 5=1 6={} 9=2 -23310=1,0.1\n\
         Convolution c2 1 1 a b 0={c2} 1=3 3=2 4=1 6={}\n\
         Convolution c3 1 1 b out 0={c3} 1=1 5=1 6={}\n",
        w1.len(),
        w2.len(),
        w3.len()
    );
    let n = net(
        &p,
        Bin::default()
            .tagged(&w1)
            .raw(&b1)
            .tagged(&w2)
            .tagged(&w3)
            .raw(&b3),
    );
    let x = mat(cin, 19, 14);
    let y = n.run(&x).expect("run");
    let mut a = ref_conv(&x, c1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1, &w1, &b1);
    a.data.iter_mut().for_each(|v| {
        if *v < 0.0 {
            *v *= 0.1
        }
    });
    let b = ref_conv(&a, c2, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 1, &w2, &[]);
    let r = ref_conv(&b, c3, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, &w3, &b3);
    assert_eq!((y.c, y.h, y.w), (3, 10, 7));
    let scale = r.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 1.0, "a test of nothing: {scale}");
    close(&y.data, &r.data, 1e-5 * scale);
}

#[test]
fn convolution_stride_dilation_asymmetric_pad_fp16() {
    let (cin, cout) = (3, 2);
    let w = seq(cout * cin * 6, 0.125, -0.625); // 2x3 kernel, dyadic: exact in fp16
                                                // kernel_w=3 kernel_h=2, stride 2x1 (w,h), dilation w=2, pads l=1 r=0 t=2 b=1
    let p = format!(
        "7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data out 0={cout} 1=3 11=2 2=2 12=1 3=2 13=1 4=1 15=0 14=2 16=1 5=0 6={}\n",
        w.len()
    );
    let n = net(&p, Bin::default().fp16(&w));
    let x = mat(cin, 6, 9);
    let y = n.run(&x).expect("run");
    let r = ref_conv(&x, cout, (2, 3), (1, 2), (1, 2), (1, 0, 2, 1), 1, &w, &[]);
    assert_eq!((y.c, y.h, y.w), (r.c, r.h, r.w));
    close(&y.data, &r.data, 1e-5);
}

#[test]
fn convolution_same_upper_and_1x1_and_relu() {
    let w1 = seq(4 * 2 * 9, 0.1, -0.5);
    let w2 = seq(3 * 4, 0.2, -1.0);
    let b2 = vec![0.5, -0.5, 0.0];
    let p = format!(
        "7767517\n3 3\nInput in 0 1 data\nConvolution c1 1 1 data a 0=4 1=3 3=2 4=-233 6={}\nConvolution c2 1 1 a out 0=3 1=1 5=1 6={} 9=1\n",
        w1.len(),
        w2.len()
    );
    let n = net(&p, Bin::default().tagged(&w1).tagged(&w2).raw(&b2));
    let x = mat(2, 7, 6);
    let y = n.run(&x).expect("run");
    // SAME_UPPER, stride 2: out = ceil(7/2)=4 x 3; total pad h = 3+6-7=2 -> 1/1, w = 3+4-6=1 -> 0/1
    let a = ref_conv(&x, 4, (3, 3), (2, 2), (1, 1), (0, 1, 1, 1), 1, &w1, &[]);
    let mut r = ref_conv(&a, 3, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, &w2, &b2);
    r.data.iter_mut().for_each(|v| *v = v.max(0.0));
    assert_eq!((y.c, y.h, y.w), (3, 4, 3));
    close(&y.data, &r.data, 1e-5);
}

#[test]
fn convolution_depthwise_groups() {
    let w = seq(4 * 9, 0.1, -0.5); // 4 channels, group 4
    let b = vec![0.0, 1.0, 2.0, 3.0];
    let p = format!(
        "7767517\n2 2\nInput in 0 1 data\nConvolutionDepthWise dw 1 1 data out 0=4 1=3 4=1 5=1 6={} 7=4\n",
        w.len()
    );
    let n = net(&p, Bin::default().tagged(&w).raw(&b));
    let x = mat(4, 5, 5);
    let y = n.run(&x).expect("run");
    let r = ref_conv(&x, 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 4, &w, &b);
    close(&y.data, &r.data, 1e-5);
}

/// Transposed convolution by scattering, then cropping `pad` on every side.
fn ref_deconv(x: &Mat, cout: usize, k: usize, s: usize, pad: usize, w: &[f32], b: &[f32]) -> Mat {
    let fh = (x.h - 1) * s + k;
    let fw = (x.w - 1) * s + k;
    let mut full = vec![0.0; cout * fh * fw];
    for oc in 0..cout {
        for ic in 0..x.c {
            for iy in 0..x.h {
                for ix in 0..x.w {
                    let v = x.data[(ic * x.h + iy) * x.w + ix];
                    for ky in 0..k {
                        for kx in 0..k {
                            full[(oc * fh + iy * s + ky) * fw + ix * s + kx] +=
                                v * w[((oc * x.c + ic) * k + ky) * k + kx];
                        }
                    }
                }
            }
        }
    }
    let (oh, ow) = (fh - 2 * pad, fw - 2 * pad);
    let mut out = Vec::new();
    for oc in 0..cout {
        for y in 0..oh {
            for xx in 0..ow {
                out.push(full[(oc * fh + y + pad) * fw + xx + pad] + b[oc]);
            }
        }
    }
    Mat::new(cout, oh, ow, out).expect("ref")
}

#[test]
fn deconvolution_k4_s2_p3_and_k2_s2() {
    let w1 = seq(3 * 2 * 16, 0.1, -0.5);
    let b1 = vec![0.1, 0.2, 0.3];
    let w2 = seq(2 * 3 * 4, 0.1, -0.5);
    let b2 = vec![-0.1, 0.1];
    let p = format!(
        "7767517\n3 3\nInput in 0 1 data\nDeconvolution d1 1 1 data a 0=3 1=4 3=2 4=3 5=1 6={}\nDeconvolution d2 1 1 a out 0=2 1=2 3=2 5=1 6={}\n",
        w1.len(),
        w2.len()
    );
    let n = net(&p, Bin::default().tagged(&w1).raw(&b1).tagged(&w2).raw(&b2));
    let x = mat(2, 5, 6);
    let y = n.run(&x).expect("run");
    let a = ref_deconv(&x, 3, 4, 2, 3, &w1, &b1);
    assert_eq!((a.h, a.w), (6, 8));
    let r = ref_deconv(&a, 2, 2, 2, 0, &w2, &b2);
    assert_eq!((y.c, y.h, y.w), (2, 12, 16));
    close(&y.data, &r.data, 1e-5);
}

#[test]
fn interp_nearest_scale_and_bilinear_size() {
    let p = "7767517\n4 5\nInput in 0 1 data\nSplit sp 1 2 data a b\nInterp up 1 1 a n 0=1 1=2.0 2=3.0\nInterp bl 1 1 b l 0=2 3=3 4=5\n";
    let n = net(p, Bin::default());
    let x = Mat::new(1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]).expect("mat");
    let y = n.forward(&[("data", &x)], "n").expect("nearest");
    assert_eq!((y.h, y.w), (4, 6));
    assert_eq!(&y.data[..6], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert_eq!(&y.data[18..], &[3.0, 3.0, 3.0, 4.0, 4.0, 4.0]);
    let y = n.forward(&[("data", &x)], "l").expect("bilinear");
    assert_eq!((y.h, y.w), (3, 5));
    // Half-pixel: src = (d + 0.5) * in/out - 0.5, clamped at the borders.
    let coord = |d: usize, inn: usize, out: usize| -> (usize, f32) {
        let f = (d as f32 + 0.5) * inn as f32 / out as f32 - 0.5;
        if f <= 0.0 {
            (0, 0.0)
        } else if f >= (inn - 1) as f32 {
            (inn - 2, 1.0)
        } else {
            (f.floor() as usize, f - f.floor())
        }
    };
    for oy in 0..3 {
        for ox in 0..5 {
            let (sy, fy) = coord(oy, 2, 3);
            let (sx, fx) = coord(ox, 2, 5);
            let v = |yy: usize, xx: usize| x.data[yy * 2 + xx];
            let top = v(sy, sx) * (1.0 - fx) + v(sy, sx + 1) * fx;
            let bot = v(sy + 1, sx) * (1.0 - fx) + v(sy + 1, sx + 1) * fx;
            let e = top * (1.0 - fy) + bot * fy;
            assert!((y.data[oy * 5 + ox] - e).abs() < 1e-5, "({oy},{ox})");
        }
    }
}

#[test]
fn interp_bicubic_half_matches_keys_kernel() {
    let p = "7767517\n2 2\nInput in 0 1 data\nInterp down 1 1 data out 0=3 1=0.5 2=0.5\n";
    let n = net(p, Bin::default());
    let x = mat(2, 8, 10);
    let y = n.run(&x).expect("run");
    assert_eq!((y.c, y.h, y.w), (2, 4, 5));
    // Output d samples src 2d + 0.5: taps 2d-1..2d+2 with weights of the
    // A=-0.75 Keys kernel at distances 1.5, 0.5, 0.5, 1.5; indices clamped.
    let a = -0.75f32;
    let far = a * 1.5f32.powi(3) - 5.0 * a * 1.5f32.powi(2) + 8.0 * a * 1.5 - 4.0 * a;
    let near = (a + 2.0) * 0.5f32.powi(3) - (a + 3.0) * 0.25 + 1.0;
    let wts = [far, near, near, far];
    for c in 0..2 {
        for oy in 0..4 {
            for ox in 0..5 {
                let mut e = 0.0;
                for (ty, wy) in wts.iter().enumerate() {
                    let iy = (2 * oy as isize - 1 + ty as isize).clamp(0, 7) as usize;
                    for (tx, wx) in wts.iter().enumerate() {
                        let ix = (2 * ox as isize - 1 + tx as isize).clamp(0, 9) as usize;
                        e += wy * wx * x.data[(c * 8 + iy) * 10 + ix];
                    }
                }
                let got = y.data[(c * 4 + oy) * 5 + ox];
                assert!((got - e).abs() < 1e-5, "({c},{oy},{ox}): {got} vs {e}");
            }
        }
    }
}

#[test]
fn pixelshuffle_by_hand() {
    let p = "7767517\n2 2\nInput in 0 1 data\nPixelShuffle ps 1 1 data out 0=2\n";
    let n = net(p, Bin::default());
    // 4 channels of 1x2: channel k holds k*10 + x.
    let x = Mat::new(4, 1, 2, vec![0., 1., 10., 11., 20., 21., 30., 31.]).expect("mat");
    let y = n.run(&x).expect("run");
    assert_eq!((y.c, y.h, y.w), (1, 2, 4));
    // out[i][2x + j] = in[2i + j][x]
    assert_eq!(y.data, vec![0., 10., 1., 11., 20., 30., 21., 31.]);
}

#[test]
fn binaryop_broadcast_scalar_and_eltwise() {
    let p = "7767517\n9 13\nInput in 0 1 data\nSplit sp 1 5 data a b c d e\nPooling gap 1 1 a v 0=1 4=1\nBinaryOp mul 2 1 b v m 0=2\nBinaryOp rsub 1 1 c r 0=7 1=1 2=1.0\nEltwise sum 2 1 m r s 0=1 -23301=2,0.5,2.0\nEltwise prod 2 1 s d t 0=0\nEltwise mx 2 1 t e u 0=2\nBinaryOp sub 2 1 u u2 out 0=1\n";
    // `u2` is not produced: loading must fail naming it.
    let err = Net::from_bytes(p, &[]).expect_err("u2 unknown");
    assert!(err.to_string().contains("`u2`"), "{err}");

    let p = p.replace(
        "BinaryOp sub 2 1 u u2 out 0=1\n",
        "BinaryOp add 1 1 u out 0=0 1=1 2=0.25\n",
    );
    let n = net(&p, Bin::default());
    let x = mat(2, 2, 3);
    let y = n.run(&x).expect("run");
    let plane = 6;
    for c in 0..2 {
        let ch = &x.data[c * plane..(c + 1) * plane];
        let mean: f32 = ch.iter().sum::<f32>() / plane as f32;
        for i in 0..plane {
            let v = ch[i];
            let s = 0.5 * (v * mean) + 2.0 * (1.0 - v);
            let e = (s * v).max(v) + 0.25;
            assert!((y.data[c * plane + i] - e).abs() < 1e-5);
        }
    }
}

#[test]
fn se_block_pooling_innerproduct_scale_crop_concat() {
    // Real-CUGAN / waifu2x-cunet style squeeze-excitation and crops.
    let w1 = seq(2 * 3, 0.1, -0.3);
    let b1 = vec![0.1, -0.1];
    let w2 = seq(3 * 2, 0.2, -0.6);
    let b2 = vec![0.0, 0.5, -0.5];
    let p = format!(
        "7767517\n8 11\nInput in 0 1 data\nSplit sp 1 3 data a b c\nPooling gap 1 1 a g 0=1 4=1\nInnerProduct fc1 1 1 g h 0=2 1=1 2={} 9=1\nInnerProduct fc2 1 1 h s 0=3 1=1 2={} 9=4\nScale sc 2 1 b s scaled 0=-233\nCrop cr 1 1 c cropped -23309=2,1,1 -23310=2,-1,-2 -23311=2,-2,-1\nCrop cr2 2 1 scaled cropped out 0=1 1=1\n",
        w1.len(),
        w2.len()
    );
    let n = net(&p, Bin::default().tagged(&w1).raw(&b1).tagged(&w2).raw(&b2));
    let x = mat(3, 5, 6);
    let y = n.run(&x).expect("run");
    assert_eq!((y.c, y.h, y.w), (3, 3, 3));
    let plane = 30;
    let g: Vec<f32> = (0..3)
        .map(|c| x.data[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32)
        .collect();
    let h: Vec<f32> = (0..2)
        .map(|o| (0..3).map(|i| w1[o * 3 + i] * g[i]).sum::<f32>() + b1[o])
        .map(|v: f32| v.max(0.0))
        .collect();
    let s: Vec<f32> = (0..3)
        .map(|o| (0..2).map(|i| w2[o * 2 + i] * h[i]).sum::<f32>() + b2[o])
        .map(|v: f32| 1.0 / (1.0 + (-v).exp()))
        .collect();
    for c in 0..3 {
        for yy in 0..3 {
            for xx in 0..3 {
                let e = x.data[(c * 5 + yy + 1) * 6 + xx + 1] * s[c];
                assert!((y.data[(c * 3 + yy) * 3 + xx] - e).abs() < 1e-5);
            }
        }
    }
    // The slice crop alone: rows 1..4, cols 1..4.
    let z = n.forward(&[("data", &x)], "cropped").expect("crop");
    assert_eq!((z.c, z.h, z.w), (3, 3, 3));

    let p = "7767517\n3 4\nInput in 0 1 data\nSplit sp 1 2 data a b\nConcat cat 2 1 a b out 0=0\n";
    let y = net(p, Bin::default()).run(&x).expect("concat");
    assert_eq!((y.c, y.h, y.w), (6, 5, 6));
    assert_eq!(&y.data[..90], &x.data[..]);
    assert_eq!(&y.data[90..], &x.data[..]);
}

#[test]
fn prelu_scale_weights_pooling_relu_sigmoid_clip() {
    let slopes = vec![0.1, 0.5];
    let scale = vec![2.0, -1.0];
    let bias = vec![0.5, 0.25];
    let p = "7767517\n7 7\nInput in 0 1 data\nPReLU pr 1 1 data a 0=2\nScale sc 1 1 a b 0=2 1=1\nPooling mp 1 1 b c 0=0 1=2 2=2\nReLU lr 1 1 c d 0=0.5\nClip cl 1 1 d e 0=-0.3 1=0.6\nSigmoid sg 1 1 e out\n";
    let n = net(p, Bin::default().raw(&slopes).raw(&scale).raw(&bias));
    let x = mat(2, 4, 5);
    let y = n.run(&x).expect("run");
    // Pooling 2x2 s2 "full" mode on 4x5: ceil -> 2x3, the last column padded.
    assert_eq!((y.c, y.h, y.w), (2, 2, 3));
    let b = |c: usize, yy: usize, xx: usize| {
        let v = x.data[(c * 4 + yy) * 5 + xx];
        let v = if v < 0.0 { v * slopes[c] } else { v };
        v * scale[c] + bias[c]
    };
    for c in 0..2 {
        for oy in 0..2 {
            for ox in 0..3 {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..2 {
                    for kx in 0..2 {
                        let (yy, xx) = (oy * 2 + ky, ox * 2 + kx);
                        if xx < 5 {
                            m = m.max(b(c, yy, xx));
                        }
                    }
                }
                let d = if m < 0.0 { m * 0.5 } else { m };
                let e = 1.0 / (1.0 + (-d.clamp(-0.3, 0.6)).exp());
                assert!((y.data[(c * 2 + oy) * 3 + ox] - e).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn names_partial_forward_and_run_errors() {
    let p = "7767517\n3 3\nInput in 0 1 data\nSplit sp 1 2 data a b\n";
    let err = Net::from_bytes(p, &[]).expect_err("count");
    assert!(
        err.to_string().contains("declares 3 layers but has only 2"),
        "{err}"
    );
    let p = "7767517\n4 5\nInput in 0 1 data\nSplit sp 1 2 data a b\nReLU r1 1 1 a x\nSigmoid s1 1 1 b y\n";
    let n = net(p, Bin::default());
    assert_eq!(n.input_names(), vec!["data"]);
    assert_eq!(n.output_names(), vec!["x", "y"]);
    let x = mat(1, 2, 2);
    let err = n.run(&x).expect_err("two outputs");
    assert!(
        err.to_string().contains("one input and one output"),
        "{err}"
    );
    let y = n.forward(&[("data", &x)], "x").expect("x");
    assert_eq!(
        y.data,
        x.data.iter().map(|v| v.max(0.0)).collect::<Vec<_>>()
    );
    let err = n.forward(&[], "x").expect_err("no input");
    assert!(
        err.to_string().contains("input blob `data` was not given"),
        "{err}"
    );
    let err = n.forward(&[("data", &x)], "nope").expect_err("bad name");
    assert!(err.to_string().contains("no blob named `nope`"), "{err}");
    let err = n.forward(&[("a", &x)], "x").expect_err("not input");
    assert!(err.to_string().contains("not an Input"), "{err}");
    let empty = Mat::new(1, 0, 2, vec![]).expect("empty mat");
    let err = n.forward(&[("data", &empty)], "x").expect_err("empty");
    assert!(err.to_string().contains("is empty"), "{err}");
    let err = Mat::new(1, 2, 2, vec![0.0; 3]).expect_err("shape");
    assert!(matches!(err, NcnnError::MatShape { .. }));
}

fn load_err(param: &str, bin: &[u8]) -> String {
    Net::from_bytes(param, bin)
        .expect_err("should fail")
        .to_string()
}

#[test]
fn malformed_param() {
    assert!(load_err("", &[]).contains("empty"));
    assert!(load_err("7767518\n1 1\nInput in 0 1 data\n", &[]).contains("bad magic"));
    assert!(load_err("7767517\n1\nInput in 0 1 data\n", &[]).contains("missing blob count"));
    assert!(load_err("7767517\nx 1\n", &[]).contains("layer count `x`"));
    let e = load_err("7767517\n1 1\nInput in 0 1 data\nReLU r 1 1 data o\n", &[]);
    assert!(
        e.contains("line 4") && e.contains("more layer lines"),
        "{e}"
    );
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nFancyOp f 1 1 data o\n",
        &[],
    );
    assert!(
        e.contains("line 4") && e.contains("unsupported type `FancyOp`"),
        "{e}"
    );
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data o 0=abc\n",
        &[],
    );
    assert!(e.contains("bad number `abc`"), "{e}");
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data o 0\n",
        &[],
    );
    assert!(e.contains("not id=value"), "{e}");
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nCrop c 1 1 data o -23309=3,1,1\n",
        &[],
    );
    assert!(e.contains("declares 3 values but has 2"), "{e}");
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data o 40=1\n",
        &[],
    );
    assert!(e.contains("parameter id 40"), "{e}");
    let e = load_err("7767517\n2 2\nInput in 0 1 data\nReLU r 1 2 data o\n", &[]);
    assert!(e.contains("missing top blob 1"), "{e}");
    let e = load_err("7767517\n2 1\nInput in 0 1 data\nReLU r 1 1 data o\n", &[]);
    assert!(e.contains("more blobs than the 1 declared"), "{e}");
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data o 0=4 1=3 6=100\n",
        &[],
    );
    assert!(
        e.contains("layer `c`") && e.contains("not a multiple"),
        "{e}"
    );
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data o 0=0 1=3 6=9\n",
        &[],
    );
    assert!(e.contains("num_output"), "{e}");
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data o 0=1 1=100000 6=9\n",
        &[],
    );
    assert!(e.contains("out of range"), "{e}");
    let e = load_err(
        "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data o 0=1 1=1 6=1 9=42\n",
        &[],
    );
    assert!(e.contains("activation_type 42"), "{e}");
}

#[test]
fn malformed_bin() {
    let p = "7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data o 0=2 1=1 5=1 6=4\n";
    let good = Bin::default().tagged(&[1.0; 4]).raw(&[0.0; 2]).0;
    Net::from_bytes(p, &good).expect("good");
    let e = load_err(p, &good[..good.len() - 3]);
    assert!(
        e.contains("layer `conv`") && e.contains("truncated") && e.contains("bias"),
        "{e}"
    );
    let e = load_err(p, &good[..10]);
    assert!(e.contains("truncated") && e.contains("weight"), "{e}");
    let mut long = good.clone();
    long.extend_from_slice(&[0; 8]);
    let e = load_err(p, &long);
    assert!(e.contains("8 unused bytes"), "{e}");
    // An absurd declared size fails on the length check, before allocating.
    let p2 = "7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data o 0=1 1=1 6=2000000000\n";
    let e = load_err(p2, &good);
    assert!(
        e.contains("truncated") && e.contains("8000000000 bytes"),
        "{e}"
    );
    // int8 storage is refused by name.
    let mut int8 = 0x000D_4B38u32.to_le_bytes().to_vec();
    int8.extend_from_slice(&[0; 12]);
    let e = load_err(p, &int8);
    assert!(e.contains("int8"), "{e}");
    // Files: the error names the file.
    let dir = std::env::temp_dir().join(format!("cnnspot-ncnn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    std::fs::write(dir.join("m.param"), p).expect("write");
    std::fs::write(dir.join("m.bin"), &good[..10]).expect("write");
    let e = Net::from_files(&dir.join("m.param"), &dir.join("m.bin"))
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("m.bin") && e.contains("truncated"), "{e}");
    let e = Net::from_files(&dir.join("absent.param"), &dir.join("m.bin"))
        .expect_err("absent")
        .to_string();
    assert!(e.contains("absent.param"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forward_errors_and_memory_limit() {
    let w = vec![0.5; 2 * 3 * 9];
    let p = format!(
        "7767517\n3 3\nInput in 0 1 data\nConvolution conv 1 1 data a 0=2 1=3 4=1 6={}\nInterp up 1 1 a out 0=1 1=1000.0 2=1000.0\n",
        w.len()
    );
    let n = net(&p, Bin::default().tagged(&w));
    // Wrong channel count.
    let e = n.run(&mat(2, 4, 4)).expect_err("channels").to_string();
    assert!(
        e.contains("layer `conv`") && e.contains("3 input channels"),
        "{e}"
    );
    // 2 x 4000 x 4000 = 32M floats: over a 1M limit, refused before allocating.
    let n = n.with_max_elements(1 << 20);
    let e = n.run(&mat(3, 4, 4)).expect_err("too large");
    assert!(
        matches!(&e, NcnnError::TooLarge { layer, .. } if layer == "up"),
        "{e}"
    );
    // A kernel larger than the (unpadded) input.
    let p = format!(
        "7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data a 0=2 1=3 6={}\n",
        w.len()
    );
    let e = net(&p, Bin::default().tagged(&w))
        .run(&mat(3, 2, 5))
        .expect_err("small")
        .to_string();
    assert!(e.contains("smaller than the kernel"), "{e}");
}

/// Every single-token corruption of a small graph, and every truncation of
/// its weights, gives an error or a result, never a panic.
#[test]
fn corruptions_never_panic() {
    let w1 = seq(2 * 3 * 9, 0.1, -0.3);
    let w2 = seq(2 * 2 * 4, 0.1, -0.3);
    let param = format!(
        "7767517\n9 12\nInput in 0 1 data\nConvolution c1 1 1 data a 0=2 1=3 4=1 5=1 6={} 9=2 -23310=1,0.1\nSplit sp 1 3 a b c d\nPooling gap 1 1 b g 0=1 4=1\nBinaryOp mul 2 1 c g m 0=2\nDeconvolution dc 1 1 m e 0=2 1=2 3=2 5=0 6={}\nInterp up 1 1 d f 0=3 1=2.0 2=2.0\nCrop cr 2 1 f e h 0=0 1=0\nEltwise add 2 1 e h out 0=1\n",
        w1.len(),
        w2.len()
    );
    let bin = Bin::default().tagged(&w1).raw(&[0.1, 0.2]).fp16(&w2).0;
    let x = mat(3, 6, 5);
    let good = Net::from_bytes(&param, &bin).expect("good graph");
    let y = good.run(&x).expect("good run");
    assert_eq!((y.c, y.h, y.w), (2, 12, 10));

    let tokens: Vec<&str> = param.split_whitespace().collect();
    let replacements = [
        "0",
        "-1",
        "-233",
        "2147483647",
        "3.5",
        "x",
        "1,2",
        "-23310=5,1",
    ];
    for i in 0..tokens.len() {
        for r in replacements {
            let mut t = tokens.clone();
            t[i] = r;
            // Keep the line structure: rebuild from the original lines.
            let mut k = 0;
            let text: String = param
                .lines()
                .map(|l| {
                    let n = l.split_whitespace().count();
                    let s = t[k..k + n].join(" ");
                    k += n;
                    s + "\n"
                })
                .collect();
            if let Ok(net) = Net::from_bytes(&text, &bin) {
                let net = net.with_max_elements(1 << 22);
                let _ = net.run(&x);
                let _ = net.run(&mat(3, 1, 1));
            }
        }
    }
    for n in 0..bin.len() {
        assert!(
            Net::from_bytes(&param, &bin[..n]).is_err(),
            "truncated at {n}"
        );
    }
}
