//! The HTTP API over a real socket on 127.0.0.1: scores equal to the
//! library's (what `cnnspot detect` prints), every kind of bad request gets
//! its status and a JSON error, and the server keeps serving afterwards.
//! The model is the built-in one and the images are made here, so these
//! tests need nothing outside the repository.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cnnspot_core::{Detector, Engine, PreprocessOptions, Score};
use cnnspot_serve::{spawn, Handle, ServeConfig};
use common::{get, multipart, request, Client};
use serde_json::Value;

const TOKEN: &str = "test-token-5f2c9a";

/// The folder of this file's test images, made once: `fake.png` and
/// `real.png`, 256x256 RGB (two different patterns; the names only tell
/// them apart).
fn test_data() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-api");
        let fixtures = dir.join("fixtures");
        std::fs::create_dir_all(&fixtures).expect("test data folder");
        for (name, seed) in [("fake.png", 3u32), ("real.png", 11)] {
            // Smooth, so that the PNGs stay small (tens of KB) like photos'.
            let img = image::RgbImage::from_fn(256, 256, |x, y| {
                let ring = ((x as i32 - 128).pow(2) + (y as i32 - 100).pow(2)) as u32 / (64 * seed);
                image::Rgb([(x / 2 + seed) as u8, (y / 2) as u8, (ring % 256) as u8])
            });
            // Written under a unique name and renamed: tests run in parallel.
            let tmp = fixtures.join(format!("{name}.{}.tmp", std::process::id()));
            img.save_with_format(&tmp, image::ImageFormat::Png)
                .expect("test image written");
            std::fs::rename(&tmp, fixtures.join(name)).expect("test image in place");
        }
        dir
    })
}

fn fixture(shared: &Path, name: &str) -> PathBuf {
    shared.join("fixtures").join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn detector(_shared: &Path) -> Detector {
    Detector::builtin(Engine::Fast).expect("the built-in model loads")
}

/// The library's detector, for expected scores and the model's settings.
fn library() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| detector(test_data()))
}

fn start(shared: &Path, config: ServeConfig) -> Handle {
    spawn("127.0.0.1:0".parse().unwrap(), config, detector(shared)).expect("server starts")
}

/// The server with the default settings (no crop, no token), shared by the
/// tests of this file.
fn default_server(shared: &Path) -> SocketAddr {
    static SERVER: OnceLock<Handle> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            start(
                shared,
                ServeConfig {
                    max_body_bytes: 4 << 20,
                    ..ServeConfig::default()
                },
            )
        })
        .addr()
}

/// What `cnnspot detect` computes for a file (it calls the same function).
fn library_score(shared: &Path, name: &str, crop: Option<u32>) -> Score {
    library()
        .score_path(
            &fixture(shared, name),
            &PreprocessOptions {
                crop,
                ..PreprocessOptions::default()
            },
        )
        .expect("fixture scores")
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}

fn assert_same_score(result: &Value, expected: &Score) {
    assert_eq!(
        f32_of(&result["probability"]),
        expected.probability,
        "{result}"
    );
    assert_eq!(f32_of(&result["logit"]), expected.logit, "{result}");
    assert_eq!(result["width"], expected.width);
    assert_eq!(result["height"], expected.height);
    assert_eq!(
        result["synthetic"],
        expected.is_synthetic(library().threshold())
    );
}

fn post_raw(addr: SocketAddr, body: &[u8]) -> common::Response {
    request(
        addr,
        "POST",
        "/v1/detect",
        &[("Content-Type", "application/octet-stream")],
        body,
    )
}

fn assert_error(resp: &common::Response, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["error"]["status"], status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

fn assert_still_serving(shared: &Path, addr: SocketAddr) {
    let resp = post_raw(addr, &read(&fixture(shared, "real.png")));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(addr, "/healthz").status, 200);
}

#[test]
fn raw_upload_scores_equal_the_library() {
    let shared = test_data();
    let addr = default_server(shared);
    for name in ["fake.png", "real.png"] {
        let resp = post_raw(addr, &read(&fixture(shared, name)));
        assert_eq!(resp.status, 200, "{}", resp.text());
        let v = resp.json();
        let r = &v["results"][0];
        assert_same_score(r, &library_score(shared, name, None));
        assert_eq!(r["crop"], Value::Null);
        assert_eq!(
            r["threshold"].as_f64().map(|t| t as f32),
            Some(library().threshold())
        );
        assert!(r["decision"] == "synthetic" || r["decision"] == "real");
        assert!(r["time_ms"]["total"].as_f64().is_some_and(|t| t > 0.0));
        assert_eq!(v["model"]["arch"], library().info().arch.name());
        assert_eq!(v["model"]["sha256"].as_str().map(str::len), Some(64));
        assert!(v.get("error").is_none());
    }
}

