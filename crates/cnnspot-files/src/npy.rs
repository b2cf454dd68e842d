//! `.npy` arrays of little-endian `f32` in C order: the format of the
//! reference fixtures, the spectra cnnspot writes, and bench inputs.

use std::io;
use std::path::Path;

/// Why bytes are not a `.npy` array this module reads.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The bytes are not a little-endian float32 C-order `.npy` array.
    #[error("{}: {why}", path.display())]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, in a few words.
        why: String,
    },
}

/// The bytes of a `.npy` file holding `data` with `shape` (format 1.0,
/// `'<f4'`, C order, the header padded so that the data starts at a multiple
/// of 64 bytes, as NumPy writes it). `None` if `shape` does not hold
/// `data.len()` values.
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Option<Vec<u8>> {
    if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(data.len()) {
        return None;
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
    let header_len = u16::try_from(header.len()).ok()?;
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Some(out)
}

/// Writes `data` with `shape` to `path` as `.npy`, atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let bytes = to_bytes(shape, data).ok_or_else(|| NpyError::Invalid {
        path: path.to_path_buf(),
        why: format!("shape {shape:?} does not hold {} values", data.len()),
    })?;
    crate::write_atomic(path, &bytes).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The shape and values of a `.npy` array in `bytes` (format 1.x, 2.x or
/// 3.x, `'<f4'`, C order); `why` in the error says what is wrong.
pub fn from_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return Err("truncated header".into()),
        v => return Err(format!("unknown .npy version {v}")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let descr_ok = header.contains("'descr': '<f4'");
    if !descr_ok || header.contains("'fortran_order': True") {
        return Err("expected little-endian float32 in C order".into());
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in the header")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad dimension {s:?}")))
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the shape overflows")?;
    let data = &bytes[start + header_len..];
    if Some(data.len()) != count.checked_mul(4) {
        return Err(format!(
            "{} data bytes, but shape {shape:?} needs {count} float32 values",
            data.len()
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

/// Reads a `.npy` file (see [`from_bytes`]).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes).map_err(|why| NpyError::Invalid {
        path: path.to_path_buf(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.save(f, np.arange(6, dtype='<f4').reshape(2, 3))`, byte for byte
    /// (NumPy 2.4.6: format 1.0, header padded to 64 bytes).
    const NUMPY_2X3: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n\x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x00\x00\xa0@";

    #[test]
    fn writes_what_numpy_writes_and_reads_it_back() {
        let data = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(to_bytes(&[2, 3], &data).unwrap(), NUMPY_2X3);
        assert_eq!(from_bytes(NUMPY_2X3).unwrap(), (vec![2, 3], data.to_vec()));
        let one = to_bytes(&[3], &data[..3]).unwrap();
        assert!(String::from_utf8_lossy(&one).contains("'shape': (3,)"));
        assert_eq!(from_bytes(&one).unwrap(), (vec![3], data[..3].to_vec()));
        assert_eq!(to_bytes(&[2, 2], &data), None);
    }

    #[test]
    fn bad_arrays_are_errors() {
        assert!(from_bytes(b"").is_err());
        assert!(from_bytes(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
        assert!(from_bytes(&NUMPY_2X3[..NUMPY_2X3.len() - 1]).is_err());
        let with_header = |h: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&[0; 24]);
            b
        };
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
        assert_eq!(from_bytes(&with_header(ok)).unwrap().0, vec![2, 3]);
        for bad in [
            ok.replace("<f4", "<f8"),
            ok.replace("False", "True"),
            ok.replace("(2, 3)", "(99999999999, 99999999999999)"),
            ok.replace("(2, 3)", "(2, x)"),
            ok.replace("(2, 3)", "(4, 3)"),
        ] {
            assert!(from_bytes(&with_header(&bad)).is_err(), "{bad}");
        }

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_f32(&p, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), NUMPY_2X3);
        assert!(matches!(
            write_f32(&p, &[4], &[1.0]),
            Err(NpyError::Invalid { .. })
        ));
        assert!(matches!(
            read_f32(&dir.path().join("none.npy")),
            Err(NpyError::Io { .. })
        ));
    }
}
