//! Predictive coaching: each rep's metrics over a window against a peer group
//! and the org's top performers, the skills those metrics reflect, the gaps
//! ranked by what closing them is worth (estimated by outcome models fitted on
//! the org's own deals and leads), and coaching plans.
//!
//! The flow: [`analyse_calls`] measures every recorded call once;
//! [`profiles`] turns calls, activities, leads and deals into per-rep metrics,
//! percentiles, skill estimates and top-performer references; [`Impact`] fits
//! the outcome models and prices each gap; [`plans`](crate::plan) builds the
//! plans from a catalogue.

use std::collections::HashMap;

use pipewise_core::{Column, Table};
use pipewise_features::conversation::{
    CallAnalysis, Trackers, Unmeasured, analyse_call, unmeasured,
};
use pipewise_features::{DAY, Data, stage_index};
use pipewise_models::logistic::Logistic;
use pipewise_store::read::CrmData;
use pipewise_store::read::Instant;
use rayon::prelude::*;
use serde::Serialize;

/// What a metric is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricFamily {
    Activity,
    Communication,
    Outcome,
}

/// A skill the engine estimates, the metrics that reflect it and the outcome it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Skill {
    Prospecting,
    Discovery,
    ObjectionHandling,
    Closing,
    ProductKnowledge,
    FollowUp,
    ResponseSpeed,
}

impl Skill {
    pub const ALL: [Skill; 7] = [
        Skill::Prospecting,
        Skill::Discovery,
        Skill::ObjectionHandling,
        Skill::Closing,
        Skill::ProductKnowledge,
        Skill::FollowUp,
        Skill::ResponseSpeed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Skill::Prospecting => "prospecting",
            Skill::Discovery => "discovery",
            Skill::ObjectionHandling => "objection_handling",
            Skill::Closing => "closing",
            Skill::ProductKnowledge => "product_knowledge",
            Skill::FollowUp => "follow_up",
            Skill::ResponseSpeed => "response_speed",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Skill::Prospecting => "prospecting",
            Skill::Discovery => "discovery",
            Skill::ObjectionHandling => "objection handling",
            Skill::Closing => "closing (next steps)",
            Skill::ProductKnowledge => "product knowledge",
            Skill::FollowUp => "lead follow-up",
            Skill::ResponseSpeed => "speed to lead",
        }
    }
    pub fn parse(s: &str) -> Option<Skill> {
        Skill::ALL.into_iter().find(|k| k.name() == s)
    }
    /// Skills read from call transcripts.
    pub fn is_communication(self) -> bool {
        matches!(
            self,
            Skill::Discovery | Skill::ObjectionHandling | Skill::Closing | Skill::ProductKnowledge
        )
    }
}

/// A per-rep metric.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MetricDef {
    pub key: &'static str,
    pub label: &'static str,
    pub family: MetricFamily,
    pub higher_is_better: bool,
    /// The skill it reflects, if it is read as one.
    pub skill: Option<Skill>,
    /// How a value is shown.
    pub unit: &'static str,
}

const fn m(
    key: &'static str,
    label: &'static str,
    family: MetricFamily,
    higher_is_better: bool,
    skill: Option<Skill>,
    unit: &'static str,
) -> MetricDef {
    MetricDef {
        key,
        label,
        family,
        higher_is_better,
        skill,
        unit,
    }
}

use MetricFamily::{Activity, Communication, Outcome};

/// Every metric of a profile, in a fixed order (`RepProfile::values` follows it).
pub const METRICS: &[MetricDef] = &[
    m(
        "calls_per_week",
        "calls per week",
        Activity,
        true,
        None,
        "{:.1}",
    ),
    m(
        "emails_per_week",
        "emails per week",
        Activity,
        true,
        None,
        "{:.1}",
    ),
    m(
        "meetings_per_week",
        "meetings per week",
        Activity,
        true,
        None,
        "{:.1}",
    ),
    m(
        "outbound_deals_per_week",
        "outbound deals created per week",
        Activity,
        true,
        Some(Skill::Prospecting),
        "{:.2}",
    ),
    m(
        "touches_per_lead",
        "follow-up touches per answered lead",
        Activity,
        true,
        Some(Skill::FollowUp),
        "{:.1}",
    ),
    m(
        "deal_touches_per_week",
        "touches per open deal per week",
        Activity,
        true,
        Some(Skill::FollowUp),
        "{:.2}",
    ),
    m(
        "first_response_hours",
        "median first-response time to a lead (hours)",
        Activity,
        false,
        Some(Skill::ResponseSpeed),
        "{:.1} h",
    ),
    m(
        "recorded_calls",
        "recorded calls",
        Communication,
        true,
        None,
        "{:.0}",
    ),
    m(
        "talk_ratio",
        "talk ratio",
        Communication,
        false,
        Some(Skill::Discovery),
        "pct",
    ),
    m(
        "longest_monologue_s",
        "longest monologue (s)",
        Communication,
        false,
        Some(Skill::Discovery),
        "{:.0} s",
    ),
    m(
        "question_rate",
        "questions per hour",
        Communication,
        true,
        Some(Skill::Discovery),
        "{:.1}/h",
    ),
    m(
        "open_question_share",
        "open questions",
        Communication,
        true,
        Some(Skill::Discovery),
        "pct",
    ),
    m(
        "interactivity",
        "speaker switches per minute",
        Communication,
        true,
        None,
        "{:.2}/min",
    ),
    m(
        "patience_s",
        "pause before answering (s)",
        Communication,
        true,
        None,
        "{:.2} s",
    ),
    m(
        "objections_handled",
        "objections handled",
        Communication,
        true,
        Some(Skill::ObjectionHandling),
        "pct",
    ),
    m(
        "next_steps_rate",
        "calls ending with an agreed next step",
        Communication,
        true,
        Some(Skill::Closing),
        "pct",
    ),
    m(
        "filler_rate",
        "filler words per minute",
        Communication,
        false,
        Some(Skill::ProductKnowledge),
        "{:.2}/min",
    ),
    m(
        "customer_sentiment",
        "customer sentiment",
        Communication,
        true,
        None,
        "{:+.2}",
    ),
    m("win_rate", "win rate", Outcome, true, None, "pct"),
    m(
        "cycle_days",
        "sales cycle of won deals (days)",
        Outcome,
        false,
        None,
        "{:.0} d",
    ),
    m(
        "slip_rate",
        "deals whose close date slipped",
        Outcome,
        false,
        None,
        "pct",
    ),
    m(
        "deal_size",
        "average won deal",
        Outcome,
        true,
        None,
        "money",
    ),
    m(
        "stage_conversion",
        "deals reaching proposal",
        Outcome,
        true,
        None,
        "pct",
    ),
    m(
        "late_stage_win_rate",
        "win rate of deals that reached negotiation",
        Outcome,
        true,
        None,
        "pct",
    ),
    m(
        "bookings_per_week",
        "won bookings per week",
        Outcome,
        true,
        None,
        "money",
    ),
];

