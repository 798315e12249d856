//! Which reps win where, and account plans that put each account with the
//! rep most likely to win it, within balance limits.
//!
//! **Rep × segment win rates** ([`RepSegmentRates`]). Closed deals other
//! than renewals (a renewal's outcome is the product's, not the seller's),
//! credited to their owner, by the segment of their account
//! ([`crate::segments`]). Each cell's win rate is shrunk towards a prior
//! made of the rep's overall level and the segment's (their log-odds added,
//! less the org's: partial pooling, as per-cell data is thin); the rep and
//! segment levels are shrunk towards the org with 20 pseudo-deals; the
//! cells' pseudo-count is set by the method of moments (the spread of cell
//! rates around their priors beyond binomial noise). Each estimate has an
//! 80% interval from its Beta posterior (normal approximation).
//!
//! **Potential.** An account's expected bookings if won: log amounts of won
//! deals other than renewals regressed on segment and log company size
//! (least squares), `exp(fit + residual variance / 2)`.
//!
//! **Plans** ([`plan`]). Accounts go to reps to maximise expected bookings
//! (potential × the rep's win rate in the account's segment) subject to:
//! each rep's account count and potential within ±`band` of the mean of
//! their peers (their region's reps when accounts stay in their region, else
//! all reps); accounts stay in their owner's region; locked accounts stay;
//! at most `max_moved` of all accounts change owner; customers (accounts
//! with a won deal) stay with their owner unless another rep's expected
//! bookings beat the owner's by more than `customer_gain` (checked after
//! the program, one customer at a time, best gain first, within the band
//! and the cap). Accounts are grouped into classes the program cannot tell
//! apart (region, segment, potential octile); a linear program over
//! classes × reps (good_lp with the microlp solver) decides how many of
//! each class each rep holds, and how many each keeps of the ones they own;
//! a second program over the same cells makes the counts whole (each
//! between the floor and ceiling of the first's, each rep's total fixed),
//! the accounts are handed out (each rep keeps their own first), and swaps
//! of two accounts between a rep outside the potential band and a peer
//! repair what the class averages blurred. When the band cannot be met within the cap, slack on the
//! balance rows (at a high price) lets the program answer, and the report
//! names the reps outside it.

use std::collections::{BTreeMap, HashMap, HashSet};

use pipewise_store::read::CrmData;
use serde::Serialize;

use crate::segments::{Segmentation, log_size};

const PRIOR_DEALS: f64 = 20.0;
/// Potential bands (quantiles) of the plan's account classes.
const POTENTIAL_BANDS: usize = 8;
/// z of the 80% interval.
const Z80: f64 = 1.2816;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// One rep's estimate in one segment.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cell {
    pub rep_id: String,
    pub segment: String,
    /// Closed deals (not renewals) and wins in the cell.
    pub closed: usize,
    pub won: usize,
    /// Pooled win rate and its 80% interval, 0..1.
    pub win_rate: f64,
    pub low: f64,
    pub high: f64,
    /// The prior it was shrunk towards (rep level × segment level), 0..1.
    pub prior: f64,
    /// Won amount in the cell (corporate currency).
    pub bookings: f64,
}

/// A rep, as the plan sees them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanRep {
    pub id: String,
    pub name: String,
    pub region: Option<String>,
    /// Overall win rate (shrunk towards the org), 0..1.
    pub win_rate: f64,
    pub closed: usize,
}

/// Win rates of every rep in every segment, pooled.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepSegmentRates {
    pub reps: Vec<PlanRep>,
    pub segments: Vec<String>,
    /// Org win rate and each segment's (shrunk), 0..1.
    pub org_win_rate: f64,
    pub segment_win_rates: Vec<f64>,
    /// The cells' pseudo-count (deals) from the method of moments.
    pub cell_prior_deals: f64,
    /// `cells[r * segments + s]`.
    pub cells: Vec<Cell>,
}

impl RepSegmentRates {
    pub fn cell(&self, r: usize, s: usize) -> &Cell {
        &self.cells[r * self.segments.len() + s]
    }
}

fn is_renewal(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| k.to_lowercase().contains("renew"))
}

/// The reps a plan may assign to: users whose role is `rep` (any case);
/// when no user has a role, every account or deal owner.
fn plan_reps(crm: &CrmData) -> Vec<usize> {
    let with_role: Vec<usize> = crm
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| {
            u.role
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("rep"))
        })
        .map(|(i, _)| i)
        .collect();
    if !with_role.is_empty() {
        return with_role;
    }
    let owners: HashSet<&str> = crm
        .accounts
        .iter()
        .filter_map(|a| a.owner_id.as_deref())
        .chain(crm.opportunities.iter().map(|o| o.owner_id.as_str()))
        .collect();
    crm.users
        .iter()
        .enumerate()
        .filter(|(_, u)| owners.contains(u.id.as_str()))
        .map(|(i, _)| i)
        .collect()
}

