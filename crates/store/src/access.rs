//! Access records: the users as identities, API tokens, passwords, browser
//! sessions, and the hash-chained audit log.
//!
//! Secrets are never stored: tokens and session ids as their SHA-256 (they
//! are 256-bit random values, so a fast hash cannot be brute-forced),
//! passwords as the argon2id PHC strings the caller computed.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Result, SqliteStore, StoreError};

/// A user as an identity: who they are, their role and their manager.
#[derive(Debug, Clone, Serialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// As imported: `rep`, `manager`, `director`, `admin`... (free text).
    pub role: Option<String>,
    pub manager_id: Option<String>,
    pub team_id: Option<String>,
    pub region: Option<String>,
}

/// A stored API token (never the token itself).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRecord {
    pub id: i64,
    pub user_id: String,
    pub label: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A browser session (by the hash of its id).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: String,
    pub csrf: String,
    pub created_at: String,
    pub expires_at: String,
}

/// An audit entry to append.
#[derive(Debug, Clone, Default)]
pub struct NewAudit<'a> {
    pub at: &'a str,
    /// The caller (`None`: the command line or the system).
    pub user_id: Option<&'a str>,
    /// What was done: `read`, `import`, `decision`, `token.create`...
    pub action: &'a str,
    /// The HTTP route or CLI command.
    pub route: Option<&'a str>,
    /// The ids of the records read or changed.
    pub ids: &'a [String],
    pub detail: Option<&'a str>,
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub user_id: Option<String>,
    pub action: String,
    pub route: Option<String>,
    pub ids: Vec<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// The erasure row (its `seq`) that blanked this row's detail, which
    /// named an erased person; the row's hash is of its original content.
    pub redacted_by: Option<i64>,
}

