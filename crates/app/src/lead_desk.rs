//! Live lead work over one database, as the server and the CLI run it:
//! routing one lead at a time as it arrives (and the waiting ones as a
//! batch), each rep's follow-up queue with the tasks they marked, speed to
//! lead within a caller's scope, and first-reply drafts.

use std::collections::HashMap;

use pipewise_engines::availability::Roster;
use pipewise_engines::lead_policy::{
    CadenceDef, ConversionModel, DEFAULT_CADENCE, Router, RouterOptions, SendTimeModel,
};
use pipewise_features::format_date;
use pipewise_sim::policy::{LeadView, RepView, RoutingPolicy as _};
use pipewise_store::LeadTaskMark;
use pipewise_store::read::{CrmData, Lead, User};

use crate::InputError;
use crate::leads::{RouteCandidate, RoutedLead};

const DAY: i64 = 86_400;
/// Leads per linear program of a batch (`Router::assign_batch`).
pub const BATCH_CHUNK: usize = 50_000;
/// A lead waits for its first response in its owner's queue this long at
/// most (days), as `leads sla` lists them.
pub const WAITING_DAYS: i64 = 14;
/// The fairness counts start from the leads of this many past days.
pub const FAIRNESS_WINDOW_DAYS: i64 = 30;

fn instant(t: i64) -> String {
    pipewise_core::value::format_instant(chrono::DateTime::from_timestamp(t, 0).unwrap_or_default())
}

/// Whether `l` waits for a first response at `as_of`: not answered by
/// then, not closed, arrived at most [`WAITING_DAYS`] before.
pub fn waiting(l: &Lead, as_of: i64) -> bool {
    l.first_response_at.is_none_or(|r| r > as_of)
        && l.converted_at.is_none()
        && l.disqualified_at.is_none()
        && l.created_at <= as_of
        && as_of - l.created_at <= WAITING_DAYS * DAY
}

/// A user by id, else by (case-insensitive) name.
pub fn find_user<'c>(crm: &'c CrmData, rep: &str) -> Option<&'c User> {
    crm.users
        .iter()
        .find(|u| u.id == rep)
        .or_else(|| crm.users.iter().find(|u| u.name.eq_ignore_ascii_case(rep)))
}

/// A lead as the router reads it (a stored lead or one arriving).
#[derive(Debug, Clone, Copy)]
pub struct LeadToRoute<'a> {
    pub id: &'a str,
    /// Epoch seconds.
    pub created_at: i64,
    pub source: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub title: Option<&'a str>,
    pub inquiry: Option<&'a str>,
    pub owner_id: Option<&'a str>,
}

impl<'a> From<&'a Lead> for LeadToRoute<'a> {
    fn from(l: &'a Lead) -> Self {
        LeadToRoute {
            id: &l.id,
            created_at: l.created_at,
            source: l.source.as_deref(),
            account_id: l.account_id.as_deref(),
            title: l.title.as_deref(),
            inquiry: l.inquiry.as_deref(),
            owner_id: l.owner_id.as_deref(),
        }
    }
}

/// pipewise's router over an org's records: the (lead, rep) conversion
/// model fitted on the leads before `as_of`, each rep's queue of waiting
/// leads, and fairness counts started from the leads of the last
/// [`FAIRNESS_WINDOW_DAYS`] days. Routing a lead updates both, so leads
/// routed one after another (as they arrive, or a batch in order of
/// arrival) see each other.
pub struct LiveRouter {
    router: Router,
    /// What the conversion model learned from, in words.
    pub summary: String,
    unanswered: HashMap<String, u32>,
    pub as_of: i64,
    /// Each rep's working hours, time zone and absences.
    roster: Roster,
}

