//! `cnnspot serve`: the HTTP service and web page of `cnnspot-serve`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cnnspot_serve::{ServeConfig, DEFAULT_MAX_PIXELS};

use crate::model_args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address needs --token-file (or
    /// --allow-unauthenticated).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: String,

    /// Require `Authorization: Bearer TOKEN` on /v1/* and /metrics, TOKEN
    /// being the content of FILE (surrounding whitespace ignored).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Listen on a non-loopback address without a token.
    #[arg(long)]
    allow_unauthenticated: bool,

    /// Center-crop to PX x PX pixels first, as in the paper's tables (224);
    /// by default the whole image is scored.
    #[arg(long, value_name = "PX", value_parser = clap::value_parser!(u32).range(32..=8192))]
    crop: Option<u32>,

    /// Probability above which an image is called synthetic [default: the
    /// model's: calibrated for the built-in model, 0.5 for others].
    #[arg(long, value_parser = crate::detect::parse_threshold)]
    threshold: Option<f32>,

    /// Refuse images with more pixels than this (413), before decoding.
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,

    /// Largest request body in MiB (413 beyond).
    #[arg(long, default_value_t = 32, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_body_mib: u64,

    /// Most files in one multipart request (413 beyond).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_files: u32,

    /// Detection requests served at once (429 beyond).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_concurrency: u32,

    /// Images waiting for the model at most; more wait for room within the
    /// request timeout.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    queue_len: u32,

    /// Images per forward pass at most.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_batch: u32,

    /// Milliseconds the first image of a batch waits for others of its size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
    batch_wait_ms: u64,

    /// Images decoded at once [default: the number of cores, at most 8].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    decode_threads: Option<u32>,

    /// Connections open at once; more wait to be accepted.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Seconds a detection request may take (503 beyond).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout_secs: u64,

    #[command(flatten)]
    model: ModelArgs,
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot use the address {addr} (expected HOST:PORT)"))?
        .collect();
    // A name such as `localhost` may resolve to both families; take IPv4
    // first, as most clients try it first.
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the address {addr} resolves to nothing"))
}

fn read_token(path: &PathBuf) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        bail!(
            "the token in {} has spaces or control characters; use one line of printable text",
            path.display()
        );
    }
    Ok(token.to_string())
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let addr = resolve(&args.addr)?;
    let token = args.token_file.as_ref().map(read_token).transpose()?;
    let defaults = ServeConfig::default();
    let config = ServeConfig {
        crop: args.crop,
        threshold: args.threshold,
        max_pixels: args.max_pixels,
        max_body_bytes: usize::try_from(args.max_body_mib << 20).unwrap_or(usize::MAX),
        max_files: args.max_files as usize,
        max_concurrency: args.max_concurrency as usize,
        queue_len: args.queue_len as usize,
        max_batch: args.max_batch as usize,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        decode_threads: args
            .decode_threads
            .map_or(defaults.decode_threads, |n| n as usize),
        request_timeout: Duration::from_secs(args.timeout_secs),
        max_connections: args.max_connections as usize,
        token,
        allow_unauthenticated: args.allow_unauthenticated,
        ..defaults
    };
    // Before loading the model, so that a refused address fails at once.
    cnnspot_serve::check_exposure(&addr, &config)?;
    let detector = args.model.open()?;
    let model_name = detector.info().path.display().to_string();
    let auth = if config.token.is_some() {
        "bearer token required"
    } else {
        "no token"
    };
    cnnspot_serve::run_until_signal(addr, config, detector, |local| {
        eprintln!(
            "cnnspot serve: listening on http://{local} ({}, {auth}); Ctrl-C stops",
            model_name
        );
    })?;
    eprintln!("cnnspot serve: stopped");
    Ok(ExitCode::SUCCESS)
}
