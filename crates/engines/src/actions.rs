//! Next-best actions: each rep's ranked list for a day of what to work
//! (a deal, a lead, an account), what to do (call, email, meeting, a
//! cadence step, a renewal check, a cross-sell offer), when and on which
//! channel, with which message, why, and its expected value, fitted to the
//! selling time the rep has that day.
//!
//! The expected value of an action is `uplift × amount`: `uplift` is the
//! change in the chance of the outcome (winning the deal, converting the
//! lead, keeping the customer, opening an expansion) the action is expected
//! to make, `amount` what that outcome is worth. Each candidate says where its
//! uplift comes from (`uplift_source`):
//!
//! - deals: the win model's probability raised through the org's funnel
//!   by the channel's assumed shift in the deal's log-odds of passing each
//!   remaining stage ([`ASSUMED_SHIFT`], [`funnel_uplift`]; diminishing with
//!   the channel's touches of the last 30 days). The records cannot tell what a touch
//!   does (touches follow the deals that go well), so the shift is stated,
//!   and `pipewise adherence` measures what following the list was worth.
//! - leads: the lead model's conversion probability times the chance that
//!   this touch is the one that converts (the hazard of conversion at that
//!   touch number among the org's converted leads).
//! - renewals: the churn risk times a save rate (an assumption the caller
//!   states; default [`DEFAULT_SAVE_RATE`]).
//! - cross-sell: the chance the product is the account's next one times the
//!   chance a customer opens an expansion in the next 30 days at the org's
//!   yearly rate, for the org's mean expansion deal (amount × win rate).
//!
//! The day's list holds at most one action per target, chosen to fill the
//! rep's time by the multiple-choice knapsack's greedy rule (value per
//! minute of each upgrade: an email, a call instead, a meeting instead),
//! then ranked by expected value. Dismissals feed the ranking: a dismissed action is
//! hidden for a while (by reason), and an action kind reps often dismiss as
//! not useful is weighted down.

use std::collections::{HashMap, HashSet};

use pipewise_core::{Column, Table};
use pipewise_features::Data;
use pipewise_models::Classifier;
use pipewise_sim::policy::{DealScorer, DealView};
use serde::Serialize;

const DAY: i64 = 86_400;

/// The actions a list holds.
pub const ACTIONS: [&str; 6] = [
    "call",
    "email",
    "meeting",
    "cadence_step",
    "renewal_check",
    "cross_sell",
];

/// Why a rep dismissed an action, and how long it stays hidden (days).
/// `not_mine` hides every action on the target.
pub const REASONS: [(&str, i64); 5] = [
    ("done", 7),
    ("not_useful", 14),
    ("wrong_timing", 3),
    ("not_mine", 30),
    ("other", 7),
];

/// Whether `action` can be taken on a target of `kind` (`deal`: call,
/// email, meeting, renewal check; `lead`: a cadence step; `account`: a
/// cross-sell offer).
pub fn fits_target(kind: &str, action: &str) -> bool {
    matches!(
        (kind, action),
        ("deal", "call" | "email" | "meeting" | "renewal_check")
            | ("lead", "cadence_step")
            | ("account", "cross_sell")
    )
}

/// Days a dismissal with `reason` hides its action (7 for an unknown one).
pub fn hidden_days(reason: &str) -> i64 {
    REASONS.iter().find(|r| r.0 == reason).map_or(7, |r| r.1)
}

/// Minutes each action takes (a call with its notes, an email, a meeting
/// with its preparation, a renewal check-in, a cross-sell call with its
/// preparation); cadence steps by their channel.
pub fn minutes(action: &str, channel: &str) -> f64 {
    match (action, channel) {
        ("meeting", _) => 60.0,
        ("renewal_check", _) | ("cross_sell", _) => 30.0,
        (_, "call") => 15.0,
        (_, "sms") => 2.0,
        _ => 5.0,
    }
}

/// The share of a renewal's churn risk a check-in is assumed to save when
/// the caller gives none.
pub const DEFAULT_SAVE_RATE: f64 = 0.2;

/// The share of working time reps spend selling, when the caller gives no
/// hours: 28% in Salesforce's State of Sales (5th edition, 2022), rounded
/// to 30%.
pub const SELLING_SHARE: f64 = 0.3;

/// Days an action stays open to be acted on (its adherence window).
pub fn window_days(action: &str) -> i64 {
    match action {
        "cadence_step" => 1,
        "call" | "email" => 3,
        _ => 7,
    }
}

