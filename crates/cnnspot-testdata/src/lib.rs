//! Where cnnspot's tests find the big fixtures that are not in the repository.
//!
//! The fixtures live in a `shared/` folder beside the repository checkout
//! (`../shared` seen from the repository root), or wherever `CNNSPOT_SHARED`
//! points. People who clone the repository alone do not have it: tests then
//! skip with a message. CI sets `CNNSPOT_REQUIRE_SHARED=1`, which turns a
//! missing folder into a failure so that nothing is skipped silently there.
//!
//! [`browser`] drives headless Chromium for the tests of the pages cnnspot
//! makes; it skips (or fails under `CNNSPOT_REQUIRE_SHARED=1`) the same way.

#![warn(missing_docs)]
use std::path::{Path, PathBuf};

/// Asserts that `actual` equals `expected` to `rel` of the largest
/// magnitude in `expected` (at least 1), naming `what` and the first output
/// that differs.
pub fn assert_close(actual: &[f32], expected: &[f32], rel: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale,
            "{what}: output {i}: {a} vs expected {b} (tolerance {})",
            rel * scale
        );
    }
}

/// Runs `replay` on every file of `dir` (a crate's `tests/fuzz_regressions/`,
/// the inputs its fuzz target once crashed on) and fails naming the first
/// file on which it panics; fails too when the folder holds no file.
pub fn replay_fuzz_regressions(dir: &Path, replay: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("the regression folder") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("regression input");
        if std::panic::catch_unwind(|| replay(&data)).is_err() {
            panic!("{} panics", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 1, "no regression inputs in {}", dir.display());
}

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

pub(crate) fn required() -> bool {
    std::env::var("CNNSPOT_REQUIRE_SHARED").is_ok_and(|v| v == "1")
}

/// The shared folder, or `None` (after printing why) when it is absent and
/// not required. Panics when it is absent and `CNNSPOT_REQUIRE_SHARED=1`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("CNNSPOT_SHARED") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("../shared"),
    };
    if dir.join("fixtures").is_dir() {
        return Some(dir);
    }
    if required() {
        panic!(
            "CNNSPOT_REQUIRE_SHARED=1 but the shared fixtures folder {} is missing",
            dir.display()
        );
    }
    eprintln!(
        "skipping: shared fixtures not found at {} (set CNNSPOT_SHARED to their folder)",
        dir.display()
    );
    None
}

/// A file under `shared/fixtures`, or `None` when the folder is absent (see [`shared_dir`]).
pub fn fixture(name: &str) -> Option<PathBuf> {
    shared_dir().map(|d| d.join("fixtures").join(name))
}

/// `shared/data/dev`, or `None` when the shared folder is absent.
pub fn dev_data() -> Option<PathBuf> {
    shared_dir().map(|d| d.join("data/dev"))
}

/// Skip the current test (return early) when the shared fixtures are absent.
#[macro_export]
macro_rules! require_shared {
    () => {
        match $crate::shared_dir() {
            Some(d) => d,
            None => return,
        }
    };
}

/// Reads a little-endian float32 `.npy` file (C order): its shape and
/// values ([`cnnspot_files::npy::read_f32`], as an `io::Result`).
pub fn read_npy_f32(path: &Path) -> std::io::Result<(Vec<usize>, Vec<f32>)> {
    use cnnspot_files::npy::{read_f32, NpyError};
    read_f32(path).map_err(|e| match e {
        NpyError::Io { source, .. } => source,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
    })
}

/// Reads a headerless little-endian float32 file (the `.f32` dumps of the
/// generator parity fixtures); panics naming the file if it cannot.
pub fn read_raw_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len() % 4,
        0,
        "{}: not whole float32 values",
        path.display()
    );
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reads and parses a JSON fixture under `shared/fixtures`.
pub fn fixture_text(name: &str) -> Option<String> {
    let path = fixture(name)?;
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

pub mod browser;
pub mod http_server;

/// Hand-made PNG pieces for tests of broken and hostile files.
pub mod png {
    /// CRC-32 as PNG uses it (bitwise, no table).
    pub fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG chunk: length, type, data, CRC.
    pub fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 12);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    }
}
