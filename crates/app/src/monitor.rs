//! Drift and accuracy monitoring of the active win or slip model: its
//! inputs in the recent weeks against what it was trained on
//! ([`pipewise_engines::drift`]), and its accuracy month by month as
//! outcomes arrive: on its held-out test window, and on the scores stored
//! by `pipewise score` (live).

use std::collections::{BTreeMap, HashMap};

use pipewise_engines::drift::{self, FeatureDrift, PSI_SHIFT};
use pipewise_engines::predict::{self, Target};
use pipewise_features::{Data, features_for, format_date, mondays};
use pipewise_models::metrics::{ece, roc_auc};
use pipewise_store::SqliteStore;
use serde::Serialize;
use utoipa::ToSchema;

const DAY: i64 = 86_400;

/// The reference: the last this many Mondays the scoring model was fitted on.
pub const REFERENCE_WEEKS: usize = 13;

/// The intake is compared when both windows hold this many new deals.
pub const MIN_INTAKE_ROWS: usize = 200;

/// A month's accuracy needs this many scored rows with an outcome.
pub const MIN_MONTH_ROWS: usize = 100;

/// A month's accuracy raises an alert only with this many rows (weekly
/// snapshots of a few hundred deals: fewer give an ECE of 0.1 by chance).
pub const MIN_ALERT_ROWS: usize = 500;

/// ECE past which a month's calibration is an alert.
pub const ECE_ALERT: f64 = 0.10;
/// ROC-AUC this far below the model's test-window figure is an alert.
pub const AUC_DROP_ALERT: f64 = 0.05;

/// A window of weekly snapshots.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotWindow {
    pub from: String,
    pub to: String,
    /// Mondays read.
    pub snapshots: usize,
    /// Open-deal rows read.
    pub rows: usize,
}

/// One month's accuracy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthAccuracy {
    /// YYYY-MM of the scores' dates.
    pub month: String,
    /// `held_out` (the test window) or `live` (stored scores).
    pub source: &'static str,
    pub rows: usize,
    pub positives: usize,
    pub mean_predicted: f64,
    pub observed: f64,
    pub roc_auc: Option<f64>,
    pub ece: f64,
}

/// What `pipewise monitor` reports.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonitorReport {
    pub model: String,
    pub version: i64,
    /// The last [`REFERENCE_WEEKS`] weeks the scoring model was fitted on
    /// that end before the recent window begins.
    pub reference: SnapshotWindow,
    /// The latest weeks of the data.
    pub recent: SnapshotWindow,
    /// Every model feature over the open pipeline, largest PSI first.
    pub features: Vec<FeatureDrift>,
    /// The deal-level features over the intake: deals in their first week
    /// (empty when either window has fewer than [`MIN_INTAKE_ROWS`]).
    pub intake: Vec<FeatureDrift>,
    /// New-deal rows in the reference window.
    pub intake_reference_rows: usize,
    /// New-deal rows in the recent window.
    pub intake_recent_rows: usize,
    /// The model's test-window ROC-AUC, for the accuracy alerts.
    pub test_roc_auc: Option<f64>,
    pub accuracy: Vec<MonthAccuracy>,
    /// Past the thresholds, in words.
    pub alerts: Vec<String>,
    /// What could not be judged (no live scores yet).
    pub notes: Vec<String>,
    /// The thresholds: PSI, ECE and the AUC drop.
    pub psi_alert: f64,
    pub ece_alert: f64,
    pub auc_drop_alert: f64,
}

/// What shares a feature's value: every deal of a rep (the rep features:
/// tenure, trailing win rates, volume), of an industry (its trailing win
/// rates) or of an account (its wins and usage). Their rows repeat a few
/// dozen values, each moving with time as the org ages, so a PSI over deal
/// rows overstates them; the monitor reports them without alerting.
pub fn shared_by(feature: &str) -> Option<&'static str> {
    use pipewise_features::registry::{self, Family};
    if registry::def(feature).is_some_and(|d| d.family == Family::Rep) {
        return Some("rep");
    }
    match feature {
        "industry_win_lift" | "product_industry_win_lift" => Some("industry"),
        "account_wins_per_year" | "usage_trend" | "usage_per_employee" => Some("account"),
        _ => None,
    }
}

