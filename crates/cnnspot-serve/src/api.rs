//! The routes, the per-request limits and the JSON they answer with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cnnspot_core::image::preprocess_bytes;
use cnnspot_core::{sigmoid, BatchLimits, Detector};
use serde::Serialize;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::config::ServeConfig;
use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::worker::{self, BatchPolicy, Job, WorkerState};

const PAGE: &str = include_str!("page.html");

/// What identifies the loaded model in answers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelIdentity {
    /// File name of the weights (not the full path: that is the server's
    /// business).
    name: String,
    format: String,
    arch: String,
    parameters: u64,
    /// SHA-256 of the weight file, when it could be read.
    sha256: Option<String>,
}

/// The server's shared state.
pub(crate) struct App {
    config: ServeConfig,
    model: ModelIdentity,
    /// The detector's temperature: probabilities are `sigmoid(logit / t)`,
    /// as `Detector::score` makes them (calibrated for the built-in model).
    temperature: f32,
    /// The configured threshold, or the model's.
    threshold: f32,
    metrics: Arc<Metrics>,
    worker: Arc<WorkerState>,
    /// Taken (closed) once the server stops accepting requests, which ends
    /// the model thread after its queue.
    jobs: Mutex<Option<mpsc::SyncSender<Job>>>,
    queue_slots: Arc<Semaphore>,
    pixel_budget: Arc<Semaphore>,
    decode_slots: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    shutting_down: AtomicBool,
}

impl App {
    pub async fn start(
        config: ServeConfig,
        detector: Detector,
    ) -> Result<(Arc<App>, std::thread::JoinHandle<()>), ServeError> {
        let config = config.sanitized();
        let info = detector.info().clone();
        let temperature = detector.temperature();
        let threshold = config.threshold.unwrap_or(detector.threshold());
        let sha256 = Some(info.sha256.clone());
        let model = ModelIdentity {
            name: info
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format: info.format.to_string(),
            arch: info.arch.to_string(),
            parameters: info.parameters,
            sha256,
        };
        let metrics = Arc::new(Metrics::default());
        let state = Arc::new(WorkerState::default());
        let (tx, rx) = mpsc::sync_channel(config.queue_len);
        let policy = BatchPolicy {
            limits: BatchLimits {
                max_images: config.max_batch,
                max_pixels: config.max_batch_pixels,
            },
            wait: config.batch_wait,
        };
        let handle = worker::spawn(detector, rx, policy, state.clone(), metrics.clone()).map_err(
            |source| ServeError::Io {
                context: "cannot start the model thread".into(),
                source,
            },
        )?;
        let app = App {
            queue_slots: Arc::new(Semaphore::new(config.queue_len)),
            pixel_budget: Arc::new(Semaphore::new(config.max_queued_pixels as usize)),
            decode_slots: Arc::new(Semaphore::new(config.decode_threads)),
            requests: Arc::new(Semaphore::new(config.max_concurrency)),
            config,
            model,
            temperature,
            threshold,
            metrics,
            worker: state,
            jobs: Mutex::new(Some(tx)),
            shutting_down: AtomicBool::new(false),
        };
        Ok((Arc::new(app), handle))
    }

    /// The server's metrics (the listener counts connections into them).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn close_queue(&self) {
        self.begin_shutdown();
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn sender(&self) -> Option<mpsc::SyncSender<Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn ready(&self) -> bool {
        !self.shutting_down.load(Ordering::SeqCst) && self.worker.alive.load(Ordering::SeqCst)
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .route("/v1/detect", post(detect))
        .route("/v1/model", get(model))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// The route label of a path for metrics: a fixed set, so that clients
/// cannot create series at will.
fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/v1/detect" => "/v1/detect",
        "/v1/model" => "/v1/model",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(req.uri().path());
    let resp = next.run(req).await;
    app.metrics
        .record_request(route, resp.status().as_u16(), started.elapsed());
    resp
}

/// Compares without an early exit, so that timing does not reveal how much
/// of a guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.config.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(g) if same_secret(g.as_bytes(), token.as_bytes()) => {}
            Some(_) => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_token",
                    "the bearer token is not the server's",
                )
                .into_response()
            }
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "no_token",
                    "this server needs a token: send `Authorization: Bearer TOKEN`",
                )
                .into_response()
            }
        }
    }
    next.run(req).await
}

