//! Storages and strided tensor views over them.

use std::fmt;
use std::sync::Arc;

use crate::{DType, Error};

/// A flat buffer of elements, as PyTorch stores them: raw little-endian bytes
/// of one dtype, identified by the key it has in its checkpoint.
///
/// Several [`TensorView`]s may share one storage (e.g. views of one tensor).
pub struct Storage {
    dtype: DType,
    data: Vec<u8>,
    key: String,
}

impl Storage {
    /// A storage of `dtype` elements holding `data` (little-endian bytes).
    ///
    /// A trailing partial element, if any, is never addressed by a valid view.
    pub fn new(key: impl Into<String>, dtype: DType, data: Vec<u8>) -> Storage {
        Storage {
            dtype,
            data,
            key: key.into(),
        }
    }

    /// The storage's declared element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The key of the storage in its file (a zip record name, a legacy
    /// storage id, or a safetensors tensor name).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Number of whole elements of [`Storage::dtype`].
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Size in bytes.
    pub fn nbytes(&self) -> usize {
        self.data.len()
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("key", &self.key)
            .field("dtype", &self.dtype)
            .field("nbytes", &self.data.len())
            .finish()
    }
}

/// A strided view of a [`Storage`], the way a PyTorch tensor is one.
///
/// `offset` and `strides` count elements of `dtype` (which is normally the
/// storage's dtype). Element `[i0, i1, ...]` is at element index
/// `offset + i0 * strides[0] + i1 * strides[1] + ...` of the storage bytes
/// read as `dtype`.
#[derive(Clone, Debug)]
pub struct TensorView {
    /// The storage the view reads from.
    pub storage: Arc<Storage>,
    /// The element type of the view.
    pub dtype: DType,
    /// Size of each dimension (empty for a scalar).
    pub shape: Vec<usize>,
    /// Step between consecutive elements of each dimension, in elements.
    pub strides: Vec<usize>,
    /// Index of the first element, in elements.
    pub offset: usize,
}

/// Row-major (C-contiguous) strides for `shape`, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    strides
}

/// Product of `shape`, or `None` on overflow.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Number of elements a view spans from its offset: 1 + Σ (size-1)·stride,
/// 0 for an empty view; `None` on overflow.
pub(crate) fn checked_extent(shape: &[usize], strides: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    let mut extent = 1usize;
    for (&d, &s) in shape.iter().zip(strides) {
        extent = extent.checked_add((d - 1).checked_mul(s)?)?;
    }
    Some(extent)
}

