//! `pipewise train`, `score`, `explain` and `models`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use pipewise_app::fairness;
use pipewise_engines::predict::{self, ModelReport, Target, TrainOptions, Trained};
use pipewise_engines::truth::Truth;
use pipewise_features::{Data, format_date};
use pipewise_models::Classifier;
use pipewise_store::{NewModel, SqliteStore};

use crate::output::FractionBar;

/// Loads the CRM and indexes it for as-of reads.
pub fn load(store: &SqliteStore) -> Result<Data> {
    let crm = store.load_crm()?;
    if let Some(w) = crm.currencies.warning() {
        eprintln!("warning: {w}");
    }
    pipewise_app::load_data(&crm)
}

pub fn parse_as_of(s: Option<&str>, data: &Data) -> Result<i64> {
    match s {
        None => Ok(data.end),
        Some(s) => pipewise_store::read::instant(s)
            .with_context(|| format!("--as-of {s:?}: expected a date such as 2025-06-30")),
    }
}

/// "feature 12%, ..." for the `n` strongest drivers.
fn drivers(r: &ModelReport, n: usize) -> String {
    r.importance
        .iter()
        .take(n)
        .map(|i| format!("{} {:.0}%", i.feature, i.importance * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "feature (reason); ..." for the dropped features.
fn dropped(r: &ModelReport) -> String {
    r.dropped
        .iter()
        .map(|d| format!("{} ({})", d.feature, d.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A markdown model card.
/// The model card, in the sections of Mitchell et al. (2019), "Model Cards
/// for Model Reporting": model details, intended use, factors, metrics,
/// evaluation data, training data, quantitative analyses (with fairness by
/// group from `audits`), ethical considerations, caveats and
/// recommendations.
pub fn card(
    r: &ModelReport,
    version: i64,
    created_at: &str,
    audits: &fairness::HoldoutAudits,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: {} model, version {version}\n", r.kind);
    let _ = writeln!(s, "## Model details\n");
    let _ = writeln!(
        s,
        "**Purpose.** {} A probability for every open opportunity, refreshed when scored, used to rank deals for inspection, to weight the forecast and to explain risk.\n",
        r.question
    );
    let _ = writeln!(
        s,
        "**Algorithm.** {}, probabilities calibrated by isotonic regression on out-of-fold scores of the training rows (deals dealt into {} folds; each row scored by trees that never saw its deal). Created {created_at} by pipewise {}.\n",
        r.algorithm,
        r.calibration_folds,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(w) = &r.refit {
        let _ = writeln!(
            s,
            "**Registered model.** After evaluation, refitted the same way (features, constraints, out-of-fold calibration) on every snapshot whose outcome was known by the end of the data: {} to {} ({} rows, {} positive), so that scores draw on the latest months. The figures below are those of the evaluated model, fitted on the earlier window only.\n",
            w.from,
            w.to,
            crate::output::thousands(w.rows as u64),
            crate::output::thousands(w.positives as u64)
        );
    }
    let _ = writeln!(s, "## Intended use\n");
    let _ = writeln!(
        s,
        "**Primary use.** Decision support for managers and RevOps: which deals to inspect, coach or re-forecast, with the factors shown; the forecast's deal weights.\n\n**Out of scope.** Judging, ranking or paying individual reps; decisions about a customer made without a person; any org other than the one it was trained on. Never a substitute for talking to the customer.\n"
    );
    let _ = writeln!(s, "## Factors\n");
    let _ = writeln!(
        s,
        "Groups the model's behaviour may differ across, audited below on the test window: of reps (the deal's owner at the snapshot) by region, team and tenure band; of customers by industry and size. Any other attribute (an HR export, an account list) can be audited with `pipewise fairness --attributes FILE`. Deal type, stage and product are inputs, and the drivers below show how they weigh.\n"
    );
    let _ = writeln!(s, "## Metrics\n");
    let _ = writeln!(
        s,
        "Ranking: ROC-AUC and PR-AUC, lift in the top 10%. Probabilities: log loss, Brier score and expected calibration error (ECE, 10 equal-width bins), since the forecast sums them. Against the naive rules a manager uses (the CRM's stage probability, the rep's forecast category, the historical rate per stage) and, on simulated data, the simulator's true probability. Fairness by group: demographic parity difference and ratio, equalized-odds difference, calibration gap by group; a positive prediction is a score of 0.5 or more; flags per `pipewise fairness` (a group miscalibrated by more than 5 points beyond the others, clearly; the four-fifths rule where the outcomes do not explain the gap).\n"
    );
    let _ = writeln!(s, "## Evaluation data\n");
    let _ = writeln!(
        s,
        "The latest 25% of the weekly snapshot dates: {} to {} ({} rows, {} positive), scored by a model trained only on outcomes known before the window began. {:.0}% of the window's open-deal snapshots had an outcome by the end of the data; the rest (deals still open) are not in the figures.\n",
        r.test.from,
        r.test.to,
        crate::output::thousands(r.test.rows as u64),
        crate::output::thousands(r.test.positives as u64),
        r.test_label_coverage * 100.0
    );
    let _ = writeln!(s, "## Training data\n");
    let _ = writeln!(
        s,
        "Weekly (Monday) snapshots of every open opportunity, features computed as of each snapshot from what was known then: {} to {} ({} snapshots with a known outcome, {} positive).\n",
        r.train.from,
        r.train.to,
        crate::output::thousands(r.train.rows as u64),
        crate::output::thousands(r.train.positives as u64),
    );
    let _ = writeln!(
        s,
        "**Data gate.** Needs {}. This data had {}.\n",
        r.data_gate.requirement, r.data_gate.found
    );
    if r.fields_without_history.is_empty() {
        let _ = writeln!(
            s,
            "**History.** Every tracked field (stage, forecast category, amount, close date) has history: each snapshot reads the value it had then.\n"
        );
    } else {
        let _ = writeln!(
            s,
            "**History.** No history for {}: their current values are known only from when they were observed (a closed deal's at its close, an open deal's as of the export), so at earlier snapshots they are missing, never read from the present. Features built on them ({}) carry less information than with history.\n",
            r.fields_without_history.join(", "),
            r.fields_without_history
                .iter()
                .flat_map(|f| features_of(f).iter().copied())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        s,
        "**Features.** {} used: {}.",
        r.features.len(),
        r.features.join(", ")
    );
    if !r.dropped.is_empty() {
        let _ = writeln!(s, "Dropped: {}.", dropped(r));
    }
    let _ = writeln!(s, "\n## Quantitative analyses\n");
    let _ = writeln!(s, "**Metrics on the test window.**\n");
    s.push_str(&metrics_table(r, true));
    let _ = writeln!(
        s,
        "\n**Top drivers (share of mean absolute contribution on the test window).** {}\n",
        drivers(r, 8)
    );
    let _ = writeln!(s, "{}", explanations_text(r));
    let fair = fairness::card_section(&audits.audits);
    if fair.is_empty() {
        let _ = writeln!(
            s,
            "**Fairness by group.** No group with enough held-out rows to judge (200 rows and 30 deals each).\n"
        );
    } else {
        let _ = writeln!(
            s,
            "**Fairness by group** (held-out scores; calibration gap: observed minus predicted, against the other groups'):\n{fair}"
        );
    }

    let _ = writeln!(s, "## Ethical considerations\n");
    let _ = writeln!(
        s,
        "The model reads personal data about reps (their tenure, trailing win rate, volume, cycle, peer percentile and open book) and about customers' companies, never their contacts' names or emails. It learns from this organisation's own history, including any bias in who got which deals and in how each group's reps record their deals: a group whose records run rosier or poorer than its deals is scored wrongly, which the fairness analysis above looks for. Its scores are estimates about deals, not judgements of people.\n"
    );
    let _ = writeln!(s, "## Caveats and recommendations\n");
    if !r.unseen_in_training.is_empty() {
        let _ = writeln!(
            s,
            "**New in the test window.** {}: training barely saw them, so their scores rest on little and the test window's calibration suffers for them. Retrain once they have outcomes.\n",
            novel_text(r)
        );
    }
    let _ = writeln!(
        s,
        "Account attributes and products are read as they are now (the data model keeps no history for them), and amounts in other currencies are converted at the rate in effect on the deal's current close date. Deals unlike those in the training window (new segments, new products, a changed sales process) are scored with less certainty than the figures suggest. Retrain when the process changes and at least monthly; watch `pipewise fairness` after a change in how a team records its deals.\n"
    );
    s
}

/// The model card's paragraph on explanations: the constraints and the
/// faithfulness check.
fn explanations_text(r: &ModelReport) -> String {
    let mut s = String::from("**Explanations.** ");
    let m = &r.monotone;
    if m.raises.is_empty() && m.lowers.is_empty() {
        s.push_str("Fitted without monotone constraints: a factor may be said to raise the probability although its value reads as a bad sign.");
    } else {
        let _ = write!(
            s,
            "Fitted with the feature registry's known directions as monotone constraints, so no factor is ever said to push the wrong way: a higher value may only raise the probability for {}; only lower it for {}.",
            if m.raises.is_empty() {
                "none".to_string()
            } else {
                m.raises.join(", ")
            },
            if m.lowers.is_empty() {
                "none".to_string()
            } else {
                m.lowers.join(", ")
            },
        );
    }
    if let Some(f) = &r.faithfulness {
        let _ = write!(
            s,
            " Each factor is measured against a typical deal (the training rows' medians). Removing each test row's {} strongest factors (setting them to the typical values) moved the score the stated way on {:.0}% of {} rows, by {:.2} times the stated amount (median); mean error {:.3} log-odds against a mean stated change of {:.3}.",
            f.top,
            f.same_direction * 100.0,
            f.rows,
            f.median_ratio,
            f.mean_abs_error,
            f.mean_abs_stated
        );
    }
    s.push('\n');
    s
}

/// "deal_type=renewal (9% of test rows, 3 training rows), ...".
fn novel_text(r: &ModelReport) -> String {
    r.unseen_in_training
        .iter()
        .map(|n| {
            format!(
                "{}={} ({:.0}% of test rows, {} training rows)",
                n.feature,
                n.value,
                n.test_share * 100.0,
                n.training_rows
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The features read from a tracked field.
fn features_of(field: &str) -> &'static [&'static str] {
    match field {
        "stage" => &["stage", "days_in_stage", "stage_velocity"],
        "forecast_category" => &["forecast_category"],
        "amount" => &["amount", "amount_change", "amount_edits"],
        _ => &["close_pushes", "days_to_close"],
    }
}

fn fmt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".into()
    }
}

pub fn metrics_table(r: &ModelReport, markdown: bool) -> String {
    let mut s = String::new();
    if markdown {
        s.push_str("| predictor | ROC-AUC | PR-AUC | log loss | Brier | ECE | lift top 10% |\n|---|---|---|---|---|---|---|\n");
    } else {
        let _ = writeln!(
            s,
            "  {:<52} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6}",
            "predictor", "ROC-AUC", "PR-AUC", "log loss", "Brier", "ECE", "lift"
        );
    }
    for row in &r.results {
        let m = &row.metrics;
        let cells = [
            fmt(m.roc_auc, 3),
            fmt(m.pr_auc, 3),
            fmt(m.log_loss, 3),
            fmt(m.brier, 3),
            fmt(m.ece, 3),
            fmt(m.lift_top_decile, 2),
        ];
        if markdown {
            let _ = writeln!(s, "| {} | {} |", row.name, cells.join(" | "));
        } else {
            let _ = writeln!(
                s,
                "  {:<52} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6}",
                row.name, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
            );
        }
    }
    s
}

pub struct TrainArgs {
    pub truth: Option<PathBuf>,
    pub learner: crate::Learner,
    pub budget: f32,
    pub horizon_days: i64,
    /// The registry's monotone constraints (see `TrainOptions::monotone`).
    pub monotone: bool,
    /// Also write the weekly snapshot rows the models learn from to this CSV.
    pub training_data: Option<PathBuf>,
}

/// Writes the weekly snapshot rows (each deal open at each snapshot date)
/// with their labels and features to `path` as CSV: `snapshot` (date),
/// `opportunity_id`, `owner_id` (at the snapshot), `won` and `slipped` (1,
/// 0, or empty while unknown at the data's end), then every feature.
/// People are pseudonymised under `--pseudonymise`. Returns the rows.
fn write_training_data(
    store: &SqliteStore,
    data: &Data,
    snap: &predict::Snapshots,
    path: &Path,
) -> Result<usize> {
    let px = crate::output::pseudonymiser(store)?;
    let mut w = csv::Writer::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let mut header = vec![
        "snapshot".to_string(),
        "opportunity_id".into(),
        "owner_id".into(),
        "won".into(),
        "slipped".into(),
    ];
    header.extend(snap.table.names.iter().cloned());
    w.write_record(&header)?;
    let label = |o: usize, t: i64, target: Target| {
        predict::label(data, o, t, target).map_or(String::new(), |(y, _)| format!("{y}"))
    };
    for r in 0..snap.opp.len() {
        let (o, t) = (snap.opp[r], snap.date[r]);
        let opp = &data.opps[o];
        let mut row = vec![
            pipewise_features::format_date(t),
            opp.id.clone(),
            opp.owner.at(t).unwrap_or("").to_string(),
            label(o, t, Target::Win),
            label(o, t, Target::Slip),
        ];
        row.extend(
            snap.table
                .columns
                .iter()
                .map(|c| c.display(r).unwrap_or_default()),
        );
        match &px {
            Some(p) => w.write_record(crate::output::export_row(Some(p), row))?,
            None => w.write_record(&row)?,
        }
    }
    w.flush()?;
    Ok(snap.opp.len())
}

/// The features of every deal open at each date, with a progress bar.
pub fn snapshots(data: &Data, dates: &[i64], quiet: bool) -> predict::Snapshots {
    let bar = FractionBar::new(!quiet, "features for weekly snapshots");
    let snap = predict::snapshots(data, dates, &mut |k, n| bar.set(k as f64 / n as f64));
    bar.finish();
    snap
}

/// What `train` did: the models trained and registered (with their
/// versions), and those it could not train with the reason (a data gate not
/// met: "cannot judge ...").
pub struct TrainRun {
    pub trained: Vec<(Trained, i64)>,
    pub skipped: Vec<(&'static str, String)>,
}

impl TrainRun {
    pub fn model(&self, target: Target) -> Option<&Classifier> {
        self.trained
            .iter()
            .find(|t| t.0.target == target)
            .map(|t| &t.0.model)
    }
}

/// Trains the win and slip models and registers them as the active versions.
/// A model whose data gate is not met is skipped with the reason; an error
/// when neither can be trained.
pub fn train(store: &mut SqliteStore, args: &TrainArgs, quiet: bool) -> Result<TrainRun> {
    let started = std::time::Instant::now();
    let truth = match &args.truth {
        Some(p) => Some(Truth::load(p)?),
        None => None,
    };
    let crm = store.load_crm()?;
    if let Some(w) = crm.currencies.warning() {
        eprintln!("warning: {w}");
    }
    let data = pipewise_app::load_data(&crm)?;
    let defaults = TrainOptions::default();
    let opts = TrainOptions {
        horizon_days: args.horizon_days,
        monotone: args.monotone,
        algorithm: match args.learner {
            crate::Learner::Hist => pipewise_models::Algorithm::Hist,
            crate::Learner::Perpetual => pipewise_models::Algorithm::Gbm,
        },
        fit: pipewise_models::FitOptions {
            budget: args.budget,
            ..defaults.fit
        },
        ..defaults
    };
    let dates = predict::snapshot_dates(&data, &opts);
    let snap = snapshots(&data, &dates, quiet);
    if let Some(path) = &args.training_data {
        let n = write_training_data(store, &data, &snap, path)?;
        if !quiet {
            eprintln!(
                "{n} snapshot rows (the training data) written to {}",
                path.display()
            );
        }
    }
    let created_at = pipewise_core::value::format_instant(chrono::Utc::now());
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for target in [Target::Win, Target::Slip] {
        if let Some(refusal) = predict::data_gate(&data, target).refusal(target.judged()) {
            skipped.push((target.name(), refusal));
            continue;
        }
        let bar = FractionBar::new(!quiet, &format!("training the {} model", target.name()));
        bar.set(0.05);
        let trained = predict::train(&data, &snap, &dates, target, &opts, truth.as_ref())
            .with_context(|| format!("{} model", target.name()))?;
        bar.finish();
        let r = &trained.report;
        let version = store
            .models()?
            .iter()
            .filter(|m| m.kind == r.kind)
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
            + 1;
        let holdout: Vec<pipewise_store::HoldoutRow> = trained
            .held_out
            .iter()
            .map(|h| pipewise_store::HoldoutRow {
                entity_id: h.opportunity_id.clone(),
                as_of: h.date.clone(),
                probability: h.p,
                outcome: h.y,
            })
            .collect();
        let subject = match target {
            Target::Win => fairness::Subject::Win,
            Target::Slip => fairness::Subject::Slip,
        };
        let groups: Vec<String> = fairness::DEFAULT_GROUPS
            .iter()
            .map(|g| g.to_string())
            .collect();
        let audits = fairness::audit_holdout(&crm, subject, &holdout, &groups, None)?;
        let card = card(r, version, &created_at, &audits);
        let rec = store.register_model(&NewModel {
            kind: r.kind,
            created_at: &created_at,
            algorithm: r.algorithm,
            train_from: Some(&r.train.from),
            train_to: Some(&r.train.to),
            test_from: Some(&r.test.from),
            test_to: Some(&r.test.to),
            features_json: &serde_json::to_string(&r.features)?,
            metrics_json: &serde_json::to_string(r)?,
            card: &card,
            artifact_json: &trained.model.to_json(),
            holdout: &holdout,
        })?;
        out.push((trained, rec.version));
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "trained");
    if out.is_empty() {
        bail!(
            "no model trained: {}",
            skipped
                .iter()
                .map(|s| format!("{} model: {}", s.0, s.1))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(TrainRun {
        trained: out,
        skipped,
    })
}

pub fn train_text(run: &TrainRun, db: &Path) -> String {
    let mut s = String::new();
    for (kind, why) in &run.skipped {
        let _ = writeln!(s, "{kind} model: not trained, {why}\n");
    }
    for (t, version) in &run.trained {
        let r = &t.report;
        let _ = writeln!(
            s,
            "{} model v{version} ({}): {}",
            r.kind, r.algorithm, r.question
        );
        let _ = writeln!(
            s,
            "  trained on {} to {} ({} rows, calibrated out-of-fold), tested on {} to {} ({} rows, {:.0}% positive; {:.0}% of open-deal snapshots had an outcome)",
            r.train.from,
            r.train.to,
            r.train.rows,
            r.test.from,
            r.test.to,
            r.test.rows,
            100.0 * r.test.positives as f64 / r.test.rows.max(1) as f64,
            r.test_label_coverage * 100.0
        );
        s.push_str(&metrics_table(r, false));
        let _ = writeln!(
            s,
            "  {} features used, {} dropped{}",
            r.features.len(),
            r.dropped.len(),
            if r.dropped.is_empty() {
                String::new()
            } else {
                format!(": {}", dropped(r))
            }
        );
        let _ = writeln!(s, "  top drivers: {}", drivers(r, 6));
        if !r.fields_without_history.is_empty() {
            let _ = writeln!(
                s,
                "  no history for {}: known only as of the export, missing at earlier snapshots",
                r.fields_without_history.join(", ")
            );
        }
        if !r.unseen_in_training.is_empty() {
            let _ = writeln!(
                s,
                "  new in the test window, barely seen in training: {}",
                novel_text(r)
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "Registered as the active versions in {}. Next: `pipewise score`, `pipewise explain OPPORTUNITY_ID`, `pipewise models`.",
        db.display()
    );
    s
}

/// The active model of a kind.
pub fn active(store: &SqliteStore, kind: &str) -> Result<Option<(Classifier, i64, i64)>> {
    pipewise_app::book::active_model(store, kind)
}

pub fn require_active(store: &SqliteStore, kind: &str) -> Result<(Classifier, i64, i64)> {
    active(store, kind)?
        .with_context(|| format!("no {kind} model in the database yet: run `pipewise train` first"))
}

fn factor_list(f: &[predict::Factor], up: bool) -> String {
    f.iter()
        .filter(|x| (x.contribution > 0.0) == up)
        .map(|x| x.text.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn score_cmd(db: &Path, args: &crate::ScoreCmd) -> Result<ExitCode> {
    let out = args.out.clone().unwrap_or_else(|| "scores.csv".into());
    let mut store = crate::open(db)?;
    let (win, win_id, win_v) = require_active(&store, "win")?;
    let slip = active(&store, "slip")?;
    let data = load(&store)?;
    let as_of = parse_as_of(args.as_of.as_deref(), &data)?;
    let scored = predict::score(
        &data,
        as_of,
        &win,
        slip.as_ref().map(|s| &s.0),
        args.top.max(1) * 2,
    )?;
    let as_of_s = pipewise_core::value::format_instant(
        chrono::DateTime::from_timestamp(as_of, 0).unwrap_or_default(),
    );
    // Database.
    let rows: Vec<(String, f64, String)> = scored
        .iter()
        .map(|s| {
            (
                s.opportunity_id.clone(),
                s.win_probability,
                serde_json::to_string(&s.factors).unwrap_or_default(),
            )
        })
        .collect();
    store.save_scores(win_id, &as_of_s, &rows)?;
    if let Some((_, slip_id, _)) = &slip {
        let rows: Vec<(String, f64, String)> = scored
            .iter()
            .filter_map(|s| {
                Some((
                    s.opportunity_id.clone(),
                    s.slip_probability?,
                    serde_json::to_string(&s.slip_factors).unwrap_or_default(),
                ))
            })
            .collect();
        store.save_scores(*slip_id, &as_of_s, &rows)?;
    }
    // CSV for write-back.
    let px = crate::output::pseudonymiser(&store)?;
    let mut w =
        csv::Writer::from_path(&out).with_context(|| format!("cannot write {}", out.display()))?;
    w.write_record([
        "opportunity_id",
        "name",
        "owner",
        "stage",
        "amount",
        "close_date",
        "win_probability",
        "slip_probability",
        "expected_amount",
        "raising_win",
        "lowering_win",
        "slip_reasons",
        "as_of",
        "win_model_version",
    ])?;
    for s in &scored {
        let i = data
            .index_of(&s.opportunity_id)
            .expect("scored deals exist");
        let o = &data.opps[i];
        let amount: f64 = o
            .amount
            .at(as_of)
            .and_then(|a| a.parse().ok())
            .unwrap_or(f64::NAN);
        let top = args.top;
        let up: Vec<_> = s
            .factors
            .iter()
            .filter(|f| f.contribution > 0.0)
            .take(top)
            .cloned()
            .collect();
        let down: Vec<_> = s
            .factors
            .iter()
            .filter(|f| f.contribution < 0.0)
            .take(top)
            .cloned()
            .collect();
        let slip_up: Vec<_> = s
            .slip_factors
            .iter()
            .filter(|f| f.contribution > 0.0)
            .take(top)
            .cloned()
            .collect();
        w.write_record(crate::output::export_row(
            px.as_ref(),
            [
                s.opportunity_id.clone(),
                o.name.clone().unwrap_or_default(),
                data.owner_name(o, as_of),
                o.stage.at(as_of).unwrap_or("").to_string(),
                if amount.is_finite() {
                    format!("{amount:.2}")
                } else {
                    String::new()
                },
                o.close_date.at(as_of).unwrap_or("").to_string(),
                format!("{:.4}", s.win_probability),
                s.slip_probability
                    .map(|p| format!("{p:.4}"))
                    .unwrap_or_default(),
                if amount.is_finite() {
                    format!("{:.2}", amount * s.win_probability)
                } else {
                    String::new()
                },
                factor_list(&up, true),
                factor_list(&down, false),
                factor_list(&slip_up, true),
                format_date(as_of),
                win_v.to_string(),
            ],
        ))?;
    }
    w.flush()?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "as_of": format_date(as_of), "win_model_version": win_v,
                "slip_model_version": slip.as_ref().map(|s| s.2),
                "csv": out.display().to_string(), "deals": scored,
            }))?
        );
    } else {
        println!(
            "Scored {} open deals as of {} with win model v{win_v}{}; wrote {} and the database.\n",
            scored.len(),
            format_date(as_of),
            slip.as_ref()
                .map(|s| format!(" and slip model v{}", s.2))
                .unwrap_or_default(),
            out.display()
        );
        print!("{}", riskiest_text(&data, &scored, as_of, 10));
    }
    Ok(ExitCode::SUCCESS)
}

/// The open deals with the most amount at risk: amount × (1 − win probability), largest first.
pub fn riskiest_text(data: &Data, scored: &[predict::Scored], as_of: i64, n: usize) -> String {
    let mut rows: Vec<(&predict::Scored, f64)> = scored
        .iter()
        .map(|s| {
            let o = &data.opps[data.index_of(&s.opportunity_id).expect("exists")];
            let amount: f64 = o
                .amount
                .at(as_of)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0.0);
            (s, amount)
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.1 * (1.0 - b.0.win_probability)).total_cmp(&(a.1 * (1.0 - a.0.win_probability)))
    });
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Riskiest open deals (most amount at risk), as of {}",
        format_date(as_of)
    );
    let _ = writeln!(
        s,
        "  {:<11} {:<22} {:<13} {:>9} {:>5} {:>5}  why",
        "deal", "owner", "stage", "amount", "win", "slip"
    );
    for (sc, amount) in rows.iter().take(n) {
        let o = &data.opps[data.index_of(&sc.opportunity_id).expect("exists")];
        let mut owner = data.owner_name(o, as_of);
        owner.truncate(22);
        let down: Vec<&str> = sc
            .factors
            .iter()
            .filter(|f| f.contribution < 0.0)
            .take(2)
            .map(|f| f.text.as_str())
            .collect();
        let _ = writeln!(
            s,
            "  {:<11} {:<22} {:<13} {:>9} {:>4.0}% {:>5}  {}",
            sc.opportunity_id,
            owner,
            o.stage.at(as_of).unwrap_or(""),
            crate::output::money(*amount),
            sc.win_probability * 100.0,
            sc.slip_probability
                .map(|p| format!("{:.0}%", p * 100.0))
                .unwrap_or_default(),
            down.join("; ")
        );
    }
    s
}

pub fn explain_cmd(
    db: &Path,
    id: &str,
    as_of: Option<&str>,
    kind: &str,
    json: bool,
) -> Result<ExitCode> {
    if kind != "win" && kind != "slip" {
        bail!("--model {kind:?}: expected win or slip");
    }
    let store = crate::open(db)?;
    let (model, _, version) = require_active(&store, kind)?;
    let data = load(&store)?;
    let t = parse_as_of(as_of, &data)?;
    let e = predict::explain(&data, id, t, &model)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"model": kind, "version": version, "explanation": e})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let o = &data.opps[data.index_of(id).expect("explained")];
    println!(
        "{id} {} — owner {}, stage {}, as of {}{}",
        o.name.as_deref().unwrap_or(""),
        data.owner_name(o, t),
        o.stage.at(t).unwrap_or("?"),
        e.as_of,
        if e.open {
            ""
        } else {
            " (not open on that date)"
        }
    );
    println!(
        "{} probability: {:.0}% ({kind} model v{version})\n",
        if kind == "win" { "Win" } else { "Slip" },
        e.probability * 100.0
    );
    let show = |up: bool| {
        let list: Vec<&predict::Factor> = e
            .factors
            .iter()
            .filter(|f| (f.contribution > 0.0) == up)
            .take(5)
            .collect();
        println!(
            "{}",
            if up {
                "Pushing it up:"
            } else {
                "Pushing it down:"
            }
        );
        if list.is_empty() {
            println!("  (nothing)");
        }
        for f in list {
            println!("  {:+.2}  {}  [{}]", f.contribution, f.text, f.family);
        }
    };
    show(true);
    show(false);
    match e.typical_probability {
        Some(p) => println!(
            "\n(each factor against a typical deal, whose {kind} probability is {:.0}%: its change of the log-odds, before calibration; `--json` lists every feature and factor)",
            p * 100.0
        ),
        None => println!(
            "\n(contributions in log-odds, before calibration; `--json` lists every feature and factor)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn models_cmd(
    db: &Path,
    card_of: Option<&str>,
    activate: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let mut store = crate::open(db)?;
    let parse = |s: &str| -> Result<(String, Option<i64>)> {
        match s.split_once(':') {
            Some((k, v)) => Ok((
                k.to_string(),
                Some(
                    v.parse()
                        .with_context(|| format!("{s:?}: expected KIND:VERSION, e.g. win:2"))?,
                ),
            )),
            None => Ok((s.to_string(), None)),
        }
    };
    if let Some(a) = activate {
        let (kind, version) = parse(a)?;
        let version = version
            .with_context(|| format!("--activate {a:?}: expected KIND:VERSION, e.g. win:2"))?;
        store.activate_model(&kind, version)?;
        println!("{kind} model v{version} is now active.");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(c) = card_of {
        let (kind, version) = parse(c)?;
        let m = store.model(&kind, version)?.with_context(|| {
            let all = store.models().unwrap_or_default();
            let mut kinds: Vec<&str> = all.iter().map(|m| m.kind.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            let versions: Vec<String> = all
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| format!("v{}", m.version))
                .collect();
            format!(
                "no {kind} model{} in {}: {}",
                version.map(|v| format!(" v{v}")).unwrap_or_default(),
                db.display(),
                if !versions.is_empty() {
                    format!("its versions are {}", versions.join(", "))
                } else if kinds.is_empty() {
                    "no model is registered yet (pipewise train; pipewise score leads)".to_string()
                } else {
                    format!("the registered kinds are {}", kinds.join(", "))
                }
            )
        })?;
        // Under --pseudonymise, what is printed is pseudonymised.
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "kind": m.kind,
                    "version": m.version,
                    "active": m.active,
                    "card": m.card,
                }))?
            );
        } else {
            print!("{}", m.card);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let models = store.models()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(ExitCode::SUCCESS);
    }
    if models.is_empty() {
        println!("No models yet: run `pipewise train`.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "  {:<5} {:>3}  {:<6} {:<20} {:<23} {:<23} {:>7} {:>6}",
        "kind", "ver", "active", "created", "trained on", "tested on", "ROC-AUC", "ECE"
    );
    for m in &models {
        let first = &m.metrics["results"][0]["metrics"];
        println!(
            "  {:<5} {:>3}  {:<6} {:<20} {:<23} {:<23} {:>7} {:>6}",
            m.kind,
            m.version,
            if m.active { "yes" } else { "" },
            m.created_at,
            format!(
                "{} – {}",
                m.train_from.as_deref().unwrap_or("?"),
                m.train_to.as_deref().unwrap_or("?")
            ),
            format!(
                "{} – {}",
                m.test_from.as_deref().unwrap_or("?"),
                m.test_to.as_deref().unwrap_or("?")
            ),
            first["roc_auc"]
                .as_f64()
                .map(|x| format!("{x:.3}"))
                .unwrap_or_default(),
            first["ece"]
                .as_f64()
                .map(|x| format!("{x:.3}"))
                .unwrap_or_default(),
        );
        if let Some(r) = &m.retrain_reason {
            println!("        needs retraining: {r}");
        }
    }
    println!(
        "\n`pipewise models --card win` prints a model card; `--activate win:1` switches versions."
    );
    Ok(ExitCode::SUCCESS)
}
