//! The web page in headless Chromium: upload shared/fixtures/fake.png
//! through the page's file input (DevTools protocol `DOM.setFileInputFiles`)
//! and read the score the page shows from the DOM.
//!
//! Needs Debian's `chromium` (installed by scripts/setup.sh; another binary
//! can be named with CNNSPOT_CHROMIUM). Without it the test skips, unless
//! CNNSPOT_REQUIRE_SHARED=1, where it fails.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cnnspot_core::{Detector, PreprocessOptions};
use cnnspot_serve::{spawn, ServeConfig};
use cnnspot_testdata::require_shared;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CNNSPOT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CNNSPOT_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
        panic!(
            "CNNSPOT_REQUIRE_SHARED=1 but {} is missing (scripts/setup.sh installs Debian's chromium)",
            path.display()
        );
    }
    eprintln!(
        "skipping: {} not found (install Debian's chromium, or set CNNSPOT_CHROMIUM)",
        path.display()
    );
    None
}

/// The browser process; closed (and killed if need be) when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws_url: String,
}

impl Browser {
    fn launch(binary: &PathBuf, url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        // Chromium prints the DevTools address on stderr; keep draining it
        // afterwards so that the browser never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(u) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(u.trim().to_string());
                }
            }
        });
        let ws_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not print its DevTools address within 60 s");
            }
        };
        Browser {
            child,
            _profile: profile,
            ws_url,
        }
    }

    fn devtools_addr(&self) -> SocketAddr {
        let rest = self
            .ws_url
            .strip_prefix("ws://")
            .expect("ws:// DevTools address");
        let host_port = rest.split('/').next().expect("host:port");
        host_port.parse().expect("numeric DevTools address")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(mut cdp) = Cdp::connect(&self.ws_url) {
            let _ = cdp.call("Browser.close", json!({}));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools protocol session over one websocket.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Cdp {
    fn connect(url: &str) -> Result<Cdp, String> {
        let host_port = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
        let stream = TcpStream::connect(host_port).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let (ws, _) = tungstenite::client(url, stream).map_err(|e| e.to_string())?;
        Ok(Cdp { ws, next_id: 1 })
    }

    /// Sends a command and waits for its answer, skipping events.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| e.to_string())?;
        loop {
            let text = match self.ws.read().map_err(|e| e.to_string())? {
                Message::Text(t) => t.to_string(),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        r["result"]["value"].clone()
    }
}

fn page_ws_url(devtools: SocketAddr, page_prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = common::get(devtools, "/json/list");
        if let Ok(Value::Array(targets)) = serde_json::from_slice::<Value>(&resp.body) {
            if let Some(u) = targets
                .iter()
                .filter(|t| t["type"] == "page")
                .find(|t| {
                    t["url"]
                        .as_str()
                        .is_some_and(|u| u.starts_with(page_prefix))
                })
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                return u.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no page for {page_prefix} in {}",
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for(cdp: &mut Cdp, expression: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = cdp.eval(expression);
        if !v.is_null() && v != Value::Bool(false) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {expression}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn upload_through_the_page_shows_the_score() {
    let Some(binary) = chromium() else { return };
    let shared = require_shared!();
    let weights = shared.join("fixtures/cnndet_random.pth");
    let image = shared
        .join("fixtures/fake.png")
        .canonicalize()
        .expect("fake.png");
    let detector = Detector::load(&weights).expect("fixture checkpoint loads");
    let expected = detector
        .score_path(&image, &PreprocessOptions::default())
        .expect("fixture scores");
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        ServeConfig::default(),
        detector,
    )
    .expect("server starts");
    let origin = format!("http://{}/", server.addr());

    let browser = Browser::launch(&binary, &origin);
    let mut cdp = Cdp::connect(&page_ws_url(browser.devtools_addr(), &origin))
        .unwrap_or_else(|e| panic!("DevTools: {e}"));
    wait_for(
        &mut cdp,
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

    let shown = wait_for(
        &mut cdp,
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
    assert_eq!(shown["name"], "fake.png");
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
    let decision = if expected.probability > 0.5 {
        "synthetic"
    } else {
        "real"
    };
    assert_eq!(shown["decision"], decision);
    assert!(shown["meta"]
        .as_str()
        .is_some_and(|m| m.starts_with("256×256")));
    drop(cdp);
    drop(browser);
    server.shutdown().expect("clean shutdown");
}
