//! Whitespace: the accounts nobody has worked yet (and any list of
//! prospects the user brings), scored by their likeness to the accounts
//! that became customers and by their expected value.
//!
//! **Likeness** is the chance a worked account like it became a customer:
//! a logistic regression (L2, standardised design) over the accounts with at
//! least one deal, the target being a won deal, on the account's segment
//! ([`crate::segments`]), industry and company size (log employees, from
//! revenue when missing). **Expected
//! value** is likeness × potential (the account's expected bookings if won,
//! [`crate::territory::potentials`]). Each account comes with why: the
//! features pushing its likeness most, against the average worked account.
//!
//! **Judged on a later year**: segments, model and potentials as of a year
//! before the data's end (deals created before it only); the accounts
//! untouched then and first worked since (at least 90 days before the end,
//! so a deal had time to close) are ranked, and whether they became
//! customers is scored by AUC, against the rule a manager would use (the
//! largest companies first).

use std::collections::HashSet;

use pipewise_core::{Column, Table};
use pipewise_models::Logistic;
use pipewise_models::metrics::roc_auc;
use pipewise_store::read::CrmData;
use serde::Serialize;

use crate::accounts::AccountsError;
use crate::segments::{SegmentOptions, Segmentation, log_size, segment};
use crate::territory::potentials;

const DAY: i64 = 86_400;

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// One untouched account.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhitespaceAccount {
    pub account_id: String,
    pub account_name: String,
    pub segment: String,
    pub industry: Option<String>,
    pub employees: Option<f64>,
    /// Chance an account like it becomes a customer once worked, 0..1.
    pub likeness: f64,
    /// Expected bookings if won, and likeness × potential.
    pub potential: f64,
    pub expected_value: f64,
    pub why: String,
    /// From the list given with `--accounts`, not the CRM.
    pub imported: bool,
}

/// The whitespace ranking judged on a later year.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhitespaceEvaluation {
    /// `YYYY-MM-DD`: everything learnt from deals created before it.
    pub split: String,
    /// Accounts untouched at the split and worked since; of them, customers.
    pub accounts: usize,
    pub became_customers: usize,
    /// AUC of the likeness and of company size alone.
    pub auc: f64,
    pub baseline_auc: f64,
}

/// Untouched accounts, best expected value first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhitespaceReport {
    /// Accounts with at least one deal, and customers among them.
    pub worked: usize,
    pub customers: usize,
    pub untouched: usize,
    pub accounts: Vec<WhitespaceAccount>,
    pub evaluation: Option<WhitespaceEvaluation>,
}

fn table(crm: &CrmData, seg: &Segmentation, rows: &[usize]) -> Table {
    let mut t = Table::default();
    t.push(
        "segment",
        Column::Categorical(
            rows.iter()
                .map(|&a| Some(seg.segments[seg.labels[a]].name.clone()))
                .collect(),
        ),
    );
    t.push(
        "industry",
        Column::Categorical(
            rows.iter()
                .map(|&a| {
                    crm.accounts[a]
                        .industry
                        .as_deref()
                        .map(|s| s.trim().to_lowercase())
                })
                .collect(),
        ),
    );
    let size = log_size(crm);
    t.push(
        "company size (log employees)",
        Column::Numeric(rows.iter().map(|&a| size[a]).collect()),
    );
    t
}

/// Per account: (first deal created, first won deal closed), up to `until`.
fn history(crm: &CrmData, until: i64) -> Vec<(Option<i64>, Option<i64>)> {
    let index = crate::segments::account_index(crm);
    let mut h = vec![(None::<i64>, None::<i64>); crm.accounts.len()];
    for o in &crm.opportunities {
        let Some(&a) = o.account_id.as_deref().and_then(|id| index.get(id)) else {
            continue;
        };
        let created = o.created_at.unwrap_or(i64::MIN);
        if created > until {
            continue;
        }
        h[a].0 = Some(h[a].0.map_or(created, |t: i64| t.min(created)));
        if o.stage == "closed_won"
            && let Some(t) = o.closed_at.filter(|&t| t <= until)
        {
            h[a].1 = Some(h[a].1.map_or(t, |x: i64| x.min(t)));
        }
    }
    h
}

fn fit(
    crm: &CrmData,
    seg: &Segmentation,
    worked: &[usize],
    customer: &[bool],
) -> Result<Logistic, AccountsError> {
    let y: Vec<f64> = worked.iter().map(|&a| f64::from(customer[a])).collect();
    Logistic::fit(&table(crm, seg, worked), &y, 1.0)
        .map_err(|e| AccountsError::Model(e.to_string()))
}

