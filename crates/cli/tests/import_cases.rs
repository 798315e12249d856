//! Every CSV case of `../shared/cases/imports/` (small inputs from real
//! Salesforce and HubSpot exports that once imported wrong), and the class of
//! fault each stands for: the real binary, exact stored values read back.

mod common;

use std::path::{Path, PathBuf};

use common::pipewise;

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/cases/imports")
}

fn case(name: &str) -> String {
    cases().join(name).display().to_string()
}

/// A database holding the cases' base user and opportunity (`opp1`), as
/// observed at the start of 2024 (the cases' changes come later).
fn base(dir: &Path) -> String {
    let db = dir.join("t.db").display().to_string();
    for (entity, file) in [
        ("users", "base-users.csv"),
        ("opportunities", "base-opportunities.csv"),
    ] {
        let (ok, out, err) = pipewise(
            dir,
            &[
                "--db",
                &db,
                "import",
                "csv",
                "--as-of",
                "2024-01-01T00:00:00Z",
                "--entity",
                entity,
                &case(file),
            ],
        );
        assert!(ok, "{out}{err}");
    }
    db
}

fn query(db: &str, sql: &str) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                rusqlite::types::ValueRef::Real(x) => x.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(_) => "BLOB".into(),
            })
            .collect())
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

fn digest(dir: &Path, db: &str) -> String {
    let (_, out, _) = pipewise(dir, &["--db", db, "stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["content_digest"].as_str().unwrap().to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn two_digit_years_are_this_century_and_implausible_dates_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let (ok, out, err) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--mapping",
            &case("sf-two-digit-year.toml"),
            &case("sf-two-digit-year.csv"),
        ],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        query(
            &db,
            "SELECT close_date, created_at FROM opportunities WHERE id = '006bm00000AAAAAAA1'"
        ),
        vec![vec![
            "2024-02-03".to_string(),
            "2026-02-23T00:00:00Z".to_string()
        ]]
    );
    // The class: a year that is no year is an error with its place, never stored.
    let csv = write(dir.path(), "bad.csv", b"Id,Name,StageName,Amount,CloseDate,CreatedDate\n006X,Bad,Qualification,1,02/03/0024,01/01/2024\n");
    let before = digest(dir.path(), &db);
    let (ok, out, _) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--json",
            "--mapping",
            &case("sf-two-digit-year.toml"),
            &csv,
        ],
    );
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(5)),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("1900-01-01"), "{e}");
    assert_eq!(digest(dir.path(), &db), before);
}

#[test]
fn day_order_is_inferred_per_column_or_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let mapping = write(dir.path(), "m.toml", b"name = \"no formats\"\n[[file]]\n[[file.entity]]\nentity = \"opportunities\"\nfields.id = \"Id\"\nfields.owner_id = { const = \"u1\" }\nfields.stage = { const = \"discovery\" }\nfields.close_date = \"Close\"\nfields.created_at = \"Created\"\n");
    // 25/12 only reads day-first: the whole Close column is day-first. The
    // Created column is report-style with a time; 13/.. decides it too.
    let csv = write(
        dir.path(),
        "d.csv",
        b"Id,Close,Created\nA,02/03/2024,1/2/2024 3:04 PM\nB,25/12/2024,13/2/2024 9:00 AM\n",
    );
    let (ok, out, err) = pipewise(
        dir.path(),
        &["--db", &db, "import", "csv", "--mapping", &mapping, &csv],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        query(
            &db,
            "SELECT id, close_date, created_at FROM opportunities WHERE id IN ('A', 'B') ORDER BY id"
        ),
        vec![
            vec![
                "A".to_string(),
                "2024-03-02".into(),
                "2024-02-01T15:04:00Z".into()
            ],
            vec![
                "B".to_string(),
                "2024-12-25".into(),
                "2024-02-13T09:00:00Z".into()
            ],
        ]
    );
    // No value decides: an error asking for the column's form, not a guess.
    let csv = write(
        dir.path(),
        "a.csv",
        b"Id,Close,Created\nC,02/03/2024,2024-01-01\nD,04/05/2024,2024-01-01\n",
    );
    let (ok, out, _) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--json",
            "--mapping",
            &mapping,
            &csv,
        ],
    );
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("formats = [\"%m/%d/%Y\"]") && msg.contains("02/03/2024"),
        "{msg}"
    );
    assert_eq!(v["errors"][0]["column"].as_u64(), Some(2));
}

