//! Privacy use cases: erasing a person and applying a retention policy,
//! each followed by a rewrite of the database file so that nothing removed
//! stays in free pages (docs/privacy.md).

use std::path::Path;

use anyhow::{Context as _, Result};
use pipewise_store::SqliteStore;
pub use pipewise_store::erasure::{ErasureReport, RetentionPolicy, RetentionReport, Subject};
use pipewise_store::read::Person;

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

/// The environment variable holding the org's key: the database's
/// encryption key and the pseudonymisation key.
pub const KEY_ENV: &str = "PIPEWISE_KEY";

/// The environment variable holding the new key of `pipewise db rekey`.
pub const NEW_KEY_ENV: &str = "PIPEWISE_NEW_KEY";

/// Reads a key: the file's content when given, else the environment
/// variable `env` (`None` when neither is there); surrounding blanks
/// trimmed. Errors: an unreadable file, a key that is not UTF-8 text, or
/// one shorter than 16 bytes (too easy to guess, and a guessed key opens
/// everything).
pub fn read_key(file: Option<&Path>, env: &str) -> Result<Option<String>> {
    let key = match file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read the key file", p.display()))?,
        None => match std::env::var(env) {
            Ok(k) => k,
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{env} is not UTF-8 text"),
        },
    };
    let key = key.trim().to_string();
    anyhow::ensure!(
        key.len() >= pipewise_store::encryption::MIN_KEY_BYTES,
        "the key ({}) has {} bytes: give {} or more",
        file.map_or_else(|| env.to_string(), |p| p.display().to_string()),
        key.len(),
        pipewise_store::encryption::MIN_KEY_BYTES
    );
    Ok(Some(key))
}

/// Reads the org's key (`file`, else `PIPEWISE_KEY`) and makes it this
/// process's database key (see `pipewise_store::encryption`) and
/// pseudonymisation key ([`load_key`]). Returns whether there is one.
/// Errors: as [`read_key`].
pub fn configure_key(file: Option<&Path>) -> Result<bool> {
    let key = read_key(file, KEY_ENV)?;
    let some = key.is_some();
    pipewise_store::set_database_key(key)?;
    Ok(some)
}

/// The pseudonymisation key: `file`'s content when given, else the key
/// configured for this process ([`configure_key`]), else `PIPEWISE_KEY`.
/// Errors: no key, or one shorter than 16 bytes.
pub fn load_key(file: Option<&Path>) -> Result<Vec<u8>> {
    let key = match file {
        Some(_) => read_key(file, KEY_ENV)?,
        None => match pipewise_store::database_key() {
            Some(k) => Some(k),
            None => read_key(None, KEY_ENV)?,
        },
    };
    let key = key.ok_or_else(|| {
        anyhow::anyhow!(
            "pseudonyms need a key: set {KEY_ENV} or give --key-file (16 characters or more, kept secret)"
        )
    })?;
    Ok(key.into_bytes())
}

/// A change of the database file's encryption (`pipewise db ...`).
pub enum KeyChange {
    /// Encrypt a plaintext file with the process's key.
    Encrypt,
    /// Re-encrypt an encrypted file under a new key.
    Rotate { new_key: String },
    /// Decrypt an encrypted file.
    Decrypt,
}

