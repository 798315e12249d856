//! `pipewise reps bias` and `pipewise pipeline inspect`: entered stage vs the
//! stage the evidence supports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use pipewise_app::stage::{InspectRow, StageRun, inspection, run_stage};
use pipewise_engines::predict;
use pipewise_engines::stage::{self, CrossFit, Flag, RepBias, Validation};
use pipewise_engines::truth::Truth;
use pipewise_features::format_date;

use crate::output::{Bars, money};
use crate::predict_cmd::{active, load, parse_as_of};

#[derive(Subcommand)]
pub enum RepsCmd {
    /// Each rep's stage bias: how far and how consistently their entered
    /// stages run ahead of (optimism) or behind (sandbagging) the evidence.
    Bias {
        /// The simulator's ground_truth.json: adds how well the ranking finds
        /// the reps the simulator made optimistic or sandbagging.
        #[arg(long)]
        truth: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PipelineCmd {
    /// Open deals whose entered stage disagrees with the evidence, and deals
    /// at risk of slipping, with the reasons.
    Inspect {
        /// Only this rep's deals (name or user id).
        #[arg(long)]
        rep: Option<String>,
        /// Inspect the deals open at this date (default: the latest date in the data).
        #[arg(long)]
        as_of: Option<String>,
        /// Deals listed per section (all of them with --json).
        #[arg(long, default_value_t = 15)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn reps(db: &Path, cmd: RepsCmd) -> Result<ExitCode> {
    match cmd {
        RepsCmd::Bias { truth, json } => {
            let truth = truth.as_deref().map(Truth::load).transpose()?;
            let store = crate::open(db)?;
            let run = run_stage(load(&store)?, &Bars::new(!json))?;
            let bias = stage::rep_bias(&run.data, &run.snap, &run.cf, &run.opts);
            let validation = match &truth {
                Some(t) => Some(stage::validate(&run.data, &run.snap, &bias, t, &run.opts)?),
                None => None,
            };
            if json {
                let v = serde_json::json!({
                    "from": run.snap.date.first().map(|&d| format_date(d)),
                    "to": run.snap.date.last().map(|&d| format_date(d)),
                    "reps": bias,
                    "excluded_from_evidence_fit": excluded(&run.cf),
                    "validation": validation,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", bias_text(&run, &bias, usize::MAX));
                if let Some(v) = &validation {
                    print!("{}", validation_text(v));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Per fold, the reps left out of the evidence model's final fit.
fn excluded(cf: &CrossFit) -> Vec<Vec<String>> {
    cf.models.iter().map(|m| m.excluded_reps.clone()).collect()
}

fn signed(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.2}")
    } else {
        "-".into()
    }
}

pub fn bias_text(run: &StageRun, bias: &[RepBias], limit: usize) -> String {
    let mut s = String::new();
    let from = run
        .snap
        .date
        .first()
        .map(|&d| format_date(d))
        .unwrap_or_default();
    let to = run
        .snap
        .date
        .last()
        .map(|&d| format_date(d))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "Rep stage bias: entered stage minus the stage the evidence supports, in stages\n\
         (+ ahead of the evidence: optimism; - behind it: sandbagging), averaged over the\n\
         weekly snapshots {from} to {to} of each rep's open deals; every deal judged by a\n\
         model that did not train on it; the interval treats each deal as one unit.\n"
    );
    let _ = writeln!(
        s,
        "  {:<24} {:>5} {:>6}  {:<16} {:>6} {:>6}  {:<13} last quarters",
        "rep", "deals", "gap", "95% interval", "ahead", "behind", "verdict"
    );
    let shown: Vec<&RepBias> = if limit == usize::MAX {
        bias.iter().collect()
    } else {
        // The strongest in each direction.
        let n = limit / 2;
        let mut v: Vec<&RepBias> = bias.iter().take(n).collect();
        v.extend(bias.iter().rev().take(limit - n).rev());
        v.dedup_by(|a, b| a.rep_id == b.rep_id);
        v
    };
    for b in shown {
        let quarters: Vec<String> = b
            .by_quarter
            .iter()
            .rev()
            .take(4)
            .rev()
            .map(|q| signed(q.mean_gap))
            .collect();
        let _ = writeln!(
            s,
            "  {:<24} {:>5} {:>6}  [{:>5}, {:>5}]   {:>5.0}% {:>5.0}%  {:<13} {}",
            truncate(&b.rep, 24),
            b.deals,
            signed(b.mean_gap),
            signed(b.ci_low),
            signed(b.ci_high),
            b.share_ahead * 100.0,
            b.share_behind * 100.0,
            b.verdict.text(),
            quarters.join(" ")
        );
    }
    let count = |v: stage::Verdict| bias.iter().filter(|b| b.verdict == v).count();
    let _ = writeln!(
        s,
        "\n  {} reps: {} optimistic, {} sandbagging, {} in line, {} with too few deals to tell.",
        bias.len(),
        count(stage::Verdict::Optimistic),
        count(stage::Verdict::Sandbagging),
        count(stage::Verdict::InLine),
        count(stage::Verdict::TooFewDeals)
    );
    let ex = excluded(&run.cf);
    let mean = ex.iter().map(Vec::len).sum::<usize>() as f64 / ex.len().max(1) as f64;
    if mean > 0.0 {
        let _ = writeln!(
            s,
            "  The evidence model learns from reps whose entries look truthful: on average {mean:.0} reps' deals\n  were left out of each fold's final fit because an earlier fit found their entries biased.",
        );
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub fn validation_text(v: &Validation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nAgainst the simulator's hidden truth\n\n  Evidence stage on {} snapshots of deals created from {} on (trained on the snapshots before):",
        v.test_snapshots, v.split
    );
    let _ = writeln!(
        s,
        "    {:<40} {:>8} {:>10} {:>6}",
        "", "accuracy", "within one", "MAE"
    );
    for a in &v.stage_accuracy {
        let _ = writeln!(
            s,
            "    {:<40} {:>8.3} {:>10.3} {:>6.2}",
            a.name, a.accuracy, a.within_one, a.mae
        );
    }
    let _ = writeln!(
        s,
        "  Flags: ahead of the evidence {} (precision {:.2}, recall {:.2}); behind {} (precision {:.2}, recall {:.2})\n  against the true stage.",
        v.ahead.flagged,
        v.ahead.precision,
        v.ahead.recall,
        v.behind.flagged,
        v.behind.precision,
        v.behind.recall
    );
    let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}"));
    for r in &v.reps {
        let _ = writeln!(
            s,
            "  {} reps: {} in the truth; precision@{} {}; flagged {} (precision {}, recall {})",
            r.bias,
            r.true_reps,
            r.true_reps,
            f(r.precision_at_k),
            r.flagged,
            f(r.flagged_precision),
            f(r.flagged_recall)
        );
    }
    s
}

pub fn pipeline(db: &Path, cmd: PipelineCmd) -> Result<ExitCode> {
    let PipelineCmd::Inspect {
        rep,
        as_of,
        top,
        json,
    } = cmd;
    let store = crate::open(db)?;
    let data = load(&store)?;
    let as_of = parse_as_of(as_of.as_deref(), &data)?;
    let win = active(&store, "win")?;
    let slip = active(&store, "slip")?;
    let run = run_stage(data, &Bars::new(!json))?;
    let mut rows = inspection(
        &run,
        as_of,
        win.as_ref().map(|w| (&w.0, slip.as_ref().map(|s| &s.0))),
    )?;
    if let Some(r) = &rep {
        let want = r.to_lowercase();
        rows.retain(|d| {
            d.stage.rep.to_lowercase() == want || d.stage.rep_id.to_lowercase() == want
        });
        anyhow::ensure!(
            !rows.is_empty(),
            "no open deal on {} belongs to a rep named or with the id {r:?}",
            format_date(as_of)
        );
    }
    if json {
        let v = serde_json::json!({
            "as_of": format_date(as_of),
            "models": {"win": win.as_ref().map(|w| w.2), "slip": slip.as_ref().map(|s| s.2)},
            "deals": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", inspect_text(&rows, as_of, top, slip.is_some()));
    }
    Ok(ExitCode::SUCCESS)
}

fn reasons(f: &[predict::Factor]) -> String {
    f.iter()
        .map(|f| f.text.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn inspect_text(rows: &[InspectRow], as_of: i64, top: usize, have_slip: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Pipeline inspection as of {}: {} open deals",
        format_date(as_of),
        rows.len()
    );
    s.push_str(&discrepancy_text(rows, top));
    slip_text(&mut s, rows, top, have_slip);
    s
}

/// The deals ahead of and behind their evidence, largest first.
pub fn discrepancy_text(rows: &[InspectRow], top: usize) -> String {
    let mut s = String::new();
    for dir in [Flag::AheadOfEvidence, Flag::BehindEvidence] {
        let mut v: Vec<&InspectRow> = rows.iter().filter(|r| r.stage.flag == dir).collect();
        v.sort_by(|a, b| {
            b.stage
                .amount
                .unwrap_or(0.0)
                .total_cmp(&a.stage.amount.unwrap_or(0.0))
        });
        let total: f64 = v.iter().filter_map(|r| r.stage.amount).sum();
        let _ = writeln!(
            s,
            "\n{} {} ({} deals, {}), largest first:",
            match dir {
                Flag::AheadOfEvidence => "Ahead of the evidence",
                _ => "Behind the evidence",
            },
            match dir {
                Flag::AheadOfEvidence => "(entered stage further along than the deal's evidence)",
                _ => "(the evidence supports a later stage than entered)",
            },
            v.len(),
            money(total)
        );
        for r in v.iter().take(top) {
            let d = &r.stage;
            let _ = writeln!(
                s,
                "  {:<11} {:<22} {:>8}  entered {:<13} evidence {:<13} ({:.0}%)\n              {}",
                d.opportunity_id,
                truncate(&d.rep, 22),
                d.amount.map(money).unwrap_or_else(|| "-".into()),
                d.entered_stage,
                d.evidence_stage,
                d.confidence * 100.0,
                reasons(&d.reasons)
            );
        }
    }
    s
}

fn slip_text(s: &mut String, rows: &[InspectRow], top: usize, have_slip: bool) {
    if have_slip {
        let mut v: Vec<&InspectRow> = rows
            .iter()
            .filter(|r| r.slip_probability.is_some_and(|p| p >= 0.7))
            .collect();
        v.sort_by(|a, b| {
            let ea = a.stage.amount.unwrap_or(0.0) * a.slip_probability.unwrap_or(0.0);
            let eb = b.stage.amount.unwrap_or(0.0) * b.slip_probability.unwrap_or(0.0);
            eb.total_cmp(&ea)
        });
        let _ = writeln!(
            s,
            "\nAt risk of slipping (slip probability ≥ 70%: {} deals), most amount at risk first:",
            v.len()
        );
        for r in v.iter().take(top) {
            let d = &r.stage;
            let _ = writeln!(
                s,
                "  {:<11} {:<22} {:>8}  slip {:>3.0}%  win {:>3.0}%  {}\n              {}",
                d.opportunity_id,
                truncate(&d.rep, 22),
                d.amount.map(money).unwrap_or_else(|| "-".into()),
                r.slip_probability.unwrap_or(0.0) * 100.0,
                r.win_probability.unwrap_or(0.0) * 100.0,
                d.entered_stage,
                reasons(&r.slip_reasons)
            );
        }
    } else {
        let _ = writeln!(
            s,
            "\n(No slip model registered: run `pipewise train` to add the deals at risk of slipping.)"
        );
    }
}
