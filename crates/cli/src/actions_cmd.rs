//! `pipewise actions`: a rep's next-best actions for a day, dismissing one
//! with a reason; `pipewise adherence`: how many recommended actions reps
//! took.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use pipewise_app::actions::{ActionOptions, AdherenceReport, RepActions};

#[derive(Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ActionsArgs {
    #[command(subcommand)]
    cmd: Option<ActionsCmd>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Args, Clone)]
pub struct ListArgs {
    /// The rep (name or id).
    #[arg(long)]
    rep: Option<String>,
    /// The day (YYYY-MM-DD; default: the data's last day).
    #[arg(long)]
    date: Option<String>,
    /// Selling hours the rep has that day (default: 30% of their working
    /// hours that day, none when away).
    #[arg(long)]
    hours: Option<f64>,
    /// The share of a renewal's churn risk a check-in is assumed to save.
    #[arg(long, default_value_t = pipewise_engines::actions::DEFAULT_SAVE_RATE)]
    save_rate: f64,
    /// Do not store the list (it is stored by default, for adherence).
    #[arg(long)]
    no_record: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Clone)]
pub enum ActionsCmd {
    /// Dismiss an action with a reason: it leaves the rep's list for a
    /// while (done 7 days, not_useful 14, wrong_timing 3, not_mine 30 for
    /// every action on the target, other 7), and kinds often dismissed as
    /// not useful are weighted down.
    Dismiss(DismissArgs),
    /// Store a log of recommendations made elsewhere (a CSV: day, rep_id,
    /// target_kind, target_id, action, channel, window_end, probability,
    /// amount, expected_value; optional account_id, at, why), such as the
    /// simulator's action_recommendations.csv. target_kind: deal, lead or
    /// account; action: call, email, meeting or renewal_check on a deal,
    /// cadence_step on a lead, cross_sell on an account; channel: call,
    /// email, meeting or sms. Each rep's day replaces the list stored for
    /// it; the same action twice in a rep's day is one, its window to the
    /// later end. Nothing is stored unless every row is valid.
    ImportLog(ImportLogArgs),
}

#[derive(Args, Clone)]
pub struct ImportLogArgs {
    /// The log (CSV).
    file: std::path::PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
pub struct DismissArgs {
    /// The rep (name or id).
    #[arg(long)]
    rep: String,
    /// What the action is on: deal:ID, lead:ID or account:ID.
    #[arg(long)]
    target: String,
    /// The action: call, email, meeting, cadence_step, renewal_check or
    /// cross_sell.
    #[arg(long, value_parser = pipewise_engines::actions::ACTIONS)]
    action: String,
    #[arg(long, value_parser = pipewise_store::actions::DISMISSAL_REASONS)]
    reason: String,
    /// Why, in words (required for `other`).
    #[arg(long)]
    note: Option<String>,
    /// The day of the list it is dismissed from (YYYY-MM-DD; default: the
    /// data's last day, the default list's): the action stays hidden for
    /// its reason's days from then.
    #[arg(long)]
    date: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AdherenceArgs {
    #[command(subcommand)]
    cmd: Option<AdherenceCmd>,
    #[command(flatten)]
    range: RangeArgs,
}

#[derive(Subcommand, Clone)]
pub enum AdherenceCmd {
    /// What following the deal recommendations was worth: the change in a
    /// deal's win probability per recommendation followed from the list,
    /// adjusted for the rep and the deal (not the naive comparison), with
    /// its 95% interval (docs/actions.md, "What following was worth").
    /// Followed from the list: a matching activity whose sequence_id is
    /// next-best-action, or one the rep marked done on the list. Needs at
    /// least 100 closed deals with recommendations; deals still open are
    /// left out. JSON figures are fractions (0.03 = 3 points).
    Effect(RangeArgs),
}

#[derive(Args, Clone)]
pub struct RangeArgs {
    /// Lists made on or after this day (YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Lists made on or before this day (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    json: bool,
}

fn parse_day(flag: &str, s: &str) -> Result<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("{flag} {s:?}: expected a date as YYYY-MM-DD"))?;
    Ok(d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp())
}