/// What `verify_audit` found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditCheck {
    pub rows: usize,
    /// Rows whose detail an erasure blanked (their links are checked, their
    /// content cannot be).
    pub redacted: usize,
    /// The first row whose hash or link does not hold, and why.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
}

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of an audit row: SHA-256 over its fields and the previous hash,
/// each length-prefixed so no two rows serialise alike.
#[allow(clippy::too_many_arguments)]
fn audit_hash(
    seq: i64,
    at: &str,
    user_id: Option<&str>,
    action: &str,
    route: Option<&str>,
    ids_json: &str,
    detail: Option<&str>,
    prev: &str,
) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for part in [
        Some(seq.as_str()),
        Some(at),
        user_id,
        Some(action),
        route,
        Some(ids_json),
        detail,
        Some(prev),
    ] {
        match part {
            Some(s) => {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(u64::MAX.to_le_bytes()),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends audit rows in order, chained to the last one, inside `tx` (the
/// caller's immediate transaction).
pub(crate) fn append_audit_in(
    tx: &rusqlite::Transaction<'_>,
    entries: &[NewAudit<'_>],
) -> Result<Vec<AuditRecord>> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (mut seq, mut prev) = match last {
        Some((s, h)) => (s, h),
        None => (0, GENESIS.to_string()),
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO audit_log ({AUDIT_INSERT}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?;
    for e in entries {
        seq += 1;
        let ids_json = serde_json::to_string(e.ids).unwrap_or_else(|_| "[]".into());
        let hash = audit_hash(
            seq, e.at, e.user_id, e.action, e.route, &ids_json, e.detail, &prev,
        );
        st.execute(params![
            seq, e.at, e.user_id, e.action, e.route, ids_json, e.detail, prev, hash
        ])?;
        out.push(AuditRecord {
            seq,
            at: e.at.into(),
            user_id: e.user_id.map(Into::into),
            action: e.action.into(),
            route: e.route.map(Into::into),
            ids: e.ids.to_vec(),
            detail: e.detail.map(Into::into),
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
            redacted_by: None,
        });
    }
    Ok(out)
}

fn token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        label: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(AuditRecord, String)> {
    let ids_json: String = r.get(5)?;
    Ok((
        AuditRecord {
            seq: r.get(0)?,
            at: r.get(1)?,
            user_id: r.get(2)?,
            action: r.get(3)?,
            route: r.get(4)?,
            ids: serde_json::from_str(&ids_json).unwrap_or_default(),
            detail: r.get(6)?,
            prev_hash: r.get(7)?,
            hash: r.get(8)?,
            redacted_by: r.get(9)?,
        },
        ids_json,
    ))
}

const TOKEN_COLUMNS: &str = "id, user_id, label, created_at, expires_at, revoked_at";
const AUDIT_COLUMNS: &str =
    "seq, at, user_id, action, route, ids, detail, prev_hash, hash, redacted_by";
const AUDIT_INSERT: &str = "seq, at, user_id, action, route, ids, detail, prev_hash, hash";

impl SqliteStore {
    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        let mut st = self.conn.prepare(
            "SELECT id, name, email, role, manager_id, team_id, region FROM users ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(UserRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    email: r.get(2)?,
                    role: r.get(3)?,
                    manager_id: r.get(4)?,
                    team_id: r.get(5)?,
                    region: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A fingerprint of what a server caches from the database: the last
    /// import, erasure and retention run, the active models and the admin
    /// grants. It changes when any of them does (another process imported,
    /// erased someone, applied retention, trained or granted), so a running
    /// server reloads and stops showing what was erased.
    pub fn serving_version(&self) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT coalesce((SELECT max(id) FROM imports), 0) || '.' ||
                    coalesce((SELECT max(seq) FROM audit_log WHERE action = 'privacy.erased'), 0) || '.' ||
                    coalesce((SELECT max(seq) FROM audit_log WHERE action = 'privacy.retention'), 0) || ':' ||
                    coalesce((SELECT group_concat(kind || version, ',')
                              FROM (SELECT kind, version FROM models WHERE active = 1 ORDER BY kind)), '') || ':' ||
                    (SELECT count(*) FROM user_grants) || ':' ||
                    coalesce((SELECT max(granted_at) FROM user_grants), '')",
            [],
            |r| r.get(0),
        )?)
    }

    /// The users granted admin in pipewise.
    pub fn admins(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT user_id FROM user_grants WHERE grant_name = 'admin' ORDER BY user_id",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Grants or withdraws admin; errors if the user does not exist.
    pub fn set_admin(&mut self, user_id: &str, admin: bool, at: &str) -> Result<()> {
        let known: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM users WHERE id = ?1", [user_id], |r| r.get(0))
            .optional()?;
        if known.is_none() {
            return Err(StoreError::Invalid(format!("no user with id {user_id:?}")));
        }
        if admin {
            self.conn.execute(
                "INSERT OR IGNORE INTO user_grants (user_id, grant_name, granted_at) VALUES (?1, 'admin', ?2)",
                params![user_id, at],
            )?;
        } else {
            self.conn.execute(
                "DELETE FROM user_grants WHERE user_id = ?1 AND grant_name = 'admin'",
                [user_id],
            )?;
        }
        Ok(())
    }

    /// Stores a token's hash for a user; errors if the user does not exist.
    pub fn insert_token(
        &mut self,
        user_id: &str,
        token_hash: &str,
        label: Option<&str>,
        created_at: &str,
        expires_at: Option<&str>,
    ) -> Result<TokenRecord> {
        let known: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM users WHERE id = ?1", [user_id], |r| r.get(0))
            .optional()?;
        if known.is_none() {
            return Err(StoreError::Invalid(format!("no user with id {user_id:?}")));
        }
        self.conn.execute(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user_id, token_hash, label, created_at, expires_at],
        )?;
        let id = self.conn.last_insert_rowid();
        Ok(TokenRecord {
            id,
            user_id: user_id.into(),
            label: label.map(Into::into),
            created_at: created_at.into(),
            expires_at: expires_at.map(Into::into),
            revoked_at: None,
        })
    }

    /// The token with this hash, revoked or expired ones included.
    pub fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
                [token_hash],
                token,
            )
            .optional()?)
    }

    /// Tokens, oldest first (one user's when given).
    pub fn tokens(&self, user_id: Option<&str>) -> Result<Vec<TokenRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id"
        ))?;
        let rows = st
            .query_map([user_id], token)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Revokes a token; `None` when there is no such token, the record
    /// (with its first revocation time) otherwise.
    pub fn revoke_token(&mut self, id: i64, at: &str) -> Result<Option<TokenRecord>> {
        self.conn.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, at],
        )?;
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                [id],
                token,
            )
            .optional()?)
    }

    /// Sets (or replaces) a user's password hash.
    pub fn set_password_hash(&mut self, user_id: &str, hash: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO user_credentials (user_id, password_hash, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(user_id) DO UPDATE SET password_hash = excluded.password_hash,
                                               updated_at = excluded.updated_at",
            params![user_id, hash, at],
        )?;
        Ok(())
    }

    pub fn password_hash(&self, user_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT password_hash FROM user_credentials WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn insert_session(&mut self, id_hash: &str, s: &SessionRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id_hash, s.user_id, s.csrf, s.created_at, s.expires_at],
        )?;
        Ok(())
    }

    pub fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT user_id, csrf, created_at, expires_at FROM sessions WHERE id_hash = ?1",
                [id_hash],
                |r| {
                    Ok(SessionRecord {
                        user_id: r.get(0)?,
                        csrf: r.get(1)?,
                        created_at: r.get(2)?,
                        expires_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn delete_session(&mut self, id_hash: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    /// Appends an audit row, chained to the last one (in one immediate
    /// transaction, so concurrent writers cannot fork the chain).
    pub fn append_audit(&mut self, e: &NewAudit<'_>) -> Result<AuditRecord> {
        Ok(self
            .append_audit_batch(std::slice::from_ref(e))?
            .pop()
            .expect("one row in, one out"))
    }

    /// Leaves the write-ahead log's checkpoints to [`Self::checkpoint`]
    /// (SQLite otherwise copies the log into the database inside whichever
    /// commit crosses 1,000 pages, and that commit's callers wait for it).
    /// For the audit writer, whose commits answer requests.
    pub fn defer_checkpoints(&mut self) -> Result<()> {
        self.conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        Ok(())
    }

    /// Copies what it can of the write-ahead log into the database without
    /// waiting for readers or writers (a passive checkpoint); returns the
    /// log's size and the pages copied, in pages.
    pub fn checkpoint(&mut self) -> Result<(i64, i64)> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })?)
    }

    /// Appends audit rows in order, chained, in one immediate transaction
    /// (group commit: one write for many requests).
    pub fn append_audit_batch(&mut self, entries: &[NewAudit<'_>]) -> Result<Vec<AuditRecord>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = append_audit_in(&tx, entries)?;
        tx.commit()?;
        Ok(out)
    }

    /// Audit rows, newest first: those by `user_id` or naming `id` among
    /// their ids when given, at most `limit`.
    pub fn audit(
        &self,
        user_id: Option<&str>,
        id: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
             WHERE (?1 IS NULL OR user_id = ?1)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(audit_log.ids) WHERE value = ?2))
               AND (?4 IS NULL OR seq < ?4)
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let rows = st
            .query_map(params![user_id, id, limit as i64, before], audit_row)?
            .map(|r| r.map(|x| x.0))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Audit rows of the actions `actions` at or after `since` (UTC,
    /// `YYYY-MM-DDTHH:MM:SSZ`), oldest first (one pass over the log).
    pub fn audit_actions(&self, actions: &[&str], since: &str) -> Result<Vec<AuditRecord>> {
        let list = serde_json::to_string(actions).unwrap_or_else(|_| "[]".into());
        let mut st = self.conn.prepare(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
             WHERE at >= ?2 AND action IN (SELECT value FROM json_each(?1))
             ORDER BY seq"
        ))?;
        let rows = st
            .query_map(params![list, since], audit_row)?
            .map(|r| r.map(|x| x.0))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Walks the whole chain: every row's hash must match its fields and the
    /// previous row's hash, and the sequence must have no gaps.
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        let erasures: std::collections::HashSet<i64> = self
            .conn
            .prepare("SELECT seq FROM audit_log WHERE action = 'privacy.erased'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut redacted = 0usize;
        let mut st = self.conn.prepare(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq"
        ))?;
        let mut rows = st.query([])?;
        let mut prev = GENESIS.to_string();
        let mut expect = 1i64;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            let (a, ids_json) = audit_row(r)?;
            n += 1;
            let problem = if a.seq != expect {
                Some(format!(
                    "row {expect} is missing (the next row is {}): rows were deleted",
                    a.seq
                ))
            } else if a.prev_hash != prev {
                Some(format!(
                    "row {} does not link to the row before it: a row was deleted or replaced",
                    a.seq
                ))
            } else if let Some(by) = a.redacted_by {
                // Blanked by an erasure: the content cannot be checked, the
                // erasure row must exist.
                redacted += 1;
                (!erasures.contains(&by) || by <= a.seq).then(|| {
                    format!(
                        "row {} is blanked by row {by}, which is not a later erasure",
                        a.seq
                    )
                })
            } else if audit_hash(
                a.seq,
                &a.at,
                a.user_id.as_deref(),
                &a.action,
                a.route.as_deref(),
                &ids_json,
                a.detail.as_deref(),
                &a.prev_hash,
            ) != a.hash
            {
                Some(format!(
                    "row {} was edited: its hash does not match its content",
                    a.seq
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                return Ok(AuditCheck {
                    rows: n,
                    redacted,
                    broken_at: Some(expect.min(a.seq)),
                    problem: Some(p),
                });
            }
            prev = a.hash;
            expect += 1;
        }
        Ok(AuditCheck {
            rows: n,
            redacted,
            broken_at: None,
            problem: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(at: &'a str, ids: &'a [String]) -> NewAudit<'a> {
        NewAudit {
            at,
            user_id: Some("r1"),
            action: "read",
            route: Some("GET /x"),
            ids,
            detail: None,
        }
    }

    #[test]
    fn the_audit_chain_links_batches_and_finds_tampering() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let ids = vec!["o1".to_string()];
        let one = s
            .append_audit(&entry("2026-01-01T00:00:00Z", &ids))
            .unwrap();
        assert_eq!((one.seq, one.prev_hash.as_str()), (1, GENESIS));
        let batch = s
            .append_audit_batch(&[
                entry("2026-01-01T00:00:01Z", &ids),
                entry("2026-01-01T00:00:02Z", &[]),
            ])
            .unwrap();
        assert_eq!(batch[0].prev_hash, one.hash);
        assert_eq!(batch[1].prev_hash, batch[0].hash);
        let ok = s.verify_audit().unwrap();
        assert_eq!((ok.rows, ok.broken_at), (3, None));
        assert_eq!(s.audit(Some("r1"), Some("o1"), None, 10).unwrap().len(), 2);
        // Pages by sequence number, newest first.
        let first: Vec<i64> = s
            .audit(None, None, None, 2)
            .unwrap()
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(first, [3, 2]);
        let next: Vec<i64> = s
            .audit(None, None, Some(2), 2)
            .unwrap()
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(next, [1]);
        // Refused as it is; found when the trigger is dropped first.
        assert!(
            s.conn
                .execute("DELETE FROM audit_log WHERE seq = 2", [])
                .is_err()
        );
        s.conn
            .execute_batch(
                "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET at = 'x' WHERE seq = 2;",
            )
            .unwrap();
        let bad = s.verify_audit().unwrap();
        assert_eq!(bad.broken_at, Some(2));
        assert!(bad.problem.unwrap().contains("row 2 was edited"));
    }
}

/// A lead as an inbound webhook delivers it.
#[derive(Debug, Clone, Default)]
pub struct NewLead {
    pub id: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    pub company: Option<String>,
    pub contact_name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub inquiry: Option<String>,
    pub owner_id: Option<String>,
}

impl SqliteStore {
    /// Stores a new lead with status `new`; false (and nothing written) when
    /// a lead with its id exists. Errors when the owner or campaign named is
    /// not in the database.
    pub fn insert_lead(&mut self, l: &NewLead) -> Result<bool> {
        let tx = self.conn.transaction()?;
        if let Some(o) = &l.owner_id {
            let known: Option<i64> = tx
                .query_row("SELECT 1 FROM users WHERE id = ?1", [o], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                return Err(StoreError::Invalid(format!("no user with id {o:?}")));
            }
        }
        if let Some(c) = &l.campaign_id {
            let known: Option<i64> = tx
                .query_row("SELECT 1 FROM campaigns WHERE id = ?1", [c], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                return Err(StoreError::Invalid(format!("no campaign with id {c:?}")));
            }
        }
        let n = tx.execute(
            "INSERT OR IGNORE INTO leads (id, created_at, source, campaign_id, company, contact_name,
                                          email, title, inquiry, owner_id, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'new')",
            rusqlite::params![
                l.id,
                l.created_at,
                l.source,
                l.campaign_id,
                l.company,
                l.contact_name,
                l.email,
                l.title,
                l.inquiry,
                l.owner_id
            ],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }
}
