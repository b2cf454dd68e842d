//! A bounded load test of `cnnspot serve` on 127.0.0.1.
//!
//! Starts a server in this process (or uses `--addr`, a loopback address of
//! a running one), then for each client count sends a fixed number of
//! requests with that many concurrent keep-alive clients, each level
//! stopping at its time limit whatever happens. Prints throughput, p50/p99
//! latency and errors per level, the model's own throughput for comparison,
//! and this process's resident memory before and after.
//!
//! ```sh
//! cargo run --release -p cnnspot-serve --example loadtest -- \
//!     [--weights FILE] [--image FILE] [--requests 48] [--clients 1,4,16] \
//!     [--seconds 120] [--rounds 1] [--crop 224] [--addr 127.0.0.1:8080 --token TOKEN]
//! ```
//!
//! Defaults use the shared fixtures (`../shared/fixtures`). With `--rounds 2`
//! the levels run twice: memory that stays flat in the second round is the
//! allocator's high-water mark of the largest batches, not a leak.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cnnspot_core::image::preprocess_bytes;
use cnnspot_core::{Detector, PreprocessOptions};
use cnnspot_serve::ServeConfig;
use common::Client;

struct Args {
    weights: Option<PathBuf>,
    image: Option<PathBuf>,
    requests: usize,
    clients: Vec<usize>,
    seconds: u64,
    crop: Option<u32>,
    addr: Option<SocketAddr>,
    token: Option<String>,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        weights: None,
        image: None,
        requests: 48,
        clients: vec![1, 4, 16],
        seconds: 120,
        crop: None,
        addr: None,
        token: None,
        rounds: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--weights" => a.weights = Some(PathBuf::from(value()?)),
            "--image" => a.image = Some(PathBuf::from(value()?)),
            "--requests" => {
                a.requests = value()?
                    .parse()
                    .map_err(|_| "--requests takes a count".to_string())?
            }
            "--seconds" => {
                a.seconds = value()?
                    .parse()
                    .map_err(|_| "--seconds takes a number".to_string())?
            }
            "--crop" => {
                a.crop = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--crop takes pixels".to_string())?,
                )
            }
            "--clients" => {
                a.clients = value()?
                    .split(',')
                    .map(|c| c.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| "--clients takes counts such as 1,4,16".to_string())?
            }
            "--addr" => {
                let addr: SocketAddr = value()?
                    .parse()
                    .map_err(|_| "--addr takes IP:PORT".to_string())?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "{addr} is not a loopback address; the load test only runs on this machine"
                    ));
                }
                a.addr = Some(addr)
            }
            "--token" => a.token = Some(value()?),
            "--rounds" => {
                a.rounds = value()?
                    .parse()
                    .map_err(|_| "--rounds takes a count".to_string())?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.requests == 0 || a.rounds == 0 || a.clients.contains(&0) {
        return Err("requests and client counts must be positive".into());
    }
    Ok(a)
}

