//! Development harness: times snapshot building and model variants on a database.
//! `cargo run --release -p pipewise-engines --example experiment -- DB [TRUTH]`
use pipewise_core::{Column, Table};
use pipewise_engines::predict::{self, Target, TrainOptions};
use pipewise_engines::truth::Truth;
use pipewise_features::Data;
use pipewise_models::{Algorithm, Classifier, FitOptions, Metrics};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let store = pipewise_store::SqliteStore::open(&args[1])?;
    let t0 = std::time::Instant::now();
    let crm = store.load_crm()?;
    let data = Data::new(&crm);
    eprintln!("load {:.1}s", t0.elapsed().as_secs_f64());
    let mut opts = TrainOptions::default();
    if let Ok(b) = std::env::var("PW_BUDGET") {
        opts.fit.budget = b.parse()?;
    }
    let dates = predict::snapshot_dates(&data, &opts);
    let t0 = std::time::Instant::now();
    let snap = predict::snapshots(&data, &dates, &mut |_, _| {});
    eprintln!(
        "snapshots {} rows {:.1}s",
        snap.opp.len(),
        t0.elapsed().as_secs_f64()
    );
    let truth = args
        .get(2)
        .map(|p| Truth::load(std::path::Path::new(p)))
        .transpose()?;
    if std::env::var("DUMP").is_ok() {
        let mut w = csv::Writer::from_path("/tmp/snap.csv")?;
        let mut head = vec![
            "date".to_string(),
            "opp".into(),
            "won".into(),
            "won_known".into(),
            "slip".into(),
            "slip_known".into(),
            "oracle".into(),
        ];
        head.extend(snap.table.names.iter().cloned());
        w.write_record(&head)?;
        for r in 0..snap.opp.len() {
            let t = snap.date[r];
            let o = snap.opp[r];
            let w_ = predict::label(&data, o, t, Target::Win);
            let s_ = predict::label(&data, o, t, Target::Slip);
            let id = &data.opps[o].id;
            let or = truth
                .as_ref()
                .and_then(|tr| tr.win_probability(id, &pipewise_features::format_date(t)));
            let mut rec = vec![
                pipewise_features::format_date(t),
                id.clone(),
                w_.map(|x| x.0.to_string()).unwrap_or_default(),
                w_.map(|x| pipewise_features::format_date(x.1))
                    .unwrap_or_default(),
                s_.map(|x| x.0.to_string()).unwrap_or_default(),
                s_.map(|x| pipewise_features::format_date(x.1))
                    .unwrap_or_default(),
                or.map(|x| x.to_string()).unwrap_or_default(),
            ];
            for c in &snap.table.columns {
                rec.push(c.display(r).unwrap_or_default());
            }
            w.write_record(&rec)?;
        }
        w.flush()?;
        eprintln!("dumped /tmp/snap.csv");
    }
    for target in [Target::Win] {
        let t0 = std::time::Instant::now();
        let tr = predict::train(&data, &snap, &dates, target, &opts, truth.as_ref())?;
        eprintln!("train {:.1}s", t0.elapsed().as_secs_f64());
        for r in &tr.report.results {
            eprintln!(
                "  {:<50} {:.3} ece {:.3}",
                r.name, r.metrics.roc_auc, r.metrics.ece
            );
        }
    }
    let _ = (
        Column::Numeric(vec![]),
        Table::default(),
        Algorithm::Gbm,
        FitOptions::default(),
        Metrics::of(&[0.1, 0.9], &[0.0, 1.0]),
    );
    let _ = Classifier::from_json("");
    Ok(())
}
