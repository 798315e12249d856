//! Fairness of a model across groups: of reps (region, team, tenure, any
//! attribute the user brings) and of customers (industry, size, location).
//!
//! Read from a model's *held-out* predictions (its test window, split by
//! time: scores of deals it never saw, with their outcomes), so a group's
//! figures say how the model treats that group on new data.
//!
//! Per group: rows, outcome rate, mean prediction, selection rate (share of
//! rows scored at or above the decision threshold), true- and false-positive
//! rates, the calibration gap (observed minus predicted) and ECE. Across
//! groups: demographic parity difference and ratio and the equalized-odds
//! difference (Hardt, Price and Srebro 2016), as fairlearn defines them
//! (largest minus smallest group figure; smallest over largest).
//!
//! **Flags** are raised for what the model adds to the outcomes, not for
//! what the outcomes themselves differ by (a group of new hires wins less
//! because it sells less well, and a model that says so is right):
//!
//! - **calibration**: a group's calibration gap differs from the other
//!   rows' by more than [`Thresholds::calibration_gap`], clearly (a
//!   two-sided test at [`Thresholds::alpha`] shared among the attribute's
//!   groups, Bonferroni; standard errors clustered by deal, since one deal
//!   gives one row per weekly snapshot): the scores mean something
//!   different for this group, the signature of a biased record. A model
//!   off for everyone alike is the accuracy monitor's matter, not this;
//! - **four-fifths**: a group is given the favourable prediction at less
//!   than four-fifths of the rate of the most-favoured group (the EEOC's
//!   adverse-impact rule of thumb, 29 CFR 1607.4(D)), and the model is
//!   miscalibrated against it as above. Scores calibrated within every
//!   group still select groups whose outcomes differ at rates further
//!   apart than the outcomes (how scores fall around the threshold), so a
//!   ratio under four-fifths alone is listed, not flagged;
//! - **equalized odds**: a group's true- or false-positive rate differs
//!   from the rest's by more than [`Thresholds::equalized_odds`], clearly,
//!   and the group is also miscalibrated in the direction that explains it.
//!
//! Every disparity past a threshold is listed (`disparities`) with whether
//! the outcomes explain it, so nothing is hidden by the flag rule.
//!
//! Groups with fewer than [`Thresholds::min_rows`] rows or
//! [`Thresholds::min_clusters`] deals are shown but not judged.

use std::collections::BTreeMap;
use std::collections::HashMap;

use serde::Serialize;

/// One held-out prediction.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row's group (`None`: not known, left out).
    pub group: Option<String>,
    /// The predicted probability of the label, 0-1.
    pub p: f64,
    /// The outcome, 0 or 1.
    pub y: f64,
    /// Rows of one cluster (one deal's snapshots) are not independent.
    pub cluster: u64,
}

/// The stated thresholds.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Thresholds {
    /// A score at or above is a positive prediction (0.5).
    pub decision: f64,
    /// Whether a positive prediction is the favourable one (a predicted win:
    /// yes; a predicted slip: no, on time is favourable).
    pub positive_is_favourable: bool,
    /// The adverse-impact ratio below which a group is under-selected (0.8).
    pub four_fifths: f64,
    /// Absolute calibration gap, in probability, past which a group is
    /// miscalibrated (0.05).
    pub calibration_gap: f64,
    /// True- or false-positive rate difference past which error rates differ (0.10).
    pub equalized_odds: f64,
    /// Family-wise significance level per attribute (0.01), shared among
    /// its judged groups (Bonferroni: with 4 groups a difference needs
    /// p ≤ 0.0025), each test a t test on clustered standard errors.
    pub alpha: f64,
    /// Rows and clusters (reps, accounts) a group needs to be judged (200 and 5).
    pub min_rows: usize,
    pub min_clusters: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            decision: 0.5,
            positive_is_favourable: true,
            four_fifths: 0.8,
            calibration_gap: 0.05,
            equalized_odds: 0.10,
            alpha: 0.01,
            min_rows: 200,
            min_clusters: 5,
        }
    }
}

