//! `cnnspot serve` end to end: the binary on 127.0.0.1 gives the scores that
//! `cnnspot detect` prints, refuses an open address without a token, and
//! stops cleanly on SIGTERM.

mod common;
#[path = "../../cnnspot-serve/tests/common/mod.rs"]
mod http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The server process; killed if a test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(args: &[&str]) -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cnnspot runs");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("cnnspot serve prints its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().expect("address");
            return (server, addr.parse().expect("socket address"));
        }
    }
}

#[test]
fn serve_scores_equal_detect_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let weights = dir.path().join("resnet18.pth");
    common::resnet18_pth(&weights);
    let weights = weights.to_str().expect("UTF-8 path");
    let images = ["a.png", "b.png"].map(|n| dir.path().join(n));
    for (i, path) in images.iter().enumerate() {
        common::photo(256, 240, i as u32)
            .save(path)
            .expect("image saved");
    }

    for crop in [None, Some("224")] {
        let mut detect = Command::new(env!("CARGO_BIN_EXE_cnnspot"));
        detect.args([
            "detect",
            "--format",
            "jsonl",
            "--batch-size",
            "1",
            "--weights",
            weights,
        ]);
        let mut serve_args = vec!["--weights", weights, "--addr", "127.0.0.1:0"];
        if let Some(c) = crop {
            detect.args(["--crop", c]);
            serve_args.extend(["--crop", c]);
        }
        let out = detect.args(&images).output().expect("detect runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();

        let (mut server, addr) = start(&serve_args);
        for (image, row) in images.iter().zip(&rows) {
            let body = std::fs::read(image).expect("fixture");
            let resp = http::request(addr, "POST", "/v1/detect", &[], &body);
            assert_eq!(resp.status, 200, "{}", resp.text());
            let r = &resp.json()["results"][0];
            for key in ["probability", "logit"] {
                assert_eq!(
                    r[key].as_f64().map(|v| v as f32),
                    row[key].as_f64().map(|v| v as f32),
                    "{key} of {}: serve {r} vs detect {row}",
                    image.display()
                );
            }
            assert_eq!(r["synthetic"], row["synthetic"]);
            assert_eq!(r["width"], row["width"]);
        }

        let pid = server.0.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = server.0.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "exit status {status}");
    }
}

/// The built-in model is calibrated (temperature, threshold): serve must
/// report the probability and decision detect prints, not the raw sigmoid.
#[test]
fn serve_with_the_builtin_model_reports_detects_calibrated_probability() {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let images = [
        "fake_srmdnf-x4_rocket.png",
        "real_rocket_crop_for_srmdnf-x4.png",
    ]
    .map(|n| samples.join(n));
    let out = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(["detect", "--format", "jsonl", "--batch-size", "1"])
        .args(&images)
        .output()
        .expect("detect runs");
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", String::from_utf8_lossy(&out.stderr));

    let builtin_threshold = cnnspot::Detector::builtin(cnnspot::Engine::Fast)
        .expect("built-in model")
        .threshold();
    let (_server, addr) = start(&["--addr", "127.0.0.1:0"]);
    for (image, row) in images.iter().zip(&rows) {
        let logit = row["logit"].as_f64().expect("logit") as f32;
        let p = row["probability"].as_f64().expect("probability") as f32;
        assert!(
            (p - 1.0 / (1.0 + (-logit).exp())).abs() > 1e-4,
            "the built-in model is no longer calibrated ({row}): this test checks nothing"
        );
        let body = std::fs::read(image).expect("sample");
        let resp = http::request(addr, "POST", "/v1/detect", &[], &body);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let r = &resp.json()["results"][0];
        assert_eq!(
            r["logit"].as_f64().map(|v| v as f32),
            Some(logit),
            "{r} vs {row}"
        );
        assert_eq!(
            r["probability"].as_f64().map(|v| v as f32),
            Some(p),
            "{r} vs {row}"
        );
        assert_eq!(r["synthetic"], row["synthetic"], "{r} vs {row}");
        assert_eq!(
            r["threshold"].as_f64().map(|v| v as f32),
            Some(builtin_threshold),
            "{r}"
        );
    }
}

#[test]
fn serve_refuses_an_open_address_without_a_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--weights",
            "/nonexistent.pth",
        ])
        .output()
        .expect("cnnspot runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--token-file"), "{err}");

    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("token");
    std::fs::write(&empty, "\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(["serve", "--addr", "0.0.0.0:0", "--token-file"])
        .arg(&empty)
        .output()
        .expect("cnnspot runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
}
