//! The embedded SQLite backend (one file, WAL mode, foreign keys on).

use std::path::Path;

use pipewise_core::schema::HISTORY_FIELDS;
use pipewise_core::{Entity, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use crate::{Outcome, Result, RowWrite, Store, StoreError, WriteTx};

/// Versioned migrations, applied in order; `PRAGMA user_version` records how
/// many have been applied. Never edit a released migration: append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_models.sql"),
    include_str!("migrations/0003_coaching.sql"),
    include_str!("migrations/0004_history_seq_currencies.sql"),
    include_str!("migrations/0005_turn_speech.sql"),
    include_str!("migrations/0006_access.sql"),
    include_str!("migrations/0007_forecast_overrides.sql"),
    include_str!("migrations/0008_lead_tasks.sql"),
    include_str!("migrations/0009_availability.sql"),
    include_str!("migrations/0010_erasure.sql"),
    include_str!("migrations/0011_model_holdout.sql"),
    include_str!("migrations/0012_actions.sql"),
    include_str!("migrations/0013_message_tests.sql"),
];

pub struct SqliteStore {
    pub(crate) conn: Connection,
    path: String,
    /// The file is encrypted (SQLCipher): see [`crate::encryption`].
    pub(crate) encrypted: bool,
    /// A shared advisory lock on the file while it is open, so that
    /// rewriting it under another key ([`SqliteStore::rewrite_keyed`]),
    /// which needs the only one, is refused while anyone has it open.
    _in_use: Option<std::fs::File>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up
    /// to date, with the process's key ([`crate::set_database_key`]): see
    /// [`Self::open_with_key`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_key(path.as_ref(), crate::database_key().as_deref())
    }

    /// Opens (creating if needed) the database file with `key`: a new file
    /// is created encrypted when there is a key; a plaintext file opens as
    /// plaintext whatever the key; an encrypted file needs its key.
    /// Errors: [`StoreError::Encrypted`] (no key for an encrypted file),
    /// [`StoreError::WrongKey`], a key shorter than 16 bytes for a new file,
    /// and the usual open and migration errors.
    pub fn open_with_key(path: impl AsRef<Path>, key: Option<&str>) -> Result<Self> {
        let mut store = Self::open_unlocked(path.as_ref(), key)?;
        // Advisory (flock), independent of SQLite's own locks; a file
        // system without it just goes without.
        if let Ok(f) = std::fs::File::open(path.as_ref())
            && f.lock_shared().is_ok()
        {
            store._in_use = Some(f);
        }
        Ok(store)
    }

    /// [`Self::open_with_key`] without the in-use lock (for the rewrite,
    /// which holds the exclusive one).
    pub(crate) fn open_unlocked(path: &Path, key: Option<&str>) -> Result<Self> {
        use crate::encryption::FileState;
        let path_s = path.display().to_string();
        let state = crate::encryption::file_state(path)?;
        let key = match (state, key) {
            (FileState::Plain, _) | (FileState::New, None) => None,
            (FileState::Encrypted, None) => return Err(StoreError::Encrypted { path: path_s }),
            (FileState::New | FileState::Encrypted, Some(k)) => {
                if state == FileState::New && k.len() < crate::encryption::MIN_KEY_BYTES {
                    return Err(StoreError::Invalid(format!(
                        "the key has {} bytes: give {} or more",
                        k.len(),
                        crate::encryption::MIN_KEY_BYTES
                    )));
                }
                Some(k)
            }
        };
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path_s.clone(),
            source,
        })?;
        if let Some(k) = key {
            crate::encryption::apply_key(&conn, k, &path_s)?;
        }
        Self::setup(conn, path_s, key.is_some())
    }

    /// An in-memory database (tests, dry runs of tools).
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::setup(conn, ":memory:".into(), false)
    }

    fn setup(conn: Connection, path: String, encrypted: bool) -> Result<Self> {
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        // Not a database at all (or encrypted): say so before anything else.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(open_err)?;
        // Memory stays bounded whatever the data size: a 16 MiB page cache, and
        // sorts (index builds) that spill to temporary files, not to memory.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = FILE;
             PRAGMA threads = 2;",
        )
        .map_err(open_err)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{PAGE_CACHE_KIB}"))
            .map_err(open_err)?;
        if encrypted {
            // SQLite's temporary files are not encrypted: keep them in memory.
            conn.execute_batch("PRAGMA temp_store = MEMORY")
                .map_err(open_err)?;
        }
        let mut store = SqliteStore {
            conn,
            path,
            encrypted,
            _in_use: None,
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn migrate(&mut self) -> Result<()> {
        let current = self.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = i as i64 + 1;
            let tx = self
                .conn
                .transaction()
                .map_err(|source| StoreError::Migration { version, source })?;
            tx.execute_batch(sql)
                .map_err(|source| StoreError::Migration { version, source })?;
            tx.pragma_update(None, "user_version", version)
                .map_err(|source| StoreError::Migration { version, source })?;
            tx.commit()
                .map_err(|source| StoreError::Migration { version, source })?;
        }
        Ok(())
    }

    /// Column names of a table, as the database declares them (used by tests
    /// that hold the schema and the migrations together).
    pub fn table_columns(&self, table: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 OR hidden = 2")?;
        let cols = st
            .query_map([table], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(cols)
    }
}

