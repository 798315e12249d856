//! Reading one tabular file (CSV, or JSONL turned into records) through a file
//! mapping into store rows: cleansing, value maps, parsing, validation,
//! reference checks and duplicate detection, with every problem located by
//! file, line and column.

use std::collections::{HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use csv::ByteRecord;
use pipewise_core::date::{DateEvidence, DayOrder};
use pipewise_core::number::{Decimal, DecimalEvidence};
use pipewise_core::schema::HISTORY_FIELDS;
use pipewise_core::{CellFormat, Entity, Field, FieldType, Value, parse_cell, parse_cell_with};
use pipewise_store::{Outcome, RowWrite, WriteTx};

use crate::mapping::{FieldSpec, FileMapping, Mapping};
use crate::report::{Cleaning, ImportReport, RowError};

/// Where a field's raw text comes from.
enum Src {
    Col(usize),
    Const(String),
    Template(Vec<Part>),
}

enum Part {
    Lit(String),
    Col(usize),
}

struct ColPlan {
    field: &'static Field,
    src: Src,
    /// Header name (or a description of a constant) for error messages.
    label: String,
    values: HashMap<String, String>,
    clean: Option<(String, HashMap<String, String>)>,
    formats: Vec<String>,
    /// Day order of numeric dates, inferred from the column when no format is named.
    day_order: Option<DayOrder>,
    /// Decimal separator: from the mapping, or inferred from the column.
    decimal: Option<Decimal>,
    /// For a probability column: whether its plain numbers are percentages
    /// (some value above 1), decided once for the whole column.
    percent: Option<bool>,
    null_if: Vec<String>,
    scale: Option<f64>,
    default: Option<String>,
    lookup_name: bool,
    create_missing: bool,
}

struct BlockPlan {
    entity: Entity,
    columns: Vec<&'static str>,
    cols: Vec<ColPlan>,
    optional: bool,
    repeats: bool,
    effective_at: Option<ColPlan>,
    key_pos: Vec<usize>,
    /// History entries without a `seq` column: the importer numbers changes
    /// of one field at the same instant in file order (appended to `columns`).
    auto_seq: bool,
    /// Required fields the mapping does not give: the file can only update
    /// rows that exist (a field-history report, a partial export).
    unmapped_required: Vec<&'static str>,
}

/// A reference that was not found when its row was read; checked again once
/// the whole file is in (a file may refer to rows further down itself).
struct PendingRef {
    parent: Entity,
    id: String,
    line: u64,
    column: Option<usize>,
    label: String,
}

/// Per-import caches and shared state.
pub(crate) struct Context<'a> {
    pub tx: Box<dyn WriteTx + 'a>,
    pub report: ImportReport,
    pub max_errors: usize,
    known: FxHashMap<Entity, FxHashSet<String>>,
    by_name: HashMap<(Entity, String), String>,
}

const CACHE_LIMIT: usize = 200_000;

impl<'a> Context<'a> {
    pub fn new(tx: Box<dyn WriteTx + 'a>, report: ImportReport, max_errors: usize) -> Self {
        Context {
            tx,
            report,
            max_errors,
            known: FxHashMap::default(),
            by_name: HashMap::new(),
        }
    }

    pub fn error(&mut self, e: RowError) {
        // One cell read by several entities of a mapping is one problem.
        if self.report.errors.iter().rev().take(16).any(|x| {
            x.line == e.line
                && x.column == e.column
                && x.column_name == e.column_name
                && x.file == e.file
                && e.line > 0
        }) {
            return;
        }
        self.error_distinct(e);
    }

    /// Records a problem even when one was recorded at the same cell (two
    /// different problems of one row, such as two missing fields).
    pub fn error_distinct(&mut self, e: RowError) {
        if self.report.errors.len() < self.max_errors {
            self.report.errors.push(e);
        } else {
            self.report.errors_truncated = true;
        }
    }

    pub fn full(&self) -> bool {
        self.report.errors_truncated
    }

    pub fn exists(&mut self, entity: Entity, id: &str) -> Result<bool, pipewise_store::StoreError> {
        if self.known.get(&entity).is_some_and(|k| k.contains(id)) {
            return Ok(true);
        }
        let found = self.tx.exists(entity, id)?;
        if found {
            let k = self.known.entry(entity).or_default();
            if k.len() > CACHE_LIMIT {
                k.clear();
            }
            k.insert(id.to_string());
        }
        Ok(found)
    }
}

fn plan_field(
    field: &'static Field,
    spec: &FieldSpec,
    header: &[String],
    mapping: &Mapping,
    file: &str,
) -> Result<ColPlan, RowError> {
    let find = |name: &str| -> Result<usize, RowError> {
        header
            .iter()
            .position(|h| h == name)
            .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
            .ok_or_else(|| RowError {
                file: file.into(),
                line: 1,
                column: None,
                column_name: Some(name.into()),
                value: None,
                message: format!(
                    "no such column in the header (needed for field {}); the columns are: {}",
                    field.name,
                    header.join(", ").replace('\0', "")
                ),
            })
    };
    let (src, label) = if let Some(c) = &spec.column {
        (Src::Col(find(c)?), c.clone())
    } else if let Some(k) = &spec.constant {
        (Src::Const(k.clone()), format!("{} (constant)", field.name))
    } else {
        let t = spec.template.clone().unwrap_or_default();
        let mut parts = Vec::new();
        let mut rest = t.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            parts.push(Part::Col(find(&rest[open + 1..open + close])?));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        (Src::Template(parts), format!("{} (template)", field.name))
    };
    let mut formats = spec.formats.clone();
    formats.extend(mapping.date_formats.iter().cloned());
    Ok(ColPlan {
        field,
        src,
        label,
        values: spec
            .values
            .iter()
            .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
            .collect(),
        clean: spec.clean.as_ref().map(|name| {
            let table = mapping
                .aliases
                .get(name)
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            (name.clone(), table)
        }),
        formats,
        day_order: None,
        decimal: spec
            .decimal
            .as_deref()
            .or(mapping.decimal.as_deref())
            .and_then(Decimal::parse),
        percent: None,
        null_if: spec.null_if.clone(),
        scale: spec.scale,
        default: spec.default.clone(),
        lookup_name: spec.lookup.as_deref() == Some("name"),
        create_missing: spec.create_missing,
    })
}

