//! Win and slip models: weekly snapshots of open deals, time-split training,
//! calibration, evaluation against the naive rules (and the simulator's truth),
//! scoring and explanations.

use std::collections::HashMap;

use pipewise_core::{Column, Table};
use pipewise_features::registry::{self, OPPORTUNITY_FEATURES};
use pipewise_features::{DAY, Data, features_for, format_date, mondays};
use pipewise_models::selection::{self, Dropped};
use pipewise_models::{Algorithm, Classifier, FitOptions, Metrics};
use pipewise_store::read::Instant;
use serde::Serialize;

use crate::truth::{Truth, WinOracles};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The deal is eventually won.
    Win,
    /// The deal is not closed by the expected close date as of the snapshot.
    Slip,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Win => "win",
            Target::Slip => "slip",
        }
    }
    /// What the model judges, for "cannot judge ..." messages.
    pub fn judged(self) -> &'static str {
        match self {
            Target::Win => "win probabilities",
            Target::Slip => "slip risk",
        }
    }
    pub fn question(self) -> &'static str {
        match self {
            Target::Win => "Will this open deal be won?",
            Target::Slip => {
                "Will this open deal miss its expected close date (close later, or not at all)?"
            }
        }
    }
}

/// The label of deal `o` at snapshot `t`, and when it became known.
pub fn label(data: &Data, o: usize, t: Instant, target: Target) -> Option<(f64, Instant)> {
    let opp = &data.opps[o];
    match target {
        Target::Win => Some((f64::from(u8::from(opp.won?)), opp.closed?)),
        Target::Slip => {
            let deadline = data.close_date_at(opp, t)? + DAY;
            match opp.closed {
                Some(c) if c <= deadline => Some((0.0, c)),
                _ if deadline <= data.end => Some((1.0, deadline)),
                _ => None,
            }
        }
    }
}

/// Every deal open at every snapshot date, with its features as of that date.
pub struct Snapshots {
    pub date: Vec<Instant>,
    pub opp: Vec<usize>,
    pub table: Table,
}

pub fn snapshots(
    data: &Data,
    dates: &[Instant],
    progress: &mut dyn FnMut(usize, usize),
) -> Snapshots {
    let mut s = Snapshots {
        date: Vec::new(),
        opp: Vec::new(),
        table: Table::default(),
    };
    for (k, &t) in dates.iter().enumerate() {
        let rows = data.open_at(t);
        s.table.extend(features_for(data, &rows, t));
        s.date.extend(std::iter::repeat_n(t, rows.len()));
        s.opp.extend(rows);
        progress(k + 1, dates.len());
    }
    s
}

#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// Snapshots end this many days before the data does, so that most deals
    /// open then have closed by the end (their outcome is known).
    pub horizon_days: i64,
    /// The first snapshot is this many days after the first deal (rep history).
    pub warmup_days: i64,
    /// Share of snapshot dates in the test window (the latest).
    pub test_share: f64,
    /// Calibration is fitted on out-of-fold scores of the training rows, the
    /// deals dealt into this many folds (at most [`FitOptions::bags`] for
    /// trees).
    pub calibration_folds: usize,
    /// The tree learner: [`Algorithm::Hist`] or [`Algorithm::Gbm`] (perpetual).
    pub algorithm: Algorithm,
    pub fit: FitOptions,
    /// After evaluation, refit the model that is returned (and registered
    /// for scoring) on every snapshot whose outcome is known by the end of
    /// the data, the test window included; otherwise the evaluated model,
    /// which knows nothing of the last months, is returned.
    pub refit: bool,
    /// Fit the trees with the feature registry's known directions as
    /// monotone constraints ([`registry::win_effect`],
    /// [`registry::slip_effect`]); off only to measure what they cost.
    pub monotone: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            horizon_days: 120,
            warmup_days: 56,
            test_share: 0.25,
            calibration_folds: 4,
            algorithm: Algorithm::Hist,
            monotone: true,
            refit: true,
            fit: FitOptions {
                // Each bag holds one snapshot per deal (about 2,000 rows):
                // smaller trees, more of them, a slower rate than the defaults.
                hist: pipewise_models::hist::HistParams {
                    num_leaves: 15,
                    min_data_in_leaf: 40,
                    learning_rate: 0.05,
                    iterations: 200,
                    ..Default::default()
                },
                ..FitOptions::default()
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
    pub snapshots: usize,
    pub rows: usize,
    pub positives: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub name: String,
    /// `model`, `baseline` or `oracle`.
    pub kind: &'static str,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct Importance {
    pub feature: String,
    pub family: &'static str,
    pub importance: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub kind: &'static str,
    pub question: &'static str,
    pub algorithm: &'static str,
    pub train: Window,
    /// The isotonic calibration was fitted on the training rows' out-of-fold
    /// scores, the deals dealt into this many folds.
    pub calibration_folds: usize,
    pub test: Window,
    /// Share of the test window's open-deal snapshots whose outcome was known
    /// at the end of the data (the rest could not be scored against an outcome).
    pub test_label_coverage: f64,
    pub features: Vec<String>,
    pub dropped: Vec<Dropped>,
    pub results: Vec<ResultRow>,
    pub importance: Vec<Importance>,
    /// Share of test rows with an oracle probability (simulated data only).
    pub oracle_coverage: Option<f64>,
    /// The minimum data the model needs and what this data had.
    pub data_gate: Gate,
    /// Tracked fields with no history in the data: known only from when
    /// their current values were observed, missing at earlier snapshots.
    pub fields_without_history: Vec<String>,
    /// Categories common in the test window that training barely saw (a new
    /// deal type, product or segment): the model's scores for them rest on
    /// little, and calibration suffers.
    #[serde(default)]
    pub unseen_in_training: Vec<Novelty>,
    /// Whether the explanations' top factors are what moves the scores, on
    /// the test window (`None` for a learner without a reference row).
    pub faithfulness: Option<Faithfulness>,
    /// The rows the returned model was refitted on after evaluation (every
    /// snapshot with an outcome known by the end of the data), or `None`
    /// when the returned model is the evaluated one.
    pub refit: Option<Window>,
    /// Monotone constraints the trees were fitted with: feature names whose
    /// higher values may only raise (`raises`) or only lower (`lowers`) the
    /// probability, from the feature registry.
    pub monotone: Monotone,
}

