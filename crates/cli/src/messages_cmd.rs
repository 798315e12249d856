//! `pipewise messages`: message tests (template variants as Thompson-
//! sampling bandits) and their simulated evaluation.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use pipewise_engines::bandit::{self, TestRules};

#[derive(Subcommand, Clone)]
pub enum MessagesCmd {
    /// Simulated message tests: how often the bandit finds the truly best
    /// variant, and what it loses against always sending it, beside a
    /// fixed even split of the same sends (docs/messages.md).
    Simulate(SimulateArgs),
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

pub fn messages(cmd: &MessagesCmd) -> Result<ExitCode> {
    match cmd {
        MessagesCmd::Simulate(a) => simulate(a),
    }
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
