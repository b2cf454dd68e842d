//! Running the built `cnnspot` binary from the command-line tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `cnnspot ARGS`, away from any weight cache set in the environment.
pub fn cnnspot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(args)
        .env_remove("CNNSPOT_CACHE_DIR")
        .output()
        .expect("cnnspot runs")
}

/// Bytes of an output stream as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a zero exit, showing both streams otherwise.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A JSON file.
pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}
