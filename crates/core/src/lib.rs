//! The pipewise domain model.
//!
//! This crate says *what* pipewise knows about a sales organisation — the entities
//! (reps, accounts, opportunities and their history, activities, transcripts...),
//! their fields, the closed vocabularies (stages, forecast categories, activity
//! types) and how a raw text cell becomes a typed [`Value`]. It performs no I/O:
//! the store turns the schema into tables, the importers turn files into rows, and
//! later the feature engine reads the rows back as of a date.

pub mod date;
pub mod hours;
pub mod number;
pub mod schema;
pub mod table;
pub mod transcript;
pub mod value;

pub use schema::{Entity, Field, FieldType, Vocabulary};

/// The `sequence_id` of an activity a rep logged from pipewise's list of
/// next-best actions (as sales-engagement tools record the play an activity
/// came from): how the records tell a followed recommendation from a touch
/// the rep would have made anyway.
pub const FROM_LIST_SEQUENCE: &str = "next-best-action";

/// Whether an activity outcome is a reply from the other side: `replied`,
/// `replied_positive`, `replied_negative`, `meeting_booked` (a reply that
/// booked a meeting) or a `connected` call. An unsubscribe is not a reply.
pub fn is_reply(outcome: Option<&str>) -> bool {
    matches!(
        outcome,
        Some("replied" | "replied_positive" | "replied_negative" | "meeting_booked" | "connected")
    )
}
pub use table::{CellError, Column, Table, TextTable};
pub use value::{CellFormat, ParseError, Value, parse_cell, parse_cell_with};
