//! `pipewise erase`: a person erased from an imported org leaves no trace of
//! their name, email or words in the database file (after the VACUUM the
//! command runs) nor in the audit log, whose chain still verifies.

mod common;

use std::path::Path;

use common::pipewise;
use serde_json::Value;

fn one(db: &Path, sql: &str) -> Option<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The database file and its write-ahead log, lower-cased.
fn file_text(db: &Path) -> String {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    String::from_utf8_lossy(&bytes).to_lowercase()
}

/// Simulates an 8-rep, 8-month org of `seed` with `share` of its calls
/// recorded, and imports it into `d/org.db`.
fn imported_org(d: &Path, seed: &str, share: &str) {
    let (ok, _, err) = pipewise(
        d,
        &[
            "simulate",
            "--seed",
            seed,
            "--reps",
            "8",
            "--months",
            "8",
            "--transcript-share",
            share,
            "--vtt-sample",
            "0",
            "--out",
            "org",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "import", "dir", "org"]);
    assert!(ok, "{err}");
}

#[test]
fn an_erased_person_leaves_no_trace_in_the_file_or_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    imported_org(d, "9201", "0.6");
    let db = d.join("org.db");
    // A customer who spoke on a recorded call, whose name no one else has.
    let unique = "(SELECT count(*) FROM contacts x WHERE x.name = c.name)
                + (SELECT count(*) FROM users u WHERE u.name = c.name)
                + (SELECT count(*) FROM leads l WHERE l.contact_name = c.name AND l.contact_id IS NOT c.id) = 1";
    let pick = |col: &str| {
        one(
            &db,
            &format!(
                "SELECT c.{col} FROM contacts c
                 WHERE EXISTS (SELECT 1 FROM conversation_turns t
                               WHERE t.speaker = c.name AND t.speaker_role = 'customer')
                   AND c.email IS NOT NULL AND {unique}
                 ORDER BY c.id LIMIT 1"
            ),
        )
        .expect("a customer who spoke on a call")
    };
    let (contact, name, email) = (pick("id"), pick("name"), pick("email"));
    // Something only they said.
    let words = one(
        &db,
        &format!(
            "SELECT text FROM conversation_turns t WHERE speaker = '{name}' AND length(text) > 30
               AND NOT EXISTS (SELECT 1 FROM conversation_turns o WHERE o.text = t.text AND o.speaker <> t.speaker)
             ORDER BY length(text) DESC LIMIT 1"
        ),
    );
    // An audit row that names them (as a routing reason would).
    {
        let mut s = pipewise_store::SqliteStore::open(&db).unwrap();
        s.append_audit(&pipewise_store::access::NewAudit {
            at: "2025-01-01T00:00:00Z",
            user_id: None,
            action: "lead.reassigned",
            route: None,
            ids: &[],
            detail: Some(&format!("{name} <{email}> asked for a call")),
        })
        .unwrap();
    }
    let text = file_text(&db);
    assert!(text.contains(&name.to_lowercase()) && text.contains(&email.to_lowercase()));
    eprintln!("erasing contact {contact} {name} <{email}>, who said {words:?}");

    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "erase",
            "--contact",
            &contact,
            "--reason",
            &format!("request from {email}"),
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["changed"]["contacts"], 1, "{out}");
    assert!(
        r["changed"]["conversation_turns"].as_u64().unwrap() >= 1,
        "{out}"
    );
    assert!(r["audit_rows_blanked"].as_u64().unwrap() >= 1, "{out}");

    // A lead with an inquiry, erased by its id.
    let (lead, inquiry) = (
        one(
            &db,
            "SELECT id FROM leads WHERE length(inquiry) > 60 ORDER BY id LIMIT 1",
        )
        .unwrap(),
        one(
            &db,
            "SELECT inquiry FROM leads WHERE length(inquiry) > 60 ORDER BY id LIMIT 1",
        )
        .unwrap(),
    );
    let lead_email = one(&db, &format!("SELECT email FROM leads WHERE id = '{lead}'")).unwrap();
    eprintln!("erasing lead {lead} <{lead_email}>: {inquiry:?}");
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "erase", "--lead", &lead, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], true);

    // A rep with a token, whose name no contact or lead shares.
    let rep = one(
        &db,
        "SELECT id FROM users u WHERE role = 'rep'
           AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.name = u.name)
           AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.contact_name = u.name)
         ORDER BY id LIMIT 1",
    )
    .unwrap();
    let rep_name = one(&db, &format!("SELECT name FROM users WHERE id = '{rep}'")).unwrap();
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "token", "create", "--user", &rep]);
    assert!(ok, "{err}");
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "erase", "--user", &rep]);
    assert!(ok, "{err}");
    assert!(out.contains("api_tokens (deleted) 1"), "{out}");
    assert!(out.contains("VACUUM"), "{out}");

    // No trace in the file (or its log).
    let text = file_text(&db);
    for gone in [&name, &email, &inquiry, &lead_email, &rep_name] {
        assert!(
            !text.contains(&gone.to_lowercase()),
            "{gone:?} is still in the file"
        );
    }
    if let Some(w) = &words {
        assert!(
            !text.contains(&w.to_lowercase()),
            "their words {w:?} are still in the file"
        );
    }
    assert_eq!(
        one(
            &db,
            &format!(
                "SELECT CAST(count(*) AS TEXT) FROM conversation_turns WHERE speaker = '{name}'"
            )
        )
        .as_deref(),
        Some("0")
    );
    // The audit log: three erasures without identities, the chain intact.
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "audit", "--json", "--limit", "200"]);
    assert!(ok, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let erasures: Vec<&Value> = rows
        .iter()
        .filter(|a| a["action"] == "privacy.erased")
        .collect();
    assert_eq!(erasures.len(), 3);
    for a in &erasures {
        assert_eq!(a["ids"].as_array().unwrap().len(), 0, "{a}");
    }
    let lower = out.to_lowercase();
    for gone in [&name, &email, &rep_name] {
        assert!(
            !lower.contains(&gone.to_lowercase()),
            "{gone:?} is in the audit log"
        );
    }
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "audit", "verify", "--json"]);
    assert!(ok, "{err} {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true, "{out}");
    assert!(v["redacted"].as_u64().unwrap() >= 1, "{out}");

    // An unknown id is an error, in JSON too.
    let (ok, out, _) = pipewise(
        d,
        &["--db", "org.db", "erase", "--contact", "nobody", "--json"],
    );
    assert!(!ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("no contact with id"),
        "{out}"
    );
}