impl LiveRouter {
    /// Fits the conversion model on `crm` as of `as_of` (epoch seconds) and
    /// reads the queues and recent assignments. Errors: too few leads to
    /// learn from (at least 200 with 20 converted).
    pub fn new(crm: &CrmData, as_of: i64) -> anyhow::Result<LiveRouter> {
        let model = ConversionModel::fit(crm, as_of + 1)?;
        let summary = format!(
            "learned from {} leads ({} converted) that arrived 35-400 days before {}",
            model.leads,
            model.converted,
            format_date(as_of)
        );
        let mut router = Router::new(model, RouterOptions::default());
        let mut unanswered: HashMap<String, u32> = HashMap::new();
        let accounts = Accounts::new(crm);
        for l in &crm.leads {
            let Some(o) = l.owner_id.as_deref() else {
                continue;
            };
            if waiting(l, as_of) {
                *unanswered.entry(o.to_string()).or_default() += 1;
            }
            if l.created_at <= as_of && as_of - l.created_at <= FAIRNESS_WINDOW_DAYS * DAY {
                router.record(o, &accounts.view(&l.into(), ""));
            }
        }
        Ok(LiveRouter {
            router,
            summary,
            unanswered,
            as_of,
            roster: org_roster(crm),
        })
    }

    /// `u` as a routing candidate at instant `t`: queue, time to their next
    /// working minute, absence and weekly hours.
    fn rep_view<'u>(&self, u: &'u User, t: i64) -> RepView<'u> {
        let a = self.roster.of_user(&u.id);
        RepView {
            id: &u.id,
            team_id: u.team_id.as_deref().unwrap_or(""),
            region: u.region.as_deref().unwrap_or(""),
            unanswered: self.unanswered(&u.id),
            at_work_in: a.next_at_work(t).map_or(i64::MAX, |w| w - t),
            away_until: a.away_at(t).map(|p| p.1),
            weekly_hours: a.weekly_hours(),
        }
    }

    /// Each rep's leads waiting for a first response, as the router counts
    /// them now.
    pub fn unanswered(&self, rep_id: &str) -> u32 {
        self.unanswered.get(rep_id).copied().unwrap_or(0)
    }

    /// Routes `lead` among the reps of its current owner's region (every
    /// rep hired by its arrival when it has no owner or the owner has no
    /// region). A lead from an existing account (an open or won deal
    /// created before the lead) stays with that deal's owner, the account
    /// owner. The lead then counts in the chosen rep's queue (out of its
    /// previous owner's) and fairness counts. `None` when no rep could take
    /// it.
    pub fn route(&mut self, crm: &CrmData, lead: LeadToRoute) -> Option<RoutedLead> {
        self.route_within(crm, lead, None)
    }

    /// [`LiveRouter::route`] among the reps of `only` (a caller's scope;
    /// `None`: every rep). An account owner outside `only` is not named:
    /// the reason says the account has an owner elsewhere.
    pub fn route_within(
        &mut self,
        crm: &CrmData,
        lead: LeadToRoute,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> Option<RoutedLead> {
        let allowed = |id: &str| only.is_none_or(|o| o.contains(id));
        let users: HashMap<&str, &User> = crm.users.iter().map(|u| (u.id.as_str(), u)).collect();
        let owner = lead.owner_id.and_then(|o| users.get(o).copied());
        let region = owner.and_then(|u| u.region.as_deref());
        let reps = |region: Option<&str>| -> Vec<&User> {
            crm.users
                .iter()
                .filter(|u| u.role.as_deref() == Some("rep") && allowed(&u.id))
                .filter(|u| region.is_none() || u.region.as_deref() == region)
                .filter(|u| {
                    u.hire_date
                        .is_none_or(|h| h <= lead.created_at.max(self.as_of))
                })
                .collect()
        };
        let mut cands = reps(region);
        if cands.is_empty() {
            cands = reps(None);
        }
        if cands.is_empty() {
            return None;
        }
        let accounts = Accounts::new(crm);
        let view = accounts.view(&lead, region.unwrap_or(""));
        let now = lead.created_at.max(self.as_of);
        let keeper = account_keeper(crm, &lead).filter(|(u, _)| u.role.as_deref() == Some("rep"));
        let keeper_elsewhere = keeper.as_ref().is_some_and(|(u, _)| !allowed(&u.id));
        let keeper = keeper.filter(|_| !keeper_elsewhere);
        // An account owner who is away does not keep the lead.
        let keeper_away = keeper.as_ref().and_then(|(u, _)| {
            self.roster
                .of_user(&u.id)
                .away_at(now)
                .map(|p| (u.name.clone(), p.1))
        });
        let keeper = keeper.filter(|_| keeper_away.is_none());
        if let Some((u, _)) = &keeper
            && !cands.iter().any(|c| c.id == u.id)
        {
            cands.push(u);
        }
        let rep_views: Vec<RepView> = cands.iter().map(|u| self.rep_view(u, now)).collect();
        let ranked = self.router.rank(&view, &rep_views);
        let mut candidates: Vec<RouteCandidate> = ranked
            .iter()
            .map(|c| RouteCandidate {
                rep_id: c.rep_id.clone(),
                rep_name: users
                    .get(c.rep_id.as_str())
                    .map_or(c.rep_id.clone(), |u| u.name.clone()),
                probability: c.probability,
                unanswered: c.unanswered,
                excluded: c.excluded.clone(),
            })
            .collect();
        if let Some((u, _)) = &keeper
            && let Some(k) = candidates.iter().position(|c| c.rep_id == u.id)
        {
            let c = candidates.remove(k);
            candidates.insert(0, c);
            self.router.record(&u.id, &view);
        } else {
            let k = self.router.route(&view, &rep_views);
            debug_assert_eq!(rep_views[k].id, candidates[0].rep_id);
        }
        let best = candidates[0].clone();
        if owner.is_none_or(|o| o.id != best.rep_id) {
            if let Some(o) = owner
                && let Some(n) = self.unanswered.get_mut(o.id.as_str())
            {
                *n = n.saturating_sub(1);
            }
            *self.unanswered.entry(best.rep_id.clone()).or_default() += 1;
        }
        let kept = keeper.is_some();
        let mut why = explain(&lead, &view, &best, owner, &candidates, keeper.map(|k| k.1));
        if keeper_elsewhere {
            why += "; the lead's account has an owner outside your team, who would keep it";
        }
        if let Some((name, back)) = keeper_away {
            why += &format!(
                "; the account's owner, {name}, is out of office until {}",
                instant(back)
            );
        }
        Some(RoutedLead {
            lead_id: lead.id.to_string(),
            created_at: instant(lead.created_at),
            current_owner: owner.map(|u| u.name.clone()),
            recommended: best,
            rule: if kept {
                "account_owner".into()
            } else {
                "conversion".into()
            },
            why,
            candidates,
        })
    }
}