/// One recommended action.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = NextAction))]
pub struct Action {
    /// `deal`, `lead` or `account`.
    pub target_kind: String,
    /// The opportunity, lead or account id.
    pub target_id: String,
    /// The deal's, lead's company or account's name.
    pub target: Option<String>,
    pub account_id: Option<String>,
    /// One of [`ACTIONS`].
    pub action: String,
    /// `call`, `email`, `meeting` or `sms`.
    pub channel: String,
    /// When (YYYY-MM-DDTHH:MM:SSZ): the best hour of the day for the
    /// account's industry and the channel, or the cadence step's time.
    pub at: String,
    #[serde(skip)]
    pub at_epoch: i64,
    /// Days it stays open to be acted on, from `at`'s day.
    pub window_days: i64,
    /// The template, talking point or product to offer.
    pub message: Option<String>,
    /// Why, in words, strongest reason first.
    pub why: Vec<String>,
    /// The outcome's probability now (0-1) and which outcome: `win`,
    /// `conversion`, `churn` or `next_product`.
    pub probability: f64,
    pub probability_of: String,
    /// What the outcome is worth (currency units).
    pub amount: f64,
    /// The change in the outcome's probability the action is expected to
    /// make (for churn: the drop in risk).
    pub uplift: f64,
    /// How the uplift was found (see the module's documentation).
    pub uplift_source: String,
    /// uplift × amount (currency units).
    pub expected_value: f64,
    /// The weight dismissals give this action kind for the rep (1: none).
    pub feedback_weight: f64,
    /// The rep's time it takes (minutes).
    pub minutes: f64,
}

impl Action {
    fn key(&self) -> (String, String, String) {
        (
            self.target_kind.clone(),
            self.target_id.clone(),
            self.action.clone(),
        )
    }
}

/// A past dismissal.
#[derive(Debug, Clone)]
pub struct Dismissal {
    pub target_kind: String,
    pub target_id: String,
    pub action: String,
    /// One of [`REASONS`].
    pub reason: String,
    /// The start of the day of the list it was dismissed from (epoch
    /// seconds): it applies to that day's list and later ones.
    pub at: i64,
}

/// How a rep's dismissals shape a day's list.
#[derive(Debug, Clone, Default)]
pub struct Feedback {
    hidden: HashSet<(String, String, String)>,
    hidden_targets: HashSet<(String, String)>,
    weights: HashMap<String, f64>,
    /// Why each hidden item is hidden (for the report).
    pub hidden_count: usize,
}

/// Prior of an action kind being useful: a Beta(9, 1) pseudo-count of
/// ten, so a few dismissals barely move the weight and many do.
const PRIOR_USEFUL: f64 = 9.0;
const PRIOR_N: f64 = 10.0;

impl Feedback {
    /// From the rep's dismissals up to `day` (a day's start, epoch seconds) and how many
    /// times each action kind was recommended to them (`shown`).
    pub fn new(dismissals: &[Dismissal], shown: &HashMap<String, u32>, day: i64) -> Feedback {
        let mut f = Feedback::default();
        let mut not_useful: HashMap<&str, u32> = HashMap::new();
        let mut counted: HashSet<(&str, &str, &str)> = HashSet::new();
        for d in dismissals.iter().filter(|d| d.at <= day) {
            let days = REASONS.iter().find(|r| r.0 == d.reason).map_or(7, |r| r.1);
            // One action dismissed twice counts once.
            if d.reason == "not_useful" && counted.insert((&d.target_kind, &d.target_id, &d.action))
            {
                *not_useful.entry(d.action.as_str()).or_default() += 1;
            }
            if d.at + days * DAY > day {
                if d.reason == "not_mine" {
                    f.hidden_targets
                        .insert((d.target_kind.clone(), d.target_id.clone()));
                } else {
                    f.hidden
                        .insert((d.target_kind.clone(), d.target_id.clone(), d.action.clone()));
                }
            }
        }
        for a in ACTIONS {
            let n = f64::from(shown.get(a).copied().unwrap_or(0));
            let bad = f64::from(not_useful.get(a).copied().unwrap_or(0)).min(n);
            let w = ((n - bad + PRIOR_USEFUL) / (n + PRIOR_N)) / (PRIOR_USEFUL / PRIOR_N);
            f.weights.insert(a.to_string(), w.min(1.0));
        }
        f
    }

    fn hides(&self, a: &Action) -> bool {
        self.hidden.contains(&a.key())
            || self
                .hidden_targets
                .contains(&(a.target_kind.clone(), a.target_id.clone()))
    }

    fn weight(&self, action: &str) -> f64 {
        self.weights.get(action).copied().unwrap_or(1.0)
    }
}

/// A rep's list for a day.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayPlan {
    /// The chosen actions, highest expected value first.
    pub actions: Vec<Action>,
    /// The best of those that did not fit the time (at most 10).
    pub left_out: Vec<Action>,
    /// Selling minutes the rep has and the list takes.
    pub minutes_available: f64,
    pub minutes_planned: f64,
    /// Sum of the chosen actions' expected values (currency units).
    pub expected_value: f64,
    /// Candidates hidden by the rep's dismissals.
    pub hidden_by_dismissals: usize,
    /// Candidates considered (after hiding).
    pub candidates: usize,
}

