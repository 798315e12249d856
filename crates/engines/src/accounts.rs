//! The account side: which product each customer is likely to buy next
//! (cross-sell and upsell), and which customers are at risk at renewal.
//!
//! **Next product** ([`next_products`]). A purchase is a won deal; before it,
//! the account owned the products of its earlier won deals. For each
//! product, its *pick rate* in a group of accounts is the share of the
//! group's purchases that were that product, among purchases where the
//! account did not own it yet. Rates are estimated per industry, shrunk
//! towards the account's segment ([`crate::segments`]) with 10 pseudo-
//! purchases, which is shrunk towards the org with 10. An account's next
//! product is the unowned product with the highest rate, its probability
//! the rate over the sum of its unowned products' rates. The baseline a
//! manager would use is the product most bought org-wide that the account
//! lacks.
//!
//! **Churn risk** ([`churn`]). Every renewal deal, described as of the day
//! it was created (nothing later is read), from the renewed product's usage
//! when usage events name products (else the account's): active users in
//! the last month with data before it, their trend (the last three months
//! against the three before), active users against their own monthly average and
//! peak (three years back), active users per employee, months since the first usage,
//! the owner's renewal win rate before (shrunk towards the org's),
//! won and lost deals before it, expansions won, days since the last win,
//! company size and segment. A logistic regression (L2, standardised
//! design) is trained on the earlier 70% of closed renewals by creation
//! date and judged on the later 30% by AUC, against the usage trend alone
//! (the naive rule: a customer whose usage falls is at risk); the model
//! shown is then refitted on every closed renewal. Each open renewal's
//! risk comes with its factors: each feature's log-odds push against the
//! training mean.

use std::collections::{BTreeMap, HashMap};

use pipewise_core::{Column, Table};
use pipewise_models::Logistic;
use pipewise_models::metrics::roc_auc;
use pipewise_store::read::CrmData;
use serde::Serialize;

use crate::segments::{Segmentation, log_size};

const DAY: i64 = 86_400;
const PRIOR: f64 = 10.0;

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn is_renewal(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| k.to_lowercase().contains("renew"))
}

fn is_expansion(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| {
        let k = k.to_lowercase();
        k.contains("expan") || k.contains("upsell") || k.contains("cross")
    })
}

/// A won deal's products and when it closed, per account, by close time.
fn purchases(crm: &CrmData, until: i64) -> Vec<Vec<(i64, Vec<String>)>> {
    let index = crate::segments::account_index(crm);
    let mut by_account: Vec<Vec<(i64, Vec<String>)>> = vec![Vec::new(); crm.accounts.len()];
    for o in &crm.opportunities {
        if o.stage != "closed_won" || o.products.is_empty() {
            continue;
        }
        let (Some(t), Some(&a)) = (
            o.closed_at,
            o.account_id.as_deref().and_then(|id| index.get(id)),
        ) else {
            continue;
        };
        if t <= until {
            by_account[a].push((t, o.products.clone()));
        }
    }
    for v in &mut by_account {
        v.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
    }
    by_account
}

/// One candidate product for an account.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductScore {
    pub product_id: String,
    pub product: String,
    /// Chance it is the account's next product, among those it lacks, 0..1.
    pub probability: f64,
}

/// An account's next product.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextProduct {
    pub account_id: String,
    pub account_name: String,
    pub segment: String,
    pub owned: Vec<String>,
    /// Unowned products, most likely first.
    pub candidates: Vec<ProductScore>,
    /// The naive pick: the product most bought org-wide that it lacks.
    pub baseline: Option<String>,
    pub why: String,
}

/// Pick rates learnt from purchases up to a date.
pub struct NextProductModel {
    products: Vec<String>,
    names: Vec<String>,
    /// Per product: (picks, chances) in the org.
    org: Vec<(f64, f64)>,
    seg: Vec<Vec<(f64, f64)>>,
    ind: HashMap<String, Vec<(f64, f64)>>,
    /// Products by org-wide purchases, most first.
    popular: Vec<usize>,
}

fn industry_of(crm: &CrmData, a: usize) -> String {
    crm.accounts[a]
        .industry
        .as_deref()
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default()
}

