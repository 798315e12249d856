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
    /// `late` (due before the day), `today`, `upcoming`, or as the rep
    /// marked it (on the day or since): `done` or `skipped`; `due_at` is
    /// then when it was marked.
    pub status: String,
    /// Touches made so far and the last one's time (epoch seconds).
    pub touches_made: usize,
    pub last_touch_at: Option<i64>,
}

/// The tasks of `rep_id` for the day holding `date` (epoch seconds): late
/// ones first, then today's by time, then the ones marked done or skipped
/// on the day or since; `upcoming` ones only when `all`. A step counts as made when
/// the CRM records that many touches or the rep marked it (`marks`, the
/// latest per lead and step); the next task is the first step neither
/// covers. Leads older than 45 days are left out (their cadence is long
/// over).
pub fn queue(
    data: &CrmData,
    rep_id: &str,
    date: i64,
    cadence: &CadenceDef,
    send_time: &SendTimeModel,
    all: bool,
    marks: &[pipewise_store::LeadTaskMark],
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
            let reply = pipewise_core::is_reply(a.outcome.as_deref());
            touches.entry(l).or_default().push((a.occurred_at, reply));
        }
    }
    // Per lead: (step, status, marked at). A mark counts whenever it was
    // made: the records often end before today (the last import), while
    // reps mark tasks as they work.
    let mut marked: HashMap<&str, Vec<(usize, &str, i64)>> = HashMap::new();
    for m in marks {
        let at = chrono::DateTime::parse_from_rfc3339(&m.marked_at).map_or(day, |t| t.timestamp());
        marked.entry(m.lead_id.as_str()).or_default().push((
            m.step as usize,
            m.status.as_str(),
            at,
        ));
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
        let marks = marked.get(l.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let company_of = || {
            l.company.clone().or_else(|| {
                l.account_id
                    .as_deref()
                    .and_then(|a| company.get(a))
                    .map(|s| s.to_string())
            })
        };
        // The steps marked on the day or since, shown as such.
        for &(step, status, at) in marks {
            if at >= day && step <= cadence.steps.len() {
                let s = &cadence.steps[step - 1];
                out.push(Task {
                    lead_id: l.id.clone(),
                    company: company_of(),
                    step,
                    steps: cadence.steps.len(),
                    channel: Channel::parse(&s.channel)
                        .unwrap_or(Channel::Email)
                        .as_str()
                        .into(),
                    template: s.template.clone(),
                    due_at: at,
                    status: status.into(),
                    touches_made: made.len(),
                    last_touch_at: made.last().map(|t| t.0),
                });
            }
        }
        if made.iter().any(|t| t.1) {
            continue;
        }
        let covered = |k: usize| k < made.len() || marks.iter().any(|m| m.0 == k + 1);
        let Some(k) = (0..cadence.steps.len()).find(|&k| !covered(k)) else {
            continue;
        };
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
            // Day offsets count from the first touch (or the first mark).
            let first = made
                .first()
                .map(|t| t.0)
                .into_iter()
                .chain(marks.iter().map(|m| m.2))
                .min()
                .unwrap_or(l.created_at);
            let hour = f64::from(send_time.best_hour(ind, channel));
            let scheduled = pipewise_sim::policy::business_day_at(first, step.day, hour);
            // A step made late pushes the next one back by the cadence's
            // gap between them: no two steps on top of each other.
            let last = made
                .last()
                .map(|t| t.0)
                .into_iter()
                .chain(marks.iter().filter(|m| m.0 <= k).map(|m| m.2))
                .max()
                .unwrap_or(first);
            let gap = step.day - cadence.steps[k - 1].day;
            scheduled.max(pipewise_sim::policy::business_day_at(last, gap, hour))
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
            company: company_of(),
            step: k + 1,
            steps: cadence.steps.len(),
            channel: channel.as_str().into(),
            template: step.template.clone(),
            due_at,
            status: status.into(),
            touches_made: made.len(),
            last_touch_at: made.last().map(|t| t.0),
        });
    }
    let rank = |s: &str| match s {
        "late" => 0,
        "today" => 1,
        "upcoming" => 2,
        _ => 3,
    };
    out.sort_by(|a, b| {
        rank(&a.status)
            .cmp(&rank(&b.status))
            .then(a.due_at.cmp(&b.due_at))
    });
    out
}
