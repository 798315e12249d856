//! Typed cell values and the parsing of raw text cells into them.
//!
//! Dates are normalised to `YYYY-MM-DD` and instants to UTC
//! `YYYY-MM-DDTHH:MM:SSZ`, so that text order is time order in the store and
//! as-of comparisons are plain string comparisons.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::date::{self, DayOrder};
use crate::number::{Decimal, NumberError, parse_number_as};
use crate::schema::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    /// The value as text, in the form it is stored (used for history values).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        }
    }
}

/// Why a cell could not be read: what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct ParseError {
    pub expected: String,
}

fn err(ty: &FieldType) -> ParseError {
    ParseError {
        expected: ty.expected(),
    }
}

/// How a column writes its dates and numbers, beyond what a value shows by
/// itself: from a mapping file, or inferred from the column's values.
#[derive(Debug, Clone, Copy, Default)]
pub struct CellFormat<'a> {
    /// `strftime` formats tried after the ISO forms (e.g. `%m/%d/%Y`). A `%Y`
    /// format also reads two-digit years (`02/03/24` is 2024).
    pub date_formats: &'a [String],
    /// The order of numeric dates such as `02/03/2024` when no format names it.
    pub day_order: Option<DayOrder>,
    /// The decimal separator; `None` reads what only one convention can.
    pub decimal: Option<Decimal>,
}

/// Parses one cell. An empty (or all-blank) cell is `Null`; whether that is
/// allowed is the caller's business. `date_formats` are extra `strftime`
/// formats tried after the ISO forms (from a mapping file, e.g. `%m/%d/%Y`).
/// Enum cells are normalised to the vocabulary's canonical value; reference
/// cells are returned as text (existence is checked by the importer).
pub fn parse_cell(ty: &FieldType, raw: &str, date_formats: &[String]) -> Result<Value, ParseError> {
    parse_cell_with(
        ty,
        raw,
        &CellFormat {
            date_formats,
            ..Default::default()
        },
    )
}

/// [`parse_cell`] with a column's formats. Dates outside the plausible
/// window ([`date::plausible`]: 1900 to 50 years from now) are errors;
/// numbers that fit no reading, or two readings, are errors, never 0.
pub fn parse_cell_with(
    ty: &FieldType,
    raw: &str,
    fmt: &CellFormat<'_>,
) -> Result<Value, ParseError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(Value::Null);
    }
    match ty {
        FieldType::Text | FieldType::Ref(_) => Ok(Value::Text(s.to_string())),
        FieldType::Int => match s.parse::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => match parse_number_as(s, fmt.decimal) {
                // "1,200" or "11015.0" from spreadsheet exports.
                Ok(n) if n.value.fract() == 0.0 && n.value.abs() < 9.0e15 => {
                    Ok(Value::Int(n.value as i64))
                }
                Ok(_) => Err(err(ty)),
                Err(e) => Err(number_err(ty, e)),
            },
        },
        FieldType::Float => parse_number_as(s, fmt.decimal)
            .map(|n| Value::Float(n.value))
            .map_err(|e| number_err(ty, e)),
        FieldType::Probability => match parse_number_as(s, fmt.decimal) {
            Ok(n) if n.value > 0.0 && n.value <= 1.0 => Ok(Value::Float(n.value)),
            Ok(_) => Err(err(ty)),
            Err(e) => Err(number_err(ty, e)),
        },
        FieldType::Bool => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "t" => Ok(Value::Bool(true)),
            "0" | "false" | "no" | "n" | "f" => Ok(Value::Bool(false)),
            _ => Err(err(ty)),
        },
        FieldType::Currency => {
            let c = s.to_ascii_uppercase();
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(Value::Text(c))
            } else {
                Err(err(ty))
            }
        }
        FieldType::TimeZone => crate::hours::parse_time_zone(s)
            .map(|tz| Value::Text(tz.name().to_string()))
            .map_err(|_| err(ty)),
        FieldType::WorkingHours => s
            .parse::<crate::hours::WorkingHours>()
            .map(|h| Value::Text(h.to_string()))
            .map_err(|why| ParseError {
                expected: format!("{} ({why})", ty.expected()),
            }),
        FieldType::Enum(v) => v
            .normalise(s)
            .map(|c| Value::Text(c.to_string()))
            .ok_or_else(|| err(ty)),
        FieldType::Date if parse_iso_date(s).is_some_and(date::plausible) => {
            Ok(Value::Text(s.to_string()))
        }
        FieldType::DateTime if canonical_instant_day(s).is_some_and(date::plausible) => {
            Ok(Value::Text(s.to_string()))
        }
        FieldType::Date => {
            let d = parse_date_with(s, fmt).ok_or_else(|| date_err(ty, fmt))?;
            check_plausible(ty, d, s)?;
            Ok(Value::Text(d.format("%Y-%m-%d").to_string()))
        }
        FieldType::DateTime => {
            let t = parse_datetime_with(s, fmt).ok_or_else(|| date_err(ty, fmt))?;
            check_plausible(ty, t.date_naive(), s)?;
            Ok(Value::Text(format_instant(t)))
        }
    }
}

