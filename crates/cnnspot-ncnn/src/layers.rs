//! Layer definitions: parameter parsing, weight loading and forward passes.

use std::sync::Arc;

use rayon::prelude::*;

use cnnspot_engine::ConvLayer;

use crate::ops::{self, Activation, ConvGeom, DeconvGeom, Tensor};
use crate::param::{BinReader, LayerLine, ParamDict};
use crate::NcnnError;

/// Bound on kernel sizes, strides, dilations and paddings read from a `.param`.
const MAX_GEOM: i32 = 4096;

#[derive(Debug)]
pub(crate) enum Kind {
    Input,
    Split,
    Noop,
    Conv {
        cin: usize,
        cout: usize,
        groups: usize,
        kw: usize,
        kh: usize,
        dw: usize,
        dh: usize,
        sw: usize,
        sh: usize,
        /// left, right, top, bottom (may be -233 / -234).
        pads: [i32; 4],
        pad_value: f32,
        act: Activation,
        /// Empty when `fast` holds the weights.
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        /// The detector engine's kernels, for the geometries they cover.
        fast: Option<Box<ConvLayer>>,
    },
    Deconv {
        cin: usize,
        cout: usize,
        geom: DeconvGeom,
        pads: [i32; 4],
        out_pad: [usize; 2],
        out_size: [usize; 2],
        act: Activation,
        /// Weight transposed to `[cout*kh*kw][cin]`.
        wt: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    Crop {
        offsets: [i32; 3],
        sizes: [i32; 3],
        offsets2: [i32; 3],
        starts: Vec<i32>,
        ends: Vec<i32>,
        axes: Vec<i32>,
    },
    Eltwise {
        op: i32,
        coeffs: Vec<f32>,
    },
    BinaryOp {
        op: i32,
        scalar: Option<f32>,
    },
    Concat {
        axis: i32,
    },
    Interp {
        mode: i32,
        hscale: f32,
        wscale: f32,
        outh: usize,
        outw: usize,
        align: bool,
    },
    PixelShuffle {
        r: usize,
        mode: i32,
    },
    PRelu {
        slopes: Vec<f32>,
    },
    Pooling {
        max: bool,
        global: bool,
        kw: usize,
        kh: usize,
        sw: usize,
        sh: usize,
        pads: [usize; 4],
        pad_mode: i32,
        include_pad: bool,
    },
    InnerProduct {
        cout: usize,
        nin: usize,
        act: Activation,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    Scale {
        scale: Option<Vec<f32>>,
        bias: Option<Vec<f32>>,
    },
    Act(Activation),
    TanH,
    Dropout(f32),
}

#[derive(Debug)]
pub(crate) struct Layer {
    pub name: String,
    pub ty: String,
    pub bottoms: Vec<usize>,
    pub tops: Vec<usize>,
    pub kind: Kind,
}

fn geom(pd: &ParamDict, id: i32, default: i32, min: i32) -> Result<i32, String> {
    let v = pd.int(id, default)?;
    if v < min || v > MAX_GEOM {
        return Err(format!(
            "parameter {id} = {v} is out of range {min}..={MAX_GEOM}"
        ));
    }
    Ok(v)
}

fn pad_param(pd: &ParamDict, id: i32, default: i32) -> Result<i32, String> {
    let v = pd.int(id, default)?;
    if v == -233 || v == -234 || (0..=MAX_GEOM).contains(&v) {
        Ok(v)
    } else {
        Err(format!("padding parameter {id} = {v} is invalid"))
    }
}

fn positive(pd: &ParamDict, id: i32, what: &str) -> Result<usize, String> {
    let v = pd.int(id, 0)?;
    if v <= 0 {
        return Err(format!("{what} (parameter {id}) must be positive, got {v}"));
    }
    Ok(v as usize)
}

fn activation(pd: &ParamDict) -> Result<Activation, String> {
    Activation::from_params(pd.int(9, 0)?, &pd.floats(10)?)
}

impl Layer {
    pub(crate) fn is_input(&self) -> bool {
        matches!(self.kind, Kind::Input)
    }

    pub(crate) fn build(
        line: LayerLine,
        bottoms: Vec<usize>,
        tops: Vec<usize>,
        rd: &mut BinReader<'_>,
    ) -> Result<Layer, NcnnError> {
        let bad = |msg: String| NcnnError::BadLayer {
            line: line.line,
            name: line.name.clone(),
            ty: line.ty.clone(),
            msg,
        };
        let bin = |msg: String| NcnnError::Bin {
            layer: line.name.clone(),
            msg,
        };
        let pd = &line.params;
        let counts = |nb: std::ops::RangeInclusive<usize>, nt: usize| -> Result<(), NcnnError> {
            if !nb.contains(&bottoms.len()) || tops.len() != nt {
                return Err(NcnnError::BadLayer {
                    line: line.line,
                    name: line.name.clone(),
                    ty: line.ty.clone(),
                    msg: format!(
                        "expects {}..={} inputs and {nt} outputs, has {} and {}",
                        nb.start(),
                        nb.end(),
                        bottoms.len(),
                        tops.len()
                    ),
                });
            }
            Ok(())
        };
        let kind = match line.ty.as_str() {
            "Input" => {
                counts(0..=0, tops.len())?;
                Kind::Input
            }
            "Split" => {
                counts(1..=1, tops.len())?;
                Kind::Split
            }
            "Noop" => {
                counts(1..=1, 1)?;
                Kind::Noop
            }
            "Dropout" => {
                counts(1..=1, 1)?;
                Kind::Dropout(pd.float(0, 1.0).map_err(bad)?)
            }
            "Convolution" | "ConvolutionDepthWise" => {
                counts(1..=1, 1)?;
                let cout = positive(pd, 0, "num_output").map_err(bad)?;
                let kw = geom(pd, 1, 0, 1).map_err(bad)? as usize;
                let kh = geom(pd, 11, kw as i32, 1).map_err(bad)? as usize;
                let dw = geom(pd, 2, 1, 1).map_err(bad)? as usize;
                let dh = geom(pd, 12, dw as i32, 1).map_err(bad)? as usize;
                let sw = geom(pd, 3, 1, 1).map_err(bad)? as usize;
                let sh = geom(pd, 13, sw as i32, 1).map_err(bad)? as usize;
                let pl = pad_param(pd, 4, 0).map_err(bad)?;
                let pr = pad_param(pd, 15, pl).map_err(bad)?;
                let pt = pad_param(pd, 14, pl).map_err(bad)?;
                let pb = pad_param(pd, 16, pt).map_err(bad)?;
                let pad_value = pd.float(18, 0.0).map_err(bad)?;
                let bias_term = pd.int(5, 0).map_err(bad)? != 0;
                let wsize = positive(pd, 6, "weight_data_size").map_err(bad)?;
                let groups = if line.ty == "ConvolutionDepthWise" {
                    positive(pd, 7, "group").map_err(bad)?
                } else {
                    1
                };
                if pd.int(8, 0).map_err(bad)? != 0 {
                    return Err(bad(
                        "int8 convolution (8=int8_scale_term) is not supported".into()
                    ));
                }
                if pd.int(19, 0).map_err(bad)? != 0 {
                    return Err(bad("dynamic weights (19=1) are not supported".into()));
                }
                let act = activation(pd).map_err(bad)?;
                let maxk = kw * kh;
                if !cout.is_multiple_of(groups) {
                    return Err(bad(format!(
                        "num_output {cout} is not divisible by group {groups}"
                    )));
                }
                let per = maxk * cout;
                if !wsize.is_multiple_of(per) {
                    return Err(bad(format!(
                        "weight_data_size {wsize} is not a multiple of kernel {kw}x{kh} x num_output {cout}"
                    )));
                }
                let cin = wsize / per * groups;
                let mut weight = rd.load_tagged(wsize, "weight").map_err(bin)?;
                let bias = if bias_term {
                    Some(rd.load_raw(cout, "bias").map_err(bin)?)
                } else {
                    None
                };
                let fast = (groups == 1 && pad_value == 0.0 && ConvLayer::suits(cout))
                    .then(|| engine_geometry([kw, kh], [dw, dh], [sw, sh], [pl, pr, pt, pb]))
                    .flatten()
                    .map(|(stride, pad)| {
                        let shape = [cout, cin, kh, kw];
                        Box::new(ConvLayer::new(&weight, shape, bias.as_deref(), stride, pad))
                    });
                if fast.is_some() {
                    weight = Vec::new();
                }
                Kind::Conv {
                    cin,
                    cout,
                    groups,
                    kw,
                    kh,
                    dw,
                    dh,
                    sw,
                    sh,
                    pads: [pl, pr, pt, pb],
                    pad_value,
                    act,
                    weight,
                    bias,
                    fast,
                }
            }
            "Deconvolution" => {
                counts(1..=1, 1)?;
                let cout = positive(pd, 0, "num_output").map_err(bad)?;
                let kw = geom(pd, 1, 0, 1).map_err(bad)? as usize;
                let kh = geom(pd, 11, kw as i32, 1).map_err(bad)? as usize;
                let dw = geom(pd, 2, 1, 1).map_err(bad)? as usize;
                let dh = geom(pd, 12, dw as i32, 1).map_err(bad)? as usize;
                let sw = geom(pd, 3, 1, 1).map_err(bad)? as usize;
                let sh = geom(pd, 13, sw as i32, 1).map_err(bad)? as usize;
                let pl = pad_param(pd, 4, 0).map_err(bad)?;
                let pr = pad_param(pd, 15, pl).map_err(bad)?;
                let pt = pad_param(pd, 14, pl).map_err(bad)?;
                let pb = pad_param(pd, 16, pt).map_err(bad)?;
                let opr = geom(pd, 18, 0, 0).map_err(bad)? as usize;
                let opb = geom(pd, 19, opr as i32, 0).map_err(bad)? as usize;
                let ow = pd.int(20, 0).map_err(bad)?.max(0) as usize;
                let oh = pd.int(21, ow as i32).map_err(bad)?.max(0) as usize;
                let bias_term = pd.int(5, 0).map_err(bad)? != 0;
                let wsize = positive(pd, 6, "weight_data_size").map_err(bad)?;
                if pd.int(28, 0).map_err(bad)? != 0 {
                    return Err(bad("dynamic weights (28=1) are not supported".into()));
                }
                let act = activation(pd).map_err(bad)?;
                let maxk = kw * kh;
                if !wsize.is_multiple_of(maxk * cout) {
                    return Err(bad(format!(
                        "weight_data_size {wsize} is not a multiple of kernel {kw}x{kh} x num_output {cout}"
                    )));
                }
                let cin = wsize / (maxk * cout);
                let weight = rd.load_tagged(wsize, "weight").map_err(bin)?;
                let bias = if bias_term {
                    Some(rd.load_raw(cout, "bias").map_err(bin)?)
                } else {
                    None
                };
                // [cout][cin][k] -> [cout][k][cin]
                let mut wt = vec![0.0f32; wsize];
                for oc in 0..cout {
                    for ic in 0..cin {
                        for k in 0..maxk {
                            wt[(oc * maxk + k) * cin + ic] = weight[(oc * cin + ic) * maxk + k];
                        }
                    }
                }
                Kind::Deconv {
                    cin,
                    cout,
                    geom: DeconvGeom {
                        kw,
                        kh,
                        dw,
                        dh,
                        sw,
                        sh,
                    },
                    pads: [pl, pr, pt, pb],
                    out_pad: [opr, opb],
                    out_size: [ow, oh],
                    act,
                    wt,
                    bias,
                }
            }
            "Crop" => {
                counts(1..=2, 1)?;
                let g = |id: i32| pd.int(id, 0).map_err(bad);
                Kind::Crop {
                    offsets: [g(0)?, g(1)?, g(2)?],
                    sizes: [g(3)?, g(4)?, g(5)?],
                    offsets2: [g(6)?, g(7)?, g(8)?],
                    starts: pd.ints(9).map_err(bad)?,
                    ends: pd.ints(10).map_err(bad)?,
                    axes: pd.ints(11).map_err(bad)?,
                }
            }
            "Eltwise" => {
                counts(1..=usize::MAX, 1)?;
                let op = pd.int(0, 0).map_err(bad)?;
                if !(0..=2).contains(&op) {
                    return Err(bad(format!("unknown Eltwise op {op}")));
                }
                let coeffs = pd.floats(1).map_err(bad)?;
                if !coeffs.is_empty() && coeffs.len() != bottoms.len() {
                    return Err(bad(format!(
                        "{} coefficients for {} inputs",
                        coeffs.len(),
                        bottoms.len()
                    )));
                }
                Kind::Eltwise { op, coeffs }
            }
            "BinaryOp" => {
                let op = pd.int(0, 0).map_err(bad)?;
                if !(0..=11).contains(&op) {
                    return Err(bad(format!("unknown BinaryOp op_type {op}")));
                }
                let with_scalar = pd.int(1, 0).map_err(bad)? != 0;
                if with_scalar {
                    counts(1..=1, 1)?;
                } else {
                    counts(2..=2, 1)?;
                }
                let scalar = if with_scalar {
                    Some(pd.float(2, 0.0).map_err(bad)?)
                } else {
                    None
                };
                Kind::BinaryOp { op, scalar }
            }
            "Concat" => {
                counts(1..=usize::MAX, 1)?;
                Kind::Concat {
                    axis: pd.int(0, 0).map_err(bad)?,
                }
            }
            "Interp" => {
                counts(1..=1, 1)?;
                let mode = pd.int(0, 0).map_err(bad)?;
                if !(1..=3).contains(&mode) {
                    return Err(bad(format!("unsupported resize_type {mode}")));
                }
                let hscale = pd.float(1, 1.0).map_err(bad)?;
                let wscale = pd.float(2, 1.0).map_err(bad)?;
                let outh = pd.int(3, 0).map_err(bad)?;
                let outw = pd.int(4, 0).map_err(bad)?;
                if pd.int(5, 0).map_err(bad)? != 0 {
                    return Err(bad("dynamic_target_size is not supported".into()));
                }
                if !(hscale.is_finite() && wscale.is_finite() && hscale > 0.0 && wscale > 0.0)
                    || outh < 0
                    || outw < 0
                {
                    return Err(bad(format!(
                        "bad scales {hscale}x{wscale} or size {outh}x{outw}"
                    )));
                }
                Kind::Interp {
                    mode,
                    hscale,
                    wscale,
                    outh: outh as usize,
                    outw: outw as usize,
                    align: pd.int(6, 0).map_err(bad)? != 0,
                }
            }
            "PixelShuffle" => {
                counts(1..=1, 1)?;
                let r = geom(pd, 0, 1, 1).map_err(bad)? as usize;
                Kind::PixelShuffle {
                    r,
                    mode: pd.int(1, 0).map_err(bad)?,
                }
            }
            "PReLU" => {
                counts(1..=1, 1)?;
                let n = positive(pd, 0, "num_slope").map_err(bad)?;
                Kind::PRelu {
                    slopes: rd.load_raw(n, "slope").map_err(bin)?,
                }
            }
            "Pooling" => {
                counts(1..=1, 1)?;
                let ptype = pd.int(0, 0).map_err(bad)?;
                if !(0..=1).contains(&ptype) {
                    return Err(bad(format!("unknown pooling_type {ptype}")));
                }
                let global = pd.int(4, 0).map_err(bad)? != 0;
                if pd.int(7, 0).map_err(bad)? != 0 {
                    return Err(bad("adaptive pooling is not supported".into()));
                }
                let (kw, kh, sw, sh, pads) = if global {
                    (1, 1, 1, 1, [0; 4])
                } else {
                    let kw = geom(pd, 1, 0, 1).map_err(bad)? as usize;
                    let kh = geom(pd, 11, kw as i32, 1).map_err(bad)? as usize;
                    let sw = geom(pd, 2, 1, 1).map_err(bad)? as usize;
                    let sh = geom(pd, 12, sw as i32, 1).map_err(bad)? as usize;
                    let pl = geom(pd, 3, 0, 0).map_err(bad)?;
                    let pr = geom(pd, 14, pl, 0).map_err(bad)?;
                    let pt = geom(pd, 13, pl, 0).map_err(bad)?;
                    let pb = geom(pd, 15, pt, 0).map_err(bad)?;
                    (
                        kw,
                        kh,
                        sw,
                        sh,
                        [pl as usize, pr as usize, pt as usize, pb as usize],
                    )
                };
                let pad_mode = pd.int(5, 0).map_err(bad)?;
                if !(0..=3).contains(&pad_mode) {
                    return Err(bad(format!("unknown pad_mode {pad_mode}")));
                }
                Kind::Pooling {
                    max: ptype == 0,
                    global,
                    kw,
                    kh,
                    sw,
                    sh,
                    pads,
                    pad_mode,
                    include_pad: pd.int(6, 0).map_err(bad)? != 0,
                }
            }
            "InnerProduct" => {
                counts(1..=1, 1)?;
                let cout = positive(pd, 0, "num_output").map_err(bad)?;
                let bias_term = pd.int(1, 0).map_err(bad)? != 0;
                let wsize = positive(pd, 2, "weight_data_size").map_err(bad)?;
                if pd.int(8, 0).map_err(bad)? != 0 {
                    return Err(bad("int8 InnerProduct is not supported".into()));
                }
                if !wsize.is_multiple_of(cout) {
                    return Err(bad(format!(
                        "weight_data_size {wsize} is not a multiple of num_output {cout}"
                    )));
                }
                let act = activation(pd).map_err(bad)?;
                let weight = rd.load_tagged(wsize, "weight").map_err(bin)?;
                let bias = if bias_term {
                    Some(rd.load_raw(cout, "bias").map_err(bin)?)
                } else {
                    None
                };
                Kind::InnerProduct {
                    cout,
                    nin: wsize / cout,
                    act,
                    weight,
                    bias,
                }
            }
            "Scale" => {
                let size = pd.int(0, 0).map_err(bad)?;
                let bias_term = pd.int(1, 0).map_err(bad)? != 0;
                if size == -233 {
                    counts(2..=2, 1)?;
                    Kind::Scale {
                        scale: None,
                        bias: None,
                    }
                } else {
                    counts(1..=1, 1)?;
                    if size <= 0 {
                        return Err(bad(format!(
                            "scale_data_size {size} must be positive or -233"
                        )));
                    }
                    let scale = rd.load_raw(size as usize, "scale").map_err(bin)?;
                    let bias = if bias_term {
                        Some(rd.load_raw(size as usize, "bias").map_err(bin)?)
                    } else {
                        None
                    };
                    Kind::Scale {
                        scale: Some(scale),
                        bias,
                    }
                }
            }
            "ReLU" => {
                counts(1..=1, 1)?;
                let slope = pd.float(0, 0.0).map_err(bad)?;
                Kind::Act(if slope == 0.0 {
                    Activation::Relu
                } else {
                    Activation::Leaky(slope)
                })
            }
            "Sigmoid" => {
                counts(1..=1, 1)?;
                Kind::Act(Activation::Sigmoid)
            }
            "Clip" => {
                counts(1..=1, 1)?;
                Kind::Act(Activation::Clip(
                    pd.float(0, f32::MIN).map_err(bad)?,
                    pd.float(1, f32::MAX).map_err(bad)?,
                ))
            }
            "TanH" => {
                counts(1..=1, 1)?;
                Kind::TanH
            }
            _ => {
                return Err(NcnnError::UnknownLayer {
                    line: line.line,
                    name: line.name,
                    ty: line.ty,
                })
            }
        };
        Ok(Layer {
            name: line.name,
            ty: line.ty,
            bottoms,
            tops,
            kind,
        })
    }

    fn err(&self, msg: impl Into<String>) -> NcnnError {
        NcnnError::Forward {
            layer: self.name.clone(),
            ty: self.ty.clone(),
            msg: msg.into(),
        }
    }

    /// Checks an output shape against the limit before allocating: refuses
    /// more than `max` elements, or one axis longer than `max`: with another axis 0 the product is 0 whatever
    /// the rest, and per-axis tables (Interp's taps) are as long as an axis.
    fn check(&self, dims: &[usize], max: usize) -> Result<(), NcnnError> {
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        let n = dims.iter().copied().fold(n, usize::max);
        if n > max {
            return Err(NcnnError::TooLarge {
                layer: self.name.clone(),
                elements: n,
                limit: max,
            });
        }
        Ok(())
    }

    fn need3(&self, t: &Tensor) -> Result<(), NcnnError> {
        if t.dims != 3 {
            return Err(self.err(format!("expects a 3-D blob, got {}", t.shape_str())));
        }
        Ok(())
    }

    pub(crate) fn forward(
        &self,
        mut args: Vec<Arc<Tensor>>,
        max: usize,
    ) -> Result<Vec<Arc<Tensor>>, NcnnError> {
        let one = |t: Tensor| Ok(vec![Arc::new(t)]);
        match &self.kind {
            Kind::Input => Ok(Vec::new()),
            Kind::Split => Ok(vec![args[0].clone(); self.tops.len()]),
            Kind::Noop => Ok(vec![args[0].clone()]),
            Kind::Dropout(s) => {
                let mut t = take(args.remove(0));
                if *s != 1.0 {
                    t.data.iter_mut().for_each(|v| *v *= s);
                }
                one(t)
            }
            Kind::Act(a) => {
                let mut t = take(args.remove(0));
                let a = *a;
                t.data
                    .par_chunks_mut(1 << 14)
                    .for_each(|c| a.apply_slice(c));
                one(t)
            }
            Kind::TanH => {
                let mut t = take(args.remove(0));
                t.data.iter_mut().for_each(|v| *v = v.tanh());
                one(t)
            }
            Kind::Conv {
                cin,
                cout,
                groups,
                kw,
                kh,
                dw,
                dh,
                sw,
                sh,
                pads,
                pad_value,
                act,
                weight,
                bias,
                fast,
            } => {
                let x = &args[0];
                self.need3(x)?;
                if x.c != *cin {
                    return Err(self.err(format!(
                        "weights expect {cin} input channels, got blob {}",
                        x.shape_str()
                    )));
                }
                let kew = dw * (kw - 1) + 1;
                let keh = dh * (kh - 1) + 1;
                let [pl, pr, pt, pb] = *pads;
                let (pl, pr, pt, pb) = if pl == -233 || pl == -234 {
                    let wpad = (kew + (x.w - 1) / sw * sw).saturating_sub(x.w);
                    let hpad = (keh + (x.h - 1) / sh * sh).saturating_sub(x.h);
                    if pl == -233 {
                        (wpad / 2, wpad - wpad / 2, hpad / 2, hpad - hpad / 2)
                    } else {
                        (wpad - wpad / 2, wpad / 2, hpad - hpad / 2, hpad / 2)
                    }
                } else {
                    let p = |v: i32| v.max(0) as usize;
                    (p(pl), p(pr), p(pt), p(pb))
                };
                let wp = x.w + pl + pr;
                let hp = x.h + pt + pb;
                if wp < kew || hp < keh {
                    return Err(self.err(format!(
                        "input {} (padded {hp}x{wp}) is smaller than the kernel extent {keh}x{kew}",
                        x.shape_str()
                    )));
                }
                let outw = (wp - kew) / sw + 1;
                let outh = (hp - keh) / sh + 1;
                self.check(&[*cout, outh, outw], max)?;
                if let Some(fast) = fast {
                    let (mut out, oh, ow) = fast.forward_chw(&x.data, x.h, x.w);
                    debug_assert_eq!((oh, ow), (outh, outw));
                    act.apply_slice(&mut out);
                    return one(Tensor::new3(*cout, outh, outw, out));
                }
                let g = ConvGeom {
                    kw: *kw,
                    kh: *kh,
                    dw: *dw,
                    dh: *dh,
                    sw: *sw,
                    sh: *sh,
                    pl,
                    pt,
                    outw,
                    outh,
                    pad_value: *pad_value,
                };
                one(ops::conv2d(
                    x,
                    *cout,
                    *groups,
                    &g,
                    weight,
                    bias.as_deref(),
                    *act,
                ))
            }
            Kind::Deconv {
                cin,
                cout,
                geom,
                pads,
                out_pad,
                out_size,
                act,
                wt,
                bias,
            } => {
                let x = &args[0];
                self.need3(x)?;
                if x.c != *cin {
                    return Err(self.err(format!(
                        "weights expect {cin} input channels, got blob {}",
                        x.shape_str()
                    )));
                }
                let kew = geom.dw * (geom.kw - 1) + 1;
                let keh = geom.dh * (geom.kh - 1) + 1;
                let fullw = (x.w.max(1) - 1) * geom.sw + kew + out_pad[0];
                let fullh = (x.h.max(1) - 1) * geom.sh + keh + out_pad[1];
                self.check(&[*cout, fullh, fullw], max)?;
                self.check(&[*cout, geom.kw * geom.kh, x.h, x.w], max)?;
                let [pl, pr, pt, pb] = *pads;
                let (cl, cr, ct, cb) = if pl > 0 || pr > 0 || pt > 0 || pb > 0 {
                    let p = |v: i32| v.max(0) as usize;
                    (p(pl), p(pr), p(pt), p(pb))
                } else if out_size[0] > 0 && out_size[1] > 0 {
                    let wcut = fullw.saturating_sub(out_size[0]);
                    let hcut = fullh.saturating_sub(out_size[1]);
                    if pl == -234 || pr == -234 || pt == -234 || pb == -234 {
                        (wcut - wcut / 2, wcut / 2, hcut - hcut / 2, hcut / 2)
                    } else {
                        (wcut / 2, wcut - wcut / 2, hcut / 2, hcut - hcut / 2)
                    }
                } else {
                    (0, 0, 0, 0)
                };
                if cl + cr >= fullw || ct + cb >= fullh {
                    return Err(self.err(format!(
                        "padding crops away the whole {fullh}x{fullw} output"
                    )));
                }
                let full = ops::deconv2d_full(x, *cout, geom, wt, bias.as_deref(), fullh, fullw);
                let outw = fullw - cl - cr;
                let outh = fullh - ct - cb;
                let mut out = vec![0.0f32; cout * outh * outw];
                out.par_chunks_mut(outh * outw)
                    .enumerate()
                    .for_each(|(c, o)| {
                        let src = &full[c * fullh * fullw..(c + 1) * fullh * fullw];
                        for y in 0..outh {
                            let s = &src[(y + ct) * fullw + cl..(y + ct) * fullw + cl + outw];
                            let d = &mut o[y * outw..(y + 1) * outw];
                            d.copy_from_slice(s);
                            act.apply_slice(d);
                        }
                    });
                one(Tensor::new3(*cout, outh, outw, out))
            }
            Kind::Crop { .. } => self.crop(&args).map(|t| vec![Arc::new(t)]),
            Kind::Eltwise { op, coeffs } => {
                let first = &args[0];
                for a in &args[1..] {
                    if a.dims != first.dims || a.c != first.c || a.h != first.h || a.w != first.w {
                        return Err(self.err(format!(
                            "input shapes differ: {} vs {}",
                            first.shape_str(),
                            a.shape_str()
                        )));
                    }
                }
                let coef = |i: usize| coeffs.get(i).copied().unwrap_or(1.0);
                let mut out: Tensor = (**first).clone();
                if *op == 1 && coef(0) != 1.0 {
                    let c0 = coef(0);
                    out.data.iter_mut().for_each(|v| *v *= c0);
                }
                for (i, a) in args.iter().enumerate().skip(1) {
                    let ci = coef(i);
                    for (o, &v) in out.data.iter_mut().zip(&a.data) {
                        *o = match op {
                            0 => *o * v,
                            1 => *o + v * ci,
                            _ => o.max(v),
                        };
                    }
                }
                one(out)
            }
            Kind::BinaryOp { op, scalar } => {
                if let Some(s) = scalar {
                    let mut t = take(args.remove(0));
                    let op = *op;
                    let s = *s;
                    t.data
                        .par_chunks_mut(1 << 14)
                        .for_each(|c| c.iter_mut().for_each(|v| *v = binop(op, *v, s)));
                    one(t)
                } else {
                    self.binary(&args[0], &args[1], max)
                        .map(|t| vec![Arc::new(t)])
                }
            }
            Kind::Concat { axis } => self.concat(&args, *axis, max).map(|t| vec![Arc::new(t)]),
            Kind::Interp {
                mode,
                hscale,
                wscale,
                outh,
                outw,
                align,
            } => {
                let x = &args[0];
                self.need3(x)?;
                let (oh, ow) = if *outh == 0 || *outw == 0 {
                    (
                        (x.h as f32 * hscale) as usize,
                        (x.w as f32 * wscale) as usize,
                    )
                } else {
                    (*outh, *outw)
                };
                if oh == 0 || ow == 0 || x.h == 0 || x.w == 0 {
                    return Err(self.err(format!("empty resize {} -> {oh}x{ow}", x.shape_str())));
                }
                self.check(&[x.c, oh, ow], max)?;
                let hs = if *outh != 0 && *outw != 0 {
                    x.h as f32 / oh as f32
                } else {
                    1.0 / hscale
                };
                let ws = if *outh != 0 && *outw != 0 {
                    x.w as f32 / ow as f32
                } else {
                    1.0 / wscale
                };
                one(ops::interp(x, *mode, oh, ow, hs, ws, *align))
            }
            Kind::PixelShuffle { r, mode } => {
                let x = &args[0];
                self.need3(x)?;
                let r = *r;
                if !x.c.is_multiple_of(r * r) {
                    return Err(self.err(format!("{} channels are not divisible by {r}x{r}", x.c)));
                }
                let oc = x.c / (r * r);
                let (oh, ow) = (x.h * r, x.w * r);
                self.check(&[oc, oh, ow], max)?;
                let mut out = vec![0.0f32; oc * oh * ow];
                for c in 0..oc {
                    for i in 0..r {
                        for j in 0..r {
                            let ic = if *mode == 0 {
                                c * r * r + i * r + j
                            } else {
                                (i * r + j) * oc + c
                            };
                            let src = &x.data[ic * x.h * x.w..(ic + 1) * x.h * x.w];
                            for y in 0..x.h {
                                let drow = &mut out[(c * oh + y * r + i) * ow..][..ow];
                                for (xx, &v) in src[y * x.w..(y + 1) * x.w].iter().enumerate() {
                                    drow[xx * r + j] = v;
                                }
                            }
                        }
                    }
                }
                one(Tensor::new3(oc, oh, ow, out))
            }
            Kind::PRelu { slopes } => {
                let mut t = take(args.remove(0));
                let (groups, plane) = match t.dims {
                    1 => (t.w, 1),
                    2 => (t.h, t.w),
                    _ => (t.c, t.plane()),
                };
                if slopes.len() != 1 && slopes.len() != groups {
                    return Err(self.err(format!(
                        "{} slopes for blob {}",
                        slopes.len(),
                        t.shape_str()
                    )));
                }
                t.data
                    .par_chunks_mut(plane.max(1))
                    .enumerate()
                    .for_each(|(i, ch)| {
                        let s = if slopes.len() == 1 {
                            slopes[0]
                        } else {
                            slopes[i]
                        };
                        ch.iter_mut().for_each(|v| {
                            if *v < 0.0 {
                                *v *= s
                            }
                        });
                    });
                one(t)
            }
            Kind::Pooling { .. } => self.pooling(&args[0], max).map(|t| vec![Arc::new(t)]),
            Kind::InnerProduct {
                cout,
                nin,
                act,
                weight,
                bias,
            } => {
                let x = &args[0];
                if x.data.len() != *nin {
                    return Err(self.err(format!(
                        "weights expect {nin} inputs, got blob {}",
                        x.shape_str()
                    )));
                }
                let out: Vec<f32> = (0..*cout)
                    .into_par_iter()
                    .map(|o| {
                        let w = &weight[o * nin..(o + 1) * nin];
                        let s: f32 = w.iter().zip(&x.data).map(|(a, b)| a * b).sum();
                        act.apply(s + bias.as_ref().map_or(0.0, |b| b[o]))
                    })
                    .collect();
                one(Tensor::new1(*cout, out))
            }
            Kind::Scale { scale, bias } => {
                let second = args.get(1).cloned();
                let (scale, bias): (&[f32], Option<&[f32]>) = match (scale, &second) {
                    (Some(s), _) => (s, bias.as_deref()),
                    (None, Some(t)) => (&t.data, None),
                    (None, None) => return Err(self.err("missing the scale blob")),
                };
                let mut t = take(args.remove(0));
                let (groups, plane) = match t.dims {
                    1 => (t.w, 1),
                    2 => (t.h, t.w),
                    _ => (t.c, t.plane()),
                };
                if scale.len() != groups {
                    return Err(self.err(format!(
                        "{} scales for blob {}",
                        scale.len(),
                        t.shape_str()
                    )));
                }
                t.data
                    .par_chunks_mut(plane.max(1))
                    .enumerate()
                    .for_each(|(i, ch)| {
                        let s = scale[i];
                        let b = bias.map_or(0.0, |b| b[i]);
                        ch.iter_mut().for_each(|v| *v = *v * s + b);
                    });
                one(t)
            }
        }
    }

    fn crop(&self, args: &[Arc<Tensor>]) -> Result<Tensor, NcnnError> {
        let Kind::Crop {
            offsets,
            sizes,
            offsets2,
            starts,
            ends,
            axes,
        } = &self.kind
        else {
            return Err(self.err("internal: not a crop"));
        };
        let x = &args[0];
        // Work on (c, h, w) for every dims.
        let dims = x.dims as i32;
        let full = [x.c, x.h, x.w];
        let mut off = [0usize; 3];
        let mut len = full;
        // Map a blob axis (0..dims) to our (c,h,w) index.
        let map_axis = |a: i32| -> Option<usize> {
            let a = if a < 0 { a + dims } else { a };
            if a < 0 || a >= dims {
                return None;
            }
            Some((3 - dims + a) as usize)
        };
        if args.len() == 2 {
            let r = &args[1];
            if offsets[0] == -233 {
                return Err(self.err("dynamic crop offsets (-233) are not supported"));
            }
            off = [
                offsets[2].max(0) as usize,
                offsets[1].max(0) as usize,
                offsets[0].max(0) as usize,
            ];
            len = [
                if r.dims == 3 && x.dims == 3 { r.c } else { x.c },
                if r.dims >= 2 { r.h } else { x.h },
                r.w,
            ];
            if x.dims == 1 {
                len = [1, 1, r.w];
            }
        } else if !starts.is_empty() {
            let axes: Vec<i32> = if axes.is_empty() {
                (0..starts.len() as i32).collect()
            } else {
                axes.clone()
            };
            if axes.len() != starts.len() || ends.len() != starts.len() {
                return Err(self.err("starts, ends and axes differ in length"));
            }
            for ((&a, &s), &e) in axes.iter().zip(starts).zip(ends) {
                let i = map_axis(a).ok_or_else(|| {
                    self.err(format!("axis {a} out of range for {}", x.shape_str()))
                })?;
                let size = full[i] as i64;
                let s = if s < 0 { size + s as i64 } else { s as i64 }.clamp(0, size);
                let e = if e == i32::MAX {
                    size
                } else if e > 0 {
                    (e as i64).min(size)
                } else {
                    size + e as i64
                };
                if e <= s {
                    return Err(self.err(format!("crop on axis {a} of {} is empty", x.shape_str())));
                }
                off[i] = s as usize;
                len[i] = (e - s) as usize;
            }
        } else {
            // Explicit offsets (w, h, c) and sizes.
            let order = [2usize, 1, 0]; // params are w, h, c
            for (p, &i) in order.iter().enumerate() {
                let o = offsets[p].max(0) as usize;
                let o2 = offsets2[p].max(0) as usize;
                let s = sizes[p];
                let l = if s == -233 {
                    full[i].saturating_sub(o)
                } else if s <= 0 {
                    full[i].saturating_sub(o + o2)
                } else {
                    s as usize
                };
                off[i] = o;
                len[i] = l;
            }
        }
        for i in 0..3 {
            if len[i] == 0 || off[i] + len[i] > full[i] {
                return Err(self.err(format!(
                    "crop offset {:?} size {:?} does not fit blob {}",
                    off,
                    len,
                    x.shape_str()
                )));
            }
        }
        let mut out = Vec::with_capacity(len[0] * len[1] * len[2]);
        for c in off[0]..off[0] + len[0] {
            for y in off[1]..off[1] + len[1] {
                let b = (c * x.h + y) * x.w + off[2];
                out.extend_from_slice(&x.data[b..b + len[2]]);
            }
        }
        Ok(Tensor {
            dims: x.dims,
            c: len[0],
            h: len[1],
            w: len[2],
            data: out,
        })
    }

    fn binary(&self, a: &Tensor, b: &Tensor, max: usize) -> Result<Tensor, NcnnError> {
        let op = match self.kind {
            Kind::BinaryOp { op, .. } => op,
            _ => 0,
        };
        let outdims = a.dims.max(b.dims);
        // ncnn expands the lower-rank operand on its inner axes.
        let expand = |t: &Tensor, o: &Tensor| -> [usize; 3] {
            match (t.dims, outdims) {
                (d, od) if d == od => [t.c, t.h, t.w],
                (1, 2) => {
                    if t.w == o.h {
                        [1, t.w, 1]
                    } else {
                        [1, 1, t.w]
                    }
                }
                (1, _) => {
                    if t.w == o.c {
                        [t.w, 1, 1]
                    } else {
                        [1, 1, t.w]
                    }
                }
                (2, _) => [t.h, t.w, 1],
                _ => [t.c, t.h, t.w],
            }
        };
        let sa = expand(a, b);
        let sb = expand(b, a);
        let mut so = [0usize; 3];
        for i in 0..3 {
            if sa[i] == sb[i] || sb[i] == 1 {
                so[i] = sa[i];
            } else if sa[i] == 1 {
                so[i] = sb[i];
            } else {
                return Err(self.err(format!(
                    "cannot broadcast {} with {}",
                    a.shape_str(),
                    b.shape_str()
                )));
            }
        }
        self.check(&so, max)?;
        let plane = so[1] * so[2];
        let mut out = vec![0.0f32; so[0] * plane];
        let idx = |s: &[usize; 3], c: usize, y: usize, x: usize| -> usize {
            let c = if s[0] == 1 { 0 } else { c };
            let y = if s[1] == 1 { 0 } else { y };
            let x = if s[2] == 1 { 0 } else { x };
            (c * s[1] + y) * s[2] + x
        };
        out.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(c, o)| {
                if sa[1..] == so[1..] && sb[1..] == so[1..] {
                    let pa = &a.data[idx(&sa, c, 0, 0)..][..plane];
                    let pb = &b.data[idx(&sb, c, 0, 0)..][..plane];
                    for ((ov, &x), &y) in o.iter_mut().zip(pa).zip(pb) {
                        *ov = binop(op, x, y);
                    }
                } else if sa[1..] == so[1..] && sb[1] == 1 && sb[2] == 1 {
                    let pa = &a.data[idx(&sa, c, 0, 0)..][..plane];
                    let y = b.data[idx(&sb, c, 0, 0)];
                    for (ov, &x) in o.iter_mut().zip(pa) {
                        *ov = binop(op, x, y);
                    }
                } else {
                    for y in 0..so[1] {
                        for x in 0..so[2] {
                            o[y * so[2] + x] =
                                binop(op, a.data[idx(&sa, c, y, x)], b.data[idx(&sb, c, y, x)]);
                        }
                    }
                }
            });
        Ok(Tensor {
            dims: outdims,
            c: so[0],
            h: so[1],
            w: so[2],
            data: out,
        })
    }

    fn concat(&self, args: &[Arc<Tensor>], axis: i32, max: usize) -> Result<Tensor, NcnnError> {
        let first = &args[0];
        let dims = first.dims as i32;
        let a = if axis < 0 { axis + dims } else { axis };
        if a < 0 || a >= dims {
            return Err(self.err(format!(
                "axis {axis} out of range for {}",
                first.shape_str()
            )));
        }
        let i = (3 - dims + a) as usize; // index into (c,h,w)
        let mut shape = [first.c, first.h, first.w];
        shape[i] = 0;
        for t in args {
            let s = [t.c, t.h, t.w];
            for j in 0..3 {
                if j != i && s[j] != shape[j] || t.dims != first.dims {
                    return Err(self.err(format!(
                        "cannot concatenate {} with {} on axis {axis}",
                        first.shape_str(),
                        t.shape_str()
                    )));
                }
            }
            shape[i] += s[i];
        }
        self.check(&shape, max)?;
        let outer: usize = shape[..i].iter().product();
        let mut out = Vec::with_capacity(shape.iter().product());
        for o in 0..outer {
            for t in args {
                let s = [t.c, t.h, t.w];
                let inner: usize = s[i..].iter().product();
                out.extend_from_slice(&t.data[o * inner..(o + 1) * inner]);
            }
        }
        Ok(Tensor {
            dims: first.dims,
            c: shape[0],
            h: shape[1],
            w: shape[2],
            data: out,
        })
    }

    fn pooling(&self, x: &Tensor, max_el: usize) -> Result<Tensor, NcnnError> {
        let Kind::Pooling {
            max,
            global,
            kw,
            kh,
            sw,
            sh,
            pads,
            pad_mode,
            include_pad,
        } = self.kind
        else {
            return Err(self.err("internal: not a pooling"));
        };
        self.need3(x)?;
        let plane = x.plane();
        if plane == 0 {
            return Err(self.err("empty input"));
        }
        if global {
            let out: Vec<f32> = x
                .data
                .chunks_exact(plane)
                .map(|ch| {
                    if max {
                        ch.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                    } else {
                        ch.iter().sum::<f32>() / plane as f32
                    }
                })
                .collect();
            return Ok(Tensor::new1(x.c, out));
        }
        let (w, h) = (x.w, x.h);
        let [mut pl, mut pr, mut pt, mut pb] = pads;
        let (mut tail_w, mut tail_h) = (0, 0);
        match pad_mode {
            0 => {
                let wt = (w + pl + pr).saturating_sub(kw) % sw;
                if wt != 0 {
                    tail_w = sw - wt;
                }
                let ht = (h + pt + pb).saturating_sub(kh) % sh;
                if ht != 0 {
                    tail_h = sh - ht;
                }
            }
            1 => {
                pl = 0;
                pr = 0;
                pt = 0;
                pb = 0;
            }
            _ => {
                let wpad = (kw + (w - 1) / sw * sw).saturating_sub(w);
                let hpad = (kh + (h - 1) / sh * sh).saturating_sub(h);
                if pad_mode == 2 {
                    (pl, pr, pt, pb) = (wpad / 2, wpad - wpad / 2, hpad / 2, hpad - hpad / 2);
                } else {
                    (pl, pr, pt, pb) = (wpad - wpad / 2, wpad / 2, hpad - hpad / 2, hpad / 2);
                }
            }
        }
        let wp = w + pl + pr + tail_w;
        let hp = h + pt + pb + tail_h;
        if wp < kw || hp < kh {
            return Err(self.err(format!(
                "input {} is smaller than the kernel",
                x.shape_str()
            )));
        }
        let outw = (wp - kw) / sw + 1;
        let outh = (hp - kh) / sh + 1;
        self.check(&[x.c, outh, outw], max_el)?;
        let mut out = vec![0.0f32; x.c * outh * outw];
        out.par_chunks_mut(outh * outw)
            .zip(x.data.par_chunks(plane))
            .for_each(|(o, src)| {
                for oy in 0..outh {
                    for ox in 0..outw {
                        let y0 = (oy * sh) as isize - pt as isize;
                        let x0 = (ox * sw) as isize - pl as isize;
                        let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                        let mut count = 0usize;
                        for ky in 0..kh as isize {
                            for kx in 0..kw as isize {
                                let (iy, ix) = (y0 + ky, x0 + kx);
                                let inside =
                                    iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                                let in_pad = iy < (h + pb) as isize && ix < (w + pr) as isize;
                                if inside {
                                    let v = src[iy as usize * w + ix as usize];
                                    acc = if max { acc.max(v) } else { acc + v };
                                    count += 1;
                                } else if in_pad && include_pad && !max {
                                    count += 1;
                                }
                            }
                        }
                        o[oy * outw + ox] = if max { acc } else { acc / count.max(1) as f32 };
                    }
                }
            });
        Ok(Tensor::new3(x.c, outh, outw, out))
    }
}

/// Takes the tensor out of the Arc when this is the last reference, else copies.
fn take(t: Arc<Tensor>) -> Tensor {
    Arc::try_unwrap(t).unwrap_or_else(|a| (*a).clone())
}

#[inline]
fn binop(op: i32, a: f32, b: f32) -> f32 {
    match op {
        0 => a + b,
        1 => a - b,
        2 => a * b,
        3 => a / b,
        4 => a.max(b),
        5 => a.min(b),
        6 => a.powf(b),
        7 => b - a,
        8 => b / a,
        9 => b.powf(a),
        10 => a.atan2(b),
        _ => b.atan2(a),
    }
}

/// The stride and padding of a convolution the engine's kernels run (square
/// kernel and stride, no dilation, the same zero padding on every side), or
/// `None`. ncnn's "same" padding (-233, -234) is symmetric at stride 1 for
/// an odd kernel, whatever the input size.
fn engine_geometry(
    [kw, kh]: [usize; 2],
    [dw, dh]: [usize; 2],
    [sw, sh]: [usize; 2],
    pads: [i32; 4],
) -> Option<(usize, usize)> {
    if kw != kh || dw != 1 || dh != 1 || sw != sh {
        return None;
    }
    let pad = match pads[0] {
        -233 | -234 => (sw == 1 && kw % 2 == 1).then_some((kw - 1) / 2)?,
        p if p >= 0 && pads.iter().all(|&q| q == p) => p as usize,
        _ => return None,
    };
    Some((sw, pad))
}
