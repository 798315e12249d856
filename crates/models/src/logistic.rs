//! The logistic regression baseline: L2-penalised, fitted by Newton's method on a
//! standardised design (median-imputed numbers with missing indicators, one-hot
//! categories), so its coefficients read as log-odds per standard deviation.

use pipewise_core::{Column, Table};
use serde::{Deserialize, Serialize};

use crate::encode::{EncodeError, Encoder};

/// One-hot at most this many levels per category (the rest: all zeros).
const MAX_ONE_HOT: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Term {
    /// (input column, median, mean, sd) of the imputed value.
    Value(usize, f64, f64, f64),
    /// (input column, mean, sd) of its missing indicator.
    Missing(usize, f64, f64),
    /// (input column, level, mean, sd) of a level indicator.
    Level(usize, String, f64, f64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logistic {
    pub encoder: Encoder,
    terms: Vec<Term>,
    pub intercept: f64,
    pub coef: Vec<f64>,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

fn median(v: &[f64]) -> f64 {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return 0.0;
    }
    f.sort_by(f64::total_cmp);
    f[f.len() / 2]
}

impl Logistic {
    fn term_values(&self, term: &Term, cols: &[&Column]) -> Vec<f64> {
        raw_term(term, cols)
    }

    /// The standardised design, column by column.
    fn design(&self, cols: &[&Column]) -> Vec<Vec<f64>> {
        self.terms
            .iter()
            .map(|t| {
                let (m, sd) = match t {
                    Term::Value(_, _, m, sd)
                    | Term::Missing(_, m, sd)
                    | Term::Level(_, _, m, sd) => (*m, *sd),
                };
                self.term_values(t, cols)
                    .into_iter()
                    .map(|x| ((x - m) / sd).clamp(-5.0, 5.0))
                    .collect()
            })
            .collect()
    }

    pub fn fit(table: &Table, y: &[f64], l2: f64) -> Result<Logistic, EncodeError> {
        let encoder = Encoder::fit(table);
        let cols = encoder.columns(table)?;
        let mut terms = Vec::new();
        for (j, c) in cols.iter().enumerate() {
            match c {
                Column::Numeric(v) => {
                    let med = median(v);
                    let t = Term::Value(j, med, 0.0, 1.0);
                    let (m, sd) = mean_sd(&raw_term(&t, &cols));
                    if sd > 0.0 {
                        terms.push(Term::Value(j, med, m, sd));
                    }
                    let t = Term::Missing(j, 0.0, 1.0);
                    let (m, sd) = mean_sd(&raw_term(&t, &cols));
                    if sd > 0.0 {
                        terms.push(Term::Missing(j, m, sd));
                    }
                }
                Column::Categorical(_) => {
                    if let crate::encode::ColumnCode::Categorical { levels, .. } = &encoder.codes[j]
                    {
                        for l in levels.iter().take(MAX_ONE_HOT) {
                            let t = Term::Level(j, l.clone(), 0.0, 1.0);
                            let (m, sd) = mean_sd(&raw_term(&t, &cols));
                            if sd > 0.0 {
                                terms.push(Term::Level(j, l.clone(), m, sd));
                            }
                        }
                    }
                }
            }
        }
        let mut model = Logistic {
            encoder,
            terms,
            intercept: 0.0,
            coef: Vec::new(),
        };
        let x = model.design(&cols);
        let (b0, b) = newton(&x, y, l2);
        model.intercept = b0;
        model.coef = b;
        Ok(model)
    }

    /// Log-odds per row.
    pub fn logits(&self, table: &Table) -> Result<Vec<f64>, EncodeError> {
        let cols = self.encoder.columns(table)?;
        let x = self.design(&cols);
        let n = table.rows();
        let mut z = vec![self.intercept; n];
        for (col, b) in x.iter().zip(&self.coef) {
            for (zi, xi) in z.iter_mut().zip(col) {
                *zi += b * xi;
            }
        }
        Ok(z)
    }

    /// Per row, the log-odds contribution of each input column (relative to
    /// the training mean), row-major `rows × inputs`.
    pub fn contributions(&self, table: &Table) -> Result<Vec<Vec<f64>>, EncodeError> {
        let cols = self.encoder.columns(table)?;
        let x = self.design(&cols);
        let n = table.rows();
        let mut out = vec![vec![0.0; cols.len()]; n];
        for ((t, col), b) in self.terms.iter().zip(&x).zip(&self.coef) {
            let j = match t {
                Term::Value(j, ..) | Term::Missing(j, ..) | Term::Level(j, ..) => *j,
            };
            for (row, xi) in out.iter_mut().zip(col) {
                row[j] += b * xi;
            }
        }
        Ok(out)
    }

    /// |coefficient| summed per input column.
    pub fn importance(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.encoder.names.len()];
        for (t, b) in self.terms.iter().zip(&self.coef) {
            let j = match t {
                Term::Value(j, ..) | Term::Missing(j, ..) | Term::Level(j, ..) => *j,
            };
            imp[j] += b.abs();
        }
        imp
    }
}

fn raw_term(term: &Term, cols: &[&Column]) -> Vec<f64> {
    match term {
        Term::Value(j, med, ..) => match cols[*j] {
            Column::Numeric(v) => v
                .iter()
                .map(|x| if x.is_finite() { *x } else { *med })
                .collect(),
            Column::Categorical(_) => unreachable!(),
        },
        Term::Missing(j, ..) => match cols[*j] {
            Column::Numeric(v) => v
                .iter()
                .map(|x| f64::from(u8::from(!x.is_finite())))
                .collect(),
            Column::Categorical(_) => unreachable!(),
        },
        Term::Level(j, l, ..) => match cols[*j] {
            Column::Categorical(v) => v
                .iter()
                .map(|s| f64::from(u8::from(s.as_deref() == Some(l.as_str()))))
                .collect(),
            Column::Numeric(_) => unreachable!(),
        },
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Newton-Raphson for L2-penalised logistic regression (intercept unpenalised).
fn newton(x: &[Vec<f64>], y: &[f64], l2: f64) -> (f64, Vec<f64>) {
    let p = x.len() + 1;
    let n = y.len();
    let mut beta = vec![0.0; p];
    let ybar = (y.iter().sum::<f64>() / n.max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
    beta[0] = (ybar / (1.0 - ybar)).ln();
    let col = |k: usize, i: usize| if k == 0 { 1.0 } else { x[k - 1][i] };
    for _ in 0..25 {
        let mut grad = vec![0.0; p];
        let mut hess = vec![vec![0.0; p]; p];
        for i in 0..n {
            let z: f64 = (0..p).map(|k| beta[k] * col(k, i)).sum();
            let mu = sigmoid(z);
            let w = (mu * (1.0 - mu)).max(1e-9);
            let r = y[i] - mu;
            for a in 0..p {
                let xa = col(a, i);
                grad[a] += r * xa;
                for b in a..p {
                    hess[a][b] += w * xa * col(b, i);
                }
            }
        }
        for a in 1..p {
            grad[a] -= l2 * beta[a];
            hess[a][a] += l2;
        }
        for a in 0..p {
            for b in 0..a {
                hess[a][b] = hess[b][a];
            }
        }
        let step = solve(hess, grad);
        let mut change: f64 = 0.0;
        for k in 0..p {
            beta[k] += step[k];
            change = change.max(step[k].abs());
        }
        if change < 1e-7 {
            break;
        }
    }
    (beta[0], beta[1..].to_vec())
}

/// Solves a symmetric positive-definite system by Cholesky.
fn solve(mut a: Vec<Vec<f64>>, b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        let d = d.max(1e-12).sqrt();
        a[j][j] = d;
        for i in j + 1..n {
            let mut s = a[i][j];
            for k in 0..j {
                s -= a[i][k] * a[j][k];
            }
            a[i][j] = s / d;
        }
    }
    let mut z = b;
    for i in 0..n {
        for k in 0..i {
            z[i] -= a[i][k] * z[k];
        }
        z[i] /= a[i][i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= a[k][i] * z[k];
        }
        z[i] /= a[i][i];
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_coefficients() {
        // y ~ Bernoulli(sigmoid(-0.5 + 1.5 x)), x ~ U(-2, 2) on a grid.
        let n = 4000;
        let x: Vec<f64> = (0..n)
            .map(|i| -2.0 + 4.0 * (i as f64 + 0.5) / n as f64)
            .collect();
        // Deterministic "draws": a low-discrepancy sequence against the probability.
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let u = (i as f64 * 0.618_033_988_75).fract();
                f64::from(u8::from(u < sigmoid(-0.5 + 1.5 * x)))
            })
            .collect();
        let mut t = Table::default();
        t.push("x", Column::Numeric(x.clone()));
        let m = Logistic::fit(&t, &y, 1e-6).unwrap();
        let (mean, sd) = mean_sd(&x);
        let slope = m.coef[0] / sd;
        let icpt = m.intercept - m.coef[0] * mean / sd;
        assert!((slope - 1.5).abs() < 0.15, "{slope}");
        assert!((icpt + 0.5).abs() < 0.15, "{icpt}");
    }
}
