//! Where cnnspot's tests find the big fixtures that are not in the repository.
//!
//! The fixtures live in a `shared/` folder beside the repository checkout
//! (`../shared` seen from the repository root), or wherever `CNNSPOT_SHARED`
//! points. People who clone the repository alone do not have it: tests then
//! skip with a message. CI sets `CNNSPOT_REQUIRE_SHARED=1`, which turns a
//! missing folder into a failure so that nothing is skipped silently there.

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn required() -> bool {
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