/// Binds a core [`Value`] as an SQL parameter without copying it.
pub(crate) struct Sql<'a>(pub &'a Value);

impl ToSql for Sql<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Float(x) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*x)),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
        })
    }
}

pub(crate) fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(x) => Value::Float(x),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

/// The statements for one (entity, column set), built once per transaction.
struct Statements {
    insert: String,
    /// The insert takes one more parameter: the opportunity's `state_at`.
    state_param: bool,
    /// `None` when every given column is part of the key.
    update: Option<String>,
    /// Positions (in the given columns) of the key columns.
    key_pos: Vec<usize>,
    /// (position in given columns, field name) of tracked history fields.
    tracked: Vec<(usize, &'static str)>,
    select_tracked: Option<String>,
    /// `SELECT rowid ... WHERE key` for tables keyed by `id`.
    select_rowid: Option<String>,
}

/// Which keys of one table were written in the current transaction, without
/// keeping the keys: rows inserted by it have a rowid above the table's
/// maximum at its start, and pre-existing rows it wrote are marked in a bitmap
/// over rowids (one bit per row of the table, not per row of the file).
/// Tables with composite keys keep a 64-bit fingerprint per key written.
enum Written {
    Rowid { max_before: i64, touched: Vec<u64> },
    Keys(std::collections::HashSet<u64>),
}

impl Written {
    /// Records a write of an existing row; returns whether it was already written.
    fn mark_rowid(&mut self, rowid: i64) -> bool {
        let Written::Rowid {
            max_before,
            touched,
        } = self
        else {
            return false;
        };
        if rowid > *max_before {
            return true;
        }
        let (w, b) = (
            (rowid.max(0) as u64 / 64) as usize,
            rowid.max(0) as u64 % 64,
        );
        if touched.len() <= w {
            touched.resize(w + 1, 0);
        }
        let seen = touched[w] & (1 << b) != 0;
        touched[w] |= 1 << b;
        seen
    }
    fn mark_key(&mut self, values: &[Value], key_pos: &[usize]) -> bool {
        let Written::Keys(set) = self else {
            return false;
        };
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for &k in key_pos {
            format!("{:?}", values[k]).hash(&mut h);
        }
        !set.insert(h.finish())
    }
}

fn build_statements(entity: Entity, columns: &[&'static str]) -> Result<Statements> {
    let table = entity.table();
    for c in columns {
        if entity.field(c).is_none() {
            return Err(StoreError::UnknownColumn {
                entity: table,
                column: (*c).to_string(),
            });
        }
    }
    let mut key_pos = Vec::new();
    for k in entity.key() {
        match columns.iter().position(|c| c == k) {
            Some(p) => key_pos.push(p),
            None => {
                return Err(StoreError::Invalid(format!(
                    "a write to {table} must include its key column {k}"
                )));
            }
        }
    }
    let mut placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let mut insert_columns = columns.to_vec();
    // An opportunity's current values are dated with the time they were
    // observed (the row's effective time, or the import's as-of).
    let state_param = entity == Entity::Opportunity && !columns.contains(&"state_at");
    if state_param {
        insert_columns.push("state_at");
        placeholders.push(format!("?{}", columns.len() + 1));
    }
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
        insert_columns.join(", "),
        placeholders.join(", ")
    );
    let non_key: Vec<usize> = (0..columns.len())
        .filter(|i| !key_pos.contains(i))
        .collect();
    let key_where: Vec<String> = key_pos
        .iter()
        .map(|&p| format!("{} = ?{}", columns[p], p + 1))
        .collect();
    let update = (!non_key.is_empty()).then(|| {
        let sets: Vec<String> = non_key
            .iter()
            .map(|&p| format!("{} = ?{}", columns[p], p + 1))
            .collect();
        let lhs: Vec<&str> = non_key.iter().map(|&p| columns[p]).collect();
        let rhs: Vec<String> = non_key.iter().map(|&p| format!("?{}", p + 1)).collect();
        format!(
            "UPDATE {table} SET {} WHERE {} AND ({}) IS NOT ({})",
            sets.join(", "),
            key_where.join(" AND "),
            lhs.join(", "),
            rhs.join(", ")
        )
    });
    let tracked: Vec<(usize, &'static str)> = if entity == Entity::Opportunity {
        columns
            .iter()
            .enumerate()
            .filter(|(_, c)| HISTORY_FIELDS.values.contains(c))
            .map(|(i, c)| (i, *c))
            .collect()
    } else {
        Vec::new()
    };
    let select_tracked = (!tracked.is_empty()).then(|| {
        let cols: Vec<&str> = tracked.iter().map(|(_, c)| *c).collect();
        format!(
            "SELECT {}, state_at FROM opportunities WHERE id = ?1",
            cols.join(", ")
        )
    });
    let select_rowid = (entity.key().len() == 1)
        .then(|| format!("SELECT rowid FROM {table} WHERE {} = ?1", entity.key()[0]));
    Ok(Statements {
        insert,
        state_param,
        update,
        key_pos,
        tracked,
        select_tracked,
        select_rowid,
    })
}

pub(crate) struct SqliteTx<'a> {
    conn: &'a Connection,
    as_of: String,
    history: u64,
    done: bool,
    /// Statements per (entity, column set); a handful per import, searched linearly.
    /// With each, its insert prepared once: the insert runs for every row of a
    /// bulk load, and looking it up in the connection's statement cache (by
    /// hashing its text) is measurable there.
    statements: Vec<(
        Entity,
        Vec<&'static str>,
        Statements,
        rusqlite::Statement<'a>,
    )>,
    /// Secondary indexes dropped for a bulk load, recreated before commit.
    deferred_indexes: Vec<(String, String)>,
    written: Vec<(Entity, Written)>,
    /// The database was switched to a rollback journal for this (bulk)
    /// transaction; back to WAL when it ends.
    journal_switched: bool,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        // Outside import transactions SQLite enforces references itself.
        let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON");
        if self.journal_switched {
            let _ = self
                .conn
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
        }
    }
}

