//! Feature selection: which columns to drop before training, and why.

use pipewise_core::{Column, Table};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dropped {
    pub feature: String,
    pub reason: String,
}

/// Columns with no variation (one value in at least 99.5% of rows, missing
/// counted as a value) and columns that duplicate an earlier one (numbers with
/// |Pearson r| ≥ 0.99 over rows where both are present and the same missing
/// pattern; categories that split the rows identically).
pub fn screen(table: &Table) -> Vec<Dropped> {
    let n = table.rows();
    let mut out = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    for (j, c) in table.columns.iter().enumerate() {
        let name = &table.names[j];
        if let Some(share) = dominant_share(c) {
            if n > 0 && share >= 0.995 {
                out.push(Dropped {
                    feature: name.clone(),
                    reason: format!("no variation: one value in {:.1}% of rows", share * 100.0),
                });
                continue;
            }
        }
        if let Some(&k) = kept.iter().find(|&&k| duplicates(&table.columns[k], c)) {
            out.push(Dropped {
                feature: name.clone(),
                reason: format!("duplicates {}", table.names[k]),
            });
            continue;
        }
        kept.push(j);
    }
    out
}

/// Columns the fitted model never used (zero importance): no signal.
pub fn unused(names: &[String], importance: &[f64]) -> Vec<Dropped> {
    names
        .iter()
        .zip(importance)
        .filter(|(_, v)| **v <= 0.0)
        .map(|(n, _)| Dropped {
            feature: n.clone(),
            reason: "no signal: the model never split on it".into(),
        })
        .collect()
}

fn dominant_share(c: &Column) -> Option<f64> {
    let n = c.len();
    if n == 0 {
        return None;
    }
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for i in 0..n {
        *counts.entry(c.display(i).unwrap_or_default()).or_default() += 1;
    }
    counts.values().max().map(|&m| m as f64 / n as f64)
}

fn duplicates(a: &Column, b: &Column) -> bool {
    match (a, b) {
        (Column::Numeric(x), Column::Numeric(y)) => {
            if x.iter().zip(y).any(|(a, b)| a.is_finite() != b.is_finite()) {
                return false;
            }
            let pairs: Vec<(f64, f64)> = x
                .iter()
                .zip(y)
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .map(|(a, b)| (*a, *b))
                .collect();
            if pairs.len() < 2 {
                return false;
            }
            let k = pairs.len() as f64;
            let (mx, my) = pairs
                .iter()
                .fold((0.0, 0.0), |s, p| (s.0 + p.0 / k, s.1 + p.1 / k));
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for (a, b) in &pairs {
                sxy += (a - mx) * (b - my);
                sxx += (a - mx).powi(2);
                syy += (b - my).powi(2);
            }
            sxx > 0.0 && syy > 0.0 && (sxy / (sxx * syy).sqrt()).abs() >= 0.99
        }
        (Column::Categorical(x), Column::Categorical(y)) => {
            // Same partition: a bijection between the levels.
            let mut fwd: std::collections::HashMap<&Option<String>, &Option<String>> =
                Default::default();
            let mut back: std::collections::HashMap<&Option<String>, &Option<String>> =
                Default::default();
            x.iter()
                .zip(y)
                .all(|(a, b)| *fwd.entry(a).or_insert(b) == b && *back.entry(b).or_insert(a) == a)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_constants_and_duplicates() {
        let mut t = Table::default();
        let x: Vec<f64> = (0..400).map(|i| (i % 17) as f64).collect();
        t.push("x", Column::Numeric(x.clone()));
        t.push(
            "x_times_3",
            Column::Numeric(x.iter().map(|v| 3.0 * v + 1.0).collect()),
        );
        t.push("constant", Column::Numeric(vec![1.0; 400]));
        let c: Vec<Option<String>> = (0..400).map(|i| Some(format!("c{}", i % 3))).collect();
        let d: Vec<Option<String>> = (0..400)
            .map(|i| Some(format!("d{}", (i % 3) * 7)))
            .collect();
        t.push("cat", Column::Categorical(c));
        t.push("cat_renamed", Column::Categorical(d));
        let dropped = screen(&t);
        let names: Vec<&str> = dropped.iter().map(|d| d.feature.as_str()).collect();
        assert_eq!(names, ["x_times_3", "constant", "cat_renamed"]);
        assert_eq!(dropped[0].reason, "duplicates x");
    }
}
