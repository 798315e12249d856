//! The point-in-time feature engine.
//!
//! [`Data::new`] indexes what the store holds; [`features`] computes, for every
//! opportunity open at `as_of`, the features of the registry
//! ([`registry::OPPORTUNITY_FEATURES`]) from what was known at `as_of` only:
//! tracked fields through their history, activities, transcripts and closed
//! deals by their timestamps. Appending data dated after `as_of` never changes a
//! feature at `as_of` (tested in `tests/point_in_time.rs`).
//!
//! A tracked field (stage, forecast category, amount, close date) with no
//! history anywhere in the data is known only from when its current value was
//! observed: the deal's close for a closed deal, else the row's `state_at`
//! (at most the end of the data). Before then it is unknown (missing), never
//! the current value read into the past ([`Data::without_history`]).
//!
//! Known limits: account attributes (industry, size), the owner when it has
//! no history, and an opportunity's products, lead source and type have no
//! history in the data model, so their current values are used at every date.

pub mod conversation;
pub mod registry;

use std::collections::HashMap;

use pipewise_core::{Column, Table};
use pipewise_store::CrmData;
use pipewise_store::read::Instant;

pub use conversation::CallMetrics;
pub use registry::{FeatureDef, OPPORTUNITY_FEATURES};

pub const DAY: i64 = 86_400;
/// Open stages, in order.
pub const OPEN_STAGES: [&str; 5] = [
    "prospecting",
    "qualification",
    "discovery",
    "proposal",
    "negotiation",
];

pub fn stage_index(s: &str) -> Option<usize> {
    OPEN_STAGES.iter().position(|x| *x == s)
}
fn category_index(s: &str) -> Option<f64> {
    match s {
        "pipeline" => Some(0.0),
        "best_case" => Some(1.0),
        "commit" => Some(2.0),
        _ => None,
    }
}

/// The tracked fields whose current value is only known from when it was
/// observed if the data holds no history of them.
pub const TRACKED_FIELDS: [&str; 4] = ["stage", "forecast_category", "amount", "close_date"];

/// A tracked field: its changes in time order, and its value before the first.
#[derive(Debug, Clone, Default)]
pub struct Track {
    pub before: Option<String>,
    pub changes: Vec<(Instant, Option<String>)>,
}

impl Opp {
    /// Whether any activity or recorded call is linked to the deal.
    pub fn has_activity(&self) -> bool {
        !self.touches.is_empty() || !self.calls.is_empty()
    }
}

impl Track {
    /// The value as of `t`.
    pub fn at(&self, t: Instant) -> Option<&str> {
        let n = self.changes.partition_point(|c| c.0 <= t);
        if n == 0 {
            self.before.as_deref()
        } else {
            self.changes[n - 1].1.as_deref()
        }
    }
    /// Changes made up to `t`.
    pub fn known(&self, t: Instant) -> &[(Instant, Option<String>)] {
        &self.changes[..self.changes.partition_point(|c| c.0 <= t)]
    }
}

#[derive(Debug, Clone, Copy)]
struct Touch {
    t: Instant,
    /// 0 call, 1 email, 2 meeting, 3 other.
    kind: u8,
    /// Replied, connected, held or inbound.
    response: bool,
    contact: Option<u32>,
}

/// An opportunity, indexed for as-of reads.
#[derive(Debug, Clone)]
pub struct Opp {
    pub id: String,
    pub name: Option<String>,
    pub created: Instant,
    /// When it closed (the stage change to won/lost), if it has.
    pub closed: Option<Instant>,
    /// The eventual outcome when closed.
    pub won: Option<bool>,
    pub owner: Track,
    /// Unknown (`at` gives `None`) before its first change when the data has
    /// no stage history.
    pub stage: Track,
    pub forecast_category: Track,
    pub amount: Track,
    pub close_date: Track,
    pub account: Option<u32>,
    pub product: Option<String>,
    pub product_count: usize,
    pub lead_source: Option<String>,
    pub kind: Option<String>,
    touches: Vec<Touch>,
    /// (known from, metrics), sorted.
    calls: Vec<(Instant, CallMetrics)>,
}

/// Who a rep is, for roll-ups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepInfo {
    pub name: String,
    pub team: Option<String>,
    pub region: Option<String>,
}

/// A closed deal credited to a rep.
#[derive(Debug, Clone, Copy)]
struct Closed {
    t: Instant,
    won: bool,
    cycle_days: f64,
    rep: Option<u32>,
    industry: Option<u32>,
    product: Option<u32>,
    /// The deal type's code (new business, expansion, renewal ...; `NO_KIND`
    /// when not given).
    kind: u32,
    /// The first open stage known for the deal, and the furthest entered
    /// before closing (None: none known). A deal counts for the stages from
    /// the one it was created in (a renewal may start late) to the furthest.
    stage_min: Option<u8>,
    stage_max: Option<u8>,
}