pub fn metric_index(key: &str) -> Option<usize> {
    METRICS.iter().position(|d| d.key == key)
}

fn mi(key: &str) -> usize {
    metric_index(key).expect("a known metric")
}

/// Formats a metric's value for people.
pub fn format_metric(d: &MetricDef, v: f64) -> String {
    match d.unit {
        "pct" => format!("{:.0}%", v * 100.0),
        "money" => pipewise_core::value::format_money(v),
        u => {
            let prec = u
                .split_once(":.")
                .and_then(|(_, r)| r.chars().next())
                .and_then(|c| c.to_digit(10))
                .unwrap_or(1) as usize;
            let suffix = u.rsplit_once('}').map_or("", |(_, s)| s);
            if u.starts_with("{:+") {
                format!("{v:+.prec$}{suffix}")
            } else {
                format!("{v:.prec$}{suffix}")
            }
        }
    }
}

/// Settings of the coaching engine.
#[derive(Debug, Clone)]
pub struct CoachOptions {
    /// The profile window ends here (default: the latest date in the data).
    pub as_of: Option<Instant>,
    pub window_days: i64,
    /// Share of reps that are top performers.
    pub top_share: f64,
    /// A peer group smaller than this falls back to every rep of the role.
    pub min_peers: usize,
    /// Calls needed before communication metrics are shown.
    pub min_calls: usize,
    /// Priorities per plan.
    pub max_priorities: usize,
    /// Open deals at or above this slip probability raise a manager alert.
    pub alert_slip: f64,
}

impl Default for CoachOptions {
    fn default() -> Self {
        CoachOptions {
            as_of: None,
            window_days: 730,
            top_share: 0.25,
            min_peers: 5,
            min_calls: 5,
            max_priorities: 3,
            alert_slip: 0.5,
        }
    }
}

/// One rep's profile.
#[derive(Debug, Clone, Serialize)]
pub struct RepProfile {
    pub id: String,
    pub name: String,
    pub team: Option<String>,
    pub team_name: Option<String>,
    pub role: String,
    pub tenure_days: Option<i64>,
    /// The peers percentiles are taken among (ids).
    #[serde(skip)]
    pub peers: Vec<usize>,
    pub peer_group: String,
    /// Per metric of [`METRICS`]; `None` when there is too little data.
    pub values: Vec<Option<f64>>,
    /// Per metric, the share of peers this rep does at least as well as (0-100).
    pub percentiles: Vec<Option<f64>>,
    /// Per skill of [`Skill::ALL`], the estimate on a z-scale across reps.
    pub skills: Vec<Option<f64>>,
    pub top_performer: bool,
    /// The score top performers are chosen by (0-1).
    pub performance: f64,
}

/// Every rep's profile, the top performers and their reference levels.
#[derive(Debug, Clone, Serialize)]
pub struct Profiles {
    pub as_of: Instant,
    pub window_start: Instant,
    pub reps: Vec<RepProfile>,
    /// Per metric, the median of the top performers.
    pub top_reference: Vec<Option<f64>>,
    /// Per skill, the mean estimate of the top performers.
    pub top_skill: Vec<Option<f64>>,
    /// Per metric, the top-quartile level among all reps: the 75th percentile
    /// in the better direction (the 25th for lower-is-better metrics). Gaps
    /// are measured and priced against it.
    pub quartile_reference: Vec<Option<f64>>,
    /// Per skill, the 75th percentile of the estimates across reps.
    pub quartile_skill: Vec<Option<f64>>,
    /// Per metric, the median of all reps.
    pub median: Vec<Option<f64>>,
    /// Per rep, indices into the recorded calls (`analyse_calls` order) in the window.
    #[serde(skip)]
    pub calls: Vec<Vec<usize>>,
}

/// Measures every recorded call (in parallel); `None` for calls without both sides.
pub fn analyse_calls(crm: &CrmData, trackers: &Trackers) -> Vec<Option<CallAnalysis>> {
    crm.conversations
        .par_iter()
        .map(|c| analyse_call(&c.turns, trackers))
        .collect()
}

/// A recorded call that the figures leave out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LeftOut {
    /// Index in `crm.conversations` (and in [`analyse_calls`]' result).
    #[serde(skip)]
    pub index: usize,
    pub call: String,
    /// The rep on the call, when known.
    pub rep_id: Option<String>,
    pub reason: Unmeasured,
    /// The reason in words, with what to do about it.
    pub why: &'static str,
}

impl LeftOut {
    /// Why call `index` of `crm.conversations` cannot be measured, or `None` when it can.
    pub fn of(crm: &CrmData, index: usize) -> Option<LeftOut> {
        let c = crm.conversations.get(index)?;
        let reason = unmeasured(&c.turns)?;
        Some(LeftOut {
            index,
            call: c.id.clone(),
            rep_id: c.user_id.clone(),
            reason,
            why: reason.explain(),
        })
    }
}

/// The calls [`analyse_calls`] could not measure (`None`), in order, with why.
pub fn left_out(crm: &CrmData, analysed: &[Option<CallAnalysis>]) -> Vec<LeftOut> {
    analysed
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_none())
        .filter_map(|(i, _)| LeftOut::of(crm, i))
        .collect()
}

use crate::segments::median;

