//! The slow analyses the server keeps ready: the coaching run, lead scores,
//! territories and accounts, the evidence-stage fit and the forecast's models. Each is computed in the
//! background after every load (in that order, one at a time: they share the
//! machine with the requests) and read by every caller through their scope.
//! Until one is ready its routes answer "computing" with how far it is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use pipewise_engines::coach::CoachOptions;
use pipewise_engines::coach_plan::Catalogue;
use pipewise_engines::stage::{self, RepBias};
use pipewise_features::conversation::Trackers;
use pipewise_features::format_date;
use pipewise_store::SqliteStore;
use pipewise_store::read::CrmData;
use serde::Serialize;
use utoipa::ToSchema;

use crate::coaching::{self, CoachRun};
use crate::forecasting::ForecastBase;
use crate::leads::LeadBase;
use crate::stage::{InspectRow, inspection, run_stage};
use crate::{AppError, Progress, load_data};

/// One analysis: being computed, ready, or failed with the reason.
pub enum Slot<T> {
    Pending {
        since: Instant,
        step: String,
        fraction: f64,
    },
    Ready(Arc<T>),
    Failed(String),
}

impl<T> Slot<T> {
    fn pending() -> Self {
        Slot::Pending {
            since: Instant::now(),
            step: "waiting".into(),
            fraction: 0.0,
        }
    }

    fn status(&self) -> String {
        match self {
            Slot::Pending {
                since,
                step,
                fraction,
            } => format!(
                "computing for {} s: {step} {:.0}%",
                since.elapsed().as_secs(),
                fraction * 100.0
            ),
            Slot::Ready(_) => "ready".into(),
            Slot::Failed(why) => format!("unavailable: {why}"),
        }
    }
}

/// Stage bias and the open deals' evidence stage, as of the data's end.
pub struct StageBase {
    pub as_of: i64,
    /// First and last weekly snapshot the bias is measured over.
    pub from: Option<String>,
    pub to: Option<String>,
    pub bias: Vec<RepBias>,
    pub rows: Vec<InspectRow>,
    /// Each open deal's evidence stage and flag, by opportunity id.
    pub evidence: crate::book::Evidence,
    pub win_model_version: Option<i64>,
    pub slip_model_version: Option<i64>,
    /// The record by group (fairness): each built-in group of reps and of
    /// customers, entered stages against the evidence; `Err` with why not.
    pub record: Result<Vec<pipewise_engines::fairness::RecordAudit>, String>,
}

/// A flag as the API spells it.
pub fn flag_name(f: stage::Flag) -> &'static str {
    match f {
        stage::Flag::AheadOfEvidence => "ahead_of_evidence",
        stage::Flag::BehindEvidence => "behind_evidence",
        stage::Flag::InLine => "in_line",
    }
}

/// The coaching run with its catalogue and options.
pub struct CoachBase {
    pub run: CoachRun,
    pub catalogue: Catalogue,
    pub opts: CoachOptions,
    /// Every rep's plan (profile order), made with the decisions as of the
    /// stamp (the number of decisions recorded: they are only appended).
    plans: std::sync::Mutex<Option<(usize, Arc<Vec<pipewise_engines::coach_plan::Plan>>)>>,
    /// Each call's (rep on it, current owner of the deal or lead it is
    /// about), in the run's order, and the calls by id: who may see a call.
    pub call_owners: Vec<[Option<String>; 2]>,
    pub call_index: std::collections::HashMap<String, usize>,
}

impl CoachBase {
    pub fn new(run: CoachRun, catalogue: Catalogue, opts: CoachOptions) -> CoachBase {
        let call_owners = crate::calls::call_owners(&run.crm);
        let call_index = run
            .crm
            .conversations
            .iter()
            .enumerate()
            .map(|(k, c)| (c.id.clone(), k))
            .collect();
        CoachBase {
            run,
            catalogue,
            opts,
            plans: std::sync::Mutex::new(None),
            call_owners,
            call_index,
        }
    }

