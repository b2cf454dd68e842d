//! The zip-format checkpoint writer: byte-for-byte agreement with
//! `torch.save`, round trips through the reader, training checkpoints,
//! atomicity.
//!
//! The files in tests/data were written by PyTorch 2.15.0 (PyPI wheel run on
//! CPU, Python 3.11.7) with tests/data/make_refs.py, and `small_zip_format.pth` is the
//! shared fixture of that name (same PyTorch). Verified once by hand with
//! that PyTorch (and torchvision 0.29.2) on files written by this crate, not
//! repeated here since the tests must not need PyTorch:
//! * `torch.load(f, weights_only=True)` loads a `TrainingCheckpoint` (the
//!   Adam reference read, modified and re-saved; and a ResNet-50 one built
//!   from scratch with moments for all 161 parameters) and a value holding
//!   every dtype, views of one storage, empty tensors and the int/float
//!   edge cases; every value equals what was written, views still share
//!   their storage;
//! * `net.load_state_dict(ck['model'], strict=True)` and
//!   `torch.optim.Adam(net.parameters()).load_state_dict(ck['optimizer'])`
//!   accept them, each moment lands on the right parameter, and a further
//!   `opt.step()` runs;
//! * the ResNet-50 fixture rewritten here loads into torchvision's
//!   `resnet50(num_classes=1)` with `strict=True` and gives the fixture's
//!   logit (-0.234357 on `input_fake_crop224.npy`);
//! * with `torch.utils.serialization.config.load.calculate_storage_offsets`
//!   and `mmap=True`, and in `FakeTensorMode`, with
//!   `TORCH_SERIALIZATION_DEBUG=1`, PyTorch's own computation of storage
//!   offsets (which assumes miniz's exact layout, `.format_version` >= 1)
//!   agrees with the files.
//!
//! Since the bytes below equal `torch.save`'s for the same objects, those
//! properties carry over to everything these tests write.

use std::path::{Path, PathBuf};

use cnnspot_weights::{
    is_batchnorm_buffer, load, load_value, load_value_bytes, pth_bytes, pth_bytes_with, save_pth,
    AdamParamState, AdamState, DType, Error, Format, PthOptions, PyValue, TensorView,
    TrainingCheckpoint,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Record names of a zip, in file order.
fn zip_names(bytes: &[u8]) -> Vec<String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<(u64, String)> = (0..z.len())
        .map(|i| {
            let f = z.by_index(i).unwrap();
            (f.header_start(), f.name().to_owned())
        })
        .collect();
    names.sort();
    names.into_iter().map(|(_, n)| n).collect()
}

fn zip_record(bytes: &[u8], name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut f = z.by_name(name).unwrap();
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

/// The opcode sequence of a protocol-2 pickle (opcode bytes only, arguments
/// skipped), for readable diffs when bytes differ.
fn opcodes(p: &[u8]) -> Vec<u8> {
    let mut ops = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let op = p[i];
        ops.push(op);
        i += 1;
        i += match op {
            0x80 | b'K' | b'q' | b'h' => 1,
            b'M' => 2,
            b'J' | b'r' | b'j' => 4,
            b'G' => 8,
            0x8a => 1 + p[i] as usize,
            b'X' => 4 + u32::from_le_bytes(p[i..i + 4].try_into().unwrap()) as usize,
            b'c' => {
                let first = p[i..].iter().position(|&b| b == b'\n').unwrap() + 1;
                first + p[i + first..].iter().position(|&b| b == b'\n').unwrap() + 1
            }
            _ => 0,
        };
    }
    ops
}

/// Reads a file PyTorch wrote and writes its value back with the same
/// archive name and serialization id: the bytes must be PyTorch's.
fn rewrite_matches_torch(path: &Path) {
    let torch_bytes = std::fs::read(path).unwrap();
    let value = load_value(path).unwrap();
    let names = zip_names(&torch_bytes);
    let archive = names[0].split('/').next().unwrap().to_owned();
    let id = zip_record(&torch_bytes, &format!("{archive}/.data/serialization_id"));
    let ours = pth_bytes_with(
        &value,
        &PthOptions {
            archive_name: Some(archive.clone()),
            serialization_id: Some(String::from_utf8(id).unwrap()),
        },
    )
    .unwrap();

    // Structure first, for a readable failure: records, then pickle opcodes.
    assert_eq!(zip_names(&ours), names, "{}", path.display());
    let pkl = format!("{archive}/data.pkl");
    let (torch_pkl, our_pkl) = (zip_record(&torch_bytes, &pkl), zip_record(&ours, &pkl));
    assert_eq!(opcodes(&our_pkl), opcodes(&torch_pkl), "{}", path.display());
    assert_eq!(our_pkl, torch_pkl, "{} data.pkl", path.display());
    assert!(ours == torch_bytes, "{}: zip bytes differ", path.display());

    // And what we wrote reads back as the same value.
    assert_eq!(load_value_bytes(&ours).unwrap(), value);
}

