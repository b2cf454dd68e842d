//! Recognising checkpoint formats by their first bytes, and describing what
//! other files look like.

use crate::{Error, Format};

/// How many leading bytes [`sniff`] wants to see.
pub(crate) const SNIFF_LEN: usize = 512;

/// The format of a file whose first bytes are `head` and whose total length is
/// `len`, or an error saying what the file looks like instead.
pub(crate) fn sniff(head: &[u8], len: u64) -> Result<Format, Error> {
    if head.starts_with(b"PK\x03\x04") {
        return Ok(Format::PthZip);
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Ok(Format::PthLegacy);
    }
    if head.len() >= 10 {
        let mut n = [0u8; 8];
        n.copy_from_slice(&head[..8]);
        let n = u64::from_le_bytes(n);
        if n >= 2 && n.checked_add(8).is_some_and(|e| e <= len) && head[8] == b'{' {
            return Ok(Format::Safetensors);
        }
    }
    Err(Error::NotACheckpoint(describe(head, len)))
}

/// A description of a file that is not a checkpoint.
pub(crate) fn describe(head: &[u8], len: u64) -> String {
    if len == 0 {
        return "the file is empty, not a checkpoint".into();
    }
    let starts = |p: &[u8]| head.starts_with(p);
    if starts(b"PK\x05\x06") {
        return "looks like an empty zip archive, not a checkpoint".into();
    }
    if starts(b"\x1f\x8b") {
        return "looks like a gzip-compressed file, not a checkpoint (decompress it first)".into();
    }
    if starts(b"BZh") {
        return "looks like a bzip2-compressed file, not a checkpoint (decompress it first)".into();
    }
    if starts(b"\xfd7zXZ\x00") {
        return "looks like an xz-compressed file, not a checkpoint (decompress it first)".into();
    }
    if starts(b"7z\xbc\xaf\x27\x1c") {
        return "looks like a 7-Zip archive, not a checkpoint (extract it first)".into();
    }
    if starts(b"Rar!") {
        return "looks like a RAR archive, not a checkpoint (extract it first)".into();
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return "looks like a tar archive, not a supported checkpoint (the PyTorch < 0.4 tar format is not supported)"
            .into();
    }
    if starts(b"\x89HDF") {
        return "looks like an HDF5 file (Keras/TensorFlow weights?), not a PyTorch checkpoint"
            .into();
    }
    if starts(b"\x93NUMPY") {
        return "looks like a NumPy .npy array, not a checkpoint".into();
    }
    if starts(b"\x89PNG") {
        return "looks like a PNG image, not a checkpoint".into();
    }
    if starts(b"\xff\xd8\xff") {
        return "looks like a JPEG image, not a checkpoint".into();
    }
    if starts(b"GIF8") {
        return "looks like a GIF image, not a checkpoint".into();
    }
    if starts(b"%PDF") {
        return "looks like a PDF document, not a checkpoint".into();
    }
    if starts(b"\x08\x01\x12") || starts(b"\x08\x03\x12") || starts(b"\x08\x06\x12") {
        return "looks like a protobuf (ONNX model?), not a PyTorch checkpoint".into();
    }
    if head.first().is_some_and(|&b| b == 0x80) {
        return "looks like a Python pickle with an unsupported protocol, not a checkpoint".into();
    }
    // Text-like content
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let printable = text
        .iter()
        .filter(|&&b| {
            b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
        })
        .count();
    let is_text = !text.is_empty() && printable * 100 >= text.len() * 95;
    if is_text {
        let s = String::from_utf8_lossy(text);
        let t = s.trim_start().to_ascii_lowercase();
        if t.starts_with("<!doctype html")
            || t.starts_with("<html")
            || t.contains("<html")
            || t.contains("<head")
            || t.contains("<body")
        {
            return "looks like an HTML page (a download error or login page?), not a checkpoint"
                .into();
        }
        if t.starts_with("<?xml") {
            return "looks like an XML document, not a checkpoint".into();
        }
        if t.starts_with("version https://git-lfs") {
            return "looks like a Git LFS pointer file, not a checkpoint (run `git lfs pull` to get the weights)"
                .into();
        }
        if t.starts_with('{') || t.starts_with('[') {
            return "looks like a JSON/text document, not a checkpoint".into();
        }
        return "looks like a text file, not a checkpoint".into();
    }
    let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "unrecognised binary data (first bytes {}); expected a PyTorch .pth or a safetensors file",
        shown.join(" ")
    )
}