async fn page() -> Response {
    let mut resp = PAGE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Everything the page needs is inline; nothing else may load.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
        ),
    );
    resp
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot write the answer: {e}"),
        )
        .into_response(),
    }
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready() {
        json(StatusCode::OK, &serde_json::json!({ "status": "ready" }))
    } else {
        ApiError::unavailable("not_ready", "the server is shutting down").into_response()
    }
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
    .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn model(State(app): State<Arc<App>>) -> Response {
    let c = &app.config;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "model": app.model,
            "settings": {
                "threshold": app.threshold,
                "crop": c.crop,
                "max_pixels": c.max_pixels,
            },
            "limits": {
                "max_body_bytes": c.max_body_bytes,
                "max_files": c.max_files,
                "max_concurrency": c.max_concurrency,
                "queue_len": c.queue_len,
                "max_batch": c.max_batch,
                "batch_wait_ms": c.batch_wait.as_secs_f64() * 1e3,
                "request_timeout_s": c.request_timeout.as_secs_f64(),
            },
            "auth": c.token.is_some(),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// Milliseconds spent on one image.
#[derive(Debug, Serialize)]
struct Timing {
    decode: f64,
    queue: f64,
    inference: f64,
    total: f64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[derive(Debug, Serialize)]
struct Scored {
    name: Option<String>,
    probability: f32,
    logit: f32,
    synthetic: bool,
    decision: &'static str,
    threshold: f32,
    /// `null`: the whole image was scored.
    crop: Option<u32>,
    width: u32,
    height: u32,
    batch_size: usize,
    time_ms: Timing,
}

#[derive(Debug, Serialize)]
struct Failed {
    name: Option<String>,
    error: ApiError,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum FileResult {
    Scored(Scored),
    Failed(Failed),
}

#[derive(Serialize)]
struct DetectResponse<'a> {
    model: &'a ModelIdentity,
    results: Vec<FileResult>,
    time_ms: f64,
    /// Present when the request as a whole failed (every image did).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
}

/// Counts requests in flight for the gauge, also when a request is dropped
/// half way (timeout, client gone).
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn new(m: &Arc<Metrics>) -> Self {
        m.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(m.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn detect(State(app): State<Arc<App>>, req: Request) -> Response {
    let Ok(_permit) = app.requests.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "the server is already serving {} requests; retry shortly",
                app.config.max_concurrency
            ),
        )
        .into_response();
    };
    let _in_flight = InFlight::new(&app.metrics);
    if !app.ready() {
        return ApiError::unavailable("shutting_down", "the server is shutting down")
            .into_response();
    }
    let timeout = app.config.request_timeout;
    match tokio::time::timeout(timeout, detect_request(app.clone(), req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::unavailable(
            "timeout",
            format!(
                "the request took longer than {} s; the server is busy, retry later",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// A `POST /v1/detect` body as the server reads it, before any decoding.
#[derive(Debug)]
pub struct Upload {
    /// Whether the body was `multipart/form-data` (else it is one raw image).
    pub multipart: bool,
    /// Each file: its form file name (multipart only) and its bytes.
    pub files: Vec<(Option<String>, Bytes)>,
}

/// Reads the body of a `POST /v1/detect` request within `config`'s limits:
/// a raw image, or each file (a part with a file name) of a
/// `multipart/form-data` body, at most [`ServeConfig::max_files`] of them and
/// at most [`ServeConfig::max_body_bytes`] in all. Errors are the answers the
/// server gives (413 for limits, 400 for a malformed body).
///
/// The server calls this on every upload; it is public so that the request
/// handling can be driven without a socket (tests, fuzzing).
pub async fn read_upload(config: &ServeConfig, req: Request<Body>) -> Result<Upload, ApiError> {
    // The body limit is enforced while reading; an announced length over it
    // is refused before reading anything, so that the client need not send
    // it (and gets its answer even if it waits for `100 Continue`).
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > config.max_body_bytes as u64) {
        return Err(body_too_large(config));
    }
    if !is_multipart(req.headers()) {
        let bytes = Bytes::from_request(req, &()).await.map_err(|rej| {
            let status = rej.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                body_too_large(config)
            } else {
                ApiError::new(status, "bad_body", rej.body_text())
            }
        })?;
        return Ok(Upload {
            multipart: false,
            files: vec![(None, bytes)],
        });
    }
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|rej| ApiError::new(rej.status(), "bad_multipart", rej.body_text()))?;
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(config, e)),
        };
        // Form fields that are not files (no file name) are not images.
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        if files.len() >= config.max_files {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_files",
                format!(
                    "more than {} files in one request; send them in several",
                    config.max_files
                ),
            ));
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(config, e))?;
        files.push((Some(name), bytes));
    }
    if files.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_files",
            "the multipart body holds no file (a part with a filename)",
        ));
    }
    Ok(Upload {
        multipart: true,
        files,
    })
}

