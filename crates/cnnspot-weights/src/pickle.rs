//! A pickle *interpreter* (never an executor) for PyTorch checkpoints.
//!
//! Only a whitelist of globals is given meaning (tensor rebuild functions,
//! `OrderedDict`, storage classes, dtypes, `torch.device`, `torch.Size`,
//! sets); every other global becomes an inert [`Value::Object`] placeholder.
//! Nothing in a pickle can make this module run code, open files or allocate
//! much more memory than the pickle's own size.

use std::collections::HashMap;
use std::rc::Rc;

use crate::tensor::{checked_extent, checked_numel};
use crate::{DType, Error};

/// Most values the stack may hold.
const MAX_STACK: usize = 1 << 22;
/// Most memo entries.
const MAX_MEMO: usize = 1 << 22;
/// Deepest nesting of MARKs.
const MAX_MARKS: usize = 1 << 16;
/// Deepest nesting of tuples inside tuples.
const MAX_TUPLE_DEPTH: usize = 1000;
/// Most dimensions a tensor may have.
const MAX_DIMS: usize = 64;

/// A global the interpreter knows how to "call" without running code.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Global {
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    OrderedDict,
    Dict,
    List,
    Set,
    Tuple,
    TorchSize,
    Device,
    /// A typed storage class (`torch.FloatStorage`, ...).
    StorageType(DType),
    /// `torch.UntypedStorage` (bytes).
    UntypedStorage,
    /// `torch.Tensor` / `torch.nn.Parameter` classes (only used as type tags).
    TensorClass,
    /// Anything else: inert; calling it gives a placeholder object.
    Other(Rc<str>),
}

/// A storage named by a persistent id; its bytes are read later, lazily.
#[derive(Debug)]
pub(crate) struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Elements of `dtype` the storage holds (as declared).
    pub numel: usize,
    /// Legacy view metadata: (offset, size) in elements inside the root storage.
    pub view: Option<(usize, usize)>,
}

/// A tensor rebuilt from a storage, not yet materialised.
#[derive(Debug)]
pub(crate) struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    /// Offset in elements of `dtype` from the start of the root storage.
    pub offset: usize,
}

/// An immutable tuple, with its nesting depth (bounded, so that dropping
/// nested tuples cannot overflow the stack).
#[derive(Debug)]
pub(crate) struct Tuple {
    pub depth: u32,
    pub items: Vec<Value>,
}

impl std::ops::Deref for Tuple {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.items
    }
}

/// A value on the pickle stack. Cloning is cheap (shared or indexed), so
/// memo references cannot blow up memory.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit i64: its little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Tuple>),
    /// Index into [`Unpickled::lists`] (lists, sets).
    List(usize),
    /// Index into [`Unpickled::dicts`].
    Dict(usize),
    Global(Global),
    /// An inert instance of a non-whitelisted class: the class's name.
    Object(Rc<str>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    DType(DType),
    Device(Rc<str>),
}

impl Value {
    /// A short human description ("dict with 3 entries", "int 5", ...).
    pub fn describe(&self, u: &Unpickled) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {}", if *b { "True" } else { "False" }),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(_) => "big integer".into(),
            Value::Float(f) => format!("float {f}"),
            Value::Str(s) => format!("string {:?}", truncate(s, 60)),
            Value::Bytes(b) => format!("bytes of length {}", b.len()),
            Value::Tuple(t) => format!("tuple of {} items", t.items.len()),
            Value::List(i) => format!("list of {} items", u.lists[*i].len()),
            Value::Dict(i) => format!("dict with {} entries", u.dicts[*i].entries.len()),
            Value::Global(Global::Other(name)) => format!("global {name}"),
            Value::Global(g) => format!("global {g:?}"),
            Value::Object(name) => format!("{name} object"),
            Value::Storage(s) => format!("{} storage", s.dtype),
            Value::Tensor(t) => format!("{} tensor {:?}", t.dtype, t.shape),
            Value::DType(d) => format!("dtype {d}"),
            Value::Device(d) => format!("device {d}"),
        }
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// A dict: entries in insertion order, with an index for string keys.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub entries: Vec<(Value, Value)>,
    /// Made by `collections.OrderedDict` (a state dict) rather than `{}`.
    pub ordered: bool,
    str_index: HashMap<Rc<str>, usize>,
    int_index: HashMap<i64, usize>,
}

