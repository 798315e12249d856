//! Importers: files in, validated rows out, all or nothing.
//!
//! Every import runs in one store transaction. Each file is streamed record by
//! record through a [`Mapping`] (the canonical format is the identity mapping,
//! the Maven CRM export and Salesforce/HubSpot reports are mapping files), so
//! memory does not depend on file size. Problems are collected with file, line,
//! column, value and what was expected — up to a limit — and any problem rolls
//! the whole import back. `dry_run` runs the same path and rolls back at the
//! end, so its report is exactly what a real run would do.

pub mod decode;
pub mod mapping;
pub mod report;
mod table;
pub mod vtt;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use pipewise_core::{Entity, Value};
use pipewise_store::{RowWrite, Store, StoreError};
use serde::Deserialize;

pub use mapping::Mapping;
pub use report::{Cleaning, EntityCounts, ImportReport, RowError};
use table::{Context, FilePlan};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("mapping {path}: {message}")]
    Mapping { path: String, message: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Row(RowError),
}

/// One input of an import.
#[derive(Debug, Clone)]
pub enum Source {
    /// A CSV file read through one `[[file]]` section of a mapping.
    Csv {
        path: PathBuf,
        mapping: Mapping,
        file: usize,
        canonical: bool,
    },
    /// A JSONL file of one entity in the canonical format (one object per line).
    Jsonl { path: PathBuf, entity: Entity },
    /// A transcript and what it is linked to: WebVTT, or SubRip (`.srt`,
    /// or any file without a `WEBVTT` header that has SubRip's shape).
    Vtt { path: PathBuf, link: TranscriptLink },
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Csv { path, .. } | Source::Jsonl { path, .. } | Source::Vtt { path, .. } => {
                path
            }
        }
    }

    /// A canonical CSV or JSONL file of `entity`, chosen by extension.
    pub fn canonical(path: PathBuf, entity: Entity) -> Source {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
        {
            Source::Jsonl { path, entity }
        } else {
            Source::Csv {
                path,
                mapping: Mapping::canonical(entity),
                file: 0,
                canonical: true,
            }
        }
    }
}

/// What a transcript belongs to. Given on the command line or in a sidecar
/// JSON file next to the transcript (`call.vtt.json` or `call.json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptLink {
    /// Conversation id; defaults to the file name without extension.
    pub id: Option<String>,
    pub opportunity_id: Option<String>,
    pub lead_id: Option<String>,
    /// The rep on the call; defaults to the first speaker who is a known user,
    /// else the owner of the linked opportunity or lead.
    pub user_id: Option<String>,
    pub activity_id: Option<String>,
    pub started_at: Option<String>,
    pub title: Option<String>,
    /// Speaker name -> `rep`, `customer` or `other`. Speakers not listed are
    /// reps when a user has their name, customers otherwise.
    #[serde(default)]
    pub speakers: std::collections::BTreeMap<String, String>,
}