/// The half of a compiled file mapping that turns a record into values:
/// cleansing, value maps, parsing and the checks that need nothing but the row.
/// It never touches the database, so it runs on the reader thread of a CSV
/// import while [`FilePlan`] checks references and writes on the other.
pub(crate) struct RowParser {
    file: String,
    blocks: Vec<BlockPlan>,
    width: usize,
    header: Vec<String>,
    /// Columns some field reads: only these are decoded, so bytes in a
    /// column the mapping ignores never reject a file.
    used: Vec<bool>,
    /// Prefixes of a report's footer records (see `FileMapping::footer`).
    footer: Vec<String>,
    /// The organisation's corporate currency, when set: amounts written in it
    /// need no currency column.
    pub corporate: Option<String>,
}

/// A compiled file mapping: built once from the header, applied to every record.
pub(crate) struct FilePlan {
    pub parser: RowParser,
    pub writer: PlanWriter,
}

/// The half of a file plan that checks references and writes, on the thread
/// that owns the store transaction.
pub(crate) struct PlanWriter {
    pending: Vec<PendingRef>,
    /// Keys of rows of this file rejected for errors: references to them are
    /// consequences, not new problems.
    failed: HashSet<(Entity, String)>,
    /// Cleansed cells of the records parsed on this thread.
    cleanings: Cleanings,
    /// The previous history entry of the file (key without `seq`, `seq`,
    /// values, line): changes of one field at one instant on consecutive
    /// lines are numbered in file order.
    last_history: Option<(Vec<String>, i64, Vec<Value>, u64)>,
}

/// How many cells each cleansing rule changed: per (entity block, column),
/// per original text.
#[derive(Default)]
pub(crate) struct Cleanings(FxHashMap<(usize, usize), FxHashMap<String, u64>>);

impl Cleanings {
    pub fn merge(&mut self, other: Cleanings) {
        for (k, m) in other.0 {
            let into = self.0.entry(k).or_default();
            for (from, n) in m {
                *into.entry(from).or_default() += n;
            }
        }
    }
}

/// One record read into every entity of the mapping, not yet checked against
/// the database.
pub(crate) struct ParsedRow {
    line: u64,
    /// Problems of the record as a whole (wrong number of fields, invalid
    /// UTF-8): nothing of it was read.
    errors: Vec<RowError>,
    blocks: Vec<ParsedBlock>,
}

enum ParsedBlock {
    /// An optional entity the record does not have.
    Skipped,
    Invalid {
        key: Option<String>,
        errors: Vec<RowError>,
    },
    Ready {
        values: Vec<Value>,
        effective_at: Option<String>,
        /// Required fields left empty: taken from the existing row, or an
        /// error when the row does not exist.
        missing: Vec<usize>,
    },
}

impl FilePlan {
    pub fn new(
        file: &str,
        header: Vec<String>,
        fm: &FileMapping,
        mapping: &Mapping,
        strict_columns: bool,
    ) -> Result<FilePlan, Vec<RowError>> {
        let mut errors = Vec::new();
        let mut blocks = Vec::new();
        for em in &fm.entities {
            let entity = Entity::from_table(&em.entity).expect("validated mapping");
            let mut cols = Vec::new();
            let mut columns = Vec::new();
            for (name, source) in &em.fields {
                let field = entity.field(name).expect("validated mapping");
                let spec = source.spec();
                // Canonical files may leave out optional columns: they are then not touched.
                if !strict_columns && !field.required {
                    if let Some(c) = &spec.column {
                        if !header.iter().any(|h| h == c) {
                            continue;
                        }
                    }
                }
                match plan_field(field, &spec, &header, mapping, file) {
                    Ok(p) => {
                        columns.push(field.name);
                        cols.push(p);
                    }
                    Err(e) => errors.push(e),
                }
            }
            let effective_at = match &em.effective_at {
                None => None,
                Some(src) => {
                    static AT: Field = Field {
                        name: "effective_at",
                        ty: FieldType::DateTime,
                        required: true,
                        doc: "",
                    };
                    match plan_field(&AT, &src.spec(), &header, mapping, file) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            errors.push(e);
                            None
                        }
                    }
                }
            };
            let auto_seq = entity == Entity::OpportunityHistory && !columns.contains(&"seq");
            if auto_seq {
                columns.push("seq");
            }
            let key_pos = entity
                .key()
                .iter()
                .filter_map(|k| columns.iter().position(|c| c == k))
                .collect();
            let unmapped_required = entity
                .fields()
                .iter()
                .filter(|f| f.required && !columns.contains(&f.name) && f.name != "seq")
                .map(|f| f.name)
                .collect();
            blocks.push(BlockPlan {
                entity,
                columns,
                cols,
                optional: em.optional,
                repeats: em.repeats,
                effective_at,
                key_pos,
                auto_seq,
                unmapped_required,
            });
        }
        if !strict_columns {
            // Canonical format: a header that names no field is a typo worth stopping for.
            let known: HashSet<&str> = blocks
                .iter()
                .flat_map(|b| {
                    b.entity
                        .fields()
                        .iter()
                        .filter(|f| !crate::mapping::is_set_by_importer(b.entity, f.name))
                        .map(|f| f.name)
                })
                .collect();
            for (i, h) in header.iter().enumerate() {
                if !known.contains(h.as_str()) {
                    let entity = blocks.first().map_or("", |b| b.entity.table());
                    errors.push(RowError {
                        file: file.into(),
                        line: 1,
                        column: Some(i + 1),
                        column_name: Some(h.clone()),
                        value: None,
                        message: format!(
                            "not a field of {entity}; expected one of: {}",
                            blocks
                                .first()
                                .map(|b| b
                                    .entity
                                    .fields()
                                    .iter()
                                    .map(|f| f.name)
                                    .collect::<Vec<_>>()
                                    .join(", "))
                                .unwrap_or_default()
                        ),
                    });
                }
            }
        }
        if errors.is_empty() {
            let mut used = vec![false; header.len()];
            for b in &blocks {
                for cp in b.cols.iter().chain(b.effective_at.iter()) {
                    match &cp.src {
                        Src::Col(i) => used[*i] = true,
                        Src::Template(parts) => {
                            for p in parts {
                                if let Part::Col(i) = p {
                                    used[*i] = true;
                                }
                            }
                        }
                        Src::Const(_) => {}
                    }
                }
            }
            Ok(FilePlan {
                parser: RowParser {
                    file: file.into(),
                    blocks,
                    width: header.len(),
                    header,
                    used,
                    footer: fm.footer.clone(),
                    corporate: None,
                },
                writer: PlanWriter {
                    pending: Vec::new(),
                    failed: HashSet::new(),
                    cleanings: Cleanings::default(),
                    last_history: None,
                },
            })
        } else {
            Err(errors)
        }
    }

    /// Reads one record into every entity of the mapping.
    /// Reads one record and writes it (the single-threaded path: JSONL).
    pub fn process(
        &mut self,
        ctx: &mut Context<'_>,
        line: u64,
        rec: &ByteRecord,
    ) -> Result<(), pipewise_store::StoreError> {
        let mut row = self.parser.parse(line, rec, &mut self.writer.cleanings);
        self.writer.apply(&self.parser, ctx, &mut row)
    }

    /// See [`PlanWriter::finish`].
    pub fn finish(
        &mut self,
        ctx: &mut Context<'_>,
        cleanings: Cleanings,
    ) -> Result<(), pipewise_store::StoreError> {
        self.writer.finish(&self.parser, ctx, cleanings)
    }
}