impl NextProductModel {
    /// Learns pick rates from the purchases closed by `until`.
    pub fn fit(crm: &CrmData, seg: &Segmentation, until: i64) -> NextProductModel {
        let buys = purchases(crm, until);
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for (id, _) in &crm.products {
            let n = ids.len();
            ids.entry(id.clone()).or_insert(n);
        }
        for v in &buys {
            for (_, ps) in v {
                for p in ps {
                    let n = ids.len();
                    ids.entry(p.clone()).or_insert(n);
                }
            }
        }
        let mut products = vec![String::new(); ids.len()];
        for (id, &i) in &ids {
            products[i] = id.clone();
        }
        let names: Vec<String> = products
            .iter()
            .map(|id| crate::segments::product_name(crm, id))
            .collect();
        let np = products.len();
        let k = seg.segments.len();
        let mut org = vec![(0.0, 0.0); np];
        let mut segr = vec![vec![(0.0, 0.0); np]; k];
        let mut ind: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        let mut bought = vec![0.0f64; np];
        for (a, v) in buys.iter().enumerate() {
            let mut owned = vec![false; np];
            let s = seg.labels[a];
            let industry = industry_of(crm, a);
            for (_, ps) in v {
                let picked: Vec<usize> = ps.iter().map(|p| ids[p]).collect();
                for p in 0..np {
                    if owned[p] {
                        continue;
                    }
                    let hit = f64::from(picked.contains(&p));
                    org[p].0 += hit;
                    org[p].1 += 1.0;
                    segr[s][p].0 += hit;
                    segr[s][p].1 += 1.0;
                    let e = ind
                        .entry(industry.clone())
                        .or_insert_with(|| vec![(0.0, 0.0); np]);
                    e[p].0 += hit;
                    e[p].1 += 1.0;
                }
                for &p in &picked {
                    owned[p] = true;
                    bought[p] += 1.0;
                }
            }
        }
        let mut popular: Vec<usize> = (0..np).collect();
        popular.sort_by(|&x, &y| bought[y].total_cmp(&bought[x]).then(x.cmp(&y)));
        NextProductModel {
            products,
            names,
            org,
            seg: segr,
            ind,
            popular,
        }
    }

    /// Pick rate of product `p` for an account of `segment` and `industry`.
    fn rate(&self, segment: usize, industry: &str, p: usize) -> f64 {
        let o = self.org[p];
        let r0 = (o.0 + 0.5) / (o.1 + 1.0);
        let s = self.seg[segment][p];
        let r1 = (s.0 + PRIOR * r0) / (s.1 + PRIOR);
        match self.ind.get(industry) {
            Some(v) => (v[p].0 + PRIOR * r1) / (v[p].1 + PRIOR),
            None => r1,
        }
    }

    fn owned(&self, crm: &CrmData, a: usize, until: i64) -> Vec<usize> {
        let mut owned = Vec::new();
        for o in &crm.opportunities {
            if o.stage == "closed_won"
                && o.account_id.as_deref() == Some(crm.accounts[a].id.as_str())
                && o.closed_at.is_some_and(|t| t <= until)
            {
                for p in &o.products {
                    if let Some(i) = self.products.iter().position(|x| x == p)
                        && !owned.contains(&i)
                    {
                        owned.push(i);
                    }
                }
            }
        }
        owned
    }

    /// Candidates for an account given what it owns: (product index,
    /// probability), most likely first.
    fn rank(&self, segment: usize, industry: &str, owned: &[usize]) -> Vec<(usize, f64)> {
        let mut v: Vec<(usize, f64)> = (0..self.products.len())
            .filter(|p| !owned.contains(p))
            .map(|p| (p, self.rate(segment, industry, p)))
            .collect();
        let total: f64 = v.iter().map(|x| x.1).sum();
        for x in &mut v {
            x.1 /= total.max(1e-12);
        }
        v.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        v
    }

    fn baseline(&self, owned: &[usize]) -> Option<usize> {
        self.popular.iter().copied().find(|p| !owned.contains(p))
    }
}

/// Errors of the account engines.
#[derive(Debug)]
pub enum AccountsError {
    /// What is missing, in words (the data gate).
    CannotJudge(String),
    Model(String),
}

