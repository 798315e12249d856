//! The open pipeline, scored: every deal open at the data's end with its win
//! and slip probabilities, their factors in words, and what the deal's record
//! shows. Built once per data and model version (scoring is the slow part)
//! and read by every caller through their scope.

use std::collections::HashMap;

use pipewise_core::Column;
use pipewise_engines::predict::{self, Factor};
use pipewise_features::format_date;
use pipewise_features::registry::{self, OPPORTUNITY_FEATURES};
use pipewise_models::Classifier;
use pipewise_store::SqliteStore;
use pipewise_store::read::CrmData;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::scope::Scope;
use crate::{InputError, load_data};

/// One factor of a score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FactorView {
    pub feature: String,
    /// `activity`, `communication`, `opportunity` or `rep`.
    pub family: String,
    /// The factor in words ("3 touches in the last 7 days").
    pub text: String,
    /// Push on the log-odds of the probability (positive raises it),
    /// against the typical deal.
    pub contribution: f64,
    /// The deal's value of a numeric feature, in the registry's unit.
    pub value: Option<f64>,
    /// The typical deal's value the push is measured from.
    pub typical: Option<f64>,
}

impl From<&Factor> for FactorView {
    fn from(f: &Factor) -> Self {
        FactorView {
            feature: f.feature.clone(),
            family: f.family.to_string(),
            text: f.text.clone(),
            contribution: f.contribution,
            value: f.value,
            typical: f.typical,
        }
    }
}

/// An open deal in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DealRow {
    pub id: String,
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub account: Option<String>,
    pub owner_id: Option<String>,
    pub owner: String,
    pub stage: Option<String>,
    pub forecast_category: Option<String>,
    /// In the corporate currency.
    pub amount: Option<f64>,
    /// Expected close date (YYYY-MM-DD).
    pub close_date: Option<String>,
    /// Calibrated probability that the deal is won (0-1).
    pub win_probability: f64,
    /// Probability that it misses its close date (0-1), when a slip model is trained.
    pub slip_probability: Option<f64>,
    /// amount × win probability.
    pub expected_amount: Option<f64>,
    /// amount × (1 − win probability).
    pub amount_at_risk: Option<f64>,
    /// The strongest factors raising the win probability, in words.
    pub raising: Vec<String>,
    /// The strongest factors lowering it.
    pub lowering: Vec<String>,
    /// The stage the deal's evidence supports (null until the evidence-stage
    /// analysis is ready, or when the deal's stage cannot be read).
    pub evidence_stage: Option<String>,
    /// `ahead_of_evidence` (optimism), `behind_evidence` (sandbagging) or `in_line`.
    pub evidence: Option<String>,
}

/// A field change in a deal's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    pub field: String,
    /// When (YYYY-MM-DD).
    pub at: String,
    pub value: Option<String>,
}

/// Something that happened on a deal: an activity or a recorded call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityView {
    /// When (YYYY-MM-DD HH:MM, UTC).
    pub at: String,
    /// `call`, `email`, `meeting`, `sms`... as the CRM records it; `recorded call`
    /// for a call with a transcript.
    pub kind: String,
    pub direction: Option<String>,
    /// `connected`, `replied`, `held`, `no_show`...
    pub outcome: Option<String>,
    /// Who on the sales side (a user id).
    pub user_id: Option<String>,
    pub duration_s: Option<i64>,
    /// The recorded call's id (see `/api/v1/calls/{call_id}`).
    pub call_id: Option<String>,
}

/// A value to filter by and how many open deals in the scope have it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Facet {
    /// The value to pass as the filter (a user id, a stage).
    pub value: String,
    /// As people read it (the owner's name).
    pub label: String,
    pub deals: usize,
}

/// A feature value of a deal, in words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeatureValue {
    pub feature: String,
    pub value: String,
    pub description: String,
}

/// One open deal with everything behind its scores.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DealDetail {
    #[serde(flatten)]
    pub deal: DealRow,
    pub created: String,
    pub deal_type: Option<String>,
    pub lead_source: Option<String>,
    pub product: Option<String>,
    /// The win probability of the typical deal the factors are measured
    /// from (the training rows' medians), when the model has one.
    pub typical_win_probability: Option<f64>,
    /// Every factor of the win probability, strongest first.
    pub win_factors: Vec<FactorView>,
    /// Every factor of the slip probability, strongest first.
    pub slip_factors: Vec<FactorView>,
    /// The values the models read, in words.
    pub features: Vec<FeatureValue>,
    /// Stage, forecast category, amount, close date and owner changes, oldest first.
    pub history: Vec<Change>,
    /// The deal's activities and recorded calls, newest first (at most 200).
    pub activities: Vec<ActivityView>,
    pub as_of: String,
    pub win_model_version: i64,
    pub slip_model_version: Option<i64>,
}

