//! A rep's next-best actions for a day, and adherence: how many of the
//! recommended actions reps then took (see `pipewise_engines::actions` for
//! how candidates are valued and chosen).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use pipewise_engines::actions::{self, Action, DayPlan, Dismissal, Feedback, Logged, Touch};
use pipewise_engines::effect;
use pipewise_engines::lead_policy::SendTimeModel;
use pipewise_features::format_date;
use pipewise_sim::policy::Channel;
use pipewise_store::SqliteStore;
use pipewise_store::actions::NewRecommendation;
use pipewise_store::read::CrmData;
use serde::Serialize;

use crate::InputError;

const DAY: i64 = 86_400;

/// What a day's list is made with.
#[derive(Debug, Clone)]
pub struct ActionOptions {
    /// The day (epoch seconds, any instant of it); default: the data's
    /// last day, scored with everything recorded.
    pub date: Option<i64>,
    /// Selling hours the rep has that day; default: [`actions::SELLING_SHARE`]
    /// of their working time that day (none when away).
    pub hours: Option<f64>,
    /// The share of a renewal's churn risk a check-in saves (0-1).
    pub save_rate: f64,
    /// Store the list (for adherence).
    pub record: bool,
}

impl Default for ActionOptions {
    fn default() -> Self {
        ActionOptions {
            date: None,
            hours: None,
            save_rate: actions::DEFAULT_SAVE_RATE,
            record: true,
        }
    }
}

/// A rep's list for a day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RepActions {
    pub rep_id: String,
    pub rep_name: String,
    /// The list's day, `YYYY-MM-DD`.
    pub day: String,
    /// What the scores know up to (`YYYY-MM-DDTHH:MM:SSZ`).
    pub as_of: String,
    /// Where the available time came from.
    pub hours_source: String,
    #[serde(flatten)]
    pub plan: DayPlan,
    /// What could not be considered and why ("no lead model: leads are
    /// not in the list").
    pub notes: Vec<String>,
    /// Whether the list was stored for adherence.
    pub recorded: bool,
}

fn instant(t: i64) -> String {
    pipewise_core::value::format_instant(Utc.timestamp_opt(t, 0).single().unwrap_or_default())
}

/// Epoch seconds of a stored `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_utc(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp())
}

fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// An hour of the day `day` (a day's start), as epoch seconds.
fn at_hour(day: i64, hour: u32) -> i64 {
    day + i64::from(hour) * 3600
}

fn channel_of(kind: &str) -> Channel {
    Channel::parse(kind).unwrap_or(Channel::Call)
}

/// The deals' candidates: one per channel for each open deal the rep owns
/// at `as_of`, valued by the win model's probability moved by the
/// channel's assumed shift through the funnel ([`actions::funnel_uplift`]). Pushes a note and
/// nothing when there is no win model.
#[allow(clippy::too_many_arguments)]
fn deal_candidates(
    store: &SqliteStore,
    crm: &CrmData,
    rep_id: &str,
    day: i64,
    as_of: i64,
    send_time: &SendTimeModel,
    out: &mut Vec<Action>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some((win, _, version)) = crate::book::active_model(store, "win")? else {
        notes.push("no win model: deals are not in the list (run `pipewise train`)".into());
        return Ok(());
    };
    let slip = crate::book::active_model(store, "slip")?;
    let data = crate::load_data(crm)?;
    let (scored, table) = pipewise_engines::predict::score_with_features(
        &data,
        as_of,
        &win,
        slip.as_ref().map(|s| &s.0),
        3,
    )?;
    let mine: Vec<usize> = scored
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            data.index_of(&s.opportunity_id)
                .is_some_and(|i| data.opps[i].owner.at(as_of) == Some(rep_id))
        })
        .map(|(k, _)| k)
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let sub = table.take(&mine);
    let col = |name: &str, k: usize| -> f64 {
        match sub.column(name) {
            Some(pipewise_core::Column::Numeric(v)) => v[k],
            _ => f64::NAN,
        }
    };
    let p0: Vec<f64> = mine.iter().map(|&k| scored[k].win_probability).collect();
    let funnel = actions::funnel(&data, as_of);
    let stage_of = |k: usize| -> usize {
        let v = col("stage", k);
        if v.is_finite() { v as usize } else { 0 }
    };
    let lifts: Vec<[f64; 3]> = (0..mine.len())
        .map(|k| {
            let recent = |c: &str| {
                let v = col(c, k);
                if v.is_finite() { v } else { 0.0 }
            };
            [
                actions::funnel_uplift(
                    p0[k],
                    stage_of(k),
                    &funnel,
                    actions::ASSUMED_SHIFT[0],
                    recent("emails_30d"),
                ),
                actions::funnel_uplift(
                    p0[k],
                    stage_of(k),
                    &funnel,
                    actions::ASSUMED_SHIFT[1],
                    recent("calls_30d"),
                ),
                actions::funnel_uplift(
                    p0[k],
                    stage_of(k),
                    &funnel,
                    actions::ASSUMED_SHIFT[2],
                    recent("meetings_30d"),
                ),
            ]
        })
        .collect();
    let accounts: HashMap<&str, (&str, &str)> = crm
        .accounts
        .iter()
        .map(|a| {
            (
                a.id.as_str(),
                (a.name.as_str(), a.industry.as_deref().unwrap_or("unknown")),
            )
        })
        .collect();
    let account_of: HashMap<&str, &str> = crm
        .opportunities
        .iter()
        .filter_map(|o| Some((o.id.as_str(), o.account_id.as_deref()?)))
        .collect();
    for (k, &row) in mine.iter().enumerate() {
        let s = &scored[row];
        let i = data
            .index_of(&s.opportunity_id)
            .expect("scored deals exist");
        let o = &data.opps[i];
        let Some(amount) = data
            .amount_at(o, as_of)
            .filter(|a| a.is_finite() && *a > 0.0)
        else {
            continue;
        };
        let account_id = account_of.get(o.id.as_str()).map(|a| a.to_string());
        let (account_name, industry) = account_id
            .as_deref()
            .and_then(|a| accounts.get(a).copied())
            .unwrap_or(("", "unknown"));
        let quiet = col("days_since_response", k);
        let touch = col("days_since_touch", k);
        let mut why = Vec::new();
        let close = o.close_date.at(as_of).unwrap_or("-");
        if close != "-" && close < format_date(day).as_str() {
            why.push(format!(
                "the close date {close} has passed: agree a new one"
            ));
        } else if let Some(sp) = s.slip_probability.filter(|p| *p >= 0.5) {
            why.push(format!(
                "slip risk {:.0}%: the close date {close} is likely to be missed",
                sp * 100.0
            ));
        }
        if touch.is_finite() && touch >= 14.0 {
            why.push(format!("no touch for {touch:.0} days"));
        } else if quiet.is_finite() && quiet >= 14.0 {
            why.push(format!("no customer response for {quiet:.0} days"));
        }
        why.push(format!(
            "win probability {:.0}% on {}",
            p0[k] * 100.0,
            match crm.currencies.corporate.as_deref() {
                Some(c) => format!("{c} {}", pipewise_core::value::format_money(amount)),
                None => format!(
                    "an amount of {}",
                    pipewise_core::value::format_money(amount)
                ),
            }
        ));
        if let Some(f) = s.factors.iter().find(|f| f.contribution < 0.0) {
            why.push(format!("holding it back: {}", f.text));
        }
        let message = if s.slip_probability.is_some_and(|p| p >= 0.5) {
            "Confirm the close plan: what must happen, by whom, before the close date".to_string()
        } else if quiet.is_finite() && quiet >= 14.0 || !quiet.is_finite() {
            "Re-engage: ask for the decision criteria and the next step".to_string()
        } else {
            "Advance: agree the next step and its date".to_string()
        };
        for (c, channel) in actions::DEAL_CHANNELS.iter().enumerate() {
            let uplift = lifts[k][c];
            let hour = send_time.best_hour(industry, channel_of(channel));
            let at = at_hour(day, hour);
            let mut w = why.clone();
            w.insert(
                0,
                format!(
                    "{} {channel} moves the win probability by {:+.1} points (an assumed {:+.2} log-odds at each stage left{})",
                    if *channel == "email" { "an" } else { "a" },
                    uplift * 100.0,
                    actions::ASSUMED_SHIFT[c],
                    match col(["emails_30d", "calls_30d", "meetings_30d"][c], k) {
                        n if n.is_finite() && n > 0.0 => {
                            format!(", divided by {:.0} for the {channel}s of the last 30 days", n + 1.0)
                        }
                        _ => String::new(),
                    }
                ),
            );
            out.push(Action {
                target_kind: "deal".into(),
                target_id: o.id.clone(),
                target: o
                    .name
                    .clone()
                    .or_else(|| (!account_name.is_empty()).then(|| account_name.to_string())),
                account_id: account_id.clone(),
                action: (*channel).to_string(),
                channel: (*channel).to_string(),
                at: instant(at),
                at_epoch: at,
                window_days: actions::window_days(channel),
                message: Some(message.clone()),
                why: w,
                probability: p0[k],
                probability_of: "win".into(),
                amount,
                uplift,
                uplift_source: format!(
                    "win model v{version} probability raised through the org's funnel by the {channel}'s assumed shift"
                ),
                expected_value: uplift * amount,
                feedback_weight: 1.0,
                minutes: actions::minutes(channel, channel),
            });
        }
    }
    Ok(())
}

