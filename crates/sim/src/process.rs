//! The processes: inbound leads and their response, outbound prospecting,
//! opportunities moving through stages with calls, activities, rep-entered
//! stages and close dates, and customers' renewals, expansions and usage.
//! See docs/simulator.md for the causal model these functions implement.

use serde_json::json;

use crate::model::{
    Bias, CLOSING, DISCOVERY, FOLLOW_UP, OBJECTIONS, Org, PRODUCT_KNOWLEDGE, PRODUCTS, PROSPECTING,
    REGIONS, RESPONSE_SPEED, SEGMENTS,
};
use crate::output::{Out, push_json};
use crate::policy::{
    AFTER_REPLY_COST, AFTER_REPLY_MAX, Cadence, CadencePlan, Channel, DealView, FOCUS_GAIN,
    FOCUS_HELD, LeadView, PERSONAL_GAIN, PlannedTouch, Policies, REPLY_BASE, RepView, Routing,
    STALLED_DAYS, fatigue_effect, timing_effect,
};
use crate::rng::{Rng, sigmoid};
use crate::text;
use crate::time::{self, DAY, HOUR, MINUTE};
use crate::{
    Config, STREAM_BASE, STREAM_ENTRY, STREAM_LEAD, STREAM_LEAD_DAY, STREAM_LEAD_LABELS,
    STREAM_LEAD_PATH, STREAM_MESSAGE_TEST, STREAM_OPP, STREAM_OUTBOUND, SimError,
};

pub const STAGES: [&str; 5] = [
    "prospecting",
    "qualification",
    "discovery",
    "proposal",
    "negotiation",
];
/// Advance log-odds per stage at strength 0.
pub const ALPHA: [f64; 5] = [0.5, 0.4, 0.45, 0.6, 0.75];
/// Median days in each stage before the segment and size multipliers.
const STAGE_DAYS: [f64; 5] = [12.0, 16.0, 22.0, 25.0, 18.0];
const CLOSING_WEIGHT: f64 = 0.45;
/// S.d. of a deal's own strength draw at creation (log-odds), beyond what its
/// segment, fit, lead, kind and rep explain.
const DEAL_DRAW_SD: f64 = 0.7;
/// S.d. of the log of a stage's length around its median.
const STAGE_LEN_SIGMA: f64 = 0.5;
/// Gauss-Hermite rule on which the deal's draw is integrated: standard normal
/// scores and their weights (summing to 1).
const DRAW_GRID: usize = 8;
const DRAW_NODES: [f64; DRAW_GRID] = [
    -4.144547186125894,
    -2.802485861287542,
    -1.636519042435108,
    -0.539079811351375,
    0.539079811351375,
    1.636519042435108,
    2.802485861287542,
    4.144547186125894,
];
const DRAW_WEIGHTS: [f64; DRAW_GRID] = [
    1.126145383753676e-04,
    9.635220120788256e-03,
    1.172399076617590e-01,
    3.730122576790773e-01,
    3.730122576790773e-01,
    1.172399076617590e-01,
    9.635220120788256e-03,
    1.126145383753676e-04,
];

/// Chance that an email on a deal of strength `s` gets a reply.
fn p_reply(s: f64) -> f64 {
    sigmoid(-1.2 + 0.7 * s)
}

/// Chance that a call on a deal of strength `s` connects.
fn p_connect(s: f64) -> f64 {
    sigmoid(-0.8 + 0.5 * s)
}

/// Median length (days) of a stage whose median at strength 0 is `median0`.
fn stage_median(median0: f64, s: f64) -> f64 {
    median0 * (-0.15 * s).exp()
}

pub const SOURCES: [(&str, f64, f64); 7] = [
    // (source, share, quality offset)
    ("web_form", 0.33, 0.2),
    ("chat", 0.10, 0.3),
    ("webinar", 0.15, -0.3),
    ("content_download", 0.20, -0.8),
    ("referral", 0.08, 1.0),
    ("partner", 0.07, 0.6),
    ("event", 0.07, 0.0),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NewBusiness,
    Expansion,
    Renewal,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NewBusiness => "new_business",
            Kind::Expansion => "expansion",
            Kind::Renewal => "renewal",
        }
    }
}

pub struct OppSeed {
    pub created: i64,
    pub rep: usize,
    pub account: usize,
    pub lead: Option<(String, f64, &'static str, Option<String>)>,
    pub kind: Kind,
    pub product: Option<usize>,
    pub bonus: f64,
    pub amount: Option<f64>,
    /// The deal's stream key when fixed by its parent (a customer's renewal
    /// or expansion in a focus run); `None`: the next in sequence.
    pub key: Option<u64>,
}

/// The stream key of a customer's renewal (`which` 0) or expansion (1)
/// spawned by the deal or installed-base customer keyed `parent`: fixed by
/// the parent, so a deal won under one policy and lost under another
/// shifts no other deal's draws.
fn child_key(parent: u64, which: u64) -> u64 {
    (1u64 << 32) + parent.wrapping_mul(2) + which
}

/// A deal week's focus stream key.
fn focus_key(idx: u64, week: i64, start: i64) -> u64 {
    let hours = ((week - start).max(0) / HOUR) as u64;
    (idx ^ (hours << 44)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hours
}

/// What a deal's records show that bears on its own strength draw, for the
/// oracle that infers the draw from the deal's history. `base` is the deal's
/// strength at that moment minus its draw.
#[derive(Clone, Copy)]
enum Evidence {
    /// An email (reply or not) or a call attempt (connected or not).
    Touch {
        email: bool,
        base: f64,
        success: bool,
    },
    /// A recorded call: objections raised and whether a next step was agreed.
    Call {
        stage: usize,
        base: f64,
        objections: u32,
        next_steps: bool,
    },
    /// The deal left stage `k` for the next one after `days`.
    Advanced {
        k: usize,
        base_start: f64,
        base_end: f64,
        bonus: f64,
        days: f64,
    },
}

/// Log-likelihood of one piece of evidence at draw `d`, for a deal whose stage
/// lengths have median `median_days[k]` at strength 0.
fn evidence_ll(
    e: &Evidence,
    d: f64,
    median_days: &[f64; 5],
    rep: &crate::model::Rep,
    t: i64,
) -> f64 {
    let ln_bern = |p: f64, yes: bool| {
        if yes {
            p.max(1e-12).ln()
        } else {
            (1.0 - p).max(1e-12).ln()
        }
    };
    match *e {
        Evidence::Touch {
            email,
            base,
            success,
        } => {
            let p = if email {
                p_reply(base + d)
            } else {
                p_connect(base + d)
            };
            ln_bern(p, success)
        }
        Evidence::Call {
            stage,
            base,
            objections,
            next_steps,
        } => {
            let lambda = text::expected_objections(stage, base + d);
            f64::from(objections) * lambda.ln() - lambda
                + ln_bern(text::p_next_steps(rep, t, base + d), next_steps)
        }
        Evidence::Advanced {
            k,
            base_start,
            base_end,
            bonus,
            days,
        } => {
            let z = (days / stage_median(median_days[k], base_start + d)).ln() / STAGE_LEN_SIGMA;
            -0.5 * z * z + sigmoid(ALPHA[k] + base_end + d + bonus).ln()
        }
    }
}

/// Standard normal upper tail, P(Z > z) (Abramowitz and Stegun 7.1.26 on erfc).
fn normal_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub leads: u64,
    pub leads_converted: u64,
    pub leads_never_answered: u64,
    pub opportunities: u64,
    pub won: u64,
    pub lost: u64,
    pub activities: u64,
    pub conversations: u64,
    /// Leads that arrived from the policy start on, and how many converted.
    pub policy_leads: u64,
    pub policy_converted: u64,
    pub policy_never: u64,
    /// From the policy start: focus meetings, recommended deal weeks, those
    /// followed, the expected win-probability gain summed over recommended
    /// weeks; won deals and their amount.
    pub focus_meetings: u64,
    pub focus_recommended: u64,
    pub focus_followed: u64,
    pub focus_recommended_gain: f64,
    /// Σ over recommended deal weeks inside the window of the expected gain of following
    /// rather than not (the own pick the rep would otherwise have made
    /// netted out).
    pub focus_following_gain: f64,
    /// Recommended deal weeks inside the window (the recommendation log's).
    pub focus_logged: u64,
    /// The expected bookings the focus meetings made added (win
    /// probability gain × amount, hidden truth).
    pub focus_value: f64,
    pub won_after: u64,
    pub bookings_after: f64,
    /// Deals won from the policy start whenever they close (past the
    /// window's end too), and their amount at the window's end.
    pub won_eventual: u64,
    pub bookings_eventual: f64,
}

/// At most this many touches per lead (the first reply and 15 more).
const MAX_TOUCHES: usize = 16;

/// The channels of a rep's own sequence, touch by touch.
const REP_CADENCE: [Channel; MAX_TOUCHES] = {
    use Channel::{Call, Email, Sms};
    [
        Call, Email, Email, Call, Sms, Email, Call, Email, Call, Email, Call, Email, Sms, Email,
        Call, Email,
    ]
};

/// Weight of the rep's segment affinity in a lead's conversion log-odds.
const LEAD_FIT: f64 = 1.2;

/// A lead's conversion log-odds once engaged, before quality, skill, fit
/// and speed.
const LEAD_CONVERSION_BASE: f64 = 0.3;

/// Reply log-odds lost per earlier unanswered touch (interest fades).
const REPLY_DECAY: f64 = 0.2;

/// A lead's conversion log-odds when it never replied (it may still come
/// back by itself).
const NOT_ENGAGED: f64 = -3.8;

/// The draws of a lead's path that depend on no policy.
struct PathDraws {
    never: f64,
    minutes: f64,
    morning: i64,
    off_hours_wait: f64,
    keep: [f64; 10],
    gap_days: [i64; MAX_TOUCHES],
    hour: [i64; MAX_TOUCHES],
    reply: [f64; MAX_TOUCHES],
    convert: f64,
    stop: f64,
    personal: f64,
    silent_days: i64,
    outcome_delay: i64,
    disqualified: f64,
    territory: f64,
}

/// A lead as drawn, before routing.
struct LeadDraw {
    idx: u64,
    created: i64,
    region: usize,
    account: usize,
    contact: usize,
    source: &'static str,
    product: usize,
    pain: usize,
    quality: f64,
    inquiry: String,
    path: PathDraws,
}

fn lead_id(idx: u64) -> String {
    format!("l{:08}", idx + 1)
}

/// Whether two phrases have the same words, ignoring case and punctuation.
fn same_words(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    words(a) == words(b)
}

pub struct Sim<'a> {
    pub cfg: &'a Config,
    pub org: &'a Org,
    pub out: Out,
    next_opp: u64,
    next_act: u64,
    /// Stage entries made so far (keys the entry-bias draws).
    entry_key: u64,
    /// The region entering stages ahead ([`Config::entry_bias`]).
    entry_bias: Option<usize>,
    entry_bias_start: i64,
    next_conv: u64,
    next_lead: u64,
    next_usage: u64,
    pub tally: Tally,
    end: i64,
    /// Deals won in the window, (closed at, rep, final strength): the
    /// installed base mirrors them.
    wins: Vec<(i64, usize, f64)>,
    policies: Policies,
    /// Per rep, recent leads as (arrived, answered or given up): the queue
    /// of unanswered leads.
    queues: Vec<Vec<(i64, i64)>>,
    /// Per region, the next round-robin turn.
    round_robin: Vec<usize>,
    /// Leads held for the next batch ([`Policies::batch`]), in order of
    /// arrival.
    pending: Vec<LeadDraw>,
    /// Per rep, the latent chance of following a recommended focus
    /// ([`Policies::focus`] with a list; empty otherwise).
    pub adherence: Vec<f64>,
    /// The message tests' hidden truth, per inbound-sequence step.
    pub message_truth: MessageTruth,
    /// Per message test (step): its sends' (outcome known at, variant,
    /// class), for the sending policy; and the policy's probabilities per
    /// (step, week from the window's start).
    message_history: std::collections::HashMap<usize, Vec<(i64, usize, u8)>>,
    message_probs: std::collections::HashMap<(usize, i64), Vec<f64>>,
    /// Focus meetings per (rep, week from the window's start).
    focus_count: std::collections::HashMap<(usize, i64), u32>,
    /// Customers' renewals and expansions keyed by their parent (a focus
    /// run: see [`child_key`]).
    stable_keys: bool,
}

