//! Isotonic calibration (pool adjacent violators), interpolated between the
//! pooled blocks so that it keeps the ranking of distinct scores.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    /// Block centres (mean score) and their calibrated values, increasing.
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

impl Isotonic {
    /// Fits the non-decreasing map from scores to outcome rates.
    pub fn fit(score: &[f64], y: &[f64]) -> Isotonic {
        let mut idx: Vec<usize> = (0..score.len()).collect();
        idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
        // Blocks of (sum score, sum y, weight).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for &i in &idx {
            blocks.push((score[i], y[i], 1.0));
            while blocks.len() > 1 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.1 / a.2 >= b.1 / b.2 {
                    blocks.pop();
                    blocks[n - 2] = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
                } else {
                    break;
                }
            }
        }
        // Keep probabilities off exact 0/1 (a handful of rows is not certainty).
        let x = blocks.iter().map(|b| b.0 / b.2).collect();
        let y = blocks
            .iter()
            .map(|b| (b.1 / b.2).clamp(0.001, 0.999))
            .collect();
        Isotonic { x, y }
    }

    pub fn apply(&self, s: f64) -> f64 {
        let n = self.x.len();
        if n == 0 {
            return s;
        }
        if s <= self.x[0] {
            return self.y[0];
        }
        if s >= self.x[n - 1] {
            return self.y[n - 1];
        }
        let j = self.x.partition_point(|&x| x <= s);
        let (x0, x1, y0, y1) = (self.x[j - 1], self.x[j], self.y[j - 1], self.y[j]);
        if x1 > x0 {
            y0 + (y1 - y0) * (s - x0) / (x1 - x0)
        } else {
            y0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_violators_and_is_monotone() {
        let s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let y = [0.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        let c = Isotonic::fit(&s, &y);
        for w in c.y.windows(2) {
            assert!(w[0] <= w[1]);
        }
        assert_eq!(c.apply(0.0), 0.001);
        assert_eq!(c.apply(1.0), 0.999);
        // 0.2 and 0.3 and 0.4 pool to 1/3 (with 0.1 at 0).
        assert!((c.apply(0.3) - 1.0 / 3.0).abs() < 1e-9);
        let mut last = 0.0;
        for k in 0..=100 {
            let v = c.apply(k as f64 / 100.0);
            assert!(v >= last);
            last = v;
        }
    }
}
