//! The tabular model: a binary classifier fitted on any table of rows with a
//! 0/1 outcome (a lead export with a `converted` column, closed deals with
//! won/lost), with no configuration.
//!
//! - [`Schema::infer`] decides what each column is (numeric, categorical,
//!   high-cardinality, date, free text, or ignored, with the reason) from the
//!   training rows, and [`Schema::table`] turns any later file with the same
//!   columns into the same features.
//! - [`TabularModel::fit`] cross-validates (stratified folds, or time-ordered
//!   folds on a date column), reports AUC, lift and the top drivers, then fits
//!   the final model on every row.
//! - [`TabularModel::predict`] returns a probability and the top factors per
//!   row, in the input's order.

use std::collections::{HashMap, HashSet};

use pipewise_core::date::{DateEvidence, DayOrder};
use pipewise_core::value::{parse_datetime, parse_number};
use pipewise_core::{CellError, Column, Table, TextTable};
use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, roc_auc};
use crate::{Algorithm, Classifier, FitOptions, ModelError};

/// What a source column became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    Numeric,
    /// Few distinct values: one category per value.
    Categorical {
        levels: Vec<String>,
    },
    /// Many distinct values (landing pages, cities): the most frequent ones
    /// keep their own category, and every value also gets its training
    /// frequency as a number.
    HighCardinality {
        top: Vec<String>,
        frequency: HashMap<String, f64>,
    },
    /// Dates: day number, weekday, month (and hour when times are present).
    Date {
        with_time: bool,
        /// The `strftime` format named with `--date COL:FORMAT`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
        /// Numeric dates read day first (`13-02-2024`): the column's values
        /// decided it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        day_first: bool,
    },
    /// Free text: length in words and characters and the presence of its most
    /// common words.
    Text {
        tokens: Vec<String>,
    },
    /// Not used, and why.
    Ignored {
        reason: String,
    },
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Numeric => "numeric",
            Role::Categorical { .. } => "categorical",
            Role::HighCardinality { .. } => "high-cardinality categorical",
            Role::Date { .. } => "date",
            Role::Text { .. } => "free text",
            Role::Ignored { .. } => "ignored",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceColumn {
    pub name: String,
    pub role: Role,
    /// Rows of the training file where it was empty.
    pub missing: usize,
    pub distinct: usize,
}

/// How the outcome column reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub column: String,
    /// The value that means 1 (case-insensitive). Without it: 1/0, yes/no,
    /// y/n, true/false, t/f, won/lost.
    pub positive: Option<String>,
    /// With `positive`: the value that means 0; rows with any other value are
    /// skipped. Without it every other non-empty value means 0.
    pub negative: Option<String>,
}

/// Cells that mean "no value".
pub fn is_missing(s: &str) -> bool {
    let t = s.trim();
    t.is_empty()
        || ["na", "n/a", "nan", "null", "none", "-", "?", "#n/a"]
            .iter()
            .any(|m| t.eq_ignore_ascii_case(m))
}

impl Target {
    /// 1.0, 0.0, or `None` (skipped: empty, or not the positive nor the
    /// negative value when both are named).
    pub fn read(&self, t: &TextTable, row: usize, col: usize) -> Result<Option<f64>, CellError> {
        let v = t.rows[row][col].trim();
        if is_missing(v) {
            return Ok(None);
        }
        if let Some(p) = &self.positive {
            if v.eq_ignore_ascii_case(p) {
                return Ok(Some(1.0));
            }
            return Ok(match &self.negative {
                Some(n) if v.eq_ignore_ascii_case(n) => Some(0.0),
                Some(_) => None,
                None => Some(0.0),
            });
        }
        let l = v.to_ascii_lowercase();
        match l.as_str() {
            "1" | "1.0" | "yes" | "y" | "true" | "t" | "won" => Ok(Some(1.0)),
            "0" | "0.0" | "no" | "n" | "false" | "f" | "lost" => Ok(Some(0.0)),
            _ => Err(t.cell_error(
                row,
                col,
                "is not an outcome: expected 1/0, yes/no, true/false or won/lost \
                 (or name the positive value with --positive)",
            )),
        }
    }
}

const MAX_CATEGORIES: usize = 50;
const TOP_LEVELS: usize = 30;
const TEXT_TOKENS: usize = 20;
const US_DATES: [&str; 2] = ["%m/%d/%Y", "%m/%d/%Y %H:%M"];

fn date_formats() -> Vec<String> {
    US_DATES.iter().map(|s| s.to_string()).collect()
}

/// Reads a date cell of a column read as dates: ISO dates and date-times,
/// then the column's named format, then numeric dates in the column's day
/// order (month first unless its values said otherwise).
pub fn read_date(
    c: &str,
    format: Option<&str>,
    day_first: bool,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let formats: Vec<String> = match format {
        Some(f) => vec![f.to_string()],
        None if day_first => Vec::new(),
        None => date_formats(),
    };
    parse_datetime(c, &formats).or_else(|| {
        let order = if day_first {
            DayOrder::DayFirst
        } else {
            DayOrder::MonthFirst
        };
        pipewise_core::date::parse_numeric(c, order).map(|d| d.and_utc())
    })
}