impl LiveRouter {
    /// Routes `leads` jointly ([`Router::assign_batch`]: a linear program
    /// per chunk of 2,000 leads maximising the predicted conversions within
    /// each rep's share and queue limit) instead of one after another; a
    /// lead from an existing account stays with its owner, as in
    /// [`LiveRouter::route`]. Each lead's candidates are the reps of its
    /// current owner's region (every rep without one). Returns the
    /// decisions in the order given and how the batch was solved.
    pub fn route_batch(
        &mut self,
        crm: &CrmData,
        leads: &[LeadToRoute],
    ) -> (Vec<RoutedLead>, pipewise_engines::lead_policy::BatchReport) {
        use pipewise_engines::lead_policy::BatchLead;
        let users: HashMap<&str, &User> = crm.users.iter().map(|u| (u.id.as_str(), u)).collect();
        let reps: Vec<&User> = crm
            .users
            .iter()
            .filter(|u| u.role.as_deref() == Some("rep"))
            .filter(|u| u.hire_date.is_none_or(|h| h <= self.as_of))
            .collect();
        let unanswered: Vec<u32> = reps.iter().map(|u| self.unanswered(&u.id)).collect();
        let mut views: Vec<RepView> = reps.iter().map(|u| self.rep_view(u, self.as_of)).collect();
        let accounts = Accounts::new(crm);
        let regions: Vec<&str> = leads
            .iter()
            .map(|l| {
                l.owner_id
                    .and_then(|o| users.get(o))
                    .and_then(|u| u.region.as_deref())
                    .unwrap_or("")
            })
            .collect();
        let mut batch = Vec::new();
        let mut in_batch = Vec::new();
        let mut kept = Vec::new();
        for (k, l) in leads.iter().enumerate() {
            let keeper = account_keeper(crm, l).is_some_and(|(u, _)| {
                u.role.as_deref() == Some("rep")
                    && self
                        .roster
                        .of_user(&u.id)
                        .away_at(l.created_at.max(self.as_of))
                        .is_none()
            });
            if keeper {
                kept.push(k);
                continue;
            }
            let region = regions[k];
            let mut cands: Vec<usize> = (0..reps.len())
                .filter(|&r| region.is_empty() || reps[r].region.as_deref() == Some(region))
                .collect();
            if cands.is_empty() {
                cands = (0..reps.len()).collect();
            }
            batch.push(BatchLead {
                view: accounts.view(l, region),
                candidates: cands,
            });
            in_batch.push(k);
        }
        let n = batch.len();
        let (choice, report) = self.router.assign_batch(&batch, &mut views, BATCH_CHUNK);
        let mut out: Vec<Option<RoutedLead>> = vec![None; leads.len()];
        for ((b, k), chosen) in batch.iter().zip(&in_batch).zip(&choice) {
            let Some(chosen) = *chosen else { continue };
            let l = &leads[*k];
            // Each candidate as the program saw them: queues at the batch's start.
            let at_start: Vec<RepView> = b.candidates.iter().map(|&r| views[r].clone()).collect();
            let absent = pipewise_engines::lead_policy::absence(&at_start);
            let mut candidates: Vec<RouteCandidate> = b
                .candidates
                .iter()
                .zip(absent)
                .map(|(&r, excluded)| {
                    let at_start = RepView {
                        unanswered: unanswered[r],
                        ..views[r].clone()
                    };
                    RouteCandidate {
                        rep_id: reps[r].id.clone(),
                        rep_name: reps[r].name.clone(),
                        probability: self.router.probability(&b.view, &at_start),
                        unanswered: unanswered[r],
                        excluded,
                    }
                })
                .collect();
            candidates.sort_by(|a, b| {
                a.excluded
                    .is_some()
                    .cmp(&b.excluded.is_some())
                    .then(b.probability.total_cmp(&a.probability))
            });
            let top = candidates[0].clone();
            let at = candidates
                .iter()
                .position(|c| c.rep_id == reps[chosen].id)
                .unwrap_or(0);
            let best = candidates.remove(at);
            candidates.insert(0, best.clone());
            let owner = l.owner_id.and_then(|o| users.get(o).copied());
            if owner.is_none_or(|o| o.id != best.rep_id) {
                if let Some(o) = owner
                    && let Some(q) = self.unanswered.get_mut(o.id.as_str())
                {
                    *q = q.saturating_sub(1);
                }
                *self.unanswered.entry(best.rep_id.clone()).or_default() += 1;
            }
            let mut why = explain(l, &b.view, &best, owner, &candidates, None);
            if n > 1 {
                why += &format!(
                    "; assigned jointly with the batch's {} other lead{}",
                    n - 1,
                    if n == 2 { "" } else { "s" }
                );
            }
            if top.rep_id != best.rep_id {
                why += &format!(
                    " ({}, {:.0}% alone, is at their share of the batch)",
                    top.rep_name,
                    top.probability * 100.0
                );
            }
            out[*k] = Some(RoutedLead {
                lead_id: l.id.to_string(),
                created_at: instant(l.created_at),
                current_owner: owner.map(|u| u.name.clone()),
                recommended: best,
                rule: "batch".into(),
                why,
                candidates,
            });
        }
        for k in kept {
            out[k] = self.route(crm, leads[k]);
        }
        (out.into_iter().flatten().collect(), report)
    }
}

