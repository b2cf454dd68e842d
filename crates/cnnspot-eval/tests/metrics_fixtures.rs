//! The metrics against scikit-learn: every case of
//! shared/fixtures/metrics_cases.json, and the step-wise AP against its
//! definition written out naively on many random score sets with ties.

use cnnspot_eval::metrics::{
    accuracy_score, average_precision_score, mean_defined, precision_recall_curve, Metrics,
};
use cnnspot_testdata::require_shared;
use serde_json::Value;

fn close(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-12, "{what}: got {g}, sklearn {w}"),
        (None, None) => assert!(want.is_null(), "{what}: sklearn gave {want}"),
        (g, _) => panic!("{what}: got {g:?}, sklearn {want}"),
    }
}

#[test]
fn every_sklearn_case_matches() {
    require_shared!();
    let text = cnnspot_testdata::fixture_text("metrics_cases.json").unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 6, "the fixture lost cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let y_true: Vec<bool> = case["y_true"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() == 1)
            .collect();
        let y_score: Vec<f64> = case["y_score"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let subset = |want: bool| -> (Vec<bool>, Vec<f64>) {
            y_true
                .iter()
                .zip(&y_score)
                .filter(|(&t, _)| t == want)
                .map(|(&t, &s)| (t, s))
                .unzip()
        };
        let (rt, rs) = subset(false);
        let (ft, fs) = subset(true);

        // The scikit-learn functions themselves, value for value.
        close(
            average_precision_score(&y_true, &y_score),
            &case["ap"],
            &format!("{name} ap"),
        );
        close(
            accuracy_score(&y_true, &y_score),
            &case["acc"],
            &format!("{name} acc"),
        );
        close(
            accuracy_score(&rt, &rs),
            &case["r_acc"],
            &format!("{name} r_acc"),
        );
        close(
            accuracy_score(&ft, &fs),
            &case["f_acc"],
            &format!("{name} f_acc"),
        );

        // The summary: the same numbers, except that the AP of a set with no
        // fake image, which scikit-learn reports as 0 with a warning, is
        // undefined rather than 0.
        let m = Metrics::compute(&y_true, &y_score);
        assert_eq!(m.n_real, rt.len(), "{name}");
        assert_eq!(m.n_fake, ft.len(), "{name}");
        close(m.acc, &case["acc"], &format!("{name} Metrics.acc"));
        close(m.r_acc, &case["r_acc"], &format!("{name} Metrics.r_acc"));
        close(m.f_acc, &case["f_acc"], &format!("{name} Metrics.f_acc"));
        if ft.is_empty() {
            assert!(
                case.get("ap_warning")
                    .is_some_and(|w| w.as_str().unwrap().contains("No positive")),
                "{name}: sklearn's 0 here comes with a warning"
            );
            assert_eq!(m.ap, None, "{name}: AP without fakes is undefined");
        } else {
            close(m.ap, &case["ap"], &format!("{name} Metrics.ap"));
        }
    }
}

#[test]
fn exactly_half_counts_as_real() {
    // Strict '>': 0.5 is a "real" decision, the next f32 above it is "fake".
    let above = f64::from(f32::from_bits(0.5f32.to_bits() + 1));
    assert_eq!(accuracy_score(&[false, true], &[0.5, above]), Some(1.0));
    assert_eq!(accuracy_score(&[true, false], &[0.5, above]), Some(0.0));
}

#[test]
fn empty_sets_are_undefined_not_zero() {
    let m = Metrics::compute(&[], &[]);
    assert_eq!((m.ap, m.acc, m.r_acc, m.f_acc), (None, None, None, None));
    assert_eq!(mean_defined([Some(0.5), None, Some(1.0)]), (Some(0.75), 2));
    assert_eq!(mean_defined([None, None]), (None, 0));
}

/// AP from its definition, quadratic and independent of the library's
/// sorting: for each distinct score t (descending), the precision and
/// recall of "fake when score >= t", summed as (R_n - R_{n-1}) P_n.
fn naive_ap(y: &[bool], s: &[f64]) -> f64 {
    let positives = y.iter().filter(|&&t| t).count() as f64;
    let mut thresholds: Vec<f64> = s.to_vec();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for t in thresholds {
        let tp = y.iter().zip(s).filter(|(&l, &v)| l && v >= t).count() as f64;
        let called = s.iter().filter(|&&v| v >= t).count() as f64;
        let recall = tp / positives;
        ap += (recall - prev_recall) * (tp / called);
        prev_recall = recall;
    }
    ap
}

#[test]
fn ap_matches_its_definition_on_random_sets_with_ties() {
    // A small xorshift generator: deterministic without a dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..300 {
        let n = 2 + (next() % 60) as usize;
        // Few distinct levels in some rounds, so that ties are common.
        let levels = if round % 2 == 0 { 5 } else { 1000 };
        let y: Vec<bool> = (0..n).map(|_| next() % 3 == 0).collect();
        let s: Vec<f64> = (0..n)
            .map(|_| (next() % levels) as f64 / levels as f64)
            .collect();
        if !y.contains(&true) {
            continue;
        }
        let got = average_precision_score(&y, &s).unwrap();
        let want = naive_ap(&y, &s);
        assert!((got - want).abs() < 1e-12, "round {round}: {got} vs {want}");
        // The curve ends at (recall 0, precision 1) and starts at recall 1.
        let curve = precision_recall_curve(&y, &s);
        assert_eq!(
            curve.last().map(|p| (p.recall, p.precision)),
            Some((0.0, 1.0))
        );
        assert_eq!(curve.first().map(|p| p.recall), Some(1.0));
    }
}