/// The features a model was constrained on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Monotone {
    pub raises: Vec<String>,
    pub lowers: Vec<String>,
}

/// A check of the explanations against the model: on each test row, the
/// [`Faithfulness::top`] strongest factors are removed (set to the typical
/// deal's values) and the row re-scored. Stated: minus the sum of their
/// contributions, the change the explanation implies; actual: the change
/// of the log-odds the model gives.
#[derive(Debug, Clone, Serialize)]
pub struct Faithfulness {
    pub rows: usize,
    pub top: usize,
    /// Share of rows whose actual change has the stated sign (rows whose
    /// stated change is below 0.05 log-odds are not counted).
    pub same_direction: f64,
    /// Median of actual / stated change over the counted rows (1: exactly
    /// the stated amount).
    pub median_ratio: f64,
    /// Mean |actual − stated| over all rows, log-odds.
    pub mean_abs_error: f64,
    /// Mean |stated| over all rows, log-odds (the scale of the error).
    pub mean_abs_stated: f64,
}

/// [`Faithfulness`] of `model` on the rows of `table` (at most 5,000,
/// evenly spaced).
pub fn faithfulness(
    model: &Classifier,
    table: &Table,
    top: usize,
) -> anyhow::Result<Option<Faithfulness>> {
    let step = table.rows().div_ceil(5_000).max(1);
    let rows: Vec<usize> = (0..table.rows()).step_by(step).collect();
    let t = table.take(&rows);
    let contrib = model.contributions(&t)?;
    let (remove, stated): (Vec<Vec<usize>>, Vec<f64>) = contrib
        .iter()
        .map(|c| {
            let mut order: Vec<usize> = (0..c.len()).filter(|&j| c[j].abs() > 1e-9).collect();
            order.sort_by(|&a, &b| c[b].abs().total_cmp(&c[a].abs()));
            order.truncate(top);
            let stated = -order.iter().map(|&j| c[j]).sum::<f64>();
            (order, stated)
        })
        .unzip();
    let Some(actual) = model.removal_effects(&t, &remove)? else {
        return Ok(None);
    };
    let n = rows.len().max(1) as f64;
    let mut ratios: Vec<f64> = Vec::new();
    let mut same = 0usize;
    for (a, s) in actual.iter().zip(&stated) {
        if s.abs() >= 0.05 {
            ratios.push(a / s);
            if a * s > 0.0 {
                same += 1;
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    Ok(Some(Faithfulness {
        rows: rows.len(),
        top,
        same_direction: same as f64 / ratios.len().max(1) as f64,
        median_ratio: ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN),
        mean_abs_error: actual
            .iter()
            .zip(&stated)
            .map(|(a, s)| (a - s).abs())
            .sum::<f64>()
            / n,
        mean_abs_stated: stated.iter().map(|s| s.abs()).sum::<f64>() / n,
    }))
}

/// A category of the test window that training barely saw.
#[derive(Debug, Clone, Serialize)]
pub struct Novelty {
    pub feature: String,
    pub value: String,
    /// Share of the test window's rows with it.
    pub test_share: f64,
    /// Training rows with it.
    pub training_rows: usize,
}

/// Below this many training rows a category counts as barely seen.
pub const NOVEL_BELOW: usize = 30;

/// Categories holding at least 2% of the test rows and fewer than
/// [`NOVEL_BELOW`] training rows.
fn novelties(table: &Table, train: &[usize], test: &[usize]) -> Vec<Novelty> {
    let mut out = Vec::new();
    for (name, col) in table.names.iter().zip(&table.columns) {
        let Column::Categorical(v) = col else {
            continue;
        };
        let count = |rows: &[usize]| {
            let mut m: HashMap<&str, usize> = HashMap::new();
            for &r in rows {
                if let Some(x) = v[r].as_deref() {
                    *m.entry(x).or_default() += 1;
                }
            }
            m
        };
        let (tr, te) = (count(train), count(test));
        for (value, &n) in &te {
            let share = n as f64 / test.len().max(1) as f64;
            let seen = tr.get(value).copied().unwrap_or(0);
            if share >= 0.02 && seen < NOVEL_BELOW {
                out.push(Novelty {
                    feature: name.clone(),
                    value: value.to_string(),
                    test_share: share,
                    training_rows: seen,
                });
            }
        }
    }
    out.sort_by(|a, b| b.test_share.total_cmp(&a.test_share));
    out
}

/// A data gate: the minimum data an engine needs to judge, and whether the
/// data met it.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    pub met: bool,
    /// What is needed, with its source.
    pub requirement: String,
    /// What the data had.
    pub found: String,
}

/// Where a field's history comes from, for "cannot judge" messages.
pub const HISTORY_HINT: &str = "import the opportunity field history, e.g. opportunity_history.csv or Salesforce's OpportunityFieldHistory; docs/data-format.md";

impl Gate {
    /// A gate whose first condition is `met`, described by `found`.
    pub fn new(met: bool, found: String) -> Gate {
        Gate {
            met,
            requirement: String::new(),
            found: if met { found } else { format!("only {found}") },
        }
    }

    /// A condition not met: it leads the description.
    pub fn block(&mut self, why: &str) {
        self.found = if self.met {
            format!("{why} (otherwise: {})", self.found)
        } else {
            format!("{why}; and {}", self.found)
        };
        self.met = false;
    }

    /// "cannot judge ...: ..." when the gate is not met.
    pub fn refusal(&self, what: &str) -> Option<String> {
        (!self.met).then(|| {
            format!(
                "cannot judge {what}: {}; needs {}",
                self.found, self.requirement
            )
        })
    }
}

/// Closed deals a model needs of each outcome in the 24 months to the end of
/// the data: the minimum Salesforce publishes for Einstein Opportunity
/// Scoring's org-specific model (200 won and 200 lost in 24 months).
pub const MIN_CLOSED_EACH: usize = 200;

/// The data gate of the win or slip model.
///
/// Both need [`MIN_CLOSED_EACH`] won and lost deals closed in the 24 months to
/// the end of the data. The slip model also needs close-date history: without
/// it the expected close date at past snapshots is unknown, so no past
/// snapshot can be labelled.
pub fn data_gate(data: &Data, target: Target) -> Gate {
    let from = data.end - 730 * DAY;
    let (mut won, mut lost) = (0usize, 0usize);
    for o in &data.opps {
        if o.closed.is_some_and(|c| c > from && c <= data.end) {
            match o.won {
                Some(true) => won += 1,
                Some(false) => lost += 1,
                None => {}
            }
        }
    }
    let mut requirement = format!(
        "at least {MIN_CLOSED_EACH} won and {MIN_CLOSED_EACH} lost deals closed in the 24 months to the end of the data (Salesforce's published minimum for Einstein Opportunity Scoring)"
    );
    let mut gate = Gate::new(
        won >= MIN_CLOSED_EACH && lost >= MIN_CLOSED_EACH,
        format!(
            "{won} won and {lost} lost deals closed from {} to {}",
            format_date(from),
            format_date(data.end)
        ),
    );
    if target == Target::Slip {
        requirement
            .push_str(", and close-date history (the expected close date at each past snapshot)");
        if data.without_history.contains(&"close_date") {
            gate.block(&format!(
                "the close date has no history ({HISTORY_HINT}), so the expected close date at past snapshots is unknown"
            ));
        }
    }
    gate.requirement = requirement;
    gate
}

impl ModelReport {
    pub fn result(&self, name: &str) -> Option<&Metrics> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.metrics)
    }
}