/// The worth of a converted lead: the mean won amount per closed deal that
/// came from a lead (0 won counts), or `None` without such deals.
fn lead_value(crm: &CrmData, as_of: i64) -> Option<f64> {
    let closed: Vec<f64> = crm
        .opportunities
        .iter()
        .filter(|o| o.lead_id.is_some() && o.closed_at.is_some_and(|c| c < as_of))
        .filter_map(|o| match o.stage.as_str() {
            "closed_won" => o.amount.filter(|a| a.is_finite()),
            "closed_lost" => Some(0.0),
            _ => None,
        })
        .collect();
    (!closed.is_empty()).then(|| closed.iter().sum::<f64>() / closed.len() as f64)
}

/// Each converted lead's count of touches before it converted.
fn touches_at_conversion(crm: &CrmData, as_of: i64) -> Vec<u32> {
    let converted: HashMap<&str, i64> = crm
        .leads
        .iter()
        .filter_map(|l| Some((l.id.as_str(), l.converted_at.filter(|c| *c < as_of)?)))
        .collect();
    let mut n: HashMap<&str, u32> = HashMap::new();
    for a in &crm.activities {
        let Some(l) = a.lead_id.as_deref() else {
            continue;
        };
        if let Some(&c) = converted.get(l)
            && a.occurred_at <= c
            && a.direction.as_deref() != Some("inbound")
        {
            *n.entry(l).or_default() += 1;
        }
    }
    converted
        .keys()
        .map(|l| n.get(l).copied().unwrap_or(0).max(1))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn lead_candidates(
    store: &SqliteStore,
    crm: &Arc<CrmData>,
    rep: &pipewise_store::read::User,
    day: i64,
    as_of: i64,
    send_time: &SendTimeModel,
    out: &mut Vec<Action>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    if crm.leads.is_empty() {
        return Ok(());
    }
    let base = crate::leads::build(crm, store)?;
    if base.model_version.is_none() {
        notes.push(
            "no lead model: lead follow-ups are not in the list (run `pipewise score leads`)"
                .into(),
        );
        return Ok(());
    }
    let Some(value) = lead_value(crm, as_of) else {
        notes.push("no closed deal came from a lead yet: a lead's worth is unknown".into());
        return Ok(());
    };
    let counts = touches_at_conversion(crm, as_of);
    let queue = crate::leads::rep_queue(
        crm,
        &rep.id,
        Some(day),
        false,
        None,
        &store.lead_task_marks()?,
    )?;
    let scores: HashMap<&str, &crate::leads::LeadRow> =
        base.rows.iter().map(|r| (r.id.as_str(), r)).collect();
    for t in queue
        .tasks
        .iter()
        .filter(|t| matches!(t.status.as_str(), "late" | "today"))
    {
        let Some(row) = scores.get(t.lead_id.as_str()) else {
            continue;
        };
        let Some(p) = row.conversion_probability else {
            continue;
        };
        let touch = t.touches_made as u32 + 1;
        let (h, source) = match actions::conversion_hazard(&counts, touch) {
            Some(h) => (
                h,
                format!(
                    "lead model v{} × conversion hazard at touch {touch}",
                    base.model_version.unwrap_or(0)
                ),
            ),
            None => (
                1.0 / f64::from(9u32.saturating_sub(touch).max(1)),
                "lead model × an even share of the cadence's remaining touches".to_string(),
            ),
        };
        let uplift = p * h;
        // A late step: today at the channel's best hour.
        let at = if t.due_at < day {
            at_hour(day, send_time.best_hour("unknown", channel_of(&t.channel)))
        } else {
            t.due_at
        };
        let mut why = vec![
            format!(
                "cadence step {} of {} is {}",
                t.step,
                t.steps,
                if t.status == "late" {
                    "late"
                } else {
                    "due today"
                }
            ),
            format!("conversion probability {:.0}%", p * 100.0),
        ];
        why.extend(row.factors.iter().take(2).cloned());
        out.push(Action {
            target_kind: "lead".into(),
            target_id: t.lead_id.clone(),
            target: t.company.clone(),
            account_id: None,
            action: "cadence_step".into(),
            channel: t.channel.clone(),
            at: instant(at),
            at_epoch: at,
            window_days: actions::window_days("cadence_step"),
            message: t.template.clone(),
            why,
            probability: p,
            probability_of: "conversion".into(),
            amount: value,
            uplift,
            uplift_source: source,
            expected_value: uplift * value,
            feedback_weight: 1.0,
            minutes: actions::minutes("cadence_step", &t.channel),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn account_candidates(
    crm: &CrmData,
    rep_id: &str,
    day: i64,
    as_of: i64,
    save_rate: f64,
    send_time: &SendTimeModel,
    out: &mut Vec<Action>,
    notes: &mut Vec<String>,
) {
    let mine: HashSet<&str> = crm
        .accounts
        .iter()
        .filter(|a| a.owner_id.as_deref() == Some(rep_id))
        .map(|a| a.id.as_str())
        .collect();
    let renewals_mine = crm.opportunities.iter().any(|o| {
        o.owner_id == rep_id
            && o.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("renewal"))
    });
    if mine.is_empty() && !renewals_mine {
        return;
    }
    let seg = match pipewise_engines::segments::segment(crm, &Default::default()) {
        Ok(s) => s,
        Err(e) => {
            notes.push(format!("accounts are not in the list: {e}"));
            return;
        }
    };
    let industry: HashMap<&str, &str> = crm
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.industry.as_deref().unwrap_or("unknown")))
        .collect();
    // The day at the best hour to call the account's industry.
    let call_at = |account: &str| {
        let ind = industry.get(account).copied().unwrap_or("unknown");
        at_hour(day, send_time.best_hour(ind, Channel::Call))
    };
    match pipewise_engines::accounts::churn(crm, &seg) {
        Ok(report) => {
            for r in report.open.iter().filter(|r| r.owner_id == rep_id) {
                let close = r
                    .close_date
                    .as_deref()
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .unwrap_or_default()
                            .and_utc()
                            .timestamp()
                    });
                if close.is_some_and(|c| c > day + 90 * DAY) {
                    continue;
                }
                let Some(amount) = r.amount.filter(|a| a.is_finite() && *a > 0.0) else {
                    continue;
                };
                let uplift = r.risk * save_rate;
                let at = call_at(&r.account_id);
                let overdue = close.is_some_and(|c| c < day);
                let mut why = vec![format!(
                    "renewal {} {} with churn risk {:.0}%",
                    if overdue { "overdue since" } else { "closing" },
                    r.close_date.as_deref().unwrap_or("soon"),
                    r.risk * 100.0
                )];
                why.extend(
                    r.factors
                        .iter()
                        .filter(|f| f.push > 0.0)
                        .take(2)
                        .map(|f| format!("{}: {}", f.feature.replace('_', " "), f.value)),
                );
                // On the renewal deal itself: one action per deal, so a
                // check-in and a meeting on the same renewal never both go.
                out.push(Action {
                    target_kind: "deal".into(),
                    target_id: r.opportunity_id.clone(),
                    target: Some(r.account_name.clone()),
                    account_id: Some(r.account_id.clone()),
                    action: "renewal_check".into(),
                    channel: "meeting".into(),
                    at: instant(at),
                    at_epoch: at,
                    window_days: actions::window_days("renewal_check"),
                    message: Some(if overdue {
                        format!(
                            "Renewal check-in: the renewal was due {}; agree where it stands",
                            r.close_date.as_deref().unwrap_or("already")
                        )
                    } else {
                        format!(
                            "Renewal check-in: review usage and open issues before {}",
                            r.close_date.as_deref().unwrap_or("the renewal")
                        )
                    }),
                    why,
                    probability: r.risk,
                    probability_of: "churn".into(),
                    amount,
                    uplift,
                    uplift_source: format!("churn model × save rate {save_rate} (assumed)"),
                    expected_value: uplift * amount,
                    feedback_weight: 1.0,
                    minutes: actions::minutes("renewal_check", "meeting"),
                });
            }
        }
        Err(e) => notes.push(format!("renewal checks are not in the list: {e}")),
    }
    // Cross-sell: customers of the rep with no open deal.
    let expansions: Vec<&pipewise_store::read::Opportunity> = crm
        .opportunities
        .iter()
        .filter(|o| {
            o.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("expansion"))
                && o.closed_at.is_some_and(|c| c < as_of)
        })
        .collect();
    let won: Vec<f64> = expansions
        .iter()
        .filter(|o| o.stage == "closed_won")
        .filter_map(|o| o.amount)
        .collect();
    if expansions.is_empty() || won.is_empty() {
        notes.push("no closed expansion deals: cross-sell offers are not in the list".into());
        return;
    }
    let deal_value = won.iter().sum::<f64>() / expansions.len() as f64;
    // Customers: a won deal, and no renewal lost since their last win.
    let mut last: HashMap<&str, (i64, bool)> = HashMap::new();
    for o in &crm.opportunities {
        let (Some(a), Some(c)) = (o.account_id.as_deref(), o.closed_at) else {
            continue;
        };
        let won = o.stage == "closed_won";
        let renewal_lost = !won
            && o.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("renewal"));
        if c >= as_of || !(won || renewal_lost) {
            continue;
        }
        let e = last.entry(a).or_insert((c, won));
        if c >= e.0 {
            *e = (c, won);
        }
    }
    let customers: HashSet<&str> = last
        .iter()
        .filter(|(_, (_, won))| *won)
        .map(|(a, _)| *a)
        .collect();
    let created: usize = expansions.len();
    // Expansions opened per customer a year, over the data's span.
    let first = crm
        .opportunities
        .iter()
        .filter_map(|o| o.created_at)
        .min()
        .unwrap_or(as_of);
    let years = ((as_of - first) as f64 / (365.0 * DAY as f64)).max(0.25);
    // The chance a customer opens an expansion in the next 30 days at the
    // org's yearly rate: what one offer is credited with.
    let yearly = created as f64 / customers.len().max(1) as f64 / years;
    let rate = 1.0 - (-yearly * 30.0 / 365.0).exp();
    let open: HashSet<&str> = crm
        .opportunities
        .iter()
        .filter(|o| {
            o.closed_at.is_none_or(|c| c >= as_of) && o.created_at.is_none_or(|c| c < as_of)
        })
        .filter_map(|o| o.account_id.as_deref())
        .collect();
    let Ok(next) = pipewise_engines::accounts::next_products(crm, &seg) else {
        return;
    };
    for n in next.iter().filter(|n| {
        mine.contains(n.account_id.as_str())
            && customers.contains(n.account_id.as_str())
            && !open.contains(n.account_id.as_str())
    }) {
        let Some(top) = n.candidates.first() else {
            continue;
        };
        let uplift = top.probability * rate;
        let at = call_at(&n.account_id);
        out.push(Action {
            target_kind: "account".into(),
            target_id: n.account_id.clone(),
            target: Some(n.account_name.clone()),
            account_id: Some(n.account_id.clone()),
            action: "cross_sell".into(),
            channel: "call".into(),
            at: instant(at),
            at_epoch: at,
            window_days: actions::window_days("cross_sell"),
            message: Some(format!("Offer {}", top.product)),
            why: vec![
                format!(
                    "{} is its most likely next product ({:.0}% of its next purchases)",
                    top.product,
                    top.probability * 100.0
                ),
                n.why.clone(),
                format!(
                    "no open deal on the account; customers open {yearly:.2} expansions a year, \
                     a {:.1}% chance in the next 30 days",
                    rate * 100.0
                ),
            ],
            probability: top.probability,
            probability_of: "next_product".into(),
            amount: deal_value,
            uplift,
            uplift_source:
                "next-product pick rate × the chance of an expansion in 30 days at the org's rate"
                    .into(),
            expected_value: uplift * deal_value,
            feedback_weight: 1.0,
            minutes: actions::minutes("cross_sell", "call"),
        });
    }
}

