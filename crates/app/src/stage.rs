//! Entered stage against the stage the evidence supports: each open deal
//! ahead of or behind its evidence with the reasons, and each rep's stage
//! bias with its interval.

use pipewise_engines::predict::{self, Factor, Snapshots};
use pipewise_engines::stage::{self, CrossFit, DealStage, StageOptions};
use pipewise_features::Data;
use pipewise_models::Classifier;
use serde::Serialize;
use utoipa::ToSchema;

use crate::Progress;

/// The stage engine run over the data: weekly snapshots to the end of the
/// data and the cross-fitted evidence for each.
pub struct StageRun {
    pub data: Data,
    pub snap: Snapshots,
    pub cf: CrossFit,
    pub opts: StageOptions,
}

/// Fits the evidence-stage models, cross-fitted by deal. Errors when the
/// data covers fewer than four weekly snapshots after the warm-up.
pub fn run_stage(data: Data, progress: &dyn Progress) -> anyhow::Result<StageRun> {
    let opts = StageOptions::default();
    let dates = stage::snapshot_dates(&data, &opts);
    anyhow::ensure!(
        dates.len() >= 4,
        "only {} weekly snapshots after the warm-up: the data covers too little time to learn what each stage looks like",
        dates.len()
    );
    let snap = crate::snapshots(&data, &dates, progress);
    let label = "evidence-stage models (cross-fitted by deal)";
    let cf = stage::cross_fit(&data, &snap, &opts, &mut |k, n| {
        progress.report(label, k as f64 / n as f64)
    })?;
    progress.report(label, 1.0);
    Ok(StageRun {
        data,
        snap,
        cf,
        opts,
    })
}

/// An open deal's entered and evidence stage with its win and slip scores.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InspectRow {
    #[serde(flatten)]
    pub stage: DealStage,
    pub win_probability: Option<f64>,
    pub slip_probability: Option<f64>,
    /// What drives the slip probability, strongest first.
    pub slip_reasons: Vec<Factor>,
}

/// The deals open at `as_of` with their evidence stage, joined with the
/// win (and slip) scores when a win model is given.
pub fn inspection(
    run: &StageRun,
    as_of: i64,
    models: Option<(&Classifier, Option<&Classifier>)>,
) -> anyhow::Result<Vec<InspectRow>> {
    let deals = stage::inspect(&run.data, &run.cf, as_of, &run.opts, 3)?;
    let scored = match models {
        Some((w, s)) => predict::score(&run.data, as_of, w, s, 3)?,
        None => Vec::new(),
    };
    let by_id: std::collections::HashMap<&str, &predict::Scored> = scored
        .iter()
        .map(|s| (s.opportunity_id.as_str(), s))
        .collect();
    Ok(deals
        .into_iter()
        .map(|d| {
            let sc = by_id.get(d.opportunity_id.as_str());
            InspectRow {
                win_probability: sc.map(|s| s.win_probability),
                slip_probability: sc.and_then(|s| s.slip_probability),
                slip_reasons: sc.map(|s| s.slip_factors.clone()).unwrap_or_default(),
                stage: d,
            }
        })
        .collect())
}
