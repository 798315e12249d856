//! `pipewise roi`: the return on AI-assisted coaching, with the win-rate
//! change measured on the org's own data when the user gives none.

use std::sync::Arc;

use pipewise_engines::coach::CoachOptions;
use pipewise_engines::roi::WinRateChange;
use pipewise_features::conversation::Trackers;
use pipewise_store::read::CrmData;

/// What pipewise measured on an org for the ROI.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    /// Null when it cannot be measured (`why_not` says why): then no
    /// revenue is counted.
    pub win_rate_change: Option<WinRateChange>,
    pub why_not: Option<String>,
    /// Reps profiled, and those with a call-skill gap priced in win rate.
    pub reps: usize,
    pub reps_with_a_gap: usize,
    /// Deals each rep closed (won or lost) a year, and their mean amount,
    /// over the coaching window.
    pub deals_per_rep: f64,
    pub deal_size: f64,
}

/// Measures the win-rate change coaching is worth on `crm`: for each rep,
/// the points of win rate the coaching outcome model gives for closing
/// their first call-skill gap (discovery, objection handling, closing,
/// product knowledge; `pipewise coach`, docs/coaching.md), averaged over
/// every profiled rep (0 for a rep with none), with an 80% interval from
/// 2,000 bootstrap resamples of the reps (the spread across reps, not the
/// outcome model's own error). Also the reps' closed deals a year and their
/// mean amount over the coaching window. Errors: no reps, no closed deals.
pub fn measure(crm: Arc<CrmData>) -> anyhow::Result<Measured> {
    let opts = CoachOptions::default();
    let run = crate::coaching::run_coach(crm, None, &opts, &Trackers::default_set())?;
    let p = &run.profiles;
    // No rep with a gap priced in win rate: the outcome model had no
    // recorded calls to learn from, and no change can be measured.
    let priced = (0..p.reps.len()).any(|i| {
        run.impact
            .gaps(p, i)
            .iter()
            .any(|g| g.win_rate_points.is_some())
    });
    let points: Vec<f64> = (0..p.reps.len())
        .map(|i| {
            run.impact
                .gaps(p, i)
                .iter()
                .find_map(|g| g.win_rate_points)
                .unwrap_or(0.0)
                .max(0.0)
                / 100.0
        })
        .collect();
    let n = points.len();
    anyhow::ensure!(n > 0, "the database has no reps to measure coaching on");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let value = mean(&points);
    // Bootstrap over reps (a fixed xorshift, so the figure repeats).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut means: Vec<f64> = (0..2_000)
        .map(|_| {
            let s: Vec<f64> = (0..n)
                .map(|_| points[(next() % n as u64) as usize])
                .collect();
            mean(&s)
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let q = |x: f64| means[((means.len() - 1) as f64 * x).round() as usize];
    let ids: std::collections::HashSet<&str> = p.reps.iter().map(|r| r.id.as_str()).collect();
    let closed: Vec<f64> = run
        .crm
        .opportunities
        .iter()
        .filter(|o| ids.contains(o.owner_id.as_str()))
        .filter(|o| {
            o.closed_at
                .is_some_and(|c| c >= p.window_start && c <= p.as_of)
        })
        .filter_map(|o| o.amount)
        .collect();
    anyhow::ensure!(
        !closed.is_empty(),
        "no deals closed in the coaching window: give --deals-per-rep and --deal-size"
    );
    let years = ((p.as_of - p.window_start) as f64 / (365.25 * 86_400.0)).max(1.0 / 12.0);
    Ok(Measured {
        win_rate_change: priced.then(|| WinRateChange {
            value,
            low: Some(q(0.1)),
            high: Some(q(0.9)),
            source: format!(
                "the mean over {n} reps of the win-rate points their first call-skill gap is worth (pipewise coach), 80% interval over reps"
            ),
        }),
        why_not: (!priced).then(|| {
            "cannot measure the win-rate change: no rep's call-skill gap could be priced in win rate (coaching's outcome model needs closed deals with recorded calls); give --win-rate-change".to_string()
        }),
        reps: n,
        reps_with_a_gap: points.iter().filter(|&&x| x > 0.0).count(),
        deals_per_rep: closed.len() as f64 / n as f64 / years,
        deal_size: mean(&closed),
    })
}

/// The ROI's inputs (`GET /api/v1/roi`, `pipewise roi`): counts, a
/// manager's yearly salary and coaching hours a week per rep, with and
/// without pipewise; the software's yearly cost per rep. Left out, the
/// win-rate change, deals per rep and deal size are measured on the
/// database ([`measure`]).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoiQuery {
    /// Reps coached.
    #[param(minimum = 0.001, maximum = 1000000)]
    pub reps: f64,
    /// Managers who coach them.
    #[param(minimum = 0.001, maximum = 100000)]
    pub managers: f64,
    /// A manager's yearly salary (currency units).
    #[param(minimum = 0.001, maximum = 100000000)]
    pub manager_salary: f64,
    /// Coaching hours a week per rep without pipewise.
    #[param(minimum = 0, maximum = 40)]
    pub coaching_hours_before: f64,
    /// Coaching hours a week per rep with pipewise.
    #[param(minimum = 0, maximum = 40)]
    pub coaching_hours_after: f64,
    /// The software's yearly cost per rep.
    #[param(minimum = 0, maximum = 10000000)]
    pub software_per_rep: f64,
    /// The win-rate change coaching brings (0.03: three points); default
    /// measured on the database.
    #[param(minimum = -1, maximum = 1)]
    pub win_rate_change: Option<f64>,
    /// Deals each rep closes a year (default measured).
    #[param(minimum = 0, maximum = 1000000)]
    pub deals_per_rep: Option<f64>,
    /// The mean deal size (default measured).
    #[param(minimum = 0, maximum = 1000000000000.0)]
    pub deal_size: Option<f64>,
    /// The share of extra revenue counted in the payback (default 1).
    #[param(minimum = 0, maximum = 1)]
    pub gross_margin: Option<f64>,
}

impl RoiQuery {
    /// Each figure within the range its parameter states. Errors: the
    /// first out of range (or not finite), named.
    pub fn check(&self) -> Result<(), crate::InputError> {
        let figures = [
            ("reps", Some(self.reps), 0.001, 1e6),
            ("managers", Some(self.managers), 0.001, 1e5),
            ("manager_salary", Some(self.manager_salary), 0.001, 1e8),
            (
                "coaching_hours_before",
                Some(self.coaching_hours_before),
                0.0,
                40.0,
            ),
            (
                "coaching_hours_after",
                Some(self.coaching_hours_after),
                0.0,
                40.0,
            ),
            ("software_per_rep", Some(self.software_per_rep), 0.0, 1e7),
            ("win_rate_change", self.win_rate_change, -1.0, 1.0),
            ("deals_per_rep", self.deals_per_rep, 0.0, 1e6),
            ("deal_size", self.deal_size, 0.0, 1e12),
            ("gross_margin", self.gross_margin, 0.0, 1.0),
        ];
        for (name, v, lo, hi) in figures {
            if let Some(v) = v
                && !(v.is_finite() && (lo..=hi).contains(&v))
            {
                return Err(crate::InputError::new(
                    name,
                    &format!("a number from {lo} to {hi}"),
                    &v.to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// The ROI with what was measured for it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RoiReport {
    #[serde(flatten)]
    pub roi: pipewise_engines::roi::Roi,
    /// What pipewise measured on the database (null when every figure was
    /// given, or without a database).
    #[schema(value_type = Object, nullable = true)]
    pub measured: Option<Measured>,
}

/// Prices manual against AI-assisted coaching ([`pipewise_engines::roi::roi`]),
/// measuring on `crm` (when given) any of the win-rate change, deals per
/// rep and deal size the query leaves out. Errors: the engine's (a count
/// or amount out of range, coaching beyond the managers' week), each
/// naming the option; a measurement that fails.
pub fn evaluate(q: &RoiQuery, crm: Option<Arc<CrmData>>) -> anyhow::Result<RoiReport> {
    use pipewise_engines::roi::RoiInput;
    let given = q.win_rate_change.map(|v| WinRateChange {
        value: v,
        low: None,
        high: None,
        source: "given".into(),
    });
    let need = given.is_none() || q.deals_per_rep.is_none() || q.deal_size.is_none();
    let measured = match crm {
        Some(crm) if need => Some(measure(crm)?),
        _ => None,
    };
    let input = RoiInput {
        reps: q.reps,
        managers: q.managers,
        manager_salary: q.manager_salary,
        hours_before: q.coaching_hours_before,
        hours_after: q.coaching_hours_after,
        software_per_rep: q.software_per_rep,
        win_rate_change: given
            .clone()
            .or_else(|| measured.as_ref().and_then(|m| m.win_rate_change.clone())),
        deals_per_rep: q
            .deals_per_rep
            .or(measured.as_ref().map(|m| m.deals_per_rep)),
        deal_size: q.deal_size.or(measured.as_ref().map(|m| m.deal_size)),
        gross_margin: q.gross_margin.unwrap_or(1.0),
    };
    let mut roi = pipewise_engines::roi::roi(&input).map_err(|e| anyhow::anyhow!(e))?;
    if given.is_none()
        && let Some(why) = measured.as_ref().and_then(|m| m.why_not.clone())
    {
        roi.assumptions.push(why);
    }
    Ok(RoiReport { roi, measured })
}