/// The decision in words: the chosen rep's predicted conversion and queue,
/// and the current owner's when the choice moves the lead.
fn explain(
    lead: &LeadToRoute,
    view: &LeadView,
    best: &RouteCandidate,
    owner: Option<&User>,
    candidates: &[RouteCandidate],
    kept: Option<String>,
) -> String {
    let industry = match view.industry {
        "unknown" => String::new(),
        i => format!("{} ", i.to_lowercase()),
    };
    let article = if industry.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let what = match lead.source.filter(|s| !s.is_empty()) {
        Some(s) => format!("{article} {industry}lead from {}", s.replace('_', " ")),
        None => format!("{article} {industry}lead"),
    };
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    let mut why = format!(
        "{}: {:.0}% predicted conversion for {what}, {} unanswered lead{}",
        kept.unwrap_or_else(|| best.rep_name.clone()),
        best.probability * 100.0,
        best.unanswered,
        plural(best.unanswered)
    );
    if let Some(cur) = owner
        && cur.id != best.rep_id
        && let Some(c) = candidates.iter().find(|c| c.rep_id == cur.id)
    {
        why += &format!(
            "; {}, the current owner, {:.0}% and {} unanswered lead{}",
            c.rep_name,
            c.probability * 100.0,
            c.unanswered,
            plural(c.unanswered)
        );
        match &c.excluded {
            Some(e) if e.ends_with("unanswered leads") => why += ", over capacity",
            Some(e) => why += &format!(" ({e})"),
            None => {}
        }
    }
    why
}