impl std::fmt::Display for AccountsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountsError::CannotJudge(why) => write!(f, "cannot judge: {why}"),
            AccountsError::Model(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AccountsError {}

/// Each customer's next product as of the data's end (see the module's
/// documentation). Errors: no won deal with a product (the data gate).
pub fn next_products(crm: &CrmData, seg: &Segmentation) -> Result<Vec<NextProduct>, AccountsError> {
    let until = i64::MAX;
    let model = NextProductModel::fit(crm, seg, until);
    let customers: Vec<usize> = purchases(crm, until)
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(a, _)| a)
        .collect();
    if customers.is_empty() {
        return Err(AccountsError::CannotJudge(
            "no won deal names a product (import opportunity_products.csv)".into(),
        ));
    }
    let mut out = Vec::new();
    for a in customers {
        let s = seg.labels[a];
        let industry = industry_of(crm, a);
        let owned = model.owned(crm, a, until);
        let ranked = model.rank(s, &industry, &owned);
        if ranked.is_empty() {
            continue;
        }
        let top = ranked[0].0;
        let segname = &seg.segments[s];
        let rate = |p: usize| model.rate(s, &industry, p) * 100.0;
        let like = if industry.is_empty() {
            segname.name.clone()
        } else {
            format!("{industry}, {}", segname.name)
        };
        let why = match ranked.get(1) {
            Some(&(second, _)) => format!(
                "of the {} products it lacks, accounts like it ({like}) pick {} most often: in {:.0}% of their purchases where they lack it, against {:.0}% for {}",
                ranked.len(),
                model.names[top],
                rate(top),
                rate(second),
                model.names[second]
            ),
            None => format!("{} is the only product it lacks", model.names[top]),
        };
        out.push(NextProduct {
            account_id: crm.accounts[a].id.clone(),
            account_name: crm.accounts[a].name.clone(),
            segment: segname.id.clone(),
            owned: owned.iter().map(|&p| model.names[p].clone()).collect(),
            candidates: ranked
                .iter()
                .map(|&(p, pr)| ProductScore {
                    product_id: model.products[p].clone(),
                    product: model.names[p].clone(),
                    probability: round4(pr),
                })
                .collect(),
            baseline: model.baseline(&owned).map(|p| model.names[p].clone()),
            why,
        });
    }
    Ok(out)
}

/// Next product judged on a later window.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextProductEvaluation {
    /// The split date (`YYYY-MM-DD`): rates learnt from purchases before it.
    pub split: String,
    /// Customers at the split who bought a product they lacked afterwards.
    pub accounts: usize,
    /// Share whose first such product was the top pick, pipewise and the
    /// baseline (the most popular product the account lacks).
    pub hit_rate: f64,
    pub baseline_hit_rate: f64,
    /// With the simulator's truth: the mean true chance that the pick is
    /// the next product (its segment's need over the needs of the products
    /// it lacks), pipewise and the baseline.
    pub true_chance: Option<f64>,
    pub baseline_true_chance: Option<f64>,
}