#[test]
fn encodings_decimal_commas_and_report_footers() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let mapping = write(dir.path(), "m.toml", "name = \"eu report\"\nencoding = \"windows-1252\"\n[[file]]\ndelimiter = \";\"\nskip_rows = 2\nfooter = [\"Grand Totals\", \"Confidential Information\"]\n[[file.entity]]\nentity = \"opportunities\"\nfields.id = \"Id\"\nfields.name = \"Name\"\nfields.owner_id = { const = \"u1\" }\nfields.stage = { column = \"Stage\", values = { \"Negociación\" = \"negotiation\" } }\nfields.amount = \"Amount\"\nfields.currency = \"Currency\"\n".as_bytes());
    // Windows-1252 bytes (é, ó, €), a title block, decimal commas, thousands
    // dots, a column the mapping does not read holding a byte that is not
    // UTF-8, and the report's footer.
    let mut csv: Vec<u8> = Vec::new();
    csv.extend_from_slice(
        b"Opportunities by stage\nFiltered by: all\nId;Name;Stage;Amount;Currency;Notes\n",
    );
    csv.extend_from_slice(b"E1;Caf\xe9;Negociaci\xf3n;9,99;EUR;x\n");
    csv.extend_from_slice(b"E2;Big;Negociaci\xf3n;1.234.567,50 \x80;EUR;\xff\n");
    csv.extend_from_slice(b"E3;Round;Negociaci\xf3n;1.500;EUR;\n");
    csv.extend_from_slice(b"Grand Totals (3 records);;;1.236.077,49;;\n\nConfidential Information - Do Not Distribute\n");
    let csv = write(dir.path(), "eu.csv", &csv);
    let (ok, out, err) = pipewise(
        dir.path(),
        &["--db", &db, "import", "csv", "--mapping", &mapping, &csv],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("footer"), "{out}");
    assert_eq!(
        query(
            &db,
            "SELECT id, name, stage, amount, currency FROM opportunities WHERE id LIKE 'E%' ORDER BY id"
        ),
        vec![
            vec![
                "E1".to_string(),
                "Café".into(),
                "negotiation".into(),
                "9.99".into(),
                "EUR".into()
            ],
            vec![
                "E2".to_string(),
                "Big".into(),
                "negotiation".into(),
                "1234567.5".into(),
                "EUR".into()
            ],
            vec![
                "E3".to_string(),
                "Round".into(),
                "negotiation".into(),
                "1500".into(),
                "EUR".into()
            ],
        ]
    );
    // Without footer and skip_rows: errors that name those lines and the options.
    let plain = write(
        dir.path(),
        "plain.toml",
        std::fs::read_to_string(&mapping)
            .unwrap()
            .replace("skip_rows = 2\n", "")
            .replace(
                "footer = [\"Grand Totals\", \"Confidential Information\"]\n",
                "",
            )
            .as_bytes(),
    );
    let (ok, out, _) = pipewise(
        dir.path(),
        &["--db", &db, "import", "csv", "--mapping", &plain, &csv],
    );
    assert!(!ok);
    assert!(out.contains("skip_rows = 2"), "{out}");
    // An amount in another currency than its row's is an error, not a sum.
    let bad = write(
        dir.path(),
        "bad.csv",
        b"x\ny\nId;Name;Stage;Amount;Currency;Notes\nE4;X;Negociaci\xf3n;10 USD;EUR;\n",
    );
    let (ok, out, _) = pipewise(
        dir.path(),
        &["--db", &db, "import", "csv", "--mapping", &mapping, &bad],
    );
    assert!(!ok);
    assert!(
        out.contains("written in USD but the row's currency is EUR"),
        "{out}"
    );
}

