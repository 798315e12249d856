//! Conversation analytics and coaching on the simulator's default org, checked
//! against the latent skills the simulator drew for every rep.

use std::path::Path;

mod common;
use common::pipewise;

fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = pipewise(dir, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn coaching_recovers_latent_skills_and_builds_plans() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The default org (seed 42, 40 reps, 24 months).
    let (ok, _, err) = pipewise(d, &["simulate", "--out", "sim", "--json"]);
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "c.db", "import", "dir", "sim", "--json"]);
    assert!(ok, "{err}");

    let v = json(
        d,
        &[
            "--db",
            "c.db",
            "coach",
            "--truth",
            "sim/ground_truth.json",
            "--json",
        ],
    );
    let val = &v["validation"];
    eprintln!("coaching validation on the default org: {val}");
    assert_eq!(val["reps"], 40);
    for pair in val["spearman"].as_array().unwrap() {
        let (skill, rho) = (pair[0].as_str().unwrap(), pair[1].as_f64().unwrap());
        // Issue target: >= 0.7 for every communication skill; measured 0.91-1.00.
        assert!(rho >= 0.8, "{skill}: Spearman {rho}");
    }
    assert_eq!(val["spearman"].as_array().unwrap().len(), 7);
    // The targets: 70% and 90%; measured 75% and 92.5% (a random
    // ranking of 7 skills: 14% and 29%).
    let top1 = val["top1_by_gap"].as_f64().unwrap();
    let top2 = val["top2_by_gap"].as_f64().unwrap();
    assert!(
        top1 >= 0.7,
        "top-ranked gap is the weakest skill for {top1}"
    );
    assert!(top2 >= 0.9, "weakest skill among the top two for {top2}");
    assert!(val["weakest_match"].as_f64().unwrap() >= 0.7);

    // Profiles: every metric has a definition, percentiles are 0-100, and the
    // top performers are a quarter of the reps.
    let profiles = v["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 40);
    let metrics = v["metrics"].as_array().unwrap();
    let tops = profiles
        .iter()
        .filter(|p| p["top_performer"] == true)
        .count();
    assert_eq!(tops, 10);
    for p in profiles {
        assert_eq!(p["values"].as_array().unwrap().len(), metrics.len());
        for pc in p["percentiles"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_f64())
        {
            assert!((0.0..=100.0).contains(&pc));
        }
    }
    let talk = metrics
        .iter()
        .position(|m| m["key"] == "talk_ratio")
        .unwrap();
    let win = metrics.iter().position(|m| m["key"] == "win_rate").unwrap();
    let mean = |top: bool, j: usize| {
        let v: Vec<f64> = profiles
            .iter()
            .filter(|p| p["top_performer"] == top)
            .filter_map(|p| p["values"][j].as_f64())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean(true, win) > mean(false, win));
    assert!(
        mean(true, talk) < mean(false, talk),
        "top performers talk less"
    );

    // Plans: at most three priorities, modules of the priority's skill, a peer
    // coach who is a top performer and not the rep, quotes from the rep's calls.
    let plans = v["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 40);
    let is_top = |id: &str| {
        profiles
            .iter()
            .any(|p| p["id"] == id && p["top_performer"] == true)
    };
    let skills: Vec<&str> = v["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let quartile = v["quartile_skill"].as_array().unwrap();
    let mut with_quotes = 0;
    for plan in plans {
        let prios = plan["priorities"].as_array().unwrap();
        assert!(prios.len() <= 3);
        // Gaps are measured below each skill's top-quartile level, largest first.
        let sizes: Vec<f64> = prios
            .iter()
            .map(|pr| {
                let g = &pr["gap"];
                let k = skills.iter().position(|s| g["skill"] == *s).unwrap();
                assert_eq!(g["target_level"], quartile[k], "{g}");
                g["target_level"].as_f64().unwrap() - g["level"].as_f64().unwrap()
            })
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
        for pr in prios {
            let skill = pr["skill"].as_str().unwrap();
            assert_eq!(
                pr["id"].as_str().unwrap(),
                format!("{}:{skill}", plan["rep_id"].as_str().unwrap())
            );
            assert!(
                !pr["modules"].as_array().unwrap().is_empty(),
                "{skill} has modules"
            );
            for m in pr["modules"].as_array().unwrap() {
                assert_eq!(m["skill"], skill);
            }
            // A gap priced above nothing says what it is worth; one priced at
            // nothing or less says so, never "worth about -1.0 points".
            let headline = pr["headline"].as_str().unwrap();
            let gap = &pr["gap"];
            let gains = gap["bookings_per_quarter"].as_f64().unwrap() > 0.0
                && gap["win_rate_points"].as_f64().is_none_or(|w| w > 0.0)
                && gap["conversion_points"].as_f64().is_none_or(|c| c > 0.0);
            if gains {
                assert!(headline.contains("worth about"), "{headline}");
                assert!(!headline.contains("about -"), "{headline}");
            } else {
                assert!(headline.contains("no measurable gain"), "{headline}");
            }
            let coach = &pr["peer_coach"];
            if !coach.is_null() {
                assert_ne!(coach["id"], plan["rep_id"]);
                assert!(is_top(coach["id"].as_str().unwrap()));
            }
            with_quotes += usize::from(!pr["quotes"].as_array().unwrap().is_empty());
        }
    }
    assert!(with_quotes >= 10, "priorities quoting calls: {with_quotes}");

    // One rep, end to end: the quotes come from that rep's calls.
    let rep = plans
        .iter()
        .find(|p| {
            p["priorities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|pr| !pr["quotes"].as_array().unwrap().is_empty())
        })
        .unwrap();
    let name = rep["rep"].as_str().unwrap();
    let calls = json(
        d,
        &["--db", "c.db", "calls", "analyze", "--rep", name, "--json"],
    );
    let ids: Vec<&str> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty());
    let s = &calls["summary"];
    let talk_ratio = s["talk_ratio"].as_f64().unwrap();
    assert!((0.25..=0.95).contains(&talk_ratio), "{talk_ratio}");
    assert!(s["question_rate"].as_f64().unwrap() > 0.0);
    for pr in rep["priorities"].as_array().unwrap() {
        for q in pr["quotes"].as_array().unwrap() {
            assert!(ids.contains(&q["call"].as_str().unwrap()), "{q}");
        }
    }
    let one = json(
        d,
        &[
            "--db", "c.db", "calls", "analyze", "--call", ids[0], "--json",
        ],
    );
    let a = &one["analysis"];
    assert!(a["duration_s"].as_f64().unwrap() > 60.0);
    assert!(a["talk_ratio"].as_f64().unwrap() > 0.0);
    assert_eq!(one["benchmarks"]["top_performer_talk_ratio"], 0.43);

    // Reports a manager can read.
    let (ok, html, err) = pipewise(
        d,
        &["--db", "c.db", "coach", "--rep", name, "--format", "html"],
    );
    assert!(ok, "{err}");
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("Priority 1")
            && html.trim_end().ends_with("</html>")
    );
    let (ok, md, _) = pipewise(
        d,
        &[
            "--db", "c.db", "coach", "--team", "EMEA 1", "--format", "md",
        ],
    );
    assert!(ok);
    assert!(md.contains("## Team overview") && md.contains("| rep |"));

    // Decisions are recorded and shown with the plan.
    let first = rep["priorities"][0]["id"].as_str().unwrap().to_string();
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db", "c.db", "coach", "decide", &first, "--action", "dismiss",
        ],
    );
    assert!(!ok && err.contains("--reason"), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "c.db",
            "coach",
            "decide",
            &first,
            "--action",
            "dismiss",
            "--reason",
            "already in a course",
            "--by",
            "Grace Evans",
        ],
    );
    assert!(ok, "{err}");
    let decisions = json(d, &["--db", "c.db", "coach", "decisions", "--json"]);
    assert_eq!(decisions[0]["recommendation"], first.as_str());
    assert_eq!(decisions[0]["action"], "dismissed");
    let again = json(d, &["--db", "c.db", "coach", "--rep", name, "--json"]);
    assert_eq!(
        again["plans"][0]["priorities"][0]["decision"]["action"],
        "dismissed"
    );
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "c.db",
            "coach",
            "decide",
            "r00001:charm",
            "--action",
            "accept",
        ],
    );
    assert!(!ok && err.contains("unknown skill"), "{err}");

    // Bad input says where and what.
    let (ok, _, err) = pipewise(d, &["--db", "c.db", "coach", "--rep", "Nobody Atall"]);
    assert!(!ok && err.contains("no user named"), "{err}");
    std::fs::write(
        d.join("bad.toml"),
        "[[module]]\nname = \"X\"\nskill = \"charm\"\nminutes = 10\n",
    )
    .unwrap();
    let (ok, _, err) = pipewise(d, &["--db", "c.db", "coach", "--catalogue", "bad.toml"]);
    assert!(
        !ok && err.contains("bad.toml") && err.contains("charm"),
        "{err}"
    );
    std::fs::write(
        d.join("broken.toml"),
        "[[tracker]]\nname = \"x\"\nkeywords = [\"a\"\n",
    )
    .unwrap();
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "c.db",
            "calls",
            "analyze",
            "--trackers",
            "broken.toml",
        ],
    );
    assert!(
        !ok && err.contains("broken.toml") && err.contains("line"),
        "{err}"
    );

    // ROI with the win-rate change measured on this org: within its interval,
    // positive, and priced over the org's own closed deals.
    let r = json(
        d,
        &[
            "--db",
            "c.db",
            "roi",
            "--reps",
            "40",
            "--managers",
            "5",
            "--manager-salary",
            "150000",
            "--coaching-hours-before",
            "2",
            "--coaching-hours-after",
            "1",
            "--software-per-rep",
            "500",
            "--json",
        ],
    );
    let w = &r["win_rate_change"];
    let (v, lo, hi) = (
        w["value"].as_f64().unwrap(),
        w["low"].as_f64().unwrap(),
        w["high"].as_f64().unwrap(),
    );
    assert!(v > 0.0 && lo <= v && v <= hi, "{w}");
    assert_eq!(r["measured"]["reps"], 40);
    let m = &r["measured"];
    let expected =
        40.0 * m["deals_per_rep"].as_f64().unwrap() * m["deal_size"].as_f64().unwrap() * v;
    assert!((r["revenue_change"].as_f64().unwrap() - expected).abs() < 1e-6 * expected);
    // 40 reps x 2 hours of 5 managers' 200 hours: 40% of 750,000.
    assert_eq!(r["manual"]["coaching_cost"], 300000.0);
}

