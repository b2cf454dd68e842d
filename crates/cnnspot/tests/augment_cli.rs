//! `cnnspot augment` end to end, on a small image kept in the repository.

use std::path::PathBuf;
use std::process::Command;

fn input() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cnnspot-augment/tests/data/input_64x48.png")
}

fn augment(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .arg("augment")
        .args(args)
        .output()
        .expect("run cnnspot")
}

#[test]
fn writes_samples_and_a_manifest_repeatably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = input();
    let img = img.to_str().expect("utf-8 path");
    let mut outputs = Vec::new();
    for run in ["a", "b"] {
        let out_dir = dir.path().join(run);
        let out_str = out_dir.to_str().expect("utf-8 path");
        let out = augment(&[
            img,
            "--preset",
            "blur+jpeg-0.5",
            "-n",
            "5",
            "--out",
            out_str,
            "--seed",
            "4",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out_dir.join("input_64x48_augment.json")).expect("manifest"),
        )
        .expect("json");
        let samples = manifest["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 5);
        assert_eq!(manifest["config"]["blur_prob"], 0.5);
        let mut pngs = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            assert_eq!(s["file"], format!("input_64x48_aug{i}.png"));
            assert_eq!(s["resized"], serde_json::json!([341, 256]));
            for key in ["blur_sigma", "jpeg_quality", "jpeg_encoder", "crop", "flip"] {
                assert!(s.get(key).is_some(), "{key} missing");
            }
            pngs.push(std::fs::read(out_dir.join(format!("input_64x48_aug{i}.png"))).expect("png"));
        }
        outputs.push((samples.clone(), pngs));
    }
    assert_eq!(outputs[0], outputs[1], "same seed, different samples");
}

#[test]
fn unknown_preset_and_missing_image_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_str = dir.path().to_str().expect("utf-8 path");
    let img = input();
    let out = augment(&[
        img.to_str().expect("utf-8"),
        "--preset",
        "blur+jpeg",
        "--out",
        out_str,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = augment(&["/nonexistent/x.png", "--out", out_str]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.png"));
}