#[test]
fn bytes_equal_torch_save_for_the_shared_small_checkpoint() {
    rewrite_matches_torch(&data("small_zip_format.pth"));
}

#[test]
fn bytes_equal_torch_save_for_an_adam_training_checkpoint() {
    rewrite_matches_torch(&data("adam_ref.pth"));
}

#[test]
fn bytes_equal_torch_save_for_every_dtype_view_and_opcode_edge_case() {
    rewrite_matches_torch(&data("zoo_ref.pth"));
}

#[test]
fn torch_adam_checkpoint_reads_as_training_checkpoint() {
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("adam_ref.json")).unwrap()).unwrap();
    let ck = TrainingCheckpoint::load(&data("adam_ref.pth")).unwrap();
    assert_eq!(ck.total_steps, Some(3));
    assert_eq!(ck.epoch, Some(1));
    assert_eq!(ck.lr, Some(1e-4));
    let names: Vec<&str> = ck.model.iter().map(|(n, _)| n.as_str()).collect();
    let exp_model = exp["model"].as_object().unwrap();
    assert_eq!(names.len(), exp_model.len());
    for (name, t) in &ck.model {
        let want: Vec<f64> = exp_model[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(t.to_f64_vec(), want, "{name}");
    }
    let opt = ck.optimizer.as_ref().unwrap();
    assert_eq!(opt.lr, 1e-4);
    assert_eq!(opt.betas, (0.9, 0.999));
    assert_eq!(opt.eps, 1e-8);
    assert_eq!(opt.weight_decay, 0.0);
    assert!(!opt.amsgrad);
    // Adam's parameters are the state dict's entries minus BN buffers.
    let params: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !is_batchnorm_buffer(n))
        .collect();
    assert_eq!(
        params,
        [
            "conv1.weight",
            "conv1.bias",
            "bn1.weight",
            "bn1.bias",
            "fc.weight",
            "fc.bias"
        ]
    );
    ck.check_moments(&params).unwrap();
    assert_eq!(opt.params.len(), 6);
    for (i, p) in opt.params.iter().enumerate() {
        let p = p.as_ref().unwrap();
        let e = &exp["state"][i.to_string()];
        assert_eq!(p.step, 3.0);
        assert_eq!(e["step"].as_array().unwrap()[0].as_f64(), Some(3.0));
        for (t, k) in [(&p.exp_avg, "exp_avg"), (&p.exp_avg_sq, "exp_avg_sq")] {
            let want: Vec<f64> = e[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(t.to_f64_vec(), want, "param {i} {k}");
            assert_eq!(t.dtype, DType::F32);
        }
    }
    // Written back through TrainingCheckpoint, it is byte-identical to
    // PyTorch's file (same objects, same order).
    let torch_bytes = std::fs::read(data("adam_ref.pth")).unwrap();
    let id = zip_record(&torch_bytes, "adam_ref/.data/serialization_id");
    let ours = pth_bytes_with(
        &ck.to_value().unwrap(),
        &PthOptions {
            archive_name: Some("adam_ref".into()),
            serialization_id: Some(String::from_utf8(id).unwrap()),
        },
    )
    .unwrap();
    assert!(
        ours == torch_bytes,
        "TrainingCheckpoint bytes differ from torch.save's"
    );
}

fn f32_tensor(shape: Vec<usize>, seed: f32) -> TensorView {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| seed + i as f32 * 0.25).collect();
    TensorView::from_f32(shape, &v).unwrap()
}

