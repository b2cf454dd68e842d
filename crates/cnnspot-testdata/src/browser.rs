//! Headless Chromium driven over the DevTools protocol, for tests of the
//! pages cnnspot makes (the `serve` page, the `report` page).
//!
//! Needs Debian's `chromium` (installed by scripts/setup.sh; another binary
//! can be named with CNNSPOT_CHROMIUM). Without it [`chromium`] returns
//! `None` after saying so, and the test skips, unless
//! CNNSPOT_REQUIRE_SHARED=1, where it panics.
//!
//! ```no_run
//! use cnnspot_testdata::browser::{chromium, Browser};
//! let Some(binary) = chromium() else { return };
//! let browser = Browser::launch(&binary, "about:blank");
//! let mut page = browser.page("about:blank");
//! page.call("Page.navigate", serde_json::json!({ "url": "file:///tmp/x.html" })).unwrap();
//! page.wait_for("document.readyState === 'complete'", std::time::Duration::from_secs(30));
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// The Chromium binary, or `None` (after printing why) when it is absent
/// and not required. Panics when it is absent and
/// `CNNSPOT_REQUIRE_SHARED=1`.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CNNSPOT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        return Some(path);
    }
    if crate::required() {
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
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws_url: String,
}

impl Browser {
    /// Starts headless Chromium on `url` with a fresh profile. Panics when
    /// it does not start or does not print its DevTools address.
    pub fn launch(binary: &Path, url: &str) -> Browser {
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

    /// The host and port of the DevTools endpoint.
    pub fn devtools_addr(&self) -> SocketAddr {
        let rest = self
            .ws_url
            .strip_prefix("ws://")
            .expect("ws:// DevTools address");
        let host_port = rest.split('/').next().expect("host:port");
        host_port.parse().expect("numeric DevTools address")
    }

    /// A session with the page whose URL starts with `page_prefix`
    /// (waiting up to 30 s for it to appear). Panics when there is none.
    pub fn page(&self, page_prefix: &str) -> Cdp {
        Cdp::connect(&page_ws_url(self.devtools_addr(), page_prefix))
            .unwrap_or_else(|e| panic!("DevTools: {e}"))
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

/// A DevTools protocol session over one websocket. Events that arrive
/// while waiting for answers are kept, in order, for [`Cdp::take_events`].
pub struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    /// Opens a session on a `ws://` DevTools URL.
    pub fn connect(url: &str) -> Result<Cdp, String> {
        let host_port = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
        let stream = TcpStream::connect(host_port).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let (ws, _) = tungstenite::client(url, stream).map_err(|e| e.to_string())?;
        Ok(Cdp {
            ws,
            next_id: 1,
            events: Vec::new(),
        })
    }

    /// Sends a command and waits for its answer, keeping the events that
    /// arrive meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
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
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// The value of a JavaScript expression (`returnByValue`); panics when
    /// the protocol fails.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("{expression} threw: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is neither null nor false, and
    /// returns that value; panics after `within`.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expression);
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

    /// The events received so far (`{"method", "params"}`), oldest first;
    /// the buffer is emptied.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// A PNG of the whole page, not only the viewport.
    pub fn screenshot_full_page(&mut self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let metrics = self.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(0.0).ceil(),
            size["height"].as_f64().unwrap_or(0.0).ceil(),
        );
        if w < 1.0 || h < 1.0 {
            return Err(format!("the page has no size: {metrics}"));
        }
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": w, "height": h, "scale": 1 },
            }),
        )?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| format!("no screenshot data in {shot}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("screenshot is not base64: {e}"))
    }
}

/// The DevTools websocket of the page whose URL starts with `page_prefix`,
/// from the browser's `/json/list` (waiting up to 30 s for the page).
pub fn page_ws_url(devtools: SocketAddr, page_prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = http_get(devtools, "/json/list").unwrap_or_default();
        if let Ok(Value::Array(targets)) = serde_json::from_slice::<Value>(&body) {
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
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The body of a GET on the DevTools HTTP endpoint: one request per
/// connection, the body read up to its Content-Length (or to the close).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(body)
}
