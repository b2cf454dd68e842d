//! Checkpoint variants built by hand: bare state dicts, DataParallel
//! prefixes, parameters, untyped storages, every dtype, big-endian data,
//! legacy storage views, newer pickle protocols; and safetensors I/O.

mod common;

use cnnspot_weights::{
    load, load_bytes, safetensors_bytes, save_safetensors, save_safetensors_with_metadata, DType,
    Error, ExtraValue, Format, TensorView,
};
use common::{f32_bytes, legacy_checkpoint, zip_checkpoint, P};

#[test]
fn bare_state_dict_loads() {
    let mut p = P::new();
    p.ordered_dict();
    p.str("a")
        .tensor("FloatStorage", "0", 3, 0, &[3], &[1])
        .setitem();
    p.str("b")
        .tensor("FloatStorage", "1", 1, 0, &[], &[])
        .setitem();
    let z = zip_checkpoint(
        &p.stop(),
        &[("0", f32_bytes(&[1.0, 2.0, 3.0])), ("1", f32_bytes(&[9.0]))],
    );
    let c = load_bytes(&z).unwrap();
    assert_eq!(c.format, Format::PthZip);
    assert_eq!(c.names().collect::<Vec<_>>(), ["a", "b"]);
    assert!(c.extra_keys.is_empty());
    assert_eq!(c.total_steps, None);
    assert_eq!(c.get("b").unwrap().to_f32_vec(), [9.0]);
    assert_eq!(c.get("b").unwrap().numel(), 1);
}

#[test]
fn state_dict_key_and_module_prefix() {
    let mut p = P::new();
    p.empty_dict();
    p.str("epoch").int(7).setitem();
    p.str("state_dict").ordered_dict();
    p.str("module.conv.weight")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1])
        .setitem();
    p.str("module.fc.bias")
        .tensor("FloatStorage", "0", 2, 1, &[1], &[1])
        .setitem();
    p.setitem();
    p.str("lr").op(b'G').raw(&0.5f64.to_be_bytes()).setitem();
    p.str("name").str("resnet50").setitem();
    p.str("flag").op(0x88).setitem();
    p.str("nothing").op(b'N').setitem();
    p.str("total_steps").int(1 << 40).setitem();
    let z = zip_checkpoint(&p.stop(), &[("0", f32_bytes(&[1.0, 2.0]))]);
    let c = load_bytes(&z).unwrap();
    assert_eq!(c.names().collect::<Vec<_>>(), ["conv.weight", "fc.bias"]);
    assert_eq!(c.get("fc.bias").unwrap().to_f32_vec(), [2.0]);
    assert_eq!(
        c.extra_keys,
        ["epoch", "lr", "name", "flag", "nothing", "total_steps"]
    );
    assert_eq!(c.extra("epoch"), Some(&ExtraValue::Int(7)));
    assert_eq!(c.extra("lr"), Some(&ExtraValue::Float(0.5)));
    assert_eq!(c.extra("name"), Some(&ExtraValue::Str("resnet50".into())));
    assert_eq!(c.extra("flag"), Some(&ExtraValue::Bool(true)));
    assert_eq!(c.extra("nothing"), Some(&ExtraValue::None));
    assert_eq!(c.total_steps, Some(1 << 40));
}

#[test]
fn duplicate_names_after_prefix_stripping_are_an_error() {
    let mut p = P::new();
    p.ordered_dict();
    p.str("module.w")
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .setitem();
    p.str("w")
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .setitem();
    let z = zip_checkpoint(&p.stop(), &[("0", f32_bytes(&[1.0]))]);
    assert!(matches!(load_bytes(&z), Err(Error::Tensor { .. })));
}

