//! Evidence stage vs entered stage: which stage an open deal's evidence
//! supports, the deals whose entered stage runs ahead of or behind it, and
//! each rep's bias over time.
//!
//! The evidence model never sees what the rep typed about the deal's progress
//! (stage, forecast category, close date and anything derived from them) nor
//! who the rep is: only activity, engagement, contacts, conversation signals,
//! age, amount and its changes, account and product. It is an ordinal model:
//! one calibrated classifier per boundary, P(stage ≥ k) for k = 1..4, trained
//! on the entered stages of the deals of reps whose entries are not
//! themselves biased (a first fit finds those reps; see [`EvidenceModel::fit`]).
//! Every deal is scored by a model that did not train on it (cross-fitting by
//! deal), so a rep's bias is measured on evidence the model had not memorised.

use std::collections::{BTreeMap, HashMap};

use pipewise_core::{Column, Table};
use pipewise_features::registry::{self, Family};
use pipewise_features::{DAY, Data, OPEN_STAGES, format_date, mondays};
use pipewise_models::{Algorithm, Classifier, FitOptions};
use pipewise_store::read::Instant;
use serde::Serialize;

use crate::predict::{self, Factor, Snapshots};
use crate::truth::Truth;

/// Number of open stages (prospecting ... negotiation).
pub const STAGES: usize = 5;

/// Features left out of the evidence model: what the rep entered about the
/// deal's progress, and who the rep is.
pub fn is_evidence(name: &str) -> bool {
    !matches!(
        name,
        "stage"
            | "forecast_category"
            | "days_in_stage"
            | "stage_velocity"
            | "days_to_close"
            | "close_pushes"
    ) && registry::def(name).is_none_or(|d| d.family != Family::Rep)
}

/// The evidence columns of a feature table.
pub fn evidence_columns(t: &Table) -> Table {
    let mut out = Table::default();
    for (n, c) in t.names.iter().zip(&t.columns) {
        if is_evidence(n) {
            out.push(n.clone(), c.clone());
        }
    }
    out
}