/// A page of deals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DealPage {
    /// Deals matching the filters (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// Sum of the matching deals' amounts (all pages).
    pub total_amount: f64,
    /// Sum of the matching deals' expected amounts, amount × win probability (all pages).
    pub total_expected: f64,
    pub items: Vec<DealRow>,
    pub as_of: String,
    /// The currency of every amount (ISO 4217; null when the data does not say).
    pub currency: Option<String>,
    /// The owners and stages of the caller's open deals (before the filters),
    /// for filter choices: most deals first.
    pub owners: Vec<Facet>,
    pub stages: Vec<Facet>,
}

/// Filters, sorting and paging of the deal list.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DealQuery {
    /// Only this owner's deals (a user id).
    pub owner: Option<String>,
    /// Only deals in this stage (as the CRM names it, case-insensitive).
    pub stage: Option<String>,
    /// Only deals expected to close on or after this date (YYYY-MM-DD).
    #[param(format = Date)]
    pub close_from: Option<String>,
    /// Only deals expected to close on or before this date (YYYY-MM-DD).
    #[param(format = Date)]
    pub close_to: Option<String>,
    /// `ahead` (entered stage ahead of the evidence), `behind` or `in_line`
    /// (deals whose evidence stage is not known yet match none of them).
    #[param(pattern = "^(ahead|behind|in_line)$")]
    pub evidence: Option<String>,
    /// Only deals with at least this win probability (0-1).
    #[param(minimum = 0.0, maximum = 1.0)]
    pub min_win: Option<f64>,
    /// Only deals with at most this win probability (0-1).
    #[param(minimum = 0.0, maximum = 1.0)]
    pub max_win: Option<f64>,
    /// `win_probability`, `slip_probability`, `amount`, `amount_at_risk`,
    /// `expected_amount` or `close_date`; a leading `-` sorts descending.
    /// Default: `-amount_at_risk`.
    #[param(
        pattern = "^-?(win_probability|slip_probability|amount|amount_at_risk|expected_amount|close_date)$"
    )]
    pub sort: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Deals to skip (default 0).
    #[param(minimum = 0, maximum = 1000000000)]
    pub offset: Option<usize>,
}

/// The largest `offset` a list accepts.
pub const MAX_OFFSET: usize = 1_000_000_000;

const SORTS: [&str; 6] = [
    "win_probability",
    "slip_probability",
    "amount",
    "amount_at_risk",
    "expected_amount",
    "close_date",
];

fn valid_date(field: &'static str, v: &Option<String>) -> Result<(), InputError> {
    if let Some(s) = v
        && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err()
    {
        return Err(InputError::new(field, "a date as YYYY-MM-DD", s));
    }
    Ok(())
}

impl DealQuery {
    /// Checks every parameter; the first bad one is the error.
    pub fn validate(&self) -> Result<(), InputError> {
        valid_date("close_from", &self.close_from)?;
        valid_date("close_to", &self.close_to)?;
        if let Some(e) = &self.evidence
            && !["ahead", "behind", "in_line"].contains(&e.as_str())
        {
            return Err(InputError::new(
                "evidence",
                "one of ahead, behind, in_line",
                e,
            ));
        }
        for (field, v) in [("min_win", self.min_win), ("max_win", self.max_win)] {
            if let Some(p) = v
                && !(0.0..=1.0).contains(&p)
            {
                return Err(InputError::new(
                    field,
                    "a probability from 0 to 1",
                    &p.to_string(),
                ));
            }
        }
        if let Some(s) = &self.sort
            && !SORTS.contains(&s.strip_prefix('-').unwrap_or(s))
        {
            return Err(InputError::new(
                "sort",
                "one of win_probability, slip_probability, amount, amount_at_risk, expected_amount, close_date (a leading - sorts descending)",
                s,
            ));
        }
        crate::page(self.limit, self.offset)?;
        Ok(())
    }
}