fn sample_training_checkpoint() -> TrainingCheckpoint {
    let model = vec![
        ("conv1.weight".to_owned(), f32_tensor(vec![2, 3, 1, 1], 1.0)),
        ("bn1.weight".to_owned(), f32_tensor(vec![2], 2.0)),
        ("bn1.bias".to_owned(), f32_tensor(vec![2], 3.0)),
        ("bn1.running_mean".to_owned(), f32_tensor(vec![2], 4.0)),
        ("bn1.running_var".to_owned(), f32_tensor(vec![2], 5.0)),
        (
            "bn1.num_batches_tracked".to_owned(),
            TensorView::from_i64(vec![], &[1234]).unwrap(),
        ),
        ("fc.weight".to_owned(), f32_tensor(vec![1, 2], 6.0)),
        ("fc.bias".to_owned(), f32_tensor(vec![1], 7.0)),
    ];
    let params: Vec<(String, TensorView)> = model
        .iter()
        .filter(|(n, _)| !is_batchnorm_buffer(n))
        .cloned()
        .collect();
    let mut adam = AdamState::new(1e-5, params.len());
    for (i, (_, t)) in params.iter().enumerate() {
        if i == 2 {
            continue; // a parameter without state: left out of 'state'
        }
        adam.params[i] = Some(AdamParamState {
            step: 1234.0,
            exp_avg: f32_tensor(t.shape.clone(), -(i as f32)),
            exp_avg_sq: f32_tensor(t.shape.clone(), i as f32 * 1e-3),
            max_exp_avg_sq: None,
        });
    }
    TrainingCheckpoint {
        model,
        optimizer: Some(adam),
        total_steps: Some(1234),
        epoch: Some(7),
        lr: Some(1e-5),
    }
}

#[test]
fn training_checkpoint_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model_epoch_7.pth");
    let ck = sample_training_checkpoint();
    ck.save(&path).unwrap();

    // Through the resume path: everything comes back.
    let back = TrainingCheckpoint::load(&path).unwrap();
    assert_eq!(back.total_steps, Some(1234));
    assert_eq!(back.epoch, Some(7));
    assert_eq!(back.lr, Some(1e-5));
    assert_eq!(back.model.len(), ck.model.len());
    for ((n1, t1), (n2, t2)) in ck.model.iter().zip(&back.model) {
        assert_eq!(n1, n2);
        assert_eq!(t1.dtype, t2.dtype, "{n1}");
        assert_eq!(t1.shape, t2.shape, "{n1}");
        assert_eq!(t1.to_le_bytes(), t2.to_le_bytes(), "{n1}");
    }
    let (a, b) = (ck.optimizer.unwrap(), back.optimizer.clone().unwrap());
    assert_eq!(
        (a.lr, a.betas, a.eps, a.weight_decay),
        (b.lr, b.betas, b.eps, b.weight_decay)
    );
    assert_eq!(a.params.len(), b.params.len());
    for (i, (pa, pb)) in a.params.iter().zip(&b.params).enumerate() {
        match (pa, pb) {
            (None, None) => {}
            (Some(pa), Some(pb)) => {
                assert_eq!(pa.step, pb.step);
                assert_eq!(pa.exp_avg.to_le_bytes(), pb.exp_avg.to_le_bytes(), "{i}");
                assert_eq!(
                    pa.exp_avg_sq.to_le_bytes(),
                    pb.exp_avg_sq.to_le_bytes(),
                    "{i}"
                );
                assert_eq!(pa.exp_avg.shape, pb.exp_avg.shape);
            }
            _ => panic!("param {i}: state present on one side only"),
        }
    }
    let names: Vec<&str> = back
        .model
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !is_batchnorm_buffer(n))
        .collect();
    back.check_moments(&names).unwrap();

    // Through the detector's loader: the state dict and the extras.
    let c = load(&path).unwrap();
    assert_eq!(c.format, Format::PthZip);
    assert_eq!(c.tensors.len(), 8);
    assert_eq!(c.total_steps, Some(1234));
    assert_eq!(c.extra_keys, ["optimizer", "total_steps", "epoch", "lr"]);
    assert_eq!(
        c.get("bn1.num_batches_tracked").unwrap().to_i64_vec(),
        Some(vec![1234])
    );

    // The raw layout is the official one, plus 'epoch' and 'lr'.
    let v = load_value(&path).unwrap();
    assert!(matches!(v.get("model"), Some(PyValue::OrderedDict(_))));
    let opt = v.get("optimizer").unwrap();
    let group = &opt.get("param_groups").unwrap().as_items().unwrap()[0];
    assert_eq!(group.get("lr"), Some(&PyValue::Float(1e-5)));
    assert_eq!(group.get("weight_decay"), Some(&PyValue::Int(0)));
    assert_eq!(group.get("foreach"), Some(&PyValue::None));
    assert_eq!(group.get("params").unwrap().as_items().unwrap().len(), 5);
    let state = opt.get("state").unwrap();
    assert!(state.get_int(2).is_none());
    let step = state
        .get_int(0)
        .unwrap()
        .get("step")
        .unwrap()
        .as_tensor()
        .unwrap();
    assert_eq!((step.dtype, step.shape.len()), (DType::F32, 0));

    // torch.save names the archive after the file.
    let names = zip_names(&std::fs::read(&path).unwrap());
    assert_eq!(names[0], "model_epoch_7/data.pkl");
    assert_eq!(
        names.last().unwrap(),
        "model_epoch_7/.data/serialization_id"
    );
}

