//! Metrics of probabilistic binary predictions.

use serde::{Deserialize, Serialize};

/// The figures every model and baseline is reported with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    /// Expected calibration error over 10 equal-width bins.
    pub ece: f64,
    /// Positive rate in the top-scored 10% / overall positive rate.
    pub lift_top_decile: f64,
}

impl Metrics {
    pub fn of(p: &[f64], y: &[f64]) -> Metrics {
        assert_eq!(p.len(), y.len());
        Metrics {
            rows: y.len(),
            positives: y.iter().filter(|&&v| v > 0.5).count(),
            roc_auc: roc_auc(p, y),
            pr_auc: average_precision(p, y),
            log_loss: log_loss(p, y),
            brier: brier(p, y),
            ece: ece(p, y, 10),
            lift_top_decile: lift(p, y, 0.1),
        }
    }
}

/// Area under the ROC curve (ties count half). NaN when a class is absent.
pub fn roc_auc(p: &[f64], y: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Mean rank of the positives (ranks averaged over ties).
    let (mut rank_sum, mut pos) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if y[k] > 0.5 {
                rank_sum += avg;
                pos += 1.0;
            }
        }
        i = j + 1;
    }
    let neg = p.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Average precision (area under the precision-recall curve, step-wise).
pub fn average_precision(p: &[f64], y: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let total = y.iter().filter(|&&v| v > 0.5).count() as f64;
    if total == 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        // Treat tied scores as one threshold.
        let mut j = i;
        let mut tp_here = 0.0;
        while j < idx.len() && p[idx[j]] == p[idx[i]] {
            if y[idx[j]] > 0.5 {
                tp_here += 1.0;
            }
            j += 1;
        }
        tp += tp_here;
        seen += (j - i) as f64;
        ap += (tp_here / total) * (tp / seen);
        i = j;
    }
    ap
}

pub fn log_loss(p: &[f64], y: &[f64]) -> f64 {
    let eps = 1e-15;
    p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / p.len().max(1) as f64
}

pub fn brier(p: &[f64], y: &[f64]) -> f64 {
    p.iter().zip(y).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / p.len().max(1) as f64
}

/// Expected calibration error: the row-weighted mean |mean p - positive rate|
/// over `bins` equal-width probability bins.
pub fn ece(p: &[f64], y: &[f64], bins: usize) -> f64 {
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut n = vec![0.0; bins];
    for (&p, &y) in p.iter().zip(y) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += y;
        n[b] += 1.0;
    }
    let total: f64 = n.iter().sum();
    (0..bins)
        .filter(|&b| n[b] > 0.0)
        .map(|b| (sum_p[b] - sum_y[b]).abs())
        .sum::<f64>()
        / total.max(1.0)
}

/// Positive rate among the top `share` by score over the overall positive rate.
pub fn lift(p: &[f64], y: &[f64], share: f64) -> f64 {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let k = ((p.len() as f64 * share).ceil() as usize)
        .max(1)
        .min(p.len());
    let base = y.iter().sum::<f64>() / p.len().max(1) as f64;
    if base == 0.0 || k == 0 {
        return f64::NAN;
    }
    idx[..k].iter().map(|&i| y[i]).sum::<f64>() / k as f64 / base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computation() {
        let p = [0.1, 0.4, 0.35, 0.8];
        let y = [0.0, 0.0, 1.0, 1.0];
        assert!((roc_auc(&p, &y) - 0.75).abs() < 1e-12);
        assert!((roc_auc(&[0.5; 4], &y) - 0.5).abs() < 1e-12);
        assert!(roc_auc(&p, &[1.0; 4]).is_nan());
        // Average precision: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2.
        assert!((average_precision(&p, &y) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn calibration_and_lift() {
        let p = [0.1, 0.1, 0.9, 0.9];
        let y = [0.0, 0.0, 1.0, 1.0];
        assert!((ece(&p, &y, 10) - 0.1).abs() < 1e-12);
        assert!((brier(&p, &y) - 0.01).abs() < 1e-12);
        assert!((lift(&p, &y, 0.25) - 2.0).abs() < 1e-12);
        assert!((log_loss(&p, &y) + 0.9f64.ln()).abs() < 1e-12);
    }
}