/// A deal week's focus decision.
#[derive(Debug, Clone, Copy)]
struct FocusDecision {
    recommended: bool,
    followed: bool,
    own: bool,
    /// When recommended: the list's score (currency units) and its win
    /// probability, for the recommendation log.
    score: f64,
    probability: Option<f64>,
    /// The chance of a meeting of the rep's own on the deal this week
    /// when they do not follow the list (own pick × (1 - adherence)).
    own_otherwise: f64,
}

/// The variants of each emailed step of the inbound sequence (template ids
/// `seq-inbound-{step}-{variant}`), sent evenly.
pub const MESSAGE_VARIANTS: [&str; 3] = ["a", "b", "c"];
const MESSAGE_PROPENSITY: &str = "0.333333";

/// Per variant of the message test at inbound-sequence touch `k` (0-based),
/// `(m, n)`: the share of replies from leads that go on to convert that
/// book a meeting (the rest are positive replies), and the share of
/// replies from leads that do not that are negative ("remove me"; the rest
/// positive). Drawn once per org and step: m 0.15-0.8, n 0.03-0.5.
pub fn message_variant_shares(seed: u64, k: usize) -> [(f64, f64); 3] {
    let mut r = Rng::stream(seed, STREAM_MESSAGE_TEST, u64::MAX - k as u64);
    std::array::from_fn(|_| (r.uniform(0.15, 0.8), r.uniform(0.03, 0.5)))
}

/// The message tests' hidden truth: per inbound-sequence step (0-based),
/// the sends made and, per variant, the utility (meeting 1, positive reply
/// 0.3, negative -0.5; the bandit's) summed over every send as if that
/// variant had been sent: the same leads, replies and conversions.
/// `sent` holds, per step, the utility summed over the variants actually
/// sent (the sending policy's) and the sends of each variant.
#[derive(Debug, Clone, Default)]
pub struct MessageTruth {
    pub steps: std::collections::BTreeMap<usize, (u64, [f64; 3])>,
    pub sent: std::collections::BTreeMap<usize, (f64, [u64; 3])>,
}

impl MessageTruth {
    fn record(
        &mut self,
        k: usize,
        reply: bool,
        converted: bool,
        shares: &[(f64, f64); 3],
        chosen: usize,
    ) {
        let e = self.steps.entry(k).or_insert((0, [0.0; 3]));
        e.0 += 1;
        let c = self.sent.entry(k).or_insert((0.0, [0; 3]));
        c.1[chosen] += 1;
        if reply {
            for (v, (m, n)) in shares.iter().enumerate() {
                let u = if converted {
                    m + 0.3 * (1.0 - m)
                } else {
                    0.3 * (1.0 - n) - 0.5 * n
                };
                e.1[v] += u;
                if v == chosen {
                    c.0 += u;
                }
            }
        }
    }
}

/// Days between a customer's win and its renewal deal's creation (a renewal
/// at a year, opened 60 days ahead).
const RENEWAL_LEAD_DAYS: i64 = 365 - 60;

/// The speed-to-lead effect on conversion log-odds (0 at an instant reply).
pub fn speed_effect(minutes: f64) -> f64 {
    -0.42 * (1.0 + minutes / 5.0).ln()
}

/// The follow-up effect on conversion log-odds: rises to a plateau by 7-10 touches.
pub fn touch_effect(n: u32) -> f64 {
    1.7 * (1.0 - (-f64::from(n) / 2.8).exp())
}

fn season(month: u32) -> f64 {
    [
        0.95, 1.0, 1.1, 1.0, 1.0, 0.95, 0.8, 0.7, 1.1, 1.15, 1.1, 0.85,
    ][(month - 1) as usize]
}

impl<'a> Sim<'a> {
    pub fn new(cfg: &'a Config, org: &'a Org, out: Out, policies: Policies) -> Self {
        // Latent adherence: higher for better closers (who also win more,
        // so a naive followed-against-not comparison is confounded).
        let adherence = if policies
            .focus
            .as_ref()
            .is_some_and(|f| f.list.is_some() && f.follow_all)
        {
            vec![1.0; org.reps.len()]
        } else if policies.focus.as_ref().is_some_and(|f| f.list.is_some()) {
            org.reps
                .iter()
                .enumerate()
                .map(|(r, rep)| {
                    let mut rng = Rng::stream(cfg.seed, crate::STREAM_ADHERENCE, r as u64);
                    let z = 0.2 + 0.8 * rep.skill(CLOSING, cfg.start) + rng.gauss(0.0, 0.8);
                    round4(sigmoid(z).clamp(0.05, 0.95))
                })
                .collect()
        } else {
            Vec::new()
        };
        Sim {
            stable_keys: policies.focus.is_some(),
            adherence,
            message_truth: MessageTruth::default(),
            message_history: Default::default(),
            message_probs: Default::default(),
            focus_count: std::collections::HashMap::new(),
            policies,
            queues: vec![Vec::new(); org.reps.len()],
            round_robin: vec![0; org.region_reps.len()],
            pending: Vec::new(),
            cfg,
            org,
            out,
            next_opp: 0,
            next_act: 0,
            entry_key: 0,
            entry_bias: cfg.entry_bias_region(),
            entry_bias_start: cfg.entry_bias_start(),
            next_conv: 0,
            next_lead: 0,
            next_usage: 0,
            tally: Tally::default(),
            end: cfg.end(),
            wins: Vec::new(),
        }
    }

    /// Simulates every week of the window; `progress` gets the fraction done.
    pub fn run(&mut self, progress: &mut dyn FnMut(f64)) -> Result<(), SimError> {
        let start = self.cfg.start;
        let weeks = ((self.end - start) / (7 * DAY)) as usize + 1;
        for w in 0..weeks {
            let week_start = start + w as i64 * 7 * DAY;
            for d in 0..7 {
                let day = week_start + d * DAY;
                if day >= self.end {
                    break;
                }
                self.leads_of_day(day)?;
            }
            for r in 0..self.org.reps.len() {
                let rep = &self.org.reps[r];
                if rep.hired > week_start {
                    continue;
                }
                let mut rng =
                    Rng::stream(self.cfg.seed, STREAM_OUTBOUND, (r as u64) << 20 | w as u64);
                let rate = self.cfg.outbound_per_rep_week
                    * (0.35 * rep.skill(PROSPECTING, week_start)).exp()
                    * rep.ramp(week_start);
                for _ in 0..rng.poisson(rate) {
                    let created = week_start + rng.int(0, 4) * DAY + rng.int(8 * 3600, 18 * 3600);
                    if created >= self.end {
                        continue;
                    }
                    let accts = &self.org.region_accounts[rep.region];
                    let account = if accts.is_empty() {
                        rng.below(self.org.accounts.len())
                    } else {
                        accts[rng.below(accts.len())]
                    };
                    self.opportunity(OppSeed {
                        created,
                        rep: r,
                        account,
                        lead: None,
                        kind: Kind::NewBusiness,
                        product: None,
                        bonus: 0.15 * rep.skill(PROSPECTING, created),
                        amount: None,
                        key: None,
                    })?;
                }
            }
            progress((w + 1) as f64 / weeks as f64);
        }
        self.flush_batch()?;
        if self.cfg.installed_base {
            self.installed_base()?;
        }
        Ok(())
    }

    /// Customers won before the window opens, as every real org has: their
    /// usage, renewals and expansions fall inside it. Without them renewals
    /// would only begin ten months in, so a model trained on the first year
    /// would meet them for the first time in its test window.
    ///
    /// The base mirrors the deals won in the window, shifted back: each win
    /// closed in a 305-day stretch from day 180 (when the pipeline has
    /// filled; the whole window if shorter) stands for one customer won in
    /// the 305 days before the start (whose renewals open inside the window),
    /// with that deal's rep (or a colleague in the region hired by then),
    /// final strength and a fresh account, product and amount. Created after
    /// the in-window deals, so their identifiers and draws do not change.
    fn installed_base(&mut self) -> Result<(), SimError> {
        let start = self.cfg.start;
        let lead = RENEWAL_LEAD_DAYS * DAY;
        let (mut from, mut to) = (start + 180 * DAY, (start + 180 * DAY + lead).min(self.end));
        if to - from < 90 * DAY {
            (from, to) = (start, self.end);
        }
        let per_win = lead as f64 / (to - from).max(DAY) as f64;
        // In a focus run, only wins before the policy start, which no
        // policy changes (a short window's stretch can reach past it).
        let before = if self.stable_keys {
            self.policies.start
        } else {
            i64::MAX
        };
        let wins: Vec<(usize, f64)> = std::mem::take(&mut self.wins)
            .into_iter()
            .filter(|&(at, _, _)| at >= from && at < to && at < before)
            .map(|(_, r, s)| (r, s))
            .collect();
        let org = self.org;
        for (i, (r0, s)) in wins.into_iter().enumerate() {
            let mut rng = Rng::stream(self.cfg.seed, STREAM_BASE, i as u64);
            let copies = per_win.floor() as usize + usize::from(rng.chance(per_win.fract()));
            for copy in 0..copies {
                let since = time::day_start(start - rng.int(1, RENEWAL_LEAD_DAYS) * DAY)
                    + rng.int(9 * 3600, 17 * 3600);
                let region = org.reps[r0].region;
                let rep = if org.reps[r0].hired <= since {
                    Some(r0)
                } else {
                    let there: Vec<usize> = org.region_reps[region]
                        .iter()
                        .copied()
                        .filter(|&r| org.reps[r].hired <= since)
                        .collect();
                    (!there.is_empty()).then(|| there[rng.below(there.len())])
                };
                let Some(rep) = rep else { continue };
                let accts = &org.region_accounts[region];
                let a = if accts.is_empty() {
                    rng.below(org.accounts.len())
                } else {
                    accts[rng.below(accts.len())]
                };
                let account = &org.accounts[a];
                let product = rng.weighted(&SEGMENTS[account.segment].product_need);
                let prod = &PRODUCTS[product];
                let list = prod.list_price * if prod.per_size { account.seats() } else { 1.0 };
                let amount = (list * rng.uniform(0.85, 1.2) / 100.0).round() * 100.0;
                let key = (1u64 << 40) + ((i as u64) << 8) + copy as u64;
                self.customer(&mut rng, rep, a, product, amount, since, s, key)?;
            }
        }
        Ok(())
    }