/// Everyone's working time: their own hours, zone and absences, or the
/// org's business hours (Monday to Friday, 08:00-18:00 UTC, as the SLA
/// clock's default).
pub fn org_roster(crm: &CrmData) -> Roster {
    let d = pipewise_engines::lead_sla::SlaOptions::default();
    Roster::with_org_hours(crm, d.open_hour, d.close_hour)
}

/// The accounts' industry and size, to read a lead as the router does.
struct Accounts<'a> {
    by_id: HashMap<&'a str, &'a pipewise_store::read::Account>,
}

impl<'a> Accounts<'a> {
    fn new(crm: &'a CrmData) -> Accounts<'a> {
        Accounts {
            by_id: crm.accounts.iter().map(|a| (a.id.as_str(), a)).collect(),
        }
    }

    fn view<'b>(&self, l: &LeadToRoute<'b>, region: &'b str) -> LeadView<'b>
    where
        'a: 'b,
    {
        let account = l.account_id.and_then(|a| self.by_id.get(a));
        LeadView {
            id: l.id,
            created: l.created_at,
            source: l.source.unwrap_or(""),
            account_id: l.account_id.unwrap_or(""),
            industry: account
                .and_then(|a| a.industry.as_deref())
                .unwrap_or("unknown"),
            employees: account.and_then(|a| a.employees).unwrap_or(0.0) as u32,
            region,
            title: l.title.unwrap_or(""),
            inquiry: l.inquiry.unwrap_or(""),
        }
    }
}

/// The owner of the lead's account, when the account is an existing one:
/// the owner of its latest deal created before the lead that was open at
/// the lead's arrival or won, with the reason in words.
pub fn account_keeper<'c>(crm: &'c CrmData, lead: &LeadToRoute) -> Option<(&'c User, String)> {
    let account = lead.account_id?;
    let deal = crm
        .opportunities
        .iter()
        .filter(|o| o.account_id.as_deref() == Some(account))
        .filter(|o| o.created_at.is_some_and(|c| c <= lead.created_at))
        .filter(|o| o.stage == "closed_won" || o.closed_at.is_none_or(|c| c > lead.created_at))
        .max_by_key(|o| (o.created_at, o.id.as_str()))?;
    let user = crm.users.iter().find(|u| u.id == deal.owner_id)?;
    let name = crm
        .accounts
        .iter()
        .find(|a| a.id == account)
        .map_or(account, |a| a.name.as_str());
    let how = if deal.stage == "closed_won" && deal.closed_at.is_some_and(|c| c <= lead.created_at)
    {
        "a customer".to_string()
    } else {
        format!(
            "open deal {}",
            deal.name.as_deref().unwrap_or(deal.id.as_str())
        )
    };
    Some((
        user,
        format!(
            "{} owns the account {name} ({how}) and keeps its leads",
            user.name
        ),
    ))
}

/// One database's lead work, read once per data version: the records, the
/// live router (or why there is none), the built-in cadence with its
/// send-time model, and the tasks reps marked.
pub struct LeadDesk {
    pub crm: std::sync::Arc<CrmData>,
    /// The latest lead event (epoch seconds).
    pub as_of: i64,
    pub router: Result<std::sync::Mutex<LiveRouter>, String>,
    pub cadence: CadenceDef,
    pub send_time: SendTimeModel,
    /// The latest mark per (lead, step); a new mark goes in at once.
    pub marks: std::sync::RwLock<Vec<LeadTaskMark>>,
}

