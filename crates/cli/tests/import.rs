//! The real `pipewise` binary on real files: the Maven CRM export, broken
//! copies of it, canonical files, Salesforce/HubSpot-shaped reports and
//! WebVTT transcripts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn maven_dir() -> PathBuf {
    root().join("../shared/data/maven-crm")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn pipewise(db: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_pipewise"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("PIPEWISE_DB")
        .output()
        .expect("run pipewise");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

fn stats(db: &Path) -> serde_json::Value {
    let out = pipewise(db, &["stats", "--json"]);
    assert!(out.ok, "{}", out.stderr);
    json(&out)
}

fn digest(db: &Path) -> String {
    stats(db)["content_digest"].as_str().unwrap().to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A fresh database with the Maven export imported.
fn maven_db(dir: &Path) -> PathBuf {
    let db = dir.join("maven.db");
    let out = pipewise(&db, &["import", "maven", p(&maven_dir())]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    db
}

#[test]
fn maven_export_imports_whole_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let out = pipewise(&db, &["import", "maven", p(&maven_dir()), "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let r = json(&out);
    assert_eq!(r["committed"], true);
    assert_eq!(r["entities"]["opportunities"]["inserted"], 8800);
    assert_eq!(r["entities"]["accounts"]["inserted"], 85);
    assert_eq!(r["entities"]["products"]["inserted"], 7);
    // Every cleansing rule is reported with how many rows it touched.
    let cleaned = r["cleaned"].as_array().unwrap();
    let gtx = cleaned
        .iter()
        .find(|c| c["from"] == "GTXPro")
        .expect("GTXPro alias reported");
    assert_eq!(gtx["to"], "GTX Pro");
    assert!(gtx["rows"].as_u64().unwrap() > 1000);
    let sector = cleaned
        .iter()
        .find(|c| c["from"] == "technolgy")
        .expect("sector typo reported");
    assert_eq!(sector["to"], "technology");

    let s = stats(&db);
    assert_eq!(s["counts"]["opportunities"], 8800);
    assert_eq!(s["counts"]["accounts"], 85);
    assert_eq!(s["counts"]["products"], 7);
    assert_eq!(
        s["counts"]["users"],
        35 + 6,
        "35 sales agents and their 6 managers"
    );
    let agents: std::collections::BTreeSet<String> =
        std::fs::read_to_string(maven_dir().join("sales_pipeline.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect();
    assert_eq!(
        s["pipeline"]["reps"].as_array().unwrap().len(),
        agents.len(),
        "every agent with deals has a summary"
    );
    assert_eq!(s["pipeline"]["won"], 4238);
    assert_eq!(s["pipeline"]["lost"], 2473);
    assert_eq!(s["pipeline"]["open"], 2089);
    let stages: Vec<(String, u64)> = s["pipeline"]["by_stage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["stage"].as_str().unwrap().to_string(),
                b["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        vec![
            ("prospecting".into(), 500),
            ("qualification".into(), 1589),
            ("closed_won".into(), 4238),
            ("closed_lost".into(), 2473)
        ]
    );
    // The quirks are data-quality findings, not silently dropped.
    let findings = s["data_quality"]["findings"].as_array().unwrap();
    let orphans = findings
        .iter()
        .find(|f| f["message"] == "opportunities without an account")
        .unwrap();
    assert_eq!(orphans["count"], 1425);
    let undated = findings
        .iter()
        .find(|f| f["message"] == "open opportunities without an expected close date")
        .unwrap();
    assert_eq!(undated["count"], 2089);
    // The stage history the export implies: engaged, then closed.
    assert_eq!(s["counts"]["opportunity_history"], 8300 + 6711);
    assert_eq!(
        s["entities"]["opportunity_history"]["first"],
        "2016-10-20T00:00:00Z"
    );
}

#[test]
fn reimport_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = maven_db(dir.path());
    let before = digest(&db);
    let out = pipewise(&db, &["import", "maven", p(&maven_dir()), "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let r = json(&out);
    for (entity, c) in r["entities"].as_object().unwrap() {
        assert_eq!(c["inserted"], 0, "{entity}");
        assert_eq!(c["updated"], 0, "{entity}");
    }
    assert_eq!(r["history_recorded"], 0);
    assert_eq!(digest(&db), before);
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let empty = digest(&db);
    let out = pipewise(
        &db,
        &["import", "maven", p(&maven_dir()), "--dry-run", "--json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let r = json(&out);
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["committed"], false);
    assert_eq!(r["entities"]["opportunities"]["inserted"], 8800);
    assert_eq!(digest(&db), empty);
    assert_eq!(stats(&db)["counts"]["opportunities"], 0);
    assert_eq!(stats(&db)["imports"], 0);
}

/// A copy of the Maven export with `sales_pipeline.csv` rewritten by `edit`.
fn broken_copy(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let out = dir.join("broken");
    std::fs::create_dir_all(&out).unwrap();
    for f in [
        "accounts.csv",
        "products.csv",
        "sales_teams.csv",
        "sales_pipeline.csv",
    ] {
        std::fs::copy(maven_dir().join(f), out.join(f)).unwrap();
    }
    let path = out.join("sales_pipeline.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    out
}

fn replace_line(bytes: &mut Vec<u8>, line: usize, new: &[u8]) {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines[line - 1] = new.to_vec();
    *bytes = lines.join(&b'\n');
}

/// Imports a broken copy over a good database: it must fail with exactly
/// these errors (each `file:line:column: ...` fragment) and change nothing.
fn assert_rejected(edit: impl FnOnce(&mut Vec<u8>), expected: &[&[&str]]) {
    let dir = tempfile::tempdir().unwrap();
    let db = maven_db(dir.path());
    let before = digest(&db);
    let broken = broken_copy(dir.path(), edit);
    let out = pipewise(&db, &["import", "maven", p(&broken)]);
    assert!(
        !out.ok,
        "a broken file must fail the import\n{}",
        out.stdout
    );
    let last = out.stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: import failed") && last.contains("database is unchanged"),
        "{}",
        out.stderr
    );
    let errors: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("sales_pipeline.csv:"))
        .collect();
    assert_eq!(errors.len(), expected.len(), "errors: {errors:#?}");
    for (e, wants) in errors.iter().zip(expected) {
        for want in *wants {
            assert!(e.contains(want), "expected {want:?} in {e:?}");
        }
    }
    assert_eq!(digest(&db), before, "the database must be unchanged");
    assert_eq!(stats(&db)["imports"], 1);
}

#[test]
fn truncated_row_is_located() {
    assert_rejected(
        |b| {
            // Cut the file in the middle of its last row.
            let n = b.len();
            b.truncate(n - 30);
        },
        &[&["sales_pipeline.csv:8801:", "expected 8 fields, found"]],
    );
}

#[test]
fn an_unclosed_quote_is_located_where_it_opens() {
    // A stray quote opening a value on line 8790 swallows the rest of the
    // file into one field: the error names line 8790 and that column, not the
    // header or the file's end.
    assert_rejected(
        |b| {
            let lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
            let mut row = lines[8789].to_vec();
            let comma = row.iter().position(|&c| c == b',').unwrap();
            row.insert(comma + 1, b'"');
            replace_line(b, 8790, &row);
        },
        &[&[
            "sales_pipeline.csv:8790:2:",
            "closing quote is missing or misplaced",
            "lines 8790-",
        ]],
    );
}

/// The same class in the places a line count goes wrong: after blank lines
/// (LF and CRLF), open on the file's last line without a final newline, and
/// a legitimate multi-line value in a short row (not blamed on a quote).
#[test]
fn unclosed_quotes_are_located_after_blank_lines_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let header = "id,name,account_id,owner_id,amount,stage,created_at,close_date";
    let good = "x1,Deal one,a1,u1,1000,discovery,2025-01-01,2025-03-01";
    let open = "x3,\"Deal three, unclosed,a1,u1,3000,discovery,2025-01-03,2025-03-03";
    let after = "x4,Deal four,a1,u1,4000,discovery,2025-01-04,2025-03-04";
    let cases: [(&str, String, &str); 4] = [
        (
            "blank.csv",
            format!("{header}\n{good}\n\n\n{open}\n{after}\n"),
            "blank.csv:5:2:",
        ),
        (
            "crlf.csv",
            format!("{header}\r\n{good}\r\n\r\n{open}\r\n{after}\r\n"),
            "crlf.csv:4:2:",
        ),
        (
            "end.csv",
            format!("{header}\n{good}\n{open}"),
            "end.csv:3:2:",
        ),
        (
            "notes.csv",
            format!("{header}\nx1,\"Deal\none\",a1,u1,100,discovery,2025-01-01\n{after}\n"),
            "notes.csv:2:8:",
        ),
    ];
    for (name, text, at) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = pipewise(
            &dir.path().join("t.db"),
            &["import", "csv", "--entity", "opportunities", p(&path)],
        );
        assert!(!out.ok, "{name}: {}", out.stdout);
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(at))
            .unwrap_or_else(|| panic!("{name}: no error at {at}\n{}", out.stdout));
        if name == "notes.csv" {
            assert!(line.contains("expected 8 fields, found 7"), "{line}");
        } else {
            assert!(line.contains("closing quote is missing"), "{line}");
        }
    }
}

#[test]
fn wrong_type_is_located() {
    assert_rejected(
        |b| {
            replace_line(
                b,
                2,
                b"1C1I7A6R,Moses Frase,GTX Plus Basic,Cancity,Won,2016-10-20,2017-03-01,ten",
            )
        },
        &[&["sales_pipeline.csv:2:8: column \"close_value\": value \"ten\": expected a number"]],
    );
}

#[test]
fn unknown_stage_is_located() {
    assert_rejected(
        |b| {
            replace_line(
                b,
                3,
                b"Z063OYW0,Darcel Schlecht,GTXPro,Isdom,Negotiating,2016-10-25,2017-03-11,4514",
            )
        },
        &[&[
            "sales_pipeline.csv:3:5: column \"deal_stage\": value \"Negotiating\": expected a stage (prospecting",
        ]],
    );
}

#[test]
fn bad_dates_are_located_and_all_listed() {
    assert_rejected(
        |b| {
            replace_line(
                b,
                4,
                b"EC4QE1BX,Darcel Schlecht,MG Special,Cancity,Won,2016-02-30,2017-03-07,50",
            );
            replace_line(
                b,
                10,
                b"EC4QE1BY,Darcel Schlecht,MG Special,Cancity,Won,2016-10-25,07/03/2017,50",
            );
        },
        &[
            &[
                "sales_pipeline.csv:4:6: column \"engage_date\": value \"2016-02-30\": expected a date-time",
            ],
            &[
                "sales_pipeline.csv:10:7: column \"close_date\": value \"07/03/2017\": expected a date",
            ],
        ],
    );
}

#[test]
fn invalid_utf8_is_located() {
    assert_rejected(
        |b| {
            replace_line(
                b,
                5,
                b"MV1LWRNH,Moses Frase,GTX Basic,Code\xffhow,Won,2016-10-25,2017-03-09,588",
            )
        },
        &[&[
            "sales_pipeline.csv:5:4: column \"account\"",
            "invalid UTF-8",
        ]],
    );
}

#[test]
fn duplicate_ids_are_located() {
    assert_rejected(
        |b| {
            b.extend_from_slice(
                b"1C1I7A6R,Moses Frase,GTX Plus Basic,Cancity,Won,2016-10-20,2017-03-01,1054\n",
            )
        },
        &[&[
            "sales_pipeline.csv:8802:1: column \"opportunity_id\": value \"1C1I7A6R\": duplicate id: already imported earlier",
        ]],
    );
}

#[test]
fn unknown_references_are_located() {
    assert_rejected(
        |b| {
            b.extend_from_slice(
                b"NEW00001,Nobody Known,GTX Basic,Cancity,Won,2016-10-20,2017-03-01,1054\n",
            );
            b.extend_from_slice(
                b"NEW00002,Moses Frase,GTX Basic,Not A Company,Won,2016-10-20,2017-03-01,1054\n",
            );
        },
        &[
            &[
                "sales_pipeline.csv:8802:2: column \"sales_agent\": value \"Nobody Known\": no user with this id",
            ],
            &[
                "sales_pipeline.csv:8803:4: column \"account\": value \"Not A Company\": no account with this id",
            ],
        ],
    );
}

#[test]
fn max_errors_caps_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let broken = broken_copy(dir.path(), |b| {
        for line in 2..40 {
            replace_line(
                b,
                line,
                format!("ID{line},Moses Frase,GTX Basic,Cancity,Won,2016-10-20,2017-03-01,oops")
                    .as_bytes(),
            );
        }
    });
    let out = pipewise(
        &db,
        &["import", "maven", p(&broken), "--max-errors", "5", "--json"],
    );
    assert!(!out.ok);
    let r = json(&out);
    assert_eq!(r["errors"].as_array().unwrap().len(), 5);
    assert_eq!(r["errors_truncated"], true);
    assert_eq!(r["errors"][0]["line"], 2);
    assert_eq!(r["errors"][0]["column"], 8);
    assert_eq!(r["errors"][0]["value"], "oops");
    assert_eq!(stats(&db)["counts"]["opportunities"], 0);
}

/// A file big enough for the store's bulk-load path (secondary indexes
/// rebuilt at commit, rollback journal instead of the WAL) with one bad
/// reference in its last row and one duplicate id in the middle.
#[test]
fn a_bulk_load_is_checked_atomic_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bulk.db");
    let users = dir.path().join("users.csv");
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(&users, "id,name\nu1,Ann\nu2,Bo\n").unwrap();
    std::fs::write(&accounts, "id,name\na1,Acme\na2,Globex\n").unwrap();
    let out = pipewise(&db, &["import", "csv", p(&users), p(&accounts)]);
    assert!(out.ok, "{}", out.stderr);
    let before = digest(&db);

    const ROWS: usize = 120_000;
    let opps = dir.path().join("opportunities.csv");
    let write = |bad: bool| {
        let mut text = String::from(
            "id,name,account_id,owner_id,amount,stage,forecast_category,created_at,close_date,lead_source\n",
        );
        for i in 0..ROWS {
            let account = if bad && i == ROWS - 1 {
                "a-missing"
            } else if i % 2 == 0 {
                "a1"
            } else {
                "a2"
            };
            let id = if bad && i == ROWS / 2 { 7 } else { i };
            text.push_str(&format!(
                "opp{id:08},Deal number {i},{account},u{},{}.00,qualification,pipeline,2024-01-{:02}T09:00:00Z,2024-06-30,web\n",
                1 + i % 2,
                1000 + i % 5000,
                1 + i % 28
            ));
        }
        std::fs::write(&opps, text).unwrap();
    };
    write(true);
    assert!(std::fs::metadata(&opps).unwrap().len() > 8 << 20);
    let out = pipewise(&db, &["import", "csv", p(&opps)]);
    assert!(!out.ok);
    let line_dup = ROWS / 2 + 2;
    let line_bad = ROWS + 1;
    for expected in [
        format!(
            "opportunities.csv:{line_dup}:1: column \"id\": value \"opp00000007\": duplicate id"
        ),
        format!(
            "opportunities.csv:{line_bad}:3: column \"account_id\": value \"a-missing\": no account with this id"
        ),
    ] {
        assert!(out.stdout.contains(&expected), "{expected}\n{}", out.stdout);
    }
    assert_eq!(digest(&db), before, "a failed bulk load changes nothing");
    assert!(
        !dir.path().join("bulk.db-journal").exists(),
        "no journal left behind"
    );

    write(false);
    let out = pipewise(&db, &["import", "csv", p(&opps), "--json"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(json(&out)["entities"]["opportunities"]["inserted"], ROWS);
    let s = stats(&db);
    assert_eq!(s["counts"]["opportunities"], ROWS, "{s}");
    let loaded = digest(&db);
    // The second time nothing changes.
    let out = pipewise(&db, &["import", "csv", p(&opps), "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let r = json(&out);
    assert_eq!(r["entities"]["opportunities"]["unchanged"], ROWS);
    assert_eq!(r["entities"]["opportunities"]["inserted"], 0);
    assert_eq!(digest(&db), loaded);
}

#[test]
fn canonical_csv_and_jsonl_with_history_on_reimport() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let canon = fixtures().join("canonical");
    let out = pipewise(
        &db,
        &[
            "import",
            "dir",
            p(&canon),
            "--as-of",
            "2025-02-01T00:00:00Z",
            "--json",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let r = json(&out);
    assert_eq!(
        r["entities"]["users"]["inserted"], 2,
        "a manager listed after her rep is fine"
    );
    assert_eq!(r["entities"]["activities"]["inserted"], 2);
    // A newer export: o-1 moved to proposal with a bigger amount.
    let newer = dir.path().join("opportunities.csv");
    std::fs::write(
        &newer,
        "id,owner_id,amount,stage\no-1,u-ann,65000,Proposal\no-2,u-ann,12000,Proposal\n",
    )
    .unwrap();
    let out = pipewise(
        &db,
        &[
            "import",
            "csv",
            p(&newer),
            "--as-of",
            "2025-02-20T10:00:00Z",
            "--json",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let r = json(&out);
    assert_eq!(r["entities"]["opportunities"]["updated"], 1);
    assert_eq!(r["entities"]["opportunities"]["unchanged"], 1);
    // The stage and amount changes, and the owner, stage and amount the
    // file gives as observed by the first import (2025-02-01), which had no
    // history yet.
    assert_eq!(
        r["history_recorded"], 5,
        "stage and amount changes are dated"
    );
    let s = stats(&db);
    assert_eq!(
        s["entities"]["opportunity_history"]["first"],
        "2025-02-01T00:00:00Z"
    );
    // Columns not in the newer file were left alone.
    assert_eq!(s["entities"]["opportunities"]["filled"]["close_date"], 1.0);
    // The same file again changes nothing.
    let d = digest(&db);
    let out = pipewise(
        &db,
        &[
            "import",
            "csv",
            p(&newer),
            "--as-of",
            "2025-03-01T00:00:00Z",
        ],
    );
    assert!(out.ok);
    assert_eq!(digest(&db), d);
}

#[test]
fn canonical_header_typos_and_jsonl_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let f = dir.path().join("teams.csv");
    std::fs::write(&f, "id,nmae\nt1,East\n").unwrap();
    let out = pipewise(&db, &["import", "csv", p(&f)]);
    assert!(!out.ok);
    assert!(
        out.stdout
            .contains("teams.csv:1:2: column \"nmae\": not a field of teams"),
        "{}",
        out.stdout
    );
    let j = dir.path().join("teams.jsonl");
    std::fs::write(
        &j,
        "{\"id\": \"t1\", \"name\": \"East\"}\n{\"id\": \"t2\", \"name\": \n{\"id\": \"t3\"}\n",
    )
    .unwrap();
    let out = pipewise(&db, &["import", "jsonl", p(&j)]);
    assert!(!out.ok);
    assert!(out.stdout.contains("teams.jsonl:2:"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("teams.jsonl:3:2: column \"name\": team name is required"),
        "{}",
        out.stdout
    );
    assert_eq!(stats(&db)["counts"]["teams"], 0);
}

#[test]
fn salesforce_history_report_through_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sf.db");
    let canon = fixtures().join("canonical");
    assert!(pipewise(&db, &["import", "dir", p(&canon)]).ok);
    let map = root().join("mappings/salesforce-opportunity-history.toml");
    let csv = fixtures().join("salesforce-opportunity-history.csv");
    let out = pipewise(
        &db,
        &["import", "csv", "--mapping", p(&map), p(&csv), "--json"],
    );
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(r["entities"]["opportunities"]["inserted"], 2);
    assert_eq!(
        r["created_from_references"]["users"], 2,
        "owners known only by name are created"
    );
    assert!(
        r["created_from_references"].get("accounts").is_none(),
        "accounts are found by name"
    );
    // 2 deals: initial state (5 + 5 fields) + Acme: qualification; proposal (stage, amount,
    // close date, category); won (stage, close date, category) + Globex: lost (3).
    assert_eq!(r["history_recorded"], 10 + 1 + 4 + 3 + 3);
    let s = stats(&db);
    assert_eq!(
        s["entities"]["opportunity_history"]["first"],
        "2025-01-06T00:00:00Z"
    );
    assert_eq!(
        s["entities"]["opportunity_history"]["last"],
        "2025-07-15T00:00:00Z"
    );
    let acme = s["pipeline"]["reps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "Dana Rep")
        .unwrap()
        .clone();
    assert_eq!(acme["won"], 1);
    // Re-importing the report changes nothing.
    let d = digest(&db);
    let r2 = json(&pipewise(
        &db,
        &["import", "csv", "--mapping", p(&map), p(&csv), "--json"],
    ));
    assert_eq!(r2["history_recorded"], 0);
    assert_eq!(digest(&db), d);
}

#[test]
fn hubspot_export_through_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hs.db");
    let map = root().join("mappings/hubspot-deals.toml");
    let csv = fixtures().join("hubspot-deals.csv");
    let out = pipewise(
        &db,
        &["import", "csv", "--mapping", p(&map), p(&csv), "--json"],
    );
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let s = stats(&db);
    let stages: Vec<&str> = s["pipeline"]["by_stage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, vec!["discovery", "negotiation", "closed_lost"]);
    assert_eq!(s["counts"]["accounts"], 3);
    assert_eq!(
        s["entities"]["opportunities"]["first"],
        "2025-05-02T11:40:00Z"
    );
}

#[test]
fn vtt_transcripts_link_and_reimport() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    let canon = fixtures().join("canonical");
    assert!(pipewise(&db, &["import", "dir", p(&canon)]).ok);
    let map = root().join("mappings/salesforce-opportunity-history.toml");
    assert!(
        pipewise(
            &db,
            &[
                "import",
                "csv",
                "--mapping",
                p(&map),
                p(&fixtures().join("salesforce-opportunity-history.csv"))
            ]
        )
        .ok
    );
    // Linked by its sidecar JSON.
    let vtt = fixtures().join("discovery-call.vtt");
    let out = pipewise(&db, &["import", "vtt", p(&vtt), "--json"]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(
        r["entities"]["conversation_turns"]["inserted"], 4,
        "five cues, two by the same speaker in a row"
    );
    // Linked on the command line; not linked at all is an error.
    let zoom = fixtures().join("zoom-call.vtt");
    let out = pipewise(&db, &["import", "vtt", p(&zoom)]);
    assert!(!out.ok);
    assert!(
        out.stdout
            .contains("must be linked to an opportunity or a lead"),
        "{}",
        out.stdout
    );
    let out = pipewise(
        &db,
        &[
            "import",
            "vtt",
            p(&zoom),
            "--opportunity",
            "0061x00000XyzQ9",
            "--rep",
            "Lee Seller",
        ],
    );
    assert!(out.ok, "{}", out.stdout);
    let out = pipewise(
        &db,
        &["import", "vtt", p(&zoom), "--opportunity", "no-such-deal"],
    );
    assert!(!out.ok);
    assert!(
        out.stdout.contains("no opportunity with this id"),
        "{}",
        out.stdout
    );
    let d = digest(&db);
    assert!(pipewise(&db, &["import", "vtt", p(&vtt)]).ok);
    assert_eq!(digest(&db), d, "re-import changes nothing");
    // A broken transcript names its lines.
    let bad = dir.path().join("bad.vtt");
    std::fs::write(
        &bad,
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:0x.000\n<v A>hi</v>\n",
    )
    .unwrap();
    let out = pipewise(&db, &["import", "vtt", p(&bad), "--lead", "x"]);
    assert!(!out.ok);
    assert!(out.stdout.contains("bad.vtt:4:"), "{}", out.stdout);
    assert_eq!(digest(&db), d);
    assert_eq!(stats(&db)["counts"]["conversations"], 2);
}

#[test]
fn db_from_environment_and_one_line_failures() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let out = Command::new(env!("CARGO_BIN_EXE_pipewise"))
        .args(["import", "maven", p(&maven_dir()), "--dry-run"])
        .env("PIPEWISE_DB", &db)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(db.exists(), "PIPEWISE_DB chooses the database file");
    let out = pipewise(&db, &["import", "maven", p(&dir.path().join("nowhere"))]);
    assert!(!out.ok);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    let not_db = dir.path().join("notes.txt");
    std::fs::write(
        &not_db,
        "this is not a database, just some text long enough to look like a header....",
    )
    .unwrap();
    let out = pipewise(&not_db, &["stats"]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("cannot open database"),
        "{}",
        out.stderr
    );
}

#[test]
fn data_format_doc_lists_every_field() {
    let doc = std::fs::read_to_string(root().join("docs/data-format.md")).unwrap();
    let generated = pipewise(Path::new(":memory:"), &["schema", "--markdown"]).stdout;
    assert!(
        doc.contains(&generated),
        "docs/data-format.md is out of date: paste `pipewise schema --markdown` into it"
    );
}

#[test]
fn demo_simulates_imports_trains_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let text = Command::new(env!("CARGO_BIN_EXE_pipewise"))
        .current_dir(dir.path())
        .arg("demo")
        .output()
        .unwrap();
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        "Org: 5 teams",
        "Win rate by rep",
        "Lead response",
        "under 5 minutes",
        "win model on the test window",
        "stage-weighted",
        "oracle (simulator's true win probability)",
        "Riskiest open deals",
        "Lead routing and follow-up, measured on the same",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(dir.path().join("pipewise-demo.db").exists());
    assert!(
        dir.path()
            .join("pipewise-demo-data/ground_truth.json")
            .exists()
    );
}

#[test]
fn demo_runs_on_the_maven_export() {
    let dir = tempfile::tempdir().unwrap();
    let out_db = dir.path().join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_pipewise"))
        .args(["demo", "--out", p(&out_db), "--maven", p(&maven_dir())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("win rate"), "{text}");
    assert!(text.contains("Win rate by rep"), "{text}");
}
