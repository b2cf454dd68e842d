//! `serve` under abuse on 127.0.0.1, bounded in count and time: slow
//! clients (a byte a second), many idle connections, oversized headers,
//! clients that disconnect mid-upload and 1000 garbage requests interleaved
//! with good ones. The good ones must all answer with the library's score,
//! every connection must be closed in bounded time, and the gauges must come
//! back to zero (no task or connection leaks). Runs on the built-in model
//! with images made here, so it needs nothing outside the repository.
//!
//! The figures (times, counts, this process's resident memory) are printed;
//! `cargo test --release -p cnnspot-serve --test abuse -- --nocapture`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use cnnspot_core::image::preprocess_bytes;
use cnnspot_core::{Detector, Engine, PreprocessOptions};
use cnnspot_serve::{spawn, ServeConfig};
use common::{get, multipart, rss_kib, Client};

/// The server's request timeout here: connections that stall are closed
/// 5 s after it, and slow ones (bytes in, no answer) twice that after their
/// last answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn png(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) % 251;
        image::Rgb([v as u8, (v * 3 % 256) as u8, (255 - v) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encodes");
    out.into_inner()
}

/// A gauge's value from the `/metrics` text.
fn gauge(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads until the server closes the connection (or `limit` passes, or a
/// whole response head has come when `head_is_enough`). Returns what was
/// read, how long it took and whether it was closed.
fn read_until(
    stream: &mut TcpStream,
    limit: Duration,
    head_is_enough: bool,
) -> (Vec<u8>, Duration, bool) {
    let start = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (got, start.elapsed(), true),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if head_is_enough && got.windows(4).any(|w| w == b"\r\n\r\n") {
                    return (got, start.elapsed(), false);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, start.elapsed(), true),
        }
    }
    (got, start.elapsed(), false)
}

fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration, bool) {
    read_until(stream, limit, false)
}

