//! Account segments that reflect how accounts buy, not only region and size.
//!
//! **Features** (per account, as of a date). Each industry's buying profile
//! from the deals of its accounts created by then: the share of each
//! product among deal lines, the share of each loss reason among lost
//! deals, the mean log cycle length (days from creation to close) and the
//! win rate of closed deals; each shrunk towards the org's with 20
//! pseudo-deals. An account carries its industry's profile and its own
//! company size (log employees; from revenue at the org's median revenue per
//! employee when employees are missing).
//!
//! **Reliability weighting.** An industry's profile is an estimate: with few
//! deals, two industries that buy alike differ by sampling noise alone. Each
//! profile column is weighted by its reliability, the share of its variance
//! across accounts that sampling noise does not explain
//! (`1 - mean noise variance / total variance`, the noise variance of a
//! share being `p (1 - p) / n`, shrunk with the profile); a column that is
//! noise alone (a loss reason every industry gives as often) drops out.
//!
//! **Clustering.** Columns standardised (z-scores over accounts, times the
//! square root of their reliability), principal components (the covariance's
//! eigenvectors, linfa-linalg) kept up to 90% of the variance, k-means (linfa-clustering, k-means++
//! starts, 4 runs, fixed seed) for k = 2 to 10. k is the smallest whose mean
//! silhouette (on an evenly spaced sample of at most 2,000 accounts) is
//! within 0.03 of the best one's: past the true number of segments the
//! silhouette flattens as k-means splits segments along company size, and
//! the smaller k is the one a planner can act on. `--k` overrides.
//!
//! Without closed deals there is no buying profile: segments then come from
//! the industry (one column per industry) and company size, and
//! [`Segmentation::basis`] says so.
//!
//! On simulated orgs (whose accounts carry a latent segment), the adjusted
//! Rand index against it is in docs/territories.md.

use std::collections::{BTreeMap, HashMap};

use linfa::prelude::*;
use linfa_clustering::KMeans;
use linfa_linalg::eigh::Eigh;
use ndarray::Array2;
use pipewise_store::read::CrmData;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::Serialize;

/// Pseudo-deals an industry's profile is shrunk towards the org's with.
const PRIOR_DEALS: f64 = 20.0;
/// The most segments `--k` may ask for: past a few dozen, the rep ×
/// segment cells a plan learns from hold a handful of deals each.
pub const MAX_SEGMENTS: usize = 30;
/// Share of the variance the principal components keep.
const VARIANCE_KEPT: f64 = 0.9;
/// k is the smallest whose silhouette is within this of the best.
const SILHOUETTE_TOLERANCE: f64 = 0.03;
/// Accounts the silhouette is computed on, at most.
const SILHOUETTE_SAMPLE: usize = 2_000;
const SEED: u64 = 0x5e6_3e47;

/// Options of [`segment`].
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// Number of segments; chosen by silhouette when `None`.
    pub k: Option<usize>,
    /// Largest k tried when choosing (default 10).
    pub max_k: usize,
    /// Deals created after this instant are not used (default: all).
    pub as_of: Option<i64>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            k: None,
            max_k: 10,
            as_of: None,
        }
    }
}

/// The silhouette of one k.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KScore {
    pub k: usize,
    /// Mean silhouette on the sample, -1..1.
    pub silhouette: f64,
}

/// A feature column and the weight it was given.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureWeight {
    pub feature: String,
    /// Share of the column's variance across accounts that is not sampling
    /// noise, 0..1 (1 for company size).
    pub reliability: f64,
}

/// A value's share in a segment against the org's.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Share {
    pub name: String,
    /// Share in the segment, 0..1.
    pub share: f64,
    /// Share in the whole org, 0..1.
    pub org_share: f64,
}

