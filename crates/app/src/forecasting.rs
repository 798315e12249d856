//! The forecast of a month or quarter with its range, rolled up by rep,
//! team, region or company over the caller's scope, and what moved it.

use std::collections::HashMap;
use std::sync::Mutex;

use pipewise_engines::forecast::{
    self, DealChange, DealForecast, Forecast, ForecastOptions, GroupForecast, Models, Period,
    PeriodKind, RangeModel, RollUp,
};
use pipewise_engines::predict::Snapshots;
use pipewise_features::{DAY, Data, format_date};
use pipewise_models::Classifier;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::scope::Scope;
use crate::{InputError, Progress};

/// The forecast of `period` (default: the quarter holding the date a week
/// after `as_of`) as of `as_of`, rolled up `by`, and what moved it over the
/// week before: what `pipewise forecast` shows. Fits the models and learns
/// the range from the org's earlier periods (slow: minutes on large orgs).
/// The deals in `excluded` (managers' overrides, [`excluded_deals`]) count
/// for nothing. `registered_win`: the registered win model and its version,
/// used for the open deals' win probabilities (their deal pages' numbers)
/// when `as_of` is the end of the data; ignored for an earlier date, whose
/// win model is fitted with what was known then.
#[allow(clippy::too_many_arguments)]
pub fn forecast_at(
    data: &Data,
    snap: &Snapshots,
    period: Option<&str>,
    by: RollUp,
    as_of: i64,
    draws: usize,
    excluded: &std::collections::HashSet<String>,
    registered_win: Option<(Classifier, i64)>,
    progress: &dyn Progress,
) -> anyhow::Result<(Forecast, Vec<DealChange>)> {
    let period = match period {
        Some(p) => Period::parse(p)?,
        None => Period::containing(as_of + 7 * DAY, PeriodKind::Quarter),
    };
    check_window(&period, as_of).map_err(|why| anyhow::anyhow!("cannot forecast {why}"))?;
    let opts = ForecastOptions {
        draws: draws.max(100),
        ..ForecastOptions::default()
    };
    progress.report("fitting win and close-timing models", 0.1);
    let registered = registered_win.filter(|_| as_of == data.end);
    let models = forecast::fit_models_using(data, snap, as_of, &opts, registered)?;
    let label = "learning the range from earlier periods";
    let range = forecast::range_at(data, snap, period.kind, as_of, &opts, &mut |k, n| {
        progress.report(label, k as f64 / n.max(1) as f64)
    });
    progress.report(label, 1.0);
    let f = forecast::forecast_excluding(
        data, &models, None, &period, as_of, by, &range, &opts, excluded,
    )?;
    let moved = forecast::changes(data, &models, &period, as_of - 7 * DAY, as_of)?;
    Ok((f, moved))
}

/// Whether `period` can be forecast as of `as_of`: it must end at least a
/// week after it (a period that is over, or all but over, is its actual)
/// and within the close-timing model's horizon
/// ([`ForecastOptions::horizon_days`], 120 days): beyond it the model has
/// never seen how deals close, and months past it came out inconsistent with
/// their quarter on the demo org (2026-04 to 2026-06 adding up to more than
/// 2026-Q2). The error says which periods can be.
pub fn check_window(period: &Period, as_of: i64) -> Result<(), String> {
    let horizon = ForecastOptions::default().horizon_days;
    if period.end <= as_of + 7 * DAY || period.end > as_of + (horizon + 1) * DAY {
        return Err(format!(
            "{}: forecasts cover the months and quarters that end between a week and {horizon} days after the data's last date, {} (the close-timing model's horizon); past periods: pipewise backtest forecast",
            period.label,
            format_date(as_of)
        ));
    }
    Ok(())
}

/// The snapshot dates the forecast's models train on.
pub fn snapshot_dates(data: &Data) -> Vec<i64> {
    forecast::snapshot_dates(data, &ForecastOptions::default())
}

/// Forecast parameters.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ForecastQuery {
    /// A quarter (`2025-Q3`) or a month (`2025-07`) ending between a week
    /// and 120 days after the data's last date. Default: the quarter holding
    /// the date a week after it.
    #[param(pattern = "^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub period: Option<String>,
    /// `rep`, `team`, `region` or `company` (default `team`).
    #[param(pattern = "^(rep|team|region|company)$")]
    pub by: Option<String>,
    /// Deals listed in `moved` (0-200, default 10; `deals` lists every deal).
    #[param(minimum = 0, maximum = 200)]
    pub top: Option<usize>,
}

