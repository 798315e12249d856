//! `pipewise accounts next-product|churn`: parse, call the engine, present.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use pipewise_engines::segments::SegmentOptions;

#[derive(Subcommand)]
pub enum AccountsCmd {
    /// Each customer's most likely next product (cross-sell and upsell)
    /// and why, beside the naive pick (the most popular product it lacks);
    /// with the pick rates judged on the last 180 days of purchases.
    NextProduct {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// How many accounts to list (text; JSON lists all).
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// The simulator's ground_truth.json: also judge the picks with the
        /// segments' true product needs.
        #[arg(long)]
        truth: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Retention risk of every open renewal from usage, deal history and
    /// the account, with its factors; the model judged on the later 30% of
    /// closed renewals against the usage trend alone.
    Churn {
        /// How many renewals to list (text; JSON lists all).
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn accounts(db: &Path, cmd: AccountsCmd) -> Result<ExitCode> {
    let store = crate::open(db)?;
    let crm = store.load_crm()?;
    let seg = pipewise_engines::segments::segment(&crm, &SegmentOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match cmd {
        AccountsCmd::NextProduct {
            account,
            top,
            truth,
            json,
        } => {
            use pipewise_engines::accounts::{evaluate_next_product, next_products};
            let mut list = next_products(&crm, &seg).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(id) = &account {
                list.retain(|n| &n.account_id == id);
                anyhow::ensure!(
                    !list.is_empty(),
                    "--account {id}: not a customer in the database (no won deal with a product)"
                );
            }
            let t = match &truth {
                Some(p) => Some(pipewise_engines::truth::Truth::load(p)?),
                None => None,
            };
            let eval = evaluate_next_product(&crm, &seg, None, t.as_ref());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"accounts": list, "evaluation": eval})
                    )?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Next product for {} customers (first {}):",
                list.len(),
                top.min(list.len())
            );
            for n in list.iter().take(top) {
                let c = &n.candidates[0];
                println!(
                    "  {} {}: {} ({:.0}%); naive pick: {}. Owns: {}. {}",
                    n.account_id,
                    n.account_name,
                    c.product,
                    c.probability * 100.0,
                    n.baseline.as_deref().unwrap_or("-"),
                    if n.owned.is_empty() {
                        "-".to_string()
                    } else {
                        n.owned.join(", ")
                    },
                    n.why
                );
            }
            println!(
                "\nJudged on purchases after {} ({} customers then who later bought a product they lacked): \
                 top pick right for {:.0}%, the most popular product it lacks for {:.0}%.",
                eval.split,
                eval.accounts,
                eval.hit_rate * 100.0,
                eval.baseline_hit_rate * 100.0
            );
            if let (Some(a), Some(b)) = (eval.true_chance, eval.baseline_true_chance) {
                println!(
                    "With the simulator's true product needs: the pick's true chance of being next {:.0}%, the naive pick's {:.0}%.",
                    a * 100.0,
                    b * 100.0
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountsCmd::Churn { top, json } => {
            let r = pipewise_engines::accounts::churn(&crm, &seg)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(ExitCode::SUCCESS);
            }
            let e = &r.evaluation;
            println!(
                "Churn model: {} closed renewals ({:.0}% lost); trained on the earlier {}, judged on the {} from {}: \
                 AUC {:.3} against {:.3} for the usage trend alone.",
                e.renewals,
                e.churn_rate * 100.0,
                e.train,
                e.test,
                e.test_from,
                e.auc,
                e.baseline_auc
            );
            println!("\n{} open renewals, riskiest first:", r.open.len());
            for c in r.open.iter().take(top) {
                let f: Vec<String> = c
                    .factors
                    .iter()
                    .map(|f| format!("{} {} ({:+.2})", f.feature, f.value, f.push))
                    .collect();
                println!(
                    "  {:>3.0}%  {} {} (renewal {}, closes {}): {}",
                    c.risk * 100.0,
                    c.account_id,
                    c.account_name,
                    c.opportunity_id,
                    c.close_date.as_deref().unwrap_or("-"),
                    f.join("; ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
