//! Territories on a simulated org the method was not developed on: segments
//! recover the accounts' latent segments, the plan keeps its contract
//! (moves within the cap, locked accounts kept, balance reported) and beats
//! the current plan when judged with the simulator's hidden truth.

use std::path::Path;

use serde_json::Value;

mod common;
use common::pipewise;

fn org(d: &Path) {
    let (ok, _, err) = pipewise(
        d,
        &[
            "simulate",
            "--seed",
            "7301",
            "--reps",
            "20",
            "--months",
            "18",
            "--out",
            "sim",
            "--transcript-share",
            "0.05",
            "--vtt-sample",
            "0",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "t.db", "import", "dir", "sim"]);
    assert!(ok, "{err}");
}

#[test]
fn segments_recover_latent_segments_and_the_plan_beats_the_current_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    org(d);

    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "territories",
            "segments",
            "--truth",
            "sim/ground_truth.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let accounts = v["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1000, "every account has a segment");
    let ids: std::collections::HashSet<&str> = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        accounts
            .iter()
            .all(|a| ids.contains(a["segment"].as_str().unwrap()))
    );
    let ari = v["truth"]["adjusted_rand_index"].as_f64().unwrap();
    assert!(ari >= 0.75, "adjusted Rand index {ari}");
    for s in v["segments"].as_array().unwrap() {
        assert!(!s["description"].as_str().unwrap().is_empty());
    }

    // Two accounts locked with their owner.
    let first: Vec<String> = std::fs::read_to_string(d.join("sim/accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .take(2)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    std::fs::write(d.join("locked.txt"), first.join("\n")).unwrap();
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "territories",
            "plan",
            "--locked",
            "locked.txt",
            "--csv",
            "plan.csv",
            "--truth",
            "sim/ground_truth.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    let rows = p["assignments"].as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    let moved = rows
        .iter()
        .filter(|r| r["current_rep_id"] != r["rep_id"])
        .count();
    assert!(moved as f64 <= 0.2 * 1000.0, "{moved} moved");
    assert_eq!(p["moved"].as_u64().unwrap() as usize, moved);
    for id in &first {
        let r = rows
            .iter()
            .find(|r| r["account_id"] == id.as_str())
            .unwrap();
        assert_eq!(r["rep_id"], r["current_rep_id"], "locked {id} moved");
    }
    let cur = p["current"]["expected_bookings"].as_f64().unwrap();
    let new = p["proposed"]["expected_bookings"].as_f64().unwrap();
    assert!(new > cur, "proposed {new} vs current {cur}");
    // More reps inside the ±10% band than today, and a rep left outside
    // only when the accounts the plan may not move (customers, locked
    // ones) already put them outside it, which the plan says.
    let inside = |plan: &str| p[plan]["reps_within_band"].as_u64().unwrap();
    assert!(
        inside("proposed") > inside("current"),
        "{}",
        p["proposed"]["balance"]
    );
    for b in p["proposed"]["balance"].as_array().unwrap() {
        if b["within_band"].as_bool().unwrap() {
            assert!(b["outside_why"].is_null(), "{b}");
        } else {
            let why = b["outside_why"].as_str().unwrap();
            assert!(
                why.starts_with("the customers and locked accounts kept with them alone"),
                "a rep left outside the band that moves could bring in: {b}"
            );
        }
    }
    for b in p["current"]["balance"].as_array().unwrap() {
        assert!(b["outside_why"].is_null(), "{b}");
    }
    let gain = p["truth"]["gain"].as_f64().unwrap();
    assert!(gain > 0.0, "hidden-truth gain {gain}");
    let csv = std::fs::read_to_string(d.join("plan.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1001);
    assert!(csv.starts_with("account_id,account_name,current_rep_id,rep_id,moved,reason"));
    // The same plan pseudonymised: no rep's id or name left in it.
    std::fs::write(d.join("key.txt"), "territory planning key 2026").unwrap();
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "territories",
            "plan",
            "--locked",
            "locked.txt",
            "--csv",
            "plan-p.csv",
            "--pseudonymise",
            "--key-file",
            "key.txt",
        ],
    );
    assert!(ok, "{err}");
    let pseud = std::fs::read_to_string(d.join("plan-p.csv")).unwrap();
    assert_eq!(pseud.lines().count(), 1001);
    let reps: Vec<(String, String)> = {
        let c = rusqlite::Connection::open(d.join("t.db")).unwrap();
        let mut st = c.prepare("SELECT id, name FROM users").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for line in pseud.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        assert!(cells[3].starts_with("P-"), "{line}");
        for (id, name) in &reps {
            assert!(cells[3] != id && !line.contains(name.as_str()), "{line}");
        }
    }
    assert!(
        pseud.contains("against"),
        "moves keep their reasons, pseudonymised"
    );

    // Whitespace: untouched accounts and two imported prospects, ranked.
    std::fs::write(
        d.join("prospects.csv"),
        "id,name,industry,employees,annual_revenue\nP-1,Prospect One,software,800,120000000\nP-2,Prospect Two,retail,40,\n",
    )
    .unwrap();
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "territories",
            "whitespace",
            "--accounts",
            "prospects.csv",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let w: Value = serde_json::from_str(&out).unwrap();
    let list = w["accounts"].as_array().unwrap();
    let imported: Vec<&Value> = list.iter().filter(|a| a["imported"] == true).collect();
    assert_eq!(imported.len(), 2, "{imported:?}");
    let ev: Vec<f64> = list
        .iter()
        .map(|a| a["expected_value"].as_f64().unwrap())
        .collect();
    assert!(
        ev.windows(2).all(|x| x[0] >= x[1]),
        "best expected value first"
    );
    assert!(
        list.iter()
            .all(|a| (0.0..=1.0).contains(&a["likeness"].as_f64().unwrap()))
    );
    assert!(
        w["evaluation"]["accounts"].as_u64().unwrap() >= 20,
        "{}",
        w["evaluation"]
    );
    std::fs::write(d.join("bad.csv"), "id,name,employees\nP-9,Bad,many\n").unwrap();
    let (ok, out, _) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "territories",
            "whitespace",
            "--accounts",
            "bad.csv",
            "--json",
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("line 2, column 3") && out.contains("'many'"),
        "{out}"
    );

    // Bad options: a clear error, in JSON too.
    let (ok, out, _) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "territories",
            "plan",
            "--band",
            "1.5",
            "--json",
        ],
    );
    assert!(!ok);
    assert!(out.contains("--band 1.5"), "{out}");
}

