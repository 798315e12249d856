//! A person's working week and time zone: when a rep can answer a lead.
//!
//! Working hours are written as days and a local time range, e.g.
//! `Mon-Fri 09:00-17:30`, `Mon,Tue,Thu 08:00-12:00` or `Sun-Thu 08:00-16:00`;
//! several ranges are joined with `;` (`Mon-Thu 09:00-17:00; Fri 09:00-13:00`).
//! Time zones are IANA names (`Europe/Berlin`, `America/New_York`, `UTC`), so
//! daylight saving time is followed (the tz database compiled into
//! `chrono-tz`).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAY: i64 = 86_400;

/// One range of a working week: on `days` (Monday first), from `start` to
/// `end` (minutes after local midnight, `start < end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub days: [bool; 7],
    pub start: u32,
    pub end: u32,
}

/// A working week: one or more [`Shift`]s in local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    pub shifts: Vec<Shift>,
}

impl Default for WorkingHours {
    /// Monday to Friday, 09:00-17:00.
    fn default() -> Self {
        WorkingHours {
            shifts: vec![Shift {
                days: [true, true, true, true, true, false, false],
                start: 9 * 60,
                end: 17 * 60,
            }],
        }
    }
}

/// What a working-hours cell must look like, for error messages.
pub const WORKING_HOURS_EXPECTED: &str =
    "working hours such as \"Mon-Fri 09:00-17:30\" or \"Mon-Thu 09:00-17:00; Fri 09:00-13:00\"";

fn day_index(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() < 2 {
        return None;
    }
    DAYS.iter()
        .position(|d| d.to_ascii_lowercase().starts_with(&s[..s.len().min(3)]))
        .filter(|&i| {
            // "Monday", "mon", "Mo" are Monday; "Mx" is nothing.
            let full = [
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ][i];
            full.starts_with(&s)
        })
}

fn minutes(s: &str) -> Option<u32> {
    let t = s.trim();
    let (h, m) = t.split_once(':').unwrap_or((t, "0"));
    let (h, m): (u32, u32) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl FromStr for WorkingHours {
    type Err = String;

    /// Parses `DAYS HH:MM-HH:MM[; ...]`; the error says what was wrong.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut shifts = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (days, range) = part
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| format!("{part:?}: expected days and a time range"))?;
            let mut set = [false; 7];
            for d in days.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                match d.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (
                            day_index(a).ok_or_else(|| format!("{a:?} is not a weekday"))?,
                            day_index(b).ok_or_else(|| format!("{b:?} is not a weekday"))?,
                        );
                        // Sun-Thu wraps round the week.
                        let mut i = a;
                        loop {
                            set[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => {
                        set[day_index(d).ok_or_else(|| format!("{d:?} is not a weekday"))?] = true
                    }
                }
            }
            let (a, b) = range
                .split_once('-')
                .ok_or_else(|| format!("{range:?}: expected a time range such as 09:00-17:30"))?;
            let (start, end) = (
                minutes(a).ok_or_else(|| format!("{a:?} is not a time of day"))?,
                minutes(b).ok_or_else(|| format!("{b:?} is not a time of day"))?,
            );
            if end <= start {
                return Err(format!(
                    "{range:?}: the end must come after the start; a shift past midnight is two ranges"
                ));
            }
            if !set.contains(&true) {
                return Err(format!("{part:?}: no day given"));
            }
            shifts.push(Shift {
                days: set,
                start,
                end,
            });
        }
        if shifts.is_empty() {
            return Err("no working hours given".into());
        }
        Ok(WorkingHours { shifts })
    }
}

impl fmt::Display for WorkingHours {
    /// The canonical form, e.g. `Mon-Fri 09:00-17:30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, s) in self.shifts.iter().enumerate() {
            if k > 0 {
                f.write_str("; ")?;
            }
            // Runs of consecutive days, Monday first.
            let mut runs: Vec<String> = Vec::new();
            let mut i = 0;
            while i < 7 {
                if !s.days[i] {
                    i += 1;
                    continue;
                }
                let j = (i..7).take_while(|&j| s.days[j]).last().unwrap_or(i);
                runs.push(if j > i {
                    format!("{}-{}", DAYS[i], DAYS[j])
                } else {
                    DAYS[i].to_string()
                });
                i = j + 1;
            }
            write!(
                f,
                "{} {:02}:{:02}-{:02}:{:02}",
                runs.join(","),
                s.start / 60,
                s.start % 60,
                s.end / 60,
                s.end % 60
            )?;
        }
        Ok(())
    }
}

