//! `cnnspot report` end to end: eval, spectrum and robustness write into
//! one folder, report makes the page, and headless Chromium renders it
//! with no failed or external load, the table of results.json, and every
//! image decoded.
//!
//! The browser part needs Debian's `chromium` (scripts/setup.sh; or
//! CNNSPOT_CHROMIUM) and the shared dev set; without them it skips, unless
//! CNNSPOT_REQUIRE_SHARED=1, where it fails.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cnnspot_testdata::browser::{chromium, Browser};
use cnnspot_testdata::require_shared;
use common::{cnnspot, ok, s, text};
use serde_json::{json, Value};

const GENERATORS: [&str; 2] = ["pix2pix_maps", "cyclegan_horse2zebra_student"];
const THUMBNAILS: usize = 6;

/// The paths this test writes its screenshot to: `target/report-screenshot.png`.
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("report-screenshot.png")
}

/// Runs eval, spectrum and robustness on two generators of the dev set
/// into `dir`.
fn make_results(shared: &Path, dir: &Path) {
    let dev = shared.join("data/dev");
    // The built-in NPR: an eighth of ResNet-50's work, and real weights.
    let weights = std::path::PathBuf::from("builtin");
    let generators = GENERATORS.join(",");
    ok(&cnnspot(&[
        "eval",
        s(&dev),
        "--weights",
        s(&weights),
        "--crop",
        "224",
        "--generators",
        &generators,
        "--out",
        s(dir),
        "--quiet",
    ]));
    let mut spectrum = vec!["spectrum", s(&dev), "--out", s(dir), "--quiet"];
    for g in GENERATORS {
        spectrum.extend(["--generator", g]);
    }
    ok(&cnnspot(&spectrum));
    ok(&cnnspot(&[
        "robustness",
        s(&dev),
        "--weights",
        s(&weights),
        "--crop",
        "224",
        "--generators",
        &generators,
        "--jpeg",
        "100,50",
        "--blur",
        "0,2",
        "--out",
        s(dir),
        "--quiet",
    ]));
}