fn mean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v {
        if x.is_finite() {
            s += x;
            n += 1;
        }
    }
    (n > 0).then(|| s / n as f64)
}

/// Ranks with ties averaged (1-based).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Spearman's rank correlation of paired values.
pub fn spearman_fn(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut c, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        c += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        c / (va * vb).sqrt()
    }
}

/// Writes the communication metrics of `cs` (a rep's or a deal's calls) into
/// `v`, indexed like [`METRICS`].
fn call_metrics(cs: &[&CallAnalysis], v: &mut [Option<f64>]) {
    v[mi("talk_ratio")] = mean(cs.iter().map(|c| c.talk_ratio));
    v[mi("longest_monologue_s")] = mean(cs.iter().map(|c| c.longest_monologue_s));
    v[mi("question_rate")] = mean(cs.iter().map(|c| c.question_rate));
    let (open, all) = cs.iter().fold((0u32, 0u32), |a, c| {
        (
            a.0 + c.questions_open,
            a.1 + c.questions_open + c.questions_closed,
        )
    });
    v[mi("open_question_share")] = (all > 0).then(|| f64::from(open) / f64::from(all));
    v[mi("interactivity")] = mean(cs.iter().map(|c| c.switches_per_minute));
    v[mi("patience_s")] = mean(cs.iter().filter_map(|c| c.patience_s));
    let (h, n) = cs.iter().fold((0u32, 0usize), |a, c| {
        (a.0 + c.handled(), a.1 + c.objections.len())
    });
    v[mi("objections_handled")] = (n > 0).then(|| f64::from(h) / n as f64);
    v[mi("next_steps_rate")] = mean(
        cs.iter()
            .map(|c| f64::from(u8::from(c.next_steps_agreed()))),
    );
    v[mi("filler_rate")] = mean(cs.iter().map(|c| c.filler_rate));
    v[mi("customer_sentiment")] = mean(cs.iter().map(|c| c.sentiment_customer));
}

/// Activities logged against each lead.
fn lead_touches(crm: &CrmData) -> HashMap<&str, f64> {
    let mut touches: HashMap<&str, f64> = HashMap::new();
    for a in &crm.activities {
        if let Some(l) = a.lead_id.as_deref() {
            *touches.entry(l).or_default() += 1.0;
        }
    }
    touches
}

/// A new rep's ramp: prospecting volume is read from the weeks after it when
/// there are enough of them (the tenure bands use the same line).
const RAMP_DAYS: i64 = 180;

/// Per-rep tallies over the window.
#[derive(Default, Clone)]
struct Tally {
    calls: f64,
    emails: f64,
    meetings: f64,
    outbound: f64,
    /// Outbound deals created once the rep was past [`RAMP_DAYS`] of tenure.
    outbound_ramped: f64,
    lead_touches: Vec<f64>,
    response_hours: Vec<f64>,
    call_idx: Vec<usize>,
    closed: f64,
    won: f64,
    won_amount: f64,
    cycle: Vec<f64>,
    slipped: f64,
    reached_proposal: f64,
    qualified: f64,
    late: f64,
    late_won: f64,
    deal_touches: f64,
    open_deal_weeks: f64,
}

