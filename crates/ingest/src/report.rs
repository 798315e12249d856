//! What an import did, or would do: counts, cleanings, warnings and errors.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub kind: String,
    pub sources: Vec<String>,
    pub dry_run: bool,
    /// True when the changes are in the database.
    pub committed: bool,
    pub entities: BTreeMap<String, EntityCounts>,
    /// Opportunity history entries written (from history files and from
    /// changes of tracked fields).
    pub history_recorded: u64,
    /// Parents created from references (`create_missing` in a mapping).
    pub created_from_references: BTreeMap<String, u64>,
    /// Transcript cues read (WebVTT and SubRip).
    pub transcript_cues: u64,
    /// Transcript cues that name no speaker: imported with no speaker and
    /// role `other`, and warned about.
    pub cues_without_speaker: u64,
    pub cleaned: Vec<Cleaning>,
    pub warnings: Vec<String>,
    pub errors: Vec<RowError>,
    /// More errors were found than are listed.
    pub errors_truncated: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct EntityCounts {
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows without this entity (`optional` mappings).
    pub skipped: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cleaning {
    pub file: String,
    pub column: String,
    /// The alias table that applied.
    pub rule: String,
    pub from: String,
    pub to: String,
    pub rows: u64,
}

/// One precise problem in an input file (file, line, column, value, message).
pub use pipewise_core::CellError as RowError;

impl ImportReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn counts_mut(&mut self, table: &str) -> &mut EntityCounts {
        // Called for every row: no allocation once the table has its entry.
        if !self.entities.contains_key(table) {
            self.entities
                .insert(table.to_string(), EntityCounts::default());
        }
        self.entities.get_mut(table).expect("inserted above")
    }

    /// Total rows inserted or updated.
    pub fn changed(&self) -> u64 {
        self.entities
            .values()
            .map(|c| c.inserted + c.updated)
            .sum::<u64>()
            + self.history_recorded
    }
}