#[test]
fn a_file_without_owner_and_stage_lists_every_missing_field_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let (ok, out, err) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--json",
            "--mapping",
            &case("hubspot-no-owner-no-stage.toml"),
            &case("hubspot-no-owner-no-stage.csv"),
        ],
    );
    assert!(!ok);
    assert!(!err.contains("NOT NULL"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on failure");
    let errors = v["errors"].as_array().unwrap();
    // One error per missing field and row, at the row's id column.
    let fields: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| {
            let msg = e["message"].as_str().unwrap();
            let field = ["owner_id", "stage"]
                .into_iter()
                .find(|f| msg.contains(&format!("gives no {f}")))
                .unwrap_or(msg);
            (e["line"].as_u64().unwrap(), field)
        })
        .collect();
    assert_eq!(
        fields,
        vec![(2, "owner_id"), (2, "stage"), (3, "owner_id"), (3, "stage")]
    );
    assert!(
        errors
            .iter()
            .all(|e| e["column"].as_u64() == Some(1) && e["column_name"] == "Record ID")
    );
    // The same file updates deals that exist: "11015.0" is 11015, an empty amount stays empty.
    let (ok, out, err) = pipewise(dir.path(), &["--db", &db, "import", "csv", "--entity", "opportunities", &write(dir.path(), "o.csv", b"id,name,owner_id,stage\n100000000001,x,u1,discovery\n100000000002,y,u1,proposal\n")]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--mapping",
            &case("hubspot-no-owner-no-stage.toml"),
            &case("hubspot-no-owner-no-stage.csv"),
        ],
    );
    assert!(ok, "{out}{err}");
    let rows = query(
        &db,
        "SELECT id, owner_id, stage, amount FROM opportunities WHERE id LIKE '1000%' ORDER BY id",
    );
    assert_eq!(rows[0], vec!["100000000001", "u1", "discovery", "11015"]);
    assert_eq!(rows[1], vec!["100000000002", "u1", "proposal", "NULL"]);
    // Any failure before the report (here: a mapping that does not exist) is JSON too.
    let (ok, out, _) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--json",
            "--mapping",
            "missing.toml",
            &case("hubspot-no-owner-no-stage.csv"),
        ],
    );
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on failure");
    assert_eq!(v["committed"], false);
}

#[test]
fn history_only_files_add_history_to_existing_deals() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let args = [
        "--db",
        &db,
        "import",
        "csv",
        "--mapping",
        &case("sf-history-only.toml"),
        &case("sf-history-only.csv"),
    ];
    // The deal is not there: an error naming the line and the id column.
    let (ok, out, _) = pipewise(dir.path(), &args);
    assert!(!ok);
    assert!(out.contains("sf-history-only.csv:2:2"), "{out}");
    assert!(!out.contains("NOT NULL"), "{out}");
    let (ok, out, err) = pipewise(dir.path(), &["--db", &db, "import", "csv", "--as-of", "2023-01-10T00:00:00Z", "--entity", "opportunities", &write(dir.path(), "o.csv", b"id,name,owner_id,stage,amount,created_at\n0068a00001AAAAAAA1,Deal,u1,proposal,15000,2023-01-10\n")]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = pipewise(dir.path(), &args);
    assert!(ok, "{out}{err}");
    // The deal as observed on 2023-01-10, then the dated change: the chain
    // of both. (Had the deal been observed after the change, the history
    // would say so: see the test of a new user's second look.)
    assert_eq!(
        query(
            &db,
            "SELECT field, changed_at, value, old_value FROM opportunity_history WHERE opportunity_id = '0068a00001AAAAAAA1' ORDER BY field, changed_at"
        ),
        vec![
            vec![
                "amount".to_string(),
                "2023-01-10T00:00:00Z".into(),
                "15000".into(),
                "NULL".into()
            ],
            vec![
                "amount".to_string(),
                "2023-02-07T20:47:49Z".into(),
                "18490".into(),
                "15000".into()
            ],
            vec![
                "stage".to_string(),
                "2023-01-10T00:00:00Z".into(),
                "proposal".into(),
                "NULL".into()
            ],
            vec![
                "stage".to_string(),
                "2023-02-07T20:47:49Z".into(),
                "negotiation".into(),
                "proposal".into()
            ],
        ]
    );
    // The current value is the latest change.
    assert_eq!(
        query(
            &db,
            "SELECT stage, amount FROM opportunities WHERE id = '0068a00001AAAAAAA1'"
        ),
        vec![vec!["negotiation".to_string(), "18490".into()]]
    );
}

