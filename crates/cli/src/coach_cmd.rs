//! `pipewise calls analyze` and `pipewise coach`: conversation analytics, rep
//! skill profiles, gaps against top performers, coaching plans and the
//! manager's decisions about them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use pipewise_engines::coach::{self, CoachOptions, METRICS, Skill};
use pipewise_engines::coach_plan::Catalogue;
use pipewise_engines::truth::Truth;
use pipewise_features::conversation::{CallAnalysis, Trackers, benchmarks};
use pipewise_features::{Data, format_date};
use pipewise_store::SqliteStore;
use pipewise_store::read::CrmData;

use pipewise_app::coaching::{
    Decision, DecisionError, TeamHeadline, active_models, latest_decisions, plans_for, run_coach,
};

use pipewise_app::report::report;

use crate::predict_cmd::parse_as_of;

#[derive(Subcommand)]
pub enum CallsCmd {
    /// Conversation analytics: talk ratio, monologues, questions, patience,
    /// objections and their handling, next steps, fillers, sentiment and
    /// keyword trackers, for one call, one rep's calls, or every rep.
    Analyze {
        /// One call (its id).
        #[arg(long, conflicts_with = "rep")]
        call: Option<String>,
        /// One rep's calls (name or user id).
        #[arg(long)]
        rep: Option<String>,
        /// Keyword trackers (TOML; default: the built-in competitors, products, pricing, security).
        #[arg(long)]
        trackers: Option<PathBuf>,
        /// Calls listed for a rep.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
    /// What was read for one call: its links, rep, start, length and source
    /// file, and every turn (speaker, role, start, end, speech time, text).
    Show {
        /// The call's id.
        call: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Md,
    Html,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CoachArgs {
    #[command(subcommand)]
    pub decide: Option<CoachSub>,
    /// One rep's profile and plan (name or user id).
    #[arg(long, conflicts_with = "team")]
    pub rep: Option<String>,
    /// Every rep of a team (team name or id): headline gaps and plans.
    #[arg(long)]
    pub team: Option<String>,
    /// The profile window ends here (default: the latest date in the data).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Days of history in the profile window.
    #[arg(long, default_value_t = 730)]
    pub window_days: i64,
    /// Training modules and role-play briefs (TOML; default: the built-in catalogue).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// Keyword trackers (TOML).
    #[arg(long)]
    pub trackers: Option<PathBuf>,
    /// The simulator's ground_truth.json: adds how well the estimated skills
    /// and the top-ranked gaps match the latent skills.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Order of the gaps: by size below each skill's top-quartile level, or by estimated worth.
    #[arg(long, value_enum, default_value_t = RankArg::Gap)]
    pub rank: RankArg,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum CoachSub {
    /// Records a manager's decision about a recommendation (a priority's id
    /// such as `r00012:discovery`, or an alert's `alert:OPPORTUNITY`).
    Decide {
        /// The recommendation id shown in the plan.
        recommendation: String,
        #[arg(long, value_enum)]
        action: Action,
        /// Why (required to dismiss or edit).
        #[arg(long)]
        reason: Option<String>,
        /// The edited recommendation (with --action edit).
        #[arg(long)]
        text: Option<String>,
        /// Who decided.
        #[arg(long)]
        by: Option<String>,
    },
    /// Every recorded decision.
    Decisions {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RankArg {
    Gap,
    Worth,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    Accept,
    Edit,
    Dismiss,
}

fn load_trackers(path: Option<&Path>) -> Result<Trackers> {
    match path {
        None => Ok(Trackers::default_set()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok(Trackers::parse(&text, &p.display().to_string())?)
        }
    }
}

fn load_catalogue(path: Option<&Path>) -> Result<Catalogue> {
    match path {
        None => Ok(Catalogue::default_set()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Catalogue::parse(&text, &p.display().to_string())
        }
    }
}

fn load_crm(store: &SqliteStore) -> Result<CrmData> {
    let crm = store.load_crm()?;
    if let Some(w) = crm.currencies.warning() {
        eprintln!("warning: {w}");
    }
    if crm.opportunities.is_empty() && crm.conversations.is_empty() {
        bail!(
            "the database has no opportunities or calls: import some first (pipewise import ...)"
        );
    }
    Ok(crm)
}

/// Finds a rep by name or id (an error lists close names).
fn find_user<'a>(crm: &'a CrmData, who: &str) -> Result<&'a pipewise_store::read::User> {
    if let Some(u) = crm
        .users
        .iter()
        .find(|u| u.id == who || u.name.eq_ignore_ascii_case(who))
    {
        return Ok(u);
    }
    let lower = who.to_lowercase();
    let close: Vec<&str> = crm
        .users
        .iter()
        .filter(|u| u.name.to_lowercase().contains(&lower))
        .map(|u| u.name.as_str())
        .take(5)
        .collect();
    if close.is_empty() {
        bail!("no user named or with id {who:?}")
    }
    bail!(
        "no user named or with id {who:?}; did you mean {}?",
        close.join(", ")
    )
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub fn calls(db: &Path, cmd: CallsCmd) -> Result<ExitCode> {
    let (call, rep, trackers, top, json) = match cmd {
        CallsCmd::Analyze {
            call,
            rep,
            trackers,
            top,
            json,
        } => (call, rep, trackers, top, json),
        CallsCmd::Show { call, json } => return show_call(db, &call, json),
    };
    let trackers = load_trackers(trackers.as_deref())?;
    let store = crate::open(db)?;
    let crm = load_crm(&store)?;
    anyhow::ensure!(
        !crm.conversations.is_empty(),
        "the database has no call transcripts: import some (conversations and conversation_turns, or WebVTT files)"
    );
    if let Some(id) = call {
        let i = crm
            .conversations
            .iter()
            .position(|c| c.id == id)
            .with_context(|| format!("no call with id {id:?}"))?;
        let c = &crm.conversations[i];
        let Some(a) = pipewise_features::conversation::analyse_call(&c.turns, &trackers) else {
            let left =
                coach::LeftOut::of(&crm, i).context("a call that cannot be measured says why")?;
            if json {
                let v = serde_json::json!({"call": c.id, "started_at": c.started_at.map(format_date), "rep": c.user_id, "opportunity": c.opportunity_id, "analysis": null, "left_out": left_json(&crm, &left)});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("Call {}: left out of the figures: {}.", c.id, left.why);
            }
            return Ok(ExitCode::SUCCESS);
        };
        if json {
            let v = serde_json::json!({"call": c.id, "started_at": c.started_at.map(format_date), "rep": c.user_id, "opportunity": c.opportunity_id, "analysis": a, "open_question_share": a.open_question_share(), "benchmarks": bench_json()});
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print!("{}", call_text(c, &a));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let analysed = coach::analyse_calls(&crm, &trackers);
    let left_out = coach::left_out(&crm, &analysed);
    let user = rep.as_deref().map(|r| find_user(&crm, r)).transpose()?;
    let mut by_rep: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in crm.conversations.iter().enumerate() {
        if analysed[i].is_some()
            && let Some(u) = c.user_id.as_deref()
        {
            by_rep.entry(u).or_default().push(i);
        }
    }
    if let Some(u) = user {
        let mut list = by_rep.remove(u.id.as_str()).unwrap_or_default();
        list.sort_by(|&a, &b| {
            crm.conversations[b]
                .started_at
                .cmp(&crm.conversations[a].started_at)
        });
        let summary = summarise(&list, &analysed);
        let left: Vec<&coach::LeftOut> = left_out
            .iter()
            .filter(|l| l.rep_id.as_deref() == Some(u.id.as_str()))
            .collect();
        if json {
            let calls: Vec<serde_json::Value> = list
                .iter()
                .map(|&i| serde_json::json!({"call": crm.conversations[i].id, "started_at": crm.conversations[i].started_at.map(format_date), "analysis": analysed[i]}))
                .collect();
            let left: Vec<serde_json::Value> = left.iter().map(|l| left_json(&crm, l)).collect();
            let v = serde_json::json!({"rep": u.name, "rep_id": u.id, "summary": summary, "benchmarks": bench_json(), "calls": calls, "left_out": left});
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            let mut s = format!(
                "Calls of {} ({} recorded{})\n\n",
                u.name,
                list.len() + left.len(),
                if left.is_empty() {
                    String::new()
                } else {
                    format!(", {} left out", left.len())
                }
            );
            s += &summary_text(&summary);
            let _ = writeln!(
                s,
                "\n{:<12} {:<10} {:>6} {:>6} {:>8} {:>7} {:>5} {:>7}",
                "call", "date", "talk", "mono", "q/hour", "obj h/n", "next", "fillers"
            );
            for &i in list.iter().take(top) {
                let a = analysed[i].as_ref().expect("analysed");
                let c = &crm.conversations[i];
                let _ = writeln!(
                    s,
                    "{:<12} {:<10} {:>6} {:>5.0}s {:>8.1} {:>7} {:>5} {:>7}",
                    c.id,
                    c.started_at.map(format_date).unwrap_or_default(),
                    pct(a.talk_ratio),
                    a.longest_monologue_s,
                    a.question_rate,
                    format!("{}/{}", a.handled(), a.objections.len()),
                    if a.next_steps_agreed() { "yes" } else { "no" },
                    a.fillers
                );
            }
            if list.len() > top {
                let _ = writeln!(
                    s,
                    "... {} more (--top N, or --json for all)",
                    list.len() - top
                );
            }
            s += &left_text(&crm, &left);
            print!("{s}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Every rep.
    let names: HashMap<&str, &str> = crm
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let mut rows: Vec<(String, Summary)> = by_rep
        .iter()
        .map(|(u, list)| {
            (
                names.get(u).map_or(u.to_string(), |n| n.to_string()),
                summarise(list, &analysed),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, s)| serde_json::json!({"rep": n, "summary": s}))
            .collect();
        let left: Vec<serde_json::Value> = left_out.iter().map(|l| left_json(&crm, l)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"reps": v, "benchmarks": bench_json(), "left_out": left})
            )?
        );
    } else {
        let mut s = format!(
            "Recorded calls by rep ({} analysed{}). Benchmarks: top performers talk {:.0}% of a discovery call, average reps {:.0}-{:.0}%; longest monologue about {:.0} s.\n\n",
            analysed.iter().flatten().count(),
            if left_out.is_empty() {
                String::new()
            } else {
                format!(", {} left out", left_out.len())
            },
            benchmarks::TOP_TALK_RATIO * 100.0,
            benchmarks::AVERAGE_TALK_RATIO.0 * 100.0,
            benchmarks::AVERAGE_TALK_RATIO.1 * 100.0,
            benchmarks::TOP_LONGEST_MONOLOGUE_S
        );
        let _ = writeln!(
            s,
            "{:<22} {:>5} {:>6} {:>6} {:>7} {:>6} {:>8} {:>6} {:>8}",
            "rep", "calls", "talk", "mono", "q/hour", "open q", "handled", "next", "fill/min"
        );
        for (n, m) in &rows {
            let _ = writeln!(
                s,
                "{:<22} {:>5} {:>6} {:>5.0}s {:>7.1} {:>6} {:>8} {:>6} {:>8.2}",
                n,
                m.calls,
                pct(m.talk_ratio),
                m.longest_monologue_s,
                m.question_rate,
                m.open_question_share.map_or("-".into(), pct),
                m.objections_handled.map_or("-".into(), pct),
                pct(m.next_steps_rate),
                m.filler_rate
            );
        }
        let left: Vec<&coach::LeftOut> = left_out.iter().collect();
        s += &left_text(&crm, &left);
        print!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A left-out call as JSON: the call, its rep, the reason's code and words.
fn left_json(crm: &CrmData, l: &coach::LeftOut) -> serde_json::Value {
    let c = &crm.conversations[l.index];
    serde_json::json!({
        "call": l.call,
        "rep_id": l.rep_id,
        "rep": rep_name(crm, l.rep_id.as_deref()),
        "started_at": c.started_at.map(format_date),
        "reason": l.reason,
        "why": l.why,
    })
}

/// The calls left out of the figures above, one line each with why.
fn left_text(crm: &CrmData, left: &[&coach::LeftOut]) -> String {
    let mut s = String::new();
    if left.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\nLeft out of these figures ({} call{}):",
        left.len(),
        if left.len() == 1 { "" } else { "s" }
    );
    for l in left {
        let c = &crm.conversations[l.index];
        let mut about = Vec::new();
        if let Some(n) = rep_name(crm, l.rep_id.as_deref()) {
            about.push(n);
        }
        if let Some(d) = c.started_at {
            about.push(format_date(d));
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        let _ = writeln!(s, "  {}{about}: {}", l.call, l.why);
    }
    s
}

/// A user's name, or their id when the name is not known.
fn rep_name(crm: &CrmData, id: Option<&str>) -> Option<String> {
    let id = id?;
    Some(
        crm.users
            .iter()
            .find(|u| u.id == id)
            .map_or_else(|| id.to_string(), |u| u.name.clone()),
    )
}

/// `pipewise calls show CALL`: the stored conversation and its turns.
fn show_call(db: &Path, id: &str, json: bool) -> Result<ExitCode> {
    let store = crate::open(db)?;
    let c = store.conversation(id)?.with_context(|| {
        format!("no call with id {id:?} (see `pipewise stats` for the counts of calls)")
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", call_detail_text(&c));
    Ok(ExitCode::SUCCESS)
}

fn call_detail_text(c: &pipewise_store::read::ConversationDetail) -> String {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let mut s = format!("Call {}\n", c.id);
    if let Some(t) = &c.title {
        let _ = writeln!(s, "  title:        {t}");
    }
    let _ = writeln!(
        s,
        "  opportunity:  {}",
        or_dash(c.opportunity_id.as_deref())
    );
    let _ = writeln!(s, "  lead:         {}", or_dash(c.lead_id.as_deref()));
    let rep = match (&c.user_name, &c.user_id) {
        (Some(n), Some(id)) => format!("{n} ({id})"),
        (None, Some(id)) => id.clone(),
        _ => "-".into(),
    };
    let _ = writeln!(s, "  rep:          {rep}");
    if let Some(a) = &c.activity_id {
        let _ = writeln!(s, "  activity:     {a}");
    }
    let _ = writeln!(s, "  started at:   {}", or_dash(c.started_at.as_deref()));
    let _ = writeln!(
        s,
        "  duration:     {}",
        c.duration_s.map_or("-".into(), |d| format!("{d} s"))
    );
    let _ = writeln!(s, "  source file:  {}", or_dash(c.source_file.as_deref()));
    let _ = writeln!(
        s,
        "\n{} turn{} (seconds from the start of the call; speech: time spoken, without the silence between cues merged into the turn)",
        c.turns.len(),
        if c.turns.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "{:>4}  {:<22} {:<8} {:>9} {:>9} {:>9}  text",
        "seq", "speaker", "role", "start", "end", "speech"
    );
    for t in &c.turns {
        let _ = writeln!(
            s,
            "{:>4}  {:<22} {:<8} {:>9} {:>9} {:>9}  {}",
            t.seq,
            t.speaker.as_deref().unwrap_or("(none)"),
            t.speaker_role.as_deref().unwrap_or("-"),
            secs(t.start_ms),
            secs(t.end_ms),
            secs(t.speech_ms),
            t.text.as_deref().unwrap_or("")
        );
    }
    s
}

fn bench_json() -> serde_json::Value {
    serde_json::json!({
        "top_performer_talk_ratio": benchmarks::TOP_TALK_RATIO,
        "average_talk_ratio": [benchmarks::AVERAGE_TALK_RATIO.0, benchmarks::AVERAGE_TALK_RATIO.1],
        "top_performer_longest_monologue_s": benchmarks::TOP_LONGEST_MONOLOGUE_S,
    })
}

#[derive(serde::Serialize, Default)]
struct Summary {
    calls: usize,
    talk_ratio: f64,
    longest_monologue_s: f64,
    question_rate: f64,
    open_question_share: Option<f64>,
    switches_per_minute: f64,
    patience_s: Option<f64>,
    objections: usize,
    objections_by_kind: Vec<(String, usize, usize)>,
    objections_handled: Option<f64>,
    next_steps_rate: f64,
    filler_rate: f64,
    sentiment_customer: f64,
    sentiment_rep: f64,
    trackers: Vec<(String, u32)>,
}

fn summarise(list: &[usize], analysed: &[Option<CallAnalysis>]) -> Summary {
    let cs: Vec<&CallAnalysis> = list.iter().filter_map(|&i| analysed[i].as_ref()).collect();
    let n = cs.len().max(1) as f64;
    let avg = |f: &dyn Fn(&CallAnalysis) -> f64| cs.iter().map(|c| f(c)).sum::<f64>() / n;
    let (open, all) = cs.iter().fold((0, 0), |a, c| {
        (
            a.0 + c.questions_open,
            a.1 + c.questions_open + c.questions_closed,
        )
    });
    let pauses: Vec<f64> = cs.iter().filter_map(|c| c.patience_s).collect();
    let objections: usize = cs.iter().map(|c| c.objections.len()).sum();
    let handled: u32 = cs.iter().map(|c| c.handled()).sum();
    let mut kinds: Vec<(String, usize, usize)> =
        pipewise_features::conversation::ObjectionKind::ALL
            .iter()
            .map(|k| {
                let met = cs
                    .iter()
                    .flat_map(|c| &c.objections)
                    .filter(|o| o.kind == *k)
                    .count();
                let h = cs
                    .iter()
                    .flat_map(|c| &c.objections)
                    .filter(|o| o.kind == *k && o.handled)
                    .count();
                (k.name().to_string(), met, h)
            })
            .filter(|x| x.1 > 0)
            .collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1));
    let mut trackers: HashMap<String, u32> = HashMap::new();
    for c in &cs {
        for t in &c.trackers {
            *trackers.entry(t.tracker.clone()).or_default() += t.rep + t.customer;
        }
    }
    let mut trackers: Vec<(String, u32)> = trackers.into_iter().collect();
    trackers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Summary {
        calls: cs.len(),
        talk_ratio: avg(&|c| c.talk_ratio),
        longest_monologue_s: avg(&|c| c.longest_monologue_s),
        question_rate: avg(&|c| c.question_rate),
        open_question_share: (all > 0).then(|| f64::from(open) / f64::from(all)),
        switches_per_minute: avg(&|c| c.switches_per_minute),
        patience_s: (!pauses.is_empty()).then(|| pauses.iter().sum::<f64>() / pauses.len() as f64),
        objections,
        objections_by_kind: kinds,
        objections_handled: (objections > 0).then(|| f64::from(handled) / objections as f64),
        next_steps_rate: avg(&|c| f64::from(u8::from(c.next_steps_agreed()))),
        filler_rate: avg(&|c| c.filler_rate),
        sentiment_customer: avg(&|c| c.sentiment_customer),
        sentiment_rep: avg(&|c| c.sentiment_rep),
        trackers,
    }
}

fn summary_text(m: &Summary) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Talk ratio          {}   (top performers ~{:.0}%, average reps {:.0}-{:.0}%)",
        pct(m.talk_ratio),
        benchmarks::TOP_TALK_RATIO * 100.0,
        benchmarks::AVERAGE_TALK_RATIO.0 * 100.0,
        benchmarks::AVERAGE_TALK_RATIO.1 * 100.0
    );
    let _ = writeln!(
        s,
        "Longest monologue   {:.0} s (top performers ~{:.0} s)",
        m.longest_monologue_s,
        benchmarks::TOP_LONGEST_MONOLOGUE_S
    );
    let _ = writeln!(
        s,
        "Questions           {:.1} per hour, {} open",
        m.question_rate,
        m.open_question_share.map_or("-".into(), pct)
    );
    let _ = writeln!(
        s,
        "Interactivity       {:.2} speaker switches per minute",
        m.switches_per_minute
    );
    let _ = writeln!(
        s,
        "Patience            {}",
        m.patience_s
            .map_or("- (no pauses in the timestamps)".into(), |p| format!(
                "{p:.2} s before answering"
            ))
    );
    let kinds = m
        .objections_by_kind
        .iter()
        .map(|(k, n, h)| format!("{k} {h}/{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "Objections          {} raised, {} handled{}",
        m.objections,
        m.objections_handled.map_or("-".into(), pct),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({kinds})")
        }
    );
    let _ = writeln!(s, "Next steps agreed   {} of calls", pct(m.next_steps_rate));
    let _ = writeln!(s, "Filler words        {:.2} per minute", m.filler_rate);
    let _ = writeln!(
        s,
        "Sentiment           customer {:+.2}, rep {:+.2} (lexicon)",
        m.sentiment_customer, m.sentiment_rep
    );
    if !m.trackers.is_empty() {
        let t = m
            .trackers
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(s, "Trackers            {t}");
    }
    s
}

fn call_text(c: &pipewise_store::read::Conversation, a: &CallAnalysis) -> String {
    let mut s = format!(
        "Call {} ({}, {:.0} min){}\n\n",
        c.id,
        c.started_at
            .map(format_date)
            .unwrap_or_else(|| "no date".into()),
        a.duration_s / 60.0,
        c.opportunity_id
            .as_deref()
            .map(|o| format!(", deal {o}"))
            .unwrap_or_default()
    );
    let summary = summarise(&[0], std::slice::from_ref(&Some(a.clone())));
    s += &summary_text(&summary);
    let t0 = c.turns.first().map_or(0, |t| t.start_ms);
    let at = |i: usize| {
        let ms = c.turns[i].start_ms - t0;
        format!("{}:{:02}", ms / 60_000, ms / 1000 % 60)
    };
    let short = |i: usize| {
        let t = &c.turns[i].text;
        if t.chars().count() > 110 {
            format!("{}...", t.chars().take(110).collect::<String>())
        } else {
            t.clone()
        }
    };
    let _ = writeln!(
        s,
        "\nLongest monologue at {}: {}",
        at(a.longest_monologue_turn),
        short(a.longest_monologue_turn)
    );
    for o in &a.objections {
        let verdict = if o.handled {
            let mut how = Vec::new();
            if o.acknowledged {
                how.push("acknowledged")
            }
            if o.asked {
                how.push("asked")
            }
            if o.value {
                how.push("answered with value")
            }
            format!("handled ({})", how.join(", "))
        } else {
            "steamrolled".into()
        };
        let _ = writeln!(
            s,
            "Objection ({}) at {}: {}\n  -> {verdict}{}",
            o.kind.name(),
            at(o.turn),
            short(o.turn),
            o.reply_turn
                .map(|j| format!(": {}", short(j)))
                .unwrap_or_default()
        );
    }
    match &a.next_step {
        Some(n) => {
            let _ = writeln!(
                s,
                "Next step at {} ({}{}{}): {}",
                at(n.turn),
                if n.agreed { "agreed" } else { "not confirmed" },
                if n.with_date { ", with a date" } else { "" },
                if n.with_owner { ", with an owner" } else { "" },
                short(n.turn)
            );
        }
        None => {
            let _ = writeln!(s, "No next step with a date or an owner was proposed.");
        }
    }
    s
}

pub fn coach(db: &Path, a: CoachArgs) -> Result<ExitCode> {
    if let Some(sub) = a.decide {
        return decide(db, sub);
    }
    let trackers = load_trackers(a.trackers.as_deref())?;
    let catalogue = load_catalogue(a.catalogue.as_deref())?;
    let truth = a.truth.as_deref().map(Truth::load).transpose()?;
    anyhow::ensure!(a.window_days >= 28, "--window-days must be at least 28");
    let store = crate::open(db)?;
    let mut opts = CoachOptions {
        window_days: a.window_days,
        ..CoachOptions::default()
    };
    if a.as_of.is_some() {
        let crm = store.load_crm()?;
        opts.as_of = Some(parse_as_of(a.as_of.as_deref(), &Data::new(&crm))?);
    }
    let models = active_models(&store)?;
    let mut run = run_coach(
        std::sync::Arc::new(load_crm(&store)?),
        models.as_ref().map(|(w, s)| (w, s)),
        &opts,
        &trackers,
    )?;
    run.impact.rank = match a.rank {
        RankArg::Gap => coach::Rank::Gap,
        RankArg::Worth => coach::Rank::Worth,
    };
    let decisions = latest_decisions(&store)?;
    let p = &run.profiles;
    let (title, reps): (String, Vec<usize>) = if let Some(r) = &a.rep {
        let u = find_user(&run.crm, r)?;
        let i = p
            .reps
            .iter()
            .position(|x| x.id == u.id)
            .with_context(|| format!("{} is not a rep (role {:?})", u.name, u.role))?;
        (format!("Coaching plan: {}", u.name), vec![i])
    } else if let Some(t) = &a.team {
        let team = run
            .crm
            .teams
            .iter()
            .find(|x| x.id == *t || x.name.eq_ignore_ascii_case(t))
            .map(|x| x.id.clone())
            .or_else(|| {
                p.reps
                    .iter()
                    .any(|r| r.team.as_deref() == Some(t))
                    .then(|| t.clone())
            })
            .with_context(|| {
                let names: Vec<&str> = run.crm.teams.iter().map(|x| x.name.as_str()).collect();
                format!(
                    "no team named or with id {t:?} (teams: {})",
                    names.join(", ")
                )
            })?;
        let name = run
            .crm
            .teams
            .iter()
            .find(|x| x.id == team)
            .map_or(team.clone(), |x| x.name.clone());
        (
            format!("Coaching: team {name}"),
            (0..p.reps.len())
                .filter(|&i| p.reps[i].team.as_deref() == Some(team.as_str()))
                .collect(),
        )
    } else {
        ("Coaching: every rep".into(), (0..p.reps.len()).collect())
    };
    let plans = plans_for(&run, &reps, &catalogue, &opts, &decisions);
    let validation = truth
        .as_ref()
        .map(|t| coach::validate(p, &run.impact, &t.rep_skills));
    if a.json {
        let profiles: Vec<&coach::RepProfile> = reps.iter().map(|&i| &p.reps[i]).collect();
        let v = serde_json::json!({
            "as_of": format_date(p.as_of),
            "window_start": format_date(p.window_start),
            "metrics": METRICS,
            "skills": Skill::ALL,
            "top_reference": p.top_reference,
            "top_skill": p.top_skill,
            "quartile_reference": p.quartile_reference,
            "quartile_skill": p.quartile_skill,
            "profiles": profiles,
            "plans": plans,
            "impact_models": {"deals": run.impact.deals_used, "leads": run.impact.leads_used},
            "validation": validation,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let doc = report(&title, &run, &reps, &plans, validation.as_ref());
    print!(
        "{}",
        match a.format {
            Format::Text => doc.text(),
            Format::Md => doc.markdown(),
            Format::Html => doc.html(&title),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn decide(db: &Path, sub: CoachSub) -> Result<ExitCode> {
    let mut store = crate::open(db)?;
    match sub {
        CoachSub::Decisions { json } => {
            let all = store.coaching_decisions()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("No coaching decisions recorded yet.");
            } else {
                for d in all {
                    println!(
                        "{}  {:<28} {:<9} {}{}{}",
                        d.decided_at,
                        d.recommendation,
                        d.action,
                        d.reason.unwrap_or_default(),
                        d.edited_text
                            .map(|t| format!(" -> {t}"))
                            .unwrap_or_default(),
                        d.decided_by.map(|b| format!(" ({b})")).unwrap_or_default()
                    );
                }
            }
        }
        CoachSub::Decide {
            recommendation,
            action,
            reason,
            text,
            by,
        } => {
            let crm = store.load_crm()?;
            let reason = reason.filter(|r| !r.trim().is_empty());
            let d = match action {
                Action::Accept => Decision::Accept {
                    recommendation,
                    reason,
                },
                Action::Edit => Decision::Edit {
                    recommendation,
                    reason: reason.context("--reason is required to edit a recommendation")?,
                    text: text.context(
                        "--text is required with --action edit: the recommendation as edited",
                    )?,
                },
                Action::Dismiss => Decision::Dismiss {
                    recommendation,
                    reason: reason.context("--reason is required to dismiss a recommendation")?,
                },
            };
            let (rep_id, recommendation) = d.validate(&crm).map_err(|e| match e {
                DecisionError::Invalid(i) => {
                    anyhow::anyhow!("{}: expected {}", i.field, i.expected)
                }
                DecisionError::Unknown(why) => {
                    anyhow::anyhow!("recommendation {:?}: {why}", d.recommendation())
                }
            })?;
            let action = d.action().stored();
            let (reason, text) = (d.reason(), d.text());
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let d = store.record_coaching_decision(
                &recommendation,
                &rep_id,
                action,
                reason,
                text,
                by.as_deref(),
                &now,
            )?;
            println!(
                "Recorded: {} {} ({})",
                d.recommendation, d.action, d.decided_at
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn headlines_text(h: &[TeamHeadline]) -> String {
    let mut s = String::from(
        "Coaching headlines by team (each rep's first priority; `pipewise coach --team NAME` for the plans):\n",
    );
    for t in h {
        let focus = t.focus.as_ref().map_or("-".to_string(), |f| {
            format!("{} for {} of {} reps", f.skill.label(), f.reps, t.reps)
        });
        let biggest = t.biggest.as_ref().map_or(String::new(), |b| {
            format!(
                "; biggest: {}, {} ({} a quarter)",
                b.rep,
                b.skill.label(),
                pipewise_core::value::format_money(b.bookings_per_quarter)
            )
        });
        let _ = writeln!(
            s,
            "  {:<24} focus: {focus}; worth about {} a quarter if each rep closes their first gap{biggest}; {} deal alerts",
            t.team,
            pipewise_core::value::format_money(t.worth_per_quarter),
            t.alerts
        );
    }
    s
}

/// `pipewise bench calls`: analyses `n` synthetic calls of `minutes` each.
pub fn bench_calls(n: usize, minutes: u32, json: bool) -> Result<ExitCode> {
    use pipewise_store::read::Turn;
    use rayon::prelude::*;
    anyhow::ensure!(n > 0 && minutes > 0, "calls and minutes must be positive");
    const REP: [&str; 8] = [
        "What prompted you to look at this now, and who else is involved in the decision?",
        "So the platform pulls everything into one place, the dashboards update in real time, and your managers get alerts before deals slip.",
        "I hear you, that's a fair concern. What budget did you have in mind? Most teams recover the cost within two quarters.",
        "Um, so, basically, you know, the rollout takes about two weeks and we handle the data migration for you.",
        "Is this a priority this quarter? Do you have budget set aside for it?",
        "On security, we are certified, we encrypt everything at rest, and you control who sees what.",
        "Let's book a follow-up on Tuesday at 10 with your CFO; I'll send the invite and a summary today.",
        "Pricing depends on seats and modules, and most customers see payback within the first two quarters.",
    ];
    const CUSTOMER: [&str; 8] = [
        "Honestly, our reporting takes days every month and it's getting worse as we grow.",
        "This looks expensive compared to what we budgeted, to be honest.",
        "We're also talking to Dealwise, and they came in cheaper.",
        "That would be great, the team is excited about it.",
        "I'd need my VP to sign off on anything like this; it's not my call.",
        "Our current spreadsheets work well enough, to be honest.",
        "Sounds good, Tuesday works. I'll make sure they join.",
        "I'm a bit concerned; we've been burned before by tools like this.",
    ];
    let trackers = Trackers::default_set();
    let make = |c: usize| -> Vec<Turn> {
        let mut x = (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let end = i64::from(minutes) * 60_000;
        let (mut t, mut rep, mut turns) = (0i64, true, Vec::new());
        while t < end {
            let secs = 5 + (next() % 56) as i64;
            let words = (secs * 150 / 60) as usize;
            let pool: &[&str] = if rep { &REP } else { &CUSTOMER };
            let mut text = String::with_capacity(words * 6);
            while text.split(' ').count() < words {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(pool[(next() % pool.len() as u64) as usize]);
            }
            turns.push(Turn {
                speaker_role: Some(if rep { "rep" } else { "customer" }.into()),
                start_ms: t,
                end_ms: t + secs * 1000,
                speech_ms: secs * 1000,
                text,
            });
            t += secs * 1000 + 300 + (next() % 1200) as i64;
            rep = !rep;
        }
        turns
    };
    // Generated and analysed in chunks, so memory stays flat; only analysis is timed.
    let chunk = 2_000;
    let (mut analysed, mut bytes, mut objections) = (0usize, 0usize, 0usize);
    let mut spent = std::time::Duration::ZERO;
    let mut from = 0;
    while from < n {
        let calls: Vec<Vec<Turn>> = (from..(from + chunk).min(n))
            .into_par_iter()
            .map(make)
            .collect();
        bytes += calls.iter().flatten().map(|t| t.text.len()).sum::<usize>();
        let t0 = std::time::Instant::now();
        let out: Vec<Option<CallAnalysis>> = calls
            .par_iter()
            .map(|c| pipewise_features::conversation::analyse_call(c, &trackers))
            .collect();
        spent += t0.elapsed();
        analysed += out.iter().flatten().count();
        objections += out
            .iter()
            .flatten()
            .map(|a| a.objections.len())
            .sum::<usize>();
        from += chunk;
    }
    let secs = spent.as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "calls": n, "minutes": minutes, "analysed": analysed, "text_bytes": bytes,
                "objections": objections, "seconds": secs, "calls_per_second": n as f64 / secs,
                "threads": rayon::current_num_threads(),
            }))?
        );
    } else {
        println!(
            "Analysed {analysed} calls of {minutes} min ({:.2} GB of text, {objections} objections) in {secs:.1} s: {:.0} calls/s on {} threads.",
            bytes as f64 / 1e9,
            n as f64 / secs,
            rayon::current_num_threads()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct RoiArgs {
    #[arg(long)]
    pub reps: f64,
    #[arg(long)]
    pub managers: f64,
    /// A manager's yearly salary.
    #[arg(long)]
    pub manager_salary: f64,
    /// Coaching hours a week per rep without pipewise.
    #[arg(long)]
    pub coaching_hours_before: f64,
    /// Coaching hours a week per rep with pipewise.
    #[arg(long)]
    pub coaching_hours_after: f64,
    /// The software's yearly cost per rep.
    #[arg(long)]
    pub software_per_rep: f64,
    /// The win-rate change coaching brings (0.03: three points). Default:
    /// measured on the database (the coaching gaps' worth, with its
    /// interval); without a database, no revenue is counted.
    #[arg(long, allow_negative_numbers = true)]
    pub win_rate_change: Option<f64>,
    /// Deals each rep closes a year (default: measured on the database).
    #[arg(long)]
    pub deals_per_rep: Option<f64>,
    /// The mean deal size (default: measured on the database).
    #[arg(long)]
    pub deal_size: Option<f64>,
    /// The share of extra revenue counted in the payback.
    #[arg(long, default_value_t = 1.0)]
    pub gross_margin: f64,
    #[arg(long)]
    pub json: bool,
}

pub fn roi(db: &Path, a: RoiArgs) -> Result<ExitCode> {
    let q = pipewise_app::roi::RoiQuery {
        reps: a.reps,
        managers: a.managers,
        manager_salary: a.manager_salary,
        coaching_hours_before: a.coaching_hours_before,
        coaching_hours_after: a.coaching_hours_after,
        software_per_rep: a.software_per_rep,
        win_rate_change: a.win_rate_change,
        deals_per_rep: a.deals_per_rep,
        deal_size: a.deal_size,
        gross_margin: Some(a.gross_margin),
    };
    q.check().map_err(|e| {
        anyhow::anyhow!(
            "--{} {}: expected {}",
            e.field.replace('_', "-"),
            e.got,
            e.expected
        )
    })?;
    // Measured on the database when a figure is missing and one exists.
    let need = q.win_rate_change.is_none() || q.deals_per_rep.is_none() || q.deal_size.is_none();
    let crm = if need && db.exists() {
        let store = crate::open(db)?;
        Some(std::sync::Arc::new(load_crm(&store)?))
    } else {
        None
    };
    let report = pipewise_app::roi::evaluate(&q, crm)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let r = &report.roi;
    let money = |x: f64| crate::output::thousands(x.round().max(0.0) as u64);
    println!(
        "Manual coaching: {:.0} hours a week, {:.0}% of the managers' time: {} a year",
        r.manual.coaching_hours_per_week,
        r.manual.manager_time_share * 100.0,
        money(r.manual.coaching_cost)
    );
    println!(
        "With pipewise:   {:.0} hours a week, {:.0}% of the managers' time: {} a year, plus {} of software: {}",
        r.ai.coaching_hours_per_week,
        r.ai.manager_time_share * 100.0,
        money(r.ai.coaching_cost),
        money(r.ai.software_cost),
        money(r.ai.total_cost)
    );
    println!(
        "Cost {} by {} a year",
        if r.cost_saving >= 0.0 {
            "saved"
        } else {
            "added"
        },
        money(r.cost_saving.abs())
    );
    if let Some(rev) = r.revenue_change {
        let range = match (r.revenue_change_low, r.revenue_change_high) {
            (Some(l), Some(h)) => format!(
                " (80% interval {}{} to {}{})",
                if l < 0.0 { "-" } else { "" },
                money(l.abs()),
                if h < 0.0 { "-" } else { "" },
                money(h.abs())
            ),
            _ => String::new(),
        };
        let signed = |x: f64| {
            if x < 0.0 {
                format!("-{}", money(-x))
            } else {
                money(x)
            }
        };
        println!("Revenue change: {}{range} a year", signed(rev));
    }
    match r.payback_months {
        Some(m) if m == 0.0 => println!("Payback: at once (no software cost)"),
        Some(m) if m < 0.1 => {
            let days = (m * 365.25 / 12.0).ceil().max(1.0);
            println!(
                "Payback: {days:.0} day{}",
                if days == 1.0 { "" } else { "s" }
            )
        }
        Some(m) => println!("Payback: {m:.1} months"),
        None => println!("Payback: never (no benefit)"),
    }
    for x in &r.assumptions {
        println!("  - {x}");
    }
    Ok(ExitCode::SUCCESS)
}
