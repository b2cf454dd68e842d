//! The `cnnspot` binary end to end: scoring folders with bad files, output
//! formats, exit codes, and fetching weights from a server on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use cnnspot_testdata::http_server::Server;
use cnnspot_testdata::require_shared;
use common::{library_score, photo, resnet18_pth};
use serde_json::Value;

fn cnnspot(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnnspot"));
    cmd.args(args);
    cmd.env_remove("CNNSPOT_CACHE_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cnnspot runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn jsonl(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A PNG whose IHDR claims `w` x `h`, with a valid CRC and no pixel data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(cnnspot_testdata::png::chunk(b"IHDR", &ihdr));
    png
}

/// A folder with two good images and five bad ones, all made here.
fn bad_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    photo(96, 80, 1).save(d.join("a_good_real.png")).unwrap();
    photo(96, 80, 2).save(d.join("b_good_fake.png")).unwrap();
    // Corrupt PNG: the compressed pixel data overwritten in the middle.
    let mut png = std::fs::read(d.join("a_good_real.png")).unwrap();
    let mid = png.len() / 2;
    for b in &mut png[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(d.join("corrupt.png"), png).unwrap();
    // Truncated JPEG: the first third of a JPEG.
    let jpg = cnnspot_core::image::encode_jpeg(&photo(200, 150, 3), 90).unwrap();
    std::fs::write(d.join("truncated.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    std::fs::write(d.join("empty.png"), b"").unwrap();
    std::fs::write(
        d.join("notes.jpg"),
        b"these are my holiday notes, not a photo\n",
    )
    .unwrap();
    std::fs::write(d.join("bomb.png"), png_header(100_000, 100_000)).unwrap();
    dir
}

#[test]
fn a_folder_with_bad_files_gets_one_error_row_each_and_scores_the_rest() {
    let dir = bad_folder();
    let models = tempfile::tempdir().unwrap();
    let weights = models.path().join("resnet18.pth");
    resnet18_pth(&weights);
    let out = cnnspot(
        &[
            "detect",
            "--weights",
            weights.to_str().unwrap(),
            "--format",
            "jsonl",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 7, "{rows:?}");
    let row = |name: &str| -> &Value {
        rows.iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no row for {name}"))
    };
    for file in ["a_good_real.png", "b_good_fake.png"] {
        let r = row(file);
        assert!(r.get("error").is_none(), "{r}");
        let want = library_score(&weights, &dir.path().join(file), None);
        assert!(
            (r["logit"].as_f64().unwrap() - want.logit as f64).abs() < 1e-5,
            "{r} vs {want:?}"
        );
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(96), Some(80))
        );
    }
    for (file, reason) in [
        ("corrupt.png", "corrupt"),
        ("truncated.jpg", "truncated"),
        ("empty.png", "empty"),
        ("notes.jpg", "not an image"),
        ("bomb.png", "100000x100000"),
    ] {
        let r = row(file);
        let err = r["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{file} has no error: {r}"));
        assert!(err.contains(reason), "{file}: {err}");
        assert!(r["probability"].is_null());
    }
    assert!(text(&out.stderr).contains("5 of 7 files could not be scored"));
}

/// The end-to-end parity check of the CLI against PyTorch: the official
/// format's fixture checkpoint on the fixture images, whole and cropped,
/// and a legacy-format checkpoint described by `weights info`. The other
/// CLI tests run on models and images made in the test.
#[test]
fn detect_prints_pytorchs_logits_for_the_fixture_checkpoint() {
    let shared = require_shared!();
    let fixtures = shared.join("fixtures");
    let weights = fixtures.join("cnndet_random.pth");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap())
            .unwrap();
    let want = |image: &str, mode: &str| {
        expected["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["image"] == image && c["mode"] == mode)
            .unwrap_or_else(|| panic!("no case {image} {mode}"))["logit"]
            .as_f64()
            .unwrap()
    };
    let images = ["real.png", "fake.png"].map(|n| fixtures.join(n));
    for (mode, crop) in [("uncropped", None), ("crop224", Some("224"))] {
        let mut args = vec![
            "detect",
            "--weights",
            weights.to_str().unwrap(),
            "--format",
            "jsonl",
        ];
        if let Some(c) = crop {
            args.extend(["--crop", c]);
        }
        args.extend(images.iter().map(|p| p.to_str().unwrap()));
        let out = cnnspot(&args, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows = jsonl(&out);
        assert_eq!(rows.len(), 2);
        for (row, image) in rows.iter().zip(["real.png", "fake.png"]) {
            let got = row["logit"].as_f64().unwrap();
            assert!(
                (got - want(image, mode)).abs() < 1e-4,
                "{image} {mode}: {row}"
            );
        }
    }

    let out = cnnspot(
        &["weights", "info", "--json", weights.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success());
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["arch"], "resnet50");
    assert_eq!(info["format"], "PyTorch zip");
    assert_eq!(info["parameters"], 23_510_081);

    let legacy = fixtures.join("small_legacy_format.pth");
    let out = cnnspot(&["weights", "info", legacy.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PyTorch legacy") && stdout.contains("total steps:  1234"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(2), "not a model: reported as such");
}

#[test]
fn csv_and_table_rows_carry_the_same_scores_and_the_threshold_decides() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("resnet18.pth");
    resnet18_pth(&weights);
    let images: Vec<PathBuf> = (1..=2)
        .map(|i| {
            let p = dir.path().join(format!("img{i}.png"));
            // A noisy photo and a flat dark one: far apart for any network.
            let img = if i == 1 {
                photo(240, 232, 11)
            } else {
                image::RgbImage::from_pixel(240, 232, image::Rgb([20, 30, 25]))
            };
            img.save(&p).unwrap();
            p
        })
        .collect();
    let scores: Vec<_> = images
        .iter()
        .map(|p| library_score(&weights, p, Some(224)))
        .collect();
    let (low, high) = (
        scores[0].probability.min(scores[1].probability),
        scores[0].probability.max(scores[1].probability),
    );
    assert!(
        high - low > 1e-3,
        "the two images must score apart: {scores:?}"
    );
    let threshold = (low + high) / 2.0;
    let threshold_arg = threshold.to_string();
    let base = |format: &str| -> Output {
        let mut args = vec![
            "detect",
            "--crop",
            "224",
            "--weights",
            weights.to_str().unwrap(),
            "--format",
            format,
            "--threshold",
            &threshold_arg,
        ];
        args.extend(images.iter().map(|p| p.to_str().unwrap()));
        cnnspot(&args, &[])
    };
    let csv = base("csv");
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let csv = text(&csv.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "path,probability,logit,width,height,synthetic,error"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    for (line, (path, score)) in lines[1..].iter().zip(images.iter().zip(&scores)) {
        let fields: Vec<&str> = line.split(',').collect();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(fields[0].ends_with(name), "{csv}");
        let prob: f32 = fields[1].parse().unwrap();
        assert!((prob - score.probability).abs() < 1e-5, "{csv}");
        let synthetic = score.probability > threshold;
        assert_eq!(fields[5], synthetic.to_string(), "{csv}");
        assert_eq!((fields[3], fields[4]), ("240", "232"), "{csv}");
    }

    // The table: the same decisions in words, at the same threshold.
    let table = base("table");
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    for (path, score) in images.iter().zip(&scores) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let line = table
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"));
        let word = if score.probability > threshold {
            "synthetic"
        } else {
            "real "
        };
        assert!(line.contains(word), "{line}");
        assert!(
            line.contains(&format!("{:.6}", score.probability)),
            "{line}"
        );
    }
}

#[test]
fn missing_inputs_and_bad_flags_fail_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let out = cnnspot(&["detect", "--weights", "x.pth", "/no/such/file.png"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/no/such/file.png: no such file or folder"));

    // The official checkpoint asked for and an empty cache: says how to get it.
    let img = dir.path().join("a.png");
    std::fs::write(&img, b"x").unwrap();
    let out = cnnspot(
        &["detect", "--weights", "official", img.to_str().unwrap()],
        &[("CNNSPOT_CACHE_DIR", dir.path())],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("cnnspot weights fetch") && err.contains("--weights"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = cnnspot(
        &["detect", "--threshold", "1.5", img.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn weights_fetch_keeps_only_a_checkpoint_that_loads_into_the_model() {
    let models = tempfile::tempdir().unwrap();
    let weights = models.path().join("resnet18.pth");
    resnet18_pth(&weights);
    let ckpt = std::fs::read(&weights).unwrap();
    let server = Server::start(ckpt.clone());
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let kept = cache.path().join("weights/blur_jpg_prob0.5.pth");

    // An HTML page (what a wrong Dropbox link gives) is refused.
    let out = cnnspot(
        &[
            "weights",
            "fetch",
            "--cache-dir",
            cache_arg,
            "--url",
            &server.url("/html"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("HTML"), "{}", text(&out.stderr));
    assert!(!kept.exists());

    // A truncated body is an error; the partial file stays to be resumed.
    let out = cnnspot(
        &[
            "weights",
            "fetch",
            "--cache-dir",
            cache_arg,
            "--url",
            &server.url("/truncated"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("truncated"),
        "{}",
        text(&out.stderr)
    );
    assert!(!kept.exists());

    // Through a redirect to a server that honours Range: resumed and kept.
    let out = cnnspot(
        &[
            "weights",
            "fetch",
            "--cache-dir",
            cache_arg,
            "--url",
            &server.url("/range"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("resumed from byte"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&kept).unwrap(), ckpt);

    // Now `detect --weights official` finds it in the cache.
    let img = models.path().join("a.png");
    photo(64, 64, 5).save(&img).unwrap();
    let out = cnnspot(
        &[
            "detect",
            "--weights",
            "official",
            "--format",
            "jsonl",
            "--cache-dir",
            cache_arg,
            img.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = library_score(&weights, &img, None).logit as f64;
    assert!((jsonl(&out)[0]["logit"].as_f64().unwrap() - want).abs() < 1e-5);

    // Redirects are followed (fresh cache, --force not needed).
    let cache2 = tempfile::tempdir().unwrap();
    let out = cnnspot(
        &[
            "weights",
            "fetch",
            "--cache-dir",
            cache2.path().to_str().unwrap(),
            "--url",
            &server.url("/redirect"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(cache2.path().join("weights/blur_jpg_prob0.5.pth").exists());
}

#[test]
fn weights_fetch_refuses_a_pickle_that_is_not_a_detector() {
    // A well-formed PyTorch checkpoint, but not a ResNet: the model check
    // rejects it.
    use cnnspot_weights::{PyValue, TensorView};
    let tensor = |shape: Vec<usize>| {
        let n = shape.iter().product();
        PyValue::Tensor(TensorView::from_f32(shape, &vec![0.5; n]).unwrap())
    };
    let linear = PyValue::OrderedDict(vec![
        ("linear.weight".into(), tensor(vec![2, 3])),
        ("linear.bias".into(), tensor(vec![2])),
    ]);
    let small = cnnspot_weights::pth_bytes(&linear).unwrap();
    let server = Server::start(small);
    let cache = tempfile::tempdir().unwrap();
    let out = cnnspot(
        &[
            "weights",
            "fetch",
            "blur_jpg_prob0.1",
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--url",
            &server.url("/ok"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("ResNet"), "{err}");
    assert!(!cache.path().join("weights/blur_jpg_prob0.1.pth").exists());
}

#[test]
fn weights_info_and_convert() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("resnet18.pth");
    resnet18_pth(&src);
    let out = cnnspot(&["weights", "info", "--json", src.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["arch"], "resnet18");
    assert_eq!(info["format"], "PyTorch zip");
    assert_eq!(info["total_steps"], 1234);
    assert_eq!(info["num_outputs"], 1);
    // torchvision's resnet18 has 11,689,512 parameters with its 1000-way
    // head (513,000 of them); a detector's head has 513.
    assert_eq!(info["parameters"], 11_689_512 - 513_000 + 513);
    assert!(info["problem"].is_null(), "{info}");

    let dst = dir.path().join("m.safetensors");
    let out = cnnspot(
        &[
            "weights",
            "convert",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cnnspot(&["weights", "info", "--json", dst.to_str().unwrap()], &[]);
    let converted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(converted["format"], "safetensors");
    assert_eq!(converted["parameters"], info["parameters"]);
    // The converted file scores exactly as its source.
    let img = dir.path().join("a.png");
    photo(80, 72, 9).save(&img).unwrap();
    assert_eq!(
        library_score(&src, &img, None),
        library_score(&dst, &img, None)
    );
}

/// A random NPR checkpoint with `outputs` head outputs (made here, no
/// ../shared), after `spoil` has changed some of its values.
fn npr_checkpoint(
    path: &Path,
    outputs: usize,
    spoil: impl Fn(&str, &mut [f32]),
) -> cnnspot_core::Arch {
    use cnnspot_core::model::expected_parameters;
    use cnnspot_weights::TensorView;
    let mut seed = 12345u64;
    let mut tensors = Vec::new();
    for (name, shape) in expected_parameters(cnnspot_core::Arch::Npr, outputs) {
        let n: usize = shape.iter().product();
        let mut values: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
            })
            .collect();
        if name.ends_with("running_var") || name.ends_with("bn1.weight") {
            values.iter_mut().for_each(|v| *v = 1.0 + v.abs());
        }
        spoil(&name, &mut values);
        tensors.push((name, TensorView::from_f32(shape, &values).unwrap()));
    }
    cnnspot_weights::save_safetensors(&tensors, path).unwrap();
    cnnspot_core::Arch::Npr
}

/// Checkpoints that would score NaN or nonsense are refused when loaded, in
/// one sentence naming the tensor, by `detect` (and so `eval`, `serve`,
/// `robustness`, which load through the same `Detector`), and `weights info`
/// says why; the healthy checkpoint they were made from scores.
#[test]
fn checkpoints_with_bad_values_or_heads_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]))
        .save(&img)
        .unwrap();
    let good = dir.path().join("good.safetensors");
    npr_checkpoint(&good, 1, |_, _| {});
    let out = cnnspot(
        &[
            "detect",
            "-q",
            "--format",
            "jsonl",
            "--weights",
            good.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(jsonl(&out)[0]["logit"].as_f64().unwrap().is_finite());

    type Spoil = Box<dyn Fn(&str, &mut [f32])>;
    let cases: Vec<(&str, usize, Spoil, &str)> = vec![
        (
            "nan-head",
            1,
            Box::new(|n: &str, v: &mut [f32]| {
                if n == "fc1.weight" {
                    v[7] = f32::NAN;
                }
            }),
            "tensor fc1.weight holds a NaN or infinite value",
        ),
        (
            "inf-stat",
            1,
            Box::new(|n: &str, v: &mut [f32]| {
                if n == "layer2.0.bn2.running_mean" {
                    v[0] = f32::INFINITY;
                }
            }),
            "tensor layer2.0.bn2.running_mean holds a NaN or infinite value",
        ),
        (
            "negative-variance",
            1,
            Box::new(|n: &str, v: &mut [f32]| {
                if n == "layer1.1.bn3.running_var" {
                    v[5] = -0.25;
                }
            }),
            "tensor layer1.1.bn3.running_var holds a negative variance (-0.25 at index 5)",
        ),
        (
            "empty-head",
            0,
            Box::new(|_: &str, _: &mut [f32]| {}),
            "fc1.weight has no outputs",
        ),
        (
            "two-outputs",
            2,
            Box::new(|_: &str, _: &mut [f32]| {}),
            "fc1.weight has 2 outputs; a detector has 1",
        ),
    ];
    for (name, outputs, spoil, says) in cases {
        let ckpt = dir.path().join(format!("{name}.safetensors"));
        npr_checkpoint(&ckpt, outputs, spoil);
        let out = cnnspot(
            &[
                "detect",
                "--weights",
                ckpt.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
            &[],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}.safetensors")),
            "{name}: {err}"
        );
        assert!(out.stdout.is_empty(), "{name}: no verdict may be printed");
        assert!(!err.contains("panicked"), "{name}: {err}");

        let info = cnnspot(&["weights", "info", ckpt.to_str().unwrap()], &[]);
        let info_text = format!("{}{}", text(&info.stdout), text(&info.stderr));
        // A two-output head loads into a model (it can be fine-tuned), so
        // only `detect` refuses it; every other case is a problem in `info`.
        if name != "two-outputs" {
            assert!(info_text.contains(says), "{name}: {info_text}");
        }
    }
}

/// `cnnspot generators list | head -1`: the closed pipe ends the program
/// quietly (SIGPIPE), not with a panic and a backtrace.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::os::fd::FromRawFd;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let cache = tempfile::tempdir().unwrap();
    // A pipe whose read end is closed before the program starts, so that
    // its first write fails whatever the timing (closing the read end after
    // spawning raced with a fast child on a loaded machine).
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe(2)");
    // SAFETY: fds[0] is the read end just created, closed once, never used after.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open descriptor that nothing else owns; the Stdio
    // takes ownership and closes it.
    let write_end = unsafe { Stdio::from_raw_fd(fds[1]) };
    let child = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(["generators", "list", "--cache-dir"])
        .arg(cache.path())
        .stdout(write_end)
        .stderr(Stdio::piped())
        .spawn()
        .expect("cnnspot runs");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

/// An image above the pixel budget on the burn engine (which does not tile):
/// the library's error names the sizes, the binary adds the flags that help.
#[test]
fn over_budget_images_get_the_flags_that_help() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("set/gen");
    for (class, shade) in [("0_real", 40u8), ("1_fake", 200u8)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([shade, (x * 3) as u8, (y * 5) as u8])
        })
        .save(data.join(class).join("a.png"))
        .unwrap();
    }
    let img = data.join("0_real/a.png");
    let budget = ["--engine", "burn", "--max-infer-pixels", "1000"];
    let mut args = vec!["detect", img.to_str().unwrap(), "--format", "jsonl"];
    args.extend(budget);
    let out = cnnspot(&args, &[]);
    let rows = jsonl(&out);
    let err = rows[0]["error"].as_str().unwrap_or_default();
    assert!(err.contains("64x48 image is 3072 pixels"), "{rows:?}");
    assert!(
        err.contains("--crop 224") && err.contains("--max-infer-pixels"),
        "{err}"
    );

    let set = dir.path().join("set");
    let mut args = vec!["eval", set.to_str().unwrap(), "--quiet"];
    args.extend(budget);
    let out = cnnspot(&args, &[]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2 image(s) above the inference pixel budget")
            && stderr.contains("--crop 224"),
        "{stderr}"
    );
    // The library's message itself names no flag (serve shows it too).
    let table = text(&out.stdout);
    assert!(
        table.contains("above the inference budget of 1000 pixels"),
        "{table}"
    );
    assert!(!table.contains("--max-infer-pixels"), "{table}");
}