/// One segment, described by what sets it apart.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    /// `seg1` ... by decreasing number of accounts.
    pub id: String,
    /// A short name from its leading industry, size and product.
    pub name: String,
    /// What sets it apart, in words.
    pub description: String,
    pub accounts: usize,
    /// Share of the org's accounts, 0..1.
    pub share: f64,
    /// Industries with at least 10% of its accounts, largest first.
    pub industries: Vec<Share>,
    /// Median employees of its accounts (None when none is known).
    pub median_employees: Option<f64>,
    /// Products of its accounts' deal lines, by lift over the org's share.
    pub products: Vec<Share>,
    /// Loss reasons of its lost deals, by lift over the org's share.
    pub loss_reasons: Vec<Share>,
    /// Deals of its accounts (created by the as-of date), closed ones, won ones.
    pub deals: usize,
    pub closed: usize,
    pub won: usize,
    /// Win rate of its closed deals (None without closed deals), 0..1.
    pub win_rate: Option<f64>,
    /// Median days from creation to close of its closed deals.
    pub median_cycle_days: Option<f64>,
}

/// An account's segment.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountSegment {
    pub id: String,
    pub segment: String,
}

/// The result of [`segment`].
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segmentation {
    /// `buying profile` (industries' deal history and company size) or
    /// `firmographics` (industry and company size: no closed deals).
    pub basis: String,
    pub k: usize,
    /// `silhouette` or `given`.
    pub k_chosen_by: String,
    pub silhouettes: Vec<KScore>,
    /// Principal components kept and the share of variance they hold.
    pub components: usize,
    pub explained_variance: f64,
    pub features: Vec<FeatureWeight>,
    pub segments: Vec<Segment>,
    pub accounts: Vec<AccountSegment>,
    /// Org-wide win rate of closed deals and median cycle, for comparison.
    pub org_win_rate: Option<f64>,
    pub org_median_cycle_days: Option<f64>,
    /// Each account's segment index (into `segments`), aligned with the
    /// CRM's accounts.
    #[serde(skip)]
    pub labels: Vec<usize>,
}

/// Errors of [`segment`].
#[derive(Debug)]
pub enum SegmentError {
    /// Fewer accounts than segments asked for (or than 3 when choosing).
    TooFewAccounts { accounts: usize, needed: usize },
    /// k outside 2..=[`MAX_SEGMENTS`].
    BadK(usize),
    /// The clustering library failed.
    Clustering(String),
}

impl std::fmt::Display for SegmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentError::TooFewAccounts { accounts, needed } => write!(
                f,
                "cannot segment: {accounts} accounts, at least {needed} needed (import accounts.csv)"
            ),
            SegmentError::BadK(k) => write!(
                f,
                "--k {k}: expected 2 to {MAX_SEGMENTS} segments (a plan needs each segment's deals per rep)"
            ),
            SegmentError::Clustering(e) => write!(f, "clustering failed: {e}"),
        }
    }
}

impl std::error::Error for SegmentError {}

/// Closed-deal facts read once for segments and territory plans.
pub(crate) struct DealFacts<'a> {
    pub account: usize,
    pub products: &'a [String],
    /// Some(won) when closed by the as-of date.
    pub outcome: Option<bool>,
    pub loss_reason: Option<&'a str>,
    pub cycle_days: Option<f64>,
}

pub(crate) fn deal_facts<'a>(crm: &'a CrmData, as_of: Option<i64>) -> Vec<DealFacts<'a>> {
    let index = account_index(crm);
    let cutoff = as_of.unwrap_or(i64::MAX);
    crm.opportunities
        .iter()
        .filter_map(|o| {
            let account = *index.get(o.account_id.as_deref()?)?;
            if o.created_at.is_some_and(|t| t > cutoff) {
                return None;
            }
            let closed = o.closed_at.filter(|&t| t <= cutoff);
            let outcome = match (o.stage.as_str(), closed) {
                ("closed_won", Some(_)) => Some(true),
                ("closed_lost", Some(_)) => Some(false),
                _ => None,
            };
            let cycle_days = match (outcome, o.created_at, closed) {
                (Some(_), Some(c), Some(t)) => Some(((t - c) as f64 / 86_400.0).max(0.0)),
                _ => None,
            };
            Some(DealFacts {
                account,
                products: &o.products,
                outcome,
                loss_reason: o
                    .loss_reason
                    .as_deref()
                    .filter(|_| outcome == Some(false))
                    .map(str::trim)
                    .filter(|r| !r.is_empty()),
                cycle_days,
            })
        })
        .collect()
}