/// Names of integer-coded categories: region, operating-system, browser or
/// policy codes are labels, not quantities.
fn looks_like_code(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    let l = l.trim_end_matches(|c: char| c.is_ascii_digit());
    [
        "code", "_cd", "zip", "postcode", "postal", "region", "category", "_type", "type_id",
        "class",
    ]
    .iter()
    .any(|k| l.ends_with(k))
        || looks_like_id(name)
}

/// Column roles named by the user (`--categorical`, `--numeric`, `--date`,
/// `--ignore`), over what inference would choose.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub categorical: Vec<String>,
    pub numeric: Vec<String>,
    /// Column and optional `strftime` format.
    pub dates: Vec<(String, Option<String>)>,
    pub ignore: Vec<String>,
}

fn looks_like_id(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l == "id"
        || l.ends_with("_id")
        || l.ends_with(" id")
        || l.ends_with("-id")
        || (l.ends_with("id") && name.ends_with("Id"))
        || l == "uuid"
        || l == "key"
}

fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
}

const STOPWORDS: [&str; 24] = [
    "the", "and", "for", "you", "your", "are", "with", "this", "that", "our", "have", "can", "not",
    "but", "was", "from", "will", "would", "about", "what", "how", "all", "any", "has",
];

/// Column roles learnt from the training file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<SourceColumn>,
    pub target: Target,
}

/// What [`Schema::table`] met in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReadNotes {
    /// Per column: rows whose category was not seen in training (scored as
    /// "other"/missing).
    pub unseen_categories: Vec<(String, usize)>,
    /// Columns the model uses that the file lacks (read as all missing).
    pub missing_columns: Vec<String>,
    /// Time in the classifier alone (benchmarks), in seconds.
    pub model_seconds: f64,
}

