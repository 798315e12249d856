//! `pipewise comp simulate`: incentive plans applied to the database's
//! performance, one plan or two side by side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use pipewise_app::comp::CompReport;
use pipewise_engines::comp::{Plan, PlanResult};

#[derive(Subcommand, Clone)]
pub enum CompCmd {
    /// Each rep's payout under a plan (TOML) from the period's actual
    /// performance, the plan's cost, cost of sales, payout against
    /// attainment and pay dispersion; with --vs, a second plan side by side
    /// (docs/comp.md).
    Simulate(SimulateArgs),
}

#[derive(Args, Clone)]
pub struct SimulateArgs {
    /// The plan of record (TOML).
    #[arg(long)]
    plan: PathBuf,
    /// A plan to compare with it (TOML).
    #[arg(long)]
    vs: Option<PathBuf>,
    /// The period's first day (default: 12 months before --to).
    #[arg(long)]
    from: Option<String>,
    /// The period's last day (default: the data's last closed deal).
    #[arg(long)]
    to: Option<String>,
    /// How effort responds to the marginal pay rate under the compared
    /// plan: none (performance as it was) or elasticity.
    #[arg(long, default_value = "none", value_parser = ["none", "elasticity"])]
    behaviour: String,
    /// With --behaviour elasticity: the change in performance per unit
    /// change in the marginal pay rate, relative (default 0.2: a 50% higher
    /// rate gives 10% more).
    #[arg(long, allow_negative_numbers = true)]
    elasticity: Option<f64>,
    /// Reps listed (highest pay first).
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[arg(long)]
    json: bool,
}

fn read_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the plan", path.display()))?;
    Plan::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn comp(db: &Path, cmd: &CompCmd) -> Result<ExitCode> {
    let CompCmd::Simulate(a) = cmd;
    let plan = read_plan(&a.plan)?;
    let vs = a.vs.as_deref().map(read_plan).transpose()?;
    let behaviour =
        pipewise_app::comp::behaviour_of(Some(a.behaviour.as_str()), a.elasticity, vs.is_some())
            .map_err(|e| {
                anyhow::anyhow!(
                    "--{} {}: expected {}",
                    e.field.replace('_', "-"),
                    e.got,
                    e.expected
                        .replace(": give vs", ": give --vs PLAN")
                        .replace("behaviour=elasticity", "--behaviour elasticity")
                )
            })?;
    let store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let r = pipewise_app::comp::simulate(
        &store,
        &crm,
        &plan,
        vs.as_ref(),
        a.from.as_deref(),
        a.to.as_deref(),
        behaviour,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", text(&r, a.top));
    }
    Ok(ExitCode::SUCCESS)
}

fn money(x: f64) -> String {
    crate::output::thousands(x.round() as u64)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

fn text(r: &CompReport, top: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Incentive plans on {} to {} ({:.1} months, {} reps)",
        r.from,
        r.to,
        r.months,
        r.plan.reps.len()
    );
    let plans: Vec<&PlanResult> = std::iter::once(&r.plan).chain(r.vs.as_ref()).collect();
    let _ = writeln!(
        s,
        "\n{:<34}{}",
        "",
        plans
            .iter()
            .map(|p| format!("{:>22}", p.plan))
            .collect::<String>()
    );
    let row = |s: &mut String, label: &str, f: &dyn Fn(&PlanResult) -> String| {
        let _ = writeln!(
            s,
            "{:<34}{}",
            label,
            plans
                .iter()
                .map(|p| format!("{:>22}", f(p)))
                .collect::<String>()
        );
    };
    row(&mut s, "bookings paid on", &|p| money(p.bookings));
    row(&mut s, "cost", &|p| money(p.cost));
    row(&mut s, "  base", &|p| money(p.base));
    row(&mut s, "  variable", &|p| money(p.variable));
    row(&mut s, "  SPIFFs", &|p| money(p.spiffs));
    row(&mut s, "  draws guaranteed", &|p| money(p.draw_guarantee));
    row(&mut s, "draws advanced (owed back)", &|p| {
        money(p.draw_owed)
    });
    row(&mut s, "cost of sales (cost / bookings)", &|p| {
        if p.cost_of_sales.is_finite() {
            format!("{:.1}%", 100.0 * p.cost_of_sales)
        } else {
            "-".into()
        }
    });
    row(&mut s, "reps at or above quota", &|p| {
        p.at_or_above_quota.to_string()
    });
    row(&mut s, "pay dispersion (Gini)", &|p| {
        format!("{:.3}", p.pay_gini)
    });
    row(&mut s, "highest / lowest decile of pay", &|p| {
        p.pay_p90_p10.map_or("-".into(), |x| format!("{x:.2}"))
    });
    for p in &plans {
        let _ = writeln!(s, "\nPayout against attainment: {}", p.plan);
        let _ = writeln!(
            s,
            "  {:<16} {:>5} {:>16} {:>14}",
            "attainment", "reps", "mean attainment", "pay / OTE"
        );
        for b in &p.by_attainment {
            let _ = writeln!(
                s,
                "  {:<16} {:>5} {:>16} {:>14}",
                b.band,
                b.reps,
                pct(b.mean_attainment),
                pct(b.mean_pay_to_ote)
            );
        }
    }
    let _ = writeln!(
        s,
        "\nReps, highest pay under {} first (attainment weighted over its measures){}:",
        r.plan.plan,
        match &r.vs {
            Some(v) => format!(
                "; pay A: {}, pay B: {} (on the bookings B assumes)",
                r.plan.plan, v.plan
            ),
            None => String::new(),
        }
    );
    let _ = write!(
        s,
        "  {:<24} {:>14} {:>11} {:>12}",
        "rep", "bookings", "attainment", "pay A"
    );
    if r.vs.is_some() {
        let _ = write!(s, " {:>12} {:>14}", "pay B", "bookings B");
    }
    let _ = writeln!(s);
    for rp in r.plan.reps.iter().take(top) {
        let _ = write!(
            s,
            "  {:<24} {:>14} {:>11} {:>12}",
            rp.rep.chars().take(24).collect::<String>(),
            money(rp.bookings),
            pct(rp.weighted_attainment),
            money(rp.total)
        );
        if let Some(v) = &r.vs
            && let Some(o) = v.reps.iter().find(|x| x.rep_id == rp.rep_id)
        {
            let _ = write!(s, " {:>12} {:>14}", money(o.total), money(o.bookings));
        }
        let _ = writeln!(s);
    }
    if r.plan.reps.len() > top {
        let _ = writeln!(
            s,
            "  ... {} more (--top N, or --json for all)",
            r.plan.reps.len() - top
        );
    }
    if r.vs.is_some() {
        let _ = writeln!(s, "\nBehaviour: {}.", r.behaviour_text);
    }
    for n in &r.notes {
        let _ = writeln!(s, "Note: {n}.");
    }
    s
}