/// The last instant the data records (an activity, a deal's creation or
/// close, a lead's arrival).
fn data_end(crm: &CrmData) -> Option<i64> {
    let a = crm.activities.iter().map(|a| a.occurred_at).max();
    let o = crm
        .opportunities
        .iter()
        .flat_map(|o| [o.created_at, o.closed_at])
        .flatten()
        .max();
    let l = crm.leads.iter().map(|l| l.created_at).max();
    [a, o, l].into_iter().flatten().max()
}

/// The day a list is made for by default: the data's last day
/// (`YYYY-MM-DD`), `None` without records.
pub fn default_day(crm: &CrmData) -> Option<String> {
    data_end(crm).map(|e| format_date(day_start(e)))
}

/// `rep`'s (a name or an id) list for a day (see [`ActionOptions`]),
/// stored for adherence when `opts.record`. Errors: no such rep, no data, a
/// model that cannot be read, a database error.
pub fn rep_actions(
    store: &mut SqliteStore,
    crm: &Arc<CrmData>,
    rep: &str,
    opts: &ActionOptions,
) -> anyhow::Result<RepActions> {
    let user = crate::lead_desk::find_user(crm, rep)
        .ok_or_else(|| InputError::new("rep", "a rep's name or id", rep))?
        .clone();
    let end = data_end(crm).ok_or_else(|| anyhow::anyhow!("the database holds no records yet"))?;
    let (day, as_of) = match opts.date {
        Some(d) => (day_start(d), day_start(d).min(end + 1)),
        None => (day_start(end), end + 1),
    };
    if let Some(h) = opts.hours
        && !(h.is_finite() && (0.0..=24.0).contains(&h))
    {
        return Err(InputError::new("hours", "hours in a day, 0 to 24", &h.to_string()).into());
    }
    if !(0.0..=1.0).contains(&opts.save_rate) {
        return Err(InputError::new(
            "save-rate",
            "a share of the churn risk, 0 to 1",
            &opts.save_rate.to_string(),
        )
        .into());
    }
    let (minutes, hours_source) = match opts.hours {
        Some(h) => (h * 60.0, "given".to_string()),
        None => {
            let roster = pipewise_engines::availability::Roster::with_org_hours(crm, 8, 18);
            let a = roster.of_user(&user.id);
            let secs = a.working_seconds(day, day + DAY) as f64;
            let source = if secs == 0.0 {
                "not at work that day (working hours and time off)".to_string()
            } else {
                format!(
                    "{:.0}% of {:.1} working hours",
                    actions::SELLING_SHARE * 100.0,
                    secs / 3600.0
                )
            };
            (secs / 60.0 * actions::SELLING_SHARE, source)
        }
    };
    let send_time = SendTimeModel::fit(crm, as_of);
    let mut candidates = Vec::new();
    let mut notes = Vec::new();
    if day > day_start(end) {
        notes.push(format!(
            "the data end on {}: this list for a later day knows nothing after that",
            format_date(end)
        ));
    }
    if let Some(role) = user
        .role
        .as_deref()
        .filter(|r| !r.eq_ignore_ascii_case("rep"))
    {
        notes.push(format!(
            "{} is not a rep (role {role}): lists are for reps' own books",
            user.name
        ));
    }
    deal_candidates(
        store,
        crm,
        &user.id,
        day,
        as_of,
        &send_time,
        &mut candidates,
        &mut notes,
    )?;
    lead_candidates(
        store,
        crm,
        &user,
        day,
        as_of,
        &send_time,
        &mut candidates,
        &mut notes,
    )?;
    account_candidates(
        crm,
        &user.id,
        day,
        as_of,
        opts.save_rate,
        &send_time,
        &mut candidates,
        &mut notes,
    );
    let dismissals: Vec<Dismissal> = store
        .dismissals(Some(&user.id))?
        .into_iter()
        .filter_map(|d| {
            Some(Dismissal {
                at: parse_utc(&format!("{}T00:00:00Z", d.day))?,
                target_kind: d.target_kind,
                target_id: d.target_id,
                action: d.action,
                reason: d.reason,
            })
        })
        .collect();
    let mut shown: HashMap<String, u32> = HashMap::new();
    let day_s = format_date(day);
    for r in store.recommendations(Some(&user.id))? {
        if r.day < day_s {
            *shown.entry(r.action).or_default() += 1;
        }
    }
    let feedback = Feedback::new(&dismissals, &shown, day);
    let plan = actions::plan(candidates, &feedback, minutes);
    let mut recorded = false;
    if opts.record {
        let rows: Vec<NewRecommendation> = plan
            .actions
            .iter()
            .map(|a| NewRecommendation {
                target_kind: a.target_kind.clone(),
                target_id: a.target_id.clone(),
                account_id: a.account_id.clone(),
                action: a.action.clone(),
                channel: a.channel.clone(),
                at: a.at.clone(),
                window_end: instant(day_start(a.at_epoch) + a.window_days * DAY),
                probability: a.probability,
                amount: a.amount,
                uplift: a.uplift,
                expected_value: a.expected_value,
                why: a.why.join("; "),
            })
            .collect();
        store.record_recommendations(&day_s, &user.id, &rows, &instant(Utc::now().timestamp()))?;
        recorded = true;
    }
    Ok(RepActions {
        rep_id: user.id.clone(),
        rep_name: user.name.clone(),
        day: day_s,
        as_of: instant(as_of - 1),
        hours_source,
        plan,
        notes,
        recorded,
    })
}

