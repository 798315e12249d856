//! Typed cell values and the parsing of raw text cells into them.
//!
//! Dates are normalised to `YYYY-MM-DD` and instants to UTC
//! `YYYY-MM-DDTHH:MM:SSZ`, so that text order is time order in the store and
//! as-of comparisons are plain string comparisons.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;

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

/// Parses one cell. An empty (or all-blank) cell is `Null`; whether that is
/// allowed is the caller's business. `date_formats` are extra `strftime`
/// formats tried after the ISO forms (from a mapping file, e.g. `%m/%d/%Y`).
/// Enum cells are normalised to the vocabulary's canonical value; reference
/// cells are returned as text (existence is checked by the importer).
pub fn parse_cell(ty: &FieldType, raw: &str, date_formats: &[String]) -> Result<Value, ParseError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(Value::Null);
    }
    match ty {
        FieldType::Text | FieldType::Ref(_) => Ok(Value::Text(s.to_string())),
        FieldType::Int => parse_int(s).map(Value::Int).ok_or_else(|| err(ty)),
        FieldType::Float => parse_number(s).map(Value::Float).ok_or_else(|| err(ty)),
        FieldType::Bool => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "t" => Ok(Value::Bool(true)),
            "0" | "false" | "no" | "n" | "f" => Ok(Value::Bool(false)),
            _ => Err(err(ty)),
        },
        FieldType::Enum(v) => v
            .normalise(s)
            .map(|c| Value::Text(c.to_string()))
            .ok_or_else(|| err(ty)),
        FieldType::Date if parse_iso_date(s).is_some() => Ok(Value::Text(s.to_string())),
        FieldType::DateTime if is_canonical_instant(s) => Ok(Value::Text(s.to_string())),
        FieldType::Date => parse_date(s, date_formats)
            .map(|d| Value::Text(d.format("%Y-%m-%d").to_string()))
            .ok_or_else(|| err(ty)),
        FieldType::DateTime => parse_datetime(s, date_formats)
            .map(|t| Value::Text(format_instant(t)))
            .ok_or_else(|| err(ty)),
    }
}

/// The UTC day (`YYYY-MM-DD`) of an instant in Unix seconds.
pub fn format_day(epoch_seconds: i64) -> String {
    DateTime::from_timestamp(epoch_seconds, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_int(s: &str) -> Option<i64> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i);
    }
    // "1,200" or "1200.0" from spreadsheet exports.
    let x = parse_number(s)?;
    (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64)
}

/// Plain decimal numbers, plus what spreadsheet and CRM exports add to them:
/// a leading currency symbol or ISO code (`$1,250.00`, `USD 1250`), US thousands
/// separators, and a trailing `%` (read as a fraction: `60%` is 0.6).
pub fn parse_number(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    let mut t = s.trim();
    let mut percent = false;
    if let Some(rest) = t.strip_suffix('%') {
        percent = true;
        t = rest.trim_end();
    }
    let negative = t.starts_with('-');
    if negative {
        t = t[1..].trim_start();
    }
    for sym in ["$", "€", "£", "¥"] {
        if let Some(rest) = t.strip_prefix(sym) {
            t = rest.trim_start();
        }
    }
    if t.len() > 4
        && t.as_bytes()[..3].iter().all(u8::is_ascii_uppercase)
        && t.as_bytes()[3] == b' '
    {
        t = t[4..].trim_start();
    }
    let plain: String = if t.contains(',') {
        // Only well-formed US grouping: 1,234,567.89
        let (int_part, frac) = t.split_once('.').map_or((t, None), |(a, b)| (a, Some(b)));
        let groups: Vec<&str> = int_part.split(',').collect();
        let ok = !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return None;
        }
        let mut p = groups.concat();
        if let Some(fr) = frac {
            p.push('.');
            p.push_str(fr);
        }
        p
    } else {
        t.to_string()
    };
    if plain.is_empty()
        || !plain.bytes().all(|b| {
            b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'+' || b == b'-'
        })
    {
        return None;
    }
    let mut x: f64 = plain.parse().ok()?;
    if negative {
        x = -x;
    }
    if percent {
        x /= 100.0;
    }
    x.is_finite().then_some(x)
}

/// `YYYY-MM-DDTHH:MM:SSZ` with a valid date and time: already in stored form.
fn is_canonical_instant(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return false;
    }
    let two = |i: usize| -> Option<u32> {
        (b[i].is_ascii_digit() && b[i + 1].is_ascii_digit())
            .then(|| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0'))
    };
    parse_iso_date(&s[..10]).is_some()
        && two(11).is_some_and(|h| h < 24)
        && two(14).is_some_and(|m| m < 60)
        && two(17).is_some_and(|x| x < 60)
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

pub fn parse_date(s: &str, formats: &[String]) -> Option<NaiveDate> {
    if let Some(d) = parse_iso_date(s) {
        return Some(d);
    }
    for fmt in formats {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Some(d);
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.date());
        }
    }
    // A date-time where a date is expected: keep the (UTC) day.
    parse_datetime_iso(s).map(|t| t.date_naive())
}

fn parse_datetime_iso(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// Instants: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (read as UTC), a plain date
/// (midnight UTC), or one of `formats`.
pub fn parse_datetime(s: &str, formats: &[String]) -> Option<DateTime<Utc>> {
    if let Some(d) = parse_iso_date(s) {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if let Some(t) = parse_datetime_iso(s) {
        return Some(t);
    }
    for fmt in formats {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
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
        assert_eq!(parse_number("1,25"), None);
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

    proptest! {
        #[test]
        fn any_valid_date_round_trips(y in 1900i32..2100, m in 1u32..=12, d in 1u32..=28) {
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
