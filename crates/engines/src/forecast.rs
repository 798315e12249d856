//! The bookings forecast of a period (month or quarter) as a distribution,
//! rolled up by rep, team, region or company; the baselines a sales leader
//! would otherwise use; and a weekly backtest.
//!
//! Bookings in a period = already won in it + the open pipeline's wins that
//! close in it + wins from deals not yet created. The open pipeline part is,
//! per deal, P(win) × P(closes by the period's end | won) × amount, from a
//! calibrated win model and a close-timing model fitted on won deals; deals
//! are drawn independently (Monte Carlo). The part from deals not yet
//! created comes from an exponential-smoothing model (augurs' AutoETS) of the
//! same quantity in past periods, at the same offset into the period. The
//! range also carries the models' own error, learnt from how the org's
//! earlier forecasts missed ([`RangeModel`]).

use std::collections::{BTreeMap, HashMap};

use augurs_core::{Fit as _, Predict as _};
use chrono::{Datelike, NaiveDate};
use pipewise_core::{Column, Table};
use pipewise_features::{DAY, Data, features_for, format_date};
use pipewise_models::{Algorithm, Classifier, FitOptions};
use pipewise_store::read::Instant;
use serde::Serialize;

use crate::predict::{self, STAGE_WEIGHTS, Snapshots};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Month,
    Quarter,
}

/// A calendar month or quarter, `[start, end)` in UTC. In JSON: its label,
/// kind, and first and last days (YYYY-MM-DD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub label: String,
    pub kind: PeriodKind,
    pub start: Instant,
    pub end: Instant,
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Period", 4)?;
        out.serialize_field("label", &self.label)?;
        out.serialize_field("kind", &self.kind)?;
        out.serialize_field("first_day", &format_date(self.start))?;
        out.serialize_field("last_day", &format_date(self.end - DAY))?;
        out.end()
    }
}

fn midnight(y: i32, m: u32) -> Instant {
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |d| d.and_utc().timestamp())
}

impl Period {
    /// The period of `kind` holding the instant `t`.
    pub fn containing(t: Instant, kind: PeriodKind) -> Period {
        let d = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        let (y, m) = (d.year(), d.month());
        match kind {
            PeriodKind::Month => Period::month(y, m),
            PeriodKind::Quarter => Period::quarter(y, (m - 1) / 3 + 1),
        }
    }
    fn month(y: i32, m: u32) -> Period {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Period {
            label: format!("{y}-{m:02}"),
            kind: PeriodKind::Month,
            start: midnight(y, m),
            end: midnight(ny, nm),
        }
    }
    fn quarter(y: i32, q: u32) -> Period {
        let m = (q - 1) * 3 + 1;
        let (ny, nm) = if q == 4 { (y + 1, 1) } else { (y, m + 3) };
        Period {
            label: format!("{y}-Q{q}"),
            kind: PeriodKind::Quarter,
            start: midnight(y, m),
            end: midnight(ny, nm),
        }
    }
    /// `2025-Q3` or `2025-07`.
    pub fn parse(s: &str) -> anyhow::Result<Period> {
        let bad = || {
            anyhow::anyhow!(
                "period {s:?}: expected a quarter such as 2025-Q3 or a month such as 2025-07"
            )
        };
        let (y, rest) = s.trim().split_once('-').ok_or_else(bad)?;
        let y: i32 = y.parse().map_err(|_| bad())?;
        if let Some(q) = rest.strip_prefix(['Q', 'q']) {
            let q: u32 = q.parse().map_err(|_| bad())?;
            anyhow::ensure!((1..=4).contains(&q), bad());
            Ok(Period::quarter(y, q))
        } else {
            let m: u32 = rest.parse().map_err(|_| bad())?;
            anyhow::ensure!((1..=12).contains(&m), bad());
            Ok(Period::month(y, m))
        }
    }
    /// The period `n` before (negative: after) this one.
    pub fn back(&self, n: i32) -> Period {
        let d = chrono::DateTime::from_timestamp(self.start, 0).unwrap_or_default();
        let step = match self.kind {
            PeriodKind::Month => 1,
            PeriodKind::Quarter => 3,
        };
        let idx = d.year() * 12 + d.month0() as i32 - n * step;
        let (y, m0) = (idx.div_euclid(12), idx.rem_euclid(12) as u32);
        Period::containing(midnight(y, m0 + 1), self.kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RollUp {
    Rep,
    Team,
    Region,
    Company,
}

#[derive(Debug, Clone, Copy)]
pub struct ForecastOptions {
    pub draws: usize,
    pub seed: u64,
    /// Training snapshots end this many days before the cutoff, so that most
    /// deals open then have an outcome by the cutoff.
    pub horizon_days: i64,
    pub warmup_days: i64,
    /// The win model is calibrated on out-of-fold scores, the deals dealt
    /// into this many folds (at most `fit.bags`).
    pub calibration_folds: usize,
    pub fit: FitOptions,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        let fit = predict::TrainOptions::default().fit;
        ForecastOptions {
            draws: 10_000,
            seed: 7,
            horizon_days: 120,
            warmup_days: 56,
            calibration_folds: 4,
            // The win model of `train`, constrained the same way.
            fit: FitOptions {
                bags: 4,
                monotone: Some(pipewise_features::registry::win_effect),
                ..fit
            },
        }
    }
}

/// The models fitted with what was known at a cutoff.
pub struct Models {
    pub cutoff: Instant,
    /// P(the deal is eventually won), calibrated.
    pub win: Classifier,
    /// Close timing: P(won before a horizon's end), from the deal's features,
    /// the horizon's length, how far past the expected close date it ends and
    /// whether it ends on a quarter's end.
    pub timing: Classifier,
    /// The registered win model's version when `win` is that model (the
    /// deal pages' probabilities), `None` when it was fitted at the cutoff.
    pub win_version: Option<i64>,
}

/// Horizons (days after a snapshot) the timing model learns: the ends of the
/// current and next months and quarters, and two quarters out.
fn horizons(t: Instant) -> Vec<Instant> {
    let m = Period::containing(t, PeriodKind::Month);
    let q = Period::containing(t, PeriodKind::Quarter);
    let mut v = vec![m.end, m.back(-1).end, q.end, q.back(-1).end, q.back(-2).end];
    v.sort();
    v.dedup();
    v
}

fn numeric_col<'a>(t: &'a Table, name: &str) -> Option<&'a [f64]> {
    match t.column(name) {
        Some(Column::Numeric(v)) => Some(v),
        _ => None,
    }
}

/// The timing model's rows: the snapshot features plus the horizon.
fn timing_table(t: &Table, at: &[Instant], until: &[Instant]) -> Table {
    let mut out = t.clone();
    let h: Vec<f64> = at
        .iter()
        .zip(until)
        .map(|(a, u)| (u - a) as f64 / DAY as f64)
        .collect();
    let to_close = numeric_col(t, "days_to_close").map(<[f64]>::to_vec);
    let rel: Vec<f64> = match &to_close {
        Some(c) => h.iter().zip(c).map(|(h, c)| h - c).collect(),
        None => vec![f64::NAN; h.len()],
    };
    let qe: Vec<f64> = until
        .iter()
        .map(|&u| {
            f64::from(u8::from(
                Period::containing(u - 1, PeriodKind::Quarter).end == u,
            ))
        })
        .collect();
    out.push("horizon_days", Column::Numeric(h));
    out.push("horizon_past_expected_close", Column::Numeric(rel));
    out.push("horizon_is_quarter_end", Column::Numeric(qe));
    out
}

