//! Numbers as real exports write them: decimal commas or points, thousands
//! separators (`,` `.` `'` and spaces), currency symbols and ISO 4217 codes on
//! either side (`$1,234.56`, `USD 1,234.56`, `-3'500.00 CHF`, `1.234,56 €`),
//! accounting negatives (`(1,234.00)`), percentages, and integers written as
//! `11015.0`.
//!
//! A value is read under a [`Decimal`] convention. Without one, a value that
//! only one convention can read is read that way (`9,99` is 9.99, `1,234.56`
//! is 1234.56, `1.234.567` is 1234567); one both can read differently
//! (`1,234`: 1234 or 1.234) is [`NumberError::Ambiguous`] and the caller must
//! decide from the rest of the column ([`DecimalEvidence`]) or the mapping.
//! A single value with one point reads as a decimal point (`12.500` is 12.5),
//! but a column whose only such values are `1.500`-like is undecided
//! ([`DecimalEvidence::verdict`]).

use serde::Serialize;

/// The decimal separator of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decimal {
    /// `1,234.56` (and `1'234.56`, `1 234.56`).
    Point,
    /// `1.234,56` (and `1'234,56`, `1 234,56`).
    Comma,
}

impl Decimal {
    /// `"."`/`"point"` or `","`/`"comma"`.
    pub fn parse(s: &str) -> Option<Decimal> {
        match s.trim().to_ascii_lowercase().as_str() {
            "." | "point" | "dot" => Some(Decimal::Point),
            "," | "comma" => Some(Decimal::Comma),
            _ => None,
        }
    }
}

/// A number read from a cell, with the currency written next to it, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Number {
    pub value: f64,
    /// ISO 4217 code written in the cell (`USD 10`, `10 CHF`, `€10` is `EUR`).
    /// `$` and `¥` name several currencies and so give none.
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("not a number")]
    Invalid,
    /// Both conventions read the value, differently (value under a decimal
    /// point, value under a decimal comma).
    #[error("ambiguous: {0} with a decimal point, {1} with a decimal comma")]
    Ambiguous(String, String),
}

const SYMBOLS: [(&str, Option<&str>); 7] = [
    ("US$", Some("USD")),
    ("$", None),
    ("€", Some("EUR")),
    ("£", Some("GBP")),
    ("¥", None),
    ("₹", Some("INR")),
    ("R$", Some("BRL")),
];

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{202f}'
}

/// Strips currency marks, sign and percent; returns the digits-and-separators
/// core, the sign, whether it was a percentage, and the currency code.
fn strip(s: &str) -> Option<(String, bool, bool, Option<String>)> {
    let mut t = s.trim_matches(is_space);
    let mut negative = false;
    let mut percent = false;
    let mut currency: Option<String> = None;
    if t.starts_with('(') && t.ends_with(')') && t.len() > 2 {
        negative = true;
        t = t[1..t.len() - 1].trim_matches(is_space);
    }
    for _ in 0..4 {
        let before = t;
        if let Some(r) = t.strip_prefix('-').or_else(|| t.strip_prefix('\u{2212}')) {
            if negative {
                return None;
            }
            negative = true;
            t = r.trim_start_matches(is_space);
        } else if let Some(r) = t.strip_prefix('+') {
            t = r.trim_start_matches(is_space);
        }
        if let Some(r) = t.strip_suffix('-') {
            if negative {
                return None;
            }
            negative = true;
            t = r.trim_end_matches(is_space);
        }
        if let Some(r) = t.strip_suffix('%') {
            percent = true;
            t = r.trim_end_matches(is_space);
        }
        for (sym, code) in SYMBOLS {
            if let Some(r) = t.strip_prefix(sym) {
                t = r.trim_start_matches(is_space);
                currency = currency.or(code.map(str::to_string));
            } else if let Some(r) = t.strip_suffix(sym) {
                t = r.trim_end_matches(is_space);
                currency = currency.or(code.map(str::to_string));
            }
        }
        let b = t.as_bytes();
        if b.len() > 3 && b[..3].iter().all(u8::is_ascii_uppercase) && !b[3].is_ascii_alphabetic() {
            if currency.as_deref().is_some_and(|c| c != &t[..3]) {
                return None;
            }
            currency = Some(t[..3].to_string());
            t = t[3..].trim_start_matches(is_space);
        } else if b.len() > 3
            && b[b.len() - 3..].iter().all(u8::is_ascii_uppercase)
            && !b[b.len() - 4].is_ascii_alphabetic()
        {
            let code = &t[t.len() - 3..];
            if currency.as_deref().is_some_and(|c| c != code) {
                return None;
            }
            currency = Some(code.to_string());
            t = t[..t.len() - 3].trim_end_matches(is_space);
        }
        if t == before {
            break;
        }
    }
    Some((t.to_string(), negative, percent, currency))
}