#[test]
fn parameters_untyped_storages_and_v3() {
    let mut p = P::new();
    p.ordered_dict();
    // nn.Parameter
    p.str("p")
        .global("torch._utils", "_rebuild_parameter")
        .mark();
    p.tensor("FloatStorage", "0", 2, 0, &[2], &[1]);
    p.op(0x88).ordered_dict().tuple().op(b'R').setitem();
    // _rebuild_tensor_v2 on a torch.UntypedStorage: uint8
    p.str("u")
        .global("torch._utils", "_rebuild_tensor_v2")
        .mark();
    p.mark().str("storage").global("torch", "UntypedStorage");
    p.str("1").str("cpu").int(8).tuple().op(b'Q');
    p.int(0)
        .ints(&[8])
        .ints(&[1])
        .op(0x89)
        .ordered_dict()
        .tuple()
        .op(b'R')
        .setitem();
    // _rebuild_tensor_v3: float32 view of the same untyped storage
    p.str("v3")
        .global("torch._utils", "_rebuild_tensor_v3")
        .mark();
    p.mark()
        .str("storage")
        .global("torch.storage", "UntypedStorage");
    p.str("1").str("cpu").int(8).tuple().op(b'Q');
    p.int(1).ints(&[1]).ints(&[1]).op(0x89).ordered_dict();
    p.global("torch", "float32").tuple().op(b'R').setitem();
    // _rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, args, state)
    p.str("sub")
        .global("torch._utils", "_rebuild_from_type_v2")
        .mark();
    p.global("torch._utils", "_rebuild_tensor_v2")
        .global("torch._tensor", "Tensor");
    p.mark()
        .storage("FloatStorage", "0", 2)
        .int(1)
        .ints(&[1])
        .ints(&[1]);
    p.op(0x89).ordered_dict().tuple();
    p.empty_dict().tuple().op(b'R').setitem();
    // a storage type given as a dtype
    p.str("dt")
        .global("torch._utils", "_rebuild_tensor_v2")
        .mark();
    p.mark().str("storage").global("torch", "float32");
    p.str("0").str("cpu").int(2).tuple().op(b'Q');
    p.int(0)
        .ints(&[2])
        .ints(&[1])
        .op(0x89)
        .ordered_dict()
        .tuple()
        .op(b'R')
        .setitem();

    let u8s: Vec<u8> = [0.0f32, 4.5f32]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let z = zip_checkpoint(
        &p.stop(),
        &[("0", f32_bytes(&[3.0, -1.0])), ("1", u8s.clone())],
    );
    let c = load_bytes(&z).unwrap();
    assert_eq!(c.get("p").unwrap().to_f32_vec(), [3.0, -1.0]);
    let u = c.get("u").unwrap();
    assert_eq!(u.dtype, DType::U8);
    assert_eq!(
        u.to_i64_vec().unwrap(),
        u8s.iter().map(|&b| b as i64).collect::<Vec<_>>()
    );
    let v3 = c.get("v3").unwrap();
    assert_eq!(v3.dtype, DType::F32);
    assert_eq!(v3.storage.dtype(), DType::U8);
    assert_eq!(v3.to_f32_vec(), [4.5]);
    assert!(v3.shares_storage_with(u));
    assert_eq!(c.get("sub").unwrap().to_f32_vec(), [-1.0]);
    assert!(c
        .get("sub")
        .unwrap()
        .shares_storage_with(c.get("p").unwrap()));
    assert_eq!(c.get("dt").unwrap().to_f32_vec(), [3.0, -1.0]);
}

#[test]
fn unknown_entries_in_the_state_dict_are_skipped_not_fatal() {
    let mut p = P::new();
    p.empty_dict().str("model").ordered_dict();
    p.str("w")
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .setitem();
    p.str("q")
        .global("torch._utils", "_rebuild_qtensor")
        .mark()
        .int(1)
        .tuple()
        .op(b'R');
    p.setitem();
    p.setitem();
    p.str("optimizer")
        .global("torch.optim.adam", "Adam")
        .op(b')')
        .op(0x81);
    p.empty_dict().op(b'b').setitem();
    let z = zip_checkpoint(&p.stop(), &[("0", f32_bytes(&[5.0]))]);
    let c = load_bytes(&z).unwrap();
    assert_eq!(c.tensors.len(), 1);
    assert_eq!(c.skipped.len(), 1);
    assert_eq!(c.skipped[0].0, "q");
    assert!(
        c.skipped[0].1.contains("_rebuild_qtensor"),
        "{:?}",
        c.skipped
    );
    assert!(c.extra("optimizer").unwrap().to_string().contains("Adam"));
}