/// The rows of every open deal at each of `dates`, as one table; with
/// `intake`, only the deals created in the week before each date.
fn open_rows(data: &Data, dates: &[i64], intake: bool) -> pipewise_core::Table {
    let mut out: Option<pipewise_core::Table> = None;
    for &t in dates {
        let mut rows = data.open_at(t);
        if intake {
            rows.retain(|&o| data.opps[o].created > t - 7 * DAY);
        }
        let tab = features_for(data, &rows, t);
        out = Some(match out {
            None => tab,
            Some(mut acc) => {
                for (a, b) in acc.columns.iter_mut().zip(tab.columns) {
                    match (a, b) {
                        (pipewise_core::Column::Numeric(x), pipewise_core::Column::Numeric(y)) => {
                            x.extend(y)
                        }
                        (
                            pipewise_core::Column::Categorical(x),
                            pipewise_core::Column::Categorical(y),
                        ) => x.extend(y),
                        _ => {}
                    }
                }
                acc
            }
        });
    }
    out.unwrap_or_default()
}

fn month_accuracy(
    source: &'static str,
    rows: impl Iterator<Item = (String, f64, f64)>,
) -> Vec<MonthAccuracy> {
    let mut by: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (month, p, y) in rows {
        let e = by.entry(month).or_default();
        e.0.push(p);
        e.1.push(y);
    }
    by.into_iter()
        .filter(|(_, (p, _))| p.len() >= MIN_MONTH_ROWS)
        .map(|(month, (p, y))| {
            let pos = y.iter().filter(|&&v| v > 0.5).count();
            MonthAccuracy {
                month,
                source,
                rows: p.len(),
                positives: pos,
                mean_predicted: p.iter().sum::<f64>() / p.len() as f64,
                observed: pos as f64 / p.len() as f64,
                roc_auc: (pos > 0 && pos < p.len()).then(|| roc_auc(&p, &y)),
                ece: ece(&p, &y, 10),
            }
        })
        .collect()
}