/// `pipewise retention apply`: transcripts and unconverted leads past their
/// age lose their personal data, newer ones and converted leads keep it; a
/// dry run changes nothing; the run is in the audit log.
#[test]
fn a_retention_policy_removes_what_is_past_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    imported_org(d, "9202", "0.6");
    let db = d.join("org.db");
    let as_of = one(&db, "SELECT max(created_at) FROM leads").unwrap();
    let count = |sql: &str| -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    // Instants 90 and 120 days before the as-of, as SQLite computes them.
    let cut = |days: i64| {
        one(
            &db,
            &format!("SELECT strftime('%Y-%m-%dT%H:%M:%SZ', '{as_of}', '-{days} days')"),
        )
        .unwrap()
    };
    let (t_cut, l_cut) = (cut(90), cut(120));
    let old_text = format!(
        "SELECT count(*) FROM conversation_turns t JOIN conversations c ON c.id = t.conversation_id
         WHERE c.started_at < '{t_cut}' AND t.text IS NOT NULL"
    );
    let new_text = format!(
        "SELECT count(*) FROM conversation_turns t JOIN conversations c ON c.id = t.conversation_id
         WHERE c.started_at >= '{t_cut}' AND t.text IS NOT NULL"
    );
    let old_leads = format!(
        "SELECT count(*) FROM leads WHERE created_at < '{l_cut}' AND converted_at IS NULL AND email IS NOT NULL"
    );
    let kept_leads = format!(
        "SELECT count(*) FROM leads WHERE created_at < '{l_cut}' AND converted_at IS NOT NULL AND email IS NOT NULL"
    );
    let before = [
        count(&old_text),
        count(&new_text),
        count(&old_leads),
        count(&kept_leads),
    ];
    assert!(before.iter().all(|&n| n > 0), "{before:?}");

    let args = |dry: bool| {
        let mut a = vec![
            "--db",
            "org.db",
            "retention",
            "apply",
            "--transcripts-days",
            "90",
            "--unconverted-leads-days",
            "120",
            "--as-of",
            &as_of,
            "--json",
        ];
        if dry {
            a.push("--dry-run");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, out, err) = pipewise(d, &refs);
        assert!(ok, "{err} {out}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let dry = run(args(true));
    assert_eq!(dry["leads"].as_i64().unwrap(), before[2], "{dry}");
    assert!(dry["transcripts"].as_u64().unwrap() > 0);
    assert!(dry["audit_seq"].is_null());
    assert_eq!(count(&old_text), before[0], "a dry run changed nothing");
    let done = run(args(false));
    assert_eq!(done["leads"], dry["leads"]);
    assert!(done["audit_seq"].is_number(), "{done}");
    assert_eq!(count(&old_text), 0);
    assert_eq!(count(&new_text), before[1]);
    assert_eq!(count(&old_leads), 0);
    assert_eq!(count(&kept_leads), before[3]);
    // Nothing is due a second time.
    let again = run(args(false));
    assert_eq!(
        (again["leads"].as_u64(), again["transcripts"].as_u64()),
        (Some(0), Some(0))
    );
    let (ok, out, _) = pipewise(d, &["--db", "org.db", "audit", "--json"]);
    assert!(ok);
    assert!(out.contains("privacy.retention"), "{out}");
    // A policy file with a misspelt rule is refused, naming the file.
    std::fs::write(d.join("policy.toml"), "transcript_days = 30\n").unwrap();
    let (ok, out, _) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "retention",
            "apply",
            "--policy",
            "policy.toml",
            "--json",
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("policy.toml") && out.contains("transcript_days"),
        "{out}"
    );
}

