//! `pipewise monitor` on simulated orgs: a market shift two months before
//! the end of the data (`simulate --drift-at`: deals half the size and
//! harder to win) raises an alert on the deal amounts; the same org without
//! it raises none.

mod common;

use std::path::Path;

use common::pipewise;
use serde_json::Value;

/// The monitor report (--json) of a trained simulated org of `seed`.
fn monitored(d: &Path, seed: &str, extra: &[&str]) -> Value {
    common::trained_org(d, seed, extra);
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "monitor", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn psi(r: &Value, feature: &str) -> f64 {
    r["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == feature)
        .unwrap_or_else(|| panic!("{feature} missing: {r}"))["psi"]
        .as_f64()
        .unwrap()
}

#[test]
fn a_market_shift_raises_an_alert_and_a_steady_org_none() {
    let dir = tempfile::tempdir().unwrap();
    let shifted = monitored(dir.path(), "5501", &["--drift-at", "2025-11-01"]);
    let alerts = shifted["alerts"].to_string();
    assert!(
        alerts.contains("amount has shifted in new deals"),
        "{alerts}"
    );
    let intake_amount = shifted["intake"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "amount")
        .unwrap()["psi"]
        .as_f64()
        .unwrap();
    assert!(intake_amount > 0.5, "{shifted}");
    assert!(psi(&shifted, "amount") > 0.1, "{shifted}");
    // Features one value per rep are reported, never alerted on.
    let rep = shifted["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "rep_tenure")
        .unwrap();
    assert_eq!(rep["shared_by"], "rep");
    // The windows: the last 13 weeks the model was fitted on, the last 8.
    assert_eq!(shifted["reference"]["snapshots"], 13);
    assert_eq!(shifted["recent"]["snapshots"], 8);
    // Accuracy by month from the held-out scores, in order.
    let months: Vec<&str> = shifted["accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["month"].as_str().unwrap())
        .collect();
    assert!(
        months.len() >= 3 && months.windows(2).all(|w| w[0] < w[1]),
        "{months:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let steady = monitored(dir.path(), "5501", &[]);
    assert_eq!(steady["alerts"], serde_json::json!([]), "{steady}");
    assert!(psi(&steady, "amount") < 0.1, "{steady}");

    // Live accuracy: scores stored as of a past date join the outcomes
    // known now.
    let d = dir.path();
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "score",
            "--as-of",
            "2025-06-02",
            "--out",
            "s.csv",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "monitor", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["source"] == "live" && m["month"] == "2025-06"),
        "{v}"
    );
    // The text report and the errors.
    let (ok, text, err) = pipewise(d, &["--db", "org.db", "monitor", "--model", "slip"]);
    assert!(ok, "{err}");
    assert!(
        text.contains("# Monitor: slip model") && text.contains("## Alerts"),
        "{text}"
    );
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "monitor", "--model", "lead"]);
    assert!(!ok);
    assert!(err.contains("expected win or slip"), "{err}");
}