/// Monitors the active `kind` model (`win` or `slip`): the drift of each of
/// its features between the snapshots it was fitted on and the last
/// `recent_weeks` weeks of the data, and its accuracy by month. Errors when
/// no such model is registered.
pub fn monitor(
    store: &SqliteStore,
    data: &Data,
    kind: &str,
    recent_weeks: i64,
) -> anyhow::Result<MonitorReport> {
    let target = match kind {
        "win" => Target::Win,
        "slip" => Target::Slip,
        other => anyhow::bail!("--model {other:?}: expected win or slip"),
    };
    anyhow::ensure!(
        recent_weeks >= 1,
        "--weeks must be at least 1, got {recent_weeks}"
    );
    let rec = store.model(kind, None)?.ok_or_else(|| {
        anyhow::anyhow!("no active {kind} model: train one first (pipewise train)")
    })?;
    let features: Vec<String> = rec
        .features
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // The reference: the registered model's refit window when it has one
    // (what the scoring model saw), else its training window.
    let window = |v: &serde_json::Value| -> Option<(i64, i64)> {
        Some((
            crate::day_start(v.get("from")?.as_str()?)?,
            crate::day_start(v.get("to")?.as_str()?)?,
        ))
    };
    let (ref_from, ref_to) = rec
        .metrics
        .get("refit")
        .and_then(window)
        .or_else(|| {
            Some((
                crate::day_start(rec.train_from.as_deref()?)?,
                crate::day_start(rec.train_to.as_deref()?)?,
            ))
        })
        .ok_or_else(|| anyhow::anyhow!("the {kind} model records no training window"))?;
    let recent_from = data.end - recent_weeks * 7 * DAY;
    let mut ref_dates = mondays(ref_from, ref_to + DAY);
    ref_dates.retain(|&d| d < recent_from);
    // The latest quarter the model was fitted on: the org's slow changes
    // (reps' tenure, a growing customer base) move every feature a little
    // over a year and a half; the question is what changed since the model
    // last saw the org.
    if ref_dates.len() > REFERENCE_WEEKS {
        ref_dates.drain(..ref_dates.len() - REFERENCE_WEEKS);
    }
    let recent_dates = mondays(recent_from, data.end);
    anyhow::ensure!(
        !ref_dates.is_empty(),
        "--weeks {recent_weeks}: the recent window would start {}, before any Monday the {kind} model was fitted on (to {}): use fewer weeks",
        format_date(recent_from),
        format_date(ref_to)
    );
    anyhow::ensure!(
        !recent_dates.is_empty(),
        "the data has no Monday in its last {recent_weeks} weeks"
    );
    let reference = open_rows(data, &ref_dates, false);
    let recent = open_rows(data, &recent_dates, false);
    let mut drifts = drift::table_drift(&reference, &recent, &features);
    for d in drifts.iter_mut() {
        d.shared_by = shared_by(&d.feature);
    }
    // The intake: deals in their first week. A shift in what comes in
    // shows there at once; the open pipeline follows as old deals close.
    let deal_level: Vec<String> = features
        .iter()
        .filter(|f| shared_by(f).is_none())
        .cloned()
        .collect();
    let ref_intake = open_rows(data, &ref_dates, true);
    let recent_intake = open_rows(data, &recent_dates, true);
    let intake = if ref_intake.rows() >= MIN_INTAKE_ROWS && recent_intake.rows() >= MIN_INTAKE_ROWS
    {
        drift::table_drift(&ref_intake, &recent_intake, &deal_level)
    } else {
        Vec::new()
    };

    // Accuracy by month: held out, then live.
    let mut accuracy = month_accuracy(
        "held_out",
        store
            .model_holdout(rec.id)?
            .into_iter()
            .map(|h| (h.as_of[..7].to_string(), h.probability, h.outcome)),
    );
    let index: HashMap<&str, usize> = data
        .opps
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let live: Vec<(String, f64, f64)> = store
        .scores_of_kind(kind)?
        .into_iter()
        .filter_map(|(_, entity, as_of, p)| {
            let o = *index.get(entity.as_str())?;
            let t = crate::day_start(&as_of)?;
            let (y, known) = predict::label(data, o, t, target)?;
            (known <= data.end).then(|| (as_of[..7].to_string(), p, y))
        })
        .collect();
    accuracy.extend(month_accuracy("live", live.into_iter()));
    let test_auc = rec
        .metrics
        .get("results")
        .and_then(|r| r.as_array())
        .and_then(|r| r.first())
        .and_then(|r| r.pointer("/metrics/roc_auc"))
        .and_then(|v| v.as_f64());

    let mut alerts: Vec<String> = drifts
        .iter()
        .filter(|d| d.psi > PSI_SHIFT && d.shared_by.is_none())
        .map(|d| {
            format!(
                "{} has shifted in the open pipeline: PSI {:.3} (alert above {PSI_SHIFT}); {}",
                d.feature, d.psi, d.change
            )
        })
        .collect();
    alerts.extend(intake.iter().filter(|d| d.psi > PSI_SHIFT).map(|d| {
        format!(
            "{} has shifted in new deals: PSI {:.3} (alert above {PSI_SHIFT}); {}",
            d.feature, d.psi, d.change
        )
    }));
    // Alerts on live months only: the held-out months are the evaluation
    // the test-window figure comes from (their spread is its noise).
    for m in accuracy
        .iter()
        .filter(|m| m.source == "live" && m.rows >= MIN_ALERT_ROWS)
    {
        if m.ece > ECE_ALERT {
            alerts.push(format!(
                "{} ({}): calibration off, ECE {:.3} (alert above {ECE_ALERT}): predicted {:.1}%, observed {:.1}% of {} rows",
                m.month,
                m.source.replace('_', "-"),
                m.ece,
                100.0 * m.mean_predicted,
                100.0 * m.observed,
                m.rows
            ));
        }
        if let (Some(a), Some(t)) = (m.roc_auc, test_auc)
            && a < t - AUC_DROP_ALERT
        {
            alerts.push(format!(
                "{} ({}): ROC-AUC {:.3}, {:.3} below the test window's {:.3} (alert at more than {AUC_DROP_ALERT})",
                m.month,
                m.source.replace('_', "-"),
                a,
                t - a,
                t
            ));
        }
    }
    let mut notes = Vec::new();
    if !accuracy.iter().any(|m| m.source == "live") {
        notes.push(format!(
            "no live accuracy: no stored {kind} scores whose outcomes are known yet (at least {MIN_MONTH_ROWS} in a month); run `pipewise score` on a schedule (e.g. weekly) to follow accuracy after the model's test window"
        ));
    }
    let window_of = |dates: &[i64], rows: usize| SnapshotWindow {
        from: dates.first().map(|&d| format_date(d)).unwrap_or_default(),
        to: dates.last().map(|&d| format_date(d)).unwrap_or_default(),
        snapshots: dates.len(),
        rows,
    };
    Ok(MonitorReport {
        model: kind.to_string(),
        version: rec.version,
        reference: window_of(&ref_dates, reference.rows()),
        recent: window_of(&recent_dates, recent.rows()),
        features: drifts,
        intake_reference_rows: ref_intake.rows(),
        intake_recent_rows: recent_intake.rows(),
        intake,
        test_roc_auc: test_auc,
        accuracy,
        alerts,
        notes,
        psi_alert: PSI_SHIFT,
        ece_alert: ECE_ALERT,
        auc_drop_alert: AUC_DROP_ALERT,
    })
}