/// One group's figures.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupStats {
    pub group: String,
    pub rows: usize,
    /// Distinct clusters: the reps of a rep group, the accounts of a
    /// customer group (as the caller clusters the rows).
    pub clusters: usize,
    /// Share of rows whose outcome is 1.
    pub outcome_rate: f64,
    pub mean_predicted: f64,
    /// Share of rows predicted positive (score ≥ the decision threshold).
    pub selection_rate: f64,
    /// Share given the favourable prediction (the selection rate, or one
    /// minus it when the positive prediction is the adverse one).
    pub favourable_rate: f64,
    /// Favourable rate over the most-favoured judged group's (the
    /// adverse-impact ratio; 1 for that group).
    pub impact_ratio: Option<f64>,
    /// The same ratio of favourable outcomes: what the outcomes alone would give.
    pub outcome_ratio: Option<f64>,
    /// Favourable-prediction rate minus favourable-outcome rate.
    pub favoured_beyond_outcomes: f64,
    /// Among rows with outcome 1, the share predicted positive (`None`: no such row).
    pub true_positive_rate: Option<f64>,
    /// Among rows with outcome 0, the share predicted positive.
    pub false_positive_rate: Option<f64>,
    /// Observed minus predicted (positive: the model under-predicts the group).
    pub calibration_gap: f64,
    /// Its standard error, clustered.
    pub calibration_gap_se: Option<f64>,
    /// The group's calibration gap minus the other judged groups' rows'
    /// (what the model does differently for this group, whatever its error
    /// for everyone), leaving out a group clearly off.
    pub relative_gap: Option<f64>,
    /// Expected calibration error within the group (10 equal-width bins).
    pub ece: f64,
    /// Whether the group has the rows and clusters to be judged.
    pub judged: bool,
}

/// A disparity past a threshold, and whether it is flagged.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Disparity {
    pub group: String,
    /// `calibration`, `four_fifths`, `equalized_odds` or `record`.
    pub metric: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// The difference over its clustered standard error (a t statistic).
    pub z: f64,
    /// Two-sided p-value of the difference (Student's t, degrees of
    /// freedom from the clusters); flagged at most the attribute's
    /// share of [`Thresholds::alpha`].
    pub p_value: f64,
    /// A flag: clear, and not explained by the group's outcomes.
    pub flagged: bool,
    /// In words, with the figures.
    pub message: String,
}

/// The fairness of one model across the groups of one attribute.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Audit {
    pub attribute: String,
    pub groups: Vec<GroupStats>,
    /// Rows whose group is not known (left out).
    pub unknown_rows: usize,
    /// Largest minus smallest selection rate over judged groups.
    pub demographic_parity_difference: Option<f64>,
    /// Smallest over largest selection rate.
    pub demographic_parity_ratio: Option<f64>,
    /// The larger of the largest true-positive-rate and false-positive-rate
    /// differences between judged groups.
    pub equalized_odds_difference: Option<f64>,
    pub disparities: Vec<Disparity>,
    /// Whether any disparity is flagged.
    pub flagged: bool,
}

#[derive(Default)]
struct Acc {
    rows: Vec<(f64, f64, u64)>,
}

/// Clustered standard error of the mean of `v` (one value per row, rows
/// grouped by `cluster`): sqrt(Σ_c (Σ_{i∈c} (v_i − mean))²) / n.
fn clustered_se(v: &[(f64, u64)]) -> f64 {
    let n = v.len() as f64;
    if v.len() < 2 {
        return f64::INFINITY;
    }
    let mean = v.iter().map(|x| x.0).sum::<f64>() / n;
    let mut by: HashMap<u64, f64> = HashMap::new();
    for &(x, c) in v {
        *by.entry(c).or_default() += x - mean;
    }
    let ss: f64 = by.values().map(|s| s * s).sum();
    // Small-sample correction as in Stata's `vce(cluster)`: G / (G - 1).
    let g = by.len() as f64;
    let adj = if g > 1.0 { g / (g - 1.0) } else { 1.0 };
    (ss * adj).sqrt() / n
}

fn ece(rows: &[(f64, f64, u64)]) -> f64 {
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for &(p, y, _) in rows {
        let b = ((p * 10.0) as usize).min(9);
        bins[b].0 += p;
        bins[b].1 += y;
        bins[b].2 += 1;
    }
    let n = rows.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|b| (b.1 - b.0).abs() / n)
        .sum()
}

fn rate(rows: &[(f64, f64, u64)], keep: impl Fn(f64) -> bool, decision: f64) -> Option<f64> {
    let sel: Vec<bool> = rows
        .iter()
        .filter(|r| keep(r.1))
        .map(|r| r.0 >= decision)
        .collect();
    (!sel.is_empty()).then(|| sel.iter().filter(|&&s| s).count() as f64 / sel.len() as f64)
}

/// A difference's test: t (the difference over its clustered standard
/// error), degrees of freedom (the fewer clusters of the two sides, less
/// one, as Cameron and Miller (2015) advise for few clusters) and the
/// two-sided p-value under Student's t.
#[derive(Debug, Clone, Copy)]
struct Test {
    t: f64,
    df: f64,
    p: f64,
}

impl Test {
    fn words(&self) -> String {
        format!(
            "t = {:.1} with {:.0} degrees of freedom, p = {:.1e}",
            self.t, self.df, self.p
        )
    }
}