#[test]
fn optimizer_storages_are_not_read() {
    // the optimizer's tensor names a storage that is absent from the archive:
    // only the selected state dict's storages are read
    let mut p = P::new();
    p.empty_dict().str("model").ordered_dict();
    p.str("w")
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .setitem();
    p.setitem();
    p.str("optimizer").empty_dict().str("exp_avg");
    p.tensor("FloatStorage", "99", 1000, 0, &[1000], &[1])
        .setitem();
    p.setitem();
    let z = zip_checkpoint(&p.stop(), &[("0", f32_bytes(&[5.0]))]);
    let c = load_bytes(&z).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [5.0]);
}

/// (name, storage class, dtype, little-endian bytes, values)
type DTypeCase = (&'static str, &'static str, DType, Vec<u8>, Vec<f64>);

/// (name, dtype, values)
type Expected = (&'static str, DType, Vec<f64>);

fn all_dtypes_zip() -> (Vec<u8>, Vec<Expected>) {
    let cases: Vec<DTypeCase> = vec![
        (
            "f16",
            "HalfStorage",
            DType::F16,
            [0x3c00u16, 0xc000]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![1.0, -2.0],
        ),
        (
            "bf16",
            "BFloat16Storage",
            DType::BF16,
            [0x3f80u16, 0x4040]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![1.0, 3.0],
        ),
        (
            "f32",
            "FloatStorage",
            DType::F32,
            f32_bytes(&[0.25, -8.0]),
            vec![0.25, -8.0],
        ),
        (
            "f64",
            "DoubleStorage",
            DType::F64,
            [0.1f64, 1e300]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![0.1, 1e300],
        ),
        (
            "i64",
            "LongStorage",
            DType::I64,
            [-5i64, 1 << 40]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![-5.0, (1u64 << 40) as f64],
        ),
        (
            "i32",
            "IntStorage",
            DType::I32,
            [-7i32, 70000]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![-7.0, 70000.0],
        ),
        (
            "i16",
            "ShortStorage",
            DType::I16,
            [-300i16, 300]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![-300.0, 300.0],
        ),
        (
            "i8",
            "CharStorage",
            DType::I8,
            vec![0xff, 0x7f],
            vec![-1.0, 127.0],
        ),
        (
            "u8",
            "ByteStorage",
            DType::U8,
            vec![0xff, 0x01],
            vec![255.0, 1.0],
        ),
        (
            "bool",
            "BoolStorage",
            DType::Bool,
            vec![1, 0],
            vec![1.0, 0.0],
        ),
    ];
    let mut p = P::new();
    p.ordered_dict();
    let mut storages = Vec::new();
    for (i, (name, class, _, bytes, _)) in cases.iter().enumerate() {
        let key = i.to_string();
        p.str(name).tensor(class, &key, 2, 0, &[2], &[1]).setitem();
        storages.push((key, bytes.clone()));
    }
    let st: Vec<(&str, Vec<u8>)> = storages
        .iter()
        .map(|(k, b)| (k.as_str(), b.clone()))
        .collect();
    let z = zip_checkpoint(&p.stop(), &st);
    (
        z,
        cases.into_iter().map(|(n, _, d, _, v)| (n, d, v)).collect(),
    )
}

#[test]
fn every_dtype_reads_and_round_trips_through_safetensors() {
    let (z, cases) = all_dtypes_zip();
    let c = load_bytes(&z).unwrap();
    for (name, dtype, values) in &cases {
        let t = c.get(name).unwrap();
        assert_eq!(t.dtype, *dtype, "{name}");
        assert_eq!(t.storage.dtype(), *dtype, "{name}");
        assert_eq!(&t.to_f64_vec(), values, "{name}");
        let f32s: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        assert_eq!(t.to_f32_vec(), f32s, "{name}");
        if dtype.is_float() {
            assert!(t.to_i64_vec().is_none());
        } else {
            let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
            assert_eq!(t.to_i64_vec().unwrap(), ints, "{name}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.safetensors");
    save_safetensors(&c.tensors, &path).unwrap();
    let back = load(&path).unwrap();
    assert_eq!(back.format, Format::Safetensors);
    for ((n, a), (m, b)) in c.tensors.iter().zip(&back.tensors) {
        assert_eq!(n, m);
        assert_eq!(a.dtype, b.dtype);
        assert_eq!(a.to_le_bytes(), b.to_le_bytes());
    }
    // the reference implementation agrees on dtypes
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, dtype, _) in &cases {
        let v = st.tensor(name).unwrap();
        assert_eq!(
            format!("{:?}", v.dtype()),
            dtype.safetensors_name(),
            "{name}"
        );
    }
    // and a file written by the reference implementation reads back
    let views: Vec<(String, safetensors::tensor::TensorView)> = c
        .tensors
        .iter()
        .map(|(n, t)| {
            let dt = match t.dtype {
                DType::F16 => safetensors::Dtype::F16,
                DType::BF16 => safetensors::Dtype::BF16,
                DType::F32 => safetensors::Dtype::F32,
                DType::F64 => safetensors::Dtype::F64,
                DType::I64 => safetensors::Dtype::I64,
                DType::I32 => safetensors::Dtype::I32,
                DType::I16 => safetensors::Dtype::I16,
                DType::I8 => safetensors::Dtype::I8,
                DType::U8 => safetensors::Dtype::U8,
                DType::Bool => safetensors::Dtype::BOOL,
            };
            let bytes = t.storage.bytes();
            (
                n.clone(),
                safetensors::tensor::TensorView::new(dt, t.shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let reference = safetensors::serialize(views, &None).unwrap();
    let r = load_bytes(&reference).unwrap();
    for (name, dtype, values) in &cases {
        let t = r.get(name).unwrap();
        assert_eq!(t.dtype, *dtype);
        assert_eq!(&t.to_f64_vec(), values);
    }
}

#[test]
fn safetensors_metadata_and_order() {
    let a = TensorView::from_f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let b = TensorView::from_i64(vec![], &[42]).unwrap();
    // a transposed view: written contiguously in row-major order of the view
    let at = TensorView {
        shape: vec![2, 2],
        strides: vec![1, 2],
        ..a.clone()
    };
    let tensors = vec![
        ("z.last".to_string(), a.clone()),
        ("a.first".to_string(), b),
        ("m.transposed".to_string(), at),
        ("w \"quoted\"\n".to_string(), a.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, b"old contents").unwrap();
    save_safetensors_with_metadata(
        &tensors,
        &[
            ("total_steps".into(), "1234".into()),
            ("format".into(), "pt".into()),
        ],
        &path,
    )
    .unwrap();
    let c = load(&path).unwrap();
    assert_eq!(
        c.names().collect::<Vec<_>>(),
        ["z.last", "a.first", "m.transposed", "w \"quoted\"\n"]
    );
    assert_eq!(c.total_steps, Some(1234));
    assert_eq!(c.extra("format"), Some(&ExtraValue::Str("pt".into())));
    assert_eq!(
        c.get("m.transposed").unwrap().to_f32_vec(),
        [1.0, 3.0, 2.0, 4.0]
    );
    assert_eq!(c.get("a.first").unwrap().to_i64_vec(), Some(vec![42]));
    assert_eq!(c.get("a.first").unwrap().shape, Vec::<usize>::new());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // in-memory bytes are the same as the file
    let bytes = safetensors_bytes(
        &tensors,
        &[
            ("total_steps".into(), "1234".into()),
            ("format".into(), "pt".into()),
        ],
    )
    .unwrap();
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    // data starts 8-byte aligned
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(n % 8, 0);
}

#[test]
fn safetensors_writer_rejects_bad_input() {
    let a = TensorView::from_f32(vec![2], &[1.0, 2.0]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    let dup = vec![("a".to_string(), a.clone()), ("a".to_string(), a.clone())];
    assert!(matches!(save_safetensors(&dup, &path), Err(e) if e.to_string().contains("twice")));
    let meta = vec![("__metadata__".to_string(), a.clone())];
    assert!(save_safetensors(&meta, &path).is_err());
    let bad = TensorView {
        shape: vec![3],
        ..a.clone()
    };
    let e = save_safetensors(&[("bad".to_string(), bad)], &path).unwrap_err();
    assert!(e.to_string().contains("bad"), "{e}");
    assert!(!path.exists());
    let e = save_safetensors(
        &[("a".into(), a)],
        &dir.path().join("no/such/dir/x.safetensors"),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("no/such/dir"), "{e}");
}

#[test]
fn malformed_safetensors_are_errors() {
    let a = TensorView::from_f32(vec![2], &[1.0, 2.0]).unwrap();
    let good = safetensors_bytes(&[("a".into(), a)], &[]).unwrap();
    assert!(load_bytes(&good).is_ok());
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + n])
        .unwrap()
        .trim_end()
        .to_string();
    let with_header = |h: &str| {
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&good[8 + n..]);
        b
    };
    assert!(load_bytes(&with_header(&header)).is_ok());
    for h in [
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#,
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,0]}}"#,
        r#"{"a":{"dtype":"C64","shape":[2],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[2]}}"#,
        r#"{"a":[1,2]}"#,
        r#"{"__metadata__":{"x":1}}"#,
        r#"{"a":"#,
        r#"{not json}"#,
    ] {
        let e = load_bytes(&with_header(h)).unwrap_err();
        assert!(
            matches!(e, Error::Safetensors(_) | Error::NotACheckpoint(_)),
            "{h}: {e:?}"
        );
    }
    // header length past the end of the file
    let mut b = good.clone();
    b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(load_bytes(&b).is_err());
    // truncated data section
    assert!(load_bytes(&good[..good.len() - 1]).is_err());
}

#[test]
fn big_endian_zip_is_byteswapped() {
    let mut p = P::new();
    p.ordered_dict()
        .str("w")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1])
        .setitem();
    let pkl = p.stop();
    let be: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("x/data.pkl", o).unwrap();
        z.write_all(&pkl).unwrap();
        z.start_file("x/byteorder", o).unwrap();
        z.write_all(b"big").unwrap();
        z.start_file("x/data/0", o).unwrap();
        z.write_all(&be).unwrap();
        z.finish().unwrap();
    }
    let c = load_bytes(&buf.into_inner()).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [1.5, -2.0]);
}

