//! The tabular model on a generated lead table whose rule is known: column
//! roles, outcome parsing, cross-validation, row-order predictions with
//! factors, the saved model, and the errors for bad files.

use pipewise_core::TextTable;
use pipewise_models::tabular::{Role, TabularModel, TabularOptions, Target};

/// Leads whose conversion depends on `score` and `source` only.
fn leads(n: usize, seed: u64) -> TextTable {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let headers = [
        "lead_id",
        "score",
        "source",
        "page",
        "created",
        "note",
        "constant",
        "empty",
        "converted",
    ];
    let sources = ["web", "referral", "event", "partner"];
    let words = [
        "pricing",
        "demo",
        "integration",
        "renewal",
        "security",
        "migration",
    ];
    let mut t = TextTable {
        file: "leads.csv".into(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
        ..Default::default()
    };
    for i in 0..n {
        let score = rnd() * 100.0;
        let source = sources[(rnd() * 4.0) as usize];
        let z = (score - 50.0) / 12.0 + if source == "referral" { 1.5 } else { 0.0 };
        let y = rnd() < 1.0 / (1.0 + (-z).exp());
        let note = format!(
            "we would like to talk about {} and {} next week, regards {}",
            words[(rnd() * 6.0) as usize],
            words[(rnd() * 6.0) as usize],
            i
        );
        t.rows.push(vec![
            format!("L{i:05}"),
            if rnd() < 0.05 {
                String::new()
            } else {
                format!("{score:.1}")
            },
            source.to_string(),
            format!("/landing/{}", (rnd() * 120.0) as usize),
            format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
            note,
            "same".into(),
            String::new(),
            if y { "yes" } else { "no" }.into(),
        ]);
        t.lines.push(i as u64 + 2);
    }
    t
}

fn target() -> Target {
    Target {
        column: "converted".into(),
        positive: None,
        negative: None,
    }
}

fn role<'a>(m: &'a TabularModel, name: &str) -> &'a Role {
    &m.schema
        .columns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .role
}

#[test]
fn learns_the_rule_and_explains_each_row() {
    let train = leads(1500, 1);
    let m = TabularModel::fit(&train, target(), &TabularOptions::default(), &|_| {}).unwrap();

    assert!(
        matches!(role(&m, "lead_id"), Role::Ignored { reason } if reason.contains("identifier"))
    );
    assert!(matches!(role(&m, "constant"), Role::Ignored { .. }));
    assert!(matches!(role(&m, "empty"), Role::Ignored { reason } if reason == "always empty"));
    assert_eq!(role(&m, "score"), &Role::Numeric);
    assert!(matches!(role(&m, "source"), Role::Categorical { levels } if levels.len() == 4));
    assert!(matches!(role(&m, "page"), Role::HighCardinality { .. }));
    assert!(matches!(
        role(&m, "created"),
        Role::Date {
            with_time: false,
            ..
        }
    ));
    assert!(
        matches!(role(&m, "note"), Role::Text { tokens } if tokens.contains(&"pricing".to_string()))
    );

    let r = &m.report;
    assert_eq!(r.rows, 1500);
    assert_eq!(r.validation.fold_auc.len(), 5);
    assert!(r.validation.metrics.roc_auc > 0.85, "{:?}", r.validation);
    assert!(r.validation.metrics.lift_top_decile > 1.5);
    assert_eq!(r.drivers[0].column, "score", "{:?}", r.drivers);
    assert!(
        r.drivers
            .iter()
            .any(|d| d.column == "source" && d.share > 0.02),
        "{:?}",
        r.drivers
    );

    // New rows: same order, a probability each, factors from the real columns.
    let new = leads(300, 2);
    let (preds, notes) = m.predict(&new, 3, false).unwrap();
    assert_eq!(preds.len(), 300);
    assert!(notes.missing_columns.is_empty());
    let score_of = |r: usize| new.rows[r][1].parse::<f64>().unwrap_or(f64::NAN);
    let (mut hi, mut lo) = (Vec::new(), Vec::new());
    for (r, p) in preds.iter().enumerate() {
        assert!((0.0..=1.0).contains(&p.probability));
        assert!(p.factors.len() <= 3);
        if score_of(r) > 80.0 {
            hi.push(p.probability);
        } else if score_of(r) < 20.0 {
            lo.push(p.probability);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&hi) > 0.8 && mean(&lo) < 0.2,
        "{} {}",
        mean(&hi),
        mean(&lo)
    );
    let top = &preds
        .iter()
        .find(|p| !p.factors.is_empty())
        .unwrap()
        .factors[0];
    assert!(top.text().contains('='), "{}", top.text());

    // The saved model predicts the same.
    let back = TabularModel::from_json(&m.to_json()).unwrap();
    let (again, _) = back.predict(&new, 3, false).unwrap();
    assert_eq!(preds, again);
}

