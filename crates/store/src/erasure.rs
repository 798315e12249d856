//! Erasure of a person (GDPR article 17, CCPA "right to delete"): a contact,
//! a lead (and the contact it names) or a user, removed or irreversibly
//! anonymised everywhere the database holds them, while the rows the org's
//! figures rest on stay (deals, activities, leads and their dates, outcomes
//! and owners keep their ids).
//!
//! What goes, in one transaction:
//! - the person's own fields: a contact's name, email and title; a lead's
//!   contact name, email, title and inquiry text, and its scores; a user's
//!   name (replaced by "Erased user N") and email, their API tokens,
//!   sessions, password and grants, the reasons of their time out of office
//!   and the texts of coaching decisions about them;
//! - their words: the turns of calls they spoke (a contact's or lead's turns
//!   as the customer, a user's as the rep), text and speaker name; the
//!   subjects of the activities with them;
//! - every other mention of their full name or email in free text (other
//!   turns, activity subjects, call titles, deal names, inquiries, notes,
//!   decisions, import reports, score factors, model cards and artifacts),
//!   replaced by `[erased]`;
//! - audit rows whose detail names them: the detail is blanked, the row's
//!   hash and links are kept, and the row names the erasure that did it
//!   (`redacted_by`); the erasure itself is an audit row without the
//!   identity (`privacy.erased`);
//! - models trained on data that includes the person are marked for
//!   retraining (`retrain_reason`).
//!
//! Free pages keep old bytes until [`SqliteStore::vacuum`] rewrites the file
//! and truncates the write-ahead log; erasing callers run it after.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde::Serialize;

use crate::access::{NewAudit, append_audit_in};
use crate::{Result, SqliteStore, StoreError};

/// Who to erase.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A contact (and the leads that name it or its email).
    Contact(&'a str),
    /// A lead (and the contact it is linked to, with that contact's other
    /// leads: the same person).
    Lead(&'a str),
    /// A user: a rep, manager or admin.
    User(&'a str),
}

impl Subject<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Subject::Contact(_) => "contact",
            Subject::Lead(_) => "lead",
            Subject::User(_) => "user",
        }
    }
}

/// What an erasure changed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureReport {
    /// `contact`, `lead` or `user`.
    pub subject: String,
    /// The erasure's audit row.
    pub audit_seq: i64,
    /// Rows changed or deleted per table and column (`conversation_turns.text`).
    pub changed: BTreeMap<String, usize>,
    /// Audit rows whose detail named the person, now blank.
    pub audit_rows_blanked: usize,
    /// Models marked for retraining (`kind vVERSION`).
    pub models_marked: Vec<String>,
}

/// Free-text columns searched for the person's full name and email:
/// (table, column, key columns, the column holding the call's id for call
/// texts). Their email is replaced everywhere; their name in call texts only
/// on the calls about them (a namesake's calls keep their words), and in
/// every other text. Other people's name and email fields are not searched.
const FREE_TEXT: &[(&str, &str, &[&str], Option<&str>)] = &[
    (
        "conversation_turns",
        "text",
        &["conversation_id", "seq"],
        Some("conversation_id"),
    ),
    ("conversations", "title", &["rowid"], Some("id")),
    ("conversations", "source_file", &["rowid"], Some("id")),
    ("activities", "subject", &["rowid"], None),
    ("opportunities", "name", &["rowid"], None),
    ("leads", "inquiry", &["rowid"], None),
    ("coaching_decisions", "recommendation", &["rowid"], None),
    ("coaching_decisions", "reason", &["rowid"], None),
    ("coaching_decisions", "edited_text", &["rowid"], None),
    ("forecast_overrides", "reason", &["rowid"], None),
    ("lead_task_marks", "note", &["rowid"], None),
    ("action_dismissals", "note", &["rowid"], None),
    ("action_recommendations", "why", &["rowid"], None),
    ("out_of_office", "reason", &["rowid"], None),
    ("imports", "report", &["rowid"], None),
    ("imports", "sources", &["rowid"], None),
    (
        "scores",
        "factors",
        &["model_id", "entity_id", "as_of"],
        None,
    ),
    ("models", "card", &["rowid"], None),
    ("models", "artifact", &["rowid"], None),
    ("models", "metrics", &["rowid"], None),
    ("models", "features", &["rowid"], None),
];

