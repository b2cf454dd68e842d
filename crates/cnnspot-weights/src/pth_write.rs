//! Writing PyTorch zip-format checkpoints, byte for byte as `torch.save`
//! (PyTorch 2.x, default zip serialization, pickle protocol 2) writes them.
//!
//! The pickle follows CPython's protocol-2 pickler as `torch.save` drives it:
//! every container, tuple, string and global is memoized (BINPUT) right after
//! it is written and later references to an equal string or the same global
//! are BINGETs (PyTorch's own strings such as `'storage'` and `'cpu'`, and
//! the interned literals of an optimizer's state, come out that way); dicts
//! and lists are filled with SETITEMS/APPENDS in batches of 1000 (as CPython's
//! C pickler batches exact dicts and lists, and OrderedDict items); a tensor is
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False,
//! OrderedDict())` whose storage is the persistent id
//! `('storage', torch.<Type>Storage, '<key>', 'cpu', numel)`.
//!
//! Storages get keys `0`, `1`, ... in order of first use; views sharing one
//! [`crate::Storage`] share its record, as views of one tensor do in PyTorch.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::value::PyValue;
use crate::zip_write::ZipWriter;
use crate::{DType, Error, Storage, TensorView};

/// Options of the zip-format writer; the defaults are what `torch.save` does.
#[derive(Debug, Clone, Default)]
pub struct PthOptions {
    /// Top folder of every record (`<archive>/data.pkl`, ...). Default: the
    /// file name without its extension for [`crate::save_pth`] (as
    /// `torch.save(obj, path)` does), `archive` for in-memory output (as
    /// `torch.save(obj, buffer)` does). Readers ignore it.
    pub archive_name: Option<String>,
    /// Content of the `.data/serialization_id` record. Default: 40 digits,
    /// like PyTorch's, from a per-process random number and the records' CRCs.
    pub serialization_id: Option<String>,
}

/// Largest nesting of containers the writer accepts (Python's own pickler
/// would hit its recursion limit near here too).
const MAX_DEPTH: usize = 500;
/// CPython's `_BATCHSIZE` for SETITEMS / APPENDS.
const BATCH: usize = 1000;

fn storage_class(d: DType) -> &'static str {
    match d {
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::F32 => "FloatStorage",
        DType::F64 => "DoubleStorage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::I16 => "ShortStorage",
        DType::I8 => "CharStorage",
        DType::U8 => "ByteStorage",
        DType::Bool => "BoolStorage",
    }
}

/// A storage to write: its key is its index in [`Pickled::storages`].
pub(crate) struct OutStorage {
    storage: Arc<Storage>,
    nbytes: usize,
}

pub(crate) struct Pickled {
    pub data: Vec<u8>,
    pub storages: Vec<OutStorage>,
}