/// Learns pick rates from purchases before `split` (default: 180 days
/// before the last closed deal) and checks, for every
/// customer at the split that later bought a product it lacked, whether the
/// top pick was that product; with `truth`, also the picks' true chance.
pub fn evaluate_next_product(
    crm: &CrmData,
    seg: &Segmentation,
    split: Option<i64>,
    truth: Option<&crate::truth::Truth>,
) -> NextProductEvaluation {
    let split = split.unwrap_or_else(|| {
        crm.opportunities
            .iter()
            .filter_map(|o| o.closed_at)
            .max()
            .unwrap_or(0)
            - 180 * DAY
    });
    let model = NextProductModel::fit(crm, seg, split);
    let all = purchases(crm, i64::MAX);
    let (mut n, mut hits, mut base_hits) = (0usize, 0usize, 0usize);
    let (mut tc, mut btc, mut tn) = (0.0, 0.0, 0usize);
    for (a, v) in all.iter().enumerate() {
        let before: Vec<&(i64, Vec<String>)> = v.iter().filter(|x| x.0 <= split).collect();
        if before.is_empty() {
            continue;
        }
        let owned: Vec<usize> = before
            .iter()
            .flat_map(|x| x.1.iter())
            .filter_map(|p| model.products.iter().position(|q| q == p))
            .collect();
        let next = v
            .iter()
            .filter(|x| x.0 > split)
            .flat_map(|x| x.1.iter())
            .filter_map(|p| model.products.iter().position(|q| q == p))
            .find(|p| !owned.contains(p));
        let s = seg.labels[a];
        let industry = industry_of(crm, a);
        let ranked = model.rank(s, &industry, &owned);
        let (Some(top), Some(base)) = (ranked.first().map(|x| x.0), model.baseline(&owned)) else {
            continue;
        };
        if let Some(t) = truth
            && let Some(need) = t
                .account_segment
                .get(&crm.accounts[a].id)
                .and_then(|s| t.segment_need.get(s))
        {
            let lacking: f64 = (0..model.products.len())
                .filter(|p| !owned.contains(p))
                .map(|p| need.get(&model.products[p]).copied().unwrap_or(0.0))
                .sum();
            if lacking > 0.0 {
                let chance =
                    |p: usize| need.get(&model.products[p]).copied().unwrap_or(0.0) / lacking;
                tc += chance(top);
                btc += chance(base);
                tn += 1;
            }
        }
        if let Some(next) = next {
            n += 1;
            hits += usize::from(top == next);
            base_hits += usize::from(base == next);
        }
    }
    NextProductEvaluation {
        split: pipewise_store::read::day_of(split),
        accounts: n,
        hit_rate: round4(hits as f64 / n.max(1) as f64),
        baseline_hit_rate: round4(base_hits as f64 / n.max(1) as f64),
        true_chance: (tn > 0).then(|| round4(tc / tn as f64)),
        baseline_true_chance: (tn > 0).then(|| round4(btc / tn as f64)),
    }
}

// ---------------------------------------------------------------------------
// Churn risk.

/// Feature names of the churn model, in order.
pub const CHURN_FEATURES: [&str; 14] = [
    "active users (last month)",
    "usage trend (3 months)",
    "active users against their own average",
    "active users against their peak",
    "owner's renewal win rate before",
    "active users per employee",
    "months since first usage",
    "won deals before",
    "lost deals before",
    "expansions won",
    "days since last win",
    "company size (log employees)",
    "segment",
    "usage data",
];

/// A deal of an account: (created, closed, won when closed, an expansion).
type DealRow = (i64, Option<i64>, Option<bool>, bool);

/// A renewal, described as of its creation.
struct RenewalRow {
    opportunity: usize,
    account: usize,
    created: i64,
    /// Some(true) when it churned (renewal lost), when closed.
    churned: Option<bool>,
    values: Vec<f64>,
}

