//! Subject access (GDPR article 15, CCPA's right to know): everything the
//! database holds about one user, read in one place, for "my data".
//!
//! The estimates made of a person (coaching skills, stage bias) are
//! computed by the engines, not stored; the app layer adds them.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::access::TokenRecord;
use crate::{Result, SqliteStore};

/// The user's own row, as imported.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub role: Option<String>,
    pub manager_id: Option<String>,
    pub manager: Option<String>,
    pub team_id: Option<String>,
    pub team: Option<String>,
    pub region: Option<String>,
    /// `YYYY-MM-DD`.
    pub hire_date: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    pub working_hours: Option<String>,
}

/// Sign-in data kept about the user (never a password or a token itself).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInData {
    /// An admin of pipewise (a grant, not the imported role).
    pub admin: bool,
    /// A password (an argon2id hash) is set, and when.
    pub password_set_at: Option<String>,
    /// API tokens: label and dates only.
    pub tokens: Vec<TokenRecord>,
    /// Browser sessions not yet expired.
    pub active_sessions: u64,
}

/// One stretch of time out of office.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeOff {
    pub start_at: String,
    pub end_at: String,
    pub reason: Option<String>,
}

/// A decision recorded about the user (coaching) or by them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionRow {
    /// `coaching` or `forecast_override`.
    pub kind: String,
    /// What it was about: a recommendation id, a deal id.
    pub about: String,
    pub action: String,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: String,
}

/// Counts of the records linked to the user.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Records {
    /// Deals they own: all, open, won, lost.
    pub deals: u64,
    pub open_deals: u64,
    pub won_deals: u64,
    pub lost_deals: u64,
    pub leads: u64,
    pub accounts: u64,
    /// Activities they logged, by type (`call`, `email`, `meeting`...),
    /// and in all.
    pub activities: BTreeMap<String, u64>,
    pub activities_total: u64,
    /// Recorded calls they are the rep on, and the turns they spoke in them.
    pub calls: u64,
    pub turns_spoken: u64,
    /// Lead follow-up steps they marked done or skipped.
    pub lead_task_marks: u64,
    /// Next-best actions recommended to them, and those they dismissed.
    pub recommended_actions: u64,
    pub dismissed_actions: u64,
}

/// A model whose training data includes the user's records.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelUse {
    pub kind: String,
    pub version: i64,
    pub active: bool,
    pub train_from: Option<String>,
    pub train_to: Option<String>,
}

/// Everything stored about one user.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonData {
    pub profile: Profile,
    pub sign_in: SignInData,
    pub time_off: Vec<TimeOff>,
    pub records: Records,
    /// Coaching decisions about them, and forecast overrides and coaching
    /// decisions they made, oldest first.
    pub decisions: Vec<DecisionRow>,
    /// Registered models trained on a window that includes their records.
    pub models: Vec<ModelUse>,
    /// Their first and last dated record (deal created, activity), UTC.
    pub first_record: Option<String>,
    pub last_record: Option<String>,
}