impl LeadDesk {
    /// Reads the lead work of `crm` with the task marks `marks`; without
    /// enough leads to learn routing from, the desk works without a router
    /// (and says why). Errors: the built-in cadence does not parse.
    pub fn new(crm: std::sync::Arc<CrmData>, marks: Vec<LeadTaskMark>) -> anyhow::Result<LeadDesk> {
        let as_of = pipewise_engines::leads::lead_table(&crm).as_of;
        let router = LiveRouter::new(&crm, as_of)
            .map(std::sync::Mutex::new)
            .map_err(|e| format!("no routing: {e}"));
        let cadence = CadenceDef::parse(DEFAULT_CADENCE)?;
        let send_time = SendTimeModel::fit(&crm, as_of);
        Ok(LeadDesk {
            crm,
            as_of,
            router,
            cadence,
            send_time,
            marks: std::sync::RwLock::new(marks),
        })
    }

    /// Puts a new mark in (the latest per lead and step holds).
    pub fn add_mark(&self, m: LeadTaskMark) {
        let mut marks = self.marks.write().unwrap_or_else(|p| p.into_inner());
        marks.retain(|x| !(x.lead_id == m.lead_id && x.step == m.step));
        marks.push(m);
    }

    /// A lead by id.
    pub fn lead(&self, id: &str) -> Option<&Lead> {
        self.crm.leads.iter().find(|l| l.id == id)
    }

    /// A user by id or (case-insensitive) name.
    pub fn user(&self, rep: &str) -> Option<&User> {
        find_user(&self.crm, rep)
    }

    /// The follow-up tasks of `rep` (a name or an id) on `date` (epoch
    /// seconds; default: the latest lead event's day). Errors: no such user.
    pub fn queue(
        &self,
        rep: &str,
        date: Option<i64>,
        all: bool,
    ) -> Result<crate::leads::RepQueue, InputError> {
        let user = self
            .user(rep)
            .ok_or_else(|| InputError::new("rep", "a rep's name or id", rep))?;
        let marks = self.marks.read().unwrap_or_else(|p| p.into_inner());
        Ok(crate::leads::queue_of(
            &self.crm,
            user,
            date.unwrap_or(self.as_of),
            &self.cadence,
            &self.send_time,
            all,
            &marks,
        ))
    }

    /// The routing recommendation for the stored lead `id` among the reps
    /// of `only` (`None`: every rep), as if it arrived now (nothing is
    /// changed). Errors: no such lead; no router; no rep to take it.
    pub fn recommend(
        &self,
        id: &str,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> Result<RoutedLead, crate::AppError> {
        let lead = self.lead(id).ok_or_else(|| crate::AppError::NotFound {
            what: "lead",
            id: id.into(),
        })?;
        let router = self
            .router
            .as_ref()
            .map_err(|e| crate::AppError::Unavailable(e.clone()))?;
        // A copy of the state: a recommendation moves nothing.
        let mut r = router.lock().unwrap_or_else(|p| p.into_inner());
        let saved = r.unanswered.clone();
        let saved_router = r.router.snapshot();
        let out = r.route_within(&self.crm, lead.into(), only);
        r.unanswered = saved;
        r.router.restore(saved_router);
        out.ok_or_else(|| crate::AppError::Unavailable("no rep can take this lead".into()))
    }
}

/// Which follow-up queue to read.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// The rep (a user id in the caller's scope; default: the caller).
    #[param(max_length = 200)]
    pub rep: Option<String>,
    /// The day, YYYY-MM-DD (default: the latest lead event's day).
    #[param(format = Date)]
    pub date: Option<String>,
    /// Also list the steps due after the day (default false).
    pub all: Option<bool>,
}

/// The speed-to-lead report's SLA.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlaQuery {
    /// Business minutes allowed to the first response (default 5; up to a
    /// business week, 3000).
    #[param(minimum = 0.1, maximum = 3000)]
    pub minutes: Option<f64>,
}