/// The scored open pipeline.
pub struct Book {
    pub as_of: i64,
    /// The currency of every amount, when the data says.
    pub currency: Option<String>,
    pub win_model_version: i64,
    pub slip_model_version: Option<i64>,
    rows: Vec<DealRow>,
    details: Vec<DealDetail>,
    index: HashMap<String, usize>,
}

/// The active model of a kind: (model, registry id, version).
pub fn active_model(
    store: &SqliteStore,
    kind: &str,
) -> anyhow::Result<Option<(Classifier, i64, i64)>> {
    let Some(rec) = store.model(kind, None)? else {
        return Ok(None);
    };
    let model = Classifier::from_json(rec.artifact.as_deref().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{kind} model v{} cannot be read: {e}", rec.version))?;
    Ok(Some((model, rec.id, rec.version)))
}

fn change_list(o: &pipewise_features::Opp) -> Vec<Change> {
    let mut out = Vec::new();
    for (field, track) in [
        ("stage", &o.stage),
        ("forecast_category", &o.forecast_category),
        ("amount", &o.amount),
        ("close_date", &o.close_date),
        ("owner", &o.owner),
    ] {
        for (t, v) in &track.changes {
            out.push((*t, field, v.clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    out.into_iter()
        .map(|(t, field, value)| Change {
            field: field.into(),
            at: format_date(t),
            value,
        })
        .collect()
}

impl Book {
    /// Scores every deal open at the end of the data with the active win
    /// (and slip) model. Errors when the database has no opportunities or
    /// no trained win model. `crm`: the database's records, as loaded once
    /// for this and the analyses.
    pub fn build(store: &SqliteStore, crm: &CrmData) -> anyhow::Result<Book> {
        let (win, _, win_v) = active_model(store, "win")?.ok_or_else(|| {
            anyhow::anyhow!("no win model in the database yet: run `pipewise train` first")
        })?;
        let slip = active_model(store, "slip")?;
        let accounts: HashMap<&str, &str> = crm
            .accounts
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str()))
            .collect();
        let opp_account: HashMap<&str, &str> = crm
            .opportunities
            .iter()
            .filter_map(|o| Some((o.id.as_str(), o.account_id.as_deref()?)))
            .collect();
        let data = load_data(crm)?;
        let as_of = data.end;
        let (scored, table) = predict::score_with_features(
            &data,
            as_of,
            &win,
            slip.as_ref().map(|s| &s.0),
            usize::MAX,
        )?;
        let mut activities = deal_activities(crm, &scored);
        let mut rows = Vec::with_capacity(scored.len());
        let mut details = Vec::with_capacity(scored.len());
        for (k, s) in scored.iter().enumerate() {
            let i = data
                .index_of(&s.opportunity_id)
                .expect("scored deals exist");
            let o = &data.opps[i];
            let amount = data.amount_at(o, as_of).filter(|a| a.is_finite());
            let account_id = opp_account.get(o.id.as_str()).map(|a| a.to_string());
            let words = |up: bool| -> Vec<String> {
                s.factors
                    .iter()
                    .filter(|f| (f.contribution > 0.0) == up)
                    .take(3)
                    .map(|f| f.text.clone())
                    .collect()
            };
            let row = DealRow {
                id: o.id.clone(),
                name: o.name.clone(),
                account: account_id
                    .as_deref()
                    .and_then(|a| accounts.get(a))
                    .map(|n| n.to_string()),
                account_id,
                owner_id: o.owner.at(as_of).map(Into::into),
                owner: data.owner_name(o, as_of),
                stage: o.stage.at(as_of).map(Into::into),
                forecast_category: o.forecast_category.at(as_of).map(Into::into),
                amount,
                close_date: o.close_date.at(as_of).map(Into::into),
                win_probability: s.win_probability,
                slip_probability: s.slip_probability,
                expected_amount: amount.map(|a| a * s.win_probability),
                amount_at_risk: amount.map(|a| a * (1.0 - s.win_probability)),
                raising: words(true),
                lowering: words(false),
                evidence_stage: None,
                evidence: None,
            };
            let features = OPPORTUNITY_FEATURES
                .iter()
                .zip(&table.columns)
                .map(|(d, c)| FeatureValue {
                    feature: d.name.into(),
                    value: match c {
                        Column::Numeric(x) => registry::phrase(d, Some(x[k]), None),
                        Column::Categorical(x) => registry::phrase(d, None, x[k].as_deref()),
                    },
                    description: d.description.into(),
                })
                .collect();
            details.push(DealDetail {
                deal: row.clone(),
                created: format_date(o.created),
                deal_type: o.kind.clone(),
                lead_source: o.lead_source.clone(),
                product: o.product.clone(),
                typical_win_probability: win.reference_probability(),
                win_factors: s.factors.iter().map(FactorView::from).collect(),
                slip_factors: s.slip_factors.iter().map(FactorView::from).collect(),
                features,
                history: change_list(o),
                activities: activities.remove(o.id.as_str()).unwrap_or_default(),
                as_of: format_date(as_of),
                win_model_version: win_v,
                slip_model_version: slip.as_ref().map(|s| s.2),
            });
            rows.push(row);
        }
        let index = rows
            .iter()
            .enumerate()
            .map(|(k, r)| (r.id.clone(), k))
            .collect();
        Ok(Book {
            as_of,
            currency: crm.currencies.corporate.clone(),
            win_model_version: win_v,
            slip_model_version: slip.as_ref().map(|s| s.2),
            rows,
            details,
            index,
        })
    }

    /// Deals open in the book (all callers).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The caller's deals matching the query, sorted and paged, each with
    /// its evidence stage when `evidence` (opportunity id → (evidence stage,
    /// flag)) is given.
    pub fn list(
        &self,
        scope: &Scope,
        q: &DealQuery,
        evidence: Option<&Evidence>,
    ) -> Result<DealPage, InputError> {
        q.validate()?;
        let stage = q.stage.as_deref().map(str::to_lowercase);
        let in_scope: Vec<&DealRow> = self
            .rows
            .iter()
            .filter(|r| scope.allows(r.owner_id.as_deref()))
            .collect();
        let flag_of = |r: &DealRow| evidence.and_then(|e| e.get(&r.id)).map(|x| x.1);
        let want_flag = q.evidence.as_deref().map(|e| match e {
            "ahead" => "ahead_of_evidence",
            "behind" => "behind_evidence",
            _ => "in_line",
        });
        let mut hits: Vec<&DealRow> = in_scope
            .iter()
            .copied()
            .filter(|r| want_flag.is_none_or(|w| flag_of(r) == Some(w)))
            .filter(|r| {
                q.owner
                    .as_deref()
                    .is_none_or(|o| r.owner_id.as_deref() == Some(o))
            })
            .filter(|r| {
                stage
                    .as_deref()
                    .is_none_or(|s| r.stage.as_deref().is_some_and(|x| x.to_lowercase() == s))
            })
            .filter(|r| {
                q.close_from.as_deref().is_none_or(|f| {
                    r.close_date
                        .as_deref()
                        .is_some_and(|c| &c[..c.len().min(10)] >= f)
                })
            })
            .filter(|r| {
                q.close_to.as_deref().is_none_or(|t| {
                    r.close_date
                        .as_deref()
                        .is_some_and(|c| &c[..c.len().min(10)] <= t)
                })
            })
            .filter(|r| q.min_win.is_none_or(|p| r.win_probability >= p))
            .filter(|r| q.max_win.is_none_or(|p| r.win_probability <= p))
            .collect();
        let sort = q.sort.as_deref().unwrap_or("-amount_at_risk");
        let (desc, key) = match sort.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, sort),
        };
        let num = |r: &DealRow| -> f64 {
            match key {
                "win_probability" => r.win_probability,
                "slip_probability" => r.slip_probability.unwrap_or(f64::NAN),
                "amount" => r.amount.unwrap_or(f64::NAN),
                "expected_amount" => r.expected_amount.unwrap_or(f64::NAN),
                _ => r.amount_at_risk.unwrap_or(f64::NAN),
            }
        };
        hits.sort_by(|a, b| {
            let o = if key == "close_date" {
                a.close_date.cmp(&b.close_date)
            } else {
                // Missing values last whichever the direction.
                let (x, y) = (num(a), num(b));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => return std::cmp::Ordering::Greater,
                    (false, true) => return std::cmp::Ordering::Less,
                    _ => x.total_cmp(&y),
                }
            };
            let o = if desc { o.reverse() } else { o };
            o.then_with(|| a.id.cmp(&b.id))
        });
        let (limit, offset) = crate::page(q.limit, q.offset)?;
        Ok(DealPage {
            total: hits.len(),
            offset,
            limit,
            total_amount: hits.iter().filter_map(|r| r.amount).sum::<f64>() + 0.0,
            total_expected: hits.iter().filter_map(|r| r.expected_amount).sum::<f64>() + 0.0,
            items: hits
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|r| with_evidence(r.clone(), evidence))
                .collect(),
            as_of: format_date(self.as_of),
            currency: self.currency.clone(),
            owners: facets(
                in_scope
                    .iter()
                    .filter_map(|r| Some((r.owner_id.clone()?, r.owner.clone()))),
            ),
            stages: facets(
                in_scope
                    .iter()
                    .filter_map(|r| r.stage.clone().map(|s| (s.clone(), s))),
            ),
        })
    }

    /// One deal, if open and in the caller's scope (otherwise `None`, as if
    /// it did not exist).
    pub fn deal(&self, scope: &Scope, id: &str, evidence: Option<&Evidence>) -> Option<DealDetail> {
        let d = &self.details[*self.index.get(id)?];
        if !scope.allows(d.deal.owner_id.as_deref()) {
            return None;
        }
        let mut d = d.clone();
        d.deal = with_evidence(d.deal, evidence);
        Some(d)
    }
}

