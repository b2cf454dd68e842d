//! safetensors reading and (atomic) writing.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::select::ExtraValue;
use crate::tensor::{checked_numel, contiguous_strides};
use crate::{Checkpoint, DType, Error, Format, Storage, TensorView};

/// Largest JSON header accepted (the reference implementation's limit).
const MAX_HEADER: u64 = 100_000_000;

fn bad(msg: impl Into<String>) -> Error {
    Error::Safetensors(msg.into())
}

/// Parses a whole safetensors file held in memory.
pub(crate) fn read(bytes: &[u8]) -> Result<Checkpoint, Error> {
    if bytes.len() < 8 {
        return Err(bad("shorter than its 8-byte header length"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER {
        return Err(Error::Limit(format!(
            "safetensors header of {n} bytes (at most {MAX_HEADER})"
        )));
    }
    let header_end = 8 + n as usize;
    if header_end > bytes.len() {
        return Err(bad(format!(
            "header claims {n} bytes but the file holds only {}",
            bytes.len() - 8
        )));
    }
    let header: serde_json::Map<String, Json> = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    let data = &bytes[header_end..];

    let mut extras = Vec::new();
    let mut extra_keys = Vec::new();
    let mut total_steps = None;
    let mut entries = Vec::with_capacity(header.len());
    for (name, info) in &header {
        if name == "__metadata__" {
            let meta = info
                .as_object()
                .ok_or_else(|| bad("__metadata__ is not an object"))?;
            for (k, v) in meta {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad(format!("metadata value of '{k}' is not a string")))?;
                if k == "total_steps" {
                    total_steps = s.trim().parse::<i64>().ok();
                }
                extra_keys.push(k.clone());
                extras.push((k.clone(), ExtraValue::Str(crate::pickle::truncate(s, 200))));
            }
            continue;
        }
        let ctx = |m: &str| bad(format!("tensor '{name}': {m}"));
        let obj = info
            .as_object()
            .ok_or_else(|| ctx("entry is not an object"))?;
        let dtype_name = obj
            .get("dtype")
            .and_then(Json::as_str)
            .ok_or_else(|| ctx("missing dtype"))?;
        let dtype = DType::from_safetensors_name(dtype_name)
            .ok_or_else(|| ctx(&format!("unsupported dtype {dtype_name}")))?;
        let shape = obj
            .get("shape")
            .and_then(Json::as_array)
            .ok_or_else(|| ctx("missing shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| ctx("shape is not a list of non-negative integers"))?;
        let offs = obj
            .get("data_offsets")
            .and_then(Json::as_array)
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| ctx("data_offsets is not a pair of integers"))?;
        let (start, end) = offs;
        if start > end || end > data.len() as u64 {
            return Err(ctx(&format!(
                "data_offsets [{start}, {end}] outside the {}-byte data section",
                data.len()
            )));
        }
        let need = checked_numel(&shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| ctx(&format!("shape {shape:?} overflows")))?;
        if (end - start) as usize != need {
            return Err(ctx(&format!(
                "shape {shape:?} of {dtype} needs {need} bytes but data_offsets span {}",
                end - start
            )));
        }
        entries.push((start as usize, end as usize, name.clone(), dtype, shape));
    }
    // File order: by position of the data.
    entries.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    let tensors = entries
        .into_iter()
        .map(|(start, end, name, dtype, shape)| {
            let storage = Arc::new(Storage::new(name.clone(), dtype, data[start..end].to_vec()));
            let strides = contiguous_strides(&shape);
            (
                name,
                TensorView {
                    storage,
                    dtype,
                    shape,
                    strides,
                    offset: 0,
                },
            )
        })
        .collect();
    Ok(Checkpoint {
        format: Format::Safetensors,
        tensors,
        extra_keys,
        extras,
        total_steps,
        skipped: Vec::new(),
    })
}

/// The padded JSON header for `tensors` (in the given order) and `metadata`,
/// after checking names and views.
pub(crate) fn header(
    tensors: &[(String, TensorView)],
    metadata: &[(String, String)],
) -> Result<String, Error> {
    let mut names = HashSet::new();
    for (name, t) in tensors {
        if name == "__metadata__" {
            return Err(Error::InvalidInput(
                "a tensor may not be named __metadata__".into(),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(Error::InvalidInput(format!(
                "tensor name '{name}' appears twice"
            )));
        }
        t.validate().map_err(|e| match e {
            Error::Tensor { message, .. } => Error::Tensor {
                name: Some(name.clone()),
                message,
            },
            e => e,
        })?;
    }
    let js = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&js(k));
            header.push(':');
            header.push_str(&js(v));
        }
        header.push('}');
    }
    let mut offset = 0usize;
    for (i, (name, t)) in tensors.iter().enumerate() {
        if i > 0 || !metadata.is_empty() {
            header.push(',');
        }
        let nbytes = t.numel() * t.dtype.size();
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            js(name),
            t.dtype.safetensors_name(),
            shape.join(","),
            offset,
            offset + nbytes
        ));
        offset += nbytes;
    }
    header.push('}');
    // Pad the header with spaces so that the data starts 8-byte aligned.
    while header.len() & 7 != 0 {
        header.push(' ');
    }
    Ok(header)
}

/// Writes a complete safetensors file: header length, `header`, tensor data.
pub(crate) fn write_body(
    w: &mut dyn Write,
    header: &str,
    tensors: &[(String, TensorView)],
) -> std::io::Result<()> {
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for (_, t) in tensors {
        w.write_all(&t.to_le_bytes())?;
    }
    Ok(())
}

/// Writes a file atomically ([`cnnspot_files::write_atomic_with`]): `fill`
/// writes into a temporary file that replaces `path` once complete.
pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    cnnspot_files::write_atomic_with(path, fill).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}