impl PlanWriter {
    /// Checks a parsed record's references and writes it; reports its problems.
    pub fn apply(
        &mut self,
        parser: &RowParser,
        ctx: &mut Context<'_>,
        row: &mut ParsedRow,
    ) -> Result<(), pipewise_store::StoreError> {
        for e in row.errors.drain(..) {
            ctx.error(e);
        }
        for (bi, parsed) in row.blocks.iter_mut().enumerate() {
            let entity = parser.blocks[bi].entity;
            match parsed {
                ParsedBlock::Skipped => ctx.report.counts_mut(entity.table()).skipped += 1,
                ParsedBlock::Invalid { key, errors } => {
                    if let Some(key) = key.take() {
                        self.failed.insert((entity, key));
                    }
                    for e in errors.drain(..) {
                        ctx.error(e);
                    }
                }
                ParsedBlock::Ready {
                    values,
                    effective_at,
                    missing,
                } => {
                    if parser.blocks[bi].auto_seq {
                        match self.history_seq(parser, ctx, bi, values, row.line) {
                            Some(seq) => values.push(Value::Int(seq)),
                            None => continue,
                        }
                    }
                    self.write(
                        parser,
                        ctx,
                        bi,
                        values,
                        missing,
                        effective_at.as_deref(),
                        row.line,
                    )?
                }
            }
        }
        Ok(())
    }

