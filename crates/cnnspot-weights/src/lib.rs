//! Safe reading of PyTorch checkpoints and safetensors files; writing of
//! safetensors files and of PyTorch zip-format checkpoints.
//!
//! Supported inputs, recognised by their first bytes (never by extension):
//!
//! * zip-format `.pth` files (PyTorch >= 1.6): `<prefix>/data.pkl` plus one
//!   record per storage under `<prefix>/data/`;
//! * legacy `.pth` files (PyTorch < 1.6): a sequence of pickles followed by
//!   the raw storages;
//! * safetensors files.
//!
//! PyTorch pickles are **interpreted, never executed**: a small pickle machine
//! understands the opcodes PyTorch emits and gives meaning to a short
//! whitelist of globals (tensor rebuild functions, `OrderedDict`, storage
//! classes, dtypes, `torch.device`); any other global (an optimizer class,
//! `os.system`, ...) becomes an inert placeholder. Sizes are checked against
//! the bytes actually present and every failure is an [`Error`], never a panic.
//!
//! The state dict is taken from the top-level `model` (the official
//! CNNDetection checkpoints), `state_dict` or `model_state_dict` entry, or is
//! the top-level dict itself; a DataParallel `module.` prefix is removed.
//!
//! Everything else a checkpoint holds (optimizer state, counters) is read by
//! [`load_value`] as a [`PyValue`] tree, under the same whitelist.
//!
//! Checkpoints are written by [`save_pth`] / [`pth_bytes`] exactly as
//! `torch.save(obj, f)` (PyTorch 2.x, zip serialization) writes them, and
//! [`TrainingCheckpoint`] builds CNNDetection's training checkpoints
//! (`{'model', 'optimizer', 'total_steps'}` plus `epoch` and `lr`). Checked
//! once against PyTorch 2.15.0 (PyPI wheel run on CPU, Python 3.11): files
//! written here load with `torch.load(path, weights_only=True)`, `['model']`
//! loads into the network with `load_state_dict(strict=True)` and
//! `['optimizer']` into `torch.optim.Adam` with every moment and step
//! intact; and for the same objects the bytes written here equal
//! `torch.save`'s (tests/pth_write.rs compares against files PyTorch wrote).
//! Not written: the `_metadata` attribute of `state_dict()` (module
//! versions), which PyTorch's loaders treat as optional.
//!
//! ```no_run
//! use cnnspot_weights::{AdamState, TrainingCheckpoint};
//! let model = cnnspot_weights::load(std::path::Path::new("init.pth"))?.tensors;
//! let ck = TrainingCheckpoint {
//!     model,
//!     optimizer: Some(AdamState::new(1e-4, 161)),
//!     total_steps: Some(0),
//!     epoch: Some(0),
//!     lr: Some(1e-4),
//! };
//! ck.save(std::path::Path::new("checkpoints/model_epoch_latest.pth"))?;
//! let resumed = TrainingCheckpoint::load(std::path::Path::new("checkpoints/model_epoch_latest.pth"))?;
//! # Ok::<(), cnnspot_weights::Error>(())
//! ```
//!
//! ```no_run
//! let ckpt = cnnspot_weights::load(std::path::Path::new("blur_jpg_prob0.5.pth"))?;
//! let w = ckpt.get("fc.weight").expect("fc.weight");
//! println!("{} {:?} {}", ckpt.format, w.shape, w.dtype);
//! cnnspot_weights::save_safetensors(&ckpt.tensors, std::path::Path::new("out.safetensors"))?;
//! # Ok::<(), cnnspot_weights::Error>(())
//! ```

#![warn(missing_docs)]

mod detect;
mod dtype;
mod error;
mod pickle;
mod pth;
mod pth_write;
mod safetensors;
mod select;
mod tensor;
mod train_state;
mod value;
mod zip_write;

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

pub use dtype::DType;
pub use error::Error;
pub use pth_write::PthOptions;
pub use select::ExtraValue;
pub use tensor::{contiguous_strides, Storage, TensorView};
pub use train_state::{is_batchnorm_buffer, AdamParamState, AdamState, TrainingCheckpoint};
pub use value::PyValue;

/// The container format of a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// PyTorch >= 1.6 zip archive.
    PthZip,
    /// PyTorch < 1.6 sequential ("legacy") serialization.
    PthLegacy,
    /// safetensors.
    Safetensors,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::PthZip => "PyTorch zip",
            Format::PthLegacy => "PyTorch legacy",
            Format::Safetensors => "safetensors",
        })
    }
}

