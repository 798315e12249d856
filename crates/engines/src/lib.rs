//! pipewise's engines: what the product computes from the CRM.
//!
//! - [`predict`]: win and slip models from weekly snapshots, evaluated on a later
//!   time window against the naive rules, scoring and explanations;
//! - [`truth`]: the simulator's hidden truth, for evaluation only.

pub mod predict;
pub mod truth;