/// Builds every rep's profile from the CRM and the measured calls.
pub fn profiles(
    crm: &CrmData,
    data: &Data,
    calls: &[Option<CallAnalysis>],
    opts: &CoachOptions,
) -> Profiles {
    let as_of = opts.as_of.unwrap_or(data.end);
    let from = as_of - opts.window_days * DAY;
    let reps: Vec<usize> = crm
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.role.as_deref().is_none_or(|r| r == "rep"))
        .map(|(i, _)| i)
        .collect();
    let slot: HashMap<&str, usize> = reps
        .iter()
        .enumerate()
        .map(|(k, &u)| (crm.users[u].id.as_str(), k))
        .collect();
    let mut t = vec![Tally::default(); reps.len()];
    let in_window = |x: Instant| x >= from && x < as_of;
    for a in &crm.activities {
        if !in_window(a.occurred_at) {
            continue;
        }
        let Some(&k) = a.user_id.as_deref().and_then(|u| slot.get(u)) else {
            continue;
        };
        match a.kind.as_str() {
            "call" => t[k].calls += 1.0,
            "email" => t[k].emails += 1.0,
            "meeting" => t[k].meetings += 1.0,
            _ => {}
        }
    }
    // Touches on a lead in its first 30 days, by its owner.
    let touches = lead_touches(crm);
    for l in &crm.leads {
        let Some(&k) = l.owner_id.as_deref().and_then(|u| slot.get(u)) else {
            continue;
        };
        // Old enough for follow-up to have run its course.
        if !in_window(l.created_at) || l.created_at > as_of - 30 * DAY {
            continue;
        }
        // Persistence after the first answer: leads never answered are speed's story.
        if l.first_response_at.is_some_and(|r| r <= as_of) {
            t[k].lead_touches
                .push(touches.get(l.id.as_str()).copied().unwrap_or(0.0));
        }
        let hours = match l.first_response_at {
            Some(r) if r <= as_of => (r - l.created_at).max(0) as f64 / 3600.0,
            _ => f64::INFINITY,
        };
        t[k].response_hours.push(hours);
    }
    for (i, c) in crm.conversations.iter().enumerate() {
        let (Some(start), Some(_)) = (c.started_at, &calls[i]) else {
            continue;
        };
        if !in_window(start) {
            continue;
        }
        if let Some(&k) = c.user_id.as_deref().and_then(|u| slot.get(u)) {
            t[k].call_idx.push(i);
        }
    }
    let proposal = stage_index("proposal").unwrap_or(2);
    let negotiation = stage_index("negotiation").unwrap_or(4);
    let opp_slot: HashMap<&str, usize> = data
        .opps
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    // Touches on open deals by their owner, per week the deal was open.
    let mut deal_touch = vec![0.0f64; data.opps.len()];
    for a in &crm.activities {
        if !in_window(a.occurred_at) || a.direction.as_deref() == Some("inbound") {
            continue;
        }
        if let Some(&i) = a.opportunity_id.as_deref().and_then(|o| opp_slot.get(o)) {
            deal_touch[i] += 1.0;
        }
    }
    for (i, o) in data.opps.iter().enumerate() {
        let open_from = o.created.max(from);
        let open_to = o.closed.unwrap_or(as_of).min(as_of);
        if open_to <= open_from {
            continue;
        }
        if let Some(&k) = o.owner.at(open_to).and_then(|u| slot.get(u)) {
            t[k].deal_touches += deal_touch[i];
            t[k].open_deal_weeks += (open_to - open_from) as f64 / (7 * DAY) as f64;
        }
    }
    for o in &data.opps {
        // The first owner on record created it.
        let creator = o
            .owner
            .before
            .as_deref()
            .or_else(|| o.owner.changes.iter().find_map(|c| c.1.as_deref()))
            .unwrap_or_default();
        if in_window(o.created)
            && o.lead_source.as_deref() == Some("outbound")
            && let Some(&k) = slot.get(creator)
        {
            t[k].outbound += 1.0;
            let ramped = crm.users[reps[k]]
                .hire_date
                .is_none_or(|h| o.created >= h + RAMP_DAYS * DAY);
            t[k].outbound_ramped += f64::from(u8::from(ramped));
        }
        let Some(closed) = o.closed.filter(|&c| in_window(c)) else {
            continue;
        };
        let Some(&k) = o.owner.at(closed).and_then(|u| slot.get(u)) else {
            continue;
        };
        let won = o.won == Some(true);
        let tk = &mut t[k];
        tk.closed += 1.0;
        if won {
            tk.won += 1.0;
            tk.won_amount += o
                .amount
                .at(closed)
                .and_then(|a| a.parse::<f64>().ok())
                .unwrap_or(0.0);
            tk.cycle.push((closed - o.created) as f64 / DAY as f64);
        }
        // Slipped: the expected close date was moved later at least once.
        let mut last: Option<&str> = o.close_date.before.as_deref();
        let mut slipped = false;
        for (_, v) in o.close_date.known(closed) {
            if let (Some(a), Some(b)) = (last, v.as_deref())
                && b > a
            {
                slipped = true;
            }
            last = v.as_deref().or(last);
        }
        tk.slipped += f64::from(u8::from(slipped));
        let reached = std::iter::once(o.stage.before.as_deref())
            .chain(o.stage.changes.iter().map(|c| c.1.as_deref()))
            .flatten()
            .filter_map(stage_index)
            .max();
        if reached.is_some_and(|s| s >= negotiation) || won {
            tk.late += 1.0;
            tk.late_won += f64::from(u8::from(won));
        }
        if reached.is_some_and(|s| s >= 1) || won {
            tk.qualified += 1.0;
            if reached.is_some_and(|s| s >= proposal) || won {
                tk.reached_proposal += 1.0;
            }
        }
    }
    let org_win = {
        let (w, c) = t
            .iter()
            .fold((0.0, 0.0), |a, x| (a.0 + x.won, a.1 + x.closed));
        if c > 0.0 { w / c } else { 0.0 }
    };
    let teams: HashMap<&str, &str> = crm
        .teams
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    let mut out: Vec<RepProfile> = Vec::with_capacity(reps.len());
    let mut call_lists = Vec::with_capacity(reps.len());
    for (k, &u) in reps.iter().enumerate() {
        let user = &crm.users[u];
        let tk = &mut t[k];
        let hired = user.hire_date;
        let active_from = hired.map_or(from, |h| h.max(from));
        let weeks = ((as_of - active_from) as f64 / (7 * DAY) as f64).max(1.0);
        let mut v: Vec<Option<f64>> = vec![None; METRICS.len()];
        v[mi("calls_per_week")] = Some(tk.calls / weeks);
        v[mi("emails_per_week")] = Some(tk.emails / weeks);
        v[mi("meetings_per_week")] = Some(tk.meetings / weeks);
        // Prospecting volume once ramped (a new hire's first months would
        // read as a weak prospector), over at least a quarter of weeks.
        let ramped_from = hired.map_or(from, |h| (h + RAMP_DAYS * DAY).max(from));
        let ramped_weeks = (as_of - ramped_from) as f64 / (7 * DAY) as f64;
        v[mi("outbound_deals_per_week")] = Some(if ramped_weeks >= 13.0 {
            tk.outbound_ramped / ramped_weeks
        } else {
            tk.outbound / weeks
        });
        v[mi("touches_per_lead")] = mean(tk.lead_touches.iter().copied());
        v[mi("first_response_hours")] = median(&mut tk.response_hours).map(|h| h.min(24.0 * 30.0));
        let cs: Vec<&CallAnalysis> = tk
            .call_idx
            .iter()
            .filter_map(|&i| calls[i].as_ref())
            .collect();
        v[mi("recorded_calls")] = Some(cs.len() as f64);
        if cs.len() >= opts.min_calls {
            call_metrics(&cs, &mut v);
        }
        if tk.closed > 0.0 {
            // Shrunk towards the org's rate by 5 deals, so a 1-of-1 rep is not "100%".
            v[mi("win_rate")] = Some((tk.won + 5.0 * org_win) / (tk.closed + 5.0));
            v[mi("slip_rate")] = Some(tk.slipped / tk.closed);
        }
        v[mi("cycle_days")] = mean(tk.cycle.iter().copied());
        v[mi("deal_size")] = (tk.won > 0.0).then(|| tk.won_amount / tk.won);
        v[mi("stage_conversion")] =
            (tk.qualified > 0.0).then(|| tk.reached_proposal / tk.qualified);
        v[mi("bookings_per_week")] = Some(tk.won_amount / weeks);
        v[mi("late_stage_win_rate")] =
            (tk.late > 0.0).then(|| (tk.late_won + 3.0 * 0.5) / (tk.late + 3.0));
        v[mi("deal_touches_per_week")] =
            (tk.open_deal_weeks >= 4.0).then(|| tk.deal_touches / tk.open_deal_weeks);
        let tenure = hired.map(|h| (as_of - h) / DAY);
        out.push(RepProfile {
            id: user.id.clone(),
            name: user.name.clone(),
            team: user.team_id.clone(),
            team_name: user
                .team_id
                .as_deref()
                .map(|t| teams.get(t).map_or(t, |n| n).to_string()),
            role: user.role.clone().unwrap_or_else(|| "rep".into()),
            tenure_days: tenure,
            peers: Vec::new(),
            peer_group: String::new(),
            values: v,
            percentiles: vec![None; METRICS.len()],
            skills: vec![None; Skill::ALL.len()],
            top_performer: false,
            performance: 0.0,
        });
        call_lists.push(std::mem::take(&mut tk.call_idx));
    }
    finish(out, call_lists, as_of, from, opts)
}

