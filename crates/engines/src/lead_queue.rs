//! A rep's follow-up tasks for a day: for each of their open leads, the
//! cadence's next step, when it falls due, on which channel and at which
//! hour (the send-time model's), and whether it is late.
//!
//! Progress through the cadence is read from the lead's recorded touches
//! (outbound calls, emails and SMS with the lead): the next step is the one
//! after the touches made. A lead that replied, or a call that connected,
//! has left the cadence (stop on reply), as has a converted or disqualified
//! lead, or one whose cadence is complete.

use std::collections::HashMap;

use pipewise_sim::policy::Channel;
use pipewise_store::read::CrmData;
use serde::Serialize;

use crate::lead_policy::{CadenceDef, SendTimeModel};

const DAY: i64 = 86_400;

/// One task of a rep's day.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub lead_id: String,
    pub company: Option<String>,
    /// 1-based step of the cadence, and how many it has.
    pub step: usize,
    pub steps: usize,
    /// `call`, `email` or `sms`.
    pub channel: String,
    pub template: Option<String>,
    /// When the step is due (epoch seconds): its day at the send-time
    /// model's best hour for the lead's industry and the channel.
    pub due_at: i64,
    /// `late` (due before the day), `today`, or `upcoming`.
    pub status: String,
    /// Touches made so far and the last one's time (epoch seconds).
    pub touches_made: usize,
    pub last_touch_at: Option<i64>,
}

/// The tasks of `rep_id` for the day holding `date` (epoch seconds): late
/// ones first, then today's by time; `upcoming` ones only when `all`.
/// Leads older than 45 days are left out (their cadence is long over).
pub fn queue(
    data: &CrmData,
    rep_id: &str,
    date: i64,
    cadence: &CadenceDef,
    send_time: &SendTimeModel,
    all: bool,
) -> Vec<Task> {
    let day = date.div_euclid(DAY) * DAY;
    let industry: HashMap<&str, &str> = data
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.industry.as_deref().unwrap_or("unknown")))
        .collect();
    let company: HashMap<&str, &str> = data
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.name.as_str()))
        .collect();
    let mut touches: HashMap<&str, Vec<(i64, bool)>> = HashMap::new();
    for a in &data.activities {
        if a.occurred_at >= day + DAY {
            break;
        }
        if let Some(l) = a.lead_id.as_deref()
            && Channel::parse(&a.kind).is_some()
            && a.direction.as_deref() != Some("inbound")
        {
            let reply = matches!(a.outcome.as_deref(), Some("replied" | "connected"));
            touches.entry(l).or_default().push((a.occurred_at, reply));
        }
    }
    let mut out = Vec::new();
    for l in &data.leads {
        if l.owner_id.as_deref() != Some(rep_id)
            || l.created_at >= day + DAY
            || day - l.created_at > 45 * DAY
            || l.converted_at.is_some_and(|t| t < day + DAY)
            || l.disqualified_at.is_some_and(|t| t < day + DAY)
        {
            continue;
        }
        let made = touches.get(l.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        if made.iter().any(|t| t.1) || made.len() >= cadence.steps.len() {
            continue;
        }
        let k = made.len();
        let step = &cadence.steps[k];
        let channel = Channel::parse(&step.channel).unwrap_or(Channel::Email);
        let ind = l
            .account_id
            .as_deref()
            .and_then(|a| industry.get(a).copied())
            .unwrap_or("unknown");
        let due_at = if k == 0 {
            // The first reply is due at once, or at the next business
            // morning when the lead came in out of hours (the SLA's clock).
            if pipewise_sim::time::is_business_hours(l.created_at) {
                l.created_at
            } else {
                pipewise_sim::time::next_business_morning(l.created_at)
            }
        } else {
            let first = made[0].0;
            let hour = send_time.best_hour(ind, channel);
            pipewise_sim::policy::business_day_at(first, step.day, f64::from(hour))
        };
        let status = if due_at < day {
            "late"
        } else if due_at < day + DAY {
            "today"
        } else {
            "upcoming"
        };
        if status == "upcoming" && !all {
            continue;
        }
        out.push(Task {
            lead_id: l.id.clone(),
            company: l.company.clone().or_else(|| {
                l.account_id
                    .as_deref()
                    .and_then(|a| company.get(a))
                    .map(|s| s.to_string())
            }),
            step: k + 1,
            steps: cadence.steps.len(),
            channel: channel.as_str().into(),
            template: step.template.clone(),
            due_at,
            status: status.into(),
            touches_made: k,
            last_touch_at: made.last().map(|t| t.0),
        });
    }
    let rank = |s: &str| match s {
        "late" => 0,
        "today" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(&a.status)
            .cmp(&rank(&b.status))
            .then(a.due_at.cmp(&b.due_at))
    });
    out
}
