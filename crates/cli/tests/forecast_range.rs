//! The forecast's range on simulated orgs the project was not tuned on:
//! the backtest's P10-P90 holds the actual about as often as an 80% range
//! should, and P50 beats every baseline. Orgs of the default size (40 reps,
//! 24 months): on smaller ones (24 reps, 21 months) P50 can lose to the
//! stage-weighted pipeline (docs/forecast.md).

mod common;

/// (coverage, pipewise WAPE, best baseline WAPE) of one org's backtest.
fn backtest(seed: u64) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = seed.to_string();
    let (ok, _, err) = common::pipewise(
        d,
        &[
            "simulate",
            "--seed",
            &seed,
            "--reps",
            "40",
            "--months",
            "24",
            "--out",
            "org",
            "--transcript-share",
            "0.05",
            "--vtt-sample",
            "0",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = common::pipewise(d, &["--db", "o.db", "import", "dir", "org"]);
    assert!(ok, "{err}");
    let (ok, out, err) = common::pipewise(
        d,
        &[
            "--db", "o.db", "backtest", "forecast", "--draws", "2000", "--json",
        ],
    );
    assert!(ok, "{err}");
    let b: serde_json::Value = serde_json::from_str(&out).unwrap();
    let scores = b["scores"].as_array().unwrap();
    assert!(
        scores[0]["method"]
            .as_str()
            .unwrap()
            .starts_with("pipewise")
    );
    let wape = |i: usize| scores[i]["wape"].as_f64().unwrap();
    let best = (1..scores.len()).map(wape).fold(f64::INFINITY, f64::min);
    // The first period's range is the prior; later ones learnt from earlier
    // periods.
    let ranges = b["ranges"].as_array().unwrap();
    assert!(ranges.len() >= 3, "{}", b["periods"]);
    assert!(ranges[0]["learnt_from"].as_array().unwrap().is_empty());
    assert!(!ranges[2]["learnt_from"].as_array().unwrap().is_empty());
    for p in b["points"].as_array().unwrap() {
        let q = |k: &str| p[k].as_f64().unwrap();
        assert!(q("p10") <= q("p50") && q("p50") <= q("p90"), "{p}");
    }
    (b["coverage_p10_p90"].as_f64().unwrap(), wape(0), best)
}

#[test]
fn ranges_cover_and_p50_beats_the_baselines_on_unseen_orgs() {
    let runs: Vec<(u64, (f64, f64, f64))> =
        [3001, 3002, 3003].map(|seed| (seed, backtest(seed))).into();
    let n = runs.len() as f64;
    let mean = |f: fn(&(f64, f64, f64)) -> f64| runs.iter().map(|r| f(&r.1)).sum::<f64>() / n;
    let coverage = mean(|r| r.0);
    // Over the orgs, P50 beats the best baseline of each; on each org it is
    // never far behind (seed 3003: 12.2% against 11.9%, docs/forecast.md).
    assert!(mean(|r| r.1) < mean(|r| r.2), "{runs:?}");
    for (seed, (cov, wape, best)) in &runs {
        assert!(
            *wape < 1.1 * best,
            "seed {seed}: P50 WAPE {wape} vs best baseline {best}"
        );
        assert!(*cov >= 0.5, "seed {seed}: P10-P90 coverage {cov}");
    }
    assert!(
        (0.65..=0.95).contains(&coverage),
        "mean P10-P90 coverage {coverage} ({runs:?})"
    );
}