/// Adherence over the stored lists: per rep and team, the share of
/// recommendations acted on within their window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdherenceReport {
    /// The last instant the data records: windows closing after it are
    /// still open and not counted.
    pub as_of: String,
    pub recommended: usize,
    pub acted_on: usize,
    /// acted_on / recommended; `None` when no window has closed.
    pub adherence: Option<f64>,
    /// Followed from the list (a matching activity logged from it, or
    /// marked done on it): acted on also counts touches the rep would have
    /// made anyway. Its share of `recommended` (`None` when no window has
    /// closed).
    pub from_list: usize,
    pub from_list_share: Option<f64>,
    /// Recommendations whose window is still open.
    pub open: usize,
    pub by_rep: Vec<actions::AdherenceRow>,
    pub by_team: Vec<actions::AdherenceRow>,
    pub by_action: Vec<actions::AdherenceRow>,
}

/// Adherence over the lists stored for days in `[from, to]` (`YYYY-MM-DD`,
/// both optional). Errors: a database error.
pub fn adherence(
    store: &SqliteStore,
    crm: &CrmData,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<AdherenceReport> {
    adherence_of(store, crm, from, to, &|_| true)
}

/// The stored recommendations of days in `[from, to]` whose window has
/// closed by the data's end, as episodes (a recommendation repeated on a
/// day before the same one's window closes is one: the first list's, its
/// window running to the last one's end; one repeated on the day it closes
/// starts anew), each with whether it was acted on and whether from the
/// list (a matching activity logged from it, or one the rep marked done on
/// a list of the episode's days).
struct Episodes {
    end: i64,
    open: usize,
    recs: Vec<Logged>,
    acted: Vec<bool>,
    from_list: Vec<bool>,
}

fn episodes(
    store: &SqliteStore,
    crm: &CrmData,
    from: Option<&str>,
    to: Option<&str>,
    rep: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Episodes> {
    let end = data_end(crm).unwrap_or(0);
    let users: HashMap<&str, &pipewise_store::read::User> =
        crm.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let parse = |s: &str| parse_utc(s).unwrap_or(i64::MAX);
    let mut open = 0;
    let mut recs = Vec::new();
    for r in store.recommendations(None)? {
        if from.is_some_and(|f| r.day.as_str() < f)
            || to.is_some_and(|t| r.day.as_str() > t)
            || !rep(&r.rep_id)
        {
            continue;
        }
        let until = parse(&r.window_end);
        if until > end {
            open += 1;
            continue;
        }
        let from = parse(&format!("{}T00:00:00Z", r.day));
        recs.push(Logged {
            id: r.id,
            team: users.get(r.rep_id.as_str()).and_then(|u| u.team_id.clone()),
            rep_id: r.rep_id,
            target_kind: r.target_kind,
            target_id: r.target_id,
            account_id: r.account_id,
            action: r.action,
            channel: r.channel,
            from,
            until,
            probability: r.probability,
            amount: r.amount,
            expected_value: r.expected_value,
        });
    }
    recs.sort_by(|a, b| {
        (&a.rep_id, &a.target_kind, &a.target_id, &a.action, a.from).cmp(&(
            &b.rep_id,
            &b.target_kind,
            &b.target_id,
            &b.action,
            b.from,
        ))
    });
    let mut merged: Vec<Logged> = Vec::with_capacity(recs.len());
    for r in recs {
        if let Some(e) = merged.last_mut()
            && (&e.rep_id, &e.target_kind, &e.target_id, &e.action)
                == (&r.rep_id, &r.target_kind, &r.target_id, &r.action)
            && r.from < e.until - e.until.rem_euclid(86_400)
        {
            e.until = e.until.max(r.until);
            continue;
        }
        merged.push(r);
    }
    let recs = merged;
    // Touches by rep, in time order, to match each window.
    let mut by_rep: HashMap<&str, Vec<Touch>> = HashMap::new();
    for a in &crm.activities {
        if let Some(u) = a.user_id.as_deref() {
            by_rep.entry(u).or_default().push(Touch {
                user_id: u,
                kind: a.kind.as_str(),
                at: a.occurred_at,
                opportunity_id: a.opportunity_id.as_deref(),
                lead_id: a.lead_id.as_deref(),
                account_id: a.account_id.as_deref(),
                from_list: a.from_list,
            });
        }
    }
    for v in by_rep.values_mut() {
        v.sort_by_key(|t| t.at);
    }
    // Actions the rep marked done from the list: (rep, kind, target,
    // action) -> the instants they did.
    let mut done: HashMap<(&str, &str, &str, &str), Vec<i64>> = HashMap::new();
    let dismissals = store.dismissals(None)?;
    for d in dismissals.iter().filter(|d| d.reason == "done") {
        // The list it was marked done on: the episode whose days hold it.
        if let Some(t) = parse_utc(&format!("{}T00:00:00Z", d.day)) {
            done.entry((
                d.rep_id.as_str(),
                d.target_kind.as_str(),
                d.target_id.as_str(),
                d.action.as_str(),
            ))
            .or_default()
            .push(t);
        }
    }
    let marked_done = |r: &Logged| {
        done.get(&(
            r.rep_id.as_str(),
            r.target_kind.as_str(),
            r.target_id.as_str(),
            r.action.as_str(),
        ))
        .is_some_and(|ts| ts.iter().any(|&t| t >= r.from && t < r.until))
    };
    let (acted, from_list) = recs
        .iter()
        .map(|r| {
            let Some(ts) = by_rep.get(r.rep_id.as_str()) else {
                return (false, false);
            };
            let lo = ts.partition_point(|t| t.at < r.from);
            let mut hit = (false, false);
            for t in ts[lo..].iter().take_while(|t| t.at < r.until) {
                if actions::acts_on(r, t) {
                    hit.0 = true;
                    hit.1 |= t.from_list;
                }
            }
            // Acted on and marked done from the list: followed from it.
            hit.1 |= hit.0 && marked_done(r);
            hit
        })
        .unzip();
    Ok(Episodes {
        end,
        open,
        recs,
        acted,
        from_list,
    })
}

/// [`adherence`] over the lists of the reps `rep` allows.
pub fn adherence_of(
    store: &SqliteStore,
    crm: &CrmData,
    from: Option<&str>,
    to: Option<&str>,
    rep: &dyn Fn(&str) -> bool,
) -> anyhow::Result<AdherenceReport> {
    let Episodes {
        end,
        open,
        recs,
        acted: followed,
        from_list,
    } = episodes(store, crm, from, to, rep)?;
    let users: HashMap<&str, &pipewise_store::read::User> =
        crm.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let teams: HashMap<&str, &str> = crm
        .teams
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    let acted = followed.iter().filter(|f| **f).count();
    let name_of = |id: &str| users.get(id).map_or(id.to_string(), |u| u.name.clone());
    Ok(AdherenceReport {
        as_of: instant(end),
        recommended: recs.len(),
        acted_on: acted,
        adherence: (!recs.is_empty()).then(|| acted as f64 / recs.len() as f64),
        from_list: from_list.iter().filter(|f| **f).count(),
        from_list_share: (!recs.is_empty())
            .then(|| from_list.iter().filter(|f| **f).count() as f64 / recs.len() as f64),
        open,
        by_rep: actions::adherence_by(&recs, &followed, &from_list, |r| {
            Some((r.rep_id.clone(), name_of(&r.rep_id)))
        }),
        by_team: actions::adherence_by(&recs, &followed, &from_list, |r| {
            let t = r.team.clone()?;
            let name = teams.get(t.as_str()).map_or(t.clone(), |n| n.to_string());
            Some((t, name))
        }),
        by_action: actions::adherence_by(&recs, &followed, &from_list, |r| {
            Some((r.action.clone(), r.action.clone()))
        }),
    })
}

/// What following the deal recommendations was worth
/// ([`pipewise_engines::effect`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdherenceEffectReport {
    /// The last instant the data records.
    pub as_of: String,
    /// Deal recommendations (episodes whose window closed), those followed
    /// from the list, and those acted on by any matching touch.
    pub recommendations: usize,
    pub followed_from_list: usize,
    pub acted_on: usize,
    /// Deals with recommendations still open at the data's end (left out:
    /// their outcome is not known).
    pub open_deals: usize,
    /// The estimate, or why there is none.
    pub estimate: Option<effect::EffectEstimate>,
    pub cannot_judge: Option<String>,
    /// Across reps: the correlation between a rep's share of
    /// recommendations followed and their win rate on deals closed before
    /// their first recommendation (why the naive comparison misleads);
    /// `None` with fewer than 5 reps with both.
    pub adherence_prior_win_rate_correlation: Option<f64>,
    pub method: String,
}

/// Estimates what following the deal recommendations of days in `[from,
/// to]` was worth (see [`pipewise_engines::effect`]): the closed deals that
/// had recommendations, each with how many were followed from the list (a
/// matching activity, by the rep, on the deal, by the channel, in the
/// window, logged from the list, `sequence_id` `next-best-action`, or
/// marked done on it by the rep), adjusted for rep and for the
/// deal as the CRM showed it at its first recommendation. Errors: a
/// database error.
pub fn adherence_effect(
    store: &SqliteStore,
    crm: &CrmData,
    from: Option<&str>,
    to: Option<&str>,
    rep: &dyn Fn(&str) -> bool,
) -> anyhow::Result<AdherenceEffectReport> {
    use pipewise_engines::effect::{COVARIATES, DealFollowing};
    let ep = episodes(store, crm, from, to, rep)?;
    let opps: HashMap<&str, &pipewise_store::read::Opportunity> = crm
        .opportunities
        .iter()
        .map(|o| (o.id.as_str(), o))
        .collect();
    // Per deal: its recommendation episodes in time order.
    let mut per_deal: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in ep.recs.iter().enumerate() {
        if r.target_kind == "deal" {
            per_deal.entry(r.target_id.as_str()).or_default().push(i);
        }
    }
    let mut stage_changes: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for h in &crm.history {
        if h.field == "stage"
            && let Some(v) = h.value.as_deref()
            && per_deal.contains_key(h.opportunity_id.as_str())
        {
            stage_changes
                .entry(h.opportunity_id.as_str())
                .or_default()
                .push((h.changed_at, v));
        }
    }
    for v in stage_changes.values_mut() {
        v.sort_by_key(|c| c.0);
    }
    let mut touches: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for a in &crm.activities {
        if let Some(o) = a.opportunity_id.as_deref()
            && per_deal.contains_key(o)
        {
            touches
                .entry(o)
                .or_default()
                .push((a.occurred_at, a.kind.as_str()));
        }
    }
    let day = 86_400.0;
    let mut units = Vec::new();
    let mut open_deals = 0;
    let (mut recommendations, mut followed_n, mut acted_n) = (0, 0, 0);
    let mut deal_ids: Vec<&str> = per_deal.keys().copied().collect();
    deal_ids.sort_unstable();
    for id in deal_ids {
        let idx = &per_deal[id];
        let Some(o) = opps.get(id) else { continue };
        recommendations += idx.len();
        followed_n += idx.iter().filter(|&&i| ep.from_list[i]).count();
        acted_n += idx.iter().filter(|&&i| ep.acted[i]).count();
        let won = match o.stage.as_str() {
            "closed_won" => true,
            "closed_lost" => false,
            _ => {
                open_deals += 1;
                continue;
            }
        };
        let first = idx
            .iter()
            .copied()
            .min_by_key(|&i| ep.recs[i].from)
            .unwrap_or(idx[0]);
        let r0 = &ep.recs[first];
        let at = r0.from;
        let changes = stage_changes.get(id).map_or(&[][..], |v| v.as_slice());
        let last = changes.iter().rev().find(|c| c.0 <= at);
        let stage = last
            .and_then(|c| pipewise_features::stage_index(c.1))
            .unwrap_or(0);
        let since = last.map_or(o.created_at.unwrap_or(at), |c| c.0);
        let ts = touches.get(id).map_or(&[][..], |v| v.as_slice());
        let t14 = ts
            .iter()
            .filter(|t| t.0 < at && t.0 >= at - 14 * 86_400)
            .count();
        let m30 = ts
            .iter()
            .filter(|t| t.0 < at && t.0 >= at - 30 * 86_400 && t.1 == "meeting")
            .count();
        let p = if r0.probability.is_finite() {
            r0.probability.clamp(0.01, 0.99)
        } else {
            0.5
        };
        let mut x = [0.0; COVARIATES.len()];
        x[0] = (p / (1.0 - p)).ln();
        x[1] = r0.amount.max(1.0).ln();
        x[2] = ((at - o.created_at.unwrap_or(at)).max(0) as f64 / day).ln_1p();
        x[3] = ((at - since).max(0) as f64 / day).ln_1p();
        x[4] = t14 as f64;
        x[5] = m30 as f64;
        if (1..=4).contains(&stage) {
            x[5 + stage] = 1.0;
        }
        units.push(DealFollowing {
            deal_id: id.to_string(),
            rep_id: r0.rep_id.clone(),
            won,
            recommended: idx.len() as u32,
            followed: idx.iter().filter(|&&i| ep.from_list[i]).count() as u32,
            acted: idx.iter().filter(|&&i| ep.acted[i]).count() as u32,
            amount: r0.amount,
            x,
        });
    }
    // Confounding check: rep adherence against their earlier win rate.
    let mut first_rec: HashMap<&str, i64> = HashMap::new();
    let mut rep_follow: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, r) in ep.recs.iter().enumerate() {
        if r.target_kind != "deal" {
            continue;
        }
        let e = first_rec.entry(r.rep_id.as_str()).or_insert(r.from);
        *e = (*e).min(r.from);
        let f = rep_follow.entry(r.rep_id.as_str()).or_default();
        f.0 += 1;
        f.1 += usize::from(ep.from_list[i]);
    }
    let mut prior: HashMap<&str, (usize, usize)> = HashMap::new();
    for o in &crm.opportunities {
        if let (Some(&t0), Some(c)) = (first_rec.get(o.owner_id.as_str()), o.closed_at)
            && c < t0
            && matches!(o.stage.as_str(), "closed_won" | "closed_lost")
        {
            let e = prior.entry(o.owner_id.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(o.stage == "closed_won");
        }
    }
    let pairs: Vec<(f64, f64)> = rep_follow
        .iter()
        .filter_map(|(r, (n, f))| {
            let (m, w) = prior.get(r).copied()?;
            (m >= 10).then(|| (*f as f64 / *n as f64, w as f64 / m as f64))
        })
        .collect();
    let correlation = (pairs.len() >= 5).then(|| pearson(&pairs)).flatten();
    let (estimate, cannot_judge) = if followed_n == 0 && acted_n > 0 {
        (
            None,
            Some(format!(
                "cannot judge: {acted_n} of {recommendations} deal recommendations were acted on, \
                 but no activity records that it was logged from the list (sequence_id {}) \
                 and none was marked done on it; a deal's meetings also follow how well it goes, so the touches alone would \
                 overstate the effect",
                pipewise_core::FROM_LIST_SEQUENCE
            )),
        )
    } else {
        match effect::estimate(&units) {
            Ok(e) => (Some(e), None),
            Err(why) => (None, Some(why)),
        }
    };
    Ok(AdherenceEffectReport {
        as_of: instant(ep.end),
        recommendations,
        followed_from_list: followed_n,
        acted_on: acted_n,
        open_deals,
        estimate,
        cannot_judge,
        adherence_prior_win_rate_correlation: correlation,
        method: "linear probability model of each closed deal's outcome on the recommendations \
                 followed from the list, with the recommendations made, rep fixed effects and the \
                 deal at its first recommendation (stage, amount, age, days in stage, touches in 14 \
                 days, meetings in 30 days, the list's win probability); HC1 robust standard errors"
            .to_string(),
    })
}

fn pearson(v: &[(f64, f64)]) -> Option<f64> {
    let n = v.len() as f64;
    let (mx, my) = (
        v.iter().map(|p| p.0).sum::<f64>() / n,
        v.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = v.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = v.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let syy: f64 = v.iter().map(|p| (p.1 - my).powi(2)).sum();
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// pipewise's focus policy for the simulator's closed loop, learned from the
/// org's history in `dir` (canonical files) as known at `as_of` (epoch
/// seconds): the focus model ([`actions::fit_focus_model`]) and the org's
/// meeting show rate. Returns it with a line saying what was learned.
/// Errors: an import that fails, too few closed deals.
pub fn learn_focus(
    dir: &std::path::Path,
    as_of: i64,
    progress: &dyn pipewise_ingest::Progress,
) -> anyhow::Result<(actions::PipewiseFocus, String)> {
    let (_tmp, store) = crate::leads::import_history(dir, as_of, progress)?;
    let crm = store.load_crm()?;
    let data = crate::load_data(&crm)?;
    let model = actions::fit_focus_model(&data, as_of)?;
    let funnel = actions::funnel(&data, as_of);
    let line = format!(
        "focus model learned from the weekly snapshots of up to 18 months before {} \
         ({} features a deal's CRM view shows); a meeting's assumed shift {:+.2} log-odds at each stage left",
        format_date(as_of),
        actions::FOCUS_FEATURES.len(),
        actions::ASSUMED_SHIFT[2]
    );
    Ok((
        actions::PipewiseFocus {
            model,
            funnel,
            valuation: actions::FocusValuation::Assumed,
        },
        line,
    ))
}

/// Which list to make (`GET /api/v1/actions`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    /// The rep (a user id in the caller's scope; default: the caller).
    #[param(max_length = 200)]
    pub rep: Option<String>,
    /// The day, YYYY-MM-DD (default: the data's last day).
    #[param(format = Date)]
    pub date: Option<String>,
    /// Selling hours that day, 0-24 (default: 30% of the rep's working
    /// hours that day).
    #[param(minimum = 0, maximum = 24)]
    pub hours: Option<f64>,
    /// The share of a renewal's churn risk a check-in saves, 0-1 (default
    /// 0.2).
    #[param(minimum = 0, maximum = 1)]
    pub save_rate: Option<f64>,
    /// Store the list for adherence (default true).
    pub record: Option<bool>,
}

/// A dismissal of an action (`POST /api/v1/actions/dismissals`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissRequest {
    /// The rep whose list it was on (a user id in the caller's scope;
    /// default: the caller).
    #[schema(max_length = 200)]
    pub rep: Option<String>,
    /// `deal`, `lead` or `account`.
    #[schema(pattern = "^(deal|lead|account)$")]
    pub target_kind: String,
    /// The deal's, lead's or account's id.
    #[schema(min_length = 1, max_length = 200)]
    pub target_id: String,
    /// `call`, `email`, `meeting`, `cadence_step`, `renewal_check` or
    /// `cross_sell`.
    #[schema(pattern = "^(call|email|meeting|cadence_step|renewal_check|cross_sell)$")]
    pub action: String,
    /// `done`, `not_useful`, `wrong_timing`, `not_mine` or `other` (say why
    /// in the note).
    #[schema(pattern = "^(done|not_useful|wrong_timing|not_mine|other)$")]
    pub reason: String,
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    /// The day of the list, YYYY-MM-DD (default: the data's last day).
    #[schema(format = Date)]
    pub date: Option<String>,
}

impl DismissRequest {
    /// Checks every field; the first bad one is the error.
    pub fn check(&self) -> Result<(), InputError> {
        if !matches!(self.target_kind.as_str(), "deal" | "lead" | "account") {
            return Err(InputError::new(
                "target_kind",
                "deal, lead or account",
                &self.target_kind,
            ));
        }
        if self.target_id.trim().is_empty() || self.target_id.len() > 200 {
            return Err(InputError::new("target_id", "an id", &self.target_id));
        }
        if !actions::ACTIONS.contains(&self.action.as_str()) {
            return Err(InputError::new(
                "action",
                "call, email, meeting, cadence_step, renewal_check or cross_sell",
                &self.action,
            ));
        }
        if !pipewise_store::actions::DISMISSAL_REASONS.contains(&self.reason.as_str()) {
            return Err(InputError::new(
                "reason",
                "done, not_useful, wrong_timing, not_mine or other",
                &self.reason,
            ));
        }
        let note = self.note.as_deref().map(str::trim).unwrap_or("");
        if note.len() > 2000 {
            return Err(InputError::new("note", "at most 2000 characters", "longer"));
        }
        if let Some(d) = &self.date
            && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err()
        {
            return Err(InputError::new("date", "a date as YYYY-MM-DD", d));
        }
        Ok(())
    }
}

/// Which lists adherence is measured over (`GET /api/v1/adherence`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdherenceQuery {
    /// Lists made on or after this day (YYYY-MM-DD).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Lists made on or before this day (YYYY-MM-DD).
    #[param(format = Date)]
    pub to: Option<String>,
}