#[test]
fn every_value_kind_round_trips() {
    let base = f32_tensor(vec![3, 4], 0.5);
    // a transposed view and a row of the same storage
    let t = TensorView {
        shape: vec![4, 3],
        strides: vec![1, 4],
        ..base.clone()
    };
    let row = TensorView {
        shape: vec![4],
        strides: vec![1],
        offset: 8,
        ..base.clone()
    };
    let mut sd = vec![
        ("base".to_owned(), PyValue::Tensor(base.clone())),
        ("t".to_owned(), PyValue::Tensor(t.clone())),
        ("row".to_owned(), PyValue::Tensor(row.clone())),
    ];
    for d in DType::ALL {
        let bytes: Vec<u8> = (0..6 * d.size()).map(|i| (i * 37 % 7) as u8).collect();
        let bytes = if d == DType::Bool {
            bytes.iter().map(|b| b & 1).collect()
        } else {
            bytes
        };
        let v = TensorView::from_bytes("", d, vec![2, 3], bytes).unwrap();
        sd.push((d.name().to_owned(), PyValue::Tensor(v)));
    }
    sd.push((
        "empty".into(),
        PyValue::Tensor(TensorView::from_f32(vec![0, 5], &[]).unwrap()),
    ));
    sd.push((
        "scalar".into(),
        PyValue::Tensor(TensorView::from_f32(vec![], &[-3.5]).unwrap()),
    ));
    let value = PyValue::Dict(vec![
        (PyValue::Str("sd".into()), PyValue::OrderedDict(sd)),
        (
            PyValue::Str("ints".into()),
            PyValue::List(
                [
                    0,
                    1,
                    255,
                    256,
                    65535,
                    65536,
                    -1,
                    i32::MAX as i64,
                    i32::MIN as i64,
                ]
                .into_iter()
                .chain([1 << 31, -(1 << 31) - 1, 1 << 40, i64::MAX, i64::MIN, -129])
                .map(PyValue::Int)
                .collect(),
            ),
        ),
        (
            PyValue::Str("floats".into()),
            PyValue::Tuple(vec![
                PyValue::Float(0.1),
                PyValue::Float(-0.0),
                PyValue::Float(f64::INFINITY),
                PyValue::Float(5e-324),
            ]),
        ),
        (
            PyValue::Str("many".into()),
            PyValue::List((0..2500).map(PyValue::Int).collect()),
        ),
        (
            PyValue::Int(5),
            PyValue::Dict(
                (0..1001)
                    .map(|i| (PyValue::Int(i), PyValue::Str(format!("v{i}"))))
                    .collect(),
            ),
        ),
        (
            PyValue::Str("misc".into()),
            PyValue::Tuple(vec![
                PyValue::None,
                PyValue::Bool(true),
                PyValue::Bool(false),
                PyValue::Str("ünïcødé ✓".into()),
                PyValue::Tuple(vec![]),
                PyValue::List(vec![]),
                PyValue::Dict(vec![]),
                PyValue::OrderedDict(vec![]),
            ]),
        ),
    ]);
    let bytes = pth_bytes(&value).unwrap();
    assert!(zip_names(&bytes)[0].starts_with("archive/"));
    let back = load_value_bytes(&bytes).unwrap();
    assert_eq!(back, value);

    // Views of one storage are written once and still share it.
    let sd = back.get("sd").unwrap();
    let (b, t2, r2) = (
        sd.get("base").unwrap().as_tensor().unwrap(),
        sd.get("t").unwrap().as_tensor().unwrap(),
        sd.get("row").unwrap().as_tensor().unwrap(),
    );
    assert!(b.shares_storage_with(t2) && b.shares_storage_with(r2));
    assert_eq!((t2.strides.clone(), r2.offset), (vec![1, 4], 8));
    let storages = zip_names(&bytes)
        .iter()
        .filter(|n| n.starts_with("archive/data/"))
        .count();
    assert_eq!(storages, 1 + DType::ALL.len() + 2);
}