pub struct Trained {
    pub target: Target,
    pub report: ModelReport,
    pub model: Classifier,
    /// The evaluated model's scores on its test window, with the outcomes:
    /// what fairness by group is read from.
    pub held_out: Vec<HeldOut>,
}

/// One test-window score of the evaluated model (a deal it never saw).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HeldOut {
    /// The opportunity's id.
    pub opportunity_id: String,
    /// The snapshot (YYYY-MM-DD, a Monday).
    pub date: String,
    /// The calibrated probability.
    pub p: f64,
    /// The outcome (1: won, or slipped).
    pub y: f64,
}

/// CRM default probability per entered stage (Salesforce-style defaults).
pub const STAGE_WEIGHTS: [f64; 5] = [0.10, 0.20, 0.40, 0.60, 0.80];
/// The rep's forecast category read as a probability.
pub const CATEGORY_WEIGHTS: [f64; 3] = [0.15, 0.50, 0.85];

fn numeric<'a>(t: &'a Table, name: &str) -> &'a [f64] {
    match t.column(name) {
        Some(Column::Numeric(v)) => v,
        _ => panic!("feature {name} missing"),
    }
}

/// Historical rate of the label per value of an ordinal feature (training rows).
fn rate_by(values: &[f64], y: &[f64]) -> HashMap<i64, f64> {
    let mut acc: HashMap<i64, (f64, f64)> = HashMap::new();
    for (v, y) in values.iter().zip(y) {
        let k = if v.is_finite() { *v as i64 } else { -1 };
        let e = acc.entry(k).or_default();
        e.0 += y;
        e.1 += 1.0;
    }
    acc.into_iter().map(|(k, (s, n))| (k, s / n)).collect()
}

