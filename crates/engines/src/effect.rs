//! What following the next-best actions was worth: the change in a deal's
//! win probability per recommendation the rep followed, estimated without the
//! naive comparison.
//!
//! Reps who follow the list differ from those who do not (in the simulator,
//! as commonly observed, better closers follow more), and deals that get
//! followed differ from those that do not. The estimate is a regression
//! adjustment at the deal level (a linear probability model, as in
//! Angrist & Pischke, *Mostly Harmless Econometrics*, ch. 3):
//!
//! `won = α_rep + β · followed + γ · recommended + δ · x + ε`
//!
//! over the closed deals that had recommendations, where `followed` counts
//! the recommendations the rep acted on from the list, `recommended` those
//! made, `α_rep` is one level per rep (rep fixed effects: whatever makes a
//! rep both follow and win is held fixed) and `x` is the deal as the CRM
//! showed it at its first recommendation (stage, amount, age, days in stage,
//! recent touches and meetings, the list's win probability). Within a rep and
//! given how often a deal was recommended, which recommendations were
//! followed is taken as good as random given `x`; `β` is then the effect of
//! following one more recommendation. Standard errors are
//! heteroskedasticity-robust (HC1, deals independent).

use linfa_linalg::cholesky::InverseC;
use ndarray::{Array1, Array2};
use serde::Serialize;

/// The deal features the estimate adjusts for, as of the deal's first
/// recommendation (stage levels are indicators of qualification to
/// negotiation, prospecting the base).
pub const COVARIATES: [&str; 10] = [
    "probability_logit",
    "log_amount",
    "log_age_days",
    "log_days_in_stage",
    "touches_14d",
    "meetings_30d",
    "stage_qualification",
    "stage_discovery",
    "stage_proposal",
    "stage_negotiation",
];

/// Fewer closed deals with recommendations than this: no estimate.
pub const MIN_DEALS: usize = 100;

/// One closed deal that had recommendations.
#[derive(Debug, Clone)]
pub struct DealFollowing {
    pub deal_id: String,
    pub rep_id: String,
    pub won: bool,
    /// Recommendations made on the deal (episodes whose window closed) and
    /// those followed from the list.
    pub recommended: u32,
    pub followed: u32,
    /// Recommendations acted on by any matching touch, from the list or not.
    pub acted: u32,
    /// The deal's amount at its first recommendation (currency units).
    pub amount: f64,
    /// [`COVARIATES`], in order.
    pub x: [f64; COVARIATES.len()],
}

/// The estimate ([`estimate`]).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectEstimate {
    /// Closed deals, their reps, recommendations and those followed.
    pub deals: usize,
    pub reps: usize,
    pub recommended: usize,
    pub followed: usize,
    /// The change in win probability (0-1) per recommendation followed,
    /// adjusted for rep and deal; its standard error and 95% interval.
    pub effect: f64,
    pub se: f64,
    pub ci: [f64; 2],
    /// The naive comparison: the same regression without rep and deal
    /// adjustment (won on followed and recommended only).
    pub naive: f64,
    pub naive_se: f64,
    /// Adjusted for rep only (no deal features).
    pub rep_adjusted: f64,
    /// The same model counting every recommendation acted on by a matching
    /// touch (from the list or not) as followed: what the touches alone
    /// would say (they also follow how well a deal goes).
    pub acted_on_effect: f64,
    /// `effect` × the mean amount of the deals (currency units per
    /// recommendation followed).
    pub value_per_followed: f64,
    /// The mean amount of the deals (currency units).
    pub mean_amount: f64,
}