    /// The `seq` of a history entry read without one: 0, or one more than
    /// the entry on the line before when that one changed the same field of
    /// the same opportunity at the same instant. An identical entry is a
    /// duplicate (reported; `None`).
    fn history_seq(
        &mut self,
        parser: &RowParser,
        ctx: &mut Context<'_>,
        bi: usize,
        values: &[Value],
        line: u64,
    ) -> Option<i64> {
        let block = &parser.blocks[bi];
        let key: Vec<String> = block
            .key_pos
            .iter()
            .filter(|&&k| k < values.len())
            .map(|&k| values[k].to_text().unwrap_or_default())
            .collect();
        let seq = match &self.last_history {
            Some((k, seq, prev, prev_line)) if *k == key => {
                if prev.as_slice() == values {
                    let k0 = &block.cols[block.key_pos[0]];
                    ctx.error(RowError {
                        file: parser.file.clone(),
                        line,
                        column: col_number(&k0.src),
                        column_name: Some(k0.label.clone()),
                        value: Some(key.join(", ")),
                        message: format!(
                            "duplicate history entry: line {prev_line} records the same change; expected each change once"
                        ),
                    });
                    return None;
                }
                seq + 1
            }
            _ => 0,
        };
        self.last_history = Some((key, seq, values.to_vec(), line));
        Some(seq)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        parser: &RowParser,
        ctx: &mut Context<'_>,
        bi: usize,
        values: &mut [Value],
        missing: &[usize],
        effective_at: Option<&str>,
        line: u64,
    ) -> Result<(), pipewise_store::StoreError> {
        let block = &parser.blocks[bi];
        let file = parser.file.as_str();
        // Required fields this row does not give: an existing row keeps its
        // values; a new row cannot be created without them.
        let mut update_only = false;
        if !missing.is_empty() || !block.unmapped_required.is_empty() {
            let exists = match block.key_pos[..] {
                [k] => match values[k].as_str() {
                    Some(id) if block.entity.key() == ["id"] => ctx.exists(block.entity, id)?,
                    _ => false,
                },
                _ => false,
            };
            if exists {
                let id = values[block.key_pos[0]].to_text().unwrap_or_default();
                for &ci in missing {
                    let field = block.cols[ci].field.name;
                    values[ci] = ctx.tx.current_value(block.entity, &id, field)?;
                }
                update_only = true;
            } else {
                let key = block.key_pos.first().map(|&k| &block.cols[k]);
                let id = block
                    .key_pos
                    .first()
                    .and_then(|&k| values[k].to_text())
                    .unwrap_or_default();
                for &ci in missing {
                    ctx.error(required_error(file, line, block, &block.cols[ci], true));
                }
                for field in &block.unmapped_required {
                    ctx.error_distinct(RowError {
                        file: file.into(),
                        line,
                        column: key.and_then(|k| col_number(&k.src)),
                        column_name: key.map(|k| k.label.clone()),
                        value: Some(id.clone()),
                        message: format!(
                            "no {} with this id in the database or earlier in this import, and the mapping gives no {field} to create it; expected an existing {} (import the current state first) or a column mapped to {field}",
                            block.entity.singular(),
                            block.entity.singular()
                        ),
                    });
                }
                if let Some(id) = block.key_pos.first().and_then(|&k| values[k].to_text()) {
                    self.failed.insert((block.entity, id));
                }
                return Ok(());
            }
        }
        // References: resolve names, create missing parents, or check existence.
        for (ci, cp) in block.cols.iter().enumerate() {
            let FieldType::Ref(parent) = cp.field.ty else {
                continue;
            };
            let Value::Text(raw) = &values[ci] else {
                continue;
            };
            if cp.lookup_name {
                let key = (parent, raw.clone());
                if let Some(found) = ctx.by_name.get(&key) {
                    values[ci] = Value::Text(found.clone());
                } else if let Some(found) = ctx.tx.id_by_name(parent, raw)? {
                    ctx.by_name.insert(key, found.clone());
                    values[ci] = Value::Text(found);
                }
            }
            let Value::Text(id) = &values[ci] else {
                continue;
            };
            if ctx.exists(parent, id)? {
                continue;
            }
            if cp.create_missing {
                let cols: &[&'static str] = if parent.field("name").is_some() {
                    &["id", "name"]
                } else {
                    &["id"]
                };
                let vals = [Value::Text(id.clone()), Value::Text(id.clone())];
                ctx.tx.upsert(RowWrite {
                    entity: parent,
                    columns: cols,
                    values: &vals[..cols.len()],
                    effective_at: None,
                    check_repeat: false,
                    update_only: false,
                })?;
                *ctx.report
                    .created_from_references
                    .entry(parent.table().to_string())
                    .or_default() += 1;
                ctx.exists(parent, id)?;
                continue;
            }
            self.pending.push(PendingRef {
                parent,
                id: id.clone(),
                line,
                column: col_number(&cp.src),
                label: cp.label.clone(),
            });
        }
        // Written even when earlier rows had errors (the import will then be
        // rolled back), so that later rows referring to this one are checked right.
        let outcome = ctx.tx.upsert(RowWrite {
            entity: block.entity,
            columns: &block.columns,
            values,
            effective_at,
            check_repeat: !block.repeats,
            update_only,
        })?;
        if outcome == Outcome::Repeated {
            let key: Vec<String> = block
                .key_pos
                .iter()
                .filter_map(|&k| values[k].to_text())
                .collect();
            let k0 = &block.cols[block.key_pos[0]];
            ctx.error(RowError {
                file: file.into(),
                line,
                column: col_number(&k0.src),
                column_name: Some(k0.label.clone()),
                value: Some(key.join(", ")),
                message: format!(
                    "duplicate {}: already imported earlier in this import; expected each {} once",
                    block.entity.key().join(" + "),
                    block.entity.singular()
                ),
            });
            return Ok(());
        }
        let c = ctx.report.counts_mut(block.entity.table());
        c.rows += 1;
        match outcome {
            Outcome::Inserted => c.inserted += 1,
            Outcome::Updated => c.updated += 1,
            Outcome::Unchanged | Outcome::Repeated => c.unchanged += 1,
        }
        Ok(())
    }

    /// Checks the references that were not found while reading, and reports
    /// what the cleansing rules changed (`cleanings`: those counted on the
    /// reader thread, added to this thread's).
    pub fn finish(
        &mut self,
        parser: &RowParser,
        ctx: &mut Context<'_>,
        cleanings: Cleanings,
    ) -> Result<(), pipewise_store::StoreError> {
        let file = parser.file.clone();
        for p in std::mem::take(&mut self.pending) {
            if !self.failed.contains(&(p.parent, p.id.clone())) && !ctx.exists(p.parent, &p.id)? {
                ctx.error(RowError {
                    file: file.clone(),
                    line: p.line,
                    column: p.column,
                    column_name: Some(p.label),
                    value: Some(p.id),
                    message: format!(
                        "no {} with this id in the database or in this import; expected {}",
                        p.parent.singular(),
                        FieldType::Ref(p.parent).expected()
                    ),
                });
            }
        }
        self.cleanings.merge(cleanings);
        let mut v: Vec<Cleaning> = Vec::new();
        for ((bi, ci), counts) in std::mem::take(&mut self.cleanings.0) {
            let cp = &parser.blocks[bi].cols[ci];
            let Some((rule, table)) = &cp.clean else {
                continue;
            };
            for (from, rows) in counts {
                v.push(Cleaning {
                    file: file.clone(),
                    column: cp.label.clone(),
                    rule: rule.clone(),
                    to: table.get(&from).cloned().unwrap_or_default(),
                    from,
                    rows,
                });
            }
        }
        v.sort_by(|a, b| (&a.column, &a.from).cmp(&(&b.column, &b.from)));
        ctx.report.cleaned.extend(v);
        Ok(())
    }
}

/// What a pre-scan of a file's values found about the columns whose format
/// is inferred (see [`RowParser::inference_targets`]).
#[derive(Default)]
pub(crate) struct Inference {
    pub dates: FxHashMap<usize, DateEvidence>,
    pub numbers: FxHashMap<usize, DecimalEvidence>,
    /// Probability columns: the largest plain (no `%`) value seen.
    pub percent_max: FxHashMap<usize, f64>,
    /// Line of each column's example value (the one an error shows).
    pub example_line: FxHashMap<usize, u64>,
}