fn apply_rate(values: &[f64], rates: &HashMap<i64, f64>, fallback: f64) -> Vec<f64> {
    values
        .iter()
        .map(|v| {
            let k = if v.is_finite() { *v as i64 } else { -1 };
            *rates.get(&k).unwrap_or(&fallback)
        })
        .collect()
}

fn window(dates: &[Instant], rows: &[usize], y: &[f64]) -> Window {
    Window {
        from: dates.first().map(|&d| format_date(d)).unwrap_or_default(),
        to: dates.last().map(|&d| format_date(d)).unwrap_or_default(),
        snapshots: dates.len(),
        rows: rows.len(),
        positives: rows.iter().filter(|&&r| y[r] > 0.5).count(),
    }
}

/// The snapshot dates a training run uses.
pub fn snapshot_dates(data: &Data, opts: &TrainOptions) -> Vec<Instant> {
    mondays(
        data.start + opts.warmup_days * DAY,
        data.end - opts.horizon_days * DAY,
    )
}

/// Trains, calibrates and evaluates the model for `target`.
pub fn train(
    data: &Data,
    snap: &Snapshots,
    dates: &[Instant],
    target: Target,
    opts: &TrainOptions,
    truth: Option<&Truth>,
) -> anyhow::Result<Trained> {
    let gate = data_gate(data, target);
    if let Some(refusal) = gate.refusal(target.judged()) {
        anyhow::bail!(refusal);
    }
    anyhow::ensure!(
        dates.len() >= 8,
        "only {} weekly snapshots between the warm-up and the horizon: need at least 8 (about {} weeks of history)",
        dates.len(),
        8 + (opts.warmup_days + opts.horizon_days) / 7
    );
    // The test window is the last `test_share` of the dates. Training and
    // calibration snapshots end `horizon_days` before it starts and use only
    // outcomes known when it starts: a model trained on the day the test
    // window opens could have been trained on exactly these rows, and no deal
    // is in both (deals still open then are left out of training).
    let n_test = ((dates.len() as f64) * opts.test_share).round().max(1.0) as usize;
    let test_dates = &dates[dates.len() - n_test..];
    let test_start = test_dates[0];
    let fit_dates: Vec<Instant> = dates
        .iter()
        .copied()
        .filter(|&d| d <= test_start - opts.horizon_days * DAY)
        .collect();
    anyhow::ensure!(
        fit_dates.len() >= 6,
        "only {} weekly snapshots before the test window's embargo: need more history",
        fit_dates.len()
    );
    let fit_end = *fit_dates.last().expect("checked");
    let mut labels = vec![f64::NAN; snap.opp.len()];
    let (mut tr, mut te) = (Vec::new(), Vec::new());
    let mut test_open = 0usize;
    for r in 0..snap.opp.len() {
        let t = snap.date[r];
        if t > fit_end && t < test_start {
            continue;
        }
        let l = label(data, snap.opp[r], t, target);
        if t >= test_start {
            test_open += 1;
        }
        let Some((y, known)) = l else { continue };
        labels[r] = y;
        if t <= fit_end {
            if known <= test_start {
                tr.push(r);
            }
        } else if known <= data.end {
            te.push(r);
        }
    }
    let pick = |rows: &[usize]| -> Vec<f64> { rows.iter().map(|&r| labels[r]).collect() };
    let (y_tr, y_te) = (pick(&tr), pick(&te));
    for (name, y) in [("training", &y_tr), ("test", &y_te)] {
        let pos = y.iter().filter(|&&v| v > 0.5).count();
        anyhow::ensure!(
            pos > 0 && pos < y.len(),
            "the {name} window has {} snapshots with a known outcome, {pos} of them positive: not enough to train a {} model",
            y.len(),
            target.name()
        );
    }
    let t_tr = snap.table.take(&tr);
    // Feature selection on the training rows.
    let mut dropped = selection::screen(&t_tr);
    let keep = |t: &Table, dropped: &[Dropped]| -> Table {
        let mut out = Table::default();
        for (n, c) in t.names.iter().zip(&t.columns) {
            if !dropped.iter().any(|d| &d.feature == n) {
                out.push(n.clone(), c.clone());
            }
        }
        out
    };
    let mut x_tr = keep(&t_tr, &dropped);
    // Calibrated on out-of-fold scores (folds of deals): each training row
    // scored by trees that never saw its deal, as a deal in the test window
    // will be. A later calibration window would hold the same deals' later
    // snapshots, which the trees have seen (over-confident maps), and would
    // keep the most recent months out of training.
    let groups: Vec<usize> = tr.iter().map(|&r| snap.opp[r]).collect();
    let fit = FitOptions {
        monotone: opts.monotone.then_some(match target {
            Target::Win => registry::win_effect as fn(&str) -> i8,
            Target::Slip => registry::slip_effect,
        }),
        ..opts.fit
    };
    let (gbm, _) = Classifier::fit_cross_calibrated(
        opts.algorithm,
        &x_tr,
        &y_tr,
        &groups,
        opts.calibration_folds,
        &fit,
    )?;
    // Features the trees never split on carry no signal here: reported as
    // dropped and left out of the logistic baseline (their tree contribution
    // is zero, so the trees need no refit).
    let unused = selection::unused(&gbm.names, &gbm.importance());
    if unused.len() < gbm.names.len() {
        dropped.extend(unused);
        x_tr = keep(&t_tr, &dropped);
    }
    let x_te = keep(&snap.table.take(&te), &dropped);
    let all_te = snap.table.take(&te);
    let (logit, _) = Classifier::fit_cross_calibrated(
        Algorithm::Logistic,
        &x_tr,
        &y_tr,
        &groups,
        opts.calibration_folds,
        &opts.fit,
    )?;

    let p_te = gbm.predict(&all_te)?;
    let held_out: Vec<HeldOut> = te
        .iter()
        .zip(&p_te)
        .zip(&y_te)
        .map(|((&r, &p), &y)| HeldOut {
            opportunity_id: data.opps[snap.opp[r]].id.clone(),
            date: format_date(snap.date[r]),
            p,
            y,
        })
        .collect();
    let mut results = vec![
        ResultRow {
            name: "pipewise (gradient-boosted trees, calibrated)".into(),
            kind: "model",
            metrics: Metrics::of(&p_te, &y_te),
        },
        ResultRow {
            name: "logistic regression (calibrated)".into(),
            kind: "model",
            metrics: Metrics::of(&logit.predict(&x_te)?, &y_te),
        },
    ];
    let full_te = snap.table.take(&te);
    let stage_te = numeric(&full_te, "stage");
    let stage_tr = numeric(&t_tr, "stage");
    let cat_te = numeric(&full_te, "forecast_category");
    let cat_tr = numeric(&t_tr, "forecast_category");
    let base_rate = y_tr.iter().sum::<f64>() / y_tr.len() as f64;
    // A baseline read from a field without history would be a constant
    // (the field is unknown at every test snapshot): left out, not shown as
    // a figure the model beats.
    let stage_known = !data.without_history.contains(&"stage");
    let category_known = !data.without_history.contains(&"forecast_category");
    if target == Target::Win && stage_known {
        let p: Vec<f64> = stage_te
            .iter()
            .map(|s| {
                if s.is_finite() {
                    STAGE_WEIGHTS[(*s as usize).min(4)]
                } else {
                    0.1
                }
            })
            .collect();
        results.push(ResultRow {
            name: "stage-weighted (CRM default probability per stage)".into(),
            kind: "baseline",
            metrics: Metrics::of(&p, &y_te),
        });
    }
    if target == Target::Win && category_known {
        let p: Vec<f64> = cat_te
            .iter()
            .map(|c| {
                if c.is_finite() {
                    CATEGORY_WEIGHTS[(*c as usize).min(2)]
                } else {
                    0.15
                }
            })
            .collect();
        results.push(ResultRow {
            name: "rep's forecast category".into(),
            kind: "baseline",
            metrics: Metrics::of(&p, &y_te),
        });
    }
    if stage_known {
        let p = apply_rate(stage_te, &rate_by(stage_tr, &y_tr), base_rate);
        results.push(ResultRow {
            name: "historical rate per stage".into(),
            kind: "baseline",
            metrics: Metrics::of(&p, &y_te),
        });
    }
    if target == Target::Slip && category_known {
        let p = apply_rate(cat_te, &rate_by(cat_tr, &y_tr), base_rate);
        results.push(ResultRow {
            name: "historical rate per forecast category".into(),
            kind: "baseline",
            metrics: Metrics::of(&p, &y_te),
        });
    }
    let mut oracle_coverage = None;
    if let (Some(truth), Target::Win) = (truth, target) {
        let rows: Vec<(WinOracles, f64)> = te
            .iter()
            .filter_map(|&r| {
                let id = &data.opps[snap.opp[r]].id;
                Some((
                    truth.win_oracles(id, &format_date(snap.date[r]))?,
                    labels[r],
                ))
            })
            .collect();
        oracle_coverage = Some(rows.len() as f64 / te.len().max(1) as f64);
        let oracles: [(&str, fn(&WinOracles) -> Option<f64>); 3] = [
            ("oracle (simulator's true win probability)", |o| {
                Some(o.truth)
            }),
            ("oracle without the deal's own strength draw", |o| {
                o.without_draw
            }),
            ("oracle inferring that draw from the deal's history", |o| {
                o.draw_inferred
            }),
        ];
        for (name, pick) in oracles {
            let (p, y): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|(o, y)| Some((pick(o)?, *y)))
                .unzip();
            if !p.is_empty() {
                results.push(ResultRow {
                    name: name.into(),
                    kind: "oracle",
                    metrics: Metrics::of(&p, &y),
                });
            }
        }
    }
    // Global importance: mean |contribution| over the test rows (what moves
    // scores in practice; split gain overstates many-level categories).
    let contrib = gbm.contributions(&all_te)?;
    let mut imp = vec![0.0; gbm.names.len()];
    for row in &contrib {
        for (v, c) in imp.iter_mut().zip(row) {
            *v += c.abs();
        }
    }
    let total: f64 = imp.iter().sum();
    if total > 0.0 {
        imp.iter_mut().for_each(|v| *v /= total);
    }
    let mut importance: Vec<Importance> = gbm
        .names
        .iter()
        .zip(&imp)
        .map(|(n, &v)| Importance {
            feature: n.clone(),
            family: registry::def(n).map_or("", |d| d.family.name()),
            importance: v,
        })
        .collect();
    importance.retain(|i| i.importance > 0.0);
    importance.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    let report = ModelReport {
        kind: target.name(),
        question: target.question(),
        algorithm: opts.algorithm.name(),
        train: window(&fit_dates, &tr, &labels),
        calibration_folds: opts.calibration_folds,
        test: window(test_dates, &te, &labels),
        test_label_coverage: te.len() as f64 / test_open.max(1) as f64,
        features: x_tr.names.clone(),
        dropped,
        results,
        importance,
        oracle_coverage,
        data_gate: gate,
        fields_without_history: data.without_history.iter().map(|f| f.to_string()).collect(),
        unseen_in_training: novelties(&snap.table, &tr, &te),
        faithfulness: faithfulness(&gbm, &all_te, 3)?,
        refit: None,
        monotone: {
            let mut m = Monotone::default();
            for (name, d) in gbm.names.iter().zip(gbm.monotone()) {
                match d {
                    1 => m.raises.push(name.clone()),
                    -1 => m.lowers.push(name.clone()),
                    _ => {}
                }
            }
            m
        },
    };
    let mut report = report;
    let model = if opts.refit {
        let (model, rows) = refit(data, snap, target, &gbm.names, opts, &fit)?;
        report.refit = Some(rows);
        model
    } else {
        gbm
    };
    Ok(Trained {
        target,
        report,
        model,
        held_out,
    })
}