/// Seed 004's example priced by the time coaching takes, exactly.
#[test]
fn roi_prices_manager_time_as_the_share_of_salary_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = json(
        d,
        &[
            "--db",
            "none.db",
            "roi",
            "--reps",
            "100",
            "--managers",
            "10",
            "--manager-salary",
            "150000",
            "--coaching-hours-before",
            "2",
            "--coaching-hours-after",
            "1",
            "--software-per-rep",
            "500",
            "--win-rate-change",
            "0.03",
            "--deals-per-rep",
            "40",
            "--deal-size",
            "25000",
            "--json",
        ],
    );
    assert_eq!(r["manual"]["coaching_cost"], 750000.0);
    assert_eq!(r["ai"]["coaching_cost"], 375000.0);
    assert_eq!(r["ai"]["software_cost"], 50000.0);
    assert_eq!(r["ai"]["total_cost"], 425000.0);
    assert_eq!(r["revenue_change"], 3000000.0);
    let months = 12.0 * 50_000.0 / (375_000.0 + 3_000_000.0);
    assert!(
        (r["payback_months"].as_f64().unwrap() - months).abs() < 1e-9,
        "{r}"
    );
    assert!(r["measured"].is_null());
    let (ok, _, err) = pipewise(
        d,
        &[
            "roi",
            "--reps",
            "100",
            "--managers",
            "2",
            "--manager-salary",
            "150000",
            "--coaching-hours-before",
            "2",
            "--coaching-hours-after",
            "1",
            "--software-per-rep",
            "500",
        ],
    );
    assert!(
        !ok && err.contains("100.0 hours a week per manager"),
        "{err}"
    );
}
