//! When each rep can answer a lead: their working week in their own time
//! zone, less the periods they are away (`users.timezone`,
//! `users.working_hours`, `out_of_office`).
//!
//! Routing sends a lead to a rep at work (or the first back), never to one
//! who is away; capacity shares scale with each rep's weekly hours; the
//! speed-to-lead clock runs in the owner's working time, and a lead whose
//! owner is away is due for reassignment.

use std::collections::HashMap;

use chrono_tz::Tz;
use pipewise_core::hours::{WorkingHours, parse_time_zone, working_intervals};
use pipewise_store::read::{CrmData, User};

const DAY: i64 = 86_400;
/// How far ahead [`Availability::next_at_work`] looks (days).
const HORIZON_DAYS: i64 = 60;

/// One person's working time.
#[derive(Debug, Clone)]
pub struct Availability {
    pub tz: Tz,
    pub hours: WorkingHours,
    /// Whether the hours and zone are the person's own (imported) rather
    /// than the org's defaults.
    pub own_hours: bool,
    /// Away periods `[start, end)` (epoch seconds) with their reason,
    /// sorted by start.
    pub away: Vec<(i64, i64, Option<String>)>,
}

impl Availability {
    /// The org's default: `hours` in `tz` for everyone without their own.
    pub fn org(hours: WorkingHours, tz: Tz) -> Availability {
        Availability {
            tz,
            hours,
            own_hours: false,
            away: Vec::new(),
        }
    }

    /// Hours of work in a week (hours).
    pub fn weekly_hours(&self) -> f64 {
        self.hours.weekly_hours()
    }

    /// The away period covering instant `t`, if any: (start, end, reason).
    pub fn away_at(&self, t: i64) -> Option<&(i64, i64, Option<String>)> {
        self.away.iter().find(|(a, b, _)| *a <= t && t < *b)
    }

    /// Working intervals between `from` and `to` (epoch seconds), away
    /// periods cut out, in order.
    pub fn intervals(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for (mut a, b) in working_intervals(&self.hours, self.tz, from, to) {
            for &(x, y, _) in &self.away {
                if y <= a || x >= b {
                    continue;
                }
                if x > a {
                    out.push((a, x));
                }
                a = a.max(y);
                if a >= b {
                    break;
                }
            }
            if a < b {
                out.push((a, b));
            }
        }
        out
    }

    /// Seconds of working time between two instants (0 when `to <= from`).
    pub fn working_seconds(&self, from: i64, to: i64) -> i64 {
        self.intervals(from, to).iter().map(|(a, b)| b - a).sum()
    }

    /// The first instant at or after `t` at work (in working hours and not
    /// away); `None` when there is none within 60 days.
    pub fn next_at_work(&self, t: i64) -> Option<i64> {
        // Week by week, so a long absence costs a few calls, not one.
        let mut from = t;
        while from < t + HORIZON_DAYS * DAY {
            let to = (from + 7 * DAY).min(t + HORIZON_DAYS * DAY);
            if let Some(&(a, _)) = self.intervals(from, to).first() {
                return Some(a);
            }
            from = to;
        }
        None
    }
}

/// Everyone's [`Availability`], by user id.
#[derive(Debug, Clone)]
pub struct Roster {
    by_user: HashMap<String, Availability>,
    default: Availability,
}

impl Roster {
    /// Reads each user's zone, hours and away periods from `crm`; users
    /// without their own hours get `default` (and its zone when they have
    /// none either). Values were validated on import: one that still does
    /// not parse falls back to the default.
    pub fn new(crm: &CrmData, default: Availability) -> Roster {
        let mut by_user: HashMap<String, Availability> = crm
            .users
            .iter()
            .map(|u| (u.id.clone(), Self::of(u, &default)))
            .collect();
        for o in &crm.out_of_office {
            if o.end > o.start
                && let Some(a) = by_user.get_mut(&o.user_id)
            {
                a.away.push((o.start, o.end, o.reason.clone()));
            }
        }
        for a in by_user.values_mut() {
            a.away.sort_by_key(|p| p.0);
        }
        Roster { by_user, default }
    }