/// Reads `core` (digits and separators only) with `decimal` as the decimal
/// separator and the others as group separators (groups of three digits).
fn read_core(core: &str, decimal: Decimal) -> Option<f64> {
    let (dec, group_ok): (char, &[char]) = match decimal {
        Decimal::Point => ('.', &[',', '\'', ' ', '\u{a0}', '\u{202f}', '\u{2019}']),
        Decimal::Comma => (',', &['.', '\'', ' ', '\u{a0}', '\u{202f}', '\u{2019}']),
    };
    let (int_part, frac) = match core.split_once(dec) {
        Some((a, b)) => (a, Some(b)),
        None => (core, None),
    };
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let mut digits = String::with_capacity(core.len());
    if int_part.chars().any(|c| group_ok.contains(&c)) {
        let groups: Vec<&str> = int_part.split(|c| group_ok.contains(&c)).collect();
        let sep: Vec<char> = int_part.chars().filter(|c| group_ok.contains(c)).collect();
        let ok = sep.iter().all(|c| *c == sep[0])
            && !groups[0].is_empty()
            && groups[0].len() <= 3
            && !(groups[0].starts_with('0'))
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return None;
        }
        digits.push_str(&groups.concat());
    } else {
        if int_part.is_empty() && frac.is_none() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push_str(int_part);
    }
    if digits.is_empty() {
        digits.push('0');
    }
    if let Some(f) = frac {
        digits.push('.');
        digits.push_str(f);
    }
    digits.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Reads a number written in a cell. `decimal`: the column's convention when
/// known (mapping or inference); `None` reads what only one convention can.
pub fn parse_number_as(s: &str, decimal: Option<Decimal>) -> Result<Number, NumberError> {
    // The common case: a plain number.
    if let Ok(x) = s.trim().parse::<f64>() {
        if x.is_finite() && !s.trim().eq_ignore_ascii_case("nan") {
            let t = s.trim();
            // "1.234" under a decimal comma is 1234, not 1.234.
            if !(decimal == Some(Decimal::Comma) && t.contains('.')) {
                return Ok(Number {
                    value: x,
                    currency: None,
                });
            }
        }
    }
    let (core, negative, percent, currency) = strip(s).ok_or(NumberError::Invalid)?;
    if core.is_empty()
        || !core.chars().all(|c| {
            c.is_ascii_digit() || matches!(c, '.' | ',' | '\'' | '\u{2019}') || is_space(c)
        })
        || !core.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == ',')
    {
        // Scientific notation is the one non-digit form kept.
        return match core.parse::<f64>() {
            Ok(x) if x.is_finite() && core.bytes().any(|b| b == b'e' || b == b'E') => {
                Ok(finish(x, negative, percent, currency))
            }
            _ => Err(NumberError::Invalid),
        };
    }
    let read = |d| read_core(&core, d);
    let value = match decimal {
        Some(d) => read(d).ok_or(NumberError::Invalid)?,
        None => match (read(Decimal::Point), read(Decimal::Comma)) {
            (Some(a), Some(b)) if a == b => a,
            (Some(a), Some(b)) => {
                // A lone point is a decimal point (plain exports).
                if core.contains('.') && !core.contains(',') && core.matches('.').count() == 1 {
                    a
                } else {
                    return Err(NumberError::Ambiguous(a.to_string(), b.to_string()));
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return Err(NumberError::Invalid),
        },
    };
    Ok(finish(value, negative, percent, currency))
}

fn finish(x: f64, negative: bool, percent: bool, currency: Option<String>) -> Number {
    let mut v = if negative { -x } else { x };
    if percent {
        v /= 100.0;
    }
    Number { value: v, currency }
}

/// What a column's values say about its decimal separator: counts of values
/// that only a decimal point reads, only a decimal comma reads, and that
/// both read differently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecimalEvidence {
    pub point_only: u64,
    pub comma_only: u64,
    pub ambiguous: u64,
    /// Values with one point and three digits after it (`12.500`): a decimal
    /// point unless the rest of the column writes decimal commas.
    pub lone_point: u64,
    /// The first ambiguous value, for the error message.
    pub example: Option<String>,
}