    /// One day's inbound leads in every region, handled in order of arrival
    /// (a rep's queue at a lead's arrival counts the leads before it).
    fn leads_of_day(&mut self, day: i64) -> Result<(), SimError> {
        let org = self.org;
        let mut drawn = Vec::new();
        for region in 0..org.region_reps.len() {
            let active = org.region_reps[region]
                .iter()
                .filter(|&&r| org.reps[r].hired <= day)
                .count();
            if active == 0 || org.region_accounts[region].is_empty() {
                continue;
            }
            let mut rng = Rng::stream(
                self.cfg.seed,
                STREAM_LEAD_DAY,
                ((day / DAY) as u64) << 4 | region as u64,
            );
            let weekday = if time::weekday(day) < 5 { 1.22 } else { 0.45 };
            let seasonal = if self.cfg.seasonality {
                season(time::month_of(day))
            } else {
                1.0
            };
            let rate = self.cfg.leads_per_rep_month * active as f64 / 30.4 * weekday * seasonal;
            for _ in 0..rng.poisson(rate) {
                let idx = self.next_lead;
                self.next_lead += 1;
                if let Some(d) = self.draw_lead(idx, day, region) {
                    drawn.push(d);
                }
            }
        }
        drawn.sort_by_key(|d| (d.created, d.idx));
        let batching = self.policies.batch && matches!(self.policies.routing, Routing::Policy(_));
        for d in drawn {
            if batching && d.created >= self.policies.start && !time::is_business_hours(d.created) {
                // Held for the next opening; a lead of a later opening
                // sends the held ones first.
                if self.pending.first().is_some_and(|p| {
                    time::next_business_morning(p.created) != time::next_business_morning(d.created)
                }) {
                    self.flush_batch()?;
                }
                self.pending.push(d);
                continue;
            }
            self.flush_batch()?;
            let owner = self.route(&d);
            self.lead(d, owner)?;
        }
        Ok(())
    }