/// The code of a deal without a deal type.
const NO_KIND: u32 = u32::MAX;

/// The CRM indexed for point-in-time reads.
pub struct Data {
    pub opps: Vec<Opp>,
    user_index: HashMap<String, usize>,
    user_names: Vec<String>,
    user_teams: Vec<Option<String>>,
    user_regions: Vec<Option<String>>,
    hire: Vec<Option<Instant>>,
    /// Per user, deals they owned when the deal closed, by close time.
    closed_by_rep: Vec<Vec<Closed>>,
    /// All closed deals by close time (org-wide win rate as of a date).
    closed_all: Vec<Closed>,
    accounts: Vec<(Option<String>, f64, f64)>,
    /// Per account, won deals' close times, sorted.
    account_wins: Vec<Vec<Instant>>,
    /// Per account, product-usage events as (time, running total of their
    /// quantities), sorted by time.
    account_usage: Vec<Vec<(Instant, f64)>>,
    account_industry: Vec<Option<u32>>,
    product_codes: HashMap<String, u32>,
    kind_codes: HashMap<String, u32>,
    senior_contact: Vec<bool>,
    /// The latest instant anything in the data is dated.
    pub end: Instant,
    pub start: Instant,
    /// Of [`TRACKED_FIELDS`], those with no history anywhere in the data:
    /// known only from when their current values were observed.
    pub without_history: Vec<&'static str>,
}

fn track(history: &[pipewise_store::read::History], field: &str, current: Option<String>) -> Track {
    let rows: Vec<_> = history.iter().filter(|h| h.field == field).collect();
    if rows.is_empty() {
        return Track {
            before: current,
            changes: Vec::new(),
        };
    }
    Track {
        before: rows[0].old_value.clone(),
        changes: rows
            .iter()
            .map(|h| (h.changed_at, h.value.clone()))
            .collect(),
    }
}

