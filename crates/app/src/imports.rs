//! Import jobs: files uploaded (with a mapping, or in the canonical format,
//! or transcripts) are imported in the background, one job at a time, with
//! their progress and the import report to read while and after they run.
//! The import lands whole or changes nothing, as on the command line; the
//! server picks the new data up at its next reload check.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pipewise_core::Entity;
use pipewise_ingest::{ImportOptions, Mapping};
use pipewise_store::SqliteStore;
use pipewise_store::access::NewAudit;
use serde::Serialize;
use utoipa::ToSchema;

use crate::InputError;

/// One uploaded file.
pub struct Upload {
    /// The file's name as uploaded (only its last path part is used).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What to import.
pub struct ImportRequest {
    pub files: Vec<Upload>,
    /// A TOML mapping (see docs/data-format.md); without one, the files are
    /// canonical or transcripts.
    pub mapping: Option<String>,
    /// The entity of canonical files whose names do not say it.
    pub entity: Option<String>,
    /// Check everything and roll back.
    pub dry_run: bool,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    /// Imported (or, for a dry run, checked) without errors.
    Succeeded,
    /// Errors in the files (listed in the report; nothing was changed), or
    /// the import could not run (`error`).
    Failed,
}

/// An import job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportJob {
    pub id: String,
    pub status: JobStatus,
    /// Who started it.
    pub user_id: String,
    pub files: Vec<String>,
    pub dry_run: bool,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The file being read.
    pub step: Option<String>,
    /// Bytes read of the current file and its size.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// 0-1 over all the files.
    pub progress: f64,
    /// The import report as `pipewise import --json` prints it: counts per
    /// entity, cleanings, warnings and every error with file, line, column,
    /// value and what was expected.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Why the import could not run at all.
    pub error: Option<String>,
}

/// Jobs kept in memory (the oldest finished go first).
const KEEP_JOBS: usize = 200;

/// The import jobs of one server.
pub struct Imports {
    db: PathBuf,
    jobs: Mutex<(HashMap<String, ImportJob>, VecDeque<String>)>,
    /// Held by the job that runs (SQLite has one writer).
    running: Arc<Mutex<()>>,
}

fn safe_name(name: &str) -> Result<String, InputError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let ok = !base.is_empty()
        && base.len() <= 200
        && !base.starts_with('.')
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '));
    if ok {
        Ok(base.to_string())
    } else {
        Err(InputError::new(
            "file",
            "files named with letters, digits, '.', '_', '-' or spaces, with an extension (.csv, .jsonl, .vtt, .srt, .json sidecars)",
            name,
        ))
    }
}

struct JobProgress<'a> {
    imports: &'a Imports,
    id: &'a str,
    sizes: Vec<(String, u64)>,
    done_before: Mutex<u64>,
}

impl pipewise_ingest::Progress for JobProgress<'_> {
    fn begin(&self, label: &str, total_bytes: u64) {
        let shown = label
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(label)
            .to_string();
        let before: u64 = self
            .sizes
            .iter()
            .take_while(|(n, _)| !label.ends_with(n.as_str()))
            .map(|(_, s)| s)
            .sum();
        *self.done_before.lock().unwrap_or_else(|p| p.into_inner()) = before;
        self.imports.update(self.id, |j| {
            j.step = Some(shown);
            j.bytes_total = total_bytes;
            j.bytes_done = 0;
        });
    }
    fn advance_to(&self, bytes: u64) {
        let before = *self.done_before.lock().unwrap_or_else(|p| p.into_inner());
        let all: u64 = self.sizes.iter().map(|(_, s)| s).sum::<u64>().max(1);
        self.imports.update(self.id, |j| {
            j.bytes_done = bytes;
            j.progress = ((before + bytes) as f64 / all as f64).min(1.0);
        });
    }
}

/// Names, mapping and entity checked, files stored: the scratch
/// directory, the sources and each file's size; or why not.
#[allow(clippy::type_complexity)]
fn prepare(
    req: ImportRequest,
) -> Result<
    (
        tempfile::TempDir,
        Vec<pipewise_ingest::Source>,
        Vec<(String, u64)>,
    ),
    String,
> {
    if req.files.is_empty() {
        return Err("no file uploaded (send each as a `file` part)".into());
    }
    let entity = match req
        .entity
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(e) => Some(Entity::from_table(e).ok_or_else(|| {
            let known: Vec<&str> = Entity::ALL.iter().map(|e| e.table()).collect();
            format!("entity {e:?}: expected one of {}", known.join(", "))
        })?),
    };
    let mapping = match &req.mapping {
        None => None,
        Some(text) => {
            Some(Mapping::from_toml(text, "the uploaded mapping").map_err(|e| e.to_string())?)
        }
    };
    let mut names = Vec::new();
    for f in &req.files {
        let n = safe_name(&f.name).map_err(|e| e.to_string())?;
        if names.contains(&n) {
            return Err(format!("two files are named {n:?}"));
        }
        names.push(n);
    }
    let dir = tempfile::Builder::new()
        .prefix("pipewise-import-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let mut paths = Vec::new();
    let mut sizes = Vec::new();
    for (f, n) in req.files.iter().zip(&names) {
        let p = dir.path().join(n);
        std::fs::write(&p, &f.bytes).map_err(|e| format!("cannot store {n}: {e}"))?;
        sizes.push((n.clone(), f.bytes.len() as u64));
        paths.push(p);
    }
    let prefix = format!("{}{}", dir.path().display(), std::path::MAIN_SEPARATOR);
    let sources = pipewise_ingest::file_sources(&paths, mapping.as_ref(), entity)
        .map_err(|e| e.to_string().replace(&prefix, ""))?;
    Ok((dir, sources, sizes))
}