impl TensorView {
    /// A contiguous view over a new storage holding `bytes` (little-endian
    /// elements of `dtype`, row-major for `shape`).
    pub fn from_bytes(
        key: impl Into<String>,
        dtype: DType,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    ) -> Result<TensorView, Error> {
        let numel = checked_numel(&shape)
            .ok_or_else(|| Error::InvalidInput(format!("shape {shape:?} overflows")))?;
        let need = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::InvalidInput(format!("shape {shape:?} overflows")))?;
        if need != bytes.len() {
            return Err(Error::InvalidInput(format!(
                "shape {shape:?} of {dtype} needs {need} bytes, got {}",
                bytes.len()
            )));
        }
        let strides = contiguous_strides(&shape);
        Ok(TensorView {
            storage: Arc::new(Storage::new(key, dtype, bytes)),
            dtype,
            shape,
            strides,
            offset: 0,
        })
    }

    /// A contiguous float32 tensor holding `values` (row-major for `shape`).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<TensorView, Error> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorView::from_bytes("", DType::F32, shape, bytes)
    }

    /// A contiguous int64 tensor holding `values` (row-major for `shape`).
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Result<TensorView, Error> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorView::from_bytes("", DType::I64, shape, bytes)
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        checked_numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// Checks that shape and strides agree and that every element of the view
    /// lies inside the storage. Views returned by this crate's loaders always pass.
    pub fn validate(&self) -> Result<(), Error> {
        if self.shape.len() != self.strides.len() {
            return Err(Error::tensor(
                None,
                format!(
                    "shape {:?} and strides {:?} have different lengths",
                    self.shape, self.strides
                ),
            ));
        }
        let overflow = || Error::tensor(None, format!("shape {:?} overflows", self.shape));
        checked_numel(&self.shape).ok_or_else(overflow)?;
        let extent = checked_extent(&self.shape, &self.strides).ok_or_else(overflow)?;
        if extent == 0 {
            return Ok(());
        }
        let end = self
            .offset
            .checked_add(extent)
            .and_then(|e| e.checked_mul(self.dtype.size()))
            .ok_or_else(overflow)?;
        if end > self.storage.nbytes() {
            return Err(Error::tensor(
                None,
                format!(
                    "view (offset {}, shape {:?}, strides {:?}, {}) needs {end} bytes but its storage has {}",
                    self.offset,
                    self.shape,
                    self.strides,
                    self.dtype,
                    self.storage.nbytes()
                ),
            ));
        }
        Ok(())
    }

    /// Whether the elements are laid out row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(d);
        }
        true
    }

    /// Whether both views read from the same storage object.
    pub fn shares_storage_with(&self, other: &TensorView) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    fn check(&self) {
        if let Err(e) = self.validate() {
            panic!("TensorView does not fit its storage: {e}");
        }
    }

    /// Calls `f` with the element index of every element, row-major.
    fn for_each_index(&self, mut f: impl FnMut(usize)) {
        let numel = self.numel();
        if numel == 0 {
            return;
        }
        if self.is_contiguous() {
            (self.offset..self.offset + numel).for_each(f);
            return;
        }
        let nd = self.shape.len();
        let inner = self.shape[nd - 1];
        let inner_stride = self.strides[nd - 1];
        let mut idx = vec![0usize; nd - 1];
        let mut base = self.offset;
        loop {
            let mut p = base;
            for _ in 0..inner {
                f(p);
                p += inner_stride;
            }
            // odometer over the outer dimensions
            let mut d = nd - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                base += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                base -= self.strides[d] * self.shape[d];
                idx[d] = 0;
            }
        }
    }

    fn gather<T, const N: usize>(&self, conv: impl Fn([u8; N]) -> T) -> Vec<T> {
        self.check();
        debug_assert_eq!(N, self.dtype.size());
        let bytes = self.storage.bytes();
        let numel = self.numel();
        let mut out = Vec::with_capacity(numel);
        // An empty view is valid whatever its offset (validate checks no
        // bytes for it): never index the storage for it.
        if numel == 0 {
            return out;
        }
        if self.is_contiguous() {
            let start = self.offset * N;
            for c in bytes[start..start + numel * N].chunks_exact(N) {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                out.push(conv(a));
            }
        } else {
            self.for_each_index(|i| {
                let mut a = [0u8; N];
                a.copy_from_slice(&bytes[i * N..i * N + N]);
                out.push(conv(a));
            });
        }
        out
    }

    /// The values of the view in row-major order, converted to f32
    /// (f64 and 64/32-bit integers are rounded to the nearest f32; bool is 0 or 1).
    ///
    /// Panics if the view does not fit its storage (see [`TensorView::validate`]).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self.gather(f32::from_le_bytes),
            DType::F16 => self.gather(|b| half::f16::from_le_bytes(b).to_f32()),
            DType::BF16 => self.gather(|b| half::bf16::from_le_bytes(b).to_f32()),
            DType::F64 => self.gather(|b| f64::from_le_bytes(b) as f32),
            DType::I64 => self.gather(|b| i64::from_le_bytes(b) as f32),
            DType::I32 => self.gather(|b| i32::from_le_bytes(b) as f32),
            DType::I16 => self.gather(|b| i16::from_le_bytes(b) as f32),
            DType::I8 => self.gather(|b: [u8; 1]| b[0] as i8 as f32),
            DType::U8 => self.gather(|b: [u8; 1]| b[0] as f32),
            DType::Bool => self.gather(|b: [u8; 1]| if b[0] != 0 { 1.0 } else { 0.0 }),
        }
    }

    /// The values of the view in row-major order, converted to f64 (exact
    /// for every dtype except int64 values beyond 2^53).
    ///
    /// Panics if the view does not fit its storage (see [`TensorView::validate`]).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self.dtype {
            DType::F64 => self.gather(f64::from_le_bytes),
            DType::F32 => self.gather(|b| f32::from_le_bytes(b) as f64),
            DType::F16 => self.gather(|b| half::f16::from_le_bytes(b).to_f64()),
            DType::BF16 => self.gather(|b| half::bf16::from_le_bytes(b).to_f64()),
            DType::I64 => self.gather(|b| i64::from_le_bytes(b) as f64),
            DType::I32 => self.gather(|b| i32::from_le_bytes(b) as f64),
            DType::I16 => self.gather(|b| i16::from_le_bytes(b) as f64),
            DType::I8 => self.gather(|b: [u8; 1]| b[0] as i8 as f64),
            DType::U8 => self.gather(|b: [u8; 1]| b[0] as f64),
            DType::Bool => self.gather(|b: [u8; 1]| if b[0] != 0 { 1.0 } else { 0.0 }),
        }
    }

    /// The values of the view in row-major order as i64, for integer dtypes
    /// (and bool, as 0 or 1); `None` for floating-point dtypes.
    ///
    /// Panics if the view does not fit its storage (see [`TensorView::validate`]).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self.dtype {
            DType::I64 => self.gather(i64::from_le_bytes),
            DType::I32 => self.gather(|b| i32::from_le_bytes(b) as i64),
            DType::I16 => self.gather(|b| i16::from_le_bytes(b) as i64),
            DType::I8 => self.gather(|b: [u8; 1]| b[0] as i8 as i64),
            DType::U8 => self.gather(|b: [u8; 1]| b[0] as i64),
            DType::Bool => self.gather(|b: [u8; 1]| (b[0] != 0) as i64),
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => return None,
        })
    }

    /// The raw little-endian bytes of the view's elements, row-major and
    /// contiguous, in the view's dtype.
    ///
    /// Panics if the view does not fit its storage (see [`TensorView::validate`]).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.check();
        let sz = self.dtype.size();
        let bytes = self.storage.bytes();
        let numel = self.numel();
        if numel == 0 {
            return Vec::new();
        }
        if self.is_contiguous() {
            let start = self.offset * sz;
            return bytes[start..start + numel * sz].to_vec();
        }
        let mut out = Vec::with_capacity(numel * sz);
        self.for_each_index(|i| out.extend_from_slice(&bytes[i * sz..i * sz + sz]));
        out
    }

    /// A contiguous copy of the view in a storage of its own.
    ///
    /// Panics if the view does not fit its storage (see [`TensorView::validate`]).
    pub fn to_contiguous(&self) -> TensorView {
        let bytes = self.to_le_bytes();
        TensorView {
            storage: Arc::new(Storage::new(self.storage.key(), self.dtype, bytes)),
            dtype: self.dtype,
            shape: self.shape.clone(),
            strides: contiguous_strides(&self.shape),
            offset: 0,
        }
    }
}