/// The forecast's data gate: the win model's minimum of closed deals
/// ([`predict::data_gate`]) and amount history, without which the open
/// pipeline's value at past dates is unknown (so neither the backtest nor the
/// range learnt from it can be computed).
pub fn data_gate(data: &Data) -> predict::Gate {
    let mut g = predict::data_gate(data, predict::Target::Win);
    g.requirement
        .push_str(", and amount history (the open pipeline's value at past dates)");
    if data.without_history.contains(&"amount") {
        g.block(&format!(
            "the amount has no history ({}), so the open pipeline's value at past dates is unknown",
            predict::HISTORY_HINT
        ));
    }
    g
}

/// Fits the win model (calibrated) and the close-timing model with only what
/// was known at `cutoff`: snapshots at least `horizon_days` before it, of
/// deals closed by it.
pub fn fit_models(
    data: &Data,
    snap: &Snapshots,
    cutoff: Instant,
    opts: &ForecastOptions,
) -> anyhow::Result<Models> {
    fit_models_using(data, snap, cutoff, opts, None)
}

/// As [`fit_models`], with the registered win model `(model, version)`
/// when given instead of fitting one: the forecast at the end of the data
/// then weighs each open deal by the probability its deal page shows.
/// Only for a cutoff at the end of the data, or the model knows outcomes
/// the cutoff did not.
pub fn fit_models_using(
    data: &Data,
    snap: &Snapshots,
    cutoff: Instant,
    opts: &ForecastOptions,
    registered: Option<(Classifier, i64)>,
) -> anyhow::Result<Models> {
    if let Some(refusal) = data_gate(data).refusal("the forecast") {
        anyhow::bail!(refusal);
    }
    let last = cutoff - opts.horizon_days * DAY;
    let rows: Vec<usize> = (0..snap.opp.len())
        .filter(|&r| {
            let o = &data.opps[snap.opp[r]];
            snap.date[r] <= last && o.closed.is_some_and(|c| c <= cutoff) && o.won.is_some()
        })
        .collect();
    let mut dates: Vec<Instant> = rows.iter().map(|&r| snap.date[r]).collect();
    dates.sort();
    dates.dedup();
    anyhow::ensure!(
        dates.len() >= 6,
        "only {} weekly snapshots with known outcomes before {}: need more history to forecast",
        dates.len(),
        format_date(cutoff)
    );
    let won = |r: &usize| f64::from(u8::from(data.opps[snap.opp[*r]].won == Some(true)));
    let y: Vec<f64> = rows.iter().map(won).collect();
    let groups: Vec<usize> = rows.iter().map(|&r| snap.opp[r]).collect();
    let (win, win_version) = match registered {
        Some((model, version)) => (model, Some(version)),
        None => {
            // Calibrated on out-of-fold scores, as the win model of `train`.
            let (win, _) = Classifier::fit_cross_calibrated(
                Algorithm::Hist,
                &snap.table.take(&rows),
                &y,
                &groups,
                opts.calibration_folds,
                &opts.fit,
            )?;
            (win, None)
        }
    };
    // Won-by: every snapshot before the cutoff at each horizon that ends by
    // the cutoff, so that every label is known then (no deal still open at
    // the cutoff is left out or guessed).
    let mut idx = Vec::new();
    let mut at = Vec::new();
    let mut until = Vec::new();
    let mut y = Vec::new();
    let mut g = Vec::new();
    for r in 0..snap.opp.len() {
        if snap.date[r] >= cutoff {
            continue;
        }
        let o = &data.opps[snap.opp[r]];
        let won_at = if o.won == Some(true) { o.closed } else { None };
        for (k, h) in horizons(snap.date[r]).into_iter().enumerate() {
            if h > cutoff {
                break;
            }
            idx.push(r);
            at.push(snap.date[r]);
            until.push(h);
            y.push(f64::from(u8::from(won_at.is_some_and(|c| c < h))));
            g.push(snap.opp[r] * 8 + k);
        }
    }
    anyhow::ensure!(
        y.iter().any(|&v| v > 0.5),
        "no deal won before {} to learn close timing from",
        format_date(cutoff)
    );
    let x = timing_table(&snap.table.take(&idx), &at, &until);
    let timing = Classifier::fit_grouped(Algorithm::Hist, &x, &y, Some(&g), &opts.fit)?;
    Ok(Models {
        cutoff,
        win,
        timing,
        win_version,
    })
}

/// One open deal's part in the forecast.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DealForecast {
    pub opportunity_id: String,
    pub rep_id: String,
    pub amount: f64,
    pub win_probability: f64,
    /// P(won inside the period) / P(win): the chance that a win lands in the period.
    pub in_period_probability: f64,
    /// P(won inside the period) × amount.
    pub expected: f64,
    /// The stage as the CRM names it, as of the forecast's date.
    pub stage: Option<String>,
    pub forecast_category: Option<String>,
    pub expected_close: Option<String>,
    /// Taken out of the forecast by a manager: it counts for nothing.
    pub excluded: bool,
}

/// Bookings from deals not yet created.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPipeline {
    pub mean: f64,
    pub sd: f64,
    /// The past periods' values the model was fitted on, oldest first.
    pub history: Vec<(String, f64)>,
    pub method: String,
}

/// A forecast's distribution for one roll-up group.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupForecast {
    pub group: String,
    pub won_to_date: f64,
    pub open_expected: f64,
    pub new_expected: f64,
    pub mean: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub commit: f64,
    pub stage_weighted: f64,
    pub run_rate: f64,
    pub open_deals: usize,
    /// Standard deviation of the open pipeline's wins in the period from the
    /// deal draws alone (independent deals, no shock).
    pub open_sd: f64,
}

/// Period-level multipliers drawn once per Monte Carlo draw and shared by
/// every deal and group: `exp(open_sigma × N(0, 1))` on the open pipeline's
/// wins (median one) and `exp(new_shift + new_sigma × N(0, 1))` on the
/// bookings from deals not yet created.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shock {
    pub open_sigma: f64,
    pub new_shift: f64,
    pub new_sigma: f64,
}

/// How much wider than the deal draws the range is: the models' own error.
///
/// The deal draws alone assume the win and close-timing probabilities are
/// right and deals independent; on simulated orgs we did not tune on, their
/// P10-P90 held the actual in 34-74% of weekly forecasts, not 80%. The range
/// therefore also draws, once per draw and shared by every deal and group (a
/// period-level shock), a log-normal multiplier on the open pipeline's wins
/// and one on the bookings from deals not yet created.
///
/// Both are learnt from the org's own earlier forecasts, out of sample (each
/// made with models fitted before its period began; [`range_at`],
/// [`backtest`]). Per weekly forecast and part, the log miss is
/// r = ln((actual + c) / (expected + c)), c being 5% of the forecast's total.
/// The not-yet-created part's multiplier is centred on the weighted mean r
/// (it was persistently low on development orgs: growth the smoothing lags);
/// the open pipeline's is not (centring it made P50 worse there). The spread
/// is the miss, beyond what the draws alone allow for, that 80% of earlier
/// forecasts stayed within, divided by 1.2816 (a normal's P90). Each earlier
/// period weighs [`RangeModel::DECAY`] times the one after it, and the result
/// is shrunk towards a prior worth [`RangeModel::PRIOR_PERIODS`] periods.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RangeModel {
    #[serde(flatten)]
    pub shock: Shock,
    /// Earlier periods the spreads were learnt from.
    pub learnt_from: Vec<String>,
    pub method: String,
}

