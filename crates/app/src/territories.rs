//! Territory use cases beyond the engines: the benchmark of segments and
//! plans at the scale of a large org (`pipewise bench territories`).

use std::time::Instant;

use pipewise_engines::segments::{SegmentOptions, segment};
use pipewise_engines::territory::{PlanOptions, plan};
use pipewise_store::read::{CrmData, User};

/// Timings of `pipewise bench territories`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TerritoryBench {
    /// Segments of this many accounts (copies of the database's, with its
    /// deals left as they are): seconds, and the k chosen.
    pub segment_accounts: usize,
    pub segment_seconds: f64,
    pub segment_k: usize,
    /// A plan for this many accounts and reps (copies of the database's
    /// accounts with copies of their deals, owned by synthetic reps in 4
    /// regions): seconds for segments, then for the plan (win rates,
    /// potentials, both programs, repair, report).
    pub plan_accounts: usize,
    pub plan_reps: usize,
    pub plan_deals: usize,
    pub plan_segment_seconds: f64,
    pub plan_seconds: f64,
    pub plan_status: String,
    pub plan_classes: usize,
    pub plan_variables: usize,
    pub plan_moved_share: f64,
    pub plan_reps_within_band: usize,
    /// Of the reps outside the band, those the customers and locked
    /// accounts kept with them already put outside it.
    pub plan_reps_outside_kept: usize,
}

/// `n` accounts copied from `crm`'s (ids `b…`), owned round-robin by `reps`
/// synthetic reps (role rep) within 4 regions; with `deals`, each copy gets
/// copies of its source account's deals owned by its new owner.
fn scaled(crm: &CrmData, n: usize, reps: usize, deals: bool) -> CrmData {
    const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
    let mut out = CrmData {
        products: crm.products.clone(),
        currencies: crm.currencies.clone(),
        ..CrmData::default()
    };
    out.users = (0..reps)
        .map(|i| User {
            id: format!("bench-r{i:04}"),
            name: format!("Rep {i}"),
            role: Some("rep".into()),
            region: Some(REGIONS[i % 4].into()),
            ..User::default()
        })
        .collect();
    let src = crm.accounts.len().max(1);
    let mut by_account: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for (i, o) in crm.opportunities.iter().enumerate() {
        if let Some(a) = o.account_id.as_deref() {
            by_account.entry(a).or_default().push(i);
        }
    }
    for i in 0..n {
        let s = &crm.accounts[i % src];
        let region = i % 4;
        // Reps of the region: region, region + 4, ...
        let in_region = (reps + 3 - region) / 4;
        let owner = region + 4 * ((i / 4) % in_region.max(1));
        let owner_id = format!("bench-r{owner:04}");
        let id = format!("b{i:07}");
        if deals || i < src {
            for &k in by_account
                .get(s.id.as_str())
                .map_or(&[][..], |v| v.as_slice())
            {
                let mut o = crm.opportunities[k].clone();
                o.id = format!("{}-{i}", o.id);
                o.account_id = Some(id.clone());
                o.owner_id = owner_id.clone();
                out.opportunities.push(o);
            }
        }
        let mut a = s.clone();
        a.id = id;
        a.owner_id = Some(owner_id);
        out.accounts.push(a);
    }
    out
}