fn number_err(ty: &FieldType, e: NumberError) -> ParseError {
    match e {
        NumberError::Invalid => err(ty),
        NumberError::Ambiguous(point, comma) => ParseError {
            expected: format!(
                "{} (this value reads {point} with a decimal point and {comma} with a decimal comma: set decimal = \".\" or \",\" in the mapping)",
                ty.expected()
            ),
        },
    }
}

fn date_err(ty: &FieldType, fmt: &CellFormat<'_>) -> ParseError {
    let mut expected = ty.expected();
    if !fmt.date_formats.is_empty() {
        expected.push_str(&format!(", or the form {}", fmt.date_formats.join(" or ")));
    } else if let Some(o) = fmt.day_order {
        expected.push_str(&format!(", or the form {} of this column", o.format()));
    }
    ParseError { expected }
}

fn check_plausible(ty: &FieldType, d: NaiveDate, raw: &str) -> Result<(), ParseError> {
    if date::plausible(d) {
        return Ok(());
    }
    // A year the text wrote in four digits was meant; a short one was not.
    let short_year = d.year() < 100 && !raw.contains(&format!("{:04}", d.year()));
    Err(ParseError {
        expected: format!(
            "{} from {} (read as {}{})",
            ty.expected(),
            date::plausible_range(),
            d.format("%Y-%m-%d"),
            if short_year {
                ": a two-digit year needs %y, not %Y"
            } else {
                ""
            }
        ),
    })
}

