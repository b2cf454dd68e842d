//! The report on small hand-made results folders: escaping, missing
//! sections, missing images, and folders with nothing to report.

use std::path::Path;

use cnnspot_report::{render_report, write_report, ReportError, ReportOptions};
use serde_json::{json, Value};

const EVIL: &str = "<script>alert('x')</script>";

fn png(path: &Path, w: u32, h: u32, shade: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([shade, (x * 255 / w) as u8, (y * 255 / h) as u8])
    })
    .save(path)
    .unwrap();
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn meta(root: &Path) -> Value {
    json!({
        "format": "cnnspot-scores/1",
        "tool": "cnnspot 0.1.0",
        "root": root,
        "settings": { "crop": 224, "max_pixels": 134217728u64 },
        "checkpoint": {
            "path": "/weights/w.pth",
            "sha256": "0123456789abcdef0123456789abcdef",
            "arch": "resnet50",
            "format": "PyTorch zip",
            "parameters": 23510081
        }
    })
}

/// A dataset of `per_class` real and fake images for each generator, with
/// its scores.jsonl and scores.meta.json in `results`. Fakes score high,
/// reals low, except that the first real of each generator scores 0.9 (a
/// mistake).
fn scored_dataset(root: &Path, results: &Path, generators: &[&str], per_class: usize) {
    std::fs::create_dir_all(results).unwrap();
    let mut lines = String::new();
    for g in generators {
        for (label, folder) in [(0u8, "0_real"), (1, "1_fake")] {
            for i in 0..per_class {
                let rel = format!("{g}/{folder}/{i}.png");
                png(
                    &root.join(&rel),
                    40 + i as u32,
                    30,
                    60 * label + 10 * i as u8,
                );
                let p = match (label, i) {
                    (0, 0) => 0.9,
                    (0, _) => 0.05 * i as f64,
                    _ => 0.6 + 0.03 * i as f64,
                };
                let row = json!({
                    "path": rel, "generator": g, "label": label,
                    "probability": p, "logit": 0.0, "width": 40, "height": 30
                });
                lines.push_str(&row.to_string());
                lines.push('\n');
            }
        }
    }
    std::fs::write(results.join("scores.jsonl"), lines).unwrap();
    write_json(&results.join("scores.meta.json"), &meta(root));
}

fn opts(n: usize) -> ReportOptions {
    ReportOptions {
        thumbnails: n,
        ..ReportOptions::default()
    }
}

#[test]
fn text_from_the_files_is_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, results) = (tmp.path().join("data"), tmp.path().join("out"));
    // A generator folder name cannot hold '/', so the name has none.
    let name = "<script>alert(1)<\\script>";
    scored_dataset(&root, &results, &[name], 3);
    let mut rob = robustness_doc(&[name]);
    rob["jpeg_encoder"] = json!(EVIL);
    write_json(&results.join("robustness.json"), &rob);
    let r = render_report(
        &results,
        &ReportOptions {
            title: Some(EVIL.into()),
            ..opts(2)
        },
    )
    .unwrap();
    assert_eq!(r.html.matches("<script").count(), 0, "{}", r.html);
    assert!(r.html.contains("&lt;script&gt;alert(1)&lt;\\script&gt;"));
    assert!(r.html.contains("<title>&lt;script&gt;alert(&#x27;x&#x27;)"));
    assert_eq!(r.thumbnails, 4);
}

