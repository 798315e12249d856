//! `pipewise fairness`: a model's held-out scores, or the coaching
//! recommendations, by group of reps and of customers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use pipewise_app::fairness::{self, Attributes, FairnessReport, Subject};
use pipewise_engines::fairness::Audit;

#[derive(Args, Clone)]
pub struct FairnessArgs {
    /// What to audit: win, slip, lead (a model's held-out scores) or
    /// coaching (the rate of each recommendation).
    #[arg(long, default_value = "win")]
    pub model: String,
    /// A model version (default: the active one).
    #[arg(long)]
    pub version: Option<i64>,
    /// A group attribute; repeat for several. Reps: region, team, tenure,
    /// new_hire; customers: industry, size, location; or a column of the
    /// --attributes file. Default: region, team, tenure, industry, size.
    #[arg(long = "group", value_name = "COLUMN")]
    pub groups: Vec<String>,
    /// A CSV of further attributes (an HR export): first column user_id,
    /// name (reps) or account_id (accounts), then one column per attribute.
    /// Read for this report only, never stored.
    #[arg(long, value_name = "FILE")]
    pub attributes: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(db: &Path, a: &FairnessArgs) -> Result<ExitCode> {
    let Some(subject) = Subject::parse(&a.model) else {
        bail!(
            "--model {:?}: expected win, slip, lead or coaching",
            a.model
        );
    };
    let store = crate::open(db)?;
    let crm = store.load_crm()?;
    let attributes = a
        .attributes
        .as_deref()
        .map(|p| Attributes::read(p, &crm))
        .transpose()?;
    let bars = crate::output::Bars::new(!a.json);
    let report = fairness::report(
        &store,
        crm,
        subject,
        a.version,
        &a.groups,
        attributes.as_ref(),
        &bars,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn audit_text(a: &Audit, out: &mut String) {
    out.push_str(&format!("\n## By {}\n\n", a.attribute));
    if a.groups.is_empty() {
        out.push_str("No held-out row has a value.\n");
        return;
    }
    out.push_str(&format!(
        "{:<28} {:>6} {:>7} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>14} {:>8} {:>6}\n",
        "group",
        "rows",
        "clusters",
        "outcome",
        "predicted",
        "selected",
        "impact",
        "outc.",
        "TPR",
        "FPR",
        "calib. gap",
        "vs rest",
        "ECE"
    ));
    for g in &a.groups {
        out.push_str(&format!(
            "{:<28} {:>6} {:>7} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>14} {:>8} {:>6}{}\n",
            truncate(&g.group, 28),
            g.rows,
            g.clusters,
            pct(Some(g.outcome_rate)),
            pct(Some(g.mean_predicted)),
            pct(Some(g.selection_rate)),
            g.impact_ratio.map_or("-".into(), |x| format!("{x:.2}")),
            g.outcome_ratio.map_or("-".into(), |x| format!("{x:.2}")),
            pct(g.true_positive_rate),
            pct(g.false_positive_rate),
            format!(
                "{:+.1} ± {}",
                100.0 * g.calibration_gap,
                g.calibration_gap_se
                    .map_or("-".into(), |x| format!("{:.1}", 100.0 * x))
            ),
            g.relative_gap
                .map_or("-".into(), |x| format!("{:+.1}", 100.0 * x)),
            format!("{:.3}", g.ece),
            if g.judged { "" } else { "  (too few to judge)" }
        ));
    }
    out.push_str(&format!(
        "\nDemographic parity (the rate of the positive prediction: a score at or above the threshold) difference {}, ratio {}; equalized-odds difference {}.\n",
        a.demographic_parity_difference
            .map_or("-".into(), |v| format!("{v:.3}")),
        a.demographic_parity_ratio
            .map_or("-".into(), |v| format!("{v:.2}")),
        a.equalized_odds_difference
            .map_or("-".into(), |v| format!("{v:.3}")),
    ));
    if a.unknown_rows > 0 {
        out.push_str(&format!(
            "{} rows have no {} (left out).\n",
            a.unknown_rows, a.attribute
        ));
    }
    if a.disparities.is_empty() {
        out.push_str("No disparity past a threshold.\n");
    }
    for d in &a.disparities {
        out.push_str(&format!(
            "{} {}\n",
            if d.flagged { "FLAG" } else { "  - " },
            d.message
        ));
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// The report as text.
pub fn text(r: &FairnessReport) -> String {
    let mut out = String::new();
    match r.version {
        Some(v) if r.model == "lead" => out.push_str(&format!(
            "# Fairness: lead model, version {v}\n\nHeld-out predictions of its validation folds ({} rows: each lead scored by a model that did not see it, with its outcome). Selected: scored at or above {:.3}, the top {:.0}% of the scores (what a queue puts first).",
            r.rows,
            r.thresholds.decision,
            100.0 * fairness::LEAD_SELECTED_SHARE,
        )),
        Some(v) => out.push_str(&format!(
            "# Fairness: {} model, version {v}\n\nHeld-out scores of the test window {} to {} ({} rows: deals the model never saw, with their outcomes). Selected: scored at or above {:.2}.",
            r.model,
            r.test_from.as_deref().unwrap_or("?"),
            r.test_to.as_deref().unwrap_or("?"),
            r.rows,
            r.thresholds.decision,
        )),
        None => out.push_str(&format!(
            "# Fairness: coaching recommendations\n\nThe rate of each recommended skill among {} reps, by group, against the other reps (Fisher exact test).\n",
            r.rows
        )),
    }
    if r.version.is_some() {
        out.push_str(" Calibration gap: observed minus predicted, ± its standard error clustered by rep for groups of reps, by account for groups of customers (rows of one rep, or one account, are not independent); vs rest: against the other groups, leaving out a group clearly off.\n");
    }
    if r.version.is_some() {
        out.push_str(&format!(
            "Flags (each a clear difference: two-sided test at {} per attribute, shared among its groups): a group miscalibrated by more than {:.0} points beyond the other groups; favoured at under {:.0}% of the top group's rate while its outcomes are not (four-fifths rule); error rates {:.0} points apart from such miscalibration.\n",
            r.thresholds.alpha,
            100.0 * r.thresholds.calibration_gap,
            100.0 * r.thresholds.four_fifths,
            100.0 * r.thresholds.equalized_odds
        ));
    }
    for a in &r.audits {
        audit_text(a, &mut out);
    }
    if !r.record.is_empty() {
        out.push_str(&format!(
            "\n# The record by group\n\nEach open deal's entered stage against the stage its evidence supports (activities, calls, contacts engaged: the evidence-stage engine), weekly over the last {} weeks. A flag says a group's entered stages run further from its deals than the other groups' by at least {:.2} stages, clearly: a biased record, which every model and forecast reads.\n",
            fairness::RECORD_WEEKS,
            pipewise_engines::fairness::RECORD_MIN_GAP
        ));
    }
    for a in &r.record {
        out.push_str(&format!("\n## By {}\n\n", a.attribute));
        out.push_str(&format!(
            "{:<28} {:>9} {:>7} {:>13} {:>8} {:>8} {:>8}\n",
            "group", "snapshots", "clusters", "mean gap", "vs rest", "ahead", "behind"
        ));
        for g in &a.groups {
            out.push_str(&format!(
                "{:<28} {:>9} {:>7} {:>13} {:>8} {:>8} {:>8}{}\n",
                truncate(&g.group, 28),
                g.snapshots,
                g.clusters,
                format!("{:+.2} ± {:.2}", g.mean_gap, g.mean_gap_se),
                g.relative_gap.map_or("-".into(), |x| format!("{x:+.2}")),
                pct(Some(g.share_ahead)),
                pct(Some(g.share_behind)),
                if g.judged { "" } else { "  (too few to judge)" }
            ));
        }
        if a.disparities.is_empty() {
            out.push_str("No group's record differs by the threshold.\n");
        }
        for d in &a.disparities {
            out.push_str(&format!(
                "{} {}\n",
                if d.flagged { "FLAG" } else { "  - " },
                d.message
            ));
        }
    }
    for pipewise_app::fairness::RecommendationRates {
        attribute: attr,
        rates,
    } in &r.recommendation_rates
    {
        out.push_str(&format!("\n## By {attr}\n\n"));
        out.push_str(&format!(
            "{:<20} {:<28} {:>5} {:>8} {:>8} {:>6} {:>8}\n",
            "recommendation", "group", "reps", "rate", "rest", "ratio", "p"
        ));
        for x in rates {
            out.push_str(&format!(
                "{:<20} {:<28} {:>5} {:>8} {:>8} {:>6} {:>8.3}{}\n",
                x.recommendation,
                truncate(&x.group, 28),
                x.reps,
                pct(Some(x.rate)),
                pct(Some(x.rest_rate)),
                x.ratio.map_or("-".into(), |v| format!("{v:.2}")),
                x.p_value,
                if x.flagged { "  FLAG" } else { "" }
            ));
        }
    }
    for n in &r.notes {
        out.push_str(&format!("\nNote: {n}\n"));
    }
    out.push_str(&format!(
        "\n{}\n",
        if r.flagged {
            "Flagged: see the FLAG lines above. A flag on the model says it treats a group differently from what the group's outcomes warrant; a flag on the record says a group's entered stages run further from its deals than the other groups'; a flag on coaching says a recommendation goes to one group far more or less often. Before trusting scores for a flagged group, check how its deals are recorded."
        } else {
            "Nothing flagged."
        }
    ));
    out
}
