//! A plain model of the Python values a checkpoint holds, for writing
//! checkpoints and for reading back everything in them (not only the state
//! dict): nested optimizer state, step counters, learning rates.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::pickle::{StorageRef, TensorRef, Unpickled, Value};
use crate::{Error, Storage, TensorView};

/// A Python value as `torch.save` pickles it and [`crate::load_value`] reads it.
///
/// Containers keep insertion order, as Python's do. Reading never executes
/// anything: objects of classes outside the reader's whitelist come back as
/// [`PyValue::Opaque`], which the writer refuses.
#[derive(Debug, Clone)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in i64.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list` (sets are read as lists too).
    List(Vec<PyValue>),
    /// A `tuple` (also `torch.Size`).
    Tuple(Vec<PyValue>),
    /// A `dict` with keys of any type (e.g. the int parameter ids of an
    /// optimizer's `state`).
    Dict(Vec<(PyValue, PyValue)>),
    /// A `collections.OrderedDict` with string keys: what `state_dict()` returns.
    OrderedDict(Vec<(String, PyValue)>),
    /// A tensor (`torch._utils._rebuild_tensor_v2`); views sharing one
    /// [`crate::Storage`] are written as views of one storage.
    Tensor(TensorView),
    /// Read only: something the reader does not model (big integers, bytes,
    /// devices, dtypes, objects of non-whitelisted classes), described.
    Opaque(String),
}