struct Pickler {
    out: Vec<u8>,
    memo_len: u32,
    strings: HashMap<String, u32>,
    globals: HashMap<(&'static str, &'static str), u32>,
    storage_ids: HashMap<*const Storage, usize>,
    storages: Vec<OutStorage>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

impl Pickler {
    fn memoize(&mut self) -> Result<u32, Error> {
        let i = self.memo_len;
        if i < 256 {
            self.out.extend_from_slice(&[b'q', i as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&i.to_le_bytes());
        }
        self.memo_len = i
            .checked_add(1)
            .ok_or_else(|| invalid("more than 2^32 pickled objects"))?;
        Ok(i)
    }

    fn get(&mut self, i: u32) {
        if i < 256 {
            self.out.extend_from_slice(&[b'h', i as u8]);
        } else {
            self.out.push(b'j');
            self.out.extend_from_slice(&i.to_le_bytes());
        }
    }

    fn int(&mut self, v: i64) {
        if (0..=0xff).contains(&v) {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if (0..=0xffff).contains(&v) {
            self.out.push(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            // LONG1 with CPython's minimal two's-complement encoding
            let mut b = v.to_le_bytes().to_vec();
            while b.len() > 1 {
                let last = b[b.len() - 1];
                let sign_of_prev = b[b.len() - 2] & 0x80;
                if (last == 0 && sign_of_prev == 0) || (last == 0xff && sign_of_prev != 0) {
                    b.pop();
                } else {
                    break;
                }
            }
            self.out.extend_from_slice(&[0x8a, b.len() as u8]);
            self.out.extend_from_slice(&b);
        }
    }

    fn size(&mut self, v: usize) -> Result<(), Error> {
        let v = i64::try_from(v).map_err(|_| invalid(format!("size {v} does not fit an int64")))?;
        self.int(v);
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), Error> {
        if let Some(&i) = self.strings.get(s) {
            self.get(i);
            return Ok(());
        }
        let n = u32::try_from(s.len()).map_err(|_| invalid("string longer than 4 GiB"))?;
        self.out.push(b'X');
        self.out.extend_from_slice(&n.to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        let i = self.memoize()?;
        self.strings.insert(s.to_owned(), i);
        Ok(())
    }

    fn global(&mut self, module: &'static str, name: &'static str) -> Result<(), Error> {
        if let Some(&i) = self.globals.get(&(module, name)) {
            self.get(i);
            return Ok(());
        }
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        let i = self.memoize()?;
        self.globals.insert((module, name), i);
        Ok(())
    }

    /// A tuple whose items are written by `items`, which reports their number.
    fn tuple_with(
        &mut self,
        n: usize,
        items: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match n {
            0 => {
                items(self)?;
                self.out.push(b')');
                return Ok(());
            }
            1..=3 => {
                items(self)?;
                self.out.push([0x85, 0x86, 0x87][n - 1]);
            }
            _ => {
                self.out.push(b'(');
                items(self)?;
                self.out.push(b't');
            }
        }
        self.memoize()?;
        Ok(())
    }

    fn usize_tuple(&mut self, v: &[usize]) -> Result<(), Error> {
        self.tuple_with(v.len(), |p| v.iter().try_for_each(|&x| p.size(x)))
    }

    /// Items of an OrderedDict, as CPython's `batch_dict` writes an
    /// iterator: full batches with MARK ... SETITEMS, a lone last item with
    /// SETITEM.
    fn batched_iter<T>(
        &mut self,
        items: &[T],
        mut each: impl FnMut(&mut Self, &T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for chunk in items.chunks(BATCH) {
            if chunk.len() > 1 {
                self.out.push(b'(');
            }
            for it in chunk {
                each(self, it)?;
            }
            self.out.push(if chunk.len() > 1 { b'u' } else { b's' });
        }
        Ok(())
    }

    /// Items of an exact dict or list, as CPython's `batch_dict_exact` /
    /// `batch_list_exact` write them: one item alone with SETITEM / APPEND,
    /// otherwise every batch (a lone last one too) with MARK ... SETITEMS /
    /// APPENDS; a dict whose size is a multiple of the batch size ends with
    /// an empty batch (CPython's do-while loop).
    fn batched_exact<T>(
        &mut self,
        items: &[T],
        one: u8,
        many: u8,
        mut each: impl FnMut(&mut Self, &T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if items.len() == 1 {
            each(self, &items[0])?;
            self.out.push(one);
            return Ok(());
        }
        let trailing_empty =
            many == b'u' && items.chunks(BATCH).last().is_some_and(|c| c.len() == BATCH);
        for chunk in items.chunks(BATCH) {
            self.out.push(b'(');
            for it in chunk {
                each(self, it)?;
            }
            self.out.push(many);
        }
        if trailing_empty {
            self.out.extend_from_slice(&[b'(', many]);
        }
        Ok(())
    }

    fn value(&mut self, v: &PyValue, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("values nested deeper than {MAX_DEPTH}")));
        }
        match v {
            PyValue::None => self.out.push(b'N'),
            PyValue::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            PyValue::Int(i) => self.int(*i),
            PyValue::Float(x) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&x.to_be_bytes());
            }
            PyValue::Str(s) => self.string(s)?,
            PyValue::Tuple(items) => self.tuple_with(items.len(), |p| {
                items.iter().try_for_each(|x| p.value(x, depth + 1))
            })?,
            PyValue::List(items) => {
                self.out.push(b']');
                self.memoize()?;
                self.batched_exact(items, b'a', b'e', |p, x| p.value(x, depth + 1))?;
            }
            PyValue::Dict(entries) => {
                self.out.push(b'}');
                self.memoize()?;
                self.batched_exact(entries, b's', b'u', |p, (k, x)| {
                    p.value(k, depth + 1)?;
                    p.value(x, depth + 1)
                })?;
            }
            PyValue::OrderedDict(entries) => {
                self.ordered_dict_head()?;
                self.batched_iter(entries, |p, (k, x)| {
                    p.string(k)?;
                    p.value(x, depth + 1)
                })?;
            }
            PyValue::Tensor(t) => self.tensor(t)?,
            PyValue::Opaque(d) => {
                return Err(invalid(format!(
                    "cannot write an unsupported object ({d}) to a checkpoint"
                )))
            }
        }
        Ok(())
    }

    /// `OrderedDict()`: the class, no arguments, REDUCE, as `__reduce_ex__` gives.
    fn ordered_dict_head(&mut self) -> Result<(), Error> {
        self.global("collections", "OrderedDict")?;
        self.out.extend_from_slice(b")R");
        self.memoize()?;
        Ok(())
    }

    fn tensor(&mut self, t: &TensorView) -> Result<(), Error> {
        t.validate()?;
        // A view reading its storage as another dtype has no PyTorch
        // equivalent in one storage: give it a storage of its own.
        let owned;
        let t = if t.dtype != t.storage.dtype() {
            owned = t.to_contiguous();
            &owned
        } else {
            t
        };
        let key = match self.storage_ids.get(&Arc::as_ptr(&t.storage)) {
            Some(&k) => k,
            None => {
                let k = self.storages.len();
                let numel = t.storage.numel();
                self.storages.push(OutStorage {
                    storage: t.storage.clone(),
                    nbytes: numel * t.dtype.size(),
                });
                self.storage_ids.insert(Arc::as_ptr(&t.storage), k);
                k
            }
        };
        let numel = self.storages[key].storage.numel();

        self.global("torch._utils", "_rebuild_tensor_v2")?;
        self.out.push(b'(');
        // persistent id of the storage
        self.out.push(b'(');
        self.string("storage")?;
        self.global("torch", storage_class(t.dtype))?;
        self.string(&key.to_string())?;
        self.string("cpu")?;
        self.size(numel)?;
        self.out.push(b't');
        self.memoize()?;
        self.out.push(b'Q');
        self.size(t.offset)?;
        self.usize_tuple(&t.shape)?;
        self.usize_tuple(&t.strides)?;
        self.out.push(0x89); // requires_grad=False
        self.ordered_dict_head()?; // no backward hooks
        self.out.push(b't');
        self.memoize()?;
        self.out.push(b'R');
        self.memoize()?;
        Ok(())
    }
}

/// Pickles `value` as `torch.save` does; nothing is written anywhere, so any
/// problem with the value is found before a file is touched.
pub(crate) fn pickle(value: &PyValue) -> Result<Pickled, Error> {
    let mut p = Pickler {
        out: vec![0x80, 2],
        memo_len: 0,
        strings: HashMap::new(),
        globals: HashMap::new(),
        storage_ids: HashMap::new(),
        storages: Vec::new(),
    };
    p.value(value, 0)?;
    p.out.push(b'.');
    Ok(Pickled {
        data: p.out,
        storages: p.storages,
    })
}

/// The archive name `torch.save(obj, path)` would use: the file name up to
/// its last dot (PyTorch's `basename`), or `archive` when that is empty or
/// not plain ASCII (PyTorch then writes through a Python stream, named so).
pub(crate) fn archive_name_for(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = match name.rfind('.') {
        Some(i) => &name[..i],
        None => &name[..],
    };
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        "archive".to_owned()
    } else {
        stem.to_owned()
    }
}

fn serialization_id(crc_digest: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per process: a unique-enough number
    // without a dependency on a random number generator.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.write_u32(std::process::id());
    format!("{:020}{:020}", h.finish(), crc_digest)
}

/// Writes the whole archive for `p` to `w`: the records in `torch.save`'s order.
pub(crate) fn write_archive<W: Write>(
    w: W,
    p: &Pickled,
    archive: &str,
    options: &PthOptions,
) -> std::io::Result<W> {
    let mut z = ZipWriter::new(w);
    z.record(&format!("{archive}/data.pkl"), &[&p.data])?;
    z.record(&format!("{archive}/.format_version"), &[b"1"])?;
    z.record(&format!("{archive}/.storage_alignment"), &[b"64"])?;
    z.record(&format!("{archive}/byteorder"), &[b"little"])?;
    for (k, s) in p.storages.iter().enumerate() {
        let bytes = &s.storage.bytes()[..s.nbytes];
        z.record(&format!("{archive}/data/{k}"), &[bytes])?;
    }
    z.record(&format!("{archive}/version"), &[b"3\n"])?;
    let id = match &options.serialization_id {
        Some(id) => id.clone(),
        None => serialization_id(z.crc_digest()),
    };
    z.record(
        &format!("{archive}/.data/serialization_id"),
        &[id.as_bytes()],
    )?;
    z.finish()
}

pub(crate) fn check_archive_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains(['/', '\\']) || name.len() > 1000 {
        return Err(invalid(format!(
            "archive name {name:?} must be non-empty, short and without slashes"
        )));
    }
    Ok(())
}
