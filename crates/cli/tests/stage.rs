//! `reps bias` and `pipeline inspect` on a simulated org whose reps all enter
//! the true stage (a sound engine flags almost nobody there), and on one
//! where many reps share a bias.

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

/// An org where many reps share one bias (seed 9406: 17 optimists and 4
/// sandbaggers of 40). A first fit on every rep leans the optimists' way, so
/// truthful reps look like sandbaggers under it; leaving the furthest reps out
/// a round at a time lets the fit lean back. The earlier rule (every rep
/// biased under the first fit out at once, then at most two refits) reached
/// a sandbagging flagged precision of 0.29 here and caught 27% of the deals
/// entered ahead (docs/stage.md has the 20-org figures).
#[test]
fn many_reps_sharing_a_bias_do_not_make_the_truthful_ones_look_biased() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::imported_org(d, "9406", &["--transcript-share", "0"]);
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "reps",
            "bias",
            "--truth",
            "org/ground_truth.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let val = &v["validation"];
    let by_bias = |b: &str| {
        val["reps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["bias"] == b)
            .unwrap_or_else(|| panic!("no {b} in {val}"))
            .clone()
    };
    let (optimists, sandbaggers) = (by_bias("optimistic"), by_bias("sandbagging"));
    assert!(
        optimists["true_reps"].as_u64().unwrap() >= 15,
        "{optimists}"
    );
    for r in [&optimists, &sandbaggers] {
        assert!(r["precision_at_k"].as_f64().unwrap() >= 0.8, "{r}");
        assert!(r["flagged_precision"].as_f64().unwrap() >= 0.8, "{r}");
        assert!(r["flagged_recall"].as_f64().unwrap() >= 0.8, "{r}");
    }
    assert!(val["ahead"]["recall"].as_f64().unwrap() >= 0.6, "{val}");
    // Each fold's fit left out (nearly) every biased rep.
    let excluded = v["excluded_from_evidence_fit"].as_array().unwrap();
    assert!(excluded.iter().all(|f| f.as_array().unwrap().len() >= 15));
}
