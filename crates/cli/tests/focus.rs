//! The closed loop of next-best actions in the simulator: what a deal
//! policy sees is what pipewise reads from the same deal once imported
//! (feature for feature), and `simulate --focus` gives every policy the
//! same budget of focus meetings and records each meeting's true effect.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::pipewise;
use pipewise_core::Column;
use pipewise_engines::actions::{FOCUS_FEATURES, view_table};
use pipewise_sim::policy::{DealObserver, DealView, Policies};
use serde_json::Value;

struct Keep(Rc<RefCell<Vec<DealView>>>, i64, i64);

impl DealObserver for Keep {
    fn observe(&mut self, d: &DealView) {
        if d.at >= self.1 && d.at < self.2 {
            self.0.borrow_mut().push(d.clone());
        }
    }
}

#[test]
fn a_deal_policy_sees_what_pipewise_reads_from_the_imported_crm() {
    let cfg = pipewise_sim::Config {
        seed: 9621,
        reps: 8,
        months: 12,
        transcript_share: 0.0,
        vtt_sample: 0,
        ..pipewise_sim::Config::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let views = Rc::new(RefCell::new(Vec::new()));
    let from = cfg.start + 200 * 86_400;
    let policies = Policies {
        observer: Some(Box::new(Keep(views.clone(), from, from + 56 * 86_400))),
        ..Policies::default()
    };
    pipewise_sim::simulate_with(&cfg, policies, dir.path(), &mut |_| {}).unwrap();
    let (_db, store) =
        pipewise_app::leads::import_history(dir.path(), cfg.end(), &pipewise_ingest::NoProgress)
            .unwrap();
    let crm = store.load_crm().unwrap();
    let data = pipewise_features::Data::new(&crm);
    let views = views.borrow();
    assert!(views.len() > 200, "{} views", views.len());
    let mut compared = 0;
    for v in views.iter().step_by(3) {
        let i = data.index_of(&v.id).expect("the deal was imported");
        // The CRM holds a stage change a second or two after the sim's
        // instant; compare a minute into the week.
        let mut at = v.clone();
        at.at += 60;
        let ours = view_table(&[&at]);
        let theirs = pipewise_features::features_for(&data, &[i], at.at);
        for name in FOCUS_FEATURES {
            let a = ours.column(name).unwrap();
            let b = theirs.column(name).unwrap();
            match (a, b) {
                (Column::Numeric(x), Column::Numeric(y)) => {
                    let same = (x[0].is_nan() && y[0].is_nan()) || (x[0] - y[0]).abs() < 1e-9;
                    assert!(
                        same,
                        "{} {name} at {}: view {} against {}",
                        v.id, at.at, x[0], y[0]
                    );
                }
                (Column::Categorical(x), Column::Categorical(y)) => {
                    assert_eq!(x[0], y[0], "{} {name}", v.id);
                }
                _ => panic!("{name}: column kinds differ"),
            }
        }
        compared += 1;
    }
    assert!(compared > 60);
}

#[test]
fn focus_policies_get_the_same_budget_and_the_truth_records_each_meeting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |focus: &[&str], out: &str| -> Value {
        let mut args = vec![
            "simulate",
            "--seed",
            "9622",
            "--reps",
            "10",
            "--months",
            "16",
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
            "--policy-start",
            "2025-01-06",
            "--out",
            out,
            "--json",
        ];
        args.extend(focus);
        let (ok, o, err) = pipewise(d, &args);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&o).unwrap()["focus"].clone()
    };
    let none = run(&["--focus", "none"], "none");
    assert_eq!(none["meetings"], 0);
    let own = run(&["--focus", "own"], "own");
    let full = run(&["--focus", "pipewise", "--adherence", "full"], "full");
    let latent = run(&["--focus", "pipewise"], "latent");
    let oracle = run(&["--focus", "oracle", "--adherence", "full"], "oracle");
    // The budget: 3 a rep a week over the 17 weeks from the start.
    let budget = 3.0 * 10.0 * 17.0;
    for f in [&own, &full, &oracle] {
        let m = f["meetings"].as_f64().unwrap();
        assert!(
            (m / budget - 1.0).abs() < 0.2,
            "{m} meetings for {budget}: {f}"
        );
    }
    assert_eq!(own["recommended"], 0);
    // The oracle, choosing by the hidden value of each meeting, adds more
    // expected bookings with the same time than either policy.
    let value = |f: &Value| f["true_value"].as_f64().unwrap();
    assert_eq!(oracle["policy"], "oracle");
    assert!(
        value(&oracle) > value(&full) && value(&oracle) > value(&own),
        "oracle {oracle}\npipewise {full}\nown {own}"
    );
    // With full adherence every meeting is a recommendation followed (all
    // within the weekly cap); with the latent one, fewer are.
    assert_eq!(full["followed"], full["meetings"], "{full}");
    assert!(full["adherence"].as_f64().unwrap() > 0.75, "{full}");
    let a = latent["adherence"].as_f64().unwrap();
    assert!(a > 0.2 && a < 0.9, "{latent}");
    assert!(latent["true_effect"].as_f64().unwrap() > 0.0);
    // The truth: each rep's adherence, and each focus meeting's expected
    // gain on its deal.
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("latent").join("ground_truth.json")).unwrap(),
    )
    .unwrap();
    let reps = truth["focus"]["adherence"].as_array().unwrap();
    assert_eq!(reps.len(), 10);
    let mut events = 0;
    let mut followed = 0;
    for o in truth["opportunities"].as_array().unwrap() {
        for e in o["focus"].as_array().into_iter().flatten() {
            events += 1;
            followed += usize::from(e["followed"] == true);
            assert!(e["expected_gain"].as_f64().unwrap() >= 0.0, "{e}");
            assert!(e["date"].as_str().unwrap() >= "2025-01-06");
        }
    }
    assert!(events > 0, "focus events in the truth");
    assert_eq!(followed as u64, latent["followed"].as_u64().unwrap());
    // Following is worth less than a meeting: the rep's own pick otherwise
    // is netted out.
    let of_following = latent["true_effect_of_following"].as_f64().unwrap();
    assert!(
        of_following > 0.0 && of_following <= latent["true_effect"].as_f64().unwrap(),
        "{latent}"
    );
    what_following_was_worth(d);
}