/// Each account's position in `crm.accounts`, by id.
pub(crate) fn account_index(crm: &CrmData) -> HashMap<&str, usize> {
    crm.accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect()
}

/// A product's name from the CRM's product list (its id when unlisted).
pub(crate) fn product_name(crm: &CrmData, id: &str) -> String {
    crm.products
        .iter()
        .find(|(pid, _)| pid == id)
        .map_or_else(|| id.to_string(), |(_, name)| name.clone())
}

/// Company size per account as log employees (imputed from revenue at the
/// org's median revenue per employee, else the median), and whether known.
pub(crate) fn log_size(crm: &CrmData) -> Vec<f64> {
    let mut per_emp: Vec<f64> = crm
        .accounts
        .iter()
        .filter_map(|a| match (a.employees, a.annual_revenue) {
            (Some(e), Some(r)) if e > 0.0 && r > 0.0 => Some(r / e),
            _ => None,
        })
        .collect();
    let ratio = median(&mut per_emp);
    let mut raw: Vec<Option<f64>> = crm
        .accounts
        .iter()
        .map(|a| match (a.employees, a.annual_revenue, ratio) {
            (Some(e), _, _) if e > 0.0 => Some(e.ln()),
            (_, Some(r), Some(q)) if r > 0.0 => Some((r / q).max(1.0).ln()),
            _ => None,
        })
        .collect();
    let mut known: Vec<f64> = raw.iter().flatten().copied().collect();
    let fill = median(&mut known).unwrap_or(0.0);
    raw.iter_mut().map(|v| v.unwrap_or(fill)).collect()
}

pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn industry_key(s: Option<&str>) -> String {
    s.map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(none)".into())
}

/// Sums behind one profile: counts of product lines, loss reasons, closed
/// deals, wins and the sum and sum of squares of log cycle lengths.
#[derive(Default, Clone)]
struct Tally {
    lines: f64,
    products: Vec<f64>,
    lost: f64,
    reasons: Vec<f64>,
    closed: f64,
    won: f64,
    cycle_n: f64,
    cycle_sum: f64,
    cycle_sq: f64,
}

impl Tally {
    fn new(p: usize, r: usize) -> Tally {
        Tally {
            products: vec![0.0; p],
            reasons: vec![0.0; r],
            ..Tally::default()
        }
    }
}

/// Principal components of `x` (rows: accounts, columns: features; at
/// least two columns): the scores on the leading components up to
/// `kept` of the variance (at least two), how many, and the share of the
/// variance they hold. The components are the eigenvectors of the
/// columns' covariance (linfa-linalg's dense symmetric
/// eigendecomposition). Not linfa-reduction's PCA: its truncated SVD
/// (LOBPCG), asked for every component of a small matrix, can break down
/// in NaN (seen on a simulated org of 2,000 accounts). Errors: an
/// eigendecomposition that does not converge.
fn principal_components(
    x: &Array2<f64>,
    kept: f64,
) -> Result<(Array2<f64>, usize, f64), SegmentError> {
    let (n, d) = x.dim();
    let mean = x
        .mean_axis(ndarray::Axis(0))
        .ok_or_else(|| SegmentError::Clustering("no accounts".into()))?;
    let xc = x - &mean;
    let cov = xc.t().dot(&xc) / (n as f64 - 1.0).max(1.0);
    let (vals, vecs) = cov
        .eigh()
        .map_err(|e| SegmentError::Clustering(e.to_string()))?;
    if vals.iter().chain(vecs.iter()).any(|v| !v.is_finite()) {
        return Err(SegmentError::Clustering(
            "the covariance's eigendecomposition did not converge".into(),
        ));
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| vals[j].total_cmp(&vals[i]));
    let ev: Vec<f64> = order.iter().map(|&i| vals[i].max(0.0)).collect();
    let total: f64 = ev.iter().sum();
    let mut keep = 0;
    let mut cum = 0.0;
    for v in &ev {
        keep += 1;
        cum += v / total.max(1e-12);
        if cum >= kept {
            break;
        }
    }
    let keep = keep.max(2).min(d);
    let cum: f64 = ev.iter().take(keep).sum::<f64>() / total.max(1e-12);
    let basis = Array2::from_shape_fn((d, keep), |(i, j)| vecs[[i, order[j]]]);
    Ok((xc.dot(&basis), keep, cum))
}

