//! Encryption at rest: with a key, a simulated org's names, emails,
//! inquiries and call transcripts are nowhere readable in the database file
//! or its logs; without the key (or with another) the file does not open;
//! the key rotates, and a plaintext file is encrypted and decrypted, each
//! keeping every row and recorded in the audit log.

mod common;

use std::path::Path;

use common::pipewise_env;
use serde_json::Value;

const KEY: &str = "the org's first key, kept secret";
const NEW_KEY: &str = "the org's second key, after rotation";

fn run(d: &Path, args: &[&str], key: Option<&str>) -> (bool, String, String) {
    match key {
        Some(k) => pipewise_env(d, args, &[("PIPEWISE_KEY", k)]),
        None => pipewise_env(d, args, &[]),
    }
}

fn ok(d: &Path, args: &[&str], key: Option<&str>) -> String {
    let (ok, out, err) = run(d, args, key);
    assert!(ok, "{args:?}: {err}{out}");
    out
}

/// Personal values of the org, read from a plaintext import of it: every
/// email, every person's name, and the longer inquiries and spoken turns.
fn secrets(plain: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(plain).unwrap();
    let mut v = Vec::new();
    for sql in [
        "SELECT email FROM users WHERE email IS NOT NULL",
        "SELECT email FROM contacts WHERE email IS NOT NULL",
        "SELECT email FROM leads WHERE email IS NOT NULL",
        "SELECT name FROM users",
        "SELECT name FROM contacts",
        "SELECT inquiry FROM leads WHERE length(inquiry) > 20",
        "SELECT text FROM conversation_turns WHERE length(text) > 30 ORDER BY conversation_id, seq LIMIT 2000",
    ] {
        let mut st = c.prepare(sql).unwrap();
        let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        v.extend(rows.map(Result::unwrap));
    }
    v.sort();
    v.dedup();
    v
}

