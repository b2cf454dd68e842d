//! Inputs the `onnx_model` fuzz target (fuzz/) found crashing, replayed as
//! it runs them: load, then run on inputs of the declared shapes (4 for a
//! symbolic dimension) with 2^16-element activations. Each must end in a
//! model or run error, never a panic.

use cnnspot_onnx::{Dim, Model, Tensor};

fn replay(data: &[u8]) -> Result<(), String> {
    let model = Model::from_bytes(data).map_err(|e| e.to_string())?;
    let model = model.with_max_elements(1 << 16);
    let mut tensors = Vec::new();
    for io in model.inputs() {
        let shape: Vec<usize> = match &io.shape {
            Some(dims) => dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Named(_) | Dim::Unknown => 4,
                })
                .collect(),
            None => vec![1, 3, 4, 4],
        };
        let n: usize = shape.iter().product();
        let t = Tensor::new(shape, vec![0.5; n]).map_err(|e| e.to_string())?;
        tensors.push((io.name.clone(), t));
    }
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let outs = model.run(&named).map_err(|e| e.to_string())?;
    for (_, t) in outs {
        assert!(t.data().len() <= 1 << 16);
    }
    Ok(())
}

#[test]
fn every_crash_the_fuzzer_found_is_an_error_now() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    cnnspot_testdata::replay_fuzz_regressions(&dir, |data| {
        eprintln!("{:?}", replay(data));
    });
}

/// The first one: Resize with a 1e30-ish scale on an input whose batch axis
/// is empty (0 elements in all, so the element limit passed) tried to build
/// an index table of 2^64 entries.
#[test]
fn resize_with_a_huge_scale_on_an_empty_batch_is_too_large() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let data = std::fs::read(dir.join("resize-huge-scale-empty-batch.onnx")).expect("input");
    let err = replay(&data).expect_err("an error, not a result");
    assert!(
        err.contains("too large") || err.contains("elements"),
        "{err}"
    );
}