impl Inference {
    /// Adds one cell of column `col`, on `line`.
    pub fn add(&mut self, col: usize, cell: &str, line: u64) {
        let cell = cell.trim();
        if cell.is_empty() {
            return;
        }
        let mut example = false;
        if let Some(e) = self.dates.get_mut(&col) {
            let had = e.example.is_some();
            e.add(cell);
            example |= !had && e.example.is_some();
        }
        if let Some(e) = self.numbers.get_mut(&col) {
            let had = e.example.is_some();
            e.add(cell);
            example |= !had && e.example.is_some();
        }
        if example {
            self.example_line.entry(col).or_insert(line);
        }
        if let Some(m) = self.percent_max.get_mut(&col) {
            if !cell.ends_with('%') {
                if let Some(x) = pipewise_core::value::parse_number(cell) {
                    *m = m.max(x);
                }
            }
        }
    }

    /// Whether anything seen so far needs deciding (so the whole column must
    /// be read to decide it).
    pub fn undecided(&self) -> bool {
        self.dates.values().any(DateEvidence::seen)
            || self
                .numbers
                .values()
                .any(|e| e.ambiguous > 0 || e.comma_only > 0 || e.lone_point > 0)
    }
}

impl RowParser {
    /// Columns whose format is inferred from their values: date columns for
    /// which the mapping names no format, number columns without a decimal
    /// convention. Returns an empty [`Inference`] to fill.
    pub fn inference_targets(&self) -> Inference {
        let mut inf = Inference::default();
        for b in &self.blocks {
            for cp in b.cols.iter().chain(b.effective_at.iter()) {
                let Src::Col(i) = cp.src else { continue };
                match cp.field.ty {
                    FieldType::Date | FieldType::DateTime if cp.formats.is_empty() => {
                        inf.dates.entry(i).or_default();
                    }
                    FieldType::Float | FieldType::Int if cp.decimal.is_none() => {
                        inf.numbers.entry(i).or_default();
                    }
                    _ => {}
                }
                if b.entity == Entity::Opportunity && cp.field.name == "probability" {
                    inf.percent_max.entry(i).or_insert(f64::NEG_INFINITY);
                }
            }
        }
        inf
    }

    /// Sets the formats a pre-scan inferred; a column it could not decide is
    /// an error naming the column, a value and the mapping option to set.
    pub fn apply_inference(&mut self, inf: &Inference, header_line: u64) -> Vec<RowError> {
        let mut errors = Vec::new();
        let file = self.file.clone();
        let header = self.header.clone();
        for b in &mut self.blocks {
            for cp in b.cols.iter_mut().chain(b.effective_at.iter_mut()) {
                let Src::Col(i) = cp.src else { continue };
                let err = |value: Option<String>, message: String| RowError {
                    file: file.clone(),
                    line: inf.example_line.get(&i).copied().unwrap_or(header_line),
                    column: Some(i + 1),
                    column_name: header.get(i).cloned(),
                    value,
                    message,
                };
                if let Some(e) = inf.dates.get(&i) {
                    if matches!(cp.field.ty, FieldType::Date | FieldType::DateTime)
                        && cp.formats.is_empty()
                    {
                        match e.verdict() {
                            Ok(order) => cp.day_order = order,
                            Err(why) => {
                                let ex = e.example.clone().unwrap_or_default();
                                let mdy =
                                    pipewise_core::date::format_for(&ex, DayOrder::MonthFirst);
                                let dmy = pipewise_core::date::format_for(&ex, DayOrder::DayFirst);
                                errors.push(err(
                                    e.example.clone(),
                                    format!(
                                        "cannot tell the day order of this date column: {why}; expected the column's form in the mapping: formats = [\"{mdy}\"] (month first) or [\"{dmy}\"] (day first) on this field"
                                    ),
                                ))
                            }
                        }
                    }
                }
                if let Some(&m) = inf.percent_max.get(&i) {
                    if cp.field.name == "probability" {
                        cp.percent = Some(m > 1.0);
                    }
                }
                if let Some(e) = inf.numbers.get(&i) {
                    if matches!(cp.field.ty, FieldType::Float | FieldType::Int)
                        && cp.decimal.is_none()
                    {
                        match e.verdict() {
                            Ok(d) => cp.decimal = d,
                            Err(why) => errors.push(err(
                                e.example.clone(),
                                format!(
                                    "cannot tell the decimal separator of this number column: {why}; expected decimal = \".\" or decimal = \",\" for the field or the mapping"
                                ),
                            )),
                        }
                    }
                }
            }
        }
        errors.dedup_by(|a, b| a.column == b.column);
        errors
    }

