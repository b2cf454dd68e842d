//! Calibration of a detector's probability on a labelled validation set:
//! temperature scaling (Guo et al., ICML 2017) and the decision threshold.

use serde::{Deserialize, Serialize};

/// What calibration chose, and how well it fits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Logits are divided by this before the sigmoid.
    pub temperature: f64,
    /// Calibrated probability above which an image is called synthetic:
    /// the one of highest accuracy on the set (midway between neighbours).
    pub threshold: f64,
    /// Mean negative log-likelihood at temperature 1.
    pub nll_before: f64,
    /// Mean negative log-likelihood at the chosen temperature.
    pub nll_after: f64,
    /// Expected calibration error (15 equal-width bins) at temperature 1.
    pub ece_before: f64,
    /// Expected calibration error at the chosen temperature.
    pub ece_after: f64,
    /// Accuracy at the chosen threshold.
    pub accuracy: f64,
    /// Images used.
    pub count: usize,
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Mean negative log-likelihood of the labels under `sigmoid(logit / t)`.
pub fn nll(logits: &[f64], labels: &[bool], t: f64) -> f64 {
    let n = logits.len().max(1) as f64;
    logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| {
            let s = z / t;
            // -log p(y): softplus(-s) for y = 1, softplus(s) for y = 0.
            let m = if y { -s } else { s };
            softplus(m)
        })
        .sum::<f64>()
        / n
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// Expected calibration error with `bins` equal-width bins of the
/// predicted probability of the synthetic class.
pub fn ece(probs: &[f64], labels: &[bool], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut conf = vec![0f64; bins];
    let mut hits = vec![0f64; bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        conf[b] += p;
        hits[b] += f64::from(u8::from(y));
    }
    let n = probs.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (conf[b] - hits[b]).abs() / n)
        .sum()
}

/// Fits the temperature (golden-section search of the NLL over log t in
/// [1/100, 100]) and the threshold of highest accuracy. `None` when the set
/// is empty, holds one class only, or a logit is not finite.
pub fn calibrate(logits: &[f64], labels: &[bool]) -> Option<Calibration> {
    if logits.is_empty()
        || logits.len() != labels.len()
        || logits.iter().any(|z| !z.is_finite())
        || labels.iter().all(|&y| y)
        || labels.iter().all(|&y| !y)
    {
        return None;
    }
    let f = |u: f64| nll(logits, labels, u.exp());
    let (mut a, mut b) = ((0.01f64).ln(), (100f64).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..100 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    let temperature = ((a + b) / 2.0).exp();
    let probs_before: Vec<f64> = logits.iter().map(|&z| sigmoid(z)).collect();
    let probs: Vec<f64> = logits.iter().map(|&z| sigmoid(z / temperature)).collect();
    // Threshold of highest accuracy: try midpoints between sorted probabilities.
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&i, &j| probs[i].total_cmp(&probs[j]));
    let positives = labels.iter().filter(|&&y| y).count();
    // Threshold below everything: every image called synthetic.
    let mut correct = positives;
    let mut best = (correct, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        // Moving the threshold above probs[i] calls image i real.
        if labels[i] {
            correct -= 1;
        } else {
            correct += 1;
        }
        let next = order.get(k + 1).map(|&j| probs[j]).unwrap_or(1.0);
        if correct > best.0 && next > probs[i] {
            best = (correct, (probs[i] + next) / 2.0);
        }
    }
    Some(Calibration {
        temperature,
        threshold: best.1,
        nll_before: nll(logits, labels, 1.0),
        nll_after: nll(logits, labels, temperature),
        ece_before: ece(&probs_before, labels, 15),
        ece_after: ece(&probs, labels, 15),
        accuracy: best.0 as f64 / labels.len() as f64,
        count: labels.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_temperature_of_overconfident_logits() {
        // Labels drawn from sigmoid(z) but logits reported 4x too large:
        // the fitted temperature must come out near 4.
        let mut s = 12345u64;
        let mut u = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..20000 {
            let z = (u() - 0.5) * 8.0;
            labels.push(u() < sigmoid(z));
            logits.push(4.0 * z);
        }
        let c = calibrate(&logits, &labels).unwrap();
        assert!((c.temperature - 4.0).abs() < 0.25, "{c:?}");
        assert!(c.nll_after < c.nll_before);
        assert!(c.ece_after < c.ece_before);
    }

    #[test]
    fn threshold_separates_separable_scores() {
        let logits = [-3.0, -2.0, -1.5, 1.0, 2.5, 3.0];
        let labels = [false, false, false, true, true, true];
        let c = calibrate(&logits, &labels).unwrap();
        assert_eq!(c.accuracy, 1.0);
        let t = c.temperature;
        assert!(sigmoid(-1.5 / t) < c.threshold && c.threshold < sigmoid(1.0 / t));
    }

    #[test]
    fn degenerate_sets_are_refused() {
        assert!(calibrate(&[], &[]).is_none());
        assert!(calibrate(&[1.0, 2.0], &[true, true]).is_none());
        assert!(calibrate(&[f64::NAN, 2.0], &[false, true]).is_none());
    }
}