impl Dict {
    fn insert(&mut self, key: Value, value: Value) {
        let slot = match &key {
            Value::Str(s) => self.str_index.get(s).copied(),
            Value::Int(i) => self.int_index.get(i).copied(),
            _ => None,
        };
        match slot {
            Some(i) => self.entries[i].1 = value,
            None => {
                let i = self.entries.len();
                match &key {
                    Value::Str(s) => {
                        self.str_index.insert(s.clone(), i);
                    }
                    Value::Int(k) => {
                        self.int_index.insert(*k, i);
                    }
                    _ => {}
                }
                self.entries.push((key, value));
            }
        }
    }

    /// The value under string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.str_index.get(key).map(|&i| &self.entries[i].1)
    }
}

/// The result of interpreting one pickle: the root value and the containers
/// it refers to.
#[derive(Debug, Default)]
pub(crate) struct Unpickled {
    pub root: Option<Value>,
    pub lists: Vec<Vec<Value>>,
    pub dicts: Vec<Dict>,
    /// Every storage named by a persistent id, in order of first appearance.
    pub storages: Vec<Rc<StorageRef>>,
    /// Bytes consumed (the STOP opcode included).
    pub end: usize,
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    context: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    out: Unpickled,
    storage_keys: HashMap<String, Rc<StorageRef>>,
    /// Values that may still be copied out of containers (by `list(x)`,
    /// `OrderedDict(pairs)`, ...), so that memo references cannot multiply memory.
    copy_budget: usize,
}

/// Interprets the pickle starting at `data[0]`, stopping at its STOP opcode.
/// `context` names the pickle in error messages.
pub(crate) fn unpickle(data: &[u8], context: &str) -> Result<Unpickled, Error> {
    let mut vm = Vm {
        data,
        pos: 0,
        op_pos: 0,
        context,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        out: Unpickled::default(),
        storage_keys: HashMap::new(),
        copy_budget: data.len().saturating_mul(4).saturating_add(1 << 20),
    };
    let root = vm.run()?;
    vm.out.root = Some(root);
    vm.out.end = vm.pos;
    Ok(vm.out)
}

fn resolve_global(module: &str, name: &str) -> Value {
    let g = match (module, name) {
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._utils", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("builtins" | "__builtin__", "dict") => Global::Dict,
        ("builtins" | "__builtin__", "list") => Global::List,
        ("builtins" | "__builtin__", "set" | "frozenset") => Global::Set,
        ("builtins" | "__builtin__", "tuple") => Global::Tuple,
        ("torch", "Size") => Global::TorchSize,
        ("torch", "device") => Global::Device,
        ("torch" | "torch.storage", "UntypedStorage" | "_UntypedStorage" | "TypedStorage") => {
            Global::UntypedStorage
        }
        ("torch" | "torch._tensor" | "torch.tensor", "Tensor")
        | ("torch.nn.parameter" | "torch.nn", "Parameter") => Global::TensorClass,
        ("torch" | "torch.cuda", n) if DType::from_storage_class(n).is_some() => {
            Global::StorageType(DType::from_storage_class(n).unwrap_or(DType::U8))
        }
        ("torch", n) if DType::from_torch_name(n).is_some() => {
            return Value::DType(DType::from_torch_name(n).unwrap_or(DType::U8));
        }
        _ => Global::Other(format!("{module}.{name}").into()),
    };
    Value::Global(g)
}