impl Data {
    pub fn new(crm: &CrmData) -> Data {
        let user_index: HashMap<String, usize> = crm
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        let account_index: HashMap<&str, u32> = crm
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.as_str(), i as u32))
            .collect();
        let contact_index: HashMap<&str, u32> = crm
            .contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i as u32))
            .collect();
        let senior_contact = crm
            .contacts
            .iter()
            .map(|c| matches!(c.seniority.as_deref(), Some("director" | "vp" | "c_level")))
            .collect();
        let mut with_history = [false; TRACKED_FIELDS.len()];
        for h in &crm.history {
            if let Some(k) = TRACKED_FIELDS.iter().position(|f| *f == h.field) {
                with_history[k] = true;
            }
        }
        let without_history: Vec<&'static str> = TRACKED_FIELDS
            .iter()
            .zip(with_history)
            .filter(|(_, h)| !h)
            .map(|(f, _)| *f)
            .collect();
        let untracked = |f: &str| without_history.contains(&f);
        let mut start = i64::MAX;
        let mut end = i64::MIN;
        let mut opps = Vec::with_capacity(crm.opportunities.len());
        let mut h = 0;
        for o in &crm.opportunities {
            while h < crm.history.len() && crm.history[h].opportunity_id < o.id {
                h += 1;
            }
            let from = h;
            while h < crm.history.len() && crm.history[h].opportunity_id == o.id {
                end = end.max(crm.history[h].changed_at);
                h += 1;
            }
            let hist = &crm.history[from..h];
            let mut stage = track(hist, "stage", Some(o.stage.clone()));
            let created = o
                .created_at
                .or_else(|| hist.iter().map(|h| h.changed_at).min())
                .unwrap_or(i64::MIN);
            let won = match o.stage.as_str() {
                "closed_won" => Some(true),
                "closed_lost" => Some(false),
                _ => None,
            };
            let closed = won.and({
                stage
                    .changes
                    .iter()
                    .find(|c| matches!(c.1.as_deref(), Some("closed_won" | "closed_lost")))
                    .map(|c| c.0)
                    .or(o.closed_at)
            });
            // A field without history: its current value is known from the
            // close (a closed deal's final values), else from when the row
            // was observed (clamped to the end of the data below).
            let known_from = closed.or(o.state_at).unwrap_or(i64::MAX);
            let observed = |field: &str, t: Track| {
                if untracked(field) {
                    Track {
                        before: None,
                        changes: vec![(known_from, t.before)],
                    }
                } else {
                    t
                }
            };
            stage = observed("stage", stage);
            if created > i64::MIN {
                start = start.min(created);
            }
            opps.push(Opp {
                id: o.id.clone(),
                name: o.name.clone(),
                created,
                closed,
                won,
                owner: track(hist, "owner_id", Some(o.owner_id.clone())),
                stage,
                forecast_category: observed(
                    "forecast_category",
                    track(hist, "forecast_category", o.forecast_category.clone()),
                ),
                amount: observed(
                    "amount",
                    track(hist, "amount", o.amount.map(|a| a.to_string())),
                ),
                close_date: observed(
                    "close_date",
                    track(hist, "close_date", o.close_date.map(format_date)),
                ),
                account: o
                    .account_id
                    .as_deref()
                    .and_then(|a| account_index.get(a).copied()),
                product: o.products.first().cloned(),
                product_count: o.products.len(),
                lead_source: o.lead_source.clone(),
                kind: o.kind.clone(),
                touches: Vec::new(),
                calls: Vec::new(),
            });
        }
        let opp_index: HashMap<&str, usize> = crm
            .opportunities
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.as_str(), i))
            .collect();
        for a in &crm.activities {
            end = end.max(a.occurred_at);
            let Some(&i) = a.opportunity_id.as_deref().and_then(|o| opp_index.get(o)) else {
                continue;
            };
            let kind = match a.kind.as_str() {
                "call" => 0,
                "email" => 1,
                "meeting" => 2,
                _ => 3,
            };
            let inbound = a.direction.as_deref() == Some("inbound");
            let response = inbound
                || pipewise_core::is_reply(a.outcome.as_deref())
                || matches!(a.outcome.as_deref(), Some("held" | "completed"));
            opps[i].touches.push(Touch {
                t: a.occurred_at,
                kind,
                response,
                contact: a
                    .contact_id
                    .as_deref()
                    .and_then(|c| contact_index.get(c).copied()),
            });
        }
        for c in &crm.conversations {
            let Some(&i) = c.opportunity_id.as_deref().and_then(|o| opp_index.get(o)) else {
                continue;
            };
            let Some(started) = c.started_at else {
                continue;
            };
            let len_s = c
                .duration_s
                .unwrap_or_else(|| c.turns.iter().map(|t| t.end_ms).max().unwrap_or(0) / 1000);
            if let Some(m) = conversation::analyse(&c.turns) {
                // Known once the call is over.
                opps[i].calls.push((started + len_s.max(0), m));
            }
        }
        for o in &mut opps {
            o.touches.sort_by_key(|t| t.t);
            o.calls.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut industry_codes: HashMap<String, u32> = HashMap::new();
        let account_industry: Vec<Option<u32>> = crm
            .accounts
            .iter()
            .map(|a| {
                a.industry.as_ref().map(|i| {
                    let n = industry_codes.len() as u32;
                    *industry_codes.entry(i.clone()).or_insert(n)
                })
            })
            .collect();
        let mut product_codes: HashMap<String, u32> = HashMap::new();
        for o in &opps {
            if let Some(p) = &o.product {
                let n = product_codes.len() as u32;
                product_codes.entry(p.clone()).or_insert(n);
            }
        }
        let mut kind_codes: HashMap<String, u32> = HashMap::new();
        for o in &opps {
            if let Some(k) = &o.kind {
                let n = kind_codes.len() as u32;
                kind_codes.entry(k.clone()).or_insert(n);
            }
        }
        let mut closed_by_rep = vec![Vec::new(); crm.users.len()];
        let mut closed_all = Vec::new();
        let mut account_wins = vec![Vec::new(); crm.accounts.len()];
        for o in &opps {
            let (Some(t), Some(won)) = (o.closed, o.won) else {
                continue;
            };
            end = end.max(t);
            let rep = o.owner.at(t).and_then(|id| user_index.get(id)).copied();
            // The open stages the deal was in, in order.
            let stages: Vec<u8> = std::iter::once(o.stage.before.as_deref())
                .chain(o.stage.changes.iter().map(|c| c.1.as_deref()))
                .flatten()
                .filter_map(stage_index)
                .map(|k| k as u8)
                .collect();
            let c = Closed {
                t,
                won,
                cycle_days: (t - o.created) as f64 / DAY as f64,
                rep: rep.map(|u| u as u32),
                industry: o.account.and_then(|a| account_industry[a as usize]),
                product: o
                    .product
                    .as_deref()
                    .and_then(|p| product_codes.get(p).copied()),
                kind: o
                    .kind
                    .as_deref()
                    .and_then(|k| kind_codes.get(k).copied())
                    .unwrap_or(NO_KIND),
                stage_min: stages.first().copied(),
                stage_max: stages.iter().max().copied(),
            };
            closed_all.push(c);
            if let Some(u) = rep {
                closed_by_rep[u].push(c);
            }
            if let (true, Some(a)) = (won, o.account) {
                account_wins[a as usize].push(t);
            }
        }
        for v in &mut closed_by_rep {
            v.sort_by_key(|c| c.t);
        }
        closed_all.sort_by_key(|c| c.t);
        for v in &mut account_wins {
            v.sort_unstable();
        }
        let mut account_usage: Vec<Vec<(Instant, f64)>> = vec![Vec::new(); crm.accounts.len()];
        for u in &crm.usage {
            if let Some(&a) = account_index.get(u.account_id.as_str()) {
                account_usage[a as usize].push((u.occurred_at, u.quantity));
            }
        }
        for v in &mut account_usage {
            v.sort_by_key(|e| e.0);
            let mut total = 0.0;
            for e in v.iter_mut() {
                total += e.1;
                e.1 = total;
            }
        }
        // An open deal's values observed after the data's end (the import's
        // as-of date) are the ones known at its end: the latest forecast and
        // scores read them.
        let last = if end == i64::MIN { 0 } else { end };
        for o in opps.iter_mut().filter(|o| o.closed.is_none()) {
            for field in &without_history {
                let t = match *field {
                    "stage" => &mut o.stage,
                    "forecast_category" => &mut o.forecast_category,
                    "amount" => &mut o.amount,
                    _ => &mut o.close_date,
                };
                if let Some(c) = t.changes.first_mut() {
                    c.0 = c.0.min(last);
                }
            }
        }
        Data {
            opps,
            hire: crm.users.iter().map(|u| u.hire_date).collect(),
            user_names: crm.users.iter().map(|u| u.name.clone()).collect(),
            // Teams by name where the data names them (ids otherwise).
            user_teams: crm
                .users
                .iter()
                .map(|u| {
                    u.team_id.as_ref().map(|t| {
                        crm.teams
                            .iter()
                            .find(|x| &x.id == t && !x.name.trim().is_empty())
                            .map_or_else(|| t.clone(), |x| x.name.clone())
                    })
                })
                .collect(),
            user_regions: crm.users.iter().map(|u| u.region.clone()).collect(),
            user_index,
            closed_by_rep,
            closed_all,
            accounts: crm
                .accounts
                .iter()
                .map(|a| {
                    (
                        a.industry.clone(),
                        a.employees.unwrap_or(f64::NAN),
                        a.annual_revenue.unwrap_or(f64::NAN),
                    )
                })
                .collect(),
            account_wins,
            account_usage,
            account_industry,
            product_codes,
            kind_codes,
            senior_contact,
            end: if end == i64::MIN { 0 } else { end },
            start: if start == i64::MAX { 0 } else { start },
            without_history,
        }
    }

    /// Whether the opportunity exists and is open at `t` (a stage not known
    /// then, for want of history, counts as open until the deal closed).
    pub fn is_open(&self, o: &Opp, t: Instant) -> bool {
        let stage_open = match o.stage.at(t) {
            Some(s) => stage_index(s).is_some(),
            None => self.without_history.contains(&"stage") && o.closed.is_none_or(|c| c > t),
        };
        o.created <= t && stage_open && o.closed.is_none_or(|c| c > t)
    }

    /// The opportunities open at `t`, in id order.
    pub fn open_at(&self, t: Instant) -> Vec<usize> {
        (0..self.opps.len())
            .filter(|&i| self.is_open(&self.opps[i], t))
            .collect()
    }

    /// The amount as of `t`.
    pub fn amount_at(&self, o: &Opp, t: Instant) -> Option<f64> {
        o.amount.at(t).and_then(|a| a.parse().ok())
    }

    /// The owner's name (or id) as of `t`.
    pub fn owner_name(&self, o: &Opp, t: Instant) -> String {
        let id = o.owner.at(t).unwrap_or("");
        self.user_index
            .get(id)
            .map_or_else(|| id.to_string(), |&u| self.user_names[u].clone())
    }

    /// A user's name, team (its name where the data has one, else its id)
    /// and region (the id itself as the name of an owner missing from the
    /// users).
    pub fn rep_info(&self, id: &str) -> RepInfo {
        match self.user_index.get(id) {
            Some(&u) => RepInfo {
                name: self.user_names[u].clone(),
                team: self.user_teams[u].clone(),
                region: self.user_regions[u].clone(),
            },
            None => RepInfo {
                name: id.to_string(),
                team: None,
                region: None,
            },
        }
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.opps.binary_search_by(|o| o.id.as_str().cmp(id)).ok()
    }

    /// The expected close date as of `t` (midnight UTC of the day).
    pub fn close_date_at(&self, o: &Opp, t: Instant) -> Option<Instant> {
        o.close_date.at(t).and_then(pipewise_store::read::instant)
    }

    /// Rep statistics over deals closed in (t - 365 d, t].
    fn rep_stats(&self, rep: usize, t: Instant, org_rate: f64) -> (f64, f64, f64) {
        let v = &self.closed_by_rep[rep];
        let hi = v.partition_point(|c| c.t <= t);
        let lo = v.partition_point(|c| c.t <= t - 365 * DAY);
        let recent = &v[lo..hi];
        if recent.is_empty() {
            return (f64::NAN, 0.0, f64::NAN);
        }
        let wins = recent.iter().filter(|c| c.won).count() as f64;
        let n = recent.len() as f64;
        // Shrink toward the org's rate with the weight of 5 deals.
        let rate = (wins + 5.0 * org_rate) / (n + 5.0);
        let mut cycles: Vec<f64> = recent
            .iter()
            .filter(|c| c.won)
            .map(|c| c.cycle_days)
            .collect();
        let cycle = median(&mut cycles);
        (rate, n, cycle)
    }

    fn org_rate(&self, t: Instant) -> f64 {
        let hi = self.closed_all.partition_point(|c| c.t <= t);
        let lo = self.closed_all.partition_point(|c| c.t <= t - 365 * DAY);
        let r = &self.closed_all[lo..hi];
        if r.is_empty() {
            0.25
        } else {
            r.iter().filter(|c| c.won).count() as f64 / r.len() as f64
        }
    }
}

