//! PyTorch checkpoints: the zip format (PyTorch >= 1.6) and the legacy
//! sequential format (PyTorch < 1.6).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::rc::Rc;
use std::sync::Arc;

use zip::ZipArchive;

use crate::pickle::{unpickle, StorageRef, Unpickled, Value};
use crate::select::{select, Selection};
use crate::value::{Converter, PyValue};
use crate::{Checkpoint, Error, Format, Storage, TensorView};

/// Largest `data.pkl` accepted (the pickle itself, not the tensor data).
const MAX_PICKLE_BYTES: u64 = 1 << 30;
/// Largest ratio of decompressed to compressed size accepted for a zip record.
const MAX_DEFLATE_RATIO: u64 = 1100;

/// `0x1950a86a20f9469cfc6c`, the legacy format's magic number, little-endian.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

fn zip_err(e: zip::result::ZipError) -> Error {
    Error::Zip(e.to_string())
}

/// Swaps every `size`-byte element of `data` in place (big-endian files).
fn byteswap(data: &mut [u8], size: usize) {
    if size > 1 {
        for c in data.chunks_exact_mut(size) {
            c.reverse();
        }
    }
}

/// Turns the selected tensor references into views, reading each storage
/// once through `read` (which returns its bytes, already little-endian).
fn materialise(
    format: Format,
    sel: Selection,
    big_endian: bool,
    mut read: impl FnMut(&StorageRef) -> Result<Vec<u8>, Error>,
) -> Result<Checkpoint, Error> {
    let mut cache: HashMap<String, Arc<Storage>> = HashMap::new();
    let mut tensors = Vec::with_capacity(sel.tensors.len());
    for (name, t) in sel.tensors {
        if big_endian && t.dtype != t.storage.dtype {
            return Err(Error::Unsupported(format!(
                "tensor '{name}' reinterprets a big-endian {} storage as {}",
                t.storage.dtype, t.dtype
            )));
        }
        let storage = match cache.get(&t.storage.key) {
            Some(s) => s.clone(),
            None => {
                let bytes = read(&t.storage)?;
                let s = Arc::new(Storage::new(t.storage.key.clone(), t.storage.dtype, bytes));
                cache.insert(t.storage.key.clone(), s.clone());
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
        // Already checked against the declared size; the bytes read must agree.
        view.validate().map_err(|e| match e {
            Error::Tensor { message, .. } => Error::Tensor {
                name: Some(name.clone()),
                message,
            },
            e => e,
        })?;
        tensors.push((name, view));
    }
    Ok(Checkpoint {
        format,
        tensors,
        extra_keys: sel.extra_keys,
        extras: sel.extras,
        total_steps: sel.total_steps,
        skipped: sel.skipped,
    })
}

fn needed_bytes(s: &StorageRef) -> Result<usize, Error> {
    s.numel
        .checked_mul(s.dtype.size())
        .ok_or_else(|| Error::Storage {
            key: s.key.clone(),
            message: format!("size {} overflows", s.numel),
        })
}

/// An opened zip-format checkpoint: its interpreted `data.pkl` and what is
/// needed to read the storages it names.
struct ZipSource<R: Read + Seek> {
    zip: ZipArchive<R>,
    prefix: String,
    cd_start: u64,
    big_endian: bool,
    pickle_len: usize,
}

fn open_zip<R: Read + Seek>(reader: R) -> Result<(Unpickled, ZipSource<R>), Error> {
    let mut zip = ZipArchive::new(reader).map_err(zip_err)?;
    let cd_start = zip.central_directory_start();
    let pkl_name = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| (n.matches('/').count(), n.to_string()))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::NotACheckpoint(
                "a zip archive without data.pkl (not a PyTorch checkpoint)".into(),
            )
        })?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_owned();

    let pkl = read_record(&mut zip, &pkl_name, None, cd_start, MAX_PICKLE_BYTES)?;

    let mut big_endian = false;
    let bo_name = format!("{prefix}byteorder");
    if zip.index_for_name(&bo_name).is_some() {
        let bo = read_record(&mut zip, &bo_name, None, cd_start, 64)?;
        match String::from_utf8_lossy(&bo).trim() {
            "little" => {}
            "big" => big_endian = true,
            other => {
                return Err(Error::Unsupported(format!(
                    "byteorder record says {:?}",
                    crate::pickle::truncate(other, 20)
                )))
            }
        }
    }

    let unpickled = unpickle(&pkl, &pkl_name)?;
    let source = ZipSource {
        zip,
        prefix,
        cd_start,
        big_endian,
        pickle_len: pkl.len(),
    };
    Ok((unpickled, source))
}