/// Rewrites the database file at `db` as `change` says, with the process's
/// key ([`configure_key`]), and records it in the audit log (no key, only
/// what was done and `by` whom, run from `route`) as `privacy.encrypted`, `privacy.key_rotated` or
/// `privacy.decrypted`. Errors: no key; a file already in the state asked
/// for (encrypting an encrypted file, rotating or decrypting a plaintext
/// one); a new key equal to the old; a wrong key; the file system's errors.
pub fn change_key(
    db: &Path,
    change: &KeyChange,
    route: &str,
    by: &str,
) -> Result<pipewise_store::Rewrite> {
    use pipewise_store::encryption::{FileState, file_state};
    let key = pipewise_store::database_key();
    let state = file_state(db)?;
    anyhow::ensure!(
        state != FileState::New,
        "no database at {}: import data first",
        db.display()
    );
    let encrypted = state == FileState::Encrypted;
    let (old, new, action) = match change {
        KeyChange::Encrypt => {
            anyhow::ensure!(
                !encrypted,
                "{} is not a plaintext SQLite database: it is already encrypted (`pipewise db rekey` changes its key), or not a database at all",
                db.display()
            );
            let k = key.clone().ok_or_else(|| {
                anyhow::anyhow!("encrypting needs a key: set {KEY_ENV} or give --key-file (16 characters or more, kept secret)")
            })?;
            (None, Some(k), "privacy.encrypted")
        }
        KeyChange::Rotate { new_key } => {
            anyhow::ensure!(
                encrypted,
                "{} is not encrypted: `pipewise db encrypt` encrypts it",
                db.display()
            );
            anyhow::ensure!(
                key.as_deref() != Some(new_key.as_str()),
                "the new key is the key in force: give another"
            );
            (key.clone(), Some(new_key.clone()), "privacy.key_rotated")
        }
        KeyChange::Decrypt => {
            anyhow::ensure!(encrypted, "{} is not encrypted", db.display());
            (key.clone(), None, "privacy.decrypted")
        }
    };
    if encrypted && old.is_none() {
        anyhow::bail!(pipewise_store::StoreError::Encrypted {
            path: db.display().to_string()
        });
    }
    let r = SqliteStore::rewrite_keyed(db, old.as_deref(), new.as_deref())?;
    let mut store = SqliteStore::open_with_key(db, new.as_deref())?;
    let detail = format!(
        "{} -> {}; {} bytes; {by}",
        if r.encrypted_before {
            "encrypted"
        } else {
            "plaintext"
        },
        if r.encrypted_after {
            "encrypted"
        } else {
            "plaintext"
        },
        r.bytes
    );
    store.append_audit(&pipewise_store::access::NewAudit {
        at: &crate::auth::now(),
        user_id: None,
        action,
        route: Some(route),
        ids: &[],
        detail: Some(&detail),
    })?;
    Ok(r)
}

/// Replaces people in exports by stable keyed pseudonyms: `P-` and the
/// first 12 hex digits of HMAC-SHA256(key, "kind:id"). The same person gets
/// the same pseudonym in every export made with the same key; without the
/// key a pseudonym cannot be tied back to anyone, and with it an admin can
/// ([`reveal`]). People are the database's users, contacts and leads'
/// contacts: a cell that is one's id becomes their pseudonym, and their
/// full names and emails inside any text are replaced.
pub struct Pseudonymiser {
    key: Vec<u8>,
    ids: std::collections::HashMap<String, String>,
    /// Every name and email (ASCII case ignored), longest match first.
    names: Option<aho_corasick::AhoCorasick>,
    /// The pseudonym of each of `names`' patterns.
    replacements: Vec<String>,
    /// Ids that may stand alone as a word in text (3 or more characters,
    /// not only digits): (id, pseudonym).
    word_ids: Option<(aho_corasick::AhoCorasick, Vec<String>)>,
}

/// The keyed pseudonym of a person of `kind` (`user`, `contact`, `lead`).
pub fn pseudonym(key: &[u8], kind: &str, id: &str) -> String {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(id.as_bytes());
    let d = mac.finalize().into_bytes();
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("P-{hex}")
}

