//! Run-time values (float32 activations, int64 shape constants) and the
//! layout-only kernels shared by both element types: reshape, concat,
//! slice, transpose.

use crate::Tensor;

/// Element type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    I64,
}

impl DType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I64 => "int64",
        }
    }
}

/// An int64 tensor (shapes, axes, pads).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct I64Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<i64>,
}

/// A value flowing through the graph.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    F32(Tensor),
    I64(I64Tensor),
}

impl Value {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::I64(_) => DType::I64,
        }
    }
    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Value::F32(t) => &t.shape,
            Value::I64(t) => &t.shape,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            Value::F32(t) => t.data.len(),
            Value::I64(t) => t.data.len(),
        }
    }
    /// Same data, new shape (the caller checked the element count).
    pub(crate) fn with_shape(self, shape: Vec<usize>) -> Value {
        match self {
            Value::F32(t) => Value::F32(Tensor {
                shape,
                data: t.data,
            }),
            Value::I64(t) => Value::I64(I64Tensor {
                shape,
                data: t.data,
            }),
        }
    }
}

/// Product of dims, `None` on overflow.
pub(crate) fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Row-major strides.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Concatenates `parts` (`(shape, data)`, same rank, equal dims except
/// `axis`) along `axis`.
pub(crate) fn concat<T: Copy>(parts: &[(&[usize], &[T])], axis: usize, total: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(total);
    let Some((first, _)) = parts.first() else {
        return out;
    };
    let outer: usize = first[..axis].iter().product();
    let inners: Vec<usize> = parts
        .iter()
        .map(|(s, _)| s[axis..].iter().product())
        .collect();
    for o in 0..outer {
        for ((_, d), &n) in parts.iter().zip(&inners) {
            out.extend_from_slice(&d[o * n..(o + 1) * n]);
        }
    }
    out
}

/// Gathers along every axis: `idx[a]` lists, for each output position on
/// axis `a`, the source position. The output shape is `idx[a].len()`; it is
/// written into `out` (cleared first, for its allocation).
pub(crate) fn gather_axes<T: Copy>(
    shape: &[usize],
    data: &[T],
    idx: &[Vec<usize>],
    mut out: Vec<T>,
) -> Vec<T> {
    let out_shape: Vec<usize> = idx.iter().map(Vec::len).collect();
    let total: usize = out_shape.iter().product();
    out.clear();
    out.reserve(total);
    if total == 0 {
        return out;
    }
    let r = shape.len();
    if r == 0 {
        out.push(data[0]);
        return out;
    }
    let st = strides(shape);
    let last = &idx[r - 1];
    let mut pos = vec![0usize; r - 1];
    loop {
        let base: usize = pos
            .iter()
            .enumerate()
            .map(|(a, &p)| idx[a][p] * st[a])
            .sum();
        out.extend(last.iter().map(|&i| data[base + i]));
        // Odometer over the outer axes.
        let mut a = r - 1;
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            pos[a] += 1;
            if pos[a] < out_shape[a] {
                break;
            }
            pos[a] = 0;
        }
    }
}

/// Permutes axes: output axis `i` is input axis `perm[i]`.
pub(crate) fn transpose<T: Copy>(shape: &[usize], data: &[T], perm: &[usize]) -> Vec<T> {
    let r = shape.len();
    let st = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let total: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    if r == 0 {
        out.push(data[0]);
        return out;
    }
    let inner_n = out_shape[r - 1];
    let inner_s = st[perm[r - 1]];
    let mut pos = vec![0usize; r - 1];
    loop {
        let base: usize = pos.iter().enumerate().map(|(a, &p)| p * st[perm[a]]).sum();
        out.extend((0..inner_n).map(|j| data[base + j * inner_s]));
        let mut a = r - 1;
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            pos[a] += 1;
            if pos[a] < out_shape[a] {
                break;
            }
            pos[a] = 0;
        }
    }
}