#[test]
fn deflated_zip_records_are_read() {
    let mut p = P::new();
    p.ordered_dict()
        .str("w")
        .tensor("FloatStorage", "0", 3, 0, &[3], &[1])
        .setitem();
    let pkl = p.stop();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("archive/data.pkl", o).unwrap();
        z.write_all(&pkl).unwrap();
        z.start_file("archive/data/0", o).unwrap();
        z.write_all(&f32_bytes(&[1.0, 2.0, 3.0])).unwrap();
        z.finish().unwrap();
    }
    let c = load_bytes(&buf.into_inner()).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [1.0, 2.0, 3.0]);
}

#[test]
fn legacy_storage_views_and_old_rebuild() {
    // ('storage', FloatStorage, 'root', 'cpu', 6, ('view', 2, 3)): elements 2..5 of root
    let mut p = P::new();
    p.ordered_dict()
        .str("v")
        .global("torch._utils", "_rebuild_tensor")
        .mark();
    p.mark()
        .str("storage")
        .global("torch", "FloatStorage")
        .str("root")
        .str("cpu")
        .int(6);
    p.mark().str("view").int(2).int(3).tuple();
    p.tuple().op(b'Q');
    p.int(1).ints(&[2]).ints(&[1]).tuple().op(b'R').setitem();
    p.str("r")
        .tensor("FloatStorage", "root", 6, 0, &[6], &[1])
        .setitem();
    let file = legacy_checkpoint(
        &p.stop(),
        &[("root", 6, f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))],
    );
    let c = load_bytes(&file).unwrap();
    assert_eq!(c.format, Format::PthLegacy);
    let v = c.get("v").unwrap();
    assert_eq!(v.to_f32_vec(), [3.0, 4.0]);
    assert_eq!(v.offset, 3);
    assert!(v.shares_storage_with(c.get("r").unwrap()));

    // a view past the end of its window is refused
    let mut p = P::new();
    p.ordered_dict()
        .str("v")
        .global("torch._utils", "_rebuild_tensor")
        .mark();
    p.mark()
        .str("storage")
        .global("torch", "FloatStorage")
        .str("root")
        .str("cpu")
        .int(6);
    p.mark().str("view").int(2).int(3).tuple();
    p.tuple().op(b'Q');
    p.int(2).ints(&[2]).ints(&[1]).tuple().op(b'R').setitem();
    let file = legacy_checkpoint(&p.stop(), &[("root", 6, f32_bytes(&[0.0; 6]))]);
    assert!(load_bytes(&file).is_err());
}