/// The page cache, in KiB: caps the store's memory whatever the data size.
const PAGE_CACHE_KIB: u32 = 16_384;
/// The page cache while a bulk load's indexes are rebuilt: it sizes the
/// sorter's in-memory runs.
const SORT_RUN_KIB: u32 = 2_048;

/// From this much input on, a write transaction is a bulk load (about
/// 80,000 rows of a typical CSV).
const BULK_MIN_BYTES: u64 = 8 << 20;

/// Below this many expected rows, indexes are maintained row by row.
const BULK_MIN_ROWS: u64 = 100_000;

/// Records that `field` of `opp` took `value` at `at`. A change at an
/// instant that already has one is appended after it (`seq` + 1) unless one
/// of them already holds the value (a re-import). The (opportunity, field)
/// is marked for [`normalise_history`].
fn write_history(
    conn: &Connection,
    counter: &mut u64,
    opp: &str,
    field: &str,
    at: &str,
    value: Option<&str>,
    old: Option<&str>,
) -> Result<()> {
    let (max_seq, same): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT max(seq), max(value IS ?4) FROM opportunity_history
             WHERE opportunity_id = ?1 AND field = ?2 AND changed_at = ?3",
        )?
        .query_row(params![opp, field, at, value], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if same == Some(1) {
        return Ok(());
    }
    let seq = max_seq.map_or(0, |s| s + 1);
    let n = conn
        .prepare_cached(
            "INSERT INTO opportunity_history (opportunity_id, field, changed_at, seq, value, old_value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![opp, field, at, seq, value, old])?;
    *counter += n as u64;
    touch_history(conn, opp, field)
}

fn touch_history(conn: &Connection, opp: &str, field: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO temp.touched_history VALUES (?1, ?2)")?
        .execute(params![opp, field])?;
    Ok(())
}

/// Makes the history of every (opportunity, field) written in this
/// transaction consistent, whatever the order files came in:
/// - the current value was observed at the opportunity's `state_at`: where the
///   history has no value then, or another, the observation is recorded there
///   (unless it is the history's own later value);
/// - an entry that repeats the value before it is no change, and is removed;
/// - each entry's `old_value` is the value of the entry before it (the first
///   keeps the one its source gave);
/// - the opportunity's current value is its latest entry's (by time, then
///   `seq`), not the last file's.
///
/// So importing a current-state export and a history export in either order
/// gives the same database.
///
/// Returns, for people, each current value that disagreed with the history
/// up to its observation (and no later history explains it): recorded as a
/// change at the time of the observation.
fn normalise_history(conn: &Connection) -> Result<Vec<String>> {
    let touched: i64 = conn.query_row("SELECT count(*) FROM temp.touched_history", [], |r| {
        r.get(0)
    })?;
    if touched == 0 {
        return Ok(Vec::new());
    }
    // The current values were observed at state_at. Where the history has
    // no value then, or another one, the observation is recorded as a change
    // at that time, unless the value is the history's own later value (the
    // current value was set from the history by an earlier import).
    let mut observations: Vec<(String, String, String, Value, Option<String>)> = Vec::new();
    let mut disagreements: Vec<String> = Vec::new();
    for field in HISTORY_FIELDS.values {
        let mut st = conn.prepare(&format!(
            "SELECT o.id, o.state_at, o.{field},
                    (SELECT h.value FROM opportunity_history h WHERE h.opportunity_id = o.id
                       AND h.field = '{field}' AND h.changed_at <= o.state_at
                     ORDER BY h.changed_at DESC, h.seq DESC LIMIT 1),
                    (SELECT h.value FROM opportunity_history h WHERE h.opportunity_id = o.id
                       AND h.field = '{field}' AND h.changed_at > o.state_at
                     ORDER BY h.changed_at DESC, h.seq DESC LIMIT 1),
                    EXISTS (SELECT 1 FROM opportunity_history h WHERE h.opportunity_id = o.id
                       AND h.field = '{field}' AND h.changed_at > o.state_at)
             FROM temp.touched_history t JOIN opportunities o ON o.id = t.opportunity_id
             WHERE t.field = '{field}' AND o.state_at IS NOT NULL"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let current = from_sql(r.get_ref(2)?);
            let before: Option<String> = r.get(3)?;
            let after: Option<String> = r.get(4)?;
            let later: bool = r.get(5)?;
            let equal = |l: Option<&str>| match (&current, l) {
                (Value::Float(x), Some(l)) => l.parse::<f64>().is_ok_and(|y| y == *x),
                (Value::Int(x), Some(l)) => l.parse::<f64>().is_ok_and(|y| y == *x as f64),
                (c, l) => c.to_text().as_deref() == l,
            };
            if equal(before.as_deref()) || (later && equal(after.as_deref())) {
                continue;
            }
            let id: String = r.get(0)?;
            let at: String = r.get(1)?;
            if before.is_some() && !later {
                disagreements.push(format!(
                    "{id} {field} {} at {at} (history then: {})",
                    current.to_text().unwrap_or_else(|| "empty".into()),
                    before.as_deref().unwrap_or("none")
                ));
            }
            observations.push((id, field.to_string(), at, current, before));
        }
    }
    let mut counter = 0;
    for (id, field, at, current, last) in observations {
        write_history(
            conn,
            &mut counter,
            &id,
            &field,
            &at,
            current.to_text().as_deref(),
            last.as_deref(),
        )?;
    }
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS history_order (
             opportunity_id, field, changed_at, seq, value, old_value, prev_value, rn);
         DELETE FROM temp.history_order;
         INSERT INTO temp.history_order
             SELECT h.opportunity_id, h.field, h.changed_at, h.seq, h.value, h.old_value,
                    lag(h.value) OVER w,
                    row_number() OVER w
             FROM opportunity_history h
             JOIN temp.touched_history t USING (opportunity_id, field)
             WINDOW w AS (PARTITION BY h.opportunity_id, h.field ORDER BY h.changed_at, h.seq);
         DELETE FROM opportunity_history WHERE (opportunity_id, field, changed_at, seq) IN
             (SELECT opportunity_id, field, changed_at, seq FROM temp.history_order
              WHERE rn > 1 AND value IS prev_value);
         DELETE FROM temp.history_order WHERE rn > 1 AND value IS prev_value;",
    )?;
    // Old values along the (now change-only) chain.
    conn.execute_batch(
        "UPDATE opportunity_history AS h SET old_value = o.want
         FROM (SELECT opportunity_id, field, changed_at, seq,
                      CASE WHEN row_number() OVER w = 1 THEN old_value
                           ELSE lag(value) OVER w END AS want
               FROM temp.history_order
               WINDOW w AS (PARTITION BY opportunity_id, field ORDER BY changed_at, seq)) AS o
         WHERE h.opportunity_id = o.opportunity_id AND h.field = o.field
           AND h.changed_at = o.changed_at AND h.seq = o.seq
           AND h.old_value IS NOT o.want;",
    )?;
    // Current values from the latest entries. Stage and owner are required:
    // a cleared value in history keeps the current one.
    for field in HISTORY_FIELDS.values {
        let latest = format!(
            "(SELECT value FROM opportunity_history h WHERE h.opportunity_id = opportunities.id
              AND h.field = '{field}' ORDER BY h.changed_at DESC, h.seq DESC LIMIT 1)"
        );
        let value = match *field {
            "amount" => format!("CAST({latest} AS REAL)"),
            "stage" | "owner_id" => format!("coalesce({latest}, {field})"),
            _ => latest,
        };
        conn.execute(
            &format!(
                "UPDATE opportunities SET {field} = {value}
                 WHERE id IN (SELECT opportunity_id FROM temp.touched_history WHERE field = ?1)
                   AND {field} IS NOT {value}"
            ),
            [field],
        )?;
    }
    conn.execute_batch("DELETE FROM temp.touched_history; DELETE FROM temp.history_order;")?;
    Ok(disagreements)
}

