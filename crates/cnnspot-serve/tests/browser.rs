//! The web page in headless Chromium (the built-in model): upload an image
//! made here through the page's file input (DevTools protocol `DOM.setFileInputFiles`)
//! and read the score the page shows from the DOM.
//!
//! Needs Debian's `chromium` (installed by scripts/setup.sh; another binary
//! can be named with CNNSPOT_CHROMIUM). Without it the test skips, unless
//! CNNSPOT_REQUIRE_SHARED=1, where it fails.

use std::time::Duration;

use cnnspot_core::{Detector, Engine, PreprocessOptions};
use cnnspot_serve::{spawn, ServeConfig};
use cnnspot_testdata::browser::{chromium, Browser};
use serde_json::json;

#[test]
fn upload_through_the_page_shows_the_score() {
    let Some(binary) = chromium() else { return };
    let image = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-browser-upload.png");
    image::RgbImage::from_fn(200, 160, |x, y| {
        image::Rgb([(x % 256) as u8, (y * 3 % 256) as u8, ((x * y) % 251) as u8])
    })
    .save_with_format(&image, image::ImageFormat::Png)
    .expect("test image written");
    let image = image.canonicalize().expect("test image");
    let detector = Detector::builtin(Engine::Fast).expect("built-in model");
    let expected = detector
        .score_path(&image, &PreprocessOptions::default())
        .expect("fixture scores");
    let detector_threshold = detector.threshold();
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        ServeConfig::default(),
        detector,
    )
    .expect("server starts");
    let origin = format!("http://{}/", server.addr());

    let browser = Browser::launch(&binary, &origin);
    let mut cdp = browser.page(&origin);
    cdp.wait_for(
        "document.readyState === 'complete' && !!document.getElementById('file-input')",
        Duration::from_secs(30),
    );

    let doc = cdp
        .call("DOM.getDocument", json!({ "depth": 0 }))
        .unwrap_or_else(|e| panic!("{e}"));
    let input = cdp
        .call(
            "DOM.querySelector",
            json!({ "nodeId": doc["root"]["nodeId"], "selector": "#file-input" }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    cdp.call(
        "DOM.setFileInputFiles",
        json!({ "nodeId": input["nodeId"], "files": [image.to_string_lossy()] }),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let shown = cdp.wait_for(
        r#"(() => {
            const card = document.querySelector('#results .result');
            if (!card) return null;
            const err = card.querySelector('.error');
            if (err) return { error: err.textContent };
            const s = card.querySelector('.score');
            if (!s) return null;
            const img = card.querySelector('img.thumb');
            return {
                name: card.querySelector('.name').textContent,
                probability: s.dataset.probability,
                logit: s.dataset.logit,
                text: s.textContent,
                decision: card.querySelector('.decision').textContent,
                meta: card.querySelector('.meta').textContent,
                thumbnail: img ? img.src.slice(0, 5) : null,
            };
        })()"#,
        Duration::from_secs(120),
    );
    eprintln!("the page shows: {shown}");
    assert!(
        shown.get("error").is_none(),
        "the page shows an error: {shown}"
    );
    assert_eq!(shown["name"], "serve-browser-upload.png");
    assert_eq!(shown["thumbnail"], "blob:");
    let p: f32 = shown["probability"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("probability in the DOM");
    assert_eq!(p, expected.probability);
    let logit: f32 = shown["logit"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("logit in the DOM");
    assert_eq!(logit, expected.logit);
    // The page formats the number it received, as JavaScript parsed it.
    let as_js: f64 = shown["probability"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("probability in the DOM");
    assert_eq!(shown["text"], format!("{:.1}%", 100.0 * as_js));
    let decision = if expected.is_synthetic(detector_threshold) {
        "synthetic"
    } else {
        "real"
    };
    assert_eq!(shown["decision"], decision);
    assert!(shown["meta"]
        .as_str()
        .is_some_and(|m| m.starts_with("200×160")));
    drop(cdp);
    drop(browser);
    server.shutdown().expect("clean shutdown");
}