/// Win counts over deals closed in the 365 days up to a date, by group.
struct Trailing {
    org: f64,
    /// The org's median days from creation to win.
    org_cycle: f64,
    /// By (deal type, stage).
    stage: HashMap<(u32, u8), (f64, f64)>,
    industry: HashMap<u32, (f64, f64)>,
    product_industry: HashMap<(u32, u32), (f64, f64)>,
    rep_total: HashMap<u32, (f64, f64)>,
    /// By (rep, deal type, stage).
    rep_stage: HashMap<(u32, u32, u8), (f64, f64)>,
    rep_industry: HashMap<(u32, u32), (f64, f64)>,
}

impl Trailing {
    fn new(data: &Data, t: Instant) -> Trailing {
        let hi = data.closed_all.partition_point(|c| c.t <= t);
        let lo = data.closed_all.partition_point(|c| c.t <= t - 365 * DAY);
        let mut tr = Trailing {
            org: data.org_rate(t),
            org_cycle: median(
                &mut data.closed_all[lo..hi]
                    .iter()
                    .filter(|c| c.won)
                    .map(|c| c.cycle_days)
                    .collect::<Vec<_>>(),
            ),
            stage: HashMap::new(),
            industry: HashMap::new(),
            product_industry: HashMap::new(),
            rep_total: HashMap::new(),
            rep_stage: HashMap::new(),
            rep_industry: HashMap::new(),
        };
        fn add<K: std::hash::Hash + Eq>(m: &mut HashMap<K, (f64, f64)>, k: K, won: bool) {
            let e = m.entry(k).or_default();
            e.0 += f64::from(u8::from(won));
            e.1 += 1.0;
        }
        for c in &data.closed_all[lo..hi] {
            if let (Some(a), Some(b)) = (c.stage_min, c.stage_max) {
                for s in a.min(b)..=b {
                    add(&mut tr.stage, (c.kind, s), c.won);
                    if let Some(r) = c.rep {
                        add(&mut tr.rep_stage, (r, c.kind, s), c.won);
                    }
                }
            }
            if let Some(i) = c.industry {
                add(&mut tr.industry, i, c.won);
                if let Some(p) = c.product {
                    add(&mut tr.product_industry, (p, i), c.won);
                }
                if let Some(r) = c.rep {
                    add(&mut tr.rep_industry, (r, i), c.won);
                }
            }
            if let Some(r) = c.rep {
                add(&mut tr.rep_total, r, c.won);
            }
        }
        tr
    }

