//! The paper's metrics, computed as the reference does with scikit-learn
//! (`validate.py` / `eval.py` of CNNDetection):
//!
//! ```python
//! acc   = accuracy_score(y_true, y_pred > 0.5)
//! r_acc = accuracy_score(y_true[y_true==0], y_pred[y_true==0] > 0.5)
//! f_acc = accuracy_score(y_true[y_true==1], y_pred[y_true==1] > 0.5)
//! ap    = average_precision_score(y_true, y_pred)
//! ```
//!
//! Fake is the positive class. The threshold is strict: a probability of
//! exactly 0.5 counts as real.

use serde::{Deserialize, Serialize};

/// The decision threshold of the reference (strict `>`).
pub const THRESHOLD: f64 = 0.5;

/// One point of a precision-recall curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrPoint {
    /// Recall (true-positive rate).
    pub recall: f64,
    /// Precision.
    pub precision: f64,
    /// Scores at or above this are called fake at this point
    /// (`f64::INFINITY` for the final point of recall 0).
    pub threshold: f64,
}

/// scikit-learn's `precision_recall_curve` (with `drop_intermediate=False`),
/// in its output order: recall decreasing, ending with the point
/// (recall 0, precision 1). One point per distinct score. With no positive
/// label, recall is 1 everywhere, as scikit-learn sets it (with a warning).
pub fn precision_recall_curve(y_true: &[bool], y_score: &[f64]) -> Vec<PrPoint> {
    let n = y_true.len().min(y_score.len());
    let mut order: Vec<usize> = (0..n).collect();
    // Descending by score; ties in any order (only the boundaries between
    // distinct scores are used).
    order.sort_by(|&a, &b| y_score[b].total_cmp(&y_score[a]));
    // (threshold, tps, fps) at the last index of each run of equal scores.
    let mut steps: Vec<(f64, f64, f64)> = Vec::new();
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        if y_true[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_run = order.get(k + 1).is_none_or(|&j| y_score[j] != y_score[i]);
        if last_of_run {
            steps.push((y_score[i], tp, fp));
        }
    }
    let total_pos = steps.last().map_or(0.0, |s| s.1);
    let mut curve: Vec<PrPoint> = steps
        .iter()
        .rev()
        .map(|&(threshold, tps, fps)| {
            let ps = tps + fps;
            PrPoint {
                recall: if total_pos == 0.0 {
                    1.0
                } else {
                    tps / total_pos
                },
                precision: if ps == 0.0 { 0.0 } else { tps / ps },
                threshold,
            }
        })
        .collect();
    curve.push(PrPoint {
        recall: 0.0,
        precision: 1.0,
        threshold: f64::INFINITY,
    });
    curve
}

/// scikit-learn's `average_precision_score(y_true, y_score)` for binary
/// labels: `-sum(diff(recall) * precision[:-1])` over the curve of
/// [`precision_recall_curve`], i.e. the step-wise sum of
/// `(R_n - R_{n-1}) P_n` over distinct thresholds, not an interpolated AP.
///
/// Like scikit-learn it returns 0.0 when there is no positive label, a
/// value that is really undefined: [`Metrics`] reports `None` there.
/// Returns `None` for no samples at all (scikit-learn raises).
pub fn average_precision_score(y_true: &[bool], y_score: &[f64]) -> Option<f64> {
    if y_true.is_empty() {
        return None;
    }
    let curve = precision_recall_curve(y_true, y_score);
    let sum: f64 = curve
        .windows(2)
        .map(|w| (w[1].recall - w[0].recall) * w[0].precision)
        .sum();
    Some(-sum)
}

/// scikit-learn's `accuracy_score(y_true, y_score > 0.5)`; `None` for an
/// empty set (scikit-learn raises "Found empty input array").
pub fn accuracy_score(y_true: &[bool], y_score: &[f64]) -> Option<f64> {
    if y_true.is_empty() {
        return None;
    }
    let right = y_true
        .iter()
        .zip(y_score)
        .filter(|(&t, &s)| (s > THRESHOLD) == t)
        .count();
    Some(right as f64 / y_true.len() as f64)
}

/// The paper's numbers for one set of scores. `None` marks a metric that
/// is undefined on this set (no image of a class), never a 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Real images.
    pub n_real: usize,
    /// Fake images.
    pub n_fake: usize,
    /// Average precision, fake = positive; `None` with no fake image
    /// (scikit-learn returns 0 with a warning) or no image at all.
    pub ap: Option<f64>,
    /// Accuracy at 0.5 over all images.
    pub acc: Option<f64>,
    /// Accuracy on the real images.
    pub r_acc: Option<f64>,
    /// Accuracy on the fake images.
    pub f_acc: Option<f64>,
}

impl Metrics {
    /// Computes every metric; `y_true` is true for fake.
    pub fn compute(y_true: &[bool], y_score: &[f64]) -> Metrics {
        let split = |want: bool| -> (Vec<bool>, Vec<f64>) {
            y_true
                .iter()
                .zip(y_score)
                .filter(|(&t, _)| t == want)
                .map(|(&t, &s)| (t, s))
                .unzip()
        };
        let (real_t, real_s) = split(false);
        let (fake_t, fake_s) = split(true);
        Metrics {
            n_real: real_t.len(),
            n_fake: fake_t.len(),
            ap: if fake_t.is_empty() {
                None
            } else {
                average_precision_score(y_true, y_score)
            },
            acc: accuracy_score(y_true, y_score),
            r_acc: accuracy_score(&real_t, &real_s),
            f_acc: accuracy_score(&fake_t, &fake_s),
        }
    }
}

/// Mean of the defined values, with how many were defined; `None` when
/// none is.
pub fn mean_defined(values: impl IntoIterator<Item = Option<f64>>) -> (Option<f64>, usize) {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    ((n > 0).then(|| sum / n as f64), n)
}
