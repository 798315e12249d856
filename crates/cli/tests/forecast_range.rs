//! The forecast's range on simulated orgs the project was not tuned on:
//! the backtest's P10-P90 holds the actual about as often as an 80% range
//! should, and P50 beats every baseline. Orgs of the default size (40 reps,
//! 24 months): on smaller ones (24 reps, 21 months) P50 can lose to the
//! stage-weighted pipeline (docs/forecast.md).

mod common;

/// Simulates an org of `reps` reps over 24 months in `d` and imports it
/// into `d/o.db`.
fn simulated_org(d: &std::path::Path, seed: &str, reps: &str) {
    let (ok, _, err) = common::pipewise(
        d,
        &[
            "simulate",
            "--seed",
            seed,
            "--reps",
            reps,
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
}

/// The win model's ECE on the org's test window (`train --json`).
fn win_ece(d: &std::path::Path) -> f64 {
    let (ok, out, err) = common::pipewise(d, &["--db", "o.db", "train", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let win = &v[0]["report"];
    assert_eq!(win["kind"], "win");
    let model = &win["results"][0];
    assert!(model["name"].as_str().unwrap().starts_with("pipewise"));
    model["metrics"]["ece"].as_f64().unwrap()
}

/// (coverage, pipewise WAPE, best baseline WAPE, win ECE) of one org's
/// backtest and trained win model.
fn backtest(seed: u64) -> (f64, f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = seed.to_string();
    simulated_org(d, &seed, "40");
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
    (
        b["coverage_p10_p90"].as_f64().unwrap(),
        wape(0),
        best,
        win_ece(d),
    )
}

/// Also the win model's calibration on the same orgs: ECE at most 0.04 on
/// each and 0.03 on average (measured 0.016-0.018 here; 0.015-0.032 on ten
/// fresh default-size orgs, docs/models.md).
#[test]
fn ranges_cover_and_p50_beats_the_baselines_on_unseen_orgs() {
    let runs: Vec<(u64, (f64, f64, f64, f64))> =
        [3001, 3002, 3003].map(|seed| (seed, backtest(seed))).into();
    let n = runs.len() as f64;
    let mean = |f: fn(&(f64, f64, f64, f64)) -> f64| runs.iter().map(|r| f(&r.1)).sum::<f64>() / n;
    let coverage = mean(|r| r.0);
    // Over the orgs, P50 beats the best baseline of each; on each org it is
    // never far behind (seed 3003: 12.2% against 11.9%, docs/forecast.md).
    assert!(mean(|r| r.1) < mean(|r| r.2), "{runs:?}");
    for (seed, (cov, wape, best, ece)) in &runs {
        assert!(*ece <= 0.04, "seed {seed}: win ECE {ece}");
        assert!(
            *wape < 1.1 * best,
            "seed {seed}: P50 WAPE {wape} vs best baseline {best}"
        );
        assert!(*cov >= 0.5, "seed {seed}: P10-P90 coverage {cov}");
    }
    assert!(mean(|r| r.3) <= 0.03, "mean win ECE ({runs:?})");
    assert!(
        (0.65..=0.95).contains(&coverage),
        "mean P10-P90 coverage {coverage} ({runs:?})"
    );
}

/// The three months of a quarter, forecast on the same day, add up to about
/// what the quarter's own forecast says: quarter-end months book more (deals
/// pushed to close by the quarter's end), and a month's not-yet-created part
/// is the quarter's times the month's share of it in the quarters before.
/// Before, the months' means summed to 81% of the quarter's on the demo org
/// (their new parts to 63%, and to 147% on this org with separately smoothed
/// months).
/// A smaller org (24 reps) keeps the four forecasts' model fits short.
#[test]
fn the_months_of_a_quarter_add_up_to_the_quarter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    simulated_org(d, "3005", "24");
    // (mean, open expected, new expected) of the whole org, and each team's
    // new expected by name.
    type Parts = ((f64, f64, f64), std::collections::BTreeMap<String, f64>);
    let forecast = |period: &str| -> Parts {
        let (ok, out, err) = common::pipewise(
            d,
            &[
                "--db", "o.db", "forecast", "--period", period, "--by", "team", "--draws", "2000",
                "--json",
            ],
        );
        assert!(ok, "{period}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let t = &v["forecast"]["total"];
        let q = |k: &str| t[k].as_f64().unwrap();
        let teams = v["forecast"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["group"].as_str().unwrap().to_string(),
                    g["new_expected"].as_f64().unwrap(),
                )
            })
            .collect();
        ((q("mean"), q("open_expected"), q("new_expected")), teams)
    };
    // The simulated window ends 2025-12-31: the next quarter and its months.
    let (quarter, quarter_teams) = forecast("2026-Q1");
    let (months, month_teams): (Vec<(f64, f64, f64)>, Vec<_>) = ["2026-01", "2026-02", "2026-03"]
        .iter()
        .map(|m| forecast(m))
        .unzip();
    let sum = |f: fn(&(f64, f64, f64)) -> f64| months.iter().map(f).sum::<f64>();
    // Each team's months book the same share of their not-yet-created part
    // as the team does of the quarter's: a team's months add up to its
    // quarter as the org's do.
    let org_ratio = months.iter().map(|m| m.2).sum::<f64>() / quarter.2;
    assert!(quarter_teams.len() > 1, "{quarter_teams:?}");
    for (team, q) in quarter_teams.iter().filter(|t| *t.1 > 0.0) {
        let m: f64 = month_teams
            .iter()
            .map(|t| t.get(team).copied().unwrap_or(0.0))
            .sum();
        assert!(
            (m / q - org_ratio).abs() < 1e-6,
            "{team}: months / quarter = {} against {org_ratio} for the org",
            m / q
        );
    }
    // The open pipeline's part is one close-timing model: it adds up exactly.
    assert!(
        (sum(|m| m.1) - quarter.1).abs() < 0.01 * quarter.1,
        "open: months {} vs quarter {}",
        sum(|m| m.1),
        quarter.1
    );
    // The not-yet-created part and the whole are separate series smoothed
    // separately, with ranges learnt from their own earlier periods: close,
    // not equal (0.83-0.98 on seeds 3004-3006).
    let ratio = sum(|m| m.0) / quarter.0;
    assert!(
        (0.85..=1.15).contains(&ratio),
        "means: months / quarter = {ratio}"
    );
    let ratio = sum(|m| m.2) / quarter.2;
    assert!(
        (ratio - 1.0).abs() < 1e-6,
        "new: months / quarter = {ratio}"
    );
    // March, the quarter-end month, books the most of the three.
    assert!(
        months[2].2 > months[0].2 && months[2].2 > months[1].2,
        "{months:?}"
    );
}
