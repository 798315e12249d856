//! `pipewise monitor`: the active model's inputs in the latest weeks
//! against what it was fitted on, and its accuracy by month.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use pipewise_app::monitor::{self, MonitorReport};

#[derive(Args, Clone)]
pub struct MonitorArgs {
    /// The model: win or slip.
    #[arg(long, default_value = "win")]
    pub model: String,
    /// The recent window: this many weeks to the end of the data.
    #[arg(long, default_value_t = 8)]
    pub weeks: i64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(db: &Path, a: &MonitorArgs) -> Result<ExitCode> {
    let store = crate::open(db)?;
    let crm = store.load_crm()?;
    let data = pipewise_app::load_data(&crm)?;
    let r = monitor::monitor(&store, &data, &a.model, a.weeks)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// One feature's line: PSI, Jensen-Shannon, Wasserstein, level and what
/// moved (marked when the feature is one value per rep, industry or account).
fn drift_row(f: &pipewise_engines::drift::FeatureDrift) -> String {
    format!(
        "{:<28} {:>7.3} {:>6.3} {:>7}  {:<9} {}\n",
        f.feature,
        f.psi,
        f.js_distance,
        f.wasserstein_sd.map_or("-".into(), |w| format!("{w:.3}")),
        f.level,
        match f.shared_by {
            Some(u) => format!("{} [one value per {u}: not alerted]", f.change),
            None => f.change.clone(),
        }
    )
}

fn text(r: &MonitorReport) -> String {
    let mut s = format!(
        "# Monitor: {} model, version {}\n\nReference: what the scoring model was fitted on, {} to {} ({} Mondays, {} open-deal rows). Recent: {} to {} ({} Mondays, {} rows).\n\n## Inputs\n\nPopulation stability index per feature (under 0.1 stable, 0.1-0.2 moderate, over 0.2 a shift: an alert), Jensen-Shannon distance, Wasserstein distance in reference standard deviations. Features one value per rep, industry or account are listed but not alerted on: a few dozen values, each moving as the org ages.\n\n{:<28} {:>7} {:>6} {:>7}  {:<9} {}\n",
        r.model,
        r.version,
        r.reference.from,
        r.reference.to,
        r.reference.snapshots,
        r.reference.rows,
        r.recent.from,
        r.recent.to,
        r.recent.snapshots,
        r.recent.rows,
        "feature",
        "PSI",
        "JS",
        "W1/sd",
        "level",
        "what moved"
    );
    for f in &r.features {
        s.push_str(&drift_row(f));
    }
    s.push_str(&format!(
        "\n## New deals\n\nDeals in their first week: {} rows in the reference, {} recent. A shift in what comes in shows here first.\n\n",
        r.intake_reference_rows, r.intake_recent_rows
    ));
    if r.intake.is_empty() {
        s.push_str(&format!(
            "Too few new deals to compare (fewer than {} in a window).\n",
            monitor::MIN_INTAKE_ROWS
        ));
    } else {
        s.push_str(&format!(
            "{:<28} {:>7} {:>6} {:>7}  {:<9} {}\n",
            "feature (largest 12 here)", "PSI", "JS", "W1/sd", "level", "what moved"
        ));
    }
    for f in r.intake.iter().take(12) {
        s.push_str(&drift_row(f));
    }
    s.push_str(&format!(
        "\n## Accuracy by month\n\nheld-out: the evaluated model on its test window; live: scores stored by `pipewise score`, against the outcomes known now. Months with at least {} rows. Test-window ROC-AUC {}.\n\n{:<8} {:<9} {:>6} {:>9} {:>9} {:>8} {:>7}\n",
        monitor::MIN_MONTH_ROWS,
        r.test_roc_auc.map_or("-".into(), |a| format!("{a:.3}")),
        "month",
        "source",
        "rows",
        "predicted",
        "observed",
        "ROC-AUC",
        "ECE"
    ));
    if r.accuracy.is_empty() {
        s.push_str("No month with enough scored rows whose outcome is known.\n");
    }
    for m in &r.accuracy {
        s.push_str(&format!(
            "{:<8} {:<9} {:>6} {:>8.1}% {:>8.1}% {:>8} {:>7.3}\n",
            m.month,
            m.source.replace('_', "-"),
            m.rows,
            100.0 * m.mean_predicted,
            100.0 * m.observed,
            m.roc_auc.map_or("-".into(), |a| format!("{a:.3}")),
            m.ece
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("\nNote: {n}\n"));
    }
    s.push_str("\n## Alerts\n\n");
    if r.alerts.is_empty() {
        s.push_str("None.\n");
    }
    for a in &r.alerts {
        s.push_str(&format!("ALERT {a}\n"));
    }
    s
}
