//! `pipewise messages`: message tests (template variants as Thompson-
//! sampling bandits) and their simulated evaluation.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use pipewise_app::messages::{self, ReplyReading};
use pipewise_engines::bandit::{self, TestRules};

/// The most sends `messages choose` draws at once.
const MAX_SENDS: usize = 100_000;

#[derive(Subcommand, Clone)]
pub enum MessagesCmd {
    /// The live message tests in the database: each sequence step whose
    /// sends carry two or more templates, each variant's outcomes, value
    /// per send and probability of being best, the verdict, and other
    /// policies' value from the logged selection probabilities.
    Status(StatusArgs),
    /// The variants of a test's next sends, chosen by Thompson sampling
    /// over the sends so far, each with the probability it had: log it
    /// with the send as the activity's `selection_probability`.
    Choose(ChooseArgs),
    /// Simulated message tests: how often the bandit finds the truly best
    /// variant, and what it loses against always sending it, beside a
    /// fixed even split of the same sends (docs/messages.md).
    Simulate(SimulateArgs),
}

#[derive(Args, Clone)]
pub struct RuleArgs {
    /// Sends each variant needs before a winner may be declared.
    #[arg(long, default_value_t = 300)]
    min_sends: u64,
    /// How a reply recorded only as `replied` counts: `none` (as no reply:
    /// it may be "remove me") or `positive`.
    #[arg(long, default_value = "none")]
    replies: String,
}

