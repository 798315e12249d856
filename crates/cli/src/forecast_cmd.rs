//! `pipewise forecast` and `pipewise backtest forecast`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use pipewise_engines::forecast::{
    self, Backtest, DealChange, Forecast, ForecastOptions, GroupForecast, PeriodKind, RollUp,
};
use pipewise_engines::predict;
use pipewise_features::Data;

use pipewise_app::forecasting::forecast_at;

use crate::output::{Bars, FractionBar, money};
use crate::predict_cmd::{load, parse_as_of};

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Rep,
    Team,
    Region,
    Company,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Quarter,
    Month,
}

#[derive(Args)]
pub struct ForecastArgs {
    /// The period: a quarter (2025-Q3) or a month (2025-07). Default: the
    /// quarter holding the date a week after the as-of date.
    #[arg(long)]
    period: Option<String>,
    /// Roll-up.
    #[arg(long, value_enum, default_value = "company")]
    by: By,
    /// Forecast as of this date (default: the latest date in the data).
    #[arg(long)]
    as_of: Option<String>,
    /// Monte Carlo draws.
    #[arg(long, default_value_t = 10_000)]
    draws: usize,
    /// Deals listed in "what moved the number".
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum BacktestCmd {
    /// Forecast every past period at each of its Mondays with what was known
    /// then, and score against what closed (pipewise and the baselines).
    Forecast {
        #[arg(long, value_enum, default_value = "quarter")]
        period: Kind,
        /// Monte Carlo draws per forecast.
        #[arg(long, default_value_t = 2_000)]
        draws: usize,
        #[arg(long)]
        json: bool,
    },
}

fn snapshots(data: &Data, opts: &ForecastOptions, quiet: bool) -> predict::Snapshots {
    crate::predict_cmd::snapshots(data, &forecast::snapshot_dates(data, opts), quiet)
}

impl By {
    pub fn roll_up(self) -> RollUp {
        match self {
            By::Rep => RollUp::Rep,
            By::Team => RollUp::Team,
            By::Region => RollUp::Region,
            By::Company => RollUp::Company,
        }
    }
}

pub fn forecast_cmd(db: &Path, args: ForecastArgs) -> Result<ExitCode> {
    let store = crate::open(db)?;
    let data = load(&store)?;
    let as_of = parse_as_of(args.as_of.as_deref(), &data)?;
    let opts = ForecastOptions::default();
    let snap = snapshots(&data, &opts, args.json);
    // Managers' overrides hold for the forecast made today, not for one
    // made as of an earlier date.
    let excluded = if as_of == data.end {
        pipewise_app::forecasting::excluded_deals(&store)?
    } else {
        Default::default()
    };
    let (f, moved) = forecast_at(
        &data,
        &snap,
        args.period.as_deref(),
        args.by.roll_up(),
        as_of,
        args.draws,
        &excluded,
        pipewise_app::book::active_model(&store, "win")?.map(|(m, _, version)| (m, version)),
        &Bars::new(!args.json),
    )?;
    if args.json {
        let v = serde_json::json!({"forecast": f, "moved": moved});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", forecast_text(&f, &moved, args.top));
    }
    Ok(ExitCode::SUCCESS)
}

fn row(s: &mut String, g: &GroupForecast, width: usize) {
    let _ = writeln!(
        s,
        "  {:<w$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}",
        g.group,
        money(g.won_to_date),
        money(g.open_expected),
        money(g.new_expected),
        money(g.p10),
        money(g.p50),
        money(g.p90),
        money(g.commit),
        money(g.stage_weighted),
        money(g.run_rate),
        w = width
    );
}

pub fn forecast_text(f: &Forecast, moved: &[DealChange], top: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Forecast of {} bookings as of {} ({} Monte Carlo draws; {})\n",
        f.period.label,
        f.as_of,
        crate::output::thousands(f.draws as u64),
        match f.win_model_version {
            Some(v) => format!(
                "win probabilities from the registered win model v{v}, as `score` and the deal pages show them; close timing fitted on what was known then"
            ),
            None => "models fitted on what was known then".to_string(),
        }
    );
    let width = f
        .groups
        .iter()
        .map(|g| g.group.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        s,
        "  {:<w$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}",
        "",
        "won",
        "open",
        "not yet",
        "P10",
        "P50",
        "P90",
        "commit",
        "stage-wtd",
        "run-rate",
        w = width
    );
    let _ = writeln!(
        s,
        "  {:<w$} {:>9} {:>9} {:>9}",
        "",
        "to date",
        "pipeline",
        "created",
        w = width
    );
    row(&mut s, &f.total, width);
    let plain = format!(
        "\n  In plain words: an 8-in-10 chance {} lands between {} and {}; {} is as likely to be beaten as missed.",
        f.period.label,
        money(f.total.p10),
        money(f.total.p90),
        money(f.total.p50)
    );
    let thin = match f.range.learnt_from.len() {
        0 => " The range's allowance for the models' own error is a prior: no earlier period to check it against yet.".to_string(),
        1 => format!(
            " That allowance rests on one earlier period ({}): treat the range as rough.",
            f.range.learnt_from[0]
        ),
        _ => String::new(),
    };
    let _ = writeln!(s, "{plain}{thin}");
    if f.groups.len() > 1 {
        let _ = writeln!(s);
        for g in &f.groups {
            row(&mut s, g, width);
        }
    }
    let n = &f.new_pipeline;
    let hist: Vec<String> = n
        .history
        .iter()
        .map(|(p, v)| format!("{p} {}", money(*v)))
        .collect();
    let _ = writeln!(
        s,
        "\n  open pipeline: {} deals, each P(won inside {}) × amount; in each draw the deals are won or lost\n  one by one, and all of them share that draw's luck for the period (a good or a bad one);\n  not yet created: {} ± {} ({}; past periods at the same point: {}).\n  Range: widened by how far earlier forecasts missed: the open pipeline's wins by about ±{:.0}%\n  and the not yet created part by about ±{:.0}% around ×{:.2} of its estimate (one standard deviation); {}.\n  Baselines: commit = won + open deals in the commit category closing in the period;\n  stage-weighted = won + CRM stage probability × amount for deals closing in the period;\n  run-rate = won + the last 91 days' bookings per day × days left.",
        f.total.open_deals,
        f.period.label,
        money(n.mean),
        money(n.sd),
        n.method,
        if hist.is_empty() {
            "none".into()
        } else {
            hist.join(", ")
        },
        f.range.shock.open_sigma.exp_m1() * 100.0,
        f.range.shock.new_sigma.exp_m1() * 100.0,
        f.range.shock.new_shift.exp(),
        if f.range.learnt_from.is_empty() {
            f.range.method.clone()
        } else {
            format!("{} ({})", f.range.method, f.range.learnt_from.join(", "))
        }
    );
    if !moved.is_empty() {
        let total: f64 = moved.iter().map(|m| m.delta).sum();
        let _ = writeln!(
            s,
            "\nWhat moved the expected bookings over the last week ({}{} in {} deals), biggest first:",
            if total >= 0.0 { "+" } else { "-" },
            money(total.abs()),
            moved.len()
        );
        for m in moved.iter().take(top) {
            let _ = writeln!(
                s,
                "  {:<11} {:<20} {:>9}  {}",
                m.opportunity_id,
                m.rep,
                format!(
                    "{}{}",
                    if m.delta >= 0.0 { "+" } else { "-" },
                    money(m.delta.abs())
                ),
                m.reason
            );
        }
    }
    s
}

