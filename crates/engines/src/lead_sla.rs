//! Speed to lead: each lead's response clock against a service-level
//! agreement (default 5 minutes in business hours), the leads waiting and
//! those past it, and what response time was worth on the org's own leads.
//!
//! The clock counts the owner's working minutes only: their working hours
//! in their time zone, less the periods they are away
//! ([`crate::availability`]); for an owner without hours of their own, and
//! a lead without an owner, the org's business hours (Monday to Friday,
//! 08:00-18:00 UTC, [`SlaOptions`]). A lead that arrives on Friday evening
//! starts its clock on Monday morning. A lead is *breached* once its clock
//! passes the SLA, and due for *reassignment* once it passes twice the SLA
//! without an answer, or at once when its owner is away.

use std::collections::HashMap;

use pipewise_store::read::CrmData;
use serde::Serialize;

use crate::availability::Roster;

const DAY: i64 = 86_400;
const MINUTE: i64 = 60;

/// The SLA and the business hours its clock runs in.
#[derive(Debug, Clone)]
pub struct SlaOptions {
    /// Business minutes allowed to the first response.
    pub minutes: f64,
    /// First and last business hour (UTC), e.g. 8 and 18: 08:00-18:00.
    pub open_hour: i64,
    pub close_hour: i64,
    /// Leads waiting longer than this are no longer listed as waiting (days).
    pub waiting_days: i64,
    /// Only the leads these users own (`None`: every lead, owned or not);
    /// the clock's as-of instant is still the whole data's.
    pub owners: Option<std::collections::BTreeSet<String>>,
}

impl Default for SlaOptions {
    fn default() -> Self {
        SlaOptions {
            minutes: 5.0,
            open_hour: 8,
            close_hour: 18,
            waiting_days: 14,
            owners: None,
        }
    }
}

/// Everyone's working time for the clock: their own hours, zone and
/// absences, or `o`'s business hours.
pub fn roster(data: &CrmData, o: &SlaOptions) -> Roster {
    Roster::with_org_hours(data, o.open_hour, o.close_hour)
}

/// Seconds on the clock of a lead owned by `owner` (`None`: no owner, the
/// org's hours) between two instants: the owner's working time.
pub fn clock_seconds(roster: &Roster, owner: Option<&str>, from: i64, to: i64) -> i64 {
    roster
        .of_user(owner.unwrap_or(""))
        .working_seconds(from, to)
}

/// Business seconds between two instants (epoch seconds) in the org's
/// business hours of `o` (UTC), whoever owns the lead.
pub fn business_seconds(from: i64, to: i64, o: &SlaOptions) -> i64 {
    if to <= from {
        return 0;
    }
    let mut total = 0;
    let mut day = from.div_euclid(DAY) * DAY;
    while day < to {
        // 1970-01-01 was a Thursday: weekday 0 = Monday.
        let weekday = (day / DAY + 3).rem_euclid(7);
        if weekday < 5 {
            let open = day + o.open_hour * 3600;
            let close = day + o.close_hour * 3600;
            let a = from.max(open);
            let b = to.min(close);
            if b > a {
                total += b - a;
            }
        }
        day += DAY;
    }
    total
}

/// A lead waiting for its first response.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingLead {
    pub lead_id: String,
    pub owner_id: Option<String>,
    /// Epoch seconds.
    pub created_at: i64,
    /// Business minutes on the clock so far.
    pub waiting_minutes: f64,
    /// `within`, `breached` (past the SLA) or `reassign` (past twice the
    /// SLA, or the owner away).
    pub state: String,
    /// When the owner is away at the as-of instant: when they are back
    /// (epoch seconds). Their clock stands still meanwhile, so the lead is
    /// due for reassignment.
    pub owner_away_until: Option<i64>,
}

/// Response figures of one rep over the report's window.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepResponse {
    pub rep_id: String,
    pub leads: usize,
    /// Median business minutes to the first response, over answered leads.
    pub median_minutes: Option<f64>,
    /// Share (0-1) of leads answered within the SLA.
    pub within_sla: f64,
    /// Share (0-1) of leads never answered.
    pub never_answered: f64,
}

/// Conversion of the leads in one response band.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponseBand {
    /// "under 5 minutes", "5-60 minutes", "1-24 hours", "over a day", "never".
    pub band: String,
    pub leads: usize,
    /// Share (0-1) converted.
    pub conversion: f64,
}

