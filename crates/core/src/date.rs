//! Dates as real exports write them when no format is named: `1/2/2024`,
//! `02.03.24`, `1/2/2024 3:04 PM`, `13-02-2024 17:05:09`.
//!
//! Such a date reads month-first or day-first. One value only decides when
//! its first or second number is above 12; a column's order is decided by the
//! values that only one reading allows ([`DateEvidence`]), and a column no
//! value decides is an error asking for `date_formats`, never a guess.
//! Two-digit years are read as chrono reads `%y`: 00-69 are 2000-2069, 70-99 are
//! 1970-1999.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;

/// Which number of a numeric date is the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DayOrder {
    /// `02/03/2024` is 3 February (United States).
    MonthFirst,
    /// `02/03/2024` is 2 March (most of the world).
    DayFirst,
}

impl DayOrder {
    /// The equivalent `strftime` format, for messages.
    pub fn format(self) -> &'static str {
        match self {
            DayOrder::MonthFirst => "%m/%d/%Y",
            DayOrder::DayFirst => "%d/%m/%Y",
        }
    }
}

/// The earliest date pipewise accepts as plausible in a sales record.
pub const EARLIEST_YEAR: i32 = 1900;
/// How far past the current year a date may lie (close dates, contract ends).
pub const YEARS_AHEAD: i32 = 50;

/// Whether a date is plausible in a sales record: from 1900 to 50 years
/// after today. A year such as 0024 (a two-digit year read as four) is not.
pub fn plausible(d: NaiveDate) -> bool {
    (EARLIEST_YEAR..=latest_year()).contains(&d.year())
}

/// The last plausible year: 50 years after the current one (read from the
/// clock once per process).
pub fn latest_year() -> i32 {
    static LATEST: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *LATEST.get_or_init(|| chrono::Utc::now().year() + YEARS_AHEAD)
}

/// The plausible range, for messages.
pub fn plausible_range() -> String {
    format!("{EARLIEST_YEAR}-01-01 to {}-12-31", latest_year())
}

/// Expands a two-digit year the way `%y` does.
pub fn expand_year(yy: i32) -> i32 {
    if yy < 70 { 2000 + yy } else { 1900 + yy }
}

struct Numeric {
    a: u32,
    b: u32,
    year: i32,
    time: Option<NaiveTime>,
}

fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `H:MM`, `H:MM:SS`, `H:MM:SS.fff`, each optionally followed by AM/PM.
fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let (clock, meridiem) = if let Some(r) = lower
        .strip_suffix("am")
        .or_else(|| lower.strip_suffix("a.m."))
    {
        (r.trim_end().to_string(), Some(false))
    } else if let Some(r) = lower
        .strip_suffix("pm")
        .or_else(|| lower.strip_suffix("p.m."))
    {
        (r.trim_end().to_string(), Some(true))
    } else {
        (lower, None)
    };
    let mut parts = clock.split(':');
    let h = digits(parts.next()?, 1, 2)?;
    let m = digits(parts.next()?, 2, 2)?;
    let (sec, nanos) = match parts.next() {
        None => (0, 0),
        Some(x) => {
            let (w, f) = x.split_once('.').unwrap_or((x, ""));
            let sec = digits(w, 2, 2)?;
            let nanos = if f.is_empty() {
                0
            } else {
                let v = digits(f, 1, 9)?;
                v * 10u32.pow(9 - f.len() as u32)
            };
            (sec, nanos)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    let h = match meridiem {
        None => h,
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return None;
            }
            (h % 12) + if pm { 12 } else { 0 }
        }
    };
    NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
}

/// `a SEP b SEP year [time]` with SEP one of `/ . -` (the same twice), a and
/// b of one or two digits, the year of two or four.
fn split_numeric(s: &str) -> Option<Numeric> {
    let s = s.trim();
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim_start_matches([',', ' ']))),
        None => (s, None),
    };
    let sep = date.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let mut it = date.split(sep);
    let a = digits(it.next()?, 1, 2)?;
    let b = digits(it.next()?, 1, 2)?;
    let y = it.next()?;
    if it.next().is_some() {
        return None;
    }
    let year = match y.len() {
        2 => expand_year(digits(y, 2, 2)? as i32),
        4 => digits(y, 4, 4)? as i32,
        _ => return None,
    };
    let time = match time {
        None => None,
        Some(t) => Some(parse_time(t)?),
    };
    Some(Numeric { a, b, year, time })
}

