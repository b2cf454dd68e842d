//! Downloads against a local HTTP server (see `common`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cnnspot_fetch::{
    cached_checkpoint, fetch_known, fetch_to, recorded_sha256, sha256_sidecar, FetchError,
    FetchOptions, Fetched,
};
use cnnspot_testdata::http_server::{self as common, Seen, Server};
use sha2::{Digest, Sha256};

/// The downloaded file: 3905 bytes that open like a zip archive (a
/// PyTorch checkpoint's first bytes) and then vary, so that a resumed or
/// restarted download that lost or repeated bytes shows.
fn payload() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend((4..3905).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    }));
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn opts() -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_secs(5),
        ..FetchOptions::default()
    }
}

/// A validator in the spirit of the real one: a zip archive of the right size.
fn zip_of_len(len: u64) -> impl Fn(&Path) -> Result<(), String> {
    move |path: &Path| {
        let bytes = fs::read(path).map_err(|e| e.to_string())?;
        if !bytes.starts_with(b"PK\x03\x04") {
            return Err("not a zip archive".to_string());
        }
        if bytes.len() as u64 != len {
            return Err(format!("{} bytes, expected {len}", bytes.len()));
        }
        Ok(())
    }
}

fn accept_all(_: &Path) -> Result<(), String> {
    Ok(())
}

fn part_of(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_os_string();
    s.push(".part");
    PathBuf::from(s)
}

/// One progress call: (bytes so far, total).
type Progress = (u64, Option<u64>);

/// Runs `fetch_to`, recording every progress call.
fn fetch(
    url: &str,
    dest: &Path,
    opts: &FetchOptions,
    validate: &dyn Fn(&Path) -> Result<(), String>,
) -> (Result<Fetched, FetchError>, Vec<Progress>) {
    let mut calls = Vec::new();
    let result = fetch_to(url, dest, opts, &mut |n, t| calls.push((n, t)), validate);
    (result, calls)
}

fn assert_nothing_kept(dest: &Path) {
    assert!(!dest.exists(), "{} should not exist", dest.display());
    assert!(!part_of(dest).exists(), ".part should not exist");
    assert!(!sha256_sidecar(dest).exists(), ".sha256 should not exist");
}

fn assert_kept(fetched: &Fetched, dest: &Path, expected: &[u8]) {
    assert_eq!(fetched.path, dest);
    assert_eq!(fetched.bytes, expected.len() as u64);
    assert_eq!(fs::read(dest).unwrap(), expected, "bytes differ");
    let sha = sha256_hex(expected);
    assert_eq!(fetched.sha256, sha);
    let name = dest.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        fs::read_to_string(sha256_sidecar(dest)).unwrap(),
        format!("{sha}  {name}\n")
    );
    assert_eq!(recorded_sha256(dest).as_deref(), Some(sha.as_str()));
    assert!(!part_of(dest).exists(), ".part left behind");
}

/// Case 1: The fixture is downloaded, validated, renamed into place, hashed.
#[test]
fn downloads_validates_and_keeps_the_file() {
    let body = payload();
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join("weights/blur_jpg_prob0.5.pth");
    assert_eq!(cached_checkpoint(cache.path(), "blur_jpg_prob0.5"), None);

    let (result, calls) = fetch(
        &server.url("/ok"),
        &dest,
        &opts(),
        &zip_of_len(body.len() as u64),
    );
    let fetched = result.unwrap();
    assert_kept(&fetched, &dest, &body);
    assert_eq!(fetched.resumed_from, 0);
    let total = Some(body.len() as u64);
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(body.len() as u64, total)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(
        cached_checkpoint(cache.path(), "blur_jpg_prob0.5"),
        Some(dest.clone())
    );
    assert_eq!(server.seen()[0].range, None);

    // Fetching again replaces the file and its hash cleanly.
    let (again, _) = fetch(&server.url("/ok"), &dest, &opts(), &accept_all);
    assert_kept(&again.unwrap(), &dest, &body);
}

