//! Garbage and hostile inputs: every one is an `Err`, never a panic, and no
//! pickle can make the reader run anything.

mod common;

use cnnspot_weights::{load, load_bytes, load_value_bytes, Error, PyValue};
use common::{f32_bytes, legacy_checkpoint, zip_checkpoint, P};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn err_of(bytes: &[u8]) -> Error {
    match load_bytes(bytes) {
        Ok(c) => panic!("expected an error, loaded {} tensors", c.tensors.len()),
        Err(e) => e,
    }
}

fn not_a_checkpoint(bytes: &[u8], want: &str) {
    let e = err_of(bytes);
    assert!(
        matches!(e, Error::NotACheckpoint(_)),
        "wrong error kind: {e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains(want), "message {msg:?} lacks {want:?}");
}

#[test]
fn html_page_is_rejected_with_a_clear_message() {
    let html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not found</body></html>\n";
    not_a_checkpoint(html, "looks like an HTML page");
    not_a_checkpoint(
        b"\n\n  <html lang=\"en\"><body>x</body></html>",
        "HTML page",
    );
    // through load(): the message names the file
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blur_jpg_prob0.5.pth");
    std::fs::write(&path, html).unwrap();
    let e = load(&path).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("blur_jpg_prob0.5.pth"), "{msg}");
    assert!(msg.contains("looks like an HTML page"), "{msg}");
    assert_eq!(e.path(), Some(path.as_path()));
    assert!(matches!(e.root(), Error::NotACheckpoint(_)));
}

#[test]
fn empty_and_tiny_files_are_rejected() {
    not_a_checkpoint(b"", "empty");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pth");
    std::fs::write(&path, b"").unwrap();
    let msg = load(&path).unwrap_err().to_string();
    assert!(msg.contains("empty.pth") && msg.contains("empty"), "{msg}");
    for n in 1..16 {
        err_of(&vec![0u8; n]);
        err_of(&vec![0xffu8; n]);
    }
    err_of(&[0x80]);
    err_of(&[0x80, 0x02]);
    err_of(b"PK\x03\x04");
    not_a_checkpoint(
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        "empty zip",
    );
}