/// Share of `pool`'s values that `x` does at least as well as, 0-100.
fn percentile(x: f64, pool: &[f64], higher_is_better: bool) -> f64 {
    let n = pool.len().max(1) as f64;
    let at_least = pool
        .iter()
        .filter(|&&p| if higher_is_better { x >= p } else { x <= p })
        .count() as f64;
    100.0 * at_least / n
}

/// Peer groups, percentiles, skill estimates, top performers and references.
fn finish(
    mut reps: Vec<RepProfile>,
    calls: Vec<Vec<usize>>,
    as_of: Instant,
    from: Instant,
    opts: &CoachOptions,
) -> Profiles {
    let n = reps.len();
    // Peer group: same role and tenure band (ramping: under 180 days), then the
    // same team within it when that leaves enough peers.
    let band = |r: &RepProfile| r.tenure_days.is_some_and(|d| d < RAMP_DAYS);
    for i in 0..n {
        let same_role: Vec<usize> = (0..n).filter(|&j| reps[j].role == reps[i].role).collect();
        let same_band: Vec<usize> = same_role
            .iter()
            .copied()
            .filter(|&j| band(&reps[j]) == band(&reps[i]))
            .collect();
        let (peers, label) = if same_band.len() >= opts.min_peers {
            let tenure = if band(&reps[i]) {
                "ramping, under 180 days"
            } else {
                "established, 180 days or more"
            };
            (same_band, format!("{}s, {tenure}", reps[i].role))
        } else {
            (same_role, format!("all {}s", reps[i].role))
        };
        reps[i].peers = peers;
        reps[i].peer_group = label;
    }
    for (j, d) in METRICS.iter().enumerate() {
        for i in 0..n {
            let Some(x) = reps[i].values[j] else { continue };
            let pool: Vec<f64> = reps[i]
                .peers
                .iter()
                .filter_map(|&p| reps[p].values[j])
                .collect();
            reps[i].percentiles[j] = Some(percentile(x, &pool, d.higher_is_better));
        }
    }
    // Skills: the mean of the signed z-scores (across all reps) of their metrics.
    let mut z: Vec<Vec<Option<f64>>> = vec![vec![None; METRICS.len()]; n];
    for (j, d) in METRICS.iter().enumerate() {
        if d.skill.is_none() {
            continue;
        }
        let mut vals: Vec<f64> = reps.iter().filter_map(|r| r.values[j]).collect();
        if vals.len() < 2 {
            continue;
        }
        // Robust: median and scaled median absolute deviation.
        let med = median(&mut vals).unwrap_or(0.0);
        let mut dev: Vec<f64> = vals.iter().map(|v| (v - med).abs()).collect();
        let mad = median(&mut dev).unwrap_or(0.0) * 1.4826;
        let sd = if mad > 0.0 { mad } else { 1.0 };
        for i in 0..n {
            if let Some(x) = reps[i].values[j] {
                let s = (x - med) / sd;
                z[i][j] = Some(if d.higher_is_better { s } else { -s }.clamp(-4.0, 4.0));
            }
        }
    }
    for (k, skill) in Skill::ALL.iter().enumerate() {
        for i in 0..n {
            let parts: Vec<f64> = METRICS
                .iter()
                .enumerate()
                .filter(|(_, d)| d.skill == Some(*skill))
                .filter_map(|(j, _)| z[i][j])
                .collect();
            reps[i].skills[k] = mean(parts);
        }
        // On a common scale: normal scores of the ranks, so that a skill read
        // from a long-tailed metric (response hours) is not "weaker" than one
        // read from a tight metric merely because of its spread.
        let known: Vec<usize> = (0..n).filter(|&i| reps[i].skills[k].is_some()).collect();
        let vals: Vec<f64> = known
            .iter()
            .map(|&i| reps[i].skills[k].unwrap_or(0.0))
            .collect();
        let r = ranks(&vals);
        let m = known.len() as f64;
        for (&i, rank) in known.iter().zip(r) {
            reps[i].skills[k] = Some(normal_quantile((rank - 0.5) / m));
        }
    }
    // Top performers: the best `top_share` by the mean percentile (among all
    // reps) of won bookings per week and win rate.
    let b = mi("bookings_per_week");
    let w = mi("win_rate");
    let pool_b: Vec<f64> = reps.iter().filter_map(|r| r.values[b]).collect();
    let pool_w: Vec<f64> = reps.iter().filter_map(|r| r.values[w]).collect();
    for r in reps.iter_mut() {
        let pb = r.values[b].map_or(0.0, |x| percentile(x, &pool_b, true));
        let pw = r.values[w].map_or(0.0, |x| percentile(x, &pool_w, true));
        r.performance = (pb + pw) / 200.0;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &c| reps[c].performance.total_cmp(&reps[a].performance));
    let n_top = ((n as f64 * opts.top_share).round() as usize).clamp(usize::from(n > 0), n);
    for &i in &order[..n_top] {
        reps[i].top_performer = true;
    }
    let top: Vec<usize> = (0..n).filter(|&i| reps[i].top_performer).collect();
    let top_reference = (0..METRICS.len())
        .map(|j| {
            median(
                &mut top
                    .iter()
                    .filter_map(|&i| reps[i].values[j])
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let all_median = (0..METRICS.len())
        .map(|j| median(&mut reps.iter().filter_map(|r| r.values[j]).collect::<Vec<_>>()))
        .collect();
    let top_skill = (0..Skill::ALL.len())
        .map(|k| mean(top.iter().filter_map(|&i| reps[i].skills[k])))
        .collect();
    let upper_quartile = |mut v: Vec<f64>, higher_is_better: bool| {
        (!v.is_empty()).then(|| {
            v.sort_by(f64::total_cmp);
            crate::forecast::quantile(&v, if higher_is_better { 0.75 } else { 0.25 })
        })
    };
    let quartile_reference = METRICS
        .iter()
        .enumerate()
        .map(|(j, d)| {
            upper_quartile(
                reps.iter().filter_map(|r| r.values[j]).collect(),
                d.higher_is_better,
            )
        })
        .collect();
    let quartile_skill = (0..Skill::ALL.len())
        .map(|k| upper_quartile(reps.iter().filter_map(|r| r.skills[k]).collect(), true))
        .collect();
    Profiles {
        as_of,
        window_start: from,
        reps,
        top_reference,
        top_skill,
        quartile_reference,
        quartile_skill,
        median: all_median,
        calls,
    }
}

/// The outcome models that price a gap: what moving a rep's metrics to the
/// top-quartile level is worth.
///
/// - Call skills: a logistic model of a closed deal's outcome on the behaviour
///   in its recorded calls (talk ratio, monologues, questions, objections
///   handled, next steps, fillers) and the deal's size. A rep's gap is priced
///   by re-scoring the rep's own deals with that skill's metrics set to the
///   top-quartile level: the mean change is points of win rate, times the
///   rep's pipeline per quarter is bookings.
/// - Lead skills: a logistic model of a lead converting on its first-response
///   time and follow-up touches, re-scored the same way over the rep's leads;
///   extra conversions are priced at the org's value of a converted lead.
/// - Prospecting: extra outbound deals per quarter at the org's value of an
///   outbound deal.
pub struct Impact {
    deal_model: Option<Logistic>,
    lead_model: Option<Logistic>,
    /// Per rep: the deals (table rows) they closed or own, for re-scoring.
    deal_rows: Vec<Vec<usize>>,
    deal_table: Table,
    lead_rows: Vec<Vec<usize>>,
    lead_table: Table,
    /// Per rep: pipeline amount closed per quarter in the window.
    pipeline_per_quarter: Vec<f64>,
    /// Per rep: leads per quarter.
    leads_per_quarter: Vec<f64>,
    value_per_converted_lead: f64,
    value_per_outbound_deal: f64,
    pub deals_used: usize,
    pub leads_used: usize,
    /// How [`Impact::gaps`] orders the gaps.
    pub rank: Rank,
}

/// How a rep's gaps are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    /// By the size of the gap below the skill's top-quartile level (on the common
    /// scale of skill estimates), largest first; ties by worth.
    Gap,
    /// By estimated worth (extra bookings a quarter), largest first.
    Worth,
}

/// Orders gaps in place.
pub fn rank(gaps: &mut [Gap], by: Rank) {
    let size = |g: &Gap| g.target_level - g.level;
    gaps.sort_by(|a, b| match by {
        Rank::Gap => size(b)
            .total_cmp(&size(a))
            .then(b.bookings_per_quarter.total_cmp(&a.bookings_per_quarter)),
        Rank::Worth => b
            .bookings_per_quarter
            .total_cmp(&a.bookings_per_quarter)
            .then(size(b).total_cmp(&size(a))),
    });
}

/// The columns of the deal outcome model, with the skill each belongs to.
const DEAL_COLUMNS: [(&str, Option<Skill>); 8] = [
    ("talk_ratio", Some(Skill::Discovery)),
    ("longest_monologue_s", Some(Skill::Discovery)),
    ("question_rate", Some(Skill::Discovery)),
    ("open_question_share", Some(Skill::Discovery)),
    ("objections_handled", Some(Skill::ObjectionHandling)),
    ("next_steps_rate", Some(Skill::Closing)),
    ("filler_rate", Some(Skill::ProductKnowledge)),
    ("log_amount", None),
];
const LEAD_COLUMNS: [(&str, Option<Skill>); 2] = [
    ("log_first_response_hours", Some(Skill::ResponseSpeed)),
    ("touches_per_lead", Some(Skill::FollowUp)),
];

/// One metric behind a gap: the rep's value and the top-quartile level, in
/// the metric's own unit (see `coach::METRICS`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GapMetric {
    /// The metric's key (e.g. `question_rate`).
    pub metric: String,
    pub rep: f64,
    pub top_quartile: f64,
}

impl GapMetric {
    /// Whether the rep is behind the top-quartile level (in the metric's
    /// better direction).
    pub fn behind(&self) -> bool {
        let d = &METRICS[mi(&self.metric)];
        if d.higher_is_better {
            self.rep < self.top_quartile
        } else {
            self.rep > self.top_quartile
        }
    }
}

/// A gap and what closing it is worth.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Gap {
    pub skill: Skill,
    /// The rep's estimate and the skill's top-quartile level (z-scale).
    pub level: f64,
    pub target_level: f64,
    /// The metrics behind it, the rep's value against the top quartile's.
    pub metrics: Vec<GapMetric>,
    /// Points of win rate on the rep's deals (call skills).
    pub win_rate_points: Option<f64>,
    /// Points of lead conversion on the rep's leads (lead skills).
    pub conversion_points: Option<f64>,
    /// Expected extra won bookings per quarter.
    pub bookings_per_quarter: f64,
}