fn renewal_rows(crm: &CrmData, seg: &Segmentation) -> Vec<RenewalRow> {
    let index = crate::segments::account_index(crm);
    let size = log_size(crm);
    // Usage per account: (time, quantity), summed per month bucket later.
    // Usage per account: (time, quantity, product).
    let mut usage: Vec<Vec<(i64, f64, Option<&str>)>> = vec![Vec::new(); crm.accounts.len()];
    for u in &crm.usage {
        if let Some(&a) = index.get(u.account_id.as_str()) {
            usage[a].push((u.occurred_at, u.quantity, u.product_id.as_deref()));
        }
    }
    for v in &mut usage {
        v.sort_by_key(|x| x.0);
    }
    // Deals per account: (created, closed, won, kind is expansion).
    let mut deals: Vec<Vec<DealRow>> = vec![Vec::new(); crm.accounts.len()];
    for o in &crm.opportunities {
        if let Some(&a) = o.account_id.as_deref().and_then(|id| index.get(id)) {
            let won = match o.stage.as_str() {
                "closed_won" => Some(true),
                "closed_lost" => Some(false),
                _ => None,
            };
            deals[a].push((
                o.created_at.unwrap_or(i64::MIN),
                o.closed_at,
                won,
                is_expansion(o.kind.as_deref()),
            ));
        }
    }
    // Each owner's closed renewals: (closed at, won).
    let mut owner_renewals: HashMap<&str, Vec<(i64, bool)>> = HashMap::new();
    let mut all_renewals: Vec<(i64, bool)> = Vec::new();
    for o in &crm.opportunities {
        if is_renewal(o.kind.as_deref())
            && let Some(t) = o.closed_at
            && matches!(o.stage.as_str(), "closed_won" | "closed_lost")
        {
            let won = o.stage == "closed_won";
            owner_renewals
                .entry(o.owner_id.as_str())
                .or_default()
                .push((t, won));
            all_renewals.push((t, won));
        }
    }
    // The org's renewal win rate from renewals closed before a date.
    all_renewals.sort();
    let mut won_before = vec![0.0; all_renewals.len() + 1];
    for (i, x) in all_renewals.iter().enumerate() {
        won_before[i + 1] = won_before[i] + f64::from(x.1);
    }
    let org_rate_at = |t: i64| {
        let n = all_renewals.partition_point(|x| x.0 < t);
        (won_before[n] + 8.0) / (n as f64 + 10.0)
    };
    let mut rows = Vec::new();
    for (i, o) in crm.opportunities.iter().enumerate() {
        if !is_renewal(o.kind.as_deref()) {
            continue;
        }
        let (Some(&a), Some(t0)) = (
            o.account_id.as_deref().and_then(|id| index.get(id)),
            o.created_at,
        ) else {
            continue;
        };
        let churned = match o.stage.as_str() {
            "closed_won" => Some(false),
            "closed_lost" => Some(true),
            _ => None,
        };
        // The renewed product's usage when the events name products (a
        // customer with two products renews each on its own use), else the
        // account's.
        let of_product: Vec<(i64, f64)> = usage[a]
            .iter()
            .filter(|x| x.2.is_some_and(|p| o.products.iter().any(|q| q == p)))
            .map(|x| (x.0, x.1))
            .collect();
        let stream: Vec<(i64, f64)> = if of_product.is_empty() {
            usage[a].iter().map(|x| (x.0, x.1)).collect()
        } else {
            of_product
        };
        // Monthly usage before t0: 30-day buckets back from t0.
        let bucket = |k: i64| -> Option<f64> {
            let (from, to) = (t0 - (k + 1) * 30 * DAY, t0 - k * 30 * DAY);
            let v: Vec<f64> = stream
                .iter()
                .filter(|x| x.0 >= from && x.0 < to)
                .map(|x| x.1)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum())
        };
        let months: Vec<Option<f64>> = (0..36).map(bucket).collect();
        let last = months.iter().flatten().next().copied();
        let mean = |v: &[Option<f64>]| {
            let f: Vec<f64> = v.iter().flatten().copied().collect();
            (!f.is_empty()).then(|| f.iter().sum::<f64>() / f.len() as f64)
        };
        let trend = match (mean(&months[0..3]), mean(&months[3..6])) {
            (Some(r), Some(p)) => (r - p) / (p + 1.0),
            _ => f64::NAN,
        };
        let filled: Vec<f64> = months.iter().flatten().copied().collect();
        let (own_mean, own_peak) = if filled.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (
                filled.iter().sum::<f64>() / filled.len() as f64,
                filled.iter().cloned().fold(f64::MIN, f64::max),
            )
        };
        let n_months = stream
            .first()
            .filter(|x| x.0 < t0)
            .map_or(0.0, |x| ((t0 - x.0) / (30 * DAY)) as f64);
        let owner_rate = {
            let (w, n) = owner_renewals
                .get(o.owner_id.as_str())
                .map(|v| {
                    v.iter()
                        .filter(|x| x.0 < t0)
                        .fold((0.0, 0.0), |acc, x| (acc.0 + f64::from(x.1), acc.1 + 1.0))
                })
                .unwrap_or((0.0, 0.0));
            (w + 10.0 * org_rate_at(t0)) / (n + 10.0)
        };
        let employees = crm.accounts[a].employees.filter(|e| *e > 0.0);
        let before: Vec<_> = deals[a]
            .iter()
            .filter(|d| d.1.is_some_and(|c| c < t0))
            .collect();
        let won = before.iter().filter(|d| d.2 == Some(true)).count() as f64;
        let lost = before.iter().filter(|d| d.2 == Some(false)).count() as f64;
        let expansions = before.iter().filter(|d| d.2 == Some(true) && d.3).count() as f64;
        let last_win = before
            .iter()
            .filter(|d| d.2 == Some(true))
            .filter_map(|d| d.1)
            .max();
        rows.push(RenewalRow {
            opportunity: i,
            account: a,
            created: t0,
            churned,
            values: vec![
                last.map_or(f64::NAN, f64::ln_1p),
                trend,
                last.map_or(f64::NAN, |l| l / own_mean.max(1e-9)),
                last.map_or(f64::NAN, |l| l / own_peak.max(1e-9)),
                owner_rate,
                match (last, employees) {
                    (Some(u), Some(e)) => u / e,
                    _ => f64::NAN,
                },
                n_months,
                won,
                lost,
                expansions,
                last_win.map_or(f64::NAN, |t| ((t0 - t) / DAY) as f64),
                size[a],
                seg.labels[a] as f64,
                f64::from(last.is_some()),
            ],
        });
    }
    rows
}