#[test]
fn multipart_scores_each_file_and_reports_bad_ones() {
    let shared = test_data();
    let addr = default_server(shared);
    let fake = read(&fixture(shared, "fake.png"));
    let real = read(&fixture(shared, "real.png"));
    let (ct, body) = multipart(&[
        ("fake.png", &fake),
        ("notes.txt", b"these are not pixels"),
        ("real.png", &real),
    ]);
    let resp = request(addr, "POST", "/v1/detect", &[("Content-Type", &ct)], &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["name"], "fake.png");
    assert_eq!(results[1]["name"], "notes.txt");
    assert_eq!(results[2]["name"], "real.png");
    // Files of one request share a batch when they have one size; a batched
    // forward pass may round differently from a single one.
    for (r, name) in [(&results[0], "fake.png"), (&results[2], "real.png")] {
        let s = library_score(shared, name, None);
        assert!((f32_of(&r["logit"]) - s.logit).abs() < 1e-4, "{r}");
        assert!(
            (f32_of(&r["probability"]) - s.probability).abs() < 1e-5,
            "{r}"
        );
    }
    assert_eq!(results[1]["error"]["code"], "not_an_image");
    assert_eq!(results[1]["error"]["status"], 415);
}

/// A PNG of `w` x `h` black pixels, deflated: tiny on the wire, `3 w h`
/// bytes once decoded.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&cnnspot_testdata::png::crc32(&c).to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let row = vec![0u8; 1 + 3 * w as usize];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..h {
        z.write_all(&row).expect("deflate");
    }
    let idat = z.finish().expect("deflate");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn bad_uploads_get_their_status_and_the_server_goes_on() {
    let shared = test_data();
    let addr = default_server(shared);
    let fake = read(&fixture(shared, "fake.png"));

    assert_error(
        &post_raw(addr, b"\x00\x01garbage bytes, no image"),
        415,
        "not_an_image",
    );
    assert_error(&post_raw(addr, b""), 422, "empty");
    assert_error(
        &post_raw(addr, &fake[..fake.len() / 2]),
        422,
        "corrupt_image",
    );

    // 6000 x 6000 (over the 4096 x 4096 default): about 100 KB that would
    // decode to 108 MB; refused from its header.
    let bomb = png_bomb(6000, 6000);
    assert!(bomb.len() < 1 << 20);
    let t = Instant::now();
    assert_error(&post_raw(addr, &bomb), 413, "too_many_pixels");
    assert!(t.elapsed() < Duration::from_secs(5), "the bomb was decoded");

    // Malformed multipart: no boundary; a body that never closes; no file.
    assert_error(
        &request(
            addr,
            "POST",
            "/v1/detect",
            &[("Content-Type", "multipart/form-data")],
            b"x",
        ),
        400,
        "bad_multipart",
    );
    let (ct, body) = multipart(&[("fake.png", &fake)]);
    let cut = &body[..body.len() - 40];
    assert_error(
        &request(addr, "POST", "/v1/detect", &[("Content-Type", &ct)], cut),
        400,
        "bad_multipart",
    );
    let text_only = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{b}--\r\n",
        b = common::BOUNDARY
    );
    assert_error(
        &request(
            addr,
            "POST",
            "/v1/detect",
            &[("Content-Type", &ct)],
            text_only.as_bytes(),
        ),
        400,
        "no_files",
    );
    // A multipart request whose every file fails fails as a whole.
    let (ct2, body2) = multipart(&[("a.txt", b"no"), ("b.txt", b"nope")]);
    assert_error(
        &request(
            addr,
            "POST",
            "/v1/detect",
            &[("Content-Type", &ct2)],
            &body2,
        ),
        415,
        "not_an_image",
    );

    // Over the 4 MiB body limit: refused from Content-Length, before the
    // body is read (the client sends only the headers).
    let mut c = Client::connect(addr, Duration::from_secs(30)).expect("connect");
    let head = format!(
        "POST /v1/detect HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        64 << 20
    );
    c.stream().write_all(head.as_bytes()).expect("send");
    assert_error(&c.read_response().expect("answer"), 413, "body_too_large");

    assert_error(&get(addr, "/v1/detect"), 405, "method_not_allowed");
    assert_error(&get(addr, "/nowhere"), 404, "not_found");

    assert_still_serving(shared, addr);
    let metrics = get(addr, "/metrics").text();
    assert!(metrics.contains("cnnspot_image_errors_total{code=\"too_many_pixels\"}"));
}