/// The speed-to-lead report.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaReport {
    pub sla_minutes: f64,
    /// Epoch seconds: the latest lead event.
    pub as_of: i64,
    /// The leads the figures cover: arrived in the 90 days before `as_of`.
    pub window_days: i64,
    pub leads: usize,
    /// Share (0-1) answered within the SLA; never-answered leads count as
    /// not.
    pub within_sla: f64,
    /// Share (0-1) never answered (of leads older than two days).
    pub never_answered: f64,
    /// Median business minutes to the first response (answered leads).
    pub median_minutes: Option<f64>,
    pub by_rep: Vec<RepResponse>,
    /// Conversion by response band, over leads 35-400 days old (whose
    /// outcome has had time to happen), in wall-clock time (what the lead
    /// waited, nights included).
    pub conversion_by_response: Vec<ResponseBand>,
    /// Leads waiting for their first response (up to `waiting_days` old):
    /// those due for reassignment first, then those past the SLA, longest
    /// waiting first within each.
    pub waiting: Vec<WaitingLead>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The report as of the latest lead event in `data` (of every lead,
/// whatever `o.owners` keeps).
pub fn report(data: &CrmData, o: &SlaOptions) -> SlaReport {
    let as_of = data
        .leads
        .iter()
        .flat_map(|l| {
            [
                Some(l.created_at),
                l.first_response_at,
                l.converted_at,
                l.disqualified_at,
            ]
        })
        .flatten()
        .max()
        .unwrap_or(0);
    let leads = owned(data, o);
    let roster = roster(data, o);
    let minutes = |l: &pipewise_store::read::Lead| {
        l.first_response_at.map(|r| {
            clock_seconds(&roster, l.owner_id.as_deref(), l.created_at, r) as f64 / MINUTE as f64
        })
    };
    const WINDOW: i64 = 90;
    let recent: Vec<&pipewise_store::read::Lead> = leads
        .iter()
        .copied()
        .filter(|l| l.created_at > as_of - WINDOW * DAY && l.created_at <= as_of)
        .collect();
    let settled: Vec<&&pipewise_store::read::Lead> = recent
        .iter()
        .filter(|l| l.first_response_at.is_some() || as_of - l.created_at > 2 * DAY)
        .collect();
    let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let within = settled
        .iter()
        .filter(|l| minutes(l).is_some_and(|m| m <= o.minutes))
        .count();
    let never = settled
        .iter()
        .filter(|l| l.first_response_at.is_none())
        .count();
    let mut per_rep: HashMap<&str, Vec<&pipewise_store::read::Lead>> = HashMap::new();
    for l in &settled {
        if let Some(r) = l.owner_id.as_deref() {
            per_rep.entry(r).or_default().push(l);
        }
    }
    let mut by_rep: Vec<RepResponse> = per_rep
        .into_iter()
        .map(|(r, ls)| RepResponse {
            rep_id: r.to_string(),
            leads: ls.len(),
            median_minutes: median(ls.iter().filter_map(|l| minutes(l)).collect()),
            within_sla: share(
                ls.iter()
                    .filter(|l| minutes(l).is_some_and(|m| m <= o.minutes))
                    .count(),
                ls.len(),
            ),
            never_answered: share(
                ls.iter().filter(|l| l.first_response_at.is_none()).count(),
                ls.len(),
            ),
        })
        .collect();
    by_rep.sort_by(|a, b| {
        a.within_sla
            .total_cmp(&b.within_sla)
            .then(a.rep_id.cmp(&b.rep_id))
    });
    // Conversion by response band on leads old enough to have an outcome.
    let bands = [
        "under 5 minutes",
        "5-60 minutes",
        "1-24 hours",
        "over a day",
        "never",
    ];
    let mut counts = [(0usize, 0usize); 5];
    for l in leads.iter().copied() {
        let age = as_of - l.created_at;
        if !(35 * DAY..=400 * DAY).contains(&age) {
            continue;
        }
        // Wall-clock minutes: what the lead waited (a night counts).
        let k = match l
            .first_response_at
            .map(|r| (r - l.created_at) as f64 / 60.0)
        {
            None => 4,
            Some(m) if m < 5.0 => 0,
            Some(m) if m < 60.0 => 1,
            Some(m) if m < 24.0 * 60.0 => 2,
            Some(_) => 3,
        };
        counts[k].0 += 1;
        counts[k].1 += usize::from(l.converted_at.is_some_and(|t| t <= as_of));
    }
    let conversion_by_response = bands
        .iter()
        .zip(counts)
        .map(|(b, (n, c))| ResponseBand {
            band: b.to_string(),
            leads: n,
            conversion: share(c, n),
        })
        .collect();
    let waiting = waiting_among(&leads, as_of, o, &roster);
    SlaReport {
        sla_minutes: o.minutes,
        as_of,
        window_days: WINDOW,
        leads: recent.len(),
        within_sla: share(within, settled.len()),
        never_answered: share(never, settled.len()),
        median_minutes: median(settled.iter().filter_map(|l| minutes(l)).collect()),
        by_rep,
        conversion_by_response,
        waiting,
    }
}

/// The leads `o.owners` own (every lead when unset).
fn owned<'a>(data: &'a CrmData, o: &SlaOptions) -> Vec<&'a pipewise_store::read::Lead> {
    data.leads
        .iter()
        .filter(|l| {
            o.owners
                .as_ref()
                .is_none_or(|u| l.owner_id.as_ref().is_some_and(|x| u.contains(x)))
        })
        .collect()
}

