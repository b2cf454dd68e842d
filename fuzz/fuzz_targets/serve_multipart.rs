//! `serve`'s request-body handling, in-process (no sockets): the
//! `multipart/form-data` parsing of `POST /v1/detect` as
//! `cnnspot-serve`'s `read_files` does it (axum's `Multipart` extractor,
//! form fields without a file name skipped, at most `max_files` files), then
//! each file through the decoder the server runs on it
//! (`preprocess_bytes` with the server's default pixel limit).
//!
//! `read_files` and the router are private to `cnnspot-serve` and the public
//! entry points (`spawn`, `run_until_signal`) need a listening socket and a
//! model, so this target replays the same calls on the same extractor with a
//! single-threaded tokio runtime.
//!
//! Input: the first line is the `Content-Type` header value (e.g.
//! `multipart/form-data; boundary=X`), the rest is the body.
#![no_main]

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{header, Method, Request};
use cnnspot_image::PreprocessOptions;
use libfuzzer_sys::fuzz_target;

/// `cnnspot_serve::ServeConfig::default()`: `max_files` and `max_pixels`.
const MAX_FILES: usize = 64;
const MAX_PIXELS: u64 = 4096 * 4096;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
    })
}

async fn read_files(req: Request<Body>) -> Result<Vec<(String, axum::body::Bytes)>, String> {
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|rej| rej.body_text())?;
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(e.body_text()),
        };
        let _ = field.name();
        let _ = field.content_type();
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        if files.len() >= MAX_FILES {
            return Err("too many files".into());
        }
        let bytes = field.bytes().await.map_err(|e| e.body_text())?;
        files.push((name, bytes));
    }
    Ok(files)
}

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(req) = Request::builder()
        .method(Method::POST)
        .uri("/v1/detect")
        .header(header::CONTENT_TYPE, ct)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.to_vec()))
    else {
        return; // not a valid header value: hyper would have refused it
    };
    let Ok(files) = runtime().block_on(read_files(req)) else {
        return;
    };
    let opts = PreprocessOptions {
        crop: None,
        max_pixels: MAX_PIXELS,
    };
    for (_, bytes) in files {
        let _ = cnnspot_image::preprocess_bytes(&bytes, &opts);
    }
});