#[test]
fn other_file_kinds_are_described() {
    not_a_checkpoint(b"hello, these are not weights\n", "text file");
    not_a_checkpoint(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n",
        "Git LFS pointer",
    );
    not_a_checkpoint(b"{\"error\": \"rate limited\"}", "JSON");
    not_a_checkpoint(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG image");
    not_a_checkpoint(b"\x1f\x8b\x08\0\0\0\0\0", "gzip");
    not_a_checkpoint(b"\x89HDF\r\n\x1a\n", "HDF5");
    let e = err_of(&[0u8, 1, 2, 3, 250, 251, 252, 253, 7, 7, 7]);
    assert!(e.to_string().contains("unrecognised binary data"), "{e}");
}

#[test]
fn random_bytes_are_rejected() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for n in [1usize, 7, 8, 9, 64, 4096, 100_000] {
        for _ in 0..20 {
            err_of(&rng.bytes(n));
        }
    }
    // random data behind each magic
    for magic in [
        &b"PK\x03\x04"[..],
        &[0x80, 2],
        &[0x80, 4, 0x95],
        &[0x80, 2, 0x8a, 10],
    ] {
        for _ in 0..200 {
            let mut b = magic.to_vec();
            let n = (rng.next() % 3000) as usize;
            b.extend(rng.bytes(n));
            err_of(&b);
        }
    }
    // random opcodes after a valid legacy prelude
    let prelude = legacy_checkpoint(&P::new().empty_dict().stop(), &[]);
    let cut = prelude.len() - 8; // before the (empty) key list pickle
    for _ in 0..500 {
        let mut b = prelude[..cut].to_vec();
        b.truncate(cut - 3);
        let n = (rng.next() % 200) as usize;
        b.extend(rng.bytes(n));
        err_of(&b);
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let shared = cnnspot_testdata::require_shared!();
    let mut rng = Rng(12345);
    for name in ["small_legacy_format.pth", "small_zip_format.pth"] {
        let orig = std::fs::read(shared.join("fixtures").join(name)).unwrap();
        // every truncation fails
        for n in 0..orig.len() {
            assert!(load_bytes(&orig[..n]).is_err(), "{name} truncated to {n}");
        }
        // random byte flips: Ok or Err, but never a panic or a hang
        for _ in 0..3000 {
            let mut b = orig.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            if let Ok(c) = load_bytes(&b) {
                for (_, t) in &c.tensors {
                    t.validate().unwrap();
                    let _ = t.to_f64_vec();
                }
            }
            let _ = load_value_bytes(&b);
        }
    }
}

#[test]
fn truncated_zip_fixture_is_an_error() {
    let shared = cnnspot_testdata::require_shared!();
    let path = shared.join("fixtures/cnndet_random.pth");
    let bytes = std::fs::read(&path).unwrap();
    for n in [10usize, 1000, 40_000, bytes.len() / 2, bytes.len() - 100] {
        let e = err_of(&bytes[..n]);
        assert!(matches!(e, Error::Zip(_)), "truncated to {n}: {e:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let msg = load(&cut).unwrap_err().to_string();
    assert!(msg.contains("cut.pth") && msg.contains("zip"), "{msg}");
}

fn os_system(p: &mut P, marker: &std::path::Path) {
    p.global("os", "system")
        .mark()
        .str(&format!("touch {}", marker.display()))
        .tuple()
        .op(b'R');
}

#[test]
fn os_system_is_never_executed() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");

    // a bare pickle that calls os.system (what `pickle.load` would run)
    let mut p = P::new();
    os_system(&mut p, &marker);
    let e = err_of(&p.stop());
    assert!(matches!(e, Error::NotACheckpoint(_)), "{e:?}");

    // the same with posix.system / builtins.eval / __import__, inside a legacy checkpoint
    for (m, n) in [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "__import__"),
        ("subprocess", "call"),
    ] {
        let mut p = P::new();
        p.empty_dict().str("model");
        p.global(m, n)
            .mark()
            .str(&format!("touch {}", marker.display()))
            .tuple()
            .op(b'R');
        p.setitem();
        let file = legacy_checkpoint(&p.stop(), &[]);
        let e = err_of(&file);
        assert!(matches!(e, Error::NoStateDict(_)), "{m}.{n}: {e:?}");
        assert!(e.to_string().contains(&format!("{m}.{n}")), "{e}");
    }

    // next to a real state dict it is an inert placeholder
    let mut p = P::new();
    p.empty_dict().str("model").ordered_dict();
    p.str("w")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1])
        .setitem();
    p.setitem();
    p.str("evil");
    os_system(&mut p, &marker);
    p.setitem();
    // BUILD on the placeholder and REDUCE of the placeholder itself are inert too
    p.str("evil2");
    os_system(&mut p, &marker);
    p.mark().str("x").tuple().op(b'R');
    p.empty_dict().op(b'b');
    p.setitem();
    let zip = zip_checkpoint(&p.stop(), &[("0", f32_bytes(&[1.0, 2.0]))]);
    let c = load_bytes(&zip).unwrap();
    assert_eq!(c.tensors.len(), 1);
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [1.0, 2.0]);
    assert_eq!(c.extra_keys, ["evil", "evil2"]);
    assert!(c.extra("evil").unwrap().to_string().contains("os.system"));

    assert!(!marker.exists(), "a pickle ran a command");
}

