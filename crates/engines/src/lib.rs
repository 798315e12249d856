//! pipewise's engines: what the product computes from the CRM.
//!
//! - [`predict`]: win and slip models from weekly snapshots, evaluated on a later
//!   time window against the naive rules, scoring and explanations;
//! - [`stage`]: the stage each open deal's evidence supports against the entered
//!   stage, flagged deals and each rep's bias;
//! - [`leads`]: lead scoring on the database's leads with the tabular engine;
//! - [`truth`]: the simulator's hidden truth, for evaluation only.

pub mod accounts;
pub mod actions;
pub mod availability;
pub mod bandit;
pub mod coach;
pub mod coach_plan;
pub mod comp;
pub mod drift;
pub mod effect;
pub mod fairness;
pub mod forecast;
pub mod lead_draft;
pub mod lead_policy;
pub mod lead_queue;
pub mod lead_sla;
pub mod leads;
pub mod predict;
pub mod roi;
pub mod segments;
pub mod stage;
pub mod territory;
pub mod truth;
pub mod whitespace;
