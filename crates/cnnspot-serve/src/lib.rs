//! `cnnspot serve`: an HTTP service and a web page that score uploaded
//! images with a loaded [`Detector`].
//!
//! Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | a self-contained web page: drop or pick images, see each scored |
//! | `POST /v1/detect` | score the image in the body (raw bytes), or each file of a `multipart/form-data` body |
//! | `GET /v1/model` | the loaded model, the scoring settings and the limits |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the model can take work (503 while shutting down) |
//! | `GET /metrics` | Prometheus text format |
//!
//! Images that arrive together are scored together: a model thread owns the
//! detector and gathers images of one size into a batch within a short wait.
//! Decoding runs on tokio's blocking threads, a bounded number at a time.
//! Every resource a request can claim is bounded: body size, pixels per
//! image, files per request, requests in flight, images and pixels queued,
//! time per request.
//!
//! ```no_run
//! use cnnspot_core::Detector;
//! use cnnspot_serve::{spawn, ServeConfig};
//! let detector = Detector::load(std::path::Path::new("blur_jpg_prob0.5.pth"))?;
//! let server = spawn("127.0.0.1:0".parse()?, ServeConfig::default(), detector)?;
//! println!("listening on http://{}", server.addr());
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
mod api;
mod config;
mod conn;
mod error;
mod metrics;
mod worker;

use std::future::Future;
use std::net::SocketAddr;

use cnnspot_core::Detector;
use tokio::net::TcpListener;

pub use api::{read_upload, Upload};
pub use config::{ServeConfig, DEFAULT_MAX_PIXELS};
pub use error::{ApiError, ServeError};

/// Refuses a non-loopback address without a token, unless allowed.
pub fn check_exposure(addr: &SocketAddr, config: &ServeConfig) -> Result<(), ServeError> {
    let has_token = config.token.as_deref().is_some_and(|t| !t.is_empty());
    if addr.ip().is_loopback() || has_token || config.allow_unauthenticated {
        Ok(())
    } else {
        Err(ServeError::Unauthenticated(*addr))
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// Serves on `listener` until `shutdown` completes, then stops accepting,
/// finishes the requests in flight and the model's queue, and returns.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    detector: Detector,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_err(io_error("cannot read the listening address"))?;
    check_exposure(&addr, &config)?;
    let config_max_connections = config.max_connections;
    let idle_timeout = config.effective_idle_timeout();
    let (app, worker) = api::App::start(config, detector).await?;
    let router = api::router(app.clone());
    let stopping = app.clone();
    let listener = conn::LimitedListener::new(
        listener,
        config_max_connections,
        idle_timeout,
        app.metrics(),
    );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.begin_shutdown();
        })
        .await
        .map_err(io_error(format!("the server on {addr} failed")));
    // No request can reach the model now: let it finish its queue and end.
    app.close_queue();
    drop(app);
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    served
}

/// A server running on its own threads (see [`spawn`]).
pub struct Handle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Handle {
    /// The address it listens on (with the port chosen when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it gracefully (requests in flight finish) and waits.
    pub fn shutdown(mut self) -> Result<(), ServeError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServeError::Io {
                context: "the server thread".into(),
                source: std::io::Error::other("panicked"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cnnspot-serve")
        .build()
        .map_err(io_error("cannot start the async runtime"))
}

async fn bind(addr: SocketAddr, config: &ServeConfig) -> Result<TcpListener, ServeError> {
    check_exposure(&addr, config)?;
    TcpListener::bind(addr)
        .await
        .map_err(io_error(format!("cannot listen on {addr}")))
}

/// Starts a server on `addr` in background threads; it runs until
/// [`Handle::shutdown`] or until the handle is dropped.
pub fn spawn(
    addr: SocketAddr,
    config: ServeConfig,
    detector: Detector,
) -> Result<Handle, ServeError> {
    let rt = runtime()?;
    let listener = rt.block_on(bind(addr, &config))?;
    let local = listener
        .local_addr()
        .map_err(io_error("cannot read the listening address"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("cnnspot-serve-main".into())
        .spawn(move || {
            rt.block_on(serve(listener, config, detector, async move {
                let _ = stopped.await;
            }))
        })
        .map_err(io_error("cannot start the server thread"))?;
    Ok(Handle {
        addr: local,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Serves on `addr` until Ctrl-C or SIGTERM, then shuts down gracefully.
/// `on_listening` is told the bound address once the socket is open.
pub fn run_until_signal(
    addr: SocketAddr,
    config: ServeConfig,
    detector: Detector,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = bind(addr, &config).await?;
        let local = listener
            .local_addr()
            .map_err(io_error("cannot read the listening address"))?;
        on_listening(local);
        serve(listener, config, detector, signal()).await
    })
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token_or_permission() {
        let open: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let local6: SocketAddr = "[::1]:8080".parse().unwrap();
        let cfg = ServeConfig::default();
        assert!(check_exposure(&local, &cfg).is_ok());
        assert!(check_exposure(&local6, &cfg).is_ok());
        assert!(matches!(
            check_exposure(&open, &cfg),
            Err(ServeError::Unauthenticated(_))
        ));
        let with_token = ServeConfig {
            token: Some("s3cret".into()),
            ..ServeConfig::default()
        };
        assert!(check_exposure(&open, &with_token).is_ok());
        let allowed = ServeConfig {
            allow_unauthenticated: true,
            ..ServeConfig::default()
        };
        assert!(check_exposure(&open, &allowed).is_ok());
    }
}
