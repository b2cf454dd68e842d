//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests.
//!
//! One thread accepts connections and answers them one at a time, always with
//! `Connection: close`. It serves at most `MAX_CONNECTIONS` connections, gives
//! up on a silent client after a few seconds, and stops when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_CONNECTIONS: usize = 64;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The path asked for.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// A test HTTP server on 127.0.0.1 (stops when dropped).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

/// An HTML page like the one Dropbox serves instead of a file.
pub const HTML: &str = "<!DOCTYPE html>\n<html><head><title>Dropbox</title></head>\
                        <body>Sign in to download this file.</body></html>\n";

impl Server {
    /// Serves `body` (the checkpoint) on the routes described in `respond`.
    pub fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming().take(MAX_CONNECTIONS) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        serve(stream, &body, addr, &log);
                    }
                }
            })
        };
        Server {
            addr,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The full URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, body: &[u8], addr: SocketAddr, log: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if !head[0].is_ascii_uppercase() {
            // Not HTTP (a TLS handshake, say): answer in plain text and close.
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let range = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("range")
            .then(|| value.trim().to_string())
    });
    log.lock().unwrap().push(Seen {
        path: path.clone(),
        range: range.clone(),
    });
    respond(&mut stream, &path, range.as_deref(), body, addr);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

fn send(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(body);
}

fn octets(len: usize) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Content-Length", len.to_string()),
    ]
}

fn redirect(stream: &mut TcpStream, location: String) {
    send(
        stream,
        "302 Found",
        &[("Location", location), ("Content-Length", "0".to_string())],
        b"",
    );
}

/// Routes:
/// * `/ok`: the body, 200, ignoring any Range header.
/// * `/range`: the body, honouring `Range: bytes=N-` (206, or 416 when N is
///   past the end).
/// * `/truncated`: announces the full length, sends half, closes.
/// * `/stall`: announces the full length, sends half, then waits 2 s.
/// * `/nolen`: the body with no Content-Length (ends at close).
/// * `/html`: an HTML page as text/html; `/html-binary`: the same page as
///   application/octet-stream.
/// * `/redirect` -> `/redirect2` -> absolute `/ok`; `/r/N` -> `/r/N-1` ... `/r/0` -> `/ok`.
/// * `/loop` -> `/loop2` -> `/loop`.
/// * anything else: 404.
fn respond(stream: &mut TcpStream, path: &str, range: Option<&str>, body: &[u8], addr: SocketAddr) {
    match path {
        "/ok" => send(stream, "200 OK", &octets(body.len()), body),
        "/range" => {
            let from = range
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            match from {
                None => send(stream, "200 OK", &octets(body.len()), body),
                Some(n) if n >= body.len() => send(
                    stream,
                    "416 Range Not Satisfiable",
                    &[
                        ("Content-Range", format!("bytes */{}", body.len())),
                        ("Content-Length", "0".to_string()),
                    ],
                    b"",
                ),
                Some(n) => {
                    let mut headers = octets(body.len() - n);
                    headers.push((
                        "Content-Range",
                        format!("bytes {n}-{}/{}", body.len() - 1, body.len()),
                    ));
                    send(stream, "206 Partial Content", &headers, &body[n..]);
                }
            }
        }
        "/truncated" => send(
            stream,
            "200 OK",
            &octets(body.len()),
            &body[..body.len() / 2],
        ),
        "/stall" => {
            send(
                stream,
                "200 OK",
                &octets(body.len()),
                &body[..body.len() / 2],
            );
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(2));
        }
        "/nolen" => send(
            stream,
            "200 OK",
            &[("Content-Type", "application/octet-stream".to_string())],
            body,
        ),
        "/html" | "/html-binary" => {
            let kind = if path == "/html" {
                "text/html; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            send(
                stream,
                "200 OK",
                &[
                    ("Content-Type", kind.to_string()),
                    ("Content-Length", HTML.len().to_string()),
                ],
                HTML.as_bytes(),
            )
        }
        "/redirect" => redirect(stream, "/redirect2".to_string()),
        "/redirect2" => redirect(stream, format!("http://{addr}/ok")),
        "/loop" => redirect(stream, "/loop2".to_string()),
        "/loop2" => redirect(stream, "/loop".to_string()),
        _ => match path.strip_prefix("/r/").and_then(|n| n.parse::<u32>().ok()) {
            Some(0) => redirect(stream, "/ok".to_string()),
            Some(n) => redirect(stream, format!("/r/{}", n - 1)),
            None => send(
                stream,
                "404 Not Found",
                &[("Content-Length", "9".to_string())],
                b"not found",
            ),
        },
    }
}