/// The UTC day (`YYYY-MM-DD`) of an instant in Unix seconds.
pub fn format_day(epoch_seconds: i64) -> String {
    DateTime::from_timestamp(epoch_seconds, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// An instant in Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn format_epoch(epoch_seconds: i64) -> String {
    DateTime::from_timestamp(epoch_seconds, 0)
        .map(format_instant)
        .unwrap_or_default()
}

pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A number as exports write it, read without a column convention (see
/// [`crate::number`]): `$1,250.00`, `USD 1250`, `9,99`, `60%` (0.6). A value
/// both conventions read (`1,234`) is read with a decimal point, as US and UK
/// exports write it; the importer instead decides from the whole column.
pub fn parse_number(s: &str) -> Option<f64> {
    match parse_number_as(s, None) {
        Ok(n) => Some(n.value),
        Err(NumberError::Ambiguous(..)) => parse_number_as(s, Some(Decimal::Point))
            .ok()
            .map(|n| n.value),
        Err(NumberError::Invalid) => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` with a valid date and time (already in stored
/// form): its day.
fn canonical_instant_day(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let two = |i: usize| -> Option<u32> {
        (b[i].is_ascii_digit() && b[i + 1].is_ascii_digit())
            .then(|| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0'))
    };
    let ok = two(11).is_some_and(|h| h < 24)
        && two(14).is_some_and(|m| m < 60)
        && two(17).is_some_and(|x| x < 60);
    if ok { parse_iso_date(&s[..10]) } else { None }
}

fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// A date in one of `formats` (after the ISO form and instants).
pub fn parse_date(s: &str, formats: &[String]) -> Option<NaiveDate> {
    parse_date_with(
        s,
        &CellFormat {
            date_formats: formats,
            ..Default::default()
        },
    )
}

fn parse_date_with(s: &str, fmt: &CellFormat<'_>) -> Option<NaiveDate> {
    if let Some(d) = parse_iso_date(s) {
        return Some(d);
    }
    for f in fmt.date_formats {
        if let Some(t) = with_format(s, f) {
            return Some(t.date_naive());
        }
    }
    if let Some(order) = fmt.day_order {
        if let Some(t) = date::parse_numeric(s, order) {
            return Some(t.date());
        }
    }
    // A date-time where a date is expected: the day as written (a close date
    // of 2024-03-31T20:00:00-05:00 is 31 March, not 1 April in UTC).
    if s.len() > 10 && (s.as_bytes()[10] == b'T' || s.as_bytes()[10] == b' ') {
        if let (Some(d), Some(_)) = (parse_iso_date(&s[..10]), parse_datetime_builtin(s)) {
            return Some(d);
        }
    }
    parse_datetime_builtin(s).map(|t| t.date_naive())
}

/// One `strftime` format: with an offset, as a naive date-time (UTC), or as a
/// date. A `%Y` that read a two-digit year (`24`) is read again as `%y`.
fn with_format(s: &str, f: &str) -> Option<DateTime<Utc>> {
    let once = |f: &str| -> Option<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
        NaiveDate::parse_from_str(s, f)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    };
    let t = once(f)?;
    if t.year() < 100 && f.contains("%Y") {
        if let Some(t2) = once(&f.replace("%Y", "%y")) {
            return Some(t2);
        }
    }
    Some(t)
}

/// The forms exports use without being told: RFC 3339; ISO with a space
/// instead of `T`, with or without seconds, fractions and an offset (with or
/// without a colon: Salesforce's API writes `2024-01-02T10:00:00.000+0000`);
/// Unix time in milliseconds (13 digits, HubSpot) or seconds (10 digits).
/// Without an offset the time is read as UTC.
fn parse_datetime_builtin(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let b = s.as_bytes();
    if b.len() >= 16 && b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b' ') {
        for f in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                return Some(t.and_utc());
            }
        }
        for f in [
            "%Y-%m-%dT%H:%M:%S%.f%z",
            "%Y-%m-%d %H:%M:%S%.f%z",
            "%Y-%m-%dT%H:%M:%S%.f %z",
            "%Y-%m-%d %H:%M:%S%.f %z",
            "%Y-%m-%dT%H:%M%z",
            "%Y-%m-%d %H:%M%z",
        ] {
            if let Ok(t) = DateTime::parse_from_str(s, f) {
                return Some(t.with_timezone(&Utc));
            }
        }
        // "2024-01-02 10:00:00 UTC" / "...Z"
        for suffix in [" UTC", " GMT", "Z"] {
            if let Some(r) = s.strip_suffix(suffix) {
                return parse_datetime_builtin(r.trim_end());
            }
        }
    }
    if (b.len() == 13 || b.len() == 10) && b.iter().all(u8::is_ascii_digit) {
        let n: i64 = s.parse().ok()?;
        return if b.len() == 13 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        };
    }
    None
}

/// Instants: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (read as UTC), a plain date
/// (midnight UTC), Unix milliseconds, or one of `formats`.
pub fn parse_datetime(s: &str, formats: &[String]) -> Option<DateTime<Utc>> {
    parse_datetime_with(
        s,
        &CellFormat {
            date_formats: formats,
            ..Default::default()
        },
    )
}

fn parse_datetime_with(s: &str, fmt: &CellFormat<'_>) -> Option<DateTime<Utc>> {
    if let Some(d) = parse_iso_date(s) {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if let Some(t) = parse_datetime_builtin(s) {
        return Some(t);
    }
    for f in fmt.date_formats {
        if let Some(t) = with_format(s, f) {
            return Some(t);
        }
    }
    if let Some(order) = fmt.day_order {
        if let Some(t) = date::parse_numeric(s, order) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::STAGES;
    use proptest::prelude::*;

    #[test]
    fn numbers_from_exports() {
        assert_eq!(parse_number("1250"), Some(1250.0));
        assert_eq!(parse_number("$1,250.50"), Some(1250.5));
        assert_eq!(parse_number("USD 12,000"), Some(12000.0));
        assert_eq!(parse_number("60%"), Some(0.6));
        assert_eq!(parse_number("-$5"), Some(-5.0));
        assert_eq!(parse_number("1,25"), Some(1.25));
        assert_eq!(parse_number("1,234"), Some(1234.0));
        assert_eq!(parse_number("twelve"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
    }

    #[test]
    fn dates_and_instants() {
        let none: Vec<String> = vec![];
        assert_eq!(
            parse_cell(&FieldType::Date, "2017-03-01", &none),
            Ok(Value::Text("2017-03-01".into()))
        );
        assert!(parse_cell(&FieldType::Date, "2017-02-30", &none).is_err());
        assert!(parse_cell(&FieldType::Date, "03/01/2017", &none).is_err());
        let us = vec!["%m/%d/%Y".to_string()];
        assert_eq!(
            parse_cell(&FieldType::Date, "03/01/2017", &us),
            Ok(Value::Text("2017-03-01".into()))
        );
        assert_eq!(
            parse_cell(&FieldType::DateTime, "2017-03-01T10:00:00+02:00", &none),
            Ok(Value::Text("2017-03-01T08:00:00Z".into()))
        );
        assert_eq!(
            parse_cell(&FieldType::DateTime, "2017-03-01", &none),
            Ok(Value::Text("2017-03-01T00:00:00Z".into()))
        );
        assert_eq!(
            parse_cell(&FieldType::DateTime, "2017-03-01T23:59:59Z", &none),
            Ok(Value::Text("2017-03-01T23:59:59Z".into()))
        );
        assert!(parse_cell(&FieldType::DateTime, "2017-02-29T10:00:00Z", &none).is_err());
        assert!(parse_cell(&FieldType::DateTime, "2017-03-01T24:00:00Z", &none).is_err());
        assert_eq!(
            parse_cell(&FieldType::DateTime, "2017-03-01 10:05", &none),
            Ok(Value::Text("2017-03-01T10:05:00Z".into()))
        );
    }

    #[test]
    fn forms_real_exports_write() {
        let none: Vec<String> = vec![];
        let dt = |s: &str| parse_cell(&FieldType::DateTime, s, &none);
        let text = |s: &str| Ok(Value::Text(s.into()));
        assert_eq!(
            dt("2024-01-02T10:00:00.000+0000"),
            text("2024-01-02T10:00:00Z")
        );
        assert_eq!(
            dt("2024-01-02T10:00:00.000+0100"),
            text("2024-01-02T09:00:00Z")
        );
        assert_eq!(dt("2023-02-07 20:47:49"), text("2023-02-07T20:47:49Z"));
        assert_eq!(dt("1526573033537"), text("2018-05-17T16:03:53Z"));
        assert_eq!(dt("2024-01-02 10:00:00 UTC"), text("2024-01-02T10:00:00Z"));
        assert_eq!(
            parse_cell(&FieldType::Date, "1526573033537", &none),
            text("2018-05-17")
        );
        // A date with a time and an offset keeps the day as written.
        assert_eq!(
            parse_cell(&FieldType::Date, "2024-03-31T20:00:00-05:00", &none),
            text("2024-03-31")
        );
        let us = vec!["%m/%d/%Y".to_string(), "%m/%d/%Y %I:%M %p".to_string()];
        // A two-digit year under %Y is not year 24.
        assert_eq!(
            parse_cell(&FieldType::Date, "02/03/24", &us),
            text("2024-02-03")
        );
        assert_eq!(
            parse_cell(&FieldType::Date, "02/23/26", &us),
            text("2026-02-23")
        );
        assert_eq!(
            parse_cell(&FieldType::DateTime, "1/2/2024 3:04 PM", &us),
            text("2024-01-02T15:04:00Z")
        );
        // Implausible dates are errors that say what was read.
        let e = parse_cell(&FieldType::Date, "0024-02-03", &none).unwrap_err();
        assert!(e.expected.contains("1900-01-01"), "{e}");
        assert!(parse_cell(&FieldType::Date, "2999-01-01", &none).is_err());
        assert!(parse_cell(&FieldType::DateTime, "1850-01-01T00:00:00Z", &none).is_err());
        // A day order inferred for the column.
        let dmy = CellFormat {
            day_order: Some(DayOrder::DayFirst),
            ..Default::default()
        };
        assert_eq!(
            parse_cell_with(&FieldType::Date, "02/03/24", &dmy),
            text("2024-03-02")
        );
        assert_eq!(
            parse_cell_with(&FieldType::DateTime, "13.02.2024 17:05", &dmy),
            text("2024-02-13T17:05:00Z")
        );
        assert!(parse_cell(&FieldType::Date, "02/03/2024", &none).is_err());
    }

    #[test]
    fn numbers_in_cells() {
        let none: Vec<String> = vec![];
        assert_eq!(
            parse_cell(&FieldType::Int, "11015.0", &none),
            Ok(Value::Int(11015))
        );
        assert!(parse_cell(&FieldType::Int, "1.5", &none).is_err());
        assert_eq!(
            parse_cell(&FieldType::Float, "9,99", &none),
            Ok(Value::Float(9.99))
        );
        let e = parse_cell(&FieldType::Float, "1,234", &none).unwrap_err();
        assert!(e.expected.contains("decimal comma"), "{e}");
        let comma = CellFormat {
            decimal: Some(Decimal::Comma),
            ..Default::default()
        };
        assert_eq!(
            parse_cell_with(&FieldType::Float, "1.234", &comma),
            Ok(Value::Float(1234.0))
        );
        assert_eq!(
            parse_cell_with(&FieldType::Float, "1,5", &comma),
            Ok(Value::Float(1.5))
        );
    }

    #[test]
    fn enums_and_blanks() {
        let none: Vec<String> = vec![];
        assert_eq!(
            parse_cell(&FieldType::Enum(STAGES), "Closed Won", &none),
            Ok(Value::Text("closed_won".into()))
        );
        let e = parse_cell(&FieldType::Enum(STAGES), "Engaging", &none).unwrap_err();
        assert!(e.expected.contains("prospecting"), "{e}");
        assert_eq!(parse_cell(&FieldType::Int, "   ", &none), Ok(Value::Null));
    }

    #[test]
    fn probabilities_are_above_0_and_at_most_1() {
        let none: Vec<String> = vec![];
        for ok in ["1", "0.333333", "1e-3"] {
            assert!(
                parse_cell(&FieldType::Probability, ok, &none).is_ok(),
                "{ok}"
            );
        }
        for bad in ["0", "1.5", "-0.2", "NaN", "abc"] {
            let e = parse_cell(&FieldType::Probability, bad, &none).unwrap_err();
            assert!(e.expected.contains("probability"), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn any_valid_date_round_trips(y in 1900i32..2070, m in 1u32..=12, d in 1u32..=28) {
            let s = format!("{y:04}-{m:02}-{d:02}");
            prop_assert_eq!(parse_cell(&FieldType::Date, &s, &[]), Ok(Value::Text(s.clone())));
            let t = parse_cell(&FieldType::DateTime, &s, &[]).unwrap();
            prop_assert_eq!(t, Value::Text(format!("{s}T00:00:00Z")));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            for ty in [FieldType::Int, FieldType::Float, FieldType::Date, FieldType::DateTime, FieldType::Bool, FieldType::Enum(STAGES)] {
                let _ = parse_cell(&ty, &s, &["%m/%d/%Y".to_string()]);
            }
        }

        #[test]
        fn integers_round_trip(i in any::<i64>()) {
            prop_assert_eq!(parse_cell(&FieldType::Int, &i.to_string(), &[]), Ok(Value::Int(i)));
        }
    }
}

/// An amount for people: `1.25M`, `45.2k`, `800`.
pub fn format_money(x: f64) -> String {
    let x = x + 0.0; // no "-0"
    if x.abs() >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x.abs() >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