/// The tensors of a loaded checkpoint and what else its top level held.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file's format.
    pub format: Format,
    /// The state dict's tensors, in file order, names without any `module.` prefix.
    pub tensors: Vec<(String, TensorView)>,
    /// Top-level keys other than the state dict (e.g. `optimizer`,
    /// `total_steps`); for safetensors, the metadata keys.
    pub extra_keys: Vec<String>,
    /// The values under [`Checkpoint::extra_keys`], small scalars as
    /// themselves and anything bigger described.
    pub extras: Vec<(String, ExtraValue)>,
    /// The top-level `total_steps` entry, when it is an integer.
    pub total_steps: Option<i64>,
    /// Entries of the state dict that are not plain tensors (name and
    /// description), e.g. quantized tensors or arbitrary objects; not loaded.
    pub skipped: Vec<(String, String)>,
}

impl Checkpoint {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorView> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The tensor names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }

    /// The extra value under top-level key `key`.
    pub fn extra(&self, key: &str) -> Option<&ExtraValue> {
        self.extras.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Total number of tensor elements.
    pub fn total_numel(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.numel()).sum()
    }
}

fn read_head(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The format of a weight file held in memory, judged by its first bytes;
/// for anything else an [`Error::NotACheckpoint`] saying what it looks like.
pub fn detect_format(bytes: &[u8]) -> Result<Format, Error> {
    detect::sniff(
        &bytes[..bytes.len().min(detect::SNIFF_LEN)],
        bytes.len() as u64,
    )
}

/// The format of the file at `path`, judged by its first bytes (see [`detect_format`]).
pub fn detect_file_format(path: &Path) -> Result<Format, Error> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = [0u8; detect::SNIFF_LEN];
    let n = read_head(&mut f, &mut head).map_err(io)?;
    detect::sniff(&head[..n], len).map_err(|e| e.in_file(path))
}

/// Opens `path` and sniffs its format; the file is left at its start.
fn open_checkpoint(path: &Path) -> Result<(File, Format, u64), Error> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(
            Error::NotACheckpoint("a directory, not a checkpoint file".into()).in_file(path),
        );
    }
    let len = meta.len();
    let mut head = [0u8; detect::SNIFF_LEN];
    let n = read_head(&mut f, &mut head).map_err(io)?;
    let format = detect::sniff(&head[..n], len).map_err(|e| e.in_file(path))?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok((f, format, len))
}