/// The test of the difference between a group's mean of `f` and the
/// rest's, clustered within each side.
fn diff_test(
    group: &[(f64, f64, u64)],
    rest: &[(f64, f64, u64)],
    f: impl Fn(&(f64, f64, u64)) -> Option<f64>,
) -> Test {
    let side = |rows: &[(f64, f64, u64)]| -> Option<(f64, f64, usize)> {
        let v: Vec<(f64, u64)> = rows.iter().filter_map(|r| Some((f(r)?, r.2))).collect();
        if v.len() < 2 {
            return None;
        }
        let mean = v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
        let mut c: Vec<u64> = v.iter().map(|x| x.1).collect();
        c.sort_unstable();
        c.dedup();
        Some((mean, clustered_se(&v), c.len()))
    };
    let none = Test {
        t: 0.0,
        df: 1.0,
        p: 1.0,
    };
    match (side(group), side(rest)) {
        (Some((m1, s1, g1)), Some((m2, s2, g2))) => {
            let se = (s1 * s1 + s2 * s2).sqrt();
            let df = (g1.min(g2) as f64 - 1.0).max(1.0);
            let t = if se > 0.0 {
                (m1 - m2).abs() / se
            } else if m1 != m2 {
                f64::INFINITY
            } else {
                0.0
            };
            Test {
                t,
                df,
                p: student_t_two_sided(t, df),
            }
        }
        _ => none,
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error under 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function I_x(a, b) (Numerical Recipes'
/// continued fraction, 6.4).
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    let cf = |x: f64, a: f64, b: f64| -> f64 {
        let tiny = 1e-300;
        let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
        let mut c = 1.0;
        let mut d = 1.0 - qab * x / qap;
        if d.abs() < tiny {
            d = tiny;
        }
        d = 1.0 / d;
        let mut h = d;
        for m in 1..300 {
            let m = m as f64;
            let m2 = 2.0 * m;
            let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
            d = 1.0 + aa * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + aa / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            h *= d * c;
            let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
            d = 1.0 + aa * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + aa / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-14 {
                break;
            }
        }
        h
    };
    if x < (a + 1.0) / (a + b + 2.0) {
        front * cf(x, a, b) / a
    } else {
        1.0 - front * cf(1.0 - x, b, a) / b
    }
}

/// Two-sided tail probability of Student's t with `df` degrees of freedom.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    incomplete_beta(df / (df + t * t), df / 2.0, 0.5).clamp(0.0, 1.0)
}

type Rows = Vec<(f64, f64, u64)>;

/// Each judged group's mean of `f` against the other judged groups', set
/// against an outlier: the most extreme clear difference (at least
/// `min_diff`, p at most `alpha`) is set aside and the rest compared
/// again without it, until no clear difference is left; every group is
/// then compared with the groups not set aside. So one biased group does
/// not make all the others look biased the other way. Returns per group
/// (difference, z, set aside).
fn robust_differences(
    by: &BTreeMap<String, Rows>,
    judged: &[String],
    f: impl Fn(&(f64, f64, u64)) -> Option<f64> + Copy,
    min_diff: f64,
    alpha: f64,
) -> HashMap<String, (f64, Test, bool)> {
    let mean = |rows: &[(f64, f64, u64)]| -> f64 {
        let v: Vec<f64> = rows.iter().filter_map(f).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let compare = |g: &str, outliers: &[String]| -> Option<(f64, Test)> {
        let mut reference: Vec<&String> = judged
            .iter()
            .filter(|k| k.as_str() != g && !outliers.contains(k))
            .collect();
        if reference.is_empty() {
            reference = judged.iter().filter(|k| k.as_str() != g).collect();
        }
        if reference.is_empty() {
            return None;
        }
        let rest: Rows = reference
            .iter()
            .flat_map(|k| by[k.as_str()].iter().copied())
            .collect();
        let mine = &by[g];
        Some((mean(mine) - mean(&rest), diff_test(mine, &rest, f)))
    };
    let mut outliers: Vec<String> = Vec::new();
    loop {
        // The largest clear difference; between two groups (whose
        // differences mirror each other) the one further from zero itself.
        let mut best: Option<(String, f64, f64)> = None;
        for g in judged.iter().filter(|g| !outliers.contains(g)) {
            if let Some((d, test)) = compare(g, &outliers)
                && d.abs() >= min_diff
                && test.p <= alpha
            {
                let own = mean(&by[g]).abs();
                let key = ((d.abs() * 1e6).round(), own);
                if best
                    .as_ref()
                    .is_none_or(|b| key.0 > b.1 || (key.0 == b.1 && key.1 > b.2))
                {
                    best = Some((g.clone(), key.0, key.1));
                }
            }
        }
        let best = best.map(|b| (b.0, b.1));
        match best {
            // Keep at least two groups as the yardstick.
            Some((g, _)) if outliers.len() + 2 < judged.len() => outliers.push(g),
            Some((g, _)) if outliers.is_empty() => {
                outliers.push(g);
                break;
            }
            _ => break,
        }
    }
    judged
        .iter()
        .filter_map(|g| {
            let (d, test) = compare(g, &outliers)?;
            Some((g.clone(), (d, test, outliers.contains(g))))
        })
        .collect()
}

/// Audits held-out predictions across the groups of `attribute`.
pub fn audit(attribute: &str, rows: &[Row], th: &Thresholds) -> Audit {
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    let mut unknown = 0usize;
    for r in rows {
        if !(r.p.is_finite() && r.y.is_finite()) {
            continue;
        }
        match &r.group {
            Some(g) if !g.trim().is_empty() => by
                .entry(g.trim().to_string())
                .or_default()
                .rows
                .push((r.p, r.y, r.cluster)),
            _ => unknown += 1,
        }
    }
    let fav = |sel: f64| {
        if th.positive_is_favourable {
            sel
        } else {
            1.0 - sel
        }
    };
    let fav_outcome = |o: f64| {
        if th.positive_is_favourable {
            o
        } else {
            1.0 - o
        }
    };
    let mut groups: Vec<GroupStats> = by
        .iter()
        .map(|(g, acc)| {
            let r = &acc.rows;
            let n = r.len() as f64;
            let clusters = {
                let mut c: Vec<u64> = r.iter().map(|x| x.2).collect();
                c.sort_unstable();
                c.dedup();
                c.len()
            };
            let outcome_rate = r.iter().map(|x| x.1).sum::<f64>() / n;
            let mean_predicted = r.iter().map(|x| x.0).sum::<f64>() / n;
            let selection_rate = rate(r, |_| true, th.decision).unwrap_or(0.0);
            let resid: Vec<(f64, u64)> = r.iter().map(|x| (x.1 - x.0, x.2)).collect();
            GroupStats {
                group: g.clone(),
                rows: r.len(),
                clusters,
                outcome_rate,
                mean_predicted,
                selection_rate,
                favourable_rate: fav(selection_rate),
                favoured_beyond_outcomes: fav(selection_rate) - fav_outcome(outcome_rate),
                impact_ratio: None,
                outcome_ratio: None,
                true_positive_rate: rate(r, |y| y > 0.5, th.decision),
                false_positive_rate: rate(r, |y| y <= 0.5, th.decision),
                calibration_gap: outcome_rate - mean_predicted,
                // One cluster has no spread to measure.
                calibration_gap_se: (clusters >= 2).then(|| clustered_se(&resid)),
                relative_gap: None,
                ece: ece(r),
                judged: r.len() >= th.min_rows && clusters >= th.min_clusters,
            }
        })
        .collect();
    let judged: Vec<&GroupStats> = groups.iter().filter(|g| g.judged).collect();
    let alpha_k = th.alpha / judged.len().max(1) as f64;
    let top = judged
        .iter()
        .max_by(|a, b| a.favourable_rate.total_cmp(&b.favourable_rate))
        .map(|g| {
            (
                g.group.clone(),
                g.favourable_rate,
                fav_outcome(g.outcome_rate),
            )
        });
    let spread = |f: &dyn Fn(&GroupStats) -> Option<f64>| -> Option<(f64, f64)> {
        let v: Vec<f64> = judged.iter().filter_map(|g| f(g)).collect();
        if v.len() < 2 {
            return None;
        }
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((lo, hi))
    };
    let dp = spread(&|g| Some(g.selection_rate));
    let tpr = spread(&|g| g.true_positive_rate);
    let fpr = spread(&|g| g.false_positive_rate);
    let eo = match (tpr, fpr) {
        (Some(a), Some(b)) => Some((a.1 - a.0).max(b.1 - b.0)),
        (Some(a), None) => Some(a.1 - a.0),
        (None, Some(b)) => Some(b.1 - b.0),
        _ => None,
    };
    if let Some((_, top_fav, top_out)) = &top {
        for g in groups.iter_mut() {
            g.impact_ratio = (*top_fav > 0.0).then(|| g.favourable_rate / top_fav);
            g.outcome_ratio = (*top_out > 0.0).then(|| fav_outcome(g.outcome_rate) / top_out);
        }
    }
    let judged_names: Vec<String> = groups
        .iter()
        .filter(|g| g.judged)
        .map(|g| g.group.clone())
        .collect();
    // Calibration against the other groups' (a model off for everyone is
    // the accuracy monitor's matter, not fairness), set against outliers.
    let rows_by: BTreeMap<String, Rows> = by
        .iter()
        .map(|(k, a)| (k.clone(), a.rows.clone()))
        .collect();
    let calibration = robust_differences(
        &rows_by,
        &judged_names,
        |r| Some(r.1 - r.0),
        th.calibration_gap,
        alpha_k,
    );
    let mut disparities = Vec::new();
    for g in groups.iter().filter(|g| g.judged) {
        let mine = &by[&g.group].rows;
        // The other judged groups (a tiny group is no yardstick).
        let rest: Vec<(f64, f64, u64)> = judged_names
            .iter()
            .filter(|k| **k != g.group)
            .flat_map(|k| by[k].rows.iter().copied())
            .collect();
        let Some(&(rel, cal_test, miscalibrated)) = calibration.get(&g.group) else {
            continue;
        };
        if rel.abs() > th.calibration_gap {
            disparities.push(Disparity {
                group: g.group.clone(),
                metric: "calibration",
                value: rel,
                threshold: th.calibration_gap,
                z: cal_test.t,
                p_value: cal_test.p,
                flagged: miscalibrated,
                message: format!(
                    "{}: observed rate {:.1}% against {:.1}% predicted, {} by {:.1} points more than the other groups ({}{})",
                    g.group,
                    100.0 * g.outcome_rate,
                    100.0 * g.mean_predicted,
                    if rel > 0.0 {
                        "the model under-predicts the group"
                    } else {
                        "the model over-predicts the group"
                    },
                    100.0 * rel.abs(),
                    cal_test.words(),
                    if miscalibrated {
                        String::new()
                    } else {
                        format!("; {alpha_k:.2e} needed: not clear at this sample size")
                    }
                ),
            });
        }
        // Four-fifths: checked for every group; flagged when the model is
        // what disfavours the group (it is miscalibrated against it, beyond
        // the other groups). Scores calibrated within each group can still
        // select groups at rates further apart than their outcomes (how
        // scores fall around the threshold), so the ratios alone do not
        // say the model is at fault.
        let disfavoured = miscalibrated
            && if th.positive_is_favourable {
                rel > 0.0
            } else {
                rel < 0.0
            };
        if let Some(impact_ratio) = g.impact_ratio.filter(|r| *r < th.four_fifths) {
            let flagged = disfavoured;
            disparities.push(Disparity {
                group: g.group.clone(),
                metric: "four_fifths",
                value: impact_ratio,
                threshold: th.four_fifths,
                z: cal_test.t,
                p_value: cal_test.p,
                flagged,
                message: format!(
                    "{}: favourable prediction at {:.0}% of the rate of {} (four-fifths rule: 80%); its favourable outcomes at {:.0}%{}",
                    g.group,
                    100.0 * impact_ratio,
                    top.as_ref().map_or("", |t| t.0.as_str()),
                    100.0 * g.outcome_ratio.unwrap_or(f64::NAN),
                    if flagged {
                        ", and the model's scores are off against the group beyond the other groups': the model adds to the gap"
                    } else {
                        "; the group's scores are not shown to be off against it, so the gap follows its outcomes and how its scores fall around the threshold"
                    }
                ),
            });
        }
        // Equalized odds: this group's error rates against the rest's.
        let rest_tpr = rate(&rest, |y| y > 0.5, th.decision);
        let rest_fpr = rate(&rest, |y| y <= 0.5, th.decision);
        for (name, mine_rate, rest_rate, label) in [
            ("true-positive", g.true_positive_rate, rest_tpr, 1.0),
            ("false-positive", g.false_positive_rate, rest_fpr, 0.0),
        ] {
            let (Some(a), Some(b)) = (mine_rate, rest_rate) else {
                continue;
            };
            let d = a - b;
            if d.abs() <= th.equalized_odds {
                continue;
            }
            let test = diff_test(mine, &rest, |r| {
                ((r.1 > 0.5) == (label > 0.5)).then(|| f64::from(u8::from(r.0 >= th.decision)))
            });
            // Explained by calibration: scores that are right for the group
            // give it different error rates when its outcomes differ. The
            // model is at fault when the group is miscalibrated the way that
            // produces the difference (under-predicted and under-selected).
            let fault = miscalibrated && (d < 0.0) == (rel > 0.0);
            let flagged = fault && test.p <= alpha_k;
            disparities.push(Disparity {
                group: g.group.clone(),
                metric: "equalized_odds",
                value: d,
                threshold: th.equalized_odds,
                z: test.t,
                p_value: test.p,
                flagged,
                message: format!(
                    "{}: {name} rate {:.1}% against {:.1}% for the rest{}",
                    g.group,
                    100.0 * a,
                    100.0 * b,
                    if flagged {
                        ", and the group is miscalibrated the way that causes it"
                    } else if miscalibrated || test.p > alpha_k {
                        ": not clear, or not from miscalibration"
                    } else {
                        ": the group is not shown to be miscalibrated, so its different outcomes explain it"
                    }
                ),
            });
        }
    }
    for g in groups.iter_mut() {
        if let Some(c) = calibration.get(&g.group) {
            g.relative_gap = Some(c.0);
        }
    }
    let flagged = disparities.iter().any(|d| d.flagged);
    groups.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.group.cmp(&b.group)));
    Audit {
        attribute: attribute.to_string(),
        groups,
        unknown_rows: unknown,
        demographic_parity_difference: dp.map(|(lo, hi)| hi - lo),
        demographic_parity_ratio: dp.map(|(lo, hi)| if hi > 0.0 { lo / hi } else { 1.0 }),
        equalized_odds_difference: eo,
        disparities,
        flagged,
    }
}