#[test]
fn every_section_when_every_input_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, results) = (tmp.path().join("data"), tmp.path().join("out"));
    scored_dataset(&root, &results, &["gan_a", "gan_b"], 4);
    for f in [
        "pr_curves.png",
        "spectra_grid.png",
        "robustness_jpeg.png",
        "robustness_blur.png",
    ] {
        png(&results.join(f), 20, 10, 100);
    }
    write_json(
        &results.join("robustness.json"),
        &robustness_doc(&["gan_a", "gan_b"]),
    );
    let out = results.join("report.html");
    let r = write_report(&results, &out, &opts(3)).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), r.html);
    assert_eq!(
        r.sections,
        ["evaluation", "examples", "spectra", "robustness"]
    );
    assert_eq!((r.figures, r.thumbnails, r.placeholders), (4, 12, 0));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.images(), r.html.matches("<img ").count());
    // Every image is inline; nothing refers to a file or the network.
    assert_eq!(
        r.html.matches("src=\"data:image/").count(),
        r.html.matches("src=").count()
    );
    assert!(!r.html.contains("http://") && !r.html.contains("https://"));
    // The table: two generators and the mean, AP as `eval` prints it.
    assert_eq!(r.html.matches("<tr class=\"generator\">").count(), 2);
    assert_eq!(r.html.matches("<tr class=\"mean\">").count(), 3);
    // A real image above all four fakes: AP (1/2 + 2/3 + 3/4 + 4/5) / 4.
    assert!(r.html.contains("<td class=\"ap\">67.9</td>"));
    // The first real image of each generator scored 0.9: among the most
    // fake, framed as a mistake.
    assert_eq!(r.html.matches("class=\"thumb wrong\"").count(), 2);
    // Robustness: AP in percent, n/a for null (with its slash escaped), the
    // mean marked when partial.
    assert!(r.html.contains("<td>87.5</td>"));
    assert!(r.html.contains("<td>n&#x2f;a</td>"));
    assert!(r.html.contains("<td>60.0*</td>"));
    assert!(r.html.contains("224 × 224 center crop"));
    assert!(r.html.contains("sha256 0123456789ab)"));
}

#[test]
fn missing_sections_say_which_command_makes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path();
    write_json(
        &results.join("results.json"),
        &json!({
            "tool": "cnnspot 0.1.0",
            "root": "/nowhere",
            "settings": { "crop": null, "max_pixels": 1000 },
            "threshold": 0.5,
            "generators": [
                { "name": "only", "n_real": 2, "n_fake": 0, "ap": null, "acc": 1.0,
                  "r_acc": 1.0, "f_acc": null, "left_out": 1 }
            ],
            "mean": { "generators": 1, "n_real": 2, "n_fake": 0, "ap": null, "ap_of": 0,
                      "acc": 1.0, "acc_of": 1, "r_acc": 1.0, "r_acc_of": 1,
                      "f_acc": null, "f_acc_of": 0 },
            "left_out": [ { "path": "only/0_real/bad.png", "generator": "only",
                            "reason": "truncated <PNG>" } ],
            "warnings": ["no 1_fake folder"]
        }),
    );
    let r = render_report(results, &opts(6)).unwrap();
    assert_eq!(r.sections, ["evaluation"]);
    assert_eq!(r.images(), 0);
    for line in [
        "No per-image scores (scores.jsonl) here: run `cnnspot eval ROOT --out DIR`",
        "No spectra here: run `cnnspot spectrum ROOT --out DIR`",
        "No robustness sweep here: run `cnnspot robustness ROOT --out DIR`",
        "No pr_curves.png here",
        "From results.json (no scores.jsonl here).",
        "none (whole image)",
        "truncated &lt;PNG&gt;",
        "no 1_fake folder",
    ] {
        assert!(r.html.contains(line), "missing {line:?}");
    }
    assert!(r.html.contains("<td class=\"ap\">n&#x2f;a</td>"));
}

#[test]
fn an_unreadable_image_becomes_a_placeholder() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, results) = (tmp.path().join("data"), tmp.path().join("out"));
    scored_dataset(&root, &results, &["g"], 3);
    std::fs::remove_file(root.join("g/1_fake/2.png")).unwrap();
    std::fs::write(root.join("g/0_real/1.png"), b"not a png").unwrap();
    let r = render_report(&results, &opts(2)).unwrap();
    assert_eq!((r.thumbnails, r.placeholders), (2, 2));
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings.iter().any(|w| w.contains("g/1_fake/2.png")));
    assert!(r.warnings.iter().any(|w| w.contains("not an image")));
    assert_eq!(r.html.matches("class=\"placeholder\"").count(), 2);
}

