//! `pipewise leads route|draft` and `pipewise cadences`: parse, call the use
//! case, present.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum LeadsCmd {
    /// Recommends an owner for each lead not answered yet (last 14 days), or
    /// for one lead, among the reps of its current owner's region: the rep
    /// most likely to convert it within capacity and fairness bounds, every
    /// candidate's predicted conversion and why.
    Route {
        /// Only this lead.
        #[arg(long)]
        lead: Option<String>,
        /// Show every candidate, not only the recommendation.
        #[arg(long)]
        all: bool,
        /// Assign the waiting leads jointly (a linear program maximising
        /// the predicted conversions within each rep's share of the batch)
        /// instead of one after another in order of arrival.
        #[arg(long)]
        batch: bool,
        #[arg(long)]
        json: bool,
    },
    /// Speed to lead: the response-time SLA (business minutes), who meets
    /// it, the leads waiting and past it, and conversion by response time.
    Sla {
        /// The SLA in working minutes: the owner's working hours in their time
        /// zone (users.working_hours, users.timezone), less time out of office;
        /// Monday-Friday 08:00-18:00 UTC for users without hours of their own.
        #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
        minutes: f64,
        #[arg(long)]
        json: bool,
    },
    /// A rep's follow-up tasks for the day under the built-in cadence: late
    /// ones first, then today's, each with its channel and send hour.
    Queue {
        /// The rep's name or id.
        #[arg(long)]
        rep: String,
        /// The day (YYYY-MM-DD; default: the latest lead event's day).
        #[arg(long)]
        date: Option<String>,
        /// Also list the upcoming steps.
        #[arg(long)]
        all: bool,
        /// A cadence file (TOML, as `pipewise cadences --file` checks);
        /// default: the built-in cadence.
        #[arg(long)]
        cadence: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Marks a follow-up task (a cadence step of a lead) done or skipped;
    /// the rep's queue moves on to the next step.
    Mark {
        lead_id: String,
        /// The cadence step (1-based), as `leads queue` lists it.
        #[arg(long)]
        step: u32,
        /// `done` or `skipped`.
        #[arg(long, value_parser = ["done", "skipped"])]
        status: String,
        /// Why, or what happened (optional).
        #[arg(long)]
        note: Option<String>,
        /// Who marked it (a user id; default: none recorded).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Drafts the first reply to a lead from its inquiry's product and pain
    /// point, listing the details used and those not found.
    Draft {
        lead_id: String,
        /// An OpenAI-compatible chat endpoint of a local language model
        /// (e.g. a llama.cpp server, `http://127.0.0.1:8081`) to write the
        /// body from the same details; the template is the fallback.
        #[arg(long, env = "PIPEWISE_LLM_URL")]
        llm_url: Option<String>,
        /// The model name to ask for.
        #[arg(long, env = "PIPEWISE_LLM_MODEL", default_value = "local")]
        llm_model: String,
        /// Seconds to wait for the model.
        #[arg(long, default_value_t = 30)]
        llm_timeout: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct CadencesArgs {
    /// A cadence file (TOML) to check and show; default: the built-in cadence.
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn leads(db: &Path, cmd: LeadsCmd) -> Result<ExitCode> {
    let mut store = pipewise_store::SqliteStore::open(db)?;
    if let LeadsCmd::Mark {
        lead_id,
        step,
        status,
        note,
        by,
        json,
    } = &cmd
    {
        let at = pipewise_core::value::format_instant(chrono::Utc::now());
        let m = store
            .record_lead_task(lead_id, *step, status, note.as_deref(), by.as_deref(), &at)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if *json {
            println!("{}", serde_json::to_string_pretty(&m)?);
        } else {
            println!("Lead {lead_id}: step {step} marked {status} at {at}.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let crm = store.load_crm()?;
    match cmd {
        LeadsCmd::Mark { .. } => unreachable!("handled above"),
        LeadsCmd::Draft {
            lead_id,
            llm_url,
            llm_model,
            llm_timeout,
            json,
        } => {
            let llm = llm_url.map(|url| pipewise_app::leads::LlmOptions {
                url,
                model: llm_model,
                timeout_secs: llm_timeout,
            });
            let d = pipewise_app::leads::draft_reply_with(&crm, &lead_id, llm.as_ref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                if let Some(t) = &d.already_answered {
                    println!(
                        "Note: this lead was already answered ({t}); this is a first reply as it would have been.\n"
                    );
                }
                println!("Subject: {}\n\n{}\n", d.subject, d.body);
                for u in &d.used {
                    println!("  used {}: {} (from the {})", u.slot, u.value, u.from);
                }
                for m in &d.missing {
                    println!("  not found in the inquiry: {}", m.replace('_', " "));
                }
                match (&d.fallback, d.generator.strip_prefix("llm:")) {
                    (Some(why), _) => println!("  written by the template: {why}"),
                    (None, Some(model)) => println!("  written by the language model {model}"),
                    _ => {}
                }
            }
        }
        LeadsCmd::Sla { minutes, json } => {
            if minutes.is_nan() || minutes <= 0.0 {
                anyhow::bail!(
                    "--minutes {minutes}: expected a positive number of business minutes"
                );
            }
            let r = pipewise_app::leads::lead_sla(&crm, minutes);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", sla_text(&r, &crm));
            }
        }
        LeadsCmd::Queue {
            rep,
            date,
            all,
            cadence,
            json,
        } => {
            let cadence = cadence
                .map(|f| {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    pipewise_engines::lead_policy::CadenceDef::parse(&text)
                        .with_context(|| f.display().to_string())
                })
                .transpose()?;
            let date = date
                .map(|d| {
                    pipewise_core::value::parse_datetime(&d, &[])
                        .map(|t| t.timestamp())
                        .with_context(|| {
                            format!("--date {d:?}: expected a date such as 2025-12-01")
                        })
                })
                .transpose()?;
            let marks = store.lead_task_marks()?;
            let q = pipewise_app::leads::rep_queue(&crm, &rep, date, all, cadence, &marks)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else {
                println!(
                    "{}'s follow-ups on {} (cadence {}): {} task{}",
                    q.rep_name,
                    q.date,
                    q.cadence,
                    q.tasks.len(),
                    if q.tasks.len() == 1 { "" } else { "s" }
                );
                let day = q.date.clone();
                for t in &q.tasks {
                    let late = if t.status == "late" {
                        let days = (pipewise_core::value::parse_datetime(&day, &[])
                            .map_or(0, |d| d.timestamp())
                            - t.due_at)
                            .div_euclid(86_400)
                            + 1;
                        format!("late {days}d")
                    } else {
                        t.status.clone()
                    };
                    println!(
                        "  {:<8} {}  {:<10} step {}/{} {:<5} {}{}",
                        late,
                        when(t.due_at),
                        t.lead_id,
                        t.step,
                        t.steps,
                        t.channel,
                        t.company.as_deref().unwrap_or(""),
                        t.template
                            .as_deref()
                            .map(|x| format!(" [{x}]"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        LeadsCmd::Route {
            lead,
            all,
            batch,
            json,
        } => {
            let r = pipewise_app::leads::route_leads(&crm, lead.as_deref(), batch)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("Routing as of {}; model {}", r.as_of, r.model);
                if let Some(b) = &r.batch {
                    println!(
                        "Batch: {} linear program{}, {} lead{} assigned jointly, {} one at a time; {:.1} expected conversions",
                        b.programs,
                        if b.programs == 1 { "" } else { "s" },
                        b.assigned,
                        if b.assigned == 1 { "" } else { "s" },
                        b.fallback,
                        b.expected_conversions
                    );
                }
                if r.leads.is_empty() {
                    println!("No lead is waiting for a first response.");
                }
                for l in &r.leads {
                    println!("{} ({}): {}", l.lead_id, l.created_at, l.why);
                    if all {
                        for c in &l.candidates {
                            println!(
                                "    {:<24} {:>5.1}%  {} unanswered{}",
                                c.rep_name,
                                c.probability * 100.0,
                                c.unanswered,
                                c.excluded
                                    .as_deref()
                                    .map(|e| format!("  (excluded: {e})"))
                                    .unwrap_or_default()
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cadences(args: CadencesArgs) -> Result<ExitCode> {
    use pipewise_engines::lead_policy::{CadenceDef, DEFAULT_CADENCE};
    let (text, from) = match &args.file {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
            f.display().to_string(),
        ),
        None => (DEFAULT_CADENCE.to_string(), "built in".to_string()),
    };
    let def = CadenceDef::parse(&text).with_context(|| from.clone())?;
    if args.json {
        let steps: Vec<serde_json::Value> = def
            .steps
            .iter()
            .map(
                |s| serde_json::json!({"day": s.day, "channel": s.channel, "template": s.template}),
            )
            .collect();
        println!(
            "{}",
            serde_json::json!({"name": def.name, "from": from, "stop_on_reply": def.stop_on_reply, "steps": steps})
        );
    } else {
        println!(
            "Cadence {} ({from}): {} touches over {} days{}",
            def.name,
            def.steps.len(),
            def.steps.last().map_or(0, |s| s.day),
            if def.stop_on_reply {
                ", stopping on a reply"
            } else {
                ""
            }
        );
        for (i, s) in def.steps.iter().enumerate() {
            println!(
                "  {:>2}. day {:>2}  {:<5} {}",
                i + 1,
                s.day,
                s.channel,
                s.template.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn sla_text(
    r: &pipewise_engines::lead_sla::SlaReport,
    crm: &pipewise_store::read::CrmData,
) -> String {
    use std::fmt::Write as _;
    let names: std::collections::HashMap<&str, &str> = crm
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let name = |id: &str| names.get(id).copied().unwrap_or(id).to_string();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Speed to lead: SLA {} working minutes (the owner's hours; Mon-Fri 08:00-18:00 UTC by default), leads of the {} days to {}",
        r.sla_minutes,
        r.window_days,
        when(r.as_of)
    );
    let _ = writeln!(
        s,
        "  {} leads: {:.0}% answered within the SLA, {:.0}% never answered, median first response {}",
        r.leads,
        r.within_sla * 100.0,
        r.never_answered * 100.0,
        r.median_minutes
            .map(|m| format!("{m:.0} business minutes"))
            .unwrap_or_else(|| "none".into())
    );
    let _ = writeln!(
        s,
        "Conversion by time to the first response, nights included (leads 35-400 days old):"
    );
    for b in &r.conversion_by_response {
        let _ = writeln!(
            s,
            "  {:<16} {:>6} leads  {:>5.1}%",
            b.band,
            b.leads,
            b.conversion * 100.0
        );
    }
    let _ = writeln!(s, "Reps least often within the SLA:");
    for p in r.by_rep.iter().take(5) {
        let _ = writeln!(
            s,
            "  {:<24} {:>4} lead{} {:>3.0}% within  {:>3.0}% never  median {}",
            name(&p.rep_id),
            p.leads,
            if p.leads == 1 { " " } else { "s" },
            p.within_sla * 100.0,
            p.never_answered * 100.0,
            p.median_minutes
                .map(|m| format!("{m:.0} min"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if r.by_rep.len() > 5 {
        let _ = writeln!(
            s,
            "  ... and {} more reps (--json lists every rep)",
            r.by_rep.len() - 5
        );
    }
    let breached = r
        .waiting
        .iter()
        .filter(|w| w.waiting_minutes > r.sla_minutes)
        .count();
    let away = r
        .waiting
        .iter()
        .filter(|w| w.owner_away_until.is_some())
        .count();
    let _ = writeln!(
        s,
        "Waiting for a first response: {} ({} past the SLA, {} due for reassignment{})",
        r.waiting.len(),
        breached,
        r.waiting.iter().filter(|w| w.state == "reassign").count(),
        if away > 0 {
            format!(", {away} of them with the owner out of office")
        } else {
            String::new()
        }
    );
    for w in r.waiting.iter().take(10) {
        let away = w
            .owner_away_until
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| {
                format!(
                    " (owner out of office until {})",
                    t.format("%Y-%m-%d %H:%M UTC")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<10} {:<24} {:>8.0} working minutes  {}{away}",
            w.lead_id,
            w.owner_id.as_deref().map(name).unwrap_or_default(),
            w.waiting_minutes,
            w.state
        );
    }
    if r.waiting.len() > 10 {
        let _ = writeln!(
            s,
            "  ... and {} more (--json lists every lead)",
            r.waiting.len() - 10
        );
    }
    s
}