/// Ordinary least squares of `y` on the columns of `x` (rows are
/// observations; include an intercept column). Returns the coefficients
/// and their HC1 robust standard errors; `None` when `x'x` is singular.
pub fn ols(x: &Array2<f64>, y: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let (n, p) = x.dim();
    if n <= p {
        return None;
    }
    let xtx = x.t().dot(x);
    // A ridge of 1e-9 of the mean diagonal keeps an exactly collinear
    // column (a rep with one deal) from failing the factorisation.
    let ridge = 1e-9 * (0..p).map(|j| xtx[[j, j]]).sum::<f64>() / p as f64;
    let mut a = xtx.clone();
    for j in 0..p {
        a[[j, j]] += ridge;
    }
    let inv = a.invc().ok()?;
    let yv = Array1::from(y.to_vec());
    let beta = inv.dot(&x.t().dot(&yv));
    let resid = &yv - &x.dot(&beta);
    let mut meat = Array2::<f64>::zeros((p, p));
    for i in 0..n {
        let row = x.row(i);
        let e2 = resid[i] * resid[i];
        for j in 0..p {
            let xj = row[j] * e2;
            if xj == 0.0 {
                continue;
            }
            for k in 0..p {
                meat[[j, k]] += xj * row[k];
            }
        }
    }
    let v = inv.dot(&meat).dot(&inv) * (n as f64 / (n - p) as f64);
    let se = (0..p).map(|j| v[[j, j]].max(0.0).sqrt()).collect();
    Some((beta.to_vec(), se))
}

/// The design: intercept, followed, recommended, then (with `reps`) one
/// indicator per rep but the first, then (with `deal`) [`COVARIATES`]
/// standardised.
fn design(units: &[DealFollowing], reps: bool, deal: bool, acted: bool) -> Array2<f64> {
    let mut rep_ids: Vec<&str> = units.iter().map(|u| u.rep_id.as_str()).collect();
    rep_ids.sort_unstable();
    rep_ids.dedup();
    let nr = if reps {
        rep_ids.len().saturating_sub(1)
    } else {
        0
    };
    let nc = if deal { COVARIATES.len() } else { 0 };
    let p = 3 + nr + nc;
    let mut x = Array2::<f64>::zeros((units.len(), p));
    let (mean, sd): (Vec<f64>, Vec<f64>) = (0..COVARIATES.len())
        .map(|j| {
            let n = units.len().max(1) as f64;
            let m = units.iter().map(|u| u.x[j]).sum::<f64>() / n;
            let v = units.iter().map(|u| (u.x[j] - m).powi(2)).sum::<f64>() / n;
            (m, if v > 0.0 { v.sqrt() } else { 1.0 })
        })
        .unzip();
    for (i, u) in units.iter().enumerate() {
        x[[i, 0]] = 1.0;
        x[[i, 1]] = f64::from(if acted { u.acted } else { u.followed });
        x[[i, 2]] = f64::from(u.recommended);
        if reps {
            let r = rep_ids.binary_search(&u.rep_id.as_str()).unwrap_or(0);
            if r > 0 {
                x[[i, 2 + r]] = 1.0;
            }
        }
        if deal {
            for j in 0..nc {
                x[[i, 3 + nr + j]] = (u.x[j] - mean[j]) / sd[j];
            }
        }
    }
    x
}