fn body_too_large(config: &ServeConfig) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is over the limit of {} bytes",
            config.max_body_bytes
        ),
    )
}

fn multipart_error(config: &ServeConfig, e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        body_too_large(config)
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_multipart",
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

async fn detect_request(app: Arc<App>, req: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Upload { multipart, files } = read_upload(&app.config, req).await?;
    // One task per file, so that the files of one request are decoded in
    // parallel and can share a batch. The set aborts them if this request
    // is dropped (timeout, client gone).
    let mut tasks = JoinSet::new();
    let names: Vec<Option<String>> = files.iter().map(|(n, _)| n.clone()).collect();
    for (i, (_, bytes)) in files.into_iter().enumerate() {
        let app = app.clone();
        tasks.spawn(async move { (i, score_one(app, bytes).await) });
    }
    let mut outcomes: Vec<Option<Result<Scored, ApiError>>> =
        (0..names.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, r)) = joined {
            outcomes[i] = Some(r);
        }
    }
    let results: Vec<FileResult> = outcomes
        .into_iter()
        .zip(names)
        .map(|(r, name)| {
            let r = r.unwrap_or_else(|| {
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "scoring this file failed unexpectedly",
                ))
            });
            match r {
                Ok(mut s) => {
                    s.name = name;
                    FileResult::Scored(s)
                }
                Err(error) => {
                    app.metrics.record_image_error(error.code);
                    FileResult::Failed(Failed { name, error })
                }
            }
        })
        .collect();
    // A request whose every image failed fails as a whole: with the status of
    // its errors when they agree (always so for a single image), else 422.
    let failures: Vec<&ApiError> = results
        .iter()
        .filter_map(|r| match r {
            FileResult::Failed(f) => Some(&f.error),
            FileResult::Scored(_) => None,
        })
        .collect();
    let error = if failures.len() == results.len() {
        match failures.first() {
            Some(first) if !multipart || failures.iter().all(|f| f.status == first.status) => {
                Some((*first).clone())
            }
            _ => Some(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_image_scored",
                "none of the files could be scored (see each one's error)",
            )),
        }
    } else {
        None
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status_code);
    Ok(json(
        status,
        &DetectResponse {
            model: &app.model,
            results,
            time_ms: ms(started.elapsed()),
            error,
        },
    ))
}

/// Counts an image as on its way to the model until it is queued (see
/// [`WorkerState::incoming`]).
struct Incoming(Arc<WorkerState>);

impl Incoming {
    fn new(s: &Arc<WorkerState>) -> Self {
        s.incoming.fetch_add(1, Ordering::SeqCst);
        Incoming(s.clone())
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.0.incoming.fetch_sub(1, Ordering::SeqCst);
    }
}

fn stopped() -> ApiError {
    ApiError::unavailable("shutting_down", "the server is shutting down")
}

