//! `pipewise fairness` on simulated orgs whose reps all enter the true
//! stage (`--no-bias`): with one region's records biased (`--entry-bias`:
//! its stages entered a step ahead of the buyer from a date on) the report
//! flags that region's record; on the same org without it, nothing is
//! flagged. Also the coaching report, an HR attributes file and the errors.

mod common;

use std::path::Path;

use common::pipewise;
use serde_json::Value;

/// The fairness report (--json) of a trained simulated org of `seed`.
fn audited(d: &Path, seed: &str, extra: &[&str]) -> Value {
    common::trained_org(d, seed, extra);
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "fairness", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn flags(report: &Value, key: &str) -> Vec<(String, String, String)> {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            a["disparities"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["flagged"] == true)
                .map(|x| {
                    (
                        a["attribute"].as_str().unwrap().to_string(),
                        x["group"].as_str().unwrap().to_string(),
                        x["metric"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_region_entering_stages_ahead_is_flagged_and_an_unbiased_org_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let biased = audited(dir.path(), "5201", &["--no-bias", "--entry-bias", "EMEA"]);
    let found = flags(&biased, "record");
    assert!(
        found
            .iter()
            .any(|(a, g, m)| a == "region" && g == "EMEA" && m == "record"),
        "{found:?}"
    );
    // No other region or team is flagged in the record (a tenure band
    // that holds many of EMEA's reps may be: that is the same bias seen
    // through another attribute).
    assert!(
        found
            .iter()
            .filter(|(a, _, _)| a == "region" || a == "team")
            .all(|(_, g, _)| g.starts_with("EMEA")),
        "{found:?}"
    );
    // The figures behind it: EMEA's entered stages run ahead of its deals'
    // evidence, further than the other regions'.
    let region = biased["record"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attribute"] == "region")
        .unwrap();
    let emea = region["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "EMEA")
        .unwrap();
    assert!(emea["relative_gap"].as_f64().unwrap() > 0.15, "{emea}");
    assert_eq!(biased["flagged"], true);

    let dir = tempfile::tempdir().unwrap();
    let clean = audited(dir.path(), "5201", &["--no-bias"]);
    assert_eq!(flags(&clean, "audits"), vec![], "{clean}");
    assert_eq!(flags(&clean, "record"), vec![], "{clean}");
    assert_eq!(clean["flagged"], false);
    // Every default group is there, with judged groups.
    let attrs: Vec<&str> = clean["audits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attribute"].as_str().unwrap())
        .collect();
    assert_eq!(attrs, ["region", "team", "tenure", "industry", "size"]);

    // The text report and the model card say the same.
    let d = dir.path();
    let (ok, text, err) = pipewise(d, &["--db", "org.db", "fairness", "--model", "slip"]);
    assert!(ok, "{err}");
    assert!(text.contains("# Fairness: slip model"), "{text}");
    assert!(text.contains("## By region"), "{text}");
    let (ok, card, err) = pipewise(d, &["--db", "org.db", "models", "--card", "win"]);
    assert!(ok, "{err}");
    assert!(card.contains("**Fairness by group**"), "{card}");
    assert!(card.contains("*By region*"), "{card}");

    // An HR file: any column is a group; unmatched keys are noted.
    let reps: Vec<String> = {
        let c = rusqlite::Connection::open(d.join("org.db")).unwrap();
        let mut st = c
            .prepare("SELECT id FROM users WHERE role = 'rep' ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let mut hr = String::from("user_id,cohort\n");
    for (i, r) in reps.iter().enumerate() {
        hr.push_str(&format!("{r},{}\n", if i % 2 == 0 { "A" } else { "B" }));
    }
    hr.push_str("nobody,A\n");
    std::fs::write(d.join("hr.csv"), hr).unwrap();
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "fairness",
            "--group",
            "cohort",
            "--attributes",
            "hr.csv",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let groups: Vec<&str> = v["audits"][0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups.len(), 2, "{v}");
    assert!(v["notes"].to_string().contains("nobody"), "{v}");

    // Coaching: the rate of each recommendation by region.
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db", "org.db", "fairness", "--model", "coaching", "--group", "region", "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let rates = v["recommendation_rates"][0]["rates"].as_array().unwrap();
    assert!(!rates.is_empty(), "{v}");
    assert!(rates.iter().all(|r| r["p_value"].as_f64().unwrap() <= 1.0));

    // Errors: an unknown group, a bad attributes file, an unknown model.
    let (ok, out, _) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "fairness",
            "--group",
            "shoe_size",
            "--json",
        ],
    );
    assert!(!ok);
    assert!(out.contains("shoe_size") && out.contains("region"), "{out}");
    std::fs::write(d.join("bad.csv"), "colour,cohort\nred,A\n").unwrap();
    let (ok, _, err) = pipewise(
        d,
        &["--db", "org.db", "fairness", "--attributes", "bad.csv"],
    );
    assert!(!ok);
    assert!(err.contains("bad.csv: line 1, column 1"), "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "fairness", "--model", "churn"]);
    assert!(!ok);
    assert!(err.contains("win, slip, lead or coaching"), "{err}");
}
