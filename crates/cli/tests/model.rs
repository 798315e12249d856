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
    // The file has outcomes: metrics on its won and lost rows, which the
    // model was trained on: said to be in-sample.
    assert_eq!(p["metrics"]["rows"].as_u64().unwrap() as usize, won + lost);
    assert_eq!(p["in_sample"], true);
    // The share of the file's rows that were training rows: the closed deals.
    let share = (won + lost) as f64 / stages.len() as f64;
    let overlap = p["training_overlap"].as_f64().unwrap();
    assert!((overlap - share).abs() < 0.03, "{overlap} vs {share}");
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

/// A lead table as real exports write it: dates day first with dashes,
/// integer region codes, integer browser codes. `rows` rows from `seed`.
fn leads_csv(rows: usize, seed: u64) -> String {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut s = String::from("lead_ref,signup,region_code,browser,visits,converted\n");
    for i in 0..rows {
        let day = 1 + (next() * 28.0) as u32;
        let month = 1 + (next() * 12.0) as u32;
        let region = 100 + (next() * 40.0) as u32;
        let browser = 1 + (next() * 6.0) as u32;
        let visits = (next() * 10.0) as u32;
        // Conversion depends on the region, not monotonically in its code.
        let p = if region % 3 == 0 { 0.6 } else { 0.15 } + 0.02 * f64::from(visits);
        let y = u8::from(next() < p);
        s += &format!("L{i:05},{day:02}-{month:02}-2024,{region},{browser},{visits},{y}\n");
    }
    s
}

#[test]
fn column_roles_dates_day_first_codes_and_the_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("leads.csv"), leads_csv(1500, 7)).unwrap();
    std::fs::write(d.join("new.csv"), leads_csv(300, 99)).unwrap();
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "model",
            "fit",
            "--data",
            "leads.csv",
            "--target",
            "converted",
            "--out",
            "m.json",
            "--json",
        ];
        args.extend_from_slice(extra);
        pipewise(d, &args)
    };
    let (ok, out, err) = fit(&["--categorical", "browser", "--time-column", "signup"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let role = |name: &str| {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["role"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // 13-02-2024 is a date (day first), not a category of 300 values.
    assert_eq!(role("signup"), "date");
    // Integer codes: a code-like name is read as categories; a named one too.
    assert_eq!(role("region_code"), "categorical");
    assert_eq!(role("browser"), "categorical");
    assert_eq!(role("visits"), "numeric");
    let r = &v["report"];
    assert!(r.get("row_sample").is_none());
    assert!(
        r["validation"]["scheme"]
            .as_str()
            .unwrap()
            .starts_with("time-ordered on signup"),
        "{}",
        r["validation"]["scheme"]
    );
    assert!(
        r["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["warnings"]
    );
    // Something of the region effect is learnt, on later rows.
    let auc = r["validation"]["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.55, "AUC {auc}");

    // Scoring the training file says the figures are in-sample; a new file is not.
    let predict = |file: &str| {
        let (ok, out, err) = pipewise(
            d,
            &[
                "model", "predict", "--model", "m.json", "--data", file, "--json",
            ],
        );
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(predict("leads.csv")["in_sample"], true);
    let new = predict("new.csv");
    assert_eq!(new["in_sample"], false);
    assert!(new["training_overlap"].as_f64().unwrap() < 0.05);
    let (ok, out, _) = pipewise(
        d,
        &[
            "model",
            "predict",
            "--model",
            "m.json",
            "--data",
            "leads.csv",
        ],
    );
    assert!(ok && out.contains("these figures are in-sample"), "{out}");

    // Named roles a column cannot take, and a time column that is no date.
    let (ok, _, err) = fit(&["--numeric", "lead_ref"]);
    assert!(
        !ok && err.contains("--numeric lead_ref: \"L00000\" is not a number"),
        "{err}"
    );
    let (ok, _, err) = fit(&["--date", "visits:%d-%m-%Y"]);
    assert!(!ok && err.contains("--date visits:"), "{err}");
    let (ok, _, err) = fit(&["--categorical", "nope"]);
    assert!(
        !ok && err.contains("--categorical \"nope\": no such column"),
        "{err}"
    );
    let (ok, _, err) = fit(&["--categorical", "browser", "--numeric", "browser"]);
    assert!(
        !ok && err.contains("named by both --categorical and --numeric"),
        "{err}"
    );
    let (ok, _, err) = fit(&["--ignore", "converted"]);
    assert!(!ok && err.contains("that is the target column"), "{err}");
    let (ok, _, err) = fit(&["--folds", "1"]);
    assert!(!ok && err.contains("--folds 1: need at least 2"), "{err}");
    let (ok, _, err) = fit(&["--time-column", "visits"]);
    assert!(
        !ok && err.contains("--time-column visits: its values are not all dates"),
        "{err}"
    );
    // A named date form is used as given.
    let (ok, out, err) = fit(&["--date", "signup:%d-%m-%Y"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"name\": \"signup\""), "{out}");

    // A 40-row file: the figures come with a warning.
    std::fs::write(d.join("tiny.csv"), leads_csv(40, 3)).unwrap();
    let (ok, out, err) = pipewise(
        d,
        &[
            "model",
            "fit",
            "--data",
            "tiny.csv",
            "--target",
            "converted",
            "--out",
            "t.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let warnings = v["report"]["warnings"].to_string();
    assert!(
        warnings.contains("only 40 rows with an outcome"),
        "{warnings}"
    );
}