/// The secrets found in the file or its write-ahead log, shared memory and
/// journal.
fn readable(db: &Path, secrets: &[String]) -> Vec<String> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let ac = aho_corasick::AhoCorasick::new(secrets).unwrap();
    let mut found: Vec<String> = ac
        .find_overlapping_iter(&bytes)
        .map(|m| secrets[m.pattern().as_usize()].clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

fn stats(d: &Path, key: Option<&str>) -> Value {
    serde_json::from_str(&ok(d, &["--db", "org.db", "stats", "--json"], key)).unwrap()
}

#[test]
fn a_keyed_database_holds_no_readable_personal_data_and_its_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "simulate",
            "--seed",
            "9301",
            "--reps",
            "8",
            "--months",
            "8",
            "--transcript-share",
            "0.5",
            "--vtt-sample",
            "0",
            "--out",
            "org",
        ],
        None,
    );
    ok(d, &["--db", "plain.db", "import", "dir", "org"], None);
    ok(d, &["--db", "org.db", "import", "dir", "org"], Some(KEY));
    let secrets = secrets(&d.join("plain.db"));
    assert!(secrets.len() > 500, "{} personal values", secrets.len());
    // The check finds them where they are in plaintext...
    let in_plain = readable(&d.join("plain.db"), &secrets);
    assert!(
        in_plain.len() * 10 > secrets.len() * 9,
        "{} of {}",
        in_plain.len(),
        secrets.len()
    );
    // ... and none in the keyed file.
    assert_eq!(readable(&d.join("org.db"), &secrets), Vec::<String>::new());

    let st = stats(d, Some(KEY));
    assert_eq!(st["encryption"]["encrypted"], true, "{st}");
    assert!(
        st["encryption"]["cipher"]
            .as_str()
            .unwrap()
            .contains("SQLCipher"),
        "{st}"
    );
    let plain_st: Value =
        serde_json::from_str(&ok(d, &["--db", "plain.db", "stats", "--json"], None)).unwrap();
    assert_eq!(plain_st["encryption"]["encrypted"], false);
    assert_eq!(st["counts"], plain_st["counts"]);
    assert!(
        ok(d, &["--db", "plain.db", "stats"], None).contains("Not encrypted"),
        "stats says a plaintext file is not encrypted"
    );

    // Without the key, or with another, it does not open: a clear error,
    // JSON under --json.
    let (ok_, out, err) = run(d, &["--db", "org.db", "stats"], None);
    assert!(
        !ok_ && err.contains("encrypted") && err.contains("PIPEWISE_KEY"),
        "{err}{out}"
    );
    let (ok_, out, _) = run(d, &["--db", "org.db", "stats", "--json"], None);
    assert!(!ok_);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["error"].as_str().unwrap().contains("encrypted"), "{v}");
    let (ok_, _, err) = run(
        d,
        &["--db", "org.db", "stats"],
        Some("somebody else's key, long"),
    );
    assert!(!ok_ && err.contains("does not open"), "{err}");
    // A short key is refused before anything is written.
    let (ok_, _, err) = run(d, &["--db", "new.db", "stats"], Some("short"));
    assert!(!ok_ && err.contains("16 or more"), "{err}");
    assert!(!d.join("new.db").exists());
    // The key from a file works as the variable does.
    std::fs::write(d.join("key.txt"), format!("{KEY}\n")).unwrap();
    ok(
        d,
        &["--db", "org.db", "--key-file", "key.txt", "stats", "--json"],
        None,
    );

    // Rotation: the new key opens it, the old one no longer does.
    let (ok_, out, err) = pipewise_env(
        d,
        &["--db", "org.db", "db", "rekey", "--json"],
        &[("PIPEWISE_KEY", KEY), ("PIPEWISE_NEW_KEY", NEW_KEY)],
    );
    assert!(ok_, "{err}{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["encrypted_after"], true);
    let (ok_, _, err) = run(d, &["--db", "org.db", "stats"], Some(KEY));
    assert!(!ok_ && err.contains("does not open"), "{err}");
    assert_eq!(stats(d, Some(NEW_KEY))["counts"], plain_st["counts"]);
    assert_eq!(readable(&d.join("org.db"), &secrets), Vec::<String>::new());
    // Rotating to the same key is refused, and so is rotating without one.
    let (ok_, _, err) = pipewise_env(
        d,
        &["--db", "org.db", "db", "rekey"],
        &[("PIPEWISE_KEY", NEW_KEY), ("PIPEWISE_NEW_KEY", NEW_KEY)],
    );
    assert!(!ok_ && err.contains("key in force"), "{err}");
    let (ok_, _, err) = run(d, &["--db", "org.db", "db", "rekey"], Some(NEW_KEY));
    assert!(!ok_ && err.contains("PIPEWISE_NEW_KEY"), "{err}");

    // Decrypt, then encrypt again: the same rows each time.
    ok(d, &["--db", "org.db", "db", "decrypt"], Some(NEW_KEY));
    assert_eq!(stats(d, None)["encryption"]["encrypted"], false);
    assert!(!readable(&d.join("org.db"), &secrets).is_empty());
    let (ok_, _, err) = run(d, &["--db", "org.db", "db", "encrypt"], None);
    assert!(!ok_ && err.contains("needs a key"), "{err}");
    ok(d, &["--db", "org.db", "db", "encrypt"], Some(KEY));
    assert_eq!(readable(&d.join("org.db"), &secrets), Vec::<String>::new());
    let st = stats(d, Some(KEY));
    assert_eq!(st["encryption"]["encrypted"], true);
    assert_eq!(st["counts"], plain_st["counts"]);
    let (ok_, _, err) = run(d, &["--db", "org.db", "db", "encrypt"], Some(KEY));
    assert!(!ok_ && err.contains("already encrypted"), "{err}");

    // Each change is in the audit log (without the key), and the chain holds.
    let audit: Value =
        serde_json::from_str(&ok(d, &["--db", "org.db", "audit", "--json"], Some(KEY))).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for a in [
        "privacy.key_rotated",
        "privacy.decrypted",
        "privacy.encrypted",
    ] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    let text = audit.to_string();
    assert!(!text.contains(KEY) && !text.contains(NEW_KEY));
    ok(d, &["--db", "org.db", "audit", "verify"], Some(KEY));
}
