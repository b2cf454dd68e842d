//! Writing `.npy` files (NumPy format 1.0, little-endian `f32`, C order).

use std::path::Path;

use crate::error::{write_atomic, AnalysisError, Result};

/// The bytes of a `.npy` file holding `data` with `shape` (format 1.0,
/// `'<f4'`, C order; the header is padded so the data starts at a multiple
/// of 64 bytes, as NumPy writes it).
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(AnalysisError::Invalid(format!(
            "shape {shape:?} holds {expected} values, not {}",
            data.len()
        )));
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n'
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| AnalysisError::Invalid(format!("npy header too long for shape {shape:?}")))?;
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes `data` with `shape` to `path` as `.npy` (atomically).
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = npy_bytes(shape, data).map_err(|e| match e {
        AnalysisError::Invalid(why) => AnalysisError::Invalid(format!("{}: {why}", path.display())),
        other => other,
    })?;
    write_atomic(path, &bytes)
}