#[test]
fn a_body_over_the_limit_without_content_length_gets_413() {
    let shared = test_data();
    let server = start(
        shared,
        ServeConfig {
            max_body_bytes: 100 << 10,
            ..ServeConfig::default()
        },
    );
    let addr = server.addr();
    // Chunked, so the size is only known while reading; small enough that
    // the unread rest fits the socket buffers.
    let mut c = Client::connect(addr, Duration::from_secs(30)).expect("connect");
    let mut req = format!(
        "POST /v1/detect HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![0x55u8; 16 << 10];
    for _ in 0..8 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.stream().write_all(&req).expect("send");
    assert_error(&c.read_response().expect("answer"), 413, "body_too_large");
    assert_still_serving(shared, addr);
}

#[test]
fn token_crop_limits_and_timeout() {
    let shared = test_data();
    let server = start(
        shared,
        ServeConfig {
            crop: Some(224),
            token: Some(TOKEN.into()),
            max_files: 2,
            max_concurrency: 1,
            request_timeout: Duration::from_millis(1500),
            ..ServeConfig::default()
        },
    );
    let addr = server.addr();
    let fake = read(&fixture(shared, "fake.png"));
    let bearer = format!("Bearer {TOKEN}");

    let resp = post_raw(addr, &fake);
    assert_error(&resp, 401, "no_token");
    assert!(resp.header("www-authenticate").is_some());
    assert_error(
        &request(
            addr,
            "POST",
            "/v1/detect",
            &[("Authorization", "Bearer wrong-token-5f2c9a")],
            &fake,
        ),
        401,
        "bad_token",
    );
    assert_error(
        &request(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", "Basic eDp5")],
            b"",
        ),
        401,
        "no_token",
    );
    // Health, readiness and the page stay open (the page asks for the token).
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(get(addr, "/readyz").status, 200);
    assert_eq!(get(addr, "/").status, 200);

    let resp = request(
        addr,
        "POST",
        "/v1/detect",
        &[("Authorization", &bearer), ("Content-Type", "image/png")],
        &fake,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_same_score(
        &v["results"][0],
        &library_score(shared, "fake.png", Some(224)),
    );
    assert_eq!(v["results"][0]["crop"], 224);

    let (ct, body) = multipart(&[("1.png", &fake), ("2.png", &fake), ("3.png", &fake)]);
    assert_error(
        &request(
            addr,
            "POST",
            "/v1/detect",
            &[("Authorization", &bearer), ("Content-Type", &ct)],
            &body,
        ),
        413,
        "too_many_files",
    );

    // One request in flight (still uploading) holds the only slot: the next
    // gets 429, and the slow one runs into the request timeout (503).
    let mut slow = Client::connect(addr, Duration::from_secs(30)).expect("connect");
    let head = format!(
        "POST /v1/detect HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {bearer}\r\nContent-Length: {}\r\n\r\n",
        fake.len()
    );
    slow.stream().write_all(head.as_bytes()).expect("send");
    slow.stream().write_all(&fake[..100]).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let resp = request(
        addr,
        "POST",
        "/v1/detect",
        &[("Authorization", &bearer)],
        &fake,
    );
    assert_error(&resp, 429, "too_many_requests");
    assert_eq!(resp.header("retry-after"), Some("1"));
    let resp = slow.read_response().expect("answer");
    assert_error(&resp, 503, "timeout");

    let model = request(addr, "GET", "/v1/model", &[("Authorization", &bearer)], b"").json();
    assert_eq!(model["settings"]["crop"], 224);
    assert_eq!(model["auth"], true);
    assert_eq!(model["limits"]["max_files"], 2);

    let resp = request(
        addr,
        "POST",
        "/v1/detect",
        &[("Authorization", &bearer)],
        &read(&fixture(shared, "real.png")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn model_health_and_metrics() {
    let shared = test_data();
    let addr = default_server(shared);
    let v = get(addr, "/v1/model").json();
    assert_eq!(v["model"]["arch"], library().info().arch.name());
    assert_eq!(
        v["model"]["sha256"].as_str(),
        Some(library().info().sha256.as_str())
    );
    assert_eq!(
        v["model"]["format"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    assert_eq!(
        v["model"]["parameters"].as_u64(),
        Some(library().info().parameters)
    );
    assert_eq!(v["settings"]["crop"], Value::Null);
    assert_eq!(
        v["settings"]["threshold"].as_f64().map(|t| t as f32),
        Some(library().threshold()),
        "the model's calibrated threshold by default"
    );
    assert_eq!(v["auth"], false);
    assert_eq!(get(addr, "/healthz").json()["status"], "ok");
    assert_eq!(get(addr, "/readyz").json()["status"], "ready");

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let html = page.text();
    assert!(html.contains("id=\"file-input\""));
    // No external assets: nothing is loaded from another origin.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    assert_eq!(
        post_raw(addr, &read(&fixture(shared, "fake.png"))).status,
        200
    );
    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let text = m.text();
    for needle in [
        "# TYPE cnnspot_http_requests_total counter",
        "cnnspot_http_requests_total{route=\"/v1/detect\",status=\"200\"}",
        "# TYPE cnnspot_http_request_duration_seconds histogram",
        "cnnspot_http_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"+Inf\"}",
        "cnnspot_queue_depth ",
        "cnnspot_http_requests_in_flight ",
        "# TYPE cnnspot_images_scored_total counter",
        "cnnspot_batch_size_count ",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let scored: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cnnspot_images_scored_total "))
        .and_then(|v| v.parse().ok())
        .expect("images scored");
    assert!(scored >= 1);
}

#[test]
fn concurrent_requests_share_a_batch_with_the_same_scores() {
    let shared = test_data();
    let server = start(
        shared,
        ServeConfig {
            // Long enough that requests sent together always meet.
            batch_wait: Duration::from_millis(500),
            max_batch: 8,
            ..ServeConfig::default()
        },
    );
    let addr = server.addr();
    let fake = read(&fixture(shared, "fake.png"));
    let expected = library_score(shared, "fake.png", None);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| post_raw(addr, &fake))).collect();
        handles
            .into_iter()
            .map(|h| {
                let r = h.join().expect("client thread");
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()["results"][0].clone()
            })
            .collect()
    });
    let biggest = results
        .iter()
        .filter_map(|r| r["batch_size"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(biggest > 1, "no batching: {results:?}");
    for r in &results {
        assert!((f32_of(&r["logit"]) - expected.logit).abs() < 1e-4, "{r}");
    }
    let metrics = get(addr, "/metrics").text();
    assert!(
        metrics.contains("cnnspot_images_scored_total 6"),
        "{metrics}"
    );
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let shared = test_data();
    let server = start(shared, ServeConfig::default());
    let addr = server.addr();
    let fake = read(&fixture(shared, "fake.png"));
    // Three uploads under way (headers and half the body sent) when the
    // shutdown begins.
    let mut clients: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = Client::connect(addr, Duration::from_secs(60)).expect("connect");
            let head = format!(
                "POST /v1/detect HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
                fake.len()
            );
            c.stream().write_all(head.as_bytes()).expect("send");
            c.stream().write_all(&fake[..fake.len() / 2]).expect("send");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let stopper = std::thread::spawn(move || server.shutdown());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!stopper.is_finished(), "shut down with requests in flight");
    for c in &mut clients {
        c.stream().write_all(&fake[fake.len() / 2..]).expect("send");
    }
    for c in &mut clients {
        let resp = c.read_response().expect("answer");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    stopper
        .join()
        .expect("stopper thread")
        .expect("clean shutdown");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn refuses_open_address_without_token() {
    let shared = test_data();
    let err = spawn(
        "0.0.0.0:0".parse().unwrap(),
        ServeConfig::default(),
        detector(shared),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, cnnspot_serve::ServeError::Unauthenticated(_)));
    assert!(err.to_string().contains("--token-file"));
}

#[test]
fn silent_connections_are_closed() {
    let shared = test_data();
    let server = start(
        shared,
        ServeConfig {
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::ZERO,
            ..ServeConfig::default()
        },
    );
    let addr = server.addr();
    // Half a request line, then nothing: closed 5 s after the request
    // timeout, not held forever.
    let mut c = Client::connect(addr, Duration::from_secs(30)).expect("connect");
    c.stream().write_all(b"POST /v1/det").expect("send");
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(c.stream(), &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close the connection");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(20),
        "closed after {waited:?}"
    );
    assert_still_serving(shared, addr);
}