#[test]
fn legacy_storage_claiming_more_elements_than_present_is_an_error() {
    // the pickle declares 100 floats, the data section says 100 but holds 10
    let mut p = P::new();
    p.ordered_dict()
        .str("w")
        .tensor("FloatStorage", "k", 100, 0, &[100], &[1])
        .setitem();
    let main = p.stop();
    let file = legacy_checkpoint(&main, &[("k", 100, f32_bytes(&[0.5; 10]))]);
    let e = err_of(&file);
    assert!(matches!(e, Error::Storage { .. }), "{e:?}");
    assert!(e.to_string().contains("claims 100 elements"), "{e}");

    // a count that is absurdly large (overflows when multiplied by 4)
    let file = legacy_checkpoint(&main, &[("k", u64::MAX / 2, f32_bytes(&[0.5; 10]))]);
    assert!(matches!(err_of(&file), Error::Storage { .. }));

    // a count that disagrees with the pickle's declaration
    let file = legacy_checkpoint(&main, &[("k", 10, f32_bytes(&[0.5; 10]))]);
    let e = err_of(&file);
    assert!(e.to_string().contains("declares 100"), "{e}");

    // the consistent file loads
    let file = legacy_checkpoint(&main, &[("k", 100, f32_bytes(&[0.5; 100]))]);
    let c = load_bytes(&file).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), vec![0.5; 100]);

    // storage data for a key the pickle never uses
    let file = legacy_checkpoint(
        &main,
        &[
            ("k", 100, f32_bytes(&[0.5; 100])),
            ("zz", 1, f32_bytes(&[1.0])),
        ],
    );
    assert!(matches!(err_of(&file), Error::Storage { .. }));
    // storage used by the pickle but missing from the data section
    let file = legacy_checkpoint(&main, &[]);
    assert!(matches!(err_of(&file), Error::Storage { .. }));
}

fn one_tensor_zip(
    numel: usize,
    offset: usize,
    shape: &[usize],
    strides: &[usize],
    data: Vec<u8>,
) -> Vec<u8> {
    let mut p = P::new();
    p.ordered_dict()
        .str("w")
        .tensor("FloatStorage", "0", numel, offset, shape, strides)
        .setitem();
    zip_checkpoint(&p.stop(), &[("0", data)])
}

#[test]
fn views_must_fit_their_storage() {
    let four = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    // fits exactly
    let c = load_bytes(&one_tensor_zip(4, 1, &[3], &[1], four.clone())).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [2.0, 3.0, 4.0]);
    let c = load_bytes(&one_tensor_zip(4, 0, &[2, 2], &[1, 2], four.clone())).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [1.0, 3.0, 2.0, 4.0]);
    // offset + extent past the end
    for (off, shape, strides) in [
        (2usize, vec![3usize], vec![1usize]),
        (0, vec![5], vec![1]),
        (0, vec![2, 2], vec![3, 1]),
        (0, vec![3], vec![2]),
    ] {
        let e = err_of(&one_tensor_zip(4, off, &shape, &strides, four.clone()));
        assert!(e.to_string().contains("storage"), "{e}");
    }
    // the record holds fewer bytes than the storage declares
    let e = err_of(&one_tensor_zip(8, 0, &[8], &[1], four.clone()));
    assert!(matches!(e, Error::Storage { .. }), "{e:?}");
    // overflowing shapes, strides and sizes
    let big = usize::MAX / 2;
    err_of(&one_tensor_zip(
        4,
        0,
        &[big, big, big],
        &[1, 1, 1],
        four.clone(),
    ));
    err_of(&one_tensor_zip(4, 0, &[2], &[big], four.clone()));
    err_of(&one_tensor_zip(4, big, &[2], &[1], four.clone()));
    err_of(&one_tensor_zip(usize::MAX / 3, 0, &[2], &[1], four.clone()));
    // shape and stride of different lengths
    err_of(&one_tensor_zip(4, 0, &[2, 2], &[1], four.clone()));
    // an empty tensor is fine anywhere
    let c = load_bytes(&one_tensor_zip(4, 0, &[0, 7], &[7, 1], four.clone())).unwrap();
    assert_eq!(c.get("w").unwrap().numel(), 0);

    // negative stride
    let mut p = P::new();
    p.ordered_dict().str("w");
    p.global("torch._utils", "_rebuild_tensor_v2").mark();
    p.storage("FloatStorage", "0", 4).int(3).ints(&[2]);
    p.mark().int(-1).tuple();
    p.op(0x89).ordered_dict().tuple().op(b'R').setitem();
    let e = err_of(&zip_checkpoint(&p.stop(), &[("0", four.clone())]));
    assert!(e.to_string().contains("negative"), "{e}");

    // a storage record missing from the archive
    let mut p = P::new();
    p.ordered_dict()
        .str("w")
        .tensor("FloatStorage", "7", 4, 0, &[4], &[1])
        .setitem();
    let e = err_of(&zip_checkpoint(&p.stop(), &[("0", four.clone())]));
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn zip_without_data_pkl_is_not_a_checkpoint() {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"hi").unwrap();
        z.finish().unwrap();
    }
    let e = err_of(&buf.into_inner());
    assert!(e.to_string().contains("data.pkl"), "{e}");
}

