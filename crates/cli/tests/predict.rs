//! The predictive commands end to end on the demo org: `demo --json` trains the
//! win and slip models; then `models`, `explain`, `score` and their errors.

use std::path::Path;

mod common;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn pipewise(dir: &Path, args: &[&str]) -> Out {
    let (ok, stdout, stderr) = common::pipewise(dir, args);
    Out { ok, stdout, stderr }
}

fn result<'a>(report: &'a serde_json::Value, prefix: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} row in {report}"))
}

#[test]
fn train_score_explain_and_registry_on_the_demo_org() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = pipewise(d, &["demo", "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["import"]["errors"].as_array().unwrap().len(), 0);
    assert_eq!(v["stats"]["org"]["users_by_role"]["rep"], 40);
    let rate = v["stats"]["pipeline"]["win_rate"].as_f64().unwrap();
    // All closed deals, renewals of the installed base included.
    assert!((0.25..=0.5).contains(&rate), "win rate {rate}");
    // The lead policies on the demo org's last six months (same leads).
    let lift = &v["lead_policies"];
    let (own, routed, cadenced) = (
        lift["territory"].as_f64().unwrap(),
        lift["pipewise_routing"].as_f64().unwrap(),
        lift["pipewise_cadence"].as_f64().unwrap(),
    );
    assert!(lift["leads"].as_u64().unwrap() > 2000, "{lift}");
    assert!(routed > 1.05 * own && cadenced > 1.2 * own, "{lift}");

    // The win model: honest figures on the later test window.
    let win = &v["models"][0]["report"];
    assert_eq!(win["kind"], "win");
    assert!(win["test"]["from"].as_str().unwrap() > win["train"]["to"].as_str().unwrap());
    assert_eq!(win["calibration_folds"], 4);
    assert!(win["test"]["rows"].as_u64().unwrap() > 2000);
    // The installed base renews from the start: training saw renewals, so no
    // deal type is new to the test window (the check itself is tested in
    // engines::predict's unit tests).
    let novel = win["unseen_in_training"].as_array().unwrap();
    assert!(
        !novel.iter().any(|n| n["feature"] == "deal_type"),
        "{novel:?}"
    );
    assert_eq!(win["fields_without_history"].as_array().unwrap().len(), 0);
    assert_eq!(win["data_gate"]["met"], true);
    let auc = |r: &serde_json::Value| r["metrics"]["roc_auc"].as_f64().unwrap();
    let ece = |r: &serde_json::Value| r["metrics"]["ece"].as_f64().unwrap();
    let model = result(win, "pipewise");
    let stage = result(win, "stage-weighted");
    let oracle = result(win, "oracle");
    let logistic = result(win, "logistic");
    assert!(
        auc(model) > auc(stage) + 0.04,
        "model {} vs stage-weighted {}",
        auc(model),
        auc(stage)
    );
    assert!(auc(model) > auc(logistic) - 0.02);
    assert!(
        auc(oracle) > auc(model),
        "the oracle knows more than the CRM"
    );
    // What the records can tell at best: the oracle that infers the deal's own
    // strength draw from its history (measured 0.843 against 0.878 for the
    // oracle and 0.835 without the draw). The model stays below it.
    let inferred = result(win, "oracle inferring");
    let without = result(win, "oracle without");
    assert!(auc(without) < auc(inferred) && auc(inferred) < auc(oracle) - 0.02);
    assert!(auc(model) < auc(inferred));
    // Measured 0.028 (target 0.03); the oracle's own is 0.013.
    assert!(ece(model) < 0.04, "ECE {}", ece(model));
    assert!(win["oracle_coverage"].as_f64().unwrap() > 0.99);
    let slip = &v["models"][1]["report"];
    assert_eq!(slip["kind"], "slip");
    assert!(auc(result(slip, "pipewise")) > auc(result(slip, "historical rate per stage")) + 0.05);
    // Every open deal is scored, with factors in words.
    let scores = v["scores"].as_array().unwrap();
    assert!(scores.len() > 100);
    let first = &scores[0];
    let p = first["win_probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert!(!first["factors"][0]["text"].as_str().unwrap().is_empty());

    // Entered stage vs evidence, against the simulator's truth.
    let st = &v["stage"];
    let val = &st["validation"];
    let acc = |name: &str| {
        val["stage_accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {val}"))["accuracy"]
            .as_f64()
            .unwrap()
    };
    assert!(val["test_snapshots"].as_u64().unwrap() > 2000);
    assert!(
        acc("evidence stage") > acc("most common stage for the deal's age") + 0.2,
        "{val}"
    );
    for r in val["reps"].as_array().unwrap() {
        assert!(r["true_reps"].as_u64().unwrap() >= 5, "{r}");
        let p = r["precision_at_k"].as_f64().unwrap();
        assert!(p >= 0.8, "{} reps found with precision@k {p}", r["bias"]);
        assert!(r["flagged_precision"].as_f64().unwrap() >= 0.8, "{r}");
        assert!(r["flagged_recall"].as_f64().unwrap() >= 0.8, "{r}");
    }
    assert!(val["ahead"]["precision"].as_f64().unwrap() > 0.6, "{val}");
    let deals = st["deals"].as_array().unwrap();
    assert_eq!(
        deals.len(),
        scores.len(),
        "every open deal has a stage view"
    );
    let ahead: Vec<&serde_json::Value> = deals
        .iter()
        .filter(|d| d["flag"] == "ahead_of_evidence")
        .collect();
    assert!(ahead.len() > 10);
    for d in &ahead {
        let dist: Vec<f64> = d["distribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!((dist.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(!d["reasons"].as_array().unwrap().is_empty(), "{d}");
        assert!(d["reasons"][0]["contribution"].as_f64().unwrap() < 0.0);
    }
    assert_eq!(st["rep_bias"].as_array().unwrap().len(), 40);

    // The forecast of the next quarter, with its range.
    let fc = &v["forecast"]["forecast"];
    assert_eq!(fc["period"]["label"], "2026-Q1");
    let t = &fc["total"];
    let q = |k: &str| t[k].as_f64().unwrap();
    assert!(
        q("p10") > 0.0 && q("p10") < q("p50") && q("p50") < q("p90"),
        "{t}"
    );
    assert!(q("open_expected") > 0.0 && q("new_expected") > 0.0);
    assert_eq!(t["open_deals"].as_u64().unwrap() as usize, scores.len());
    assert!(!v["forecast"]["moved"].as_array().unwrap().is_empty());
    // Each open deal carries the win probability it is scored with (the
    // registered model's), and a win inside the quarter is at most a win.
    assert_eq!(fc["win_model_version"], v["models"][0]["version"]);
    let scored: std::collections::HashMap<&str, f64> = scores
        .iter()
        .map(|s| {
            (
                s["opportunity_id"].as_str().unwrap(),
                s["win_probability"].as_f64().unwrap(),
            )
        })
        .collect();
    let fc_deals = fc["deals"].as_array().unwrap();
    assert_eq!(fc_deals.len(), scores.len());
    for deal in fc_deals {
        let id = deal["opportunity_id"].as_str().unwrap();
        let p = deal["win_probability"].as_f64().unwrap();
        assert!(
            (p - scored[id]).abs() < 1e-9,
            "{id}: forecast {p}, score {}",
            scored[id]
        );
        assert!(deal["in_period_probability"].as_f64().unwrap() <= 1.0 + 1e-9);
    }

    // A past quarter by rep: the reps' parts add up to the company's.
    let f = pipewise(
        d,
        &[
            "--db",
            "pipewise-demo.db",
            "forecast",
            "--period",
            "2025-Q4",
            "--as-of",
            "2025-11-03",
            "--by",
            "rep",
            "--draws",
            "2000",
            "--json",
        ],
    );
    assert!(f.ok, "{}", f.stderr);
    let f: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    let groups = f["forecast"]["groups"].as_array().unwrap();
    assert!(
        groups.len() > 30 && groups.len() <= 40,
        "{} reps",
        groups.len()
    );
    for k in ["won_to_date", "open_expected", "commit"] {
        let sum: f64 = groups.iter().map(|g| g[k].as_f64().unwrap()).sum();
        let total = f["forecast"]["total"][k].as_f64().unwrap();
        assert!(
            (sum - total).abs() < 1e-6 * total.max(1.0),
            "{k}: {sum} vs {total}"
        );
    }
    let bad = pipewise(
        d,
        &[
            "--db",
            "pipewise-demo.db",
            "forecast",
            "--period",
            "2025-Q5",
        ],
    );
    assert!(
        !bad.ok && bad.stderr.contains("expected a quarter such as 2025-Q3"),
        "{}",
        bad.stderr
    );
    // Beyond the close-timing model's horizon: refused, not made up.
    let far = pipewise(
        d,
        &[
            "--db",
            "pipewise-demo.db",
            "forecast",
            "--period",
            "2026-Q3",
        ],
    );
    assert!(
        !far.ok && far.stderr.contains("close-timing model's horizon"),
        "{}",
        far.stderr
    );

    // The weekly backtest: pipewise beats every baseline's WAPE, and its
    // P10-P90 range holds the actual about as often as it should.
    let b = pipewise(
        d,
        &[
            "--db",
            "pipewise-demo.db",
            "backtest",
            "forecast",
            "--draws",
            "1000",
            "--json",
        ],
    );
    assert!(b.ok, "{}", b.stderr);
    let b: serde_json::Value = serde_json::from_str(&b.stdout).unwrap();
    assert!(
        b["periods"].as_array().unwrap().len() >= 4,
        "{}",
        b["periods"]
    );
    assert!(b["points"].as_array().unwrap().len() >= 50);
    let scores_bt = b["scores"].as_array().unwrap();
    let wape = |i: usize| scores_bt[i]["wape"].as_f64().unwrap();
    assert!(
        scores_bt[0]["method"]
            .as_str()
            .unwrap()
            .starts_with("pipewise")
    );
    for i in 1..scores_bt.len() {
        assert!(
            wape(0) < wape(i),
            "pipewise {} vs {}",
            wape(0),
            scores_bt[i]
        );
    }
    let cov = b["coverage_p10_p90"].as_f64().unwrap();
    assert!((0.6..=0.95).contains(&cov), "P10-P90 coverage {cov}");

    // The registry.
    let models = pipewise(d, &["--db", "pipewise-demo.db", "models", "--json"]);
    assert!(models.ok, "{}", models.stderr);
    let m: serde_json::Value = serde_json::from_str(&models.stdout).unwrap();
    let kinds: Vec<&str> = m
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    // The demo also fits the lead conversion model.
    assert_eq!(kinds, ["lead", "slip", "win"]);
    assert!(
        m.as_array().unwrap().iter().all(|x| x["active"] == true),
        "{m}"
    );
    let card = pipewise(d, &["--db", "pipewise-demo.db", "models", "--card", "win"]);
    let mut at = 0;
    for want in [
        "# Model card: win model, version 1",
        // The sections of Mitchell et al. (2019), in order.
        "## Model details",
        "**Purpose.**",
        "## Intended use",
        "## Factors",
        "## Metrics",
        "## Evaluation data",
        "## Training data",
        "## Quantitative analyses",
        "| stage-weighted",
        // Fairness by group, from the held-out scores.
        "**Fairness by group**",
        "*By region*",
        "## Ethical considerations",
        "## Caveats and recommendations",
    ] {
        let found = card.stdout[at..].find(want);
        assert!(
            found.is_some(),
            "{want:?} missing (or out of order) from {}",
            card.stdout
        );
        at += found.unwrap();
    }

    // Explain the riskiest deal.
    let id = first["opportunity_id"].as_str().unwrap();
    let e = pipewise(d, &["--db", "pipewise-demo.db", "explain", id, "--json"]);
    assert!(e.ok, "{}", e.stderr);
    let e: serde_json::Value = serde_json::from_str(&e.stdout).unwrap();
    assert!((e["explanation"]["probability"].as_f64().unwrap() - p).abs() < 1e-9);
    assert_eq!(
        e["explanation"]["features"].as_array().unwrap().len(),
        pipewise_features::OPPORTUNITY_FEATURES.len()
    );
    let text = pipewise(d, &["--db", "pipewise-demo.db", "explain", id]);
    assert!(text.stdout.contains("Pushing it up:") && text.stdout.contains("Pushing it down:"));

    // Score to CSV and database; activating a version that does not exist fails.
    let s = pipewise(
        d,
        &["--db", "pipewise-demo.db", "score", "--out", "scores.csv"],
    );
    assert!(s.ok, "{}", s.stderr);
    let csv = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), scores.len() + 1);
    assert!(csv.starts_with(
        "opportunity_id,name,owner,stage,amount,close_date,win_probability,slip_probability"
    ));
    // Leads: the tabular engine on the database's leads, validated in time order.
    let l = pipewise(d, &["--db", "pipewise-demo.db", "score", "leads", "--json"]);
    assert!(l.ok, "{}", l.stderr);
    let l: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    // Version 2: the demo registered the first.
    assert_eq!(l["model_version"], 2);
    let scored = l["scored"].as_u64().unwrap() as usize;
    assert!(scored > 50, "{scored} open leads");
    let auc = l["report"]["validation"]["metrics"]["roc_auc"]
        .as_f64()
        .unwrap();
    assert!(auc > 0.6, "lead AUC {auc}");
    assert!(
        l["report"]["validation"]["scheme"]
            .as_str()
            .unwrap()
            .starts_with("time-ordered")
    );
    let lead_csv = std::fs::read_to_string(d.join("lead-scores.csv")).unwrap();
    assert_eq!(lead_csv.lines().count(), scored + 1);
    assert!(lead_csv.starts_with("lead_id,source,owner,created_at,probability,top_factors"));
    let card = pipewise(d, &["--db", "pipewise-demo.db", "models", "--card", "lead"]);
    for want in [
        "# Model card: lead conversion model",
        "## Intended use",
        "## Evaluation data",
        "## Ethical considerations",
        "**Fairness by group**",
    ] {
        assert!(card.stdout.contains(want), "{want:?}: {}", card.stdout);
    }

    let act = pipewise(
        d,
        &["--db", "pipewise-demo.db", "models", "--activate", "win:7"],
    );
    assert!(
        !act.ok && act.stderr.contains("no win model version 7"),
        "{}",
        act.stderr
    );

    // Errors: unknown deal, no model yet.
    let e = pipewise(d, &["--db", "pipewise-demo.db", "explain", "nope"]);
    assert!(
        !e.ok && e.stderr.contains("no opportunity with id nope"),
        "{}",
        e.stderr
    );
    let empty = pipewise(d, &["--db", "empty.db", "score"]);
    assert!(
        !empty.ok && empty.stderr.contains("pipewise train"),
        "{}",
        empty.stderr
    );
}