/// Opportunity id → (evidence stage, flag as `ahead_of_evidence`,
/// `behind_evidence` or `in_line`).
pub type Evidence = HashMap<String, (&'static str, &'static str)>;

fn with_evidence(mut r: DealRow, evidence: Option<&Evidence>) -> DealRow {
    if let Some((stage, flag)) = evidence.and_then(|e| e.get(&r.id)) {
        r.evidence_stage = Some((*stage).to_string());
        r.evidence = Some((*flag).to_string());
    }
    r
}

/// (value, label) pairs counted, most frequent first.
fn facets(items: impl Iterator<Item = (String, String)>) -> Vec<Facet> {
    let mut count: HashMap<String, (String, usize)> = HashMap::new();
    for (v, l) in items {
        count.entry(v).or_insert((l, 0)).1 += 1;
    }
    let mut out: Vec<Facet> = count
        .into_iter()
        .map(|(value, (label, deals))| Facet {
            value,
            label,
            deals,
        })
        .collect();
    out.sort_by(|a, b| b.deals.cmp(&a.deals).then(a.label.cmp(&b.label)));
    out
}

/// The close periods a deal list filters by, around `as_of` (YYYY-MM-DD):
/// (key, label, first day, last day) for overdue deals, this and next month,
/// this quarter and the next three, and later. Empty when `as_of` is not a date.
pub fn close_periods(as_of: &str) -> Vec<(String, String, Option<String>, Option<String>)> {
    let Ok(d) = chrono::NaiveDate::parse_from_str(as_of, "%Y-%m-%d") else {
        return Vec::new();
    };
    use chrono::Datelike as _;
    let month = |y: i32, m: u32| -> (chrono::NaiveDate, chrono::NaiveDate) {
        let first = chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1).unwrap_or(d);
        (first, next.pred_opt().unwrap_or(next))
    };
    let fmt = |x: chrono::NaiveDate| x.format("%Y-%m-%d").to_string();
    let mut out = vec![(
        "overdue".to_string(),
        format!("Overdue (close date before {as_of})"),
        None,
        Some(fmt(d.pred_opt().unwrap_or(d))),
    )];
    let (y, m) = (d.year(), d.month());
    let (nm_y, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    for (yy, mm) in [(y, m), (nm_y, nm)] {
        let (a, b) = month(yy, mm);
        out.push((
            format!("{yy}-{mm:02}"),
            a.format("%B %Y").to_string(),
            Some(fmt(a)),
            Some(fmt(b)),
        ));
    }
    // This quarter and the next three, then everything after them.
    let q0 = y * 4 + ((m - 1) / 3) as i32;
    let mut after = None;
    for k in 0..4 {
        let (qy, qq) = ((q0 + k).div_euclid(4), (q0 + k).rem_euclid(4) as u32);
        let a = month(qy, qq * 3 + 1).0;
        let b = month(qy, qq * 3 + 3).1;
        out.push((
            format!("{qy}-Q{}", qq + 1),
            format!("Q{} {qy}", qq + 1),
            Some(fmt(a)),
            Some(fmt(b)),
        ));
        after = b.succ_opt();
    }
    if let Some(a) = after {
        out.push((
            "later".into(),
            format!("From {}", fmt(a)),
            Some(fmt(a)),
            None,
        ));
    }
    out
}

