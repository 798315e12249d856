//! pipewise's models: binary classifiers over a [`Table`], with calibration,
//! metrics and per-prediction explanations.
//!
//! - [`Classifier`] wraps gradient-boosted trees (perpetual) or the logistic
//!   baseline behind one interface: fit, calibrate on a later window, predict,
//!   explain (per-row log-odds contributions per input column), importance.
//! - [`metrics`] has ROC-AUC, PR-AUC, log loss, Brier, ECE and lift.
//! - [`calibration::Isotonic`] maps raw scores to calibrated probabilities.
//! - [`selection`] drops features with no variation, duplicates and no signal.
//!
//! Nothing here knows about CRMs: the feature engine and the tabular importer
//! produce the tables.

pub mod calibration;
pub mod encode;
pub mod hist;
pub mod logistic;
pub mod metrics;
pub mod selection;
pub mod tabular;

use std::collections::HashSet;

use perpetual::objective::Objective;
use perpetual::{ContributionsMethod, Matrix, PerpetualBooster};
use pipewise_core::Table;
use serde::{Deserialize, Serialize};

pub use calibration::Isotonic;
pub use encode::{EncodeError, Encoder};
pub use logistic::Logistic;
pub use metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("training failed: {0}")]
    Fit(String),
    #[error("cannot train on {0}")]
    Data(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Gradient-boosted trees (perpetual).
    Gbm,
    /// L2-penalised logistic regression.
    Logistic,
    /// Histogram gradient-boosted trees ([`hist`]).
    Hist,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Gbm => "gradient-boosted trees (perpetual)",
            Algorithm::Logistic => "logistic regression (L2)",
            Algorithm::Hist => "histogram gradient-boosted trees",
        }
    }
}