fn build(n: &Numeric, order: DayOrder) -> Option<NaiveDateTime> {
    let (m, d) = match order {
        DayOrder::MonthFirst => (n.a, n.b),
        DayOrder::DayFirst => (n.b, n.a),
    };
    let date = NaiveDate::from_ymd_opt(n.year, m, d)?;
    Some(date.and_time(n.time.unwrap_or(NaiveTime::MIN)))
}

/// Reads a numeric date (with an optional time, read as UTC) in `order`.
pub fn parse_numeric(s: &str, order: DayOrder) -> Option<NaiveDateTime> {
    build(&split_numeric(s)?, order)
}

/// Whether `s` is a numeric date at all, and which orders read it.
/// `None` when it is not of the numeric shape.
pub fn readings(s: &str) -> Option<(bool, bool)> {
    let n = split_numeric(s)?;
    Some((
        build(&n, DayOrder::MonthFirst).is_some(),
        build(&n, DayOrder::DayFirst).is_some(),
    ))
}

/// The `strftime` format that reads `example` in `order`: the same
/// separator, year digits and time of day (for messages: `03.02.2024 14:05`
/// day-first is `%d.%m.%Y %H:%M`).
pub fn format_for(example: &str, order: DayOrder) -> String {
    let s = example.trim();
    let (date, time, joint) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim()), &s[i..i + 1]),
        None => (s, None, ""),
    };
    let sep = date
        .chars()
        .find(|c| matches!(c, '/' | '.' | '-'))
        .unwrap_or('/');
    let year = if date.rsplit(sep).next().is_some_and(|y| y.len() == 2) {
        "%y"
    } else {
        "%Y"
    };
    let mut f = match order {
        DayOrder::MonthFirst => format!("%m{sep}%d{sep}{year}"),
        DayOrder::DayFirst => format!("%d{sep}%m{sep}{year}"),
    };
    if let Some(t) = time {
        let lower = t.to_ascii_lowercase();
        let meridiem = lower.ends_with("am") || lower.ends_with("pm");
        let clock = t.split_whitespace().next().unwrap_or("");
        let hour = if meridiem { "%I" } else { "%H" };
        f.push_str(joint);
        f.push_str(match (clock.matches(':').count(), clock.contains('.')) {
            (2, true) => "{H}:%M:%S%.f",
            (2, false) => "{H}:%M:%S",
            _ => "{H}:%M",
        });
        f = f.replace("{H}", hour);
        if meridiem {
            f.push_str(" %p");
        }
    }
    f
}

/// What a column's values say about its day order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DateEvidence {
    pub month_first_only: u64,
    pub day_first_only: u64,
    pub either: u64,
    /// Values of the numeric shape neither order reads (`13/13/2024`).
    pub neither: u64,
    /// Values of another form (ISO dates, instants).
    pub other: u64,
    pub example: Option<String>,
}

impl DateEvidence {
    pub fn add(&mut self, s: &str) {
        let Some((mf, df)) = readings(s) else {
            self.other += 1;
            return;
        };
        match (mf, df) {
            (true, true) => {
                self.either += 1;
                if self.example.is_none() {
                    self.example = Some(s.to_string());
                }
            }
            (true, false) => self.month_first_only += 1,
            (false, true) => self.day_first_only += 1,
            (false, false) => self.neither += 1,
        }
    }

    /// Whether any value of the column was a numeric date.
    pub fn seen(&self) -> bool {
        self.month_first_only + self.day_first_only + self.either + self.neither > 0
    }