    /// Whether a record starts a report's footer (see `FileMapping::footer`).
    pub fn is_footer(&self, rec: &ByteRecord) -> bool {
        if self.footer.is_empty() {
            return false;
        }
        let Some(first) = rec
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_lowercase())
            .find(|c| !c.is_empty())
        else {
            return false;
        };
        self.footer
            .iter()
            .any(|f| first.starts_with(&f.trim().to_lowercase()))
    }

    /// The entities this file's rows become (for bulk-load hints).
    pub fn entities(&self) -> Vec<Entity> {
        self.blocks.iter().map(|b| b.entity).collect()
    }

    /// Reads one record into every entity of the mapping: everything that
    /// can be checked without the database.
    pub fn parse(&self, line: u64, rec: &ByteRecord, cleanings: &mut Cleanings) -> ParsedRow {
        let mut row = ParsedRow {
            line,
            errors: Vec::new(),
            blocks: Vec::new(),
        };
        // A quote never closed (or closed late) runs the record over what
        // follows it: say where, not that fields are missing. Told from a legitimate value with newlines or
        // delimiters (notes) by what it swallowed: the file's end, a later
        // line with a whole row's worth of delimiters, or (in a record short
        // of fields) the missing fields' delimiters on its own line.
        let width = self.width;
        let missing = width.saturating_sub(rec.len());
        let delimiters = |line: &[u8]| {
            [b',', b';', b'\t', b'|']
                .iter()
                .map(|d| line.iter().filter(|&b| b == d).count())
                .max()
                .unwrap_or(0)
        };
        let last = rec.len().saturating_sub(1);
        let swallowed = |i: usize, c: &[u8]| {
            let mut lines = c.split(|&b| b == b'\n');
            let first = lines.next().unwrap_or_default();
            (c.ends_with(b"\n") && rec.len() < width)
                || lines.any(|l| delimiters(l) + 1 >= width)
                // Open on the file's last line: the rest of the row is in
                // the record's last field.
                || (missing > 0 && i == last && delimiters(first) >= missing)
        };
        // Only a record already short of fields is diagnosed: a record of
        // the right width may hold any text in a quoted value (a property
        // test writes "A\n,,A"), so it is never rejected for its look.
        let quoted = if rec.len() < width {
            rec.iter().enumerate().position(|(i, c)| swallowed(i, c))
        } else {
            None
        }
        .map(|i| {
            // A quote left open to the end swallows the file's last
            // newline too: that one starts no line.
            let trailing = rec.iter().next_back().is_some_and(|c| c.ends_with(b"\n"));
            let newlines: usize = rec
                .iter()
                .map(|c| memchr::memchr_iter(b'\n', c).count())
                .sum();
            (i, newlines - usize::from(trailing))
        });
        if let Some((i, spans)) = quoted {
            let cell = String::from_utf8_lossy(rec.get(i).unwrap_or_default());
            let head: String = cell
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect();
            row.errors.push(RowError {
                file: self.file.clone(),
                line,
                column: Some(i + 1),
                column_name: self.header.get(i).cloned(),
                value: Some(head),
                message: format!(
                    "a quoted value opened here {}: its closing quote is missing or misplaced, so {} read as one record of {} fields (expected {}); close the quote, or write a quote inside a value as \"\"",
                    match spans {
                        0 => "runs to the end of the file".to_string(),
                        1 => "runs over the next line".to_string(),
                        n => format!("runs over the next {n} lines"),
                    },
                    if spans == 0 {
                        "this line was".to_string()
                    } else {
                        format!("lines {line}-{} were", line + spans as u64)
                    },
                    rec.len(),
                    self.width
                ),
            });
            return row;
        }
        if rec.len() != self.width {
            let (column, name) = if rec.len() < self.width {
                (Some(rec.len() + 1), self.header.get(rec.len()).cloned())
            } else {
                (Some(self.width + 1), None)
            };
            let filled: Vec<String> = rec
                .iter()
                .map(|c| String::from_utf8_lossy(c).trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            let message = if filled.len() <= 2 && rec.len() < self.width {
                // A report's title, footer or totals line.
                let first = filled.first().cloned().unwrap_or_default();
                let words: String = first
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                format!(
                    "expected {} fields, found {}: this looks like a report's title or footer line ({first:?}), not data; skip it with footer = [{words:?}] (lines after the data) or skip_rows (lines above the header) in the mapping's [[file]] section",
                    self.width,
                    rec.len()
                )
            } else {
                format!(
                    "expected {} fields, found {} (truncated or misquoted row?)",
                    self.width,
                    rec.len()
                )
            };
            // The value at the column named: the first extra cell of a row
            // too long (a short row has none there; a title line's text is
            // in the message).
            let value = (rec.len() > self.width).then(|| {
                String::from_utf8_lossy(rec.get(self.width).unwrap_or(b""))
                    .trim()
                    .to_string()
            });
            row.errors.push(RowError {
                file: self.file.clone(),
                line,
                column,
                column_name: name,
                value,
                message,
            });
            return row;
        }
        // Decode each used cell once; invalid UTF-8 is an error of that cell.
        // Cells no field reads are not decoded at all.
        let mut cells: Vec<Option<&str>> = Vec::with_capacity(rec.len());
        for (i, raw) in rec.iter().enumerate() {
            if !self.used[i] {
                cells.push(None);
                continue;
            }
            match std::str::from_utf8(raw) {
                Ok(s) => cells.push(Some(s)),
                Err(e) => {
                    cells.push(None);
                    row.errors.push(RowError {
                        file: self.file.clone(),
                        line,
                        column: Some(i + 1),
                        column_name: self.header.get(i).cloned(),
                        value: Some(String::from_utf8_lossy(raw).into_owned()),
                        message: format!(
                            "invalid UTF-8 at byte {} of the cell; expected UTF-8 text: name the file's encoding (encoding = \"windows-1252\" in the mapping, or --encoding latin1|cp1252|utf-16)",
                            e.valid_up_to()
                        ),
                    });
                }
            }
        }
        if !row.errors.is_empty() {
            return row;
        }
        row.blocks = (0..self.blocks.len())
            .map(|bi| self.parse_block(bi, line, &cells, cleanings))
            .collect();
        row
    }

    fn parse_block(
        &self,
        bi: usize,
        line: u64,
        cells: &[Option<&str>],
        cleanings: &mut Cleanings,
    ) -> ParsedBlock {
        let block = &self.blocks[bi];
        let file = self.file.as_str();
        let mut values = Vec::with_capacity(block.cols.len());
        let mut row_errors: Vec<RowError> = Vec::new();
        let mut missing_required = false;
        for (ci, cp) in block.cols.iter().enumerate() {
            let (value, missing) =
                read_cell(cp, cells, file, line, (cleanings, bi, ci), &mut row_errors);
            if missing && cp.field.required {
                missing_required = true;
            }
            values.push(value);
        }
        if missing_required && block.optional && row_errors.is_empty() {
            return ParsedBlock::Skipped;
        }
        let mut missing = Vec::new();
        for (ci, cp) in block.cols.iter().enumerate() {
            if cp.field.required
                && values[ci].is_null()
                && !row_errors
                    .iter()
                    .any(|e| e.column_name.as_deref() == Some(&cp.label))
            {
                if block.key_pos.contains(&ci) || block.entity.key() != ["id"] {
                    // A key, or a field of a row that cannot be looked up.
                    row_errors.push(required_error(file, line, block, cp, false));
                } else {
                    missing.push(ci);
                }
            }
        }
        // An amount written with its currency ("MXN 200,000", "1.234,56 EUR")
        // keeps it: it fills an empty currency, and must agree with a given one.
        if block.entity.field("currency").is_some() {
            let corporate = self.corporate.as_deref();
            check_amount_currency(
                block,
                cells,
                &mut values,
                corporate,
                (file, line),
                &mut row_errors,
            );
        }
        // History values must be valid for the field they record.
        if block.entity == Entity::OpportunityHistory {
            validate_history(block, &mut values, file, line, &mut row_errors);
        }
        // An away period must end after it starts.
        if block.entity == Entity::OutOfOffice {
            let pos = |name: &str| block.columns.iter().position(|c| *c == name);
            if let (Some(a), Some(b)) = (pos("start_at"), pos("end_at"))
                && let (Some(start), Some(end)) = (values[a].as_str(), values[b].as_str())
                && end <= start
            {
                row_errors.push(RowError {
                    file: file.into(),
                    line,
                    column: col_number(&block.cols[b].src),
                    column_name: Some(block.cols[b].label.clone()),
                    value: Some(end.to_string()),
                    message: format!("expected an end after the start ({start})"),
                });
            }
        }
        if cp_probability(block) {
            if let Some(i) = block.columns.iter().position(|c| *c == "probability") {
                let cp = &block.cols[i];
                if let Value::Float(x) = values[i] {
                    // Without a pre-scan (JSONL), a value above 1 is a percentage.
                    let x = if cp.percent.is_none() && x > 1.0 {
                        x / 100.0
                    } else {
                        x
                    };
                    values[i] = Value::Float(x);
                    if !(0.0..=1.0).contains(&x) {
                        row_errors.push(RowError {
                            file: file.into(),
                            line,
                            column: col_number(&cp.src),
                            column_name: Some(cp.label.clone()),
                            value: Some(x.to_string()),
                            message: "expected a probability from 0 to 1, or a percentage from 0 to 100 (the whole column in one form)".into(),
                        });
                    }
                }
            }
        }
        let effective_at = match &block.effective_at {
            None => None,
            Some(cp) => {
                let (v, _) = read_cell(
                    cp,
                    cells,
                    file,
                    line,
                    (cleanings, bi, usize::MAX),
                    &mut row_errors,
                );
                match v {
                    Value::Text(s) => Some(s),
                    _ => {
                        if !row_errors
                            .iter()
                            .any(|e| e.column_name.as_deref() == Some(&cp.label))
                        {
                            row_errors.push(RowError {
                                file: file.into(),
                                line,
                                column: col_number(&cp.src),
                                column_name: Some(cp.label.clone()),
                                value: None,
                                message: "the time this row took effect is required; expected a date-time".into(),
                            });
                        }
                        None
                    }
                }
            }
        };
        if !row_errors.is_empty() {
            let key = match block.key_pos[..] {
                [k] => values[k].to_text(),
                _ => None,
            };
            return ParsedBlock::Invalid {
                key,
                errors: row_errors,
            };
        }
        ParsedBlock::Ready {
            values,
            effective_at,
            missing,
        }
    }
}

