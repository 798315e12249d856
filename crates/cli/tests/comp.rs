//! `pipewise comp simulate` on a simulated org: pay adds up, bookings are
//! the won deals closed in the period (read straight from the export), the
//! payout curve follows the tiers, and a bad plan names its file.

mod common;

use common::pipewise;
use serde_json::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn plans_pay_what_their_tiers_say_on_the_orgs_bookings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = pipewise(
        d,
        &[
            "simulate",
            "--seed",
            "9501",
            "--reps",
            "10",
            "--months",
            "14",
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
            "--out",
            "org",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "import", "dir", "org"]);
    assert!(ok, "{err}");
    let ae = root().join("examples/plan-ae.toml");
    let steep = root().join("examples/plan-steeper.toml");
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "comp",
            "simulate",
            "--plan",
            ae.to_str().unwrap(),
            "--vs",
            steep.to_str().unwrap(),
            "--from",
            "2024-01-01",
            "--to",
            "2024-12-31",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let plan = &r["plan"];
    let reps = plan["reps"].as_array().unwrap();
    // Every rep of the export is paid (zero bookings or not).
    let users = std::fs::read_to_string(d.join("org/users.csv")).unwrap();
    let n_reps = users.lines().filter(|l| l.contains(",rep,")).count();
    assert_eq!(reps.len(), n_reps);
    // Bookings: won deals closed in 2024, from the export itself.
    let opps = std::fs::read_to_string(d.join("org/opportunities.csv")).unwrap();
    let mut rd = csv::Reader::from_reader(opps.as_bytes());
    let h = rd.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (stage, amount, closed) = (col("stage"), col("amount"), col("closed_at"));
    let want: f64 = rd
        .records()
        .map(Result::unwrap)
        .filter(|r| r[stage] == *"closed_won" && r[closed].starts_with("2024"))
        .map(|r| r[amount].parse::<f64>().unwrap())
        .sum();
    assert!(want > 100_000.0, "won bookings in 2024: {want}");
    let got = plan["bookings"].as_f64().unwrap();
    assert!((got - want).abs() < 0.01 * want.max(1.0), "{got} vs {want}");
    // Pay adds up; cost of sales is cost over bookings.
    let total: f64 = reps.iter().map(|x| x["total"].as_f64().unwrap()).sum();
    assert!((total - plan["cost"].as_f64().unwrap()).abs() < 1.0);
    assert!(
        (plan["cost_of_sales"].as_f64().unwrap() - total / got).abs() < 1e-9,
        "{plan}"
    );
    // Base is 50% of OTE for a year, for every rep.
    for x in reps {
        assert!(
            (x["base"].as_f64().unwrap() - 80_000.0).abs() < 300.0,
            "{x}"
        );
        // The payout curve: a rep's bookings variable pay follows the tiers
        // (0.5 per unit to 50%, 1.5 to 100%, 2 beyond; capped at 3).
        let a = x["attainment"][0].as_f64().unwrap();
        let m = (0.5 * a.min(0.5) + 1.5 * (a.min(1.0) - 0.5).max(0.0) + 2.0 * (a - 1.0).max(0.0))
            .min(3.0);
        let logos = x["attainment"][1].as_f64().unwrap();
        let ml = (0.5 * logos.min(0.5)
            + 1.5 * (logos.min(1.0) - 0.5).max(0.0)
            + 2.0 * (logos - 1.0).max(0.0))
        .min(3.0);
        let var = 80_000.0 * (0.8 * m + 0.2 * ml);
        assert!(
            (x["variable"].as_f64().unwrap() - var).abs() < 0.01 * var.max(100.0),
            "{x}"
        );
    }
    // The compared plan: no behavioural response by default, so the same
    // bookings; its recoverable draw is owed back, not a cost.
    let vs = &r["vs"];
    assert_eq!(vs["bookings"], plan["bookings"]);
    assert_eq!(r["behaviour"]["model"], "none");
    assert!(vs["draw_owed"].as_f64().unwrap() >= 0.0 && vs["draw_guarantee"] == 0.0);
    // With an elasticity, reps above quota book more under a steeper plan.
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "comp",
            "simulate",
            "--plan",
            ae.to_str().unwrap(),
            "--vs",
            steep.to_str().unwrap(),
            "--from",
            "2024-01-01",
            "--to",
            "2024-12-31",
            "--behaviour",
            "elasticity",
            "--elasticity",
            "0.3",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let e: Value = serde_json::from_str(&out).unwrap();
    assert!(
        e["vs"]["bookings"].as_f64().unwrap() != got,
        "{}",
        e["behaviour_text"]
    );
    assert!(e["behaviour_text"].as_str().unwrap().contains("assumption"));
    // Text, side by side.
    let (ok, text, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "comp",
            "simulate",
            "--plan",
            ae.to_str().unwrap(),
            "--vs",
            steep.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        text.contains("AE 50/50")
            && text.contains("AE 40/60 steep")
            && text.contains("cost of sales"),
        "{text}"
    );
    // Options that would be ignored are refused; a missing database is not
    // created.
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "comp",
            "simulate",
            "--plan",
            ae.to_str().unwrap(),
            "--elasticity",
            "0.5",
        ],
    );
    assert!(!ok && err.contains("--behaviour elasticity"), "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db",
            "none.db",
            "comp",
            "simulate",
            "--plan",
            ae.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("no such database"), "{err}");
    assert!(!d.join("none.db").exists());
    // A plan whose weights do not add up names its file.
    std::fs::write(d.join("bad.toml"), "name = \"x\"\note = 1\nbase_share = 0.5\n[[measures]]\nmetric = \"bookings\"\nweight = 0.5\nquota = 10\n").unwrap();
    let (ok, _, err) = pipewise(
        d,
        &["--db", "org.db", "comp", "simulate", "--plan", "bad.toml"],
    );
    assert!(
        !ok && err.contains("bad.toml") && err.contains("add up to 0.5"),
        "{err}"
    );
}

#[test]
fn message_test_simulations_refuse_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, says) in [
        (
            &["messages", "simulate", "--sends", "100"][..],
            "never update",
        ),
        (
            &[
                "messages",
                "simulate",
                "--sends",
                "1000",
                "--min-sends",
                "500",
            ][..],
            "no winner could ever",
        ),
        (
            &["messages", "simulate", "--variants", "1"][..],
            "2 or more",
        ),
    ] {
        let (ok, _, err) = pipewise(d, args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let (ok, out, err) = pipewise(
        d,
        &[
            "messages", "simulate", "--tests", "5", "--sends", "2000", "--seed", "3", "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["seed"], 3);
    assert_eq!(v["batch"], 100);
    assert!(v["declared_right"].is_null() || v["declared_right"].is_number());
}
