//! The feature engine's promise: a feature as of T depends only on what was
//! known at T. The CRM as it stood at T is rebuilt from a simulated org (every
//! row dated after T removed, every opportunity rolled back through its
//! history); the full data is that plus everything appended after T. The
//! features at T must be identical.

use pipewise_core::{Column, Table};
use pipewise_features::{Data, features, mondays};
use pipewise_store::CrmData;
use pipewise_store::read::Instant;

fn simulated() -> CrmData {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org");
    let cfg = pipewise_sim::Config {
        seed: 5,
        reps: 12,
        months: 8,
        transcript_share: 0.5,
        vtt_sample: 0,
        ..pipewise_sim::Config::default()
    };
    pipewise_sim::simulate(&cfg, &path, &mut |_| {}).unwrap();
    let mut store = pipewise_store::SqliteStore::open_in_memory().unwrap();
    let sources = pipewise_ingest::sources_in_dir(&path, None).unwrap();
    let opts = pipewise_ingest::ImportOptions {
        dry_run: false,
        max_errors: 10,
        as_of: "2030-01-01T00:00:00Z".into(),
        kind: "canonical".into(),
        encoding: None,
    };
    let report =
        pipewise_ingest::run_import(&mut store, &sources, &opts, &pipewise_ingest::NoProgress)
            .unwrap();
    assert!(report.ok(), "{:#?}", report.errors);
    store.load_crm().unwrap()
}

/// The CRM as it stood at `t`.
fn as_it_was(full: &CrmData, t: Instant) -> CrmData {
    let mut d = full.clone();
    d.opportunities
        .retain(|o| o.created_at.is_some_and(|c| c <= t));
    let kept: std::collections::HashSet<String> =
        d.opportunities.iter().map(|o| o.id.clone()).collect();
    let future_history: Vec<_> = d
        .history
        .iter()
        .filter(|h| h.changed_at > t)
        .cloned()
        .collect();
    d.history
        .retain(|h| h.changed_at <= t && kept.contains(&h.opportunity_id));
    for o in &mut d.opportunities {
        // Each tracked field back to its value at t.
        for field in [
            "stage",
            "amount",
            "close_date",
            "owner_id",
            "forecast_category",
        ] {
            let past = d
                .history
                .iter()
                .filter(|h| h.opportunity_id == o.id && h.field == field)
                .last()
                .map(|h| h.value.clone());
            let first_future = future_history
                .iter()
                .find(|h| h.opportunity_id == o.id && h.field == field)
                .map(|h| h.old_value.clone());
            let value = match (past, first_future) {
                (Some(v), _) => v,
                (None, Some(old)) => old,
                (None, None) => continue,
            };
            match field {
                "stage" => o.stage = value.unwrap_or_default(),
                "amount" => o.amount = value.and_then(|v| v.parse().ok()),
                "close_date" => {
                    o.close_date = value.and_then(|v| pipewise_store::read::instant(&v))
                }
                "owner_id" => o.owner_id = value.unwrap_or_default(),
                _ => o.forecast_category = value,
            }
        }
        if o.closed_at.is_some_and(|c| c > t) || !o.stage.starts_with("closed") {
            o.closed_at = None;
            o.loss_reason = None;
        }
    }
    d.activities.retain(|a| a.occurred_at <= t);
    d.conversations.retain(|c| {
        c.started_at
            .is_some_and(|s| s + c.duration_s.unwrap_or(0) <= t)
    });
    d.leads.retain(|l| l.created_at <= t);
    d
}

fn same(a: &Table, b: &Table) -> Result<(), String> {
    assert_eq!(a.names, b.names);
    for (j, (x, y)) in a.columns.iter().zip(&b.columns).enumerate() {
        let equal = match (x, y) {
            (Column::Numeric(x), Column::Numeric(y)) => x
                .iter()
                .zip(y)
                .all(|(p, q)| p == q || (p.is_nan() && q.is_nan())),
            _ => x == y,
        };
        if !equal {
            return Err(format!("feature {} differs", a.names[j]));
        }
    }
    Ok(())
}

#[test]
fn data_after_as_of_never_changes_a_feature() {
    let full_crm = simulated();
    let full = Data::new(&full_crm);
    let dates = mondays(full.start + 35 * 86_400, full.end - 7 * 86_400);
    assert!(dates.len() >= 20, "{} dates", dates.len());
    let mut checked = 0;
    let mut varying = 0;
    let mut last: Option<Table> = None;
    for &t in dates.iter().step_by(4) {
        let (ids_full, f_full) = features(&full, t);
        let past = Data::new(&as_it_was(&full_crm, t));
        let (ids_past, f_past) = features(&past, t);
        assert_eq!(ids_full, ids_past, "open deals at {t}");
        assert!(!ids_full.is_empty());
        same(&f_full, &f_past).unwrap_or_else(|e| panic!("as of {t}: {e}"));
        checked += ids_full.len();
        // The features are not trivially constant over time.
        if let Some(prev) = &last {
            if same(prev, &f_full).is_err() {
                varying += 1;
            }
        }
        last = Some(f_full);
    }
    assert!(checked > 300, "only {checked} deal-dates checked");
    assert!(varying >= 3);
}