pub fn actions(db: &Path, a: &ActionsArgs) -> Result<ExitCode> {
    match &a.cmd {
        Some(ActionsCmd::Dismiss(d)) => dismiss(db, d),
        Some(ActionsCmd::ImportLog(l)) => import_log(db, l),
        None => list(db, &a.list),
    }
}

fn list(db: &Path, a: &ListArgs) -> Result<ExitCode> {
    let Some(rep) = a.rep.as_deref() else {
        anyhow::bail!("give the rep: pipewise actions --rep NAME");
    };
    let date = a
        .date
        .as_deref()
        .map(|d| parse_day("--date", d))
        .transpose()?;
    let mut store = crate::access_cmd::existing(db)?;
    let crm = Arc::new(store.load_crm()?);
    let opts = ActionOptions {
        date,
        hours: a.hours,
        save_rate: a.save_rate,
        record: !a.no_record,
    };
    let r = pipewise_app::actions::rep_actions(&mut store, &crm, rep, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(r: &RepActions) -> String {
    use std::fmt::Write as _;
    let p = &r.plan;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Next-best actions for {} on {} (data to {})",
        r.rep_name, r.day, r.as_of
    );
    let _ = writeln!(
        s,
        "Time: {:.0} of {:.0} minutes ({}); expected value {}; {} candidates, {} hidden by dismissals",
        p.minutes_planned,
        p.minutes_available,
        r.hours_source,
        crate::output::money(p.expected_value),
        p.candidates,
        p.hidden_by_dismissals
    );
    if p.actions.is_empty() {
        let _ = writeln!(s, "\nNothing to do that fits the time.");
    }
    for (k, a) in p.actions.iter().enumerate() {
        let when = a.at.get(11..16).unwrap_or("");
        let _ = writeln!(
            s,
            "\n{:>2}. {when} UTC  {}{} on {} {} ({})",
            k + 1,
            a.action.replace('_', " "),
            if a.channel == a.action {
                String::new()
            } else {
                format!(" by {}", a.channel)
            },
            a.target_kind,
            a.target_id,
            a.target.as_deref().unwrap_or("-"),
        );
        let change = if a.probability_of == "churn" {
            format!(
                "cuts the churn probability ({:.0}% now) by {:.2} points",
                a.probability * 100.0,
                a.uplift * 100.0
            )
        } else {
            format!(
                "adds {:.2} points of {} probability ({:.0}% now)",
                a.uplift * 100.0,
                a.probability_of.replace('_', " "),
                a.probability * 100.0
            )
        };
        let _ = writeln!(
            s,
            "    expected value {} = uplift × {}: {change}; {:.0} min",
            crate::output::money(a.expected_value),
            crate::output::money(a.amount),
            a.minutes
        );
        if a.feedback_weight < 1.0 {
            let _ = writeln!(
                s,
                "    weighted {:.2} by your dismissals of {} actions",
                a.feedback_weight,
                a.action.replace('_', " ")
            );
        }
        if let Some(m) = &a.message {
            let _ = writeln!(s, "    message: {m}");
        }
        for w in &a.why {
            let _ = writeln!(s, "    - {w}");
        }
    }
    if !p.left_out.is_empty() {
        let _ = writeln!(s, "\nDid not fit the time:");
        for a in &p.left_out {
            let _ = writeln!(
                s,
                "  {} on {} {} ({}): expected value {}, {:.0} min",
                a.action.replace('_', " "),
                a.target_kind,
                a.target_id,
                a.target.as_deref().unwrap_or("-"),
                crate::output::money(a.expected_value),
                a.minutes
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "\nNote: {n}");
    }
    if r.recorded {
        let _ = writeln!(
            s,
            "\nStored for adherence (pipewise adherence). Dismiss one: pipewise actions dismiss --rep {:?} --target KIND:ID --action ACTION --reason done|not_useful|wrong_timing|not_mine|other",
            r.rep_name
        );
    }
    s
}

fn dismiss(db: &Path, d: &DismissArgs) -> Result<ExitCode> {
    let Some((kind, id)) = d.target.split_once(':') else {
        anyhow::bail!(
            "--target {:?}: expected KIND:ID, KIND one of deal, lead, account",
            d.target
        );
    };
    anyhow::ensure!(
        matches!(kind, "deal" | "lead" | "account") && !id.trim().is_empty(),
        "--target {:?}: expected KIND:ID, KIND one of deal, lead, account",
        d.target
    );
    anyhow::ensure!(
        d.reason != "other" || d.note.as_deref().is_some_and(|n| !n.trim().is_empty()),
        "--reason other: say why with --note"
    );
    anyhow::ensure!(
        pipewise_engines::actions::fits_target(kind, &d.action),
        "--action {}: not an action on {} {kind} (a deal takes call, email, meeting or renewal_check; a lead cadence_step; an account cross_sell)",
        d.action,
        if kind == "account" { "an" } else { "a" }
    );
    let mut store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let user = pipewise_app::lead_desk::find_user(&crm, &d.rep)
        .ok_or_else(|| anyhow::anyhow!("--rep {:?}: no rep of that name or id", d.rep))?;
    let known = match kind {
        "deal" => crm.opportunities.iter().any(|o| o.id == id),
        "lead" => crm.leads.iter().any(|l| l.id == id),
        _ => crm.accounts.iter().any(|a| a.id == id),
    };
    anyhow::ensure!(known, "--target {}: no {kind} with id {id:?}", d.target);
    let day = match &d.date {
        Some(s) => {
            parse_day("--date", s)?;
            s.clone()
        }
        None => pipewise_app::actions::default_day(&crm)
            .ok_or_else(|| anyhow::anyhow!("the database holds no records yet"))?,
    };
    let now = pipewise_core::value::format_instant(chrono::Utc::now());
    let by = format!("OS user {}", crate::access_cmd::os_user());
    let row = store.record_dismissal(
        &user.id,
        kind,
        id,
        &d.action,
        &day,
        &d.reason,
        d.note.as_deref(),
        Some(&by),
        &now,
    )?;
    if d.json {
        println!("{}", serde_json::to_string_pretty(&row)?);
    } else {
        let until = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map(|x| {
                x + chrono::Days::new(pipewise_engines::actions::hidden_days(&d.reason) as u64)
            })
            .map(|x| x.to_string())
            .unwrap_or_default();
        println!(
            "Dismissed: {} on {kind} {id} for {} ({}); {} off their lists until {until}.",
            d.action.replace('_', " "),
            user.name,
            d.reason.replace('_', " "),
            if d.reason == "not_mine" {
                "every action on it is"
            } else {
                "it is"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn import_log(db: &Path, a: &ImportLogArgs) -> Result<ExitCode> {
    let mut store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let r = pipewise_app::actions::import_log(&mut store, &crm, &a.file)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "Stored {} recommendations ({} repeats merged): {} lists of {} reps, {} to {}.",
            r.rows - r.merged,
            r.merged,
            r.lists,
            r.reps,
            r.first_day.as_deref().unwrap_or("-"),
            r.last_day.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn adherence(db: &Path, a: &AdherenceArgs) -> Result<ExitCode> {
    match &a.cmd {
        Some(AdherenceCmd::Effect(r)) => adherence_effect(db, r),
        None => adherence_rates(db, &a.range),
    }
}

fn check_range(a: &RangeArgs) -> Result<()> {
    for (flag, v) in [("--from", &a.from), ("--to", &a.to)] {
        if let Some(s) = v {
            parse_day(flag, s)?;
        }
    }
    if let (Some(f), Some(t)) = (&a.from, &a.to) {
        anyhow::ensure!(
            f <= t,
            "--from {f} is after --to {t}: no list can fall between them"
        );
    }
    Ok(())
}

fn adherence_effect(db: &Path, a: &RangeArgs) -> Result<ExitCode> {
    check_range(a)?;
    let store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let r = pipewise_app::actions::adherence_effect(
        &store,
        &crm,
        a.from.as_deref(),
        a.to.as_deref(),
        &|_| true,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", effect_text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn effect_text(r: &pipewise_app::actions::AdherenceEffectReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "What following the list was worth (data to {})\n\
         Deal recommendations: {} ({} followed from the list, {} acted on by any matching touch); \
         deals still open, left out: {}",
        r.as_of, r.recommendations, r.followed_from_list, r.acted_on, r.open_deals
    );
    match (&r.estimate, &r.cannot_judge) {
        (Some(e), _) => {
            let _ = writeln!(
                s,
                "\nPer recommendation followed: {:+.1} points of win probability (95% interval {:+.1} to {:+.1}), \
                 about {:.0} of bookings at the deals' mean amount of {:.0}",
                e.effect * 100.0,
                e.ci[0] * 100.0,
                e.ci[1] * 100.0,
                e.value_per_followed,
                e.mean_amount
            );
            let _ = writeln!(
                s,
                "  over {} closed deals of {} reps ({} recommendations, {} followed)",
                e.deals, e.reps, e.recommended, e.followed
            );
            let _ = writeln!(
                s,
                "  the naive comparison says {:+.1} points; adjusted for the rep only, {:+.1}; \
                 counting every matching touch as following (from the list or not), {:+.1}",
                e.naive * 100.0,
                e.rep_adjusted * 100.0,
                e.acted_on_effect * 100.0
            );
            if e.ci[0] <= 0.0 && e.ci[1] >= 0.0 {
                let _ = writeln!(
                    s,
                    "  The interval includes zero: the data cannot tell this effect from none."
                );
            }
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "\n{why}");
        }
        (None, None) => {}
    }
    if let Some(c) = r.adherence_prior_win_rate_correlation {
        let _ = writeln!(
            s,
            "Reps' share followed against their earlier win rate: correlation {c:+.2}{}",
            if c.abs() >= 0.2 {
                " (who follows differs from who does not: the naive comparison is confounded)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(s, "Method: {}", r.method);
    s
}

fn adherence_rates(db: &Path, a: &RangeArgs) -> Result<ExitCode> {
    check_range(a)?;
    let store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let r = pipewise_app::actions::adherence(&store, &crm, a.from.as_deref(), a.to.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", adherence_text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn adherence_text(r: &AdherenceReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Adherence: {} of {} recommended actions acted on within their window ({}); {} still open (data to {})",
        r.acted_on,
        r.recommended,
        r.adherence
            .map_or_else(|| "none yet".to_string(), |a| format!("{:.1}%", a * 100.0)),
        r.open,
        r.as_of
    );
    if r.recommended == 0 {
        let _ = writeln!(
            s,
            "No list in the range has a closed window: lists are stored when `pipewise actions --rep NAME` runs, \
             or loaded with `pipewise actions import-log FILE`."
        );
        return s;
    }
    let _ = writeln!(
        s,
        "Followed from the list (a matching activity logged from it, or marked done on it): {} ({}); \
         acted on also counts touches the rep would have made anyway.",
        r.from_list,
        r.from_list_share
            .map_or_else(|| "-".to_string(), |a| format!("{:.1}%", a * 100.0))
    );
    for (title, rows) in [
        ("By rep", &r.by_rep),
        ("By team", &r.by_team),
        ("By action", &r.by_action),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\n{title}\n  {:<28} {:>11} {:>8} {:>9} {:>11} {:>9}",
            "", "recommended", "acted on", "adherence", "value share", "from list"
        );
        for x in rows {
            let _ = writeln!(
                s,
                "  {:<28} {:>11} {:>8} {:>8.1}% {:>10.1}% {:>8.1}%",
                x.name,
                x.recommended,
                x.acted_on,
                x.adherence * 100.0,
                x.value_share * 100.0,
                x.from_list_share * 100.0
            );
        }
    }
    s
}