impl<R: Read + Seek> ZipSource<R> {
    /// The little-endian bytes of storage `s`, exactly as many as it declares.
    fn read_storage(&mut self, s: &StorageRef) -> Result<Vec<u8>, Error> {
        let need = needed_bytes(s)?;
        let name = format!("{}data/{}", self.prefix, s.key);
        let zip = &mut self.zip;
        let mut bytes = read_record(zip, &name, Some(&s.key), self.cd_start, need as u64).map_err(
            |e| match e {
                Error::Zip(m) if zip.index_for_name(&name).is_none() => Error::Storage {
                    key: s.key.clone(),
                    message: format!("record {name} is missing from the archive ({m})"),
                },
                e => e,
            },
        )?;
        if bytes.len() < need {
            return Err(Error::Storage {
                key: s.key.clone(),
                message: format!(
                    "declared as {} x {} ({need} bytes) but record {name} holds only {} bytes",
                    s.numel,
                    s.dtype,
                    bytes.len()
                ),
            });
        }
        bytes.truncate(need);
        if self.big_endian {
            byteswap(&mut bytes, s.dtype.size());
        }
        Ok(bytes)
    }
}

/// Reads the state dict of a zip-format checkpoint.
pub(crate) fn load_zip<R: Read + Seek>(reader: R) -> Result<Checkpoint, Error> {
    let (unpickled, mut src) = open_zip(reader)?;
    let sel = select(&unpickled)?;
    let big_endian = src.big_endian;
    materialise(Format::PthZip, sel, big_endian, |s| src.read_storage(s))
}

/// Reads everything a zip-format checkpoint holds.
pub(crate) fn load_zip_value<R: Read + Seek>(reader: R) -> Result<PyValue, Error> {
    let (unpickled, mut src) = open_zip(reader)?;
    let (len, big_endian) = (src.pickle_len, src.big_endian);
    Converter::new(&unpickled, len, big_endian, |s| src.read_storage(s)).root()
}

/// Reads at most `limit` bytes of record `name` (the whole record when it is
/// smaller). `storage` names the storage for error messages.
fn read_record<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    storage: Option<&str>,
    cd_start: u64,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    let mut f = zip.by_name(name).map_err(zip_err)?;
    let size = f.size();
    let csize = f.compressed_size();
    let bad = |message: String| match storage {
        Some(k) => Error::Storage {
            key: k.to_owned(),
            message,
        },
        None => Error::Zip(message),
    };
    if csize > cd_start {
        return Err(bad(format!(
            "record {name} claims {csize} bytes, more than the archive holds"
        )));
    }
    let stored = f.compression() == zip::CompressionMethod::Stored;
    if stored && size > csize {
        return Err(bad(format!(
            "stored record {name} claims {size} bytes but occupies {csize}"
        )));
    }
    if !stored && size > csize.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(4096) {
        return Err(bad(format!(
            "record {name} claims to inflate {csize} bytes to {size} (a zip bomb?)"
        )));
    }
    if storage.is_none() && size > limit {
        return Err(Error::Limit(format!(
            "record {name} is {size} bytes (at most {limit} accepted)"
        )));
    }
    let want = size.min(limit);
    let cap = usize::try_from(want).map_err(|_| bad(format!("record {name} is too large")))?;
    let mut buf = Vec::with_capacity(cap);
    (&mut f)
        .take(want)
        .read_to_end(&mut buf)
        .map_err(|e| bad(format!("cannot read record {name}: {e}")))?;
    if (buf.len() as u64) < want {
        return Err(bad(format!(
            "record {name} is truncated: {} of {want} bytes",
            buf.len()
        )));
    }
    Ok(buf)
}