/// A body without Content-Length (ends at close) is accepted; the total is
/// unknown to the progress callback.
#[test]
fn downloads_a_body_of_unknown_length() {
    let body = payload();
    let server = Server::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.pth");
    let (result, calls) = fetch(
        &server.url("/nolen"),
        &dest,
        &opts(),
        &zip_of_len(body.len() as u64),
    );
    assert_kept(&result.unwrap(), &dest, &body);
    assert!(calls.iter().all(|&(_, total)| total.is_none()));
}

/// Case 2: An HTML page is refused, whether labelled text/html or not.
#[test]
fn refuses_an_html_page() {
    let server = Server::start(b"PK\x03\x04 not used".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("weights/blur_jpg_prob0.5.pth");
    for path in ["/html", "/html-binary"] {
        let (result, _) = fetch(&server.url(path), &dest, &opts(), &accept_all);
        let err = result.unwrap_err();
        assert!(
            matches!(err, FetchError::Html { bytes, .. } if bytes == common::HTML.len() as u64)
        );
        let msg = err.to_string();
        assert!(msg.contains("HTML page"), "{msg}");
        assert!(
            msg.contains(&format!("({} bytes)", common::HTML.len())),
            "{msg}"
        );
        assert_nothing_kept(&dest);
    }
}

/// Case 3: Redirect chains are followed (relative and absolute Location); loops
/// and over-long chains are errors.
#[test]
fn follows_redirects_and_stops_loops() {
    let body = payload();
    let server = Server::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.pth");

    let (result, _) = fetch(&server.url("/redirect"), &dest, &opts(), &accept_all);
    assert_kept(&result.unwrap(), &dest, &body);
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/redirect", "/redirect2", "/ok"]);

    let dest = dir.path().join("b.pth");
    let (result, _) = fetch(&server.url("/loop"), &dest, &opts(), &accept_all);
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::RedirectLoop { .. }), "{err:?}");
    assert!(err.to_string().contains("loop"), "{err}");
    assert_nothing_kept(&dest);

    // /r/1 -> /r/0 -> /ok is 2 redirects; /r/2 would be 3.
    let limited = FetchOptions {
        max_redirects: 2,
        ..opts()
    };
    let (result, _) = fetch(&server.url("/r/1"), &dest, &limited, &accept_all);
    assert_kept(&result.unwrap(), &dest, &body);
    fs::remove_file(&dest).unwrap();
    fs::remove_file(sha256_sidecar(&dest)).unwrap();
    let (result, _) = fetch(&server.url("/r/2"), &dest, &limited, &accept_all);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { max: 2, .. }),
        "{err:?}"
    );
    assert_nothing_kept(&dest);
}

/// Case 4: A truncated body keeps the .part; the next fetch resumes it with a
/// Range request and completes the file.
#[test]
fn truncated_download_resumes_with_range() {
    let body = payload();
    let half = (body.len() / 2) as u64;
    let server = Server::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("weights/blur_jpg_prob0.5.pth");
    let validate = zip_of_len(body.len() as u64);

    let (result, _) = fetch(&server.url("/truncated"), &dest, &opts(), &validate);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::Truncated { received, expected, .. }
            if received == half && expected == body.len() as u64),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(!dest.exists());
    assert_eq!(fs::read(part_of(&dest)).unwrap(), &body[..half as usize]);

    let (result, calls) = fetch(&server.url("/range"), &dest, &opts(), &validate);
    let fetched = result.unwrap();
    assert_eq!(fetched.resumed_from, half);
    assert_kept(&fetched, &dest, &body);
    assert_eq!(calls.first(), Some(&(half, Some(body.len() as u64))));
    assert_eq!(
        server.seen().last(),
        Some(&Seen {
            path: "/range".to_string(),
            range: Some(format!("bytes={half}-")),
        })
    );
}

/// A server that ignores the Range header (200): the file restarts from zero.
#[test]
fn resume_restarts_when_the_server_ignores_range() {
    let body = payload();
    let server = Server::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("c.pth");
    fs::write(part_of(&dest), b"garbage from an earlier attempt").unwrap();

    let (result, _) = fetch(&server.url("/ok"), &dest, &opts(), &accept_all);
    let fetched = result.unwrap();
    assert_eq!(fetched.resumed_from, 0);
    assert_kept(&fetched, &dest, &body);
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=31-"));
}