impl<'a> Vm<'a> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Pickle {
            context: self.context.to_owned(),
            offset: self.op_pos,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: needs {n} more bytes, {} left",
                    self.data.len() - self.pos
                ))
            })?;
        let data: &'a [u8] = self.data;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take_arr<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take_arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.take_arr()?))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.take_arr()?))
    }
    fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_le_bytes(self.take_arr()?))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take_arr()?))
    }

    fn len_u64(&mut self) -> Result<usize, Error> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("length too large"))
    }

    /// A text line (protocol 0 opcodes), without its newline.
    fn line(&mut self) -> Result<&'a str, Error> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("truncated: missing newline"))?;
        let line = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("line is not UTF-8"))?;
        self.pos += n + 1;
        Ok(line)
    }

    fn push(&mut self, v: Value) -> Result<(), Error> {
        if self.stack.len() >= MAX_STACK {
            return Err(Error::Limit(format!(
                "pickle stack deeper than {MAX_STACK} values"
            )));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, Error> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&mut self) -> Result<&mut Value, Error> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        let err = self.err("stack underflow");
        self.stack.last_mut().ok_or(err)
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, Error> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, idx: u32) -> Result<(), Error> {
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.err("memo put on empty stack"))?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return Err(Error::Limit(format!("more than {MAX_MEMO} memo entries")));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<(), Error> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {idx} is missing")))?;
        self.push(v)
    }

    /// The items of a list or tuple argument, charged to the copy budget.
    fn copy_items(&mut self, v: Option<&Value>) -> Result<Vec<Value>, Error> {
        let items = match v {
            Some(Value::List(l)) => &self.out.lists[*l][..],
            Some(Value::Tuple(t)) => &t.items[..],
            _ => &[][..],
        };
        if items.len() > self.copy_budget {
            return Err(Error::Limit(
                "pickle copies containers more often than its size allows".into(),
            ));
        }
        self.copy_budget -= items.len();
        Ok(items.to_vec())
    }

    fn tuple(&self, items: Vec<Value>) -> Result<Value, Error> {
        let depth = 1 + items
            .iter()
            .map(|v| match v {
                Value::Tuple(t) => t.depth,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        if depth as usize > MAX_TUPLE_DEPTH {
            return Err(Error::Limit(format!(
                "tuples nested deeper than {MAX_TUPLE_DEPTH}"
            )));
        }
        Ok(Value::Tuple(Rc::new(Tuple { depth, items })))
    }

    fn new_list(&mut self, items: Vec<Value>) -> Value {
        self.out.lists.push(items);
        Value::List(self.out.lists.len() - 1)
    }

    fn new_dict(&mut self) -> Value {
        self.out.dicts.push(Dict::default());
        Value::Dict(self.out.dicts.len() - 1)
    }

    fn dict_set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), Error> {
        if items.len() & 1 == 1 {
            return Err(self.err("odd number of items for SETITEMS"));
        }
        match target {
            Value::Dict(d) => {
                let d = *d;
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    self.out.dicts[d].insert(k, v);
                }
                Ok(())
            }
            // Items set on a placeholder object are dropped.
            Value::Object(_) => Ok(()),
            other => Err(self.err(format!(
                "SETITEM on a {}, not a dict",
                other.describe(&self.out)
            ))),
        }
    }

    fn list_extend(&mut self, target: &Value, items: Vec<Value>) -> Result<(), Error> {
        match target {
            Value::List(l) => {
                self.out.lists[*l].extend(items);
                Ok(())
            }
            Value::Object(_) => Ok(()),
            other => Err(self.err(format!(
                "APPEND on a {}, not a list",
                other.describe(&self.out)
            ))),
        }
    }

    fn run(&mut self) -> Result<Value, Error> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                // FRAME: only a length hint
                0x95 => {
                    self.u64()?;
                }
                // STOP
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(Error::Limit(format!(
                            "MARKs nested deeper than {MAX_MARKS}"
                        )));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP: discards the top item, or the top mark if it is on top
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                // constants
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                // integers
                b'J' => {
                    let v = self.i32()?;
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(long_value(&b))?
                }
                0x8b => {
                    let n = self.i32()?;
                    let n = usize::try_from(n).map_err(|_| self.err("negative LONG4 length"))?;
                    let b = self.take(n)?.to_vec();
                    self.push(long_value(&b))?
                }
                b'I' => {
                    let line = self.line()?.trim().to_owned();
                    let v = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().map_err(|_| self.err("bad INT literal"))?),
                    };
                    self.push(v)?
                }
                b'L' => {
                    let line = self.line()?.trim().trim_end_matches('L').to_owned();
                    let v = match line.parse::<i64>() {
                        Ok(i) => Value::Int(i),
                        Err(_)
                            if !line.is_empty()
                                && line.bytes().skip(1).all(|b| b.is_ascii_digit()) =>
                        {
                            Value::BigInt(Rc::from(&[][..]))
                        }
                        Err(_) => return Err(self.err("bad LONG literal")),
                    };
                    self.push(v)?
                }
                // floats
                b'G' => {
                    let v = f64::from_be_bytes(self.take_arr()?);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let line = self.line()?.trim().to_owned();
                    let v = line.parse().map_err(|_| self.err("bad FLOAT literal"))?;
                    self.push(Value::Float(v))?
                }
                // strings
                b'X' => {
                    let n = self.u32()? as usize;
                    self.push_unicode(n)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.push_unicode(n)?
                }
                0x8d => {
                    let n = self.len_u64()?;
                    self.push_unicode(n)?
                }
                b'V' => {
                    let s: Rc<str> = self.line()?.into();
                    self.push(Value::Str(s))?
                }
                // byte strings (Python 2 str): decoded as text
                b'T' => {
                    let n = self.i32()?;
                    let n =
                        usize::try_from(n).map_err(|_| self.err("negative BINSTRING length"))?;
                    self.push_str_bytes(n)?
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    self.push_str_bytes(n)?
                }
                b'S' => {
                    let line = self.line()?.trim();
                    let unq = line
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| line.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                        .ok_or_else(|| self.err("bad STRING literal"))?;
                    let s: Rc<str> = unq.into();
                    self.push(Value::Str(s))?
                }
                // bytes
                b'C' => {
                    let n = self.u8()? as usize;
                    let b: Rc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(b))?
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b: Rc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(b))?
                }
                0x8e | 0x96 => {
                    let n = self.len_u64()?;
                    let b: Rc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(b))?
                }
                0x97 => return Err(self.err("out-of-band buffers (NEXT_BUFFER) are not supported")),
                0x98 => {
                    // READONLY_BUFFER: no-op
                    self.top()?;
                }
                // tuples
                b')' => {
                    let t = self.tuple(Vec::new())?;
                    self.push(t)?
                }
                0x85 => {
                    let a = self.pop()?;
                    let t = self.tuple(vec![a])?;
                    self.push(t)?
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    let t = self.tuple(vec![a, b])?;
                    self.push(t)?
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    let t = self.tuple(vec![a, b, c])?;
                    self.push(t)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?
                }
                // lists
                b']' => {
                    let l = self.new_list(Vec::new());
                    self.push(l)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.new_list(items);
                    self.push(l)?
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    self.list_extend(&target, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.list_extend(&target, items)?;
                }
                // sets (kept as lists)
                0x8f => {
                    let l = self.new_list(Vec::new());
                    self.push(l)?
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.list_extend(&target, items)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let l = self.new_list(items);
                    self.push(l)?
                }
                // dicts
                b'}' => {
                    let d = self.new_dict();
                    self.push(d)?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = self.new_dict();
                    self.dict_set_items(&d, items)?;
                    self.push(d)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.dict_set_items(&target, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.dict_set_items(&target, items)?;
                }
                // memo
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len())
                        .map_err(|_| Error::Limit("memo too large".into()))?;
                    self.memo_put(i)?
                }
                b'p' => {
                    let i = self
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| self.err("bad PUT index"))?;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?
                }
                b'g' => {
                    let i = self
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| self.err("bad GET index"))?;
                    self.memo_get(i)?
                }
                // globals: resolved by name only, never imported
                b'c' => {
                    let module = self.line()?.to_owned();
                    let name = self.line()?.to_owned();
                    self.push(resolve_global(&module, &name))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(resolve_global(&m, &n))?,
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                0x82..=0x84 => {
                    return Err(self.err("extension registry opcodes (EXT1/2/4) are not supported"))
                }
                // calls
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(func, args)?;
                    self.push(v)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.push(v)?
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.push(v)?
                }
                b'o' => {
                    let mut items = self.pop_mark()?.into_iter();
                    let cls = items
                        .next()
                        .ok_or_else(|| self.err("OBJ without a class"))?;
                    let args = self.tuple(items.collect())?;
                    let v = self.call(cls, args)?;
                    self.push(v)?
                }
                b'i' => {
                    let module = self.line()?.to_owned();
                    let name = self.line()?.to_owned();
                    let items = self.pop_mark()?;
                    let cls = resolve_global(&module, &name);
                    let args = self.tuple(items)?;
                    let v = self.call(cls, args)?;
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    self.build(target, state)?;
                }
                // persistent ids: storages
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v)?
                }
                b'P' => {
                    return Err(self.err(
                        "text persistent ids (PERSID) are not used by PyTorch and not supported",
                    ))
                }
                other => return Err(self.err(format!("unknown opcode 0x{other:02x}"))),
            }
        }
    }

    fn push_unicode(&mut self, n: usize) -> Result<(), Error> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("string is not valid UTF-8"))?;
        let s: Rc<str> = s.into();
        self.push(Value::Str(s))
    }

    fn push_str_bytes(&mut self, n: usize) -> Result<(), Error> {
        let b = self.take(n)?;
        let s: Rc<str> = String::from_utf8_lossy(b).into();
        self.push(Value::Str(s))
    }

    /// BUILD: sets state on an object. Only meaningful for the whitelisted
    /// types; state of dicts (attributes such as `_metadata`), tensors and
    /// placeholder objects is ignored.
    fn build(&mut self, target: Value, _state: Value) -> Result<(), Error> {
        match target {
            Value::Dict(_) | Value::Object(_) | Value::Tensor(_) | Value::List(_) => Ok(()),
            other => Err(self.err(format!("BUILD on a {}", other.describe(&self.out)))),
        }
    }

    fn args_tuple(&self, args: Value, what: &str) -> Result<Rc<Tuple>, Error> {
        match args {
            Value::Tuple(t) => Ok(t),
            other => Err(self.err(format!(
                "arguments of {what} are a {}, not a tuple",
                other.describe(&self.out)
            ))),
        }
    }

    /// "Calls" `func` with `args`: whitelisted globals are emulated, anything
    /// else gives an inert placeholder.
    fn call(&mut self, func: Value, args: Value) -> Result<Value, Error> {
        let g = match func {
            Value::Global(g) => g,
            Value::Object(name) => return Ok(Value::Object(name)),
            other => return Err(self.err(format!("cannot call a {}", other.describe(&self.out)))),
        };
        match g {
            Global::RebuildTensor | Global::RebuildTensorV2 => {
                let a = self.args_tuple(args, "_rebuild_tensor")?;
                if a.len() < 4 {
                    return Err(self.err("_rebuild_tensor needs at least 4 arguments"));
                }
                let t = self.rebuild_tensor(&a[0], &a[1], &a[2], &a[3], None)?;
                Ok(Value::Tensor(Rc::new(t)))
            }
            Global::RebuildTensorV3 => {
                let a = self.args_tuple(args, "_rebuild_tensor_v3")?;
                if a.len() < 7 {
                    return Err(self.err("_rebuild_tensor_v3 needs at least 7 arguments"));
                }
                let dtype = match &a[6] {
                    Value::DType(d) => *d,
                    other => {
                        return Err(self.err(format!(
                            "_rebuild_tensor_v3 dtype is a {}",
                            other.describe(&self.out)
                        )))
                    }
                };
                let t = self.rebuild_tensor(&a[0], &a[1], &a[2], &a[3], Some(dtype))?;
                Ok(Value::Tensor(Rc::new(t)))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let a = self.args_tuple(args, "_rebuild_parameter")?;
                match a.first() {
                    Some(v @ Value::Tensor(_)) => Ok(v.clone()),
                    Some(v @ Value::Object(_)) => Ok(v.clone()),
                    _ => Err(self.err("_rebuild_parameter needs a tensor")),
                }
            }
            Global::RebuildFromTypeV2 => {
                // (func, new_type, args, state): rebuild with func(*args), ignore type and state
                let a = self.args_tuple(args, "_rebuild_from_type_v2")?;
                if a.len() < 3 {
                    return Err(self.err("_rebuild_from_type_v2 needs 4 arguments"));
                }
                let f = a[0].clone();
                if matches!(f, Value::Global(Global::RebuildFromTypeV2)) {
                    return Err(self.err("nested _rebuild_from_type_v2"));
                }
                let inner = a[2].clone();
                self.call(f, inner)
            }
            Global::OrderedDict | Global::Dict => {
                let a = self.args_tuple(args, "dict")?;
                let d = self.new_dict();
                if let (Global::OrderedDict, Value::Dict(i)) = (&g, &d) {
                    self.out.dicts[*i].ordered = true;
                }
                if let Some(first) = a.first() {
                    let pairs = self.copy_items(Some(first))?;
                    let mut items = Vec::with_capacity(pairs.len() * 2);
                    for p in pairs {
                        if let Value::Tuple(kv) = p {
                            if kv.len() == 2 {
                                items.push(kv[0].clone());
                                items.push(kv[1].clone());
                            }
                        }
                    }
                    self.dict_set_items(&d, items)?;
                }
                Ok(d)
            }
            Global::List | Global::Set => {
                let a = self.args_tuple(args, "list")?;
                let items = self.copy_items(a.first())?;
                Ok(self.new_list(items))
            }
            Global::Tuple | Global::TorchSize => {
                let a = self.args_tuple(args, "tuple")?;
                let items = self.copy_items(a.first())?;
                self.tuple(items)
            }
            Global::Device => {
                let a = self.args_tuple(args, "torch.device")?;
                let name: Rc<str> = match (a.first(), a.get(1)) {
                    (Some(Value::Str(s)), Some(Value::Int(i))) => format!("{s}:{i}").into(),
                    (Some(Value::Str(s)), _) => s.clone(),
                    _ => "unknown".into(),
                };
                Ok(Value::Device(name))
            }
            Global::StorageType(_) | Global::UntypedStorage | Global::TensorClass => {
                Ok(Value::Object(format!("{g:?}").into()))
            }
            Global::Other(name) => Ok(Value::Object(name)),
        }
    }

    fn as_usize(&self, v: &Value, what: &str) -> Result<usize, Error> {
        match v {
            Value::Int(i) => {
                usize::try_from(*i).map_err(|_| self.err(format!("{what} is negative ({i})")))
            }
            Value::Bool(b) => Ok(*b as usize),
            other => Err(self.err(format!(
                "{what} is a {}, not an integer",
                other.describe(&self.out)
            ))),
        }
    }

    fn as_usize_seq(&self, v: &Value, what: &str) -> Result<Vec<usize>, Error> {
        let items: &[Value] = match v {
            Value::Tuple(t) => t,
            Value::List(l) => &self.out.lists[*l],
            other => {
                return Err(self.err(format!(
                    "{what} is a {}, not a tuple",
                    other.describe(&self.out)
                )))
            }
        };
        if items.len() > MAX_DIMS {
            return Err(Error::Limit(format!(
                "tensor with {} dimensions (at most {MAX_DIMS})",
                items.len()
            )));
        }
        items.iter().map(|x| self.as_usize(x, what)).collect()
    }

    fn rebuild_tensor(
        &self,
        storage: &Value,
        offset: &Value,
        size: &Value,
        stride: &Value,
        dtype: Option<DType>,
    ) -> Result<TensorRef, Error> {
        let storage = match storage {
            Value::Storage(s) => s.clone(),
            other => {
                return Err(self.err(format!(
                    "tensor rebuilt from a {}, not a storage",
                    other.describe(&self.out)
                )))
            }
        };
        let dtype = dtype.unwrap_or(storage.dtype);
        let offset = self.as_usize(offset, "storage offset")?;
        let shape = self.as_usize_seq(size, "tensor size")?;
        let strides = self.as_usize_seq(stride, "tensor stride")?;
        if shape.len() != strides.len() {
            return Err(self.err(format!(
                "tensor size {shape:?} and stride {strides:?} differ in length"
            )));
        }
        let overflow = || {
            self.err(format!(
                "tensor size {shape:?} / stride {strides:?} overflows"
            ))
        };
        checked_numel(&shape).ok_or_else(overflow)?;
        let extent = checked_extent(&shape, &strides).ok_or_else(overflow)?;
        // Bounds, in bytes, inside the (view of the) storage.
        let (view_off, view_len) = storage.view.unwrap_or((0, storage.numel));
        let view_bytes = view_len
            .checked_mul(storage.dtype.size())
            .ok_or_else(overflow)?;
        let esz = dtype.size();
        if extent > 0 {
            let end = offset
                .checked_add(extent)
                .and_then(|e| e.checked_mul(esz))
                .ok_or_else(overflow)?;
            if end > view_bytes {
                return Err(self.err(format!(
                    "tensor (offset {offset}, size {shape:?}, stride {strides:?}) reaches byte {end} \
                     but storage '{}' holds only {view_bytes} bytes",
                    storage.key
                )));
            }
        }
        // Absolute offset in elements of `dtype` from the root storage start.
        let view_off_bytes = view_off
            .checked_mul(storage.dtype.size())
            .ok_or_else(overflow)?;
        if view_off_bytes.checked_rem(esz) != Some(0) {
            return Err(Error::Unsupported(format!(
                "storage view of '{}' not aligned to {dtype} elements",
                storage.key
            )));
        }
        let offset = offset
            .checked_add(view_off_bytes / esz)
            .ok_or_else(overflow)?;
        Ok(TensorRef {
            storage,
            dtype,
            shape,
            strides,
            offset,
        })
    }

    /// BINPERSID: `('storage', storage_type, key, location, numel[, view_metadata])`.
    fn persistent_load(&mut self, pid: Value) -> Result<Value, Error> {
        let t = match &pid {
            Value::Tuple(t) => t.clone(),
            other => {
                return Err(self.err(format!(
                    "persistent id is a {}, not a tuple",
                    other.describe(&self.out)
                )))
            }
        };
        match t.first() {
            Some(Value::Str(s)) if &**s == "storage" => {}
            Some(Value::Str(s)) => {
                return Err(Error::Unsupported(format!(
                    "persistent id of kind '{}' (only 'storage' is supported)",
                    truncate(s, 40)
                )))
            }
            _ => return Err(self.err("persistent id does not start with a string")),
        }
        if t.len() < 5 {
            return Err(self.err(format!(
                "storage persistent id has {} fields, expected 5 or 6",
                t.len()
            )));
        }
        let dtype = match &t[1] {
            Value::Global(Global::StorageType(d)) => *d,
            Value::Global(Global::UntypedStorage) => DType::U8,
            Value::DType(d) => *d,
            other => {
                return Err(self.err(format!(
                    "storage type is a {}, not a torch storage class",
                    other.describe(&self.out)
                )))
            }
        };
        let key: String = match &t[2] {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => {
                return Err(self.err(format!("storage key is a {}", other.describe(&self.out))))
            }
        };
        let numel = self.as_usize(&t[4], "storage size")?;
        numel
            .checked_mul(dtype.size())
            .ok_or_else(|| self.err(format!("storage size {numel} overflows")))?;
        let root = match self.storage_keys.get(&key) {
            Some(r) => {
                if r.dtype != dtype || r.numel != numel {
                    return Err(Error::Storage {
                        key,
                        message: format!(
                            "declared twice, as {} x {} and as {} x {}",
                            r.numel, r.dtype, numel, dtype
                        ),
                    });
                }
                r.clone()
            }
            None => {
                let r = Rc::new(StorageRef {
                    key: key.clone(),
                    dtype,
                    numel,
                    view: None,
                });
                self.storage_keys.insert(key.clone(), r.clone());
                self.out.storages.push(r.clone());
                r
            }
        };
        // Legacy view metadata: (view_key, offset, size)
        match t.get(5) {
            None | Some(Value::None) => Ok(Value::Storage(root)),
            // Some writers name an untyped storage and give the dtype here.
            Some(Value::DType(d)) if root.dtype == DType::U8 && *d != DType::U8 => {
                Err(Error::Unsupported(format!(
                    "untyped storage '{key}' re-typed as {d} in its persistent id"
                )))
            }
            Some(Value::DType(_)) => Ok(Value::Storage(root)),
            Some(Value::Tuple(vm)) if vm.items.len() == 3 => {
                let vm = &vm.items;
                let off = self.as_usize(&vm[1], "storage view offset")?;
                let len = self.as_usize(&vm[2], "storage view size")?;
                if off.checked_add(len).is_none_or(|e| e > numel) {
                    return Err(Error::Storage {
                        key,
                        message: format!(
                            "view [{off}, {off}+{len}) exceeds the storage's {numel} elements"
                        ),
                    });
                }
                Ok(Value::Storage(Rc::new(StorageRef {
                    key,
                    dtype,
                    numel,
                    view: Some((off, len)),
                })))
            }
            Some(other) => Err(self.err(format!(
                "storage view metadata is a {}",
                other.describe(&self.out)
            ))),
        }
    }
}

/// LONG1/LONG4 payload: little-endian two's complement.
fn long_value(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(b);
        return Value::Int(i64::from_le_bytes(a));
    }
    Value::BigInt(b.into())
}