/// Chooses the day's list from `candidates`: hides what `feedback` hides,
/// weights expected values by the feedback, and picks at most one action
/// per target to fill `minutes`, by the greedy rule of the multiple-choice
/// knapsack (Sinha and Zoltners, Operations Research 27(3), 1979): each
/// target's actions on the upper convex hull of (minutes, value) become
/// upgrade steps (email, then a call instead, then a meeting instead...),
/// taken in order of value per minute while they fit. Candidates with no
/// positive expected value are never chosen.
pub fn plan(candidates: Vec<Action>, feedback: &Feedback, minutes: f64) -> DayPlan {
    let total = candidates.len();
    let c: Vec<Action> = candidates
        .into_iter()
        .filter(|a| !feedback.hides(a))
        .map(|mut a| {
            a.feedback_weight = feedback.weight(&a.action);
            a
        })
        .collect();
    let hidden = total - c.len();
    let considered = c.len();
    let value = |a: &Action| a.expected_value * a.feedback_weight;
    // Per target, the options on the upper convex hull from (0, 0).
    let mut by_target: HashMap<(String, String), Vec<Action>> = HashMap::new();
    for a in c {
        if value(&a) > 0.0 && value(&a).is_finite() && a.minutes > 0.0 {
            by_target
                .entry((a.target_kind.clone(), a.target_id.clone()))
                .or_default()
                .push(a);
        }
    }
    let mut keys: Vec<(String, String)> = by_target.keys().cloned().collect();
    keys.sort();
    let mut hulls: Vec<Vec<Action>> = Vec::new();
    for k in keys {
        let mut opts = by_target.remove(&k).unwrap_or_default();
        opts.sort_by(|a, b| {
            a.minutes
                .total_cmp(&b.minutes)
                .then_with(|| value(b).total_cmp(&value(a)))
                .then_with(|| a.action.cmp(&b.action))
        });
        let mut hull: Vec<Action> = Vec::new();
        for a in opts {
            if hull.last().is_some_and(|h| value(&a) <= value(h)) {
                continue; // dominated: more time, no more value
            }
            // Drop points under the line from the one before to `a`.
            while !hull.is_empty() {
                let (m0, v0) = match hull.len() {
                    1 => (0.0, 0.0),
                    n => (hull[n - 2].minutes, value(&hull[n - 2])),
                };
                let h = &hull[hull.len() - 1];
                let d_prev = (value(h) - v0) / (h.minutes - m0).max(1e-9);
                let d_new = (value(&a) - value(h)) / (a.minutes - h.minutes).max(1e-9);
                if d_new >= d_prev {
                    hull.pop();
                } else {
                    break;
                }
            }
            hull.push(a);
        }
        hulls.push(hull);
    }
    // Upgrade steps: (density, target, step).
    let mut steps: Vec<(f64, usize, usize)> = Vec::new();
    for (t, h) in hulls.iter().enumerate() {
        for (k, a) in h.iter().enumerate() {
            let (m0, v0) = if k == 0 {
                (0.0, 0.0)
            } else {
                (h[k - 1].minutes, value(&h[k - 1]))
            };
            steps.push(((value(a) - v0) / (a.minutes - m0).max(1e-9), t, k));
        }
    }
    steps.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut level: Vec<Option<usize>> = vec![None; hulls.len()];
    let mut blocked = vec![false; hulls.len()];
    let mut used = 0.0;
    for (_, t, k) in steps {
        if blocked[t] || level[t].map_or(0, |l| l + 1) != k {
            continue;
        }
        let before = level[t].map_or(0.0, |l| hulls[t][l].minutes);
        let extra = hulls[t][k].minutes - before;
        if used + extra <= minutes + 1e-9 {
            used += extra;
            level[t] = Some(k);
        } else {
            blocked[t] = true;
        }
    }
    let mut chosen = Vec::new();
    let mut left = Vec::new();
    for (t, h) in hulls.into_iter().enumerate() {
        match level[t] {
            Some(l) => chosen.push(h.into_iter().nth(l).expect("a hull level")),
            None => left.extend(h.into_iter().next()),
        }
    }
    let by_value = |a: &Action, b: &Action| {
        value(b)
            .total_cmp(&value(a))
            .then_with(|| a.target_id.cmp(&b.target_id))
    };
    chosen.sort_by(by_value);
    left.sort_by(by_value);
    left.truncate(10);
    DayPlan {
        expected_value: chosen.iter().map(|a| a.expected_value).sum::<f64>() + 0.0,
        minutes_planned: used,
        minutes_available: minutes,
        actions: chosen,
        left_out: left,
        hidden_by_dismissals: hidden,
        candidates: considered,
    }
}

/// The channels of a deal action.
pub const DEAL_CHANNELS: [&str; 3] = ["email", "call", "meeting"];