impl SqliteStore {
    /// Everything the database holds about user `id` (see [`PersonData`]);
    /// `None` when there is no such user. `now` (UTC instant) decides which
    /// sessions are still active.
    pub fn person_data(&self, id: &str, now: &str) -> Result<Option<PersonData>> {
        let c = &self.conn;
        let profile = c
            .query_row(
                "SELECT u.id, u.name, u.email, u.role, u.manager_id, m.name, u.team_id, t.name,
                        coalesce(u.region, t.region), u.hire_date, u.timezone, u.working_hours
                 FROM users u
                 LEFT JOIN users m ON m.id = u.manager_id
                 LEFT JOIN teams t ON t.id = u.team_id
                 WHERE u.id = ?1",
                [id],
                |r| {
                    Ok(Profile {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        email: r.get(2)?,
                        role: r.get(3)?,
                        manager_id: r.get(4)?,
                        manager: r.get(5)?,
                        team_id: r.get(6)?,
                        team: r.get(7)?,
                        region: r.get(8)?,
                        hire_date: r.get(9)?,
                        timezone: r.get(10)?,
                        working_hours: r.get(11)?,
                    })
                },
            )
            .optional()?;
        let Some(profile) = profile else {
            return Ok(None);
        };
        let one = |sql: &str| -> Result<u64> {
            Ok(c.query_row(sql, [id], |r| r.get::<_, i64>(0))? as u64)
        };
        let sign_in = SignInData {
            admin: one(
                "SELECT count(*) FROM user_grants WHERE user_id = ?1 AND grant_name = 'admin'",
            )? > 0,
            password_set_at: c
                .query_row(
                    "SELECT updated_at FROM user_credentials WHERE user_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?,
            tokens: self.tokens(Some(id))?,
            active_sessions: c.query_row(
                "SELECT count(*) FROM sessions WHERE user_id = ?1 AND expires_at > ?2",
                params![id, now],
                |r| r.get::<_, i64>(0),
            )? as u64,
        };
        let time_off = {
            let mut st = c.prepare(
                "SELECT start_at, end_at, reason FROM out_of_office WHERE user_id = ?1 ORDER BY start_at",
            )?;
            st.query_map([id], |r| {
                Ok(TimeOff {
                    start_at: r.get(0)?,
                    end_at: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut records = Records {
            deals: one("SELECT count(*) FROM opportunities WHERE owner_id = ?1")?,
            open_deals: one(
                "SELECT count(*) FROM opportunities WHERE owner_id = ?1 AND outcome = 'open'",
            )?,
            won_deals: one(
                "SELECT count(*) FROM opportunities WHERE owner_id = ?1 AND outcome = 'won'",
            )?,
            lost_deals: one(
                "SELECT count(*) FROM opportunities WHERE owner_id = ?1 AND outcome = 'lost'",
            )?,
            leads: one("SELECT count(*) FROM leads WHERE owner_id = ?1")?,
            accounts: one("SELECT count(*) FROM accounts WHERE owner_id = ?1")?,
            calls: one("SELECT count(*) FROM conversations WHERE user_id = ?1")?,
            turns_spoken: one(
                "SELECT count(*) FROM conversation_turns t JOIN conversations c ON c.id = t.conversation_id
                 WHERE c.user_id = ?1 AND t.speaker_role = 'rep'",
            )?,
            lead_task_marks: one("SELECT count(*) FROM lead_task_marks WHERE marked_by = ?1")?,
            recommended_actions: one(
                "SELECT count(*) FROM action_recommendations WHERE rep_id = ?1",
            )?,
            dismissed_actions: one("SELECT count(*) FROM action_dismissals WHERE rep_id = ?1")?,
            ..Records::default()
        };
        {
            let mut st = c.prepare(
                "SELECT type, count(*) FROM activities WHERE user_id = ?1 GROUP BY type ORDER BY type",
            )?;
            for row in st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (t, n) = row?;
                records.activities.insert(t, n as u64);
                records.activities_total += n as u64;
            }
        }
        let decisions = {
            let mut st = c.prepare(
                "SELECT 'coaching', recommendation, action, reason, decided_by, decided_at
                   FROM coaching_decisions WHERE rep_id = ?1 OR decided_by = ?1
                 UNION ALL
                 SELECT 'forecast_override', opportunity_id,
                        CASE excluded WHEN 1 THEN 'excluded' ELSE 'included' END,
                        reason, decided_by, decided_at
                   FROM forecast_overrides WHERE decided_by = ?1
                 ORDER BY 6",
            )?;
            st.query_map([id], |r| {
                Ok(DecisionRow {
                    kind: r.get(0)?,
                    about: r.get(1)?,
                    action: r.get(2)?,
                    reason: r.get(3)?,
                    decided_by: r.get(4)?,
                    decided_at: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let (first_record, last_record): (Option<String>, Option<String>) = c.query_row(
            "SELECT min(t), max(t) FROM (
                SELECT created_at AS t FROM opportunities WHERE owner_id = ?1
                UNION ALL SELECT occurred_at FROM activities WHERE user_id = ?1
                UNION ALL SELECT created_at FROM leads WHERE owner_id = ?1)",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let models = match &first_record {
            None => Vec::new(),
            Some(first) => {
                let mut st = c.prepare(
                    "SELECT kind, version, active, train_from, train_to FROM models
                     WHERE train_to IS NULL OR train_to >= substr(?1, 1, 10)
                     ORDER BY kind, version",
                )?;
                st.query_map([first], |r| {
                    Ok(ModelUse {
                        kind: r.get(0)?,
                        version: r.get(1)?,
                        active: r.get::<_, i64>(2)? != 0,
                        train_from: r.get(3)?,
                        train_to: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            }
        };
        Ok(Some(PersonData {
            profile,
            sign_in,
            time_off,
            records,
            decisions,
            models,
            first_record,
            last_record,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::SqliteStore;

    #[test]
    fn a_users_data_is_gathered_and_an_unknown_user_is_none() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO teams (id, name, region) VALUES ('t1', 'East', 'EMEA');
                 INSERT INTO users (id, name, email, role, team_id) VALUES
                   ('m1', 'Mia Manager', 'mia@x.example', 'manager', 't1');
                 INSERT INTO users (id, name, email, role, manager_id, team_id, hire_date) VALUES
                   ('r1', 'Ann Lee', 'ann@x.example', 'rep', 'm1', 't1', '2024-01-02');
                 INSERT INTO accounts (id, name, owner_id) VALUES ('a1', 'Acme', 'r1');
                 INSERT INTO opportunities (id, name, account_id, owner_id, stage, created_at) VALUES
                   ('o1', 'Deal', 'a1', 'r1', 'closed_won', '2024-02-01T00:00:00Z'),
                   ('o2', 'Deal 2', 'a1', 'r1', 'proposal', '2024-03-01T00:00:00Z');
                 INSERT INTO activities (id, type, occurred_at, user_id, opportunity_id) VALUES
                   ('x1', 'call', '2024-02-02T00:00:00Z', 'r1', 'o1'),
                   ('x2', 'email', '2024-02-03T00:00:00Z', 'r1', 'o1'),
                   ('x3', 'email', '2024-03-03T00:00:00Z', 'r1', 'o2');
                 INSERT INTO coaching_decisions (recommendation, rep_id, action, reason, decided_by, decided_at)
                   VALUES ('r1:discovery', 'r1', 'dismissed', 'on leave', 'm1', '2024-03-04T00:00:00Z');",
            )
            .unwrap();
        let d = s
            .person_data("r1", "2024-04-01T00:00:00Z")
            .unwrap()
            .unwrap();
        assert_eq!(d.profile.manager.as_deref(), Some("Mia Manager"));
        assert_eq!(d.profile.region.as_deref(), Some("EMEA"));
        assert_eq!(d.records.deals, 2);
        assert_eq!(d.records.won_deals, 1);
        assert_eq!(d.records.open_deals, 1);
        assert_eq!(d.records.accounts, 1);
        assert_eq!(d.records.activities.get("email"), Some(&2));
        assert_eq!(d.decisions.len(), 1);
        assert_eq!(d.decisions[0].reason.as_deref(), Some("on leave"));
        assert_eq!(d.first_record.as_deref(), Some("2024-02-01T00:00:00Z"));
        assert!(!d.sign_in.admin && d.sign_in.password_set_at.is_none());
        // The manager's decision is theirs too.
        let m = s
            .person_data("m1", "2024-04-01T00:00:00Z")
            .unwrap()
            .unwrap();
        assert_eq!(m.decisions.len(), 1);
        assert!(
            s.person_data("nobody", "2024-04-01T00:00:00Z")
                .unwrap()
                .is_none()
        );
    }
}
