//! `pipewise model fit/predict` end to end on the real Maven CRM export: the
//! deal table as a RevOps analyst would pass it (won vs lost, open deals
//! skipped), predictions in input order, and the errors for bad files.

use std::path::{Path, PathBuf};

fn pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/maven-crm/sales_pipeline.csv")
}

mod common;
use common::pipewise;

#[test]
fn fit_and_predict_on_the_maven_deals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = pipeline();
    let data = data.to_str().unwrap();
    let text = std::fs::read_to_string(data).unwrap();
    let stage_col = 4;
    let stages: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(stage_col).unwrap())
        .collect();
    let won = stages.iter().filter(|s| **s == "Won").count();
    let lost = stages.iter().filter(|s| **s == "Lost").count();

    // close_value is 0 for every lost deal: known only after the outcome.
    let (ok, out, err) = pipewise(
        d,
        &[
            "model",
            "fit",
            "--data",
            data,
            "--target",
            "deal_stage",
            "--positive",
            "Won",
            "--negative",
            "Lost",
            "--ignore",
            "close_value",
            "--ignore",
            "close_date",
            "--folds",
            "3",
            "--out",
            "m.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &v["report"];
    assert_eq!(r["rows"].as_u64().unwrap() as usize, won + lost);
    assert_eq!(r["positives"].as_u64().unwrap() as usize, won);
    assert_eq!(
        r["skipped"].as_u64().unwrap() as usize,
        stages.len() - won - lost
    );
    let role = |name: &str| {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(role("opportunity_id")["role"], "ignored");
    assert_eq!(role("close_value")["reason"], "excluded by --ignore");
    assert_eq!(role("sales_agent")["role"], "categorical");
    assert_eq!(role("engage_date")["role"], "date");
    // Open deals have no engage date in this export; all closed ones do.
    assert_eq!(role("engage_date")["missing"], 0);
    let auc = r["validation"]["metrics"]["roc_auc"].as_f64().unwrap();
    // Barely predictable from these columns: honest, not impressive.
    assert!((0.45..0.7).contains(&auc), "AUC {auc}");

    // Predict on the whole file (open deals included): same rows, same order.
    let (ok, out, err) = pipewise(
        d,
        &[
            "model",
            "predict",
            "--model",
            "m.json",
            "--data",
            data,
            "--out",
            "scored.csv",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["rows"].as_u64().unwrap() as usize, stages.len());
    // The file has outcomes: metrics on its won and lost rows.
    assert_eq!(p["metrics"]["rows"].as_u64().unwrap() as usize, won + lost);
    let mut rdr = csv::Reader::from_path(d.join("scored.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(&headers[headers.len() - 2], "probability");
    assert_eq!(&headers[headers.len() - 1], "top_factors");
    let ids_in: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut n = 0;
    for (rec, id) in rdr.records().zip(&ids_in) {
        let rec = rec.unwrap();
        assert_eq!(&rec[0], *id);
        let prob: f64 = rec[headers.len() - 2].parse().unwrap();
        assert!((0.0..=1.0).contains(&prob));
        n += 1;
    }
    assert_eq!(n, ids_in.len());

    // Errors: a file without a column the model uses; a target that is not one.
    std::fs::write(d.join("few.csv"), "opportunity_id,product\nX1,GTX Basic\n").unwrap();
    let (ok, _, err) = pipewise(
        d,
        &["model", "predict", "--model", "m.json", "--data", "few.csv"],
    );
    assert!(
        !ok && err.contains("the model uses column \"sales_agent\""),
        "{err}"
    );
    let (ok, out, err) = pipewise(
        d,
        &[
            "model",
            "predict",
            "--model",
            "m.json",
            "--data",
            "few.csv",
            "--allow-missing-columns",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("column sales_agent is absent"), "{out}");
    // Won/Lost read as outcomes; the first open deal does not.
    let first_open = 2 + stages
        .iter()
        .position(|s| *s != "Won" && *s != "Lost")
        .unwrap();
    let (ok, _, err) = pipewise(
        d,
        &["model", "fit", "--data", data, "--target", "deal_stage"],
    );
    let want = format!(
        "sales_pipeline.csv:{first_open}:5: column \"deal_stage\": value \"{}\": is not an outcome",
        stages[first_open - 2]
    );
    assert!(!ok && err.contains(&want), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &["model", "predict", "--model", "few.csv", "--data", data],
    );
    assert!(!ok && err.contains("few.csv"), "{err}");
}