/// The value a tracked field held at `at` according to the recorded history.
fn value_at(conn: &Connection, opp: &str, field: &str, at: &str) -> Result<Option<Option<String>>> {
    Ok(conn
            .prepare_cached(
                "SELECT value FROM opportunity_history WHERE opportunity_id = ?1 AND field = ?2 AND changed_at <= ?3
                 ORDER BY changed_at DESC, seq DESC LIMIT 1",
            )?
            .query_row(params![opp, field, at], |r| r.get::<_, Option<String>>(0))
            .optional()?)
}

/// Records the tracked values of a snapshot taken at `at`: each that differs
/// from the value the history gives at that time, with that value as the old one.
fn snapshot_history(
    conn: &Connection,
    counter: &mut u64,
    id: &str,
    tracked: &[(usize, &'static str)],
    values: &[Value],
    at: &str,
) -> Result<()> {
    for &(pos, field) in tracked {
        let new = values[pos].to_text();
        let prev = value_at(conn, id, field, at)?;
        if prev.as_ref() != Some(&new) {
            write_history(
                conn,
                counter,
                id,
                field,
                at,
                new.as_deref(),
                prev.flatten().as_deref(),
            )?;
        }
    }
    Ok(())
}

impl WriteTx for SqliteTx<'_> {
    fn upsert(&mut self, row: RowWrite<'_>) -> Result<Outcome> {
        let idx = match self
            .statements
            .iter()
            .position(|(e, c, _, _)| *e == row.entity && c.as_slice() == row.columns)
        {
            Some(i) => i,
            None => {
                let st = build_statements(row.entity, row.columns)?;
                let insert = self.conn.prepare(&st.insert)?;
                self.statements
                    .push((row.entity, row.columns.to_vec(), st, insert));
                self.statements.len() - 1
            }
        };
        let (_, _, st, insert) = &mut self.statements[idx];
        let params = || rusqlite::params_from_iter(row.values.iter().map(Sql));
        let observed = Value::Text(row.effective_at.unwrap_or(&self.as_of).to_string());
        let insert_params = || {
            rusqlite::params_from_iter(
                row.values
                    .iter()
                    .chain(st.state_param.then_some(&observed))
                    .map(Sql),
            )
        };
        let wi = match self.written.iter().position(|(e, _)| *e == row.entity) {
            Some(i) => i,
            None => {
                let w = if row.entity.key().len() == 1 {
                    let max_before: i64 = self.conn.query_row(
                        &format!("SELECT coalesce(max(rowid), 0) FROM {}", row.entity.table()),
                        [],
                        |r| r.get(0),
                    )?;
                    Written::Rowid {
                        max_before,
                        touched: Vec::new(),
                    }
                } else {
                    Written::Keys(Default::default())
                };
                self.written.push((row.entity, w));
                self.written.len() - 1
            }
        };
        if !row.update_only && insert.execute(insert_params())? == 1 {
            self.written[wi].1.mark_key(row.values, &st.key_pos);
            if row.entity == Entity::OpportunityHistory {
                let text = |p: usize| row.values[st.key_pos[p]].to_text().unwrap_or_default();
                touch_history(self.conn, &text(0), &text(1))?;
            }
            if let Some(at) = row.effective_at {
                // A snapshot with a date: its tracked values were in effect from then on.
                let id = row.values[st.key_pos[0]].to_text().unwrap_or_default();
                for &(pos, field) in &st.tracked {
                    if let Some(v) = row.values[pos].to_text() {
                        write_history(
                            self.conn,
                            &mut self.history,
                            &id,
                            field,
                            at,
                            Some(&v),
                            None,
                        )?;
                    }
                }
            }
            return Ok(Outcome::Inserted);
        }
        // The key exists: written earlier in this transaction?
        let repeated = match &st.select_rowid {
            Some(sql) => {
                let rowid: i64 = self.conn.prepare_cached(sql)?.query_row(
                    rusqlite::params_from_iter(st.key_pos.iter().map(|&k| Sql(&row.values[k]))),
                    |r| r.get(0),
                )?;
                self.written[wi].1.mark_rowid(rowid)
            }
            None => self.written[wi].1.mark_key(row.values, &st.key_pos),
        };
        if repeated && row.check_repeat {
            return Ok(Outcome::Repeated);
        }
        let Some(update) = st.update.as_deref() else {
            return Ok(Outcome::Unchanged);
        };
        if st.tracked.is_empty() {
            let n = self.conn.prepare_cached(update)?.execute(params())?;
            return Ok(if n == 1 {
                Outcome::Updated
            } else {
                Outcome::Unchanged
            });
        }

        // An opportunity with tracked fields: record what changes, and when.
        let tracked = &st.tracked;
        let select = st.select_tracked.as_deref().unwrap_or_default();
        let id = row.values[st.key_pos[0]].to_text().unwrap_or_default();
        let at = row.effective_at.unwrap_or(&self.as_of).to_string();
        let latest: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT max(changed_at) FROM opportunity_history WHERE opportunity_id = ?1",
            )?
            .query_row([&id], |r| r.get(0))?;
        let mut old: Vec<Value> = self.conn.prepare_cached(select)?.query_row([&id], |r| {
            (0..=tracked.len())
                .map(|i| r.get_ref(i).map(from_sql))
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        // When the current values were observed.
        let state_at = old.pop().and_then(|v| v.to_text());
        let newest = latest.max(state_at.clone());
        if newest.as_deref().is_some_and(|l| at.as_str() < l) {
            // An older snapshot (or an import dated --as-of before what we
            // know): it can only add history.
            snapshot_history(self.conn, &mut self.history, &id, tracked, row.values, &at)?;
            return Ok(Outcome::Unchanged);
        }
        let n = self.conn.prepare_cached(update)?.execute(params())?;
        let mut changed = false;
        // The values this row replaces were observed at state_at: keep that
        // observation of each field the row gives when the history has
        // nothing then (as an older file imported after this one would), so
        // that files of two dates give one history whatever their order.
        let changes = tracked
            .iter()
            .enumerate()
            .any(|(i, &(pos, _))| !same(&old[i], &row.values[pos]));
        if let Some(s) = state_at.as_deref().filter(|s| changes && *s < at.as_str()) {
            for (i, &(_, field)) in tracked.iter().enumerate() {
                if value_at(self.conn, &id, field, s)?.is_none() {
                    write_history(
                        self.conn,
                        &mut self.history,
                        &id,
                        field,
                        s,
                        old[i].to_text().as_deref(),
                        None,
                    )?;
                }
            }
        }
        if row.effective_at.is_some() {
            // A dated snapshot: the value before it is what the history says
            // (the observation above, or unknown), never the current row as
            // such, which may describe a later time.
            let before = self.history;
            snapshot_history(self.conn, &mut self.history, &id, tracked, row.values, &at)?;
            changed = self.history > before;
        } else {
            for (i, &(pos, field)) in tracked.iter().enumerate() {
                let new = &row.values[pos];
                if same(&old[i], new) {
                    continue;
                }
                changed = true;
                write_history(
                    self.conn,
                    &mut self.history,
                    &id,
                    field,
                    &at,
                    new.to_text().as_deref(),
                    old[i].to_text().as_deref(),
                )?;
            }
        }
        if changed || n > 0 {
            self.conn
                .prepare_cached(
                    "UPDATE opportunities SET state_at = ?2 WHERE id = ?1 AND (state_at IS NULL OR state_at < ?2)",
                )?
                .execute(params![id, at])?;
        }
        Ok(if n == 0 {
            Outcome::Unchanged
        } else {
            Outcome::Updated
        })
    }

    fn exists(&mut self, entity: Entity, id: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} WHERE id = ?1", entity.table());
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn current_value(&mut self, entity: Entity, id: &str, field: &str) -> Result<Value> {
        if entity.key() != ["id"] || entity.field(field).is_none() {
            return Ok(Value::Null);
        }
        let sql = format!("SELECT {field} FROM {} WHERE id = ?1", entity.table());
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], |r| r.get_ref(0).map(from_sql))
            .optional()?
            .unwrap_or(Value::Null))
    }

    fn setting(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn id_by_name(&mut self, entity: Entity, name: &str) -> Result<Option<String>> {
        let sql = format!("SELECT id FROM {} WHERE name = ?1 LIMIT 2", entity.table());
        let mut st = self.conn.prepare_cached(&sql)?;
        let ids = st
            .query_map([name], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(if ids.len() == 1 {
            ids.into_iter().next()
        } else {
            None
        })
    }

    fn truncate_turns(&mut self, conversation_id: &str, from_seq: i64) -> Result<u64> {
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM conversation_turns WHERE conversation_id = ?1 AND seq >= ?2",
            )?
            .execute(params![conversation_id, from_seq])?;
        Ok(n as u64)
    }

    fn bulk_load(&mut self, entity: Entity, expected_rows: u64) -> Result<bool> {
        let table = entity.table();
        if expected_rows < BULK_MIN_ROWS || self.deferred_indexes.iter().any(|(t, _)| t == table) {
            return Ok(false);
        }
        let existing: i64 =
            self.conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        if (expected_rows as i64) < existing {
            return Ok(false);
        }
        let mut st = self.conn.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?;
        let indexes = st
            .query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(st);
        for (name, sql) in indexes {
            self.conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
            self.deferred_indexes.push((table.to_string(), sql));
        }
        Ok(true)
    }

    fn history_written(&self) -> u64 {
        self.history
    }

    fn settle_history(&mut self) -> Result<Vec<String>> {
        normalise_history(self.conn)
    }

    fn log_import(&mut self, kind: &str, sources: &str, report_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO imports (started_at, kind, sources, report) VALUES (?1, ?2, ?3, ?4)",
            params![self.as_of, kind, sources, report_json],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // Indexes dropped for a bulk load are rebuilt (sorted, so faster than
        // row-by-row maintenance) inside the same transaction. SQLite's sorter
        // keeps up to cache_size of keys in memory per run before it spills
        // a sorted run to disk: small runs, sorted on both cores and merged,
        // beat one big in-memory sort (1M keys: 1.25 s with 2 MiB runs,
        // 1.85 s with 16 MiB, 2.6 s with 64 MiB).
        normalise_history(self.conn)?;
        let indexes = std::mem::take(&mut self.deferred_indexes);
        if !indexes.is_empty() {
            self.conn
                .execute_batch(&format!("PRAGMA cache_size = -{SORT_RUN_KIB}"))?;
            for (_, sql) in indexes {
                self.conn.execute_batch(&sql)?;
            }
            self.conn
                .execute_batch(&format!("PRAGMA cache_size = -{PAGE_CACHE_KIB}"))?;
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| StoreError::Invalid(format!("commit failed: {e}")))?;
        self.done = true;
        Ok(())
    }
}