fn churn_table(rows: &[&RenewalRow], seg: &Segmentation) -> Table {
    let mut t = Table::default();
    for (j, name) in CHURN_FEATURES.iter().enumerate() {
        if *name == "segment" {
            t.push(
                *name,
                Column::Categorical(
                    rows.iter()
                        .map(|r| Some(seg.segments[r.values[j] as usize].id.clone()))
                        .collect(),
                ),
            );
        } else {
            t.push(
                *name,
                Column::Numeric(rows.iter().map(|r| r.values[j]).collect()),
            );
        }
    }
    t
}

/// A factor of one renewal's risk.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChurnFactor {
    pub feature: String,
    /// The renewal's value, as text.
    pub value: String,
    /// Push on the log-odds of churning against the training mean
    /// (positive: more risk).
    pub push: f64,
}

/// One open renewal's risk.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChurnRisk {
    pub account_id: String,
    pub account_name: String,
    pub opportunity_id: String,
    pub owner_id: String,
    pub segment: String,
    /// Chance the renewal is lost, 0..1.
    pub risk: f64,
    pub amount: Option<f64>,
    /// Its close date, `YYYY-MM-DD`.
    pub close_date: Option<String>,
    /// The three largest pushes towards churn, then the largest against.
    pub factors: Vec<ChurnFactor>,
}

/// The churn model judged on the later renewals.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChurnEvaluation {
    /// Closed renewals, those trained on (earlier) and tested on (later).
    pub renewals: usize,
    pub train: usize,
    pub test: usize,
    /// First creation date of the test renewals, `YYYY-MM-DD`.
    pub test_from: String,
    pub churn_rate: f64,
    pub auc: f64,
    /// The naive rule: the usage trend alone (falling usage = risk).
    pub baseline_auc: f64,
}

/// A feature of the churn model and its weight.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Driver {
    pub feature: String,
    /// The size of its coefficients: log-odds per standard deviation.
    pub weight: f64,
}

/// Churn risk of every open renewal and the model's evaluation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChurnReport {
    pub evaluation: ChurnEvaluation,
    /// Per feature, the size of its coefficients (log-odds per standard
    /// deviation, summed over a category's levels).
    pub drivers: Vec<Driver>,
    pub open: Vec<ChurnRisk>,
}

/// Minimum closed renewals, and lost ones among them, the churn model needs.
pub const MIN_RENEWALS: usize = 40;
pub const MIN_CHURNED: usize = 10;