    /// Routes the held leads together at their opening (the next business
    /// morning after they arrived), with the candidates' queues as they
    /// stand then, and simulates each in order of arrival.
    fn flush_batch(&mut self) -> Result<(), SimError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let at = time::next_business_morning(pending[0].created);
        let cands: Vec<Vec<usize>> = pending.iter().map(|d| self.candidates(d, at)).collect();
        let mut routing = std::mem::replace(&mut self.policies.routing, Routing::Territory);
        let owners: Vec<usize> = match &mut routing {
            Routing::Policy(p) => {
                let ids: Vec<String> = pending.iter().map(|d| lead_id(d.idx)).collect();
                let leads: Vec<LeadView> = pending
                    .iter()
                    .zip(&ids)
                    .map(|(d, id)| self.lead_view(d, id))
                    .collect();
                let views: Vec<Vec<RepView>> = cands
                    .iter()
                    .map(|c| c.iter().map(|&r| self.rep_view(r, at)).collect())
                    .collect();
                let picks = p.route_batch(&leads, &views);
                cands
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c[picks.get(i).copied().unwrap_or(0).min(c.len() - 1)])
                    .collect()
            }
            _ => unreachable!("only a policy routes in batch"),
        };
        self.policies.routing = routing;
        for (d, owner) in pending.into_iter().zip(owners) {
            self.lead(d, owner)?;
        }
        Ok(())
    }

    /// Everything about a lead that no policy can change, drawn from the
    /// lead's own streams in a fixed order (common random numbers).
    fn draw_lead(&self, idx: u64, day: i64, region: usize) -> Option<LeadDraw> {
        let org = self.org;
        let mut rng = Rng::stream(self.cfg.seed, STREAM_LEAD, idx);
        let created = if rng.chance(0.78) {
            day + rng.int(8 * HOUR, 18 * HOUR)
        } else {
            day + rng.int(0, DAY - 1)
        };
        if created >= self.end {
            return None;
        }
        let accounts = &org.region_accounts[region];
        let account = accounts[rng.below(accounts.len())];
        let a = &org.accounts[account];
        let seg = &SEGMENTS[a.segment];
        let src = rng.weighted(&SOURCES.iter().map(|s| s.1).collect::<Vec<_>>());
        let (source, _, q_off) = SOURCES[src];
        let contact = rng.below(a.contacts.len());
        let product = rng.weighted(&seg.product_need);
        let quality = q_off + 0.3 * seg.base + rng.gauss(0.0, 0.8);
        let c = &a.contacts[contact];
        let (inquiry, pain) = text::inquiry(&mut rng, a, &c.name, c.title, PRODUCTS[product].name);
        let mut p = Rng::stream(self.cfg.seed, STREAM_LEAD_PATH, idx);
        let path = PathDraws {
            never: p.f64(),
            minutes: p.normal(),
            morning: p.int(0, 90 * MINUTE),
            off_hours_wait: p.f64(),
            keep: std::array::from_fn(|_| p.f64()),
            gap_days: std::array::from_fn(|_| p.int(1, 3)),
            hour: std::array::from_fn(|_| p.int(0, 9 * HOUR)),
            reply: std::array::from_fn(|_| p.f64()),
            convert: p.f64(),
            stop: p.f64(),
            personal: p.f64(),
            silent_days: p.int(2, 20),
            outcome_delay: p.int(HOUR * 12, 3 * DAY),
            disqualified: p.f64(),
            territory: p.f64(),
        };
        Some(LeadDraw {
            idx,
            created,
            region,
            account,
            contact,
            source,
            product,
            pain,
            quality,
            inquiry,
            path,
        })
    }

    /// The lead's region's reps hired by its arrival, with their queues
    /// (entries that ended by `now` dropped).
    fn candidates(&mut self, d: &LeadDraw, now: i64) -> Vec<usize> {
        let org = self.org;
        let cands: Vec<usize> = org.region_reps[d.region]
            .iter()
            .copied()
            .filter(|&r| org.reps[r].hired <= d.created)
            .collect();
        for &r in &cands {
            self.queues[r].retain(|&(_, until)| until > d.created.min(now));
        }
        cands
    }

    fn unanswered(&self, r: usize, t: i64) -> u32 {
        self.queues[r]
            .iter()
            .filter(|&&(from, until)| from <= t && t < until)
            .count() as u32
    }

    fn lead_view<'b>(&'b self, d: &'b LeadDraw, id: &'b str) -> LeadView<'b> {
        let a = &self.org.accounts[d.account];
        LeadView {
            id,
            created: d.created,
            source: d.source,
            account_id: &a.id,
            industry: a.industry,
            employees: a.employees as u32,
            region: REGIONS[d.region].0,
            title: a.contacts[d.contact].title,
            inquiry: &d.inquiry,
        }
    }

    fn rep_view(&self, r: usize, t: i64) -> RepView<'_> {
        let rep = &self.org.reps[r];
        RepView {
            id: &rep.id,
            team_id: &self.org.teams[rep.team].id,
            region: REGIONS[rep.region].0,
            unanswered: self.unanswered(r, t),
            // Everyone works the simulator's business hours, 08:00-18:00
            // on weekdays; a holiday runs to its end.
            at_work_in: {
                let back = rep.away_until(t).unwrap_or(t);
                if time::is_business_hours(back) {
                    back - t
                } else {
                    time::next_business_morning(back) - t
                }
            },
            away_until: rep.away_until(t),
            weekly_hours: 50.0,
        }
    }

    /// The lead's owner: the territory's rule before the policy start, the
    /// run's routing after it.
    fn route(&mut self, d: &LeadDraw) -> usize {
        let cands = self.candidates(d, d.created);
        let territory =
            cands[((d.path.territory * cands.len() as f64) as usize).min(cands.len() - 1)];
        if d.created < self.policies.start {
            return territory;
        }
        let mut routing = std::mem::replace(&mut self.policies.routing, Routing::Territory);
        let owner = match &mut routing {
            Routing::Territory => territory,
            Routing::RoundRobin => {
                let next = &mut self.round_robin[d.region];
                let r = cands[*next % cands.len()];
                *next += 1;
                r
            }
            Routing::Policy(p) => {
                let id = lead_id(d.idx);
                let lead = self.lead_view(d, &id);
                let views: Vec<RepView> =
                    cands.iter().map(|&r| self.rep_view(r, d.created)).collect();
                let k = p.route(&lead, &views);
                cands[k.min(cands.len() - 1)]
            }
        };
        self.policies.routing = routing;
        owner
    }

    /// The touches after the first reply, with stop-on-reply and
    /// personalisation: the rep's habit, or the run's cadence after the
    /// policy start.
    fn follow_up(&mut self, d: &LeadDraw, r: usize, first: i64) -> CadencePlan {
        let rep = &self.org.reps[r];
        let path = &d.path;
        if d.created >= self.policies.start
            && let Cadence::Policy(_) = &self.policies.cadence
        {
            let mut cadence = std::mem::replace(&mut self.policies.cadence, Cadence::Rep);
            let Cadence::Policy(p) = &mut cadence else {
                unreachable!()
            };
            let id = lead_id(d.idx);
            let lead = self.lead_view(d, &id);
            let view = self.rep_view(r, d.created);
            let mut plan = p.plan(&lead, &view, first, REP_CADENCE[0]);
            self.policies.cadence = cadence;
            plan.touches.truncate(MAX_TOUCHES - 1);
            return plan;
        }
        let keep_going = sigmoid(-0.2 + 0.9 * rep.skill(FOLLOW_UP, d.created));
        let mut n = 1;
        while n < 10 && path.keep[n - 1] < keep_going {
            n += 1;
        }
        let mut t = first;
        let mut touches = Vec::new();
        for ((&gap, &hour), &channel) in path.gap_days[1..n]
            .iter()
            .zip(&path.hour[1..n])
            .zip(&REP_CADENCE[1..n])
        {
            t = time::next_business_morning(t + gap * DAY - 8 * HOUR) + hour;
            touches.push(PlannedTouch {
                at: t,
                channel,
                due: t,
            });
        }
        let personal = path.personal < sigmoid(0.7 + 0.6 * rep.skill(DISCOVERY, d.created));
        CadencePlan {
            touches,
            stop_on_reply: path.stop < sigmoid(1.0 + 0.8 * rep.skill(FOLLOW_UP, d.created)),
            personal: personal.then(|| {
                (
                    PRODUCTS[d.product].name.to_string(),
                    text::PAINS[d.pain].to_string(),
                )
            }),
        }
    }

    fn lead(&mut self, d: LeadDraw, r: usize) -> Result<(), SimError> {
        let cfg = self.cfg;
        let org = self.org;
        let rep = &org.reps[r];
        let account = &org.accounts[d.account];
        let contact = &account.contacts[d.contact];
        let path = &d.path;
        let (created, quality, source, product) = (d.created, d.quality, d.source, d.product);
        let id = lead_id(d.idx);
        let in_queue = self.unanswered(r, created);
        let queue = if cfg.capacity {
            f64::from(in_queue)
        } else {
            0.0
        };
        let off_hours = !time::is_business_hours(created);
        let speed = rep.skill(RESPONSE_SPEED, created);
        // A rep on holiday answers when back, and more leads slip.
        let away = rep.away_until(created);
        let never = path.never
            < sigmoid(
                -1.6 - 0.8 * speed
                    + if off_hours { 0.3 } else { 0.0 }
                    + if away.is_some() { 0.8 } else { 0.0 }
                    + 0.25 * queue,
            );
        let mut response_minutes = None;
        let mut planned: Vec<PlannedTouch> = Vec::new();
        let mut plan = CadencePlan::default();
        if never {
            self.queues[r].push((created, created + 2 * DAY));
        } else {
            let mut minutes =
                (60.0 * (-1.1 * speed).exp() * (1.0 + 0.35 * queue) * path.minutes.exp())
                    .clamp(0.5, 7.0 * 1440.0);
            if let Some(back) = away {
                let morning = time::next_business_morning(back - 1) + path.morning;
                minutes = minutes.min(120.0) + (morning - created) as f64 / 60.0;
            } else if off_hours && path.off_hours_wait < 0.8 {
                let morning = time::next_business_morning(created) + path.morning;
                minutes = minutes.min(120.0) + (morning - created) as f64 / 60.0;
            }
            response_minutes = Some(minutes);
            let first = created + (minutes * 60.0) as i64;
            self.queues[r].push((created, first));
            planned.push(PlannedTouch {
                at: first,
                channel: REP_CADENCE[0],
                due: first,
            });
            plan = self.follow_up(&d, r, first);
            for t in &plan.touches {
                let at = t.at.max(planned.last().map_or(first, |p| p.at));
                planned.push(PlannedTouch {
                    at,
                    due: t.due.max(first),
                    ..*t
                });
            }
        }
        let personal = plan.personal.as_ref().is_some_and(|(p, pain)| {
            same_words(p, PRODUCTS[product].name) && same_words(pain, text::PAINS[d.pain])
        });
        // The sequence: each touch may draw a reply; a stop-on-reply cadence
        // ends there, any other keeps touching (and pays for it).
        let seg = account.segment;
        let mut replied_at = None;
        let mut after_reply = 0u32;
        let mut made = 0;
        // True reply chances of the follow-ups at their send time and at
        // the time they fell due.
        let (mut at_send, mut at_due) = (0.0, 0.0);
        for (k, t) in planned.iter().enumerate() {
            if replied_at.is_some() {
                if plan.stop_on_reply {
                    break;
                }
                after_reply += 1;
            }
            made += 1;
            if k > 0 {
                let rest = REPLY_BASE[t.channel.index()] + 0.5 * quality - REPLY_DECAY * k as f64;
                at_send += sigmoid(rest + timing_effect(seg, t.channel, t.at, cfg.contact_timing));
                at_due += sigmoid(rest + timing_effect(seg, t.channel, t.due, cfg.contact_timing));
            }
            if replied_at.is_none() && (cfg.touch_effect || k == 0) {
                let mut q = REPLY_BASE[t.channel.index()] + 0.5 * quality - REPLY_DECAY * k as f64
                    + timing_effect(seg, t.channel, t.at, cfg.contact_timing);
                if cfg.touch_effect {
                    q += fatigue_effect(k);
                }
                if k == 0 && personal && cfg.personalisation {
                    q += PERSONAL_GAIN;
                }
                let mut p_reply = sigmoid(q);
                if !cfg.touch_effect {
                    // Without the mechanism the number of touches does not
                    // matter: one draw worth two average touches.
                    p_reply = 1.0 - (1.0 - p_reply).powi(2);
                }
                if path.reply[k] < p_reply {
                    replied_at = Some(k);
                }
            }
        }
        let touches_at: Vec<PlannedTouch> = planned[..made].to_vec();
        let n_touch = touches_at.len() as u32;
        let speed_term = match response_minutes {
            Some(m) if cfg.speed_effect => speed_effect(m),
            Some(_) => speed_effect(60.0),
            None => 0.0,
        };
        let fit = if cfg.lead_fit {
            LEAD_FIT * rep.affinity[seg]
        } else {
            0.0
        };
        let engaged_term = if replied_at.is_some() {
            speed_term
                - if cfg.touch_effect {
                    AFTER_REPLY_COST * f64::from(after_reply.min(AFTER_REPLY_MAX))
                } else {
                    0.0
                }
        } else {
            NOT_ENGAGED
        };
        let p = sigmoid(
            LEAD_CONVERSION_BASE
                + quality
                + 0.25 * rep.skill(PROSPECTING, created)
                + fit
                + engaged_term,
        );
        let converted = path.convert < p;
        let outcome_at = touches_at
            .last()
            .map_or(created + path.silent_days * DAY, |t| t.at)
            + path.outcome_delay;
        let campaign = match source {
            "webinar" | "content_download" | "event" => Some(campaign_id(created, source)),
            _ => None,
        };
        // The row, as known at the end of the window.
        let known = outcome_at <= self.end;
        let status = if converted && known {
            "converted"
        } else if known && !converted {
            if path.disqualified < 0.6 {
                "disqualified"
            } else {
                "nurturing"
            }
        } else if touches_at.first().is_some_and(|t| t.at <= self.end) {
            "working"
        } else {
            "new"
        };
        let first_response = touches_at
            .first()
            .filter(|t| t.at <= self.end)
            .map(|t| time::instant(t.at))
            .unwrap_or_default();
        let email = format!(
            "{}@{}.example",
            contact.name.to_lowercase().replace(' ', "."),
            account.name.split(' ').next().unwrap_or("x").to_lowercase()
        );
        self.out.leads.row([
            id.as_str(),
            &time::instant(created),
            source,
            campaign.as_deref().unwrap_or(""),
            &account.name,
            &contact.name,
            &email,
            contact.title,
            &d.inquiry,
            &rep.id,
            &first_response,
            status,
            if status == "converted" {
                time::instant(outcome_at)
            } else {
                String::new()
            }
            .as_str(),
            if status == "disqualified" {
                time::instant(outcome_at)
            } else {
                String::new()
            }
            .as_str(),
            &account.id,
            &contact.id,
        ])?;
        if let Some(c) = &campaign {
            let tid = format!("ct{:08}", d.idx + 1);
            let kind = if source == "event" || source == "webinar" {
                "attended"
            } else {
                "submitted"
            };
            self.out
                .campaign_touches
                .row([tid.as_str(), c, &id, &time::instant(created), kind])?;
        }
        // Labels of the touches that drew no reply: their own stream, so
        // they never shift the lead's draws.
        let mut labels = Rng::stream(cfg.seed, STREAM_LEAD_LABELS, d.idx);
        let mut test_rng = Rng::stream(cfg.seed, STREAM_MESSAGE_TEST, d.idx);
        for (k, t) in touches_at.iter().enumerate() {
            if t.at > self.end {
                break;
            }
            let kind = t.channel.as_str();
            let reply = replied_at == Some(k);
            // A message test on every emailed step of the inbound sequence:
            // the variant drawn evenly (and logged with its probability),
            // what a reply says drawn by the variant; its own stream, so
            // the lead's draws and the other labels never move.
            // With a sending policy, the week's probabilities from the
            // outcomes known by its start.
            let probs = match self.policies.messages.as_mut() {
                Some(pol) if t.channel == Channel::Email => {
                    let week = (t.at - cfg.start).div_euclid(7 * DAY);
                    let week_start = cfg.start + week * 7 * DAY;
                    let history = &self.message_history;
                    Some(
                        self.message_probs
                            .entry((k, week))
                            .or_insert_with(|| {
                                let known: Vec<(usize, u8)> = history
                                    .get(&k)
                                    .into_iter()
                                    .flatten()
                                    .filter(|x| x.0 <= week_start)
                                    .map(|x| (x.1, x.2))
                                    .collect();
                                pol.probabilities(k, MESSAGE_VARIANTS.len(), &known)
                            })
                            .clone(),
                    )
                }
                _ => None,
            };
            let variant = (t.channel == Channel::Email && t.at <= self.end).then(|| {
                let v = match &probs {
                    Some(p) => {
                        let u = test_rng.f64();
                        let mut acc = 0.0;
                        p.iter()
                            .position(|x| {
                                acc += x;
                                u < acc
                            })
                            .unwrap_or(p.len() - 1)
                    }
                    None => test_rng.below(MESSAGE_VARIANTS.len()),
                };
                let shares = message_variant_shares(cfg.seed, k);
                let u = test_rng.f64();
                self.message_truth.record(k, reply, converted, &shares, v);
                let said = match (reply, converted) {
                    (false, _) => None,
                    (true, true) if u < shares[v].0 => Some("meeting_booked"),
                    (true, false) if u < shares[v].1 => Some("replied_negative"),
                    (true, _) => Some("replied_positive"),
                };
                if probs.is_some() {
                    use crate::policy::{
                        MESSAGE_MEETING, MESSAGE_NEGATIVE, MESSAGE_NONE, MESSAGE_POSITIVE,
                        MESSAGE_REPLY_DAYS, MESSAGE_SILENCE_DAYS,
                    };
                    let (class, days) = match said {
                        Some("meeting_booked") => (MESSAGE_MEETING, MESSAGE_REPLY_DAYS),
                        Some("replied_negative") => (MESSAGE_NEGATIVE, MESSAGE_REPLY_DAYS),
                        Some(_) => (MESSAGE_POSITIVE, MESSAGE_REPLY_DAYS),
                        None => (MESSAGE_NONE, MESSAGE_SILENCE_DAYS),
                    };
                    self.message_history
                        .entry(k)
                        .or_default()
                        .push((t.at + days * DAY, v, class));
                }
                (v, said)
            });
            let outcome = match t.channel {
                Channel::Call if reply => "connected",
                Channel::Call => ["voicemail", "no_answer"][labels.weighted(&[0.58, 0.42])],
                _ if reply => variant.and_then(|(_, said)| said).unwrap_or("replied"),
                Channel::Email => {
                    ["opened", "sent", "bounced"][labels.weighted(&[0.45, 0.52, 0.03])]
                }
                Channel::Sms => "delivered",
            };
            let duration = if outcome == "connected" {
                labels.int(120, 900).to_string()
            } else {
                String::new()
            };
            let aid = self.activity_id();
            self.out.activities.row([
                aid.as_str(),
                kind,
                "outbound",
                &time::instant(t.at),
                &duration,
                outcome,
                &format!("Re: your inquiry about {}", PRODUCTS[product].name),
                "seq-inbound",
                &(k + 1).to_string(),
                &rep.id,
                &id,
                "",
                &contact.id,
                &account.id,
                &variant.map_or(String::new(), |(v, _)| {
                    format!("seq-inbound-{}-{}", k + 1, MESSAGE_VARIANTS[v])
                }),
                &match (&variant, &probs) {
                    (Some((v, _)), Some(p)) => format!("{:.6}", p[*v]),
                    (Some(_), None) => MESSAGE_PROPENSITY.to_string(),
                    _ => String::new(),
                },
            ])?;
            self.tally.activities += 1;
        }
        self.tally.leads += 1;
        self.tally.leads_never_answered += u64::from(never);
        let policy = d.created >= self.policies.start;
        if policy {
            self.tally.policy_leads += 1;
            self.tally.policy_converted += u64::from(converted);
            self.tally.policy_never += u64::from(never);
        }
        push_json(
            &mut self.out.gt_leads,
            &mut self.out.gt_leads_n,
            &json!({"id": id, "true_conversion_probability": round4(p), "quality": round4(quality),
                    "segment": SEGMENTS[seg].id, "owner": rep.id,
                    "unanswered_at_arrival": in_queue, "owner_away": away.is_some(),
                    "response_minutes": response_minutes.map(round4), "touches": n_touch,
                    "planned_touches": planned.len(), "replied_at_touch": replied_at.map(|k| k + 1),
                    "touches_after_reply": after_reply, "personal": personal,
                    "follow_up_reply_chance": (made > 1).then(|| round4(at_send / (made - 1) as f64)),
                    "follow_up_reply_chance_when_due": (made > 1).then(|| round4(at_due / (made - 1) as f64)),
                    "product": PRODUCTS[product].name, "pain": text::PAINS[d.pain],
                    "under_policy": policy, "converted": converted}),
        )?;
        if converted && known {
            self.tally.leads_converted += 1;
            self.opportunity(OppSeed {
                created: outcome_at,
                rep: r,
                account: d.account,
                lead: Some((id, quality, source, Some(contact.id.clone()))),
                kind: Kind::NewBusiness,
                product: Some(product),
                bonus: 0.0,
                amount: None,
                key: None,
            })?;
        }
        Ok(())
    }

    /// Whether deal `view` of rep `r` gets a focus meeting this week (see
    /// [`Focus`]); `None` without a focus policy or when nothing happens.
    /// Draws come from the deal week's own stream, whatever the policy.
    fn focus_decision(&mut self, view: &DealView, r: usize, idx: u64) -> Option<FocusDecision> {
        let a = self.adherence.get(r).copied().unwrap_or(0.0);
        let mut rng = Rng::stream(
            self.cfg.seed,
            crate::STREAM_FOCUS_CHOICE,
            focus_key(idx, view.at, self.cfg.start),
        );
        let (u_follow, u_own) = (rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0));
        let f = self.policies.focus.as_mut()?;
        let own_pick = f.own.0.score(view) >= f.own.1;
        match f.list.as_mut() {
            Some((scorer, threshold)) => {
                let score = scorer.score(view);
                let recommended = score >= *threshold;
                let followed = recommended && u_follow < a;
                let own = !followed && own_pick && u_own >= a;
                let probability = if recommended {
                    scorer.probability(view)
                } else {
                    None
                };
                (recommended || own).then_some(FocusDecision {
                    recommended,
                    followed,
                    own,
                    score,
                    probability,
                    own_otherwise: if own_pick { 1.0 - a } else { 0.0 },
                })
            }
            None => own_pick.then_some(FocusDecision {
                recommended: false,
                followed: false,
                own: true,
                score: 0.0,
                probability: None,
                own_otherwise: 1.0,
            }),
        }
    }

    fn activity_id(&mut self) -> String {
        self.next_act += 1;
        format!("act{:09}", self.next_act)
    }

    /// The oracle: the probability, under the model, that a deal at stage `k`
    /// with strength `s` is eventually won, given whether this stage's call is
    /// done. Future call effects are integrated with the probit approximation.
    fn oracle(&self, r: usize, t: i64, k: usize, s: f64, call_done: bool) -> f64 {
        let rep = &self.org.reps[r];
        let mut m = 0.0;
        let mut v = 0.0;
        let mut p = 1.0;
        for j in k..5 {
            if j >= 1 && !(j == k && call_done) {
                let (cm, cv) = text::call_effect_moments(rep, t, j, s + m);
                m += cm;
                v += cv;
            }
            let bonus = if j == 4 {
                CLOSING_WEIGHT * rep.skill(CLOSING, t)
            } else {
                0.0
            };
            p *=
                sigmoid((ALPHA[j] + s + m + bonus) / (1.0 + std::f64::consts::PI * v / 8.0).sqrt());
        }
        p
    }

    /// The oracle without the deal's own strength draw: [`Self::oracle`]
    /// averaged over that draw (normal, s.d. [`DEAL_DRAW_SD`]) around the
    /// strength `s` the deal would have without it, weighted by `log_weight`
    /// at each grid point on top of the prior. With zero weights it knows
    /// everything the oracle knows (true stage, rep skills, segment, fit, lead
    /// quality, the calls so far) except the one term no record states; with
    /// the log-likelihood of the deal's history it infers that term the way a
    /// perfect model of the records could.
    fn oracle_over_draw(
        &self,
        r: usize,
        t: i64,
        k: usize,
        s: f64,
        call_done: bool,
        log_weight: &[f64; DRAW_GRID],
    ) -> f64 {
        let lw: [f64; DRAW_GRID] = std::array::from_fn(|i| DRAW_WEIGHTS[i].ln() + log_weight[i]);
        let top = lw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut num = 0.0;
        let mut den = 0.0;
        for (i, l) in lw.iter().enumerate() {
            let w = (l - top).exp();
            if w < 1e-12 {
                continue;
            }
            num += w * self.oracle(r, t, k, s + DEAL_DRAW_SD * DRAW_NODES[i], call_done);
            den += w;
        }
        num / den
    }

    /// Simulates one opportunity from creation to its fate (even past the end
    /// of the window, for the ground truth) and writes what is known by the end.
    pub fn opportunity(&mut self, seed: OppSeed) -> Result<(), SimError> {
        if seed.created >= self.end {
            return Ok(());
        }
        let cfg = self.cfg;
        let org = self.org;
        let end = self.end;
        let idx = match seed.key {
            Some(k) => k,
            None => {
                self.next_opp += 1;
                self.next_opp - 1
            }
        };
        let id = format!("o{:08}", idx + 1);
        let mut rng = Rng::stream(cfg.seed, STREAM_OPP, idx);
        let rep = &org.reps[seed.rep];
        let account = &org.accounts[seed.account];
        let seg = &SEGMENTS[account.segment];
        let product = seed
            .product
            .unwrap_or_else(|| rng.weighted(&seg.product_need));
        let prod = &PRODUCTS[product];
        let mut amount = seed.amount.unwrap_or_else(|| {
            let base = prod.list_price * if prod.per_size { account.seats() } else { 1.0 };
            (base * rng.uniform(0.85, 1.2) / 100.0).round() * 100.0
        });
        let need_mean = seg.product_need.iter().sum::<f64>() / 6.0;
        let fit = 0.3 * (seg.product_need[product].max(0.05) / need_mean).ln();
        let affinity = rep.affinity[account.segment];
        let lead_q = seed.lead.as_ref().map_or(0.0, |l| 0.25 * l.1);
        let kind_bonus = match seed.kind {
            Kind::NewBusiness => 0.0,
            Kind::Expansion => 0.4,
            Kind::Renewal => 0.0,
        };
        let draw = rng.gauss(0.0, DEAL_DRAW_SD);
        let mut s0 = seg.base + affinity + fit + lead_q + kind_bonus + seed.bonus + draw;
        // The market shift: deals created from then on are smaller and
        // harder to win (no extra draws, so everything else is as without it).
        if cfg.drift_at.is_some_and(|d| seed.created >= d) {
            s0 -= crate::DRIFT_STRENGTH;
            amount = (amount * crate::DRIFT_AMOUNT / 100.0).round() * 100.0;
        }
        let k0 = match seed.kind {
            Kind::NewBusiness if seed.lead.is_none() => 0,
            Kind::Renewal => 3,
            _ => 1,
        };
        let size_mult = [0.8, 1.0, 1.4][account.size];
        let median_days: [f64; 5] = std::array::from_fn(|k| STAGE_DAYS[k] * seg.cycle * size_mult);
        let stage_len = |rng: &mut Rng, k: usize, s: f64| -> i64 {
            let median = stage_median(median_days[k], s);
            ((rng.lognormal(median, STAGE_LEN_SIGMA).clamp(1.0, 240.0)) * DAY as f64) as i64
        };
        // What the records show of the deal, for the oracle that infers its draw.
        let mut pending: Vec<(i64, Evidence)> = Vec::new();
        let mut history_ll = [0.0; DRAW_GRID];
        let mut touches: Vec<(i64, bool, bool)> = Vec::new();
        // What the CRM holds of the deal's touches (for deal policies).
        let mut log: Vec<(i64, u8, bool)> = Vec::new();
        let mut focus_log: Vec<serde_json::Value> = Vec::new();
        let mut focus_held = 0u32;
        let deal_policy = self.policies.observer.is_some() || self.policies.focus.is_some();
        let mut contacts: Vec<usize> = (0..account.contacts.len()).collect();
        let rank = |s: &str| {
            ["individual", "manager", "director", "vp", "c_level"]
                .iter()
                .position(|x| *x == s)
                .unwrap_or(0)
        };
        contacts.sort_by_key(|&c| rank(account.contacts[c].seniority));

        // Walk the stages.
        let mut s = s0;
        let mut t = seed.created;
        let mut snaps: Vec<serde_json::Value> = Vec::new();
        let mut entered_changes: Vec<(i64, usize, &'static str)> = Vec::new(); // (time, entered stage, forecast category)
        let mut entered = k0;
        let mut amount_changes: Vec<(i64, f64)> = vec![(seed.created, amount)];
        let mut outcome: Option<(bool, i64, Option<&'static str>)> = None;
        let mut last_unhandled: Option<usize> = None;
        let recorded_share = cfg.transcript_share;
        let mut next_snapshot = {
            // Mondays at 00:00 from the first one after creation.
            let d = time::day_start(seed.created) + DAY;
            d + ((7 - time::weekday(d)) % 7) * DAY
        };
        for k in k0..5 {
            // The rep enters a stage for the deal, per their bias.
            let (off, cat_shift) = match rep.bias {
                Bias::Optimistic if rng.chance(rep.bias_strength) => (1i64, 1i64),
                Bias::Sandbagging if rng.chance(rep.bias_strength) => (-1, -1),
                Bias::Accurate if rng.chance(0.05) => (if rng.chance(0.5) { 1 } else { -1 }, 0),
                _ => (0, 0),
            };
            // A region entering stages ahead of the buyer from a date on
            // (the entry-bias switch), drawn apart from the deal's story.
            self.entry_key += 1;
            let inflated = self.entry_bias == Some(rep.region)
                && t >= self.entry_bias_start
                && Rng::stream(self.cfg.seed, STREAM_ENTRY, self.entry_key)
                    .chance(crate::ENTRY_BIAS_SHARE);
            let (off, cat_shift) = if inflated {
                (off.max(0) + 1, cat_shift.max(0) + 1)
            } else {
                (off, cat_shift)
            };
            let target = (k as i64 + off).clamp(0, 4) as usize;
            entered = entered.max(target);
            let base_cat: i64 = match entered {
                0 | 1 => 0,
                2 => i64::from(rng.chance(0.4)),
                3 => 1,
                _ => 2,
            };
            let cat =
                ["pipeline", "best_case", "commit"][(base_cat + cat_shift).clamp(0, 2) as usize];
            let at = if k == k0 {
                seed.created
            } else {
                t + rng.int(0, 2 * DAY)
            };
            if entered_changes
                .last()
                .is_none_or(|l| l.1 != entered || l.2 != cat)
            {
                entered_changes.push((at, entered, cat));
            }
            if k == 3 && rng.chance(0.5) {
                amount = (amount * rng.uniform(0.8, 1.25) / 100.0).round() * 100.0;
                amount_changes.push((t + rng.int(0, DAY), amount));
            }
            if k == 4 && rng.chance(0.5) {
                amount = (amount * rng.uniform(0.85, 0.98) / 100.0).round() * 100.0;
                amount_changes.push((t + rng.int(0, 2 * DAY), amount));
            }
            let s_start = s;
            let mut len = stage_len(&mut rng, k, s);
            if cfg.quarter_end && k == 4 {
                // Quarter-end pressure: deals near a quarter's end are pulled into it.
                let qe = time::quarter_end(t);
                if t + len > qe - 5 * DAY && t + len < qe + 25 * DAY && rng.chance(0.6) {
                    len = (qe - rng.int(0, 3) * DAY + rng.int(9 * HOUR, 17 * HOUR) - t).max(DAY);
                }
            }
            let call_at = if k >= 1 {
                let raw = t + (len as f64 * rng.uniform(0.15, 0.55)) as i64;
                Some(business_time(&mut rng, raw))
            } else {
                None
            };
            let decide_at = t + len;
            // Weekly snapshots before the call use the pre-call strength.
            let mut call_done = false;
            let mut s_now = s;
            let mut week = t;
            while week < decide_at {
                let week_end = (week + 7 * DAY).min(decide_at);
                let week_start = week;
                // Activities this week.
                touches.clear();
                self.deal_week(
                    &mut rng,
                    &id,
                    seed.rep,
                    seed.account,
                    &contacts,
                    k,
                    s_now,
                    week,
                    week_end,
                    &mut touches,
                    deal_policy.then_some(&mut log),
                )?;
                pending.extend(touches.iter().map(|&(at, email, success)| {
                    (
                        at,
                        Evidence::Touch {
                            email,
                            base: s_now - draw,
                            success,
                        },
                    )
                }));
                week = week_end;
                if let Some(ca) = call_at {
                    if !call_done && ca <= week {
                        call_done = true;
                        let want_text = rng.chance(recorded_share) && ca <= end;
                        let contact = &account.contacts
                            [contacts[contacts.len() - 1 - rng.below(contacts.len().min(2))]];
                        let (traits, turns) = text::call(
                            &mut rng,
                            rep,
                            ca,
                            k,
                            s_now,
                            account,
                            &contact.name,
                            prod.name,
                            want_text,
                        );
                        if want_text {
                            pending.push((
                                ca,
                                Evidence::Call {
                                    stage: k,
                                    base: s_now - draw,
                                    objections: traits.objections.len() as u32,
                                    next_steps: traits.next_steps,
                                },
                            ));
                        }
                        let effect = text::call_effect(&traits, rep.skill(PRODUCT_KNOWLEDGE, ca))
                            + rng.gauss(0.0, 0.25);
                        s_now += effect;
                        if let Some(o) = traits.objections.iter().find(|o| !o.1) {
                            last_unhandled = Some(o.0);
                        }
                        if ca <= end {
                            if deal_policy {
                                log.push((ca, 2, true));
                            }
                            self.write_call(
                                &id,
                                seed.rep,
                                seed.account,
                                contact,
                                k,
                                ca,
                                &traits,
                                &turns,
                            )?;
                        }
                    }
                }
                // The CRM's view of the week (its touches, some placed
                // earlier on the week's first day, are all drawn by now).
                if deal_policy && week_start <= end {
                    // What a focus meeting this week would bring (hidden).
                    let done = call_at.is_some_and(|c| c <= week_start);
                    let stalled = log
                        .iter()
                        .rev()
                        .find(|x| x.2)
                        .is_none_or(|x| week_start - x.0 >= STALLED_DAYS * DAY);
                    let gain =
                        FOCUS_GAIN * if stalled { 2.0 } else { 1.0 } / f64::from(1 + focus_held);
                    let p0 = self.oracle(seed.rep, week_start, k, s_now, done);
                    let p1 = self.oracle(seed.rep, week_start, k, s_now + gain, done);
                    let amount_now = amount_changes
                        .iter()
                        .rev()
                        .find(|c| c.0 <= week_start)
                        .map_or(amount, |c| c.1);
                    let mut stage_e = k0;
                    let mut since = seed.created;
                    for c in entered_changes.iter().take_while(|c| c.0 <= week_start) {
                        if c.1 != stage_e {
                            stage_e = c.1;
                            since = c.0;
                        }
                    }
                    let view = DealView {
                        id: id.clone(),
                        rep_id: rep.id.clone(),
                        at: week_start,
                        created: seed.created,
                        kind: seed.kind.name(),
                        industry: account.industry,
                        employees: account.employees,
                        stage: stage_e,
                        stage_since: since,
                        amount: amount_now,
                        touches: {
                            let mut t = log.clone();
                            t.sort_by_key(|x| x.0);
                            t
                        },
                        hidden_meeting_value: FOCUS_HELD * (p1 - p0) * amount_now,
                    };
                    if let Some(o) = self.policies.observer.as_mut() {
                        o.observe(&view);
                    }
                    if week_start >= self.policies.start
                        && let Some(d) = self.focus_decision(&view, seed.rep, idx)
                    {
                        let mut rf = Rng::stream(
                            cfg.seed,
                            crate::STREAM_FOCUS,
                            focus_key(idx, week_start, cfg.start),
                        );
                        let mut event = json!({"date": time::date(week_start), "recommended": d.recommended,
                                               "followed": d.followed, "own": d.own, "stalled": stalled,
                                               "expected_gain": round4(FOCUS_HELD * (p1 - p0))});
                        if d.recommended {
                            self.tally.focus_recommended += 1;
                            self.tally.focus_recommended_gain += FOCUS_HELD * (p1 - p0);
                            if week_start <= end {
                                self.tally.focus_logged += 1;
                                self.tally.focus_following_gain +=
                                    FOCUS_HELD * (p1 - p0) * (1.0 - d.own_otherwise);
                            }
                            event["expected_gain_of_following"] =
                                json!(round4(FOCUS_HELD * (p1 - p0) * (1.0 - d.own_otherwise)));
                            if week_start <= end
                                && let Some(log) = self.out.recommendations.as_mut()
                            {
                                log.row([
                                    time::date(week_start).as_str(),
                                    rep.id.as_str(),
                                    "deal",
                                    id.as_str(),
                                    account.id.as_str(),
                                    "meeting",
                                    "meeting",
                                    &time::instant(week_start),
                                    // The window closes when the meeting can
                                    // last be held: the business hours of
                                    // the week's last day (a weekend's moved
                                    // to the Monday).
                                    &time::instant(last_business_hour(
                                        week_start + (week_end - week_start).max(2) - 1,
                                    )),
                                    &d.probability.map_or(String::new(), |p| format!("{p:.4}")),
                                    &format!("{}", view.amount),
                                    &format!("{:.2}", d.score),
                                    "focus meeting: the deal's worth of a meeting this week",
                                ])?;
                            }
                        }
                        let slot = (seed.rep, (week_start - cfg.start).div_euclid(7 * DAY));
                        let cap = self.policies.focus.as_ref().map_or(0, |f| f.cap);
                        let room = self.focus_count.get(&slot).copied().unwrap_or(0) < cap;
                        let d = FocusDecision {
                            followed: d.followed && room,
                            own: d.own && room,
                            ..d
                        };
                        event["followed"] = json!(d.followed);
                        event["own"] = json!(d.own);
                        if d.followed || d.own {
                            *self.focus_count.entry(slot).or_default() += 1;
                            self.tally.focus_meetings += 1;
                            self.tally.focus_value += FOCUS_HELD * (p1 - p0) * view.amount;
                            if d.followed {
                                self.tally.focus_followed += 1;
                            }
                            let raw = week_start + rf.int(0, (week_end - week_start).max(2) - 1);
                            let at = business_time(&mut rf, raw);
                            let held = rf.chance(FOCUS_HELD);
                            if at <= end && at < decide_at {
                                let contact = &account.contacts[contacts[contacts.len() - 1]];
                                let aid = self.activity_id();
                                self.out.activities.row([
                                    aid.as_str(),
                                    "meeting",
                                    "outbound",
                                    &time::instant(at),
                                    &if held {
                                        rf.int(1800, 3600).to_string()
                                    } else {
                                        String::new()
                                    },
                                    if held { "held" } else { "no_show" },
                                    "Deal review",
                                    if d.followed {
                                        crate::FROM_LIST_SEQUENCE
                                    } else {
                                        ""
                                    },
                                    "",
                                    &rep.id,
                                    "",
                                    &id,
                                    &contact.id,
                                    &account.id,
                                    "",
                                    "",
                                ])?;
                                self.tally.activities += 1;
                                log.push((at, 2, held));
                            }
                            if held {
                                focus_held += 1;
                                s_now += gain;
                                event["held"] = json!(true);
                                event["gain"] = json!(round4(p1 - p0));
                            } else {
                                event["held"] = json!(false);
                            }
                        }
                        focus_log.push(event);
                    }
                }
                while next_snapshot < week.min(decide_at) {
                    if next_snapshot > end {
                        break;
                    }
                    if next_snapshot >= seed.created {
                        let done = call_at.is_some_and(|c| c <= next_snapshot);
                        let s_snap = if done { s_now } else { s };
                        let p = self.oracle(seed.rep, next_snapshot, k, s_snap, done);
                        let flat = [0.0; DRAW_GRID];
                        let p_no_draw = self.oracle_over_draw(
                            seed.rep,
                            next_snapshot,
                            k,
                            s_snap - draw,
                            done,
                            &flat,
                        );
                        // The deal's history up to the snapshot (each piece
                        // folded in once), and the time spent in this stage so far.
                        pending.retain(|(at, e)| {
                            if *at > next_snapshot {
                                return true;
                            }
                            for (l, z) in history_ll.iter_mut().zip(DRAW_NODES) {
                                *l += evidence_ll(e, DEAL_DRAW_SD * z, &median_days, rep, *at);
                            }
                            false
                        });
                        let mut ll = history_ll;
                        let elapsed = ((next_snapshot - t) as f64 / DAY as f64).max(0.5);
                        for (l, z) in ll.iter_mut().zip(DRAW_NODES) {
                            let median = stage_median(median_days[k], s - draw + DEAL_DRAW_SD * z);
                            *l += normal_tail((elapsed / median).ln() / STAGE_LEN_SIGMA)
                                .max(1e-300)
                                .ln();
                        }
                        let p_inferred = self.oracle_over_draw(
                            seed.rep,
                            next_snapshot,
                            k,
                            s_snap - draw,
                            done,
                            &ll,
                        );
                        let entered_then = entered_changes
                            .iter()
                            .rev()
                            .find(|c| c.0 <= next_snapshot)
                            .map_or(k0, |c| c.1);
                        snaps.push(json!({"date": time::date(next_snapshot), "true_stage": STAGES[k],
                                          "entered_stage": STAGES[entered_then], "true_win_probability": round4(p),
                                          "win_probability_without_deal_draw": round4(p_no_draw),
                                          "win_probability_draw_inferred": round4(p_inferred)}));
                    }
                    next_snapshot += 7 * DAY;
                }
            }
            s = s_now;
            let bonus = if k == 4 {
                CLOSING_WEIGHT * rep.skill(CLOSING, decide_at)
            } else {
                0.0
            };
            let advance = rng.chance(sigmoid(ALPHA[k] + s + bonus));
            if advance {
                pending.push((
                    decide_at,
                    Evidence::Advanced {
                        k,
                        base_start: s_start - draw,
                        base_end: s - draw,
                        bonus,
                        days: len as f64 / DAY as f64,
                    },
                ));
            }
            t = decide_at;
            if !advance {
                let reason = match last_unhandled {
                    Some(o) => loss_reason(o),
                    None => ["No decision", "Went dark", "Budget cut"][rng.below(3)],
                };
                outcome = Some((false, t, Some(reason)));
                break;
            }
            if k == 4 {
                outcome = Some((true, t, None));
            }
        }
        let (won, closed_at, loss) = outcome.unwrap_or((false, t, Some("No decision")));
        let closed_in_window = closed_at <= end;

        // Expected close dates: planned at creation, pushed whenever passed.
        let factor = match rep.bias {
            Bias::Optimistic => 0.7,
            Bias::Sandbagging => 1.25,
            Bias::Accurate => 1.0,
        };
        let planned: f64 = (k0..5)
            .map(|k| STAGE_DAYS[k] * seg.cycle * size_mult)
            .sum::<f64>()
            * factor;
        let round_close = |rng: &mut Rng, t: i64| -> i64 {
            match rng.weighted(&[0.4, 0.35, 0.25]) {
                0 => time::day_start(t),
                1 => time::month_end(t),
                _ => time::quarter_end(t),
            }
        };
        let mut close_changes: Vec<(i64, i64)> = Vec::new(); // (changed at, expected close)
        let mut expected = round_close(&mut rng, seed.created + (planned * DAY as f64) as i64);
        close_changes.push((seed.created, expected));
        while expected + DAY < closed_at.min(end) {
            let at = expected + DAY + rng.int(0, 5 * DAY);
            if at >= closed_at.min(end) {
                break;
            }
            let next = at + rng.int(14, 45) * DAY;
            expected = round_close(&mut rng, next);
            close_changes.push((at, expected));
        }
        if closed_in_window && time::day_start(closed_at) != expected {
            close_changes.push((closed_at, time::day_start(closed_at)));
        }

        // Write what the CRM shows at the end of the window.
        let stage_now = if closed_in_window {
            if won { "closed_won" } else { "closed_lost" }
        } else {
            STAGES[entered_changes
                .iter()
                .rev()
                .find(|c| c.0 <= end)
                .map_or(k0, |c| c.1)]
        };
        let cat_now = if closed_in_window {
            if won { "closed" } else { "omitted" }
        } else {
            entered_changes
                .iter()
                .rev()
                .find(|c| c.0 <= end)
                .map_or("pipeline", |c| c.2)
        };
        let amount_now = amount_changes
            .iter()
            .rev()
            .find(|c| c.0 <= end)
            .map_or(amount, |c| c.1);
        let close_now = close_changes
            .iter()
            .rev()
            .find(|c| c.0 <= end)
            .map_or(expected, |c| c.1);
        let (lead_id, lead_source) = match &seed.lead {
            Some((l, _, src, _)) => (l.as_str(), *src),
            None => (
                "",
                if seed.kind == Kind::NewBusiness {
                    "outbound"
                } else {
                    "existing_customer"
                },
            ),
        };
        self.out.opportunities.row([
            id.as_str(),
            &format!("{} - {}", account.name, prod.name),
            &account.id,
            &rep.id,
            lead_id,
            &format!("{amount_now:.0}"),
            stage_now,
            cat_now,
            &time::instant(seed.created),
            &time::date(close_now),
            &if closed_in_window {
                time::date(closed_at)
            } else {
                String::new()
            },
            if closed_in_window {
                loss.unwrap_or("")
            } else {
                ""
            },
            lead_source,
            seed.kind.name(),
        ])?;
        self.out.opportunity_products.row([
            id.as_str(),
            prod.id,
            "1",
            &format!("{amount_now:.0}"),
            &format!("{amount_now:.0}"),
        ])?;
        // History: every change known by the end, each with its time.
        let h = &mut self.out.history;
        let mut prev_stage: Option<&str> = None;
        let mut prev_cat: Option<&str> = None;
        for (at, st, cat) in &entered_changes {
            // A stage the rep would have entered after the deal closed (its
            // entry lags the stage by up to two days) never reaches the CRM.
            if *at > end || (closed_in_window && *at + 1 >= closed_at) {
                break;
            }
            if prev_stage != Some(STAGES[*st]) {
                h.row([
                    id.as_str(),
                    "stage",
                    &time::instant(*at),
                    STAGES[*st],
                    prev_stage.unwrap_or(""),
                ])?;
                prev_stage = Some(STAGES[*st]);
            }
            if prev_cat != Some(*cat) {
                h.row([
                    id.as_str(),
                    "forecast_category",
                    &time::instant(*at + 1),
                    cat,
                    prev_cat.unwrap_or(""),
                ])?;
                prev_cat = Some(cat);
            }
        }
        if closed_in_window {
            let at = time::instant(closed_at);
            h.row([
                id.as_str(),
                "stage",
                &at,
                stage_now,
                prev_stage.unwrap_or(""),
            ])?;
            h.row([
                id.as_str(),
                "forecast_category",
                &time::instant(closed_at + 1),
                cat_now,
                prev_cat.unwrap_or(""),
            ])?;
        }
        let mut prev_amount: Option<String> = None;
        for (at, a) in &amount_changes {
            if *at > end {
                break;
            }
            let v = format!("{a:.0}");
            if prev_amount.as_deref() != Some(v.as_str()) {
                h.row([
                    id.as_str(),
                    "amount",
                    &time::instant(*at + 2),
                    &v,
                    prev_amount.as_deref().unwrap_or(""),
                ])?;
                prev_amount = Some(v);
            }
        }
        let mut prev_close: Option<String> = None;
        for (at, c) in &close_changes {
            if *at > end {
                break;
            }
            let v = time::date(*c);
            if prev_close.as_deref() != Some(v.as_str()) {
                h.row([
                    id.as_str(),
                    "close_date",
                    &time::instant(*at + 3),
                    &v,
                    prev_close.as_deref().unwrap_or(""),
                ])?;
                prev_close = Some(v);
            }
        }
        h.row([
            id.as_str(),
            "owner_id",
            &time::instant(seed.created + 4),
            &rep.id,
            "",
        ])?;

        self.tally.opportunities += 1;
        if closed_in_window {
            if won {
                self.tally.won += 1;
            } else {
                self.tally.lost += 1;
            }
        }
        push_json(&mut self.out.gt_opps, &mut self.out.gt_opps_n, &{
            let mut g = json!({"id": id, "won": won, "closed_in_window": closed_in_window, "closes_at": time::date(closed_at),
                    "kind": seed.kind.name(), "strength_at_creation": round4(s0), "snapshots": snaps});
            if !focus_log.is_empty() {
                g["focus"] = json!(focus_log);
            }
            g
        })?;
        if won && closed_in_window && closed_at >= self.policies.start {
            self.tally.bookings_after += amount_now;
            self.tally.won_after += 1;
        }
        if won && closed_at >= self.policies.start {
            self.tally.bookings_eventual += amount_now;
            self.tally.won_eventual += 1;
        }

        // Customers: usage, renewals and expansions.
        if won {
            self.wins.push((closed_at, seed.rep, s));
            self.customer(
                &mut rng,
                seed.rep,
                seed.account,
                product,
                amount_now,
                closed_at,
                s,
                idx,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn deal_week(
        &mut self,
        rng: &mut Rng,
        opp: &str,
        r: usize,
        a: usize,
        contacts: &[usize],
        k: usize,
        s: f64,
        from: i64,
        to: i64,
        touches: &mut Vec<(i64, bool, bool)>,
        mut log: Option<&mut Vec<(i64, u8, bool)>>,
    ) -> Result<(), SimError> {
        if from > self.end {
            return Ok(());
        }
        let rep = &self.org.reps[r];
        let account = &self.org.accounts[a];
        let frac = (to - from) as f64 / (7 * DAY) as f64;
        let lambda = (1.0 + 0.45 * rep.skill(FOLLOW_UP, from)).max(0.3)
            * [0.8, 1.0, 1.2, 1.3, 1.4][k]
            * frac;
        let n = rng.poisson(lambda);
        for _ in 0..n {
            let raw = from + rng.int(0, (to - from).max(1) - 1);
            let at = business_time(rng, raw);
            if at > self.end {
                continue;
            }
            let kind =
                ["email", "call", "meeting"][rng.weighted(&[0.55, 0.35, 0.05 + 0.03 * k as f64])];
            let outcome = match kind {
                "email" => {
                    if rng.chance(p_reply(s)) {
                        "replied"
                    } else if rng.chance(0.5) {
                        "opened"
                    } else {
                        "sent"
                    }
                }
                "call" => {
                    if rng.chance(p_connect(s)) {
                        "connected"
                    } else if rng.chance(0.5) {
                        "voicemail"
                    } else {
                        "no_answer"
                    }
                }
                _ => {
                    if rng.chance(0.88) {
                        "held"
                    } else {
                        "no_show"
                    }
                }
            };
            match kind {
                "email" => touches.push((at, true, outcome == "replied")),
                "call" => touches.push((at, false, outcome == "connected")),
                _ => {}
            }
            if let Some(l) = log.as_deref_mut() {
                let (k, yes) = match kind {
                    "call" => (0, outcome == "connected"),
                    "email" => (1, outcome == "replied"),
                    _ => (2, outcome == "held"),
                };
                l.push((at, k, yes));
            }
            // Later stages and stronger deals involve more, and more senior, people.
            let pool = (1 + k + usize::from(s > 0.8)).min(contacts.len());
            let contact = &account.contacts[contacts[contacts.len() - pool + rng.below(pool)]];
            let direction = if kind == "email" && outcome == "replied" && rng.chance(0.3) {
                "inbound"
            } else {
                "outbound"
            };
            let duration = match (kind, outcome) {
                ("call", "connected") => rng.int(180, 1500).to_string(),
                ("meeting", "held") => rng.int(1200, 3600).to_string(),
                _ => String::new(),
            };
            let aid = self.activity_id();
            self.out.activities.row([
                aid.as_str(),
                kind,
                direction,
                &time::instant(at),
                &duration,
                outcome,
                "",
                "",
                "",
                &rep.id,
                "",
                opp,
                &contact.id,
                &account.id,
                "",
                "",
            ])?;
            self.tally.activities += 1;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn write_call(
        &mut self,
        opp: &str,
        r: usize,
        a: usize,
        contact: &crate::model::Contact,
        k: usize,
        at: i64,
        traits: &text::CallTraits,
        turns: &[text::Turn],
    ) -> Result<(), SimError> {
        let rep = &self.org.reps[r];
        let account = &self.org.accounts[a];
        let aid = self.activity_id();
        self.out.activities.row([
            aid.as_str(),
            "meeting",
            "outbound",
            &time::instant(at),
            &traits.duration_s.to_string(),
            "held",
            text::STAGE_CALLS[k],
            "",
            "",
            &rep.id,
            "",
            opp,
            &contact.id,
            &account.id,
            "",
            "",
        ])?;
        self.tally.activities += 1;
        if turns.is_empty() {
            return Ok(());
        }
        self.next_conv += 1;
        let cid = format!("call{:08}", self.next_conv);
        let spoken_s = turns.last().map_or(0, |t| t.end_ms / 1000);
        let vtt_name = (self.out.vtt_written < self.cfg.vtt_sample).then(|| cid.clone());
        self.out.conversations.row([
            cid.as_str(),
            &time::instant(at),
            &spoken_s.to_string(),
            &format!("{} - {}", text::STAGE_CALLS[k], account.name),
            &aid,
            opp,
            "",
            &rep.id,
            &vtt_name
                .as_ref()
                .map(|n| format!("{n}.vtt"))
                .unwrap_or_default(),
        ])?;
        for (i, turn) in turns.iter().enumerate() {
            let (speaker, role) = if turn.rep {
                (rep.name.as_str(), "rep")
            } else {
                (contact.name.as_str(), "customer")
            };
            self.out.turns.row([
                cid.as_str(),
                &i.to_string(),
                speaker,
                role,
                &turn.start_ms.to_string(),
                &turn.end_ms.to_string(),
                &turn.text,
            ])?;
        }
        self.tally.conversations += 1;
        if let Some(name) = vtt_name {
            let vt: Vec<pipewise_core::transcript::Turn> = turns
                .iter()
                .map(|t| {
                    pipewise_core::transcript::Turn::spoken(
                        Some(if t.rep {
                            rep.name.clone()
                        } else {
                            contact.name.clone()
                        }),
                        t.start_ms,
                        t.end_ms,
                        t.text.clone(),
                    )
                })
                .collect();
            let sidecar = json!({"id": cid, "opportunity_id": opp, "user_id": rep.id, "activity_id": aid, "started_at": time::instant(at),
                                 "title": format!("{} - {}", text::STAGE_CALLS[k], account.name),
                                 "speakers": {rep.name.clone(): "rep", contact.name.clone(): "customer"}});
            self.out.write_vtt(
                &name,
                &pipewise_core::transcript::render_vtt(&vt),
                &sidecar.to_string(),
            )?;
        }
        Ok(())
    }

    /// A won deal makes a customer: monthly usage, a renewal at a year
    /// (renewed or churned, driven by product health) and maybe an expansion.
    #[allow(clippy::too_many_arguments)]
    fn customer(
        &mut self,
        rng: &mut Rng,
        r: usize,
        a: usize,
        product: usize,
        amount: f64,
        since: i64,
        s: f64,
        parent: u64,
    ) -> Result<(), SimError> {
        let account = &self.org.accounts[a];
        let seg = &SEGMENTS[account.segment];
        let mut health = 0.3 * s + rng.gauss(0.0, 0.5) + 0.3 * seg.base;
        let seats = (account.seats() * 10.0).max(3.0);
        let renew_at = since + 365 * DAY;
        let mut t = since + 30 * DAY;
        while t < renew_at.min(self.end) {
            health = 0.85 * health + rng.gauss(0.0, 0.3);
            if t < self.cfg.start {
                // A customer of the installed base, before the window.
                t += 30 * DAY;
                continue;
            }
            self.next_usage += 1;
            let q = (seats * sigmoid(0.8 + health)).round();
            let uid = format!("ue{:09}", self.next_usage);
            self.out.usage.row([
                uid.as_str(),
                &account.id,
                &time::instant(t),
                "active_users",
                PRODUCTS[product].id,
                &format!("{q:.0}"),
            ])?;
            t += 30 * DAY;
        }
        let renewal_created = since + RENEWAL_LEAD_DAYS * DAY;
        if renewal_created < self.end {
            self.opportunity(OppSeed {
                created: renewal_created,
                rep: r,
                account: a,
                lead: None,
                kind: Kind::Renewal,
                product: Some(product),
                bonus: 1.3 + 1.0 * health,
                amount: Some((amount * rng.uniform(1.0, 1.08) / 100.0).round() * 100.0),
                key: self.stable_keys.then(|| child_key(parent, 0)),
            })?;
        }
        if rng.chance(0.4) {
            let created = since + rng.int(60, 240) * DAY;
            let mut need = seg.product_need;
            need[product] = 0.0;
            let next = rng.weighted(&need);
            if created < self.end && created >= self.cfg.start {
                self.opportunity(OppSeed {
                    created,
                    rep: r,
                    account: a,
                    lead: None,
                    kind: Kind::Expansion,
                    product: Some(next),
                    bonus: 0.3 * health,
                    amount: None,
                    key: self.stable_keys.then(|| child_key(parent, 1)),
                })?;
            }
        }
        Ok(())
    }
}

fn loss_reason(objection: usize) -> &'static str {
    match OBJECTIONS[objection] {
        "price" => "Price",
        "timing" => "Timing",
        "competitor" => "Lost to competitor",
        "authority" => "No decision maker",
        "need" => "No need",
        _ => "Stayed with status quo",
    }
}

pub fn campaign_id(t: i64, source: &str) -> String {
    let (y, m, _) = time::civil_from_days(t / DAY);
    let q = (m - 1) / 3 + 1;
    let kind = match source {
        "webinar" => "webinar",
        "event" => "event",
        _ => "content",
    };
    format!("cmp-{y}q{q}-{kind}")
}

/// A working-hours moment on the day of `t` (or the next weekday), 08:00-18:00.
/// The latest instant [`business_time`] can give for `t`.
fn last_business_hour(t: i64) -> i64 {
    let mut d = time::day_start(t);
    while time::weekday(d) >= 5 {
        d += DAY;
    }
    d + 18 * HOUR - 1
}

fn business_time(rng: &mut Rng, t: i64) -> i64 {
    let mut d = time::day_start(t);
    while time::weekday(d) >= 5 {
        d += DAY;
    }
    d + rng.int(8 * HOUR, 18 * HOUR - 1)
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The chance a new-business deal created at the first stage is won, for
/// evaluation against the hidden truth: the product of the five stages'
/// advance chances `sigmoid(ALPHA[k] + s)` (the last with the owner's
/// closing skill times 0.45 added), averaged over the deal's own strength
/// draw (normal, sd 0.7; a 41-point grid) around `strength` (segment offset,
/// rep affinity and product fit, on the log-odds scale). What activities
/// and calls add along the way is left out, so it is an approximation of
/// the walk's win rate, the same for every plan it compares.
pub fn win_probability_at_strength(strength: f64, closing: f64) -> f64 {
    let n = 41;
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..n {
        let z = -4.0 + 8.0 * i as f64 / (n - 1) as f64;
        let w = (-0.5 * z * z).exp();
        let s = strength + DEAL_DRAW_SD * z;
        let p: f64 = (0..5)
            .map(|k| {
                let bonus = if k == 4 {
                    CLOSING_WEIGHT * closing
                } else {
                    0.0
                };
                sigmoid(ALPHA[k] + s + bonus)
            })
            .product();
        num += w * p;
        den += w;
    }
    num / den
}