/// Estimates every rep's win rate in every segment (see the module's
/// documentation). `as_of` leaves out deals closed later.
pub fn rep_segment_rates(crm: &CrmData, seg: &Segmentation, as_of: Option<i64>) -> RepSegmentRates {
    let k = seg.segments.len();
    let rep_users = plan_reps(crm);
    let rep_index: HashMap<&str, usize> = rep_users
        .iter()
        .enumerate()
        .map(|(r, &u)| (crm.users[u].id.as_str(), r))
        .collect();
    let account_index = crate::segments::account_index(crm);
    let nr = rep_users.len();
    let cutoff = as_of.unwrap_or(i64::MAX);
    let mut w = vec![0.0; nr * k];
    let mut n = vec![0.0; nr * k];
    let mut booked = vec![0.0; nr * k];
    let (mut org_w, mut org_n) = (0.0, 0.0);
    let mut seg_w = vec![0.0; k];
    let mut seg_n = vec![0.0; k];
    for o in &crm.opportunities {
        let won = match o.stage.as_str() {
            "closed_won" => true,
            "closed_lost" => false,
            _ => continue,
        };
        if is_renewal(o.kind.as_deref()) || o.closed_at.is_none_or(|t| t > cutoff) {
            continue;
        }
        let Some(&a) = o.account_id.as_deref().and_then(|id| account_index.get(id)) else {
            continue;
        };
        let s = seg.labels[a];
        org_n += 1.0;
        seg_n[s] += 1.0;
        if won {
            org_w += 1.0;
            seg_w[s] += 1.0;
        }
        if let Some(&r) = rep_index.get(o.owner_id.as_str()) {
            n[r * k + s] += 1.0;
            if won {
                w[r * k + s] += 1.0;
                booked[r * k + s] += o.amount.unwrap_or(0.0);
            }
        }
    }
    let p0 = if org_n > 0.0 { org_w / org_n } else { 0.5 };
    let seg_p: Vec<f64> = (0..k)
        .map(|s| (seg_w[s] + PRIOR_DEALS * p0) / (seg_n[s] + PRIOR_DEALS))
        .collect();
    let rep_p: Vec<(f64, f64)> = (0..nr)
        .map(|r| {
            let (ww, nn): (f64, f64) = (0..k).fold((0.0, 0.0), |acc, s| {
                (acc.0 + w[r * k + s], acc.1 + n[r * k + s])
            });
            ((ww + PRIOR_DEALS * p0) / (nn + PRIOR_DEALS), nn)
        })
        .collect();
    let prior = |r: usize, s: usize| sigmoid(logit(rep_p[r].0) + logit(seg_p[s]) - logit(p0));
    // Method of moments for the cells' spread around their priors.
    let (mut num, mut den, mut pq) = (0.0, 0.0, 0.0);
    for r in 0..nr {
        for s in 0..k {
            let c = n[r * k + s];
            if c < 1.0 {
                continue;
            }
            let p = prior(r, s);
            let rate = w[r * k + s] / c;
            num += c * ((rate - p).powi(2) - p * (1.0 - p) / c);
            den += c;
            pq += c * p * (1.0 - p);
        }
    }
    let tau2 = if den > 0.0 {
        (num / den).max(1e-4)
    } else {
        1e-4
    };
    let mean_pq = if den > 0.0 { pq / den } else { 0.25 };
    let m = (mean_pq / tau2 - 1.0).clamp(2.0, 500.0);
    let mut cells = Vec::with_capacity(nr * k);
    for r in 0..nr {
        for s in 0..k {
            let i = r * k + s;
            let p = prior(r, s);
            let a = w[i] + m * p;
            let b = n[i] - w[i] + m * (1.0 - p);
            let mean = a / (a + b);
            let sd = (a * b / ((a + b).powi(2) * (a + b + 1.0))).sqrt();
            cells.push(Cell {
                rep_id: crm.users[rep_users[r]].id.clone(),
                segment: seg.segments[s].id.clone(),
                closed: n[i] as usize,
                won: w[i] as usize,
                win_rate: round4(mean),
                low: round4((mean - Z80 * sd).max(0.0)),
                high: round4((mean + Z80 * sd).min(1.0)),
                prior: round4(p),
                bookings: booked[i].round(),
            });
        }
    }
    let reps = rep_users
        .iter()
        .enumerate()
        .map(|(r, &u)| {
            let user = &crm.users[u];
            let region = user.region.clone().or_else(|| {
                let team = user.team_id.as_deref()?;
                crm.teams.iter().find(|t| t.id == team)?.region.clone()
            });
            PlanRep {
                id: user.id.clone(),
                name: user.name.clone(),
                region,
                win_rate: round4(rep_p[r].0),
                closed: rep_p[r].1 as usize,
            }
        })
        .collect();
    RepSegmentRates {
        reps,
        segments: seg.segments.iter().map(|s| s.id.clone()).collect(),
        org_win_rate: round4(p0),
        segment_win_rates: seg_p.into_iter().map(round4).collect(),
        cell_prior_deals: (m * 10.0).round() / 10.0,
        cells,
    }
}

/// Each account's expected bookings if won (see the module's documentation),
/// aligned with the CRM's accounts.
pub fn potentials(crm: &CrmData, seg: &Segmentation, as_of: Option<i64>) -> Vec<f64> {
    let k = seg.segments.len();
    let size = log_size(crm);
    let account_index = crate::segments::account_index(crm);
    let cutoff = as_of.unwrap_or(i64::MAX);
    // Rows: (segment, log size, log amount).
    let rows: Vec<(usize, f64, f64)> = crm
        .opportunities
        .iter()
        .filter(|o| o.stage == "closed_won" && !is_renewal(o.kind.as_deref()))
        .filter(|o| o.closed_at.is_some_and(|t| t <= cutoff))
        .filter_map(|o| {
            let a = *account_index.get(o.account_id.as_deref()?)?;
            let amt = o.amount.filter(|x| *x > 0.0)?;
            Some((seg.labels[a], size[a], amt.ln()))
        })
        .collect();
    if rows.is_empty() {
        return vec![1.0; crm.accounts.len()];
    }
    // Slope on size within segments (centred per segment), then intercepts.
    let mut sx = vec![0.0; k];
    let mut sy = vec![0.0; k];
    let mut cnt = vec![0.0; k];
    for &(s, x, y) in &rows {
        sx[s] += x;
        sy[s] += y;
        cnt[s] += 1.0;
    }
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(s, x, y) in &rows {
        let (mx, my) = (sx[s] / cnt[s], sy[s] / cnt[s]);
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    let beta = if sxx > 1e-9 { sxy / sxx } else { 0.0 };
    let all_x = rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64;
    let all_y = rows.iter().map(|r| r.2).sum::<f64>() / rows.len() as f64;
    let alpha0 = all_y - beta * all_x;
    // Segment intercepts shrunk towards the org's with 5 pseudo-deals.
    let alpha: Vec<f64> = (0..k)
        .map(|s| {
            let own = if cnt[s] > 0.0 {
                sy[s] / cnt[s] - beta * sx[s] / cnt[s]
            } else {
                alpha0
            };
            (cnt[s] * own + 5.0 * alpha0) / (cnt[s] + 5.0)
        })
        .collect();
    let resid = rows
        .iter()
        .map(|&(s, x, y)| (y - alpha[s] - beta * x).powi(2))
        .sum::<f64>()
        / (rows.len() as f64 - 1.0).max(1.0);
    (0..crm.accounts.len())
        .map(|a| (alpha[seg.labels[a]] + beta * size[a] + resid / 2.0).exp())
        .collect()
}

/// Options of [`plan`].
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Each rep's accounts and potential within this share of their peers'
    /// mean (default 0.1).
    pub band: f64,
    /// At most this share of all accounts changes owner (default 0.2).
    pub max_moved: f64,
    /// Accounts stay in their owner's region (default true).
    pub keep_region: bool,
    /// A customer moves only if another rep's expected bookings beat the
    /// owner's by more than this share (default 0.2).
    pub customer_gain: f64,
    /// Account ids that keep their owner.
    pub locked: HashSet<String>,
    /// Deals closed after this instant are not used.
    pub as_of: Option<i64>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            band: 0.1,
            max_moved: 0.2,
            keep_region: true,
            customer_gain: 0.2,
            locked: HashSet::new(),
            as_of: None,
        }
    }
}

/// One account's place in the plan.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    pub account_id: String,
    pub account_name: String,
    pub segment: String,
    pub rep_id: String,
    pub current_rep_id: Option<String>,
    /// Expected bookings if won, and under the proposed and current owner
    /// (potential × win rate).
    pub potential: f64,
    pub expected: f64,
    pub current_expected: Option<f64>,
    /// Why it moves (empty when it stays).
    pub reason: String,
    pub customer: bool,
    pub locked: bool,
}