impl WorkingHours {
    /// Working hours in a week (hours); overlapping shifts count once.
    pub fn weekly_hours(&self) -> f64 {
        let mut minutes = 0u32;
        for day in 0..7 {
            let mut v: Vec<(u32, u32)> = self
                .shifts
                .iter()
                .filter(|s| s.days[day])
                .map(|s| (s.start, s.end))
                .collect();
            v.sort_unstable();
            let mut end = 0;
            for (a, b) in v {
                let a = a.max(end);
                if b > a {
                    minutes += b - a;
                    end = b;
                }
            }
        }
        f64::from(minutes) / 60.0
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`; case as in the database,
/// `utc` accepted); the error names what was expected.
pub fn parse_time_zone(s: &str) -> Result<Tz, String> {
    let t = s.trim();
    Tz::from_str(t)
        .or_else(|_| {
            if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("gmt") || t == "Z" {
                Ok(Tz::UTC)
            } else {
                Err(())
            }
        })
        .map_err(|_| {
            format!("{t:?} is not an IANA time zone such as Europe/Berlin or America/New_York")
        })
}

/// The intervals of working time between two instants (epoch seconds,
/// `from < to`) in time zone `tz`, in order. A shift edge that a daylight
/// saving change skips is read an hour later; a repeated one as the
/// earlier instant.
pub fn working_intervals(hours: &WorkingHours, tz: Tz, from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    if to <= from {
        return out;
    }
    let local = |t: i64| tz.timestamp_opt(t, 0).single().map(|d| d.date_naive());
    // Local days from the day before `from` to the day after `to` (a
    // shift's local day may start on the UTC day before).
    let Some(first) = local(from - DAY) else {
        return out;
    };
    let mut day: NaiveDate = first;
    let last = local(to + DAY).unwrap_or(first);
    while day <= last {
        let weekday = day.weekday().num_days_from_monday() as usize;
        for s in &hours.shifts {
            if !s.days[weekday] {
                continue;
            }
            let at = |m: u32| -> Option<i64> {
                let t = if m == 24 * 60 {
                    day.succ_opt()?.and_hms_opt(0, 0, 0)?
                } else {
                    day.and_time(NaiveTime::from_hms_opt(m / 60, m % 60, 0)?)
                };
                match tz.from_local_datetime(&t) {
                    chrono::LocalResult::Single(d) => Some(d.timestamp()),
                    chrono::LocalResult::Ambiguous(a, _) => Some(a.timestamp()),
                    // In a spring-forward gap: an hour later exists.
                    chrono::LocalResult::None => tz
                        .from_local_datetime(&(t + chrono::Duration::hours(1)))
                        .earliest()
                        .map(|d| d.timestamp()),
                }
            };
            if let (Some(a), Some(b)) = (at(s.start), at(s.end)) {
                let (a, b) = (a.max(from), b.min(to));
                if b > a {
                    out.push((a, b));
                }
            }
        }
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    out.sort_unstable();
    // Overlapping shifts merge.
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(out.len());
    for (a, b) in out {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_hours_parse_and_print_canonically() {
        let h: WorkingHours = "mon-fri 9:00-17:30".parse().unwrap();
        assert_eq!(h.to_string(), "Mon-Fri 09:00-17:30");
        assert_eq!(h.weekly_hours(), 42.5);
        let h: WorkingHours = "Sun-Thu 08:00-16:00".parse().unwrap();
        assert_eq!(h.to_string(), "Mon-Thu,Sun 08:00-16:00");
        let h: WorkingHours = "Mon-Thu 09:00-17:00; Friday 09:00-13:00".parse().unwrap();
        assert_eq!(h.to_string(), "Mon-Thu 09:00-17:00; Fri 09:00-13:00");
        assert_eq!(h.weekly_hours(), 36.0);
        // Overlapping shifts count once.
        let h: WorkingHours = "Mon-Fri 09:00-17:00; Mon 10:00-12:00".parse().unwrap();
        assert_eq!(h.weekly_hours(), 40.0);
        for bad in [
            "",
            "Mon-Fri",
            "Mon-Fri 17:00-09:00",
            "Mx 09:00-17:00",
            "Mon 25:00-26:00",
        ] {
            assert!(bad.parse::<WorkingHours>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            parse_time_zone("Europe/Berlin").unwrap(),
            Tz::Europe__Berlin
        );
        assert_eq!(parse_time_zone("utc").unwrap(), Tz::UTC);
        let e = parse_time_zone("CET+1").unwrap_err();
        assert!(e.contains("IANA"), "{e}");
    }

    #[test]
    fn intervals_follow_the_zone_and_daylight_saving() {
        let h: WorkingHours = "Mon-Fri 09:00-17:00".parse().unwrap();
        // Monday 2026-03-23 00:00 UTC to the Monday after: Berlin is UTC+1
        // until Sunday 29 March, UTC+2 after.
        let mon = 1_774_224_000;
        let iv = working_intervals(&h, Tz::Europe__Berlin, mon, mon + 7 * DAY);
        assert_eq!(iv.len(), 5);
        assert_eq!(iv[0], (mon + 8 * 3600, mon + 16 * 3600));
        let total: i64 = iv.iter().map(|(a, b)| b - a).sum();
        assert_eq!(total, 40 * 3600);
        // The week after the change: 09:00 Berlin is 07:00 UTC.
        let iv = working_intervals(&h, Tz::Europe__Berlin, mon + 7 * DAY, mon + 8 * DAY);
        assert_eq!(
            iv,
            vec![(mon + 7 * DAY + 7 * 3600, mon + 7 * DAY + 15 * 3600)]
        );
        // New York, same Monday: 09:00 EDT is 13:00 UTC.
        let iv = working_intervals(&h, Tz::America__New_York, mon, mon + DAY);
        assert_eq!(iv, vec![(mon + 13 * 3600, mon + 21 * 3600)]);
    }
}