/// The model for scoring: fitted as the evaluated one was (its features,
/// learner, constraints and out-of-fold calibration) on every snapshot
/// whose outcome is known by the end of the data, and those rows.
fn refit(
    data: &Data,
    snap: &Snapshots,
    target: Target,
    features: &[String],
    opts: &TrainOptions,
    fit: &FitOptions,
) -> anyhow::Result<(Classifier, Window)> {
    let mut labels = vec![f64::NAN; snap.opp.len()];
    let mut rows = Vec::new();
    for (r, l) in labels.iter_mut().enumerate() {
        if let Some((y, known)) = label(data, snap.opp[r], snap.date[r], target)
            && known <= data.end
        {
            *l = y;
            rows.push(r);
        }
    }
    let all = snap.table.take(&rows);
    let mut x = Table::default();
    for name in features {
        let c = all
            .column(name)
            .expect("the evaluated model's features are snapshot columns");
        x.push(name.clone(), c.clone());
    }
    let y: Vec<f64> = rows.iter().map(|&r| labels[r]).collect();
    let groups: Vec<usize> = rows.iter().map(|&r| snap.opp[r]).collect();
    let (model, _) = Classifier::fit_cross_calibrated(
        opts.algorithm,
        &x,
        &y,
        &groups,
        opts.calibration_folds,
        fit,
    )?;
    let mut dates: Vec<Instant> = rows.iter().map(|&r| snap.date[r]).collect();
    dates.sort();
    dates.dedup();
    Ok((model, window(&dates, &rows, &labels)))
}