/// Currencies named by symbol only: `$` (dollars, pesos...) and `¥` (yen, yuan).
const DOLLAR_LIKE: &[&str] = &[
    "USD", "CAD", "AUD", "NZD", "MXN", "SGD", "HKD", "TWD", "ARS", "CLP", "COP",
];
const YEN_LIKE: &[&str] = &["JPY", "CNY"];

/// See the call in `parse_block`.
fn check_amount_currency(
    block: &BlockPlan,
    cells: &[Option<&str>],
    values: &mut [Value],
    corporate: Option<&str>,
    (file, line): (&str, u64),
    errors: &mut Vec<RowError>,
) {
    let cur = block.columns.iter().position(|c| *c == "currency");
    for cp in &block.cols {
        if !matches!(cp.field.name, "amount" | "unit_price") {
            continue;
        }
        let Src::Col(i) = cp.src else { continue };
        let Some(raw) = cells[i] else { continue };
        if !raw
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b >= 0x80 || b == b'$')
        {
            continue;
        }
        let Ok(n) = pipewise_core::number::parse_number_as(raw, cp.decimal) else {
            continue;
        };
        let given = cur.and_then(|k| values[k].as_str().map(str::to_string));
        let mut err = |message: String| {
            errors.push(RowError {
                file: file.into(),
                line,
                column: Some(i + 1),
                column_name: Some(cp.label.clone()),
                value: Some(raw.to_string()),
                message,
            })
        };
        let Some(code) = n.currency else {
            // `$500` names no one currency; with no currency on the row it is
            // read as the corporate currency, unless that is no dollar (or yen).
            let family = if raw.contains('$') {
                Some(("$", DOLLAR_LIKE))
            } else if raw.contains('¥') {
                Some(("¥", YEN_LIKE))
            } else {
                None
            };
            match (family, &given, corporate) {
                (Some((sym, codes)), None, Some(k)) if !codes.contains(&k) => err(format!(
                    "the amount is written with {sym}, but the row names no currency and the corporate currency is {k}; expected a currency column or a constant (fields.currency = {{ const = \"USD\" }})"
                )),
                (Some((sym, codes)), Some(g), _) if !codes.contains(&g.as_str()) => err(format!(
                    "the amount is written with {sym} but the row's currency is {g}; expected one currency per row"
                )),
                _ => {}
            }
            continue;
        };
        match (cur, given) {
            (Some(k), None) => values[k] = Value::Text(code),
            (_, Some(given)) if given != code => err(format!(
                "the amount is written in {code} but the row's currency is {given}; expected one currency per row"
            )),
            (None, None) if corporate != Some(code.as_str()) => err(format!(
                "the amount is written in {code}, which is not the corporate currency{}, and no currency is given for {}; expected a currency column (in a mapping: fields.currency = \"CurrencyIsoCode\" or {{ const = \"{code}\" }}), so amounts in different currencies are never added up",
                corporate.map(|k| format!(" ({k})")).unwrap_or_default(),
                block.entity.table()
            )),
            _ => {}
        }
    }
}

