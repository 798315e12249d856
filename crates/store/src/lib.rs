//! The pipewise store.
//!
//! This is the only crate that speaks SQL. Everything above it talks to the
//! [`Store`] and [`WriteTx`] traits, so a PostgreSQL backend for team servers can
//! be added beside [`SqliteStore`] without touching importers or engines.
//!
//! Invariants kept here:
//! - every write happens inside one [`WriteTx`]; dropping it without
//!   [`WriteTx::commit`] leaves the database exactly as it was;
//! - every change of an opportunity's tracked field (stage, amount, close date,
//!   owner, forecast category) made through [`WriteTx::upsert`] is recorded in
//!   `opportunity_history` with its timestamp;
//! - an upsert that changes nothing writes nothing, so re-imports are idempotent.

pub mod access;
pub mod actions;
pub mod encryption;
pub mod erasure;
pub mod read;
mod registry;
mod sqlite;
mod stats;
pub mod subject;

pub use encryption::{Rewrite, database_key, set_database_key};
pub use read::CrmData;
pub use registry::{
    CoachingDecision, ForecastOverride, HoldoutRow, LeadTaskMark, ModelRecord, NewModel,
    ScoreRecord,
};
pub use sqlite::SqliteStore;
pub use stats::{
    DataQuality, Encryption, EntityStats, Finding, LeadSummary, OrgSummary, Pipeline,
    PipelineStage, RepSummary, ResponseBand, Stats,
};

use pipewise_core::{Entity, Value};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} was written by a newer pipewise (schema version {found}, this build knows {known}); upgrade pipewise"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("migration to schema version {version} failed: {source}")]
    Migration {
        version: i64,
        source: rusqlite::Error,
    },
    #[error(
        "cannot open database {path}: it is encrypted, or not a SQLite database; if encrypted, give its key (PIPEWISE_KEY or --key-file)"
    )]
    Encrypted { path: String },
    #[error(
        "cannot open database {path}: the key does not open it (a wrong key, or not a SQLite database)"
    )]
    WrongKey { path: String },
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{entity} has no column {column}")]
    UnknownColumn {
        entity: &'static str,
        column: String,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What an upsert did to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Inserted,
    Updated,
    Unchanged,
    /// The key was already written earlier in this transaction and the write
    /// asked to be told (`check_repeat`): nothing was written.
    Repeated,
}

/// One write of a row, with the instant its values were true of the world.
pub struct RowWrite<'a> {
    pub entity: Entity,
    /// The columns given, in the order of `values`. Columns not given are left
    /// as they are on update (and empty on insert).
    pub columns: &'a [&'static str],
    pub values: &'a [Value],
    /// When the source says this row's values took effect (a snapshot or
    /// history report's edit date). Changes of tracked fields are dated with
    /// it; without it they are dated with the transaction's `as_of`.
    pub effective_at: Option<&'a str>,
    /// Report a key already written in this transaction as
    /// [`Outcome::Repeated`] instead of writing it again (duplicate ids in a
    /// file). Costs no memory per row for tables keyed by `id`.
    pub check_repeat: bool,
    /// The row is known to exist and the write gives only some of its
    /// required columns (a partial or history-only file): update it, never
    /// insert.
    pub update_only: bool,
}

/// A backend: something that can open write transactions and answer queries.
pub trait Store {
    /// Starts an all-or-nothing write. `as_of` (UTC, `YYYY-MM-DDTHH:MM:SSZ`)
    /// dates the changes whose source gives no time of its own.
    /// `input_bytes` is about how much input the write will bring (0 when
    /// unknown): a backend may choose a bulk-load strategy for a large one.
    fn begin(&mut self, as_of: &str, input_bytes: u64) -> Result<Box<dyn WriteTx + '_>>;
    /// Counts, date ranges, data-quality findings and a pipeline summary.
    fn stats(&self) -> Result<Stats>;
    /// A digest of every imported row (not of the audit log): equal digests
    /// mean equal content.
    fn content_digest(&self) -> Result<String>;
}

pub trait WriteTx {
    /// Inserts the row, or updates the existing row with the same key when
    /// any given column differs, or does nothing. References to other rows
    /// are not checked here: the caller checks them with [`WriteTx::exists`]
    /// (the importer does for every reference, and reports the file, line and
    /// column of a missing one), and `stats` lists any orphan as a finding.
    fn upsert(&mut self, row: RowWrite<'_>) -> Result<Outcome>;
    /// Whether a row with this single-column key exists (`id`).
    fn exists(&mut self, entity: Entity, id: &str) -> Result<bool>;
    /// The current value of one column of the row with this `id` (`Null`
    /// when the row or the value does not exist).
    fn current_value(&mut self, entity: Entity, id: &str, field: &str) -> Result<Value>;
    /// A setting of the organisation (`corporate_currency`...), if set.
    fn setting(&mut self, key: &str) -> Result<Option<String>>;
    /// The id of the row whose `name` column equals `name`, if exactly one does.
    fn id_by_name(&mut self, entity: Entity, name: &str) -> Result<Option<String>>;
    /// Deletes the turns of a conversation from `seq` on (a transcript re-imported shorter).
    fn truncate_turns(&mut self, conversation_id: &str, from_seq: i64) -> Result<u64>;
    /// Announces that about `expected_rows` rows of `entity` are coming. A
    /// backend may then prepare a bulk load (SQLite: drop the table's
    /// secondary indexes and rebuild them at commit, all inside the
    /// transaction). Returns whether it did.
    fn bulk_load(&mut self, entity: Entity, expected_rows: u64) -> Result<bool>;
    /// History rows written by upserts in this transaction so far.
    fn history_written(&self) -> u64;
    /// Makes the history written so far consistent (see the backend; commit
    /// does it too). Returns, for people, each current value that disagreed
    /// with the history up to its observation and was recorded as a change then.
    fn settle_history(&mut self) -> Result<Vec<String>>;
    /// Appends to the import audit log.
    fn log_import(&mut self, kind: &str, sources: &str, report_json: &str) -> Result<()>;
    fn commit(self: Box<Self>) -> Result<()>;
}

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = sqlite::MIGRATIONS.len() as i64;