/// The change one touch of each channel is assumed to make to a deal's
/// quality, in log-odds of passing each remaining stage, before any is
/// measured on the org's data: an email 0.05, a call 0.10, a meeting 0.20.
/// Records cannot say it: touches follow the deals that are going well,
/// so a model of the records reads engagement, not its effect.
/// `pipewise adherence` measures what following the list was worth.
pub const ASSUMED_SHIFT: [f64; 3] = [0.05, 0.10, 0.20];

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

/// The org's funnel: per open stage (prospecting ... negotiation), the
/// log-odds that a deal in it moves on (to a later stage, or to a win from
/// negotiation), from the deals closed by `until` and the stages their
/// history shows (a skipped stage counts as passed), with one pseudo-deal
/// each way. Stages no deal reached get log-odds 0.
pub fn funnel(data: &Data, until: i64) -> [f64; 5] {
    let mut reached = [0.0f64; 5];
    let mut passed = [0.0f64; 5];
    for o in &data.opps {
        let (Some(closed), Some(won)) = (o.closed, o.won) else {
            continue;
        };
        if closed > until {
            continue;
        }
        let mut stages: Vec<usize> = o
            .stage
            .known(until)
            .iter()
            .filter_map(|c| c.1.as_deref().and_then(pipewise_features::stage_index))
            .collect();
        if let Some(b) = o
            .stage
            .before
            .as_deref()
            .and_then(pipewise_features::stage_index)
        {
            stages.push(b);
        }
        let (Some(&first), Some(&last)) = (stages.iter().min(), stages.iter().max()) else {
            continue;
        };
        for j in first..=last {
            reached[j] += 1.0;
            if j < last || won {
                passed[j] += 1.0;
            }
        }
    }
    std::array::from_fn(|j| logit((passed[j] + 1.0) / (reached[j] + 2.0)))
}

