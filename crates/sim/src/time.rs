//! Calendar arithmetic on UTC seconds since 1970, and fast formatting in the
//! canonical forms (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`).

pub const DAY: i64 = 86_400;
pub const HOUR: i64 = 3_600;
pub const MINUTE: i64 = 60;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn date(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn instant(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY));
    let s = t.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// 0 = Monday .. 6 = Sunday.
pub fn weekday(t: i64) -> i64 {
    (t.div_euclid(DAY) + 3).rem_euclid(7)
}

pub fn month_of(t: i64) -> u32 {
    civil_from_days(t.div_euclid(DAY)).1
}

/// Midnight starting the day of `t`.
pub fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The last day (midnight) of the calendar quarter containing `t`.
pub fn quarter_end(t: i64) -> i64 {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
    let q_last = ((m - 1) / 3) * 3 + 3;
    let (ny, nm) = if q_last == 12 {
        (y + 1, 1)
    } else {
        (y, q_last + 1)
    };
    (days_from_civil(ny, nm, 1) - 1) * DAY
}

/// The last day (midnight) of the month containing `t`.
pub fn month_end(t: i64) -> i64 {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(ny, nm, 1) - 1) * DAY
}

/// Next business-day morning (08:00 + jitter applied by caller) at or after `t`.
pub fn next_business_morning(t: i64) -> i64 {
    let mut d = day_start(t);
    if t - d >= 8 * HOUR {
        d += DAY;
    }
    while weekday(d) >= 5 {
        d += DAY;
    }
    d + 8 * HOUR
}

pub fn is_business_hours(t: i64) -> bool {
    let h = (t - day_start(t)) / HOUR;
    weekday(t) < 5 && (8..18).contains(&h)
}

/// Parses `YYYY-MM-DD` to the midnight instant.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let t = days_from_civil(y, m, d) * DAY;
    (civil_from_days(t / DAY) == (y, m, d)).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        let t = parse_date("2024-02-29").unwrap();
        assert_eq!(date(t), "2024-02-29");
        assert_eq!(instant(t + 3 * HOUR + 5), "2024-02-29T03:00:05Z");
        assert_eq!(weekday(parse_date("2024-01-01").unwrap()), 0);
        assert_eq!(date(quarter_end(t)), "2024-03-31");
        assert_eq!(
            date(quarter_end(parse_date("2024-11-02").unwrap())),
            "2024-12-31"
        );
        assert_eq!(date(month_end(t)), "2024-02-29");
        assert!(parse_date("2023-02-29").is_none());
        let fri_night = parse_date("2024-01-05").unwrap() + 20 * HOUR;
        assert_eq!(
            instant(next_business_morning(fri_night)),
            "2024-01-08T08:00:00Z"
        );
        for d in -1000..3000 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