#[test]
fn a_moved_dataset_is_found_with_root() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, results) = (tmp.path().join("data"), tmp.path().join("out"));
    scored_dataset(&root, &results, &["g"], 2);
    let moved = tmp.path().join("moved");
    std::fs::rename(&root, &moved).unwrap();
    let r = render_report(&results, &opts(2)).unwrap();
    assert_eq!(r.thumbnails, 0);
    assert_eq!(r.warnings.len(), 1, "one warning, not one per image");
    assert!(r.html.contains("--root DIR"));
    let r = render_report(
        &results,
        &ReportOptions {
            root: Some(moved),
            ..opts(2)
        },
    )
    .unwrap();
    assert_eq!((r.thumbnails, r.placeholders), (4, 0));
}

#[test]
fn a_broken_figure_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("spectra_grid.png"), b"").unwrap();
    let r = render_report(tmp.path(), &opts(6)).unwrap();
    assert_eq!(r.figures, 0);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("spectra_grid.png"));
}

#[test]
fn nothing_to_report_is_an_error_naming_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"hello").unwrap();
    let e = render_report(tmp.path(), &opts(6)).unwrap_err();
    assert!(matches!(e, ReportError::NothingToReport { .. }));
    let msg = e.to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    for expected in ["results.json", "spectra_grid.png", "robustness.json"] {
        assert!(msg.contains(expected), "{msg}");
    }
    let gone = tmp.path().join("gone");
    let e = render_report(&gone, &opts(6)).unwrap_err();
    assert!(matches!(e, ReportError::NotAFolder { .. }), "{e}");
    assert!(e.to_string().contains("gone"));
}

#[test]
fn a_corrupt_input_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("robustness.json"), b"{\"sweeps\": 3").unwrap();
    let e = render_report(tmp.path(), &opts(6)).unwrap_err().to_string();
    assert!(e.contains("robustness.json"), "{e}");
}

/// robustness.json as `cnnspot robustness` writes it, with AP 0.875 for
/// the first generator at the first point and a null AP at the last.
fn robustness_doc(names: &[&str]) -> Value {
    let point = |label: Value, value: Value, ap: Option<f64>| {
        let gens: Vec<Value> = names
            .iter()
            .map(|n| {
                json!({ "name": n, "n_real": 4, "n_fake": 4, "ap": ap, "acc": 0.5,
                        "r_acc": 0.5, "f_acc": 0.5, "left_out": 0 })
            })
            .collect();
        json!({
            "label": label, "value": value, "generators": gens,
            "mean": { "generators": names.len(), "n_real": 8, "n_fake": 8,
                      "ap": ap.map(|_| 0.6), "ap_of": if ap.is_some() { 1 } else { 0 },
                      "acc": 0.5, "acc_of": 2, "r_acc": 0.5, "r_acc_of": 2,
                      "f_acc": 0.5, "f_acc_of": 2 }
        })
    };
    json!({
        "tool": "cnnspot 0.1.0",
        "root": "/data",
        "settings": { "crop": 224, "max_pixels": 134217728u64 },
        "checkpoint": meta(Path::new("/data"))["checkpoint"],
        "jpeg_encoder": "libjpeg-turbo",
        "sweeps": [
            { "perturbation": "jpeg", "axis": "JPEG quality", "points": [
                point(json!("none"), Value::Null, Some(0.875)),
                point(json!("50"), json!(50.0), None) ] },
            { "perturbation": "blur", "axis": "Gaussian blur sigma", "points": [
                point(json!("0"), json!(0.0), Some(0.875)) ] }
        ]
    })
}