#[derive(Args, Clone)]
pub struct StatusArgs {
    /// Only this test (`SEQUENCE:STEP`).
    #[arg(long)]
    test: Option<String>,
    #[command(flatten)]
    rules: RuleArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
pub struct ChooseArgs {
    /// The test (`SEQUENCE:STEP`, as `messages status` names it).
    #[arg(long)]
    test: String,
    /// Sends to choose (one batch, from the same probabilities).
    #[arg(long, default_value_t = 1)]
    sends: usize,
    /// Seed of the draws (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    rules: RuleArgs,
    #[arg(long)]
    json: bool,
}

impl RuleArgs {
    fn parse(&self) -> Result<(TestRules, ReplyReading)> {
        let Some(replies) = ReplyReading::parse(&self.replies) else {
            bail!("--replies {:?}: expected none or positive", self.replies);
        };
        if self.min_sends == 0 {
            bail!("--min-sends 0: a winner needs 1 or more sends of every variant");
        }
        Ok((
            TestRules {
                min_sends: self.min_sends,
                ..TestRules::default()
            },
            replies,
        ))
    }
}

#[derive(Args, Clone)]
pub struct SimulateArgs {
    /// Simulated tests.
    #[arg(long, default_value_t = 200)]
    tests: usize,
    /// Variants per test.
    #[arg(long, default_value_t = 3)]
    variants: usize,
    /// Sends per test.
    #[arg(long, default_value_t = 10_000)]
    sends: usize,
    /// Sends between updates of the choice probabilities (a daily batch).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Sends each variant needs before a winner may be declared.
    #[arg(long, default_value_t = 300)]
    min_sends: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

pub fn messages(db: &Path, cmd: &MessagesCmd) -> Result<ExitCode> {
    match cmd {
        MessagesCmd::Simulate(a) => simulate(a),
        MessagesCmd::Status(a) => status(db, a),
        MessagesCmd::Choose(a) => choose(db, a),
    }
}

fn status(db: &Path, a: &StatusArgs) -> Result<ExitCode> {
    let (rules, replies) = a.rules.parse()?;
    let store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let mut r = messages::report(&store, &crm, rules, replies)?;
    if let Some(t) = &a.test {
        if !r.tests.iter().any(|x| &x.test == t) {
            let known: Vec<&str> = r.tests.iter().map(|x| x.test.as_str()).collect();
            bail!(
                "no message test {t:?}: expected one of {}",
                if known.is_empty() {
                    "none (the database has no message tests)".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        r.tests.retain(|x| &x.test == t);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", status_text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn status_text(r: &messages::MessagesReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if r.tests.is_empty() {
        let _ = writeln!(
            s,
            "No message tests: no sequence step has outbound sends of two or more templates (activities with a sequence_id, a sequence_step and a template_id).{}",
            if r.single_template_steps > 0 {
                format!(" {} steps send one template only.", r.single_template_steps)
            } else {
                String::new()
            }
        );
        return s;
    }
    let _ = writeln!(
        s,
        "{} message test{} (a meeting is worth 1, a positive reply {}, a negative reply or unsubscribe {}; a winner needs {} sends of every variant and {:.0}% probability of being best)",
        r.tests.len(),
        if r.tests.len() == 1 { "" } else { "s" },
        r.utilities.positive_reply,
        r.utilities.negative_reply,
        r.min_sends,
        100.0 * r.confidence
    );
    for t in &r.tests {
        let _ = writeln!(
            s,
            "\n{}: {} sends, {} to {}\n  {}",
            t.test,
            t.sends,
            &t.first_send[..10.min(t.first_send.len())],
            &t.last_send[..10.min(t.last_send.len())],
            t.verdict
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>7} {:>8} {:>8} {:>8} {:>22} {:>8} {:>6}",
            "variant",
            "sends",
            "meeting",
            "pos.",
            "neg.",
            "value/send (90% cred.)",
            "P(best)",
            "next"
        );
        for v in &t.variants {
            let _ = writeln!(
                s,
                "  {:<28} {:>7} {:>7.2}% {:>7.2}% {:>7.2}% {:>8.4} ({:.4}-{:.4}) {:>7.1}% {:>5.1}%",
                v.template_id,
                v.sends,
                100.0 * v.meeting_rate,
                100.0 * v.positive_reply_rate,
                100.0 * v.negative_reply_rate,
                v.value,
                v.value_low,
                v.value_high,
                100.0 * v.prob_best,
                100.0 * v.next_share
            );
        }
        if !t.evaluation.is_empty() {
            let _ = writeln!(
                s,
                "  Policies' value per send from the {} logged sends (IPS / doubly robust, ± standard error):",
                t.logged_sends
            );
            for p in &t.evaluation {
                let _ = writeln!(
                    s,
                    "    {:<34} {:.4} ± {:.4} / {:.4} ± {:.4}{}",
                    p.policy,
                    p.ips,
                    p.ips_se,
                    p.doubly_robust,
                    p.doubly_robust_se,
                    if p.enough_data {
                        String::new()
                    } else {
                        match p.events {
                            0 => "  (no reply or meeting: too few to judge)".to_string(),
                            1 => "  (only 1 reply or meeting: too few to judge)".to_string(),
                            n => format!("  (only {n} replies or meetings: too few to judge)"),
                        }
                    }
                );
            }
        }
        for n in &t.notes {
            let _ = writeln!(s, "  Note: {n}");
        }
    }
    if r.single_template_steps > 0 {
        let _ = writeln!(
            s,
            "\n{} sequence step{} send{} one template only: not a test.",
            r.single_template_steps,
            if r.single_template_steps == 1 {
                ""
            } else {
                "s"
            },
            if r.single_template_steps == 1 {
                "s"
            } else {
                ""
            }
        );
    }
    s
}

fn choose(db: &Path, a: &ChooseArgs) -> Result<ExitCode> {
    let (rules, replies) = a.rules.parse()?;
    let store = crate::access_cmd::existing(db)?;
    let crm = store.load_crm()?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    if a.sends > MAX_SENDS {
        bail!(
            "--sends {}: choose at most {MAX_SENDS} at a time (a day's batch; choose again as the outcomes come in)",
            a.sends
        );
    }
    let r = messages::choose(&store, &crm, &a.test, a.sends, rules, replies, seed)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The verdict and probabilities on standard error, so that standard
    // output is the CSV of the sends alone.
    eprintln!("{}: {}", r.test, r.verdict);
    let shares: Vec<String> = r
        .policy
        .iter()
        .map(|p| format!("{} {:.1}%", p.template_id, 100.0 * p.selection_probability))
        .collect();
    eprintln!(
        "Selection probabilities now (estimated from 4,000 posterior draws): {}",
        shares.join(", ")
    );
    println!("template_id,selection_probability");
    for c in &r.choices {
        println!("{},{:.6}", c.template_id, c.selection_probability);
    }
    Ok(ExitCode::SUCCESS)
}

fn simulate(a: &SimulateArgs) -> Result<ExitCode> {
    if a.variants < 2 {
        bail!("--variants {}: a test needs 2 or more", a.variants);
    }
    if a.tests == 0 || a.sends == 0 || a.batch == 0 {
        bail!("--tests, --sends and --batch must be 1 or more");
    }
    if a.sends <= a.batch {
        bail!(
            "--sends {} is no more than one batch ({}): the bandit would never update, and would be an even split; give more sends or a smaller --batch",
            a.sends,
            a.batch
        );
    }
    if a.min_sends * a.variants as u64 > a.sends as u64 {
        bail!(
            "--min-sends {} for each of {} variants needs {} sends, more than the test's {}: no winner could ever be declared",
            a.min_sends,
            a.variants,
            a.min_sends * a.variants as u64,
            a.sends
        );
    }
    let rules = TestRules {
        min_sends: a.min_sends,
        ..TestRules::default()
    };
    let r = bandit::simulate(a.tests, a.variants, a.sends, a.batch, rules, a.seed);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} simulated tests of {} variants, {} sends each (choice probabilities updated every {} sends), seed {}",
        r.tests, r.variants, r.sends, a.batch, a.seed
    );
    println!(
        "  truly best variant leading at the end: {:.1}% of tests",
        100.0 * r.best_found
    );
    match r.declared_right {
        Some(right) => println!(
            "  winners declared: {} ({:.1}% of them right; a winner needs {} sends of every variant and 95% probability of being best)",
            r.declared,
            100.0 * right,
            a.min_sends
        ),
        None => println!(
            "  winners declared: none (a winner needs {} sends of every variant and 95% probability of being best)",
            a.min_sends
        ),
    }
    println!(
        "  regret (utility lost against always the best, in meeting-equivalents: a meeting 1, a positive reply 0.3, \"remove me\" -0.5): bandit {:.2}, even split {:.2} per test: {:.1}% less",
        r.regret_bandit,
        r.regret_even_split,
        100.0 * r.regret_reduction
    );
    println!(
        "  off-policy value of \"always the best\" from the bandit's logs: mean error IPS {:.4}, doubly robust {:.4} (true value {:.4} per send)",
        r.ips_error, r.dr_error, r.best_value
    );
    Ok(ExitCode::SUCCESS)
}