impl SlaQuery {
    /// The SLA in business minutes. Errors: not in 0.1-3000.
    pub fn minutes(&self) -> Result<f64, InputError> {
        let m = self.minutes.unwrap_or(5.0);
        if !(0.1..=3000.0).contains(&m) {
            return Err(InputError::new(
                "minutes",
                "business minutes from 0.1 to 3000",
                &m.to_string(),
            ));
        }
        Ok(m)
    }
}

/// A follow-up task marked done or skipped.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskMarkRequest {
    /// The cadence step (1-based), as the queue lists it; a step the
    /// cadence does not have answers 404.
    #[schema(minimum = 1, maximum = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub step: u32,
    /// `done` or `skipped`.
    #[schema(pattern = "^(done|skipped)$")]
    pub status: String,
    /// What happened, or why it was skipped.
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// A whole number from 1 to 100 written as JSON allows (`3` or `3.0`).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = <f64 as serde::Deserialize>::deserialize(d)?;
    if v.fract() != 0.0 || !(1.0..=100.0).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "expected a whole number from 1 to 100, got {v}"
        )));
    }
    Ok(v as u32)
}

impl TaskMarkRequest {
    /// Checks the mark: `status` and `note` (errors name the field). A step
    /// past the cadence's `steps` is [`crate::AppError::NotFound`].
    pub fn check(&self, steps: usize) -> Result<(), crate::AppError> {
        if self.step == 0 || self.step as usize > steps {
            return Err(crate::AppError::NotFound {
                what: "cadence step",
                id: self.step.to_string(),
            });
        }
        if !matches!(self.status.as_str(), "done" | "skipped") {
            return Err(InputError::new("status", "done or skipped", &self.status).into());
        }
        if let Some(n) = &self.note
            && n.chars().count() > 2000
        {
            return Err(InputError::new(
                "note",
                "at most 2000 characters",
                &format!("{} characters", n.chars().count()),
            )
            .into());
        }
        Ok(())
    }
}

/// Parses a `YYYY-MM-DD` day of `field` to the epoch second of its noon
/// (UTC). Errors name the field.
pub fn parse_day(field: &str, text: &str) -> Result<i64, InputError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .ok_or_else(|| InputError::new(field, "a date such as 2025-12-01", text))
}

/// Routing speed on an org's conversion model (`pipewise bench routing`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoutingBench {
    pub reps: usize,
    /// One lead at a time among every rep: latency quantiles (milliseconds)
    /// over `single_leads` leads.
    pub single_leads: usize,
    pub single_p50_ms: f64,
    pub single_p99_ms: f64,
    /// A batch of `batch_leads` leads, each among its region's reps (4
    /// regions): the linear programs' time (seconds), how many programs and
    /// leads left to one-at-a-time routing, and the same leads routed one
    /// after another (seconds).
    pub batch_leads: usize,
    pub batch_seconds: f64,
    pub batch_programs: usize,
    pub batch_fallback: usize,
    /// Why programs failed, if any did.
    pub batch_failed: Vec<String>,
    pub sequential_seconds: f64,
}