/// Trains and judges the churn model and scores the open renewals (see
/// the module's documentation). Errors: fewer than 40 closed renewals or 10
/// lost ones (the data gate), a model failure.
pub fn churn(crm: &CrmData, seg: &Segmentation) -> Result<ChurnReport, AccountsError> {
    let rows = renewal_rows(crm, seg);
    let mut closed: Vec<&RenewalRow> = rows.iter().filter(|r| r.churned.is_some()).collect();
    let churned = closed.iter().filter(|r| r.churned == Some(true)).count();
    if closed.len() < MIN_RENEWALS || churned < MIN_CHURNED {
        return Err(AccountsError::CannotJudge(format!(
            "{} closed renewals, {churned} lost; the churn model needs {MIN_RENEWALS} and {MIN_CHURNED} \
             (deals whose type says renewal, with their outcome)",
            closed.len()
        )));
    }
    closed.sort_by_key(|r| (r.created, r.opportunity));
    let cut = closed.len() * 7 / 10;
    let (train, test) = closed.split_at(cut);
    let y = |rs: &[&RenewalRow]| -> Vec<f64> {
        rs.iter()
            .map(|r| f64::from(r.churned == Some(true)))
            .collect()
    };
    let m = Logistic::fit(&churn_table(train, seg), &y(train), 1.0)
        .map_err(|e| AccountsError::Model(e.to_string()))?;
    let z = m
        .logits(&churn_table(test, seg))
        .map_err(|e| AccountsError::Model(e.to_string()))?;
    let yt = y(test);
    let auc = roc_auc(&z, &yt);
    let trend: Vec<f64> = test
        .iter()
        .map(|r| {
            let v = r.values[1];
            if v.is_finite() { -v } else { 0.0 }
        })
        .collect();
    let baseline_auc = roc_auc(&trend, &yt);
    let evaluation = ChurnEvaluation {
        renewals: closed.len(),
        train: train.len(),
        test: test.len(),
        test_from: pipewise_store::read::day_of(test[0].created),
        churn_rate: round4(churned as f64 / closed.len() as f64),
        auc: round4(auc),
        baseline_auc: round4(baseline_auc),
    };
    // Refit on every closed renewal for the open ones.
    let full = Logistic::fit(&churn_table(&closed, seg), &y(&closed), 1.0)
        .map_err(|e| AccountsError::Model(e.to_string()))?;
    let imp = full.importance();
    let drivers = CHURN_FEATURES
        .iter()
        .zip(imp)
        .map(|(n, v)| Driver {
            feature: n.to_string(),
            weight: round4(v),
        })
        .collect();
    let open: Vec<&RenewalRow> = rows.iter().filter(|r| r.churned.is_none()).collect();
    let mut out = Vec::new();
    if !open.is_empty() {
        let t = churn_table(&open, seg);
        let z = full
            .logits(&t)
            .map_err(|e| AccountsError::Model(e.to_string()))?;
        let contrib = full
            .contributions(&t)
            .map_err(|e| AccountsError::Model(e.to_string()))?;
        for ((r, zi), c) in open.iter().zip(z).zip(contrib) {
            let o = &crm.opportunities[r.opportunity];
            let mut f: Vec<(usize, f64)> = c.iter().copied().enumerate().collect();
            f.sort_by(|x, y| y.1.total_cmp(&x.1));
            let mut picked: Vec<(usize, f64)> =
                f.iter().take(3).filter(|x| x.1 > 0.0).copied().collect();
            if let Some(x) = f.last().filter(|x| x.1 < 0.0) {
                picked.push(*x);
            }
            let factors = picked
                .into_iter()
                .map(|(j, push)| ChurnFactor {
                    feature: CHURN_FEATURES[j].to_string(),
                    value: show(j, &r.values, seg),
                    push: round4(push),
                })
                .collect();
            out.push(ChurnRisk {
                account_id: crm.accounts[r.account].id.clone(),
                account_name: crm.accounts[r.account].name.clone(),
                opportunity_id: o.id.clone(),
                owner_id: o.owner_id.clone(),
                segment: seg.segments[seg.labels[r.account]].id.clone(),
                risk: round4(1.0 / (1.0 + (-zi).exp())),
                amount: o.amount,
                close_date: o.close_date.map(pipewise_store::read::day_of),
                factors,
            });
        }
    }
    out.sort_by(|a, b| b.risk.total_cmp(&a.risk));
    Ok(ChurnReport {
        evaluation,
        drivers,
        open: out,
    })
}

fn show(j: usize, v: &[f64], seg: &Segmentation) -> String {
    let x = v[j];
    if !x.is_finite() {
        return "unknown".into();
    }
    match j {
        0 => format!("{:.0}", x.exp_m1()),
        1 => format!("{:+.0}%", x * 100.0),
        2 | 3 => format!("{:.0}%", x * 100.0),
        4 => format!("{:.0}%", x * 100.0),
        5 => format!("{x:.3}"),
        11 => format!("{:.0} employees", x.exp()),
        12 => seg.segments[x as usize].name.clone(),
        13 => if x > 0.5 { "yes" } else { "no" }.into(),
        _ => format!("{x:.0}"),
    }
}