/// One snapshot of an open deal: the group, the entered stage minus the
/// stage its evidence supports (the evidence-stage engine's expected
/// stage), and the deal (the cluster).
#[derive(Debug, Clone)]
pub struct GapRow {
    pub group: Option<String>,
    pub gap: f64,
    pub ahead: bool,
    pub behind: bool,
    pub cluster: u64,
}

/// One group's record: how far its entered stages run from the evidence.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordGroup {
    pub group: String,
    pub snapshots: usize,
    /// Distinct clusters: the reps of a rep group, the accounts of a
    /// customer group.
    pub clusters: usize,
    /// Mean entered minus evidence stage, in stages.
    pub mean_gap: f64,
    pub mean_gap_se: f64,
    /// The mean gap minus the other judged groups' (in stages), leaving
    /// out a group whose record clearly differs.
    pub relative_gap: Option<f64>,
    /// Share of snapshots flagged ahead of / behind the evidence.
    pub share_ahead: f64,
    pub share_behind: f64,
    pub judged: bool,
}

/// Whether one attribute's groups enter their stages alike: a group whose
/// entered stages run ahead of (or behind) the evidence more than the other
/// groups' is a biased record, whatever any model makes of it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordAudit {
    pub attribute: String,
    pub groups: Vec<RecordGroup>,
    pub unknown_rows: usize,
    pub disparities: Vec<Disparity>,
    pub flagged: bool,
}