/// One reason a score is what it is.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Factor {
    pub feature: String,
    pub family: &'static str,
    pub text: String,
    /// Log-odds contribution (positive: raises the probability), measured
    /// against the model's typical deal: the feature's baseline Shapley
    /// value (see `Classifier::contributions`).
    pub contribution: f64,
    /// The deal's value of a numeric feature (`None`: missing or
    /// categorical), in the feature registry's unit.
    pub value: Option<f64>,
    /// The typical deal's value the contribution is measured from
    /// (`None`: missing there, categorical, or a learner without one).
    pub typical: Option<f64>,
}

/// The factors of each row, strongest first.
pub fn factors(model: &Classifier, table: &Table) -> anyhow::Result<Vec<Vec<Factor>>> {
    let contrib = model.contributions(table)?;
    let cols: Vec<&Column> = model
        .names
        .iter()
        .map(|n| table.column(n).expect("model columns present"))
        .collect();
    let typical: Vec<Option<f64>> = (0..model.names.len())
        .map(|j| match cols[j] {
            Column::Numeric(_) => model.reference().map(|r| r[j]).filter(|v| v.is_finite()),
            Column::Categorical(_) => None,
        })
        .collect();
    Ok(contrib
        .into_iter()
        .enumerate()
        .map(|(row, c)| {
            let f: Vec<Factor> = c
                .iter()
                .enumerate()
                .filter(|(_, v)| v.abs() > 1e-9)
                .map(|(j, &v)| {
                    let name = &model.names[j];
                    let def = registry::def(name);
                    let value = match cols[j] {
                        Column::Numeric(x) => Some(x[row]).filter(|v| v.is_finite()),
                        Column::Categorical(_) => None,
                    };
                    let text = match (def, cols[j]) {
                        (Some(d), Column::Numeric(_)) => {
                            registry::phrase_against(d, value, typical[j])
                        }
                        (Some(d), Column::Categorical(x)) => {
                            registry::phrase(d, None, x[row].as_deref())
                        }
                        (None, col) => format!(
                            "{name} = {}",
                            col.display(row).unwrap_or_else(|| "missing".into())
                        ),
                    };
                    Factor {
                        feature: name.clone(),
                        family: def.map_or("", |d| d.family.name()),
                        text,
                        contribution: v,
                        value,
                        typical: typical[j],
                    }
                })
                .collect();
            // Features that only make sense together say so in one line.
            let mut f = f;
            for group in registry::TOGETHER {
                let (mut parts, rest): (Vec<Factor>, Vec<Factor>) = f
                    .into_iter()
                    .partition(|x| group.contains(&x.feature.as_str()));
                f = rest;
                parts.sort_by_key(|x| group.iter().position(|g| *g == x.feature));
                match parts.len() {
                    0 => {}
                    1 => f.extend(parts),
                    _ => f.push(Factor {
                        feature: parts
                            .iter()
                            .map(|x| x.feature.as_str())
                            .collect::<Vec<_>>()
                            .join("+"),
                        family: parts[0].family,
                        text: parts
                            .iter()
                            .map(|x| x.text.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                        contribution: parts.iter().map(|x| x.contribution).sum(),
                        value: None,
                        typical: None,
                    }),
                }
            }
            // One line per phrase: missing transcript features all say "no recorded call".
            let mut merged: Vec<Factor> = Vec::with_capacity(f.len());
            for x in f {
                match merged.iter_mut().find(|m| m.text == x.text) {
                    Some(m) => {
                        m.contribution += x.contribution;
                        m.feature = format!("{}+{}", m.feature, x.feature);
                        m.value = None;
                        m.typical = None;
                    }
                    None => merged.push(x),
                }
            }
            merged.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
            merged
        })
        .collect())
}

/// A scored open deal.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub opportunity_id: String,
    pub win_probability: f64,
    pub slip_probability: Option<f64>,
    /// Strongest factors of the win probability (up and down).
    pub factors: Vec<Factor>,
    pub slip_factors: Vec<Factor>,
}