impl Impact {
    /// Fits the outcome models on the org's closed deals and mature leads.
    pub fn fit(crm: &CrmData, data: &Data, calls: &[Option<CallAnalysis>], p: &Profiles) -> Impact {
        let slot: HashMap<&str, usize> = p
            .reps
            .iter()
            .enumerate()
            .map(|(k, r)| (r.id.as_str(), k))
            .collect();
        let opp_calls = {
            let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, c) in crm.conversations.iter().enumerate() {
                if let (Some(o), Some(_)) = (c.opportunity_id.as_deref(), &calls[i]) {
                    by.entry(o).or_default().push(i);
                }
            }
            by
        };
        let n_reps = p.reps.len();
        let quarters = ((p.as_of - p.window_start) as f64 / (91.0 * DAY as f64)).max(0.25);
        let mut cols: Vec<Vec<f64>> = vec![Vec::new(); DEAL_COLUMNS.len()];
        let mut y = Vec::new();
        let mut train = Vec::new();
        let mut deal_rows = vec![Vec::new(); n_reps];
        let mut pipeline_per_quarter = vec![0.0; n_reps];
        let (mut out_won, mut out_n) = (0.0, 0.0);
        let (mut lead_won_amount, mut lead_closed) = (0.0, 0.0);
        for o in &data.opps {
            let amount = o.amount.at(p.as_of).and_then(|a| a.parse::<f64>().ok());
            if let Some(c) = o.closed.filter(|&c| c <= p.as_of)
                && c >= p.window_start
            {
                let won = o.won == Some(true);
                if o.lead_source.as_deref() == Some("outbound") {
                    out_n += 1.0;
                    if won {
                        out_won += amount.unwrap_or(0.0);
                    }
                } else {
                    lead_closed += 1.0;
                    if won {
                        lead_won_amount += amount.unwrap_or(0.0);
                    }
                }
                if let Some(&k) = o.owner.at(c).and_then(|u| slot.get(u)) {
                    pipeline_per_quarter[k] += amount.unwrap_or(0.0) / quarters;
                }
            }
            let Some(cs) = opp_calls.get(o.id.as_str()) else {
                continue;
            };
            let cs: Vec<&CallAnalysis> = cs
                .iter()
                .filter(|&&i| {
                    crm.conversations[i]
                        .started_at
                        .is_some_and(|s| o.closed.is_none_or(|c| s < c) && s < p.as_of)
                })
                .filter_map(|&i| calls[i].as_ref())
                .collect();
            if cs.is_empty() {
                continue;
            }
            let row = y.len();
            let mut m = vec![None; METRICS.len()];
            call_metrics(&cs, &mut m);
            let vals = DEAL_COLUMNS
                .iter()
                .map(|(name, _)| match metric_index(name) {
                    Some(j) => m[j].unwrap_or(f64::NAN),
                    None => amount.map_or(f64::NAN, |a| (1.0 + a.max(0.0)).ln()),
                });
            for (c, v) in cols.iter_mut().zip(vals) {
                c.push(v);
            }
            let closed_known = o.closed.is_some_and(|c| c <= p.as_of);
            y.push(if closed_known && o.won == Some(true) {
                1.0
            } else {
                0.0
            });
            if closed_known {
                train.push(row);
            }
            let t_ref = o.closed.filter(|&c| c <= p.as_of).unwrap_or(p.as_of);
            let recent = o.closed.is_none_or(|c| c >= p.window_start) && o.created < p.as_of;
            if recent && let Some(&k) = o.owner.at(t_ref).and_then(|u| slot.get(u)) {
                deal_rows[k].push(row);
            }
        }
        let mut deal_table = Table::default();
        for ((name, _), c) in DEAL_COLUMNS.iter().zip(cols) {
            deal_table.push(*name, Column::Numeric(c));
        }
        let train_y: Vec<f64> = train.iter().map(|&i| y[i]).collect();
        let deal_model = (train.len() >= 50
            && train_y.iter().any(|&v| v > 0.0)
            && train_y.iter().any(|&v| v == 0.0))
        .then(|| Logistic::fit(&deal_table.take(&train), &train_y, 1.0).ok())
        .flatten();
        // Leads: mature ones (30 days old) in the window.
        let touches = lead_touches(crm);
        let mut lcols: Vec<Vec<f64>> = vec![Vec::new(); LEAD_COLUMNS.len()];
        let mut ly = Vec::new();
        let mut lead_rows = vec![Vec::new(); n_reps];
        let mut leads_per_quarter = vec![0.0; n_reps];
        for l in &crm.leads {
            if l.created_at < p.window_start || l.created_at > p.as_of - 30 * DAY {
                continue;
            }
            let hours = match l.first_response_at {
                Some(r) if r <= p.as_of => (r - l.created_at).max(0) as f64 / 3600.0,
                _ => 24.0 * 30.0,
            };
            lcols[0].push((1.0 + hours.min(24.0 * 30.0)).ln());
            lcols[1].push(touches.get(l.id.as_str()).copied().unwrap_or(0.0));
            ly.push(f64::from(u8::from(
                l.converted_at.is_some_and(|c| c <= p.as_of),
            )));
            if let Some(&k) = l.owner_id.as_deref().and_then(|u| slot.get(u)) {
                lead_rows[k].push(ly.len() - 1);
                leads_per_quarter[k] += 1.0 / quarters;
            }
        }
        let mut lead_table = Table::default();
        for ((name, _), c) in LEAD_COLUMNS.iter().zip(lcols) {
            lead_table.push(*name, Column::Numeric(c));
        }
        let lead_model =
            (ly.len() >= 50 && ly.iter().any(|&v| v > 0.0) && ly.iter().any(|&v| v == 0.0))
                .then(|| Logistic::fit(&lead_table, &ly, 1.0).ok())
                .flatten();
        Impact {
            deal_model,
            lead_model,
            deal_rows,
            deal_table,
            lead_rows,
            lead_table,
            pipeline_per_quarter,
            leads_per_quarter,
            value_per_converted_lead: if lead_closed > 0.0 {
                lead_won_amount / lead_closed
            } else {
                0.0
            },
            value_per_outbound_deal: if out_n > 0.0 { out_won / out_n } else { 0.0 },
            deals_used: train_y.len(),
            leads_used: ly.len(),
            rank: Rank::Gap,
        }
    }

    /// Mean change of the model's probability over `rows` when `skill`'s
    /// columns are set to `target` (column name to value).
    fn shift(model: &Logistic, table: &Table, rows: &[usize], set: &[(usize, f64)]) -> Option<f64> {
        if rows.is_empty() {
            return None;
        }
        let base = table.take(rows);
        let mut moved = base.clone();
        for &(j, v) in set {
            if let Column::Numeric(c) = &mut moved.columns[j] {
                for x in c.iter_mut() {
                    *x = v;
                }
            }
        }
        let p = |z: f64| 1.0 / (1.0 + (-z).exp());
        let a = model.logits(&base).ok()?;
        let b = model.logits(&moved).ok()?;
        mean(a.iter().zip(&b).map(|(x, y)| p(*y) - p(*x)))
    }

    /// The rep's gaps below the top-quartile level of each skill, ordered by
    /// [`Impact::rank`].
    pub fn gaps(&self, p: &Profiles, rep: usize) -> Vec<Gap> {
        let r = &p.reps[rep];
        let mut out = Vec::new();
        for (k, &skill) in Skill::ALL.iter().enumerate() {
            let (Some(level), Some(top)) = (r.skills[k], p.quartile_skill[k]) else {
                continue;
            };
            let metrics: Vec<GapMetric> = METRICS
                .iter()
                .enumerate()
                .filter(|(_, d)| d.skill == Some(skill))
                .filter_map(|(j, d)| {
                    Some(GapMetric {
                        metric: d.key.to_string(),
                        rep: r.values[j]?,
                        top_quartile: p.quartile_reference[j]?,
                    })
                })
                .collect();
            // Only the metrics where the rep is behind the top level move.
            let behind: Vec<&GapMetric> = metrics.iter().filter(|m| m.behind()).collect();
            let (mut win_pts, mut conv_pts, mut bookings) = (None, None, 0.0);
            match skill {
                Skill::Prospecting => {
                    if let Some(m) = behind.first() {
                        bookings = (m.top_quartile - m.rep) * 13.0 * self.value_per_outbound_deal;
                    }
                }
                Skill::FollowUp | Skill::ResponseSpeed => {
                    if let Some(model) = &self.lead_model {
                        let set: Vec<(usize, f64)> = behind
                            .iter()
                            .map(|m| match m.metric.as_str() {
                                "first_response_hours" => (0, (1.0 + m.top_quartile).ln()),
                                _ => (1, m.top_quartile),
                            })
                            .collect();
                        if !set.is_empty()
                            && let Some(d) =
                                Self::shift(model, &self.lead_table, &self.lead_rows[rep], &set)
                        {
                            conv_pts = Some(100.0 * d);
                            bookings =
                                d * self.leads_per_quarter[rep] * self.value_per_converted_lead;
                        }
                    }
                }
                _ => {
                    if let Some(model) = &self.deal_model {
                        let set: Vec<(usize, f64)> = behind
                            .iter()
                            .filter_map(|m| {
                                DEAL_COLUMNS
                                    .iter()
                                    .position(|c| c.0 == m.metric)
                                    .map(|j| (j, m.top_quartile))
                            })
                            .collect();
                        if !set.is_empty()
                            && let Some(d) =
                                Self::shift(model, &self.deal_table, &self.deal_rows[rep], &set)
                        {
                            win_pts = Some(100.0 * d);
                            bookings = d * self.pipeline_per_quarter[rep];
                        }
                    }
                }
            }
            if level >= top && bookings <= 0.0 {
                continue;
            }
            out.push(Gap {
                skill,
                level,
                target_level: top,
                metrics,
                win_rate_points: win_pts,
                conversion_points: conv_pts,
                bookings_per_quarter: bookings.max(0.0),
            });
        }
        rank(&mut out, self.rank);
        out
    }
}