fn read_all(mut f: File, len: u64, path: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.read_to_end(&mut bytes).map_err(|source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(bytes)
}

/// Loads the state dict of the checkpoint at `path` (zip or legacy PyTorch,
/// or safetensors). Errors name the file.
pub fn load(path: &Path) -> Result<Checkpoint, Error> {
    let (f, format, len) = open_checkpoint(path)?;
    let result = match format {
        Format::PthZip => pth::load_zip(BufReader::with_capacity(1 << 16, f)),
        _ => load_as(format, &read_all(f, len, path)?),
    };
    result.map_err(|e| e.in_file(path))
}

/// Loads everything the checkpoint at `path` holds, not only its state dict:
/// the top-level object as a [`PyValue`] tree with its tensors read (e.g.
/// `{'model': OrderedDict, 'optimizer': {...}, 'total_steps': 7}`).
///
/// The pickle is interpreted under the same whitelist as [`load`]: objects
/// of other classes become [`PyValue::Opaque`], nothing is executed. A
/// safetensors file gives an [`PyValue::OrderedDict`] of its tensors.
pub fn load_value(path: &Path) -> Result<PyValue, Error> {
    let (f, format, len) = open_checkpoint(path)?;
    let result = match format {
        Format::PthZip => pth::load_zip_value(BufReader::with_capacity(1 << 16, f)),
        _ => load_value_as(format, &read_all(f, len, path)?),
    };
    result.map_err(|e| e.in_file(path))
}

/// Loads everything a checkpoint held in memory holds (see [`load_value`]).
pub fn load_value_bytes(bytes: &[u8]) -> Result<PyValue, Error> {
    load_value_as(detect_format(bytes)?, bytes)
}

fn load_value_as(format: Format, bytes: &[u8]) -> Result<PyValue, Error> {
    match format {
        Format::PthZip => pth::load_zip_value(Cursor::new(bytes)),
        Format::PthLegacy => pth::load_legacy_value(bytes),
        Format::Safetensors => Ok(PyValue::OrderedDict(
            safetensors::read(bytes)?
                .tensors
                .into_iter()
                .map(|(k, t)| (k, PyValue::Tensor(t)))
                .collect(),
        )),
    }
}

/// Loads the state dict of a checkpoint held in memory (see [`load`]).
pub fn load_bytes(bytes: &[u8]) -> Result<Checkpoint, Error> {
    let format = detect_format(bytes)?;
    load_as(format, bytes)
}

fn load_as(format: Format, bytes: &[u8]) -> Result<Checkpoint, Error> {
    match format {
        Format::PthZip => pth::load_zip(Cursor::new(bytes)),
        Format::PthLegacy => pth::load_legacy(bytes),
        Format::Safetensors => safetensors::read(bytes),
    }
}

/// Writes `tensors` to `path` as safetensors, in the given order, keeping
/// each tensor's dtype and values. Views are materialised contiguously (tensors
/// sharing a storage each get their own copy). The write is atomic: a
/// temporary file in the same folder is synced and renamed over `path`.
pub fn save_safetensors(tensors: &[(String, TensorView)], path: &Path) -> Result<(), Error> {
    save_safetensors_with_metadata(tensors, &[], path)
}

/// Like [`save_safetensors`], also writing string `metadata` into the
/// header's `__metadata__` (read back as [`Checkpoint::extras`]; a
/// `total_steps` entry as [`Checkpoint::total_steps`]).
pub fn save_safetensors_with_metadata(
    tensors: &[(String, TensorView)],
    metadata: &[(String, String)],
    path: &Path,
) -> Result<(), Error> {
    let header = safetensors::header(tensors, metadata).map_err(|e| e.in_file(path))?;
    safetensors::write_atomic(path, |w| safetensors::write_body(w, &header, tensors))
}

/// The bytes of a safetensors file holding `tensors` and `metadata` (see
/// [`save_safetensors_with_metadata`]).
pub fn safetensors_bytes(
    tensors: &[(String, TensorView)],
    metadata: &[(String, String)],
) -> Result<Vec<u8>, Error> {
    let header = safetensors::header(tensors, metadata)?;
    let mut out = Vec::new();
    safetensors::write_body(&mut out, &header, tensors)
        .map_err(|e| Error::InvalidInput(format!("cannot serialise: {e}")))?;
    Ok(out)
}

/// Writes `value` to `path` as a PyTorch zip-format checkpoint, as
/// `torch.save(value, path)` would: loadable by `torch.load` (also with
/// `weights_only=True`), by [`load`] and by [`load_value`].
///
/// The write is atomic: the archive goes to a temporary file in the same
/// folder, which is synced and then renamed over `path`; on any error
/// `path` is untouched and the temporary file removed. The value is checked
/// (no [`PyValue::Opaque`], valid tensor views) before anything is written.
pub fn save_pth(value: &PyValue, path: &Path) -> Result<(), Error> {
    save_pth_with(value, path, &PthOptions::default())
}

/// Like [`save_pth`], with [`PthOptions`].
pub fn save_pth_with(value: &PyValue, path: &Path, options: &PthOptions) -> Result<(), Error> {
    let archive = match &options.archive_name {
        Some(a) => a.clone(),
        None => pth_write::archive_name_for(path),
    };
    pth_write::check_archive_name(&archive).map_err(|e| e.in_file(path))?;
    let pickled = pth_write::pickle(value).map_err(|e| e.in_file(path))?;
    safetensors::write_atomic(path, |w| {
        pth_write::write_archive(w, &pickled, &archive, options).map(|_| ())
    })
}

/// The bytes of the checkpoint [`save_pth`] would write (archive name
/// `archive`, as `torch.save` to a buffer uses).
pub fn pth_bytes(value: &PyValue) -> Result<Vec<u8>, Error> {
    pth_bytes_with(value, &PthOptions::default())
}

/// Like [`pth_bytes`], with [`PthOptions`].
pub fn pth_bytes_with(value: &PyValue, options: &PthOptions) -> Result<Vec<u8>, Error> {
    let archive = options
        .archive_name
        .clone()
        .unwrap_or_else(|| "archive".to_owned());
    pth_write::check_archive_name(&archive)?;
    let pickled = pth_write::pickle(value)?;
    pth_write::write_archive(Vec::new(), &pickled, &archive, options)
        .map_err(|e| Error::InvalidInput(format!("cannot serialise: {e}")))
}