/// The latent run's recommendation log, imported with its CRM: adherence
/// and the estimate of what following was worth, its data gates, and the
/// log importer's errors.
fn what_following_was_worth(d: &std::path::Path) {
    let ok = |args: &[&str]| -> String {
        let (ok, o, err) = pipewise(d, args);
        assert!(ok, "{args:?}: {err}");
        o
    };
    ok(&["--db", "latent.db", "import", "dir", "latent"]);
    // Every meeting logged from the list falls in a recommendation's window
    // on its deal, by its rep.
    let log = std::fs::read_to_string(d.join("latent/action_recommendations.csv")).unwrap();
    let recs: Vec<Vec<String>> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert!(recs.len() > 50, "{} recommendations", recs.len());
    let acts = std::fs::read_to_string(d.join("latent/activities.csv")).unwrap();
    let mut tagged = 0;
    for l in acts.lines().filter(|l| l.contains(",next-best-action,")) {
        let f: Vec<&str> = l.split(',').collect();
        let (kind, at, rep, opp) = (f[1], f[3], f[9], f[11]);
        assert_eq!(kind, "meeting", "{l}");
        assert!(
            recs.iter().any(|r| r[1] == rep
                && r[3] == opp
                && format!("{}T00:00:00Z", r[0]).as_str() <= at
                && at < r[8].as_str()),
            "a meeting from the list outside every window: {l}"
        );
        tagged += 1;
    }
    assert!(tagged > 0);
    let o = ok(&[
        "--db",
        "latent.db",
        "actions",
        "import-log",
        "latent/action_recommendations.csv",
        "--json",
    ]);
    let imported: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(imported["rows"], recs.len(), "{imported}");
    let o = ok(&["--db", "latent.db", "adherence", "effect", "--json"]);
    let e: Value = serde_json::from_str(&o).unwrap();
    let (n, from_list, acted) = (
        e["recommendations"].as_u64().unwrap(),
        e["followed_from_list"].as_u64().unwrap(),
        e["acted_on"].as_u64().unwrap(),
    );
    assert!(from_list > 0 && from_list <= acted && acted <= n, "{e}");
    assert!(from_list <= tagged, "{e}");
    match e["estimate"].as_object() {
        Some(est) => {
            let (lo, hi) = (
                est["ci"][0].as_f64().unwrap(),
                est["ci"][1].as_f64().unwrap(),
            );
            assert!(lo < est["effect"].as_f64().unwrap() && hi > lo, "{e}");
            assert!(est["deals"].as_u64().unwrap() >= 100, "{e}");
        }
        None => {
            let why = e["cannot_judge"].as_str().unwrap();
            assert!(why.contains("at least 100"), "{e}");
        }
    }
    // Without the list's tag on activities, touches alone would overstate
    // the effect: no estimate.
    let untagged = d.join("untagged");
    std::fs::create_dir_all(&untagged).unwrap();
    for f in std::fs::read_dir(d.join("latent")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|x| x == "csv") {
            let text = std::fs::read_to_string(&f).unwrap();
            std::fs::write(
                untagged.join(f.file_name().unwrap()),
                text.replace(",next-best-action,", ",,"),
            )
            .unwrap();
        }
    }
    ok(&["--db", "untagged.db", "import", "dir", "untagged"]);
    ok(&[
        "--db",
        "untagged.db",
        "actions",
        "import-log",
        "untagged/action_recommendations.csv",
    ]);
    let o = ok(&["--db", "untagged.db", "adherence", "effect", "--json"]);
    let e: Value = serde_json::from_str(&o).unwrap();
    assert!(e["estimate"].is_null(), "{e}");
    assert_eq!(e["followed_from_list"], 0, "{e}");
    assert!(
        e["cannot_judge"]
            .as_str()
            .unwrap()
            .contains("no activity records that it was logged from the list"),
        "{e}"
    );
    // Marking a recommendation done on the list (one that was acted on)
    // makes it followed from the list.
    let first = acts
        .lines()
        .find(|l| l.contains(",next-best-action,"))
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect::<Vec<_>>();
    let (at, rep, opp) = (&first[3], &first[9], &first[11]);
    let r = recs
        .iter()
        .find(|r| {
            &r[1] == rep
                && &r[3] == opp
                && format!("{}T00:00:00Z", r[0]).as_str() <= at.as_str()
                && at.as_str() < r[8].as_str()
        })
        .unwrap();
    ok(&[
        "--db",
        "untagged.db",
        "actions",
        "dismiss",
        "--rep",
        rep,
        "--target",
        &format!("deal:{opp}"),
        "--action",
        "meeting",
        "--reason",
        "done",
        "--date",
        &r[0],
    ]);
    let o = ok(&["--db", "untagged.db", "adherence", "effect", "--json"]);
    let e: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(e["followed_from_list"], 1, "{e}");
    // A reason clap refuses is still JSON under --json, with clap's exit
    // code.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipewise"))
        .current_dir(d)
        .args([
            "--db",
            "untagged.db",
            "actions",
            "dismiss",
            "--rep",
            rep,
            "--target",
            &format!("deal:{opp}"),
            "--action",
            "meeting",
            "--reason",
            "nope",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("invalid value 'nope'"),
        "{v}"
    );
    // An incentive plan paying on adherence: each rep's share acted on in
    // the period's lists, against the quota as a share.
    std::fs::write(
        d.join("plan.toml"),
        r#"name = "follow the list"
ote = 120000
base_share = 0.6
[[measures]]
metric = "bookings"
weight = 0.7
quota = 600000
[[measures]]
metric = "adherence"
weight = 0.3
quota = 0.8
"#,
    )
    .unwrap();
    let range = ["--from", "2025-01-06", "--to", "2025-04-15"];
    let mut args = vec![
        "--db",
        "latent.db",
        "comp",
        "simulate",
        "--plan",
        "plan.toml",
        "--json",
    ];
    args.extend(range);
    let comp: Value = serde_json::from_str(&ok(&args)).unwrap();
    let mut args = vec!["--db", "latent.db", "adherence", "--json"];
    args.extend(range);
    let adh: Value = serde_json::from_str(&ok(&args)).unwrap();
    let by_rep = adh["by_rep"].as_array().unwrap();
    assert!(!by_rep.is_empty(), "{adh}");
    let mut paid_on = 0;
    for r in comp["plan"]["reps"].as_array().unwrap() {
        let a = by_rep.iter().find(|x| x["id"] == r["rep_id"]);
        let attained = r["attainment"][1].as_f64().unwrap();
        match a {
            Some(a) => {
                // Followed from the list: the run logs it.
                let share = a["from_list_share"].as_f64().unwrap();
                assert!(share <= a["adherence"].as_f64().unwrap(), "{a}");
                assert_eq!(r["adherence"].as_f64().unwrap(), share, "{r}");
                assert!((attained - share / 0.8).abs() < 1e-9, "{r}");
                paid_on += 1;
            }
            None => {
                assert!(r["adherence"].is_null(), "{r}");
                assert_eq!(attained, 1.0, "paid at quota without lists: {r}");
            }
        }
    }
    assert!(paid_on > 0);
    assert!(
        comp["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("adherence: ")),
        "{comp}"
    );
    // A bad cell: the file, line, column and what was expected; nothing
    // stored.
    let mut bad = log.lines().take(4).map(str::to_string).collect::<Vec<_>>();
    let mut cells: Vec<String> = bad[2].split(',').map(str::to_string).collect();
    cells[9] = "1.7".into();
    bad[2] = cells.join(",");
    std::fs::write(d.join("bad.csv"), bad.join("\n") + "\n").unwrap();
    ok(&["--db", "fresh.db", "import", "dir", "latent"]);
    let (okay, o, err) = pipewise(
        d,
        &[
            "--db",
            "fresh.db",
            "actions",
            "import-log",
            "bad.csv",
            "--json",
        ],
    );
    assert!(!okay);
    assert!(
        err.contains("bad.csv: line 3, column 10 (probability): expected a probability from 0 to 1, found \"1.7\""),
        "{err}"
    );
    let v: Value = serde_json::from_str(o.trim()).unwrap();
    assert!(v["error"].as_str().unwrap().contains("line 3"), "{v}");
    // A deal the data does not hold, and a channel that is not the action.
    for (col, value, want) in [
        (
            3,
            "o-none",
            "column 4 (target_id): expected the id of a deal the data holds",
        ),
        (
            6,
            "email",
            "column 7 (channel): expected meeting, as the action is",
        ),
    ] {
        let mut rows = log.lines().take(3).map(str::to_string).collect::<Vec<_>>();
        let mut cells: Vec<String> = rows[1].split(',').map(str::to_string).collect();
        cells[col] = value.into();
        rows[1] = cells.join(",");
        std::fs::write(d.join("bad.csv"), rows.join("\n") + "\n").unwrap();
        let (okay, _, err) = pipewise(d, &["--db", "fresh.db", "actions", "import-log", "bad.csv"]);
        assert!(
            !okay && err.contains(&format!("bad.csv: line 2, {want}")),
            "{err}"
        );
    }
    let o = ok(&["--db", "fresh.db", "adherence", "--json"]);
    let a: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(a["recommended"], 0, "nothing stored: {a}");
    assert_eq!(a["open"], 0, "nothing stored: {a}");
}
