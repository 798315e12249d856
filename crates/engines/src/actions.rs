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
//! - deals: the win model's what-if. The deal's features are moved as one
//!   more touch of the channel would move them (touch counts, days since the
//!   last touch; and, with the deal's own reply, connect or show rate, the
//!   response counts), the deal rescored, and the two outcomes averaged. The
//!   model learnt from records, so this is an association, not a measured
//!   effect: `pipewise adherence` measures what following the list was
//!   worth.
//! - leads: the lead model's conversion probability times the chance that
//!   this touch is the one that converts (the hazard of conversion at that
//!   touch number among the org's converted leads).
//! - renewals: the churn risk times a save rate (an assumption the caller
//!   states; default [`DEFAULT_SAVE_RATE`]).
//! - cross-sell: the chance the product is the account's next one times the
//!   chance a customer opens an expansion in the next 30 days at the org's
//!   yearly rate, for the org's mean expansion deal (amount × win rate).
//!
//! The day's list is chosen greedily by expected value per minute of the
//! rep's time, one action per target, until the time is used; then ranked
//! by expected value. Dismissals feed the ranking: a dismissed action is
//! hidden for a while (by reason), and an action kind reps often dismiss as
//! not useful is weighted down.

use std::collections::{HashMap, HashSet};

use pipewise_core::{Column, Table};
use pipewise_models::Classifier;
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
        for d in dismissals.iter().filter(|d| d.at <= day) {
            let days = REASONS.iter().find(|r| r.0 == d.reason).map_or(7, |r| r.1);
            if d.reason == "not_useful" {
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
/// weights expected values by the feedback, keeps per target its action of
/// the highest weighted value per minute, and fills `minutes` greedily by
/// that density (skipping what does not fit). Candidates with no positive
/// expected value are never chosen.
pub fn plan(candidates: Vec<Action>, feedback: &Feedback, minutes: f64) -> DayPlan {
    let total = candidates.len();
    let mut c: Vec<Action> = candidates
        .into_iter()
        .filter(|a| !feedback.hides(a))
        .map(|mut a| {
            a.feedback_weight = feedback.weight(&a.action);
            a
        })
        .collect();
    let hidden = total - c.len();
    let considered = c.len();
    let density = |a: &Action| a.expected_value * a.feedback_weight / a.minutes.max(1.0);
    c.sort_by(|a, b| {
        density(b)
            .total_cmp(&density(a))
            .then_with(|| a.target_id.cmp(&b.target_id))
            .then_with(|| a.action.cmp(&b.action))
    });
    let mut used = 0.0;
    let mut targets: HashSet<(String, String)> = HashSet::new();
    let mut chosen = Vec::new();
    let mut left = Vec::new();
    for a in c {
        if a.expected_value <= 0.0 || !a.expected_value.is_finite() {
            continue;
        }
        let t = (a.target_kind.clone(), a.target_id.clone());
        if targets.contains(&t) {
            continue;
        }
        if used + a.minutes <= minutes + 1e-9 {
            used += a.minutes;
            targets.insert(t);
            chosen.push(a);
        } else if left.len() < 10 {
            targets.insert(t);
            left.push(a);
        }
    }
    chosen.sort_by(|a, b| {
        (b.expected_value * b.feedback_weight)
            .total_cmp(&(a.expected_value * a.feedback_weight))
            .then_with(|| a.target_id.cmp(&b.target_id))
    });
    DayPlan {
        expected_value: chosen.iter().map(|a| a.expected_value).sum(),
        minutes_planned: used,
        minutes_available: minutes,
        actions: chosen,
        left_out: left,
        hidden_by_dismissals: hidden,
        candidates: considered,
    }
}

/// How often a channel's touch on a deal gets its response: an email's
/// reply, a call's connect, a meeting being held (0-1).
#[derive(Debug, Clone, Copy)]
pub struct ResponseRates {
    pub email: f64,
    pub call: f64,
    pub meeting: f64,
}

/// The channels of a deal action, in the order of [`deal_uplifts`]' output.
pub const DEAL_CHANNELS: [&str; 3] = ["email", "call", "meeting"];

fn col_mut<'t>(t: &'t mut Table, name: &str) -> Option<&'t mut Vec<f64>> {
    let i = t.names.iter().position(|n| n == name)?;
    match &mut t.columns[i] {
        Column::Numeric(v) => Some(v),
        Column::Categorical(_) => None,
    }
}

fn bump(t: &mut Table, name: &str, by: f64) {
    if let Some(v) = col_mut(t, name) {
        for x in v.iter_mut() {
            *x = if x.is_finite() { *x + by } else { by };
        }
    }
}

fn set(t: &mut Table, name: &str, to: f64) {
    if let Some(v) = col_mut(t, name) {
        v.iter_mut().for_each(|x| *x = to);
    }
}

