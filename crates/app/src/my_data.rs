//! "My data" (GDPR article 15, CCPA's right to know): everything pipewise
//! holds about a user and every estimate it makes of them, in one view.
//!
//! Stored: the user's row, sign-in data (never a secret), time out of
//! office, counts of the records linked to them, decisions about them and
//! by them, the models trained on their records
//! ([`pipewise_store::subject`]). Estimated: the groups the fairness
//! reports put them in, their stage bias (the evidence-stage engine) and
//! their coaching profile and plan (the coaching engine). Read: who read
//! their data, and what they did, from the audit log.

use serde::Serialize;
use utoipa::ToSchema;

use pipewise_store::subject::PersonData;

use crate::insight::RepCoaching;

/// A group a fairness report puts the user in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Membership {
    /// `region`, `team`, `tenure`, `new_hire`.
    pub attribute: String,
    pub group: String,
}

/// Everything pipewise holds about a user and every estimate it makes of
/// them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyData {
    /// When this view was made (UTC).
    pub generated_at: String,
    /// The date the estimates are as of (the data's end).
    pub as_of: Option<String>,
    /// What is stored about them.
    pub stored: PersonData,
    /// The groups the fairness reports put them in (docs/fairness.md).
    pub groups: Vec<Membership>,
    /// Their stage bias: how far their entered stages run from what their
    /// deals' evidence supports (docs/stage.md). `None` for someone who
    /// owns no open deal in the analysed weeks, or while it computes (see
    /// `notes`).
    pub stage_bias: Option<pipewise_engines::stage::RepBias>,
    /// Their coaching profile: metrics against peers and top performers,
    /// skill estimates and the plan (docs/coaching.md).
    pub coaching: Option<RepCoaching>,
    /// Audit rows naming them, made by others: who read or changed their
    /// data, or was refused (newest first, at most [`AUDIT_ROWS`]).
    pub read_by_others: Vec<Access>,
    /// Audit rows of what they did (newest first, at most [`AUDIT_ROWS`]).
    pub own_actions: Vec<Action>,
    /// What could not be shown, and why.
    pub notes: Vec<String>,
}

/// One read or change of a person's data by someone else.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Access {
    pub seq: i64,
    pub at: String,
    /// Who: their user id, shown when the viewer may see that user (in
    /// their scope) or it is one of the person's managers; `None` for
    /// anyone else (named by role only) and the command line.
    pub by: Option<String>,
    /// Their role (`rep`, `manager`, `director`, `admin`), or `command line`.
    pub by_role: String,
    /// `read`, `read.denied`, `decision`...
    pub action: String,
    pub route: Option<String>,
    pub detail: Option<String>,
}

/// One thing the person did, from the audit log (the records' ids are
/// left out: the audit log itself has them, for an admin).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Action {
    pub seq: i64,
    pub at: String,
    pub action: String,
    pub route: Option<String>,
    /// How many records it read or changed.
    pub records: usize,
}

/// Audit rows shown of each kind.
pub const AUDIT_ROWS: usize = 200;

/// The groups of the fairness reports a user is in, as of `t` (epoch
/// seconds).
pub fn memberships(stored: &PersonData, t: i64) -> Vec<Membership> {
    let p = &stored.profile;
    let hired = p
        .hire_date
        .as_deref()
        .and_then(pipewise_store::read::instant);
    let mut out = Vec::new();
    let mut push = |a: &str, g: Option<String>| {
        if let Some(g) = g.filter(|g| !g.trim().is_empty()) {
            out.push(Membership {
                attribute: a.into(),
                group: g,
            });
        }
    };
    push("region", p.region.clone());
    push("team", p.team.clone().or_else(|| p.team_id.clone()));
    push("tenure", crate::fairness::tenure_band(hired, t));
    push("new_hire", crate::fairness::new_hire_group(hired, t));
    out
}
