//! Property tests of the importers: whatever the text in the cells (quotes,
//! commas, newlines, non-ASCII), a CSV file and a JSONL file holding the same
//! rows import to the same content, and importing either again changes nothing.

use std::path::Path;

use pipewise_core::Entity;
use pipewise_ingest::{ImportOptions, NoProgress, Source, run_import};
use pipewise_store::{SqliteStore, Store};
use proptest::prelude::*;

fn opts() -> ImportOptions {
    ImportOptions {
        dry_run: false,
        max_errors: 10,
        as_of: "2025-01-01T00:00:00Z".into(),
        kind: "test".into(),
        encoding: None,
    }
}

fn write_csv(path: &Path, rows: &[(String, String, Option<String>)]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["id", "name", "region"]).unwrap();
    for (id, name, region) in rows {
        w.write_record([id.as_str(), name.as_str(), region.as_deref().unwrap_or("")])
            .unwrap();
    }
    w.flush().unwrap();
}

fn write_jsonl(path: &Path, rows: &[(String, String, Option<String>)]) {
    let mut s = String::new();
    for (id, name, region) in rows {
        s.push_str(&serde_json::json!({"id": id, "name": name, "region": region}).to_string());
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn cell() -> impl Strategy<Value = String> {
    // Printable text with the characters CSV quoting must handle; never blank
    // (blank is "no value") and without surrounding spaces (cells are trimmed).
    "[a-zA-Zé漢,\"' \n;]{0,12}[a-zA-Z0-9é]"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("not blank", |s| !s.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn csv_and_jsonl_import_the_same_rows(rows in proptest::collection::btree_map(cell(), (cell(), proptest::option::of(cell())), 1..20)) {
        let rows: Vec<(String, String, Option<String>)> = rows.into_iter().map(|(k, (a, b))| (k, a, b)).collect();
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("teams.csv");
        let jsonl_path = dir.path().join("teams.jsonl");
        write_csv(&csv_path, &rows);
        write_jsonl(&jsonl_path, &rows);

        let mut a = SqliteStore::open_in_memory().unwrap();
        let r = run_import(&mut a, &[Source::canonical(csv_path.clone(), Entity::Team)], &opts(), &NoProgress).unwrap();
        prop_assert!(r.ok(), "{:?}", r.errors);
        prop_assert_eq!(r.entities["teams"].inserted, rows.len() as u64);

        let mut b = SqliteStore::open_in_memory().unwrap();
        let r = run_import(&mut b, &[Source::canonical(jsonl_path, Entity::Team)], &opts(), &NoProgress).unwrap();
        prop_assert!(r.ok(), "{:?}", r.errors);
        prop_assert_eq!(a.content_digest().unwrap(), b.content_digest().unwrap());

        let again = run_import(&mut a, &[Source::canonical(csv_path, Entity::Team)], &opts(), &NoProgress).unwrap();
        prop_assert_eq!(again.entities["teams"].unchanged, rows.len() as u64);
        prop_assert_eq!(a.content_digest().unwrap(), b.content_digest().unwrap());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_write(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opportunities.csv");
        let mut content = b"id,owner_id,stage,amount,close_date\n".to_vec();
        content.extend_from_slice(&bytes);
        std::fs::write(&path, &content).unwrap();
        let mut store = SqliteStore::open_in_memory().unwrap();
        let before = store.content_digest().unwrap();
        let r = run_import(&mut store, &[Source::canonical(path, Entity::Opportunity)], &opts(), &NoProgress).unwrap();
        if !r.ok() {
            prop_assert_eq!(store.content_digest().unwrap(), before);
            for e in &r.errors {
                prop_assert!(e.line >= 1, "{e}");
            }
        }
    }
}