/// The leads of `data` (only `o.owners`' when set) waiting for a first
/// response at `now` (epoch seconds): not answered, converted or
/// disqualified by then, arrived at most `o.waiting_days` before; each with
/// its business minutes waited and its state (`within`, `breached` past the
/// SLA, `reassign` past twice it), longest waiting first. The live SLA
/// watch calls it with the wall clock.
pub fn waiting_at(data: &CrmData, now: i64, o: &SlaOptions) -> Vec<WaitingLead> {
    let leads = owned(data, o);
    waiting_among(&leads, now, o, &roster(data, o))
}

fn waiting_among(
    leads: &[&pipewise_store::read::Lead],
    as_of: i64,
    o: &SlaOptions,
    roster: &Roster,
) -> Vec<WaitingLead> {
    let mut waiting: Vec<WaitingLead> = leads
        .iter()
        .copied()
        .filter(|l| {
            l.first_response_at.is_none()
                && l.converted_at.is_none()
                && l.disqualified_at.is_none()
                && l.created_at <= as_of
                && as_of - l.created_at <= o.waiting_days * DAY
        })
        .map(|l| {
            let owner = l.owner_id.as_deref();
            let m = clock_seconds(roster, owner, l.created_at, as_of) as f64 / MINUTE as f64;
            let away = owner.and_then(|u| roster.of_user(u).away_at(as_of).map(|p| p.1));
            WaitingLead {
                lead_id: l.id.clone(),
                owner_id: l.owner_id.clone(),
                created_at: l.created_at,
                waiting_minutes: m,
                owner_away_until: away,
                state: if m > 2.0 * o.minutes || away.is_some() {
                    "reassign"
                } else if m > o.minutes {
                    "breached"
                } else {
                    "within"
                }
                .into(),
            }
        })
        .collect();
    // Due for reassignment first (an away owner's leads among them, whose
    // clock stands still), then past the SLA, then the rest; longest
    // waiting first within each.
    let rank = |w: &WaitingLead| match w.state.as_str() {
        "reassign" => 0,
        "breached" => 1,
        _ => 2,
    };
    waiting.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(b.waiting_minutes.total_cmp(&a.waiting_minutes))
    });
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_runs_in_business_hours_only() {
        let o = SlaOptions::default();
        // 2024-01-05 was a Friday.
        let friday = 19_727 * DAY;
        assert_eq!((friday / DAY + 3).rem_euclid(7), 4);
        // Friday 17:58 to Monday 08:03: two minutes on Friday, three on Monday.
        let from = friday + 17 * 3600 + 58 * 60;
        let to = friday + 3 * DAY + 8 * 3600 + 3 * 60;
        assert_eq!(business_seconds(from, to, &o), 5 * 60);
        // Within one business hour.
        assert_eq!(
            business_seconds(friday + 9 * 3600, friday + 9 * 3600 + 90, &o),
            90
        );
        // A Saturday counts nothing.
        assert_eq!(business_seconds(friday + DAY, friday + 2 * DAY, &o), 0);
        assert_eq!(business_seconds(to, from, &o), 0);
    }

    /// The clock runs in the owner's own hours and zone, and stops while
    /// they are away, which makes their waiting leads due for reassignment.
    #[test]
    fn the_clock_is_the_owners() {
        use pipewise_store::read::{Lead, OutOfOffice, User};
        // Monday 2026-03-23 00:00 UTC; New York is on daylight time (UTC-4).
        const MON: i64 = 1_774_224_000;
        let user = |id: &str, tz: Option<&str>| User {
            id: id.into(),
            name: id.into(),
            role: Some("rep".into()),
            timezone: tz.map(Into::into),
            working_hours: tz.map(|_| "Mon-Fri 09:00-17:00".into()),
            ..Default::default()
        };
        let lead = |id: &str, owner: &str| Lead {
            id: id.into(),
            owner_id: Some(owner.into()),
            created_at: MON + 12 * 3600,
            ..Default::default()
        };
        let data = CrmData {
            users: vec![
                user("ny", Some("America/New_York")),
                user("utc", None),
                user("off", None),
            ],
            leads: vec![lead("a", "ny"), lead("b", "utc"), lead("c", "off")],
            out_of_office: vec![OutOfOffice {
                user_id: "off".into(),
                start: MON + 12 * 3600 + 60,
                end: MON + 5 * DAY,
                reason: None,
            }],
            ..Default::default()
        };
        let o = SlaOptions::default();
        // 13:04 UTC: New York's day began at 13:00 UTC (4 minutes); the
        // org's hours began at 08:00 (64 minutes since the lead).
        let w = waiting_at(&data, MON + 13 * 3600 + 4 * 60, &o);
        let get = |id: &str| w.iter().find(|x| x.lead_id == id).unwrap();
        assert_eq!(get("a").waiting_minutes, 4.0);
        assert_eq!(get("a").state, "within");
        assert_eq!(get("b").waiting_minutes, 64.0);
        assert_eq!(get("b").state, "reassign");
        // Away a minute after the lead came: one minute on the clock, and
        // due for reassignment.
        assert_eq!(get("c").waiting_minutes, 1.0);
        assert_eq!(get("c").state, "reassign");
        assert_eq!(get("c").owner_away_until, Some(MON + 5 * DAY));
        assert_eq!(get("a").owner_away_until, None);
    }
}