/// The entered stage (0..4) in a feature table's `stage` column.
pub fn entered_stages(t: &Table) -> Vec<Option<usize>> {
    match t.column("stage") {
        Some(Column::Numeric(v)) => v
            .iter()
            .map(|s| s.is_finite().then(|| (*s as usize).min(STAGES - 1)))
            .collect(),
        _ => vec![None; t.rows()],
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StageOptions {
    /// Cross-fitting folds (by deal).
    pub folds: usize,
    /// A rep's bias is flagged when the 95% interval of their mean gap
    /// excludes zero and the mean is at least this many stages.
    pub min_gap: f64,
    /// Reps with fewer deals than this get no verdict.
    pub min_deals: usize,
    /// Fitting: reps whose gap under the previous fit is significantly at
    /// least this far from zero are left out of the next, the furthest
    /// first and at most a quarter of the rows a round (at least one rep);
    /// a round that would leave under a quarter of the rows is not made...
    pub exclude_gap: f64,
    /// ...for up to this many refits, stopping when a round leaves no one
    /// more out (0: one fit on every rep).
    pub robust_rounds: usize,
    /// A deal is "ahead of the evidence" when the evidence gives its entered
    /// stage (or later) less than this probability...
    pub ahead_below: f64,
    /// ...and "behind" when it gives the next stage (or later) more than this.
    pub behind_above: f64,
    /// Weekly snapshots start this many days after the first deal.
    pub warmup_days: i64,
    pub fit: FitOptions,
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions {
            folds: 3,
            min_gap: 0.15,
            min_deals: 8,
            exclude_gap: 0.15,
            robust_rounds: 6,
            ahead_below: 0.25,
            behind_above: 0.75,
            warmup_days: 56,
            fit: FitOptions {
                // Every snapshot is a row (no bags): the stage changes within a deal.
                bags: 0,
                hist: pipewise_models::hist::HistParams {
                    num_leaves: 15,
                    min_data_in_leaf: 100,
                    learning_rate: 0.1,
                    iterations: 100,
                    ..Default::default()
                },
                ..FitOptions::default()
            },
        }
    }
}

/// One boundary of the ordinal model: P(stage ≥ k).
#[derive(Clone)]
enum Boundary {
    Model(Box<Classifier>),
    /// Every training row was on one side.
    Constant(f64),
}

/// The ordinal evidence model.
#[derive(Clone)]
pub struct EvidenceModel {
    /// Boundaries k = 1..4.
    boundaries: Vec<Boundary>,
    /// Reps whose deals were left out of the final fit (biased entries).
    pub excluded_reps: Vec<String>,
}

fn fit_boundaries(
    x: &Table,
    entered: &[usize],
    opts: &FitOptions,
) -> anyhow::Result<Vec<Boundary>> {
    (1..STAGES)
        .map(|k| {
            let y: Vec<f64> = entered
                .iter()
                .map(|&s| f64::from(u8::from(s >= k)))
                .collect();
            let pos = y.iter().filter(|&&v| v > 0.5).count();
            if pos == 0 || pos == y.len() {
                return Ok(Boundary::Constant(pos as f64 / y.len().max(1) as f64));
            }
            let m = Classifier::fit(Algorithm::Hist, x, &y, opts)?;
            Ok(Boundary::Model(Box::new(m)))
        })
        .collect()
}

fn distributions(boundaries: &[Boundary], x: &Table) -> anyhow::Result<Vec<[f64; STAGES]>> {
    let n = x.rows();
    let mut cum = vec![[1.0f64; STAGES + 1]; n];
    for (k, b) in boundaries.iter().enumerate() {
        let p = match b {
            Boundary::Model(m) => m.predict(x)?,
            Boundary::Constant(c) => vec![*c; n],
        };
        for (c, p) in cum.iter_mut().zip(p) {
            c[k + 1] = p;
        }
    }
    Ok(cum
        .into_iter()
        .map(|mut c| {
            c[STAGES] = 0.0;
            // P(≥k) must not rise with k.
            for k in 1..STAGES {
                c[k] = c[k].min(c[k - 1]);
            }
            let mut d = [0.0; STAGES];
            for k in 0..STAGES {
                d[k] = c[k] - c[k + 1];
            }
            d
        })
        .collect())
}

/// Per rep, each deal's (sum of gaps, snapshots), entered − expected evidence stage.
fn deal_gaps(reps: &[&str], deals: &[usize], gaps: &[f64]) -> HashMap<String, Vec<(f64, f64)>> {
    let mut per: BTreeMap<(&str, usize), (f64, f64)> = BTreeMap::new();
    for ((r, d), g) in reps.iter().zip(deals).zip(gaps) {
        let e = per.entry((r, *d)).or_default();
        e.0 += g;
        e.1 += 1.0;
    }
    let mut out: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for ((r, _), v) in per {
        out.entry(r.to_string()).or_default().push(v);
    }
    out
}

/// The mean gap over snapshots, and the half-width of its 95% interval with
/// deals as clusters (a deal's weekly snapshots are not independent).
fn mean_ci(v: &[(f64, f64)]) -> (f64, f64) {
    let n: f64 = v.iter().map(|x| x.1).sum();
    if v.is_empty() || n == 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().map(|x| x.0).sum::<f64>() / n;
    if v.len() < 2 {
        return (m, f64::INFINITY);
    }
    let g = v.len() as f64;
    let var = v.iter().map(|(s, k)| (s - k * m).powi(2)).sum::<f64>() / (n * n) * g / (g - 1.0);
    (m, 1.96 * var.sqrt())
}

fn biased(v: &[(f64, f64)], min_gap: f64, min_deals: usize) -> bool {
    let (m, h) = mean_ci(v);
    v.len() >= min_deals && m.abs() >= min_gap && m.abs() > h
}

impl EvidenceModel {
    /// Fits on rows with entered stages; `reps` and `deals` (one per row) let
    /// it find reps whose entries run consistently ahead of or behind what
    /// the fit so far makes of their deals, and refit without them, round by
    /// round ([`StageOptions::exclude_gap`], [`StageOptions::robust_rounds`]),
    /// so that the model learns what a stage looks like from reps who enter
    /// it truthfully.
    pub fn fit(
        x: &Table,
        entered: &[usize],
        reps: &[&str],
        deals: &[usize],
        opts: &StageOptions,
    ) -> anyhow::Result<EvidenceModel> {
        anyhow::ensure!(
            x.rows() >= 50,
            "only {} open-deal snapshots with an entered stage: too few to learn what each stage looks like",
            x.rows()
        );
        let mut boundaries = fit_boundaries(x, entered, &opts.fit)?;
        let mut excluded: Vec<String> = Vec::new();
        for _ in 0..opts.robust_rounds {
            let d = distributions(&boundaries, x)?;
            let gaps: Vec<f64> = entered
                .iter()
                .zip(&d)
                .map(|(&e, d)| e as f64 - expected(d))
                .collect();
            // The reps significantly biased under this fit, furthest first.
            // When many reps share a bias, the fit itself leans their way and
            // the truthful reps look biased the other way: leaving out only
            // the furthest, at most a quarter of the rows a round, lets the
            // next fit lean back before the nearer ones are judged.
            let mut found: Vec<(String, f64, usize)> = deal_gaps(reps, deals, &gaps)
                .into_iter()
                .filter(|(r, v)| {
                    excluded.binary_search(r).is_err()
                        && biased(v, opts.exclude_gap, opts.min_deals)
                })
                .map(|(r, v)| {
                    let rows = v.iter().map(|x| x.1 as usize).sum();
                    (r, mean_ci(&v).0.abs(), rows)
                })
                .collect();
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let mut next = excluded.clone();
            let mut left_out = 0;
            for (r, _, rows) in found {
                if left_out > 0 && (left_out + rows) * 4 > x.rows() {
                    break;
                }
                left_out += rows;
                next.push(r);
            }
            // (`found` holds no rep already left out: no duplicates.)
            next.sort();
            if next == excluded {
                break;
            }
            let keep: Vec<usize> = (0..x.rows())
                .filter(|&r| next.binary_search_by(|e| e.as_str().cmp(reps[r])).is_err())
                .collect();
            // Refit only when enough rows remain to learn every boundary.
            if keep.len() * 4 < x.rows() {
                break;
            }
            let ee: Vec<usize> = keep.iter().map(|&r| entered[r]).collect();
            boundaries = fit_boundaries(&x.take(&keep), &ee, &opts.fit)?;
            excluded = next;
        }
        Ok(EvidenceModel {
            boundaries,
            excluded_reps: excluded,
        })
    }

    /// The probability of each stage, per row.
    pub fn predict(&self, x: &Table) -> anyhow::Result<Vec<[f64; STAGES]>> {
        distributions(&self.boundaries, x)
    }

    /// The classifier of boundary k (P(stage ≥ k)), when it is a model.
    pub fn boundary(&self, k: usize) -> Option<&Classifier> {
        match self.boundaries.get(k.checked_sub(1)?)? {
            Boundary::Model(m) => Some(m),
            Boundary::Constant(_) => None,
        }
    }
}

/// Expected stage under a distribution.
pub fn expected(d: &[f64; STAGES]) -> f64 {
    d.iter().enumerate().map(|(k, p)| k as f64 * p).sum()
}

/// The most probable stage and its probability.
pub fn mode(d: &[f64; STAGES]) -> (usize, f64) {
    d.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// P(stage ≥ k).
pub fn at_least(d: &[f64; STAGES], k: usize) -> f64 {
    d[k.min(STAGES)..].iter().sum()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The entered stage is further along than the evidence supports (optimism).
    AheadOfEvidence,
    /// The evidence supports a later stage than the one entered (sandbagging).
    BehindEvidence,
    InLine,
}

impl Flag {
    pub fn text(self) -> &'static str {
        match self {
            Flag::AheadOfEvidence => "ahead of the evidence",
            Flag::BehindEvidence => "behind the evidence",
            Flag::InLine => "in line",
        }
    }
}

pub fn flag(d: &[f64; STAGES], entered: usize, opts: &StageOptions) -> Flag {
    if entered > 0 && at_least(d, entered) < opts.ahead_below {
        Flag::AheadOfEvidence
    } else if entered + 1 < STAGES && at_least(d, entered + 1) > opts.behind_above {
        Flag::BehindEvidence
    } else {
        Flag::InLine
    }
}

/// Evidence for every snapshot row, each from a model that did not train on
/// the row's deal, and the fold models (for deals scored later).
pub struct CrossFit {
    pub dist: Vec<[f64; STAGES]>,
    pub entered: Vec<Option<usize>>,
    pub rep: Vec<String>,
    pub models: Vec<EvidenceModel>,
    pub folds: usize,
}

/// The owner (user id) of each snapshot row's deal on the snapshot's date.
fn snapshot_owners(data: &Data, snap: &Snapshots) -> Vec<String> {
    (0..snap.opp.len())
        .map(|r| {
            data.opps[snap.opp[r]]
                .owner
                .at(snap.date[r])
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Share of deals with an activity or call the evidence model needs.
pub const MIN_DEALS_WITH_ACTIVITY: f64 = 0.5;

/// The evidence-stage engine's data gate. It compares the stage a rep
/// entered with the stage the deal's evidence (activities, calls, contacts
/// engaged, ...) looks like, so it needs:
/// - stage history: the entered stage at each past snapshot;
/// - activity data: at least half the deals with an activity or a recorded
///   call linked to them (our own minimum; without it the evidence model
///   reads firmographics alone, which say little about a deal's progress).
pub fn data_gate(data: &Data) -> predict::Gate {
    let with = data.opps.iter().filter(|o| o.has_activity()).count();
    let share = with as f64 / data.opps.len().max(1) as f64;
    let mut gate = predict::Gate::new(
        share >= MIN_DEALS_WITH_ACTIVITY,
        format!(
            "{with} of {} deals ({:.0}%) with an activity or call linked to them",
            data.opps.len(),
            share * 100.0
        ),
    );
    if with == 0 {
        gate.found = "no activity data: no activity or call is linked to any deal".into();
    }
    if data.without_history.contains(&"stage") {
        gate.block(&format!(
            "the stage has no history ({}), so the entered stage at past snapshots is unknown",
            predict::HISTORY_HINT
        ));
    }
    gate.requirement = format!(
        "stage history and at least {:.0}% of deals with an activity or recorded call linked to them",
        MIN_DEALS_WITH_ACTIVITY * 100.0
    );
    gate
}

/// The fold of a deal (by its index: stable across runs).
pub fn fold_of(opp: usize, folds: usize) -> usize {
    (opp.wrapping_mul(0x9E37_79B9) >> 7) % folds.max(1)
}

pub fn cross_fit(
    data: &Data,
    snap: &Snapshots,
    opts: &StageOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<CrossFit> {
    if let Some(refusal) = data_gate(data).refusal("entered stages against the evidence") {
        anyhow::bail!(refusal);
    }
    let entered = entered_stages(&snap.table);
    let rep = snapshot_owners(data, snap);
    let x = evidence_columns(&snap.table);
    let mut dist = vec![[0.0; STAGES]; snap.opp.len()];
    let mut models = Vec::new();
    let folds = opts.folds.max(2);
    for f in 0..folds {
        progress(f, folds);
        let train: Vec<usize> = (0..snap.opp.len())
            .filter(|&r| entered[r].is_some() && fold_of(snap.opp[r], folds) != f)
            .collect();
        let score: Vec<usize> = (0..snap.opp.len())
            .filter(|&r| fold_of(snap.opp[r], folds) == f)
            .collect();
        let e: Vec<usize> = train.iter().map(|&r| entered[r].unwrap_or(0)).collect();
        let reps: Vec<&str> = train.iter().map(|&r| rep[r].as_str()).collect();
        let deals: Vec<usize> = train.iter().map(|&r| snap.opp[r]).collect();
        let m = EvidenceModel::fit(&x.take(&train), &e, &reps, &deals, opts)?;
        for (r, d) in score.iter().zip(m.predict(&x.take(&score))?) {
            dist[*r] = d;
        }
        models.push(m);
    }
    progress(folds, folds);
    Ok(CrossFit {
        dist,
        entered,
        rep,
        models,
        folds,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Optimistic,
    Sandbagging,
    InLine,
    TooFewDeals,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Optimistic => "optimistic",
            Verdict::Sandbagging => "sandbagging",
            Verdict::InLine => "in line",
            Verdict::TooFewDeals => "too few deals",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeriodBias {
    pub quarter: String,
    pub deals: usize,
    pub mean_gap: f64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepBias {
    pub rep_id: String,
    pub rep: String,
    pub team: Option<String>,
    pub region: Option<String>,
    pub deals: usize,
    pub snapshots: usize,
    /// Entered minus evidence stage, in stages: the mean over the weekly
    /// snapshots of the rep's open deals.
    pub mean_gap: f64,
    /// 95% interval of `mean_gap` (deals as clusters).
    pub ci_low: f64,
    pub ci_high: f64,
    /// Share of the rep's snapshots flagged ahead of / behind the evidence.
    pub share_ahead: f64,
    pub share_behind: f64,
    pub verdict: Verdict,
    /// The same gap per calendar quarter (deals open in it).
    pub by_quarter: Vec<PeriodBias>,
}

pub fn quarter_of(t: Instant) -> String {
    let d = format_date(t);
    let month: u32 = d[5..7].parse().unwrap_or(1);
    format!("{}-Q{}", &d[..4], (month - 1) / 3 + 1)
}

/// Each rep's bias over the snapshots, strongest optimism first.
pub fn rep_bias(data: &Data, snap: &Snapshots, cf: &CrossFit, opts: &StageOptions) -> Vec<RepBias> {
    struct Acc {
        deals: BTreeMap<usize, (f64, f64)>,
        quarters: BTreeMap<String, BTreeMap<usize, (f64, f64)>>,
        snapshots: usize,
        ahead: usize,
        behind: usize,
    }
    let mut per: BTreeMap<&str, Acc> = BTreeMap::new();
    for r in 0..snap.opp.len() {
        let Some(e) = cf.entered[r] else { continue };
        if cf.rep[r].is_empty() {
            continue;
        }
        let d = &cf.dist[r];
        let gap = e as f64 - expected(d);
        let a = per.entry(cf.rep[r].as_str()).or_insert_with(|| Acc {
            deals: BTreeMap::new(),
            quarters: BTreeMap::new(),
            snapshots: 0,
            ahead: 0,
            behind: 0,
        });
        let x = a.deals.entry(snap.opp[r]).or_default();
        x.0 += gap;
        x.1 += 1.0;
        let q = a
            .quarters
            .entry(quarter_of(snap.date[r]))
            .or_default()
            .entry(snap.opp[r])
            .or_default();
        q.0 += gap;
        q.1 += 1.0;
        a.snapshots += 1;
        match flag(d, e, opts) {
            Flag::AheadOfEvidence => a.ahead += 1,
            Flag::BehindEvidence => a.behind += 1,
            Flag::InLine => {}
        }
    }
    let mut out: Vec<RepBias> = per
        .into_iter()
        .map(|(id, a)| {
            let v: Vec<(f64, f64)> = a.deals.values().copied().collect();
            let (m, h) = mean_ci(&v);
            let verdict = if v.len() < opts.min_deals {
                Verdict::TooFewDeals
            } else if biased(&v, opts.min_gap, opts.min_deals) {
                if m > 0.0 {
                    Verdict::Optimistic
                } else {
                    Verdict::Sandbagging
                }
            } else {
                Verdict::InLine
            };
            let info = data.rep_info(id);
            RepBias {
                rep_id: id.to_string(),
                rep: info.name,
                team: info.team,
                region: info.region,
                deals: v.len(),
                snapshots: a.snapshots,
                mean_gap: m,
                ci_low: m - h,
                ci_high: m + h,
                share_ahead: a.ahead as f64 / a.snapshots.max(1) as f64,
                share_behind: a.behind as f64 / a.snapshots.max(1) as f64,
                verdict,
                by_quarter: a
                    .quarters
                    .into_iter()
                    .map(|(q, deals)| PeriodBias {
                        quarter: q,
                        deals: deals.len(),
                        mean_gap: mean_ci(&deals.values().copied().collect::<Vec<_>>()).0,
                    })
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.mean_gap.total_cmp(&a.mean_gap));
    out
}

/// One open deal: entered vs evidence stage.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DealStage {
    pub opportunity_id: String,
    pub name: Option<String>,
    pub rep_id: String,
    pub rep: String,
    pub amount: Option<f64>,
    pub entered_stage: &'static str,
    pub evidence_stage: &'static str,
    /// Probability of the evidence stage.
    pub confidence: f64,
    /// Expected stage under the evidence (0 prospecting ... 4 negotiation).
    pub expected_stage: f64,
    /// Probability of each stage, prospecting first.
    pub distribution: [f64; STAGES],
    pub flag: Flag,
    /// What drives the disagreement (for flagged deals): the factors pulling
    /// the probability of the entered stage down (ahead) or of the next stage
    /// up (behind), strongest first.
    pub reasons: Vec<Factor>,
}

/// Entered vs evidence stage for the deals open at `as_of`, each scored by
/// the fold model that did not train on it.
pub fn inspect(
    data: &Data,
    cf: &CrossFit,
    as_of: Instant,
    opts: &StageOptions,
    top: usize,
) -> anyhow::Result<Vec<DealStage>> {
    let rows = data.open_at(as_of);
    let table = pipewise_features::features_for(data, &rows, as_of);
    let entered = entered_stages(&table);
    let x = evidence_columns(&table);
    let mut out = Vec::with_capacity(rows.len());
    for f in 0..cf.folds {
        let idx: Vec<usize> = (0..rows.len())
            .filter(|&k| fold_of(rows[k], cf.folds) == f && entered[k].is_some())
            .collect();
        if idx.is_empty() {
            continue;
        }
        let xf = x.take(&idx);
        let m = &cf.models[f];
        let dist = m.predict(&xf)?;
        for (j, (&k, d)) in idx.iter().zip(&dist).enumerate() {
            let e = entered[k].unwrap_or(0);
            let fl = flag(d, e, opts);
            let reasons = match fl {
                Flag::AheadOfEvidence => boundary_reasons(m, e, &xf, j, false, top)?,
                Flag::BehindEvidence => boundary_reasons(m, e + 1, &xf, j, true, top)?,
                Flag::InLine => Vec::new(),
            };
            let o = &data.opps[rows[k]];
            let rep_id = o.owner.at(as_of).unwrap_or("").to_string();
            let (ev, conf) = mode(d);
            out.push(DealStage {
                opportunity_id: o.id.clone(),
                name: o.name.clone(),
                rep: data.rep_info(&rep_id).name,
                rep_id,
                amount: data.amount_at(o, as_of),
                entered_stage: OPEN_STAGES[e],
                evidence_stage: OPEN_STAGES[ev],
                confidence: conf,
                expected_stage: expected(d),
                distribution: *d,
                flag: fl,
                reasons,
            });
        }
    }
    out.sort_by(|a, b| a.opportunity_id.cmp(&b.opportunity_id));
    Ok(out)
}

fn boundary_reasons(
    m: &EvidenceModel,
    k: usize,
    x: &Table,
    row: usize,
    up: bool,
    top: usize,
) -> anyhow::Result<Vec<Factor>> {
    let Some(c) = m.boundary(k) else {
        return Ok(Vec::new());
    };
    let one = x.take(&[row]);
    let mut f = predict::factors(c, &one)?.remove(0);
    f.retain(|f| (f.contribution > 0.0) == up);
    f.truncate(top);
    Ok(f)
}

/// Accuracy of a stage guess against the true stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageAccuracy {
    pub name: String,
    pub accuracy: f64,
    pub within_one: f64,
    /// Mean absolute error in stages.
    pub mae: f64,
}

fn accuracy(name: &str, guess: &[f64], truth: &[usize]) -> StageAccuracy {
    let n = truth.len().max(1) as f64;
    let mut exact = 0.0;
    let mut one = 0.0;
    let mut mae = 0.0;
    for (g, &t) in guess.iter().zip(truth) {
        let e = (g - t as f64).abs();
        if g.round() as usize == t {
            exact += 1.0;
        }
        if e.round() <= 1.0 {
            one += 1.0;
        }
        mae += e;
    }
    StageAccuracy {
        name: name.to_string(),
        accuracy: exact / n,
        within_one: one / n,
        mae: mae / n,
    }
}

/// How well flagged discrepancies match true ones (entered ≠ true stage).
#[derive(Debug, Clone, Serialize)]
pub struct FlagQuality {
    pub flagged: usize,
    /// Share of flagged snapshots whose entered stage truly is off in that direction.
    pub precision: f64,
    /// Share of truly-off snapshots that were flagged.
    pub recall: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepRecovery {
    pub bias: &'static str,
    /// Reps the simulator gave this bias.
    pub true_reps: usize,
    /// Of the `true_reps` reps ranked most in this direction, the share truly
    /// so (none when the truth has no such rep).
    pub precision_at_k: Option<f64>,
    /// Reps pipewise flagged with this verdict.
    pub flagged: usize,
    pub flagged_precision: Option<f64>,
    pub flagged_recall: Option<f64>,
}

/// The engine measured against the simulator's hidden truth.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Time split: trained on snapshots before this date, tested on deals
    /// created on or after it.
    pub split: String,
    pub test_snapshots: usize,
    /// The evidence stage and the baselines against the true stage.
    pub stage_accuracy: Vec<StageAccuracy>,
    pub ahead: FlagQuality,
    pub behind: FlagQuality,
    pub reps: Vec<RepRecovery>,
}

fn age_bucket(age_days: f64) -> i64 {
    if age_days.is_finite() {
        (age_days / 14.0).floor().clamp(0.0, 26.0) as i64
    } else {
        -1
    }
}

/// Time-split stage accuracy and flag quality, and rep-bias recovery from
/// `bias`, against the simulator's truth.
pub fn validate(
    data: &Data,
    snap: &Snapshots,
    bias: &[RepBias],
    truth: &Truth,
    opts: &StageOptions,
) -> anyhow::Result<Validation> {
    let mut dates: Vec<Instant> = snap.date.clone();
    dates.dedup();
    anyhow::ensure!(dates.len() >= 8, "too few weekly snapshots to validate");
    let split = dates[dates.len() * 3 / 4];
    let entered = entered_stages(&snap.table);
    let train: Vec<usize> = (0..snap.opp.len())
        .filter(|&r| snap.date[r] < split && entered[r].is_some())
        .collect();
    let mut test = Vec::new();
    let mut true_stage = Vec::new();
    for r in 0..snap.opp.len() {
        let o = &data.opps[snap.opp[r]];
        if snap.date[r] < split || o.created < split || entered[r].is_none() {
            continue;
        }
        if let Some(t) = truth.stage(&o.id, &format_date(snap.date[r])) {
            test.push(r);
            true_stage.push(t);
        }
    }
    anyhow::ensure!(
        !test.is_empty(),
        "no test snapshot has a true stage in the ground truth"
    );
    let x = evidence_columns(&snap.table);
    let e_tr: Vec<usize> = train.iter().map(|&r| entered[r].unwrap_or(0)).collect();
    let owners = snapshot_owners(data, snap);
    let rep_refs: Vec<&str> = train.iter().map(|&r| owners[r].as_str()).collect();
    let deals: Vec<usize> = train.iter().map(|&r| snap.opp[r]).collect();
    let m = EvidenceModel::fit(&x.take(&train), &e_tr, &rep_refs, &deals, opts)?;
    let dist = m.predict(&x.take(&test))?;
    let guess: Vec<f64> = dist.iter().map(|d| mode(d).0 as f64).collect();
    // Baselines: the most common entered stage in training, overall and by age.
    let mut counts = [0usize; STAGES];
    let mut by_age: HashMap<i64, [usize; STAGES]> = HashMap::new();
    let age = match snap.table.column("age") {
        Some(Column::Numeric(v)) => v.clone(),
        _ => vec![f64::NAN; snap.opp.len()],
    };
    for (&r, &e) in train.iter().zip(&e_tr) {
        counts[e] += 1;
        by_age.entry(age_bucket(age[r])).or_default()[e] += 1;
    }
    let argmax = |c: &[usize; STAGES]| (0..STAGES).max_by_key(|&k| c[k]).unwrap_or(0);
    let majority = argmax(&counts);
    let base_major = vec![majority as f64; test.len()];
    let base_age: Vec<f64> = test
        .iter()
        .map(|&r| by_age.get(&age_bucket(age[r])).map_or(majority, argmax) as f64)
        .collect();
    let entered_test: Vec<f64> = test
        .iter()
        .map(|&r| entered[r].unwrap_or(0) as f64)
        .collect();
    let stage_accuracy = vec![
        accuracy("evidence stage (pipewise)", &guess, &true_stage),
        accuracy("most common stage", &base_major, &true_stage),
        accuracy(
            "most common stage for the deal's age",
            &base_age,
            &true_stage,
        ),
        accuracy("entered stage (the CRM)", &entered_test, &true_stage),
    ];
    let quality = |dir: Flag| {
        let (mut flagged, mut hit, mut off) = (0usize, 0usize, 0usize);
        let mut off_flagged = 0usize;
        for (k, &r) in test.iter().enumerate() {
            let e = entered[r].unwrap_or(0);
            let t = true_stage[k];
            let truly = match dir {
                Flag::AheadOfEvidence => e > t,
                _ => e < t,
            };
            let f = flag(&dist[k], e, opts) == dir;
            flagged += usize::from(f);
            hit += usize::from(f && truly);
            off += usize::from(truly);
            off_flagged += usize::from(f && truly);
        }
        FlagQuality {
            flagged,
            precision: hit as f64 / flagged.max(1) as f64,
            recall: off_flagged as f64 / off.max(1) as f64,
        }
    };
    let ahead = quality(Flag::AheadOfEvidence);
    let behind = quality(Flag::BehindEvidence);
    let mut reps_out = Vec::new();
    for (label, verdict) in [
        ("optimistic", Verdict::Optimistic),
        ("sandbagging", Verdict::Sandbagging),
    ] {
        let known: Vec<&RepBias> = bias
            .iter()
            .filter(|b| truth.rep_bias.contains_key(&b.rep_id))
            .collect();
        let is = |b: &RepBias| truth.rep_bias.get(&b.rep_id).map(String::as_str) == Some(label);
        let true_reps = known.iter().filter(|b| is(b)).count();
        let mut ranked = known.clone();
        ranked.sort_by(|a, b| a.mean_gap.total_cmp(&b.mean_gap));
        if verdict == Verdict::Optimistic {
            ranked.reverse();
        }
        let top_hits = ranked.iter().take(true_reps).filter(|b| is(b)).count();
        let flagged: Vec<&&RepBias> = known.iter().filter(|b| b.verdict == verdict).collect();
        let fl_hits = flagged.iter().filter(|b| is(b)).count();
        reps_out.push(RepRecovery {
            bias: label,
            true_reps,
            precision_at_k: (true_reps > 0).then(|| top_hits as f64 / true_reps as f64),
            flagged: flagged.len(),
            flagged_precision: (!flagged.is_empty()).then(|| fl_hits as f64 / flagged.len() as f64),
            flagged_recall: (true_reps > 0).then(|| fl_hits as f64 / true_reps as f64),
        });
    }
    Ok(Validation {
        split: format_date(split),
        test_snapshots: test.len(),
        stage_accuracy,
        ahead,
        behind,
        reps: reps_out,
    })
}

/// The weekly snapshot dates the stage engine reads: from the warm-up to the
/// end of the data (entered stages need no outcome).
pub fn snapshot_dates(data: &Data, opts: &StageOptions) -> Vec<Instant> {
    mondays(data.start + opts.warmup_days * DAY, data.end)
}