#[test]
fn report_renders_in_chromium_with_everything_inline() {
    let Some(binary) = chromium() else { return };
    let shared = require_shared!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results");
    make_results(&shared, &dir);

    let page = dir.join("report.html");
    let run = cnnspot(&["report", s(&dir), "-o", s(&page)]);
    ok(&run);
    let said = text(&run.stdout);
    eprintln!("cnnspot report: {}", said.trim());
    assert!(
        said.starts_with(&format!("wrote {}", page.display())),
        "{said}"
    );
    assert!(
        text(&run.stderr).is_empty(),
        "warnings: {}",
        text(&run.stderr)
    );
    let html_bytes = std::fs::metadata(&page).unwrap().len();

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let scores = std::fs::read_to_string(dir.join("scores.jsonl")).unwrap();
    let expected_thumbs: usize = GENERATORS
        .iter()
        .map(|g| {
            let scored = scores
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|r| r["generator"] == *g && r["probability"].is_f64())
                .count();
            scored.min(2 * THUMBNAILS)
        })
        .sum();
    // PR curves, spectra grid, and the JPEG and blur plots.
    // PR curves, spectra grid, JPEG and blur sweeps.
    let expected_figures = 4;

    let browser = Browser::launch(&binary, "about:blank");
    let mut cdp = browser.page("about:blank");
    cdp.call("Network.enable", json!({})).unwrap();
    cdp.call("Page.enable", json!({})).unwrap();
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
    )
    .unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    cdp.call("Page.navigate", json!({ "url": url })).unwrap();
    cdp.wait_for(
        "document.readyState === 'complete' && location.href.startsWith('file:') \
         && [...document.images].every(i => i.complete)",
        Duration::from_secs(60),
    );

    let facts = cdp.eval(
        r#"(() => {
        const rows = [...document.querySelectorAll('#eval-table tbody tr')];
        return {
            title: document.title,
            rows: rows.length,
            ap: Object.fromEntries(rows.map(r => [
                r.querySelector('th').textContent, r.querySelector('td.ap').textContent])),
            images: document.images.length,
            broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                .map(i => i.alt),
            non_data: [...document.images].filter(i => !i.src.startsWith('data:image/'))
                .map(i => i.src),
            thumbs: document.querySelectorAll('#examples img.thumb-img').length,
            placeholders: document.querySelectorAll('#examples .placeholder').length,
            figures: document.querySelectorAll('figure.figure img').length,
            sweeps: [...document.querySelectorAll('table.sweep')].map(t => ({
                perturbation: t.dataset.perturbation,
                rows: t.querySelectorAll('tbody tr').length,
                columns: t.querySelectorAll('thead th').length,
            })),
            missing: [...document.querySelectorAll('.missing')].map(p => p.textContent),
            width: document.documentElement.scrollWidth,
            height: document.documentElement.scrollHeight,
        };
    })()"#,
    );
    // Events gathered while the page loaded and was read.
    let events = cdp.take_events();
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["method"] == "Network.loadingFailed")
        .collect();
    assert!(failed.is_empty(), "failed loads: {failed:?}");
    let requested: Vec<String> = events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .filter_map(|e| e["params"]["request"]["url"].as_str().map(String::from))
        .collect();
    assert!(
        requested.contains(&url),
        "the page itself was not requested: {requested:?}"
    );
    let outside: Vec<&String> = requested
        .iter()
        .filter(|u| **u != url && !u.starts_with("data:"))
        .collect();
    assert!(outside.is_empty(), "requests beyond the page: {outside:?}");

    // The table: one row per generator and the mean, AP as results.json has it.
    let gens = results["generators"].as_array().unwrap();
    assert_eq!(gens.len(), GENERATORS.len());
    assert_eq!(facts["rows"], gens.len() + 1, "{facts}");
    for g in gens {
        let name = g["name"].as_str().unwrap();
        let want = format!("{:.1}", g["ap"].as_f64().unwrap() * 100.0);
        assert_eq!(facts["ap"][name], want, "AP of {name}: {facts}");
    }
    let mean = format!("{:.1}", results["mean"]["ap"].as_f64().unwrap() * 100.0);
    assert_eq!(facts["ap"]["mean"], mean);

    // Images: all inline and decoded.
    assert_eq!(facts["broken"], json!([]), "{facts}");
    assert_eq!(facts["non_data"], json!([]), "{facts}");
    assert_eq!(facts["thumbs"], expected_thumbs);
    assert_eq!(facts["placeholders"], 0);
    assert_eq!(facts["figures"], expected_figures, "{facts}");
    assert_eq!(facts["images"], expected_thumbs + expected_figures);
    assert_eq!(
        facts["sweeps"],
        json!([
            { "perturbation": "jpeg", "rows": 3, "columns": 4 },
            { "perturbation": "blur", "rows": 3, "columns": 3 },
        ]),
        "{facts}"
    );
    assert_eq!(facts["missing"], json!([]), "{facts}");

    // The whole page as a picture: its full size and not blank.
    let png = cdp.screenshot_full_page().unwrap();
    std::fs::write(screenshot_path(), &png).unwrap();
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    // The page's size in CSS pixels at scale 1 (the viewport is 1280 wide,
    // less a scrollbar where the browser draws one).
    let (width, height) = (
        facts["width"].as_u64().unwrap() as u32,
        facts["height"].as_u64().unwrap() as u32,
    );
    assert!(
        shot.width().abs_diff(width) <= 2 && shot.height().abs_diff(height) <= 2,
        "screenshot {}x{}, page {width}x{height}",
        shot.width(),
        shot.height()
    );
    assert!(width >= 1200 && height >= 2000, "page {width}x{height}");
    let colours: HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    let not_white =
        shot.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64 / shot.len() as f64 * 3.0;
    assert!(colours.len() > 10_000, "{} colours", colours.len());
    assert!(
        not_white > 0.2,
        "{:.0}% of the page is not white",
        not_white * 100.0
    );

    eprintln!(
        "report facts: html {html_bytes} bytes; {} images ({} figures, {} thumbnails); \
         screenshot {}x{} px, {} bytes, {} colours, {:.0}% non-white; {} requests ({} data:); saved to {}",
        facts["images"],
        facts["figures"],
        facts["thumbs"],
        shot.width(),
        shot.height(),
        png.len(),
        colours.len(),
        not_white * 100.0,
        requested.len(),
        requested.iter().filter(|u| u.starts_with("data:")).count(),
        screenshot_path().display()
    );
    drop(cdp);
    drop(browser);
}

#[test]
fn report_of_an_empty_folder_says_what_it_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnnspot(&["report", s(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(s(tmp.path())), "{err}");
    assert!(err.contains("results.json"), "{err}");
    assert!(err.contains("cnnspot spectrum"), "{err}");
    assert!(!tmp.path().join("report.html").exists());
}

#[test]
fn report_with_spectra_only_points_at_the_other_commands() {
    let shared = require_shared!();
    let tmp = tempfile::tempdir().unwrap();
    let dev = shared.join("data/dev");
    ok(&cnnspot(&[
        "spectrum",
        s(&dev),
        "--out",
        s(tmp.path()),
        "--generator",
        GENERATORS[0],
        "--max-images",
        "4",
        "--quiet",
    ]));
    let page = tmp.path().join("page.html");
    let out = cnnspot(&[
        "report",
        s(tmp.path()),
        "--output",
        s(&page),
        "--title",
        "<b>t</b>",
    ]);
    ok(&out);
    assert!(
        text(&out.stdout).contains("sections: spectra; 1 figure(s), 0 thumbnail(s)"),
        "{}",
        text(&out.stdout)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<title>&lt;b&gt;t&lt;&#x2f;b&gt;</title>"));
    assert!(html.contains("No evaluation here: run `cnnspot eval ROOT --out DIR`"));
    assert!(html.contains("No robustness sweep here"));
}
