//! Privacy use cases: erasing a person and applying a retention policy,
//! each followed by a rewrite of the database file so that nothing removed
//! stays in free pages (docs/privacy.md).

use std::path::Path;

use anyhow::{Context as _, Result};
use pipewise_store::SqliteStore;
use pipewise_store::erasure::{ErasureReport, RetentionPolicy, RetentionReport, Subject};

/// Erases `subject` (see [`SqliteStore::erase`]) by `actor` (`None`: the
/// command line), then rewrites the file. Errors: no such person; a
/// database error.
pub fn erase(
    store: &mut SqliteStore,
    subject: Subject<'_>,
    actor: Option<&str>,
    reason: Option<&str>,
) -> Result<ErasureReport> {
    let r = store.erase(subject, actor, reason, &crate::auth::now())?;
    store.vacuum().context("rewriting the database file")?;
    Ok(r)
}

/// Reads a retention policy from TOML (`transcripts_days = 365`,
/// `unconverted_leads_days = 730`). Errors name the file and what was wrong
/// (an unknown key, a negative or fractional number of days).
pub fn load_retention_policy(path: &Path) -> Result<RetentionPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the retention policy", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Applies `policy` with ages counted from `as_of` (default: now), then
/// rewrites the file when anything changed. Errors: no rule in the policy,
/// an unreadable `as_of`, a database error.
pub fn apply_retention(
    store: &mut SqliteStore,
    policy: &RetentionPolicy,
    as_of: Option<&str>,
    actor: Option<&str>,
    dry_run: bool,
) -> Result<RetentionReport> {
    anyhow::ensure!(
        policy.transcripts_days.is_some() || policy.unconverted_leads_days.is_some(),
        "the retention policy has no rule: give transcripts_days or unconverted_leads_days"
    );
    anyhow::ensure!(
        policy.transcripts_days != Some(0) && policy.unconverted_leads_days != Some(0),
        "a retention period of 0 days would remove everything at once: give 1 day or more"
    );
    let now = crate::auth::now();
    let r = store.apply_retention(policy, as_of.unwrap_or(&now), &now, actor, dry_run)?;
    if r.audit_seq.is_some() {
        store.vacuum().context("rewriting the database file")?;
    }
    Ok(r)
}