impl DecimalEvidence {
    pub fn add(&mut self, s: &str) {
        let Some((core, ..)) = strip(s) else { return };
        let p = read_core(&core, Decimal::Point);
        let c = read_core(&core, Decimal::Comma);
        match (p, c) {
            (Some(a), Some(b)) if a != b => {
                if core.contains(',') || core.matches('.').count() > 1 {
                    self.ambiguous += 1;
                    if self.example.is_none() {
                        self.example = Some(s.to_string());
                    }
                } else {
                    self.lone_point += 1;
                    if self.example.is_none() {
                        self.example = Some(s.to_string());
                    }
                }
            }
            (Some(_), None) => self.point_only += 1,
            (None, Some(_)) => self.comma_only += 1,
            _ => {}
        }
    }

    /// The column's convention, if its values decide it: `Ok(None)` when no
    /// value is ambiguous (nothing to decide), `Err` when the values
    /// contradict each other or leave ambiguous values undecided.
    pub fn verdict(&self) -> Result<Option<Decimal>, String> {
        let undecided = self.ambiguous + self.lone_point;
        match (self.point_only > 0, self.comma_only > 0) {
            (true, true) if undecided > 0 => Err(format!(
                "the column mixes decimal points ({} values) and decimal commas ({} values)",
                self.point_only, self.comma_only
            )),
            (true, false) => Ok(Some(Decimal::Point)),
            (false, true) => Ok(Some(Decimal::Comma)),
            (true, true) => Ok(None),
            (false, false) if self.ambiguous > 0 => Err(format!(
                "values such as {:?} read as thousands with a decimal point or as decimals with a decimal comma, and no value of the column decides",
                self.example.as_deref().unwrap_or("")
            )),
            (false, false) if self.lone_point > 0 => Err(format!(
                "values such as {:?} read as whole numbers with a thousands dot (1.500 = 1500) or as decimals (1.5), and no value of the column decides",
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

    fn v(s: &str) -> Option<f64> {
        parse_number_as(s, None).ok().map(|n| n.value)
    }

    #[test]
    fn forms_from_real_exports() {
        assert_eq!(v("1250"), Some(1250.0));
        assert_eq!(v("11015.0"), Some(11015.0));
        assert_eq!(v("$1,234.56"), Some(1234.56));
        assert_eq!(v("9,99"), Some(9.99));
        assert_eq!(v("1.234,56"), Some(1234.56));
        assert_eq!(v("1.234.567"), Some(1_234_567.0));
        assert_eq!(v("1,234,567"), Some(1_234_567.0));
        assert_eq!(v("-3'500.00 CHF"), Some(-3500.0));
        assert_eq!(v("(1,234.50)"), Some(-1234.5));
        assert_eq!(v("1 234,5 €"), Some(1234.5));
        assert_eq!(v("60%"), Some(0.6));
        assert_eq!(v("12.500"), Some(12.5));
        assert_eq!(v("1e3"), Some(1000.0));
        assert_eq!(v("twelve"), None);
        assert_eq!(v("NaN"), None);
        assert_eq!(v("inf"), None);
        assert_eq!(v("1,2,3"), None);
        assert_eq!(v("12,34,567"), None);
        assert_eq!(v("--5"), None);
        assert_eq!(v(""), None);
        let n = parse_number_as("USD 1,234.56", None).unwrap();
        assert_eq!((n.value, n.currency.as_deref()), (1234.56, Some("USD")));
        let n = parse_number_as("-3'500.00 CHF", None).unwrap();
        assert_eq!(n.currency.as_deref(), Some("CHF"));
        assert_eq!(
            parse_number_as("€ 10", None).unwrap().currency.as_deref(),
            Some("EUR")
        );
        assert_eq!(parse_number_as("$10", None).unwrap().currency, None);
        assert!(parse_number_as("USD 10 EUR", None).is_err());
    }

    #[test]
    fn ambiguity_is_reported_and_resolved_by_the_convention() {
        assert!(matches!(
            parse_number_as("1,234", None),
            Err(NumberError::Ambiguous(..))
        ));
        assert_eq!(
            parse_number_as("1,234", Some(Decimal::Point))
                .unwrap()
                .value,
            1234.0
        );
        assert_eq!(
            parse_number_as("1,234", Some(Decimal::Comma))
                .unwrap()
                .value,
            1.234
        );
        assert_eq!(
            parse_number_as("1.234", Some(Decimal::Comma))
                .unwrap()
                .value,
            1234.0
        );
        assert!(parse_number_as("9,99", Some(Decimal::Point)).is_err());
    }

    #[test]
    fn column_evidence() {
        let mut e = DecimalEvidence::default();
        for s in ["1,234", "9,99", "12"] {
            e.add(s);
        }
        assert_eq!(e.verdict(), Ok(Some(Decimal::Comma)));
        let mut e = DecimalEvidence::default();
        for s in ["1,234", "2,000"] {
            e.add(s);
        }
        assert!(e.verdict().unwrap_err().contains("1,234"));
        let mut e = DecimalEvidence::default();
        for s in ["1.500", "9,99"] {
            e.add(s);
        }
        assert_eq!(e.verdict(), Ok(Some(Decimal::Comma)));
        // Only values such as 12.500: 12.5 or 12500, nothing decides.
        let mut e = DecimalEvidence::default();
        e.add("12.500");
        assert!(e.verdict().unwrap_err().contains("12.500"));
        e.add("0.25");
        assert_eq!(e.verdict(), Ok(Some(Decimal::Point)));
        let mut e = DecimalEvidence::default();
        for s in ["1,234", "1,234.50"] {
            e.add(s);
        }
        assert_eq!(e.verdict(), Ok(Some(Decimal::Point)));
    }

    proptest! {
        #[test]
        fn formatted_numbers_round_trip(cents in 0i64..10_000_000_000, comma: bool, group: bool, neg: bool) {
            let int = cents / 100;
            let frac = cents % 100;
            let digits = int.to_string();
            let sep = if comma { '.' } else { ',' };
            let mut grouped = String::new();
            for (i, ch) in digits.chars().enumerate() {
                if group && i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push(sep);
                }
                grouped.push(ch);
            }
            let s = format!("{}{grouped}{}{frac:02}", if neg { "-" } else { "" }, if comma { ',' } else { '.' });
            let d = if comma { Decimal::Comma } else { Decimal::Point };
            let got = parse_number_as(&s, Some(d)).unwrap().value;
            let want = (if neg { -1.0 } else { 1.0 }) * (int as f64 + frac as f64 / 100.0);
            prop_assert!((got - want).abs() < 1e-6, "{} -> {}", s, got);
            // Without a convention: the decimal part has two digits, so only one reading fits.
            prop_assert_eq!(parse_number_as(&s, None).unwrap().value, got);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse_number_as(&s, None);
            let _ = parse_number_as(&s, Some(Decimal::Comma));
            let mut e = DecimalEvidence::default();
            e.add(&s);
            let _ = e.verdict();
        }
    }
}
