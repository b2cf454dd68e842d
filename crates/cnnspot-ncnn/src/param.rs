//! Parsing of the text `.param` format and the `.bin` weight stream.

use std::collections::HashMap;

use crate::NcnnError;

/// The largest parameter id ncnn accepts (`NCNN_MAX_PARAM_COUNT`).
const MAX_PARAM_ID: i32 = 32;

/// One value of a layer's parameter dictionary.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(i32),
    Float(f32),
    Ints(Vec<i32>),
    Floats(Vec<f32>),
}

/// A layer's `id=value` pairs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParamDict {
    values: HashMap<i32, Value>,
}

impl ParamDict {
    /// Integer parameter `id`, or `default` when absent.
    pub(crate) fn int(&self, id: i32, default: i32) -> Result<i32, String> {
        match self.values.get(&id) {
            None => Ok(default),
            Some(Value::Int(v)) => Ok(*v),
            Some(Value::Float(v)) if v.fract() == 0.0 && v.abs() < 1e9 => Ok(*v as i32),
            Some(other) => Err(format!(
                "parameter {id} should be an integer, got {other:?}"
            )),
        }
    }

    /// Float parameter `id`, or `default` when absent (integers are accepted).
    pub(crate) fn float(&self, id: i32, default: f32) -> Result<f32, String> {
        match self.values.get(&id) {
            None => Ok(default),
            Some(Value::Int(v)) => Ok(*v as f32),
            Some(Value::Float(v)) => Ok(*v),
            Some(other) => Err(format!("parameter {id} should be a number, got {other:?}")),
        }
    }

    /// Float array parameter `id` (empty when absent).
    pub(crate) fn floats(&self, id: i32) -> Result<Vec<f32>, String> {
        match self.values.get(&id) {
            None => Ok(Vec::new()),
            Some(Value::Floats(v)) => Ok(v.clone()),
            Some(Value::Ints(v)) => Ok(v.iter().map(|&x| x as f32).collect()),
            Some(Value::Float(v)) => Ok(vec![*v]),
            Some(Value::Int(v)) => Ok(vec![*v as f32]),
        }
    }

    /// Integer array parameter `id` (empty when absent).
    pub(crate) fn ints(&self, id: i32) -> Result<Vec<i32>, String> {
        match self.values.get(&id) {
            None => Ok(Vec::new()),
            Some(Value::Ints(v)) => Ok(v.clone()),
            Some(Value::Int(v)) => Ok(vec![*v]),
            Some(other) => Err(format!("parameter {id} should be integers, got {other:?}")),
        }
    }
}

/// One layer line of the `.param` file.
#[derive(Debug, Clone)]
pub(crate) struct LayerLine {
    pub line: usize,
    pub ty: String,
    pub name: String,
    pub bottoms: Vec<String>,
    pub tops: Vec<String>,
    pub params: ParamDict,
}

/// The whole `.param` file.
#[derive(Debug)]
pub(crate) struct ParamFile {
    pub layers: Vec<LayerLine>,
    pub blob_count: usize,
}

fn perr(line: usize, msg: impl Into<String>) -> NcnnError {
    NcnnError::Param {
        line,
        msg: msg.into(),
    }
}

fn parse_scalar(s: &str) -> Option<Value> {
    let is_float =
        s.contains(['.', 'e', 'E']) || s.eq_ignore_ascii_case("nan") || s.contains("inf");
    if is_float {
        s.parse::<f32>().ok().map(Value::Float)
    } else {
        s.parse::<i32>().ok().map(Value::Int)
    }
}

fn parse_count(s: Option<&str>, line: usize, what: &str) -> Result<usize, NcnnError> {
    let s = s.ok_or_else(|| perr(line, format!("missing {what}")))?;
    let v: usize = s
        .parse()
        .map_err(|_| perr(line, format!("{what} `{s}` is not a non-negative integer")))?;
    if v > 1_000_000 {
        return Err(perr(line, format!("{what} {v} is absurdly large")));
    }
    Ok(v)
}

/// Parses the text `.param` format (magic 7767517).
pub(crate) fn parse_param(text: &str) -> Result<ParamFile, NcnnError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let (ln, magic) = lines.next().ok_or_else(|| perr(1, "empty .param file"))?;
    if magic != "7767517" {
        return Err(perr(
            ln,
            format!(
                "bad magic `{magic}` (expected 7767517; binary .param.bin files are not supported)"
            ),
        ));
    }
    let (ln, counts) = lines
        .next()
        .ok_or_else(|| perr(ln + 1, "missing the `layer_count blob_count` line"))?;
    let mut it = counts.split_whitespace();
    let layer_count = parse_count(it.next(), ln, "layer count")?;
    let blob_count = parse_count(it.next(), ln, "blob count")?;
    if it.next().is_some() {
        return Err(perr(
            ln,
            "expected exactly two numbers: layer_count blob_count",
        ));
    }
    let mut layers = Vec::with_capacity(layer_count.min(4096));
    for _ in 0..layer_count {
        let (ln, l) = lines.next().ok_or_else(|| {
            perr(
                ln,
                format!(
                    "the file declares {layer_count} layers but has only {}",
                    layers.len()
                ),
            )
        })?;
        layers.push(parse_layer(ln, l)?);
    }
    if let Some((ln, _)) = lines.next() {
        return Err(perr(
            ln,
            format!("more layer lines than the {layer_count} declared"),
        ));
    }
    Ok(ParamFile { layers, blob_count })
}