impl TranscriptLink {
    /// Fills what is not set here from the sidecar next to `path`, if any.
    pub fn with_sidecar(mut self, path: &Path) -> Result<TranscriptLink, IngestError> {
        let candidates = [
            PathBuf::from(format!("{}.json", path.display())),
            path.with_extension("json"),
        ];
        for c in candidates {
            if c.is_file() {
                let text = std::fs::read_to_string(&c).map_err(|e| IngestError::Io {
                    path: c.display().to_string(),
                    source: e,
                })?;
                let side: TranscriptLink =
                    serde_json::from_str(&text).map_err(|e| IngestError::Mapping {
                        path: c.display().to_string(),
                        message: e.to_string(),
                    })?;
                self.id = self.id.or(side.id);
                self.opportunity_id = self.opportunity_id.or(side.opportunity_id);
                self.lead_id = self.lead_id.or(side.lead_id);
                self.user_id = self.user_id.or(side.user_id);
                self.activity_id = self.activity_id.or(side.activity_id);
                self.started_at = self.started_at.or(side.started_at);
                self.title = self.title.or(side.title);
                for (k, v) in side.speakers {
                    self.speakers.entry(k).or_insert(v);
                }
                break;
            }
        }
        Ok(self)
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub dry_run: bool,
    /// Errors listed before the import stops looking (default 100).
    pub max_errors: usize,
    /// UTC instant that dates changes whose source gives no time.
    pub as_of: String,
    /// `canonical`, `maven`, `csv`, `jsonl`, `vtt`: recorded in the audit log.
    pub kind: String,
    /// The text encoding of the CSV files (a WHATWG label such as `latin1`,
    /// `cp1252`, `utf-16`), over the mapping's `encoding`.
    pub encoding: Option<String>,
}

/// Shows how far a long import has got. The CLI draws a progress bar.
pub trait Progress {
    fn begin(&self, _label: &str, _total_bytes: u64) {}
    fn advance_to(&self, _bytes: u64) {}
    fn end(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// The sources of a set of files (such as an upload): with a mapping, each
/// file through the `[[file]]` section named like it (or the only section),
/// in the mapping's order; without, `.vtt`/`.srt` files are transcripts
/// (linked by a sidecar `NAME.json` among the files) and `.csv`/`.jsonl`
/// files are canonical files of `entity`, or of the entity their name says,
/// parents first. Sidecar `.json` files are read by their transcript only.
pub fn file_sources(
    files: &[PathBuf],
    mapping: Option<&Mapping>,
    entity: Option<Entity>,
) -> Result<Vec<Source>, IngestError> {
    let name_of = |f: &Path| {
        f.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let ext_of = |f: &Path| {
        f.extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let mut keyed: Vec<(usize, Source)> = Vec::new();
    for f in files {
        let name = name_of(f);
        let ext = ext_of(f);
        if ext == "json" {
            continue;
        }
        if let Some(m) = mapping {
            let idx = if m.files.len() == 1 {
                0
            } else {
                m.files
                    .iter()
                    .position(|fm| fm.name.as_deref() == Some(name.as_str()))
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            m.files.iter().filter_map(|fm| fm.name.as_deref()).collect();
                        IngestError::Usage(format!(
                            "{name}: mapping {} has several file sections and none is named {name} (its files: {})",
                            m.name,
                            names.join(", ")
                        ))
                    })?
            };
            keyed.push((
                idx,
                Source::Csv {
                    path: f.clone(),
                    mapping: m.clone(),
                    file: idx,
                    canonical: false,
                },
            ));
            continue;
        }
        if ext == "vtt" || ext == "srt" {
            let link = TranscriptLink::default().with_sidecar(f)?;
            keyed.push((
                usize::MAX,
                Source::Vtt {
                    path: f.clone(),
                    link,
                },
            ));
            continue;
        }
        let e = match entity {
            Some(e) => e,
            None => {
                let stem = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Entity::from_table(&stem).ok_or_else(|| {
                    let known: Vec<&str> = Entity::ALL.iter().map(|e| e.table()).collect();
                    IngestError::Usage(format!(
                        "{name}: cannot tell the entity from the file name; name the file after one ({}) or give the entity",
                        known.join(", ")
                    ))
                })?
            }
        };
        let order = Entity::ALL.iter().position(|x| *x == e).unwrap_or(0);
        keyed.push((order, Source::canonical(f.clone(), e)));
    }
    if keyed.is_empty() {
        return Err(IngestError::Usage(
            "no file to import (sidecar .json files go with a transcript)".into(),
        ));
    }
    keyed.sort_by_key(|(k, _)| *k);
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// The files of a directory import: for a mapping, the files its `[[file]]`
/// sections name; for the canonical format, `<entity>.csv` or `.jsonl` for
/// every entity present, parents first.
pub fn sources_in_dir(dir: &Path, mapping: Option<&Mapping>) -> Result<Vec<Source>, IngestError> {
    if !dir.is_dir() {
        return Err(IngestError::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    match mapping {
        Some(m) => {
            for (i, f) in m.files.iter().enumerate() {
                let Some(name) = &f.name else {
                    return Err(IngestError::Usage(format!(
                        "mapping {}: file section #{} has no name, so it cannot be found in a directory",
                        m.name,
                        i + 1
                    )));
                };
                let path = dir.join(name);
                if !path.is_file() {
                    return Err(IngestError::Usage(format!(
                        "{}: expected the file {name} of mapping {} (if the export has no such file, remove its [[file]] section from a copy of the mapping)",
                        dir.display(),
                        m.name
                    )));
                }
                out.push(Source::Csv {
                    path,
                    mapping: m.clone(),
                    file: i,
                    canonical: false,
                });
            }
        }
        None => {
            for e in Entity::ALL {
                for ext in ["csv", "jsonl"] {
                    let path = dir.join(format!("{}.{ext}", e.table()));
                    if path.is_file() {
                        out.push(Source::canonical(path, e));
                    }
                }
            }
            if out.is_empty() {
                let names: Vec<String> = Entity::ALL
                    .iter()
                    .map(|e| format!("{}.csv", e.table()))
                    .collect();
                return Err(IngestError::Usage(format!(
                    "{} holds no canonical file; expected some of: {}",
                    dir.display(),
                    names.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// Runs an import: every source in order, in one transaction. Returns the
/// report; it is committed only when it has no errors and is not a dry run.
pub fn run_import(
    store: &mut dyn Store,
    sources: &[Source],
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, IngestError> {
    let report = ImportReport {
        kind: opts.kind.clone(),
        sources: sources
            .iter()
            .map(|s| s.path().display().to_string())
            .collect(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let input_bytes = sources
        .iter()
        .filter_map(|s| std::fs::metadata(s.path()).ok())
        .map(|m| m.len())
        .sum();
    let tx = store.begin(&opts.as_of, input_bytes)?;
    let mut ctx = Context::new(tx, report, opts.max_errors.max(1));
    for source in sources {
        if ctx.full() {
            break;
        }
        match source {
            Source::Csv {
                path,
                mapping,
                file,
                canonical,
            } => import_csv(
                &mut ctx,
                path,
                mapping,
                *file,
                *canonical,
                opts.encoding.as_deref(),
                progress,
            )?,
            Source::Jsonl { path, entity } => import_jsonl(&mut ctx, path, *entity, progress)?,
            Source::Vtt { path, link } => import_vtt(&mut ctx, path, link)?,
        }
    }
    let disagreements = ctx.tx.settle_history()?;
    if let Some(first) = disagreements.first() {
        ctx.report.warnings.push(format!(
            "{} current value(s) of opportunities disagreed with their history up to the time the values were observed, and were recorded as changes at that time (the source's history misses the change, or dates it later), e.g. {first}",
            disagreements.len()
        ));
    }
    ctx.report.history_recorded = ctx.tx.history_written();
    let mut report = std::mem::take(&mut ctx.report);
    report
        .errors
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    if report.ok() && !opts.dry_run {
        let json = serde_json::to_string(&report).unwrap_or_default();
        ctx.tx
            .log_import(&opts.kind, &report.sources.join("\n"), &json)?;
        let t = std::time::Instant::now();
        let committed = ctx.tx.commit();
        tracing::info!(
            "commit (with any deferred index builds) took {:.2?}",
            t.elapsed()
        );
        match committed {
            Ok(()) => report.committed = true,
            Err(e) => {
                report.errors.push(RowError {
                    file: report.sources.join(", "),
                    line: 0,
                    column: None,
                    column_name: None,
                    value: None,
                    message: e.to_string(),
                });
            }
        }
    }
    // Otherwise the transaction is dropped here: rolled back.
    Ok(report)
}

fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// Records read to decide whether a column's dates or numbers need their
/// format inferred from the whole file.
const INFERENCE_SAMPLE: u64 = 1000;

/// A CSV reader over a file, decoded to UTF-8, with `skip_rows` title lines
/// skipped. Returns the reader, its first record after those lines (the
/// header) and the header's line number.
struct CsvReader {
    rdr: csv::Reader<Box<dyn Read + Send>>,
    lines: Lines,
}

/// Where the newlines of a stream are, as a CSV reader consumes it: a
/// record's byte offset then gives its line in the file, blank lines
/// included (the csv crate's own count skips them). Keeps only the newlines
/// of the reader's read-ahead.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<LineCount>>);

#[derive(Default)]
struct LineCount {
    /// Bytes read so far.
    pos: u64,
    /// Offsets of newlines not yet passed by a query, each with whether a
    /// carriage return comes right before it.
    ahead: std::collections::VecDeque<(u64, bool)>,
    /// Whether the last byte read was a carriage return.
    cr: bool,
    /// Newlines before the first of `ahead`.
    passed: u64,
}

impl Lines {
    /// The 1-based line of the byte at `offset` (queries in increasing order).
    fn line_at(&self, offset: u64) -> u64 {
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while l.ahead.front().is_some_and(|&(p, _)| p < offset) {
            l.ahead.pop_front();
            l.passed += 1;
        }
        l.passed + 1
    }

    /// Blank lines (LF or CRLF) starting at `offset`, which the CSV reader
    /// skips before a record (call after `line_at(offset)`).
    fn blank_lines_at(&self, offset: u64) -> u64 {
        let l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut expected = offset;
        let mut blank = 0;
        for &(p, cr) in &l.ahead {
            if p == expected || (cr && p == expected + 1) {
                blank += 1;
                expected = p + 1;
            } else {
                break;
            }
        }
        blank
    }

    fn line_of(&self, pos: Option<&csv::Position>) -> u64 {
        pos.map_or(0, |p| self.line_at(p.byte()))
    }

    /// The line a record just read starts on, from the reader's position
    /// after it (`end`, past its terminator): the line of its last byte, less
    /// the newlines inside its quoted fields. (A record's own start position
    /// counts from the blank lines before it.)
    /// `fields`: the record's field bytes, concatenated. `start`: the
    /// reader's position before the record (the end of the one before): a
    /// quote never closed swallows the file's last newline into the field,
    /// and the record still starts no earlier than there.
    fn record_line(&self, start: u64, end: u64, fields: &[u8]) -> u64 {
        let first = self.line_at(start) + self.blank_lines_at(start);
        let last = self.line_at(end.saturating_sub(1));
        let inner = memchr::memchr_iter(b'\n', fields).count() as u64;
        last.saturating_sub(inner).max(first).max(1)
    }
}

struct Tap<R> {
    inner: R,
    lines: Lines,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut l = self.lines.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = l.pos;
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            let cr = if i == 0 { l.cr } else { buf[i - 1] == b'\r' };
            l.ahead.push_back((at + i as u64, cr));
        }
        if n > 0 {
            l.cr = buf[n - 1] == b'\r';
        }
        l.pos += n as u64;
        Ok(n)
    }
}

/// A CSV reader over a file decoded to UTF-8, with the file section's delimiter.
fn csv_reader(
    path: &Path,
    fm: &mapping::FileMapping,
    encoding: Option<&'static decode::Encoding>,
) -> std::io::Result<CsvReader> {
    let lines = Lines::default();
    let reader = Tap {
        inner: decode::open_text(path, encoding)?,
        lines: lines.clone(),
    };
    let delimiter = fm
        .delimiter
        .as_deref()
        .and_then(|d| d.bytes().next())
        .unwrap_or(b',');
    let rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(Box::new(BufReader::with_capacity(1 << 17, reader)) as Box<dyn Read + Send>);
    Ok(CsvReader { rdr, lines })
}

fn open_csv(
    ctx: &mut Context<'_>,
    path: &Path,
    fm: &mapping::FileMapping,
    encoding: Option<&'static decode::Encoding>,
) -> Result<Option<(CsvReader, ByteRecord, u64)>, IngestError> {
    let name = display_name(path);
    let mut csv = csv_reader(path, fm, encoding).map_err(|e| IngestError::Io {
        path: name.clone(),
        source: e,
    })?;
    let mut rec = ByteRecord::new();
    loop {
        let start = csv.rdr.position().byte();
        match csv.rdr.read_byte_record(&mut rec) {
            Ok(true) => {
                let line = csv
                    .lines
                    .record_line(start, csv.rdr.position().byte(), rec.as_slice());
                if line > fm.skip_rows {
                    return Ok(Some((csv, rec, line)));
                }
            }
            Ok(false) => {
                ctx.error(RowError {
                    file: name.clone(),
                    line: fm.skip_rows + 1,
                    column: None,
                    column_name: None,
                    value: None,
                    message: "the file is empty; expected a header line".into(),
                });
                return Ok(None);
            }
            Err(e) => {
                let line = csv.lines.line_of(e.position()).max(1);
                ctx.error(csv_error(&name, e, line));
                return Ok(None);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn import_csv(
    ctx: &mut Context<'_>,
    path: &Path,
    mapping: &Mapping,
    file_idx: usize,
    canonical: bool,
    encoding: Option<&str>,
    progress: &dyn Progress,
) -> Result<(), IngestError> {
    let name = display_name(path);
    let total = std::fs::metadata(path)
        .map_err(|e| IngestError::Io {
            path: name.clone(),
            source: e,
        })?
        .len();
    let fm = &mapping.files[file_idx];
    let label = encoding.or(mapping.encoding.as_deref());
    let encoding = match label {
        None => None,
        Some(l) => match decode::encoding_for(l) {
            Some(e) => Some(e),
            None => {
                return Err(IngestError::Usage(format!(
                    "encoding {l:?} is not an encoding label; expected e.g. utf-8, windows-1252, latin1, utf-16le"
                )));
            }
        },
    };
    let Some((csv, rec, header_line)) = open_csv(ctx, path, fm, encoding)? else {
        return Ok(());
    };
    let mut header = Vec::with_capacity(rec.len());
    for (i, h) in rec.iter().enumerate() {
        let h = if i == 0 {
            h.strip_prefix(b"\xef\xbb\xbf").unwrap_or(h)
        } else {
            h
        };
        match std::str::from_utf8(h) {
            Ok(s) => header.push(s.trim().to_string()),
            Err(_) => {
                ctx.error(RowError {
                    file: name.clone(),
                    line: header_line,
                    column: Some(i + 1),
                    column_name: None,
                    value: Some(String::from_utf8_lossy(h).into_owned()),
                    message: "invalid UTF-8 in the header; expected UTF-8 text: name the file's encoding (encoding = \"windows-1252\" in the mapping, or --encoding latin1|cp1252|utf-16)".into(),
                });
                return Ok(());
            }
        }
    }
    let mut plan = match FilePlan::new(&name, header.clone(), fm, mapping, !canonical) {
        Ok(p) => p,
        Err(mut errors) => {
            let hint = header_hint(&header, fm)
                .or_else(|| find_header_below(path, fm, encoding, &errors, header_line));
            if let Some(hint) = hint {
                for e in &mut errors {
                    e.message.push_str(&hint);
                }
            }
            errors.into_iter().for_each(|e| ctx.error(e));
            return Ok(());
        }
    };
    plan.parser.corporate = ctx.tx.setting("corporate_currency")?;
    // Dates and numbers whose form the mapping does not name: read from the
    // column's values (a sample first; the whole file only when it matters).
    let mut inference = plan.parser.inference_targets();
    if !inference.dates.is_empty()
        || !inference.numbers.is_empty()
        || !inference.percent_max.is_empty()
    {
        if let Some((mut scan, _, _)) = open_csv(ctx, path, fm, encoding)? {
            let mut r = ByteRecord::new();
            let mut n = 0u64;
            let cols: Vec<usize> = inference
                .dates
                .keys()
                .chain(inference.numbers.keys())
                .chain(inference.percent_max.keys())
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut start = scan.rdr.position().byte();
            while let Ok(true) = scan.rdr.read_byte_record(&mut r) {
                if plan.parser.is_footer(&r) {
                    break;
                }
                let end = scan.rdr.position().byte();
                let line = scan.lines.record_line(start, end, r.as_slice());
                start = end;
                for &c in &cols {
                    if let Some(cell) = r.get(c).and_then(|b| std::str::from_utf8(b).ok()) {
                        inference.add(c, cell, line);
                    }
                }
                n += 1;
                if n == INFERENCE_SAMPLE && !inference.undecided() {
                    break;
                }
            }
        }
        let errors = plan.parser.apply_inference(&inference, header_line);
        if !errors.is_empty() {
            errors.into_iter().for_each(|e| ctx.error(e));
            return Ok(());
        }
    }
    progress.begin(&name, total);
    let started = std::time::Instant::now();
    let n = pipe_records(ctx, &mut plan, csv, rec, total, &name, progress)?;
    progress.end();
    tracing::info!(
        "{name}: {n} records read and written in {:.2?}",
        started.elapsed()
    );
    Ok(())
}

/// When the header lacks mapped columns because the file was read wrong: a
/// NUL in it (UTF-16 without a byte-order mark), or one column holding
/// another delimiter.
fn header_hint(header: &[String], fm: &mapping::FileMapping) -> Option<String> {
    if header.iter().any(|h| h.contains('\0')) {
        return Some(
            " (the header holds NUL characters: the file is probably UTF-16 without a byte-order mark; pass --encoding utf-16le, or utf-16be)".into(),
        );
    }
    let used = fm.delimiter.as_deref().unwrap_or(",");
    if let [only] = header {
        for d in [";", "\t", "|", ","] {
            if d != used && only.contains(d) {
                let shown = if d == "\t" { "\\t" } else { d };
                return Some(format!(
                    " (the header is one column holding {shown:?}: set delimiter = \"{shown}\" in the mapping's [[file]] section)"
                ));
            }
        }
    }
    None
}

/// When the header lacks mapped columns: the line further down that has
/// them (a report with title lines above its header), as a hint to append.
fn find_header_below(
    path: &Path,
    fm: &mapping::FileMapping,
    encoding: Option<&'static decode::Encoding>,
    errors: &[RowError],
    header_line: u64,
) -> Option<String> {
    let wanted: Vec<&str> = errors
        .iter()
        .filter(|e| e.line == header_line && e.column.is_none())
        .filter_map(|e| e.column_name.as_deref())
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let mut csv = csv_reader(path, fm, encoding).ok()?;
    let mut rec = csv::StringRecord::new();
    for _ in 0..30 {
        let start = csv.rdr.position().byte();
        if !csv.rdr.read_record(&mut rec).ok()? {
            return None;
        }
        let line =
            csv.lines
                .record_line(start, csv.rdr.position().byte(), rec.as_slice().as_bytes());
        if line > header_line
            && wanted.iter().all(|w| {
                rec.iter()
                    .any(|c| c.trim().trim_start_matches('\u{feff}') == *w)
            })
        {
            return Some(format!(
                " (line {line} has the mapped columns: if it is the header, set skip_rows = {} in the mapping's [[file]] section)",
                line - 1
            ));
        }
    }
    None
}

/// A CSV the parser cannot read any further (bad quoting, an I/O error).
fn csv_error(file: &str, e: csv::Error, line: u64) -> RowError {
    RowError {
        file: file.to_string(),
        line,
        column: None,
        column_name: None,
        value: None,
        message: format!("cannot read CSV: {e}"),
    }
}

/// Records per message from the reader thread.
const BATCH: usize = 1024;

enum Batch {
    Rows {
        rows: Vec<table::ParsedRow>,
        /// Bytes of the file read so far.
        at: u64,
    },
    Unreadable(RowError),
}

/// Streams a CSV's records through the plan on two threads: this one checks
/// references and writes (the store is single-threaded), a reader thread
/// parses the CSV, decodes and validates every cell meanwhile. A bounded
/// channel of batches keeps memory flat. Returns the records read.
fn pipe_records(
    ctx: &mut Context<'_>,
    plan: &mut FilePlan,
    csv: CsvReader,
    mut rec: ByteRecord,
    total: u64,
    name: &str,
    progress: &dyn Progress,
) -> Result<u64, IngestError> {
    let (send, receive) = std::sync::mpsc::sync_channel::<Batch>(4);
    // Written batches go back to the reader, which frees them: memory is
    // then freed by the thread that allocated it (much cheaper with the
    // system allocator than freeing across threads) and batches are reused.
    let (give_back, returned) = std::sync::mpsc::channel::<Vec<table::ParsedRow>>();
    let FilePlan { parser, writer } = plan;
    let parser: &table::RowParser = parser;
    std::thread::scope(|scope| {
        let CsvReader { mut rdr, lines } = csv;
        let reader = scope.spawn(move || {
            let mut footer_at = None;
            let mut cleanings = table::Cleanings::default();
            let mut rows = Vec::with_capacity(BATCH);
            loop {
                let start = rdr.position().byte();
                match rdr.read_byte_record(&mut rec) {
                    Ok(true) => {
                        let line = lines.record_line(start, rdr.position().byte(), rec.as_slice());
                        if parser.is_footer(&rec) {
                            footer_at = Some(line);
                            break;
                        }
                        rows.push(parser.parse(line, &rec, &mut cleanings));
                        if rows.len() < BATCH {
                            continue;
                        }
                    }
                    Ok(false) => break,
                    Err(e) => {
                        let line = lines.line_of(e.position());
                        let at = rdr.position().byte();
                        let _ = send.send(Batch::Rows { rows, at });
                        let _ = send.send(Batch::Unreadable(csv_error(name, e, line)));
                        return (cleanings, footer_at);
                    }
                }
                let spare = match returned.try_recv() {
                    Ok(mut used) => {
                        used.clear();
                        used
                    }
                    Err(_) => Vec::with_capacity(BATCH),
                };
                let full = std::mem::replace(&mut rows, spare);
                let at = rdr.position().byte();
                if send.send(Batch::Rows { rows: full, at }).is_err() {
                    // The writer stopped (too many errors, or a store error).
                    return (cleanings, footer_at);
                }
            }
            let at = rdr.position().byte();
            let _ = send.send(Batch::Rows { rows, at });
            (cleanings, footer_at)
        });
        let mut n: u64 = 0;
        let mut hinted = false;
        let written = (|| -> Result<(), IngestError> {
            for batch in receive.iter() {
                let (mut rows, at) = match batch {
                    Batch::Rows { rows, at } => (rows, at),
                    Batch::Unreadable(e) => {
                        ctx.error(e);
                        break;
                    }
                };
                let count = rows.len() as u64;
                if !hinted && count > 0 {
                    // A big file: let the store prepare a bulk load.
                    hinted = true;
                    let per_row = (at / count).max(1);
                    for e in parser.entities() {
                        ctx.tx.bulk_load(e, total / per_row)?;
                    }
                }
                for row in rows.iter_mut() {
                    writer.apply(parser, ctx, row)?;
                    if ctx.full() {
                        return Ok(());
                    }
                }
                n += count;
                progress.advance_to(at);
                let _ = give_back.send(rows);
            }
            Ok(())
        })();
        // Stops the reader if the writer stopped early.
        drop(receive);
        let (cleanings, footer_at) = reader.join().expect("the CSV reader thread panicked");
        if let Some(line) = footer_at {
            ctx.report.warnings.push(format!(
                "{name}: the data ends at line {line}, where the report's footer starts (not read)"
            ));
        }
        written?;
        writer.finish(parser, ctx, cleanings)?;
        Ok(n)
    })
}

fn import_jsonl(
    ctx: &mut Context<'_>,
    path: &Path,
    entity: Entity,
    progress: &dyn Progress,
) -> Result<(), IngestError> {
    let name = display_name(path);
    let io = |e: std::io::Error| IngestError::Io {
        path: name.clone(),
        source: e,
    };
    let f = File::open(path).map_err(io)?;
    let total = f.metadata().map_err(io)?.len();
    let mapping = Mapping::canonical(entity);
    let fm = mapping.files[0].clone();
    let header: Vec<String> = entity
        .fields()
        .iter()
        .filter(|f| !mapping::is_set_by_importer(entity, f.name))
        .map(|f| f.name.to_string())
        .collect();
    let mut plan = match FilePlan::new(&name, header.clone(), &fm, &mapping, false) {
        Ok(p) => p,
        Err(errors) => {
            errors.into_iter().for_each(|e| ctx.error(e));
            return Ok(());
        }
    };
    progress.begin(&name, total);
    let mut reader = BufReader::with_capacity(1 << 17, f);
    let mut buf = Vec::new();
    let mut line: u64 = 0;
    let mut bytes: u64 = 0;
    let mut rec = ByteRecord::new();
    loop {
        buf.clear();
        let got = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if got == 0 {
            break;
        }
        bytes += got as u64;
        line += 1;
        let err = |column: Option<usize>,
                   column_name: Option<String>,
                   value: Option<String>,
                   message: String| RowError {
            file: name.clone(),
            line,
            column,
            column_name,
            value,
            message,
        };
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(e) => {
                ctx.error(err(
                    Some(e.valid_up_to() + 1),
                    None,
                    None,
                    "invalid UTF-8; expected UTF-8 text".into(),
                ));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
            Ok(o) => o,
            Err(e) => {
                ctx.error(err(
                    Some(e.column()),
                    None,
                    None,
                    format!("expected one JSON object per line: {e}"),
                ));
                continue;
            }
        };
        rec.clear();
        let mut ok = true;
        for k in obj.keys() {
            if !header.contains(k) {
                ctx.error(err(
                    None,
                    Some(k.clone()),
                    None,
                    format!("not a field of {}", entity.table()),
                ));
                ok = false;
            }
        }
        for h in &header {
            let cell = match obj.get(h) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(x)) => x.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                Some(other) => {
                    ctx.error(err(
                        None,
                        Some(h.clone()),
                        Some(other.to_string()),
                        "expected a string, number, boolean or null".into(),
                    ));
                    ok = false;
                    String::new()
                }
            };
            rec.push_field(cell.as_bytes());
        }
        if ok {
            plan.process(ctx, line, &rec)?;
        }
        if ctx.full() {
            break;
        }
        if line % 8192 == 0 {
            progress.advance_to(bytes);
        }
    }
    progress.end();
    plan.finish(ctx, Default::default())?;
    Ok(())
}

fn import_vtt(
    ctx: &mut Context<'_>,
    path: &Path,
    link: &TranscriptLink,
) -> Result<(), IngestError> {
    let name = display_name(path);
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| IngestError::Io {
            path: name.clone(),
            source: e,
        })?;
    let err = |line: u64, column: Option<usize>, value: Option<String>, message: String| RowError {
        file: name.clone(),
        line,
        column,
        column_name: None,
        value,
        message,
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let upto = e.utf8_error().valid_up_to();
            let b = e.as_bytes();
            let line = 1 + b[..upto].iter().filter(|&&c| c == b'\n').count() as u64;
            let col = upto
                - b[..upto]
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            ctx.error(err(
                line,
                Some(col),
                None,
                "invalid UTF-8; expected UTF-8 text".into(),
            ));
            return Ok(());
        }
    };
    let format = vtt::Format::detect(Some(path), &text);
    let transcript = match vtt::parse_as(format, &text) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                ctx.error(err(e.line, Some(e.column), Some(e.value), e.message));
            }
            return Ok(());
        }
    };
    let turns = transcript.turns;
    if link.opportunity_id.is_none() && link.lead_id.is_none() {
        ctx.error(err(
            0,
            None,
            None,
            "a transcript must be linked to an opportunity or a lead: pass --opportunity ID or --lead ID, or write a sidecar JSON".into(),
        ));
        return Ok(());
    }
    for (entity, id) in [
        (Entity::Opportunity, &link.opportunity_id),
        (Entity::Lead, &link.lead_id),
        (Entity::User, &link.user_id),
        (Entity::Activity, &link.activity_id),
    ] {
        if let Some(id) = id {
            if !ctx.exists(entity, id)? {
                ctx.error(err(
                    0,
                    None,
                    Some(id.clone()),
                    format!("no {} with this id in the database", entity.singular()),
                ));
            }
        }
    }
    let started_at = match &link.started_at {
        None => Value::Null,
        Some(s) => match pipewise_core::parse_cell(&pipewise_core::FieldType::DateTime, s, &[]) {
            Ok(v) => v,
            Err(e) => {
                ctx.error(err(
                    0,
                    None,
                    Some(s.clone()),
                    format!("started_at: expected {}", e.expected),
                ));
                Value::Null
            }
        },
    };
    let mut roles = Vec::with_capacity(turns.len());
    let mut rep_user = link.user_id.clone();
    for t in &turns {
        let role = match t.speaker.as_deref() {
            None => "other".to_string(),
            Some(sp) => match link.speakers.get(sp) {
                Some(r) => match pipewise_core::schema::SPEAKER_ROLES.normalise(r) {
                    Some(r) => r.to_string(),
                    None => {
                        ctx.error(err(
                            0,
                            None,
                            Some(r.clone()),
                            format!("speaker {sp}: expected rep, customer or other"),
                        ));
                        "other".into()
                    }
                },
                None => match user_by_display_name(ctx, sp)? {
                    Some(uid) => {
                        rep_user.get_or_insert(uid);
                        "rep".into()
                    }
                    None => "customer".into(),
                },
            },
        };
        roles.push(role);
    }
    // No speaker is a known user (a caption file): the call is the owner's of
    // what it is linked to.
    if rep_user.is_none() {
        for (entity, id) in [
            (Entity::Opportunity, &link.opportunity_id),
            (Entity::Lead, &link.lead_id),
        ] {
            if let (None, Some(id)) = (&rep_user, id) {
                rep_user = ctx.tx.current_value(entity, id, "owner_id")?.to_text();
            }
        }
    }
    if !ctx.report.errors.is_empty() {
        return Ok(());
    }
    ctx.report.transcript_cues += transcript.cues as u64;
    ctx.report.cues_without_speaker += transcript.unnamed.len() as u64;
    if let Some(w) = unnamed_warning(&name, transcript.cues, &transcript.unnamed) {
        ctx.report.warnings.push(w);
    }
    if let Some(first) = transcript.out_of_order.first() {
        ctx.report.warnings.push(format!(
            "{name}: {} cue{} start{} before the cue before {} (first at line {first}): kept in file order; check the file was not edited or joined",
            transcript.out_of_order.len(),
            if transcript.out_of_order.len() == 1 { "" } else { "s" },
            if transcript.out_of_order.len() == 1 { "s" } else { "" },
            if transcript.out_of_order.len() == 1 { "it" } else { "them" },
        ));
    }
    let id = link.id.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let duration = turns.iter().map(|t| t.end_ms).max().unwrap_or(0) / 1000;
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cols: &[&'static str] = &[
        "id",
        "started_at",
        "duration_s",
        "title",
        "activity_id",
        "opportunity_id",
        "lead_id",
        "user_id",
        "source_file",
    ];
    let vals = [
        Value::Text(id.clone()),
        started_at,
        Value::Int(duration),
        opt(&link.title),
        opt(&link.activity_id),
        opt(&link.opportunity_id),
        opt(&link.lead_id),
        opt(&rep_user),
        Value::Text(file_name),
    ];
    let o = ctx_upsert(ctx, Entity::Conversation, cols, &vals)?;
    count(ctx, Entity::Conversation, o);
    let tcols: &[&'static str] = &[
        "conversation_id",
        "seq",
        "speaker",
        "speaker_role",
        "start_ms",
        "end_ms",
        "speech_ms",
        "text",
    ];
    for (i, (t, role)) in turns.iter().zip(roles).enumerate() {
        let vals = [
            Value::Text(id.clone()),
            Value::Int(i as i64),
            opt(&t.speaker),
            Value::Text(role),
            Value::Int(t.start_ms),
            Value::Int(t.end_ms),
            // Stored only when it differs from the span, so a turn of one
            // cue is stored as the canonical files and the simulator write it.
            if t.speech_ms == t.end_ms - t.start_ms {
                Value::Null
            } else {
                Value::Int(t.speech_ms)
            },
            Value::Text(t.text.clone()),
        ];
        let o = ctx_upsert(ctx, Entity::ConversationTurn, tcols, &vals)?;
        count(ctx, Entity::ConversationTurn, o);
    }
    let removed = ctx.tx.truncate_turns(&id, turns.len() as i64)?;
    if removed > 0 {
        ctx.report.warnings.push(format!(
            "{name}: removed {removed} turns no longer in the transcript"
        ));
    }
    Ok(())
}

/// The warning for cues that name no speaker: all of them (the call cannot be
/// measured), or some (listed by line, the first few).
fn unnamed_warning(file: &str, cues: usize, unnamed: &[vtt::UnnamedCue]) -> Option<String> {
    if unnamed.is_empty() {
        return None;
    }
    if unnamed.len() == cues {
        return Some(format!(
            "{file}: no cue names a speaker ({cues} cue{}); the turns are imported with no speaker and role other, so the call has no rep or customer speech and `calls analyze` leaves it out. Name speakers with voice tags (<v Jane Doe>text</v>) or a `Jane Doe: text` prefix and import it again",
            if cues == 1 { "" } else { "s" }
        ));
    }
    let shown: Vec<String> = unnamed
        .iter()
        .take(5)
        .map(|u| format!("line {} {:?}", u.line, u.text))
        .collect();
    Some(format!(
        "{file}: {} of {cues} cues name no speaker and are imported with no speaker (role other): {}{}",
        unnamed.len(),
        shown.join(", "),
        if unnamed.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    ))
}

/// The user a transcript's speaker name is, as meeting tools write names:
/// `Ben Okafor`, `Okafor, Ben` (Teams' "Last, First" display names), with a
/// tag such as `(Guest)`, `(External)` or `(Host)` after it.
fn user_by_display_name(ctx: &mut Context<'_>, name: &str) -> Result<Option<String>, IngestError> {
    let mut candidates = vec![name.trim().to_string()];
    let base = match name.trim().rsplit_once(" (") {
        Some((b, tag)) if tag.ends_with(')') => b.trim().to_string(),
        _ => name.trim().to_string(),
    };
    candidates.push(base.clone());
    if let Some((last, first)) = base.split_once(',') {
        candidates.push(format!("{} {}", first.trim(), last.trim()));
    }
    candidates.dedup();
    for c in candidates {
        if let Some(id) = ctx.tx.id_by_name(Entity::User, &c)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn ctx_upsert(
    ctx: &mut Context<'_>,
    entity: Entity,
    columns: &[&'static str],
    values: &[Value],
) -> Result<pipewise_store::Outcome, IngestError> {
    Ok(ctx.tx.upsert(RowWrite {
        entity,
        columns,
        values,
        effective_at: None,
        check_repeat: false,
        update_only: false,
    })?)
}

fn count(ctx: &mut Context<'_>, entity: Entity, o: pipewise_store::Outcome) {
    let c = ctx.report.counts_mut(entity.table());
    c.rows += 1;
    match o {
        pipewise_store::Outcome::Inserted => c.inserted += 1,
        pipewise_store::Outcome::Updated => c.updated += 1,
        pipewise_store::Outcome::Unchanged | pipewise_store::Outcome::Repeated => c.unchanged += 1,
    }
}

/// Reads a whole CSV (comma, semicolon or tab separated, as the header line
/// shows) as text, for the tabular model: no typing, no mapping. Header names
/// are trimmed (and a byte-order mark dropped); every row must have as many
/// cells as the header.
pub fn read_text_table(path: &Path) -> Result<pipewise_core::TextTable, IngestError> {
    let name = display_name(path);
    let bytes = std::fs::read(path).map_err(|e| IngestError::Io {
        path: name.clone(),
        source: e,
    })?;
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&bytes);
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| first.iter().filter(|b| *b == d).count())
        .unwrap_or(b',');
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut table = pipewise_core::TextTable {
        file: name.clone(),
        ..Default::default()
    };
    let err = |line: u64, message: String| {
        IngestError::Row(RowError {
            file: name.clone(),
            line,
            column: None,
            column_name: None,
            value: None,
            message,
        })
    };
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(err(line, format!("cannot read CSV: {e}"))),
        }
        let line = rec.position().map_or(line, |p| p.line());
        if table.headers.is_empty() {
            table.headers = rec.iter().map(|h| h.trim().to_string()).collect();
            if let Some(dup) = table
                .headers
                .iter()
                .enumerate()
                .find(|(i, h)| table.headers[..*i].contains(h))
            {
                return Err(err(
                    line,
                    format!("column {:?} appears twice in the header", dup.1),
                ));
            }
            continue;
        }
        if rec.len() == 1 && rec[0].trim().is_empty() {
            continue;
        }
        if rec.len() != table.headers.len() {
            return Err(err(
                line,
                format!(
                    "{} cells, but the header has {} columns",
                    rec.len(),
                    table.headers.len()
                ),
            ));
        }
        table
            .rows
            .push(rec.iter().map(|c| c.trim().to_string()).collect());
        table.lines.push(line);
    }
    if table.headers.is_empty() {
        return Err(err(0, "the file is empty; expected a header line".into()));
    }
    Ok(table)
}