impl Schema {
    /// Decides each column's role from the rows `rows` of `t`; `named` holds
    /// the roles the user gave (and the columns excluded, e.g. ones only
    /// known after the outcome). A cell a named role cannot read is an error
    /// of the file.
    pub fn infer(
        t: &TextTable,
        rows: &[usize],
        target: Target,
        named: &Overrides,
    ) -> Result<Schema, CellError> {
        for (flag, cols) in [
            ("--categorical", &named.categorical),
            ("--numeric", &named.numeric),
            ("--ignore", &named.ignore),
        ] {
            for c in cols {
                if t.column_index(c).is_none() {
                    return Err(t.file_error(format!(
                        "{flag} {c:?}: no such column; the columns are: {}",
                        t.headers.join(", ")
                    )));
                }
            }
        }
        // A column named twice, or the target named as a feature.
        let mut named_once: HashMap<&str, &str> = HashMap::new();
        let all = named
            .categorical
            .iter()
            .map(|c| (c.as_str(), "--categorical"))
            .chain(named.numeric.iter().map(|c| (c.as_str(), "--numeric")))
            .chain(named.dates.iter().map(|d| (d.0.as_str(), "--date")))
            .chain(named.ignore.iter().map(|c| (c.as_str(), "--ignore")));
        for (c, flag) in all {
            if c == target.column {
                return Err(t.file_error(format!(
                    "{flag} {c:?}: that is the target column (--target)"
                )));
            }
            if let Some(prev) = named_once.insert(c, flag) {
                if prev != flag {
                    return Err(t.file_error(format!(
                        "column {c:?} is named by both {prev} and {flag}: give it one role"
                    )));
                }
            }
        }
        for (c, _) in &named.dates {
            if t.column_index(c).is_none() {
                return Err(t.file_error(format!(
                    "--date {c:?}: no such column; the columns are: {}",
                    t.headers.join(", ")
                )));
            }
        }
        let columns = t
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| **h != target.column)
            .map(|(j, name)| {
                let cells: Vec<&str> = rows
                    .iter()
                    .map(|&r| t.rows[r][j].as_str())
                    .filter(|c| !is_missing(c))
                    .collect();
                let missing = rows.len() - cells.len();
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for c in &cells {
                    *counts.entry(c).or_default() += 1;
                }
                let distinct = counts.len();
                let ignored = |reason: &str| Role::Ignored {
                    reason: reason.to_string(),
                };
                let unique = distinct == cells.len() && cells.len() > 20;
                let categories = |counts: HashMap<&str, usize>| {
                    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    if ranked.len() <= MAX_CATEGORIES {
                        Role::Categorical {
                            levels: ranked.iter().map(|x| x.0.to_string()).collect(),
                        }
                    } else {
                        let n = rows.len() as f64;
                        Role::HighCardinality {
                            top: ranked
                                .iter()
                                .take(TOP_LEVELS)
                                .map(|x| x.0.to_string())
                                .collect(),
                            frequency: ranked
                                .iter()
                                .map(|x| (x.0.to_string(), x.1 as f64 / n))
                                .collect(),
                        }
                    }
                };
                let is = |list: &[String]| list.iter().any(|i| i == name);
                let named_date = named.dates.iter().find(|d| &d.0 == name);
                let numeric = cells.iter().all(|c| parse_number(c).is_some());
                // Numeric dates: the column's values decide the day order.
                let mut evidence = DateEvidence::default();
                if !numeric {
                    for c in &cells {
                        evidence.add(c);
                    }
                }
                let day_first = evidence.verdict() == Ok(Some(DayOrder::DayFirst));
                let date_role = |format: Option<String>| {
                    let all = cells
                        .iter()
                        .all(|c| read_date(c, format.as_deref(), day_first).is_some());
                    all.then(|| Role::Date {
                        with_time: cells.iter().any(|c| {
                            read_date(c, format.as_deref(), day_first)
                                .is_some_and(|d| d.timestamp().rem_euclid(86_400) != 0)
                        }),
                        format: format.clone(),
                        day_first: day_first && format.is_none(),
                    })
                };
                let role = if is(&named.ignore) {
                    ignored("excluded by --ignore")
                } else if cells.is_empty() {
                    ignored("always empty")
                } else if let Some((_, format)) = named_date {
                    match date_role(format.clone()) {
                        Some(r) => r,
                        None => {
                            let bad = cells
                                .iter()
                                .find(|c| read_date(c, format.as_deref(), day_first).is_none())
                                .copied()
                                .unwrap_or("");
                            return Err(t.file_error(format!(
                                "--date {name}: {bad:?} is not a date{}",
                                match format {
                                    Some(f) => format!(" in the form {f}"),
                                    None => " (name its form: --date COLUMN:%d-%m-%Y)".into(),
                                }
                            )));
                        }
                    }
                } else if is(&named.categorical) {
                    categories(counts)
                } else if is(&named.numeric) {
                    if let Some(bad) = cells.iter().find(|c| parse_number(c).is_none()) {
                        return Err(
                            t.file_error(format!("--numeric {name}: {bad:?} is not a number"))
                        );
                    }
                    Role::Numeric
                } else if distinct == 1 && missing == 0 {
                    ignored("the same value on every row")
                } else if numeric {
                    let integers = cells
                        .iter()
                        .all(|c| parse_number(c).is_some_and(|v| v.fract() == 0.0));
                    if unique && looks_like_id(name) {
                        ignored("an identifier (a different value on every row)")
                    } else if integers && distinct > 2 && looks_like_code(name) {
                        // Integer codes (region, browser, policy category):
                        // labels, not quantities.
                        categories(counts)
                    } else {
                        Role::Numeric
                    }
                } else if let Some(r) = date_role(None) {
                    r
                } else {
                    let words: usize = cells.iter().map(|c| c.split_whitespace().count()).sum();
                    let mean_words = words as f64 / cells.len() as f64;
                    if mean_words >= 4.0 && distinct * 2 > cells.len() {
                        let mut df: HashMap<String, usize> = HashMap::new();
                        for c in &cells {
                            let set: HashSet<String> = tokens(c).collect();
                            for w in set {
                                *df.entry(w).or_default() += 1;
                            }
                        }
                        let lo = (cells.len() as f64 * 0.01).max(5.0) as usize;
                        let hi = cells.len() / 2;
                        let mut ranked: Vec<(String, usize)> = df
                            .into_iter()
                            .filter(|(w, n)| {
                                *n >= lo && *n <= hi && !STOPWORDS.contains(&w.as_str())
                            })
                            .collect();
                        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                        Role::Text {
                            tokens: ranked.into_iter().take(TEXT_TOKENS).map(|x| x.0).collect(),
                        }
                    } else if unique {
                        ignored("an identifier (a different value on every row)")
                    } else {
                        categories(counts)
                    }
                };
                Ok(SourceColumn {
                    name: name.clone(),
                    role,
                    missing,
                    distinct,
                })
            })
            .collect::<Result<Vec<_>, CellError>>()?;
        Ok(Schema { columns, target })
    }

    /// The columns the model uses.
    pub fn used(&self) -> impl Iterator<Item = &SourceColumn> {
        self.columns
            .iter()
            .filter(|c| !matches!(c.role, Role::Ignored { .. }))
    }

    /// The features of rows `rows` of `t`, and for each feature the index of
    /// its source column in `self.columns`. A used column absent from `t` is
    /// an error unless `allow_missing_columns` (then it reads as empty).
    pub fn table(
        &self,
        t: &TextTable,
        rows: &[usize],
        allow_missing_columns: bool,
    ) -> Result<(Table, Vec<usize>, ReadNotes), CellError> {
        let mut out = Table::default();
        let mut source = Vec::new();
        let mut notes = ReadNotes::default();
        for (ci, sc) in self.columns.iter().enumerate() {
            if matches!(sc.role, Role::Ignored { .. }) {
                continue;
            }
            let j = match t.column_index(&sc.name) {
                Some(j) => Some(j),
                None if allow_missing_columns => {
                    notes.missing_columns.push(sc.name.clone());
                    None
                }
                None => {
                    return Err(t.file_error(format!(
                        "the model uses column {:?}, which this file does not have \
                         (its columns: {}); add it, or pass --allow-missing-columns \
                         to score it as empty",
                        sc.name,
                        t.headers.join(", ")
                    )));
                }
            };
            let cell = |r: usize| -> Option<&str> {
                j.map(|j| t.rows[r][j].as_str()).filter(|c| !is_missing(c))
            };
            let mut push = |out: &mut Table, name: String, col: Column| {
                out.push(name, col);
                source.push(ci);
            };
            match &sc.role {
                Role::Numeric => {
                    let mut v = Vec::with_capacity(rows.len());
                    for &r in rows {
                        v.push(match cell(r) {
                            None => f64::NAN,
                            Some(c) => parse_number(c)
                                .ok_or_else(|| t.cell_error(r, j.unwrap(), "expected a number"))?,
                        });
                    }
                    push(&mut out, sc.name.clone(), Column::Numeric(v));
                }
                Role::Categorical { levels } => {
                    let known: HashSet<&str> = levels.iter().map(String::as_str).collect();
                    let mut unseen = 0;
                    let v = rows
                        .iter()
                        .map(|&r| {
                            cell(r).map(|c| {
                                if !known.contains(c) {
                                    unseen += 1;
                                }
                                c.to_string()
                            })
                        })
                        .collect();
                    if unseen > 0 {
                        notes.unseen_categories.push((sc.name.clone(), unseen));
                    }
                    push(&mut out, sc.name.clone(), Column::Categorical(v));
                }
                Role::HighCardinality { top, frequency } => {
                    let top: HashSet<&str> = top.iter().map(String::as_str).collect();
                    let mut unseen = 0;
                    let cat = rows
                        .iter()
                        .map(|&r| {
                            cell(r).map(|c| {
                                if !frequency.contains_key(c) {
                                    unseen += 1;
                                }
                                if top.contains(c) { c } else { "(other)" }.to_string()
                            })
                        })
                        .collect();
                    let freq = rows
                        .iter()
                        .map(|&r| cell(r).map_or(f64::NAN, |c| *frequency.get(c).unwrap_or(&0.0)))
                        .collect();
                    if unseen > 0 {
                        notes.unseen_categories.push((sc.name.clone(), unseen));
                    }
                    push(&mut out, sc.name.clone(), Column::Categorical(cat));
                    push(
                        &mut out,
                        format!("{}:frequency", sc.name),
                        Column::Numeric(freq),
                    );
                }
                Role::Date {
                    with_time,
                    format,
                    day_first,
                } => {
                    let mut days = Vec::with_capacity(rows.len());
                    let mut weekday = Vec::with_capacity(rows.len());
                    let mut month = Vec::with_capacity(rows.len());
                    let mut hour = Vec::with_capacity(rows.len());
                    for &r in rows {
                        match cell(r) {
                            None => {
                                days.push(f64::NAN);
                                weekday.push(None);
                                month.push(f64::NAN);
                                hour.push(f64::NAN);
                            }
                            Some(c) => {
                                let d = read_date(c, format.as_deref(), *day_first)
                                    .ok_or_else(|| {
                                        t.cell_error(
                                            r,
                                            j.unwrap(),
                                            &match (format, day_first) {
                                                (Some(f), _) => format!("expected a date in the form {f}"),
                                                (None, true) => "expected a date (YYYY-MM-DD, a date-time, or DD-MM-YYYY)".to_string(),
                                                (None, false) => "expected a date (YYYY-MM-DD, a date-time, or MM/DD/YYYY)".to_string(),
                                            },
                                        )
                                    })?;
                                use chrono::{Datelike, Timelike};
                                days.push(d.timestamp() as f64 / 86_400.0);
                                weekday.push(Some(format!("{:?}", d.weekday())));
                                month.push(f64::from(d.month()));
                                hour.push(f64::from(d.hour()));
                            }
                        }
                    }
                    push(&mut out, format!("{}:days", sc.name), Column::Numeric(days));
                    push(
                        &mut out,
                        format!("{}:weekday", sc.name),
                        Column::Categorical(weekday),
                    );
                    push(
                        &mut out,
                        format!("{}:month", sc.name),
                        Column::Numeric(month),
                    );
                    if *with_time {
                        push(&mut out, format!("{}:hour", sc.name), Column::Numeric(hour));
                    }
                }
                Role::Text { tokens: vocab } => {
                    let mut words = Vec::with_capacity(rows.len());
                    let mut chars = Vec::with_capacity(rows.len());
                    let mut has = vec![Vec::with_capacity(rows.len()); vocab.len()];
                    for &r in rows {
                        let c = cell(r);
                        words.push(c.map_or(0.0, |c| c.split_whitespace().count() as f64));
                        chars.push(c.map_or(0.0, |c| c.chars().count() as f64));
                        let set: HashSet<String> =
                            c.map(|c| tokens(c).collect()).unwrap_or_default();
                        for (h, w) in has.iter_mut().zip(vocab) {
                            h.push(if set.contains(w) { 1.0 } else { 0.0 });
                        }
                    }
                    push(
                        &mut out,
                        format!("{}:words", sc.name),
                        Column::Numeric(words),
                    );
                    push(
                        &mut out,
                        format!("{}:chars", sc.name),
                        Column::Numeric(chars),
                    );
                    for (h, w) in has.into_iter().zip(vocab) {
                        push(&mut out, format!("{}:has:{w}", sc.name), Column::Numeric(h));
                    }
                }
                Role::Ignored { .. } => unreachable!(),
            }
        }
        Ok((out, source, notes))
    }
}

