//! Drift of a model's inputs: each feature's distribution in a reference
//! window (what the model was trained on) against a recent one.
//!
//! Per feature: the population stability index (PSI; Siddiqi 2006, *Credit
//! Risk Scorecards*, the banking convention: under 0.1 stable, 0.1 to 0.2 a
//! moderate shift, over 0.2 a shift to act on) over the reference's deciles
//! (numeric) or its categories (categorical), with missing values a bin of
//! their own; the Jensen-Shannon distance on the same bins (base 2, 0 to
//! 1); and for numeric features the Wasserstein-1 distance, in units of the
//! reference's standard deviation.

use std::collections::HashMap;

use pipewise_core::table::Column;
use serde::Serialize;

/// PSI past which a feature has moderately shifted.
pub const PSI_MODERATE: f64 = 0.1;
/// PSI past which a feature has shifted: an alert.
pub const PSI_SHIFT: f64 = 0.2;

/// Share given to an empty bin (PSI takes logarithms of shares).
const FLOOR: f64 = 1e-4;

/// How far one feature moved.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureDrift {
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    pub reference_rows: usize,
    pub recent_rows: usize,
    /// Population stability index over the reference's bins.
    pub psi: f64,
    /// Jensen-Shannon distance on the same bins (base 2: 0 to 1).
    pub js_distance: f64,
    /// Wasserstein-1 distance over the reference's standard deviation
    /// (numeric features with a spread; `None` otherwise).
    pub wasserstein_sd: Option<f64>,
    /// Share missing in each window.
    pub missing_reference: f64,
    pub missing_recent: f64,
    /// `stable`, `moderate` or `shift` (by PSI).
    pub level: &'static str,
    /// The biggest move in words (the median, or the category whose share
    /// moved most).
    pub change: String,
    /// `rep`, `industry` or `account` when every deal of one shares the
    /// value (a trailing rate, a tenure): its rows are a few dozen values
    /// repeated, each of which drifts with time, so its PSI is reported,
    /// not alerted on. `None`: a value of the deal itself.
    pub shared_by: Option<&'static str>,
}

fn level(psi: f64) -> &'static str {
    if psi > PSI_SHIFT {
        "shift"
    } else if psi > PSI_MODERATE {
        "moderate"
    } else {
        "stable"
    }
}

/// PSI and Jensen-Shannon distance of two histograms (counts per bin).
fn psi_js(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (na, nb) = (
        a.iter().sum::<f64>().max(1.0),
        b.iter().sum::<f64>().max(1.0),
    );
    let mut psi = 0.0;
    let mut js = 0.0;
    for (x, y) in a.iter().zip(b) {
        let p = (x / na).max(FLOOR);
        let q = (y / nb).max(FLOOR);
        psi += (q - p) * (q / p).ln();
        let (p0, q0) = (x / na, y / nb);
        let m = 0.5 * (p0 + q0);
        if p0 > 0.0 {
            js += 0.5 * p0 * (p0 / m).log2();
        }
        if q0 > 0.0 {
            js += 0.5 * q0 * (q0 / m).log2();
        }
    }
    (psi, js.max(0.0).sqrt())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Wasserstein-1 between two samples: the mean absolute gap between their
/// quantile functions (evaluated at 512 points).
fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let n = 512;
    (0..n)
        .map(|i| {
            let q = (i as f64 + 0.5) / n as f64;
            (quantile(a, q) - quantile(b, q)).abs()
        })
        .sum::<f64>()
        / n as f64
}

/// The drift of a numeric feature.
pub fn numeric(feature: &str, reference: &[f64], recent: &[f64]) -> FeatureDrift {
    let mut r: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    let mut c: Vec<f64> = recent.iter().copied().filter(|x| x.is_finite()).collect();
    r.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    // Bin edges: the reference's deciles, without repeats (a feature that
    // is mostly 0 has few distinct edges).
    let mut edges: Vec<f64> = (1..10).map(|k| quantile(&r, k as f64 / 10.0)).collect();
    edges.retain(|e| e.is_finite());
    edges.dedup();
    let bin = |x: f64| -> usize {
        if !x.is_finite() {
            return edges.len() + 1;
        }
        edges.partition_point(|&e| e < x)
    };
    let mut ha = vec![0.0; edges.len() + 2];
    let mut hb = vec![0.0; edges.len() + 2];
    for &x in reference {
        ha[bin(x)] += 1.0;
    }
    for &x in recent {
        hb[bin(x)] += 1.0;
    }
    let (psi, js) = psi_js(&ha, &hb);
    let mean = r.iter().sum::<f64>() / r.len().max(1) as f64;
    let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / r.len().max(1) as f64).sqrt();
    let w = (sd > 0.0 && !r.is_empty() && !c.is_empty()).then(|| wasserstein(&r, &c) / sd);
    let miss = |all: &[f64], fin: usize| 1.0 - fin as f64 / all.len().max(1) as f64;
    FeatureDrift {
        feature: feature.to_string(),
        kind: "numeric",
        reference_rows: reference.len(),
        recent_rows: recent.len(),
        psi,
        js_distance: js,
        wasserstein_sd: w,
        missing_reference: miss(reference, r.len()),
        missing_recent: miss(recent, c.len()),
        level: level(psi),
        shared_by: None,
        change: format!(
            "median {} (reference {}); missing {:.0}% (reference {:.0}%)",
            fmt(quantile(&c, 0.5)),
            fmt(quantile(&r, 0.5)),
            100.0 * miss(recent, c.len()),
            100.0 * miss(reference, r.len())
        ),
    }
}

fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// The drift of a categorical feature: one bin per category of either
/// window, and one for missing.
pub fn categorical(
    feature: &str,
    reference: &[Option<String>],
    recent: &[Option<String>],
) -> FeatureDrift {
    let mut index: HashMap<&str, usize> = HashMap::new();
    fn key(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("\u{0}missing")
    }
    for v in reference.iter().chain(recent) {
        let n = index.len();
        index.entry(key(v)).or_insert(n);
    }
    let mut ha = vec![0.0; index.len()];
    let mut hb = vec![0.0; index.len()];
    for v in reference {
        ha[index[key(v)]] += 1.0;
    }
    for v in recent {
        hb[index[key(v)]] += 1.0;
    }
    let (psi, js) = psi_js(&ha, &hb);
    let (na, nb) = (reference.len().max(1) as f64, recent.len().max(1) as f64);
    let moved = index
        .iter()
        .map(|(k, &i)| (*k, ha[i] / na, hb[i] / nb))
        .max_by(|a, b| {
            (a.2 - a.1)
                .abs()
                .total_cmp(&(b.2 - b.1).abs())
                .then(b.0.cmp(a.0))
        });
    let missing = |v: &[Option<String>]| {
        v.iter().filter(|x| x.is_none()).count() as f64 / v.len().max(1) as f64
    };
    FeatureDrift {
        feature: feature.to_string(),
        kind: "categorical",
        reference_rows: reference.len(),
        recent_rows: recent.len(),
        psi,
        js_distance: js,
        wasserstein_sd: None,
        missing_reference: missing(reference),
        missing_recent: missing(recent),
        level: level(psi),
        shared_by: None,
        change: match moved {
            Some((k, a, b)) => format!(
                "{} {:.0}% of rows (reference {:.0}%)",
                if k == "\u{0}missing" { "missing" } else { k },
                100.0 * b,
                100.0 * a
            ),
            None => String::new(),
        },
    }
}

/// The drift of every column the two tables share (by name), largest PSI
/// first.
pub fn table_drift(
    reference: &pipewise_core::table::Table,
    recent: &pipewise_core::table::Table,
    features: &[String],
) -> Vec<FeatureDrift> {
    let mut out: Vec<FeatureDrift> = features
        .iter()
        .filter_map(|f| match (reference.column(f)?, recent.column(f)?) {
            (Column::Numeric(a), Column::Numeric(b)) => Some(numeric(f, a, b)),
            (Column::Categorical(a), Column::Categorical(b)) => Some(categorical(f, a, b)),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| b.psi.total_cmp(&a.psi).then(a.feature.cmp(&b.feature)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, shift: f64) -> Vec<f64> {
        // A deterministic spread: the normal's quantiles.
        (0..n)
            .map(|i| {
                let u = (i as f64 + 0.5) / n as f64;
                // Logistic approximation of the normal quantile is enough here.
                shift + (u / (1.0 - u)).ln() * 0.6
            })
            .collect()
    }

    #[test]
    fn the_same_distribution_is_stable_and_a_shifted_one_is_not() {
        let a = sample(5000, 0.0);
        let same = numeric("x", &a, &sample(3000, 0.0));
        assert!(same.psi < 0.01 && same.level == "stable", "{same:?}");
        assert!(same.wasserstein_sd.unwrap() < 0.02);
        let moved = numeric("x", &a, &sample(3000, 0.5));
        assert_eq!(moved.level, "shift", "{moved:?}");
        // Shifted by half a (logistic-ish) unit: W1 equals the shift.
        let sd = {
            let m = a.iter().sum::<f64>() / a.len() as f64;
            (a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
        };
        assert!(
            (moved.wasserstein_sd.unwrap() - 0.5 / sd).abs() < 0.01,
            "{moved:?}"
        );
        assert!(moved.js_distance > same.js_distance);
    }

    #[test]
    fn a_new_category_and_new_missing_values_count() {
        let a: Vec<Option<String>> = (0..1000)
            .map(|i| Some(["a", "b"][i % 2].to_string()))
            .collect();
        let mut b = a.clone();
        for v in b.iter_mut().take(300) {
            *v = Some("new".into());
        }
        let d = categorical("product", &a, &b);
        assert_eq!(d.level, "shift", "{d:?}");
        assert!(d.change.starts_with("new 30%"), "{}", d.change);
        let mut m: Vec<f64> = sample(1000, 0.0);
        for v in m.iter_mut().take(400) {
            *v = f64::NAN;
        }
        let d = numeric("x", &sample(1000, 0.0), &m);
        assert_eq!(d.level, "shift", "{d:?}");
        assert!((d.missing_recent - 0.4).abs() < 1e-9);
    }

    #[test]
    fn psi_matches_a_hand_computation() {
        // Two bins, 50/50 against 70/30: PSI = 0.2 ln(1.4) + (-0.2) ln(0.6).
        let (psi, js) = psi_js(&[50.0, 50.0], &[70.0, 30.0]);
        let want = 0.2 * 1.4f64.ln() - 0.2 * 0.6f64.ln();
        assert!((psi - want).abs() < 1e-12);
        assert!(js > 0.0 && js < 1.0);
    }
}
