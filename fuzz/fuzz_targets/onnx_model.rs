//! The ONNX loader, as `cnnspot synth` uses it:
//! `cnnspot_onnx::Model::from_bytes`. A model that loads is run once with
//! small inputs of its declared shapes (symbolic or unknown dimensions taken
//! as 4) under a small activation bound, when the inputs are small.
#![no_main]

use cnnspot_onnx::{Dim, Model, Tensor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_bytes(data) else {
        return;
    };
    let model = model.with_max_elements(1 << 16);
    let mut tensors = Vec::new();
    let mut total = 0usize;
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
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let Some(n) = n.filter(|&n| n <= 4096) else {
            return;
        };
        total += n;
        if total > 16384 {
            return;
        }
        let t = Tensor::new(shape, vec![0.5; n]).expect("tensor");
        tensors.push((io.name.clone(), t));
    }
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    if let Ok(outs) = model.run(&named) {
        for (_, t) in outs {
            assert!(t.data().len() <= 1 << 16);
        }
    }
});