/// The win-probability change of a deal at `stage` (0-4) with win
/// probability `p` when its quality rises by `shift` log-odds at each
/// remaining stage of the org's `funnel`: the deal's own level `c` solves
/// `Π σ(funnel[j] + c) = p` over its remaining stages, and the uplift is
/// `Π σ(funnel[j] + c + shift) − p`. The shift is divided by one more than
/// the touches of that channel in the last 30 days (`recent`): returns
/// diminish. An early deal has more stages left for the shift to act on.
pub fn funnel_uplift(p: f64, stage: usize, funnel: &[f64; 5], shift: f64, recent: f64) -> f64 {
    let rest = &funnel[stage.min(4)..];
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    let win = |c: f64| rest.iter().map(|l| sigmoid(l + c)).product::<f64>();
    let (mut lo, mut hi) = (-30.0, 30.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if win(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let c = 0.5 * (lo + hi);
    win(c + shift / (1.0 + recent.max(0.0))) - p
}

/// The opportunity features a deal's CRM view gives at any week (the
/// simulator's [`DealView`]), which the closed-loop focus model reads.
pub const FOCUS_FEATURES: [&str; 21] = [
    "touches_7d",
    "touches_30d",
    "calls_30d",
    "emails_30d",
    "meetings_30d",
    "responses_30d",
    "reply_rate",
    "connect_rate",
    "days_since_touch",
    "days_since_response",
    "days_in_stage",
    "emails_sent",
    "email_replies",
    "calls_made",
    "calls_connected",
    "stage",
    "amount",
    "age",
    "industry",
    "employees",
    "deal_type",
];

/// The [`FOCUS_FEATURES`] of deal views, computed as the feature engine
/// computes them from the CRM (`pipewise_features::features_for`).
pub fn view_table(views: &[&DealView]) -> Table {
    let day = |x: i64| x as f64 / DAY as f64;
    let mut t = Table::default();
    for name in FOCUS_FEATURES {
        let col = match name {
            "industry" => {
                Column::Categorical(views.iter().map(|v| Some(v.industry.to_string())).collect())
            }
            "deal_type" => {
                Column::Categorical(views.iter().map(|v| Some(v.kind.to_string())).collect())
            }
            _ => Column::Numeric(
                views
                    .iter()
                    .map(|v| {
                        let at = v.at;
                        let known: Vec<&(i64, u8, bool)> =
                            v.touches.iter().filter(|x| x.0 <= at).collect();
                        let within = |d: i64| known.iter().filter(move |x| x.0 > at - d * DAY);
                        let count = |kind: u8, resp: bool| {
                            known
                                .iter()
                                .filter(|x| x.1 == kind && (!resp || x.2))
                                .count() as f64
                        };
                        let rate = |kind: u8| {
                            let n = count(kind, false);
                            if n == 0.0 {
                                f64::NAN
                            } else {
                                count(kind, true) / n
                            }
                        };
                        match name {
                            "touches_7d" => within(7).count() as f64,
                            "touches_30d" => within(30).count() as f64,
                            "calls_30d" => within(30).filter(|x| x.1 == 0).count() as f64,
                            "emails_30d" => within(30).filter(|x| x.1 == 1).count() as f64,
                            "meetings_30d" => within(30).filter(|x| x.1 == 2).count() as f64,
                            "responses_30d" => within(30).filter(|x| x.2).count() as f64,
                            "reply_rate" => rate(1),
                            "connect_rate" => rate(0),
                            "days_since_touch" => known.last().map_or(f64::NAN, |x| day(at - x.0)),
                            "days_since_response" => known
                                .iter()
                                .rev()
                                .find(|x| x.2)
                                .map_or(f64::NAN, |x| day(at - x.0)),
                            "days_in_stage" => day(at - v.stage_since.max(v.created)),
                            "emails_sent" => count(1, false),
                            "email_replies" => count(1, true),
                            "calls_made" => count(0, false),
                            "calls_connected" => count(0, true),
                            "stage" => v.stage as f64,
                            "amount" => v.amount,
                            "age" => day(at - v.created).max(0.0),
                            "employees" => v.employees as f64,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ),
        };
        t.push(name, col);
    }
    t
}

/// The win model of the closed-loop focus policy: the learner and monotone
/// constraints of `pipewise train` on [`FOCUS_FEATURES`] only, fitted on
/// the weekly snapshots of the 18 months before `until` whose outcome was
/// known by `until` (nothing later is read). Errors: too few closed deals
/// (under 50 won or lost), a model failure.
pub fn fit_focus_model(data: &Data, until: i64) -> anyhow::Result<Classifier> {
    let dates = pipewise_features::mondays(until - 548 * DAY, until - 7 * DAY);
    let mut tables = Vec::new();
    let mut y = Vec::new();
    let mut groups = Vec::new();
    for &t in &dates {
        let rows: Vec<usize> = data
            .open_at(t)
            .into_iter()
            .filter(|&i| data.opps[i].closed.is_some_and(|c| c <= until))
            .filter(|&i| data.opps[i].won.is_some())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let full = pipewise_features::features_for(data, &rows, t);
        let idx: Vec<usize> = FOCUS_FEATURES
            .iter()
            .map(|f| {
                full.names
                    .iter()
                    .position(|n| n == f)
                    .expect("a registry feature")
            })
            .collect();
        let mut sub = Table::default();
        for (f, &i) in FOCUS_FEATURES.iter().zip(&idx) {
            sub.push(*f, full.columns[i].clone());
        }
        tables.push(sub);
        for &i in &rows {
            y.push(f64::from(u8::from(data.opps[i].won == Some(true))));
            groups.push(i);
        }
    }
    let won = y.iter().filter(|v| **v > 0.5).count();
    anyhow::ensure!(
        won >= 50 && y.len() - won >= 50,
        "the focus model needs 50 won and 50 lost deals closed by the policy start; found {won} and {}",
        y.len() - won
    );
    let mut table = tables.remove(0);
    for t in tables {
        table.extend(t);
    }
    let opts = pipewise_models::FitOptions {
        monotone: Some(pipewise_features::registry::win_effect),
        ..Default::default()
    };
    Ok(Classifier::fit_grouped(
        pipewise_models::Algorithm::Hist,
        &table,
        &y,
        Some(&groups),
        &opts,
    )?)
}

/// The reps' own priorities: the biggest deals furthest along (amount ×
/// a stage weight of 0.1, 0.2, 0.4, 0.7, 1 from prospecting to
/// negotiation). How reps are commonly observed to spend their time; the
/// closed loop's baseline.
pub struct OwnPriorities;

/// [`OwnPriorities`]' stage weights.
pub const OWN_STAGE_WEIGHT: [f64; 5] = [0.1, 0.2, 0.4, 0.7, 1.0];

impl DealScorer for OwnPriorities {
    fn score(&mut self, d: &DealView) -> f64 {
        d.amount * OWN_STAGE_WEIGHT[d.stage.min(4)]
    }
    fn name(&self) -> &str {
        "own priorities"
    }
}

/// pipewise's list in the closed loop: a deal week's worth of a meeting,
/// the focus model's win probability raised through the org's funnel by
/// the assumed meeting shift ([`funnel_uplift`], diminishing with the
/// meetings of the last 30 days) × the amount, as `pipewise actions`
/// values a deal's meeting.
#[derive(Clone)]
pub struct PipewiseFocus {
    pub model: Classifier,
    pub funnel: [f64; 5],
    /// How a meeting is valued: pipewise's assumed shift, or one of the
    /// simulator's measuring devices.
    pub valuation: FocusValuation,
}

/// How [`PipewiseFocus`] values a meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FocusValuation {
    /// The focus model's win probability raised by [`ASSUMED_SHIFT`]: what
    /// pipewise does on a real org.
    Assumed,
    /// The same model, raised by the simulator's true effect instead
    /// ([`pipewise_sim::policy::FOCUS_GAIN`], doubled on a deal the CRM
    /// shows stalled, no customer response in
    /// [`pipewise_sim::policy::STALLED_DAYS`] days): how much knowing where
    /// meetings matter would add (`simulate --focus known-effect`).
    KnownEffect,
    /// The simulator's hidden value of the meeting
    /// ([`DealView::hidden_meeting_value`]): the ceiling of any policy with
    /// the same time (`simulate --focus oracle`).
    Oracle,
}

impl PipewiseFocus {
    /// The value of a meeting on each view (currency units).
    pub fn values(&self, views: &[&DealView]) -> anyhow::Result<Vec<f64>> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let t = view_table(views);
        let p = self.model.predict(&t)?;
        let recent = match t.column("meetings_30d") {
            Some(Column::Numeric(v)) => v.clone(),
            _ => vec![0.0; p.len()],
        };
        Ok(views
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let shift = match self.valuation {
                    FocusValuation::Oracle => return v.hidden_meeting_value,
                    FocusValuation::KnownEffect => {
                        let stalled =
                            v.touches.iter().rev().find(|t| t.2).is_none_or(|t| {
                                v.at - t.0 >= pipewise_sim::policy::STALLED_DAYS * DAY
                            });
                        pipewise_sim::policy::FOCUS_GAIN * if stalled { 2.0 } else { 1.0 }
                    }
                    FocusValuation::Assumed => ASSUMED_SHIFT[2],
                };
                funnel_uplift(p[k], v.stage, &self.funnel, shift, recent[k]) * v.amount
            })
            .collect())
    }
}

impl DealScorer for PipewiseFocus {
    fn score(&mut self, d: &DealView) -> f64 {
        self.values(&[d]).map_or(f64::NEG_INFINITY, |v| v[0])
    }
    fn probability(&mut self, d: &DealView) -> Option<f64> {
        self.model.predict(&view_table(&[d])).ok().map(|p| p[0])
    }
    fn name(&self) -> &str {
        match self.valuation {
            FocusValuation::Assumed => "pipewise",
            FocusValuation::KnownEffect => "pipewise, known effect",
            FocusValuation::Oracle => "oracle",
        }
    }
}

/// The threshold at which `scores` (of deal weeks seen over `rep_weeks`
/// rep-weeks) give `per_week` focus meetings per rep-week on average: the
/// score ranked `per_week × rep_weeks` from the top (every week qualifies
/// when there are fewer).
pub fn focus_threshold(scores: &[f64], rep_weeks: f64, per_week: f64) -> f64 {
    let mut s: Vec<f64> = scores.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    let n = (per_week * rep_weeks).round() as usize;
    if n == 0 {
        return f64::INFINITY;
    }
    s.get(n - 1).copied().unwrap_or(f64::NEG_INFINITY)
}

/// The chance that the `k`-th touch (1-based) is the one after which a lead
/// converts, among leads that convert and had not converted before it: the
/// hazard `P(K = k) / P(K ≥ k)` of the touch count `K` at conversion over
/// `touches_at_conversion` (one count per converted lead), smoothed towards
/// `1 / (remaining touches)` of an 8-touch cadence with a pseudo-count of 5
/// leads. `None` without converted leads.
pub fn conversion_hazard(touches_at_conversion: &[u32], k: u32) -> Option<f64> {
    if touches_at_conversion.is_empty() {
        return None;
    }
    let at = touches_at_conversion.iter().filter(|&&n| n == k).count() as f64;
    let from = touches_at_conversion.iter().filter(|&&n| n >= k).count() as f64;
    let prior = 1.0 / f64::from(9u32.saturating_sub(k).max(1));
    Some((at + 5.0 * prior) / (from + 5.0))
}

/// Acted on: whether a recommendation was followed within its window.
#[derive(Debug, Clone)]
pub struct Logged {
    pub id: i64,
    pub rep_id: String,
    pub team: Option<String>,
    pub target_kind: String,
    pub target_id: String,
    pub account_id: Option<String>,
    pub action: String,
    pub channel: String,
    /// Epoch seconds: the day's start and the window's end.
    pub from: i64,
    pub until: i64,
    pub probability: f64,
    pub amount: f64,
    pub expected_value: f64,
}

/// A touch the CRM records (an activity by a rep).
#[derive(Debug, Clone, Copy)]
pub struct Touch<'a> {
    pub user_id: &'a str,
    pub kind: &'a str,
    pub at: i64,
    pub opportunity_id: Option<&'a str>,
    pub lead_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    /// Logged from pipewise's list ([`pipewise_core::FROM_LIST_SEQUENCE`]).
    pub from_list: bool,
}