/// Stages a group's mean gap must differ from the other groups' by to be
/// flagged (the evidence-stage engine's per-rep threshold).
pub const RECORD_MIN_GAP: f64 = 0.15;

/// Audits the entered-against-evidence stage gaps across the groups of
/// `attribute`: flagged when a judged group's mean gap differs from the
/// other judged groups' by at least [`RECORD_MIN_GAP`] stages, clearly (the
/// same test and sizes as [`audit`]).
pub fn record_audit(attribute: &str, rows: &[GapRow], th: &Thresholds) -> RecordAudit {
    let mut by: BTreeMap<String, Vec<&GapRow>> = BTreeMap::new();
    let mut unknown = 0;
    for r in rows.iter().filter(|r| r.gap.is_finite()) {
        match &r.group {
            Some(g) if !g.trim().is_empty() => by.entry(g.trim().to_string()).or_default().push(r),
            _ => unknown += 1,
        }
    }
    let mut groups: Vec<RecordGroup> = by
        .iter()
        .map(|(g, v)| {
            let mut c: Vec<u64> = v.iter().map(|r| r.cluster).collect();
            c.sort_unstable();
            c.dedup();
            let n = v.len() as f64;
            let vals: Vec<(f64, u64)> = v.iter().map(|r| (r.gap, r.cluster)).collect();
            RecordGroup {
                group: g.clone(),
                snapshots: v.len(),
                clusters: c.len(),
                mean_gap: v.iter().map(|r| r.gap).sum::<f64>() / n,
                mean_gap_se: clustered_se(&vals),
                relative_gap: None,
                share_ahead: v.iter().filter(|r| r.ahead).count() as f64 / n,
                share_behind: v.iter().filter(|r| r.behind).count() as f64 / n,
                judged: v.len() >= th.min_rows && c.len() >= th.min_clusters,
            }
        })
        .collect();
    let judged: Vec<String> = groups
        .iter()
        .filter(|g| g.judged)
        .map(|g| g.group.clone())
        .collect();
    let alpha_k = th.alpha / judged.len().max(1) as f64;
    let as_rows = |k: &str| -> Vec<(f64, f64, u64)> {
        by[k].iter().map(|r| (0.0, r.gap, r.cluster)).collect()
    };
    let rows_by: BTreeMap<String, Rows> = by.keys().map(|k| (k.clone(), as_rows(k))).collect();
    let diffs = robust_differences(&rows_by, &judged, |r| Some(r.1), RECORD_MIN_GAP, alpha_k);
    let mut disparities = Vec::new();
    for g in groups.iter_mut() {
        let Some(&(d, test, flagged)) = diffs.get(&g.group) else {
            continue;
        };
        g.relative_gap = Some(d);
        if d.abs() < RECORD_MIN_GAP {
            continue;
        }
        disparities.push(Disparity {
            group: g.group.clone(),
            metric: "record",
            value: d,
            threshold: RECORD_MIN_GAP,
            z: test.t,
            p_value: test.p,
            flagged,
            message: format!(
                "{}: entered stages run {:.2} stages {} the evidence, {:.2} {} than the other groups' ({:.0}% of snapshots ahead, {:.0}% behind; {}{})",
                g.group,
                g.mean_gap.abs(),
                if g.mean_gap >= 0.0 { "ahead of" } else { "behind" },
                d.abs(),
                if d > 0.0 { "further ahead" } else { "further behind" },
                100.0 * g.share_ahead,
                100.0 * g.share_behind,
                test.words(),
                if flagged {
                    String::new()
                } else {
                    format!("; {alpha_k:.2e} needed: not clear at this sample size")
                }
            ),
        });
    }
    groups.sort_by(|a, b| b.snapshots.cmp(&a.snapshots).then(a.group.cmp(&b.group)));
    RecordAudit {
        attribute: attribute.to_string(),
        groups,
        unknown_rows: unknown,
        flagged: disparities.iter().any(|d| d.flagged),
        disparities,
    }
}