/// How well the engine recovers the simulator's latent skills.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub reps: usize,
    /// Spearman correlation of the estimate with the latent skill, per skill.
    pub spearman: Vec<(Skill, f64)>,
    /// Share of reps whose top-ranked gap is their latent weakest skill, with
    /// gaps ranked by size (the default).
    pub top1_by_gap: f64,
    /// ... whose weakest skill is among their top two gaps.
    pub top2_by_gap: f64,
    /// The same two shares with gaps ranked by estimated worth.
    pub top1_by_worth: f64,
    pub top2_by_worth: f64,
    /// Share of reps whose lowest estimated skill is their latent weakest.
    pub weakest_match: f64,
}

/// Compares estimates and ranked gaps with the latent skills (rep id to skill name to value).
pub fn validate(
    p: &Profiles,
    impact: &Impact,
    truth: &HashMap<String, HashMap<String, f64>>,
) -> Validation {
    let mut spearman = Vec::new();
    for (k, skill) in Skill::ALL.iter().enumerate() {
        let pairs: Vec<(f64, f64)> = p
            .reps
            .iter()
            .filter_map(|r| Some((r.skills[k]?, *truth.get(&r.id)?.get(skill.name())?)))
            .collect();
        if pairs.len() >= 3 {
            let (a, b): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            spearman.push((*skill, spearman_fn(&a, &b)));
        }
    }
    let (mut n, mut t1, mut t2, mut s1, mut s2, mut w) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for (i, r) in p.reps.iter().enumerate() {
        let Some(latent) = truth.get(&r.id) else {
            continue;
        };
        let Some(weakest) = Skill::ALL
            .iter()
            .filter_map(|s| Some((*s, *latent.get(s.name())?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0)
        else {
            continue;
        };
        let gaps = impact.gaps(p, i);
        n += 1;
        let lowest = Skill::ALL
            .iter()
            .enumerate()
            .filter_map(|(k, s)| Some((*s, r.skills[k]?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0);
        w += usize::from(lowest == Some(weakest));
        let mut by_gap = gaps.clone();
        rank(&mut by_gap, Rank::Gap);
        t1 += usize::from(by_gap.first().map(|g| g.skill) == Some(weakest));
        t2 += usize::from(by_gap.iter().take(2).any(|g| g.skill == weakest));
        let mut by_worth = gaps;
        rank(&mut by_worth, Rank::Worth);
        s1 += usize::from(by_worth.first().map(|g| g.skill) == Some(weakest));
        s2 += usize::from(by_worth.iter().take(2).any(|g| g.skill == weakest));
    }
    let share = |x: usize| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    Validation {
        reps: n,
        spearman,
        top1_by_gap: share(t1),
        top2_by_gap: share(t2),
        top1_by_worth: share(s1),
        top2_by_worth: share(s2),
        weakest_match: share(w),
    }
}