/// Most activities kept per deal.
const ACTIVITIES_PER_DEAL: usize = 200;

/// The activities and recorded calls of the scored deals, newest first.
fn deal_activities(
    crm: &pipewise_store::CrmData,
    scored: &[predict::Scored],
) -> HashMap<String, Vec<ActivityView>> {
    let mut out: HashMap<String, Vec<(i64, ActivityView)>> = scored
        .iter()
        .map(|s| (s.opportunity_id.clone(), Vec::new()))
        .collect();
    let stamp = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    for a in &crm.activities {
        if let Some(v) = a.opportunity_id.as_deref().and_then(|o| out.get_mut(o)) {
            v.push((
                a.occurred_at,
                ActivityView {
                    at: stamp(a.occurred_at),
                    kind: a.kind.clone(),
                    direction: a.direction.clone(),
                    outcome: a.outcome.clone(),
                    user_id: a.user_id.clone(),
                    duration_s: a.duration_s,
                    call_id: None,
                },
            ));
        }
    }
    for c in &crm.conversations {
        if let (Some(v), Some(t)) = (
            c.opportunity_id.as_deref().and_then(|o| out.get_mut(o)),
            c.started_at,
        ) {
            v.push((
                t,
                ActivityView {
                    at: stamp(t),
                    kind: "recorded call".into(),
                    direction: None,
                    outcome: None,
                    user_id: c.user_id.clone(),
                    duration_s: c.duration_s,
                    call_id: Some(c.id.clone()),
                },
            ));
        }
    }
    out.into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|b| std::cmp::Reverse(b.0));
            v.truncate(ACTIVITIES_PER_DEAL);
            (k, v.into_iter().map(|x| x.1).collect())
        })
        .collect()
}