/// Scores the untouched accounts of `crm` (those in `imported` are marked
/// as such), best expected value first, and judges the ranking on the last
/// year when the data allows. Errors: fewer than 50 worked accounts or 10
/// customers (the data gate), a segmentation or model failure.
pub fn whitespace(
    crm: &CrmData,
    seg: &Segmentation,
    imported: &HashSet<String>,
) -> Result<WhitespaceReport, AccountsError> {
    let h = history(crm, i64::MAX);
    let worked: Vec<usize> = (0..crm.accounts.len())
        .filter(|&a| h[a].0.is_some())
        .collect();
    let customer: Vec<bool> = h.iter().map(|x| x.1.is_some()).collect();
    let customers = worked.iter().filter(|&&a| customer[a]).count();
    if worked.len() < 50 || customers < 10 {
        return Err(AccountsError::CannotJudge(format!(
            "{} accounts with deals, {customers} customers; whitespace scoring needs 50 and 10",
            worked.len()
        )));
    }
    let model = fit(crm, seg, &worked, &customer)?;
    let untouched: Vec<usize> = (0..crm.accounts.len())
        .filter(|&a| h[a].0.is_none())
        .collect();
    let pot = potentials(crm, seg, None);
    let mut accounts = Vec::new();
    if !untouched.is_empty() {
        let t = table(crm, seg, &untouched);
        let z = model
            .logits(&t)
            .map_err(|e| AccountsError::Model(e.to_string()))?;
        let contrib = model
            .contributions(&t)
            .map_err(|e| AccountsError::Model(e.to_string()))?;
        for ((&a, zi), c) in untouched.iter().zip(z).zip(contrib) {
            let p = 1.0 / (1.0 + (-zi).exp());
            let acc = &crm.accounts[a];
            let mut parts: Vec<(usize, f64)> = c.iter().copied().enumerate().collect();
            parts.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
            let why: Vec<String> = parts
                .iter()
                .take(2)
                .filter(|x| x.1.abs() > 0.05)
                .map(|&(j, v)| {
                    let what = match j {
                        0 => format!("segment {}", seg.segments[seg.labels[a]].name),
                        1 => format!("industry {}", acc.industry.as_deref().unwrap_or("unknown")),
                        _ => format!(
                            "{} employees",
                            acc.employees
                                .map_or("unknown".into(), |e| format!("{e:.0}"))
                        ),
                    };
                    format!(
                        "{what} ({})",
                        if v > 0.0 { "raises it" } else { "lowers it" }
                    )
                })
                .collect();
            accounts.push(WhitespaceAccount {
                account_id: acc.id.clone(),
                account_name: acc.name.clone(),
                segment: seg.segments[seg.labels[a]].id.clone(),
                industry: acc.industry.clone(),
                employees: acc.employees,
                likeness: round4(p),
                potential: pot[a].round(),
                expected_value: (p * pot[a]).round(),
                why: if why.is_empty() {
                    "like the average worked account".into()
                } else {
                    why.join("; ")
                },
                imported: imported.contains(&acc.id),
            });
        }
    }
    accounts.sort_by(|x, y| y.expected_value.total_cmp(&x.expected_value));
    Ok(WhitespaceReport {
        worked: worked.len(),
        customers,
        untouched: untouched.len(),
        accounts,
        evaluation: evaluate(crm).ok(),
    })
}

/// See the module's documentation: the ranking as of a year before the
/// data's end, judged on the accounts worked since. Errors: too little
/// history before the split or too few accounts worked since.
pub fn evaluate(crm: &CrmData) -> Result<WhitespaceEvaluation, AccountsError> {
    let end = crm
        .opportunities
        .iter()
        .filter_map(|o| o.created_at)
        .max()
        .ok_or_else(|| AccountsError::CannotJudge("no deals".into()))?;
    let split = end - 365 * DAY;
    let seg = segment(
        crm,
        &SegmentOptions {
            as_of: Some(split),
            ..SegmentOptions::default()
        },
    )
    .map_err(|e| AccountsError::Model(e.to_string()))?;
    let before = history(crm, split);
    let after = history(crm, i64::MAX);
    let worked: Vec<usize> = (0..crm.accounts.len())
        .filter(|&a| before[a].0.is_some())
        .collect();
    let customer: Vec<bool> = before.iter().map(|x| x.1.is_some()).collect();
    if worked.len() < 50 || customer.iter().filter(|c| **c).count() < 10 {
        return Err(AccountsError::CannotJudge(
            "too little history a year back".into(),
        ));
    }
    let model = fit(crm, &seg, &worked, &customer)?;
    let judged: Vec<usize> = (0..crm.accounts.len())
        .filter(|&a| before[a].0.is_none() && after[a].0.is_some_and(|t| t < end - 90 * DAY))
        .collect();
    let y: Vec<f64> = judged
        .iter()
        .map(|&a| f64::from(after[a].1.is_some()))
        .collect();
    let won = y.iter().filter(|v| **v > 0.0).count();
    if judged.len() < 20 || won == 0 || won == judged.len() {
        return Err(AccountsError::CannotJudge(
            "too few accounts first worked in the last year".into(),
        ));
    }
    let z = model
        .logits(&table(crm, &seg, &judged))
        .map_err(|e| AccountsError::Model(e.to_string()))?;
    let size: Vec<f64> = judged
        .iter()
        .map(|&a| crm.accounts[a].employees.unwrap_or(0.0))
        .collect();
    Ok(WhitespaceEvaluation {
        split: pipewise_store::read::day_of(split),
        accounts: judged.len(),
        became_customers: won,
        auc: round4(roc_auc(&z, &y)),
        baseline_auc: round4(roc_auc(&size, &y)),
    })
}