/// Estimates the effect of following one recommendation on a deal's win
/// probability over `units` (closed deals with recommendations). Errors: fewer
/// than [`MIN_DEALS`] deals, no recommendation followed or every one
/// followed, or a singular design (said in words).
pub fn estimate(units: &[DealFollowing]) -> Result<EffectEstimate, String> {
    if units.len() < MIN_DEALS {
        return Err(format!(
            "cannot judge: {} closed deals had recommendations; the estimate needs at least {MIN_DEALS}",
            units.len()
        ));
    }
    let recommended: usize = units.iter().map(|u| u.recommended as usize).sum();
    let followed: usize = units.iter().map(|u| u.followed as usize).sum();
    if followed == 0 || followed == recommended {
        return Err(format!(
            "cannot judge: {followed} of {recommended} recommendations were followed; \
             the estimate compares followed with not followed"
        ));
    }
    let y: Vec<f64> = units.iter().map(|u| f64::from(u8::from(u.won))).collect();
    let fit = |reps: bool, deal: bool| {
        ols(&design(units, reps, deal, false), &y)
            .ok_or_else(|| "cannot judge: the regression's design is singular".to_string())
    };
    let (b, se) = fit(true, true)?;
    let (bn, sen) = fit(false, false)?;
    let (br, _) = fit(true, false)?;
    let (ba, _) = ols(&design(units, true, true, true), &y)
        .ok_or_else(|| "cannot judge: the regression's design is singular".to_string())?;
    let mut reps: Vec<&str> = units.iter().map(|u| u.rep_id.as_str()).collect();
    reps.sort_unstable();
    reps.dedup();
    let mean_amount = units.iter().map(|u| u.amount).sum::<f64>() / units.len() as f64;
    Ok(EffectEstimate {
        deals: units.len(),
        reps: reps.len(),
        recommended,
        followed,
        effect: b[1],
        se: se[1],
        ci: [b[1] - 1.96 * se[1], b[1] + 1.96 * se[1]],
        naive: bn[1],
        naive_se: sen[1],
        rep_adjusted: br[1],
        acted_on_effect: ba[1],
        value_per_followed: b[1] * mean_amount,
        mean_amount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_xoshiro::Xoshiro256PlusPlus;
    use rand_xoshiro::rand_core::{RngCore, SeedableRng};

    fn u01(r: &mut Xoshiro256PlusPlus) -> f64 {
        (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Reps who follow more also win more (confounded); each followed
    /// recommendation adds 0.04 to the win probability. The naive slope is
    /// biased up; the rep-adjusted estimate recovers 0.04.
    #[test]
    fn recovers_a_confounded_effect() {
        let mut r = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut units = Vec::new();
        for rep in 0..40 {
            let skill = rep as f64 / 40.0;
            let adherence = 0.2 + 0.6 * skill;
            for d in 0..150 {
                let recommended = 1 + (r.next_u64() % 5) as u32;
                let followed = (0..recommended).filter(|_| u01(&mut r) < adherence).count() as u32;
                let stage = (r.next_u64() % 5) as usize;
                let p = 0.1 + 0.3 * skill + 0.05 * stage as f64 + 0.04 * f64::from(followed);
                let mut x = [0.0; COVARIATES.len()];
                x[1] = 10.0 + u01(&mut r);
                if stage > 0 {
                    x[5 + stage] = 1.0;
                }
                units.push(DealFollowing {
                    deal_id: format!("d{rep}-{d}"),
                    rep_id: format!("r{rep:02}"),
                    won: u01(&mut r) < p,
                    recommended,
                    followed,
                    acted: followed,
                    amount: 1000.0,
                    x,
                });
            }
        }
        let e = estimate(&units).unwrap();
        assert!(e.naive > 0.06, "naive {e:?}");
        assert!((e.effect - 0.04).abs() < 2.5 * e.se, "{e:?}");
        assert!(e.ci[0] < 0.04 && 0.04 < e.ci[1], "{e:?}");
        assert!((e.value_per_followed - 1000.0 * e.effect).abs() < 1e-9);
    }

    #[test]
    fn too_few_deals_or_nothing_followed_cannot_judge() {
        let unit = |followed| DealFollowing {
            deal_id: "d".into(),
            rep_id: "r".into(),
            won: true,
            recommended: 2,
            followed,
            acted: followed,
            amount: 1.0,
            x: [0.0; COVARIATES.len()],
        };
        let e = estimate(&vec![unit(1); 10]).unwrap_err();
        assert!(e.contains("at least 100"), "{e}");
        let e = estimate(&vec![unit(0); 200]).unwrap_err();
        assert!(e.contains("0 of 400"), "{e}");
    }

    #[test]
    fn ols_matches_a_hand_computed_line() {
        // y = 1 + 2x exactly: coefficients 1 and 2, zero residuals.
        let x = Array2::from_shape_fn((5, 2), |(i, j)| if j == 0 { 1.0 } else { i as f64 });
        let y: Vec<f64> = (0..5).map(|i| 1.0 + 2.0 * i as f64).collect();
        let (b, se) = ols(&x, &y).unwrap();
        assert!(
            (b[0] - 1.0).abs() < 1e-6 && (b[1] - 2.0).abs() < 1e-6,
            "{b:?}"
        );
        assert!(se.iter().all(|s| *s < 1e-6), "{se:?}");
    }
}