fn parse_layer(ln: usize, l: &str) -> Result<LayerLine, NcnnError> {
    let mut tok = l.split_whitespace();
    let ty = tok
        .next()
        .ok_or_else(|| perr(ln, "empty layer line"))?
        .to_string();
    let name = tok
        .next()
        .ok_or_else(|| perr(ln, format!("layer `{ty}` has no name")))?
        .to_string();
    let nb = parse_count(tok.next(), ln, "bottom count")?;
    let nt = parse_count(tok.next(), ln, "top count")?;
    let mut bottoms = Vec::with_capacity(nb.min(64));
    for i in 0..nb {
        bottoms.push(
            tok.next()
                .ok_or_else(|| {
                    perr(
                        ln,
                        format!("layer `{name}`: missing bottom blob {i} of {nb}"),
                    )
                })?
                .to_string(),
        );
    }
    let mut tops = Vec::with_capacity(nt.min(64));
    for i in 0..nt {
        tops.push(
            tok.next()
                .ok_or_else(|| perr(ln, format!("layer `{name}`: missing top blob {i} of {nt}")))?
                .to_string(),
        );
    }
    let mut params = ParamDict::default();
    for kv in tok {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| perr(ln, format!("layer `{name}`: `{kv}` is not id=value")))?;
        let k: i32 = k
            .parse()
            .map_err(|_| perr(ln, format!("layer `{name}`: bad parameter id `{k}`")))?;
        let (id, value) = if k <= -23300 {
            let id = -k - 23300;
            let mut parts = v.split(',');
            let n: usize = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
                perr(
                    ln,
                    format!("layer `{name}`: array {id} `{v}` lacks a count"),
                )
            })?;
            let items: Vec<&str> = parts.collect();
            if items.len() != n {
                return Err(perr(
                    ln,
                    format!(
                        "layer `{name}`: array parameter {id} declares {n} values but has {}",
                        items.len()
                    ),
                ));
            }
            let mut vals = Vec::with_capacity(n);
            for s in &items {
                vals.push(parse_scalar(s).ok_or_else(|| {
                    perr(
                        ln,
                        format!("layer `{name}`: bad number `{s}` in array {id}"),
                    )
                })?);
            }
            let value = if vals.iter().any(|v| matches!(v, Value::Float(_))) {
                Value::Floats(
                    vals.iter()
                        .map(|v| match v {
                            Value::Float(f) => *f,
                            Value::Int(i) => *i as f32,
                            _ => 0.0,
                        })
                        .collect(),
                )
            } else {
                Value::Ints(
                    vals.iter()
                        .map(|v| match v {
                            Value::Int(i) => *i,
                            _ => 0,
                        })
                        .collect(),
                )
            };
            (id, value)
        } else {
            let value = parse_scalar(v).ok_or_else(|| {
                perr(
                    ln,
                    format!("layer `{name}`: bad number `{v}` for parameter {k}"),
                )
            })?;
            (k, value)
        };
        if !(0..MAX_PARAM_ID).contains(&id) {
            return Err(perr(
                ln,
                format!("layer `{name}`: parameter id {id} out of range 0..{MAX_PARAM_ID}"),
            ));
        }
        params.values.insert(id, value);
    }
    Ok(LayerLine {
        line: ln,
        ty,
        name,
        bottoms,
        tops,
        params,
    })
}

/// Sequential reader of the `.bin` weight stream, as ncnn's `ModelBinFromDataReader`.
pub(crate) struct BinReader<'a> {
    data: &'a [u8],
    pos: usize,
}

const TAG_FP16: u32 = 0x0130_6B47;
const TAG_INT8: u32 = 0x000D_4B38;

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if frac == 0 {
            sign
        } else {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (frac << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (frac << 13)
    };
    f32::from_bits(bits)
}

impl<'a> BinReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BinReader { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated .bin: {what} needs {n} bytes at offset {} but only {} remain",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn raw_f32(&mut self, n: usize, what: &str) -> Result<Vec<f32>, String> {
        let bytes = n
            .checked_mul(4)
            .ok_or_else(|| format!("{what}: {n} floats overflow"))?;
        let s = self.take(bytes, what)?;
        Ok(s.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// `ModelBin::load(n, 1)`: `n` raw little-endian float32 (biases, slopes).
    pub(crate) fn load_raw(&mut self, n: usize, what: &str) -> Result<Vec<f32>, String> {
        self.raw_f32(n, what)
    }

    /// `ModelBin::load(n, 0)`: a 4-byte storage flag, then `n` values.
    pub(crate) fn load_tagged(&mut self, n: usize, what: &str) -> Result<Vec<f32>, String> {
        let flag = self.take(4, what)?;
        let tag = u32::from_le_bytes([flag[0], flag[1], flag[2], flag[3]]);
        let flag_sum: u32 = flag.iter().map(|&b| b as u32).sum();
        if tag == TAG_FP16 {
            let bytes = n
                .checked_mul(2)
                .ok_or_else(|| format!("{what}: {n} values overflow"))?;
            let aligned = bytes.div_ceil(4) * 4;
            if aligned > self.remaining() {
                return Err(format!(
                    "truncated .bin: {what} (fp16) needs {aligned} bytes at offset {} but only {} remain",
                    self.pos,
                    self.remaining()
                ));
            }
            let s = self.take(aligned, what)?;
            Ok(s[..bytes]
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect())
        } else if tag == TAG_INT8 {
            Err(format!("{what}: int8-quantised weights are not supported"))
        } else if flag_sum != 0 {
            // 8-bit indices into a 256-entry float table.
            let table = self.raw_f32(256, what)?;
            let aligned = n.div_ceil(4) * 4;
            let s = self.take(aligned, what)?;
            Ok(s[..n].iter().map(|&i| table[i as usize]).collect())
        } else {
            self.raw_f32(n, what)
        }
    }
}