#[test]
fn protocol_4_opcodes() {
    // FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, EMPTY_SET/ADDITEMS, BINBYTES, LONG1
    let mut p = P(vec![0x80, 4, 0x95]);
    p.raw(&0u64.to_le_bytes());
    let sbu = |p: &mut P, s: &str| {
        p.op(0x8c).op(s.len() as u8).raw(s.as_bytes());
    };
    p.op(b'}').op(0x94);
    sbu(&mut p, "model");
    p.op(0x94);
    sbu(&mut p, "collections");
    sbu(&mut p, "OrderedDict");
    p.op(0x93).op(0x94).op(b')').op(b'R').op(0x94);
    sbu(&mut p, "w");
    sbu(&mut p, "torch._utils");
    sbu(&mut p, "_rebuild_tensor_v2");
    p.op(0x93).op(0x94).mark();
    p.mark();
    sbu(&mut p, "storage");
    sbu(&mut p, "torch");
    sbu(&mut p, "FloatStorage");
    p.op(0x93);
    sbu(&mut p, "0");
    sbu(&mut p, "cpu");
    p.op(b'K').op(2).tuple().op(b'Q');
    p.op(b'K')
        .op(0)
        .op(b'K')
        .op(2)
        .op(0x85)
        .op(b'K')
        .op(1)
        .op(0x85)
        .op(0x89);
    p.op(b'h').op(2).op(b')').op(b'R');
    p.tuple().op(b'R').op(b's');
    p.op(b's');
    // extras using newer opcodes
    sbu(&mut p, "tags");
    p.op(0x8f).mark().op(b'K').op(1).op(0x90).op(b's');
    sbu(&mut p, "blob");
    p.op(b'C').op(3).raw(b"abc").op(b's');
    sbu(&mut p, "neg");
    p.op(0x8a).op(2).raw(&[0x00, 0xff]).op(b's'); // -256
    let z = zip_checkpoint(&p.stop(), &[("0", f32_bytes(&[7.0, 8.0]))]);
    let c = load_bytes(&z).unwrap();
    assert_eq!(c.get("w").unwrap().to_f32_vec(), [7.0, 8.0]);
    assert_eq!(c.extra_keys, ["tags", "blob", "neg"]);
    assert_eq!(c.extra("neg"), Some(&ExtraValue::Int(-256)));
}