async fn score_one(app: Arc<App>, bytes: Bytes) -> Result<Scored, ApiError> {
    let started = Instant::now();
    let incoming = Incoming::new(&app.worker);
    let decode_permit = app
        .decode_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| stopped())?;
    let opts = app.config.preprocess_options();
    let decode_started = Instant::now();
    let image = match tokio::task::spawn_blocking(move || preprocess_bytes(&bytes, &opts)).await {
        Ok(Ok(image)) => image,
        Ok(Err(e)) => return Err(ApiError::from_image(&e)),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decoder_failed",
                "the image decoder failed on this file",
            ))
        }
    };
    let decode = decode_started.elapsed();

    // The decode permit is kept until the image is queued, so that decoded
    // images waiting for room are at most `decode_threads`.
    let pixels = (image.width as u64 * image.height as u64).clamp(1, app.config.max_queued_pixels);
    let slot = app
        .queue_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| stopped())?;
    let budget = app
        .pixel_budget
        .clone()
        .acquire_many_owned(pixels as u32)
        .await
        .map_err(|_| stopped())?;
    drop(decode_permit);
    let (width, height) = (image.original_width, image.original_height);
    let (reply, answer) = oneshot::channel();
    let job = Job {
        image,
        enqueued: Instant::now(),
        reply,
        _permits: (slot, budget),
    };
    let sender = app.sender().ok_or_else(stopped)?;
    app.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
    if sender.try_send(job).is_err() {
        // Full cannot happen (a slot was taken above); disconnected means
        // the model thread is gone.
        app.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        return Err(stopped());
    }
    drop(incoming);
    let outcome = answer.await.map_err(|_| stopped())?;
    let logit = outcome.logit.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "inference_failed",
            format!("the model could not score this image: {e}"),
        )
    })?;
    let probability = sigmoid(logit / app.temperature);
    let synthetic = probability > app.threshold;
    Ok(Scored {
        name: None,
        probability,
        logit,
        synthetic,
        decision: if synthetic { "synthetic" } else { "real" },
        threshold: app.threshold,
        crop: app.config.crop,
        width,
        height,
        batch_size: outcome.batch_size,
        time_ms: Timing {
            decode: ms(decode),
            queue: ms(outcome.queued),
            inference: ms(outcome.inference),
            total: ms(started.elapsed()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn multipart_is_recognised_by_content_type() {
        let mut h = HeaderMap::new();
        assert!(!is_multipart(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Multipart/Form-Data; boundary=x"),
        );
        assert!(is_multipart(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert!(!is_multipart(&h));
    }

    fn upload(config: &ServeConfig, content_type: &str, body: &[u8]) -> Result<Upload, ApiError> {
        let req = Request::builder()
            .method("POST")
            .uri("/v1/detect")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body.to_vec()))
            .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_upload(config, req))
    }

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file, bytes) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            let disposition = match file {
                Some(f) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    const FORM: &str = "multipart/form-data; boundary=XyZ";

    #[test]
    fn uploads_are_read_within_the_limits_without_a_socket() {
        let config = ServeConfig {
            max_files: 2,
            max_body_bytes: 1000,
            ..ServeConfig::default()
        };
        let raw = upload(&config, "image/png", b"raw bytes").unwrap();
        assert!(!raw.multipart);
        assert_eq!(raw.files, vec![(None, Bytes::from_static(b"raw bytes"))]);

        let body = form(&[
            ("note", None, b"x"),
            ("a", Some("a.png"), b"AAA"),
            ("b", Some("b.jpg"), b"BB"),
        ]);
        let two = upload(&config, FORM, &body).unwrap();
        assert!(two.multipart);
        let names: Vec<_> = two
            .files
            .iter()
            .map(|(n, b)| (n.as_deref(), b.len()))
            .collect();
        assert_eq!(names, [(Some("a.png"), 3), (Some("b.jpg"), 2)]);

        let three = form(&[
            ("a", Some("a"), b"1"),
            ("b", Some("b"), b"2"),
            ("c", Some("c"), b"3"),
        ]);
        let e = upload(&config, FORM, &three).unwrap_err();
        assert_eq!((e.status, e.code), (413, "too_many_files"));

        let e = upload(&config, FORM, &form(&[("note", None, b"x")])).unwrap_err();
        assert_eq!((e.status, e.code), (400, "no_files"));

        let big = form(&[("a", Some("a"), &[7u8; 2000])]);
        let e = upload(&config, FORM, &big).unwrap_err();
        assert_eq!((e.status, e.code), (413, "body_too_large"));

        let e = upload(&config, FORM, b"--XyZ\r\nbroken").unwrap_err();
        assert_eq!((e.status, e.code), (400, "bad_multipart"));
    }
}
