//! `pipewise territories segments|plan|compare`: parse, call the engine,
//! present.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use pipewise_engines::segments::{SegmentOptions, Segmentation, adjusted_rand_index};

#[derive(Subcommand)]
pub enum TerritoriesCmd {
    /// Account segments by how accounts buy (principal components of each
    /// industry's buying profile and company size, then k-means with k
    /// chosen by silhouette), each described by what sets it apart.
    Segments {
        /// Number of segments (default: chosen by silhouette, 2 to 10).
        #[arg(long)]
        k: Option<usize>,
        /// The simulator's ground_truth.json: also report the adjusted Rand
        /// index against the accounts' latent segments.
        #[arg(long)]
        truth: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// A proposed account plan: each account with the rep most likely to
    /// win it (pooled win rate in its segment × its potential), each rep's
    /// accounts and potential within the band, accounts kept in their
    /// owner's region, at most --max-moved of them moved; with the
    /// current plan's figures beside it.
    Plan(PlanArgs),
    /// The current plan against the proposal, side by side, in text:
    /// expected bookings with intervals, balance per rep, the moves and why.
    Compare(PlanArgs),
    /// Whitespace: accounts nobody has worked yet (and, with --accounts, a
    /// list of prospects) by likeness to the accounts that became
    /// customers and expected value; the ranking judged on the last year.
    Whitespace {
        /// A CSV of prospects to score too: id, name, industry, employees,
        /// annual_revenue (and optionally location), with a header row.
        #[arg(long)]
        accounts: Option<PathBuf>,
        /// How many to list (text; JSON lists all).
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Each rep's accounts and potential within this share of their peers'
    /// mean (above 0, below 1).
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    band: f64,
    /// At most this share of all accounts changes owner (0..1).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    max_moved: f64,
    /// A customer moves only if another rep's expected bookings beat the
    /// owner's by more than this share (0 or more).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    customer_gain: f64,
    /// Accounts may move across regions.
    #[arg(long)]
    any_region: bool,
    /// A file of account ids (one per line, or a CSV whose first column is
    /// the id) that keep their owner.
    #[arg(long)]
    locked: Option<PathBuf>,
    /// Number of segments (default: chosen by silhouette).
    #[arg(long)]
    k: Option<usize>,
    /// Write the plan as CSV for the CRM (account_id, account_name,
    /// current_rep_id, rep_id, moved, reason).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// The simulator's ground_truth.json: also judge both plans with the
    /// hidden truth.
    #[arg(long)]
    truth: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn territories(db: &Path, cmd: TerritoriesCmd) -> Result<ExitCode> {
    let store = crate::open(db)?;
    let crm = store.load_crm()?;
    match cmd {
        TerritoriesCmd::Segments { k, truth, json } => {
            let opts = SegmentOptions {
                k,
                ..SegmentOptions::default()
            };
            let seg = pipewise_engines::segments::segment(&crm, &opts)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ari = match &truth {
                Some(p) => Some(truth_ari(p, &crm, &seg)?),
                None => None,
            };
            if json {
                let mut v = serde_json::to_value(&seg)?;
                if let Some(a) = ari {
                    v["truth"] = serde_json::json!({"adjusted_rand_index": a.0, "accounts": a.1});
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_segments(&seg);
                if let Some((a, n)) = ari {
                    println!(
                        "\nAgainst the simulator's latent segments ({n} accounts): adjusted Rand index {a:.3}."
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TerritoriesCmd::Whitespace {
            accounts,
            top,
            json,
        } => whitespace(crm, accounts.as_deref(), top, json),
        TerritoriesCmd::Plan(a) => plan(&store, &crm, a, false),
        TerritoriesCmd::Compare(a) => plan(&store, &crm, a, true),
    }
}

fn read_locked(path: &Path) -> Result<std::collections::HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| {
            l.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .filter(|l| !l.is_empty() && l != "id" && l != "account_id")
        .collect())
}

fn plan(
    store: &pipewise_store::SqliteStore,
    crm: &pipewise_store::read::CrmData,
    a: PlanArgs,
    compare: bool,
) -> Result<ExitCode> {
    use pipewise_engines::territory::{PlanOptions, check_with_truth};
    anyhow::ensure!(
        a.band > 0.0 && a.band < 1.0,
        "--band {}: expected a share above 0 and below 1 (0.1 is ±10%)",
        a.band
    );
    anyhow::ensure!(
        a.customer_gain.is_finite() && a.customer_gain >= 0.0,
        "--customer-gain {}: expected a share of 0 or more (0.2 is 20%)",
        a.customer_gain
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.max_moved),
        "--max-moved {}: expected a share between 0 and 1",
        a.max_moved
    );
    let locked = match &a.locked {
        Some(p) => read_locked(p)?,
        None => Default::default(),
    };
    let unknown: Vec<&String> = locked
        .iter()
        .filter(|id| !crm.accounts.iter().any(|acc| &acc.id == *id))
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "--locked: {} account id(s) not in the database, e.g. {}",
        unknown.len(),
        unknown.first().map_or("", |s| s.as_str())
    );
    let seg = pipewise_engines::segments::segment(
        crm,
        &SegmentOptions {
            k: a.k,
            ..SegmentOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = PlanOptions {
        band: a.band,
        max_moved: a.max_moved,
        keep_region: !a.any_region,
        customer_gain: a.customer_gain,
        locked,
        as_of: None,
    };
    let report =
        pipewise_engines::territory::plan(crm, &seg, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let truth = match &a.truth {
        Some(p) => {
            let t = pipewise_engines::truth::Truth::load(p)?;
            check_with_truth(crm, &report, &t)
        }
        None => None,
    };
    if let Some(path) = &a.csv {
        let px = crate::output::pseudonymiser(store)?;
        let mut w = csv::Writer::from_path(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        w.write_record([
            "account_id",
            "account_name",
            "current_rep_id",
            "rep_id",
            "moved",
            "reason",
        ])?;
        for x in &report.assignments {
            let moved = x.current_rep_id.as_deref() != Some(x.rep_id.as_str());
            w.write_record(crate::output::export_row(
                px.as_ref(),
                [
                    x.account_id.as_str(),
                    x.account_name.as_str(),
                    x.current_rep_id.as_deref().unwrap_or(""),
                    x.rep_id.as_str(),
                    if moved { "yes" } else { "no" },
                    x.reason.as_str(),
                ],
            ))?;
        }
        w.flush()?;
        eprintln!(
            "Wrote the plan for the CRM to {} ({} accounts, {} moved).",
            path.display(),
            report.assignments.len(),
            report.moved
        );
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["segments"] = serde_json::to_value(&seg.segments)?;
        if let Some(t) = &truth {
            v["truth"] = serde_json::to_value(t)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let money = |x: f64| crate::output::thousands(x.round().max(0.0) as u64);
    let signed = |x: f64| {
        let m = crate::output::thousands(x.abs().round() as u64);
        if x < -0.5 { format!("-{m}") } else { m }
    };
    let locked_n = report.assignments.iter().filter(|x| x.locked).count();
    println!(
        "Plan for {} accounts and {} reps in {} segments (band ±{:.0}%, at most {:.0}% moved{}{}).",
        report.accounts,
        report.current.reps,
        seg.segments.len(),
        report.band * 100.0,
        report.max_moved * 100.0,
        if report.keep_region {
            ", accounts stay in their region, peers are the reps of one region"
        } else {
            ", accounts may move across regions, every rep's peers are all reps"
        },
        if locked_n > 0 {
            format!(", {locked_n} accounts locked with their owner")
        } else {
            String::new()
        }
    );
    if report.status == "relaxed" {
        println!(
            "The program could not keep every rep inside the band with the accounts it may move; the reps left outside are named below."
        );
    }
    println!("\n{:<34} {:>24} {:>24}", "", "current", "proposed");
    println!(
        "{:<34} {:>24} {:>24}",
        "expected bookings",
        money(report.current.expected_bookings),
        money(report.proposed.expected_bookings)
    );
    println!(
        "{:<34} {:>24} {:>24}",
        "  80% interval",
        format!(
            "{}-{}",
            money(report.current.low),
            money(report.current.high)
        ),
        format!(
            "{}-{}",
            money(report.proposed.low),
            money(report.proposed.high)
        )
    );
    println!(
        "{:<34} {:>24} {:>24}",
        "reps within the band",
        format!(
            "{} of {}",
            report.current.reps_within_band, report.current.reps
        ),
        format!(
            "{} of {}",
            report.proposed.reps_within_band, report.proposed.reps
        )
    );
    println!(
        "\nGain: {} ({:+.1}%; 80% interval {} to {}). Accounts moved: {} ({:.1}%), of which customers {}; accounts with no owner today given one: {}.",
        signed(report.gain),
        report.gain / report.current.expected_bookings.max(1.0) * 100.0,
        signed(report.gain_low),
        signed(report.gain_high),
        report.moved,
        report.moved_share * 100.0,
        report.customers_moved,
        report.newly_assigned
    );
    if let Some(t) = &truth {
        println!(
            "With the simulator's hidden truth: current {}, proposed {} ({:+.1}%).",
            money(t.current),
            money(t.proposed),
            t.gain * 100.0
        );
    }
    if compare {
        println!(
            "\nEach rep's accounts and potential as a share of their peers' mean, today -> proposed:"
        );
        println!(
            "{:<24} {:<20} {:>9} {:>9} {:>11} {:>11} {:>8}",
            "rep", "region", "accounts", "->", "potential", "->", "band"
        );
        for (c, p) in report.current.balance.iter().zip(&report.proposed.balance) {
            println!(
                "{:<24} {:<20} {:>8.0}% {:>8.0}% {:>10.0}% {:>10.0}% {:>8}",
                c.name,
                c.region.as_deref().unwrap_or("-"),
                c.accounts_ratio * 100.0,
                p.accounts_ratio * 100.0,
                c.potential_ratio * 100.0,
                p.potential_ratio * 100.0,
                if p.within_band { "ok" } else { "outside" }
            );
        }
    }
    let outside: Vec<&pipewise_engines::territory::Balance> = report
        .proposed
        .balance
        .iter()
        .filter(|b| b.outside_why.is_some())
        .collect();
    if !outside.is_empty() {
        println!();
    }
    for b in outside {
        println!(
            "{} stays outside the band: {}.",
            b.name,
            b.outside_why.as_deref().unwrap_or_default()
        );
    }
    if compare {
        let mut moves: Vec<&pipewise_engines::territory::Assignment> = report
            .assignments
            .iter()
            .filter(|x| !x.reason.is_empty())
            .collect();
        moves.sort_by(|x, y| {
            (y.expected - y.current_expected.unwrap_or(0.0))
                .total_cmp(&(x.expected - x.current_expected.unwrap_or(0.0)))
        });
        println!(
            "\nLargest moves by expected bookings gained ({} in all):",
            moves.len()
        );
        for m in moves.iter().take(15) {
            println!(
                "  {} {}: {} -> {}; {}",
                m.account_id,
                m.account_name,
                m.current_rep_id.as_deref().unwrap_or("-"),
                m.rep_id,
                m.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn truth_ari(
    path: &Path,
    crm: &pipewise_store::read::CrmData,
    seg: &Segmentation,
) -> Result<(f64, usize)> {
    let t = pipewise_engines::truth::Truth::load(path)?;
    let mut names: std::collections::HashMap<&str, usize> = Default::default();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, acc) in crm.accounts.iter().enumerate() {
        if let Some(s) = t.account_segment.get(&acc.id) {
            let k = names.len();
            a.push(*names.entry(s.as_str()).or_insert(k));
            b.push(seg.labels[i]);
        }
    }
    anyhow::ensure!(
        !a.is_empty(),
        "{}: no account of the database has a latent segment there",
        path.display()
    );
    Ok((
        (adjusted_rand_index(&a, &b) * 1000.0).round() / 1000.0,
        a.len(),
    ))
}

fn print_segments(s: &Segmentation) {
    let how = if s.k_chosen_by == "given" {
        "as asked".to_string()
    } else {
        let curve: Vec<String> = s
            .silhouettes
            .iter()
            .map(|k| format!("k={} {:.2}", k.k, k.silhouette))
            .collect();
        format!(
            "the smallest k within 0.03 of the best silhouette ({})",
            curve.join(", ")
        )
    };
    println!(
        "{} segments of {} accounts by {} ({} principal components, {:.0}% of the variance); k: {how}.",
        s.k,
        s.accounts.len(),
        s.basis,
        s.components,
        s.explained_variance * 100.0
    );
    for seg in &s.segments {
        println!(
            "\n{} — {} ({} accounts, {:.0}%)\n  {}",
            seg.id,
            seg.name,
            seg.accounts,
            seg.share * 100.0,
            seg.description
        );
    }
    let dropped: Vec<&str> = s
        .features
        .iter()
        .filter(|f| f.reliability == 0.0)
        .map(|f| f.feature.as_str())
        .collect();
    if !dropped.is_empty() {
        println!(
            "\nLeft out as sampling noise (industries differ no more than chance): {}.",
            dropped.join(", ")
        );
    }
}

/// Reads a prospects CSV into accounts (errors name the file, line and
/// column).
fn read_prospects(
    path: &Path,
    known: &std::collections::HashSet<String>,
) -> Result<Vec<pipewise_store::read::Account>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let id = col(&["id", "account_id"]).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: line 1: no id column (expected 'id' or 'account_id')",
            path.display()
        )
    })?;
    let (name, industry, employees, revenue, location) = (
        col(&["name", "account_name", "account"]),
        col(&["industry", "sector"]),
        col(&["employees"]),
        col(&["annual_revenue", "revenue"]),
        col(&["location", "country"]),
    );
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| anyhow::anyhow!("{}: line {line}: {e}", path.display()))?;
        let get = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let number = |c: Option<usize>, what: &str| -> Result<Option<f64>> {
            match get(c) {
                None => Ok(None),
                Some(v) => v.replace(',', "").parse::<f64>().map(Some).map_err(|_| {
                    anyhow::anyhow!(
                        "{}: line {line}, column {}: {what} '{v}' is not a number",
                        path.display(),
                        c.map_or(0, |c| c + 1)
                    )
                }),
            }
        };
        let account_id = get(Some(id)).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: line {line}, column {}: empty id",
                path.display(),
                id + 1
            )
        })?;
        anyhow::ensure!(
            !known.contains(&account_id),
            "{}: line {line}: account {account_id} is already in the database",
            path.display()
        );
        anyhow::ensure!(
            seen.insert(account_id.clone()),
            "{}: line {line}: account {account_id} appears twice",
            path.display()
        );
        out.push(pipewise_store::read::Account {
            name: get(name).unwrap_or_else(|| account_id.clone()),
            id: account_id,
            industry: get(industry),
            employees: number(employees, "employees")?,
            annual_revenue: number(revenue, "annual_revenue")?,
            location: get(location),
            ..Default::default()
        });
    }
    Ok(out)
}

fn whitespace(
    mut crm: pipewise_store::read::CrmData,
    prospects: Option<&Path>,
    top: usize,
    json: bool,
) -> Result<ExitCode> {
    let mut imported = std::collections::HashSet::new();
    if let Some(p) = prospects {
        let known: std::collections::HashSet<String> =
            crm.accounts.iter().map(|a| a.id.clone()).collect();
        let extra = read_prospects(p, &known)?;
        imported.extend(extra.iter().map(|a| a.id.clone()));
        crm.accounts.extend(extra);
    }
    let seg = pipewise_engines::segments::segment(&crm, &SegmentOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = pipewise_engines::whitespace::whitespace(&crm, &seg, &imported)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} untouched accounts{} ({} worked, {} became customers); best expected value first:",
        r.untouched,
        if imported.is_empty() {
            String::new()
        } else {
            format!(
                ", {} of them from {}",
                imported.len(),
                prospects.map_or(String::new(), |p| p.display().to_string())
            )
        },
        r.worked,
        r.customers
    );
    let money = |x: f64| crate::output::thousands(x.round().max(0.0) as u64);
    for a in r.accounts.iter().take(top) {
        println!(
            "  {} {}: {:.0}% like a customer, potential {}, expected {} ({}; {})",
            a.account_id,
            a.account_name,
            a.likeness * 100.0,
            money(a.potential),
            money(a.expected_value),
            a.segment,
            a.why
        );
    }
    match &r.evaluation {
        Some(e) => println!(
            "\nJudged as of {}: of the {} accounts untouched then and worked since, {} became customers; \
             likeness AUC {:.3}, company size alone {:.3}.",
            e.split, e.accounts, e.became_customers, e.auc, e.baseline_auc
        ),
        None => println!("\nNot judged: too little history a year back."),
    }
    Ok(ExitCode::SUCCESS)
}