#[test]
fn new_categories_missing_columns_and_bad_cells() {
    let train = leads(600, 3);
    let m = TabularModel::fit(&train, target(), &TabularOptions::default(), &|_| {}).unwrap();

    let mut new = leads(50, 4);
    new.rows[0][2] = "podcast".into();
    let (_, notes) = m.predict(&new, 2, false).unwrap();
    assert_eq!(notes.unseen_categories, vec![("source".to_string(), 1)]);

    // A column the model uses is missing: an error naming it, or empty on request.
    let mut lacking = new.clone();
    lacking.headers.remove(1);
    for r in &mut lacking.rows {
        r.remove(1);
    }
    let e = m.predict(&lacking, 2, false).err().unwrap().to_string();
    assert!(
        e.contains("\"score\"") && e.contains("--allow-missing-columns"),
        "{e}"
    );
    let (p, notes) = m.predict(&lacking, 2, true).unwrap();
    assert_eq!(p.len(), 50);
    assert_eq!(notes.missing_columns, vec!["score".to_string()]);

    // A number column with text: file, line, column, value.
    let mut bad = new.clone();
    bad.rows[6][1] = "lots".into();
    let e = m.predict(&bad, 2, false).err().unwrap().to_string();
    assert_eq!(
        e,
        "leads.csv:8:2: column \"score\": value \"lots\": expected a number"
    );

    // Outcomes that are not outcomes.
    let mut odd = leads(100, 5);
    odd.rows[9][8] = "maybe".into();
    let e = TabularModel::fit(&odd, target(), &TabularOptions::default(), &|_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("leads.csv:11:9: column \"converted\": value \"maybe\""),
        "{e}"
    );
    // ... unless the positive value is named (then everything else is 0), or
    // both are named (then other values are skipped).
    let t = Target {
        column: "converted".into(),
        positive: Some("YES".into()),
        negative: Some("no".into()),
    };
    let m = TabularModel::fit(&odd, t, &TabularOptions::default(), &|_| {}).unwrap();
    assert_eq!((m.report.rows, m.report.skipped), (99, 1));

    let e = TabularModel::fit(
        &odd,
        Target {
            column: "won".into(),
            positive: None,
            negative: None,
        },
        &TabularOptions::default(),
        &|_| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("no column \"won\" (the target)"), "{e}");
}

#[test]
fn time_ordered_validation_trains_on_the_past() {
    let t = leads(800, 6);
    let opts = TabularOptions {
        time_column: Some("created".into()),
        ..TabularOptions::default()
    };
    let m = TabularModel::fit(&t, target(), &opts, &|_| {}).unwrap();
    assert_eq!(m.report.validation.fold_auc.len(), 4);
    assert!(
        m.report
            .validation
            .scheme
            .starts_with("time-ordered on created")
    );
    // Each later block is predicted from the earlier ones only: 4/5 of rows.
    assert_eq!(m.report.validation.metrics.rows, 800 - 800 / 5);
}
