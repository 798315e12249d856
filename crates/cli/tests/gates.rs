//! Data gates and exports without history: each engine says plainly when the
//! data cannot support it ("cannot judge ..."), in text and in JSON, and a
//! model trained on current values only says which fields had no history.

use std::path::Path;

mod common;
use common::pipewise;

/// A simulated org's export without the files named in `leave_out`.
fn export(d: &Path, out: &str, leave_out: &[&str]) {
    let sim = d.join("sim");
    if !sim.exists() {
        let (ok, _, err) = pipewise(
            d,
            &[
                "simulate",
                "--seed",
                "23",
                "--reps",
                "16",
                "--months",
                "15",
                "--out",
                "sim",
                "--transcript-share",
                "0.1",
                "--vtt-sample",
                "0",
            ],
        );
        assert!(ok, "{err}");
    }
    std::fs::create_dir_all(d.join(out)).unwrap();
    for e in std::fs::read_dir(&sim).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if p.is_file() && name.ends_with(".csv") && !leave_out.contains(&name.as_str()) {
            std::fs::copy(&p, d.join(out).join(&name)).unwrap();
        }
    }
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn an_export_without_history_trains_what_it_can_and_says_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    export(d, "current", &["opportunity_history.csv"]);
    let (ok, _, err) = pipewise(d, &["--db", "c.db", "import", "dir", "current"]);
    assert!(ok, "{err}");

    // The win model trains on what was known at each snapshot; the slip
    // model cannot be labelled without close-date history.
    let (ok, out, err) = pipewise(d, &["--db", "c.db", "train", "--json"]);
    assert!(ok, "{err}");
    let v = json(&out);
    let runs = v.as_array().unwrap();
    let win = runs
        .iter()
        .find(|r| r["report"]["kind"] == "win")
        .expect("a win model");
    let r = &win["report"];
    assert_eq!(
        r["fields_without_history"],
        serde_json::json!(["stage", "forecast_category", "amount", "close_date"])
    );
    assert_eq!(r["data_gate"]["met"], true);
    // None of the fields without history is a feature: missing at every
    // training snapshot, they are dropped for want of variation.
    let features: Vec<&str> = r["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "stage",
        "forecast_category",
        "amount",
        "days_to_close",
        // Derived from when the stage, amount and close date changed.
        "days_in_stage",
        "stage_velocity",
        "amount_change",
        "amount_edits",
        "close_pushes",
    ] {
        assert!(!features.contains(&f), "{f} used: {features:?}");
    }
    // Baselines read from fields without history would be constants: not shown.
    let names: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("stage") && !n.contains("forecast category")),
        "{names:?}"
    );
    // Without the current stage read into the past, the model is no oracle.
    let auc = r["results"][0]["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc < 0.85, "win ROC-AUC {auc}");
    let slip = runs
        .iter()
        .find(|r| r["kind"] == "slip")
        .expect("the slip model's refusal");
    let why = slip["cannot_judge"].as_str().unwrap();
    assert!(why.contains("the close date has no history"), "{why}");

    let (ok, out, err) = pipewise(d, &["--db", "c.db", "models", "--card", "win"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("**Data gate.** Needs at least 200 won and 200 lost"),
        "{out}"
    );
    assert!(
        out.contains("No history for stage, forecast_category, amount, close_date"),
        "{out}"
    );

    // The evidence-stage engine and the forecast refuse, in text and JSON.
    let (ok, out, err) = pipewise(d, &["--db", "c.db", "reps", "bias", "--json"]);
    assert!(!ok);
    assert!(
        err.contains("cannot judge entered stages against the evidence"),
        "{err}"
    );
    let v = json(&out);
    assert_eq!(v["cannot_judge"], true);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("the stage has no history")
    );
    let (ok, out, _) = pipewise(d, &["--db", "c.db", "forecast", "--json"]);
    assert!(!ok);
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("the amount has no history"),
        "{out}"
    );
}

#[test]
fn without_activity_data_the_evidence_stage_cannot_judge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    export(
        d,
        "quiet",
        &[
            "activities.csv",
            "conversations.csv",
            "conversation_turns.csv",
        ],
    );
    let (ok, _, err) = pipewise(d, &["--db", "q.db", "import", "dir", "quiet"]);
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "q.db", "pipeline", "inspect"]);
    assert!(!ok);
    assert!(
        err.contains("cannot judge entered stages against the evidence: no activity data"),
        "{err}"
    );
}