/// Options of [`Classifier::fit`].
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// perpetual's complexity budget.
    pub budget: f32,
    pub seed: u64,
    /// Logistic L2 penalty (on standardised columns).
    pub l2: f64,
    /// Threads for tree training and scoring (`None`: all cores).
    pub threads: Option<usize>,
    /// With row groups (e.g. weekly snapshots of the same deal): trees are
    /// fitted on this many samples of one row per group and averaged, so that
    /// near-duplicate rows never sit on both sides of perpetual's internal
    /// generalisation check.
    pub bags: usize,
    /// Split categorical columns by category sets (perpetual's categorical
    /// support); otherwise their codes (levels by training frequency) are
    /// split as ordered numbers, which is several times faster.
    pub native_categorical: bool,
    /// The histogram learner's settings ([`Algorithm::Hist`]).
    pub hist: hist::HistParams,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            budget: 1.0,
            seed: 42,
            l2: 1.0,
            threads: None,
            bags: 8,
            native_categorical: true,
            hist: hist::HistParams::default(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
enum Inner {
    Gbm {
        encoder: Encoder,
        boosters: Vec<PerpetualBooster>,
    },
    Logistic(Logistic),
    Hist {
        encoder: Encoder,
        models: Vec<hist::HistGbm>,
    },
}

/// A fitted binary classifier.
#[derive(Clone, Serialize, Deserialize)]
pub struct Classifier {
    pub algorithm: Algorithm,
    /// Input columns, in order.
    pub names: Vec<String>,
    inner: Inner,
    pub calibration: Option<Isotonic>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn check_target(y: &[f64]) -> Result<(), ModelError> {
    if y.is_empty() {
        return Err(ModelError::Data("no rows".into()));
    }
    let pos = y.iter().filter(|&&v| v > 0.5).count();
    if pos == 0 || pos == y.len() {
        return Err(ModelError::Data(format!(
            "{} rows that all have the same outcome",
            y.len()
        )));
    }
    Ok(())
}

/// xorshift64*: the seeded generator of bagging and fold assignment (31
/// random bits per call; `state` must be non-zero).
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33
}

/// Fits `fit_one(x, y, rows, seed)` on all rows, or with `groups` on
/// [`FitOptions::bags`] samples of one row per group.
fn bagged<T>(
    x: &[f64],
    n: usize,
    cols: usize,
    y: &[f64],
    groups: Option<&[usize]>,
    opts: &FitOptions,
    fit_one: impl Fn(&[f64], &[f64], usize, u64) -> Result<T, ModelError>,
) -> Result<Vec<T>, ModelError> {
    let Some(g) = groups.filter(|_| opts.bags > 0) else {
        return Ok(vec![fit_one(x, y, n, opts.seed)?]);
    };
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (r, &k) in g.iter().enumerate() {
        members.entry(k).or_default().push(r);
    }
    let mut state = opts.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::new();
    for b in 0..opts.bags {
        let rows: Vec<usize> = members
            .values()
            .map(|m| {
                // A cheap, seeded pick per group.
                m[next_random(&mut state) as usize % m.len()]
            })
            .collect();
        let yb: Vec<f64> = rows.iter().map(|&r| y[r]).collect();
        if check_target(&yb).is_err() {
            continue;
        }
        let mut xb = Vec::with_capacity(rows.len() * cols);
        for j in 0..cols {
            xb.extend(rows.iter().map(|&r| x[j * n + r]));
        }
        out.push(fit_one(&xb, &yb, rows.len(), opts.seed + b as u64)?);
    }
    if out.is_empty() {
        return Err(ModelError::Data(
            "every sample of one row per group has a single outcome".into(),
        ));
    }
    Ok(out)
}

impl Classifier {
    /// Fits on all rows as independent. See [`Classifier::fit_grouped`].
    pub fn fit(
        algorithm: Algorithm,
        table: &Table,
        y: &[f64],
        opts: &FitOptions,
    ) -> Result<Classifier, ModelError> {
        Self::fit_grouped(algorithm, table, y, None, opts)
    }

    /// Fits; `groups` (one id per row) marks rows that are views of the same
    /// thing (snapshots of one deal): trees then train on bags of one row per
    /// group (see [`FitOptions::bags`]).
    pub fn fit_grouped(
        algorithm: Algorithm,
        table: &Table,
        y: &[f64],
        groups: Option<&[usize]>,
        opts: &FitOptions,
    ) -> Result<Classifier, ModelError> {
        check_target(y)?;
        let inner = match algorithm {
            Algorithm::Logistic => Inner::Logistic(Logistic::fit(table, y, opts.l2)?),
            Algorithm::Hist => {
                let encoder = Encoder::fit(table);
                let x = encoder.matrix(table)?;
                let mut params = opts.hist;
                if let Some(t) = opts.threads {
                    params.threads = t;
                }
                let cols = encoder.names.len();
                let models = bagged(&x, table.rows(), cols, y, groups, opts, |x, y, rows, _| {
                    Ok(hist::HistGbm::fit(x, rows, cols, y, params))
                })?;
                Inner::Hist { encoder, models }
            }
            Algorithm::Gbm => {
                let encoder = Encoder::fit(table);
                let x = encoder.matrix(table)?;
                let cols = encoder.names.len();
                let cats: HashSet<usize> = if opts.native_categorical {
                    encoder.categorical_indices().into_iter().collect()
                } else {
                    HashSet::new()
                };
                let boosters = bagged(
                    &x,
                    table.rows(),
                    cols,
                    y,
                    groups,
                    opts,
                    |x, y, rows, seed| {
                        let mut booster = PerpetualBooster::default()
                            .set_objective(Objective::LogLoss)
                            .set_budget(opts.budget)
                            .set_seed(seed)
                            .set_num_threads(opts.threads)
                            .set_categorical_features((!cats.is_empty()).then(|| cats.clone()));
                        // Raw log-odds of the real class balance: calibration follows.
                        booster.cfg.auto_class_weights = false;
                        let m = Matrix::new(x, rows, cols);
                        booster
                            .fit(&m, y, None, None)
                            .map_err(|e| ModelError::Fit(e.to_string()))?;
                        Ok(booster)
                    },
                )?;
                Inner::Gbm { encoder, boosters }
            }
        };
        Ok(Classifier {
            algorithm,
            names: table.names.clone(),
            inner,
            calibration: None,
        })
    }

    /// Uncalibrated log-odds.
    pub fn logits(&self, table: &Table) -> Result<Vec<f64>, ModelError> {
        Ok(match &self.inner {
            Inner::Logistic(l) => l.logits(table)?,
            Inner::Hist { encoder, models } => {
                let values = encoder.column_values(table)?;
                let cols: Vec<&[f64]> = values.iter().map(|c| c.as_ref()).collect();
                let mut z = vec![0.0; table.rows()];
                for m in models {
                    for (zi, v) in z.iter_mut().zip(m.logits_of_columns(&cols, table.rows())) {
                        *zi += v / models.len() as f64;
                    }
                }
                z
            }
            Inner::Gbm { encoder, boosters } => {
                let x = encoder.matrix(table)?;
                let m = Matrix::new(&x, table.rows(), encoder.names.len());
                let mut z = vec![0.0; table.rows()];
                for b in boosters {
                    for (zi, p) in z.iter_mut().zip(b.predict(&m, true)) {
                        *zi += p / boosters.len() as f64;
                    }
                }
                z
            }
        })
    }

    /// Fits the isotonic map from this model's scores to outcomes on `table`
    /// (a window after the training window).
    pub fn calibrate(&mut self, table: &Table, y: &[f64]) -> Result<(), ModelError> {
        let p: Vec<f64> = self.logits(table)?.into_iter().map(sigmoid).collect();
        self.calibration = Some(Isotonic::fit(&p, y));
        Ok(())
    }

    /// Probabilities (calibrated when calibrated).
    pub fn predict(&self, table: &Table) -> Result<Vec<f64>, ModelError> {
        let raw = self.logits(table)?;
        Ok(raw
            .into_iter()
            .map(|z| {
                let p = sigmoid(z);
                self.calibration.as_ref().map_or(p, |c| c.apply(p))
            })
            .collect())
    }

    /// Per row, each input column's contribution to the log-odds: for trees
    /// the path contributions (each split's change of the node mean, summed per
    /// feature, averaged over bags; they add up to the log-odds exactly and
    /// cost one pass down each tree); for the logistic model coefficient ×
    /// standardised value.
    pub fn contributions(&self, table: &Table) -> Result<Vec<Vec<f64>>, ModelError> {
        Ok(match &self.inner {
            Inner::Logistic(l) => l.contributions(table)?,
            Inner::Hist { encoder, models } => {
                let x = encoder.matrix(table)?;
                let mut out = vec![vec![0.0; encoder.names.len()]; table.rows()];
                for m in models {
                    for (o, c) in out.iter_mut().zip(m.contributions(&x, table.rows())) {
                        for (a, b) in o.iter_mut().zip(c) {
                            *a += b / models.len() as f64;
                        }
                    }
                }
                out
            }
            Inner::Gbm { encoder, boosters } => {
                let x = encoder.matrix(table)?;
                let cols = encoder.names.len();
                let m = Matrix::new(&x, table.rows(), cols);
                let mut out = vec![vec![0.0; cols]; table.rows()];
                for b in boosters {
                    let flat = b.predict_contributions(&m, ContributionsMethod::Average, true);
                    for (row, c) in out.iter_mut().zip(flat.chunks(cols + 1)) {
                        for (o, v) in row.iter_mut().zip(c) {
                            *o += v / boosters.len() as f64;
                        }
                    }
                }
                out
            }
        })
    }

    /// Global importance per input column, normalised to sum to 1.
    pub fn importance(&self) -> Vec<f64> {
        let raw: Vec<f64> = match &self.inner {
            Inner::Logistic(l) => l.importance(),
            Inner::Hist { models, .. } => {
                let mut g = vec![0.0; models[0].features];
                for m in models {
                    for (a, b) in g.iter_mut().zip(m.gain()) {
                        *a += b;
                    }
                }
                g
            }
            Inner::Gbm { encoder, boosters } => {
                let mut imp = vec![0.0; encoder.names.len()];
                for b in boosters {
                    let map = b.calculate_feature_importance(
                        perpetual::booster::config::ImportanceMethod::TotalGain,
                        false,
                    );
                    for (j, v) in imp.iter_mut().enumerate() {
                        *v += f64::from(*map.get(&j).unwrap_or(&0.0));
                    }
                }
                imp
            }
        };
        let total: f64 = raw.iter().sum();
        raw.iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect()
    }

    /// Number of trees (GBM) or terms (logistic), for model cards.
    pub fn size(&self) -> usize {
        match &self.inner {
            Inner::Logistic(l) => l.coef.len(),
            Inner::Hist { models, .. } => models.iter().map(|m| m.trees()).sum(),
            Inner::Gbm { boosters, .. } => boosters
                .iter()
                .map(|b| b.get_prediction_trees().len())
                .sum(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a model serialises")
    }
    pub fn from_json(s: &str) -> Result<Classifier, serde_json::Error> {
        serde_json::from_str(s)
    }
}
