//! Live message tests (`pipewise messages status|choose`) on simulated orgs
//! whose inbound sequence tests three variants per emailed step, against
//! the simulator's hidden truth; and on an export whose replies carry no
//! sense and whose sends carry no selection probability.

mod common;

use common::pipewise;
use serde_json::Value;

fn ok(d: &std::path::Path, args: &[&str]) -> String {
    let (ok, o, err) = pipewise(d, args);
    assert!(ok, "{args:?}: {err}");
    o
}

fn org(d: &std::path::Path, seed: &str, reps: &str, months: &str) -> Value {
    ok(
        d,
        &[
            "simulate",
            "--seed",
            seed,
            "--reps",
            reps,
            "--months",
            months,
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
            "--out",
            seed,
        ],
    );
    ok(d, &["--db", &format!("{seed}.db"), "import", "dir", seed]);
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join(seed).join("ground_truth.json")).unwrap(),
    )
    .unwrap();
    truth["message_tests"].clone()
}

#[test]
fn status_finds_the_truly_best_variants_and_the_logs_value_any_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut declared, mut right, mut compared, mut outside) = (0, 0, 0, 0);
    let (mut led, mut led_right, mut unlikely) = (0, 0, 0);
    for (seed, reps, months) in [
        ("7101", "40", "24"),
        ("7102", "40", "18"),
        ("7103", "40", "12"),
    ] {
        let truth = org(d, seed, reps, months);
        let db = format!("{seed}.db");
        let r: Value =
            serde_json::from_str(&ok(d, &["--db", &db, "messages", "status", "--json"])).unwrap();
        let tests = r["tests"].as_array().unwrap();
        let truths = truth.as_array().unwrap();
        assert!(!tests.is_empty(), "{seed}: no tests");
        for t in truths.iter().filter(|t| t["sends"].as_u64().unwrap() >= 30) {
            let name = format!("seq-inbound:{}", t["sequence_step"]);
            let live = tests
                .iter()
                .find(|x| x["test"] == name.as_str())
                .unwrap_or_else(|| panic!("{seed}: {name} missing"));
            // Every send is read, and every send carries its probability.
            assert_eq!(live["sends"], t["sends"], "{seed} {name}");
            assert_eq!(live["logged_sends"], t["sends"], "{seed} {name}");
            assert_eq!(live["meetings_from"], "recorded");
            let shares: f64 = live["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["next_share"].as_f64().unwrap())
                .sum();
            assert!((shares - 1.0).abs() < 1e-9, "{name}: next shares {shares}");
            // The truly best variant is never ruled out on a test of
            // some size (the misses are near-ties).
            if t["sends"].as_u64().unwrap() >= 1000 {
                let best = live["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["template_id"] == t["best"])
                    .unwrap();
                led += 1;
                led_right += usize::from(live["leader"] == t["best"]);
                let pb = best["prob_best"].as_f64().unwrap();
                assert!(
                    pb >= 0.005,
                    "{seed} {name}: the truly best variant has P(best) {pb}"
                );
                unlikely += usize::from(pb < 0.05);
            }
            if let Some(w) = live["winner"].as_str() {
                declared += 1;
                right += usize::from(w == t["best"].as_str().unwrap());
                // A 95% bar can crown a near-tie: never a clearly worse one.
                let value = |id: &str| {
                    t["variants"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|v| v["template_id"] == id)
                        .unwrap()["value_per_send"]
                        .as_f64()
                        .unwrap()
                };
                assert!(
                    value(w) >= 0.85 * value(t["best"].as_str().unwrap()),
                    "{seed} {name}: declared {w}, worth {} against the best's {}",
                    value(w),
                    value(t["best"].as_str().unwrap())
                );
                assert!(live["verdict"].as_str().unwrap().contains("wins"));
            }
            // Off-policy values of "always X" against the truth of X on the
            // same leads, in standard errors.
            for v in t["variants"].as_array().unwrap() {
                let id = v["template_id"].as_str().unwrap();
                let e = live["evaluation"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["policy"] == format!("always {id}").as_str())
                    .unwrap();
                if e["enough_data"] == false {
                    assert!(e["events"].as_u64().unwrap() < 10);
                    continue;
                }
                let z = (e["doubly_robust"].as_f64().unwrap()
                    - v["value_per_send"].as_f64().unwrap())
                    / e["doubly_robust_se"].as_f64().unwrap().max(1e-9);
                compared += 1;
                outside += usize::from(z.abs() > 2.58);
            }
        }
    }
    assert!(
        declared >= 1 && right * 2 >= declared,
        "{right} of {declared} declared winners are the truly best"
    );
    assert!(led >= 5, "{led} tests of 1,000 sends or more");
    assert!(
        unlikely <= 1,
        "the truly best variant had P(best) under 5% in {unlikely} of {led} tests"
    );
    // Near-ties make the leader a coin toss on some tests; say how often.
    eprintln!("the truly best leads in {led_right} of {led} tests of 1,000 sends or more");

    // Each variant's counts are the export's own: sends and outcomes per
    // template, read straight from the file.
    let mut want: std::collections::HashMap<String, [u64; 4]> = Default::default();
    let mut acts = csv::Reader::from_path(d.join("7101/activities.csv")).unwrap();
    let h = acts.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (t_col, o_col) = (col("template_id"), col("outcome"));
    for r in acts.records() {
        let r = r.unwrap();
        if r[t_col].is_empty() {
            continue;
        }
        let e = want.entry(r[t_col].to_string()).or_default();
        e[0] += 1;
        match &r[o_col] {
            "meeting_booked" => e[1] += 1,
            "replied_positive" => e[2] += 1,
            "replied_negative" | "unsubscribed" => e[3] += 1,
            _ => {}
        }
    }
    let r: Value =
        serde_json::from_str(&ok(d, &["--db", "7101.db", "messages", "status", "--json"])).unwrap();
    let mut seen = 0;
    for t in r["tests"].as_array().unwrap() {
        for v in t["variants"].as_array().unwrap() {
            let w = want[v["template_id"].as_str().unwrap()];
            let got = [
                v["sends"].as_u64().unwrap(),
                v["meetings"].as_u64().unwrap(),
                v["positive_replies"].as_u64().unwrap(),
                v["negative_replies"].as_u64().unwrap(),
            ];
            assert_eq!(got, w, "{}", v["template_id"]);
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        want.len(),
        "every template of the export is in a test"
    );
    assert!(compared >= 12, "{compared}");
    assert!(
        outside * 20 <= compared,
        "{outside} of {compared} policy values off the truth by more than 2.58 standard errors"
    );

    // Choosing: a test with a winner sends it; one without draws from
    // probabilities that sum to 1 and keep every variant above the floor.
    for t in r["tests"].as_array().unwrap() {
        let name = t["test"].as_str().unwrap();
        let c: Value = serde_json::from_str(&ok(
            d,
            &[
                "--db", "7101.db", "messages", "choose", "--test", name, "--sends", "40", "--seed",
                "3", "--json",
            ],
        ))
        .unwrap();
        let choices = c["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 40);
        let policy = c["policy"].as_array().unwrap();
        let total: f64 = policy
            .iter()
            .map(|p| p["selection_probability"].as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
        for ch in choices {
            let p = policy
                .iter()
                .find(|p| p["template_id"] == ch["template_id"])
                .unwrap();
            assert_eq!(p["selection_probability"], ch["selection_probability"]);
        }
        match t["winner"].as_str() {
            Some(w) => {
                assert!(choices.iter().all(|ch| ch["template_id"] == w
                    && ch["selection_probability"].as_f64() == Some(1.0)))
            }
            None => assert!(
                policy
                    .iter()
                    .all(|p| p["selection_probability"].as_f64().unwrap() >= 0.0099)
            ),
        }
    }
    let (good, o, err) = pipewise(
        d,
        &[
            "--db", "7101.db", "messages", "choose", "--test", "nope:1", "--json",
        ],
    );
    assert!(!good);
    let e: Value = serde_json::from_str(&o).unwrap_or_else(|_| panic!("{o} {err}"));
    let msg = e["error"].as_str().unwrap_or_default().to_string() + &e.to_string();
    assert!(
        msg.contains("seq-inbound:1") || msg.contains("seq-inbound:2"),
        "{msg}"
    );
}

#[test]
fn raw_replies_count_as_none_and_meetings_are_inferred_without_logged_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    org(d, "7104", "6", "6");
    // Two leads of the org, a promo sequence of two variants.
    let mut leads = csv::Reader::from_path(d.join("7104/leads.csv")).unwrap();
    let ids: Vec<(String, String)> = leads
        .records()
        .take(6)
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[9].to_string())
        })
        .collect();
    let mut csv = String::from(
        "id,type,direction,occurred_at,outcome,sequence_id,sequence_step,template_id,user_id,lead_id\n",
    );
    for (i, (lead, rep)) in ids.iter().enumerate() {
        let (template, outcome) = match i {
            0 => ("promo-a", "replied"),
            1 => ("promo-a", "replied_negative"),
            2 => ("promo-a", "sent"),
            3 => ("promo-b", "replied"),
            4 => ("promo-b", "replied-positive"),
            _ => ("promo-b", "opened"),
        };
        csv += &format!(
            "p{i},email,outbound,2030-01-0{}T10:00:00Z,{outcome},promo,1,{template},{rep},{lead}\n",
            i + 1
        );
    }
    // A meeting with the sixth lead five days after its send; one with the
    // third lead twenty days after (too late to count).
    csv += &format!(
        "m1,meeting,outbound,2030-01-11T10:00:00Z,held,,,,{},{}\n",
        ids[5].1, ids[5].0
    );
    csv += &format!(
        "m2,meeting,outbound,2030-01-23T10:00:00Z,held,,,,{},{}\n",
        ids[2].1, ids[2].0
    );
    std::fs::write(d.join("promo.csv"), csv).unwrap();
    ok(
        d,
        &[
            "--db",
            "7104.db",
            "import",
            "csv",
            "--entity",
            "activity",
            "promo.csv",
        ],
    );
    let status = |extra: &[&str]| -> Value {
        let mut a = vec![
            "--db", "7104.db", "messages", "status", "--test", "promo:1", "--json",
        ];
        a.extend(extra);
        let r: Value = serde_json::from_str(&ok(d, &a)).unwrap();
        assert_eq!(r["tests"].as_array().unwrap().len(), 1);
        r["tests"][0].clone()
    };
    let t = status(&[]);
    assert_eq!(t["sends"], 6);
    assert_eq!(t["unclassified_replies"], 2);
    assert_eq!(t["meetings_from"], "inferred");
    assert_eq!(t["logged_sends"], 0);
    assert!(t["evaluation"].as_array().unwrap().is_empty());
    let notes = t["notes"].to_string();
    assert!(notes.contains("selection probability"), "{notes}");
    assert!(notes.contains("replied"), "{notes}");
    let v = |t: &Value, id: &str| -> Value {
        t["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["template_id"] == id)
            .unwrap()
            .clone()
    };
    let (a, b) = (v(&t, "promo-a"), v(&t, "promo-b"));
    assert_eq!(a["negative_replies"], 1);
    assert_eq!(a["positive_replies"], 0);
    assert_eq!(
        a["meetings"], 0,
        "a meeting 20 days on is not booked by the send"
    );
    assert_eq!(b["positive_replies"], 1);
    assert_eq!(b["meetings"], 1);
    assert_eq!(b["unclassified_replies"], 1);
    // Read as positive, the raw replies count.
    let t = status(&["--replies", "positive"]);
    assert_eq!(v(&t, "promo-a")["positive_replies"], 1);
    assert_eq!(v(&t, "promo-b")["positive_replies"], 2);
    assert_eq!(v(&t, "promo-a")["unclassified_replies"], 1);
    // A selection probability outside (0, 1] is refused at import, by line
    // and column, and nothing is stored.
    std::fs::write(
        d.join("bad.csv"),
        format!(
            "id,type,direction,occurred_at,outcome,sequence_id,sequence_step,template_id,user_id,lead_id,selection_probability\nq1,email,outbound,2030-02-01T10:00:00Z,sent,promo,1,promo-a,{},{},1.5\n",
            ids[0].1, ids[0].0
        ),
    )
    .unwrap();
    let (good, _, err) = pipewise(
        d,
        &[
            "--db", "7104.db", "import", "csv", "--entity", "activity", "bad.csv",
        ],
    );
    assert!(!good);
    let (_, out, _) = pipewise(
        d,
        &[
            "--db", "7104.db", "import", "csv", "--entity", "activity", "bad.csv", "--json",
        ],
    );
    assert!(
        out.contains("selection_probability") && out.contains("probability greater than 0"),
        "{out} {err}"
    );
    assert_eq!(
        status(&[])["sends"],
        6,
        "nothing of the bad file was stored"
    );
    // Bad flags say what was expected.
    let (good, _, err) = pipewise(
        d,
        &[
            "--db",
            "7104.db",
            "messages",
            "status",
            "--replies",
            "maybe",
        ],
    );
    assert!(!good && err.contains("none or positive"), "{err}");
}

/// The simulator's sending system running pipewise's bandit
/// (`simulate --messages bandit`): every send logged with the probability
/// it was drawn with, the large tests' sends moved towards their better
/// variants, and the regret against always sending the truly best variant
/// below an even split's on the same sends; the logs import and value
/// policies as any sending system's do.
#[test]
fn the_bandit_as_the_sending_system_logs_its_probabilities_and_loses_less_than_an_even_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "simulate",
            "--seed",
            "7411",
            "--messages",
            "bandit",
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
            "--out",
            "b",
        ],
    );
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b/ground_truth.json")).unwrap())
            .unwrap();
    let tests = truth["message_tests"].as_array().unwrap();
    assert!(!tests.is_empty());
    let (mut regret, mut even) = (0.0, 0.0);
    for t in tests {
        assert_eq!(t["sending"], "Thompson sampling");
        let by: Vec<u64> = t["sends_by_variant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(by.iter().sum::<u64>(), t["sends"].as_u64().unwrap(), "{t}");
        regret += t["regret"].as_f64().unwrap();
        even += t["regret_even_split"].as_f64().unwrap();
    }
    // The largest test: its sends far from even, its regret below the
    // even split's (over all tests too).
    let big = tests
        .iter()
        .max_by_key(|t| t["sends"].as_u64().unwrap())
        .unwrap();
    let by: Vec<f64> = big["sends_by_variant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let n: f64 = by.iter().sum();
    assert!(
        by.iter().cloned().fold(0.0, f64::max) > 0.5 * n,
        "the bandit never left the even split: {big}"
    );
    assert!(
        big["regret"].as_f64().unwrap() < big["regret_even_split"].as_f64().unwrap(),
        "{big}"
    );
    assert!(
        regret < even,
        "regret {regret} against {even} for an even split"
    );

    // The logged probabilities: in (0, 1], not all a third, and those of
    // one test's sends in one week the same for the variant sent.
    let mut rd = csv::Reader::from_path(d.join("b/activities.csv")).unwrap();
    let header = rd.headers().unwrap().clone();
    let p_col = header
        .iter()
        .position(|c| c == "selection_probability")
        .unwrap();
    let t_col = header.iter().position(|c| c == "template_id").unwrap();
    let mut probs = Vec::new();
    for row in rd.records() {
        let row = row.unwrap();
        if !row[t_col].is_empty() {
            let p: f64 = row[p_col].parse().unwrap();
            assert!(p > 0.0 && p <= 1.0, "{row:?}");
            probs.push(p);
        }
    }
    assert!(
        probs.len() as u64
            >= tests
                .iter()
                .map(|t| t["sends"].as_u64().unwrap())
                .sum::<u64>()
    );
    assert!(probs.iter().any(|p| (p - 1.0 / 3.0).abs() > 0.05));

    ok(d, &["--db", "b.db", "import", "dir", "b"]);
    let r: Value =
        serde_json::from_str(&ok(d, &["--db", "b.db", "messages", "status", "--json"])).unwrap();
    assert_eq!(r["tests"].as_array().unwrap().len(), tests.len());
}