#[test]
fn next_product_beats_the_most_popular_pick_and_churn_scores_open_renewals() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    org(d);

    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "t.db",
            "accounts",
            "next-product",
            "--truth",
            "sim/ground_truth.json",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let list = v["accounts"].as_array().unwrap();
    assert!(list.len() > 100, "{} customers", list.len());
    for a in list {
        let c = a["candidates"].as_array().unwrap();
        let owned: Vec<&str> = a["owned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert!(
            c.iter()
                .all(|p| !owned.contains(&p["product"].as_str().unwrap())),
            "{a}"
        );
        let total: f64 = c.iter().map(|p| p["probability"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 0.01, "{total}");
    }
    let e = &v["evaluation"];
    assert!(e["accounts"].as_u64().unwrap() >= 30, "{e}");
    assert!(
        e["hit_rate"].as_f64().unwrap() > e["baseline_hit_rate"].as_f64().unwrap(),
        "{e}"
    );
    assert!(
        e["true_chance"].as_f64().unwrap() > e["baseline_true_chance"].as_f64().unwrap(),
        "{e}"
    );

    let (ok, out, err) = pipewise(d, &["--db", "t.db", "accounts", "churn", "--json"]);
    assert!(ok, "{err}");
    let c: Value = serde_json::from_str(&out).unwrap();
    let e = &c["evaluation"];
    assert!(
        e["test"].as_u64().unwrap() > 50
            && e["train"].as_u64().unwrap() > e["test"].as_u64().unwrap()
    );
    let auc = e["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    let open = c["open"].as_array().unwrap();
    assert!(!open.is_empty());
    let risks: Vec<f64> = open.iter().map(|r| r["risk"].as_f64().unwrap()).collect();
    assert!(risks.windows(2).all(|w| w[0] >= w[1]), "riskiest first");
    assert!(
        open.iter()
            .all(|r| !r["factors"].as_array().unwrap().is_empty())
    );

    // An org without renewals yet cannot be judged, and says so.
    let (ok, _, err) = pipewise(
        d,
        &[
            "simulate",
            "--seed",
            "7302",
            "--reps",
            "8",
            "--months",
            "6",
            "--no-installed-base",
            "--out",
            "young",
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "young.db", "import", "dir", "young"]);
    assert!(ok, "{err}");
    let (ok, out, _) = pipewise(d, &["--db", "young.db", "accounts", "churn", "--json"]);
    assert!(!ok);
    assert!(
        out.contains("cannot judge") && out.contains("renewals"),
        "{out}"
    );
}