/// A ratio column recomputed from its numerator and denominator columns.
fn ratio(t: &mut Table, name: &str, num: &str, den: &str) {
    let (Some(n), Some(d)) = (t.column(num).cloned(), t.column(den).cloned()) else {
        return;
    };
    let (Column::Numeric(n), Column::Numeric(d)) = (n, d) else {
        return;
    };
    if let Some(v) = col_mut(t, name) {
        for ((x, a), b) in v.iter_mut().zip(&n).zip(&d) {
            if a.is_finite() && b.is_finite() && *b > 0.0 {
                *x = a / b;
            }
        }
    }
}

/// One more touch of `channel` on every row of `t`, answered or not.
fn touched(t: &Table, channel: &str, answered: bool) -> Table {
    let mut t = t.clone();
    bump(&mut t, "touches_7d", 1.0);
    bump(&mut t, "touches_30d", 1.0);
    set(&mut t, "days_since_touch", 0.0);
    match channel {
        "email" => {
            bump(&mut t, "emails_30d", 1.0);
            bump(&mut t, "emails_sent", 1.0);
            if answered {
                bump(&mut t, "email_replies", 1.0);
            }
            ratio(&mut t, "reply_rate", "email_replies", "emails_sent");
        }
        "call" => {
            bump(&mut t, "calls_30d", 1.0);
            bump(&mut t, "calls_made", 1.0);
            if answered {
                bump(&mut t, "calls_connected", 1.0);
            }
            ratio(&mut t, "connect_rate", "calls_connected", "calls_made");
        }
        _ => bump(&mut t, "meetings_30d", 1.0),
    }
    if answered {
        bump(&mut t, "responses_30d", 1.0);
        set(&mut t, "days_since_response", 0.0);
    }
    t
}

/// The win model's what-if for every row of `table` (open deals' features,
/// registry order) and channel of [`DEAL_CHANNELS`]: the expected change in
/// the win probability from one more touch, `rate × p(answered) + (1 −
/// rate) × p(unanswered) − p(now)`, with `rates` per row. Also returns the
/// probabilities now. Errors: the model cannot score the table.
pub fn deal_uplifts(
    win: &Classifier,
    table: &Table,
    rates: &[ResponseRates],
) -> anyhow::Result<(Vec<f64>, Vec<[f64; 3]>)> {
    let p0 = win.predict(table)?;
    let mut out = vec![[0.0; 3]; p0.len()];
    for (c, ch) in DEAL_CHANNELS.iter().enumerate() {
        let yes = win.predict(&touched(table, ch, true))?;
        let no = win.predict(&touched(table, ch, false))?;
        for (k, o) in out.iter_mut().enumerate() {
            let q = match c {
                0 => rates[k].email,
                1 => rates[k].call,
                _ => rates[k].meeting,
            }
            .clamp(0.0, 1.0);
            o[c] = q * yes[k] + (1.0 - q) * no[k] - p0[k];
        }
    }
    Ok((p0, out))
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
}

/// Adherence per group (`key` of each recommendation), from `followed`
/// (one flag per recommendation in `recs`).
pub fn adherence_by(
    recs: &[Logged],
    followed: &[bool],
    key: impl Fn(&Logged) -> Option<(String, String)>,
) -> Vec<AdherenceRow> {
    let mut m: HashMap<String, (String, usize, usize, f64, f64)> = HashMap::new();
    for (r, &f) in recs.iter().zip(followed) {
        let Some((id, name)) = key(r) else { continue };
        let e = m.entry(id).or_insert((name, 0, 0, 0.0, 0.0));
        e.1 += 1;
        e.3 += r.expected_value;
        if f {
            e.2 += 1;
            e.4 += r.expected_value;
        }
    }
    let mut rows: Vec<AdherenceRow> = m
        .into_iter()
        .map(|(id, (name, n, k, v, vk))| AdherenceRow {
            id,
            name,
            recommended: n,
            acted_on: k,
            adherence: k as f64 / n.max(1) as f64,
            value_share: if v > 0.0 { vk / v } else { 0.0 },
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
            action("a", "meeting", 600.0, 60.0), // 10 per minute
            action("a", "call", 300.0, 15.0),    // 20 per minute: a's pick
            action("b", "meeting", 900.0, 60.0), // 15
            action("c", "email", 40.0, 5.0),     // 8
            action("d", "call", -5.0, 15.0),     // never
        ];
        let p = plan(c, &Feedback::default(), 80.0);
        let got: Vec<(&str, &str)> = p
            .actions
            .iter()
            .map(|a| (a.target_id.as_str(), a.action.as_str()))
            .collect();
        // a's call (15) then b's meeting (60) fill 75 of 80 minutes; c's
        // email (5) fits the rest. Ranked by expected value.
        assert_eq!(got, vec![("b", "meeting"), ("a", "call"), ("c", "email")]);
        assert_eq!(p.minutes_planned, 80.0);
        assert!(p.left_out.is_empty());
        assert_eq!(p.expected_value, 1240.0);
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
