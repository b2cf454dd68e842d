//! The shared fixtures: small legacy/zip checkpoints and the ResNet-50 detector.

use std::path::Path;
use std::time::Instant;

use cnnspot_weights::{load, save_safetensors, DType, ExtraValue, Format, TensorView};
use serde_json::Value;

fn expected(shared: &Path) -> Value {
    let text =
        std::fs::read_to_string(shared.join("fixtures/small_checkpoints_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check_small(path: &Path, format: Format, exp: &Value) {
    let ckpt = load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ckpt.format, format);
    let tensors = exp["tensors"].as_object().unwrap();
    // same names (the JSON object is not ordered; compare as sets)
    let mut names: Vec<&str> = ckpt.names().collect();
    names.sort();
    let mut exp_names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    exp_names.sort();
    assert_eq!(names, exp_names, "{}", path.display());

    for (name, e) in tensors {
        let t = ckpt.get(name).unwrap();
        assert_eq!(t.dtype.name(), e["dtype"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{name}");
        let values: Vec<f64> = e["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(t.to_f64_vec(), values, "{name} values");
        // f32 conversion agrees too
        let f32s: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        assert_eq!(t.to_f32_vec(), f32s, "{name} f32 values");
        t.validate().unwrap();
    }

    // dtypes present
    assert_eq!(ckpt.get("half.weight").unwrap().dtype, DType::F16);
    assert_eq!(ckpt.get("double.weight").unwrap().dtype, DType::F64);
    let nbt = ckpt.get("bn1.num_batches_tracked").unwrap();
    assert_eq!(nbt.dtype, DType::I64);
    assert!(nbt.shape.is_empty());
    assert_eq!(nbt.to_i64_vec(), Some(vec![1000]));
    assert_eq!(ckpt.get("fc.weight").unwrap().to_i64_vec(), None);

    // one shared storage, with offsets and strides
    let w = ckpt.get("fc.weight").unwrap();
    let b = ckpt.get("fc.bias").unwrap();
    let s = ckpt.get("strided.view").unwrap();
    assert!(w.shares_storage_with(b));
    assert!(w.shares_storage_with(s));
    assert!(!w.shares_storage_with(ckpt.get("conv1.weight").unwrap()));
    assert_eq!(w.storage.numel(), 60);
    assert_eq!(w.storage.dtype(), DType::F32);
    assert_eq!((w.offset, w.strides.as_slice()), (10, &[10usize, 1][..]));
    assert_eq!((b.offset, b.strides.as_slice()), (53, &[1usize][..]));
    assert_eq!((s.offset, s.strides.as_slice()), (1, &[20usize, 3][..]));
    assert!(!s.is_contiguous());
    // the storage holds the 60 values i/7 (consistent with every view)
    let whole = TensorView {
        storage: w.storage.clone(),
        dtype: DType::F32,
        shape: vec![60],
        strides: vec![1],
        offset: 0,
    };
    let all = whole.to_f32_vec();
    for (i, v) in all.iter().enumerate() {
        assert_eq!(*v, i as f32 / 7.0, "storage element {i}");
    }

    // non-tensor entries are extras
    assert_eq!(ckpt.total_steps, Some(exp["total_steps"].as_i64().unwrap()));
    assert_eq!(ckpt.total_steps, Some(1234));
    assert!(ckpt.extra_keys.contains(&"total_steps".to_string()));
    assert!(ckpt.extra_keys.contains(&"optimizer".to_string()));
    assert!(!ckpt.extra_keys.contains(&"model".to_string()));
    assert_eq!(ckpt.extra("total_steps"), Some(&ExtraValue::Int(1234)));
    assert!(matches!(ckpt.extra("optimizer"), Some(ExtraValue::Other(d)) if d.contains("dict")));
    assert!(ckpt.skipped.is_empty());
}

#[test]
fn small_legacy_matches_expected() {
    let shared = cnnspot_testdata::require_shared!();
    let exp = expected(&shared);
    check_small(
        &shared.join("fixtures/small_legacy_format.pth"),
        Format::PthLegacy,
        &exp,
    );
}

#[test]
fn small_zip_matches_expected() {
    let shared = cnnspot_testdata::require_shared!();
    let exp = expected(&shared);
    check_small(
        &shared.join("fixtures/small_zip_format.pth"),
        Format::PthZip,
        &exp,
    );
}

#[test]
fn small_legacy_and_zip_agree_in_order_and_bytes() {
    let shared = cnnspot_testdata::require_shared!();
    let a = load(&shared.join("fixtures/small_legacy_format.pth")).unwrap();
    let b = load(&shared.join("fixtures/small_zip_format.pth")).unwrap();
    let na: Vec<&str> = a.names().collect();
    let nb: Vec<&str> = b.names().collect();
    assert_eq!(na, nb);
    assert_eq!(
        na,
        [
            "conv1.weight",
            "bn1.running_mean",
            "bn1.num_batches_tracked",
            "fc.weight",
            "fc.bias",
            "strided.view",
            "half.weight",
            "double.weight"
        ]
    );
    for ((_, x), (_, y)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(x.to_le_bytes(), y.to_le_bytes());
    }
}

#[test]
fn small_checkpoint_safetensors_round_trip_materialises_views() {
    let shared = cnnspot_testdata::require_shared!();
    let a = load(&shared.join("fixtures/small_zip_format.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.safetensors");
    save_safetensors(&a.tensors, &out).unwrap();
    let b = load(&out).unwrap();
    assert_eq!(b.format, Format::Safetensors);
    let na: Vec<&str> = a.names().collect();
    let nb: Vec<&str> = b.names().collect();
    assert_eq!(na, nb, "file order is kept");
    for ((n, x), (_, y)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(x.dtype, y.dtype, "{n}");
        assert_eq!(x.shape, y.shape, "{n}");
        assert_eq!(x.to_le_bytes(), y.to_le_bytes(), "{n}");
        assert!(y.is_contiguous());
        assert_eq!(y.storage.nbytes(), y.numel() * y.dtype.size(), "{n}");
    }
    // views of one storage become separate contiguous tensors
    assert!(!b
        .get("fc.weight")
        .unwrap()
        .shares_storage_with(b.get("fc.bias").unwrap()));
    // the reference implementation reads it too
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let sv = st.tensor("strided.view").unwrap();
    assert_eq!(sv.dtype(), safetensors::Dtype::F32);
    assert_eq!(sv.shape(), &[3, 3]);
    assert_eq!(
        sv.data(),
        a.get("strided.view").unwrap().to_le_bytes().as_slice()
    );
    let hw = st.tensor("half.weight").unwrap();
    assert_eq!(hw.dtype(), safetensors::Dtype::F16);
    // no temporary files are left behind
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn cnndet_random_loads_and_round_trips() {
    let shared = cnnspot_testdata::require_shared!();
    let path = shared.join("fixtures/cnndet_random.pth");
    let t0 = Instant::now();
    let ckpt = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dt = t0.elapsed();
    eprintln!("loaded cnndet_random.pth in {dt:?}");
    assert_eq!(ckpt.format, Format::PthZip);
    assert_eq!(ckpt.tensors.len(), 320);
    assert!(ckpt.skipped.is_empty());
    let shape = |n: &str| {
        ckpt.get(n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .shape
            .clone()
    };
    assert_eq!(shape("conv1.weight"), [64, 3, 7, 7]);
    assert_eq!(shape("fc.weight"), [1, 2048]);
    assert_eq!(shape("fc.bias"), [1]);
    assert_eq!(shape("layer1.0.downsample.0.weight"), [256, 64, 1, 1]);
    assert_eq!(shape("layer4.2.conv3.weight"), [2048, 512, 1, 1]);
    assert_eq!(ckpt.names().next(), Some("conv1.weight"));
    let nbt: Vec<&str> = ckpt
        .names()
        .filter(|n| n.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(nbt.len(), 53);
    for (n, t) in &ckpt.tensors {
        let want = if n.ends_with("num_batches_tracked") {
            DType::I64
        } else {
            DType::F32
        };
        assert_eq!(t.dtype, want, "{n}");
        assert!(t.is_contiguous(), "{n}");
        t.validate().unwrap();
    }
    assert!(ckpt
        .get("bn1.num_batches_tracked")
        .unwrap()
        .shape
        .is_empty());
    // ResNet-50 with a 1-way fc: 23,510,081 parameters + BN buffers
    let params: usize = ckpt
        .tensors
        .iter()
        .filter(|(n, _)| !n.contains("running_") && !n.ends_with("num_batches_tracked"))
        .map(|(_, t)| t.numel())
        .sum();
    assert_eq!(params, 23_510_081);
    // BatchNorm statistics are non-trivial
    let rv = ckpt.get("bn1.running_var").unwrap().to_f32_vec();
    assert!(rv.iter().all(|v| v.is_finite() && *v > 0.0));
    assert!(rv.iter().any(|&v| v != 1.0));

    // safetensors round trip
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnndet.safetensors");
    save_safetensors(&ckpt.tensors, &out).unwrap();
    let back = load(&out).unwrap();
    assert_eq!(back.format, Format::Safetensors);
    assert_eq!(back.tensors.len(), ckpt.tensors.len());
    for ((n, x), (m, y)) in ckpt.tensors.iter().zip(&back.tensors) {
        assert_eq!(n, m);
        assert_eq!(x.dtype, y.dtype, "{n}");
        assert_eq!(x.shape, y.shape, "{n}");
        assert_eq!(x.to_le_bytes(), y.to_le_bytes(), "{n}");
    }
    assert_eq!(
        back.get("fc.weight").unwrap().to_f32_vec(),
        ckpt.get("fc.weight").unwrap().to_f32_vec()
    );
    assert_eq!(
        back.get("layer2.3.bn3.num_batches_tracked")
            .unwrap()
            .to_i64_vec(),
        ckpt.get("layer2.3.bn3.num_batches_tracked")
            .unwrap()
            .to_i64_vec()
    );
}

#[test]
fn cnndet_random_loads_from_memory_too() {
    let shared = cnnspot_testdata::require_shared!();
    let bytes = std::fs::read(shared.join("fixtures/cnndet_random.pth")).unwrap();
    let a = cnnspot_weights::load_bytes(&bytes).unwrap();
    assert_eq!(a.format, Format::PthZip);
    assert_eq!(a.tensors.len(), 320);
    assert_eq!(
        cnnspot_weights::detect_format(&bytes).unwrap(),
        Format::PthZip
    );
}