/// A required field left empty (`for_new`: on a row that does not exist yet).
fn required_error(
    file: &str,
    line: u64,
    block: &BlockPlan,
    cp: &ColPlan,
    for_new: bool,
) -> RowError {
    let entity = block.entity.singular();
    RowError {
        file: file.into(),
        line,
        column: col_number(&cp.src),
        column_name: Some(cp.label.clone()),
        value: None,
        message: format!(
            "{entity} {} is required{}; expected {}",
            cp.field.name,
            if for_new {
                format!(" for a new {entity}")
            } else {
                String::new()
            },
            cp.field.ty.expected()
        ),
    }
}

fn cp_probability(block: &BlockPlan) -> bool {
    block.entity == Entity::Opportunity && block.columns.contains(&"probability")
}

fn col_number(src: &Src) -> Option<usize> {
    match src {
        Src::Col(i) => Some(i + 1),
        _ => None,
    }
}

/// Raw text -> cleansed -> mapped -> parsed value. Returns the value and
/// whether the cell was empty.
fn read_cell(
    cp: &ColPlan,
    cells: &[Option<&str>],
    file: &str,
    line: u64,
    (cleanings, block, column): (&mut Cleanings, usize, usize),
    errors: &mut Vec<RowError>,
) -> (Value, bool) {
    let raw: std::borrow::Cow<'_, str> = match &cp.src {
        Src::Col(i) => cells[*i].unwrap_or("").into(),
        Src::Const(k) => k.as_str().into(),
        Src::Template(parts) => {
            let mut s = String::new();
            for p in parts {
                match p {
                    Part::Lit(l) => s.push_str(l),
                    Part::Col(i) => s.push_str(cells[*i].unwrap_or("").trim()),
                }
            }
            s.into()
        }
    };
    let mut text: std::borrow::Cow<'_, str> = match raw {
        std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(b.trim()),
        std::borrow::Cow::Owned(o) => std::borrow::Cow::Owned(o.trim().to_string()),
    };
    if cp.null_if.iter().any(|n| n == text.as_ref()) {
        text = "".into();
    }
    if text.is_empty() {
        if let Some(d) = &cp.default {
            text = d.clone().into();
        }
    }
    if let Some((_, table)) = &cp.clean {
        if let Some(to) = table.get(text.as_ref()) {
            let counts = cleanings.0.entry((block, column)).or_default();
            match counts.get_mut(text.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(text.to_string(), 1);
                }
            }
            text = to.clone().into();
        }
    }
    if !cp.values.is_empty() {
        if let Some(to) = cp.values.get(&text.to_lowercase()) {
            text = to.clone().into();
        }
    }
    if text.is_empty() {
        return (Value::Null, true);
    }
    let format = CellFormat {
        date_formats: &cp.formats,
        day_order: cp.day_order,
        decimal: cp.decimal,
    };
    if text.trim_end().ends_with('%')
        && matches!(cp.field.ty, FieldType::Float | FieldType::Int)
        && cp.field.name != "probability"
    {
        errors.push(RowError {
            file: file.into(),
            line,
            column: col_number(&cp.src),
            column_name: Some(cp.label.clone()),
            value: Some(text.to_string()),
            message: format!(
                "a percentage, where {} {} is expected",
                cp.field.name,
                cp.field.ty.expected()
            ),
        });
        return (Value::Null, false);
    }
    match parse_cell_with(&cp.field.ty, &text, &format) {
        Ok(mut v) => {
            if let (Some(true), Value::Float(x)) = (cp.percent, &v) {
                // A percentage column: `10` is 10%, and so is `10%`.
                if !text.trim_end().ends_with('%') {
                    v = Value::Float(x / 100.0);
                }
            }
            if let (Some(k), Value::Float(x)) = (cp.scale, &v) {
                v = Value::Float(x * k);
            }
            if let (Some(k), Value::Int(x)) = (cp.scale, &v) {
                v = Value::Int((*x as f64 * k).round() as i64);
            }
            (v, false)
        }
        Err(e) => {
            let mut expected = e.expected;
            if !cp.values.is_empty() {
                let mut keys: Vec<&str> = cp.values.keys().map(String::as_str).collect();
                keys.sort_unstable();
                expected = format!(
                    "{expected}, or a value the mapping translates ({})",
                    keys.join(", ")
                );
            }
            errors.push(RowError {
                file: file.into(),
                line,
                column: col_number(&cp.src),
                column_name: Some(cp.label.clone()),
                value: Some(text.to_string()),
                message: format!("expected {expected}"),
            });
            (Value::Null, false)
        }
    }
}

fn validate_history(
    block: &BlockPlan,
    values: &mut [Value],
    file: &str,
    line: u64,
    errors: &mut Vec<RowError>,
) {
    let pos = |name: &str| block.columns.iter().position(|c| *c == name);
    let Some(fi) = pos("field") else { return };
    let Some(field) = values[fi]
        .as_str()
        .and_then(|f| HISTORY_FIELDS.normalise(f))
    else {
        return;
    };
    let Some(opp_field) = Entity::Opportunity.field(field) else {
        return;
    };
    for name in ["value", "old_value"] {
        let Some(vi) = pos(name) else { continue };
        let Value::Text(raw) = &values[vi] else {
            continue;
        };
        match parse_cell(&opp_field.ty, raw, &[]) {
            Ok(v) => values[vi] = v.to_text().map_or(Value::Null, Value::Text),
            Err(e) => errors.push(RowError {
                file: file.into(),
                line,
                column: col_number(&block.cols[vi].src),
                column_name: Some(block.cols[vi].label.clone()),
                value: Some(raw.clone()),
                message: format!("a {field} history value: expected {}", e.expected),
            }),
        }
    }
}