/// Segments the CRM's accounts (see the module's documentation for the
/// method). Errors: fewer than 3 accounts (or than `k`), `k` below 2, a
/// failure of the clustering library.
pub fn segment(crm: &CrmData, opts: &SegmentOptions) -> Result<Segmentation, SegmentError> {
    let n = crm.accounts.len();
    let needed = opts.k.unwrap_or(3).max(3);
    if let Some(k) = opts.k
        && !(2..=MAX_SEGMENTS).contains(&k)
    {
        return Err(SegmentError::BadK(k));
    }
    if n < needed {
        return Err(SegmentError::TooFewAccounts {
            accounts: n,
            needed,
        });
    }
    let deals = deal_facts(crm, opts.as_of);
    let size = log_size(crm);

    // Vocabularies.
    let mut products: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &deals {
        for p in d.products {
            products.entry(p.as_str()).or_insert(0);
        }
        if let Some(r) = d.loss_reason {
            reasons.entry(r).or_insert(0);
        }
    }
    for (i, v) in products.values_mut().enumerate() {
        *v = i;
    }
    for (i, v) in reasons.values_mut().enumerate() {
        *v = i;
    }
    let product_names: Vec<String> = products.keys().map(|id| product_name(crm, id)).collect();
    let reason_names: Vec<String> = reasons.keys().map(|s| s.to_string()).collect();
    let (np, nr) = (products.len(), reasons.len());

    let industries: Vec<String> = crm
        .accounts
        .iter()
        .map(|a| industry_key(a.industry.as_deref()))
        .collect();
    let mut ind_index: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &industries {
        let k = ind_index.len();
        ind_index.entry(s.as_str()).or_insert(k);
    }
    let account_ind: Vec<usize> = industries.iter().map(|s| ind_index[s.as_str()]).collect();
    let ni = ind_index.len();

    let add = |t: &mut Tally, d: &DealFacts| {
        for p in d.products {
            t.lines += 1.0;
            t.products[products[p.as_str()]] += 1.0;
        }
        if let Some(won) = d.outcome {
            t.closed += 1.0;
            if won {
                t.won += 1.0;
            } else {
                t.lost += 1.0;
                if let Some(r) = d.loss_reason {
                    t.reasons[reasons[r]] += 1.0;
                }
            }
        }
        if let Some(c) = d.cycle_days {
            let l = c.ln_1p();
            t.cycle_n += 1.0;
            t.cycle_sum += l;
            t.cycle_sq += l * l;
        }
    };
    let mut by_ind = vec![Tally::new(np, nr); ni];
    let mut org = Tally::new(np, nr);
    for d in &deals {
        add(&mut by_ind[account_ind[d.account]], d);
        add(&mut org, d);
    }

    // Profile columns: (name, per-industry value, per-industry noise variance).
    let mut columns: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    let shrunk = |k: f64, n: f64, p0: f64| (k + PRIOR_DEALS * p0) / (n + PRIOR_DEALS);
    let noise = |p: f64, n: f64| {
        let w = n / (n + PRIOR_DEALS);
        w * w * p * (1.0 - p) / n.max(1.0)
    };
    let share_cols = |columns: &mut Vec<(String, Vec<f64>, Vec<f64>)>,
                      label: &str,
                      names: &[String],
                      count: &dyn Fn(&Tally) -> (&[f64], f64)| {
        let (oc, on) = count(&org);
        for (j, name) in names.iter().enumerate() {
            let p0 = oc[j] / on.max(1.0);
            let (mut v, mut nv) = (Vec::with_capacity(ni), Vec::with_capacity(ni));
            for t in &by_ind {
                let (c, n) = count(t);
                let p = shrunk(c[j], n, p0);
                v.push(p);
                nv.push(noise(p, n));
            }
            columns.push((format!("{label}: {name}"), v, nv));
        }
    };
    share_cols(&mut columns, "product share", &product_names, &|t| {
        (&t.products, t.lines)
    });
    share_cols(&mut columns, "loss reason share", &reason_names, &|t| {
        (&t.reasons, t.lost)
    });
    if org.closed > 0.0 {
        let p0 = org.won / org.closed;
        let (mut v, mut nv) = (Vec::new(), Vec::new());
        for t in &by_ind {
            let p = shrunk(t.won, t.closed, p0);
            v.push(p);
            nv.push(noise(p, t.closed));
        }
        columns.push(("win rate".into(), v, nv));
    }
    if org.cycle_n > 1.0 {
        let m0 = org.cycle_sum / org.cycle_n;
        let var0 = (org.cycle_sq / org.cycle_n - m0 * m0).max(1e-9);
        let (mut v, mut nv) = (Vec::new(), Vec::new());
        for t in &by_ind {
            let m = shrunk(t.cycle_sum, t.cycle_n, m0);
            let var = if t.cycle_n > 1.0 {
                (t.cycle_sq / t.cycle_n - (t.cycle_sum / t.cycle_n).powi(2)).max(0.0)
            } else {
                var0
            };
            let w = t.cycle_n / (t.cycle_n + PRIOR_DEALS);
            v.push(m);
            nv.push(w * w * var / t.cycle_n.max(1.0));
        }
        columns.push(("log cycle length".into(), v, nv));
    }

    let has_profile = org.closed > 0.0 && !columns.is_empty();
    // Account matrix: weighted z-scores.
    let mut names: Vec<FeatureWeight> = Vec::new();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    let zscore = |v: &[f64]| -> Option<Vec<f64>> {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
        (var > 1e-12).then(|| v.iter().map(|x| (x - m) / var.sqrt()).collect())
    };
    if has_profile {
        for (name, v, nv) in &columns {
            let per_account: Vec<f64> = account_ind.iter().map(|&i| v[i]).collect();
            let m = per_account.iter().sum::<f64>() / n as f64;
            let total = per_account.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            let noise_var = account_ind.iter().map(|&i| nv[i]).sum::<f64>() / n as f64;
            let rel = if total > 1e-12 {
                (1.0 - noise_var / total).clamp(0.0, 1.0)
            } else {
                0.0
            };
            names.push(FeatureWeight {
                feature: name.clone(),
                reliability: round4(rel),
            });
            if rel > 0.0
                && let Some(z) = zscore(&per_account)
            {
                let w = rel.sqrt();
                cols.push(z.into_iter().map(|x| x * w).collect());
            }
        }
    } else {
        for (name, &i) in &ind_index {
            let v: Vec<f64> = account_ind.iter().map(|&a| f64::from(a == i)).collect();
            if let Some(z) = zscore(&v) {
                names.push(FeatureWeight {
                    feature: format!("industry: {name}"),
                    reliability: 1.0,
                });
                cols.push(z);
            }
        }
    }
    if let Some(z) = zscore(&size) {
        names.push(FeatureWeight {
            feature: "company size (log employees)".into(),
            reliability: 1.0,
        });
        cols.push(z);
    }
    let d = cols.len().max(1);
    let x = Array2::from_shape_fn((n, d), |(i, j)| cols.get(j).map_or(0.0, |c| c[i]));

    let (scores, components, explained) = if d >= 2 {
        principal_components(&x, VARIANCE_KEPT)?
    } else {
        (x.clone(), d, 1.0)
    };

    let fit = |k: usize| -> Result<Vec<usize>, SegmentError> {
        let rng = Xoshiro256Plus::seed_from_u64(SEED);
        let ds = DatasetBase::from(scores.clone());
        let model = KMeans::params_with_rng(k, rng)
            .n_runs(4)
            .tolerance(1e-5)
            .max_n_iterations(300)
            .fit(&ds)
            .map_err(|e| SegmentError::Clustering(e.to_string()))?;
        Ok(model.predict(&scores).to_vec())
    };
    let sample: Vec<usize> = if n <= SILHOUETTE_SAMPLE {
        (0..n).collect()
    } else {
        (0..SILHOUETTE_SAMPLE)
            .map(|i| i * n / SILHOUETTE_SAMPLE)
            .collect()
    };
    let (labels, k, by, silhouettes) = match opts.k {
        Some(k) => (fit(k)?, k, "given", Vec::new()),
        None => {
            let max_k = opts.max_k.clamp(2, n - 1);
            let mut tried: Vec<(usize, f64, Vec<usize>)> = Vec::new();
            for k in 2..=max_k {
                let l = fit(k)?;
                let s = silhouette(&scores, &l, k, &sample);
                tried.push((k, s, l));
            }
            let best = tried.iter().map(|t| t.1).fold(f64::MIN, f64::max);
            let scores: Vec<KScore> = tried
                .iter()
                .map(|t| KScore {
                    k: t.0,
                    silhouette: round4(t.1),
                })
                .collect();
            let (k, _, l) = tried
                .into_iter()
                .find(|t| t.1 >= best - SILHOUETTE_TOLERANCE)
                .expect("some k is within the tolerance of the best");
            (l, k, "silhouette", scores)
        }
    };

    // Relabel by decreasing size.
    let mut counts = vec![0usize; k];
    for &l in &labels {
        counts[l] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(counts[c]), c));
    let mut rank = vec![0; k];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    let labels: Vec<usize> = labels.iter().map(|&l| rank[l]).collect();
    let k_used = counts.iter().filter(|&&c| c > 0).count();

    // Describe each segment from its own accounts' deals.
    let mut seg_tally = vec![Tally::new(np, nr); k];
    let mut seg_cycles: Vec<Vec<f64>> = vec![Vec::new(); k];
    for d in &deals {
        let s = labels[d.account];
        add(&mut seg_tally[s], d);
        if let Some(c) = d.cycle_days {
            seg_cycles[s].push(c);
        }
    }
    let mut all_cycles: Vec<f64> = seg_cycles.iter().flatten().copied().collect();
    let org_cycle = median(&mut all_cycles);
    let org_win = (org.closed > 0.0).then(|| org.won / org.closed);
    let mut ind_counts_org: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &industries {
        *ind_counts_org.entry(s.as_str()).or_default() += 1;
    }
    let mut segments = Vec::with_capacity(k);
    for s in 0..k {
        let members: Vec<usize> = (0..n).filter(|&a| labels[a] == s).collect();
        let m = members.len();
        let mut ind_counts: BTreeMap<&str, usize> = BTreeMap::new();
        for &a in &members {
            *ind_counts.entry(industries[a].as_str()).or_default() += 1;
        }
        let mut inds: Vec<Share> = ind_counts
            .iter()
            .filter(|(_, c)| **c as f64 >= 0.1 * m as f64)
            .map(|(name, c)| Share {
                name: name.to_string(),
                share: round4(*c as f64 / m.max(1) as f64),
                org_share: round4(ind_counts_org[name] as f64 / n as f64),
            })
            .collect();
        inds.sort_by(|a, b| b.share.total_cmp(&a.share));
        let mut emp: Vec<f64> = members
            .iter()
            .filter_map(|&a| crm.accounts[a].employees)
            .collect();
        let t = &seg_tally[s];
        let lift_list = |c: &[f64], total: f64, oc: &[f64], ototal: f64, names: &[String]| {
            let mut v: Vec<Share> = names
                .iter()
                .enumerate()
                .filter(|(j, _)| c[*j] > 0.0)
                .map(|(j, name)| Share {
                    name: name.clone(),
                    share: round4(c[j] / total.max(1.0)),
                    org_share: round4(oc[j] / ototal.max(1.0)),
                })
                .collect();
            v.sort_by(|a, b| {
                (b.share / b.org_share.max(1e-9)).total_cmp(&(a.share / a.org_share.max(1e-9)))
            });
            v
        };
        let prods = lift_list(
            &t.products,
            t.lines,
            &org.products,
            org.lines,
            &product_names,
        );
        let losses = lift_list(&t.reasons, t.lost, &org.reasons, org.lost, &reason_names);
        let win_rate = (t.closed > 0.0).then(|| t.won / t.closed);
        let cycle = median(&mut seg_cycles[s]);
        let median_employees = median(&mut emp);
        let seg = Segment {
            id: format!("seg{}", s + 1),
            name: String::new(),
            description: String::new(),
            accounts: m,
            share: round4(m as f64 / n as f64),
            industries: inds,
            median_employees,
            products: prods,
            loss_reasons: losses,
            deals: deals.iter().filter(|d| labels[d.account] == s).count(),
            closed: t.closed as usize,
            won: t.won as usize,
            win_rate: win_rate.map(round4),
            median_cycle_days: cycle.map(|c| c.round()),
        };
        segments.push(seg);
    }
    let mut all_emp: Vec<f64> = crm.accounts.iter().filter_map(|a| a.employees).collect();
    let org_emp = median(&mut all_emp);
    for s in &mut segments {
        s.name = name_of(s, org_emp);
        s.description = describe(s, org_emp, org_win, org_cycle);
    }
    let accounts = crm
        .accounts
        .iter()
        .zip(&labels)
        .map(|(a, &l)| AccountSegment {
            id: a.id.clone(),
            segment: segments[l].id.clone(),
        })
        .collect();
    Ok(Segmentation {
        basis: if has_profile {
            "buying profile".into()
        } else {
            "firmographics".into()
        },
        k: k_used,
        k_chosen_by: by.into(),
        silhouettes,
        components,
        explained_variance: round4(explained),
        features: names,
        segments,
        accounts,
        org_win_rate: org_win.map(round4),
        org_median_cycle_days: org_cycle.map(|c| c.round()),
        labels,
    })
}