    /// Wins / deals in a group, shrunk toward `prior` with the weight of `m` deals.
    fn rate<K: std::hash::Hash + Eq>(
        &self,
        m: &HashMap<K, (f64, f64)>,
        k: K,
        prior: f64,
        w: f64,
    ) -> f64 {
        let (wins, n) = m.get(&k).copied().unwrap_or_default();
        (wins + w * prior) / (n + w)
    }
}

/// `YYYY-MM-DD` of an instant (UTC).
pub use pipewise_core::value::format_day as format_date;

/// Days of the 365 before `t` that are recorded (after `since`, the data's
/// start or a hire), at least 30: the denominator of per-time rates.
fn recorded_days(t: Instant, since: Instant) -> f64 {
    ((t - since) as f64 / DAY as f64).clamp(30.0, 365.0)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn num(s: Option<&str>) -> f64 {
    s.and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN)
}

/// The features of the given opportunities as of `t`: one row per opportunity,
/// one column per registry feature (in registry order).
pub fn features_for(data: &Data, rows: &[usize], t: Instant) -> Table {
    let defs = OPPORTUNITY_FEATURES;
    let n = rows.len();
    let mut numeric: Vec<Vec<f64>> = vec![Vec::with_capacity(n); defs.len()];
    let mut categorical: Vec<Vec<Option<String>>> = vec![Vec::new(); defs.len()];
    let trail = Trailing::new(data, t);
    let org_rate = trail.org;
    // Reps' trailing win rates as of t, for the peer percentile; open books.
    let mut rep_rates: Vec<f64> = Vec::new();
    let mut rep_cache: HashMap<usize, (f64, f64, f64)> = HashMap::new();
    let mut volumes: Vec<f64> = Vec::new();
    for (u, closed) in data.closed_by_rep.iter().enumerate() {
        if closed.is_empty() {
            continue;
        }
        let mut s = data.rep_stats(u, t, org_rate);
        if s.1 > 0.0 {
            rep_rates.push(s.0);
            // Deals closed per recorded day (since the data start or the hire).
            let since = data.hire[u].map_or(data.start, |h| h.max(data.start));
            s.1 /= recorded_days(t, since);
            volumes.push(s.1);
        }
        rep_cache.insert(u, s);
    }
    rep_rates.sort_by(f64::total_cmp);
    let mean_volume = volumes.iter().sum::<f64>() / volumes.len().max(1) as f64;
    let mut open_books: HashMap<&str, f64> = HashMap::new();
    for o in &data.opps {
        if data.is_open(o, t) {
            if let Some(owner) = o.owner.at(t) {
                *open_books.entry(owner).or_default() += 1.0;
            }
        }
    }
    let mean_book = open_books.values().sum::<f64>() / open_books.len().max(1) as f64;
    let days = |x: i64| x as f64 / DAY as f64;
    for &i in rows {
        let o = &data.opps[i];
        let mut v: Vec<f64> = Vec::with_capacity(defs.len());
        let mut cats: Vec<(usize, Option<String>)> = Vec::new();
        // Activity.
        let known = &o.touches[..o.touches.partition_point(|x| x.t <= t)];
        let since = |d: i64| {
            let from = known.partition_point(|x| x.t <= t - d * DAY);
            &known[from..]
        };
        let w7 = since(7);
        let w30 = since(30);
        v.push(w7.iter().filter(|x| x.kind <= 2).count() as f64);
        v.push(w30.iter().filter(|x| x.kind <= 2).count() as f64);
        v.push(w30.iter().filter(|x| x.kind == 0).count() as f64);
        v.push(w30.iter().filter(|x| x.kind == 1).count() as f64);
        v.push(w30.iter().filter(|x| x.kind == 2).count() as f64);
        v.push(w30.iter().filter(|x| x.response).count() as f64);
        // Emails and calls either way; a response is a reply, a connected
        // call or anything the customer initiated.
        let rate = |kind: u8| {
            let all: Vec<&Touch> = known.iter().filter(|x| x.kind == kind).collect();
            if all.is_empty() {
                f64::NAN
            } else {
                all.iter().filter(|x| x.response).count() as f64 / all.len() as f64
            }
        };
        v.push(rate(1));
        v.push(rate(0));
        v.push(known.last().map_or(f64::NAN, |x| days(t - x.t)));
        v.push(
            known
                .iter()
                .rev()
                .find(|x| x.response)
                .map_or(f64::NAN, |x| days(t - x.t)),
        );
        let mut contacts: Vec<u32> = known.iter().filter_map(|x| x.contact).collect();
        contacts.sort_unstable();
        contacts.dedup();
        v.push(contacts.len() as f64);
        v.push(
            contacts
                .iter()
                .filter(|&&c| data.senior_contact[c as usize])
                .count() as f64,
        );
        let count = |kind: u8, resp: bool| {
            known
                .iter()
                .filter(|x| x.kind == kind && (!resp || x.response))
                .count() as f64
        };
        let activity_extra = [
            count(1, false),
            count(1, true),
            count(0, false),
            count(0, true),
        ];
        let stage_changes = o.stage.known(t);
        let stage_since = stage_changes
            .last()
            .map_or(o.created, |c| c.0)
            .max(o.created);
        // Without stage history, when the stage was entered is unknown.
        let stage_untracked = data.without_history.contains(&"stage");
        v.push(if stage_untracked {
            f64::NAN
        } else {
            days(t - stage_since)
        });
        let stage_now = o.stage.at(t).and_then(stage_index);
        let stage_first = stage_changes
            .first()
            .and_then(|c| c.1.as_deref())
            .or(o.stage.before.as_deref())
            .and_then(stage_index);
        let age = days(t - o.created).max(0.0);
        v.push(match (stage_now, stage_first) {
            (Some(a), Some(b)) if !stage_untracked => {
                (a as f64 - b as f64).max(0.0) / (age / 30.0).max(0.25)
            }
            _ => f64::NAN,
        });
        v.extend(activity_extra);
        // Communication.
        let calls = &o.calls[..o.calls.partition_point(|c| c.0 <= t)];
        v.push(calls.len() as f64);
        if calls.is_empty() {
            v.extend([f64::NAN; 9]);
        } else {
            let k = calls.len() as f64;
            let mean = |f: fn(&CallMetrics) -> f64| calls.iter().map(|c| f(&c.1)).sum::<f64>() / k;
            v.push(mean(|m| m.talk_ratio));
            v.push(mean(|m| m.question_rate));
            v.push(
                calls
                    .iter()
                    .map(|c| c.1.longest_monologue_s)
                    .fold(0.0, f64::max),
            );
            v.push(calls.iter().map(|c| f64::from(c.1.objections)).sum());
            v.push(
                calls
                    .iter()
                    .map(|c| f64::from(c.1.objections - c.1.handled))
                    .sum(),
            );
            v.push(calls.iter().filter(|c| c.1.next_steps).count() as f64);
            v.push(f64::from(u8::from(
                calls.last().is_some_and(|c| c.1.next_steps),
            )));
            v.push(mean(|m| m.sentiment));
            v.push(mean(|m| m.filler_rate));
        }
        // Opportunity.
        v.push(stage_now.map_or(f64::NAN, |s| s as f64));
        v.push(
            o.forecast_category
                .at(t)
                .and_then(category_index)
                .unwrap_or(f64::NAN),
        );
        let amount = data.amount_at(o, t).unwrap_or(f64::NAN);
        v.push(amount);
        let amounts = o.amount.known(t);
        let first_amount = amounts
            .first()
            .map(|a| num(a.1.as_deref()))
            .unwrap_or(amount);
        // Without amount or close-date history, their changes are unknown.
        let amount_untracked = data.without_history.contains(&"amount");
        v.push(if first_amount > 0.0 && !amount_untracked {
            amount / first_amount - 1.0
        } else {
            f64::NAN
        });
        v.push(if amount_untracked {
            f64::NAN
        } else {
            amounts.len().saturating_sub(1) as f64
        });
        let closes = o.close_date.known(t);
        let pushes = closes
            .windows(2)
            .filter(|w| {
                let (a, b) = (w[0].1.as_deref(), w[1].1.as_deref());
                matches!((a, b), (Some(a), Some(b)) if b > a)
            })
            .count();
        v.push(if data.without_history.contains(&"close_date") {
            f64::NAN
        } else {
            pushes as f64
        });
        v.push(
            data.close_date_at(o, t)
                .map_or(f64::NAN, |d| days(d + DAY - t)),
        );
        v.push(age);
        v.push(o.product_count as f64);
        cats.push((v.len(), o.product.clone()));
        v.push(f64::NAN);
        let acc = o.account.map(|a| &data.accounts[a as usize]);
        cats.push((v.len(), acc.and_then(|a| a.0.clone())));
        v.push(f64::NAN);
        v.push(acc.map_or(f64::NAN, |a| a.1));
        v.push(acc.map_or(f64::NAN, |a| a.2));
        cats.push((v.len(), o.lead_source.clone()));
        v.push(f64::NAN);
        cats.push((v.len(), o.kind.clone()));
        v.push(f64::NAN);
        // Trailing figures are rates per recorded time and rates relative to
        // the org's at the same date: early in the data, the deals closed so
        // far are the quick ones (mostly losses) and the counts are young, so
        // absolute figures would drift as the history fills up.
        v.push(o.account.map_or(0.0, |a| {
            let w = &data.account_wins[a as usize];
            let n = w.partition_point(|&x| x <= t) - w.partition_point(|&x| x <= t - 365 * DAY);
            n as f64 * 365.0 / recorded_days(t, data.start)
        }));
        // Product usage: known only for customers that use the product.
        let usage = o
            .account
            .map(|a| &data.account_usage[a as usize])
            .filter(|u| u.first().is_some_and(|e| e.0 <= t));
        let used = |u: &[(Instant, f64)], from: Instant, to: Instant| {
            let total = |at: Instant| {
                let i = u.partition_point(|e| e.0 <= at);
                if i == 0 { 0.0 } else { u[i - 1].1 }
            };
            total(to) - total(from)
        };
        v.push(usage.map_or(f64::NAN, |u| {
            (used(u, t - 60 * DAY, t) + 1.0) / (used(u, t - 120 * DAY, t - 60 * DAY) + 1.0) - 1.0
        }));
        v.push(match (usage, acc.map(|a| a.1)) {
            (Some(u), Some(e)) if e > 0.0 => used(u, t - 60 * DAY, t) / e,
            _ => f64::NAN,
        });
        let industry = o.account.and_then(|a| data.account_industry[a as usize]);
        let product = o
            .product
            .as_deref()
            .and_then(|p| data.product_codes.get(p).copied());
        let ind_rate = industry.map(|i| trail.rate(&trail.industry, i, trail.org, 10.0));
        v.push(ind_rate.map_or(f64::NAN, |r| r - trail.org));
        v.push(match (industry, product, ind_rate) {
            (Some(i), Some(p), Some(r)) => trail.rate(&trail.product_industry, (p, i), r, 10.0) - r,
            _ => f64::NAN,
        });
        // Rep.
        let owner = o.owner.at(t);
        let u = owner.and_then(|id| data.user_index.get(id).copied());
        let hire = u.and_then(|u| data.hire[u]);
        v.push(hire.map_or(f64::NAN, |h| days(t - h)));
        let (rate, closed, cycle) =
            u.and_then(|u| rep_cache.get(&u).copied())
                .unwrap_or((f64::NAN, 0.0, f64::NAN));
        v.push(rate - org_rate);
        v.push(if mean_volume > 0.0 {
            closed / mean_volume
        } else {
            f64::NAN
        });
        v.push(cycle / trail.org_cycle);
        v.push(if rate.is_finite() && !rep_rates.is_empty() {
            rep_rates.partition_point(|&r| r < rate) as f64 / rep_rates.len() as f64
        } else {
            f64::NAN
        });
        v.push(
            owner
                .and_then(|w| open_books.get(w).copied())
                .unwrap_or(0.0)
                / mean_book.max(1.0),
        );
        let kind = o
            .kind
            .as_deref()
            .and_then(|k| data.kind_codes.get(k).copied())
            .unwrap_or(NO_KIND);
        let org_stage =
            stage_now.map(|k| trail.rate(&trail.stage, (kind, k as u8), trail.org, 10.0));
        let rep_stage = match (u, stage_now, org_stage) {
            (Some(u), Some(k), Some(o)) if trail.rep_total.contains_key(&(u as u32)) => {
                Some(trail.rate(&trail.rep_stage, (u as u32, kind, k as u8), o, 5.0))
            }
            _ => None,
        };
        v.push(match (rep_stage, org_stage) {
            (Some(r), Some(o)) => r - o,
            _ => f64::NAN,
        });
        v.push(match (u, industry) {
            (Some(u), Some(i)) if trail.rep_total.contains_key(&(u as u32)) => {
                let rep = trail.rate(&trail.rep_total, u as u32, trail.org, 5.0);
                trail.rate(&trail.rep_industry, (u as u32, i), rep, 5.0) - rep
            }
            _ => f64::NAN,
        });
        debug_assert_eq!(v.len(), defs.len());
        for (j, x) in v.into_iter().enumerate() {
            numeric[j].push(x);
        }
        for (j, c) in cats {
            categorical[j].push(c);
        }
    }
    let mut table = Table::default();
    for (j, d) in defs.iter().enumerate() {
        let col = if d.is_categorical() {
            Column::Categorical(std::mem::take(&mut categorical[j]))
        } else {
            Column::Numeric(std::mem::take(&mut numeric[j]))
        };
        table.push(d.name, col);
    }
    table
}