#[test]
fn a_view_reinterpreting_its_storage_gets_its_own() {
    let s = TensorView::from_bytes("", DType::U8, vec![8], (1..=8).collect()).unwrap();
    let as_f32 = TensorView {
        dtype: DType::F32,
        shape: vec![2],
        strides: vec![1],
        ..s.clone()
    };
    let v = PyValue::List(vec![PyValue::Tensor(s), PyValue::Tensor(as_f32.clone())]);
    let back = load_value_bytes(&pth_bytes(&v).unwrap()).unwrap();
    assert_eq!(back, v);
    let items = back.as_items().unwrap();
    assert_eq!(items[1].as_tensor().unwrap().dtype, DType::F32);
    assert_eq!(
        items[1].as_tensor().unwrap().to_le_bytes(),
        as_f32.to_le_bytes()
    );
}

#[test]
fn unwritable_values_are_errors_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pth");
    std::fs::write(&path, b"previous").unwrap();

    let opaque = PyValue::List(vec![PyValue::Opaque("os.system object".into())]);
    let e = save_pth(&opaque, &path).unwrap_err();
    assert!(matches!(e.root(), Error::InvalidInput(_)), "{e}");
    assert!(e.to_string().contains("x.pth"), "{e}");

    // a view running past its storage
    let t = f32_tensor(vec![2], 0.0);
    let bad = TensorView {
        shape: vec![3],
        ..t
    };
    let e = save_pth(&PyValue::Tensor(bad), &path).unwrap_err();
    assert!(matches!(e.root(), Error::Tensor { .. }), "{e}");

    let deep = (0..10_000).fold(PyValue::None, |v, _| PyValue::List(vec![v]));
    assert!(pth_bytes(&deep).is_err());
    // dropping a 10,000-deep value recurses: keep it off the test's stack
    std::mem::forget(deep);

    let e = pth_bytes_with(
        &PyValue::None,
        &PthOptions {
            archive_name: Some("a/b".into()),
            serialization_id: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");

    assert_eq!(std::fs::read(&path).unwrap(), b"previous");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "temporary files left behind");
}

#[test]
fn writes_are_atomic_and_failures_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latest.pth");
    let ck = sample_training_checkpoint();
    ck.save(&path).unwrap();
    // overwriting replaces the file whole, leaving nothing else behind
    let mut ck2 = ck.clone();
    ck2.total_steps = Some(99);
    ck2.save(&path).unwrap();
    assert_eq!(load(&path).unwrap().total_steps, Some(99));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["latest.pth"]);
    // created like an ordinary file (0666 less the umask), not 0600
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&plain));
        std::fs::remove_file(&plain).unwrap();
    }

    // a missing folder is an I/O error naming it, and creates nothing
    let missing = dir.path().join("no/such/dir/best.pth");
    let e = ck.save(&missing).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("no/such/dir"), "{e}");
    assert!(!dir.path().join("no").exists());

    // a directory in the way of the rename: error, and no temporary file left
    let blocked = dir.path().join("blocked.pth");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("inside"), b"x").unwrap();
    let e = ck.save(&blocked).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["blocked.pth", "latest.pth"]);
}