pub fn backtest_cmd(db: &Path, cmd: BacktestCmd) -> Result<ExitCode> {
    let BacktestCmd::Forecast {
        period,
        draws,
        json,
    } = cmd;
    let started = std::time::Instant::now();
    let store = crate::open(db)?;
    let data = load(&store)?;
    let opts = ForecastOptions {
        draws: draws.max(100),
        ..ForecastOptions::default()
    };
    let snap = snapshots(&data, &opts, json);
    let bar = FractionBar::new(!json, "backtesting");
    let kind = match period {
        Kind::Quarter => PeriodKind::Quarter,
        Kind::Month => PeriodKind::Month,
    };
    let b = forecast::backtest(&data, &snap, kind, &opts, &mut |k, n| {
        bar.set(k as f64 / n.max(1) as f64)
    })?;
    bar.finish();
    if json {
        println!("{}", serde_json::to_string_pretty(&b)?);
    } else {
        print!("{}", backtest_text(&b));
        println!("({:.1}s)", started.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn backtest_text(b: &Backtest) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Forecast backtest: {} forecasts ({} periods: {}), each made on a Monday with models\nfitted at the period's start on what was known then, against what closed.\n",
        b.points.len(),
        b.periods.len(),
        b.periods.join(", ")
    );
    for (title, scores) in [
        ("all forecasts", &b.scores),
        ("first half of the period", &b.scores_early),
        ("second half of the period", &b.scores_late),
    ] {
        let _ = writeln!(s, "  {title}:");
        let _ = writeln!(
            s,
            "    {:<56} {:>6} {:>6} {:>7}",
            "", "WAPE", "MAPE", "bias"
        );
        for m in scores {
            let _ = writeln!(
                s,
                "    {:<56} {:>5.1}% {:>5.1}% {:>+6.1}%",
                m.method,
                m.wape * 100.0,
                m.mape * 100.0,
                m.bias * 100.0
            );
        }
    }
    let _ = writeln!(
        s,
        "\n  The actual fell inside pipewise's P10-P90 range in {:.0}% of forecasts (an honest 80% range: about 80%;\n  forecasts of one period share its surprises, so over few periods this moves in steps).\n  Each period's range allows for the models' error as the periods before it missed (the first: a prior).",
        b.coverage_p10_p90 * 100.0
    );
    let _ = writeln!(
        s,
        "\n  {:<9} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "period", "actual", "P10", "P50", "P90", "commit"
    );
    let mut last = String::new();
    for p in &b.points {
        if p.period != last && p.weeks_left <= 13 {
            // The first forecast of each period.
            last = p.period.clone();
            let _ = writeln!(
                s,
                "  {:<9} {:>8} {:>9} {:>9} {:>9} {:>9}   (as of {})",
                p.period,
                money(p.actual),
                money(p.p10),
                money(p.p50),
                money(p.p90),
                money(p.commit),
                p.as_of
            );
        }
    }
    s
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// The forecast's Monte Carlo roll-up on synthetic deals: draws of every
    /// deal, sums per rep and for the company, P10/P50/P90 of each.
    Forecast {
        #[arg(long, default_value_t = 100_000)]
        deals: usize,
        #[arg(long, default_value_t = 500)]
        reps: usize,
        #[arg(long, default_value_t = 10_000)]
        draws: usize,
        #[arg(long)]
        json: bool,
    },
    /// Lead routing on a database's conversion model among synthetic reps
    /// of its teams: one lead at a time among every rep (latency p50/p99),
    /// then a batch assigned jointly by linear programs and the same leads
    /// one after another.
    Routing {
        /// The database to fit the (lead, rep) conversion model on.
        #[arg(long, env = "PIPEWISE_DB", default_value = "pipewise.db")]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 500)]
        reps: usize,
        /// Leads routed one at a time.
        #[arg(long, default_value_t = 10_000)]
        leads: usize,
        /// Leads of the batch.
        #[arg(long, default_value_t = 100_000)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Territories at scale from a database's accounts and deals: segments
    /// of --segment-accounts copies of its accounts, then a plan for
    /// --accounts copies (with copies of their deals) among --reps
    /// synthetic reps in 4 regions.
    Territories {
        #[arg(long, env = "PIPEWISE_DB", default_value = "pipewise.db")]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[arg(long, default_value_t = 500)]
        reps: usize,
        #[arg(long, default_value_t = 400_000)]
        segment_accounts: usize,
        #[arg(long)]
        json: bool,
    },
    /// Conversation analytics on synthetic transcripts of realistic length
    /// (speech at 150 words a minute, turns of 5-60 s): every measure and
    /// the default keyword trackers.
    Calls {
        #[arg(long, default_value_t = 100_000)]
        calls: usize,
        /// Minutes per call.
        #[arg(long, default_value_t = 30)]
        minutes: u32,
        #[arg(long)]
        json: bool,
    },
}

pub fn bench_cmd(cmd: BenchCmd) -> Result<ExitCode> {
    let (deals, reps, draws, json) = match cmd {
        BenchCmd::Territories {
            db,
            accounts,
            reps,
            segment_accounts,
            json,
        } => {
            let crm = pipewise_store::SqliteStore::open(&db)?.load_crm()?;
            let b = pipewise_app::territories::bench(&crm, accounts, reps, segment_accounts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "Segments of {} accounts: {:.1} s (k = {}).",
                    crate::output::thousands(b.segment_accounts as u64),
                    b.segment_seconds,
                    b.segment_k
                );
                println!(
                    "Plan for {} accounts ({} deals) and {} reps: segments {:.1} s, plan {:.1} s ({}; {} classes, {} variables; {:.1}% moved; {} of {} reps within the band; {} outside it by the customers kept with them alone).",
                    crate::output::thousands(b.plan_accounts as u64),
                    crate::output::thousands(b.plan_deals as u64),
                    b.plan_reps,
                    b.plan_segment_seconds,
                    b.plan_seconds,
                    b.plan_status,
                    b.plan_classes,
                    b.plan_variables,
                    b.plan_moved_share * 100.0,
                    b.plan_reps_within_band,
                    b.plan_reps,
                    b.plan_reps_outside_kept
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Routing {
            db,
            reps,
            leads,
            batch,
            json,
        } => {
            let crm = pipewise_store::SqliteStore::open(&db)?.load_crm()?;
            let b = pipewise_app::lead_desk::bench_routing(&crm, reps, leads, batch)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "One lead at a time among {} reps ({} leads): p50 {:.3} ms, p99 {:.3} ms",
                    b.reps,
                    crate::output::thousands(b.single_leads as u64),
                    b.single_p50_ms,
                    b.single_p99_ms
                );
                println!(
                    "A batch of {} leads, each among its region's {} reps: {:.2} s in {} linear programs ({} leads left to one-at-a-time routing); the same leads one after another: {:.2} s",
                    crate::output::thousands(b.batch_leads as u64),
                    b.reps / 4,
                    b.batch_seconds,
                    b.batch_programs,
                    b.batch_fallback,
                    b.sequential_seconds
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Forecast {
            deals,
            reps,
            draws,
            json,
        } => (deals, reps, draws, json),
        BenchCmd::Calls {
            calls,
            minutes,
            json,
        } => return crate::coach_cmd::bench_calls(calls, minutes, json),
    };
    anyhow::ensure!(
        deals > 0 && reps > 0 && draws > 0,
        "deals, reps and draws must be positive"
    );
    // Deterministic synthetic pipeline: probabilities 0-0.9, amounts 5k-200k.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let p: Vec<f64> = (0..deals).map(|_| next() * 0.9).collect();
    let a: Vec<f64> = (0..deals).map(|_| 5_000.0 + next() * 195_000.0).collect();
    let g: Vec<usize> = (0..deals).map(|i| i % reps).collect();
    let share = vec![1.0 / reps as f64; reps];
    let started = std::time::Instant::now();
    let sorted = forecast::simulate(
        &p,
        &a,
        &g,
        reps,
        (1e6, 2e5),
        &share,
        forecast::Shock::default(),
        draws,
        7,
    );
    let quantiles: Vec<[f64; 3]> = sorted
        .iter()
        .map(|v| [0.1, 0.5, 0.9].map(|q| forecast::quantile(v, q)))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let total = quantiles.last().copied().unwrap_or_default();
    if json {
        let v = serde_json::json!({"deals": deals, "reps": reps, "draws": draws, "seconds": seconds,
            "threads": rayon::current_num_threads(), "company_p10_p50_p90": total});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} draws of {} deals rolled up to {} reps and the company, with P10/P50/P90 of each: {:.2}s on {} threads\n(company P10 {} P50 {} P90 {})",
            crate::output::thousands(draws as u64),
            crate::output::thousands(deals as u64),
            reps,
            seconds,
            rayon::current_num_threads(),
            money(total[0]),
            money(total[1]),
            money(total[2])
        );
    }
    Ok(ExitCode::SUCCESS)
}