    /// Every rep's plan with the latest decisions; made again only when a
    /// decision was recorded since (`stamp`).
    pub fn plans(
        &self,
        stamp: usize,
        decisions: &std::collections::HashMap<String, pipewise_engines::coach_plan::DecisionNote>,
    ) -> Arc<Vec<pipewise_engines::coach_plan::Plan>> {
        let mut g = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, p)) = &*g
            && *s == stamp
        {
            return p.clone();
        }
        let all: Vec<usize> = (0..self.run.profiles.reps.len()).collect();
        let p = Arc::new(coaching::plans_for(
            &self.run,
            &all,
            &self.catalogue,
            &self.opts,
            decisions,
        ));
        *g = Some((stamp, p.clone()));
        p
    }
}

/// The analyses over one database version.
pub struct Analyses {
    generation: AtomicU64,
    pub coach: RwLock<Slot<CoachBase>>,
    pub leads: RwLock<Slot<LeadBase>>,
    pub territories: RwLock<Slot<crate::territories::TerritoryBase>>,
    pub stage: RwLock<Slot<StageBase>>,
    pub forecast: RwLock<Slot<ForecastBase>>,
    /// (analysis, seconds) of the analyses finished since last taken.
    timings: std::sync::Mutex<Vec<(&'static str, f64)>>,
    /// Lead refreshes asked for while one runs (they run once more after it).
    leads_dirty: std::sync::Mutex<(bool, bool)>,
}

/// Where an analysis reports progress: its slot, while the generation is current.
struct SlotProgress<'a, T> {
    owner: &'a Analyses,
    slot: &'a RwLock<Slot<T>>,
    generation: u64,
}

impl<T: Send + Sync> Progress for SlotProgress<'_, T> {
    fn report(&self, step: &str, fraction: f64) {
        if self.owner.generation.load(Ordering::SeqCst) != self.generation {
            return;
        }
        let mut s = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if let Slot::Pending {
            since,
            step: st,
            fraction: f,
        } = &mut *s
        {
            if st != step {
                if st == "waiting" {
                    *since = Instant::now();
                }
                *st = step.to_string();
            }
            *f = fraction.clamp(0.0, 1.0);
        }
    }
}

/// Which analyses are ready, or how far each is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalysesStatus {
    pub coaching: String,
    pub leads: String,
    pub territories: String,
    pub stage: String,
    pub forecast: String,
}