/// 416 (the .part is already as long as the file, or longer): start over.
#[test]
fn resume_starts_over_on_416() {
    let body = payload();
    let server = Server::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("d.pth");
    fs::write(part_of(&dest), vec![0u8; body.len() + 10]).unwrap();

    let (result, _) = fetch(&server.url("/range"), &dest, &opts(), &accept_all);
    let fetched = result.unwrap();
    assert_eq!(fetched.resumed_from, 0);
    assert_kept(&fetched, &dest, &body);
    let ranges: Vec<Option<String>> = server.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, [Some(format!("bytes={}-", body.len() + 10)), None]);
}

/// A stalled connection times out; the .part is kept for a later resume.
#[test]
fn stalled_download_keeps_the_part() {
    let body = payload();
    let server = Server::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("e.pth");
    let quick = FetchOptions {
        timeout: Duration::from_millis(500),
        ..opts()
    };
    let (result, _) = fetch(&server.url("/stall"), &dest, &quick, &accept_all);
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Interrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(fs::read(part_of(&dest)).unwrap(), &body[..body.len() / 2]);
    assert!(!dest.exists());
}

/// Case 5: A validator that says no: nothing is kept, and its reason is reported.
#[test]
fn rejected_file_is_not_kept() {
    let body = payload();
    let server = Server::start(body);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.pth");
    let reject = |_: &Path| -> Result<(), String> { Err("missing key conv1.weight".to_string()) };
    let (result, _) = fetch(&server.url("/ok"), &dest, &opts(), &reject);
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Rejected { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("missing key conv1.weight"), "{msg}");
    assert!(msg.contains("not kept"), "{msg}");
    assert_nothing_kept(&dest);
}

/// The size cap applies to announced and to unannounced lengths.
#[test]
fn size_cap_is_enforced() {
    let body = payload();
    let server = Server::start(body);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("g.pth");
    let small = FetchOptions {
        max_bytes: 100,
        ..opts()
    };
    for path in ["/ok", "/nolen"] {
        let (result, _) = fetch(&server.url(path), &dest, &small, &accept_all);
        let err = result.unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit: 100, .. }),
            "{path}: {err:?}"
        );
        assert_nothing_kept(&dest);
    }
}

/// HTTP error statuses are reported with their code.
#[test]
fn http_error_status() {
    let server = Server::start(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("h.pth");
    let (result, _) = fetch(&server.url("/missing"), &dest, &opts(), &accept_all);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("404"), "{err}");
    assert_nothing_kept(&dest);
}

/// Case 6: Nobody listening: one clear sentence, no panic.
#[test]
fn connection_refused_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/blur_jpg_prob0.5.pth");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("i.pth");
    let (result, calls) = fetch(&url, &dest, &opts(), &accept_all);
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "could not reach 127.0.0.1:{port}: connection refused"
        )),
        "{msg}"
    );
    assert!(msg.contains(&format!("by hand from {url}")), "{msg}");
    assert!(msg.contains("--weights"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(calls.is_empty());
    assert_nothing_kept(&dest);
}

#[test]
fn bad_addresses_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("j.pth");
    for url in ["not a url", "ftp://example.org/x.pth", "file:///etc/passwd"] {
        let (result, _) = fetch(url, &dest, &opts(), &accept_all);
        let err = result.unwrap_err();
        assert!(
            matches!(err, FetchError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
    let err = fetch_known(dir.path(), "resnet", &opts(), &mut |_, _| {}, &accept_all).unwrap_err();
    assert!(
        matches!(err, FetchError::UnknownCheckpoint { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("blur_jpg_prob0.5"), "{err}");
    assert_nothing_kept(&dest);
}

/// https is compiled in (rustls): talking TLS to a plain-HTTP server fails in
/// the handshake, not with "unsupported scheme", and does not panic.
#[test]
fn https_is_supported() {
    let server = Server::start(Vec::new());
    let url = server.url("/ok").replace("http://", "https://");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("k.pth");
    let (result, _) = fetch(&url, &dest, &opts(), &accept_all);
    let err = result.unwrap_err();
    eprintln!("{err}");
    assert!(
        !matches!(err, FetchError::InvalidUrl { .. }),
        "https is not supported: {err:?}"
    );
    assert_nothing_kept(&dest);
}
