//! `serve`'s request-body handling, in-process (no sockets): the body of a
//! `POST /v1/detect` read by `cnnspot_serve::read_upload` (the function the
//! server calls on every upload: raw body or `multipart/form-data`, files
//! counted and sized within the default `ServeConfig`'s limits), then each
//! file through the decoder the server runs on it (`preprocess_bytes` with
//! the server's `preprocess_options`).
//!
//! Input: the first line is the `Content-Type` header value (e.g.
//! `multipart/form-data; boundary=X`), the rest is the body.
#![no_main]

use axum::body::Body;
use axum::http::{header, Method, Request};
use cnnspot_serve::{read_upload, ServeConfig, Upload};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
    })
}

fn config() -> &'static ServeConfig {
    static CONFIG: std::sync::OnceLock<ServeConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(ServeConfig::default)
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
    let config = config();
    let Ok(Upload { files, .. }) = runtime().block_on(read_upload(config, req)) else {
        return;
    };
    assert!(!files.is_empty() && files.len() <= config.max_files);
    let opts = config.preprocess_options();
    for (_, bytes) in files {
        let _ = cnnspot_image::preprocess_bytes(&bytes, &opts);
    }
});