#[test]
fn format_display_and_dtype_names() {
    assert_eq!(Format::PthZip.to_string(), "PyTorch zip");
    assert_eq!(Format::PthLegacy.to_string(), "PyTorch legacy");
    assert_eq!(Format::Safetensors.to_string(), "safetensors");
    let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(
        names,
        [
            "float16", "bfloat16", "float32", "float64", "int64", "int32", "int16", "int8",
            "uint8", "bool"
        ]
    );
    let sizes: Vec<usize> = DType::ALL.iter().map(|d| d.size()).collect();
    assert_eq!(sizes, [2, 2, 4, 8, 8, 4, 2, 1, 1, 1]);
    for d in DType::ALL {
        assert_eq!(DType::from_torch_name(d.name()), Some(d));
        assert_eq!(DType::from_safetensors_name(d.safetensors_name()), Some(d));
    }
}

#[test]
fn detection_is_by_content_not_extension() {
    let a = TensorView::from_f32(vec![1], &[1.0]).unwrap();
    let st = safetensors_bytes(&[("a".into(), a)], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.pth");
    std::fs::write(&path, &st).unwrap();
    assert_eq!(load(&path).unwrap().format, Format::Safetensors);
    assert_eq!(
        cnnspot_weights::detect_file_format(&path).unwrap(),
        Format::Safetensors
    );
}