/// Times routing with the conversion model fitted on `crm` (its leads'
/// sources, industries and sizes, cycled) among `reps` synthetic reps of
/// the org's teams: `single` leads one at a time among every rep, then
/// `batch` leads jointly and one after another. Errors: too few leads to
/// fit the model.
pub fn bench_routing(
    crm: &CrmData,
    reps: usize,
    single: usize,
    batch: usize,
) -> anyhow::Result<RoutingBench> {
    use pipewise_engines::lead_policy::BatchLead;
    use std::time::Instant;
    anyhow::ensure!(
        reps >= 4 && single > 0 && batch > 0,
        "reps (4 or more), leads and batch must be positive"
    );
    let as_of = pipewise_engines::leads::lead_table(crm).as_of;
    let model = ConversionModel::fit(crm, as_of + 1)?;
    let teams: Vec<&str> = crm.teams.iter().map(|t| t.id.as_str()).collect();
    let ids: Vec<String> = (0..reps).map(|i| format!("bench-r{i:04}")).collect();
    const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
    let mut views: Vec<RepView> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| RepView {
            id,
            team_id: teams.get(i % teams.len().max(1)).copied().unwrap_or(""),
            region: REGIONS[i % 4],
            unanswered: (i % 3) as u32,
            at_work_in: 0,
            away_until: None,
            weekly_hours: 40.0,
        })
        .collect();
    let accounts = Accounts::new(crm);
    let sample: Vec<LeadView> = crm
        .leads
        .iter()
        .take(5_000)
        .map(|l| accounts.view(&l.into(), ""))
        .collect();
    anyhow::ensure!(!sample.is_empty(), "the database holds no leads");
    let names: Vec<String> = (0..single.max(batch))
        .map(|i| format!("bench-l{i}"))
        .collect();
    let lead = |i: usize| -> LeadView {
        let s = &sample[i % sample.len()];
        LeadView {
            id: &names[i],
            region: REGIONS[i % 4],
            ..s.clone()
        }
    };
    // One at a time among every rep.
    let mut router = Router::new(model.clone(), RouterOptions::default());
    let mut times: Vec<f64> = Vec::with_capacity(single);
    for i in 0..single {
        let l = lead(i);
        let started = Instant::now();
        let k = router.route(&l, &views);
        times.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(k);
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    // A batch, each lead among its region's reps.
    let by_region: Vec<Vec<usize>> = (0..4)
        .map(|g| (0..reps).filter(|r| r % 4 == g).collect())
        .collect();
    let leads: Vec<BatchLead> = (0..batch)
        .map(|i| BatchLead {
            view: lead(i),
            candidates: by_region[i % 4].clone(),
        })
        .collect();
    let start_queues: Vec<u32> = views.iter().map(|v| v.unanswered).collect();
    // Nobody answers during the benchmark, so queues only grow: the queue
    // limit is lifted (the shares still bound each rep), for both ways.
    let options = RouterOptions {
        max_queue: u32::MAX / 4,
        ..RouterOptions::default()
    };
    let mut router = Router::new(model.clone(), options.clone());
    let started = Instant::now();
    let (_, report) = router.assign_batch(&leads, &mut views, BATCH_CHUNK);
    let batch_seconds = started.elapsed().as_secs_f64();
    // The same leads one after another, queues growing as in the batch.
    for (v, &q) in views.iter_mut().zip(&start_queues) {
        v.unanswered = q;
    }
    let mut router = Router::new(model, options);
    let started = Instant::now();
    for l in &leads {
        let cands: Vec<RepView> = l.candidates.iter().map(|&r| views[r].clone()).collect();
        let k = router.route(&l.view, &cands);
        views[l.candidates[k]].unanswered += 1;
    }
    let sequential_seconds = started.elapsed().as_secs_f64();
    Ok(RoutingBench {
        reps,
        single_leads: single,
        single_p50_ms: q(0.5),
        single_p99_ms: q(0.99),
        batch_leads: batch,
        batch_seconds,
        batch_programs: report.programs,
        batch_fallback: report.fallback,
        batch_failed: report.failed,
        sequential_seconds,
    })
}

/// What the speed-to-lead watch does (`pipewise serve --sla-minutes`).
#[derive(Debug, Clone)]
pub struct SlaWatch {
    /// Business minutes allowed to the first response.
    pub minutes: f64,
    /// Give a lead to another rep once it waits past twice the SLA.
    pub reassign: bool,
}

/// A speed-to-lead event, as the server posts it to the lead webhook.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LeadEvent {
    /// `lead.sla_breached` or `lead.reassigned`.
    pub event: String,
    pub lead_id: String,
    /// The rep the lead waited with, and their manager.
    pub owner_id: Option<String>,
    pub manager_id: Option<String>,
    /// The rep it went to (`lead.reassigned`).
    pub new_owner_id: Option<String>,
    /// Business minutes waited, and the SLA.
    pub waiting_minutes: f64,
    pub sla_minutes: f64,
    /// When the watch saw it (UTC).
    pub at: String,
    /// Why it was reassigned.
    pub why: Option<String>,
}
