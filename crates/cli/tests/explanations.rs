//! Explanations a manager believes, on simulated orgs no one tuned on: no
//! factor whose value reads as a bad sign (by the feature registry's known
//! direction, against the typical deal the explanation states) is said to
//! raise a deal's win chance, nor a good sign to lower it; the same for the
//! slip risk. And the model card's faithfulness check holds: removing a
//! deal's strongest factors moves its score the way the factors say.

mod common;

use pipewise_features::registry;
use serde_json::Value;

/// The largest contribution (log-odds) a factor may have against its
/// reading before a manager would see it listed on the wrong side.
const TOLERANCE: f64 = 0.05;

/// (factors checked, factors pushing against their reading) of one list.
fn judge(
    factors: &[Value],
    direction: fn(&registry::FeatureDef) -> i8,
    bad: &mut Vec<String>,
) -> usize {
    let mut checked = 0;
    for f in factors {
        let Some(def) = registry::def(f["feature"].as_str().unwrap()) else {
            continue;
        };
        let (Some(v), Some(t)) = (f["value"].as_f64(), f["typical"].as_f64()) else {
            continue;
        };
        let d = direction(def);
        if d == 0 || v == t {
            continue;
        }
        checked += 1;
        // +1: the value is on the side that should raise the probability.
        let reads = f64::from(d) * (v - t).signum();
        let c = f["contribution"].as_f64().unwrap();
        if reads * c < -TOLERANCE {
            bad.push(format!("{} {c:+.3}", f["text"]));
        }
    }
    checked
}

#[test]
fn no_factor_that_reads_as_a_bad_sign_pushes_a_score_up() {
    for seed in ["7301", "7302"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ok, _, err) = common::pipewise(
            d,
            &[
                "simulate",
                "--seed",
                seed,
                "--reps",
                "16",
                "--months",
                "24",
                "--out",
                "org",
                "--transcript-share",
                "0.2",
                "--vtt-sample",
                "0",
            ],
        );
        assert!(ok, "{err}");
        let (ok, _, err) = common::pipewise(d, &["--db", "o.db", "import", "dir", "org"]);
        assert!(ok, "{err}");
        let (ok, out, err) = common::pipewise(d, &["--db", "o.db", "train", "--json"]);
        assert!(ok, "{err}");
        let trained: Value = serde_json::from_str(&out).unwrap();
        for m in trained.as_array().unwrap() {
            let r = &m["report"];
            assert!(
                !r["monotone"]["raises"].as_array().unwrap().is_empty()
                    && !r["monotone"]["lowers"].as_array().unwrap().is_empty(),
                "seed {seed}: {} model fitted without constraints: {}",
                r["kind"],
                r["monotone"]
            );
            // Removing the three strongest factors moves the score their way.
            let f = &r["faithfulness"];
            let same = f["same_direction"].as_f64().unwrap();
            assert!(same > 0.9, "seed {seed}: {} model: {f}", r["kind"]);
        }
        let (ok, out, err) = common::pipewise(
            d,
            &[
                "--db", "o.db", "score", "--top", "100", "--out", "s.csv", "--json",
            ],
        );
        assert!(ok, "{err}");
        let scored: Value = serde_json::from_str(&out).unwrap();
        let deals = scored["deals"].as_array().unwrap();
        assert!(deals.len() > 50, "seed {seed}: {} open deals", deals.len());
        let (mut bad, mut checked) = (Vec::new(), 0);
        // A deal's amount is explained with the size of the account buying it.
        let together = deals
            .iter()
            .flat_map(|d| d["factors"].as_array().unwrap())
            .filter(|f| {
                f["feature"]
                    .as_str()
                    .unwrap()
                    .starts_with("amount+employees")
            })
            .count();
        assert!(
            together > deals.len() / 2,
            "seed {seed}: {together} amount-and-size factors"
        );
        for deal in deals {
            let alone: Vec<&str> = deal["factors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["feature"].as_str().unwrap())
                .filter(|f| registry::TOGETHER[0].contains(f))
                .collect();
            assert!(alone.len() <= 1, "seed {seed}: {alone:?} explained apart");
            checked += judge(deal["factors"].as_array().unwrap(), |d| d.win, &mut bad);
            checked += judge(
                deal["slip_factors"].as_array().unwrap(),
                |d| d.slip,
                &mut bad,
            );
        }
        assert!(
            checked > 20 * deals.len(),
            "seed {seed}: only {checked} factors had a direction"
        );
        assert!(
            bad.is_empty(),
            "seed {seed}: {} of {checked} against their reading: {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        );
    }
}