/// Scores the deals open at `as_of` with the win (and slip) model.
pub fn score(
    data: &Data,
    as_of: Instant,
    win: &Classifier,
    slip: Option<&Classifier>,
    top: usize,
) -> anyhow::Result<Vec<Scored>> {
    Ok(score_with_features(data, as_of, win, slip, top)?.0)
}

/// As [`score`], with the feature table the deals were scored on (one row
/// per scored deal, in the same order; columns in registry order).
pub fn score_with_features(
    data: &Data,
    as_of: Instant,
    win: &Classifier,
    slip: Option<&Classifier>,
    top: usize,
) -> anyhow::Result<(Vec<Scored>, Table)> {
    let rows = data.open_at(as_of);
    let table = features_for(data, &rows, as_of);
    let p = win.predict(&table)?;
    let f = factors(win, &table)?;
    let (sp, sf) = match slip {
        Some(m) => (Some(m.predict(&table)?), Some(factors(m, &table)?)),
        None => (None, None),
    };
    let scored = rows
        .iter()
        .enumerate()
        .map(|(k, &i)| Scored {
            opportunity_id: data.opps[i].id.clone(),
            win_probability: p[k],
            slip_probability: sp.as_ref().map(|s| s[k]),
            factors: f[k].iter().take(top).cloned().collect(),
            slip_factors: sf
                .as_ref()
                .map(|s| s[k].iter().take(top).cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    Ok((scored, table))
}

/// One deal's full explanation as of a date.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub opportunity_id: String,
    pub as_of: String,
    pub open: bool,
    pub probability: f64,
    /// The probability of the typical deal the factors are measured from
    /// (the training rows' medians); `None` for a learner without one.
    pub typical_probability: Option<f64>,
    /// Every factor, strongest first.
    pub factors: Vec<Factor>,
    /// The feature values, with their descriptions.
    pub features: Vec<(String, String, String)>,
}

pub fn explain(
    data: &Data,
    id: &str,
    as_of: Instant,
    model: &Classifier,
) -> anyhow::Result<Explanation> {
    let i = data
        .index_of(id)
        .ok_or_else(|| anyhow::anyhow!("no opportunity with id {id}"))?;
    let o = &data.opps[i];
    anyhow::ensure!(
        o.created <= as_of,
        "opportunity {id} did not exist yet on {}",
        format_date(as_of)
    );
    let table = features_for(data, &[i], as_of);
    let probability = model.predict(&table)?[0];
    let factors = factors(model, &table)?.remove(0);
    let features = OPPORTUNITY_FEATURES
        .iter()
        .zip(&table.columns)
        .map(|(d, c)| {
            let v = match c {
                Column::Numeric(x) => registry::phrase(d, Some(x[0]), None),
                Column::Categorical(x) => registry::phrase(d, None, x[0].as_deref()),
            };
            (d.name.to_string(), v, d.description.to_string())
        })
        .collect();
    Ok(Explanation {
        opportunity_id: id.to_string(),
        as_of: format_date(as_of),
        open: data.is_open(o, as_of),
        probability,
        typical_probability: model.reference_probability(),
        factors,
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_training_barely_saw_are_named() {
        // 100 training rows: new business, 10 renewals; 100 test rows: 30
        // renewals, 1 expansion (under 2%: not worth a warning).
        let mut kinds: Vec<Option<String>> = Vec::new();
        for i in 0..200 {
            let k = match i {
                0..90 => "new_business",
                90..100 => "renewal",
                100..169 => "new_business",
                169..199 => "renewal",
                _ => "expansion",
            };
            kinds.push(Some(k.into()));
        }
        let mut t = Table::default();
        t.push("deal_type", Column::Categorical(kinds));
        t.push("amount", Column::Numeric(vec![1.0; 200]));
        let train: Vec<usize> = (0..100).collect();
        let test: Vec<usize> = (100..200).collect();
        let n = novelties(&t, &train, &test);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(
            (n[0].feature.as_str(), n[0].value.as_str()),
            ("deal_type", "renewal")
        );
        assert_eq!(n[0].training_rows, 10);
        assert!((n[0].test_share - 0.30).abs() < 1e-9);
    }
}
