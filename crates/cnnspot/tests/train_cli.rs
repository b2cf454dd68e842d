//! `cnnspot train` from the command line: TOML config with flag overrides,
//! a bad file skipped and counted, the run folder's files, and checkpoints
//! that `cnnspot detect` and PyTorch's key layout accept.

use std::process::Command;

use cnnspot_testdata::require_shared;

#[test]
fn train_writes_a_run_that_detect_can_use() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data/horses");
    let src = shared.join("data/dev/cyclegan_horse2zebra_student");
    for label in ["0_real", "1_fake"] {
        std::fs::create_dir_all(data.join(label)).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(src.join(label))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(6) {
            std::fs::copy(f, data.join(label).join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        data.join("0_real/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    let config = dir.path().join("small.toml");
    std::fs::write(
        &config,
        "arch = \"resnet18\"\nbatch_size = 4\nepochs = 5\nseed = 3\n\n[augment]\nload_size = 64\ncrop_size = 48\n",
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(["train", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--val")
        .arg(dir.path().join("data"))
        .args([
            "--epochs",
            "2",
            "--name",
            "small",
            "--preset",
            "blur+jpeg-0.5",
        ])
        .arg("--checkpoints-dir")
        .arg(&runs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = runs.join("small");

    // Flags override the file; the preset replaced the [augment] table.
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains("epochs = 2") && saved.contains("arch = \"resnet18\""),
        "{saved}"
    );
    assert!(
        saved.contains("blur_prob = 0.5") && saved.contains("load_size = 256"),
        "{saved}"
    );

    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2);
    // 13 files, 12 usable, batch 4: 4 steps per epoch (the bad file leaves
    // one batch short); the bad file is skipped in training and validation.
    assert_eq!(epochs[1]["total_steps"], 8);
    assert!(epochs[1]["skipped_files"].as_u64().unwrap() >= 2);
    assert!(epochs[0]["val_accuracy"].as_f64().is_some());
    assert!(
        stderr.contains("broken.png") || String::from_utf8_lossy(&out.stdout).contains("skipped")
    );
    for f in [
        "latest.pth",
        "best.pth",
        "epoch_0.pth",
        "epoch_1.pth",
        "metrics.csv",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    // The official layout: a 'model' state dict with num_batches_tracked,
    // the optimizer, the step count.
    let ckpt = cnnspot_weights::load(&run.join("latest.pth")).unwrap();
    assert_eq!(ckpt.total_steps, Some(8));
    assert!(ckpt.extra_keys.iter().any(|k| k == "optimizer"));
    let tracked = ckpt
        .get("bn1.num_batches_tracked")
        .unwrap()
        .to_i64_vec()
        .unwrap();
    assert_eq!(tracked, vec![8]);

    let out = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(["detect", "--format", "jsonl", "--weights"])
        .arg(run.join("best.pth"))
        .arg(data.join("1_fake"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
}