#[test]
fn every_family_is_populated_on_simulated_data() {
    let crm = simulated();
    let data = Data::new(&crm);
    let t = mondays(data.end - 60 * 86_400, data.end)[0];
    let (_, f) = features(&data, t);
    for d in pipewise_features::OPPORTUNITY_FEATURES {
        let col = f.column(d.name).unwrap();
        let present = (0..col.len()).filter(|&i| col.display(i).is_some()).count();
        assert!(present > 0, "{} is never present", d.name);
    }
    // Transcripts feed the communication family for some deals, not all.
    let talk = f.column("talk_ratio").unwrap();
    let with = (0..talk.len())
        .filter(|&i| talk.display(i).is_some())
        .count();
    assert!(with > 0 && with < talk.len(), "{with} of {}", talk.len());
}

/// The trailing rep, industry and account figures are relative to the org's
/// at the same date: early in the history the deals closed so far are the
/// quick ones (mostly losses), so absolute win rates start low and climb for
/// a year, and a model trained on early snapshots would misread later ones.
#[test]
fn trailing_figures_do_not_drift_as_the_history_fills_up() {
    let crm = simulated();
    let data = Data::new(&crm);
    let dates = mondays(data.start + 35 * 86_400, data.end - 7 * 86_400);
    let mean = |ts: &[Instant], name: &str| -> f64 {
        let (mut s, mut n) = (0.0, 0.0);
        for &t in ts {
            let (_, f) = features(&data, t);
            let Some(Column::Numeric(v)) = f.column(name) else {
                panic!("{name} missing")
            };
            for x in v.iter().filter(|x| x.is_finite()) {
                s += x;
                n += 1.0;
            }
        }
        assert!(n > 50.0, "{name}: {n} values");
        s / n
    };
    let (early, late) = (&dates[..6], &dates[dates.len() - 6..]);
    for name in [
        "rep_win_lift",
        "rep_stage_lift",
        "industry_win_lift",
        "product_industry_win_lift",
        "rep_industry_win_lift",
    ] {
        let (a, b) = (mean(early, name), mean(late, name));
        eprintln!("{name}: early {a:.3} late {b:.3}");
        assert!(
            a.abs() < 0.05 && b.abs() < 0.05,
            "{name}: early {a:.3}, late {b:.3}"
        );
    }
    for name in ["rep_volume_ratio", "rep_book_ratio"] {
        let (a, b) = (mean(early, name), mean(late, name));
        eprintln!("{name}: early {a:.3} late {b:.3}");
        assert!(
            (0.7..1.5).contains(&a) && (0.7..1.5).contains(&b),
            "{name}: early {a:.3}, late {b:.3}"
        );
    }
}

/// An export of current values only (no history): a tracked field's current
/// value is known from the deal's close or the export, never before. Changing
/// the current values changes no feature at an earlier snapshot.
#[test]
fn an_export_without_history_reads_no_current_value_into_the_past() {
    let mut crm = simulated();
    crm.history.clear();
    let data = Data::new(&crm);
    assert_eq!(
        data.without_history,
        ["stage", "forecast_category", "amount", "close_date"]
    );
    // The same export with every current value of the tracked fields
    // changed (closed deals keep their outcome).
    let mut other = crm.clone();
    for o in &mut other.opportunities {
        o.amount = o.amount.map(|a| a * 3.0 + 1.0);
        o.close_date = o.close_date.map(|c| c + 45 * 86_400);
        o.forecast_category = Some("commit".into());
        if !o.stage.starts_with("closed") {
            o.stage = if o.stage == "negotiation" {
                "prospecting"
            } else {
                "negotiation"
            }
            .into();
        }
    }
    let changed = Data::new(&other);
    let dates = mondays(data.start + 35 * 86_400, data.end - 7 * 86_400);
    assert!(dates.len() >= 20, "{} dates", dates.len());
    let mut rows = 0;
    for &t in &dates {
        let (ids, f) = features(&data, t);
        let (ids2, f2) = features(&changed, t);
        assert_eq!(ids, ids2, "open deals at {t}");
        same(&f, &f2).unwrap_or_else(|e| panic!("as of {t}: {e}"));
        // Open at t, so not yet closed: its tracked fields are unknown.
        for name in ["stage", "forecast_category", "amount", "days_to_close"] {
            let Some(Column::Numeric(v)) = f.column(name) else {
                panic!("{name} missing")
            };
            assert!(v.iter().all(|x| x.is_nan()), "{name} known at {t}");
        }
        rows += ids.len();
    }
    assert!(rows > 300, "only {rows} deal-dates");
    // At the end of the data the open deals' current values are known, and
    // a closed deal's final amount is known at its close.
    let (ids, f) = features(&data, data.end);
    assert!(!ids.is_empty());
    let Some(Column::Numeric(stage)) = f.column("stage") else {
        panic!("stage missing")
    };
    assert!(stage.iter().all(|x| x.is_finite()));
    let won = data
        .opps
        .iter()
        .find(|o| o.won == Some(true))
        .expect("a won deal");
    let closed = won.closed.expect("closed");
    assert!(data.amount_at(won, closed).is_some());
    assert!(data.amount_at(won, closed - 1).is_none());
}