/// Whether `touch` acts on recommendation `r`: by the same rep, in the
/// window, on the target (the deal, the lead, or for account actions the
/// account or any of its deals), by the recommended channel (any of call,
/// meeting or email for renewal checks and cross-sell offers).
pub fn acts_on(r: &Logged, t: &Touch) -> bool {
    if t.user_id != r.rep_id || t.at < r.from || t.at >= r.until {
        return false;
    }
    let on_target = match r.target_kind.as_str() {
        "deal" => t.opportunity_id == Some(r.target_id.as_str()),
        "lead" => t.lead_id == Some(r.target_id.as_str()),
        _ => {
            t.account_id == Some(r.target_id.as_str())
                || (r.account_id.is_some() && t.account_id == r.account_id.as_deref())
        }
    };
    let channel = match r.action.as_str() {
        "renewal_check" | "cross_sell" => matches!(t.kind, "call" | "meeting" | "email"),
        _ => t.kind == r.channel,
    };
    on_target && channel
}

/// The share of recommendations acted on, for one rep or team.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdherenceRow {
    /// The rep's or team's id, and name.
    pub id: String,
    pub name: String,
    /// Recommendations whose window has closed, and those acted on.
    pub recommended: usize,
    pub acted_on: usize,
    /// acted_on / recommended.
    pub adherence: f64,
    /// The share of the recommended expected value acted on.
    pub value_share: f64,
    /// Those followed from the list (a matching activity logged from it,
    /// or marked done on it), and their share of `recommended`: acted on
    /// also counts touches the rep would have made anyway.
    pub from_list: usize,
    pub from_list_share: f64,
}