/// Options of [`TabularModel::fit`]. The learner is the histogram GBM
/// ([`crate::hist`]): as accurate as perpetual on the benchmark sets and
/// orders of magnitude faster on large files (docs/benchmarks.md).
#[derive(Debug, Clone)]
pub struct TabularOptions {
    pub folds: usize,
    /// Folds in time order on this date column (train on the past, test on
    /// the next block) instead of stratified random folds.
    pub time_column: Option<String>,
    /// Column roles the user named, and the columns to leave out.
    pub named: Overrides,
    pub algorithm: Algorithm,
    pub fit: FitOptions,
}

impl Default for TabularOptions {
    fn default() -> Self {
        TabularOptions {
            folds: 5,
            time_column: None,
            named: Overrides::default(),
            algorithm: Algorithm::Hist,
            fit: FitOptions {
                bags: 0,
                // (perpetual only) category codes split as ordered numbers.
                native_categorical: false,
                ..FitOptions::default()
            },
        }
    }
}

/// One source column's share of the model's mean absolute contribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    pub column: String,
    pub share: f64,
}

/// What cross-validation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// "stratified 5-fold" or "time-ordered on COLUMN (4 folds)".
    pub scheme: String,
    /// The chosen learner's, fold by fold.
    pub fold_auc: Vec<f64>,
    /// All held-out predictions pooled (the chosen learner's).
    pub metrics: Metrics,
    /// Every learner tried on the same folds; the one with the best pooled
    /// held-out AUC is the model.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
}

