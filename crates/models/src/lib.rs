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
    /// With groups and bags: the groups are dealt into this many folds and bag
    /// `b` leaves out fold `b % oob_folds`, so every row has out-of-bag
    /// predictions ([`Classifier::fit_grouped_oob`]) from models that never
    /// saw its group. 0: every bag holds every group.
    pub oob_folds: usize,
    /// Split categorical columns by category sets (perpetual's categorical
    /// support); otherwise their codes (levels by training frequency) are
    /// split as ordered numbers, which is several times faster.
    pub native_categorical: bool,
    /// The histogram learner's settings ([`Algorithm::Hist`]).
    pub hist: hist::HistParams,
    /// Monotone constraints by column name for the histogram learner: +1
    /// the log-odds never fall as the column rises, -1 never rise, 0 free
    /// (see [`hist`]). Categorical columns are never constrained.
    pub monotone: Option<fn(&str) -> i8>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            budget: 1.0,
            seed: 42,
            l2: 1.0,
            threads: None,
            bags: 8,
            oob_folds: 0,
            native_categorical: true,
            hist: hist::HistParams::default(),
            monotone: None,
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
    /// The reference row of the explanations (histogram trees): per input
    /// column, the training rows' median (numeric) or most frequent level
    /// (categorical), or missing when most training rows miss it. `None`
    /// for other learners and models saved before it existed.
    #[serde(default, with = "missing_as_null")]
    reference: Option<Vec<f64>>,
}

/// A row with missing (NaN) values as JSON: NaN written as `null`.
mod missing_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|r| {
                r.iter()
                    .map(|x| x.is_finite().then_some(*x))
                    .collect::<Vec<_>>()
            })
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        let v: Option<Vec<Option<f64>>> = Option::deserialize(d)?;
        Ok(v.map(|r| r.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
    }
}

