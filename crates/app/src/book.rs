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
    /// Push on the log-odds of the probability (positive raises it).
    pub contribution: f64,
}

impl From<&Factor> for FactorView {
    fn from(f: &Factor) -> Self {
        FactorView {
            feature: f.feature.clone(),
            family: f.family.to_string(),
            text: f.text.clone(),
            contribution: f.contribution,
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
}

/// A field change in a deal's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    pub field: String,
    /// When (YYYY-MM-DD).
    pub at: String,
    pub value: Option<String>,
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
    /// Every factor of the win probability, strongest first.
    pub win_factors: Vec<FactorView>,
    /// Every factor of the slip probability, strongest first.
    pub slip_factors: Vec<FactorView>,
    /// The values the models read, in words.
    pub features: Vec<FeatureValue>,
    /// Stage, forecast category, amount, close date and owner changes, oldest first.
    pub history: Vec<Change>,
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
    /// no trained win model.
    pub fn build(store: &SqliteStore) -> anyhow::Result<Book> {
        let (win, _, win_v) = active_model(store, "win")?.ok_or_else(|| {
            anyhow::anyhow!("no win model in the database yet: run `pipewise train` first")
        })?;
        let slip = active_model(store, "slip")?;
        let crm = store.load_crm()?;
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
        let data = load_data(&crm)?;
        let as_of = data.end;
        let (scored, table) = predict::score_with_features(
            &data,
            as_of,
            &win,
            slip.as_ref().map(|s| &s.0),
            usize::MAX,
        )?;
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
                win_factors: s.factors.iter().map(FactorView::from).collect(),
                slip_factors: s.slip_factors.iter().map(FactorView::from).collect(),
                features,
                history: change_list(o),
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

    /// The caller's deals matching the query, sorted and paged.
    pub fn list(&self, scope: &Scope, q: &DealQuery) -> Result<DealPage, InputError> {
        q.validate()?;
        let stage = q.stage.as_deref().map(str::to_lowercase);
        let mut hits: Vec<&DealRow> = self
            .rows
            .iter()
            .filter(|r| scope.allows(r.owner_id.as_deref()))
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
            items: hits.into_iter().skip(offset).take(limit).cloned().collect(),
            as_of: format_date(self.as_of),
        })
    }

    /// One deal, if open and in the caller's scope (otherwise `None`, as if
    /// it did not exist).
    pub fn deal(&self, scope: &Scope, id: &str) -> Option<&DealDetail> {
        let d = &self.details[*self.index.get(id)?];
        scope.allows(d.deal.owner_id.as_deref()).then_some(d)
    }
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