/// Replaces every ASCII-case-insensitive occurrence of each needle in `s`
/// by `[erased]`; `None` when nothing matched.
fn scrub(s: &str, needles: &[String]) -> Option<String> {
    let mut out = s.to_string();
    let mut hit = false;
    for n in needles {
        let low = n.to_ascii_lowercase();
        // Scan forward past each replacement (a needle may occur in
        // "[erased]" itself).
        let mut from = 0;
        while let Some(i) = out[from..]
            .to_ascii_lowercase()
            .find(&low)
            .map(|i| i + from)
        {
            out.replace_range(i..i + low.len(), "[erased]");
            from = i + "[erased]".len();
            hit = true;
        }
    }
    hit.then_some(out)
}

impl SqliteStore {
    /// Erases `subject` (see the module's documentation) at instant `at`
    /// (UTC, `YYYY-MM-DDTHH:MM:SSZ`), by `actor` (a user id, or `None` for
    /// the command line), for `reason` (stored in the audit row with any
    /// mention of the person removed). Errors: no such contact, lead or
    /// user; a database error (nothing is changed).
    pub fn erase(
        &mut self,
        subject: Subject<'_>,
        actor: Option<&str>,
        reason: Option<&str>,
        at: &str,
    ) -> Result<ErasureReport> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS temp.erase_leads; DROP TABLE IF EXISTS temp.erase_contacts;
             DROP TABLE IF EXISTS temp.erase_convs;
             CREATE TEMP TABLE erase_leads (id TEXT PRIMARY KEY);
             CREATE TEMP TABLE erase_contacts (id TEXT PRIMARY KEY);
             CREATE TEMP TABLE erase_convs (id TEXT PRIMARY KEY);",
        )?;
        let mut changed: BTreeMap<String, usize> = BTreeMap::new();
        let mut count = |key: &str, n: usize| {
            if n > 0 {
                *changed.entry(key.to_string()).or_default() += n;
            }
        };
        let mut needles: Vec<String> = Vec::new();
        // Dates of the person's records: models trained after the first
        // saw them.
        let mut first_seen: Option<String> = None;
        let mut seen = |d: Option<String>| {
            if let Some(d) = d
                && first_seen.as_ref().is_none_or(|f| d < *f)
            {
                first_seen = Some(d);
            }
        };
        match subject {
            Subject::Contact(_) | Subject::Lead(_) => {
                // The contact and leads of the person.
                let contact: Option<String>;
                let mut leads: BTreeSet<String> = BTreeSet::new();
                match subject {
                    Subject::Contact(id) => {
                        let found: Option<String> = tx
                            .query_row("SELECT id FROM contacts WHERE id = ?1", [id], |r| r.get(0))
                            .optional()?;
                        contact = Some(found.ok_or_else(|| {
                            StoreError::Invalid(format!("no contact with id {id:?}"))
                        })?);
                    }
                    Subject::Lead(id) => {
                        let row: Option<Option<String>> = tx
                            .query_row("SELECT contact_id FROM leads WHERE id = ?1", [id], |r| {
                                r.get(0)
                            })
                            .optional()?;
                        let Some(c) = row else {
                            return Err(StoreError::Invalid(format!("no lead with id {id:?}")));
                        };
                        contact = c;
                        leads.insert(id.to_string());
                    }
                    Subject::User(_) => unreachable!(),
                }
                let mut contacts: BTreeSet<String> = contact.into_iter().collect();
                let mut emails: Vec<String> = Vec::new();
                let mut read_contact = |c: &str,
                                        leads: &mut BTreeSet<String>,
                                        needles: &mut Vec<String>,
                                        emails: &mut Vec<String>|
                 -> Result<()> {
                    let (name, email, created): (Option<String>, Option<String>, Option<String>) =
                        tx.query_row(
                            "SELECT name, email, created_at FROM contacts WHERE id = ?1",
                            [c],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )?;
                    needles.extend(name);
                    emails.extend(email);
                    seen(created);
                    let mut st = tx.prepare("SELECT id FROM leads WHERE contact_id = ?1")?;
                    for id in st.query_map([c], |r| r.get::<_, String>(0))? {
                        leads.insert(id?);
                    }
                    Ok(())
                };
                for c in contacts.clone() {
                    read_contact(&c, &mut leads, &mut needles, &mut emails)?;
                }
                for id in leads.clone() {
                    let (name, email): (Option<String>, Option<String>) = tx.query_row(
                        "SELECT contact_name, email FROM leads WHERE id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    needles.extend(name);
                    emails.extend(email);
                }
                // Leads and contacts with the same email address are the
                // same person.
                for e in emails.clone() {
                    let mut st = tx.prepare(
                        "SELECT id FROM leads WHERE email IS NOT NULL AND lower(email) = lower(?1)",
                    )?;
                    for id in st.query_map([&e], |r| r.get::<_, String>(0))? {
                        leads.insert(id?);
                    }
                    let mut st = tx.prepare(
                        "SELECT id FROM contacts WHERE email IS NOT NULL AND lower(email) = lower(?1)",
                    )?;
                    let same: Vec<String> = st
                        .query_map([&e], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for c in same {
                        if contacts.insert(c.clone()) {
                            read_contact(&c, &mut leads, &mut needles, &mut emails)?;
                        }
                    }
                }
                needles.extend(emails);
                // The person's leads, contacts and their accounts, and the
                // calls about them: their leads', their activities', and
                // their accounts' deals'.
                for (table, ids) in [("erase_leads", &leads), ("erase_contacts", &contacts)] {
                    let mut st =
                        tx.prepare(&format!("INSERT OR IGNORE INTO temp.{table} VALUES (?1)"))?;
                    for id in ids {
                        st.execute([id])?;
                    }
                }
                tx.execute_batch(
                    "INSERT OR IGNORE INTO temp.erase_convs
                     SELECT id FROM conversations
                     WHERE lead_id IN (SELECT id FROM temp.erase_leads)
                        OR activity_id IN (SELECT id FROM activities
                                           WHERE contact_id IN (SELECT id FROM temp.erase_contacts)
                                              OR lead_id IN (SELECT id FROM temp.erase_leads))
                        OR opportunity_id IN (
                             SELECT id FROM opportunities WHERE account_id IN (
                               SELECT account_id FROM contacts
                               WHERE id IN (SELECT id FROM temp.erase_contacts) AND account_id IS NOT NULL
                               UNION
                               SELECT account_id FROM leads
                               WHERE id IN (SELECT id FROM temp.erase_leads) AND account_id IS NOT NULL));",
                )?;
                let first: Option<String> = tx.query_row(
                    "SELECT min(created_at) FROM leads WHERE id IN (SELECT id FROM temp.erase_leads)",
                    [],
                    |r| r.get(0),
                )?;
                seen(first);
                let first: Option<String> = tx.query_row(
                    "SELECT min(occurred_at) FROM activities
                     WHERE contact_id IN (SELECT id FROM temp.erase_contacts)",
                    [],
                    |r| r.get(0),
                )?;
                seen(first);
                let n = tx.execute(
                    "UPDATE leads SET contact_name = NULL, email = NULL, title = NULL, inquiry = NULL
                     WHERE id IN (SELECT id FROM temp.erase_leads)
                       AND (contact_name IS NOT NULL OR email IS NOT NULL OR title IS NOT NULL
                            OR inquiry IS NOT NULL)",
                    [],
                )?;
                count("leads", n);
                let n = tx.execute(
                    "DELETE FROM scores WHERE entity_id IN (SELECT id FROM temp.erase_leads)",
                    [],
                )?;
                count("scores (deleted)", n);
                let n = tx.execute(
                    "UPDATE contacts SET name = NULL, email = NULL, title = NULL
                     WHERE id IN (SELECT id FROM temp.erase_contacts)
                       AND (name IS NOT NULL OR email IS NOT NULL OR title IS NOT NULL)",
                    [],
                )?;
                count("contacts", n);
                let n = tx.execute(
                    "UPDATE activities SET subject = NULL
                     WHERE subject IS NOT NULL
                       AND (contact_id IN (SELECT id FROM temp.erase_contacts)
                            OR lead_id IN (SELECT id FROM temp.erase_leads))",
                    [],
                )?;
                count("activities", n);
                // Their words: the customer's side of their leads' calls,
                // and turns spoken under their name on the calls about
                // them (a namesake's calls elsewhere are not theirs).
                let n = tx.execute(
                    "UPDATE conversation_turns SET text = NULL, speaker = NULL
                     WHERE (speaker_role IS NULL OR speaker_role <> 'rep')
                       AND (text IS NOT NULL OR speaker IS NOT NULL)
                       AND conversation_id IN (SELECT id FROM conversations
                                               WHERE lead_id IN (SELECT id FROM temp.erase_leads))",
                    [],
                )?;
                count("conversation_turns", n);
                for name in needles.iter().filter(|n| !n.contains('@')) {
                    count(
                        "conversation_turns",
                        tx.execute(
                            "UPDATE conversation_turns SET text = NULL, speaker = NULL
                             WHERE speaker = ?1 COLLATE NOCASE
                               AND (speaker_role IS NULL OR speaker_role <> 'rep')
                               AND conversation_id IN (SELECT id FROM temp.erase_convs)",
                            [name],
                        )?,
                    );
                }
            }
            Subject::User(id) => {
                let row: Option<(String, Option<String>, Option<String>)> = tx
                    .query_row(
                        "SELECT name, email, hire_date FROM users WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((name, email, hired)) = row else {
                    return Err(StoreError::Invalid(format!("no user with id {id:?}")));
                };
                seen(hired);
                needles.push(name.clone());
                needles.extend(email);
                tx.execute(
                    "INSERT OR IGNORE INTO temp.erase_convs
                     SELECT id FROM conversations
                     WHERE user_id = ?1
                        OR opportunity_id IN (SELECT id FROM opportunities WHERE owner_id = ?1)",
                    [id],
                )?;
                // Once erased, a user keeps their "Erased user N".
                let done = name.starts_with("Erased user ") && needles.len() == 1;
                if done {
                    needles.clear();
                } else {
                    let n: i64 = tx.query_row(
                        "SELECT count(*) FROM users WHERE name LIKE 'Erased user %'",
                        [],
                        |r| r.get(0),
                    )?;
                    count(
                        "users",
                        tx.execute(
                            "UPDATE users SET name = ?2, email = NULL WHERE id = ?1",
                            params![id, format!("Erased user {}", n + 1)],
                        )?,
                    );
                }
                for (table, label) in [
                    ("api_tokens", "api_tokens (deleted)"),
                    ("sessions", "sessions (deleted)"),
                    ("user_credentials", "user_credentials (deleted)"),
                    ("user_grants", "user_grants (deleted)"),
                ] {
                    count(
                        label,
                        tx.execute(&format!("DELETE FROM {table} WHERE user_id = ?1"), [id])?,
                    );
                }
                count(
                    "out_of_office",
                    tx.execute(
                        "UPDATE out_of_office SET reason = NULL WHERE user_id = ?1 AND reason IS NOT NULL",
                        [id],
                    )?,
                );
                count(
                    "coaching_decisions",
                    tx.execute(
                        "UPDATE coaching_decisions SET reason = NULL, edited_text = NULL
                         WHERE rep_id = ?1 AND (reason IS NOT NULL OR edited_text IS NOT NULL)",
                        [id],
                    )?,
                );
                count(
                    "conversation_turns",
                    tx.execute(
                        "UPDATE conversation_turns SET text = NULL, speaker = NULL
                         WHERE (text IS NOT NULL OR speaker IS NOT NULL) AND speaker_role = 'rep'
                           AND (conversation_id IN (SELECT id FROM conversations WHERE user_id = ?1)
                                OR (speaker = ?2 COLLATE NOCASE
                                    AND conversation_id IN (SELECT id FROM temp.erase_convs)))",
                        params![id, name],
                    )?,
                );
            }
        }
        needles = needles
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| n.chars().count() >= 3)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Longest first, so "Ann Lee-Smith" goes before "Ann Lee".
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        // Every other mention in free text.
        if !needles.is_empty() {
            let any = |col: &str| {
                (1..=needles.len())
                    .map(|i| format!("instr(lower({col}), lower(?{i})) > 0"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            };
            let about: BTreeSet<String> = {
                let mut st = tx.prepare("SELECT id FROM temp.erase_convs")?;
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let emails: Vec<String> = needles
                .iter()
                .filter(|n| n.contains('@'))
                .cloned()
                .collect();
            for (table, col, key, call) in FREE_TEXT {
                let keys = key.join(", ");
                let call_col = call.unwrap_or("NULL");
                let sql = format!(
                    "SELECT {keys}, {col}, {call_col} FROM {table} WHERE {col} IS NOT NULL AND ({})",
                    any(col)
                );
                let hits: Vec<(Vec<rusqlite::types::Value>, String, Option<String>)> = {
                    let mut st = tx.prepare(&sql)?;
                    st.query_map(params_from_iter(needles.iter()), |r| {
                        let k = (0..key.len())
                            .map(|i| r.get::<_, rusqlite::types::Value>(i))
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        Ok((k, r.get::<_, String>(key.len())?, r.get(key.len() + 1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?
                };
                let set = format!(
                    "UPDATE {table} SET {col} = ?1 WHERE {}",
                    key.iter()
                        .enumerate()
                        .map(|(i, k)| format!("{k} = ?{}", i + 2))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                );
                let mut n = 0;
                for (k, text, conv) in hits {
                    // A call not about them: only their email goes.
                    let these = match (&call, &conv) {
                        (Some(_), Some(c)) if !about.contains(c) => &emails,
                        _ => &needles,
                    };
                    if let Some(clean) = scrub(&text, these) {
                        let mut p: Vec<rusqlite::types::Value> = vec![clean.into()];
                        p.extend(k);
                        n += tx.execute(&set, params_from_iter(p))?;
                    }
                }
                count(&format!("{table}.{col}"), n);
            }
        }
        let reason = reason.map(|r| scrub(r, &needles).unwrap_or_else(|| r.to_string()));
        let summary = changed
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let detail = format!(
            "a {} erased ({summary}){}",
            subject.kind(),
            reason.map(|r| format!("; reason: {r}")).unwrap_or_default()
        );
        let rec = append_audit_in(
            &tx,
            &[NewAudit {
                at,
                user_id: actor,
                action: "privacy.erased",
                route: Some("erase"),
                ids: &[],
                detail: Some(&detail),
            }],
        )?
        .pop()
        .expect("one row in, one out");
        let blanked = if needles.is_empty() {
            0
        } else {
            let cond = (1..=needles.len())
                .map(|i| format!("instr(lower(detail), lower(?{})) > 0", i + 1))
                .collect::<Vec<_>>()
                .join(" OR ");
            let mut p: Vec<String> = vec![rec.seq.to_string()];
            p.extend(needles.iter().cloned());
            tx.execute(
                &format!(
                    "UPDATE audit_log SET detail = NULL, redacted_by = CAST(?1 AS INTEGER)
                     WHERE seq < CAST(?1 AS INTEGER) AND redacted_by IS NULL
                       AND detail IS NOT NULL AND ({cond})"
                ),
                params_from_iter(p),
            )?
        };
        // Models whose training data reached the person's first record.
        let why = format!(
            "trained on data of a person erased at {at} (audit row {})",
            rec.seq
        );
        let mut marked = Vec::new();
        {
            let mut st = tx.prepare(
                "SELECT id, kind, version FROM models
                 WHERE retrain_reason IS NULL
                   AND (?1 IS NULL OR train_to IS NULL OR train_to >= substr(?1, 1, 10))",
            )?;
            let rows: Vec<(i64, String, i64)> = st
                .query_map([&first_seen], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, kind, version) in rows {
                tx.execute(
                    "UPDATE models SET retrain_reason = ?2 WHERE id = ?1",
                    params![id, why],
                )?;
                marked.push(format!("{kind} v{version}"));
            }
        }
        tx.execute_batch(
            "DROP TABLE temp.erase_leads; DROP TABLE temp.erase_contacts; DROP TABLE temp.erase_convs;",
        )?;
        tx.commit()?;
        Ok(ErasureReport {
            subject: subject.kind().into(),
            audit_seq: rec.seq,
            changed,
            audit_rows_blanked: blanked,
            models_marked: marked,
        })
    }

    /// Rewrites the database file without free pages (SQLite `VACUUM`) and
    /// empties the write-ahead log, so erased or deleted values leave no
    /// bytes behind. Takes as long as copying the file.
    pub fn vacuum(&mut self) -> Result<()> {
        self.conn.execute_batch("VACUUM")?;
        // Empty the write-ahead log, whose old frames hold what was
        // removed; a reader of another connection (a running server) can
        // hold the checkpoint back a moment: try for up to ten seconds.
        for _ in 0..100 {
            let busy: i64 = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(StoreError::Invalid(
            "the write-ahead log could not be emptied (another connection kept reading for ten seconds): run the command again".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{Subject, scrub};
    use crate::SqliteStore;
    use crate::access::NewAudit;

    fn org() -> SqliteStore {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO users (id, name, email, role) VALUES
                   ('r1', 'Tom Wu', 'tom@seller.example', 'rep');
                 INSERT INTO accounts (id, name) VALUES ('a1', 'Acme');
                 INSERT INTO contacts (id, account_id, name, email, title, created_at) VALUES
                   ('c1', 'a1', 'Ann Lee', 'ann@acme.example', 'CFO', '2025-02-01T00:00:00Z');
                 INSERT INTO leads (id, created_at, contact_name, email, inquiry, owner_id, contact_id, company)
                   VALUES ('l1', '2025-02-01T10:00:00Z', 'Ann Lee', 'ann@acme.example',
                           'We cannot see our pipeline in real time', 'r1', 'c1', 'Acme'),
                          ('l2', '2025-03-01T10:00:00Z', 'A. Lee', 'ANN@acme.example',
                           'Pricing please', 'r1', NULL, 'Acme'),
                          ('l3', '2025-03-02T10:00:00Z', 'Bo Chen', 'bo@acme.example',
                           'Ann Lee said to write to you', 'r1', NULL, 'Acme');
                 INSERT INTO conversations (id, started_at, lead_id, user_id, title)
                   VALUES ('v1', '2025-02-02T10:00:00Z', 'l1', 'r1', 'Call with Ann Lee');
                 -- A namesake at another company, on a call about her own deal.
                 INSERT INTO accounts (id, name) VALUES ('a2', 'Bolt');
                 INSERT INTO contacts (id, account_id, name, email) VALUES
                   ('c2', 'a2', 'Ann Lee', 'ann@bolt.example');
                 INSERT INTO opportunities (id, account_id, owner_id, stage, created_at)
                   VALUES ('o2', 'a2', 'r1', 'discovery', '2025-02-01T00:00:00Z');
                 INSERT INTO conversations (id, started_at, opportunity_id, user_id, title)
                   VALUES ('v2', '2025-02-05T10:00:00Z', 'o2', 'r1', 'Bolt: Ann Lee');
                 INSERT INTO conversation_turns (conversation_id, seq, speaker, speaker_role, start_ms, end_ms, text)
                   VALUES ('v2', 0, 'Tom Wu', 'rep', 0, 1000, 'Hello Ann Lee'),
                          ('v2', 1, 'Ann Lee', 'customer', 1000, 5000, 'Bolt needs this');
                 INSERT INTO conversation_turns (conversation_id, seq, speaker, speaker_role, start_ms, end_ms, text)
                   VALUES ('v1', 0, 'Tom Wu', 'rep', 0, 1000, 'Hi Ann Lee, thanks for joining'),
                          ('v1', 1, 'Ann Lee', 'customer', 1000, 5000, 'Our forecast is a guess every quarter');
                 INSERT INTO models (kind, version, created_at, algorithm, train_from, train_to,
                                     features, metrics, card, artifact, active)
                   VALUES ('lead', 1, '2025-06-01T00:00:00Z', 'hist', '2024-01-01', '2025-05-01',
                           '[]', '{}', 'card', '{}', 1),
                          ('win', 1, '2025-06-01T00:00:00Z', 'hist', '2023-01-01', '2024-06-01',
                           '[]', '{}', 'card', '{}', 1);",
            )
            .unwrap();
        s.append_audit(&NewAudit {
            at: "2025-02-03T00:00:00Z",
            user_id: None,
            action: "lead.reassigned",
            route: None,
            ids: &["l1".to_string()],
            detail: Some("Tom Wu: 20% for ann@acme.example"),
        })
        .unwrap();
        s
    }

    #[test]
    fn a_contact_is_erased_everywhere_and_the_chain_still_verifies() {
        let mut s = org();
        let version = s.serving_version().unwrap();
        let r = s
            .erase(
                Subject::Contact("c1"),
                None,
                Some("asked by Ann Lee"),
                "2025-07-01T00:00:00Z",
            )
            .unwrap();
        // A running server sees the data changed (and reloads).
        let after = s.serving_version().unwrap();
        assert_ne!(
            after.split(':').next(),
            version.split(':').next(),
            "{version} {after}"
        );
        let one =
            |sql: &str| -> Option<String> { s.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(one("SELECT name FROM contacts WHERE id = 'c1'"), None);
        assert_eq!(one("SELECT email FROM contacts WHERE id = 'c1'"), None);
        assert_eq!(
            one("SELECT account_id FROM contacts WHERE id = 'c1'").as_deref(),
            Some("a1")
        );
        // Both of the person's leads (one by contact, one by email), kept
        // with their dates and company.
        for l in ["l1", "l2"] {
            assert_eq!(
                one(&format!("SELECT inquiry FROM leads WHERE id = '{l}'")),
                None
            );
            assert_eq!(
                one(&format!("SELECT email FROM leads WHERE id = '{l}'")),
                None
            );
            assert_eq!(
                one(&format!("SELECT company FROM leads WHERE id = '{l}'")).as_deref(),
                Some("Acme")
            );
        }
        // Someone else's lead keeps its inquiry, the name in it erased.
        assert_eq!(
            one("SELECT inquiry FROM leads WHERE id = 'l3'").as_deref(),
            Some("[erased] said to write to you")
        );
        // Their words are gone; the rep's stay, the name in them erased.
        assert_eq!(
            one("SELECT text FROM conversation_turns WHERE seq = 1"),
            None
        );
        assert_eq!(
            one("SELECT text FROM conversation_turns WHERE seq = 0").as_deref(),
            Some("Hi [erased], thanks for joining")
        );
        assert_eq!(
            one("SELECT title FROM conversations").as_deref(),
            Some("Call with [erased]")
        );
        // The audit: the row that named them blanked, the erasure without
        // their identity, the chain intact.
        assert_eq!(r.audit_rows_blanked, 1);
        let rows = s.audit(None, None, None, 10).unwrap();
        assert_eq!(rows[0].action, "privacy.erased");
        assert!(rows[0].ids.is_empty());
        let d = rows[0].detail.as_deref().unwrap();
        assert!(
            d.starts_with("a contact erased (") && d.ends_with("reason: asked by [erased]"),
            "{d}"
        );
        assert_eq!(rows[1].detail, None);
        assert_eq!(rows[1].redacted_by, Some(rows[0].seq));
        let check = s.verify_audit().unwrap();
        assert_eq!((check.broken_at, check.redacted), (None, 1), "{check:?}");
        // Blanking is the only change the log allows.
        let e = s
            .conn
            .execute("UPDATE audit_log SET detail = 'x' WHERE seq = 1", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        // The lead model's training reached the person; the win model's did not.
        assert_eq!(r.models_marked, vec!["lead v1".to_string()]);
        s.vacuum().unwrap();
        assert!(
            s.erase(Subject::Lead("nope"), None, None, "2025-07-01T00:00:00Z")
                .is_err()
        );
    }

    #[test]
    fn a_user_is_anonymised_and_signed_out() {
        let mut s = org();
        s.conn
            .execute_batch(
                "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES ('r1', 'h', '2025-01-01');",
            )
            .unwrap();
        let r = s
            .erase(Subject::User("r1"), None, None, "2025-07-01T00:00:00Z")
            .unwrap();
        let one =
            |sql: &str| -> Option<String> { s.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            one("SELECT name FROM users WHERE id = 'r1'").as_deref(),
            Some("Erased user 1")
        );
        assert_eq!(one("SELECT email FROM users WHERE id = 'r1'"), None);
        assert_eq!(r.changed.get("api_tokens (deleted)"), Some(&1));
        // Their words as the rep are gone; the customer's stay.
        assert_eq!(
            one("SELECT text FROM conversation_turns WHERE seq = 0"),
            None
        );
        assert!(one("SELECT text FROM conversation_turns WHERE seq = 1").is_some());
        assert_eq!(r.audit_rows_blanked, 1);
        // Their deals and leads keep their owner id (the aggregates).
        assert_eq!(
            one("SELECT owner_id FROM leads WHERE id = 'l1'").as_deref(),
            Some("r1")
        );
    }

    #[test]
    fn scrub_replaces_every_mention_ignoring_case() {
        let n = vec!["ann@x.example".to_string(), "Ann Lee".to_string()];
        assert_eq!(
            scrub("Call ANN LEE (Ann@X.example) about ann lee's deal", &n).unwrap(),
            "Call [erased] ([erased]) about [erased]'s deal"
        );
        assert_eq!(scrub("nothing here", &n), None);
        // A needle inside the replacement does not loop.
        assert_eq!(
            scrub("Era and era", &["Era".to_string()]).unwrap(),
            "[erased] and [erased]"
        );
    }
}

/// A retention policy: how long personal data is kept (days; `None`: for
/// ever).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Recorded calls older than this lose their transcript: each turn's
    /// text and speaker name, and the call's title (the timing, roles and
    /// links stay, so talk ratios and durations still count).
    pub transcripts_days: Option<u32>,
    /// Leads older than this that never converted lose their contact's
    /// name, email, title and inquiry, and their scores (their dates,
    /// source, company, owner and outcome stay).
    pub unconverted_leads_days: Option<u32>,
}

/// What applying a retention policy did (or would do, on a dry run).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    pub policy: RetentionPolicy,
    /// The instant the ages are counted from (UTC).
    pub as_of: String,
    pub dry_run: bool,
    /// Calls whose transcripts were removed.
    pub transcripts: usize,
    /// Turns blanked in them.
    pub turns: usize,
    /// Unconverted leads whose personal fields were removed.
    pub leads: usize,
    /// The audit row recording it (`None` on a dry run or when nothing was
    /// due).
    pub audit_seq: Option<i64>,
}

fn days_before(as_of: &str, days: u32) -> Option<String> {
    let t = crate::read::instant(as_of)? - i64::from(days) * 86_400;
    Some(pipewise_core::value::format_epoch(t))
}

impl SqliteStore {
    /// Applies `policy` as of `as_of` (UTC, `YYYY-MM-DDTHH:MM:SSZ`: ages
    /// count from it) in one transaction, recorded in the audit log at `at`
    /// as `privacy.retention` (with the policy and the counts); with
    /// `dry_run`, counts what is due and changes nothing. Callers
    /// [`SqliteStore::vacuum`] after. Errors: an unreadable `as_of`; a
    /// database error (nothing is changed).
    pub fn apply_retention(
        &mut self,
        policy: &RetentionPolicy,
        as_of: &str,
        at: &str,
        actor: Option<&str>,
        dry_run: bool,
    ) -> Result<RetentionReport> {
        if crate::read::instant(as_of).is_none() {
            return Err(StoreError::Invalid(format!(
                "{as_of:?}: expected an instant such as 2026-12-01T00:00:00Z"
            )));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut report = RetentionReport {
            policy: policy.clone(),
            as_of: as_of.to_string(),
            dry_run,
            transcripts: 0,
            turns: 0,
            leads: 0,
            audit_seq: None,
        };
        if let Some(cut) = policy.transcripts_days.and_then(|d| days_before(as_of, d)) {
            let due = "started_at IS NOT NULL AND started_at < ?1 AND (title IS NOT NULL
                       OR EXISTS (SELECT 1 FROM conversation_turns t WHERE t.conversation_id = conversations.id
                                  AND (t.text IS NOT NULL OR t.speaker IS NOT NULL)))";
            report.transcripts = tx.query_row(
                &format!("SELECT count(*) FROM conversations WHERE {due}"),
                [&cut],
                |r| r.get::<_, i64>(0),
            )? as usize;
            report.turns = tx.query_row(
                "SELECT count(*) FROM conversation_turns
                 WHERE (text IS NOT NULL OR speaker IS NOT NULL)
                   AND conversation_id IN (SELECT id FROM conversations
                                           WHERE started_at IS NOT NULL AND started_at < ?1)",
                [&cut],
                |r| r.get::<_, i64>(0),
            )? as usize;
            if !dry_run {
                tx.execute(
                    "UPDATE conversation_turns SET text = NULL, speaker = NULL
                     WHERE (text IS NOT NULL OR speaker IS NOT NULL)
                       AND conversation_id IN (SELECT id FROM conversations
                                               WHERE started_at IS NOT NULL AND started_at < ?1)",
                    [&cut],
                )?;
                tx.execute(
                    "UPDATE conversations SET title = NULL
                     WHERE title IS NOT NULL AND started_at IS NOT NULL AND started_at < ?1",
                    [&cut],
                )?;
            }
        }
        if let Some(cut) = policy
            .unconverted_leads_days
            .and_then(|d| days_before(as_of, d))
        {
            let due = "created_at < ?1 AND converted_at IS NULL
                       AND (contact_name IS NOT NULL OR email IS NOT NULL OR title IS NOT NULL
                            OR inquiry IS NOT NULL)";
            report.leads = tx.query_row(
                &format!("SELECT count(*) FROM leads WHERE {due}"),
                [&cut],
                |r| r.get::<_, i64>(0),
            )? as usize;
            if !dry_run {
                tx.execute(
                    &format!(
                        "DELETE FROM scores WHERE entity_id IN (SELECT id FROM leads WHERE {due})"
                    ),
                    [&cut],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE leads SET contact_name = NULL, email = NULL, title = NULL, inquiry = NULL
                         WHERE {due}"
                    ),
                    [&cut],
                )?;
            }
        }
        if !dry_run && report.transcripts + report.leads > 0 {
            let detail = format!(
                "retention as of {as_of}: {} transcripts ({} turns) older than {} days, {} unconverted leads older than {} days",
                report.transcripts,
                report.turns,
                policy
                    .transcripts_days
                    .map_or("(no limit)".into(), |d| d.to_string()),
                report.leads,
                policy
                    .unconverted_leads_days
                    .map_or("(no limit)".into(), |d| d.to_string()),
            );
            let rec = append_audit_in(
                &tx,
                &[NewAudit {
                    at,
                    user_id: actor,
                    action: "privacy.retention",
                    route: Some("retention apply"),
                    ids: &[],
                    detail: Some(&detail),
                }],
            )?;
            report.audit_seq = rec.first().map(|r| r.seq);
        }
        tx.commit()?;
        Ok(report)
    }
}