/// How often one recommendation (a coaching skill) is made in one group of
/// reps, against the other reps.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecommendationRate {
    pub recommendation: String,
    pub group: String,
    /// Reps in the group, and how many got the recommendation.
    pub reps: usize,
    pub recommended: usize,
    pub rate: f64,
    /// The rate among the other reps.
    pub rest_rate: f64,
    /// Rate over the rest's (∞ printed as null when the rest's is 0).
    pub ratio: Option<f64>,
    /// Two-sided Fisher exact test of the 2×2 table (group or not, recommended or not).
    pub p_value: f64,
    /// Outside the four-fifths band (ratio below 0.8 or above 1.25) and
    /// p < 0.01.
    pub flagged: bool,
}

/// The rate of each recommendation by group (coaching's fairness): `reps`
/// holds each rep's group (`None`: unknown, left out) and the
/// recommendations made to them.
pub fn recommendation_rates(reps: &[(Option<String>, Vec<String>)]) -> Vec<RecommendationRate> {
    let known: Vec<(&str, &Vec<String>)> = reps
        .iter()
        .filter_map(|(g, r)| Some((g.as_deref()?, r)))
        .collect();
    let mut groups: Vec<&str> = known.iter().map(|k| k.0).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut recs: Vec<&str> = known
        .iter()
        .flat_map(|k| k.1.iter().map(String::as_str))
        .collect();
    recs.sort_unstable();
    recs.dedup();
    let mut out = Vec::new();
    for rec in &recs {
        for g in &groups {
            let (mut a, mut b, mut c, mut d) = (0usize, 0usize, 0usize, 0usize);
            for (gg, r) in &known {
                let has = r.iter().any(|x| x == rec);
                match (gg == g, has) {
                    (true, true) => a += 1,
                    (true, false) => b += 1,
                    (false, true) => c += 1,
                    (false, false) => d += 1,
                }
            }
            let rate = a as f64 / (a + b).max(1) as f64;
            let rest_rate = c as f64 / (c + d).max(1) as f64;
            let ratio = (rest_rate > 0.0).then(|| rate / rest_rate);
            let p_value = fisher_exact(a, b, c, d);
            let outside = match ratio {
                Some(r) => !(0.8..=1.25).contains(&r),
                None => rate > 0.0,
            };
            out.push(RecommendationRate {
                recommendation: rec.to_string(),
                group: g.to_string(),
                reps: a + b,
                recommended: a,
                rate,
                rest_rate,
                ratio,
                p_value,
                flagged: outside && p_value < 0.01,
            });
        }
    }
    out
}