impl PyValue {
    /// A short name of the value's Python type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "None",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
            PyValue::OrderedDict(_) => "OrderedDict",
            PyValue::Tensor(_) => "tensor",
            PyValue::Opaque(_) => "unsupported object",
        }
    }

    /// The value under string key `key` of a dict or OrderedDict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, PyValue::Str(s) if s == key))
                .map(|(_, v)| v),
            PyValue::OrderedDict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value under integer key `key` of a dict (an optimizer's `state`
    /// is keyed by parameter index).
    pub fn get_int(&self, key: i64) -> Option<&PyValue> {
        match self {
            PyValue::Dict(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, PyValue::Int(i) if *i == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The integer, for `Int` (and `Bool`, as Python treats it).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            PyValue::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The number, for `Float` and `Int`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyValue::Float(x) => Some(*x),
            PyValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, for `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, for `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The tensor, for `Tensor`.
    pub fn as_tensor(&self) -> Option<&TensorView> {
        match self {
            PyValue::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The items of a `List` or `Tuple`.
    pub fn as_items(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(v) | PyValue::Tuple(v) => Some(v),
            _ => None,
        }
    }
}

/// Equality of the values; tensors are equal when dtype, shape and elements
/// (bit patterns, row-major) are, whatever their strides or storage sharing.
impl PartialEq for PyValue {
    fn eq(&self, other: &PyValue) -> bool {
        use PyValue::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Str(a), Str(b)) => a == b,
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Dict(a), Dict(b)) => a == b,
            (OrderedDict(a), OrderedDict(b)) => a == b,
            (Tensor(a), Tensor(b)) => {
                a.dtype == b.dtype
                    && a.shape == b.shape
                    && a.validate().is_ok()
                    && b.validate().is_ok()
                    && a.to_le_bytes() == b.to_le_bytes()
            }
            (Opaque(a), Opaque(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for PyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::None => f.write_str("None"),
            PyValue::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            PyValue::Int(i) => write!(f, "{i}"),
            PyValue::Float(x) => write!(f, "{x:?}"),
            PyValue::Str(s) => write!(f, "{s:?}"),
            PyValue::List(v) => write!(f, "list of {} items", v.len()),
            PyValue::Tuple(v) => write!(f, "tuple of {} items", v.len()),
            PyValue::Dict(v) => write!(f, "dict with {} entries", v.len()),
            PyValue::OrderedDict(v) => write!(f, "OrderedDict with {} entries", v.len()),
            PyValue::Tensor(t) => write!(f, "{} tensor {:?}", t.dtype, t.shape),
            PyValue::Opaque(d) => f.write_str(d),
        }
    }
}

/// Deepest nesting of containers converted; PyTorch checkpoints nest a few
/// levels, and recursion must stay bounded on hostile input.
const MAX_DEPTH: usize = 100;

/// Turns unpickled values into [`PyValue`]s, reading each storage once.
///
/// Shared containers (memo references) are converted once per reference, so
/// the number of nodes is bounded by a budget proportional to the pickle's
/// size: a pickle of nested back-references cannot make this blow up.
pub(crate) struct Converter<'u, F> {
    u: &'u Unpickled,
    read: F,
    big_endian: bool,
    storages: HashMap<String, Arc<Storage>>,
    budget: usize,
}

impl<'u, F> Converter<'u, F>
where
    F: FnMut(&StorageRef) -> Result<Vec<u8>, Error>,
{
    /// `read` returns a storage's bytes, already little-endian; `pickle_len`
    /// sizes the node budget.
    pub fn new(u: &'u Unpickled, pickle_len: usize, big_endian: bool, read: F) -> Self {
        Converter {
            u,
            read,
            big_endian,
            storages: HashMap::new(),
            budget: pickle_len.saturating_mul(4).saturating_add(1 << 20),
        }
    }

    pub fn root(&mut self) -> Result<PyValue, Error> {
        let root = self
            .u
            .root
            .clone()
            .ok_or_else(|| Error::NoStateDict("empty pickle".into()))?;
        self.convert(&root, 0)
    }

    pub fn tensor(&mut self, t: &TensorRef) -> Result<TensorView, Error> {
        if self.big_endian && t.dtype != t.storage.dtype {
            return Err(Error::Unsupported(format!(
                "a tensor reinterprets a big-endian {} storage as {}",
                t.storage.dtype, t.dtype
            )));
        }
        let storage = match self.storages.get(&t.storage.key) {
            Some(s) => s.clone(),
            None => {
                let bytes = (self.read)(&t.storage)?;
                let s = Arc::new(Storage::new(t.storage.key.clone(), t.storage.dtype, bytes));
                self.storages.insert(t.storage.key.clone(), s.clone());
                s
            }
        };
        let view = TensorView {
            storage,
            dtype: t.dtype,
            shape: t.shape.clone(),
            strides: t.strides.clone(),
            offset: t.offset,
        };
        view.validate()?;
        Ok(view)
    }

    fn convert(&mut self, v: &Value, depth: usize) -> Result<PyValue, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Limit(format!(
                "values nested deeper than {MAX_DEPTH} levels"
            )));
        }
        if self.budget == 0 {
            return Err(Error::Limit(
                "the pickle refers to its containers more often than its size allows".into(),
            ));
        }
        self.budget -= 1;
        let u = self.u;
        Ok(match v {
            Value::None => PyValue::None,
            Value::Bool(b) => PyValue::Bool(*b),
            Value::Int(i) => PyValue::Int(*i),
            Value::Float(x) => PyValue::Float(*x),
            Value::Str(s) => PyValue::Str(s.to_string()),
            Value::Tuple(t) => PyValue::Tuple(self.convert_all(&t.items, depth)?),
            Value::List(l) => PyValue::List(self.convert_all(&u.lists[*l], depth)?),
            Value::Dict(d) => {
                let dict = &u.dicts[*d];
                let str_keyed: Option<Vec<(String, &Value)>> = if dict.ordered {
                    dict.entries
                        .iter()
                        .map(|(k, val)| match k {
                            Value::Str(s) => Some((s.to_string(), val)),
                            _ => None,
                        })
                        .collect()
                } else {
                    None
                };
                match str_keyed {
                    Some(entries) => {
                        let mut out = Vec::with_capacity(entries.len());
                        for (k, val) in entries {
                            out.push((k, self.convert(val, depth + 1)?));
                        }
                        PyValue::OrderedDict(out)
                    }
                    None => {
                        let mut out = Vec::with_capacity(dict.entries.len());
                        for (k, val) in &dict.entries {
                            let k = self.convert(k, depth + 1)?;
                            out.push((k, self.convert(val, depth + 1)?));
                        }
                        PyValue::Dict(out)
                    }
                }
            }
            Value::Tensor(t) => PyValue::Tensor(self.tensor(t)?),
            other => PyValue::Opaque(other.describe(u)),
        })
    }

    fn convert_all(&mut self, items: &[Value], depth: usize) -> Result<Vec<PyValue>, Error> {
        items.iter().map(|x| self.convert(x, depth + 1)).collect()
    }
}