/// Adherence per group (`key` of each recommendation), from `followed`
/// and `from_list` (one flag each per recommendation in `recs`).
pub fn adherence_by(
    recs: &[Logged],
    followed: &[bool],
    from_list: &[bool],
    key: impl Fn(&Logged) -> Option<(String, String)>,
) -> Vec<AdherenceRow> {
    let mut m: HashMap<String, (String, usize, usize, f64, f64, usize)> = HashMap::new();
    for ((r, &f), &l) in recs.iter().zip(followed).zip(from_list) {
        let Some((id, name)) = key(r) else { continue };
        let e = m.entry(id).or_insert((name, 0, 0, 0.0, 0.0, 0));
        e.1 += 1;
        e.3 += r.expected_value;
        if f {
            e.2 += 1;
            e.4 += r.expected_value;
        }
        e.5 += usize::from(l);
    }
    let mut rows: Vec<AdherenceRow> = m
        .into_iter()
        .map(|(id, (name, n, k, v, vk, l))| AdherenceRow {
            id,
            name,
            recommended: n,
            acted_on: k,
            adherence: k as f64 / n.max(1) as f64,
            value_share: if v > 0.0 { vk / v } else { 0.0 },
            from_list: l,
            from_list_share: l as f64 / n.max(1) as f64,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.adherence
            .total_cmp(&a.adherence)
            .then_with(|| a.id.cmp(&b.id))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str, kind: &str, ev: f64, minutes: f64) -> Action {
        Action {
            target_kind: "deal".into(),
            target_id: id.into(),
            target: None,
            account_id: None,
            action: kind.into(),
            channel: if kind == "meeting" { "meeting" } else { kind }.into(),
            at: String::new(),
            at_epoch: 0,
            window_days: window_days(kind),
            message: None,
            why: vec![],
            probability: 0.5,
            probability_of: "win".into(),
            amount: 1000.0,
            uplift: ev / 1000.0,
            uplift_source: String::new(),
            expected_value: ev,
            feedback_weight: 1.0,
            minutes,
        }
    }

    #[test]
    fn the_list_fills_the_time_by_value_per_minute_one_action_per_target() {
        let c = vec![
            action("a", "email", 100.0, 5.0),    // 20 per minute
            action("a", "call", 250.0, 15.0),    // upgrade: 15 per minute
            action("a", "meeting", 400.0, 60.0), // upgrade: 3.3 per minute
            action("b", "meeting", 900.0, 60.0), // 15 per minute
            action("b", "call", 80.0, 15.0),     // under b's hull: never
            action("c", "email", 40.0, 5.0),     // 8 per minute
            action("d", "call", -5.0, 15.0),     // never
        ];
        let p = plan(c, &Feedback::default(), 80.0);
        let got: Vec<(&str, &str)> = p
            .actions
            .iter()
            .map(|a| (a.target_id.as_str(), a.action.as_str()))
            .collect();
        // a's email (5), a's call instead (+10), b's meeting (60) use 75
        // minutes; c's email (5) fits the rest; a's meeting does not.
        assert_eq!(got, vec![("b", "meeting"), ("a", "call"), ("c", "email")]);
        assert_eq!(p.minutes_planned, 80.0);
        assert_eq!(p.expected_value, 1190.0);
        let p = plan(
            vec![
                action("a", "email", 100.0, 5.0),
                action("a", "meeting", 400.0, 60.0),
            ],
            &Feedback::default(),
            30.0,
        );
        // The meeting does not fit: the email does.
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].action, "email");
        let p = plan(
            vec![action("a", "meeting", 400.0, 60.0)],
            &Feedback::default(),
            30.0,
        );
        assert!(p.actions.is_empty());
        assert_eq!(p.left_out.len(), 1);
    }

    #[test]
    fn a_shift_through_the_funnel_acts_on_every_stage_left() {
        let f = [0.0; 5]; // every stage passed half the time
        // A negotiation deal: one stage left, p = 0.5: σ(0.2) − 0.5.
        let last = funnel_uplift(0.5, 4, &f, 0.2, 0.0);
        assert!((last - (sigmoid(0.2) - 0.5)).abs() < 1e-9, "{last}");
        // A prospecting deal at the funnel's own odds (1/32): five stages
        // left, each raised by 0.2.
        let first = funnel_uplift(1.0 / 32.0, 0, &f, 0.2, 0.0);
        assert!((first - (sigmoid(0.2).powi(5) - 1.0 / 32.0)).abs() < 1e-9);
        // Relative to its chance, the early deal gains more.
        assert!(first * 32.0 > last * 2.0);
        // Returns diminish with recent touches.
        assert!((funnel_uplift(0.5, 4, &f, 0.2, 1.0) - (sigmoid(0.1) - 0.5)).abs() < 1e-9);
        // Extreme deals barely move.
        assert!(funnel_uplift(0.99, 4, &f, 0.2, 0.0) < last / 10.0);
    }

    #[test]
    fn dismissals_hide_for_their_reason_and_weigh_a_kind_down() {
        let day = 100 * DAY;
        let d = |id: &str, kind: &str, reason: &str, ago: i64| Dismissal {
            target_kind: "deal".into(),
            target_id: id.into(),
            action: kind.into(),
            reason: reason.into(),
            at: day - ago * DAY,
        };
        let mut dismissals = vec![
            d("a", "call", "wrong_timing", 1), // hidden (3 days)
            d("b", "call", "wrong_timing", 5), // back
            d("c", "meeting", "not_mine", 20), // every action on c hidden
        ];
        for k in 0..20 {
            dismissals.push(d(&format!("x{k}"), "email", "not_useful", 40));
        }
        let shown = HashMap::from([("email".to_string(), 30u32), ("call".to_string(), 30)]);
        let f = Feedback::new(&dismissals, &shown, day);
        let p = plan(
            vec![
                action("a", "call", 100.0, 15.0),
                action("b", "call", 100.0, 15.0),
                action("c", "email", 100.0, 5.0),
                action("e", "email", 100.0, 5.0),
            ],
            &f,
            600.0,
        );
        let ids: Vec<&str> = p.actions.iter().map(|a| a.target_id.as_str()).collect();
        assert_eq!(ids, vec!["b", "e"]);
        assert_eq!(p.hidden_by_dismissals, 2);
        // 20 of 30 emails dismissed as not useful: (10 + 9) / 40 / 0.9.
        let e = &p.actions[1];
        assert!((e.feedback_weight - 19.0 / 40.0 / 0.9).abs() < 1e-12);
        assert_eq!(p.actions[0].feedback_weight, 1.0);
    }

    #[test]
    fn the_hazard_reads_the_touch_counts_at_conversion() {
        // Ten conversions: four at the first touch, four at the second,
        // two at the third.
        let k = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3];
        let h1 = conversion_hazard(&k, 1).unwrap();
        let h2 = conversion_hazard(&k, 2).unwrap();
        let h3 = conversion_hazard(&k, 3).unwrap();
        assert!((h1 - (4.0 + 5.0 / 8.0) / 15.0).abs() < 1e-12);
        assert!((h2 - (4.0 + 5.0 / 7.0) / 11.0).abs() < 1e-12);
        assert!((h3 - (2.0 + 5.0 / 6.0) / 7.0).abs() < 1e-12);
        assert!(conversion_hazard(&[], 1).is_none());
    }

    #[test]
    fn a_touch_acts_on_its_recommendation_only_in_window_by_channel_and_rep() {
        let r = Logged {
            id: 1,
            rep_id: "u1".into(),
            team: None,
            target_kind: "deal".into(),
            target_id: "o1".into(),
            account_id: Some("a1".into()),
            action: "call".into(),
            channel: "call".into(),
            from: 1000,
            until: 2000,
            probability: 0.5,
            amount: 10.0,
            expected_value: 1.0,
        };
        let t = Touch {
            from_list: false,
            user_id: "u1",
            kind: "call",
            at: 1500,
            opportunity_id: Some("o1"),
            lead_id: None,
            account_id: Some("a1"),
        };
        assert!(acts_on(&r, &t));
        assert!(!acts_on(&r, &Touch { kind: "email", ..t }));
        assert!(!acts_on(&r, &Touch { at: 2000, ..t }));
        assert!(!acts_on(&r, &Touch { user_id: "u2", ..t }));
        assert!(!acts_on(
            &r,
            &Touch {
                opportunity_id: Some("o2"),
                ..t
            }
        ));
        let renewal = Logged {
            target_kind: "account".into(),
            target_id: "a1".into(),
            action: "renewal_check".into(),
            channel: "meeting".into(),
            ..r.clone()
        };
        assert!(acts_on(&renewal, &Touch { kind: "email", ..t }));
    }
}