#[test]
fn same_second_changes_are_two_entries_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let args = [
        "--db",
        &db,
        "import",
        "csv",
        "--entity",
        "opportunity_history",
        &case("same-second-history.csv"),
    ];
    let (ok, out, err) = pipewise(dir.path(), &args);
    assert!(ok, "{out}{err}");
    assert_eq!(
        query(
            &db,
            "SELECT seq, value, old_value FROM opportunity_history WHERE opportunity_id = 'opp1' AND field = 'stage' ORDER BY changed_at, seq"
        ),
        vec![
            // The base file's stage, as observed on 2024-01-01.
            vec!["0".to_string(), "discovery".into(), "NULL".into()],
            vec!["0".to_string(), "proposal".into(), "discovery".into()],
            vec!["1".to_string(), "closed_won".into(), "proposal".into()]
        ]
    );
    assert_eq!(
        query(&db, "SELECT stage FROM opportunities WHERE id = 'opp1'"),
        vec![vec!["closed_won".to_string()]]
    );
    // Re-importing changes nothing; an identical row is a duplicate.
    let before = digest(dir.path(), &db);
    let (ok, _, _) = pipewise(dir.path(), &args);
    assert!(ok);
    assert_eq!(digest(dir.path(), &db), before);
    let dup = write(dir.path(), "dup.csv", b"opportunity_id,field,changed_at,value,old_value\nopp1,stage,2024-04-01T10:00:00Z,closed_lost,closed_won\nopp1,stage,2024-04-01T10:00:00Z,closed_lost,closed_won\n");
    let (ok, out, _) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--entity",
            "opportunity_history",
            &dup,
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("dup.csv:3:1") && out.contains("line 2 records the same change"),
        "{out}"
    );
}

