//! The model's thread: gathers images of one size that arrive within a short
//! wait into one forward pass, and answers each through its own channel.
//!
//! The network runs on a dedicated OS thread (it uses the CPU cores itself
//! and would stall the async runtime). Images reach it over a bounded
//! channel; a slot of the channel is a semaphore permit taken by the async
//! side before sending, so the async side waits without blocking a thread
//! and the worker can wait with a timeout.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cnnspot_core::{BatchLimits, Detector, Preprocessed};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::metrics::Metrics;

/// One image waiting for the model.
pub(crate) struct Job {
    pub image: Preprocessed,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Outcome>,
    /// Held until the job leaves the queue: a channel slot and the image's
    /// share of the queued-pixel budget.
    pub _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// What the worker says about one job.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub logit: Result<f32, String>,
    pub queued: Duration,
    pub inference: Duration,
    pub batch_size: usize,
}

/// How the worker groups jobs.
#[derive(Debug, Clone)]
pub(crate) struct BatchPolicy {
    /// The same limits as `cnnspot detect`'s batches.
    pub limits: BatchLimits,
    /// How long the first image of a batch may wait for others.
    pub wait: Duration,
}

/// Shared between the worker and the request handlers.
#[derive(Debug, Default)]
pub(crate) struct WorkerState {
    /// Images accepted by handlers and still being decoded: while some are,
    /// a batch is worth waiting for; when none are, waiting only adds latency.
    pub incoming: AtomicUsize,
    /// Cleared when the worker thread ends.
    pub alive: AtomicBool,
}

pub(crate) fn spawn(
    detector: Detector,
    rx: mpsc::Receiver<Job>,
    policy: BatchPolicy,
    state: Arc<WorkerState>,
    metrics: Arc<Metrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    state.alive.store(true, Ordering::SeqCst);
    std::thread::Builder::new()
        .name("cnnspot-model".into())
        .spawn(move || {
            run(&detector, &rx, &policy, &state, &metrics);
            state.alive.store(false, Ordering::SeqCst);
        })
}

fn key(job: &Job) -> (u32, u32) {
    (job.image.width, job.image.height)
}

fn run(
    detector: &Detector,
    rx: &mpsc::Receiver<Job>,
    policy: &BatchPolicy,
    state: &WorkerState,
    metrics: &Metrics,
) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut disconnected = false;
    loop {
        // Nobody waits for an answer any more (request timed out or client
        // gone): drop those jobs instead of computing them.
        pending.retain(|j| {
            let keep = !j.reply.is_closed();
            if !keep {
                metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
        if pending.is_empty() {
            if disconnected {
                return;
            }
            match rx.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
            continue;
        }

        let (k, deadline) = match pending.front() {
            Some(first) => (key(first), first.enqueued + policy.wait),
            None => continue,
        };
        let pixels = k.0 as u64 * k.1 as u64;
        let full = |pending: &VecDeque<Job>| {
            let n = pending.iter().filter(|j| key(j) == k).count();
            !policy.limits.admits(n, pixels)
        };
        while !disconnected && !full(&pending) {
            match rx.try_recv() {
                Ok(job) => {
                    pending.push_back(job);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline || state.incoming.load(Ordering::SeqCst) == 0 {
                break;
            }
            // Short slices so that the end of decoding elsewhere is noticed.
            let slice = (deadline - now).min(Duration::from_micros(500));
            match rx.recv_timeout(slice) {
                Ok(job) => pending.push_back(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => disconnected = true,
            }
        }

        let mut batch = Vec::new();
        let mut rest = VecDeque::with_capacity(pending.len());
        for job in pending.drain(..) {
            if key(&job) == k && policy.limits.admits(batch.len(), pixels) {
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        pending = rest;
        metrics
            .queue_depth
            .fetch_sub(batch.len() as i64, Ordering::Relaxed);
        run_batch(detector, batch, metrics);
    }
}

fn run_batch(detector: &Detector, batch: Vec<Job>, metrics: &Metrics) {
    let started = Instant::now();
    let refs: Vec<&Preprocessed> = batch.iter().map(|j| &j.image).collect();
    // A panic inside the tensor library must cost this batch, not the server.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| detector.logits(&refs)));
    let inference = started.elapsed();
    let n = batch.len();
    metrics.record_batch(n, inference);
    let logits: Result<Vec<f32>, String> = match result {
        Ok(Ok(l)) if l.len() == n => Ok(l),
        Ok(Ok(l)) => Err(format!("the model gave {} outputs for {n} images", l.len())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the model failed on this batch".to_string()),
    };
    if logits.is_ok() {
        metrics.images_scored.fetch_add(n as u64, Ordering::Relaxed);
    }
    for (i, job) in batch.into_iter().enumerate() {
        let logit = match &logits {
            // A NaN is never a verdict.
            Ok(l) if !l[i].is_finite() => {
                Err(format!("the network gave a non-finite logit ({})", l[i]))
            }
            Ok(l) => Ok(l[i]),
            Err(e) => Err(e.clone()),
        };
        let outcome = Outcome {
            logit,
            queued: started.saturating_duration_since(job.enqueued),
            inference,
            batch_size: n,
        };
        // The receiver may be gone (timeout): nothing to do then.
        let _ = job.reply.send(outcome);
    }
}