/// The reference row of an encoded column-major matrix (`n` rows): per
/// column the median of the present values, the most frequent code for a
/// categorical column, NaN when more than half the rows miss the column.
fn reference_row(x: &[f64], n: usize, encoder: &Encoder) -> Vec<f64> {
    let categorical: HashSet<usize> = encoder.categorical_indices().into_iter().collect();
    (0..encoder.names.len())
        .map(|j| {
            let mut v: Vec<f64> = x[j * n..(j + 1) * n]
                .iter()
                .copied()
                .filter(|v| !v.is_nan())
                .collect();
            if v.len() * 2 < n || v.is_empty() {
                return f64::NAN;
            }
            v.sort_by(f64::total_cmp);
            if categorical.contains(&j) {
                // The longest run of one code.
                let (mut best, mut best_len, mut i) = (v[0], 0, 0);
                while i < v.len() {
                    let k = v[i..].iter().take_while(|&&c| c == v[i]).count();
                    if k > best_len {
                        (best, best_len) = (v[i], k);
                    }
                    i += k;
                }
                best
            } else {
                v[v.len() / 2]
            }
        })
        .collect()
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

/// The generator state of a seed.
fn seeded(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Each row's fold when the distinct `groups` are dealt into `k` folds
/// (shuffled with `state`, then round-robin: folds of equal size).
fn group_folds(groups: &[usize], k: usize, state: &mut u64) -> Vec<usize> {
    let mut distinct: Vec<usize> = groups.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    for i in (1..distinct.len()).rev() {
        distinct.swap(i, next_random(state) as usize % (i + 1));
    }
    let fold: std::collections::HashMap<usize, usize> = distinct
        .iter()
        .enumerate()
        .map(|(pos, &g)| (g, pos % k.max(1)))
        .collect();
    groups.iter().map(|g| fold[g]).collect()
}

/// Models fitted on bags, and for out-of-bag folds each row's fold and each
/// model's left-out fold.
struct Bagged<T> {
    models: Vec<T>,
    /// (fold of each row, fold left out by each model).
    folds: Option<(Vec<usize>, Vec<usize>)>,
}

/// Fits `fit_one(x, y, rows, seed)` on all rows, or with `groups` on
/// [`FitOptions::bags`] samples of one row per group (leaving out one of
/// [`FitOptions::oob_folds`] folds of groups per bag).
fn bagged<T>(
    x: &[f64],
    n: usize,
    cols: usize,
    y: &[f64],
    groups: Option<&[usize]>,
    opts: &FitOptions,
    fit_one: impl Fn(&[f64], &[f64], usize, u64) -> Result<T, ModelError>,
) -> Result<Bagged<T>, ModelError> {
    let Some(g) = groups.filter(|_| opts.bags > 0) else {
        return Ok(Bagged {
            models: vec![fit_one(x, y, n, opts.seed)?],
            folds: None,
        });
    };
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (r, &k) in g.iter().enumerate() {
        members.entry(k).or_default().push(r);
    }
    let mut state = seeded(opts.seed);
    let k = opts.oob_folds.min(opts.bags);
    let row_fold = if k > 1 {
        group_folds(g, k, &mut state)
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for b in 0..opts.bags {
        let skip = (k > 1).then(|| b % k);
        let rows: Vec<usize> = members
            .values()
            .filter(|m| skip.is_none_or(|s| row_fold[m[0]] != s))
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
        left_out.push(skip.unwrap_or(usize::MAX));
    }
    if out.is_empty() {
        return Err(ModelError::Data(
            "every sample of one row per group has a single outcome".into(),
        ));
    }
    let folds = (k > 1).then_some((row_fold, left_out));
    Ok(Bagged { models: out, folds })
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
        Ok(Self::fit_bagged(algorithm, table, y, groups, opts)?.0)
    }

    /// Fits on all rows and calibrates on out-of-fold scores: the groups
    /// (deals) are dealt into `folds` folds, and each row is scored by models
    /// that never saw its group, as a new deal would be. Trees get these for
    /// free from their bags (bag `b` leaves out fold `b % folds`; the row's
    /// score is the mean of those bags); the logistic model is refitted
    /// once per fold. The isotonic map is fitted on those scores; the model
    /// returned is the one fitted on every row. Also returns the out-of-fold
    /// log-odds (NaN where no model left the row out).
    pub fn fit_cross_calibrated(
        algorithm: Algorithm,
        table: &Table,
        y: &[f64],
        groups: &[usize],
        folds: usize,
        opts: &FitOptions,
    ) -> Result<(Classifier, Vec<f64>), ModelError> {
        if folds < 2 {
            return Err(ModelError::Data(format!(
                "out-of-fold scores need at least 2 folds (got {folds})"
            )));
        }
        let (mut model, oof) = match algorithm {
            Algorithm::Logistic => {
                let fold = group_folds(groups, folds, &mut seeded(opts.seed));
                let mut oof = vec![f64::NAN; y.len()];
                for k in 0..folds {
                    let (fit_rows, out_rows): (Vec<usize>, Vec<usize>) =
                        (0..y.len()).partition(|&r| fold[r] != k);
                    let yk: Vec<f64> = fit_rows.iter().map(|&r| y[r]).collect();
                    if out_rows.is_empty() || check_target(&yk).is_err() {
                        continue;
                    }
                    let m = Self::fit(algorithm, &table.take(&fit_rows), &yk, opts)?;
                    for (z, r) in m.logits(&table.take(&out_rows))?.into_iter().zip(out_rows) {
                        oof[r] = z;
                    }
                }
                (Self::fit(algorithm, table, y, opts)?, oof)
            }
            _ => Self::fit_grouped_oob(algorithm, table, y, groups, folds, opts)?,
        };
        model.calibrate_logits(&oof, y);
        Ok((model, oof))
    }

    /// Fits as [`Classifier::fit_grouped`] with the groups dealt into
    /// `folds` folds (each bag leaves one out), and returns with the model
    /// each row's out-of-bag log-odds: the mean over the bags that never saw
    /// the row's group.
    fn fit_grouped_oob(
        algorithm: Algorithm,
        table: &Table,
        y: &[f64],
        groups: &[usize],
        folds: usize,
        opts: &FitOptions,
    ) -> Result<(Classifier, Vec<f64>), ModelError> {
        if opts.bags < folds {
            return Err(ModelError::Data(format!(
                "out-of-fold scores from trees need a bag per fold (got {folds} folds, {} bags)",
                opts.bags
            )));
        }
        let opts = FitOptions {
            oob_folds: folds,
            ..*opts
        };
        let (model, bag_folds) = Self::fit_bagged(algorithm, table, y, Some(groups), &opts)?;
        let (row_fold, left_out) = bag_folds.expect("folds were asked for");
        let per_model = model.model_logits(table)?;
        let mut sum = vec![0.0; table.rows()];
        let mut count = vec![0usize; table.rows()];
        for (z, &skip) in per_model.iter().zip(&left_out) {
            for r in 0..table.rows() {
                if row_fold[r] == skip {
                    sum[r] += z[r];
                    count[r] += 1;
                }
            }
        }
        let oob = sum
            .iter()
            .zip(&count)
            .map(|(s, &c)| if c > 0 { s / c as f64 } else { f64::NAN })
            .collect();
        Ok((model, oob))
    }

    #[allow(clippy::type_complexity)]
    fn fit_bagged(
        algorithm: Algorithm,
        table: &Table,
        y: &[f64],
        groups: Option<&[usize]>,
        opts: &FitOptions,
    ) -> Result<(Classifier, Option<(Vec<usize>, Vec<usize>)>), ModelError> {
        check_target(y)?;
        let mut reference = None;
        let (inner, folds) = match algorithm {
            Algorithm::Logistic => (Inner::Logistic(Logistic::fit(table, y, opts.l2)?), None),
            Algorithm::Hist => {
                let encoder = Encoder::fit(table);
                let x = encoder.matrix(table)?;
                let mut params = opts.hist;
                if let Some(t) = opts.threads {
                    params.threads = t;
                }
                let cols = encoder.names.len();
                let categorical: HashSet<usize> =
                    encoder.categorical_indices().into_iter().collect();
                let monotone: Vec<i8> = match opts.monotone {
                    Some(dir) => (0..cols)
                        .map(|j| {
                            if categorical.contains(&j) {
                                0
                            } else {
                                dir(&encoder.names[j]).signum()
                            }
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let b = bagged(&x, table.rows(), cols, y, groups, opts, |x, y, rows, _| {
                    Ok(hist::HistGbm::fit_monotone(
                        x, rows, cols, y, params, &monotone,
                    ))
                })?;
                reference = Some(reference_row(&x, table.rows(), &encoder));
                (
                    Inner::Hist {
                        encoder,
                        models: b.models,
                    },
                    b.folds,
                )
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
                let b = bagged(
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
                (
                    Inner::Gbm {
                        encoder,
                        boosters: b.models,
                    },
                    b.folds,
                )
            }
        };
        Ok((
            Classifier {
                algorithm,
                names: table.names.clone(),
                inner,
                calibration: None,
                reference,
            },
            folds,
        ))
    }

    /// Each bagged model's uncalibrated log-odds (one model for the logistic).
    fn model_logits(&self, table: &Table) -> Result<Vec<Vec<f64>>, ModelError> {
        Ok(match &self.inner {
            Inner::Logistic(l) => vec![l.logits(table)?],
            Inner::Hist { encoder, models } => {
                let values = encoder.column_values(table)?;
                let cols: Vec<&[f64]> = values.iter().map(|c| c.as_ref()).collect();
                models
                    .iter()
                    .map(|m| m.logits_of_columns(&cols, table.rows()))
                    .collect()
            }
            Inner::Gbm { encoder, boosters } => {
                let x = encoder.matrix(table)?;
                let m = Matrix::new(&x, table.rows(), encoder.names.len());
                boosters.iter().map(|b| b.predict(&m, true)).collect()
            }
        })
    }

    /// Uncalibrated log-odds (the mean over the bagged models).
    pub fn logits(&self, table: &Table) -> Result<Vec<f64>, ModelError> {
        let per_model = self.model_logits(table)?;
        let mut z = vec![0.0; table.rows()];
        for m in &per_model {
            for (zi, v) in z.iter_mut().zip(m) {
                *zi += v / per_model.len() as f64;
            }
        }
        Ok(z)
    }

    /// Fits the isotonic map from this model's scores to outcomes on `table`
    /// (a window after the training window).
    pub fn calibrate(&mut self, table: &Table, y: &[f64]) -> Result<(), ModelError> {
        let z = self.logits(table)?;
        self.calibrate_logits(&z, y);
        Ok(())
    }

    /// Fits the isotonic map from given log-odds of this model (e.g. its
    /// out-of-bag ones) to outcomes; rows with a missing score are skipped.
    pub fn calibrate_logits(&mut self, z: &[f64], y: &[f64]) {
        let (p, y): (Vec<f64>, Vec<f64>) = z
            .iter()
            .zip(y)
            .filter(|(z, _)| z.is_finite())
            .map(|(z, y)| (sigmoid(*z), *y))
            .unzip();
        self.calibration = Some(Isotonic::fit(&p, &y));
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

    /// Per row, each input column's contribution to the log-odds (shape:
    /// rows × [`Classifier::names`]). For histogram trees fitted with a
    /// reference row: baseline Shapley values against it
    /// ([`hist::HistGbm::shapley_against`], averaged over bags), which add
    /// up to the row's log-odds minus the reference's
    /// ([`Classifier::reference_logit`]) and respect the monotone
    /// constraints' signs. For perpetual's trees and older models: path
    /// contributions (each split's change of the node mean; they add up to
    /// the log-odds minus the trees' mean). For the logistic model:
    /// coefficient × standardised value.
    pub fn contributions(&self, table: &Table) -> Result<Vec<Vec<f64>>, ModelError> {
        Ok(match &self.inner {
            Inner::Logistic(l) => l.contributions(table)?,
            Inner::Hist { encoder, models } => {
                let x = encoder.matrix(table)?;
                let mut out = vec![vec![0.0; encoder.names.len()]; table.rows()];
                for m in models {
                    let c = match &self.reference {
                        Some(r) => m.shapley_against(&x, table.rows(), r),
                        None => m.contributions(&x, table.rows()),
                    };
                    for (o, c) in out.iter_mut().zip(c) {
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

    /// The uncalibrated log-odds of the reference row the contributions are
    /// measured from (a typical training row), when there is one.
    pub fn reference_logit(&self) -> Option<f64> {
        let (Inner::Hist { models, .. }, Some(r)) = (&self.inner, &self.reference) else {
            return None;
        };
        let z: f64 = models.iter().map(|m| m.logits(r, 1)[0]).sum();
        Some(z / models.len() as f64)
    }

    /// For each row of `table`, the change of the uncalibrated log-odds when
    /// the input columns `remove[row]` (indices into [`Classifier::names`])
    /// are set to the reference row's values: what "without these factors"
    /// would score, to check the factors against. `None` for a model
    /// without a reference row.
    pub fn removal_effects(
        &self,
        table: &Table,
        remove: &[Vec<usize>],
    ) -> Result<Option<Vec<f64>>, ModelError> {
        let (Inner::Hist { encoder, models }, Some(r)) = (&self.inner, &self.reference) else {
            return Ok(None);
        };
        assert_eq!(remove.len(), table.rows(), "one list of columns per row");
        let n = table.rows();
        let x = encoder.matrix(table)?;
        let mut moved = x.clone();
        for (row, cols) in remove.iter().enumerate() {
            for &j in cols {
                moved[j * n + row] = r[j];
            }
        }
        let mut out = vec![0.0; n];
        for m in models {
            let (before, after) = (m.logits(&x, n), m.logits(&moved, n));
            for ((o, b), a) in out.iter_mut().zip(before).zip(after) {
                *o += (a - b) / models.len() as f64;
            }
        }
        Ok(Some(out))
    }

    /// The (calibrated) probability of the reference row: the typical
    /// deal the explanations start from.
    pub fn reference_probability(&self) -> Option<f64> {
        self.reference_logit().map(|z| {
            let p = sigmoid(z);
            self.calibration.as_ref().map_or(p, |c| c.apply(p))
        })
    }

    /// The reference row (encoded: categorical columns as codes), when
    /// there is one.
    pub fn reference(&self) -> Option<&[f64]> {
        self.reference.as_deref()
    }

    /// The monotone constraint of each input column (+1, -1, 0) for
    /// histogram trees fitted with constraints; empty otherwise.
    pub fn monotone(&self) -> Vec<i8> {
        match &self.inner {
            Inner::Hist { models, .. } => models[0].monotone().to_vec(),
            _ => Vec::new(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use pipewise_core::Column;

    /// 400 groups of 5 rows; each group has its own random value of `g` and
    /// a random outcome that nothing predicts.
    fn noise_groups(seed: u64) -> (Table, Vec<f64>, Vec<usize>) {
        let mut state = seed | 1;
        let mut rnd = || next_random(&mut state) as f64 / (1u64 << 31) as f64;
        let (mut g, mut x, mut y, mut groups) = (vec![], vec![], vec![], vec![]);
        for k in 0..400 {
            let (gv, yv) = (rnd(), f64::from(rnd() < 0.5));
            for _ in 0..5 {
                g.push(gv);
                x.push(rnd());
                y.push(yv);
                groups.push(k);
            }
        }
        let mut t = Table::default();
        t.push("g", Column::Numeric(g));
        t.push("x", Column::Numeric(x));
        (t, y, groups)
    }

    #[test]
    fn out_of_fold_scores_never_come_from_a_model_that_saw_the_group() {
        let (t, y, groups) = noise_groups(7);
        let opts = FitOptions {
            hist: hist::HistParams {
                min_data_in_leaf: 3,
                ..Default::default()
            },
            ..FitOptions::default()
        };
        let (model, oof) =
            Classifier::fit_cross_calibrated(Algorithm::Hist, &t, &y, &groups, 4, &opts).unwrap();
        assert!(oof.iter().all(|z| z.is_finite()));
        // The trees memorise the groups they saw (g is unique per group) ...
        let seen = metrics::roc_auc(&model.logits(&t).unwrap(), &y);
        assert!(seen > 0.75, "in-sample AUC {seen}");
        // ... but the out-of-fold scores know nothing, as on new groups.
        let held_out = metrics::roc_auc(&oof, &y);
        assert!((held_out - 0.5).abs() < 0.08, "out-of-fold AUC {held_out}");
        // So the calibration learnt from them keeps new groups near the base
        // rate instead of trusting the memorised scores.
        let (fresh, fresh_y, _) = noise_groups(99);
        let p = model.predict(&fresh).unwrap();
        let mean_dev = p.iter().map(|p| (p - 0.5).abs()).sum::<f64>() / p.len() as f64;
        assert!(
            mean_dev < 0.1,
            "calibrated scores stray {mean_dev} from 0.5"
        );
        assert!(metrics::ece(&p, &fresh_y, 10) < 0.08);
        // The logistic model is refitted per fold.
        let (_, oof) =
            Classifier::fit_cross_calibrated(Algorithm::Logistic, &t, &y, &groups, 4, &opts)
                .unwrap();
        assert!(oof.iter().all(|z| z.is_finite()));
        // Trees need a bag per fold.
        let few = FitOptions { bags: 2, ..opts };
        assert!(
            Classifier::fit_cross_calibrated(Algorithm::Hist, &t, &y, &groups, 4, &few).is_err()
        );
    }

    /// The reference row the explanations are measured from: medians, the
    /// most frequent level, missing for a mostly missing column; it
    /// survives saving, and the contributions add up against it.
    #[test]
    fn contributions_are_measured_from_a_typical_row_that_survives_saving() {
        let (mut t, y, _) = noise_groups(3);
        let n = t.rows();
        let sparse: Vec<f64> = (0..n)
            .map(|r| if r % 3 == 0 { r as f64 } else { f64::NAN })
            .collect();
        t.push("sparse", Column::Numeric(sparse));
        let level: Vec<Option<String>> = (0..n)
            .map(|r| Some(if r % 4 == 0 { "b" } else { "a" }.to_string()))
            .collect();
        t.push("level", Column::Categorical(level));
        let opts = FitOptions {
            bags: 2,
            hist: hist::HistParams {
                min_data_in_leaf: 5,
                iterations: 20,
                ..Default::default()
            },
            ..FitOptions::default()
        };
        let m = Classifier::fit(Algorithm::Hist, &t, &y, &opts).unwrap();
        let r = m.reference().unwrap().to_vec();
        let median = |c: &str| {
            let Some(Column::Numeric(v)) = t.column(c) else {
                unreachable!()
            };
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        assert_eq!(r[0], median("g"));
        assert!(r[2].is_nan(), "two thirds missing: missing");
        assert_eq!(r[3], 0.0, "the most frequent level's code");
        let back = Classifier::from_json(&m.to_json()).unwrap();
        assert!(back.reference().unwrap()[2].is_nan());
        let z = back.logits(&t).unwrap();
        let z_ref = back.reference_logit().unwrap();
        for (row, c) in back.contributions(&t).unwrap().iter().enumerate() {
            assert!((z_ref + c.iter().sum::<f64>() - z[row]).abs() < 1e-9);
        }
    }
}