#[test]
fn current_state_and_history_in_either_order_give_the_same_database() {
    let current =
        b"id,name,owner_id,stage,amount,close_date\nopp1,Test deal,u1,closed_won,2000,2024-06-30\n";
    let history = b"opportunity_id,field,changed_at,value,old_value\nopp1,stage,2024-03-01T10:00:00Z,proposal,\nopp1,stage,2024-05-01T10:00:00Z,closed_won,\n";
    let mut digests = Vec::new();
    for order in [[0, 1], [1, 0]] {
        let dir = tempfile::tempdir().unwrap();
        let db = base(dir.path());
        let files = [
            ("opportunities", write(dir.path(), "current.csv", current)),
            (
                "opportunity_history",
                write(dir.path(), "history.csv", history),
            ),
        ];
        for i in order {
            let (entity, file) = &files[i];
            let (ok, out, err) = pipewise(
                dir.path(),
                &[
                    "--db",
                    &db,
                    "import",
                    "csv",
                    "--as-of",
                    "2024-07-01T00:00:00Z",
                    "--entity",
                    entity,
                    file,
                ],
            );
            assert!(ok, "{out}{err}");
        }
        assert_eq!(
            query(&db, "SELECT stage, amount FROM opportunities"),
            vec![vec!["closed_won".to_string(), "2000".into()]]
        );
        digests.push((digest(dir.path(), &db), query(&db, "SELECT field, changed_at, seq, value, old_value FROM opportunity_history ORDER BY 1, 2, 3")));
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn amounts_in_several_currencies_are_converted_or_left_out_never_added() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db").display().to_string();
    let mapping =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings/salesforce-data-export.toml");
    // The case's own mapping cannot see the currency: mapped with the shipped Data Export mapping's Opportunity section.
    let m = std::fs::read_to_string(&mapping).unwrap();
    let start = m.find("[[file]]\nname = \"Opportunity.csv\"").unwrap();
    let end = m.find("# One row per change").unwrap();
    let opp_only = write(
        dir.path(),
        "opp.toml",
        format!("name = \"sf opportunities\"\n{}", &m[start..end])
            .replace("fields.account_id = \"AccountId\"\n", "")
            .replace(
                "fields.owner_id = \"OwnerId\"",
                "fields.owner_id = { column = \"OwnerId\", create_missing = true }",
            )
            .as_bytes(),
    );
    let opp_only = {
        // The case file has only some of the export's columns.
        let t = std::fs::read_to_string(&opp_only).unwrap();
        let keep: Vec<&str> = t
            .lines()
            .filter(|l| {
                ![
                    "fields.probability",
                    "fields.close_date",
                    "fields.created_at",
                    "fields.lead_source",
                    "fields.type",
                    "fields.forecast_category",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .collect();
        write(dir.path(), "opp2.toml", keep.join("\n").as_bytes())
    };
    let (ok, out, err) = pipewise(
        dir.path(),
        &[
            "--db",
            &db,
            "import",
            "csv",
            "--mapping",
            &opp_only,
            &case("sf-multi-currency.csv"),
        ],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        query(
            &db,
            "SELECT id, amount, currency FROM opportunities ORDER BY id"
        ),
        vec![
            vec!["006A".to_string(), "200000".into(), "MXN".into()],
            vec!["006B".to_string(), "10000".into(), "USD".into()]
        ]
    );
    // No corporate currency: nothing is added across currencies.
    let (_, out, _) = pipewise(dir.path(), &["--db", &db, "currency", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unconverted"].as_array().unwrap().len(), 1, "{v}");
    let (_, out, _) = pipewise(dir.path(), &["--db", &db, "stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let won = v["pipeline"]["won_amount"].as_f64().unwrap();
    assert!(
        won == 10000.0 || won == 200000.0,
        "mixed currencies added: {won}"
    );
    // A corporate currency and a dated rate: 200,000 MXN at 20 MXN per USD is 10,000 USD.
    let (ok, _, err) = pipewise(dir.path(), &["--db", &db, "currency", "--corporate", "usd"]);
    assert!(ok, "{err}");
    let rates = write(
        dir.path(),
        "exchange_rates.csv",
        b"currency,valid_from,rate\nMXN,2020-01-01,20\n",
    );
    let (ok, out, err) = pipewise(dir.path(), &["--db", &db, "import", "csv", &rates]);
    assert!(ok, "{out}{err}");
    let (_, out, _) = pipewise(dir.path(), &["--db", &db, "stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["pipeline"]["won_amount"].as_f64(),
        Some(20000.0),
        "{}",
        v["pipeline"]
    );
    let (_, out, _) = pipewise(dir.path(), &["--db", &db, "currency", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["converted"].as_u64(),
            v["unconverted"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0)),
        "{v}"
    );
}

#[test]
fn a_new_users_second_look_finds_no_silent_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let import = |args: &[&str]| {
        let mut all = vec!["--db", db.as_str(), "import", "csv"];
        all.extend_from_slice(args);
        pipewise(dir.path(), &all)
    };
    // Whole amounts with a thousands dot and nothing else to decide: 1.500 is
    // 1500 or 1.5, so the column is an error, never 1.5.
    let f = write(
        dir.path(),
        "dots.csv",
        b"id,owner_id,stage,amount\nD1,u1,discovery,1.500\nD2,u1,discovery,12.500\n",
    );
    let (ok, out, _) = import(&["--entity", "opportunities", &f]);
    assert!(!ok);
    assert!(out.contains("1.500") && out.contains("decimal"), "{out}");
    // A probability column is in one form: 1 next to 10 is 1%, not 100%.
    let f = write(dir.path(), "p.csv", b"id,owner_id,stage,probability\nP1,u1,discovery,10\nP2,u1,discovery,1\nP3,u1,discovery,1%\nP4,u1,discovery,0.5\n");
    let (ok, out, err) = import(&["--entity", "opportunities", &f]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        query(
            &db,
            "SELECT probability FROM opportunities WHERE id LIKE 'P%' ORDER BY id"
        ),
        vec![
            vec!["0.1".to_string()],
            vec!["0.01".into()],
            vec!["0.01".into()],
            vec!["0.005".into()]
        ]
    );
    // Lines are counted as an editor shows them, blank lines included.
    let f = write(
        dir.path(),
        "blank.csv",
        b"id,owner_id,stage\n\nB1,u1,discovery\n\nB2,u1,nowhere\n",
    );
    let (ok, out, _) = import(&["--entity", "opportunities", &f]);
    assert!(!ok);
    assert!(out.contains("blank.csv:5:3"), "{out}");
    // A dated history file does not date the current state before its first
    // change: before it, the stage is unknown, not the final one.
    let m = write(dir.path(), "h.toml", b"name = \"history\"\n[[file]]\n[[file.entity]]\nentity = \"opportunities\"\nrepeats = true\neffective_at = \"CreatedDate\"\nfields.id = \"OpportunityId\"\nfields.stage = \"StageName\"\n");
    let f = write(
        dir.path(),
        "cur.csv",
        b"id,owner_id,stage,created_at\nH1,u1,negotiation,2023-06-01T10:00:00Z\n",
    );
    assert!(import(&["--entity", "opportunities", &f]).0);
    let f = write(dir.path(), "hist.csv", b"OpportunityId,CreatedDate,StageName\nH1,2024-01-15 09:00:00,prospecting\nH1,2024-05-01 09:00:00,negotiation\n");
    let (ok, out, err) = import(&["--mapping", &m, &f]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        query(
            &db,
            "SELECT changed_at, value, old_value FROM opportunity_history WHERE opportunity_id = 'H1' ORDER BY changed_at"
        ),
        vec![
            vec![
                "2024-01-15T09:00:00Z".to_string(),
                "prospecting".into(),
                "NULL".into()
            ],
            vec![
                "2024-05-01T09:00:00Z".to_string(),
                "negotiation".into(),
                "prospecting".into()
            ],
        ]
    );
    assert_eq!(
        query(&db, "SELECT stage FROM opportunities WHERE id = 'H1'"),
        vec![vec!["negotiation".to_string()]]
    );
}

#[test]
fn rates_quoted_against_another_base_and_dollar_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let run = |args: &[&str]| {
        let mut all = vec!["--db", db.as_str()];
        all.extend_from_slice(args);
        pipewise(dir.path(), &all)
    };
    // Salesforce's rates are per its own corporate currency (USD here);
    // with EUR as ours, a GBP amount goes through USD: 790 GBP = 1000 USD = 920 EUR.
    let f = write(
        dir.path(),
        "o.csv",
        b"id,owner_id,stage,amount,currency,close_date\nG1,u1,closed_won,790,GBP,2024-03-01\n",
    );
    assert!(run(&["import", "csv", "--entity", "opportunities", &f]).0);
    let r = write(
        dir.path(),
        "exchange_rates.csv",
        b"currency,valid_from,rate\nUSD,1900-01-01,1\nEUR,1900-01-01,0.92\nGBP,1900-01-01,0.79\n",
    );
    assert!(run(&["import", "csv", &r]).0);
    assert!(run(&["currency", "--corporate", "EUR"]).0);
    let (_, out, _) = run(&["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let won = v["pipeline"]["won_amount"].as_f64().unwrap();
    // opp1 (1000, no currency: EUR) is open; G1 is the won one.
    assert!((won - 920.0).abs() < 1e-6, "{won}");
    let (_, out, _) = run(&["currency", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let gbp = v["in_corporate_currency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recorded_currency"] == "GBP")
        .unwrap()["amount"]
        .as_f64()
        .unwrap();
    assert!((gbp - 920.0).abs() < 1e-6, "{v}");
    let (_, out, _) = run(&["currency"]);
    assert!(out.contains("920.00 EUR"), "{out}");
    // "$500" with EUR as the corporate currency and no currency on the row: an error.
    let m = write(dir.path(), "m.toml", b"name = \"usd report\"\n[[file]]\n[[file.entity]]\nentity = \"opportunities\"\nfields.id = \"Id\"\nfields.owner_id = { const = \"u1\" }\nfields.stage = { const = \"discovery\" }\nfields.amount = \"Amount\"\n");
    let f = write(dir.path(), "usd.csv", b"Id,Amount\nU1,$500\n");
    let (ok, out, _) = run(&["import", "csv", "--mapping", &m, &f]);
    assert!(!ok);
    assert!(
        out.contains("written with $") && out.contains("EUR"),
        "{out}"
    );
    // And an amount written in the corporate currency needs no currency column.
    let f = write(dir.path(), "eur.csv", b"Id,Amount\nU2,\xe2\x82\xac700\n");
    let (ok, out, err) = run(&["import", "csv", "--mapping", &m, &f]);
    assert!(ok, "{out}{err}");
}

/// A newer current-state export and an older history report (or an older
/// snapshot dated --as-of), in either order: the same database, and the
/// newer state stays current.
#[test]
fn older_files_never_undo_newer_ones() {
    let history_mapping = b"name = \"history report\"\n[[file]]\n[[file.entity]]\nentity = \"opportunities\"\nrepeats = true\neffective_at = \"Edit Date\"\nfields.id = \"Id\"\nfields.owner_id = { const = \"u1\" }\nfields.stage = \"Stage\"\nfields.amount = \"Amount\"\n";
    let history = b"Id,Edit Date,Stage,Amount\nX1,2024-01-10 09:00:00,prospecting,40000\nX1,2024-02-10 09:00:00,negotiation,48000\n";
    let current = b"id,owner_id,stage,amount\nX1,u1,closed_won,50000\n";
    let mut results = Vec::new();
    for history_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = base(dir.path());
        let m = write(dir.path(), "h.toml", history_mapping);
        let h = write(dir.path(), "h.csv", history);
        let c = write(dir.path(), "c.csv", current);
        let import_history = ["--db", &db, "import", "csv", "--mapping", &m, &h];
        let import_current = [
            "--db",
            &db,
            "import",
            "csv",
            "--as-of",
            "2024-06-01T00:00:00Z",
            "--entity",
            "opportunities",
            &c,
        ];
        let steps = if history_first {
            [import_history.as_slice(), import_current.as_slice()]
        } else {
            [import_current.as_slice(), import_history.as_slice()]
        };
        for args in steps {
            let (ok, out, err) = pipewise(dir.path(), args);
            assert!(ok, "{out}{err}");
        }
        assert_eq!(
            query(
                &db,
                "SELECT stage, amount, state_at FROM opportunities WHERE id = 'X1'"
            ),
            vec![vec![
                "closed_won".to_string(),
                "50000".into(),
                "2024-06-01T00:00:00Z".into()
            ]],
            "history first: {history_first}"
        );
        results.push((
            digest(dir.path(), &db),
            query(&db, "SELECT field, changed_at, value, old_value FROM opportunity_history WHERE opportunity_id = 'X1' ORDER BY 1, 2"),
        ));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(
        results[0]
            .1
            .iter()
            .filter(|r| r[0] == "stage")
            .map(|r| (r[1].as_str(), r[2].as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("2024-01-10T09:00:00Z", "prospecting"),
            ("2024-02-10T09:00:00Z", "negotiation"),
            ("2024-06-01T00:00:00Z", "closed_won"),
        ]
    );

    // Snapshots of the same export dated --as-of, the newer imported first.
    let newer = b"id,owner_id,stage,amount\nY1,u1,closed_won,50000\n";
    let older = b"id,owner_id,stage,amount\nY1,u1,negotiation,48000\n";
    let mut results = Vec::new();
    for newer_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let db = base(dir.path());
        let n = write(dir.path(), "n.csv", newer);
        let o = write(dir.path(), "o.csv", older);
        let files = [(n, "2024-04-01T00:00:00Z"), (o, "2024-03-01T00:00:00Z")];
        let order = if newer_first { [0, 1] } else { [1, 0] };
        for i in order {
            let (f, at) = &files[i];
            let (ok, out, err) = pipewise(
                dir.path(),
                &[
                    "--db",
                    &db,
                    "import",
                    "csv",
                    "--as-of",
                    at,
                    "--entity",
                    "opportunities",
                    f,
                ],
            );
            assert!(ok, "{out}{err}");
        }
        assert_eq!(
            query(&db, "SELECT stage FROM opportunities WHERE id = 'Y1'"),
            vec![vec!["closed_won".to_string()]],
            "newer first: {newer_first}"
        );
        results.push((
            digest(dir.path(), &db),
            query(&db, "SELECT field, changed_at, value, old_value FROM opportunity_history WHERE opportunity_id = 'Y1' ORDER BY 1, 2"),
        ));
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_new_users_third_look() {
    let dir = tempfile::tempdir().unwrap();
    let db = base(dir.path());
    let run = |args: &[&str]| {
        let mut all = vec!["--db", db.as_str()];
        all.extend_from_slice(args);
        pipewise(dir.path(), &all)
    };
    // A close date written with a time and an offset keeps its day.
    let f = write(
        dir.path(),
        "tz.csv",
        b"id,owner_id,stage,close_date\nT1,u1,discovery,2024-03-31T20:00:00-05:00\n",
    );
    assert!(run(&["import", "csv", "--entity", "opportunities", &f]).0);
    assert_eq!(
        query(&db, "SELECT close_date FROM opportunities WHERE id = 'T1'"),
        vec![vec!["2024-03-31".to_string()]]
    );
    // A percentage is no amount.
    let f = write(
        dir.path(),
        "pct.csv",
        b"id,owner_id,stage,amount\nT2,u1,discovery,50%\n",
    );
    let (ok, out, _) = run(&["import", "csv", "--entity", "opportunities", &f]);
    assert!(!ok && out.contains("a percentage"), "{out}");
    // $ against a euro row is an error.
    let f = write(
        dir.path(),
        "d.csv",
        b"id,owner_id,stage,amount,currency\nT3,u1,discovery,$500,EUR\n",
    );
    let (ok, out, _) = run(&["import", "csv", "--entity", "opportunities", &f]);
    assert!(
        !ok && out.contains("written with $ but the row's currency is EUR"),
        "{out}"
    );
    // Deals without a currency beside deals in one, and no corporate
    // currency: their amounts are unknown, never counted as the others'.
    let f = write(
        dir.path(),
        "e.csv",
        b"id,owner_id,stage,amount,currency\nT4,u1,closed_won,2000,EUR\nT5,u1,closed_won,500,\n",
    );
    assert!(run(&["import", "csv", "--entity", "opportunities", &f]).0);
    let (_, out, _) = run(&["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["pipeline"]["won_amount"].as_f64(),
        Some(2000.0),
        "{}",
        v["pipeline"]
    );
    // Once EUR is the corporate currency they are in it; changing it later
    // keeps them in EUR.
    assert!(run(&["currency", "--corporate", "EUR"]).0);
    let (_, out, _) = run(&["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pipeline"]["won_amount"].as_f64(), Some(2500.0));
    assert!(run(&["currency", "--corporate", "USD"]).0);
    assert_eq!(
        query(&db, "SELECT currency FROM opportunities WHERE id = 'T5'"),
        vec![vec!["EUR".to_string()]]
    );
    // A semicolon file read with commas: the error says which delimiter.
    let m = write(dir.path(), "m.toml", b"name = \"m\"\n[[file]]\n[[file.entity]]\nentity = \"teams\"\nfields.id = \"Id\"\nfields.name = \"Name\"\n");
    let f = write(dir.path(), "semi.csv", b"Id;Name\nt9;Team\n");
    let (ok, out, _) = run(&["import", "csv", "--mapping", &m, &f]);
    assert!(!ok && out.contains("set delimiter = \";\""), "{out}");
}