    /// The column's order when its values decide it; `Ok(None)` when it has
    /// no numeric date; an error (for the user) when the values contradict
    /// each other or none decides.
    pub fn verdict(&self) -> Result<Option<DayOrder>, String> {
        let numeric = self.month_first_only + self.day_first_only + self.either + self.neither;
        if numeric < self.other {
            // A column of ISO dates with a few stray values: those are errors
            // of their cells, not a form of the column.
            return Ok(None);
        }
        match (self.month_first_only > 0, self.day_first_only > 0) {
            (true, true) => Err(format!(
                "{} values read only month-first and {} only day-first",
                self.month_first_only, self.day_first_only
            )),
            (true, false) => Ok(Some(DayOrder::MonthFirst)),
            (false, true) => Ok(Some(DayOrder::DayFirst)),
            (false, false) if self.either > 0 => Err(format!(
                "dates such as {:?} read both month-first and day-first, and no value of the column decides",
                self.example.as_deref().unwrap_or("")
            )),
            (false, false) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_time(NaiveTime::MIN)
    }

    #[test]
    fn numeric_dates() {
        use DayOrder::*;
        assert_eq!(parse_numeric("02/03/24", MonthFirst), Some(ymd(2024, 2, 3)));
        assert_eq!(parse_numeric("02/03/24", DayFirst), Some(ymd(2024, 3, 2)));
        assert_eq!(parse_numeric("1/2/2024", MonthFirst), Some(ymd(2024, 1, 2)));
        assert_eq!(parse_numeric("31.12.99", DayFirst), Some(ymd(1999, 12, 31)));
        assert_eq!(parse_numeric("13/02/2024", MonthFirst), None);
        assert_eq!(
            parse_numeric("1/2/2024 3:04 PM", MonthFirst),
            Some(ymd(2024, 1, 2) + chrono::Duration::minutes(15 * 60 + 4))
        );
        assert_eq!(
            parse_numeric("1/2/2024 12:04 am", MonthFirst),
            Some(ymd(2024, 1, 2) + chrono::Duration::minutes(4))
        );
        assert_eq!(
            parse_numeric("13-02-2024 17:05:09", DayFirst),
            Some(ymd(2024, 2, 13) + chrono::Duration::seconds(17 * 3600 + 5 * 60 + 9))
        );
        assert_eq!(parse_numeric("1/2/2024 13:04 PM", MonthFirst), None);
        assert_eq!(parse_numeric("2024-01-02", MonthFirst), None);
        assert_eq!(parse_numeric("1/2/202", MonthFirst), None);
    }

    #[test]
    fn formats_for_messages_read_their_example() {
        use DayOrder::*;
        for (ex, order) in [
            ("03.02.2024 14:05", DayFirst),
            ("1/2/2024 3:04 PM", MonthFirst),
            ("13-02-24", DayFirst),
            ("2/13/2024 17:05:09", MonthFirst),
        ] {
            let f = format_for(ex, order);
            assert!(
                chrono::NaiveDateTime::parse_from_str(ex, &f).is_ok()
                    || chrono::NaiveDate::parse_from_str(ex, &f).is_ok(),
                "{ex} with {f}"
            );
        }
        assert_eq!(format_for("03.02.2024 14:05", DayFirst), "%d.%m.%Y %H:%M");
    }

    #[test]
    fn column_order() {
        let mut e = DateEvidence::default();
        for s in ["01/02/2024", "03/04/2024"] {
            e.add(s);
        }
        assert!(e.verdict().unwrap_err().contains("01/02/2024"));
        e.add("12/25/2024");
        assert_eq!(e.verdict(), Ok(Some(DayOrder::MonthFirst)));
        e.add("25/12/2024");
        assert!(e.verdict().is_err());
        let mut e = DateEvidence::default();
        e.add("2024-01-01");
        assert_eq!(e.verdict(), Ok(None));
        assert!(!e.seen());
    }

    #[test]
    fn plausibility() {
        assert!(plausible(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()));
        assert!(!plausible(NaiveDate::from_ymd_opt(24, 1, 1).unwrap()));
        assert!(!plausible(NaiveDate::from_ymd_opt(2999, 1, 1).unwrap()));
    }

    proptest! {
        /// Any date written month-first or day-first, with two- or four-digit
        /// years, reads back; a column with a day above 12 decides its order.
        #[test]
        fn written_dates_read_back(y in 1970i32..2070, m in 1u32..=12, d in 1u32..=28, day_first: bool, short: bool, sep in "[/.-]") {
            let year = if short { format!("{:02}", y % 100) } else { y.to_string() };
            let s = if day_first { format!("{d}{sep}{m}{sep}{year}") } else { format!("{m}{sep}{d}{sep}{year}") };
            let order = if day_first { DayOrder::DayFirst } else { DayOrder::MonthFirst };
            prop_assert_eq!(parse_numeric(&s, order), Some(ymd(y, m, d)));
            let mut e = DateEvidence::default();
            e.add(&s);
            let decider = if day_first { format!("13{sep}{m}{sep}{year}") } else { format!("{m}{sep}13{sep}{year}") };
            e.add(&decider);
            prop_assert_eq!(e.verdict(), Ok(Some(order)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse_numeric(&s, DayOrder::MonthFirst);
            let mut e = DateEvidence::default();
            e.add(&s);
            let _ = e.verdict();
        }
    }
}