/// Reads a legacy (PyTorch < 1.6) checkpoint: magic number, protocol version,
/// sys_info, main pickle, storage keys, then each storage's element count and data.
fn open_legacy(bytes: &[u8]) -> Result<LegacySource<'_>, Error> {
    let magic = unpickle(bytes, "magic number")?;
    if !matches!(&magic.root, Some(Value::BigInt(b)) if **b == LEGACY_MAGIC) {
        return Err(Error::NotACheckpoint(
            "a Python pickle, but not a PyTorch checkpoint (no PyTorch magic number)".into(),
        ));
    }
    let mut pos = magic.end;

    let proto = unpickle(&bytes[pos..], "protocol version")?;
    pos += proto.end;
    match proto.root {
        Some(Value::Int(LEGACY_PROTOCOL)) => {}
        Some(Value::Int(v)) => {
            return Err(Error::Unsupported(format!(
                "legacy protocol version {v} (expected {LEGACY_PROTOCOL})"
            )))
        }
        _ => {
            return Err(Error::Unsupported(
                "legacy protocol version is not an integer".into(),
            ))
        }
    }

    let sys_info = unpickle(&bytes[pos..], "sys_info")?;
    pos += sys_info.end;
    let mut big_endian = false;
    if let Some(Value::Dict(d)) = &sys_info.root {
        if let Some(Value::Bool(little)) = sys_info.dicts[*d].get("little_endian") {
            big_endian = !little;
        }
    }

    let main = unpickle(&bytes[pos..], "main pickle")?;
    pos += main.end;

    let keys = unpickle(&bytes[pos..], "storage keys")?;
    pos += keys.end;
    let key_list: Vec<String> = match &keys.root {
        Some(Value::List(l)) => keys.lists[*l]
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.to_string()),
                Value::Int(i) => Ok(i.to_string()),
                _ => Err(Error::Unsupported(
                    "storage key list holds a non-string".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(Error::Unsupported("storage key list is not a list".into())),
    };

    // Locate every storage's data (element count, then raw bytes).
    let declared: HashMap<&str, &Rc<StorageRef>> =
        main.storages.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut located: HashMap<String, (usize, usize)> = HashMap::new();
    for key in &key_list {
        let s = declared.get(key.as_str()).ok_or_else(|| Error::Storage {
            key: key.clone(),
            message: "has data in the file but is never used by the pickle".into(),
        })?;
        let remaining = bytes.len() - pos;
        if remaining < 8 {
            return Err(Error::Storage {
                key: key.clone(),
                message: format!("truncated file: element count missing ({remaining} bytes left)"),
            });
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&bytes[pos..pos + 8]);
        let count = if big_endian {
            u64::from_be_bytes(c)
        } else {
            u64::from_le_bytes(c)
        };
        pos += 8;
        let esz = s.dtype.size() as u64;
        let nbytes = count
            .checked_mul(esz)
            .filter(|&n| n <= (bytes.len() - pos) as u64);
        let Some(nbytes) = nbytes else {
            return Err(Error::Storage {
                key: key.clone(),
                message: format!(
                    "claims {count} elements of {} but only {} bytes remain in the file",
                    s.dtype,
                    bytes.len() - pos
                ),
            });
        };
        if count != s.numel as u64 {
            return Err(Error::Storage {
                key: key.clone(),
                message: format!("holds {count} elements but the pickle declares {}", s.numel),
            });
        }
        let nbytes = nbytes as usize;
        if located.insert(key.clone(), (pos, nbytes)).is_some() {
            return Err(Error::Storage {
                key: key.clone(),
                message: "listed twice".into(),
            });
        }
        pos += nbytes;
    }

    Ok(LegacySource {
        bytes,
        pickle_len: main.end,
        main,
        located,
        big_endian,
    })
}

/// An opened legacy checkpoint: its main pickle and where each storage's
/// data lies in the file.
struct LegacySource<'a> {
    bytes: &'a [u8],
    main: Unpickled,
    located: HashMap<String, (usize, usize)>,
    big_endian: bool,
    pickle_len: usize,
}

impl LegacySource<'_> {
    fn read_storage(&self, s: &StorageRef) -> Result<Vec<u8>, Error> {
        let &(start, len) = self.located.get(&s.key).ok_or_else(|| Error::Storage {
            key: s.key.clone(),
            message: "its data is missing from the file".into(),
        })?;
        let mut data = self.bytes[start..start + len].to_vec();
        if self.big_endian {
            byteswap(&mut data, s.dtype.size());
        }
        Ok(data)
    }
}

/// Reads the state dict of a legacy (PyTorch < 1.6) checkpoint.
pub(crate) fn load_legacy(bytes: &[u8]) -> Result<Checkpoint, Error> {
    let src = open_legacy(bytes)?;
    let sel = select(&src.main)?;
    materialise(Format::PthLegacy, sel, src.big_endian, |s| {
        src.read_storage(s)
    })
}

/// Reads everything a legacy checkpoint holds.
pub(crate) fn load_legacy_value(bytes: &[u8]) -> Result<PyValue, Error> {
    let src = open_legacy(bytes)?;
    Converter::new(&src.main, src.pickle_len, src.big_endian, |s| {
        src.read_storage(s)
    })
    .root()
}