impl Imports {
    pub fn new(db: &Path) -> Imports {
        Imports {
            db: db.to_path_buf(),
            jobs: Mutex::new((HashMap::new(), VecDeque::new())),
            running: Arc::new(Mutex::new(())),
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ImportJob)) {
        let mut g = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = g.0.get_mut(id) {
            f(j);
        }
    }

    pub fn get(&self, id: &str) -> Option<ImportJob> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(id)
            .cloned()
    }

    /// The jobs, newest first.
    pub fn list(&self) -> Vec<ImportJob> {
        let g = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter()
            .rev()
            .filter_map(|id| g.0.get(id).cloned())
            .collect()
    }

    /// Starts a job for the request and returns it: the files are checked
    /// and stored in a scratch directory, and the import runs in the
    /// background. Files that cannot be imported (names, mapping, entity)
    /// make a job that failed at once, with the reason in `error`.
    pub fn submit(
        self: &Arc<Self>,
        user_id: &str,
        req: ImportRequest,
    ) -> anyhow::Result<ImportJob> {
        let id = format!("imp-{}", crate::auth::random_hex(6)?);
        let job = ImportJob {
            id: id.clone(),
            status: JobStatus::Queued,
            user_id: user_id.to_string(),
            files: req.files.iter().map(|f| f.name.clone()).collect(),
            dry_run: req.dry_run,
            created_at: crate::auth::now(),
            started_at: None,
            finished_at: None,
            step: None,
            bytes_done: 0,
            bytes_total: 0,
            progress: 0.0,
            report: None,
            error: None,
        };
        {
            let mut g = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            while g.1.len() >= KEEP_JOBS {
                let finished = g.1.iter().position(|j| {
                    g.0.get(j).is_some_and(|j| {
                        matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)
                    })
                });
                match finished {
                    Some(k) => {
                        if let Some(old) = g.1.remove(k) {
                            g.0.remove(&old);
                        }
                    }
                    None => break,
                }
            }
            g.0.insert(id.clone(), job.clone());
            g.1.push_back(id.clone());
        }
        let kind = if req.mapping.is_some() {
            "mapped"
        } else {
            "upload"
        }
        .to_string();
        let dry_run = req.dry_run;
        match prepare(req) {
            Err(why) => {
                self.update(&id, |j| {
                    j.status = JobStatus::Failed;
                    j.error = Some(why);
                    j.finished_at = Some(crate::auth::now());
                });
            }
            Ok((dir, sources, sizes)) => {
                let me = self.clone();
                let user = user_id.to_string();
                let job_id = id.clone();
                std::thread::Builder::new()
                    .name("import".into())
                    .spawn(move || me.run(&job_id, &user, dir, sources, sizes, kind, dry_run))
                    .map_err(|e| anyhow::anyhow!("cannot start the import: {e}"))?;
            }
        }
        Ok(self.get(&id).unwrap_or(job))
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        id: &str,
        user: &str,
        dir: tempfile::TempDir,
        sources: Vec<pipewise_ingest::Source>,
        sizes: Vec<(String, u64)>,
        kind: String,
        dry_run: bool,
    ) {
        let running = self.running.clone();
        let _one = running.lock().unwrap_or_else(|p| p.into_inner());
        self.update(id, |j| {
            j.status = JobStatus::Running;
            j.started_at = Some(crate::auth::now());
        });
        let progress = JobProgress {
            imports: self,
            id,
            sizes,
            done_before: Mutex::new(0),
        };
        let result = (|| -> anyhow::Result<pipewise_ingest::ImportReport> {
            let mut store = SqliteStore::open(&self.db)?;
            let opts = ImportOptions {
                dry_run,
                max_errors: 100,
                as_of: crate::auth::now(),
                kind,
                encoding: None,
            };
            let report = pipewise_ingest::run_import(&mut store, &sources, &opts, &progress)?;
            let at = crate::auth::now();
            store.append_audit(&NewAudit {
                at: &at,
                user_id: Some(user),
                action: if report.ok() {
                    "import.done"
                } else {
                    "import.failed"
                },
                route: Some("POST /api/v1/imports"),
                ids: &[id.to_string()],
                detail: Some(if dry_run { "dry run" } else { "import" }),
            })?;
            Ok(report)
        })();
        // File names as uploaded, not where the scratch copies were.
        let prefix = format!("{}{}", dir.path().display(), std::path::MAIN_SEPARATOR);
        let finished = Some(crate::auth::now());
        match result {
            Ok(report) => {
                let ok = report.ok();
                let value = serde_json::to_string(&report)
                    .ok()
                    .map(|t| t.replace(&prefix.replace('\\', "\\\\"), ""))
                    .and_then(|t| serde_json::from_str(&t).ok());
                self.update(id, |j| {
                    j.status = if ok {
                        JobStatus::Succeeded
                    } else {
                        JobStatus::Failed
                    };
                    j.report = value;
                    j.progress = 1.0;
                    j.finished_at = finished;
                });
            }
            Err(e) => {
                let why = format!("{e:#}").replace(&prefix, "");
                self.update(id, |j| {
                    j.status = JobStatus::Failed;
                    j.error = Some(why);
                    j.finished_at = finished;
                });
            }
        }
        drop(dir);
    }
}