/// A forecast over the caller's scope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastView {
    /// `2025-Q3` or `2025-07`.
    pub period: String,
    pub kind: PeriodKind,
    /// First and last day of the period (YYYY-MM-DD).
    pub period_start: String,
    pub period_end: String,
    pub as_of: String,
    /// The models learnt from deals closed before this date.
    pub models_cutoff: String,
    /// The registered win model whose probabilities the open deals carry
    /// (as on their deal pages); `None`: one fitted at `models_cutoff`.
    pub win_model_version: Option<i64>,
    pub draws: usize,
    pub by: RollUp,
    /// The caller's whole scope: P10/P50/P90 and mean of bookings in the
    /// period, won-to-date, the reps' commit, stage-weighted pipeline and run-rate.
    pub total: GroupForecast,
    /// One per rep, team or region in the scope, largest P50 first.
    pub groups: Vec<GroupForecast>,
    /// How the range allows for the models' own error.
    pub range: RangeModel,
    /// How the deals not yet created are forecast.
    pub new_pipeline_method: String,
    /// Open deals in the scope, largest expected contribution first.
    pub deals: Vec<DealForecast>,
    /// The deals that moved the forecast most since `moved_since`.
    pub moved: Vec<DealChange>,
    pub moved_since: String,
    /// How far to trust it: the same forecast made weekly over the latest
    /// complete periods of this kind, against what closed (null: no complete
    /// period to test on).
    pub accuracy: Option<Accuracy>,
}

/// The forecast's accuracy over the latest complete periods of its kind:
/// forecasts made every Monday with models fitted at each period's start
/// on what was known then, scored against what closed (whole company).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accuracy {
    /// The periods tested, oldest first.
    pub periods: Vec<String>,
    /// Weekly forecasts scored.
    pub forecasts: usize,
    /// Share of those whose actual fell inside P10-P90 (0-1; 0.8 is right).
    pub coverage_p10_p90: f64,
    /// pipewise's P50 and the usual rules, by weighted absolute percentage
    /// error (WAPE, lower is better) and bias (positive: over-forecast).
    pub methods: Vec<MethodAccuracy>,
    /// Each weekly forecast against the actual, in the corporate currency;
    /// empty unless the caller sees the whole company (the actuals are
    /// company bookings).
    pub weeks: Vec<AccuracyWeek>,
}

/// One method's error over the backtest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MethodAccuracy {
    pub method: String,
    /// Σ|forecast − actual| / Σ actual (0-1+).
    pub wape: f64,
    /// Σ(forecast − actual) / Σ actual.
    pub bias: f64,
}

/// One weekly forecast of a tested period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccuracyWeek {
    pub period: String,
    /// When the forecast was made (YYYY-MM-DD).
    pub as_of: String,
    pub weeks_left: i64,
    pub actual: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub commit: f64,
    pub stage_weighted: f64,
    pub run_rate: f64,
}

/// One period's forecast by rep with its draws, and what moved it.
struct PeriodForecast {
    by_rep: Forecast,
    draws: Vec<Vec<f64>>,
    moved: Vec<DealChange>,
}

/// What the forecast needs, fitted once per data and model version: the
/// data, the models as of its end and the range per period kind. Each
/// period's forecast is computed on first request and kept.
pub struct ForecastBase {
    data: Data,
    models: Models,
    ranges: Vec<(PeriodKind, RangeModel)>,
    backtests: Vec<(PeriodKind, forecast::Backtest)>,
    pub as_of: i64,
    opts: ForecastOptions,
    periods: Mutex<HashMap<String, std::sync::Arc<PeriodForecast>>>,
    /// Deals managers took out of the forecast (opportunity ids).
    excluded: Mutex<std::collections::HashSet<String>>,
}

/// The deals whose latest override takes them out of the forecast.
pub fn excluded_deals(
    store: &pipewise_store::SqliteStore,
) -> anyhow::Result<std::collections::HashSet<String>> {
    Ok(store
        .forecast_overrides()?
        .into_iter()
        .filter(|o| o.excluded)
        .map(|o| o.opportunity_id)
        .collect())
}

/// Periods kept per base (the oldest requested goes first).
const KEEP_PERIODS: usize = 12;

