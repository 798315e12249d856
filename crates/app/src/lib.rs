//! pipewise's use cases: what the command line and the HTTP server both
//! call. Each takes the caller (their identity, role and scope) and returns
//! plain serialisable views; neither delivery layer computes anything.
//!
//! - [`scope`]: roles, the manager hierarchy and what a caller may see;
//! - [`auth`]: API tokens (stored as hashes) and passwords (argon2id);
//! - [`book`]: the scored open pipeline, listed and opened through a scope;
//! - [`Service`]: the use cases over one database, with the audit log.

pub mod actions;
pub mod analyses;
pub mod auth;
pub mod book;
pub mod calls;
pub mod coaching;
pub mod comp;
pub mod fairness;
pub mod forecasting;
pub mod imports;
pub mod insight;
pub mod lead_desk;
pub mod leads;
pub mod messages;
pub mod models;
pub mod monitor;
pub mod my_data;
pub mod privacy;
pub mod report;
pub mod roi;
pub mod scope;
mod service;
pub mod stage;
pub mod territories;

pub use pipewise_store::actions::ActionDismissal;
pub use pipewise_store::{ForecastOverride, LeadTaskMark};
pub use service::{AppError, AuditEntry, Me, Service, SessionStart};

/// Limits of sign-in and sessions.
pub mod service_consts {
    pub use crate::service::{SESSION_HOURS, SIGN_IN_FAILURES, SIGN_IN_WINDOW, TOKEN_CACHE};
}

use pipewise_features::Data;
use pipewise_store::CrmData;
use serde::Serialize;

/// A request parameter that is not what was expected.
#[derive(Debug, Clone, Serialize, thiserror::Error, utoipa::ToSchema)]
#[error("{field}: expected {expected}, got {got:?}")]
pub struct InputError {
    /// The parameter or field.
    pub field: String,
    /// What it should be.
    pub expected: String,
    /// What it was.
    pub got: String,
    /// Each value is well formed, but the request is refused as a whole
    /// (values that contradict each other, or a business rule): HTTP 422
    /// rather than 400.
    #[serde(skip)]
    pub refused: bool,
}

impl InputError {
    pub fn new(field: &str, expected: &str, got: &str) -> InputError {
        InputError {
            field: field.into(),
            expected: expected.into(),
            got: got.into(),
            refused: false,
        }
    }

    /// A request whose values are each well formed but are refused
    /// together or by a rule (HTTP 422): `field` is the value named.
    pub fn refused(field: &str, expected: &str, got: &str) -> InputError {
        InputError {
            refused: true,
            ..InputError::new(field, expected, got)
        }
    }
}

/// Indexes the CRM for as-of reads. Errors when it has no opportunities.
/// Midnight UTC (epoch seconds) of the date a `YYYY-MM-DD...` text starts
/// with; `None` when it does not start with one.
pub(crate) fn day_start(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}

pub fn load_data(crm: &CrmData) -> anyhow::Result<Data> {
    anyhow::ensure!(
        !crm.opportunities.is_empty(),
        "the database has no opportunities: import some first (pipewise import ...)"
    );
    Ok(Data::new(crm))
}

/// Where long work reports how far it is: `step` names the phase (the same
/// for all of a phase's reports), `fraction` is 0 to 1.
pub trait Progress: Sync {
    fn report(&self, step: &str, fraction: f64);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _: &str, _: f64) {}
}

/// The features of every deal open at each date (weekly snapshots).
pub fn snapshots(
    data: &Data,
    dates: &[i64],
    progress: &dyn Progress,
) -> pipewise_engines::predict::Snapshots {
    let label = "features for weekly snapshots";
    let snap = pipewise_engines::predict::snapshots(data, dates, &mut |k, n| {
        progress.report(label, k as f64 / n as f64)
    });
    progress.report(label, 1.0);
    snap
}

/// A list's page: `limit` 1-500 (default 50) and `offset` 0 to
/// [`book::MAX_OFFSET`] (default 0); a bad one is an [`InputError`] naming it.
pub fn page(limit: Option<usize>, offset: Option<usize>) -> Result<(usize, usize), InputError> {
    if let Some(o) = offset
        && o > book::MAX_OFFSET
    {
        return Err(InputError::new(
            "offset",
            "a number of rows to skip from 0 to 1000000000",
            &o.to_string(),
        ));
    }
    if let Some(l) = limit
        && !(1..=500).contains(&l)
    {
        return Err(InputError::new(
            "limit",
            "a page size from 1 to 500",
            &l.to_string(),
        ));
    }
    Ok((limit.unwrap_or(50), offset.unwrap_or(0)))
}
