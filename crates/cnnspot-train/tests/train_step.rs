//! One training step reproduces PyTorch's (shared/fixtures/train_step.json):
//! train-mode BatchNorm, BCE-with-logits, Adam(lr 1e-4), from cnndet_random.pth
//! on [real crop224, fake crop224] with labels [0, 1].

use cnnspot_core::{default_device, weights};
use cnnspot_testdata::{read_npy_f32, require_shared};
use cnnspot_train::step::{AdamConfig, Trainer};
use serde_json::Value;

fn l2(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(1e-12);
    assert!(
        err <= rel,
        "{what}: {got} vs PyTorch {want} (relative error {err:.2e} > {rel:.0e})"
    );
}

#[test]
fn one_training_step_matches_pytorch() {
    let shared = require_shared!();
    let fx = shared.join("fixtures");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("train_step.json")).unwrap())
            .unwrap();
    let ckpt = weights::read(&fx.join("cnndet_random.pth")).unwrap();
    let state = weights::state_dict(&ckpt);

    let mut images = Vec::new();
    for name in reference["inputs"].as_array().unwrap() {
        let (_, data) = read_npy_f32(&fx.join(name.as_str().unwrap())).unwrap();
        images.extend(data);
    }
    let labels: Vec<f32> = reference["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();

    // Gradients, from a trainer that then does not step.
    let mut probe =
        Trainer::from_state_dict(&state, AdamConfig::default(), &default_device()).unwrap();
    let grads = probe
        .gradients(images.clone(), 2, 224, 224, &labels)
        .unwrap();
    let rel_f32_f64 = &reference["float64_reference"]["grad_l2_rel_diff_f32_vs_f64"];
    for (name, want) in reference["grads"].as_object().unwrap() {
        let (shape, g) = grads
            .get(name)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let want_shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, &want_shape, "{name}");
        // Judged against PyTorch's float64 gradient, within three times
        // PyTorch's own float32 error (4e-3 on conv1, 1e-5 on the last
        // layers) or 5e-3, whichever is larger. burn's float32 error depends
        // on the host's gemm kernels: on an AVX2-only EPYC it measured 3.5e-3
        // on bn1.bias and 1.7e-4 on layer4.2.bn3.weight, which passed 3x
        // PyTorch's error on AVX-512 hosts. A wrong gradient (a missing term,
        // a wrong stride) is off by far more than 5e-3.
        let pt_err = rel_f32_f64[name].as_f64().unwrap_or(0.0);
        let tol = (3.0 * pt_err).max(5e-3);
        let want64 = reference["float64_reference"]["grad_l2_f64"][name]
            .as_f64()
            .unwrap();
        let ours = l2(g);
        eprintln!(
            "{name:32} l2 {ours:.6e}  f64 {want64:.6e}  ours {:.1e}  pytorch-f32 {pt_err:.1e}",
            (ours - want64).abs() / want64
        );
        close(ours, want64, tol, &format!("{name} gradient l2"));
        let abs_sum: f64 = g.iter().map(|&x| (x as f64).abs()).sum();
        // Only PyTorch's float32 value exists for this one, so its error
        // counts on both sides.
        let abs_tol = (6.0 * pt_err).max(1e-3);
        close(
            abs_sum,
            want["abs_sum"].as_f64().unwrap(),
            abs_tol,
            &format!("{name} gradient abs sum"),
        );
    }
    // The probe's forward pass moved its BatchNorm statistics: use a fresh trainer.
    drop(probe);

    let mut trainer =
        Trainer::from_state_dict(&state, AdamConfig::default(), &default_device()).unwrap();
    let out = trainer.step(images.clone(), 2, 224, 224, &labels).unwrap();
    for (g, w) in out
        .logits
        .iter()
        .zip(reference["train_mode_logits"].as_array().unwrap())
    {
        let w = w.as_f64().unwrap() as f32;
        assert!((g - w).abs() < 1e-4, "train-mode logit {g} vs {w}");
    }
    let want_loss = reference["loss"].as_f64().unwrap() as f32;
    assert!(
        (out.loss - want_loss).abs() < 1e-4,
        "loss {} vs {want_loss}",
        out.loss
    );

    let after = trainer.state_dict();
    for (name, want) in reference["bn_running_after_step"].as_object().unwrap() {
        let Some(want_sum) = want.get("sum").and_then(Value::as_f64) else {
            continue; // num_batches_tracked: an integer, checked below
        };
        let (_, v) = &after[name];
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        close(sum, want_sum, 1e-4, &format!("{name} sum after the step"));
        for (g, w) in v.iter().zip(want["first4"].as_array().unwrap()) {
            let w = w.as_f64().unwrap();
            assert!(
                ((*g as f64) - w).abs() < 1e-5 * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
    }
    assert_eq!(trainer.steps, 1);

    for (name, want) in reference["params_after_step_first4"].as_object().unwrap() {
        let (_, v) = &after[name];
        for (g, w) in v.iter().zip(want.as_array().unwrap()) {
            let w = w.as_f64().unwrap();
            // Adam's first step is lr * sign(grad): 1e-4 per element at most.
            assert!(
                ((*g as f64) - w).abs() < 2e-6,
                "{name} after the step: {g} vs {w}"
            );
        }
    }

    // Eval-mode logits after the step, with the updated weights and statistics.
    let net = cnnspot_core::ResNet::from_state_dict(&after, &default_device())
        .unwrap()
        .0;
    let x = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(images, [2, 3, 224, 224]),
        &default_device(),
    );
    let logits = net
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    // Adam's first step moves every weight by lr * sign(grad), so weights
    // with near-zero gradients flip with float noise and these logits are
    // chaotic: PyTorch's own float32 run is 0.03 and 0.07 away from its
    // float64 run, and burn's on an AVX2-only host 0.12 and 0.03. We are held
    // to the float64 values within 0.15 or PyTorch float32's own distance,
    // whichever is larger: the step itself moves these logits by 2.2 and
    // 3.2 (from -1.00 and -0.23, expected.json's crop224 cases).
    let f32_ref = reference["eval_logits_after_step"].as_array().unwrap();
    let f64_ref = reference["float64_reference"]["eval_logits_after_step_f64"]
        .as_array()
        .unwrap();
    for ((g, w32), w64) in logits.iter().zip(f32_ref).zip(f64_ref) {
        let (w32, w64) = (w32.as_f64().unwrap(), w64.as_f64().unwrap());
        let g = *g as f64;
        eprintln!("eval logit after the step: ours {g:.4}, PyTorch f32 {w32:.4}, f64 {w64:.4}");
        let tol = (w32 - w64).abs().max(0.15);
        assert!(
            (g - w64).abs() <= tol,
            "eval logit after the step {g} vs float64 {w64} (tolerance {tol})"
        );
    }
}
