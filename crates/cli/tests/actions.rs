//! `pipewise actions` and `pipewise adherence` on a simulated org: the list
//! fits the rep's time, holds the rep's own open deals and leads, values
//! each action as uplift × amount, one action per target; dismissals hide an
//! action; adherence counts the actions the export's activities then show,
//! recomputed here from the export itself.

mod common;

use std::collections::{HashMap, HashSet};

use common::pipewise;
use serde_json::Value;

fn csv(path: &std::path::Path) -> Vec<HashMap<String, String>> {
    let mut r = ::csv::Reader::from_path(path).unwrap();
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            head.iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

fn epoch(s: &str) -> i64 {
    if s.len() == 10 {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp()
    } else {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }
}

#[test]
fn a_reps_list_fits_their_time_and_adherence_counts_what_they_then_did() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        vec![
            "simulate",
            "--seed",
            "9611",
            "--reps",
            "12",
            "--months",
            "18",
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
            "--out",
            "org",
        ],
        vec!["--db", "org.db", "import", "dir", "org"],
        vec!["--db", "org.db", "train", "--json"],
        vec!["--db", "org.db", "score", "leads", "--out", "leads.csv"],
    ] {
        let (ok, _, err) = pipewise(d, &args);
        assert!(ok, "{args:?}: {err}");
    }
    let opps = csv(&d.join("org/opportunities.csv"));
    let leads = csv(&d.join("org/leads.csv"));
    let acts = csv(&d.join("org/activities.csv"));

    // Today's list (the data's last day), not stored.
    let list = |extra: &[&str]| -> Value {
        let mut args = vec!["--db", "org.db", "actions", "--rep", "r00003", "--json"];
        args.extend(extra);
        let (ok, out, err) = pipewise(d, &args);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let v = list(&["--no-record"]);
    assert_eq!(v["rep_id"], "r00003");
    assert_eq!(v["recorded"], false);
    let acts_today = v["actions"].as_array().unwrap();
    assert!(acts_today.len() >= 5, "{v}");
    let avail = v["minutes_available"].as_f64().unwrap();
    let planned = v["minutes_planned"].as_f64().unwrap();
    assert!(
        avail > 0.0 && planned <= avail + 1e-9,
        "{planned} of {avail}"
    );
    let minutes: f64 = acts_today
        .iter()
        .map(|a| a["minutes"].as_f64().unwrap())
        .sum();
    assert!((minutes - planned).abs() < 1e-9);
    let mut targets = HashSet::new();
    let mut kinds = HashSet::new();
    let mut last = f64::INFINITY;
    let day_end = epoch(v["day"].as_str().unwrap()) + 86_400;
    for a in acts_today {
        let ev = a["expected_value"].as_f64().unwrap();
        let uplift = a["uplift"].as_f64().unwrap();
        let amount = a["amount"].as_f64().unwrap();
        assert!(
            ev > 0.0 && (ev - uplift * amount).abs() < 1e-6 * ev.max(1.0),
            "{a}"
        );
        assert!(ev <= last + 1e-9, "ranked by expected value");
        last = ev;
        let id = a["target_id"].as_str().unwrap().to_string();
        assert!(targets.insert(id.clone()), "one action per target: {id}");
        assert!(!a["why"].as_array().unwrap().is_empty());
        kinds.insert(a["target_kind"].as_str().unwrap().to_string());
        match a["target_kind"].as_str().unwrap() {
            "deal" => {
                let o = opps
                    .iter()
                    .find(|o| o["id"] == id)
                    .expect("a deal of the export");
                assert_eq!(o["owner_id"], "r00003", "{id} is the rep's");
                let closed = &o["closed_at"];
                assert!(
                    closed.is_empty() || epoch(closed) >= day_end - 86_400,
                    "{id} is open"
                );
                assert!(["call", "email", "meeting"].contains(&a["action"].as_str().unwrap()));
            }
            "lead" => {
                let l = leads
                    .iter()
                    .find(|l| l["id"] == id)
                    .expect("a lead of the export");
                assert_eq!(l["owner_id"], "r00003", "{id} is the rep's");
                assert_eq!(a["action"], "cadence_step");
            }
            _ => assert!(["renewal_check", "cross_sell"].contains(&a["action"].as_str().unwrap())),
        }
    }
    assert!(
        kinds.contains("deal") && kinds.contains("lead"),
        "{kinds:?}"
    );

    // Less time, a shorter list.
    let short = list(&["--no-record", "--hours", "0.25"]);
    assert!(short["minutes_planned"].as_f64().unwrap() <= 15.0);
    assert!(short["actions"].as_array().unwrap().len() < acts_today.len());

    // Dismissing the top action takes it off the list.
    let top = &acts_today[0];
    let target = format!(
        "{}:{}",
        top["target_kind"].as_str().unwrap(),
        top["target_id"].as_str().unwrap()
    );
    let action = top["action"].as_str().unwrap();
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db", "org.db", "actions", "dismiss", "--rep", "r00003", "--target", &target,
            "--action", action, "--reason", "other",
        ],
    );
    assert!(!ok && err.contains("note"), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "actions",
            "dismiss",
            "--rep",
            "r00003",
            "--target",
            "deal:nope",
            "--action",
            "call",
            "--reason",
            "done",
        ],
    );
    assert!(!ok && err.contains("no deal with id"), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "actions",
            "dismiss",
            "--rep",
            "r00003",
            "--target",
            &target,
            "--action",
            action,
            "--reason",
            "not_useful",
        ],
    );
    assert!(ok, "{err}");
    let after = list(&["--no-record"]);
    assert!(after["hidden_by_dismissals"].as_u64().unwrap() >= 1);
    assert!(
        !after["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["target_id"] == top["target_id"] && a["action"] == top["action"]),
        "the dismissed action is gone"
    );

    // Two past days' lists, stored; adherence counts what the rep then did.
    let mut stored = Vec::new();
    for day in ["2025-03-03", "2025-04-07"] {
        let v = list(&["--date", day]);
        assert_eq!(v["recorded"], true);
        assert_eq!(v["day"], day);
        stored.extend(v["actions"].as_array().unwrap().clone());
        stored.last().expect("a list");
        // Each list was made with what was known by its day.
        assert!(v["as_of"].as_str().unwrap() < &format!("{day}T00:00:01Z")[..]);
    }
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "adherence", "--json"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["recommended"].as_u64().unwrap() as usize, stored.len());
    // Recomputed from the export: an activity by the rep on the target, in
    // the window, by the channel.
    let mut expected = 0;
    for a in &stored {
        let from = epoch(&a["at"].as_str().unwrap()[..10]);
        let until = from + a["window_days"].as_i64().unwrap() * 86_400;
        let id = a["target_id"].as_str().unwrap();
        let kind = a["target_kind"].as_str().unwrap();
        let channel = a["channel"].as_str().unwrap();
        let account_action = kind == "account";
        let hit = acts.iter().any(|x| {
            let t = epoch(&x["occurred_at"]);
            x["user_id"] == "r00003"
                && t >= from
                && t < until
                && match kind {
                    "deal" => x["opportunity_id"] == id,
                    "lead" => x["lead_id"] == id,
                    _ => x["account_id"] == id,
                }
                && if account_action {
                    ["call", "meeting", "email"].contains(&x["type"].as_str())
                } else {
                    x["type"] == channel
                }
        });
        expected += usize::from(hit);
    }
    assert_eq!(r["acted_on"].as_u64().unwrap() as usize, expected, "{r}");
    assert!(expected > 0, "the rep acted on some of {}", stored.len());
    let rep = &r["by_rep"][0];
    assert_eq!(rep["id"], "r00003");
    assert_eq!(rep["recommended"], r["recommended"]);
    let by_action: u64 = r["by_action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["acted_on"].as_u64().unwrap())
        .sum();
    assert_eq!(by_action as usize, expected);
    // A list made again the same day replaces that day's.
    let again = list(&["--date", "2025-04-07"]);
    assert_eq!(again["recorded"], true);
    let (_, out, _) = pipewise(d, &["--db", "org.db", "adherence", "--json"]);
    let r2: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r2["recommended"], r["recommended"]);
    // The next day's list repeats actions still open: each counts once,
    // its window running to the later list's end.
    let next = list(&["--date", "2025-04-08"]);
    let mut all: Vec<(String, String, i64, i64)> = stored
        .iter()
        .chain(next["actions"].as_array().unwrap())
        .map(|a| {
            let from = epoch(&a["at"].as_str().unwrap()[..10]);
            (
                format!(
                    "{}:{}",
                    a["target_kind"].as_str().unwrap(),
                    a["target_id"].as_str().unwrap()
                ),
                a["action"].as_str().unwrap().to_string(),
                from,
                from + a["window_days"].as_i64().unwrap() * 86_400,
            )
        })
        .collect();
    all.sort();
    let mut episodes: Vec<(String, String, i64, i64)> = Vec::new();
    for x in all {
        if let Some(e) = episodes.last_mut()
            && (e.0.as_str(), e.1.as_str()) == (x.0.as_str(), x.1.as_str())
            && x.2 < e.3
        {
            e.3 = e.3.max(x.3);
            continue;
        }
        episodes.push(x);
    }
    let (_, out, _) = pipewise(d, &["--db", "org.db", "adherence", "--json"]);
    let r3: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r3["recommended"].as_u64().unwrap() as usize,
        episodes.len(),
        "{r3}"
    );
    assert!(episodes.len() < stored.len() + next["actions"].as_array().unwrap().len());
    // A dismissal names an action its target takes.
    let some_deal = format!("deal:{}", opps[0]["id"]);
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "actions",
            "dismiss",
            "--rep",
            "r00003",
            "--target",
            &some_deal,
            "--action",
            "cadence_step",
            "--reason",
            "done",
        ],
    );
    assert!(!ok && err.contains("not an action on a deal"), "{err}");
    // Text.
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "adherence"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Adherence: "), "{out}");
    assert!(out.contains("By rep"), "{out}");
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "actions",
            "--rep",
            "r00003",
            "--no-record",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("Next-best actions for "), "{out}");
    assert!(out.contains("expected value"), "{out}");
    // Bad input.
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "actions", "--rep", "nobody"]);
    assert!(!ok && err.contains("rep"), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "actions",
            "--rep",
            "r00003",
            "--date",
            "04/07/2025",
        ],
    );
    assert!(!ok && err.contains("YYYY-MM-DD"), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db", "org.db", "actions", "--rep", "r00003", "--hours", "30",
        ],
    );
    assert!(!ok && err.contains("0 to 24"), "{err}");
}