impl Book {
    /// The caller's open deals as CSV for CRM write-back, largest amount at
    /// risk first: id, name, account, owner, stage, forecast category,
    /// amount, close date, win and slip probability, expected amount, the
    /// top factors each way, as-of date and model versions.
    pub fn scores_csv(&self, scope: &Scope) -> anyhow::Result<(String, Vec<String>)> {
        let mut rows: Vec<&DealRow> = self
            .rows
            .iter()
            .filter(|r| scope.allows(r.owner_id.as_deref()))
            .collect();
        rows.sort_by(|a, b| {
            b.amount_at_risk
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&a.amount_at_risk.unwrap_or(f64::NEG_INFINITY))
                .then(a.id.cmp(&b.id))
        });
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "opportunity_id",
            "name",
            "account_id",
            "account",
            "owner_id",
            "owner",
            "stage",
            "forecast_category",
            "amount",
            "close_date",
            "win_probability",
            "slip_probability",
            "expected_amount",
            "raising",
            "lowering",
            "as_of",
            "win_model_version",
            "slip_model_version",
        ])?;
        let num = |x: Option<f64>, d: usize| x.map_or(String::new(), |v| format!("{v:.d$}"));
        let as_of = format_date(self.as_of);
        for r in &rows {
            w.write_record([
                r.id.as_str(),
                r.name.as_deref().unwrap_or(""),
                r.account_id.as_deref().unwrap_or(""),
                r.account.as_deref().unwrap_or(""),
                r.owner_id.as_deref().unwrap_or(""),
                r.owner.as_str(),
                r.stage.as_deref().unwrap_or(""),
                r.forecast_category.as_deref().unwrap_or(""),
                &num(r.amount, 2),
                r.close_date.as_deref().unwrap_or(""),
                &num(Some(r.win_probability), 4),
                &num(r.slip_probability, 4),
                &num(r.expected_amount, 2),
                &r.raising.join("; "),
                &r.lowering.join("; "),
                &as_of,
                &self.win_model_version.to_string(),
                &self
                    .slip_model_version
                    .map_or(String::new(), |v| v.to_string()),
            ])?;
        }
        let text = String::from_utf8(w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        Ok((text, rows.iter().map(|r| r.id.clone()).collect()))
    }
}