/// `score leads --pseudonymise`: the CSV names no one (owners become stable
/// keyed pseudonyms, in factor texts too); `pseudonym reveal` ties one back
/// with the key and not without it.
#[test]
fn exports_can_be_pseudonymised_and_revealed_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    imported_org(d, "9203", "0");
    let (ok, _, err) = pipewise(
        d,
        &["--db", "org.db", "score", "leads", "--out", "plain.csv"],
    );
    assert!(ok, "{err}");
    // Without a key: a clear error.
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "score",
            "leads",
            "--out",
            "p.csv",
            "--pseudonymise",
        ],
    );
    assert!(!ok && err.contains("PIPEWISE_KEY"), "{err}");
    std::fs::write(d.join("key.txt"), "a secret key of the admin\n").unwrap();
    let run = |out: &str| {
        let (ok, _, err) = pipewise(
            d,
            &[
                "--db",
                "org.db",
                "score",
                "leads",
                "--out",
                out,
                "--pseudonymise",
                "--key-file",
                "key.txt",
            ],
        );
        assert!(ok, "{err}");
        std::fs::read_to_string(d.join(out)).unwrap()
    };
    let (p1, p2) = (run("p1.csv"), run("p2.csv"));
    let plain = std::fs::read_to_string(d.join("plain.csv")).unwrap();
    let db = d.join("org.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let reps: Vec<(String, String)> = c
        .prepare("SELECT id, name FROM users WHERE role = 'rep'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        reps.iter().any(|(_, n)| plain.contains(n.as_str())),
        "owners are named in the plain CSV"
    );
    for (_, n) in &reps {
        assert!(!p1.contains(n.as_str()), "{n} is in the pseudonymised CSV");
    }
    // Stable: the same rows and pseudonyms each time.
    let owners = |csv: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect()
    };
    assert_eq!(owners(&p1), owners(&p2));
    let first = owners(&p1)[0].clone();
    assert!(first.starts_with("P-") && first.len() == 14, "{first}");
    // The key reveals who it is (the owner named in the same row of the
    // plain CSV); another key does not.
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "pseudonym",
            "reveal",
            &first,
            "--key-file",
            "key.txt",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let found: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0]["kind"], "user");
    assert_eq!(found[0]["name"].as_str().unwrap(), owners(&plain)[0]);
    // A card of a kind not registered says which kinds are.
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "models", "--card", "forecast"]);
    assert!(
        !ok && err.contains("registered kinds are") && err.contains("lead"),
        "{err}"
    );
    // Model cards too (the lead model's card names no one: unchanged).
    let (ok, plain_card, err) = pipewise(d, &["--db", "org.db", "models", "--card", "lead"]);
    assert!(ok, "{err}");
    let (ok, card, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "models",
            "--card",
            "lead",
            "--pseudonymise",
            "--key-file",
            "key.txt",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(card, plain_card);
    for (_, n) in &reps {
        assert!(!card.contains(n.as_str()));
    }
    // Any command's output: its JSON (still JSON, every person replaced)
    // and its text.
    let (ok, plain_stats, err) = pipewise(d, &["--db", "org.db", "stats", "--json"]);
    assert!(ok, "{err}");
    assert!(reps.iter().any(|(_, n)| plain_stats.contains(n.as_str())));
    for args in [
        &[
            "--db",
            "org.db",
            "stats",
            "--json",
            "--pseudonymise",
            "--key-file",
            "key.txt",
        ][..],
        &[
            "--db",
            "org.db",
            "--pseudonymise",
            "--key-file",
            "key.txt",
            "stats",
        ][..],
    ] {
        let (ok, out, err) = pipewise(d, args);
        assert!(ok, "{err}");
        for (id, n) in &reps {
            assert!(!out.contains(n.as_str()), "{n} in {args:?}");
            assert!(!out.contains(&format!("\"{id}\"")), "{id} in {args:?}");
        }
        assert!(out.contains("P-"), "{out}");
        if args.contains(&"--json") {
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                v["counts"],
                serde_json::from_str::<Value>(&plain_stats).unwrap()["counts"]
            );
        }
    }
    // The training data dump: the snapshot rows, people pseudonymised
    // (written even though this small org is below the models' data gate).
    let (_, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "train",
            "--training-data",
            "td.csv",
            "--pseudonymise",
            "--key-file",
            "key.txt",
        ],
    );
    assert!(
        err.contains("snapshot rows (the training data) written"),
        "{err}"
    );
    let td = std::fs::read_to_string(d.join("td.csv")).unwrap();
    assert!(
        td.starts_with("snapshot,opportunity_id,owner_id,won,slipped,"),
        "{}",
        &td[..200.min(td.len())]
    );
    assert!(td.lines().count() > 100, "{} rows", td.lines().count());
    for (id, n) in &reps {
        assert!(
            !td.contains(n.as_str()) && !td.contains(&format!(",{id},")),
            "{id} in the dump"
        );
    }
    assert!(
        td.lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(2)
            .unwrap()
            .starts_with("P-")
    );
    // Without a key nothing is printed but the error.
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "--pseudonymise", "stats"]);
    assert!(
        !ok && out.is_empty() && err.contains("PIPEWISE_KEY"),
        "{out}{err}"
    );
    std::fs::write(d.join("other.txt"), "some other key of 16+").unwrap();
    let (ok, out, _) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "pseudonym",
            "reveal",
            &first,
            "--key-file",
            "other.txt",
        ],
    );
    assert!(!ok, "{out}");
}
