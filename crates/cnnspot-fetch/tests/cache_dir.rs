//! Case 7: Cache folder precedence, through the pure resolver (environment
//! variables are process-global, so the tests never set them).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cnnspot_fetch::{cached_checkpoint, resolve_cache_dir, weights_dir};

fn os(s: &str) -> Option<&OsStr> {
    Some(OsStr::new(s))
}

#[test]
fn flag_wins_over_everything() {
    let got = resolve_cache_dir(
        Some(Path::new("/flag")),
        os("/env"),
        os("/xdg"),
        os("/home/u"),
    );
    assert_eq!(got, Some(PathBuf::from("/flag")));
}

#[test]
fn cnnspot_cache_dir_wins_over_xdg_and_home() {
    let got = resolve_cache_dir(None, os("/env"), os("/xdg"), os("/home/u"));
    assert_eq!(got, Some(PathBuf::from("/env")));
    // Used as given, even relative.
    let got = resolve_cache_dir(None, os("rel/cache"), os("/xdg"), os("/home/u"));
    assert_eq!(got, Some(PathBuf::from("rel/cache")));
}

#[test]
fn xdg_cache_home_wins_over_home() {
    let got = resolve_cache_dir(None, None, os("/xdg"), os("/home/u"));
    assert_eq!(got, Some(PathBuf::from("/xdg/cnnspot")));
}

#[test]
fn home_is_the_last_resort() {
    let got = resolve_cache_dir(None, None, None, os("/home/u"));
    assert_eq!(got, Some(PathBuf::from("/home/u/.cache/cnnspot")));
    assert_eq!(resolve_cache_dir(None, None, None, None), None);
}

#[test]
fn empty_values_count_as_unset_and_relative_xdg_is_ignored() {
    let got = resolve_cache_dir(Some(Path::new("")), os(""), os(""), os("/home/u"));
    assert_eq!(got, Some(PathBuf::from("/home/u/.cache/cnnspot")));
    let got = resolve_cache_dir(None, None, os("relative/xdg"), os("/home/u"));
    assert_eq!(got, Some(PathBuf::from("/home/u/.cache/cnnspot")));
    assert_eq!(resolve_cache_dir(None, os(""), os(""), os("")), None);
}

#[test]
fn cached_checkpoint_finds_only_present_files() {
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(cached_checkpoint(cache.path(), "blur_jpg_prob0.1"), None);
    let weights = weights_dir(cache.path());
    std::fs::create_dir_all(&weights).unwrap();
    let file = weights.join("blur_jpg_prob0.1.pth");
    std::fs::write(&file, b"").unwrap();
    assert_eq!(
        cached_checkpoint(cache.path(), "blur_jpg_prob0.1"),
        None,
        "empty file"
    );
    std::fs::write(&file, b"PK\x03\x04").unwrap();
    assert_eq!(
        cached_checkpoint(cache.path(), "blur_jpg_prob0.1"),
        Some(file.clone())
    );
    assert_eq!(
        cached_checkpoint(cache.path(), "blur_jpg_prob0.1.pth"),
        Some(file)
    );
    assert_eq!(cached_checkpoint(cache.path(), "blur_jpg_prob0.5"), None);
    assert_eq!(cached_checkpoint(cache.path(), "../weights/x"), None);
}