/// How [`Balance::outside_why`] begins when the accounts the plan may
/// not move (customers, locked ones) alone put the rep over the band.
pub const OUTSIDE_BY_KEPT_ACCOUNTS: &str = "the customers and locked accounts kept with them alone";

/// A repair step: (score, moves added, the account going to the peer,
/// the account coming from it, the peer).
type RepairOp = (f64, f64, Option<usize>, Option<usize>, usize);

/// A rep's book under one plan.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Balance {
    pub rep_id: String,
    pub name: String,
    pub region: Option<String>,
    pub accounts: usize,
    pub potential: f64,
    pub expected: f64,
    /// Accounts and potential against their peers' mean (1.0 = the mean).
    pub accounts_ratio: f64,
    pub potential_ratio: f64,
    pub within_band: bool,
    /// Why the proposed plan leaves the rep outside the band (None when
    /// inside, and in the current plan).
    pub outside_why: Option<String>,
}

/// Totals of one plan.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanTotals {
    /// Expected bookings (sum over accounts of potential × win rate), with
    /// an 80% interval from the win-rate estimates' uncertainty.
    pub expected_bookings: f64,
    pub low: f64,
    pub high: f64,
    pub reps_within_band: usize,
    pub reps: usize,
    pub balance: Vec<Balance>,
}

/// A proposed plan against the current one.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanReport {
    pub band: f64,
    pub max_moved: f64,
    pub keep_region: bool,
    pub customer_gain: f64,
    pub accounts: usize,
    /// Accounts whose owner changes (unowned accounts given an owner are
    /// counted in `newly_assigned`, not here).
    pub moved: usize,
    pub moved_share: f64,
    pub newly_assigned: usize,
    pub customers_moved: usize,
    pub current: PlanTotals,
    pub proposed: PlanTotals,
    /// Proposed minus current expected bookings, with its 80% interval.
    pub gain: f64,
    pub gain_low: f64,
    pub gain_high: f64,
    /// `optimal` (the program's answer, rounded) or `relaxed` (the band
    /// could not be met within the cap: some reps stay outside it).
    pub status: String,
    /// Size of the linear program.
    pub classes: usize,
    pub variables: usize,
    pub assignments: Vec<Assignment>,
    pub rates: RepSegmentRates,
}