/// One learner's cross-validated result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub algorithm: String,
    pub roc_auc: f64,
    pub fold_auc: Vec<f64>,
    pub chosen: bool,
}

/// Above this many rows with an outcome the linear candidate is not tried
/// (its Newton fit grows with rows × terms², and trees win on such files).
pub const LINEAR_CANDIDATE_MAX_ROWS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub file: String,
    pub rows: usize,
    pub positives: usize,
    /// Rows without an outcome (empty, or neither named value).
    pub skipped: usize,
    pub validation: Validation,
    pub drivers: Vec<Driver>,
    pub features: usize,
    /// Wall time of the final fit (benchmarks).
    #[serde(default)]
    pub final_fit_seconds: f64,
    /// What makes the figures less trustworthy (too few rows, folds where
    /// the trees could not split).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Fingerprints of up to [`ROW_SAMPLE`] training rows, evenly spaced:
    /// `predict` says when it scores the training rows (in-sample figures).
    #[serde(default)]
    pub row_sample: Vec<u64>,
}

/// Training rows fingerprinted in [`FitReport::row_sample`].
pub const ROW_SAMPLE: usize = 1_000;
/// Below this many rows with an outcome, cross-validated figures are noisy.
pub const FEW_ROWS: usize = 200;

/// A row's fingerprint: FNV-1a over its cells (stable across versions).
fn row_hash(row: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for cell in row {
        for b in cell.trim().bytes().chain([0x1f]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A fitted tabular model, saved as one JSON file.
#[derive(Clone, Serialize, Deserialize)]
pub struct TabularModel {
    pub format: String,
    pub schema: Schema,
    /// For each feature of the classifier, its source column.
    pub source: Vec<usize>,
    pub classifier: Classifier,
    pub report: FitReport,
    /// The chosen learner's held-out predictions from the validation
    /// folds: (row of the fitted table, probability, outcome). Not saved
    /// with the model.
    #[serde(skip)]
    pub held_out: Vec<(usize, f64, f64)>,
}

pub const FORMAT: &str = "pipewise-tabular-model/1";

/// One row's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub probability: f64,
    /// Source columns by the size of their push on this row's log-odds.
    pub factors: Vec<RowFactor>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowFactor {
    pub column: String,
    /// The cell as written (empty: missing).
    pub value: String,
    /// Change of the log-odds.
    pub effect: f64,
}

impl RowFactor {
    pub fn text(&self) -> String {
        let v = if self.value.is_empty() {
            "(missing)".to_string()
        } else if self.value.chars().count() > 40 {
            format!("{}...", self.value.chars().take(37).collect::<String>())
        } else {
            self.value.clone()
        };
        format!("{}={} ({:+.2})", self.column, v, self.effect)
    }
}

fn data_error(t: &TextTable, message: String) -> ModelError {
    ModelError::Data(format!("{}: {message}", t.file))
}

impl TabularModel {
    /// Cross-validates, then fits on every row with an outcome. `progress`
    /// hears each step.
    pub fn fit(
        t: &TextTable,
        target: Target,
        opts: &TabularOptions,
        progress: &dyn Fn(&str),
    ) -> Result<TabularModel, TabularError> {
        let tcol = t.column_index(&target.column).ok_or_else(|| {
            t.file_error(format!(
                "no column {:?} (the target); the columns are: {}",
                target.column,
                t.headers.join(", ")
            ))
        })?;
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for r in 0..t.rows.len() {
            if let Some(v) = target.read(t, r, tcol)? {
                rows.push(r);
                y.push(v);
            }
        }
        let skipped = t.rows.len() - rows.len();
        let positives = y.iter().filter(|&&v| v > 0.5).count();
        if positives < 5 || rows.len() - positives < 5 {
            return Err(data_error(
                t,
                format!(
                    "{} rows with an outcome, {positives} of them positive: at least 5 of \
                     each outcome are needed",
                    rows.len()
                ),
            )
            .into());
        }
        if let Some(tc) = &opts.time_column {
            if t.column_index(tc).is_none() {
                return Err(t
                    .file_error(format!(
                        "no column {tc:?} (--time-column); the columns are: {}",
                        t.headers.join(", ")
                    ))
                    .into());
            }
        }
        let schema = Schema::infer(t, &rows, target, &opts.named)?;
        if schema.used().next().is_none() {
            return Err(data_error(t, "no usable column besides the target".into()).into());
        }
        let (table, source, _) = schema.table(t, &rows, false)?;
        progress(&format!(
            "{} rows ({positives} positive, {skipped} without an outcome), {} columns used, {} features",
            rows.len(),
            schema.used().count(),
            table.names.len()
        ));

        // Folds: lists of (train, test) positions into `rows`.
        let n = rows.len();
        let k = opts.folds;
        if k < 2 || (opts.time_column.is_some() && k < 3) {
            return Err(data_error(
                t,
                format!(
                    "--folds {k}: need at least {} ({})",
                    if opts.time_column.is_some() { 3 } else { 2 },
                    if opts.time_column.is_some() {
                        "time-ordered folds test every block after the first: 3 blocks give 2 tests"
                    } else {
                        "each row is predicted by a model of the other folds"
                    }
                ),
            )
            .into());
        }
        let (scheme, splits): (String, Vec<(Vec<usize>, Vec<usize>)>) = match &opts.time_column {
            Some(tc) => {
                let j = t.column_index(tc).expect("checked");
                // Read as the schema reads the column: its day order or
                // named format; a column that is not all dates is an error,
                // never an unordered split.
                let (format, day_first) = match schema
                    .columns
                    .iter()
                    .find(|c| &c.name == tc)
                    .map(|c| &c.role)
                {
                    Some(Role::Date {
                        format, day_first, ..
                    }) => (format.clone(), *day_first),
                    Some(role) if !matches!(role, Role::Ignored { .. }) => {
                        return Err(data_error(
                            t,
                            format!(
                                "--time-column {tc}: its values are not all dates (read as {}); name its form with --date {tc}:FORMAT",
                                role.name()
                            ),
                        )
                        .into());
                    }
                    _ => (None, false),
                };
                let mut order: Vec<(i64, usize)> = Vec::with_capacity(n);
                for i in 0..n {
                    let c = &t.rows[rows[i]][j];
                    let d = read_date(c, format.as_deref(), day_first).ok_or_else(|| {
                        t.cell_error(
                            rows[i],
                            j,
                            "expected a date (--time-column orders the rows by it)",
                        )
                    })?;
                    order.push((d.timestamp(), i));
                }
                order.sort();
                let block = |b: usize| -> Vec<usize> {
                    order[b * n / k..(b + 1) * n / k]
                        .iter()
                        .map(|x| x.1)
                        .collect()
                };
                let splits = (1..k)
                    .map(|b| ((0..b).flat_map(block).collect(), block(b)))
                    .collect();
                (
                    format!(
                        "time-ordered on {tc} ({} folds, each tested on the next block)",
                        k - 1
                    ),
                    splits,
                )
            }
            None => {
                // Stratified: shuffle each class, deal round-robin.
                let mut fold = vec![0usize; n];
                let mut state = crate::seeded(opts.fit.seed);
                for class in [0.0, 1.0] {
                    let mut idx: Vec<usize> = (0..n).filter(|&i| y[i] == class).collect();
                    for i in (1..idx.len()).rev() {
                        let r = crate::next_random(&mut state);
                        idx.swap(i, r as usize % (i + 1));
                    }
                    for (pos, i) in idx.into_iter().enumerate() {
                        fold[i] = pos % k;
                    }
                }
                let splits = (0..k)
                    .map(|f| {
                        (
                            (0..n).filter(|&i| fold[i] != f).collect(),
                            (0..n).filter(|&i| fold[i] == f).collect(),
                        )
                    })
                    .collect();
                (format!("stratified {k}-fold"), splits)
            }
        };
        // The learners tried: the trees, and a regularised linear model
        // (some lead tables are linear; trees then lose a few points of AUC).
        let mut learners = vec![opts.algorithm];
        if opts.algorithm != Algorithm::Logistic && n <= LINEAR_CANDIDATE_MAX_ROWS {
            learners.push(Algorithm::Logistic);
        }
        let mut oof_p = vec![Vec::new(); learners.len()];
        let mut oof_y = Vec::new();
        let mut oof_rows: Vec<usize> = Vec::new();
        let mut fold_auc = vec![Vec::new(); learners.len()];
        for (f, (train, test)) in splits.iter().enumerate() {
            progress(&format!(
                "fold {}/{}: fitting on {} rows",
                f + 1,
                splits.len(),
                train.len()
            ));
            let ytr: Vec<f64> = train.iter().map(|&i| y[i]).collect();
            let yte: Vec<f64> = test.iter().map(|&i| y[i]).collect();
            let (xtr, xte) = (table.take(train), table.take(test));
            for (k, &a) in learners.iter().enumerate() {
                let m = Classifier::fit(a, &xtr, &ytr, &opts.fit)?;
                let p = m.predict(&xte)?;
                fold_auc[k].push(roc_auc(&p, &yte));
                oof_p[k].extend(p);
            }
            oof_y.extend(yte);
            oof_rows.extend(test.iter().map(|&i| rows[i]));
        }
        let pooled: Vec<f64> = oof_p.iter().map(|p| roc_auc(p, &oof_y)).collect();
        // The trees unless another learner is better on the held-out rows.
        let best = (1..learners.len()).fold(0, |b, k| if pooled[k] > pooled[b] { k } else { b });
        let candidates: Vec<Candidate> = learners
            .iter()
            .enumerate()
            .map(|(k, a)| Candidate {
                algorithm: a.name().to_string(),
                roc_auc: pooled[k],
                fold_auc: fold_auc[k].clone(),
                chosen: k == best,
            })
            .collect();
        let algorithm = learners[best];
        let fold_auc = fold_auc.swap_remove(best);
        let oof_p = oof_p.swap_remove(best);
        progress(&format!(
            "final model ({}): fitting on all {n} rows",
            algorithm.name()
        ));
        let started = std::time::Instant::now();
        let classifier = Classifier::fit(algorithm, &table, &y, &opts.fit)?;
        let final_fit_seconds = started.elapsed().as_secs_f64();
        // Drivers: each source column's mean absolute net push on the
        // log-odds (its features' contributions summed per row), over up to
        // 20,000 training rows: the same measure for trees and the linear
        // model, and a many-valued noise column's levels cancel out.
        let step = n.div_ceil(20_000).max(1);
        let sample: Vec<usize> = (0..n).step_by(step).collect();
        let mut share = vec![0.0; schema.columns.len()];
        for row in classifier.contributions(&table.take(&sample))? {
            let mut per = vec![0.0; schema.columns.len()];
            for (f, v) in row.iter().enumerate() {
                per[source[f]] += v;
            }
            for (s, v) in share.iter_mut().zip(per) {
                *s += v.abs();
            }
        }
        let total: f64 = share.iter().sum();
        if total > 0.0 {
            share.iter_mut().for_each(|s| *s /= total);
        }
        let mut drivers: Vec<Driver> = share
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .map(|(i, s)| Driver {
                column: schema.columns[i].name.clone(),
                share: *s,
            })
            .collect();
        drivers.sort_by(|a, b| b.share.total_cmp(&a.share));
        let mut warnings = Vec::new();
        if n < FEW_ROWS {
            warnings.push(format!(
                "only {n} rows with an outcome: cross-validated figures below {FEW_ROWS} rows are noisy, and the trees need about 20 rows per leaf"
            ));
        }
        if opts.time_column.is_none() {
            if let Some(d) = schema.used().find(|c| matches!(c.role, Role::Date { .. })) {
                warnings.push(format!(
                    "the folds are random but {} is a date: a model may learn from it what only later rows show; pass --time-column {} to validate on later rows",
                    d.name, d.name
                ));
            }
        }
        let flat = fold_auc.iter().filter(|a| (**a - 0.5).abs() < 1e-9).count();
        if flat > 0 {
            warnings.push(format!(
                "{flat} of {} folds scored AUC 0.500: the model gave every held-out row the same probability (too few rows to split on)",
                fold_auc.len()
            ));
        }
        let step = n.div_ceil(ROW_SAMPLE).max(1);
        let row_sample = (0..n)
            .step_by(step)
            .map(|i| row_hash(&t.rows[rows[i]]))
            .collect();
        let report = FitReport {
            warnings,
            row_sample,
            file: t.file.clone(),
            rows: n,
            positives,
            skipped,
            validation: Validation {
                scheme,
                fold_auc,
                metrics: Metrics::of(&oof_p, &oof_y),
                candidates,
            },
            drivers,
            features: table.names.len(),
            final_fit_seconds,
        };
        let held_out = oof_rows
            .iter()
            .zip(&oof_p)
            .zip(&oof_y)
            .map(|((&r, &p), &y)| (r, p, y))
            .collect();
        Ok(TabularModel {
            format: FORMAT.to_string(),
            schema,
            source,
            classifier,
            report,
            held_out,
        })
    }

    /// Every row of `t`, in order; `top` factors per row.
    /// Estimated share of `t`'s rows that were training rows (metrics on
    /// them are in-sample): the fingerprinted training rows found in `t`,
    /// scaled by how many training rows each fingerprint stands for. `None`
    /// for models saved without fingerprints.
    pub fn training_overlap(&self, t: &TextTable) -> Option<f64> {
        let sample = &self.report.row_sample;
        if sample.is_empty() || t.rows.is_empty() {
            return None;
        }
        let seen: HashSet<u64> = t.rows.iter().map(|r| row_hash(r)).collect();
        let found = sample.iter().filter(|h| seen.contains(h)).count() as f64;
        let per_print = self.report.rows as f64 / sample.len() as f64;
        Some((found * per_print / t.rows.len() as f64).min(1.0))
    }

    pub fn predict(
        &self,
        t: &TextTable,
        top: usize,
        allow_missing_columns: bool,
    ) -> Result<(Vec<Prediction>, ReadNotes), TabularError> {
        let rows: Vec<usize> = (0..t.rows.len()).collect();
        let (table, _, mut notes) = self.schema.table(t, &rows, allow_missing_columns)?;
        let started = std::time::Instant::now();
        let p = self.classifier.predict(&table)?;
        notes.model_seconds = started.elapsed().as_secs_f64();
        let contrib = if top > 0 {
            self.classifier.contributions(&table)?
        } else {
            vec![Vec::new(); rows.len()]
        };
        let index: Vec<Option<usize>> = self
            .schema
            .columns
            .iter()
            .map(|c| t.column_index(&c.name))
            .collect();
        let preds = p
            .into_iter()
            .zip(contrib)
            .enumerate()
            .map(|(r, (probability, c))| {
                let mut per: HashMap<usize, f64> = HashMap::new();
                for (f, v) in c.iter().enumerate() {
                    *per.entry(self.source[f]).or_default() += v;
                }
                let mut per: Vec<(usize, f64)> =
                    per.into_iter().filter(|(_, v)| v.abs() > 1e-9).collect();
                per.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
                let factors = per
                    .into_iter()
                    .take(top)
                    .map(|(ci, effect)| RowFactor {
                        column: self.schema.columns[ci].name.clone(),
                        value: index[ci].map_or(String::new(), |j| t.rows[r][j].clone()),
                        effect,
                    })
                    .collect();
                Prediction {
                    probability,
                    factors,
                }
            })
            .collect();
        Ok((preds, notes))
    }

    /// The outcome column of `t`, when present and readable on every row
    /// that has one: for metrics on a scored file.
    pub fn outcomes(&self, t: &TextTable) -> Option<Vec<Option<f64>>> {
        let j = t.column_index(&self.schema.target.column)?;
        (0..t.rows.len())
            .map(|r| self.schema.target.read(t, r, j).ok())
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a model serialises")
    }

    pub fn from_json(s: &str) -> Result<TabularModel, String> {
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => serde_json::from_value(v).map_err(|e| e.to_string()),
            Some(f) => Err(format!(
                "a model of format {f:?}; this pipewise reads {FORMAT:?}"
            )),
            None => Err("not a pipewise tabular model (no \"format\" field)".into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    #[error(transparent)]
    Cell(#[from] CellError),
    #[error(transparent)]
    Model(#[from] ModelError),
}