impl Pseudonymiser {
    /// The pseudonyms of `people` (from [`SqliteStore::people`]) under `key`.
    pub fn new(key: Vec<u8>, people: &[Person]) -> Pseudonymiser {
        use aho_corasick::{AhoCorasick, MatchKind};
        let mut ids = std::collections::HashMap::new();
        let mut names: Vec<(String, String)> = Vec::new();
        let mut words: Vec<(String, String)> = Vec::new();
        for person in people {
            let p = pseudonym(&key, person.kind, &person.id);
            for text in [&person.name, &person.email].into_iter().flatten() {
                let t = text.trim();
                if t.chars().count() >= 3 && !t.starts_with("Erased user ") {
                    names.push((t.to_string(), p.clone()));
                }
            }
            // Ids replaced inside text: 3 characters or more, with a digit
            // and a letter (a bare number, or a word such as "admin", is
            // too common in text to replace safely).
            let id = person.id.trim();
            if id.len() >= 3
                && id.bytes().any(|b| b.is_ascii_digit())
                && id.bytes().any(|b| b.is_ascii_alphabetic())
            {
                words.push((id.to_string(), p.clone()));
            }
            ids.insert(person.id.clone(), p);
        }
        names.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        names.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
        words.sort();
        words.dedup_by(|a, b| a.0 == b.0);
        let build = |pats: &[(String, String)]| {
            (!pats.is_empty()).then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .ascii_case_insensitive(true)
                    .build(pats.iter().map(|x| x.0.as_str()))
                    .expect("names build an automaton")
            })
        };
        let word_ids = build(&words).map(|a| (a, words.iter().map(|w| w.1.clone()).collect()));
        Pseudonymiser {
            key,
            ids,
            names: build(&names),
            replacements: names.into_iter().map(|x| x.1).collect(),
            word_ids,
        }
    }

    /// A person's pseudonym.
    pub fn of(&self, kind: &str, id: &str) -> String {
        pseudonym(&self.key, kind, id)
    }

    /// One exported cell: a person's id becomes their pseudonym; their
    /// names and emails inside the text (ASCII case ignored) are replaced.
    pub fn cell(&self, s: &str) -> String {
        if let Some(p) = self.ids.get(s) {
            return p.clone();
        }
        match &self.names {
            Some(ac) => ac.replace_all(s, &self.replacements),
            None => s.to_string(),
        }
    }

    /// Free text (a report, a table printed for people): names and emails
    /// replaced as in [`Self::cell`], and ids standing alone as a word (3
    /// or more characters with a digit and a letter, between characters
    /// that are not letters, digits, `_` or `-`: `r00001:discovery`, a
    /// route's `/r00001/`) replaced by their pseudonyms.
    pub fn text(&self, s: &str) -> String {
        let s = self.cell(s);
        let Some((ac, reps)) = &self.word_ids else {
            return s;
        };
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for m in ac.find_iter(&s) {
            if word(s[..m.start()].chars().next_back()) || word(s[m.end()..].chars().next()) {
                continue;
            }
            out.push_str(&s[last..m.start()]);
            out.push_str(&reps[m.pattern().as_usize()]);
            last = m.end();
        }
        out.push_str(&s[last..]);
        out
    }

    /// A JSON document: every string that is a person's id becomes their
    /// pseudonym, every other string and every object key is replaced as
    /// text ([`Self::text`]: names, emails, ids inside it); numbers and the
    /// shape are kept.
    pub fn json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    self.json(&mut x);
                    o.insert(self.text(&k), x);
                }
            }
            _ => {}
        }
    }

    /// A CSV document: each cell as [`Self::cell`] (the header kept).
    /// Errors: text that is not CSV.
    pub fn csv(&self, text: &str) -> Result<String> {
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut wr = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        for (i, rec) in rd.records().enumerate() {
            let rec = rec.context("the CSV to pseudonymise")?;
            if i == 0 {
                wr.write_record(&rec)?;
            } else {
                wr.write_record(rec.iter().map(|c| self.cell(c)))?;
            }
        }
        Ok(String::from_utf8(
            wr.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
        )?)
    }

    /// Anything printed: a JSON document walked ([`Self::json`]), else
    /// free text line by line ([`Self::text`]).
    pub fn output(&self, text: &str) -> String {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            // One document, or one per line (`--json` of some commands).
            let mut docs = Vec::new();
            let whole = serde_json::from_str::<serde_json::Value>(text).map(|v| vec![v]);
            let parsed = whole.or_else(|_| {
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(serde_json::from_str::<serde_json::Value>)
                    .collect::<Result<Vec<_>, _>>()
            });
            if let Ok(vs) = parsed {
                let pretty = text.contains("\n  ") || text.lines().count() > vs.len();
                for mut v in vs {
                    self.json(&mut v);
                    docs.push(if pretty {
                        serde_json::to_string_pretty(&v).unwrap_or_default()
                    } else {
                        v.to_string()
                    });
                }
                let mut out = docs.join("\n");
                if text.ends_with('\n') {
                    out.push('\n');
                }
                return out;
            }
        }
        self.text(text)
    }
}