fn shared_fixture(name: &str) -> Option<PathBuf> {
    cnnspot_testdata::fixture(name).filter(|p| p.is_file())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

struct Level {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

fn run_level(
    addr: SocketAddr,
    body: &[u8],
    headers: &[(&str, &str)],
    clients: usize,
    requests: usize,
    limit: Duration,
) -> Level {
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(requests));
    let errors = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let started = Instant::now();
    let deadline = started + limit;
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let mut client: Option<Client> = None;
                loop {
                    let now = Instant::now();
                    if now >= deadline || next.fetch_add(1, Ordering::SeqCst) >= requests {
                        break;
                    }
                    let t = Instant::now();
                    let result = (|| {
                        let c = match client.as_mut() {
                            Some(c) => c,
                            None => client.insert(Client::connect(
                                addr,
                                deadline
                                    .saturating_duration_since(now)
                                    .max(Duration::from_secs(1)),
                            )?),
                        };
                        c.request("POST", "/v1/detect", headers, body)
                    })();
                    match result {
                        Ok(r) if r.status == 200 => {
                            if let Ok(mut l) = latencies.lock() {
                                l.push(t.elapsed());
                            }
                        }
                        other => {
                            client = None;
                            errors.fetch_add(1, Ordering::SeqCst);
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert_with(|| match other {
                                    Ok(r) => format!("status {}: {}", r.status, r.text()),
                                    Err(e) => e.to_string(),
                                });
                            }
                        }
                    }
                }
            });
        }
    });
    let mut latencies = latencies.into_inner().unwrap_or_default();
    latencies.sort();
    Level {
        ok: latencies.len(),
        errors: errors.into_inner(),
        elapsed: started.elapsed(),
        latencies,
        first_error: first_error.into_inner().unwrap_or(None),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(image) = args.image.clone().or_else(|| shared_fixture("fake.png")) else {
        eprintln!("error: no --image and no shared fixtures");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(&image) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", image.display());
            return ExitCode::from(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "load test: {} ({} bytes), {cores} cores",
        image.display(),
        body.len()
    );

    let mut _server = None;
    let addr = match args.addr {
        Some(a) => a,
        None => {
            let Some(weights) = args
                .weights
                .clone()
                .or_else(|| shared_fixture("cnndet_random.pth"))
            else {
                eprintln!("error: no --weights and no shared fixtures");
                return ExitCode::from(2);
            };
            let detector = match Detector::load(&weights) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            // The model alone, for comparison with what the server delivers.
            let opts = PreprocessOptions {
                crop: args.crop,
                ..PreprocessOptions::default()
            };
            let Ok(pre) = preprocess_bytes(&body, &opts) else {
                eprintln!("error: {} is not an image the model takes", image.display());
                return ExitCode::from(2);
            };
            for batch in [1usize, 4, 16] {
                let refs: Vec<_> = (0..batch).map(|_| &pre).collect();
                let _ = detector.logits(&refs);
                let t = Instant::now();
                let rounds = 16 / batch;
                for _ in 0..rounds {
                    let _ = detector.logits(&refs);
                }
                let per_s = (rounds * batch) as f64 / t.elapsed().as_secs_f64();
                println!("model alone, batch {batch}: {per_s:.2} images/s");
            }
            let config = ServeConfig {
                crop: args.crop,
                ..ServeConfig::default()
            };
            match cnnspot_serve::spawn(
                "127.0.0.1:0"
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
                config,
                detector,
            ) {
                Ok(h) => {
                    let a = h.addr();
                    _server = Some(h);
                    a
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };

    let bearer = args.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/octet-stream")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    // Warm up (first allocations, page faults), then measure memory.
    let warm = run_level(
        addr,
        &body,
        &headers,
        1,
        2,
        Duration::from_secs(args.seconds),
    );
    if warm.errors > 0 {
        eprintln!(
            "error: the server at {addr} does not score: {}",
            warm.first_error.unwrap_or_default()
        );
        return ExitCode::from(1);
    }
    let rss_before = common::rss_kib();
    println!(
        "server http://{addr}; RSS after warm-up: {}",
        mib(rss_before)
    );
    println!(
        "{:>7}  {:>8}  {:>6}  {:>9}  {:>10}  {:>10}  {:>10}  {:>8}",
        "clients", "requests", "errors", "seconds", "images/s", "p50 ms", "p99 ms", "RSS"
    );
    let limit = Duration::from_secs(args.seconds);
    let mut failed = false;
    let levels: Vec<usize> = (0..args.rounds)
        .flat_map(|_| args.clients.iter().copied())
        .collect();
    for c in levels {
        let l = run_level(addr, &body, &headers, c, args.requests, limit);
        let p50 = percentile(&l.latencies, 0.50);
        let p99 = percentile(&l.latencies, 0.99);
        println!(
            "{c:>7}  {:>8}  {:>6}  {:>9.2}  {:>10.2}  {:>10.1}  {:>10.1}  {:>8}",
            l.ok,
            l.errors,
            l.elapsed.as_secs_f64(),
            l.ok as f64 / l.elapsed.as_secs_f64(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            mib(common::rss_kib()),
        );
        if let Some(e) = &l.first_error {
            println!("         first error: {e}");
        }
        if l.errors > 0 || l.ok < args.requests {
            failed = true;
        }
    }
    let rss_after = common::rss_kib();
    println!("RSS before {} / after {}", mib(rss_before), mib(rss_after));
    if failed {
        println!("some requests failed or did not finish within the time limit");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
