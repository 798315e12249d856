//! From a [`Table`] to numbers: category vocabularies learnt on the training rows.

use pipewise_core::{Column, Table};
use serde::{Deserialize, Serialize};

/// At most this many levels per categorical column keep their own code; the
/// rest (and levels first seen at prediction time) share the "other" code.
pub const MAX_LEVELS: usize = 255;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnCode {
    Numeric,
    /// Levels by training frequency (most frequent first); code = position,
    /// `levels.len()` = other.
    Categorical {
        levels: Vec<String>,
        has_other: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    pub names: Vec<String>,
    pub codes: Vec<ColumnCode>,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("column {0} is missing from the data")]
    MissingColumn(String),
    #[error("column {name} is {found} here but was {expected} when the model was fitted")]
    KindChanged {
        name: String,
        found: &'static str,
        expected: &'static str,
    },
}

fn kind(c: &Column) -> &'static str {
    if c.is_categorical() {
        "categorical"
    } else {
        "numeric"
    }
}

impl Encoder {
    pub fn fit(table: &Table) -> Encoder {
        let codes = table
            .columns
            .iter()
            .map(|c| match c {
                Column::Numeric(_) => ColumnCode::Numeric,
                Column::Categorical(v) => {
                    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
                    for s in v.iter().flatten() {
                        *counts.entry(s.as_str()).or_default() += 1;
                    }
                    let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
                    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    let has_other = levels.len() > MAX_LEVELS;
                    ColumnCode::Categorical {
                        levels: levels
                            .into_iter()
                            .take(MAX_LEVELS)
                            .map(|l| l.0.to_string())
                            .collect(),
                        has_other,
                    }
                }
            })
            .collect();
        Encoder {
            names: table.names.clone(),
            codes,
        }
    }

    pub fn categorical_indices(&self) -> Vec<usize> {
        (0..self.codes.len())
            .filter(|&i| matches!(self.codes[i], ColumnCode::Categorical { .. }))
            .collect()
    }

    /// The columns of `table` in the encoder's order (matched by name).
    pub fn columns<'a>(&self, table: &'a Table) -> Result<Vec<&'a Column>, EncodeError> {
        self.names
            .iter()
            .zip(&self.codes)
            .map(|(n, code)| {
                let c = table
                    .column(n)
                    .ok_or_else(|| EncodeError::MissingColumn(n.clone()))?;
                let expected = match code {
                    ColumnCode::Numeric => "numeric",
                    ColumnCode::Categorical { .. } => "categorical",
                };
                if kind(c) != expected {
                    return Err(EncodeError::KindChanged {
                        name: n.clone(),
                        found: kind(c),
                        expected,
                    });
                }
                Ok(c)
            })
            .collect()
    }

    /// Column-major matrix: numbers as they are, categories as codes. A level
    /// not seen in training becomes "other" when the column has one, else missing.
    pub fn matrix(&self, table: &Table) -> Result<Vec<f64>, EncodeError> {
        let mut out = Vec::with_capacity(table.rows() * self.codes.len());
        for c in self.column_values(table)? {
            out.extend(c.iter().map(|x| if x.is_finite() { *x } else { f64::NAN }));
        }
        Ok(out)
    }

    /// The same values one column at a time, without copying numeric columns
    /// (their non-finite values, which mean missing, are left as they are).
    pub fn column_values<'a>(
        &self,
        table: &'a Table,
    ) -> Result<Vec<std::borrow::Cow<'a, [f64]>>, EncodeError> {
        use std::borrow::Cow;
        let cols = self.columns(table)?;
        Ok(cols
            .iter()
            .zip(&self.codes)
            .map(|(c, code)| match (c, code) {
                (Column::Numeric(v), _) => Cow::Borrowed(v.as_slice()),
                (Column::Categorical(v), ColumnCode::Categorical { levels, has_other }) => {
                    let map: std::collections::HashMap<&str, usize> = levels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i))
                        .collect();
                    Cow::Owned(
                        v.iter()
                            .map(|s| match s {
                                None => f64::NAN,
                                Some(s) => match map.get(s.as_str()) {
                                    Some(&i) => i as f64,
                                    None if *has_other => levels.len() as f64,
                                    None => f64::NAN,
                                },
                            })
                            .collect(),
                    )
                }
                _ => unreachable!("kinds checked"),
            })
            .collect())
    }
}