/// Who a pseudonym stands for, for an admin holding the key: every one of
/// `people` whose pseudonym it is.
pub fn reveal<'p>(key: &[u8], people: &'p [Person], p: &str) -> Vec<&'p Person> {
    people
        .iter()
        .filter(|x| pseudonym(key, x.kind, &x.id) == p.trim())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_revealed_only_with_the_key() {
        let crm = vec![Person {
            kind: "user",
            id: "r1".into(),
            name: Some("Tom Wu".into()),
            email: Some("tom@seller.example".into()),
        }];
        let key = b"0123456789abcdef".to_vec();
        let p = Pseudonymiser::new(key.clone(), &crm);
        let tom = p.of("user", "r1");
        assert!(tom.starts_with("P-") && tom.len() == 14, "{tom}");
        assert_eq!(p.cell("r1"), tom);
        assert_eq!(
            p.cell("owner is Tom Wu (+0.3)"),
            format!("owner is {tom} (+0.3)")
        );
        assert_eq!(p.cell("Acme"), "Acme");
        // Another key, another pseudonym; the key reveals it.
        assert_ne!(pseudonym(b"another key, 16+ bytes", "user", "r1"), tom);
        assert_eq!(reveal(&key, &crm, &tom)[0].id, "r1");
        assert_eq!(p.cell("mail tom@seller.example"), format!("mail {tom}"));
        assert!(reveal(b"another key, 16+ bytes", &crm, &tom).is_empty());
        // Case is ignored in names and emails.
        assert_eq!(p.cell("TOM WU called"), format!("{tom} called"));
        // Ids of 3 or more characters stand alone in text; inside another
        // word they are kept (and shorter ids are too common to replace).
        let two = Pseudonymiser::new(
            key.clone(),
            &[Person {
                kind: "user",
                id: "rep7".into(),
                name: None,
                email: None,
            }],
        );
        let r7 = two.of("user", "rep7");
        assert_eq!(
            two.text("owner rep7: 3 deals; rep70 and xrep7 not"),
            format!("owner {r7}: 3 deals; rep70 and xrep7 not")
        );
        assert_eq!(p.text("rep r1"), "rep r1");
        // JSON: ids exactly, names inside strings, keys too; numbers kept.
        let mut v = serde_json::json!({"owner": "r1", "note": "Tom Wu won", "r1": 1, "n": 12, "ids": ["r1", "r2"]});
        p.json(&mut v);
        assert_eq!(v["owner"], tom.as_str());
        assert_eq!(v["note"], format!("{tom} won"));
        assert_eq!(v[tom.as_str()], 1);
        assert_eq!(v["n"], 12);
        assert_eq!(v["ids"][1], "r2");
        let mut v = serde_json::json!({"rec": "rep7:discovery", "route": "GET /users/rep7/data", "role": "admin"});
        two.json(&mut v);
        assert_eq!(v["rec"], format!("{r7}:discovery"));
        assert_eq!(v["route"], format!("GET /users/{r7}/data"));
        assert_eq!(v["role"], "admin");
        let out = p.output("{\n  \"owner\": \"r1\"\n}\n");
        assert!(out.contains(&tom) && out.ends_with("}\n"), "{out}");
        assert_eq!(p.output("Owner Tom Wu\n"), format!("Owner {tom}\n"));
        let csv = p.csv("owner,note\nr1,\"Tom Wu, again\"\n").unwrap();
        assert_eq!(csv, format!("owner,note\n{tom},\"{tom}, again\"\n"));
    }
}