impl ForecastBase {
    /// Fits the models at the end of the data and learns the quarter and
    /// month ranges (minutes on large orgs; reports progress).
    ///
    /// `registered_win`: the registered win model and its version, whose
    /// probabilities the open deals then carry (as on their deal pages).
    pub fn build(
        data: Data,
        registered_win: Option<(Classifier, i64)>,
        progress: &dyn Progress,
    ) -> anyhow::Result<ForecastBase> {
        let opts = ForecastOptions::default();
        let as_of = data.end;
        let snap = crate::snapshots(&data, &snapshot_dates(&data), progress);
        progress.report("fitting win and close-timing models", 0.0);
        let models = forecast::fit_models_using(&data, &snap, as_of, &opts, registered_win)?;
        progress.report("fitting win and close-timing models", 1.0);
        let mut ranges = Vec::new();
        let mut backtests = Vec::new();
        for kind in [PeriodKind::Quarter, PeriodKind::Month] {
            let label = match kind {
                PeriodKind::Quarter => "learning the quarter range from earlier quarters",
                PeriodKind::Month => "learning the month range from earlier months",
            };
            let (r, b) =
                forecast::range_and_backtest_at(&data, &snap, kind, as_of, &opts, &mut |k, n| {
                    progress.report(label, k as f64 / n.max(1) as f64)
                });
            ranges.push((kind, r));
            if let Some(b) = b {
                backtests.push((kind, b));
            }
        }
        Ok(ForecastBase {
            data,
            models,
            ranges,
            backtests,
            as_of,
            opts,
            periods: Mutex::new(HashMap::new()),
            excluded: Mutex::new(Default::default()),
        })
    }

    /// Checks the query; returns the period and the roll-up.
    /// A period outside the forecast window answers [`AppError::Absent`](crate::AppError::Absent).
    pub fn parse(&self, q: &ForecastQuery) -> Result<(Period, RollUp), crate::AppError> {
        let period = match &q.period {
            None => Period::containing(self.as_of + 7 * DAY, PeriodKind::Quarter),
            Some(p) => Period::parse(p).map_err(|_| {
                InputError::new(
                    "period",
                    "a quarter such as 2025-Q3 or a month such as 2025-07",
                    p,
                )
            })?,
        };
        if let Err(why) = check_window(&period, self.as_of) {
            return Err(crate::AppError::Absent(format!("no forecast for {why}")));
        }
        let by = match q.by.as_deref().unwrap_or("team") {
            "rep" => RollUp::Rep,
            "team" => RollUp::Team,
            "region" => RollUp::Region,
            "company" => RollUp::Company,
            other => {
                return Err(
                    InputError::new("by", "one of rep, team, region, company", other).into(),
                );
            }
        };
        if let Some(t) = q.top
            && t > 200
        {
            return Err(InputError::new("top", "a number from 0 to 200", &t.to_string()).into());
        }
        Ok((period, by))
    }