    /// [`Roster::new`] with the org's business hours, Monday to Friday from
    /// `open_hour` to `close_hour` UTC, for users without their own.
    pub fn with_org_hours(crm: &CrmData, open_hour: i64, close_hour: i64) -> Roster {
        Roster::new(
            crm,
            Availability::org(default_hours(open_hour, close_hour), Tz::UTC),
        )
    }

    fn of(u: &User, default: &Availability) -> Availability {
        let tz = u.timezone.as_deref().and_then(|t| parse_time_zone(t).ok());
        let hours = u
            .working_hours
            .as_deref()
            .and_then(|h| h.parse::<WorkingHours>().ok());
        Availability {
            own_hours: hours.is_some() || tz.is_some(),
            tz: tz.unwrap_or(default.tz),
            hours: hours.unwrap_or_else(|| default.hours.clone()),
            away: Vec::new(),
        }
    }

    /// The user's availability (the org default for an unknown id).
    pub fn of_user(&self, id: &str) -> &Availability {
        self.by_user.get(id).unwrap_or(&self.default)
    }

    /// Whether any user has their own hours, zone or an away period.
    pub fn any_own(&self) -> bool {
        self.by_user
            .values()
            .any(|a| a.own_hours || !a.away.is_empty())
    }
}

/// The org's default working week: Monday to Friday from `open_hour` to
/// `close_hour` (whole hours) in UTC.
pub fn default_hours(open_hour: i64, close_hour: i64) -> WorkingHours {
    let (open, close) = (
        open_hour.clamp(0, 23) as u32,
        close_hour.clamp(1, 24) as u32,
    );
    WorkingHours {
        shifts: vec![pipewise_core::hours::Shift {
            days: [true, true, true, true, true, false, false],
            start: open * 60,
            end: close.max(open + 1) * 60,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipewise_store::read::OutOfOffice;

    // Monday 2026-03-23 00:00 UTC.
    const MON: i64 = 1_774_224_000;

    fn crm() -> CrmData {
        let user = |id: &str, tz: Option<&str>, hours: Option<&str>| User {
            id: id.into(),
            name: id.into(),
            role: Some("rep".into()),
            timezone: tz.map(Into::into),
            working_hours: hours.map(Into::into),
            ..Default::default()
        };
        CrmData {
            users: vec![
                user("berlin", Some("Europe/Berlin"), Some("Mon-Fri 09:00-17:00")),
                user("part", None, Some("Mon-Wed 08:00-12:00")),
                user("plain", None, None),
            ],
            out_of_office: vec![OutOfOffice {
                user_id: "berlin".into(),
                start: MON + DAY + 12 * 3600,
                end: MON + 3 * DAY,
                reason: Some("holiday".into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn working_time_follows_zone_hours_and_absence() {
        let r = Roster::new(&crm(), Availability::org(default_hours(8, 18), Tz::UTC));
        let b = r.of_user("berlin");
        assert!(b.own_hours);
        // Monday: 08:00-16:00 UTC (CET); Tuesday until 12:00 UTC, then away
        // until Thursday.
        assert_eq!(b.working_seconds(MON, MON + DAY), 8 * 3600);
        assert_eq!(b.working_seconds(MON + DAY, MON + 2 * DAY), 4 * 3600);
        assert_eq!(b.working_seconds(MON + 2 * DAY, MON + 3 * DAY), 0);
        assert_eq!(
            b.away_at(MON + 2 * DAY).unwrap().2.as_deref(),
            Some("holiday")
        );
        // Away on Tuesday afternoon: back Thursday 08:00 UTC.
        assert_eq!(
            b.next_at_work(MON + DAY + 13 * 3600),
            Some(MON + 3 * DAY + 8 * 3600)
        );
        // Part-time: 12 hours a week; Thursday evening's next start is Monday.
        let p = r.of_user("part");
        assert_eq!(p.weekly_hours(), 12.0);
        assert_eq!(
            p.next_at_work(MON + 3 * DAY + 20 * 3600),
            Some(MON + 7 * DAY + 8 * 3600)
        );
        // No hours of their own: the org's 08:00-18:00 UTC.
        let d = r.of_user("plain");
        assert!(!d.own_hours);
        assert_eq!(d.working_seconds(MON, MON + 7 * DAY), 50 * 3600);
        assert_eq!(d.next_at_work(MON + 9 * 3600), Some(MON + 9 * 3600));
        assert!(r.any_own());
    }
}