/// Equality of a stored and a given value (numbers compare numerically).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::Bool(x), Value::Int(y)) | (Value::Int(y), Value::Bool(x)) => i64::from(*x) == *y,
        _ => a == b,
    }
}

impl Store for SqliteStore {
    fn begin(&mut self, as_of: &str, input_bytes: u64) -> Result<Box<dyn WriteTx + '_>> {
        // A big load goes through a rollback journal instead of the WAL:
        // SQLite does not journal pages the transaction appends to the
        // file, so the new rows are written once, where through the WAL
        // every page is written twice (to the log, then checkpointed into
        // the database: a third of a 1M-row import). Still one atomic
        // transaction; synchronous = FULL is the safe setting for that
        // journal. If another connection holds the database the switch is
        // refused and the load simply goes through the WAL.
        let journal_switched = input_bytes >= BULK_MIN_BYTES
            && self.path != ":memory:"
            && self
                .conn
                .query_row("PRAGMA journal_mode = DELETE", [], |r| {
                    r.get::<_, String>(0)
                })
                .is_ok_and(|mode| mode.eq_ignore_ascii_case("delete"));
        if journal_switched {
            self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        // The importer checks every reference before it writes a row (and
        // names the file, line and column when one is missing), so SQLite's
        // own per-row check would only repeat those lookups: it costs as much
        // as the insert itself on a bulk load. The pragma cannot change inside
        // a transaction, hence before BEGIN; it is restored when the
        // transaction ends either way.
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")?;
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS touched_history (
                 opportunity_id TEXT NOT NULL, field TEXT NOT NULL,
                 PRIMARY KEY (opportunity_id, field)) WITHOUT ROWID;
             DELETE FROM temp.touched_history;",
        )?;
        Ok(Box::new(SqliteTx {
            conn: &self.conn,
            as_of: as_of.to_string(),
            history: 0,
            done: false,
            statements: Vec::new(),
            deferred_indexes: Vec::new(),
            written: Vec::new(),
            journal_switched,
        }))
    }

    fn stats(&self) -> Result<crate::Stats> {
        let mut st = crate::stats::compute(&self.conn)?;
        st.encryption = crate::stats::Encryption::of(self)?;
        Ok(st)
    }

    fn content_digest(&self) -> Result<String> {
        // Two FNV-1a 64 streams with different offsets: a stable 128-bit digest.
        let mut h = [0xcbf29ce484222325u64, 0x84222325cbf29ce4u64];
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                for x in h.iter_mut() {
                    *x ^= u64::from(b);
                    *x = x.wrapping_mul(0x100000001b3);
                }
            }
        };
        for e in Entity::ALL {
            let cols: Vec<&str> = e.fields().iter().map(|f| f.name).collect();
            let sql = format!(
                "SELECT {} FROM {} ORDER BY {}",
                cols.join(", "),
                e.table(),
                e.key().join(", ")
            );
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query([])?;
            feed(e.table().as_bytes());
            while let Some(r) = rows.next()? {
                for i in 0..cols.len() {
                    let v = from_sql(r.get_ref(i)?);
                    feed(&[0xff]);
                    feed(format!("{v:?}").as_bytes());
                }
                feed(&[0xfe]);
            }
        }
        Ok(format!("{:016x}{:016x}", h[0], h[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(entity: Entity, columns: &'a [&'static str], values: &'a [Value]) -> RowWrite<'a> {
        RowWrite {
            entity,
            columns,
            values,
            effective_at: None,
            check_repeat: true,
            update_only: false,
        }
    }
    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn schema_matches_the_core_field_table() {
        let store = SqliteStore::open_in_memory().unwrap();
        for e in Entity::ALL {
            let cols = store.table_columns(e.table()).unwrap();
            for f in e.fields() {
                assert!(
                    cols.iter().any(|c| c == f.name),
                    "{}.{} missing from the migration",
                    e.table(),
                    f.name
                );
            }
            for c in &cols {
                assert!(
                    e.field(c).is_some() || c == "outcome",
                    "{}.{c} is not in the core schema",
                    e.table()
                );
            }
        }
        assert_eq!(store.schema_version().unwrap(), crate::SCHEMA_VERSION);
    }

    #[test]
    fn upsert_inserts_updates_and_leaves_equal_rows_alone() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let cols = ["id", "name", "region"];
        let mut tx = store.begin("2025-01-01T00:00:00Z", 0).unwrap();
        assert_eq!(
            tx.upsert(row(Entity::Team, &cols, &[t("t1"), t("East"), Value::Null]))
                .unwrap(),
            Outcome::Inserted
        );
        assert_eq!(
            tx.upsert(row(Entity::Team, &cols, &[t("t1"), t("East"), Value::Null]))
                .unwrap(),
            Outcome::Repeated
        );
        tx.commit().unwrap();
        let mut tx = store.begin("2025-01-01T00:00:00Z", 0).unwrap();
        assert_eq!(
            tx.upsert(row(Entity::Team, &cols, &[t("t1"), t("East"), Value::Null]))
                .unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(
            tx.upsert(row(Entity::Team, &cols, &[t("t1"), t("East"), t("EU")]))
                .unwrap(),
            Outcome::Repeated
        );
        let vals = [t("t1"), t("East"), t("EU")];
        let mut w = row(Entity::Team, &cols, &vals);
        w.check_repeat = false;
        assert_eq!(tx.upsert(w).unwrap(), Outcome::Updated);
        tx.commit().unwrap();
        let d1 = store.content_digest().unwrap();
        {
            let mut tx = store.begin("2025-01-01T00:00:00Z", 0).unwrap();
            tx.upsert(row(Entity::Team, &cols, &[t("t2"), t("West"), Value::Null]))
                .unwrap();
            // dropped: rolled back
        }
        assert_eq!(store.content_digest().unwrap(), d1);
    }

    #[test]
    fn changes_to_tracked_fields_are_recorded_with_their_time() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let mut tx = store.begin("2025-01-01T00:00:00Z", 0).unwrap();
        tx.upsert(row(Entity::User, &["id", "name"], &[t("u1"), t("Ann")]))
            .unwrap();
        let cols = ["id", "owner_id", "stage", "amount"];
        tx.upsert(row(
            Entity::Opportunity,
            &cols,
            &[t("o1"), t("u1"), t("prospecting"), Value::Float(100.0)],
        ))
        .unwrap();
        tx.commit().unwrap();
        let mut tx = store.begin("2025-02-01T00:00:00Z", 0).unwrap();
        let out = tx
            .upsert(row(
                Entity::Opportunity,
                &cols,
                &[t("o1"), t("u1"), t("proposal"), Value::Float(100.0)],
            ))
            .unwrap();
        assert_eq!(out, Outcome::Updated);
        // The change, and the owner, stage and amount as observed when the
        // opportunity was imported.
        assert_eq!(tx.history_written(), 4);
        // A dated snapshot older than what is known only adds history.
        let snap = RowWrite {
            entity: Entity::Opportunity,
            columns: &cols,
            values: &[t("o1"), t("u1"), t("qualification"), Value::Float(100.0)],
            effective_at: Some("2025-01-15T00:00:00Z"),
            check_repeat: false,
            update_only: false,
        };
        assert_eq!(tx.upsert(snap).unwrap(), Outcome::Unchanged);
        tx.commit().unwrap();
        let h: Vec<(String, String, Option<String>)> = store
            .conn
            .prepare("SELECT changed_at, value, old_value FROM opportunity_history WHERE field = 'stage' ORDER BY changed_at")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        // Old values follow the chain by time.
        assert_eq!(
            h,
            vec![
                ("2025-01-01T00:00:00Z".into(), "prospecting".into(), None),
                (
                    "2025-01-15T00:00:00Z".into(),
                    "qualification".into(),
                    Some("prospecting".into())
                ),
                (
                    "2025-02-01T00:00:00Z".into(),
                    "proposal".into(),
                    Some("qualification".into())
                ),
            ]
        );
        let stage: String = store
            .conn
            .query_row("SELECT stage FROM opportunities", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stage, "proposal");
    }

    #[test]
    fn references_are_enforced_again_once_an_import_transaction_ends() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let fk = |s: &SqliteStore| -> i64 {
            s.conn
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(fk(&store), 1);
        for commit in [true, false] {
            let tx = store.begin("2025-01-01T00:00:00Z", 0).unwrap();
            if commit {
                tx.commit().unwrap();
            } else {
                drop(tx);
            }
            assert_eq!(fk(&store), 1, "after commit: {commit}");
        }
        // Outside an import, SQLite itself refuses an orphan.
        let orphan = store.conn.execute(
            "INSERT INTO opportunities (id, owner_id, stage) VALUES ('o1', 'nobody', 'prospecting')",
            [],
        );
        assert!(orphan.is_err());
    }

    #[test]
    fn a_bulk_transaction_uses_a_rollback_journal_and_returns_to_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let journal = dir.path().join("x.db-journal");
        let mut store = SqliteStore::open(&path).unwrap();
        let mode = |s: &SqliteStore| -> String {
            s.conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(mode(&store), "wal");
        for (input_bytes, commit) in [(1 << 30, true), (1 << 30, false), (1000, true)] {
            let mut tx = store.begin("2025-01-01T00:00:00Z", input_bytes).unwrap();
            tx.upsert(row(
                Entity::User,
                &["id", "name"],
                &[t("u1"), t(&format!("{input_bytes}{commit}"))],
            ))
            .unwrap();
            assert_eq!(journal.exists(), input_bytes > 1000, "{input_bytes} bytes");
            if commit {
                tx.commit().unwrap();
            } else {
                drop(tx);
            }
            assert_eq!(
                mode(&store),
                "wal",
                "after {input_bytes} bytes, commit: {commit}"
            );
            assert!(!journal.exists());
        }
    }

    #[test]
    fn turns_stored_before_speech_time_read_as_their_span() {
        // A database made by the migrations before speech time, with one turn.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        {
            let conn = Connection::open(&p).unwrap();
            let before = MIGRATIONS
                .iter()
                .position(|m| m.contains("speech_ms"))
                .unwrap();
            for (i, sql) in MIGRATIONS[..before].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", i as i64 + 1)
                    .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO conversations (id) VALUES ('c1');
                 INSERT INTO conversation_turns (conversation_id, seq, speaker, speaker_role, start_ms, end_ms, text)
                 VALUES ('c1', 0, 'Ann', 'rep', 1000, 5000, 'hi');",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&p).unwrap();
        assert_eq!(store.schema_version().unwrap(), crate::SCHEMA_VERSION);
        let mut tx = store.begin("2025-01-01T00:00:00Z", 0).unwrap();
        let cols = [
            "conversation_id",
            "seq",
            "speaker_role",
            "start_ms",
            "end_ms",
            "speech_ms",
        ];
        let vals = [
            t("c1"),
            Value::Int(1),
            t("customer"),
            Value::Int(6000),
            Value::Int(16_000),
            Value::Int(3000),
        ];
        tx.upsert(row(Entity::ConversationTurn, &cols, &vals))
            .unwrap();
        tx.commit().unwrap();
        let crm = store.load_crm().unwrap();
        let speech: Vec<i64> = crm.conversations[0]
            .turns
            .iter()
            .map(|t| t.speech_ms)
            .collect();
        assert_eq!(speech, [4000, 3000], "NULL reads as end - start");
        let c = store.conversation("c1").unwrap().unwrap();
        assert_eq!(c.turns.len(), 2);
        assert_eq!(c.turns[0].speech_ms, 4000);
        assert_eq!(c.turns[1].speech_ms, 3000);
        assert_eq!(c.turns[0].speaker.as_deref(), Some("Ann"));
        assert!(store.conversation("nope").unwrap().is_none());
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let s = SqliteStore::open(&p).unwrap();
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = SqliteStore::open(&p).err().unwrap();
        assert!(e.to_string().contains("newer pipewise"), "{e}");
    }
}