impl Analyses {
    pub fn new() -> Arc<Analyses> {
        Arc::new(Analyses {
            generation: AtomicU64::new(0),
            coach: RwLock::new(Slot::pending()),
            leads: RwLock::new(Slot::pending()),
            territories: RwLock::new(Slot::pending()),
            stage: RwLock::new(Slot::pending()),
            forecast: RwLock::new(Slot::pending()),
            leads_dirty: std::sync::Mutex::new((false, false)),
            timings: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn status(&self) -> AnalysesStatus {
        fn st<T>(slot: &RwLock<Slot<T>>) -> String {
            slot.read().unwrap_or_else(|p| p.into_inner()).status()
        }
        AnalysesStatus {
            coaching: st(&self.coach),
            leads: st(&self.leads),
            territories: st(&self.territories),
            stage: st(&self.stage),
            forecast: st(&self.forecast),
        }
    }

    /// True when every analysis is ready or failed.
    pub fn settled(&self) -> bool {
        let done = |s: &str| !s.starts_with("computing");
        let st = self.status();
        done(&st.coaching)
            && done(&st.leads)
            && done(&st.territories)
            && done(&st.stage)
            && done(&st.forecast)
    }

    fn get<T>(slot: &RwLock<Slot<T>>, what: &str) -> Result<Arc<T>, AppError> {
        match &*slot.read().unwrap_or_else(|p| p.into_inner()) {
            Slot::Ready(t) => Ok(t.clone()),
            Slot::Failed(why) => Err(AppError::Unavailable(format!("{what}: {why}"))),
            s => Err(AppError::Computing(format!(
                "the {what} is {}; try again shortly",
                s.status()
            ))),
        }
    }

    pub fn coaching(&self) -> Result<Arc<CoachBase>, AppError> {
        Self::get(&self.coach, "coaching analysis")
    }

    pub fn leads(&self) -> Result<Arc<LeadBase>, AppError> {
        Self::get(&self.leads, "lead scoring")
    }

    pub fn territories(&self) -> Result<Arc<crate::territories::TerritoryBase>, AppError> {
        Self::get(&self.territories, "territory analysis")
    }

    /// Re-scores the open leads only (after an inbound lead), in the
    /// background; the previous scores answer meanwhile. Asks made while a
    /// refresh runs are served by one more run after it.
    pub fn refresh_leads(self: &Arc<Self>, path: PathBuf) {
        {
            let mut d = self.leads_dirty.lock().unwrap_or_else(|p| p.into_inner());
            if d.0 {
                d.1 = true;
                return;
            }
            d.0 = true;
        }
        let me = self.clone();
        let _ = std::thread::Builder::new()
            .name("leads".into())
            .spawn(move || {
                loop {
                    let generation = me.generation.load(Ordering::SeqCst);
                    let r = SqliteStore::open(&path)
                        .map_err(anyhow::Error::from)
                        .and_then(|store| Ok((Arc::new(store.load_crm()?), store)))
                        .and_then(|(crm, store)| crate::leads::build(&crm, &store));
                    if let Ok(b) = r
                        && me.current(generation)
                    {
                        *me.leads.write().unwrap_or_else(|p| p.into_inner()) =
                            Slot::Ready(Arc::new(b));
                    }
                    let mut d = me.leads_dirty.lock().unwrap_or_else(|p| p.into_inner());
                    if d.1 {
                        d.1 = false;
                        continue;
                    }
                    d.0 = false;
                    break;
                }
            });
    }

    pub fn stages(&self) -> Result<Arc<StageBase>, AppError> {
        Self::get(&self.stage, "evidence-stage analysis")
    }

    pub fn forecasts(&self) -> Result<Arc<ForecastBase>, AppError> {
        Self::get(&self.forecast, "forecast")
    }

    /// Recomputes everything from the database at `path` in a background
    /// thread, from `crm` when the caller has loaded the records already;
    /// a later call supersedes an earlier one still running.
    pub fn start(self: &Arc<Self>, path: PathBuf, crm: Option<Arc<CrmData>>) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // What is ready keeps answering until its successor is ready.
        fn restart<T>(slot: &RwLock<Slot<T>>) {
            let mut s = slot.write().unwrap_or_else(|p| p.into_inner());
            if !matches!(*s, Slot::Ready(_)) {
                *s = Slot::pending();
            }
        }
        restart(&self.coach);
        restart(&self.leads);
        restart(&self.territories);
        restart(&self.stage);
        restart(&self.forecast);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("analyses".into())
            .spawn(move || me.compute(&path, generation, crm));
        if let Err(e) = spawned {
            let why = format!("cannot start the analyses: {e}");
            *self.coach.write().unwrap_or_else(|p| p.into_inner()) = Slot::Failed(why.clone());
            *self.leads.write().unwrap_or_else(|p| p.into_inner()) = Slot::Failed(why.clone());
            *self.territories.write().unwrap_or_else(|p| p.into_inner()) =
                Slot::Failed(why.clone());
            *self.stage.write().unwrap_or_else(|p| p.into_inner()) = Slot::Failed(why.clone());
            *self.forecast.write().unwrap_or_else(|p| p.into_inner()) = Slot::Failed(why);
        }
    }

    /// (analysis, seconds) of every analysis finished since the last call:
    /// `coaching`, `lead_scores`, `territories`, `evidence_stage`, `forecast_models`.
    pub fn take_timings(&self) -> Vec<(&'static str, f64)> {
        std::mem::take(&mut *self.timings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn timed<T>(
        &self,
        name: &'static str,
        slot: &RwLock<Slot<T>>,
        generation: u64,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) {
        let started = Instant::now();
        let r = f();
        self.timings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, started.elapsed().as_secs_f64()));
        self.set(slot, generation, r);
    }

    fn set<T>(&self, slot: &RwLock<Slot<T>>, generation: u64, r: anyhow::Result<T>) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let started = match &*slot.read().unwrap_or_else(|p| p.into_inner()) {
            Slot::Pending { since, .. } => since.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        let value = match r {
            Ok(t) => Slot::Ready(Arc::new(t)),
            Err(e) => Slot::Failed(format!("{e:#}")),
        };
        tracing::info!(status = %value.status(), seconds = started, "analysis finished");
        *slot.write().unwrap_or_else(|p| p.into_inner()) = value;
    }

    fn current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    fn compute(&self, path: &std::path::Path, generation: u64, crm: Option<Arc<CrmData>>) {
        let loaded = (|| -> anyhow::Result<_> {
            let store = SqliteStore::open(path)?;
            let crm = match crm {
                Some(crm) => crm,
                None => Arc::new(store.load_crm()?),
            };
            let models = coaching::active_models(&store)?;
            let win = crate::book::active_model(&store, "win")?;
            let slip = crate::book::active_model(&store, "slip")?;
            Ok((crm, models, win, slip, store))
        })();
        let (crm, models, win, slip, store) = match loaded {
            Ok(x) => x,
            Err(e) => {
                let why = format!("cannot read the database: {e:#}");
                self.set(&self.coach, generation, Err(anyhow::anyhow!(why.clone())));
                self.set(&self.leads, generation, Err(anyhow::anyhow!(why.clone())));
                self.set(
                    &self.territories,
                    generation,
                    Err(anyhow::anyhow!(why.clone())),
                );
                self.set(&self.stage, generation, Err(anyhow::anyhow!(why.clone())));
                self.set(&self.forecast, generation, Err(anyhow::anyhow!(why)));
                return;
            }
        };
        // Coaching (seconds).
        let opts = CoachOptions::default();
        self.timed("coaching", &self.coach, generation, || {
            coaching::run_coach(
                crm.clone(),
                models.as_ref().map(|(w, s)| (w, s)),
                &opts,
                &Trackers::default_set(),
            )
            .map(|run| CoachBase::new(run, Catalogue::default_set(), opts))
        });
        // Lead scores (seconds).
        self.timed("lead_scores", &self.leads, generation, || {
            crate::leads::build(&crm, &store)
        });
        // Territories and accounts (seconds).
        self.timed("territories", &self.territories, generation, || {
            crate::territories::build(&crm)
        });
        let excluded = crate::forecasting::excluded_deals(&store);
        drop(store);
        if !self.current(generation) {
            return;
        }
        // Evidence stage (tens of seconds).
        let progress = SlotProgress {
            owner: self,
            slot: &self.stage,
            generation,
        };
        self.timed("evidence_stage", &self.stage, generation, || {
            let data = load_data(&crm)?;
            let run = run_stage(data, &progress)?;
            let as_of = run.data.end;
            let bias = stage::rep_bias(&run.data, &run.snap, &run.cf, &run.opts);
            let rows = inspection(
                &run,
                as_of,
                win.as_ref().map(|w| (&w.0, slip.as_ref().map(|s| &s.0))),
            )?;
            let evidence = rows
                .iter()
                .map(|r| {
                    (
                        r.stage.opportunity_id.clone(),
                        (r.stage.evidence_stage, flag_name(r.stage.flag)),
                    )
                })
                .collect();
            let all_groups: Vec<String> = crate::fairness::REP_GROUPS
                .iter()
                .chain(crate::fairness::CUSTOMER_GROUPS.iter())
                .map(|g| g.to_string())
                .collect();
            let record = crate::fairness::record_audits(&crm, &run, &all_groups, None)
                .map_err(|e| format!("{e:#}"));
            Ok(StageBase {
                record,
                evidence,
                as_of,
                from: run.snap.date.first().map(|&d| format_date(d)),
                to: run.snap.date.last().map(|&d| format_date(d)),
                bias,
                rows,
                win_model_version: win.as_ref().map(|w| w.2),
                slip_model_version: slip.as_ref().map(|s| s.2),
            })
        });
        if !self.current(generation) {
            return;
        }
        // Forecast (tens of seconds to minutes).
        let progress = SlotProgress {
            owner: self,
            slot: &self.forecast,
            generation,
        };
        self.timed("forecast_models", &self.forecast, generation, || {
            load_data(&crm).and_then(|data| {
                let registered = win.as_ref().map(|w| (w.0.clone(), w.2));
                let base = ForecastBase::build(data, registered, &progress)?;
                base.set_excluded(excluded?);
                base.warm(&progress);
                Ok(base)
            })
        });
    }
}