fn size_word(emp: Option<f64>, org: Option<f64>) -> &'static str {
    match (emp, org) {
        (Some(e), Some(o)) if e >= 2.5 * o => "large",
        (Some(e), Some(o)) if e <= o / 2.5 => "small",
        (Some(_), Some(_)) => "mid-size",
        _ => "",
    }
}

fn name_of(s: &Segment, org_emp: Option<f64>) -> String {
    let ind = s
        .industries
        .iter()
        .take(2)
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(" & ");
    let size = size_word(s.median_employees, org_emp);
    let product = s
        .products
        .first()
        .filter(|p| p.share > p.org_share * 1.2)
        .map(|p| format!(", {}", p.name))
        .unwrap_or_default();
    let ind = if ind.is_empty() {
        "mixed industries".to_string()
    } else {
        ind
    };
    format!("{} {ind}{product}", capitalise(size))
        .trim()
        .to_string()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn describe(
    s: &Segment,
    org_emp: Option<f64>,
    org_win: Option<f64>,
    org_cycle: Option<f64>,
) -> String {
    let mut parts = Vec::new();
    if !s.industries.is_empty() {
        let share: f64 = s.industries.iter().map(|i| i.share).sum();
        let names: Vec<&str> = s.industries.iter().map(|i| i.name.as_str()).collect();
        parts.push(format!(
            "{} of accounts in {}",
            pct(share),
            join_and(&names)
        ));
    }
    if let (Some(e), Some(o)) = (s.median_employees, org_emp) {
        parts.push(format!(
            "typically {} employees (org: {})",
            e.round(),
            o.round()
        ));
    }
    // A share named only when it stands out beyond sampling noise: at
    // least 2 standard errors of a share of `n` above the org's.
    let stands_out = |x: &Share, n: f64, lift: f64| {
        let se = (x.org_share * (1.0 - x.org_share) / n.max(1.0)).sqrt();
        x.share > lift * x.org_share && x.share - x.org_share >= 2.0 * se
    };
    if let Some(p) = s
        .products
        .iter()
        .find(|p| stands_out(p, s.deals as f64, 1.2))
    {
        parts.push(format!(
            "buys {} {:.1}x as often as the org ({} of deal lines)",
            p.name,
            p.share / p.org_share.max(1e-9),
            pct(p.share)
        ));
    }
    if let (Some(c), Some(o)) = (s.median_cycle_days, org_cycle) {
        parts.push(format!("cycles of {c:.0} days (org: {o:.0})"));
    }
    if let (Some(w), Some(o)) = (s.win_rate, org_win) {
        parts.push(format!("win rate {} (org: {})", pct(w), pct(o)));
    }
    if let Some(r) = s
        .loss_reasons
        .iter()
        .find(|r| s.closed >= 20 && stands_out(r, s.closed.saturating_sub(s.won) as f64, 1.3))
    {
        parts.push(format!(
            "loses to '{}' {:.1}x as often",
            r.name,
            r.share / r.org_share.max(1e-9)
        ));
    }
    parts.join("; ")
}

fn join_and(v: &[&str]) -> String {
    match v.len() {
        0 => String::new(),
        1 => v[0].to_string(),
        _ => format!("{} and {}", v[..v.len() - 1].join(", "), v[v.len() - 1]),
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Mean silhouette of `labels` over the points in `sample` (distances to
/// the other sampled points), Rousseeuw (1987): for each point,
/// `(b - a) / max(a, b)` with `a` its mean distance to its own cluster and
/// `b` the smallest mean distance to another; 0 for a point alone in its
/// cluster.
pub fn silhouette(x: &Array2<f64>, labels: &[usize], k: usize, sample: &[usize]) -> f64 {
    if sample.len() < 2 {
        return 0.0;
    }
    let mut total = 0.0;
    let mut sums = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for &i in sample {
        sums.iter_mut().for_each(|s| *s = 0.0);
        counts.iter_mut().for_each(|c| *c = 0);
        let xi = x.row(i);
        for &j in sample {
            if i == j {
                continue;
            }
            let d: f64 = xi
                .iter()
                .zip(x.row(j).iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            sums[labels[j]] += d;
            counts[labels[j]] += 1;
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b).max(1e-12);
        }
    }
    total / sample.len() as f64
}

/// Adjusted Rand index of two labellings of the same items (Hubert and
/// Arabie, 1985): 1 for identical partitions, about 0 for independent ones.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len());
    let n = a.len() as f64;
    let c2 = |x: f64| x * (x - 1.0) / 2.0;
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let mut ra: HashMap<usize, f64> = HashMap::new();
    let mut rb: HashMap<usize, f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *ra.entry(x).or_default() += 1.0;
        *rb.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&v| c2(v)).sum();
    let sa: f64 = ra.values().map(|&v| c2(v)).sum();
    let sb: f64 = rb.values().map(|&v| c2(v)).sum();
    let expected = sa * sb / c2(n).max(1.0);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores are uncorrelated, their variances descending and summing to
    /// the share reported, also when columns are collinear (a column twice
    /// another and a constant one: the covariance is singular).
    #[test]
    fn principal_components_are_uncorrelated_and_ordered() {
        let n = 300;
        let mut state = 12345u64;
        let mut unif = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x = Array2::from_shape_fn((n, 5), |_| 0.0);
        let mut x = x;
        for i in 0..n {
            let (a, b, c) = (unif(), unif(), unif());
            x[[i, 0]] = 3.0 * a;
            x[[i, 1]] = 6.0 * a + 0.1 * b;
            x[[i, 2]] = b + c;
            x[[i, 3]] = 1.0;
            x[[i, 4]] = 0.5 * c;
        }
        let (s, keep, share) = principal_components(&x, 0.999).unwrap();
        assert!((2..=5).contains(&keep));
        assert!(s.iter().all(|v| v.is_finite()));
        let var = |j: usize| s.column(j).iter().map(|v| v * v).sum::<f64>() / (n - 1) as f64;
        for j in 1..keep {
            assert!(var(j) <= var(j - 1) + 1e-9, "component {j}");
            let cov: f64 = s
                .column(j)
                .iter()
                .zip(s.column(0))
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / (n - 1) as f64;
            assert!(
                cov.abs() < 1e-8 * var(0),
                "component {j} correlated with the first"
            );
        }
        let total: f64 = (0..5)
            .map(|j| {
                let m = x.column(j).mean().unwrap();
                x.column(j).iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64
            })
            .sum();
        let kept: f64 = (0..keep).map(var).sum();
        assert!(
            (kept / total - share).abs() < 1e-9,
            "{kept} / {total} vs {share}"
        );
        assert!(share >= 0.999 - 1e-9);
    }

    #[test]
    fn ari_of_identical_and_relabelled_partitions_is_one() {
        let a = [0, 0, 1, 1, 2, 2];
        let b = [2, 2, 0, 0, 1, 1];
        assert!((adjusted_rand_index(&a, &b) - 1.0).abs() < 1e-12);
        let c = [0, 1, 0, 1, 0, 1];
        assert!(adjusted_rand_index(&a, &c) < 0.1);
    }
}
