//! `reps bias` and `pipeline inspect` on a simulated org whose reps all enter
//! the true stage: a sound engine flags (almost) nobody there.

mod common;
use common::pipewise;

#[test]
fn an_unbiased_org_has_almost_no_biased_reps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = [
        "simulate",
        "--seed",
        "11",
        "--reps",
        "24",
        "--months",
        "15",
        "--no-bias",
        "--out",
        "sim",
        "--json",
    ];
    let (ok, _, err) = pipewise(d, &sim);
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "nb.db", "import", "dir", "sim", "--json"]);
    assert!(ok, "{err}");
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "nb.db",
            "reps",
            "bias",
            "--truth",
            "sim/ground_truth.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reps = v["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 24);
    let flagged = reps
        .iter()
        .filter(|r| r["verdict"] == "optimistic" || r["verdict"] == "sandbagging")
        .count();
    assert!(flagged <= 2, "{flagged} of 24 unbiased reps flagged");
    // Reps are ranked by their gap, most optimistic first, with intervals.
    let gaps: Vec<f64> = reps
        .iter()
        .map(|r| r["mean_gap"].as_f64().unwrap())
        .collect();
    assert!(gaps.windows(2).all(|w| w[0] >= w[1]));
    for r in reps {
        assert!(r["ci_low"].as_f64().unwrap() <= r["mean_gap"].as_f64().unwrap());
        assert!(!r["by_quarter"].as_array().unwrap().is_empty());
    }
    // No biased rep in the truth: nothing to rank them by.
    for r in v["validation"]["reps"].as_array().unwrap() {
        assert_eq!(r["true_reps"], 0);
        assert!(r["precision_at_k"].is_null());
    }

    // Pipeline inspection: one rep's deals, and a clear error for an unknown rep.
    let name = reps[0]["rep"].as_str().unwrap();
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db", "nb.db", "pipeline", "inspect", "--rep", name, "--json",
        ],
    );
    assert!(ok, "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    let deals = p["deals"].as_array().unwrap();
    assert!(!deals.is_empty());
    assert!(deals.iter().all(|x| x["rep"] == name));
    assert!(
        p["models"]["win"].is_null(),
        "no model trained in this database"
    );
    let (ok, _, err) = pipewise(
        d,
        &["--db", "nb.db", "pipeline", "inspect", "--rep", "Nobody"],
    );
    assert!(!ok);
    assert!(err.contains("\"Nobody\""), "{err}");
    let (ok, out, _) = pipewise(d, &["--db", "nb.db", "pipeline", "inspect"]);
    assert!(ok);
    assert!(out.contains("No slip model registered"), "{out}");
}