#[test]
fn a_bare_state_dict_and_official_layout_read_as_training_checkpoints() {
    // A bare state dict: no optimizer, no counters.
    let v = PyValue::OrderedDict(vec![(
        "module.fc.bias".into(),
        PyValue::Tensor(f32_tensor(vec![1], 0.0)),
    )]);
    let ck = TrainingCheckpoint::from_value(&load_value_bytes(&pth_bytes(&v).unwrap()).unwrap())
        .unwrap();
    assert_eq!(ck.model[0].0, "fc.bias");
    assert!(ck.optimizer.is_none() && ck.total_steps.is_none() && ck.epoch.is_none());

    // Not a dict / no tensors: errors, not panics.
    for v in [
        PyValue::Int(3),
        PyValue::Dict(vec![(PyValue::Str("model".into()), PyValue::Dict(vec![]))]),
    ] {
        assert!(TrainingCheckpoint::from_value(&v).is_err());
    }
    // A malformed optimizer is an error (resuming must not silently reset it).
    let v = PyValue::Dict(vec![
        (
            PyValue::Str("model".into()),
            PyValue::OrderedDict(vec![(
                "w".into(),
                PyValue::Tensor(f32_tensor(vec![1], 0.0)),
            )]),
        ),
        (
            PyValue::Str("optimizer".into()),
            PyValue::Dict(vec![(PyValue::Str("state".into()), PyValue::Dict(vec![]))]),
        ),
    ]);
    assert!(TrainingCheckpoint::from_value(&v).is_err());
}

/// The ResNet-50 detector fixture, read, written back and read again: the
/// same tensors in the same order with the same dtypes and shapes (which is
/// all the detector's architecture check looks at), and the same archive as
/// PyTorch's file.
#[test]
fn resnet50_fixture_round_trips() {
    let shared = cnnspot_testdata::require_shared!();
    let src = shared.join("fixtures/cnndet_random.pth");
    let orig = load(&src).unwrap();
    let value = load_value(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnndet_random.pth");
    save_pth(&value, &out).unwrap();

    let again = load(&out).unwrap();
    assert_eq!(again.format, Format::PthZip);
    assert_eq!(again.tensors.len(), orig.tensors.len());
    assert_eq!(again.tensors.len(), 320);
    for ((n1, t1), (n2, t2)) in orig.tensors.iter().zip(&again.tensors) {
        assert_eq!(n1, n2);
        assert_eq!((t1.dtype, &t1.shape), (t2.dtype, &t2.shape), "{n1}");
        assert!(t1.to_le_bytes() == t2.to_le_bytes(), "{n1} values differ");
    }
    assert_eq!(again.get("fc.weight").unwrap().shape, [1, 2048]);
    assert_eq!(
        again.get("layer4.2.conv3.weight").unwrap().shape,
        [2048, 512, 1, 1]
    );

    // The same archive as torch.save's but for `state_dict()._metadata`
    // (module versions, pickled by PyTorch as a BUILD on the OrderedDict),
    // which cnnspot does not write: PyTorch's loaders treat it as optional.
    let torch_bytes = std::fs::read(&src).unwrap();
    let ours = std::fs::read(&out).unwrap();
    let names = zip_names(&ours);
    assert_eq!(names, zip_names(&torch_bytes));
    for n in &names {
        if n.ends_with("/data.pkl") || n.ends_with("/serialization_id") {
            continue;
        }
        assert!(zip_record(&ours, n) == zip_record(&torch_bytes, n), "{n}");
    }
    let (our_pkl, torch_pkl) = (
        zip_record(&ours, "cnndet_random/data.pkl"),
        zip_record(&torch_bytes, "cnndet_random/data.pkl"),
    );
    // ours: {'model': OrderedDict(...)} = `... u s .`; PyTorch's has the
    // metadata dict and BUILD between the OrderedDict's items and `s .`.
    assert!(our_pkl.ends_with(b"us."));
    let body = &our_pkl[..our_pkl.len() - 2];
    assert!(
        torch_pkl.starts_with(body),
        "pickles differ before _metadata"
    );
    let rest = &torch_pkl[body.len()..];
    assert!(rest.ends_with(b"bs."));
    assert!(rest.windows(9).any(|w| w == b"_metadata"));

    // As a training checkpoint too.
    let ck = TrainingCheckpoint::from_value(&value).unwrap();
    assert_eq!(ck.model.len(), 320);
    let params = ck
        .model
        .iter()
        .filter(|(n, _)| !is_batchnorm_buffer(n))
        .count();
    assert_eq!(params, 161); // ResNet-50's parameter tensors, as Adam numbers them
}