    fn period(&self, period: &Period) -> anyhow::Result<std::sync::Arc<PeriodForecast>> {
        if let Some(p) = self
            .periods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&period.label)
        {
            return Ok(p.clone());
        }
        let range = self
            .ranges
            .iter()
            .find(|(k, _)| *k == period.kind)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(RangeModel::prior);
        let excluded = self
            .excluded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (by_rep, draws) = forecast::forecast_by_rep_id(
            &self.data,
            &self.models,
            period,
            self.as_of,
            &range,
            &self.opts,
            &excluded,
        )?;
        let moved = forecast::changes(
            &self.data,
            &self.models,
            period,
            self.as_of - 7 * DAY,
            self.as_of,
        )?;
        let p = std::sync::Arc::new(PeriodForecast {
            by_rep,
            draws,
            moved,
        });
        if *self.excluded.lock().unwrap_or_else(|p| p.into_inner()) != excluded {
            // Overridden meanwhile: answer, but do not keep.
            return Ok(p);
        }
        let mut cache = self.periods.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= KEEP_PERIODS {
            cache.clear();
        }
        cache.insert(period.label.clone(), p.clone());
        Ok(p)
    }

    /// The forecast over `scope`: groups and totals from the reps in it
    /// only, and only their deals. Computes the period on first request
    /// (about a second on large orgs: call off the async workers).
    pub fn view(&self, scope: &Scope, q: &ForecastQuery) -> Result<ForecastView, crate::AppError> {
        let (period, by) = self.parse(q)?;
        let p = self.period(&period)?;
        let keep = |rep: &str| scope.allows((!rep.is_empty()).then_some(rep));
        let (mut total, mut groups) = forecast::roll_up(&self.data, &p.by_rep, &p.draws, by, &keep);
        if by == RollUp::Company && scope.users().is_some() {
            // Not the company: the caller's part of it.
            for g in &mut groups {
                g.group = "your scope".into();
            }
        }
        total.group = if scope.users().is_none() {
            "company".into()
        } else {
            "your scope".into()
        };
        let mut deals: Vec<DealForecast> = p
            .by_rep
            .deals
            .iter()
            .filter(|d| keep(&d.rep_id))
            .cloned()
            .collect();
        deals.sort_by(|a, b| {
            b.expected
                .total_cmp(&a.expected)
                .then(a.opportunity_id.cmp(&b.opportunity_id))
        });
        let owner = |id: &str| {
            self.data
                .index_of(id)
                .and_then(|i| self.data.opps[i].owner.at(self.as_of))
                .unwrap_or("")
                .to_string()
        };
        let moved = p
            .moved
            .iter()
            .filter(|c| keep(&owner(&c.opportunity_id)))
            .take(q.top.unwrap_or(10))
            .cloned()
            .collect();
        let last_day = format_date(period.end - DAY);
        Ok(ForecastView {
            period: period.label.clone(),
            kind: period.kind,
            period_start: format_date(period.start),
            period_end: last_day,
            as_of: format_date(self.as_of),
            models_cutoff: p.by_rep.models_cutoff.clone(),
            win_model_version: p.by_rep.win_model_version,
            draws: p.by_rep.draws,
            by,
            total,
            groups,
            range: p.by_rep.range.clone(),
            new_pipeline_method: p.by_rep.new_pipeline.method.clone(),
            deals,
            moved,
            moved_since: format_date(self.as_of - 7 * DAY),
            accuracy: self.accuracy(period.kind, scope.users().is_none()),
        })
    }

    fn accuracy(&self, kind: PeriodKind, whole_company: bool) -> Option<Accuracy> {
        let b = &self.backtests.iter().find(|(k, _)| *k == kind)?.1;
        Some(Accuracy {
            periods: b.periods.clone(),
            forecasts: b.points.len(),
            coverage_p10_p90: b.coverage_p10_p90,
            methods: b
                .scores
                .iter()
                .map(|m| MethodAccuracy {
                    method: m.method.clone(),
                    wape: m.wape,
                    bias: m.bias,
                })
                .collect(),
            weeks: if whole_company {
                b.points
                    .iter()
                    .map(|p| AccuracyWeek {
                        period: p.period.clone(),
                        as_of: p.as_of.clone(),
                        weeks_left: p.weeks_left,
                        actual: p.actual,
                        p10: p.p10,
                        p50: p.p50,
                        p90: p.p90,
                        commit: p.commit,
                        stage_weighted: p.stage_weighted,
                        run_rate: p.run_rate,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Sets the deals taken out of the forecast; the periods computed are
    /// dropped (computed again on request).
    pub fn set_excluded(&self, excluded: std::collections::HashSet<String>) {
        let mut cur = self.excluded.lock().unwrap_or_else(|p| p.into_inner());
        if *cur != excluded {
            *cur = excluded;
            drop(cur);
            self.periods
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
    }

    /// Computes the default quarter and the window's months ahead of the
    /// first request (a period the data cannot forecast is left out).
    pub fn warm(&self, progress: &dyn Progress) {
        let mut labels = self.window_periods(PeriodKind::Quarter);
        labels.extend(self.window_periods(PeriodKind::Month));
        let n = labels.len();
        for (k, l) in labels.iter().enumerate() {
            progress.report(
                "forecasting the coming quarter and months",
                k as f64 / n as f64,
            );
            if let Ok(p) = Period::parse(l) {
                let _ = self.period(&p);
            }
        }
        progress.report("forecasting the coming quarter and months", 1.0);
    }

    /// The periods of `kind` whose forecast the window allows (ending a
    /// week to 120 days after the data's end), in order.
    pub fn window_periods(&self, kind: PeriodKind) -> Vec<String> {
        let mut out = Vec::new();
        let mut p = Period::containing(self.as_of, kind);
        for _ in 0..6 {
            if check_window(&p, self.as_of).is_ok() {
                out.push(p.label.clone());
            }
            p = p.back(-1);
        }
        out
    }
}