/// Errors of [`plan`].
#[derive(Debug)]
pub enum PlanError {
    NoReps,
    NoAccounts,
    Solver(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::NoReps => write!(
                f,
                "cannot plan: no reps (users with role 'rep', or owners of accounts or deals)"
            ),
            PlanError::NoAccounts => write!(f, "cannot plan: no accounts (import accounts.csv)"),
            PlanError::Solver(e) => write!(f, "the plan's linear program failed: {e}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// Proposes an account plan (see the module's documentation) and compares
/// it with the current owners. Errors: no reps, no accounts, solver failure.
pub fn plan(
    crm: &CrmData,
    seg: &Segmentation,
    opts: &PlanOptions,
) -> Result<PlanReport, PlanError> {
    use good_lp::{Expression, ProblemVariables, Solution, SolverModel, variable};
    let rates = rep_segment_rates(crm, seg, opts.as_of);
    let nr = rates.reps.len();
    let na = crm.accounts.len();
    if nr == 0 {
        return Err(PlanError::NoReps);
    }
    if na == 0 {
        return Err(PlanError::NoAccounts);
    }
    let pot = potentials(crm, seg, opts.as_of);
    let rep_of: HashMap<&str, usize> = rates
        .reps
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let current: Vec<Option<usize>> = crm
        .accounts
        .iter()
        .map(|a| a.owner_id.as_deref().and_then(|o| rep_of.get(o).copied()))
        .collect();
    // Regions: reps' own; an account's is its owner's, else that of the
    // owners of its deals (most deals).
    let mut region_names: BTreeMap<String, usize> = BTreeMap::new();
    let rep_region: Vec<Option<usize>> = rates
        .reps
        .iter()
        .map(|r| {
            r.region.as_ref().map(|g| {
                let n = region_names.len();
                *region_names.entry(g.clone()).or_insert(n)
            })
        })
        .collect();
    let account_index = crate::segments::account_index(crm);
    let mut deal_regions: Vec<HashMap<usize, usize>> = vec![HashMap::new(); na];
    for o in &crm.opportunities {
        if let (Some(&a), Some(&r)) = (
            o.account_id.as_deref().and_then(|id| account_index.get(id)),
            rep_of.get(o.owner_id.as_str()),
        ) && let Some(g) = rep_region[r]
        {
            *deal_regions[a].entry(g).or_default() += 1;
        }
    }
    let account_region: Vec<Option<usize>> = (0..na)
        .map(|a| match current[a] {
            Some(r) => rep_region[r],
            None => deal_regions[a]
                .iter()
                .max_by_key(|(g, c)| (**c, std::cmp::Reverse(**g)))
                .map(|(g, _)| *g),
        })
        .collect();
    let mut customer = vec![false; na];
    for o in &crm.opportunities {
        if o.stage == "closed_won"
            && o.closed_at
                .is_some_and(|t| t <= opts.as_of.unwrap_or(i64::MAX))
            && let Some(&a) = o.account_id.as_deref().and_then(|id| account_index.get(id))
        {
            customer[a] = true;
        }
    }
    let locked: Vec<bool> = crm
        .accounts
        .iter()
        .map(|a| opts.locked.contains(&a.id))
        .collect();
    let value = |a: usize, r: usize| pot[a] * rates.cell(r, seg.labels[a]).win_rate;
    // Candidate reps of an account: its region's (all when no region rule
    // or no region known).
    let group_of = |a: usize| -> Option<usize> {
        if opts.keep_region {
            account_region[a]
        } else {
            None
        }
    };
    let reps_in: Vec<Vec<usize>> = {
        let mut v = vec![Vec::new(); region_names.len() + 1];
        for (r, region) in rep_region.iter().enumerate() {
            let g = if opts.keep_region {
                region.unwrap_or(region_names.len())
            } else {
                region_names.len()
            };
            v[g].push(r);
        }
        v
    };
    let peers_of = |r: usize| -> usize {
        if opts.keep_region {
            rep_region[r].unwrap_or(region_names.len())
        } else {
            region_names.len()
        }
    };
    let candidates = |a: usize| -> &Vec<usize> {
        match group_of(a) {
            Some(g) if !reps_in[g].is_empty() => &reps_in[g],
            _ => &reps_in[region_names.len()],
        }
    };
    let all_reps: Vec<usize> = (0..nr).collect();
    let candidates = |a: usize| -> &[usize] {
        let c = candidates(a);
        if c.is_empty() { &all_reps } else { c }
    };
    // Fixed accounts (locked, customers, and those whose candidates are
    // all outside any group) vs movable ones grouped into classes.
    let mut band_of = vec![0usize; na];
    {
        let mut sorted: Vec<f64> = pot.clone();
        sorted.sort_by(f64::total_cmp);
        let cuts: Vec<f64> = (1..POTENTIAL_BANDS)
            .map(|q| sorted[q * na / POTENTIAL_BANDS])
            .collect();
        for a in 0..na {
            band_of[a] = cuts.iter().filter(|&&c| pot[a] >= c).count();
        }
    }
    let fixed = |a: usize| (locked[a] || customer[a]) && current[a].is_some();
    // Peer groups' means of accounts and potential.
    let n_groups = region_names.len() + 1;
    let mut group_accounts = vec![0.0f64; n_groups];
    let mut group_pot = vec![0.0f64; n_groups];
    let mut group_reps = vec![0.0f64; n_groups];
    for r in 0..nr {
        group_reps[peers_of(r)] += 1.0;
    }
    for a in 0..na {
        let g = if opts.keep_region {
            account_region[a]
                .filter(|&g| group_reps[g] > 0.0)
                .unwrap_or(region_names.len())
        } else {
            region_names.len()
        };
        group_accounts[g] += 1.0;
        group_pot[g] += pot[a];
    }
    let mean_accounts = |r: usize| {
        let g = peers_of(r);
        group_accounts[g] / group_reps[g].max(1.0)
    };
    let mean_pot = |r: usize| {
        let g = peers_of(r);
        group_pot[g] / group_reps[g].max(1.0)
    };

    // Classes of movable accounts.
    let mut class_key: BTreeMap<(usize, usize, usize), usize> = BTreeMap::new();
    let mut class_members: Vec<Vec<usize>> = Vec::new();
    for a in 0..na {
        if fixed(a) {
            continue;
        }
        let g = group_of(a).unwrap_or(usize::MAX);
        let key = (g, seg.labels[a], band_of[a]);
        let c = *class_key.entry(key).or_insert_with(|| {
            class_members.push(Vec::new());
            class_members.len() - 1
        });
        class_members[c].push(a);
    }
    let nc = class_members.len();
    let class_pot: Vec<f64> = class_members
        .iter()
        .map(|m| m.iter().map(|&a| pot[a]).sum::<f64>() / m.len() as f64)
        .collect();
    let class_seg: Vec<usize> = class_members.iter().map(|m| seg.labels[m[0]]).collect();
    let class_cands: Vec<&[usize]> = class_members.iter().map(|m| candidates(m[0])).collect();
    let mut fixed_count = vec![0.0; nr];
    let mut fixed_pot = vec![0.0; nr];
    for a in 0..na {
        if fixed(a) {
            let r = current[a].expect("fixed accounts have an owner");
            fixed_count[r] += 1.0;
            fixed_pot[r] += pot[a];
        }
    }
    let movable_owned: usize = (0..na)
        .filter(|&a| !fixed(a) && current[a].is_some())
        .count();
    let cap = (opts.max_moved * na as f64).floor();

    let mut vars = ProblemVariables::new();
    let mut z: Vec<Vec<(usize, good_lp::Variable)>> = Vec::with_capacity(nc);
    let mut keep: Vec<Vec<(usize, good_lp::Variable, f64)>> = Vec::with_capacity(nc);
    let mut n_vars = 0;
    for c in 0..nc {
        let n = class_members[c].len() as f64;
        z.push(
            class_cands[c]
                .iter()
                .map(|&r| (r, vars.add(variable().min(0.0).max(n))))
                .collect(),
        );
        // Ordered: the variables are created in this order, and the
        // simplex's answer among equally good ones depends on it.
        let mut cur: BTreeMap<usize, f64> = BTreeMap::new();
        for &a in &class_members[c] {
            if let Some(r) = current[a] {
                *cur.entry(r).or_default() += 1.0;
            }
        }
        let mut ks: Vec<(usize, good_lp::Variable, f64)> = cur
            .into_iter()
            .map(|(r, m)| (r, vars.add(variable().min(0.0).max(m)), m))
            .collect();
        ks.sort_by_key(|x| x.0);
        n_vars += z[c].len() + ks.len();
        keep.push(ks);
    }
    let slack: Vec<[good_lp::Variable; 4]> = (0..nr)
        .map(|_| std::array::from_fn(|_| vars.add(variable().min(0.0))))
        .collect();
    n_vars += 4 * nr;
    let max_value = pot.iter().cloned().fold(0.0, f64::max).max(1.0);
    let mean_pot_all = pot.iter().sum::<f64>() / na as f64;
    let count_penalty = 100.0 * max_value;
    let pot_penalty = 100.0 * max_value / mean_pot_all.max(1e-9);
    let mut objective = Expression::from(0.0);
    for c in 0..nc {
        for &(r, v) in &z[c] {
            objective += v * (class_pot[c] * rates.cell(r, class_seg[c]).win_rate);
        }
    }
    for s in &slack {
        objective -= s[0] * count_penalty + s[1] * count_penalty;
        objective -= s[2] * pot_penalty + s[3] * pot_penalty;
    }
    let mut problem = vars.maximise(objective).using(good_lp::microlp);
    for c in 0..nc {
        let sum: Expression = z[c].iter().map(|&(_, v)| v).sum();
        problem = problem.with(sum.eq(class_members[c].len() as f64));
        for &(r, kv, _) in &keep[c] {
            if let Some(&(_, zv)) = z[c].iter().find(|(rr, _)| *rr == r) {
                problem = problem.with((kv - zv).leq(0.0));
            }
        }
    }
    let mut count_expr: Vec<Expression> =
        (0..nr).map(|r| Expression::from(fixed_count[r])).collect();
    let mut pot_expr: Vec<Expression> = (0..nr).map(|r| Expression::from(fixed_pot[r])).collect();
    for c in 0..nc {
        for &(r, v) in &z[c] {
            count_expr[r] += v;
            pot_expr[r] += v * class_pot[c];
        }
    }
    for r in 0..nr {
        let (ma, mp) = (mean_accounts(r), mean_pot(r));
        let ce = count_expr[r].clone();
        let pe = pot_expr[r].clone();
        // Counts are whole: the band's bounds rounded inwards. Potential
        // is planned on class averages: a fifth of the band is kept in
        // reserve for the accounts' spread around them.
        let tight = 0.8 * opts.band;
        problem = problem
            .with((ce.clone() + slack[r][0]).geq(((1.0 - opts.band) * ma - 1e-9).ceil()))
            .with((ce - slack[r][1]).leq(((1.0 + opts.band) * ma + 1e-9).floor()))
            .with((pe.clone() + slack[r][2]).geq((1.0 - tight) * mp))
            .with((pe - slack[r][3]).leq((1.0 + tight) * mp));
    }
    let kept: Expression = keep.iter().flatten().map(|&(_, v, _)| v).sum();
    // A twentieth of the cap is kept back for rounding and the repair swaps.
    problem = problem.with(kept.geq(movable_owned as f64 - 0.95 * cap));
    let solution = problem
        .solve()
        .map_err(|e| PlanError::Solver(e.to_string()))?;
    let relaxed = slack
        .iter()
        .any(|s| s.iter().any(|&v| solution.value(v) > 1e-6));

    // Round: each rep's total to the nearest whole number (largest
    // remainders), then each class's counts, its remainders going to the
    // reps furthest below their total.
    let mut owner: Vec<Option<usize>> = current.clone();
    let zval: Vec<Vec<(usize, f64)>> = z
        .iter()
        .map(|zc| {
            zc.iter()
                .map(|&(r, v)| (r, solution.value(v).max(0.0)))
                .collect()
        })
        .collect();
    let mut frac_total = vec![0.0; nr];
    for zc in &zval {
        for &(r, x) in zc {
            frac_total[r] += x;
        }
    }
    let movable_total: usize = class_members.iter().map(Vec::len).sum();
    let mut target: Vec<usize> = frac_total.iter().map(|x| x.floor() as usize).collect();
    {
        let mut left = movable_total.saturating_sub(target.iter().sum());
        let mut order: Vec<usize> = (0..nr).collect();
        order.sort_by(|&i, &j| {
            (frac_total[j] - frac_total[j].floor())
                .total_cmp(&(frac_total[i] - frac_total[i].floor()))
        });
        for &r in &order {
            if left == 0 {
                break;
            }
            target[r] += 1;
            left -= 1;
        }
    }
    // Whole numbers: a second program over the same classes × reps with
    // each count between the floor and the ceiling of the first's and each
    // rep's total fixed to its rounded total: a transportation polytope
    // with whole-number bounds, whose vertices (the simplex's answers) are
    // whole numbers.
    let rounded: Vec<Vec<(usize, usize)>> = {
        let mut vars2 = ProblemVariables::new();
        let y: Vec<Vec<(usize, good_lp::Variable)>> = zval
            .iter()
            .map(|zc| {
                zc.iter()
                    .map(|&(r, x)| (r, vars2.add(variable().min(x.floor()).max(x.ceil()))))
                    .collect()
            })
            .collect();
        // Rounding a count up for a rep who owns that many of the class
        // keeps an account in place: worth more than any value difference.
        let keep_bonus = 10.0 * max_value;
        let mut obj = Expression::from(0.0);
        for c in 0..nc {
            for (i, &(r, v)) in y[c].iter().enumerate() {
                let owns = keep[c].iter().find(|k| k.0 == r).map_or(0.0, |k| k.2);
                let bonus = if owns >= zval[c][i].1.ceil() {
                    keep_bonus
                } else {
                    0.0
                };
                obj += v * (class_pot[c] * rates.cell(r, class_seg[c]).win_rate + bonus);
            }
        }
        let mut p2 = vars2.maximise(obj).using(good_lp::microlp);
        let mut per_rep: Vec<Expression> = (0..nr).map(|_| Expression::from(0.0)).collect();
        for c in 0..nc {
            let sum: Expression = y[c].iter().map(|&(_, v)| v).sum();
            p2 = p2.with(sum.eq(class_members[c].len() as f64));
            for &(r, v) in &y[c] {
                per_rep[r] += v;
            }
        }
        for (r, e) in per_rep.into_iter().enumerate() {
            p2 = p2.with(e.eq(target[r] as f64));
        }
        match p2.solve() {
            Ok(sol) => y
                .iter()
                .map(|yc| {
                    yc.iter()
                        .map(|&(r, v)| (r, sol.value(v).round().max(0.0) as usize))
                        .collect()
                })
                .collect(),
            // Should not happen (the rounding always exists): floors and
            // largest remainders per class.
            Err(_) => zval
                .iter()
                .zip(&class_members)
                .map(|(zc, m)| {
                    let mut v: Vec<(usize, usize, f64)> = zc
                        .iter()
                        .map(|&(r, x)| (r, x.floor() as usize, x - x.floor()))
                        .collect();
                    let mut left = m.len().saturating_sub(v.iter().map(|x| x.1).sum());
                    v.sort_by(|a, b| b.2.total_cmp(&a.2));
                    for x in v.iter_mut() {
                        if left == 0 {
                            break;
                        }
                        x.1 += 1;
                        left -= 1;
                    }
                    v.into_iter().map(|x| (x.0, x.1)).collect()
                })
                .collect(),
        }
    };
    for c in 0..nc {
        let counts = &rounded[c];
        let mut quota: HashMap<usize, usize> = counts.iter().map(|c| (c.0, c.1)).collect();
        let mut pool = Vec::new();
        for &a in &class_members[c] {
            match current[a].and_then(|r| quota.get_mut(&r).filter(|q| **q > 0).map(|q| (r, q))) {
                Some((r, q)) => {
                    *q -= 1;
                    owner[a] = Some(r);
                }
                None => pool.push(a),
            }
        }
        let mut takers: Vec<(usize, usize)> = quota.into_iter().filter(|q| q.1 > 0).collect();
        takers.sort();
        for a in pool {
            if let Some(t) = takers.iter_mut().find(|t| t.1 > 0) {
                t.1 -= 1;
                owner[a] = Some(t.0);
            }
        }
    }

    // Undoes the moves worth least until the cap holds; with `strict`, only
    // those whose undoing keeps both reps inside the band.
    let undo_past_cap = |owner: &mut Vec<Option<usize>>, strict: bool| {
        let mut count = vec![0.0; nr];
        let mut potsum = vec![0.0; nr];
        for a in 0..na {
            if let Some(r) = owner[a] {
                count[r] += 1.0;
                potsum[r] += pot[a];
            }
        }
        let inside = |r: usize, count: &[f64], potsum: &[f64]| {
            let (ma, mp) = (mean_accounts(r), mean_pot(r));
            (count[r] - ma).abs() <= opts.band * ma + 1e-9
                && (potsum[r] - mp).abs() <= opts.band * mp + 1e-9
        };
        let mut moves: Vec<(f64, usize)> = (0..na)
            .filter(|&a| current[a].is_some() && owner[a] != current[a])
            .map(|a| {
                let (r, r0) = (owner[a].expect("assigned"), current[a].expect("owned"));
                (value(a, r) - value(a, r0), a)
            })
            .collect();
        moves.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut excess = (moves.len() as f64 - cap).max(0.0) as usize;
        for &(_, a) in &moves {
            if excess == 0 {
                break;
            }
            let (Some(r), Some(r0)) = (owner[a], current[a]) else {
                continue;
            };
            if r == r0 {
                continue;
            }
            count[r] -= 1.0;
            potsum[r] -= pot[a];
            count[r0] += 1.0;
            potsum[r0] += pot[a];
            if strict && !(inside(r, &count, &potsum) && inside(r0, &count, &potsum)) {
                count[r] += 1.0;
                potsum[r] += pot[a];
                count[r0] -= 1.0;
                potsum[r0] -= pot[a];
                continue;
            }
            owner[a] = current[a];
            excess -= 1;
        }
    };

    // Back under the cap where that keeps both reps inside the band; what
    // remains is undone after the repair below.
    undo_past_cap(&mut owner, true);

    // Repair the balance the class averages blur, account by account. A
    // rep's violation is how far their accounts and their potential lie
    // outside the band (each as a share of the peers' mean). The rep with
    // the largest is repaired first, by the move of one movable account to
    // or from a peer, or the swap of two with one of the four peers
    // furthest the other way: the operation losing the least expected
    // bookings per unit of violation removed, within the cap (returning an
    // account to its owner frees a move).
    let moved_now = |owner: &[Option<usize>]| {
        (0..na)
            .filter(|&a| current[a].is_some() && owner[a] != current[a])
            .count()
    };
    {
        let mut count = vec![0.0; nr];
        let mut potsum = vec![0.0; nr];
        let mut books: Vec<Vec<usize>> = vec![Vec::new(); nr];
        for a in 0..na {
            if let Some(r) = owner[a] {
                count[r] += 1.0;
                potsum[r] += pot[a];
                if !fixed(a) && !locked[a] {
                    books[r].push(a);
                }
            }
        }
        let viol = |r: usize, c: f64, p: f64| -> f64 {
            let (ma, mp) = (mean_accounts(r).max(1e-9), mean_pot(r).max(1e-9));
            ((c / ma - 1.0).abs() - opts.band).max(0.0)
                + ((p / mp - 1.0).abs() - opts.band).max(0.0)
        };
        // Whether `a` counts as moved when held by `r`.
        let moved_if = |a: usize, r: usize| f64::from(current[a].is_some_and(|c| c != r));
        let mut moved = moved_now(&owner) as f64;
        // Reps the accounts kept with them already put over the band are
        // beyond repair (the report says why); others may still take from
        // or give to them.
        let hopeless: Vec<bool> = (0..nr)
            .map(|r| {
                fixed_pot[r] > (1.0 + opts.band) * mean_pot(r)
                    || fixed_count[r] > (1.0 + opts.band) * mean_accounts(r)
            })
            .collect();
        let mut stuck = hopeless.clone();
        let move_price = (0..na)
            .filter_map(|a| owner[a].map(|r| value(a, r)))
            .sum::<f64>()
            / na as f64;
        for _ in 0..(20 * nr + 100) {
            let Some(hi) = (0..nr)
                .filter(|&r| !stuck[r] && viol(r, count[r], potsum[r]) > 1e-9)
                .max_by(|&x, &y| {
                    viol(x, count[x], potsum[x]).total_cmp(&viol(y, count[y], potsum[y]))
                })
            else {
                break;
            };
            let dev_c = |r: usize| count[r] / mean_accounts(r).max(1e-9) - 1.0;
            let dev_p = |r: usize| potsum[r] / mean_pot(r).max(1e-9) - 1.0;
            // The directions hi is out of the band in (0 where inside).
            let sc = if dev_c(hi).abs() > opts.band {
                dev_c(hi).signum()
            } else {
                0.0
            };
            let sp = if dev_p(hi).abs() > opts.band {
                dev_p(hi).signum()
            } else {
                0.0
            };
            let mut peers: Vec<usize> = (0..nr)
                .filter(|&r| r != hi && peers_of(r) == peers_of(hi))
                .collect();
            // Furthest the other way first.
            peers.sort_by(|&x, &y| {
                (sc * dev_c(x) + sp * dev_p(x)).total_cmp(&(sc * dev_c(y) + sp * dev_p(y)))
            });
            let before =
                |lo: usize| viol(hi, count[hi], potsum[hi]) + viol(lo, count[lo], potsum[lo]);
            let mut best: Option<RepairOp> = None;
            let mut consider = |to_lo: Option<usize>, to_hi: Option<usize>, lo: usize, v0: f64| {
                if to_lo.is_some_and(|a| group_of(a) != group_of(to_hi.unwrap_or(a))) {
                    return;
                }
                let (mut c_hi, mut c_lo, mut p_hi, mut p_lo) =
                    (count[hi], count[lo], potsum[hi], potsum[lo]);
                let (mut extra, mut loss) = (0.0, 0.0);
                if let Some(a) = to_lo {
                    c_hi -= 1.0;
                    c_lo += 1.0;
                    p_hi -= pot[a];
                    p_lo += pot[a];
                    extra += moved_if(a, lo) - moved_if(a, hi);
                    loss += value(a, hi) - value(a, lo);
                }
                if let Some(b) = to_hi {
                    c_hi += 1.0;
                    c_lo -= 1.0;
                    p_hi += pot[b];
                    p_lo -= pot[b];
                    extra += moved_if(b, hi) - moved_if(b, lo);
                    loss += value(b, lo) - value(b, hi);
                }
                if extra > 0.0 && moved + extra > cap {
                    return;
                }
                let removed = v0 - viol(hi, c_hi, p_hi) - viol(lo, c_lo, p_lo);
                if removed <= 1e-9 {
                    return;
                }
                // A move spent is priced at an average account's
                // expected bookings: under the cap, moves are scarce.
                let score = (loss + extra.max(0.0) * move_price) / removed;
                if best.is_none_or(|x| (score, extra) < (x.0, x.1)) {
                    best = Some((score, extra, to_lo, to_hi, lo));
                }
            };
            for (i, &lo) in peers.iter().enumerate() {
                let v0 = before(lo);
                for &a in &books[hi] {
                    consider(Some(a), None, lo, v0);
                }
                for &b in &books[lo] {
                    consider(None, Some(b), lo, v0);
                }
                if i < 4 {
                    for &a in &books[hi] {
                        for &b in &books[lo] {
                            consider(Some(a), Some(b), lo, v0);
                        }
                    }
                }
            }
            let Some((_, extra, to_lo, to_hi, lo)) = best else {
                stuck[hi] = true;
                continue;
            };
            moved += extra;
            if let Some(a) = to_lo {
                owner[a] = Some(lo);
                count[hi] -= 1.0;
                count[lo] += 1.0;
                potsum[hi] -= pot[a];
                potsum[lo] += pot[a];
                books[hi].retain(|&x| x != a);
                books[lo].push(a);
            }
            if let Some(b) = to_hi {
                owner[b] = Some(hi);
                count[hi] += 1.0;
                count[lo] -= 1.0;
                potsum[hi] += pot[b];
                potsum[lo] -= pot[b];
                books[lo].retain(|&x| x != b);
                books[hi].push(b);
            }
            stuck.clone_from(&hopeless);
        }
    }

    // Never past the cap: undo the moves worth least until within it.
    undo_past_cap(&mut owner, false);

    // Customers: move one at a time, best gain first, within band and cap.
    let mut count: Vec<f64> = vec![0.0; nr];
    let mut potsum: Vec<f64> = vec![0.0; nr];
    for a in 0..na {
        if let Some(r) = owner[a] {
            count[r] += 1.0;
            potsum[r] += pot[a];
        }
    }
    let mut moved = moved_now(&owner);
    let mut customer_moves = Vec::new();
    for a in 0..na {
        if customer[a]
            && !locked[a]
            && let Some(r0) = current[a]
        {
            let best = candidates(a)
                .iter()
                .copied()
                .filter(|&r| r != r0)
                .max_by(|&x, &y| value(a, x).total_cmp(&value(a, y)));
            if let Some(r) = best {
                let gain = value(a, r) / value(a, r0).max(1e-9) - 1.0;
                if gain > opts.customer_gain {
                    customer_moves.push((gain, a, r0, r));
                }
            }
        }
    }
    customer_moves.sort_by(|x, y| y.0.total_cmp(&x.0));
    let within = |r: usize, count: &[f64], potsum: &[f64]| {
        let (ma, mp) = (mean_accounts(r), mean_pot(r));
        count[r] >= (1.0 - opts.band) * ma - 1e-9
            && count[r] <= (1.0 + opts.band) * ma + 1e-9
            && potsum[r] >= (1.0 - opts.band) * mp - 1e-9
            && potsum[r] <= (1.0 + opts.band) * mp + 1e-9
    };
    let mut customers_moved = 0;
    for (_, a, r0, r) in customer_moves {
        if moved as f64 + 1.0 > cap {
            break;
        }
        count[r0] -= 1.0;
        potsum[r0] -= pot[a];
        count[r] += 1.0;
        potsum[r] += pot[a];
        // Both reps inside the band afterwards.
        if !within(r0, &count, &potsum) || !within(r, &count, &potsum) {
            count[r0] += 1.0;
            potsum[r0] += pot[a];
            count[r] -= 1.0;
            potsum[r] -= pot[a];
            continue;
        }
        owner[a] = Some(r);
        moved += 1;
        customers_moved += 1;
    }

    // Report.
    let cur_totals = totals(&rates, &current, &pot, seg, opts.band, &|r| {
        (mean_accounts(r), mean_pot(r))
    });
    let new_totals = totals(&rates, &owner, &pot, seg, opts.band, &|r| {
        (mean_accounts(r), mean_pot(r))
    });
    let mut new_totals = new_totals;
    for (r, b) in new_totals.balance.iter_mut().enumerate() {
        if b.within_band {
            continue;
        }
        let (ma, mp) = (mean_accounts(r), mean_pot(r));
        b.outside_why = Some(if fixed_pot[r] > (1.0 + opts.band) * mp {
            format!(
                "{OUTSIDE_BY_KEPT_ACCOUNTS} come to {:.0}% of their peers' mean potential",
                fixed_pot[r] / mp.max(1e-9) * 100.0
            )
        } else if fixed_count[r] > (1.0 + opts.band) * ma {
            format!(
                "{OUTSIDE_BY_KEPT_ACCOUNTS} come to {:.0}% of their peers' mean number of accounts",
                fixed_count[r] / ma.max(1e-9) * 100.0
            )
        } else if moved as f64 + 1.0 > cap {
            format!(
                "the cap on accounts moved ({cap:.0}) was reached before their book was balanced"
            )
        } else {
            "no move or swap of a movable account with a peer brings them closer to the band".into()
        });
    }
    let (gain, gain_low, gain_high) = gain_interval(&rates, &current, &owner, &pot, seg);
    let newly_assigned = (0..na)
        .filter(|&a| current[a].is_none() && owner[a].is_some())
        .count();
    let assignments = (0..na)
        .map(|a| {
            let acc = &crm.accounts[a];
            let r = owner[a].unwrap_or(0);
            let s = seg.labels[a];
            let cell = rates.cell(r, s);
            let reason = match current[a] {
                Some(r0) if r0 != r && rates.cell(r0, s).win_rate >= cell.win_rate => {
                    // Worth less with the new rep: a move for balance.
                    format!(
                        "to keep both books within the band: {} held more accounts or potential than it allows, or {} less ({} wins {:.0}% in {} against {:.0}% for {})",
                        rates.reps[r0].name,
                        rates.reps[r].name,
                        rates.reps[r].name,
                        cell.win_rate * 100.0,
                        seg.segments[s].name,
                        rates.cell(r0, s).win_rate * 100.0,
                        rates.reps[r0].name
                    )
                }
                Some(r0) if r0 != r => {
                    let c0 = rates.cell(r0, s);
                    format!(
                        "{} wins {:.0}% in {} (80%: {:.0}-{:.0}%, {} closed deals there) against {:.0}% for {}",
                        rates.reps[r].name,
                        cell.win_rate * 100.0,
                        seg.segments[s].name,
                        cell.low * 100.0,
                        cell.high * 100.0,
                        cell.closed,
                        c0.win_rate * 100.0,
                        rates.reps[r0].name
                    )
                }
                None => format!(
                    "no owner today; {} wins {:.0}% in {}",
                    rates.reps[r].name,
                    cell.win_rate * 100.0,
                    seg.segments[s].name
                ),
                _ => String::new(),
            };
            Assignment {
                account_id: acc.id.clone(),
                account_name: acc.name.clone(),
                segment: seg.segments[s].id.clone(),
                rep_id: rates.reps[r].id.clone(),
                current_rep_id: acc.owner_id.clone(),
                potential: pot[a].round(),
                expected: (pot[a] * cell.win_rate).round(),
                current_expected: current[a].map(|r0| (pot[a] * rates.cell(r0, s).win_rate).round()),
                reason,
                customer: customer[a],
                locked: locked[a],
            }
        })
        .collect();
    Ok(PlanReport {
        band: opts.band,
        max_moved: opts.max_moved,
        keep_region: opts.keep_region,
        customer_gain: opts.customer_gain,
        accounts: na,
        moved,
        moved_share: round4(moved as f64 / na as f64),
        newly_assigned,
        customers_moved,
        current: cur_totals,
        proposed: new_totals,
        gain: gain.round(),
        gain_low: gain_low.round(),
        gain_high: gain_high.round(),
        status: if relaxed { "relaxed" } else { "optimal" }.into(),
        classes: nc,
        variables: n_vars,
        assignments,
        rates,
    })
}

fn totals(
    rates: &RepSegmentRates,
    owner: &[Option<usize>],
    pot: &[f64],
    seg: &Segmentation,
    band: f64,
    means: &dyn Fn(usize) -> (f64, f64),
) -> PlanTotals {
    let nr = rates.reps.len();
    let mut count = vec![0usize; nr];
    let mut potsum = vec![0.0; nr];
    let mut exp = vec![0.0; nr];
    for (a, o) in owner.iter().enumerate() {
        if let Some(r) = *o {
            count[r] += 1;
            potsum[r] += pot[a];
            exp[r] += pot[a] * rates.cell(r, seg.labels[a]).win_rate;
        }
    }
    let (total, low, high) = interval(rates, owner, pot, seg, None);
    let balance: Vec<Balance> = (0..nr)
        .map(|r| {
            let (ma, mp) = means(r);
            let ar = count[r] as f64 / ma.max(1e-9);
            let pr = potsum[r] / mp.max(1e-9);
            Balance {
                rep_id: rates.reps[r].id.clone(),
                name: rates.reps[r].name.clone(),
                region: rates.reps[r].region.clone(),
                accounts: count[r],
                potential: potsum[r].round(),
                expected: exp[r].round(),
                accounts_ratio: round4(ar),
                potential_ratio: round4(pr),
                within_band: (ar - 1.0).abs() <= band + 1e-6 && (pr - 1.0).abs() <= band + 1e-6,
                outside_why: None,
            }
        })
        .collect();
    PlanTotals {
        expected_bookings: total.round(),
        low: low.round(),
        high: high.round(),
        reps_within_band: balance.iter().filter(|b| b.within_band).count(),
        reps: nr,
        balance,
    }
}

/// Expected bookings of a plan (or of the difference from `base`) with an
/// 80% interval over 500 draws of every cell's win rate from its posterior
/// (normal approximation on the log-odds scale; a fixed seed).
fn interval(
    rates: &RepSegmentRates,
    owner: &[Option<usize>],
    pot: &[f64],
    seg: &Segmentation,
    base: Option<&[Option<usize>]>,
) -> (f64, f64, f64) {
    let k = rates.segments.len();
    // Potential per (rep, segment) cell under the plan (minus the base).
    let mut weight = vec![0.0; rates.cells.len()];
    for (a, o) in owner.iter().enumerate() {
        if let Some(r) = *o {
            weight[r * k + seg.labels[a]] += pot[a];
        }
        if let Some(b) = base
            && let Some(r) = b[a]
        {
            weight[r * k + seg.labels[a]] -= pot[a];
        }
    }
    let point: f64 = weight
        .iter()
        .zip(&rates.cells)
        .map(|(w, c)| w * c.win_rate)
        .sum();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut draws: Vec<f64> = (0..500)
        .map(|_| {
            weight
                .iter()
                .zip(&rates.cells)
                .filter(|(w, _)| **w != 0.0)
                .map(|(w, c)| {
                    let sd = ((c.high - c.low) / (2.0 * Z80)).max(1e-6);
                    let (u1, u2) = (uniform().max(1e-12), uniform());
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    // On the log-odds scale, delta method.
                    let p = c.win_rate.clamp(1e-4, 1.0 - 1e-4);
                    let lsd = sd / (p * (1.0 - p));
                    w * sigmoid(logit(p) + lsd * z)
                })
                .sum()
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    (point, draws[50], draws[449])
}

fn gain_interval(
    rates: &RepSegmentRates,
    current: &[Option<usize>],
    owner: &[Option<usize>],
    pot: &[f64],
    seg: &Segmentation,
) -> (f64, f64, f64) {
    interval(rates, owner, pot, seg, Some(current))
}

/// A plan judged with the simulator's hidden truth: expected bookings of the
/// current and proposed owners when each account's win chance is the
/// simulator's for its latent segment and the rep ([`pipewise_sim::process::win_probability_at_strength`]
/// at the segment's offset, the rep's affinity there and each product's fit,
/// weighted by the segment's product needs, with the rep's closing skill),
/// times the account's estimated potential.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TruthCheck {
    pub current: f64,
    pub proposed: f64,
    /// proposed / current - 1.
    pub gain: f64,
    pub accounts: usize,
}

/// See [`TruthCheck`]. None when the truth lacks segments' offsets (an
/// older ground_truth.json).
pub fn check_with_truth(
    crm: &CrmData,
    report: &PlanReport,
    truth: &crate::truth::Truth,
) -> Option<TruthCheck> {
    if truth.segment_base.is_empty() {
        return None;
    }
    let pot: HashMap<&str, f64> = report
        .assignments
        .iter()
        .map(|a| (a.account_id.as_str(), a.potential))
        .collect();
    let mut cache: HashMap<(String, String), f64> = HashMap::new();
    let mut p_true = |rep: &str, segment: &str| -> f64 {
        if let Some(v) = cache.get(&(rep.to_string(), segment.to_string())) {
            return *v;
        }
        let base = truth.segment_base.get(segment).copied().unwrap_or(0.0);
        let aff = truth
            .rep_affinity
            .get(rep)
            .and_then(|m| m.get(segment))
            .copied()
            .unwrap_or(0.0);
        let closing = truth
            .rep_skills
            .get(rep)
            .and_then(|m| m.get("closing"))
            .copied()
            .unwrap_or(0.0);
        let need = truth.segment_need.get(segment);
        let p = match need {
            Some(need) if !need.is_empty() => {
                let total: f64 = need.values().sum();
                let mean = total / need.len() as f64;
                need.values()
                    .map(|&w| {
                        let fit = 0.3 * (w.max(0.05) / mean).ln();
                        w / total
                            * pipewise_sim::process::win_probability_at_strength(
                                base + aff + fit,
                                closing,
                            )
                    })
                    .sum()
            }
            _ => pipewise_sim::process::win_probability_at_strength(base + aff, closing),
        };
        cache.insert((rep.to_string(), segment.to_string()), p);
        p
    };
    let (mut cur, mut new, mut n) = (0.0, 0.0, 0);
    let _ = crm;
    for a in &report.assignments {
        let Some(seg) = truth.account_segment.get(&a.account_id) else {
            continue;
        };
        let p = pot[a.account_id.as_str()];
        if let Some(r0) = &a.current_rep_id {
            cur += p * p_true(r0, seg);
        }
        new += p * p_true(&a.rep_id, seg);
        n += 1;
    }
    Some(TruthCheck {
        current: cur.round(),
        proposed: new.round(),
        gain: round4(new / cur.max(1e-9) - 1.0),
        accounts: n,
    })
}