/// The features of every opportunity open at `as_of`, and their ids.
pub fn features(data: &Data, as_of: Instant) -> (Vec<String>, Table) {
    let rows = data.open_at(as_of);
    let ids = rows.iter().map(|&i| data.opps[i].id.clone()).collect();
    (ids, features_for(data, &rows, as_of))
}

/// Mondays at 00:00 UTC from the first on or after `from` up to `to`.
pub fn mondays(from: Instant, to: Instant) -> Vec<Instant> {
    // 1970-01-05 was a Monday.
    let monday0 = 4 * DAY;
    let first = from.div_euclid(DAY) * DAY;
    let offset = (first - monday0).rem_euclid(7 * DAY);
    let mut t = if offset == 0 {
        first
    } else {
        first + 7 * DAY - offset
    };
    let mut out = Vec::new();
    while t <= to {
        out.push(t);
        t += 7 * DAY;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_mondays() {
        assert_eq!(format_date(0), "1970-01-01");
        let t = pipewise_store::read::instant("2024-02-29T13:00:00Z").unwrap();
        assert_eq!(format_date(t), "2024-02-29");
        let m = mondays(
            pipewise_store::read::instant("2024-01-02").unwrap(),
            pipewise_store::read::instant("2024-01-31").unwrap(),
        );
        let days: Vec<String> = m.iter().map(|&t| format_date(t)).collect();
        assert_eq!(
            days,
            ["2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]
        );
    }

    #[test]
    fn track_reads_as_of() {
        let tr = Track {
            before: Some("a".into()),
            changes: vec![(10, Some("b".into())), (20, Some("c".into()))],
        };
        assert_eq!(tr.at(5), Some("a"));
        assert_eq!(tr.at(10), Some("b"));
        assert_eq!(tr.at(25), Some("c"));
        assert_eq!(tr.known(15).len(), 1);
    }

    #[test]
    fn registry_names_are_unique_and_described() {
        let mut names: Vec<&str> = OPPORTUNITY_FEATURES.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPPORTUNITY_FEATURES.len());
        assert!(
            OPPORTUNITY_FEATURES
                .iter()
                .all(|d| d.description.ends_with('.') && d.phrase.contains("{v}"))
        );
    }
}