impl RangeModel {
    /// The prior: typical period-level misses of the open pipeline and of
    /// the not-yet-created part. These and [`Self::DECAY`] were chosen on
    /// simulated development orgs (seeds 2001-2006 and 4001-4010, 40 reps,
    /// 24 months; not the orgs we report on) for P10-P90 coverage nearest
    /// 80% on average with the fewest orgs outside 70-90% (mean 86% with
    /// 0.2 and 0.3 before, 81% now); docs/forecast.md has the held-out figures.
    pub const PRIOR_OPEN: f64 = 0.1;
    pub const PRIOR_NEW: f64 = 0.3;
    /// How many periods' worth of evidence the prior counts as.
    pub const PRIOR_PERIODS: f64 = 0.5;
    /// Each period back weighs this much less than the one after it.
    pub const DECAY: f64 = 0.6;

    pub fn prior() -> Self {
        RangeModel {
            shock: Shock {
                open_sigma: Self::PRIOR_OPEN,
                new_sigma: Self::PRIOR_NEW,
                ..Shock::default()
            },
            learnt_from: Vec::new(),
            method: "no earlier period to learn the models' error from: prior spreads".into(),
        }
    }

    /// Learns the shifts and spreads from earlier backtest forecasts (see
    /// the type's docs).
    pub fn learn(points: &[BacktestPoint]) -> Self {
        // Per part: each weekly forecast's period index, log miss and the
        // draws' own squared relative spread.
        let mut labels: Vec<String> = Vec::new();
        let mut misses: [Vec<(usize, f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for p in points {
            if labels.last() != Some(&p.period) {
                labels.push(p.period.clone());
            }
            let j = labels.len() - 1;
            let c = 0.05 * (p.won_to_date + p.open_expected + p.new_expected).max(1.0);
            let miss = |actual: f64, expected: f64, sd: f64| {
                (
                    j,
                    ((actual + c) / (expected + c)).ln(),
                    (sd / (expected + c)).powi(2),
                )
            };
            misses[0].push(miss(p.actual_open, p.open_expected, p.open_sd));
            misses[1].push(miss(p.actual_new, p.new_expected, p.new_sd));
        }
        if labels.is_empty() {
            return Self::prior();
        }
        // Later periods weigh more: the models' error shrinks as their
        // training data grows, and orgs change. Each period weighs the same
        // whatever its number of weekly forecasts.
        let n = labels.len();
        let mut count = vec![0.0; n];
        for m in &misses[0] {
            count[m.0] += 1.0;
        }
        let weight = |j: usize| Self::DECAY.powi((n - 1 - j) as i32) / count[j];
        let total: f64 = (0..n).map(|j| Self::DECAY.powi((n - 1 - j) as i32)).sum();
        let w = Self::PRIOR_PERIODS;
        let learn = |part: usize, prior: f64, shifted: bool| -> (f64, f64) {
            let m = &misses[part];
            // The shift: the weighted mean log miss, shrunk towards none.
            let shift = if shifted {
                m.iter().map(|x| weight(x.0) * x.1).sum::<f64>() / (total + w)
            } else {
                0.0
            };
            // The spread: the size of miss (around the shift, beyond what the
            // draws alone allow for) that 80% of earlier forecasts stayed
            // within, as a normal's standard deviation; shrunk towards the
            // prior.
            let mut excess: Vec<(f64, f64)> = m
                .iter()
                .map(|x| (((x.1 - shift).powi(2) - x.2).max(0.0).sqrt(), weight(x.0)))
                .collect();
            excess.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut acc = 0.0;
            let mut q80 = excess.last().map_or(0.0, |e| e.0);
            for (e, wt) in &excess {
                acc += wt;
                if acc >= 0.8 * total {
                    q80 = *e;
                    break;
                }
            }
            let sigma = q80 / 1.281_551_565_5;
            (
                shift,
                ((total * sigma * sigma + w * prior * prior) / (total + w)).sqrt(),
            )
        };
        // The open pipeline's misses are not shifted: on development orgs
        // shifting them made P50 worse; the not-yet-created part's were
        // persistently low (growth the smoothing lags) and shifting helped.
        let (_, open_sigma) = learn(0, Self::PRIOR_OPEN, false);
        let (new_shift, new_sigma) = learn(1, Self::PRIOR_NEW, true);
        RangeModel {
            shock: Shock {
                open_sigma,
                new_shift,
                new_sigma,
            },
            learnt_from: labels,
            method: format!(
                "learnt from {} weekly forecasts of {} earlier period{}, out of sample, shrunk towards a prior",
                points.len(),
                n,
                if n == 1 { "" } else { "s" }
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub period: Period,
    pub as_of: String,
    pub models_cutoff: String,
    /// The registered win model whose probabilities the open deals carry
    /// (the same as on their deal pages); `None`: a win model fitted with
    /// what was known at `models_cutoff`.
    pub win_model_version: Option<i64>,
    pub draws: usize,
    pub by: RollUp,
    pub total: GroupForecast,
    pub groups: Vec<GroupForecast>,
    pub new_pipeline: NewPipeline,
    /// How the range allows for the models' own error.
    pub range: RangeModel,
    pub deals: Vec<DealForecast>,
}

fn won_between(data: &Data, from: Instant, to: Instant) -> Vec<usize> {
    (0..data.opps.len())
        .filter(|&i| {
            let o = &data.opps[i];
            o.won == Some(true) && o.closed.is_some_and(|c| c >= from && c < to)
        })
        .collect()
}

fn booked(data: &Data, o: usize) -> f64 {
    let opp = &data.opps[o];
    opp.closed
        .and_then(|c| data.amount_at(opp, c))
        .unwrap_or(0.0)
}

/// Bookings won in each past period from deals created after the same offset
/// into it as `as_of` is into `period`, for every past period that ended by
/// `as_of` and began after the data did; then smoothed one step ahead.
///
/// A month is forecast top-down: its quarter's not-yet-created part times
/// the share of that part the same month of the quarter booked in the (up
/// to) four quarters before, with the same offset. The three months of a
/// quarter then add up to the quarter's own forecast, and quarter-end
/// months book more, as they did.
pub fn new_pipeline(data: &Data, period: &Period, as_of: Instant) -> NewPipeline {
    if period.kind == PeriodKind::Month {
        return month_new_pipeline(data, period, as_of);
    }
    let (history, _) = new_history(data, period, as_of);
    let y: Vec<f64> = history.iter().map(|h| h.1).collect();
    let (mean, sd, method) = smooth(&y);
    NewPipeline {
        mean: mean.max(0.0),
        sd,
        history,
        method,
    }
}

/// The past periods' bookings from deals created after the same offset as
/// `as_of` into `period`, oldest first, with how many periods back each is.
fn new_history(data: &Data, period: &Period, as_of: Instant) -> (Vec<(String, f64)>, Vec<usize>) {
    let offset = as_of - period.start;
    let mut history = Vec::new();
    let mut back = Vec::new();
    for n in 1..=40 {
        let p = period.back(n);
        if p.end > as_of {
            continue;
        }
        if p.start < data.start {
            break;
        }
        let created_after = p.start + offset;
        let v: f64 = won_between(data, p.start, p.end)
            .into_iter()
            .filter(|&o| data.opps[o].created > created_after)
            .map(|o| booked(data, o))
            .sum();
        history.push((p.label.clone(), v));
        back.push(n as usize);
    }
    history.reverse();
    back.reverse();
    (history, back)
}

fn month_new_pipeline(data: &Data, month: &Period, as_of: Instant) -> NewPipeline {
    let quarter = Period::containing(month.start, PeriodKind::Quarter);
    let q = new_pipeline(data, &quarter, as_of);
    let offset = as_of - quarter.start;
    let (mut part, mut total, mut quarters) = (0.0, 0.0, 0);
    for n in 1..=40 {
        let pq = quarter.back(n);
        if pq.end > as_of {
            continue;
        }
        if pq.start < data.start || quarters == 4 {
            break;
        }
        quarters += 1;
        // The same month of that quarter.
        let pm = month.back(3 * n);
        let created_after = pq.start + offset;
        for o in won_between(data, pq.start, pq.end) {
            if data.opps[o].created > created_after {
                let v = booked(data, o);
                total += v;
                if data.opps[o]
                    .closed
                    .is_some_and(|c| c >= pm.start && c < pm.end)
                {
                    part += v;
                }
            }
        }
    }
    let (share, how) = if total > 0.0 {
        (
            part / total,
            format!(
                "this month's share of it in the {quarters} quarter{} before",
                if quarters == 1 { "" } else { "s" }
            ),
        )
    } else {
        let len = |p: &Period| (p.end - p.start) as f64;
        (
            if month.end <= as_of {
                0.0
            } else {
                len(month) / len(&quarter)
            },
            "this month's share of the quarter's days (no earlier quarter booked any)".into(),
        )
    };
    NewPipeline {
        mean: q.mean * share,
        sd: q.sd * share,
        history: q.history,
        method: format!(
            "{}'s not-yet-created part ({}) × {how}, {:.0}%",
            quarter.label,
            q.method,
            share * 100.0
        ),
    }
}

/// One-step-ahead mean and standard deviation of a short series.
fn smooth(y: &[f64]) -> (f64, f64, String) {
    let plain = |y: &[f64]| {
        let n = y.len().max(1) as f64;
        let m = y.iter().sum::<f64>() / n;
        let sd = if y.len() > 1 {
            (y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            m * 0.5
        };
        (m, sd)
    };
    if y.is_empty() {
        return (0.0, 0.0, "no past period to learn from".into());
    }
    if y.len() >= 7 {
        let fitted = augurs_ets::AutoETS::non_seasonal()
            .fit(y)
            .ok()
            .and_then(|m| m.predict(1, 0.8).ok());
        if let Some(f) = fitted {
            let mean = f.point[0];
            let sd = f.intervals.as_ref().map_or(f64::NAN, |i| {
                (i.upper[0] - i.lower[0]) / (2.0 * 1.281_551_565_5)
            });
            if mean.is_finite() && sd.is_finite() {
                return (
                    mean,
                    sd,
                    format!(
                        "exponential smoothing (AutoETS) on {} past periods",
                        y.len()
                    ),
                );
            }
        }
    }
    if y.len() >= 3 {
        // Too short for AutoETS (it needs 7): simple exponential smoothing
        // with the rate that best predicted each period from the ones before.
        let run = |alpha: f64| {
            let mut level = y[0];
            let mut sse = 0.0;
            for &v in &y[1..] {
                sse += (v - level).powi(2);
                level = alpha * v + (1.0 - alpha) * level;
            }
            (level, (sse / (y.len() - 1) as f64).sqrt())
        };
        let best = (1..=9)
            .map(|k| k as f64 / 10.0)
            .min_by(|&a, &b| run(a).1.total_cmp(&run(b).1))
            .unwrap_or(0.5);
        let (level, rmse) = run(best);
        return (
            level,
            rmse,
            format!(
                "simple exponential smoothing (rate {best:.1}) on {} past periods",
                y.len()
            ),
        );
    }
    let (m, sd) = plain(y);
    (m, sd, format!("mean of {} past periods", y.len()))
}

/// A fast seeded generator for the draws (xoshiro-style splitmix).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Draws of each group's total: `groups` deals with probability `p` and
/// amount `a` in group `g[i]`, independently given the draw's shock; plus a
/// normal `extra` draw (floored at zero) split by `share`. `shock` holds the
/// log standard deviations of two multipliers drawn once per draw and shared
/// by every group (see [`Shock`]): the first scales the deals' wins, the
/// second the extra. Returns per group its sorted draws, and last the sorted draws
/// of the total over groups.
#[allow(clippy::too_many_arguments)]
pub fn simulate(
    p: &[f64],
    a: &[f64],
    g: &[usize],
    groups: usize,
    extra: (f64, f64),
    share: &[f64],
    shock: Shock,
    draws: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let mut out = simulate_raw(p, a, g, groups, extra, share, shock, draws, seed);
    for v in &mut out {
        v.sort_by(f64::total_cmp);
    }
    out
}

/// [`simulate`] without the sorting: draw `d` of every group comes from the
/// same shock, so groups can be added up draw by draw ([`roll_up`]).
#[allow(clippy::too_many_arguments)]
pub fn simulate_raw(
    p: &[f64],
    a: &[f64],
    g: &[usize],
    groups: usize,
    extra: (f64, f64),
    share: &[f64],
    shock: Shock,
    draws: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    use rayon::prelude::*;
    let thresholds: Vec<u64> = p
        .iter()
        .map(|&p| (p.clamp(0.0, 1.0) * u64::MAX as f64) as u64)
        .collect();
    let chunk = 256;
    let chunks = draws.div_ceil(chunk);
    (0..chunks)
        .into_par_iter()
        .map(|c| {
            let n = chunk.min(draws - c * chunk);
            let mut rng = Rng(seed ^ (c as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let w = groups + 1;
            let mut sums = vec![0.0; n * w];
            for d in 0..n {
                let s = &mut sums[d * w..(d + 1) * w];
                for ((&t, &amt), &gi) in thresholds.iter().zip(a).zip(g) {
                    if rng.next() < t {
                        s[gi] += amt;
                    }
                }
                if shock.open_sigma > 0.0 {
                    let m = (shock.open_sigma * rng.gauss()).exp();
                    s[..groups].iter_mut().for_each(|x| *x *= m);
                }
                if extra.0 > 0.0 || extra.1 > 0.0 {
                    let mut e = (extra.0 + extra.1 * rng.gauss()).max(0.0);
                    if shock.new_sigma > 0.0 || shock.new_shift != 0.0 {
                        e *= (shock.new_shift + shock.new_sigma * rng.gauss()).exp();
                    }
                    for (x, sh) in s.iter_mut().zip(share) {
                        *x += e * sh;
                    }
                }
                s[groups] = s[..groups].iter().sum();
            }
            sums
        })
        .collect::<Vec<_>>()
        .into_iter()
        .enumerate()
        .fold(
            vec![Vec::with_capacity(draws); groups + 1],
            |mut acc, (_, sums)| {
                for row in sums.chunks(groups + 1) {
                    for (k, v) in row.iter().enumerate() {
                        acc[k].push(*v);
                    }
                }
                acc
            },
        )
}

/// The `q` quantile of sorted values (linear between ranks).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn group_key(data: &Data, rep_id: &str, by: RollUp) -> String {
    match by {
        RollUp::Company => "company".into(),
        RollUp::Rep => data.rep_info(rep_id).name,
        RollUp::Team => data
            .rep_info(rep_id)
            .team
            .unwrap_or_else(|| "(no team)".into()),
        RollUp::Region => data
            .rep_info(rep_id)
            .region
            .unwrap_or_else(|| "(no region)".into()),
    }
}

/// Features of the deals open at `as_of` (the snapshot rows when `as_of` is a
/// snapshot date, else computed).
pub fn open_features(data: &Data, snap: Option<&Snapshots>, as_of: Instant) -> (Vec<usize>, Table) {
    if let Some(s) = snap {
        let rows: Vec<usize> = (0..s.opp.len()).filter(|&r| s.date[r] == as_of).collect();
        if !rows.is_empty() {
            return (
                rows.iter().map(|&r| s.opp[r]).collect(),
                s.table.take(&rows),
            );
        }
    }
    let rows = data.open_at(as_of);
    let t = features_for(data, &rows, as_of);
    (rows, t)
}

/// Per open deal: P(win), and P(won inside the period) from the timing
/// model (the difference of P(won before the end) and P(won before the start)).
pub fn deal_probabilities(
    models: &Models,
    table: &Table,
    as_of: Instant,
    period: &Period,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let n = table.rows();
    let win = models.win.predict(table)?;
    if period.end <= as_of {
        return Ok((win, vec![0.0; n]));
    }
    let by = |until: Instant| -> anyhow::Result<Vec<f64>> {
        if until <= as_of {
            return Ok(vec![0.0; n]);
        }
        let x = timing_table(table, &vec![as_of; n], &vec![until; n]);
        Ok(models.timing.predict(&x)?)
    };
    let to_end = by(period.end)?;
    let to_start = by(period.start)?;
    let won_in = to_end
        .iter()
        .zip(&to_start)
        .map(|(e, s)| (e - s).clamp(0.0, 1.0))
        .collect();
    Ok((win, won_in))
}

/// The forecast of `period` as of `as_of`.
#[allow(clippy::too_many_arguments)]
pub fn forecast(
    data: &Data,
    models: &Models,
    snap: Option<&Snapshots>,
    period: &Period,
    as_of: Instant,
    by: RollUp,
    range: &RangeModel,
    opts: &ForecastOptions,
) -> anyhow::Result<Forecast> {
    forecast_excluding(
        data,
        models,
        snap,
        period,
        as_of,
        by,
        range,
        opts,
        &std::collections::HashSet::new(),
    )
}

/// [`forecast`] with the deals in `excluded` (opportunity ids: managers'
/// overrides) counted for nothing.
#[allow(clippy::too_many_arguments)]
pub fn forecast_excluding(
    data: &Data,
    models: &Models,
    snap: Option<&Snapshots>,
    period: &Period,
    as_of: Instant,
    by: RollUp,
    range: &RangeModel,
    opts: &ForecastOptions,
    excluded: &std::collections::HashSet<String>,
) -> anyhow::Result<Forecast> {
    let key = |rep: &str| group_key(data, rep, by);
    Ok(forecast_keyed(
        data, models, snap, period, as_of, by, &key, range, opts, excluded,
    )?
    .0)
}

/// The forecast of `period` as of `as_of` with one group per rep, keyed by
/// the rep's user id (deals without an owner: the group `""`), and each
/// group's Monte Carlo draws in draw order, aligned with `groups`: the input
/// of [`roll_up`], which adds reps up into any roll-up over any set of reps.
/// The deals in `excluded` (opportunity ids: a manager's override) count
/// for nothing.
#[allow(clippy::too_many_arguments)]
pub fn forecast_by_rep_id(
    data: &Data,
    models: &Models,
    period: &Period,
    as_of: Instant,
    range: &RangeModel,
    opts: &ForecastOptions,
    excluded: &std::collections::HashSet<String>,
) -> anyhow::Result<(Forecast, Vec<Vec<f64>>)> {
    let key = |rep: &str| rep.to_string();
    forecast_keyed(
        data,
        models,
        None,
        period,
        as_of,
        RollUp::Rep,
        &key,
        range,
        opts,
        excluded,
    )
}

/// Adds a [`forecast_by_rep_id`] up over the reps `keep` accepts into the
/// groups of `by` and their total: won-to-date, expected values, commit,
/// stage-weighted and run-rate add up; P10/P50/P90 and the mean come from
/// the groups' draws added draw by draw (the period-level shock is shared);
/// `open_sd` adds in variance. `groups` are sorted by P50, largest first.
pub fn roll_up(
    data: &Data,
    by_rep: &Forecast,
    draws: &[Vec<f64>],
    by: RollUp,
    keep: &dyn Fn(&str) -> bool,
) -> (GroupForecast, Vec<GroupForecast>) {
    let n = draws.first().map_or(0, Vec::len);
    let empty = |name: &str| GroupForecast {
        group: name.to_string(),
        won_to_date: 0.0,
        open_expected: 0.0,
        new_expected: 0.0,
        mean: 0.0,
        p10: 0.0,
        p50: 0.0,
        p90: 0.0,
        commit: 0.0,
        stage_weighted: 0.0,
        run_rate: 0.0,
        open_deals: 0,
        open_sd: 0.0,
    };
    let mut acc: BTreeMap<String, (GroupForecast, Vec<f64>)> = BTreeMap::new();
    let mut total = (empty("total"), vec![0.0; n]);
    for (g, d) in by_rep.groups.iter().zip(draws) {
        if !keep(&g.group) {
            continue;
        }
        let name = group_key(data, &g.group, by);
        let slot = acc
            .entry(name.clone())
            .or_insert_with(|| (empty(&name), vec![0.0; n]));
        for (t, (x, y)) in [&mut slot.0, &mut total.0]
            .into_iter()
            .zip([(&mut slot.1, d), (&mut total.1, d)])
        {
            t.won_to_date += g.won_to_date;
            t.open_expected += g.open_expected;
            t.new_expected += g.new_expected;
            t.commit += g.commit;
            t.stage_weighted += g.stage_weighted;
            t.run_rate += g.run_rate;
            t.open_deals += g.open_deals;
            t.open_sd = (t.open_sd * t.open_sd + g.open_sd * g.open_sd).sqrt();
            x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
        }
    }
    let finish = |(mut g, mut d): (GroupForecast, Vec<f64>)| {
        d.sort_by(f64::total_cmp);
        g.mean = d.iter().sum::<f64>() / d.len().max(1) as f64 + g.won_to_date;
        g.p10 = quantile(&d, 0.1) + g.won_to_date;
        g.p50 = quantile(&d, 0.5) + g.won_to_date;
        g.p90 = quantile(&d, 0.9) + g.won_to_date;
        g
    };
    let mut groups: Vec<GroupForecast> = acc.into_values().map(finish).collect();
    groups.sort_by(|a, b| b.p50.total_cmp(&a.p50).then(a.group.cmp(&b.group)));
    (finish(total), groups)
}

#[allow(clippy::too_many_arguments)]
fn forecast_keyed(
    data: &Data,
    models: &Models,
    snap: Option<&Snapshots>,
    period: &Period,
    as_of: Instant,
    by: RollUp,
    group_of: &dyn Fn(&str) -> String,
    range: &RangeModel,
    opts: &ForecastOptions,
    excluded: &std::collections::HashSet<String>,
) -> anyhow::Result<(Forecast, Vec<Vec<f64>>)> {
    let (opps, table) = open_features(data, snap, as_of);
    let (mut win, mut won_in) = deal_probabilities(models, &table, as_of, period)?;
    for (k, &o) in opps.iter().enumerate() {
        if excluded.contains(&data.opps[o].id) {
            win[k] = 0.0;
            won_in[k] = 0.0;
        }
    }
    // The entered stage's code (0 prospecting ... 4 negotiation), for the
    // stage-weighted baseline.
    let stage_code: Vec<Option<usize>> = match numeric_col(&table, "stage") {
        Some(c) => c
            .iter()
            .map(|s| s.is_finite().then_some(*s as usize))
            .collect(),
        None => vec![None; opps.len()],
    };
    let mut deals = Vec::with_capacity(opps.len());
    for (k, &o) in opps.iter().enumerate() {
        let opp = &data.opps[o];
        let amount = data.amount_at(opp, as_of).unwrap_or(0.0);
        deals.push(DealForecast {
            opportunity_id: opp.id.clone(),
            rep_id: opp.owner.at(as_of).unwrap_or("").to_string(),
            amount,
            win_probability: win[k],
            in_period_probability: if win[k] > 0.0 {
                (won_in[k] / win[k]).min(1.0)
            } else {
                0.0
            },
            expected: won_in[k] * amount,
            stage: opp.stage.at(as_of).map(str::to_string),
            forecast_category: opp.forecast_category.at(as_of).map(str::to_string),
            expected_close: data.close_date_at(opp, as_of).map(format_date),
            excluded: excluded.contains(&opp.id),
        });
    }
    // Groups.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut key = |rep: &str| -> usize {
        let k = group_of(rep);
        let n = names.len();
        *names.entry(k).or_insert(n)
    };
    let deal_group: Vec<usize> = deals.iter().map(|d| key(&d.rep_id)).collect();
    let won = won_between(data, period.start, (as_of + 1).min(period.end));
    let won_group: Vec<(usize, f64)> = won
        .iter()
        .map(|&o| {
            let opp = &data.opps[o];
            let rep = opp.owner.at(opp.closed.unwrap_or(as_of)).unwrap_or("");
            (key(rep), booked(data, o))
        })
        .collect();
    // Who books new-pipeline wins: each group's share of the created-and-won
    // bookings in the last four quarters before the one holding the period,
    // for a month as for its quarter, so that a group's months add up to its
    // quarter as the company's do.
    let mut share_raw: HashMap<usize, f64> = HashMap::new();
    let quarter = Period::containing(period.start, PeriodKind::Quarter);
    for n in 1..=4 {
        let p = quarter.back(n);
        if p.end > as_of {
            continue;
        }
        for o in won_between(data, p.start, p.end) {
            let opp = &data.opps[o];
            if opp.created >= p.start {
                let rep = opp.owner.at(opp.closed.unwrap_or(as_of)).unwrap_or("");
                *share_raw.entry(key(rep)).or_default() += booked(data, o);
            }
        }
    }
    // Run-rate: each group's bookings per day over the last 91 days.
    let mut trailing: HashMap<usize, f64> = HashMap::new();
    for o in won_between(data, as_of - 91 * DAY, as_of + 1) {
        let opp = &data.opps[o];
        let rep = opp.owner.at(opp.closed.unwrap_or(as_of)).unwrap_or("");
        *trailing.entry(key(rep)).or_default() += booked(data, o) / 91.0;
    }
    let groups = names.len().max(1);
    let total_share: f64 = share_raw.values().sum();
    let share: Vec<f64> = (0..groups)
        .map(|g| {
            if total_share > 0.0 {
                share_raw.get(&g).copied().unwrap_or(0.0) / total_share
            } else {
                1.0 / groups as f64
            }
        })
        .collect();
    let newp = new_pipeline(data, period, as_of);
    let p = won_in;
    let a: Vec<f64> = deals.iter().map(|d| d.amount).collect();
    // The company total is the sum of the groups' draws, draw by draw.
    let mut draws = simulate_raw(
        &p,
        &a,
        &deal_group,
        groups,
        (newp.mean, newp.sd),
        &share,
        range.shock,
        opts.draws,
        opts.seed,
    );
    let mut total_draws = draws.pop().unwrap_or_default();
    total_draws.sort_by(f64::total_cmp);
    // Baselines.
    let in_period = |d: &DealForecast| {
        d.expected_close
            .as_deref()
            .and_then(pipewise_store::read::instant)
            .is_some_and(|c| c >= period.start && c < period.end)
    };
    let remaining_days = ((period.end - as_of.max(period.start)) as f64 / DAY as f64).max(0.0);
    let mut out_groups: Vec<GroupForecast> = Vec::new();
    let build = |gi: Option<usize>, name: String, sorted: &[f64]| {
        let sel = |k: usize| gi.is_none_or(|g| deal_group[k] == g);
        // (+ 0.0: an empty sum is -0.0, which JSON would show.)
        let won_to_date: f64 = won_group
            .iter()
            .filter(|(g, _)| gi.is_none_or(|x| x == *g))
            .map(|x| x.1)
            .sum::<f64>()
            + 0.0;
        let mut open_expected = 0.0;
        let mut commit = won_to_date;
        let mut stage_weighted = won_to_date;
        let mut open_deals = 0;
        let mut open_var = 0.0;
        for (k, d) in deals.iter().enumerate() {
            if !sel(k) {
                continue;
            }
            open_deals += 1;
            open_expected += p[k] * d.amount;
            open_var += p[k] * (1.0 - p[k]) * d.amount * d.amount;
            if in_period(d) {
                if d.forecast_category.as_deref() == Some("commit") {
                    commit += d.amount;
                }
                if let Some(s) = stage_code[k] {
                    stage_weighted += STAGE_WEIGHTS[s.min(4)] * d.amount;
                }
            }
        }
        let new_expected = newp.mean * gi.map_or(1.0, |g| share[g]);
        GroupForecast {
            group: name,
            won_to_date,
            open_expected,
            new_expected,
            mean: sorted.iter().sum::<f64>() / sorted.len().max(1) as f64 + won_to_date,
            p10: quantile(sorted, 0.1) + won_to_date,
            p50: quantile(sorted, 0.5) + won_to_date,
            p90: quantile(sorted, 0.9) + won_to_date,
            commit,
            stage_weighted,
            run_rate: won_to_date
                + remaining_days
                    * match gi {
                        Some(g) => trailing.get(&g).copied().unwrap_or(0.0),
                        None => trailing.values().sum(),
                    },
            open_deals,
            open_sd: open_var.sqrt(),
        }
    };
    let mut raw: Vec<Vec<f64>> = Vec::new();
    for (name, &gi) in &names {
        if gi < draws.len() {
            let mut sorted = draws[gi].clone();
            sorted.sort_by(f64::total_cmp);
            out_groups.push(build(Some(gi), name.clone(), &sorted));
            raw.push(std::mem::take(&mut draws[gi]));
        }
    }
    let mut order: Vec<usize> = (0..out_groups.len()).collect();
    order.sort_by(|&a, &b| out_groups[b].p50.total_cmp(&out_groups[a].p50));
    let out_groups: Vec<GroupForecast> = order.iter().map(|&k| out_groups[k].clone()).collect();
    let raw: Vec<Vec<f64>> = order.iter().map(|&k| std::mem::take(&mut raw[k])).collect();
    let total = build(None, "company".into(), &total_draws);
    let f = Forecast {
        period: period.clone(),
        as_of: format_date(as_of),
        models_cutoff: format_date(models.cutoff),
        win_model_version: models.win_version,
        draws: opts.draws,
        by,
        total,
        groups: out_groups,
        new_pipeline: newp,
        range: range.clone(),
        deals,
    };
    Ok((f, raw))
}

/// The weekly snapshot dates the forecast trains on and backtests over.
pub fn snapshot_dates(data: &Data, opts: &ForecastOptions) -> Vec<Instant> {
    pipewise_features::mondays(data.start + opts.warmup_days * DAY, data.end)
}

/// Bookings won in the period (the actual).
pub fn actual(data: &Data, period: &Period) -> f64 {
    won_between(data, period.start, period.end)
        .into_iter()
        .map(|o| booked(data, o))
        .sum()
}

/// Per open deal: (expected, win, won in period, amount, expected close).
type Side = HashMap<usize, (f64, f64, f64, f64, Option<Instant>)>;

/// Why one deal moved the forecast between two dates.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DealChange {
    pub opportunity_id: String,
    /// The deal's name, when the data has one.
    pub name: Option<String>,
    pub rep: String,
    /// Change of the deal's expected contribution to the period.
    pub delta: f64,
    pub before: f64,
    pub after: f64,
    pub reason: String,
}

/// How the forecast moved from `before` to `after` (both as-of dates), deal
/// by deal, biggest moves first.
pub fn changes(
    data: &Data,
    models: &Models,
    period: &Period,
    before: Instant,
    after: Instant,
) -> anyhow::Result<Vec<DealChange>> {
    let side = |t: Instant| -> anyhow::Result<Side> {
        let (opps, table) = open_features(data, None, t);
        let (win, won_in) = deal_probabilities(models, &table, t, period)?;
        Ok(opps
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let opp = &data.opps[o];
                let a = data.amount_at(opp, t).unwrap_or(0.0);
                (
                    o,
                    (
                        won_in[k] * a,
                        win[k],
                        won_in[k],
                        a,
                        data.close_date_at(opp, t),
                    ),
                )
            })
            .collect())
    };
    let b = side(before)?;
    let a = side(after)?;
    let mut out = Vec::new();
    let mut keys: Vec<usize> = b.keys().chain(a.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    for o in keys {
        let opp = &data.opps[o];
        let closed_between = opp.closed.is_some_and(|c| c > before && c <= after);
        let (x0, reason0) = match b.get(&o) {
            Some(v) => (v.0, None),
            None => (0.0, Some("new deal")),
        };
        let (x1, reason) = match a.get(&o) {
            Some(v) => {
                let reason = match (reason0, b.get(&o)) {
                    (Some(r), _) => r.to_string(),
                    (None, Some(p)) => {
                        let mut parts = Vec::new();
                        if (v.1 - p.1).abs() >= 0.02 {
                            parts.push(format!("win probability {} → {}", pct(p.1), pct(v.1)));
                        }
                        if (v.2 - p.2).abs() >= 0.02 {
                            parts.push(format!(
                                "chance of a win in {} {} → {}",
                                period.label,
                                pct(p.2),
                                pct(v.2)
                            ));
                        }
                        if (v.3 - p.3).abs() > 0.5 {
                            parts.push(format!("amount {:.0} → {:.0}", p.3, v.3));
                        }
                        if v.4 != p.4 {
                            parts.push(format!(
                                "expected close {} → {}",
                                p.4.map(format_date).unwrap_or_default(),
                                v.4.map(format_date).unwrap_or_default()
                            ));
                        }
                        parts.join("; ")
                    }
                    _ => String::new(),
                };
                (v.0, reason)
            }
            None if closed_between && opp.won == Some(true) => {
                let c = opp.closed.unwrap_or(after);
                if c >= period.start && c < period.end {
                    (booked(data, o), "won in the period".to_string())
                } else {
                    // Won, but not in this period: its bookings count in
                    // another one, so this period's expectation loses it.
                    (
                        0.0,
                        format!(
                            "won on {}: books in {}, not {}",
                            format_date(c),
                            Period::containing(c, period.kind).label,
                            period.label
                        ),
                    )
                }
            }
            None if closed_between => (0.0, "lost".to_string()),
            None => (0.0, "no longer open".to_string()),
        };
        let delta = x1 - x0;
        if delta.abs() < 1.0 {
            continue;
        }
        out.push(DealChange {
            opportunity_id: opp.id.clone(),
            name: opp.name.clone(),
            rep: data.owner_name(opp, after),
            delta,
            before: x0,
            after: x1,
            reason,
        });
    }
    out.sort_by(|a, b| b.delta.abs().total_cmp(&a.delta.abs()));
    Ok(out)
}

/// One backtest forecast: a period as forecast on one as-of date.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestPoint {
    pub period: String,
    pub as_of: String,
    /// Whole weeks left in the period at the as-of date.
    pub weeks_left: i64,
    pub actual: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub commit: f64,
    pub stage_weighted: f64,
    pub run_rate: f64,
    /// Where the actual came from: won before the as-of date, won from deals
    /// open at it, won from deals created after it.
    pub won_to_date: f64,
    pub actual_open: f64,
    pub actual_new: f64,
    /// The forecast's means of the last two parts.
    pub open_expected: f64,
    pub new_expected: f64,
    /// Standard deviations of those parts from the draws alone (deal draws;
    /// the smoothing model's error), without the range's shocks.
    pub open_sd: f64,
    pub new_sd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MethodScore {
    pub method: String,
    /// Σ|forecast − actual| / Σ actual.
    pub wape: f64,
    /// Mean of |forecast − actual| / actual.
    pub mape: f64,
    /// Σ(forecast − actual) / Σ actual (positive: over-forecast).
    pub bias: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    pub kind: PeriodKind,
    pub periods: Vec<String>,
    pub points: Vec<BacktestPoint>,
    pub scores: Vec<MethodScore>,
    /// Share of forecasts whose actual fell inside P10-P90.
    pub coverage_p10_p90: f64,
    /// Each backtested period's range, learnt from the periods before it.
    pub ranges: Vec<RangeModel>,
    /// The same split by the first and second half of the period.
    pub scores_early: Vec<MethodScore>,
    pub scores_late: Vec<MethodScore>,
}

fn score(points: &[&BacktestPoint]) -> Vec<MethodScore> {
    type Method = (&'static str, fn(&BacktestPoint) -> f64);
    let methods: [Method; 4] = [
        ("pipewise (P50)", |p| p.p50),
        ("reps' commit (won + commit category)", |p| p.commit),
        (
            "stage-weighted pipeline (won + CRM stage probability)",
            |p| p.stage_weighted,
        ),
        ("run-rate (won + last 91 days' daily bookings)", |p| {
            p.run_rate
        }),
    ];
    let total: f64 = points.iter().map(|p| p.actual).sum();
    methods
        .iter()
        .map(|(name, f)| {
            let abs: f64 = points.iter().map(|p| (f(p) - p.actual).abs()).sum();
            let signed: f64 = points.iter().map(|p| f(p) - p.actual).sum();
            let mape = points
                .iter()
                .filter(|p| p.actual > 0.0)
                .map(|p| (f(p) - p.actual).abs() / p.actual)
                .sum::<f64>()
                / points.iter().filter(|p| p.actual > 0.0).count().max(1) as f64;
            MethodScore {
                method: name.to_string(),
                wape: abs / total.max(1e-9),
                mape,
                bias: signed / total.max(1e-9),
            }
        })
        .collect()
}

/// Forecasts every complete period of `kind` at each of its Mondays, with
/// models refitted at each period's start on what was known then, and scores
/// the forecasts against what closed. Each period's range is learnt from the
/// periods before it (see [`RangeModel`]).
pub fn backtest(
    data: &Data,
    snap: &Snapshots,
    kind: PeriodKind,
    opts: &ForecastOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Backtest> {
    backtest_until(data, snap, kind, data.end + DAY, usize::MAX, opts, progress)
}

/// The range for a forecast made at `as_of`: learnt from backtests of the
/// (at most four) latest periods of `kind` that ended by then. Fits one set
/// of models per period.
pub fn range_at(
    data: &Data,
    snap: &Snapshots,
    kind: PeriodKind,
    as_of: Instant,
    opts: &ForecastOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> RangeModel {
    range_and_backtest_at(data, snap, kind, as_of, opts, progress).0
}

/// [`range_at`] with the backtest it was learnt from (`None` when no
/// complete period could be backtested: the range is then the prior).
pub fn range_and_backtest_at(
    data: &Data,
    snap: &Snapshots,
    kind: PeriodKind,
    as_of: Instant,
    opts: &ForecastOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> (RangeModel, Option<Backtest>) {
    let quick = ForecastOptions {
        draws: 200,
        ..*opts
    };
    match backtest_until(data, snap, kind, as_of, 4, &quick, progress) {
        Ok(b) => (RangeModel::learn(&b.points), Some(b)),
        Err(_) => (RangeModel::prior(), None),
    }
}

/// [`backtest`] over the latest `max_periods` complete periods that end by
/// `until`.
#[allow(clippy::too_many_arguments)]
pub fn backtest_until(
    data: &Data,
    snap: &Snapshots,
    kind: PeriodKind,
    until: Instant,
    max_periods: usize,
    opts: &ForecastOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Backtest> {
    if let Some(refusal) = data_gate(data).refusal("the forecast") {
        anyhow::bail!(refusal);
    }
    let mut periods = Vec::new();
    let mut p = Period::containing(data.end, kind);
    while p.start >= data.start && periods.len() < max_periods {
        // Complete: the data runs to the period's last day.
        if p.end - DAY <= data.end && p.end <= until {
            periods.push(p.clone());
        }
        p = p.back(1);
    }
    periods.reverse();
    let mut points = Vec::new();
    let mut used = Vec::new();
    let mut ranges = Vec::new();
    for (i, p) in periods.iter().enumerate() {
        progress(i, periods.len());
        let Ok(models) = fit_models(data, snap, p.start, opts) else {
            continue; // not enough history before this period
        };
        used.push(p.label.clone());
        let range = RangeModel::learn(&points);
        let actual = actual(data, p);
        // Bookings in the period from deals created after (or by) `as_of`
        // and still open then.
        let part = |as_of: Instant, new: bool| -> f64 {
            won_between(data, (as_of + 1).max(p.start), p.end)
                .into_iter()
                .filter(|&o| (data.opps[o].created > as_of) == new)
                .map(|o| booked(data, o))
                .sum()
        };
        for as_of in pipewise_features::mondays(p.start, p.end - 1) {
            let f = forecast(
                data,
                &models,
                Some(snap),
                p,
                as_of,
                RollUp::Company,
                &range,
                opts,
            )?;
            points.push(BacktestPoint {
                period: p.label.clone(),
                as_of: format_date(as_of),
                weeks_left: (p.end - as_of) / (7 * DAY),
                actual,
                p10: f.total.p10,
                p50: f.total.p50,
                p90: f.total.p90,
                commit: f.total.commit,
                stage_weighted: f.total.stage_weighted,
                run_rate: f.total.run_rate,
                won_to_date: f.total.won_to_date,
                actual_open: part(as_of, false),
                actual_new: part(as_of, true),
                open_expected: f.deals.iter().map(|d| d.expected).sum(),
                new_expected: f.total.new_expected,
                open_sd: f.total.open_sd,
                new_sd: f.new_pipeline.sd,
            });
        }
        ranges.push(range);
    }
    progress(periods.len(), periods.len());
    anyhow::ensure!(
        !points.is_empty(),
        "no complete {} with enough history before it to backtest",
        match kind {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
        }
    );
    let all: Vec<&BacktestPoint> = points.iter().collect();
    let half = |p: &BacktestPoint, early: bool| {
        let len = match kind {
            PeriodKind::Month => 4,
            PeriodKind::Quarter => 13,
        };
        (p.weeks_left * 2 > len) == early
    };
    let early: Vec<&BacktestPoint> = points.iter().filter(|p| half(p, true)).collect();
    let late: Vec<&BacktestPoint> = points.iter().filter(|p| half(p, false)).collect();
    let coverage = points
        .iter()
        .filter(|p| p.actual >= p.p10 && p.actual <= p.p90)
        .count() as f64
        / points.len() as f64;
    Ok(Backtest {
        kind,
        periods: used,
        scores: score(&all),
        scores_early: score(&early),
        scores_late: score(&late),
        coverage_p10_p90: coverage,
        ranges,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_step() {
        let q = Period::parse("2025-Q3").unwrap();
        assert_eq!(format_date(q.start), "2025-07-01");
        assert_eq!(format_date(q.end), "2025-10-01");
        assert_eq!(q.back(3).label, "2024-Q4");
        assert_eq!(q.back(-2).label, "2026-Q1");
        let m = Period::parse("2025-12").unwrap();
        assert_eq!(format_date(m.end), "2026-01-01");
        assert_eq!(m.back(12).label, "2024-12");
        assert_eq!(
            Period::containing(m.start + 5 * DAY, PeriodKind::Quarter).label,
            "2025-Q4"
        );
        for bad in ["2025", "2025-Q5", "2025-13", "Q3-2025", "2025-Qx"] {
            let e = Period::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("expected a quarter such as 2025-Q3"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn draws_match_the_expected_sum_and_groups_add_up() {
        let n = 2_000;
        let p: Vec<f64> = (0..n).map(|i| (i % 10) as f64 / 10.0).collect();
        let a: Vec<f64> = (0..n).map(|i| 1_000.0 + (i % 7) as f64 * 100.0).collect();
        let g: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let run = || {
            simulate(
                &p,
                &a,
                &g,
                3,
                (500.0, 100.0),
                &[0.2, 0.3, 0.5],
                Shock::default(),
                4_000,
                1,
            )
        };
        let out = run();
        assert_eq!(out.len(), 4);
        let expected: f64 = p.iter().zip(&a).map(|(p, a)| p * a).sum::<f64>() + 500.0;
        let var: f64 = p
            .iter()
            .zip(&a)
            .map(|(p, a)| p * (1.0 - p) * a * a)
            .sum::<f64>()
            + 1e4;
        let mean = out[3].iter().sum::<f64>() / 4_000.0;
        // Within four standard errors of the mean.
        assert!(
            (mean - expected).abs() < 4.0 * (var / 4_000.0).sqrt(),
            "{mean} vs {expected}"
        );
        // P10 and P90 of a near-normal sum: mean ± 1.28 sd.
        let sd = var.sqrt();
        assert!((quantile(&out[3], 0.9) - (expected + 1.2816 * sd)).abs() < 0.1 * sd);
        assert!((quantile(&out[3], 0.1) - (expected - 1.2816 * sd)).abs() < 0.1 * sd);
        // Sorted, and the groups' means add up to the total's.
        assert!(out[0].windows(2).all(|w| w[0] <= w[1]));
        let group_means: f64 = out[..3]
            .iter()
            .map(|v| v.iter().sum::<f64>() / 4_000.0)
            .sum();
        assert!((group_means - mean).abs() < 1e-6 * mean);
        // Same seed, same draws.
        assert_eq!(out, run());
    }

    #[test]
    fn short_series_are_smoothed() {
        let (m, sd, method) = smooth(&[100.0, 200.0, 300.0, 400.0]);
        assert!(
            method.starts_with("simple exponential smoothing"),
            "{method}"
        );
        assert!(m > 300.0 && m <= 400.0 && sd > 0.0);
        let (m, _, method) = smooth(&[10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]);
        assert!(method.contains("AutoETS"), "{method}");
        assert!(m > 16.0 && m < 19.0, "{m}");
        assert_eq!(smooth(&[]).0, 0.0);
    }
}
