//! `cnnspot eval` and `cnnspot dataset check` end to end on the dev set with
//! the random-weight fixture checkpoint.

mod common;

use std::collections::HashMap;
use std::path::Path;

use cnnspot_core::{Detector, PreprocessOptions};
use cnnspot_testdata::require_shared;
use common::{cnnspot, ok, read_json, s, text};
use serde_json::Value;

fn rows(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// AP from its definition, written independently of the library: for each
/// distinct score t from the top, precision and recall of "fake when score
/// >= t", summed as (R_n - R_{n-1}) P_n.
fn naive_ap(y: &[bool], s: &[f64]) -> f64 {
    let positives = y.iter().filter(|&&t| t).count() as f64;
    let mut ts = s.to_vec();
    ts.sort_by(|a, b| b.total_cmp(a));
    ts.dedup();
    let (mut ap, mut prev) = (0.0, 0.0);
    for t in ts {
        let tp = y.iter().zip(s).filter(|(&l, &v)| l && v >= t).count() as f64;
        let called = s.iter().filter(|&&v| v >= t).count() as f64;
        ap += (tp / positives - prev) * (tp / called);
        prev = tp / positives;
    }
    ap
}

#[test]
fn dev_set_ap_matches_scores_and_direct_library_logits() {
    let shared = require_shared!();
    let dev = shared.join("data/dev");
    let weights = shared.join("fixtures/cnndet_random.pth");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let run = cnnspot(&[
        "eval",
        s(&dev),
        "--weights",
        s(&weights),
        "--crop",
        "224",
        // Three of the seven sets (30 of 142 images) keep this ResNet-50
        // test short; the two PyTorch covers are among them.
        "--generators",
        "cnndetection_examples,mesonet_examples,stylegan2_ffhq_rosinality",
        "--out",
        s(&out),
        "--quiet",
    ]);
    ok(&run);
    let table = text(&run.stdout);
    assert!(table.starts_with("crop 224, cnndet_random.pth"), "{table}");
    assert!(table.contains("30 images scored, 0 left out"), "{table}");

    let results = read_json(&out.join("results.json"));
    assert_eq!(results["settings"]["crop"], 224);
    assert_eq!(results["checkpoint"]["arch"], "resnet50");
    assert_eq!(results["checkpoint"]["sha256"].as_str().unwrap().len(), 64);
    assert!(results["tool"].as_str().unwrap().starts_with("cnnspot "));
    assert_eq!(results["images"]["scored_now"], 30);
    let gens = results["generators"].as_array().unwrap();
    assert_eq!(gens.len(), 3);

    let scored = rows(&out.join("scores.jsonl"));
    assert_eq!(scored.len(), 30);

    // Per generator: AP and accuracies recomputed from the written scores.
    let mut aps = Vec::new();
    for g in gens {
        let name = g["name"].as_str().unwrap();
        let mine: Vec<&Value> = scored.iter().filter(|r| r["generator"] == name).collect();
        let y: Vec<bool> = mine.iter().map(|r| r["label"] == 1).collect();
        let p: Vec<f64> = mine
            .iter()
            .map(|r| r["probability"].as_f64().unwrap())
            .collect();
        assert_eq!(
            g["n_real"].as_u64().unwrap() as usize,
            y.iter().filter(|&&t| !t).count()
        );
        assert_eq!(
            g["n_fake"].as_u64().unwrap() as usize,
            y.iter().filter(|&&t| t).count()
        );
        let ap = g["ap"].as_f64().unwrap();
        assert!((ap - naive_ap(&y, &p)).abs() < 1e-12, "{name}: {ap}");
        let acc =
            y.iter().zip(&p).filter(|(&t, &v)| (v > 0.5) == t).count() as f64 / y.len() as f64;
        assert!((g["acc"].as_f64().unwrap() - acc).abs() < 1e-12, "{name}");
        aps.push(ap);
    }
    let mean = aps.iter().sum::<f64>() / aps.len() as f64;
    assert!((results["mean"]["ap"].as_f64().unwrap() - mean).abs() < 1e-12);

    // Per image: the logit equals the one a direct library call gives.
    let detector = Detector::load(&weights).unwrap();
    let opts = PreprocessOptions {
        crop: Some(224),
        ..PreprocessOptions::default()
    };
    for r in &scored {
        let path = dev.join(r["path"].as_str().unwrap());
        let direct = detector.score_path(&path, &opts).unwrap();
        let logit = r["logit"].as_f64().unwrap();
        assert!(
            (logit - f64::from(direct.logit)).abs() < 1e-4,
            "{}: {logit} vs {}",
            path.display(),
            direct.logit
        );
        assert_eq!(
            r["probability"].as_f64().unwrap() as f32,
            cnnspot_core::sigmoid(logit as f32)
        );
        assert_eq!(
            r["label"],
            if r["path"].as_str().unwrap().contains("/1_fake/") {
                1
            } else {
                0
            }
        );
    }

    // And against PyTorch itself on the two images the fixtures cover.
    let expected = read_json(&shared.join("fixtures/expected.json"));
    let torch = expected["batch2_crop224_real_fake_logits"]
        .as_array()
        .unwrap();
    for (key, want) in [
        ("cnndetection_examples/0_real/real.png", &torch[0]),
        ("cnndetection_examples/1_fake/fake.png", &torch[1]),
    ] {
        let r = scored.iter().find(|r| r["path"] == key).unwrap();
        let d = r["logit"].as_f64().unwrap() - want.as_f64().unwrap();
        assert!(d.abs() < 1e-4, "{key}: off by {d}");
    }

    // The figures and the CSV are there.
    for f in [
        "results.csv",
        "pr_curves.svg",
        "pr_curves.png",
        "scores.meta.json",
    ] {
        assert!(out.join(f).metadata().unwrap().len() > 100, "{f}");
    }
    let png = std::fs::read(out.join("pr_curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(out.join("pr_curves.svg")).unwrap();
    assert!(svg.contains("stylegan2_ffhq_rosinality (AP "), "legend");

    // --from-scores gives the same table and CSV without scoring.
    let again = cnnspot(&["eval", "--from-scores", s(&out.join("scores.jsonl"))]);
    ok(&again);
    assert_eq!(text(&again.stdout), table);
    let csv = cnnspot(&[
        "eval",
        "--from-scores",
        s(&out.join("scores.jsonl")),
        "--format",
        "csv",
    ]);
    ok(&csv);
    assert_eq!(
        text(&csv.stdout),
        std::fs::read_to_string(out.join("results.csv")).unwrap()
    );

    // Scores from another setting are never mixed in.
    let other = cnnspot(&[
        "eval",
        s(&dev),
        "--weights",
        s(&weights),
        "--no-crop",
        "--out",
        s(&out),
    ]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        text(&other.stderr).contains("made with crop 224, not no crop"),
        "{}",
        text(&other.stderr)
    );
}

#[test]
fn an_interrupted_run_resumes_with_the_missing_images_only() {
    let shared = require_shared!();
    let dev = shared.join("data/dev");
    let weights = std::path::PathBuf::from("builtin");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = |fmt: &'static str| -> Vec<String> {
        [
            "eval",
            s(&dev),
            "--weights",
            s(&weights),
            "--crop",
            "224",
            "--generators",
            "stylegan2_ffhq_rosinality,cnndetection_examples",
            "--out",
            s(&out),
            "--format",
            fmt,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let first = cnnspot(&args("json").iter().map(String::as_str).collect::<Vec<_>>());
    ok(&first);
    let full: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(full["images"]["scored_now"], 26);
    let names: Vec<&str> = full["generators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["stylegan2_ffhq_rosinality", "cnndetection_examples"]
    );

    // Keep 13 of 26 rows and half of the 14th, as a kill would leave them.
    let file = out.join("scores.jsonl");
    let all = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    let mut cut = lines[..13].join("\n");
    cut.push('\n');
    cut.push_str(&lines[13][..lines[13].len() / 2]);
    std::fs::write(&file, cut).unwrap();
    let kept: Vec<String> = lines[..13]
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    let second = cnnspot(&args("json").iter().map(String::as_str).collect::<Vec<_>>());
    ok(&second);
    assert!(
        text(&second.stderr).contains("resuming: 13 of 26 images already scored"),
        "{}",
        text(&second.stderr)
    );
    let resumed: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(resumed["images"]["scored_now"], 13);
    assert_eq!(resumed["images"]["reused"], 13);
    assert_eq!(resumed["generators"], full["generators"], "same metrics");
    assert_eq!(resumed["mean"], full["mean"]);

    // Every image once; the kept rows untouched, the rest scored again.
    let after = rows(&file);
    assert_eq!(after.len(), 26);
    let by_path: HashMap<&str, &Value> = after
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_path.len(), 26);
    for (i, l) in lines.iter().enumerate() {
        let before: Value = serde_json::from_str(l).unwrap();
        let now = by_path[before["path"].as_str().unwrap()];
        assert_eq!(now["logit"], before["logit"], "row {i}");
    }
    assert!(kept.iter().all(|k| by_path.contains_key(k.as_str())));

    // A third run scores nothing.
    let third = cnnspot(&args("json").iter().map(String::as_str).collect::<Vec<_>>());
    ok(&third);
    let v: Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(
        (
            v["images"]["scored_now"].as_u64(),
            v["images"]["reused"].as_u64()
        ),
        (Some(0), Some(26))
    );
}

/// A dataset with a few good images, bad files and a one-class generator,
/// all made here.
fn odd_dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let put = |rel: &str, seed: u32| {
        let p = r.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        common::photo(256, 256, seed).save(p).unwrap();
    };
    put("gan/0_real/real.png", 1);
    put("gan/1_fake/fake.png", 2);
    put("gan/1_fake/fake_copy.png", 2);
    std::fs::write(r.join("gan/1_fake/empty.png"), b"").unwrap();
    std::fs::write(
        r.join("gan/0_real/truncated.png"),
        &std::fs::read(r.join("gan/0_real/real.png")).unwrap()[..100],
    )
    .unwrap();
    put("onlyfake/1_fake/fake.png", 2);
    dir
}

#[test]
fn bad_files_are_left_out_and_one_class_metrics_are_undefined() {
    let data = odd_dataset();
    let weights = std::path::PathBuf::from("builtin");
    let out = cnnspot(&[
        "eval",
        s(data.path()),
        "--weights",
        s(&weights),
        "--crop",
        "224",
        "--format",
        "json",
    ]);
    ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"]["total"], 6);
    assert_eq!(v["images"]["left_out"], 2);
    let left: Vec<&str> = v["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["gan/0_real/truncated.png", "gan/1_fake/empty.png"]);
    assert!(v["left_out"][1]["reason"].as_str().unwrap().len() > 3);
    let gan = &v["generators"][0];
    assert_eq!(
        (
            gan["n_real"].as_u64(),
            gan["n_fake"].as_u64(),
            gan["left_out"].as_u64()
        ),
        (Some(1), Some(2), Some(2))
    );
    let one = &v["generators"][1];
    assert_eq!(one["name"], "onlyfake");
    assert!(one["r_acc"].is_null() && !one["f_acc"].is_null());
    // All fakes: AP is 1 whatever the scores, as in scikit-learn.
    assert_eq!(one["ap"], 1.0);
    assert_eq!(v["mean"]["r_acc_of"], 1);

    let table = cnnspot(&[
        "eval",
        s(data.path()),
        "--weights",
        s(&weights),
        "--crop",
        "224",
    ]);
    ok(&table);
    let t = text(&table.stdout);
    assert!(t.contains("4 images scored, 2 left out"), "{t}");
    assert!(t.contains("left out: gan/1_fake/empty.png: "), "{t}");
    let line = t.lines().find(|l| l.starts_with("onlyfake")).unwrap();
    assert!(line.contains("n/a"), "{line}");
    assert!(t.contains("warning: onlyfake has no 0_real folder"), "{t}");
}

#[test]
fn dataset_check_flags_stylegan2_only_for_its_formats() {
    let shared = require_shared!();
    let out = cnnspot(&["dataset", "check", s(&shared.join("data/dev"))]);
    ok(&out);
    let t = text(&out.stdout);
    let block = |name: &str| -> String {
        t.split("\n\n")
            .find(|b| b.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{t}"))
            .to_string()
    };
    assert!(
        block("stylegan2_ffhq_rosinality").contains("WARNING: real and fake differ in file format")
    );
    assert!(!block("cyclegan_horse2zebra_student").contains("WARNING"));
    assert!(
        block("cyclegan_horse2zebra_student").contains("real     15 images | PNG 15 | 256x256 15")
    );

    let json = cnnspot(&[
        "dataset",
        "check",
        s(&shared.join("data/dev")),
        "--format",
        "json",
        "--generators",
        "stylegan2_ffhq_rosinality",
    ]);
    ok(&json);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["generators"][0]["real"]["encodings"]["JPEG q75 4:2:0"],
        12
    );
    assert_eq!(
        v["generators"][0]["shortcuts"][0]["attribute"],
        "file format"
    );
}

/// Three generators of made images (noise of differing smoothness, so the
/// scores differ), a broken file, and 60 images in all: no `../shared`.
fn made_dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for (g, generator) in ["alpha", "beta", "gamma"].iter().enumerate() {
        for (label, folder) in ["0_real", "1_fake"].iter().enumerate() {
            let d = dir.path().join(generator).join(folder);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..10 {
                let step = 1 + (g + label + i % 3) as u32;
                let img = image::RgbImage::from_fn(48 + 8 * (i % 2) as u32, 48, |x, y| {
                    let v = next();
                    let base = ((x / step + y / step) * 37) as u8;
                    image::Rgb([base ^ (v as u8 & 31), (v >> 8) as u8, base])
                });
                img.save(d.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
    std::fs::write(dir.path().join("beta/1_fake/broken.png"), b"not a png").unwrap();
    dir
}

/// `cnnspot ARGS` with a chosen array-job environment (and no other).
fn cnnspot_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cnnspot"));
    cmd.args(args).env_remove("CNNSPOT_CACHE_DIR");
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("cnnspot runs")
}

fn rows_by_path(p: &Path) -> Vec<(String, Value)> {
    rows(p)
        .into_iter()
        .map(|r| (r["path"].as_str().unwrap().to_string(), r))
        .collect()
}

#[test]
fn shards_scored_apart_merge_into_exactly_the_unsharded_run() {
    let data = made_dataset();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    let sharded = dir.path().join("sharded");
    let d = s(data.path());
    let whole = cnnspot(&["eval", d, "--out", s(&single), "--format", "json", "-q"]);
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    let whole: Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(whole["images"]["total"], 61);
    assert_eq!(whole["images"]["left_out"], 1);

    // Shards 0 and 1 by number, shard 2 as Kubernetes' pod 2 of 3 would.
    for k in ["0/3", "1/3"] {
        ok(&cnnspot(&[
            "eval",
            d,
            "--out",
            s(&sharded),
            "--shard",
            k,
            "-q",
        ]));
    }
    let missing = cnnspot(&["eval", "--merge", s(&sharded)]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
    assert!(
        text(&missing.stderr).contains("shard 2-of-3 is missing: run task 2 (--shard 2/3)"),
        "{}",
        text(&missing.stderr)
    );
    assert!(!sharded.join("results.json").exists());
    ok(&cnnspot_env(
        &["eval", d, "--out", s(&sharded), "--shard", "auto/3", "-q"],
        &[("JOB_COMPLETION_INDEX", "2")],
    ));

    // Disjoint shards that cover the dataset, each image in the shard its
    // hash names.
    let mut seen = HashMap::new();
    for k in 0..3 {
        let part = rows_by_path(&sharded.join(format!("shards/{k}-of-3/scores.jsonl")));
        assert!(
            !part.is_empty() && part.len() < 61,
            "shard {k}: {}",
            part.len()
        );
        let record = read_json(&sharded.join(format!("shards/{k}-of-3/shard.json")));
        assert_eq!(record["images"].as_u64(), Some(part.len() as u64));
        for (path, _) in part {
            assert!(seen.insert(path.clone(), k).is_none(), "{path} twice");
        }
    }
    assert_eq!(seen.len(), 61);

    let merged = cnnspot(&["eval", "--merge", s(&sharded), "--format", "json", "-q"]);
    ok(&merged);
    let merged: Value = serde_json::from_slice(&merged.stdout).unwrap();
    for key in [
        "generators",
        "mean",
        "left_out",
        "settings",
        "checkpoint",
        "root",
    ] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    assert_eq!(merged["images"]["total"], 61);
    assert_eq!(
        read_json(&sharded.join("results.json"))["mean"],
        whole["mean"]
    );
    assert_eq!(
        std::fs::read_to_string(sharded.join("results.csv")).unwrap(),
        std::fs::read_to_string(single.join("results.csv")).unwrap()
    );
    assert!(sharded.join("pr_curves.png").exists());
    // The merged scores list every image in the unsharded run's order with
    // the same logit.
    let a = rows_by_path(&single.join("scores.jsonl"));
    let b = rows_by_path(&sharded.join("scores.jsonl"));
    assert_eq!(a.len(), b.len());
    for ((pa, ra), (pb, rb)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        assert_eq!(ra["logit"], rb["logit"], "{pa}");
        assert_eq!(ra["error"], rb["error"], "{pa}");
    }
    // `--from-scores` reads the merged folder as any run's.
    let again = cnnspot(&[
        "eval",
        "--from-scores",
        s(&sharded.join("scores.jsonl")),
        "--format",
        "json",
    ]);
    ok(&again);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["mean"], whole["mean"]);
}

#[test]
fn a_merge_names_the_unfinished_and_the_mismatched_shard() {
    let data = made_dataset();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let d = s(data.path());
    ok(&cnnspot(&[
        "eval",
        d,
        "--out",
        s(&out),
        "--shard",
        "0/2",
        "-q",
    ]));
    // Shard 1 made with another crop.
    ok(&cnnspot(&[
        "eval",
        d,
        "--out",
        s(&out),
        "--shard",
        "1/2",
        "--crop",
        "40",
        "-q",
    ]));
    let refused = cnnspot(&["eval", "--merge", s(&out)]);
    assert!(!refused.status.success());
    let why = text(&refused.stderr);
    assert!(
        why.contains("shard 1-of-2 was made with crop 40, not no crop"),
        "{why}"
    );
    // Shard 1 again, as settled, but interrupted: no shard.json yet.
    std::fs::remove_dir_all(out.join("shards/1-of-2")).unwrap();
    ok(&cnnspot(&[
        "eval",
        d,
        "--out",
        s(&out),
        "--shard",
        "1/2",
        "-q",
    ]));
    std::fs::remove_file(out.join("shards/1-of-2/shard.json")).unwrap();
    let unfinished = cnnspot(&["eval", "--merge", s(&out)]);
    assert!(!unfinished.status.success());
    let why = text(&unfinished.stderr);
    assert!(why.contains("shard 1-of-2 did not finish"), "{why}");
    assert!(why.contains("--shard 1/2"), "{why}");
    // Rerunning it resumes (nothing left to score) and completes the run.
    let rerun = cnnspot(&["eval", d, "--out", s(&out), "--shard", "1/2"]);
    ok(&rerun);
    assert!(
        text(&rerun.stderr).contains("resuming"),
        "{}",
        text(&rerun.stderr)
    );
    // Only a file that failed before is tried again.
    let record = read_json(&out.join("shards/1-of-2/shard.json"));
    let (images, reused) = (record["images"].as_u64(), record["reused"].as_u64());
    assert!(
        matches!((images, reused), (Some(n), Some(r)) if r + 1 >= n && r > 0),
        "{record}"
    );
    ok(&cnnspot(&["eval", "--merge", s(&out), "-q"]));
    assert_eq!(read_json(&out.join("results.json"))["images"]["total"], 61);

    // Without a shard in the environment, `auto` says where it looked.
    let no_env = cnnspot_env(&["eval", d, "--out", s(&out), "--shard", "auto"], &[]);
    assert!(!no_env.status.success());
    assert!(
        text(&no_env.stderr).contains("SLURM_ARRAY_TASK_ID"),
        "{}",
        text(&no_env.stderr)
    );
    let no_out = cnnspot(&["eval", d, "--shard", "0/2"]);
    assert!(!no_out.status.success());
    assert!(text(&no_out.stderr).contains("--shard needs --out"));
}

#[test]
fn detect_shards_split_the_files_without_overlap() {
    let data = made_dataset();
    let d = s(data.path());
    let all = cnnspot(&["detect", d, "--format", "jsonl", "-q"]);
    let all_rows: Vec<Value> = text(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all_rows.len(), 61);
    let mut union: Vec<Value> = Vec::new();
    for k in 0..4 {
        let env_k = k.to_string();
        let part = cnnspot_env(
            &["detect", d, "--format", "jsonl", "-q", "--shard", "auto"],
            &[
                ("SLURM_ARRAY_TASK_ID", env_k.as_str()),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
        );
        union.extend(
            text(&part.stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    let key = |v: &Value| v["path"].as_str().unwrap().to_string();
    union.sort_by_key(key);
    let mut expected = all_rows.clone();
    expected.sort_by_key(key);
    assert_eq!(union, expected);
}

#[test]
fn a_sharded_robustness_sweep_merges_into_the_unsharded_one() {
    let data = made_dataset();
    let dir = tempfile::tempdir().unwrap();
    let (single, sharded) = (dir.path().join("single"), dir.path().join("sharded"));
    let d = s(data.path());
    let sweep = ["--jpeg", "70", "--blur", "1"];
    let run = |extra: &[&str]| {
        let mut args = vec!["robustness", "-q", "--format", "json"];
        args.extend_from_slice(&sweep);
        args.extend_from_slice(extra);
        cnnspot(&args)
    };
    let whole = run(&[d, "--out", s(&single)]);
    ok(&whole);
    let whole: Value = serde_json::from_slice(&whole.stdout).unwrap();
    for k in ["0/2", "1/2"] {
        ok(&run(&[d, "--out", s(&sharded), "--shard", k]));
    }
    assert!(!sharded.join("robustness.json").exists());
    // Merged with other sweep flags than the shards had: refused.
    let other = cnnspot(&[
        "robustness",
        "--merge",
        s(&sharded),
        "--jpeg",
        "60",
        "--blur",
        "1",
    ]);
    assert!(!other.status.success());
    assert!(
        text(&other.stderr).contains("shards"),
        "{}",
        text(&other.stderr)
    );
    let merged = run(&["--merge", s(&sharded)]);
    ok(&merged);
    let merged: Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(merged["sweeps"], whole["sweeps"]);
    assert_eq!(merged["checkpoint"], whole["checkpoint"]);
    assert_eq!(
        read_json(&sharded.join("robustness.json"))["sweeps"],
        whole["sweeps"]
    );
    // Each point's merged scores sit where an unsharded sweep keeps them.
    for point in [
        "scores.jsonl",
        "robustness/jpeg-q70/scores.jsonl",
        "robustness/blur-s1/scores.jsonl",
    ] {
        let a = rows_by_path(&single.join(point));
        let b = rows_by_path(&sharded.join(point));
        assert_eq!(a.len(), 61, "{point}");
        for ((pa, ra), (pb, rb)) in a.iter().zip(&b) {
            assert_eq!((pa, &ra["logit"]), (pb, &rb["logit"]), "{point}");
        }
    }
}