fn status_of(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One garbage request of kind `k` on a fresh connection: the server must
/// answer it with a 4xx or close the connection; never a 5xx, never a hang.
fn garbage(addr: SocketAddr, k: usize, good_png: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let junk: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(k as u32) >> 13) as u8)
        .collect();
    let request: Vec<u8> = match k % 8 {
        // Bytes that are not HTTP.
        0 => junk.clone(),
        // A method that does not exist.
        1 => b"BREW /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // Not an image.
        2 => [
            format!(
                "POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                junk.len()
            )
            .into_bytes(),
            junk.clone(),
        ]
        .concat(),
        // A PNG cut in half.
        3 => {
            let half = &good_png[..good_png.len() / 2];
            [
                format!(
                    "POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    half.len()
                )
                .into_bytes(),
                half.to_vec(),
            ]
            .concat()
        }
        // A route that does not exist.
        4 => b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        // A length that is not a number.
        5 => b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: lots\r\n\r\n".to_vec(),
        // A length over the body limit, with no body.
        6 => b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 999999999999\r\n\r\n"
            .to_vec(),
        // Multipart whose boundary never comes.
        _ => {
            let body = b"--nope\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxx";
            [
                format!(
                    "POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=other\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes(),
                body.to_vec(),
            ]
            .concat()
        }
    };
    // The server may close before reading everything: a failed write is fine.
    let _ = s.write_all(&request);
    let (answer, took, closed) = read_until(&mut s, Duration::from_secs(30), true);
    if answer.is_empty() && !closed {
        return Err(format!("kind {k}: no answer and still open after {took:?}"));
    }
    match status_of(&answer) {
        None if answer.is_empty() => Ok(()),
        Some(status) if (400..500).contains(&status) => Ok(()),
        other => Err(format!(
            "kind {k}: status {other:?}: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        )),
    }
}

#[test]
fn abuse_leaves_good_requests_answered_and_nothing_open() {
    let detector = Detector::builtin(Engine::Fast).expect("built-in model");
    let reference = Detector::builtin(Engine::Fast).expect("built-in model");
    let config = ServeConfig {
        request_timeout: REQUEST_TIMEOUT,
        idle_timeout: Duration::ZERO,
        max_body_bytes: 1 << 20,
        ..ServeConfig::default()
    };
    let server = spawn("127.0.0.1:0".parse().unwrap(), config, detector).expect("server starts");
    let addr = server.addr();

    // Good images of a few sizes, with the score `detect` would print.
    let goods: Vec<(Vec<u8>, f32)> = (0..4)
        .map(|i| {
            let bytes = png(64 + 16 * i, 80, i);
            let pre = preprocess_bytes(&bytes, &PreprocessOptions::default()).expect("decodes");
            let logit = reference.score(&pre).expect("scores").logit;
            (bytes, logit)
        })
        .collect();
    let good_request = |client: &mut Client, i: usize| -> Result<(), String> {
        let (bytes, logit) = &goods[i % goods.len()];
        let resp = client
            .request("POST", "/v1/detect", &[], bytes)
            .map_err(|e| format!("good request {i}: {e}"))?;
        if resp.status != 200 {
            return Err(format!("good request {i}: {} {}", resp.status, resp.text()));
        }
        let got = resp.json()["results"][0]["logit"]
            .as_f64()
            .unwrap_or(f64::NAN) as f32;
        if (got - logit).abs() > 1e-4 {
            return Err(format!("good request {i}: logit {got}, library {logit}"));
        }
        Ok(())
    };
    let mut warm = Client::connect(addr, Duration::from_secs(60)).expect("connect");
    for i in 0..8 {
        good_request(&mut warm, i).expect("warm-up");
    }
    drop(warm);
    let rss_before = rss_kib();
    let peak = Mutex::new(rss_before.unwrap_or(0));
    let failures = Mutex::new(Vec::<String>::new());
    let fail = |m: String| failures.lock().unwrap_or_else(|p| p.into_inner()).push(m);
    let started = Instant::now();
    let good_answered = AtomicUsize::new(0);
    let garbage_done = AtomicUsize::new(0);
    let slow_closed_after = Mutex::new(Vec::<Duration>::new());
    let idle_closed_after = Mutex::new(Vec::<Duration>::new());
    let big_header_status = Mutex::new(Vec::<(usize, Option<u16>)>::new());

    thread::scope(|scope| {
        // Slow clients: a valid request line and headers, one byte a second.
        for c in 0..3 {
            let (fail, slow_closed_after) = (&fail, &slow_closed_after);
            scope.spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return fail(format!("slow client {c}: cannot connect"));
                };
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(Duration::from_millis(1)));
                let head = b"POST /v1/detect HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
                let t = Instant::now();
                for &b in head.iter() {
                    if s.write_all(&[b]).is_err() {
                        break;
                    }
                    let (_, _, closed) = wait_for_close(&mut s, Duration::from_secs(1));
                    if closed {
                        break;
                    }
                }
                let (_, _, closed) = wait_for_close(&mut s, Duration::from_secs(2));
                let after = t.elapsed();
                if closed {
                    slow_closed_after.lock().unwrap().push(after);
                } else {
                    fail(format!("slow client {c}: still open after {after:?}"));
                }
            });
        }
        // Idle connections: connect and say nothing.
        {
            let (fail, idle_closed_after) = (&fail, &idle_closed_after);
            scope.spawn(move || {
                let t = Instant::now();
                let mut idle: Vec<TcpStream> = (0..200)
                    .filter_map(|_| TcpStream::connect(addr).ok())
                    .collect();
                if idle.len() < 200 {
                    fail(format!(
                        "only {} of 200 idle connections opened",
                        idle.len()
                    ));
                }
                for s in &mut idle {
                    let (_, _, closed) =
                        wait_for_close(s, Duration::from_secs(30).saturating_sub(t.elapsed()));
                    if !closed {
                        fail("an idle connection was not closed within 30 s".into());
                        break;
                    }
                }
                idle_closed_after.lock().unwrap().push(t.elapsed());
            });
        }
        // Oversized headers: 64 KiB and 1 MiB of one header.
        for (c, size) in [(0, 64 << 10), (1, 1 << 20)] {
            let (fail, big_header_status) = (&fail, &big_header_status);
            scope.spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return fail(format!("big header {c}: cannot connect"));
                };
                let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                let mut req =
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ".to_vec();
                req.resize(req.len() + size, b'a');
                req.extend_from_slice(b"\r\n\r\n");
                let _ = s.write_all(&req);
                let (answer, took, closed) = wait_for_close(&mut s, Duration::from_secs(30));
                // 64 KiB is within hyper's header buffer (about 400 KiB) and
                // may be served; 1 MiB must be refused or cut.
                let status = status_of(&answer);
                big_header_status.lock().unwrap().push((size, status));
                match status {
                    _ if !closed => fail(format!("big header {c}: open after {took:?}")),
                    None => {}
                    Some(st) if (400..500).contains(&st) => {}
                    Some(200) if size < 400 << 10 => {}
                    Some(st) => fail(format!("big header {c} ({size} B): status {st}")),
                }
            });
        }
        // Clients that announce 900 KB of image and leave after 64 KB.
        {
            let (fail, goods) = (&fail, &goods);
            scope.spawn(move || {
                for c in 0..50 {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        return fail(format!("quitter {c}: cannot connect"));
                    };
                    let head = "POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 900000\r\n\r\n";
                    let mut body = goods[0].0.clone();
                    body.resize(64 << 10, 7);
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body);
                    drop(s);
                }
            });
        }
        // 1000 garbage requests and 100 good ones, interleaved on 4 threads.
        for t in 0..4 {
            let (fail, goods, good_request) = (&fail, &goods, &good_request);
            let (good_answered, garbage_done, peak) = (&good_answered, &garbage_done, &peak);
            scope.spawn(move || {
                let mut client = None;
                for i in 0..275 {
                    let n = t * 275 + i;
                    if n % 11 == 10 {
                        let c = match client.take() {
                            Some(c) => c,
                            None => match Client::connect(addr, Duration::from_secs(60)) {
                                Ok(c) => c,
                                Err(e) => return fail(format!("good client: {e}")),
                            },
                        };
                        let mut c = c;
                        match good_request(&mut c, n) {
                            Ok(()) => {
                                good_answered.fetch_add(1, Ordering::Relaxed);
                                client = Some(c);
                            }
                            Err(e) => fail(e),
                        }
                        if let Some(rss) = rss_kib() {
                            let mut p = peak.lock().unwrap();
                            *p = (*p).max(rss);
                        }
                    } else {
                        if let Err(e) = garbage(addr, n, &goods[0].0) {
                            fail(e);
                        }
                        garbage_done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let abuse_took = started.elapsed();

    // Everything is closed and nothing is in flight: only the connection
    // asking for the metrics is open.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (connections, in_flight, queued) = loop {
        let text = get(addr, "/metrics").text();
        let read = |n| gauge(&text, n);
        let now = (
            read("cnnspot_http_connections_open"),
            read("cnnspot_http_requests_in_flight"),
            read("cnnspot_queue_depth"),
        );
        if now == (Some(1), Some(0), Some(0)) || Instant::now() > deadline {
            break now;
        }
        thread::sleep(Duration::from_millis(200));
    };
    // A multipart request still scores right after all that.
    let (ct, body) = multipart(&[("a.png", &goods[1].0)]);
    let resp = common::request(addr, "POST", "/v1/detect", &[("Content-Type", &ct)], &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let rss_after = rss_kib();

    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let slow = slow_closed_after.into_inner().unwrap();
    let idle = idle_closed_after.into_inner().unwrap();
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    eprintln!(
        "abuse: {abuse_took:.1?} in all; good answered {} of 100; garbage {} of 1000; \
         slow clients closed after {slow:.1?}; 200 idle closed within {idle:.1?}; \
         oversized headers (bytes, status) {:?}; \
         RSS MiB before {} peak {} after {}; gauges after: connections {connections:?} \
         in flight {in_flight:?} queued {queued:?}",
        good_answered.load(Ordering::Relaxed),
        garbage_done.load(Ordering::Relaxed),
        big_header_status.into_inner().unwrap(),
        mib(rss_before),
        mib(Some(peak.into_inner().unwrap())),
        mib(rss_after),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(good_answered.load(Ordering::Relaxed), 100);
    assert_eq!(garbage_done.load(Ordering::Relaxed), 1000);
    assert_eq!(slow.len(), 3);
    // A slow client is cut twice the stall limit (request timeout + 5 s)
    // after its connection opened, give or take a second of its own pace.
    let stall = REQUEST_TIMEOUT + Duration::from_secs(5);
    for after in &slow {
        assert!(
            *after < stall * 2 + Duration::from_secs(3),
            "slow client open {after:?}"
        );
    }
    assert_eq!(
        (connections, in_flight, queued),
        (Some(1), Some(0), Some(0))
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(
            after < before + 200 * 1024,
            "resident memory grew from {} to {} MiB",
            before / 1024,
            after / 1024
        );
    }
    server.shutdown().expect("clean shutdown");
}