fn ln_factorial(n: usize) -> f64 {
    (1..=n).map(|k| (k as f64).ln()).sum()
}

/// Two-sided Fisher exact test of [[a, b], [c, d]]: the probability, with
/// the margins fixed, of a table no more likely than the one seen.
pub fn fisher_exact(a: usize, b: usize, c: usize, d: usize) -> f64 {
    let (r1, r2, c1) = (a + b, c + d, a + c);
    let n = r1 + r2;
    let lp = |x: usize| -> f64 {
        ln_factorial(r1) + ln_factorial(r2) + ln_factorial(c1) + ln_factorial(n - c1)
            - ln_factorial(n)
            - ln_factorial(x)
            - ln_factorial(r1 - x)
            - ln_factorial(c1 - x)
            - ln_factorial(r2 + x - c1)
    };
    let lo = c1.saturating_sub(r2);
    let hi = r1.min(c1);
    let seen = lp(a);
    let mut p = 0.0;
    for x in lo..=hi {
        let l = lp(x);
        if l <= seen + 1e-7 {
            p += l.exp();
        }
    }
    p.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(group: &str, n: usize, p: f64, rate: f64, seed: u64) -> Vec<Row> {
        // Deterministic outcomes at the given rate, one cluster per 5 rows.
        let mut out = Vec::new();
        let mut acc = 0.0;
        for i in 0..n {
            acc += rate;
            let y = if acc >= 1.0 {
                acc -= 1.0;
                1.0
            } else {
                0.0
            };
            // Spread the scores around p so thresholds cut inside the group.
            let jitter = ((i * 7 + seed as usize) % 11) as f64 / 10.0 - 0.5;
            out.push(Row {
                group: Some(group.into()),
                p: (p + 0.3 * jitter + 0.2 * (y - rate)).clamp(0.01, 0.99),
                y,
                cluster: seed * 1_000_000 + (i / 5) as u64,
            });
        }
        out
    }

    #[test]
    fn a_calibrated_model_raises_no_flag_even_when_outcomes_differ() {
        let mut r = rows("veterans", 2000, 0.6, 0.6, 1);
        r.extend(rows("new hires", 2000, 0.35, 0.35, 2));
        let a = audit("tenure", &r, &Thresholds::default());
        assert!(!a.flagged, "{:#?}", a.disparities);
        // The disparity is there and said to be explained by the outcomes.
        let ff = a
            .disparities
            .iter()
            .find(|d| d.metric == "four_fifths")
            .expect("new hires are selected far less");
        assert!(
            ff.message.contains("follows its outcomes"),
            "{}",
            ff.message
        );
        assert!(!ff.flagged);
        assert!(a.demographic_parity_difference.unwrap() > 0.2);
    }

    #[test]
    fn an_under_predicted_group_is_flagged() {
        let mut r = rows("EMEA", 2000, 0.4, 0.6, 1);
        r.extend(rows("APAC", 2000, 0.6, 0.6, 2));
        let a = audit("region", &r, &Thresholds::default());
        assert!(a.flagged);
        let cal = a
            .disparities
            .iter()
            .find(|d| d.metric == "calibration" && d.group == "EMEA")
            .unwrap();
        assert!(cal.flagged && cal.value > 0.15, "{cal:?}");
        assert!(
            a.disparities
                .iter()
                .any(|d| d.metric == "four_fifths" && d.group == "EMEA" && d.flagged)
        );
        assert!(
            !a.disparities
                .iter()
                .any(|d| d.group == "APAC" && d.flagged && d.metric == "four_fifths")
        );
    }

    #[test]
    fn small_groups_are_shown_but_not_judged() {
        let mut r = rows("big", 2000, 0.5, 0.5, 1);
        r.extend(rows("tiny", 40, 0.1, 0.9, 2));
        let a = audit("team", &r, &Thresholds::default());
        let tiny = a.groups.iter().find(|g| g.group == "tiny").unwrap();
        assert!(!tiny.judged);
        assert!(!a.flagged);
        assert!(a.demographic_parity_difference.is_none());
    }

    #[test]
    fn student_t_matches_the_tables() {
        // R: 2 * pt(-2, 10) = 0.07338803; 2 * pt(-3, 7) = 0.01994213
        assert!((student_t_two_sided(2.0, 10.0) - 0.07338803).abs() < 1e-6);
        assert!((student_t_two_sided(3.0, 7.0) - 0.01994213).abs() < 1e-6);
        // Many degrees of freedom: the normal's 5%.
        assert!((student_t_two_sided(1.959964, 1e7) - 0.05).abs() < 1e-5);
        assert_eq!(student_t_two_sided(0.0, 5.0), 1.0);
    }

    #[test]
    fn a_model_off_for_everyone_alike_raises_no_fairness_flag() {
        let mut r = rows("A", 3000, 0.7, 0.5, 1);
        r.extend(rows("B", 3000, 0.7, 0.5, 2));
        let a = audit("region", &r, &Thresholds::default());
        assert!(!a.flagged, "{:#?}", a.disparities);
        assert!(
            a.groups
                .iter()
                .all(|g| g.calibration_gap < -0.15 && g.relative_gap.unwrap_or(0.0).abs() < 0.01)
        );
    }

    #[test]
    fn fisher_exact_matches_a_known_value() {
        // R: fisher.test(matrix(c(3,1,1,3),2))$p.value = 0.4857143
        assert!((fisher_exact(3, 1, 1, 3) - 0.4857143).abs() < 1e-6);
        // fisher.test(matrix(c(10,0,0,10),2))$p.value = 1.082509e-05
        assert!((fisher_exact(10, 0, 0, 10) - 1.082509e-05).abs() < 1e-9);
        let r = recommendation_rates(&[
            (Some("A".into()), vec!["closing".into()]),
            (Some("B".into()), vec![]),
        ]);
        assert_eq!(r.len(), 2);
        assert!(!r.iter().any(|x| x.flagged));
    }
}
