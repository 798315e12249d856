//! `pipewise model fit|predict`: the tabular model on any CSV.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use pipewise_models::metrics::Metrics;
use pipewise_models::tabular::{
    FitReport, Overrides, Role, Schema, TabularModel, TabularOptions, Target,
};

#[derive(clap::Subcommand)]
pub enum ModelCmd {
    /// Fit a model on a CSV with an outcome column; report cross-validated
    /// AUC, lift and the top drivers; write the model as JSON.
    Fit {
        /// The training CSV (comma, semicolon or tab separated).
        #[arg(long)]
        data: PathBuf,
        /// The outcome column: 1/0, yes/no, true/false or won/lost (or see --positive).
        #[arg(long)]
        target: String,
        /// The target value that means 1 (others mean 0, unless --negative).
        #[arg(long)]
        positive: Option<String>,
        /// With --positive: the value that means 0; rows with other values are skipped.
        #[arg(long, requires = "positive")]
        negative: Option<String>,
        /// Columns not to use (e.g. known only after the outcome). Repeatable.
        #[arg(long)]
        ignore: Vec<String>,
        /// Read this column as categories (e.g. integer region or browser
        /// codes). Repeatable.
        #[arg(long, value_name = "COL")]
        categorical: Vec<String>,
        /// Read this column as a number. Repeatable.
        #[arg(long, value_name = "COL")]
        numeric: Vec<String>,
        /// Read this column as dates, optionally in a strftime form
        /// (`--date signup:%d-%m-%Y`). Repeatable.
        #[arg(long, value_name = "COL[:FORMAT]")]
        date: Vec<String>,
        /// Validate in time order on this date column instead of random folds.
        #[arg(long)]
        time_column: Option<String>,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        #[arg(long, default_value = "lead-model.json")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Score a CSV with a fitted model: the same rows in the same order, plus
    /// `probability` and `top_factors`.
    Predict {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "scored.csv")]
        out: PathBuf,
        /// Factors listed per row.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// Score a file that lacks some of the model's columns, reading them as empty.
        #[arg(long)]
        allow_missing_columns: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ModelCmd) -> Result<ExitCode> {
    match cmd {
        ModelCmd::Fit {
            data,
            target,
            positive,
            negative,
            ignore,
            categorical,
            numeric,
            date,
            time_column,
            folds,
            out,
            json,
        } => {
            let t = pipewise_ingest::read_text_table(&data)?;
            let dates = date
                .iter()
                .map(|d| match d.split_once(':') {
                    // A form always holds a %; a column name may hold a colon.
                    Some((c, f)) if f.contains('%') => (c.to_string(), Some(f.to_string())),
                    _ => (d.clone(), None),
                })
                .collect();
            let opts = TabularOptions {
                folds,
                time_column,
                named: Overrides {
                    categorical,
                    numeric,
                    dates,
                    ignore,
                },
                ..TabularOptions::default()
            };
            let progress = |m: &str| {
                if !json {
                    eprintln!("  {m}");
                }
            };
            let model = TabularModel::fit(
                &t,
                Target {
                    column: target,
                    positive,
                    negative,
                },
                &opts,
                &progress,
            )?;
            std::fs::write(&out, model.to_json())
                .with_context(|| format!("cannot write {}", out.display()))?;
            if json {
                // The fingerprints stay in the model file.
                let mut report = serde_json::to_value(&model.report)?;
                if let Some(r) = report.as_object_mut() {
                    r.remove("row_sample");
                }
                let v = serde_json::json!({
                    "model": out.display().to_string(),
                    "report": report,
                    "columns": model.schema.columns.iter().map(|c| serde_json::json!({
                        "name": c.name, "role": c.role.name(), "missing": c.missing,
                        "distinct": c.distinct,
                        "reason": match &c.role { Role::Ignored { reason } => Some(reason), _ => None },
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", fit_text(&model.report, &model.schema, &out));
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelCmd::Predict {
            model,
            data,
            out,
            top,
            allow_missing_columns,
            json,
        } => predict(&model, &data, &out, top, allow_missing_columns, json),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

pub fn metrics_line(m: &Metrics) -> String {
    format!(
        "ROC-AUC {:.3}  PR-AUC {:.3}  log loss {:.3}  Brier {:.3}  ECE {:.3}  lift in top decile {:.2}x",
        m.roc_auc, m.pr_auc, m.log_loss, m.brier, m.ece, m.lift_top_decile
    )
}

fn fit_text(r: &FitReport, schema: &Schema, out: &Path) -> String {
    let mut s = format!(
        "Fitted on {}: {} rows, {} positive ({}); {} rows without an outcome skipped.\n\nColumns:\n",
        r.file,
        r.rows,
        r.positives,
        pct(r.positives as f64 / r.rows as f64),
        r.skipped
    );
    let width = schema
        .columns
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &schema.columns {
        let detail = match &c.role {
            Role::Ignored { reason } => format!("ignored: {reason}"),
            Role::Categorical { levels } => format!("categorical, {} values", levels.len()),
            Role::HighCardinality { top, .. } => format!(
                "high-cardinality categorical, {} values (top {} kept, plus frequency)",
                c.distinct,
                top.len()
            ),
            Role::Text { tokens } => {
                format!("free text (length and {} common words)", tokens.len())
            }
            other => other.name().to_string(),
        };
        let missing = if c.missing > 0 {
            format!(", {} empty", c.missing)
        } else {
            String::new()
        };
        s += &format!("  {:<width$}  {detail}{missing}\n", c.name);
    }
    let v = &r.validation;
    let (lo, hi) = v
        .fold_auc
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    s += &format!(
        "\nCross-validated ({}), on held-out rows only:\n  {}\n  fold AUCs {:.3}..{:.3}; always guessing the base rate scores AUC 0.500\n",
        v.scheme,
        metrics_line(&v.metrics),
        lo,
        hi
    );
    if v.candidates.len() > 1 {
        let tried: Vec<String> = v
            .candidates
            .iter()
            .map(|c| {
                format!(
                    "{} {:.3}{}",
                    c.algorithm,
                    c.roc_auc,
                    if c.chosen { " (chosen)" } else { "" }
                )
            })
            .collect();
        s += &format!(
            "  learners on the same folds (pooled held-out AUC): {}\n",
            tried.join(", ")
        );
    }
    let drivers: Vec<String> = r
        .drivers
        .iter()
        .filter(|d| d.share >= 0.001)
        .take(8)
        .map(|d| format!("{} {}", d.column, pct(d.share)))
        .collect();
    s += &format!(
        "\nTop drivers (share of the mean absolute push on the log-odds): {}\n",
        drivers.join(", ")
    );
    for w in &r.warnings {
        s += &format!("\nwarning: {w}\n");
    }
    s += &format!(
        "\nModel ({} features) written to {}. Score new rows with:\n  pipewise model predict --model {} --data FILE.csv --out scored.csv\n",
        r.features,
        out.display(),
        out.display()
    );
    s
}

fn predict(
    model_path: &Path,
    data: &Path,
    out: &Path,
    top: usize,
    allow_missing_columns: bool,
    json: bool,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(model_path)
        .with_context(|| format!("cannot read {}", model_path.display()))?;
    let model = TabularModel::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    let t = pipewise_ingest::read_text_table(data)?;
    let started = std::time::Instant::now();
    let (preds, notes) = model.predict(&t, top, allow_missing_columns)?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut header = t.headers.clone();
    header.push("probability".into());
    header.push("top_factors".into());
    w.write_record(&header)?;
    for (row, p) in t.rows.iter().zip(&preds) {
        let factors: Vec<String> = p.factors.iter().map(|f| f.text()).collect();
        let mut rec = row.clone();
        rec.push(format!("{:.4}", p.probability));
        rec.push(factors.join("; "));
        w.write_record(&rec)?;
    }
    w.flush()?;
    // With outcomes in the file: how the model did on them.
    let metrics = model.outcomes(&t).and_then(|ys| {
        let (p, y): (Vec<f64>, Vec<f64>) = preds
            .iter()
            .zip(ys)
            .filter_map(|(p, y)| Some((p.probability, y?)))
            .unzip();
        let pos = y.iter().filter(|&&v| v > 0.5).count();
        (pos > 0 && pos < y.len()).then(|| Metrics::of(&p, &y))
    });
    let overlap = model.training_overlap(&t);
    // A tenth of the rows already flatters the figures.
    let in_sample = overlap.is_some_and(|o| o >= 0.1);
    if json {
        let v = serde_json::json!({
            "in_sample": in_sample,
            "training_overlap": overlap,
            "rows": preds.len(),
            "out": out.display().to_string(),
            "predict_seconds": predict_seconds,
            "model_seconds": notes.model_seconds,
            "unseen_categories": notes.unseen_categories,
            "missing_columns": notes.missing_columns,
            "metrics": metrics,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "Scored {} rows of {} into {} (columns probability, top_factors).",
            preds.len(),
            t.file,
            out.display()
        );
        for (c, n) in &notes.unseen_categories {
            println!("  {n} rows have a value of {c} not seen in training: scored as \"other\".");
        }
        for c in &notes.missing_columns {
            println!("  column {c} is absent: scored as empty on every row.");
        }
        if let Some(m) = metrics {
            println!(
                "  The file has outcomes ({}), so on its {} rows with one: {}",
                model.schema.target.column,
                m.rows,
                metrics_line(&m)
            );
        }
        if in_sample {
            println!(
                "  warning: about {:.0}% of this file's rows were training rows: these figures are in-sample for them (the model has seen the answers), not a validation. The cross-validated figures of `model fit` are the honest ones.",
                overlap.unwrap_or(0.0) * 100.0
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pipewise score leads`: fit (or load) the lead model, register it, score
/// the open leads into the database and a CSV.
pub fn score_leads(db: &Path, args: &crate::ScoreCmd) -> Result<ExitCode> {
    use pipewise_engines::leads;
    let mut store = crate::open(db)?;
    let data = store.load_crm()?;
    let leads::LeadRows { table, open, as_of } = leads::lead_table(&data);
    if table.rows.is_empty() {
        anyhow::bail!("the database has no leads: import some first (pipewise import ...)");
    }
    let progress = |m: &str| {
        if !args.json {
            eprintln!("  {m}");
        }
    };
    let (model, source) = match &args.model {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let m = TabularModel::from_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            (m, format!("the model file {}", p.display()))
        }
        None => (
            leads::fit_leads(&table, &progress)?,
            format!("the database's leads older than {} days", leads::STALE_DAYS),
        ),
    };
    let as_of = pipewise_core::value::format_instant(
        chrono::DateTime::from_timestamp(as_of, 0).unwrap_or_default(),
    );
    let holdout = pipewise_app::leads::holdout_rows(&model, &table, &data);
    let rec = pipewise_app::leads::register(
        &mut store,
        &model,
        &source,
        &as_of,
        &crate::now(),
        &holdout,
        Some(&data),
    )?;
    let r = &model.report;
    // Score the open leads.
    let sub = pipewise_core::TextTable {
        rows: open.iter().map(|&r| table.rows[r].clone()).collect(),
        lines: open.iter().map(|&r| table.lines[r]).collect(),
        ..table.clone()
    };
    let (preds, _) = model.predict(&sub, args.top, true)?;
    let rows: Vec<(String, f64, String)> = sub
        .rows
        .iter()
        .zip(&preds)
        .map(|(row, p)| {
            (
                row[0].clone(),
                p.probability,
                serde_json::to_string(&p.factors).unwrap_or_default(),
            )
        })
        .collect();
    store.save_scores(rec.id, &as_of, &rows)?;
    let out = args.out.clone().unwrap_or_else(|| "lead-scores.csv".into());
    let px = crate::output::pseudonymiser(&store)?;
    let mut w =
        csv::Writer::from_path(&out).with_context(|| format!("cannot write {}", out.display()))?;
    w.write_record([
        "lead_id",
        "source",
        "owner",
        "created_at",
        "probability",
        "top_factors",
        "as_of",
        "lead_model_version",
    ])?;
    let col = |name: &str| sub.column_index(name).expect("lead column");
    let (src, owner, created) = (col("source"), col("owner"), col("created_at"));
    let mut order: Vec<usize> = (0..preds.len()).collect();
    order.sort_by(|&a, &b| preds[b].probability.total_cmp(&preds[a].probability));
    for &i in &order {
        let row = &sub.rows[i];
        let f: Vec<String> = preds[i].factors.iter().map(|f| f.text()).collect();
        w.write_record(crate::output::export_row(
            px.as_ref(),
            [
                row[0].as_str(),
                &row[src],
                &row[owner],
                &row[created],
                &format!("{:.4}", preds[i].probability),
                &f.join("; "),
                &as_of,
                &rec.version.to_string(),
            ],
        ))?;
    }
    w.flush()?;
    if args.json {
        let v = serde_json::json!({
            "model_version": rec.version, "as_of": as_of, "csv": out.display().to_string(),
            "report": r, "scored": open.len(),
            "top": order.iter().take(10).map(|&i| serde_json::json!({
                "lead_id": sub.rows[i][0], "probability": preds[i].probability, "factors": preds[i].factors,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "Lead model v{} from {source}: {} leads with an outcome, {} converted.",
            rec.version, r.rows, r.positives
        );
        println!(
            "  validated {}: {}",
            r.validation.scheme,
            metrics_line(&r.validation.metrics)
        );
        println!(
            "Scored {} open leads as of {as_of} into {} and {}.",
            open.len(),
            db.display(),
            out.display()
        );
        for &i in order.iter().take(10) {
            let f: Vec<String> = preds[i].factors.iter().map(|f| f.text()).collect();
            println!(
                "  {:<12} {:>5.1}%  {}",
                sub.rows[i][0],
                100.0 * preds[i].probability,
                f.join("; ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