/// What `pipewise actions import-log` stored.
#[derive(Debug, Clone, Serialize)]
pub struct ImportLogReport {
    pub file: String,
    /// Rows read, and the lists (one rep's day) they made.
    pub rows: usize,
    pub lists: usize,
    /// Rows repeating an action already in the rep's list that day (merged
    /// into it, the window running to the later end).
    pub merged: usize,
    pub reps: usize,
    /// The first and last day (`YYYY-MM-DD`).
    pub first_day: Option<String>,
    pub last_day: Option<String>,
}

/// The columns of a recommendation log: required, then optional.
pub const LOG_REQUIRED: [&str; 10] = [
    "day",
    "rep_id",
    "target_kind",
    "target_id",
    "action",
    "channel",
    "window_end",
    "probability",
    "amount",
    "expected_value",
];
pub const LOG_OPTIONAL: [&str; 3] = ["account_id", "at", "why"];

/// Stores the recommendation log at `path` (a CSV with [`LOG_REQUIRED`] and
/// any of [`LOG_OPTIONAL`] columns, one row per recommended action, each
/// rep's day in rank order: what pipewise's lists recommended, kept
/// elsewhere or written by the simulator), replacing the lists of the days
/// and reps it holds. Nothing is stored unless every row is valid. Errors:
/// the file, line and column of the first bad cell and what was expected;
/// a rep who is not a user; a database error.
pub fn import_log(
    store: &mut SqliteStore,
    crm: &CrmData,
    path: &std::path::Path,
) -> anyhow::Result<ImportLogReport> {
    let file = path.display().to_string();
    let mut rd = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let headers: Vec<String> = rd
        .headers()
        .map_err(|e| anyhow::anyhow!("{file}: line 1: {e}"))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    for name in LOG_REQUIRED {
        anyhow::ensure!(
            col(name).is_some(),
            "{file}: line 1: expected a column {name} (the log needs {}; optional {})",
            LOG_REQUIRED.join(", "),
            LOG_OPTIONAL.join(", ")
        );
    }
    let users: HashSet<&str> = crm.users.iter().map(|u| u.id.as_str()).collect();
    let deals: HashMap<&str, &pipewise_store::read::Opportunity> = crm
        .opportunities
        .iter()
        .map(|o| (o.id.as_str(), o))
        .collect();
    let leads: HashSet<&str> = crm.leads.iter().map(|l| l.id.as_str()).collect();
    let accounts: HashSet<&str> = crm.accounts.iter().map(|a| a.id.as_str()).collect();
    let mut lists: Vec<((String, String), Vec<NewRecommendation>)> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut merged = 0;
    let mut rows = 0;
    for (n, rec) in rd.records().enumerate() {
        let line = n + 2;
        let rec = rec.map_err(|e| anyhow::anyhow!("{file}: line {line}: {e}"))?;
        let cell = |name: &str| -> (usize, &str) {
            col(name).map_or((0, ""), |i| (i + 1, rec.get(i).unwrap_or("").trim()))
        };
        let bad = |name: &str, expected: &str| {
            let (c, v) = cell(name);
            anyhow::anyhow!(
                "{file}: line {line}, column {c} ({name}): expected {expected}, found {v:?}"
            )
        };
        let (_, day) = cell("day");
        if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
            return Err(bad("day", "a date YYYY-MM-DD"));
        }
        let (_, rep_id) = cell("rep_id");
        if !users.contains(rep_id) {
            return Err(bad("rep_id", "the id of a user the data holds"));
        }
        let (_, kind) = cell("target_kind");
        if !matches!(kind, "deal" | "lead" | "account") {
            return Err(bad("target_kind", "deal, lead or account"));
        }
        let (_, target) = cell("target_id");
        let known = match kind {
            "deal" => deals.get(target).map(|o| o.account_id.as_deref()),
            "lead" => leads.contains(target).then_some(None),
            _ => accounts.contains(target).then_some(Some(target)),
        };
        let Some(target_account) = known else {
            return Err(bad(
                "target_id",
                &format!("the id of a {kind} the data holds"),
            ));
        };
        let (_, action) = cell("action");
        if !actions::fits_target(kind, action) {
            let valid: Vec<&str> = actions::ACTIONS
                .iter()
                .copied()
                .filter(|a| actions::fits_target(kind, a))
                .collect();
            return Err(bad(
                "action",
                &format!("an action on a {kind}: {}", valid.join(" or ")),
            ));
        }
        let (_, channel) = cell("channel");
        if !matches!(channel, "call" | "email" | "meeting" | "sms") {
            return Err(bad("channel", "call, email, meeting or sms"));
        }
        if matches!(action, "call" | "email" | "meeting") && channel != action {
            return Err(bad("channel", &format!("{action}, as the action is")));
        }
        let (_, window_end) = cell("window_end");
        match parse_utc(window_end) {
            Some(t) if t > parse_utc(&format!("{day}T00:00:00Z")).unwrap_or(i64::MIN) => {}
            Some(_) => {
                return Err(bad(
                    "window_end",
                    &format!("an instant after the day {day}"),
                ));
            }
            None => return Err(bad("window_end", "a UTC instant YYYY-MM-DDTHH:MM:SSZ")),
        }
        let (_, at) = cell("at");
        let at = if at.is_empty() {
            format!("{day}T00:00:00Z")
        } else if parse_utc(at).is_some() {
            at.to_string()
        } else {
            return Err(bad("at", "a UTC instant YYYY-MM-DDTHH:MM:SSZ or nothing"));
        };
        let number = |name: &str, lo: f64, hi: f64, expected: &str| -> anyhow::Result<f64> {
            match cell(name).1.parse::<f64>() {
                Ok(v) if v.is_finite() && (lo..=hi).contains(&v) => Ok(v),
                _ => Err(bad(name, expected)),
            }
        };
        let probability = number("probability", 0.0, 1.0, "a probability from 0 to 1")?;
        let amount = number("amount", 0.0, f64::MAX, "an amount of 0 or more")?;
        let expected_value = number("expected_value", f64::MIN, f64::MAX, "a number")?;
        let account_id = Some(cell("account_id").1)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let Some(a) = account_id.as_deref()
            && target_account.is_some_and(|t| t != a)
        {
            return Err(bad(
                "account_id",
                &format!(
                    "the {kind}'s account ({}) or nothing",
                    target_account.unwrap_or_default()
                ),
            ));
        }
        let key = (day.to_string(), rep_id.to_string());
        let k = *index.entry(key.clone()).or_insert_with(|| {
            lists.push((key.clone(), Vec::new()));
            lists.len() - 1
        });
        // The same action again in the rep's day: one recommendation, its
        // window running to the later end.
        if let Some(prev) = lists[k]
            .1
            .iter_mut()
            .find(|r| r.target_kind == kind && r.target_id == target && r.action == action)
        {
            if parse_utc(window_end) > parse_utc(&prev.window_end) {
                prev.window_end = window_end.to_string();
            }
            merged += 1;
            rows += 1;
            continue;
        }
        lists[k].1.push(NewRecommendation {
            target_kind: kind.to_string(),
            target_id: target.to_string(),
            account_id,
            action: action.to_string(),
            channel: channel.to_string(),
            at,
            window_end: window_end.to_string(),
            probability,
            amount,
            uplift: if amount > 0.0 {
                expected_value / amount
            } else {
                0.0
            },
            expected_value,
            why: cell("why").1.to_string(),
        });
        rows += 1;
    }
    let reps: HashSet<&str> = lists.iter().map(|l| l.0.1.as_str()).collect();
    let first_day = lists.iter().map(|l| l.0.0.clone()).min();
    let last_day = lists.iter().map(|l| l.0.0.clone()).max();
    let report = ImportLogReport {
        file,
        rows,
        lists: lists.len(),
        merged,
        reps: reps.len(),
        first_day,
        last_day,
    };
    store.record_recommendation_lists(&lists)?;
    Ok(report)
}