/// Times segments for `segment_accounts` accounts and a plan for
/// `accounts` accounts among `reps` reps, built from `crm`'s accounts and
/// deals. Errors: a database without accounts, fewer than 8 reps, or an
/// engine's error.
pub fn bench(
    crm: &CrmData,
    accounts: usize,
    reps: usize,
    segment_accounts: usize,
) -> anyhow::Result<TerritoryBench> {
    anyhow::ensure!(!crm.accounts.is_empty(), "the database holds no accounts");
    anyhow::ensure!(reps >= 8, "--reps: at least 8 (two per region)");
    let big = scaled(crm, segment_accounts, reps, false);
    let t = Instant::now();
    let s = segment(&big, &SegmentOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let segment_seconds = t.elapsed().as_secs_f64();
    drop(big);
    let data = scaled(crm, accounts, reps, true);
    let t = Instant::now();
    let seg = segment(&data, &SegmentOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan_segment_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let p = plan(&data, &seg, &PlanOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan_seconds = t.elapsed().as_secs_f64();
    Ok(TerritoryBench {
        segment_accounts,
        segment_seconds,
        segment_k: s.k,
        plan_accounts: accounts,
        plan_reps: reps,
        plan_deals: data.opportunities.len(),
        plan_segment_seconds,
        plan_seconds,
        plan_status: p.status,
        plan_classes: p.classes,
        plan_variables: p.variables,
        plan_moved_share: p.moved_share,
        plan_reps_within_band: p.proposed.reps_within_band,
        plan_reps_outside_kept: p
            .proposed
            .balance
            .iter()
            .filter(|b| {
                b.outside_why.as_deref().is_some_and(|w| {
                    w.starts_with(pipewise_engines::territory::OUTSIDE_BY_KEPT_ACCOUNTS)
                })
            })
            .count(),
    })
}

// ---------------------------------------------------------------------------
// The server's territory analysis.

pub use pipewise_engines::accounts::{ChurnReport, NextProduct, NextProductEvaluation};
use pipewise_engines::segments::{AccountSegment, Segmentation};
pub use pipewise_engines::territory::PlanReport;
pub use pipewise_engines::whitespace::WhitespaceReport;

use crate::AppError;
use crate::scope::Caller;

/// Segments, the proposed plan, next products, churn risk and whitespace,
/// computed once per load of the database. A part that cannot be computed
/// (its data gate) keeps the reason.
pub struct TerritoryBase {
    pub segments: Segmentation,
    pub plan: Result<PlanReport, String>,
    pub next_products: Result<Vec<NextProduct>, String>,
    pub next_product_evaluation: NextProductEvaluation,
    pub churn: Result<ChurnReport, String>,
    pub whitespace: Result<WhitespaceReport, String>,
    /// Account id to its owner (for scoping).
    pub owners: std::collections::HashMap<String, Option<String>>,
}

/// Computes every part from `crm`. Errors: the segments cannot be made
/// (fewer than 3 accounts).
pub fn build(crm: &CrmData) -> anyhow::Result<TerritoryBase> {
    let segments = segment(crm, &SegmentOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = plan(crm, &segments, &PlanOptions::default()).map_err(|e| e.to_string());
    let next_products =
        pipewise_engines::accounts::next_products(crm, &segments).map_err(|e| e.to_string());
    let next_product_evaluation =
        pipewise_engines::accounts::evaluate_next_product(crm, &segments, None, None);
    let churn = pipewise_engines::accounts::churn(crm, &segments).map_err(|e| e.to_string());
    let whitespace = pipewise_engines::whitespace::whitespace(crm, &segments, &Default::default())
        .map_err(|e| e.to_string());
    let owners = crm
        .accounts
        .iter()
        .map(|a| (a.id.clone(), a.owner_id.clone()))
        .collect();
    Ok(TerritoryBase {
        segments,
        plan,
        next_products,
        next_product_evaluation,
        churn,
        whitespace,
        owners,
    })
}

/// Segments as a caller sees them: every segment's description, and the
/// accounts of their scope.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SegmentsView {
    pub basis: String,
    pub k: usize,
    pub k_chosen_by: String,
    pub silhouettes: Vec<pipewise_engines::segments::KScore>,
    pub components: usize,
    pub explained_variance: f64,
    pub features: Vec<pipewise_engines::segments::FeatureWeight>,
    pub segments: Vec<pipewise_engines::segments::Segment>,
    /// The caller's accounts (all for a director or admin).
    pub accounts: Vec<AccountSegment>,
}

/// Each customer's next product in the caller's scope, and how the pick
/// rates fared on the last 180 days of the whole org's purchases.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NextProductsView {
    pub accounts: Vec<NextProduct>,
    pub evaluation: NextProductEvaluation,
}

fn unavailable(why: &str) -> AppError {
    AppError::Unavailable(why.to_string())
}

/// What a plan shows for a rep outside the caller's scope.
pub const OUTSIDE_SCOPE: &str = "outside-scope";

impl TerritoryBase {
    fn visible(&self, caller: &Caller, account: &str) -> bool {
        caller
            .scope
            .allows(self.owners.get(account).and_then(|o| o.as_deref()))
    }

    pub fn segments_view(&self, caller: &Caller) -> SegmentsView {
        let s = &self.segments;
        SegmentsView {
            basis: s.basis.clone(),
            k: s.k,
            k_chosen_by: s.k_chosen_by.clone(),
            silhouettes: s.silhouettes.clone(),
            components: s.components,
            explained_variance: s.explained_variance,
            features: s.features.clone(),
            segments: s.segments.clone(),
            accounts: s
                .accounts
                .iter()
                .filter(|a| self.visible(caller, &a.id))
                .cloned()
                .collect(),
        }
    }

    /// The org's plan with the assignments and balances of the caller's
    /// reps (those whose current or proposed owner is in the scope; a rep
    /// outside it shown as [`OUTSIDE_SCOPE`], unnamed); totals stay the
    /// org's.
    pub fn plan_view(&self, caller: &Caller) -> Result<PlanReport, AppError> {
        let p = self.plan.as_ref().map_err(|e| unavailable(e))?;
        let mut p = p.clone();
        let mine = |id: Option<&str>| caller.scope.allows(id);
        p.assignments
            .retain(|a| mine(Some(&a.rep_id)) || mine(a.current_rep_id.as_deref()));
        // A rep outside the scope is not named: their id becomes
        // OUTSIDE_SCOPE and their name in a reason "a rep outside your scope".
        let outside: Vec<(String, String)> = p
            .rates
            .reps
            .iter()
            .filter(|r| !mine(Some(&r.id)))
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        for a in &mut p.assignments {
            for (id, name) in &outside {
                if &a.rep_id == id {
                    a.rep_id = OUTSIDE_SCOPE.into();
                    a.reason = a.reason.replace(name.as_str(), "a rep outside your scope");
                }
                if a.current_rep_id.as_deref() == Some(id.as_str()) {
                    a.current_rep_id = Some(OUTSIDE_SCOPE.into());
                    a.reason = a.reason.replace(name.as_str(), "a rep outside your scope");
                }
            }
        }
        p.current.balance.retain(|b| mine(Some(&b.rep_id)));
        p.proposed.balance.retain(|b| mine(Some(&b.rep_id)));
        p.rates.cells.retain(|c| mine(Some(&c.rep_id)));
        p.rates.reps.retain(|r| mine(Some(&r.id)));
        Ok(p)
    }

    pub fn next_products_view(&self, caller: &Caller) -> Result<NextProductsView, AppError> {
        let list = self.next_products.as_ref().map_err(|e| unavailable(e))?;
        Ok(NextProductsView {
            accounts: list
                .iter()
                .filter(|n| self.visible(caller, &n.account_id))
                .cloned()
                .collect(),
            evaluation: self.next_product_evaluation.clone(),
        })
    }

    /// Open renewals whose deal owner is in the caller's scope.
    pub fn churn_view(&self, caller: &Caller) -> Result<ChurnReport, AppError> {
        let mut r = self.churn.as_ref().map_err(|e| unavailable(e))?.clone();
        r.open.retain(|c| caller.scope.allows(Some(&c.owner_id)));
        Ok(r)
    }

    /// Untouched accounts owned by the caller's scope (unowned ones to a
    /// director or admin).
    pub fn whitespace_view(&self, caller: &Caller) -> Result<WhitespaceReport, AppError> {
        let mut r = self
            .whitespace
            .as_ref()
            .map_err(|e| unavailable(e))?
            .clone();
        r.accounts.retain(|a| self.visible(caller, &a.account_id));
        Ok(r)
    }
}