#[test]
fn pickle_bombs_and_malformed_pickles_are_bounded() {
    let wrap = |pkl: Vec<u8>| zip_checkpoint(&pkl, &[]);
    // deeply nested tuples (would overflow the stack when dropped)
    let mut p = P::new();
    p.op(b')');
    for _ in 0..200_000 {
        p.op(0x85);
    }
    let e = err_of(&wrap(p.stop()));
    assert!(matches!(e, Error::Limit(_)), "{e:?}");

    // a memoised tuple of tuples doubling at each level ("billion laughs")
    let mut p = P::new();
    p.str("lol").op(b'q').op(0);
    for i in 0..200u32 {
        p.op(b'h').op((i % 256) as u8);
        p.op(b'2').op(0x86); // DUP, TUPLE2
        p.op(b'r').raw(&(i + 1).to_le_bytes());
        p.op(b'0');
        p.op(b'j').raw(&(i + 1).to_le_bytes());
        p.op(b'q').op(((i + 1) % 256) as u8);
        p.op(b'0');
    }
    p.empty_dict();
    let t0 = std::time::Instant::now();
    // What is left on the stack is an empty dict: an empty state dict.
    let loaded = load_bytes(&wrap(p.stop())).map(|c| c.tensors.len());
    assert!(matches!(loaded, Ok(0)), "{loaded:?}");
    assert!(t0.elapsed().as_secs() < 5);

    // copying a big list again and again: bounded by the copy budget
    let mut p = P::new();
    p.op(b']').mark();
    for _ in 0..50_000 {
        p.op(b'N');
    }
    p.op(b'e').op(b'q').op(1);
    for _ in 0..100_000 {
        p.global("builtins", "list")
            .op(b'h')
            .op(1)
            .op(0x85)
            .op(b'R')
            .op(b'0');
    }
    p.empty_dict();
    let t0 = std::time::Instant::now();
    let e = err_of(&wrap(p.stop()));
    assert!(matches!(e, Error::Limit(_)), "{e:?}");
    assert!(t0.elapsed().as_secs() < 5);

    // huge declared lengths
    let mut p = P::new();
    p.op(b'X').raw(&u32::MAX.to_le_bytes());
    err_of(&wrap(p.0.clone()));
    let mut p = P::new();
    p.op(0x8d).raw(&u64::MAX.to_le_bytes());
    err_of(&wrap(p.0.clone()));
    let mut p = P::new();
    p.op(0x8b).raw(&i32::MAX.to_le_bytes());
    err_of(&wrap(p.0.clone()));
    // memo get of a missing entry, far index put
    err_of(&wrap(P::new().op(b'j').raw(&u32::MAX.to_le_bytes()).stop()));
    let mut p = P::new();
    p.empty_dict().op(b'r').raw(&u32::MAX.to_le_bytes());
    let loaded = load_bytes(&wrap(p.stop())).map(|c| c.tensors.len());
    assert!(
        matches!(loaded, Ok(0)),
        "an empty dict memoised far: {loaded:?}"
    );
    // stack underflow, mark errors, unknown opcodes, no STOP
    err_of(&wrap(P::new().stop()));
    err_of(&wrap(P::new().op(b's').stop()));
    err_of(&wrap(P::new().op(b't').stop()));
    err_of(&wrap(P::new().mark().op(b'a').stop()));
    err_of(&wrap(P::new().op(0xff).stop()));
    err_of(&wrap(P::new().op(b'N').0.clone()));
    err_of(&wrap(P::new().int(3).int(4).op(b'R').stop()));
    // persistent ids that are not storages
    err_of(&wrap(P::new().str("x").op(b'Q').stop()));
    let mut p = P::new();
    p.mark().str("module").str("x").tuple().op(b'Q');
    assert!(matches!(err_of(&wrap(p.stop())), Error::Unsupported(_)));
    let mut p = P::new();
    p.mark()
        .str("storage")
        .global("os", "system")
        .str("0")
        .str("cpu")
        .int(1)
        .tuple()
        .op(b'Q');
    err_of(&wrap(p.stop()));
    // a top level that is not a dict
    let e = err_of(&wrap(P::new().int(5).stop()));
    assert!(matches!(e, Error::NoStateDict(_)), "{e:?}");
    // a dict without tensors (an empty one is an empty state dict)
    let e = err_of(&wrap(
        P::new().empty_dict().str("epoch").int(3).setitem().stop(),
    ));
    assert!(matches!(e, Error::NoStateDict(_)), "{e:?}");
    assert!(e.to_string().contains("keys: epoch"), "{e}");
    let loaded = load_bytes(&wrap(P::new().empty_dict().stop())).map(|c| c.tensors.len());
    assert!(matches!(loaded, Ok(0)), "{loaded:?}");
}

