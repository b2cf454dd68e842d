//! Counters, gauges and histograms in the Prometheus text format (0.0.4).
//!
//! Hand-rolled: the server needs a dozen series, and a registry crate would
//! bring more code than this file.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// All of the server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// (route, status) -> requests.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Error code -> images that could not be scored.
    image_errors: Mutex<BTreeMap<&'static str, u64>>,
    batch_sizes: Mutex<Histogram>,
    inference: Mutex<Histogram>,
    pub in_flight: AtomicI64,
    pub queue_depth: AtomicI64,
    /// TCP connections accepted and not yet closed.
    pub connections_open: AtomicI64,
    pub images_scored: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            image_errors: Mutex::default(),
            batch_sizes: Mutex::new(Histogram::new(BATCH_BUCKETS)),
            inference: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            in_flight: AtomicI64::new(0),
            queue_depth: AtomicI64::new(0),
            connections_open: AtomicI64::new(0),
            images_scored: AtomicU64::new(0),
        }
    }
}

/// A poisoned lock only means another thread panicked while counting; the
/// counts are still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn record_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        *lock(&self.requests).entry((route, status)).or_insert(0) += 1;
        lock(&self.latency)
            .entry(route)
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_image_error(&self, code: &'static str) {
        *lock(&self.image_errors).entry(code).or_insert(0) += 1;
    }

    pub fn record_batch(&self, images: usize, elapsed: Duration) {
        lock(&self.batch_sizes).observe(images as f64);
        lock(&self.inference).observe(elapsed.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let requests = lock(&self.requests).clone();
        out.push_str(
            "# HELP cnnspot_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE cnnspot_http_requests_total counter\n");
        for ((route, status), n) in &requests {
            let _ = writeln!(
                out,
                "cnnspot_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
        for ((route, status), n) in &requests {
            if *status >= 400 {
                *errors.entry(route).or_insert(0) += n;
            }
        }
        out.push_str("# HELP cnnspot_http_request_errors_total HTTP requests answered with a 4xx or 5xx status, by route.\n");
        out.push_str("# TYPE cnnspot_http_request_errors_total counter\n");
        for (route, n) in &errors {
            let _ = writeln!(
                out,
                "cnnspot_http_request_errors_total{{route=\"{route}\"}} {n}"
            );
        }
        out.push_str("# HELP cnnspot_http_request_duration_seconds Time from request to response, by route.\n");
        out.push_str("# TYPE cnnspot_http_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            h.write(
                &mut out,
                "cnnspot_http_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        let load = |v: &AtomicI64| v.load(Ordering::Relaxed);
        let scored = self.images_scored.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "cnnspot_http_requests_in_flight",
                "gauge",
                "Detection requests being served.",
                load(&self.in_flight),
            ),
            (
                "cnnspot_queue_depth",
                "gauge",
                "Images decoded and waiting for the model.",
                load(&self.queue_depth),
            ),
            (
                "cnnspot_http_connections_open",
                "gauge",
                "TCP connections open.",
                load(&self.connections_open),
            ),
            (
                "cnnspot_images_scored_total",
                "counter",
                "Images scored by the model.",
                i64::try_from(scored).unwrap_or(i64::MAX),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out.push_str("# HELP cnnspot_image_errors_total Uploaded images that could not be scored, by reason.\n");
        out.push_str("# TYPE cnnspot_image_errors_total counter\n");
        for (code, n) in lock(&self.image_errors).iter() {
            let _ = writeln!(out, "cnnspot_image_errors_total{{code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP cnnspot_batch_size Images per forward pass.\n");
        out.push_str("# TYPE cnnspot_batch_size histogram\n");
        lock(&self.batch_sizes).write(&mut out, "cnnspot_batch_size", "");
        out.push_str("# HELP cnnspot_inference_duration_seconds Time of one forward pass.\n");
        out.push_str("# TYPE cnnspot_inference_duration_seconds histogram\n");
        lock(&self.inference).write(&mut out, "cnnspot_inference_duration_seconds", "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.record_request("/v1/detect", 200, Duration::from_millis(3));
        m.record_request("/v1/detect", 200, Duration::from_millis(300));
        m.record_request("/v1/detect", 413, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("cnnspot_http_requests_total{route=\"/v1/detect\",status=\"200\"} 2"));
        assert!(text.contains("cnnspot_http_request_errors_total{route=\"/v1/detect\"} 1"));
        assert!(text.contains(
            "cnnspot_http_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "cnnspot_http_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"0.5\"} 3"
        ));
        assert!(text.contains(
            "cnnspot_http_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("cnnspot_batch_size_count 0"));
    }
}