#[test]
fn pickle_that_is_not_a_pytorch_checkpoint() {
    let e = err_of(&P::new().empty_dict().stop());
    assert!(e.to_string().contains("no PyTorch magic number"), "{e}");
}

#[test]
fn a_pickled_module_is_refused_with_advice() {
    let mut p = P::new();
    p.empty_dict().str("model");
    p.global("__main__", "Net")
        .op(b')')
        .op(0x81)
        .empty_dict()
        .op(b'b');
    p.setitem();
    let e = err_of(&zip_checkpoint(&p.stop(), &[]));
    assert!(e.to_string().contains("state_dict()"), "{e}");
}

#[test]
fn missing_file_names_its_path() {
    let e = load(std::path::Path::new("/nonexistent/dir/w.pth")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/dir/w.pth"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path()).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
}

/// `load_value` converts the whole pickle, not only the state dict: cycles,
/// shared sub-trees and deep nesting must stay bounded there too.
#[test]
fn full_value_reading_is_bounded_and_inert() {
    let wrap = |pkl: Vec<u8>| zip_checkpoint(&pkl, &[]);
    let value_err = |bytes: &[u8]| match load_value_bytes(bytes) {
        Ok(v) => panic!("expected an error, read {v}"),
        Err(e) => e,
    };

    // a list that contains itself
    let mut p = P::new();
    p.op(b']').op(b'q').op(0).op(b'h').op(0).op(b'a');
    let e = value_err(&wrap(p.stop()));
    assert!(matches!(e, Error::Limit(_)), "{e:?}");

    // a dict that is its own value
    let mut p = P::new();
    p.empty_dict()
        .op(b'q')
        .op(0)
        .str("me")
        .op(b'h')
        .op(0)
        .setitem();
    let e = value_err(&wrap(p.stop()));
    assert!(matches!(e, Error::Limit(_)), "{e:?}");

    // lists doubling at each of 60 levels through memo references: 2^60
    // nodes once expanded, caught by the node budget
    let mut p = P::new();
    p.op(b']').op(b'q').op(0);
    for i in 0..60u8 {
        p.op(b']').op(b'q').op(i + 1).op(b'0');
        p.op(b'h')
            .op(i + 1)
            .mark()
            .op(b'h')
            .op(i)
            .op(b'h')
            .op(i)
            .op(b'e')
            .op(b'0');
    }
    p.op(b'h').op(60);
    let t0 = std::time::Instant::now();
    let e = value_err(&wrap(p.stop()));
    assert!(matches!(e, Error::Limit(_)), "{e:?}");
    assert!(t0.elapsed().as_secs() < 5);

    // deep nesting of distinct lists
    let mut p = P::new();
    for _ in 0..1000 {
        p.op(b']');
    }
    for _ in 0..999 {
        p.op(b'a');
    }
    let e = value_err(&wrap(p.stop()));
    assert!(matches!(e, Error::Limit(_)), "{e:?}");

    // a non-whitelisted global is an inert placeholder, never called
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let mut p = P::new();
    p.empty_dict().str("evil");
    os_system(&mut p, &marker);
    p.setitem();
    let v = load_value_bytes(&wrap(p.stop())).unwrap();
    match v.get("evil") {
        Some(PyValue::Opaque(d)) => assert!(d.contains("os.system"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert!(!marker.exists(), "a pickle ran a command");
}
