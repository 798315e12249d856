//! The use cases over one database, as the server runs them: each call
//! takes the caller, filters by their scope and records what they read or
//! changed in the audit log.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use pipewise_store::SqliteStore;
use pipewise_store::access::{AuditRecord, NewAudit};
use serde::Serialize;
use utoipa::ToSchema;

use crate::InputError;
use crate::analyses::{Analyses, AnalysesStatus};
use crate::auth::{self, AuthError};
use crate::book::{Book, DealDetail, DealPage, DealQuery};
use crate::calls::{CallDetail, CallPage, CallQuery};
use crate::coaching::{Decision, DecisionRecord};
use crate::forecasting::{ForecastQuery, ForecastView};
use crate::imports::{ImportJob, ImportRequest, Imports};
use crate::insight::{
    self, BiasView, CoachingOverview, InspectionPage, InspectionQuery, RepCoaching,
};
use crate::leads::{InboundAccepted, InboundLead, LeadPage, LeadQuery};
use crate::models::{ModelCard, ModelView};
use crate::scope::{Caller, Directory, Role};

/// Why a use case could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Not there, or outside the caller's scope (the two are not told apart).
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    /// Already there (a record with the same id).
    #[error("{0}")]
    Conflict(String),
    /// Not there, said in a sentence.
    #[error("{0}")]
    Absent(String),
    #[error("this needs the {0} role")]
    Forbidden(&'static str),
    /// The data or models this needs are not there yet.
    #[error("{0}")]
    Unavailable(String),
    /// Too many failed sign-ins: try again after this many seconds.
    #[error("too many failed sign-ins: try again in {0} s")]
    TooMany(u64),
    /// Being computed in the background: try again shortly.
    #[error("{0}")]
    Computing(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<pipewise_store::StoreError> for AppError {
    fn from(e: pipewise_store::StoreError) -> Self {
        AppError::Internal(e.into())
    }
}

/// A computation over the stored lists: the store, the CRM, the day range
/// and which reps the caller's scope allows.
type OverLists<T> = fn(
    &SqliteStore,
    &pipewise_store::read::CrmData,
    Option<&str>,
    Option<&str>,
    &dyn Fn(&str) -> bool,
) -> anyhow::Result<T>;

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub user_id: Option<String>,
    /// `read`, `import`, `decision`, `token.create`...
    pub action: String,
    /// The route or command.
    pub route: Option<String>,
    /// Records read or changed.
    pub ids: Vec<String>,
    pub detail: Option<String>,
    /// SHA-256 chaining this row to the previous one.
    pub hash: String,
}

impl From<AuditRecord> for AuditEntry {
    fn from(a: AuditRecord) -> Self {
        AuditEntry {
            seq: a.seq,
            at: a.at,
            user_id: a.user_id,
            action: a.action,
            route: a.route,
            ids: a.ids,
            detail: a.detail,
            hash: a.hash,
        }
    }
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub user_id: String,
    pub name: String,
    pub role: Role,
    /// The users whose records the caller sees (null: everyone).
    pub scope_users: Option<Vec<String>>,
    /// Open deals the caller sees.
    pub open_deals: usize,
    /// The currency of every amount (ISO 4217; null when the data does not say).
    pub currency: Option<String>,
}

/// An audit row on its way to the writer, with where to send the result.
struct AuditJob {
    at: String,
    user_id: Option<String>,
    action: String,
    route: String,
    ids: Vec<String>,
    detail: Option<String>,
    reply: tokio::sync::oneshot::Sender<Result<AuditRecord, String>>,
}

/// The audit writer: a thread with its own connection that appends every
/// row waiting in one transaction (group commit), so concurrent requests
/// share one write instead of queueing for one each. A request returns only
/// once its row is committed.
fn audit_writer(path: &Path) -> anyhow::Result<mpsc::Sender<AuditJob>> {
    let mut store = SqliteStore::open(path)?;
    // Commits answer requests: the write-ahead log is copied into the
    // database by a thread of its own, once a second, not inside a commit.
    store.defer_checkpoints()?;
    let mut checkpoints = SqliteStore::open(path)?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("audit-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(std::time::Duration::from_secs(1))
            {
                if let Err(e) = checkpoints.checkpoint() {
                    tracing::warn!("audit log checkpoint: {e}");
                }
            }
        })?;
    let (tx, rx) = mpsc::channel::<AuditJob>();
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || {
            // Dropped when the writer stops: the checkpoints stop too.
            let _stop = stop;
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < 512 {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let entries: Vec<NewAudit<'_>> = jobs
                    .iter()
                    .map(|j| NewAudit {
                        at: &j.at,
                        user_id: j.user_id.as_deref(),
                        action: &j.action,
                        route: Some(&j.route),
                        ids: &j.ids,
                        detail: j.detail.as_deref(),
                    })
                    .collect();
                match store.append_audit_batch(&entries) {
                    Ok(rows) => {
                        drop(entries);
                        for (j, r) in jobs.into_iter().zip(rows) {
                            let _ = j.reply.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        drop(entries);
                        for j in jobs {
                            let _ = j.reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        })?;
    Ok(tx)
}

/// The database's records, loaded once per (re)load, and the open pipeline
/// scored from them; the analyses start from the same records (None: they
/// could not be read, and the analyses say why).
fn scored_book(
    store: &SqliteStore,
) -> (
    Result<Arc<Book>, String>,
    Option<Arc<pipewise_store::read::CrmData>>,
) {
    match store.load_crm() {
        Ok(crm) => {
            let crm = Arc::new(crm);
            let book = Book::build(store, &crm)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            (book, Some(crm))
        }
        Err(e) => (Err(format!("cannot read the database: {e:#}")), None),
    }
}

/// Failed sign-ins allowed per user, and per client address, within
/// [`SIGN_IN_WINDOW`]; more answer "too many" until the window has passed.
pub const SIGN_IN_FAILURES: usize = 5;
pub const SIGN_IN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// How long a browser session lasts.
pub const SESSION_HOURS: i64 = 12;

/// A browser session just opened: its id goes in an HttpOnly cookie, the
/// CSRF token in a header of every request that changes something.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionStart {
    #[serde(skip)]
    pub session_id: String,
    pub user_id: String,
    pub name: String,
    pub role: Role,
    /// Send as `X-CSRF-Token` with every POST, PUT, PATCH or DELETE made
    /// with the session cookie.
    pub csrf_token: String,
    pub expires_at: String,
}

/// How long a token lookup is trusted before the database is read again:
/// a token revoked from the command line stops working within this time.
pub const TOKEN_CACHE: std::time::Duration = std::time::Duration::from_secs(10);

/// The use cases over one database.
pub struct Service {
    path: std::path::PathBuf,
    store: Mutex<SqliteStore>,
    analyses: Arc<Analyses>,
    imports: Arc<Imports>,
    audit_tx: mpsc::Sender<AuditJob>,
    /// Token hash → its record and when it was read.
    tokens: Mutex<
        std::collections::HashMap<
            String,
            (pipewise_store::access::TokenRecord, std::time::Instant),
        >,
    >,
    directory: RwLock<Arc<Directory>>,
    book: RwLock<Result<Arc<Book>, String>>,
    /// [`SqliteStore::serving_version`] when the caches were built.
    version: Mutex<String>,
    /// Failed sign-ins by key (`user:ID`, `client:ADDR`), their times.
    failures: Mutex<std::collections::HashMap<String, Vec<std::time::Instant>>>,
    /// The speed-to-lead watch's memory (read back from the audit log).
    lead_watch: Mutex<LeadWatchState>,
    /// The language model for first-reply drafts, if any.
    llm: Option<crate::leads::LlmOptions>,
    /// The directory of incentive plans (`*.toml`), if any.
    plans: Option<std::path::PathBuf>,
    /// The pseudonymiser of the people as of a database version.
    pseudonyms: Mutex<Option<(String, Arc<crate::privacy::Pseudonymiser>)>>,
}

/// What the speed-to-lead watch has done: the events given, keyed by
/// (lead, event, owner), and when each lead was last reassigned (epoch
/// seconds), from which its new owner's clock runs. Read back from the
/// audit log at the first sweep, so a restart neither repeats an alert nor
/// reassigns a lead again on the old clock.
#[derive(Debug, Default)]
struct LeadWatchState {
    loaded: bool,
    sent: std::collections::HashSet<(String, String, String)>,
    reassigned_at: std::collections::HashMap<String, i64>,
}

impl Service {
    /// Opens the database and scores the open pipeline. A database without
    /// a trained model still opens: the pipeline use cases then answer
    /// [`AppError::Unavailable`] with what to do.
    pub fn open(path: &Path) -> anyhow::Result<Service> {
        let store = SqliteStore::open(path)?;
        let directory = Directory::new(store.users()?, store.admins()?);
        let (book, crm) = scored_book(&store);
        let analyses = Analyses::new();
        analyses.start(path.to_path_buf(), crm);
        Ok(Service {
            path: path.to_path_buf(),
            analyses,
            imports: Arc::new(Imports::new(path)),
            audit_tx: audit_writer(path)?,
            tokens: Mutex::new(std::collections::HashMap::new()),
            version: Mutex::new(store.serving_version()?),
            failures: Mutex::new(std::collections::HashMap::new()),
            lead_watch: Mutex::new(LeadWatchState::default()),
            llm: None,
            plans: None,
            pseudonyms: Mutex::new(None),
            store: Mutex::new(store),
            directory: RwLock::new(Arc::new(directory)),
            book: RwLock::new(book),
        })
    }

    /// Reads incentive plans (`*.toml`) from `dir` for the comp use cases.
    pub fn with_plans(mut self, dir: Option<std::path::PathBuf>) -> Service {
        self.plans = dir;
        self
    }

    /// Drafts first replies with `llm` (a local language model; the
    /// template stays the fallback).
    pub fn with_llm(mut self, llm: Option<crate::leads::LlmOptions>) -> Service {
        self.llm = llm;
        self
    }

    fn store(&self) -> std::sync::MutexGuard<'_, SqliteStore> {
        // A panic while holding the lock leaves the connection usable.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn book(&self) -> Result<Arc<Book>, AppError> {
        match &*self.book.read().unwrap_or_else(|p| p.into_inner()) {
            Ok(b) => Ok(b.clone()),
            Err(e) => Err(AppError::Unavailable(e.clone())),
        }
    }

    /// Re-reads the users and re-scores the pipeline (after an import or a
    /// training run).
    pub fn reload(&self) -> anyhow::Result<()> {
        let store = self.store();
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = store.serving_version()?;
        let directory = Directory::new(store.users()?, store.admins()?);
        let (book, crm) = scored_book(&store);
        drop(store);
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(directory);
        *self.book.write().unwrap_or_else(|p| p.into_inner()) = book;
        self.analyses.start(self.path.clone(), crm);
        Ok(())
    }

    /// Reloads when another process imported data, trained or activated a
    /// model (the pipeline and the analyses are recomputed), or changed an
    /// admin grant (the users only) since the last load; true if it did.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = self.store().serving_version()?;
        let before = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if before == now {
            return Ok(false);
        }
        // imports:models:grants:last grant
        let data_part = |v: &str| v.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
        if data_part(&before) != data_part(&now) {
            self.reload()?;
        } else {
            let store = self.store();
            let directory = Directory::new(store.users()?, store.admins()?);
            drop(store);
            *self.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(directory);
            *self.version.lock().unwrap_or_else(|p| p.into_inner()) = now;
        }
        Ok(true)
    }

    /// `ready`, or why the pipeline use cases are unavailable.
    pub fn readiness(&self) -> String {
        match &*self.book.read().unwrap_or_else(|p| p.into_inner()) {
            Ok(b) => format!(
                "ready: {} open deals scored as of {}",
                b.len(),
                pipewise_features::format_date(b.as_of)
            ),
            Err(e) => e.clone(),
        }
    }

    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The caller a bearer token stands for, from the token cache alone:
    /// `None` when the token has not been looked up in the last
    /// [`TOKEN_CACHE`] (then call [`Service::authenticate`], which reads the
    /// database).
    pub fn authenticate_cached(&self, token: Option<&str>) -> Option<Result<Caller, AuthError>> {
        let token = token?.trim();
        let hash = auth::secret_hash(token);
        let cache = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (rec, at) = cache.get(&hash)?;
        if at.elapsed() > TOKEN_CACHE {
            return None;
        }
        Some(auth::check_token(rec, &self.directory(), &auth::now()))
    }

    /// The caller a bearer token stands for (reads the database; remembers
    /// the token for [`TOKEN_CACHE`]).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let token = token.ok_or(AuthError::Missing)?.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let hash = auth::secret_hash(token);
        let rec = self
            .store()
            .token_by_hash(&hash)
            .ok()
            .flatten()
            .ok_or(AuthError::Unknown)?;
        let caller = auth::check_token(&rec, &self.directory(), &auth::now());
        let mut cache = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() <= TOKEN_CACHE);
        }
        cache.insert(hash, (rec, std::time::Instant::now()));
        caller
    }

    /// Signs a user in with their password (argon2id; slow on purpose: call
    /// off the async workers). Too many failures for the user or from the
    /// client answer [`AppError::TooMany`] without checking the password.
    pub fn sign_in(
        &self,
        user_id: &str,
        password: &str,
        client: &str,
    ) -> Result<SessionStart, AppError> {
        let keys = [format!("user:{user_id}"), format!("client:{client}")];
        {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            for k in &keys {
                if let Some(times) = f.get_mut(k) {
                    times.retain(|t| t.elapsed() < SIGN_IN_WINDOW);
                    if times.len() >= SIGN_IN_FAILURES {
                        let wait = SIGN_IN_WINDOW.saturating_sub(times[0].elapsed());
                        return Err(AppError::TooMany(wait.as_secs().max(1)));
                    }
                }
            }
        }
        let directory = self.directory();
        let stored = self.store().password_hash(user_id)?;
        let caller = match (directory.caller(user_id), stored) {
            (Some(c), Some(h)) if auth::verify_password(password, &h) => c,
            _ => {
                let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                for k in keys {
                    f.entry(k).or_default().push(std::time::Instant::now());
                }
                drop(f);
                self.audit_now(Some(user_id), "signin.failed", "POST /api/v1/session", &[])?;
                // One message whatever was wrong: no telling which users exist.
                return Err(AppError::Auth(AuthError::BadPassword));
            }
        };
        let session_id = auth::random_hex(32)?;
        let csrf_token = auth::random_hex(16)?;
        let now = chrono::Utc::now();
        let expires_at = (now + chrono::Duration::hours(SESSION_HOURS))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        self.store().insert_session(
            &auth::secret_hash(&session_id),
            &pipewise_store::access::SessionRecord {
                user_id: caller.user_id.clone(),
                csrf: csrf_token.clone(),
                created_at: auth::now(),
                expires_at: expires_at.clone(),
            },
        )?;
        self.audit_now(Some(user_id), "signin", "POST /api/v1/session", &[])?;
        Ok(SessionStart {
            session_id,
            user_id: caller.user_id,
            name: caller.name,
            role: caller.role,
            csrf_token,
            expires_at,
        })
    }

    /// The caller a session cookie stands for, and the session's CSRF token
    /// (reads the database).
    pub fn session(&self, session_id: &str) -> Result<(Caller, String), AuthError> {
        let rec = self
            .store()
            .session(&auth::secret_hash(session_id))
            .ok()
            .flatten()
            .ok_or(AuthError::NoSession)?;
        if rec.expires_at <= auth::now() {
            return Err(AuthError::NoSession);
        }
        let caller = self
            .directory()
            .caller(&rec.user_id)
            .ok_or(AuthError::NoUser)?;
        Ok((caller, rec.csrf))
    }

    /// Ends a session: needs its CSRF token (the cookie alone could be sent
    /// by another site's form).
    pub fn sign_out(&self, session_id: &str, csrf: &str) -> Result<(), AppError> {
        let (caller, expected) = self.session(session_id)?;
        if !auth::same_secret(csrf, &expected) {
            return Err(AppError::Auth(AuthError::Csrf));
        }
        self.store()
            .delete_session(&auth::secret_hash(session_id))?;
        self.audit_now(
            Some(&caller.user_id),
            "signout",
            "DELETE /api/v1/session",
            &[],
        )?;
        Ok(())
    }

    /// Appends an audit row from a blocking context (sign-in runs off the
    /// async workers).
    fn audit_now(
        &self,
        user_id: Option<&str>,
        action: &str,
        via: &str,
        ids: &[String],
    ) -> Result<(), AppError> {
        let at = auth::now();
        self.store().append_audit(&NewAudit {
            at: &at,
            user_id,
            action,
            route: Some(via),
            ids,
            detail: None,
        })?;
        Ok(())
    }

    /// Records what a caller did; returns once the row is committed (the
    /// writer commits every row waiting in one transaction). `via` is the
    /// route or command.
    pub async fn audit(
        &self,
        caller: Option<&Caller>,
        action: &str,
        via: &str,
        ids: &[String],
        detail: Option<&str>,
    ) -> Result<AuditRecord, AppError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.audit_tx
            .send(AuditJob {
                at: auth::now(),
                user_id: caller.map(|c| c.user_id.clone()),
                action: action.into(),
                route: via.into(),
                ids: ids.to_vec(),
                detail: detail.map(Into::into),
                reply,
            })
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the audit writer stopped")))?;
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the audit writer stopped")))?
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot write the audit log: {e}")))
    }

    pub fn me(&self, caller: &Caller) -> Result<Me, AppError> {
        let open_deals = self.book().map_or(0, |b| {
            b.list(
                &caller.scope,
                &DealQuery {
                    limit: Some(1),
                    ..Default::default()
                },
                None,
            )
            .map_or(0, |p| p.total)
        });
        Ok(Me {
            user_id: caller.user_id.clone(),
            name: caller.name.clone(),
            role: caller.role,
            scope_users: caller.scope.users().map(|u| u.iter().cloned().collect()),
            open_deals,
            currency: self.book().ok().and_then(|b| b.currency.clone()),
        })
    }

    /// The caller's open deals, filtered, sorted and paged (the deals on the
    /// page are recorded as read).
    pub async fn opportunities(
        &self,
        caller: &Caller,
        q: &DealQuery,
        via: &str,
    ) -> Result<DealPage, AppError> {
        let stages = self.analyses.stages().ok();
        let page = self
            .book()?
            .list(&caller.scope, q, stages.as_ref().map(|s| &s.evidence))?;
        let ids: Vec<String> = page.items.iter().map(|d| d.id.clone()).collect();
        let filters = serde_json::to_string(q).unwrap_or_default();
        self.audit(Some(caller), "read", via, &ids, Some(&filters))
            .await?;
        Ok(page)
    }

    /// One open deal with its factors, feature values and history.
    pub async fn opportunity(
        &self,
        caller: &Caller,
        id: &str,
        via: &str,
    ) -> Result<DealDetail, AppError> {
        let book = self.book()?;
        let stages = self.analyses.stages().ok();
        let Some(d) = book.deal(&caller.scope, id, stages.as_ref().map(|s| &s.evidence)) else {
            // Asked for and not shown (absent, or outside the scope): recorded too.
            self.audit(Some(caller), "read.denied", via, &[id.to_string()], None)
                .await?;
            return Err(AppError::NotFound {
                what: "open opportunity",
                id: id.to_string(),
            });
        };
        self.audit(Some(caller), "read", via, &[id.to_string()], None)
            .await?;
        Ok(d)
    }

    /// The audit log, newest first (admin only): `limit` rows with a
    /// sequence number below `before` (the next page: the last row's `seq`).
    /// (The log is read on the calling thread: an admin's occasional read.)
    pub async fn audit_log(
        &self,
        caller: &Caller,
        user: Option<&str>,
        id: Option<&str>,
        before: Option<i64>,
        limit: usize,
        via: &str,
    ) -> Result<Vec<AuditEntry>, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "audit.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        let rows = self.store().audit(user, id, before, limit)?;
        self.audit(Some(caller), "audit.read", via, &[], None)
            .await?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// How far the background analyses (coaching, evidence stage, forecast) are.
    pub fn analyses_status(&self) -> AnalysesStatus {
        self.analyses.status()
    }

    /// (analysis, seconds) of the background analyses finished since the
    /// last call, for the engine timings of `/metrics`.
    pub fn take_analysis_timings(&self) -> Vec<(&'static str, f64)> {
        self.analyses.take_timings()
    }

    /// True once every background analysis is ready or has failed.
    pub fn analyses_settled(&self) -> bool {
        self.analyses.settled()
    }

    /// The forecast of a period over the caller's scope (the deals listed
    /// are recorded as read).
    pub async fn forecast(
        &self,
        caller: &Caller,
        q: ForecastQuery,
        via: &str,
    ) -> Result<ForecastView, AppError> {
        let view = self.forecast_view(caller, q).await?;
        let ids: Vec<String> = view
            .deals
            .iter()
            .map(|d| d.opportunity_id.clone())
            .collect();
        self.audit(Some(caller), "read", via, &ids, Some(&view.period))
            .await?;
        Ok(view)
    }

    /// The forecast over the caller's scope, computed off the async workers
    /// (a period not asked for before takes about a second on large orgs).
    async fn forecast_view(
        &self,
        caller: &Caller,
        q: ForecastQuery,
    ) -> Result<ForecastView, AppError> {
        let base = self.analyses.forecasts()?;
        base.parse(&q)?;
        let scope = caller.scope.clone();
        tokio::task::spawn_blocking(move || base.view(&scope, &q))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("the forecast stopped: {e}")))?
    }

    /// Takes an open deal out of the forecast, or puts it back, with a
    /// reason (a manager, director or admin; the deal in their scope, else
    /// 404). The forecast is recomputed on its next request.
    pub async fn override_forecast(
        &self,
        caller: &Caller,
        id: &str,
        excluded: bool,
        reason: &str,
        via: &str,
    ) -> Result<pipewise_store::ForecastOverride, AppError> {
        let reason = reason.trim();
        if self.book()?.deal(&caller.scope, id, None).is_none() {
            self.audit(
                Some(caller),
                "override.denied",
                via,
                &[id.to_string()],
                None,
            )
            .await?;
            return Err(AppError::NotFound {
                what: "open opportunity",
                id: id.to_string(),
            });
        }
        if caller.role == Role::Rep && !caller.is_admin() {
            self.audit(
                Some(caller),
                "override.denied",
                via,
                &[id.to_string()],
                None,
            )
            .await?;
            return Err(AppError::Forbidden("manager"));
        }
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(InputError::new(
                "reason",
                "why, in 1 to 2000 characters",
                if reason.is_empty() {
                    ""
                } else {
                    "a longer text"
                },
            )
            .into());
        }
        let rec = {
            let mut store = self.store();
            let rec = store.record_forecast_override(
                id,
                excluded,
                reason,
                Some(&caller.user_id),
                &auth::now(),
            )?;
            if let Ok(base) = self.analyses.forecasts() {
                base.set_excluded(crate::forecasting::excluded_deals(&store)?);
            }
            rec
        };
        self.audit(
            Some(caller),
            "forecast.override",
            via,
            &[id.to_string()],
            Some(if excluded { "excluded" } else { "included" }),
        )
        .await?;
        Ok(rec)
    }

    /// The open deals in the caller's scope that managers took out of the forecast.
    pub fn excluded_from_forecast(
        &self,
        caller: &Caller,
    ) -> Result<std::collections::HashSet<String>, AppError> {
        let book = self.book()?;
        Ok(crate::forecasting::excluded_deals(&self.store())?
            .into_iter()
            .filter(|id| book.deal(&caller.scope, id, None).is_some())
            .collect())
    }

    /// The latest forecast override of a deal in the caller's scope, if any.
    pub fn forecast_override_of(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<pipewise_store::ForecastOverride>, AppError> {
        if self.book()?.deal(&caller.scope, id, None).is_none() {
            return Ok(None);
        }
        Ok(self
            .store()
            .forecast_overrides()?
            .into_iter()
            .find(|o| o.opportunity_id == id))
    }

    /// The currency of every amount, when the data says (ISO 4217).
    pub fn currency(&self) -> Option<String> {
        self.book().ok().and_then(|b| b.currency.clone())
    }

    /// The quarters and the months a forecast can be asked for (ending a
    /// week to 120 days after the data's end), each in order.
    pub fn forecast_periods(&self) -> Result<(Vec<String>, Vec<String>), AppError> {
        use pipewise_engines::forecast::PeriodKind;
        let f = self.analyses.forecasts()?;
        Ok((
            f.window_periods(PeriodKind::Quarter),
            f.window_periods(PeriodKind::Month),
        ))
    }

    /// The date the scored pipeline is as of (YYYY-MM-DD): the data's last day.
    pub fn as_of(&self) -> Option<String> {
        self.book()
            .ok()
            .map(|b| pipewise_features::format_date(b.as_of))
    }

    /// An open deal's entered against evidence stage with what drives the
    /// difference (`None`: outside the scope, not open, or not analysed yet).
    /// Not audited: shown beside the deal, whose read is.
    pub fn deal_evidence(&self, caller: &Caller, id: &str) -> Option<crate::stage::InspectRow> {
        let base = self.analyses.stages().ok()?;
        base.rows
            .iter()
            .find(|r| r.stage.opportunity_id == id)
            .filter(|r| caller.scope.allows(Some(&r.stage.rep_id)))
            .cloned()
    }

    /// A period's forecast totals over the caller's scope, without the deal
    /// list (recorded as a read of the totals, naming no deal): for overviews
    /// such as the dashboard's home page and fan chart.
    pub async fn forecast_totals(
        &self,
        caller: &Caller,
        q: ForecastQuery,
        via: &str,
    ) -> Result<ForecastView, AppError> {
        let mut view = self.forecast_view(caller, q).await?;
        view.deals.clear();
        view.accuracy = None;
        self.audit(
            Some(caller),
            "read",
            via,
            &[],
            Some(&format!("forecast totals {}", view.period)),
        )
        .await?;
        Ok(view)
    }

    /// Each rep's stage bias in the caller's scope.
    pub async fn rep_bias(&self, caller: &Caller, via: &str) -> Result<BiasView, AppError> {
        let v = insight::bias(&*self.analyses.stages()?, &caller.scope);
        let ids: Vec<String> = v.reps.iter().map(|r| r.rep_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(v)
    }

    /// Open deals in the caller's scope with their entered and evidence stage.
    pub async fn inspection(
        &self,
        caller: &Caller,
        q: &InspectionQuery,
        via: &str,
    ) -> Result<InspectionPage, AppError> {
        let page = insight::inspection(&*self.analyses.stages()?, &caller.scope, q)?;
        let ids: Vec<String> = page
            .items
            .iter()
            .map(|r| r.stage.opportunity_id.clone())
            .collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(page)
    }

    fn decisions(&self) -> Result<insight::Decisions, AppError> {
        Ok(crate::coaching::latest_decisions_stamped(&self.store())?)
    }

    /// Team headlines and each rep's first priority over the caller's scope.
    pub async fn coaching(&self, caller: &Caller, via: &str) -> Result<CoachingOverview, AppError> {
        let base = self.analyses.coaching()?;
        let v = insight::coaching_overview(&base, &caller.scope, &self.decisions()?);
        let ids: Vec<String> = v.reps.iter().map(|r| r.rep_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(v)
    }

    /// One rep's profile and plan (404 outside the caller's scope).
    pub async fn rep_coaching(
        &self,
        caller: &Caller,
        rep_id: &str,
        via: &str,
    ) -> Result<RepCoaching, AppError> {
        let base = self.analyses.coaching()?;
        let Some(v) = insight::rep_coaching(&base, &caller.scope, rep_id, &self.decisions()?)
        else {
            self.audit(
                Some(caller),
                "read.denied",
                via,
                &[rep_id.to_string()],
                None,
            )
            .await?;
            return Err(AppError::NotFound {
                what: "rep with a coaching profile",
                id: rep_id.to_string(),
            });
        };
        self.audit(Some(caller), "read", via, &[rep_id.to_string()], None)
            .await?;
        Ok(v)
    }

    /// Records a manager's decision about one of a rep's recommendations:
    /// the rep must be in the caller's scope (else 404) and not the caller
    /// (a rep does not overrule their own plan).
    pub async fn decide(
        &self,
        caller: &Caller,
        rep_id: &str,
        d: &Decision,
        via: &str,
    ) -> Result<DecisionRecord, AppError> {
        if !caller.scope.allows(Some(rep_id)) || self.directory().caller(rep_id).is_none() {
            self.audit(
                Some(caller),
                "decision.denied",
                via,
                &[rep_id.to_string()],
                None,
            )
            .await?;
            return Err(AppError::NotFound {
                what: "rep",
                id: rep_id.to_string(),
            });
        }
        if caller.user_id == rep_id || caller.role == Role::Rep {
            self.audit(
                Some(caller),
                "decision.denied",
                via,
                &[rep_id.to_string()],
                None,
            )
            .await?;
            return Err(AppError::Forbidden("manager"));
        }
        let base = self.analyses.coaching()?;
        let unknown = |why: String| AppError::NotFound {
            what: "recommendation",
            id: format!("{}: {why}", d.recommendation()),
        };
        let (about, recommendation) = d.validate(&base.run.crm).map_err(|e| match e {
            crate::coaching::DecisionError::Invalid(i) => AppError::Input(i),
            crate::coaching::DecisionError::Unknown(why) => unknown(why),
        })?;
        if about != rep_id {
            return Err(unknown(format!("it is about {about}, not {rep_id}")));
        }
        let decisions = self.decisions()?;
        let plans = base.plans(decisions.0, &decisions.1);
        let in_plan = base
            .run
            .profiles
            .reps
            .iter()
            .position(|r| r.id == rep_id)
            .and_then(|i| plans.get(i))
            .is_some_and(|p| {
                p.priorities.iter().any(|x| x.id == recommendation)
                    || p.alerts.iter().any(|a| a.id == recommendation)
            });
        if !in_plan {
            return Err(unknown(format!(
                "not in {rep_id}'s current plan (GET /api/v1/coaching/{rep_id} lists its priorities and alerts)"
            )));
        }
        let rec = self.store().record_coaching_decision(
            &recommendation,
            rep_id,
            d.action().stored(),
            d.reason(),
            d.text(),
            Some(&caller.user_id),
            &auth::now(),
        )?;
        self.audit(
            Some(caller),
            "decision",
            via,
            &[rep_id.to_string(), recommendation.clone()],
            Some(d.action().stored()),
        )
        .await?;
        Ok(rec.into())
    }

    /// Recorded calls in the caller's scope, newest first, with their headline measures.
    pub async fn calls(
        &self,
        caller: &Caller,
        q: &CallQuery,
        via: &str,
    ) -> Result<CallPage, AppError> {
        let page = crate::calls::list(&*self.analyses.coaching()?, &caller.scope, q)?;
        let ids: Vec<String> = page.items.iter().map(|c| c.id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(page)
    }

    /// One call with its turns and analysis (404 outside the caller's scope).
    pub async fn call(&self, caller: &Caller, id: &str, via: &str) -> Result<CallDetail, AppError> {
        let base = self.analyses.coaching()?;
        let stored = match crate::calls::find(&base, &caller.scope, id) {
            Some(k) => self.store().conversation(id)?.map(|c| (k, c)),
            None => None,
        };
        let Some((k, c)) = stored else {
            self.audit(Some(caller), "read.denied", via, &[id.to_string()], None)
                .await?;
            return Err(AppError::NotFound {
                what: "call",
                id: id.to_string(),
            });
        };
        let d = crate::calls::detail(&base, &caller.scope, k, c);
        self.audit(Some(caller), "read", via, &[id.to_string()], None)
            .await?;
        Ok(d)
    }

    /// Every registered model, newest first.
    pub fn models(&self) -> Result<Vec<ModelView>, AppError> {
        let mut m: Vec<ModelView> = self.store().models()?.iter().map(ModelView::from).collect();
        m.sort_by(|a, b| a.kind.cmp(&b.kind).then(b.version.cmp(&a.version)));
        Ok(m)
    }

    /// One model and its card.
    pub fn model_card(&self, kind: &str, version: &str) -> Result<ModelCard, AppError> {
        let not_found = || AppError::Absent(format!("no {kind} model version {version}"));
        let v: i64 = version.parse().map_err(|_| not_found())?;
        let rec = self.store().model(kind, Some(v))?.ok_or_else(not_found)?;
        Ok(ModelCard {
            model: ModelView::from(&rec),
            card: rec.card.clone(),
        })
    }

    /// Drift and accuracy of the active `kind` model (`win` or `slip`) over
    /// the last `weeks` weeks (admins only; computed from the database on
    /// each call, a second or two). Recorded in the audit log.
    pub async fn monitor(
        &self,
        caller: &Caller,
        kind: &str,
        weeks: i64,
        via: &str,
    ) -> Result<crate::monitor::MonitorReport, AppError> {
        if !caller.is_admin() {
            return Err(AppError::Forbidden("admin"));
        }
        if kind != "win" && kind != "slip" {
            return Err(AppError::Absent(format!(
                "no monitor for {kind:?}: expected win or slip"
            )));
        }
        if !(1..=52).contains(&weeks) {
            return Err(InputError::new(
                "weeks",
                "a number of weeks from 1 to 52",
                &weeks.to_string(),
            )
            .into());
        }
        let report = {
            let store = self.store();
            if store.model(kind, None)?.is_none() {
                return Err(AppError::Absent(format!(
                    "no active {kind} model: train one first"
                )));
            }
            let crm = store.load_crm()?;
            let data =
                crate::load_data(&crm).map_err(|e| AppError::Unavailable(format!("{e:#}")))?;
            crate::monitor::monitor(&store, &data, kind, weeks)
                .map_err(|e| AppError::Unavailable(format!("{e:#}")))?
        };
        self.audit(
            Some(caller),
            "read",
            via,
            &[],
            Some(&format!("monitor {kind}")),
        )
        .await?;
        Ok(report)
    }

    /// Erases a person (admins only; see [`crate::privacy::erase`]): the
    /// erasure is its own audit row, without the identity; the file is
    /// rewritten and the server's caches reloaded so no page or answer
    /// shows the person again. Errors: not an admin; no such person.
    pub async fn erase(
        &self,
        caller: &Caller,
        subject: pipewise_store::erasure::Subject<'_>,
        reason: Option<&str>,
        via: &str,
    ) -> Result<pipewise_store::erasure::ErasureReport, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "privacy.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        let r = {
            let mut store = self.store();
            crate::privacy::erase(&mut store, subject, Some(&caller.user_id), reason)
        };
        let r = r.map_err(|e| match e.downcast_ref::<pipewise_store::StoreError>() {
            Some(pipewise_store::StoreError::Invalid(m)) if m.starts_with("no ") => {
                AppError::Absent(m.clone())
            }
            _ => AppError::Internal(e),
        })?;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.reload()?;
        Ok(r)
    }

    /// Applies a retention policy (admins only; see
    /// [`crate::privacy::apply_retention`]); the caches are reloaded when
    /// anything changed. Errors: not an admin; a policy without a rule, a
    /// period of 0 days or an unreadable `as_of`.
    pub async fn apply_retention(
        &self,
        caller: &Caller,
        policy: &pipewise_store::erasure::RetentionPolicy,
        as_of: Option<&str>,
        dry_run: bool,
        via: &str,
    ) -> Result<pipewise_store::erasure::RetentionReport, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "privacy.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        if policy.transcripts_days.is_none() && policy.unconverted_leads_days.is_none() {
            return Err(InputError::new(
                "transcripts_days",
                "a rule: transcripts_days or unconverted_leads_days (days, 1 or more)",
                "neither",
            )
            .into());
        }
        for (field, v) in [
            ("transcripts_days", policy.transcripts_days),
            ("unconverted_leads_days", policy.unconverted_leads_days),
        ] {
            if v == Some(0) {
                return Err(InputError::new(field, "a number of days, 1 or more", "0").into());
            }
        }
        if let Some(a) = as_of
            && crate::day_start(a).is_none()
        {
            return Err(
                InputError::new("as_of", "a date or instant, YYYY-MM-DD[THH:MM:SSZ]", a).into(),
            );
        }
        let r = {
            let mut store = self.store();
            crate::privacy::apply_retention(
                &mut store,
                policy,
                as_of,
                Some(&caller.user_id),
                dry_run,
            )
        }
        .map_err(AppError::Internal)?;
        if r.audit_seq.is_some() {
            self.reload()?;
        } else if !dry_run {
            self.audit(
                Some(caller),
                "privacy.retention_checked",
                via,
                &[],
                Some("nothing due"),
            )
            .await?;
        }
        Ok(r)
    }

    /// Whether the database file is encrypted at rest.
    pub fn encrypted(&self) -> bool {
        self.store().is_encrypted()
    }

    /// The pseudonymiser of the people in the database, under the server's
    /// key (`PIPEWISE_KEY` or `--key-file`), for responses asked for with
    /// pseudonyms; made once per database version. Errors: the server has
    /// no key.
    pub fn pseudonymiser(&self) -> Result<Arc<crate::privacy::Pseudonymiser>, AppError> {
        let key = crate::privacy::load_key(None).map_err(|_| {
            InputError::new(
                "Pseudonymise",
                "no such header: this server has no pseudonymisation key (start it with PIPEWISE_KEY or --key-file)",
                "true",
            )
        })?;
        let store = self.store();
        let version = store.serving_version()?;
        let mut g = self.pseudonyms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, p)) = &*g
            && *v == version
        {
            return Ok(p.clone());
        }
        let p = Arc::new(crate::privacy::Pseudonymiser::new(key, &store.people()?));
        *g = Some((version, p.clone()));
        Ok(p)
    }

    /// "My data": everything pipewise holds about user `user_id` (default:
    /// the caller) and every estimate it makes of them
    /// ([`crate::my_data::MyData`]). Anyone may see their own (`None`); a
    /// user named by id only an admin may see (a subject access request),
    /// and a denied request is audited. The estimates come from the background analyses
    /// (a note says when one is still computing). Recorded in the audit log.
    pub async fn my_data(
        &self,
        caller: &Caller,
        user_id: Option<&str>,
        via: &str,
    ) -> Result<crate::my_data::MyData, AppError> {
        use crate::my_data::{AUDIT_ROWS, Access, Action, MyData, memberships};
        let target = user_id.unwrap_or(&caller.user_id).to_string();
        if user_id.is_some() && !caller.is_admin() {
            self.audit(
                Some(caller),
                "read.denied",
                via,
                std::slice::from_ref(&target),
                Some("my data"),
            )
            .await?;
            return Err(AppError::Forbidden("admin"));
        }
        let now = crate::auth::now();
        let (stored, read_by_others, own_actions) = {
            let store = self.store();
            let Some(stored) = store.person_data(&target, &now)? else {
                return Err(AppError::NotFound {
                    what: "user",
                    id: target,
                });
            };
            let dir = self.directory();
            // The person's managers, up the hierarchy.
            let mut managers: Vec<String> = Vec::new();
            let mut at = dir.user(&target).and_then(|u| u.manager_id.clone());
            while let Some(m) = at.filter(|m| !managers.contains(m) && *m != target) {
                at = dir.user(&m).and_then(|u| u.manager_id.clone());
                managers.push(m);
            }
            let about: Vec<Access> = store
                .audit(None, Some(&target), None, AUDIT_ROWS)?
                .into_iter()
                .filter(|a| a.user_id.as_deref() != Some(target.as_str()))
                .map(|a| {
                    let role = a.user_id.as_deref().and_then(|u| dir.role(u));
                    // Named when the viewer may see them, or one of the
                    // person's managers; anyone else by role only.
                    let shown = a.user_id.as_deref().is_some_and(|u| {
                        caller.scope.allows(Some(u)) || managers.iter().any(|m| m == u)
                    });
                    Access {
                        seq: a.seq,
                        at: a.at,
                        by: a.user_id.clone().filter(|_| shown),
                        by_role: match (&a.user_id, role) {
                            (None, _) => "command line".into(),
                            (Some(_), Some(r)) => r.name().to_string(),
                            (Some(_), None) => "unknown".into(),
                        },
                        action: a.action,
                        route: a.route,
                        detail: a.detail,
                    }
                })
                .collect();
            let own: Vec<Action> = store
                .audit(Some(&target), None, None, AUDIT_ROWS)?
                .into_iter()
                .map(|a| Action {
                    seq: a.seq,
                    at: a.at,
                    action: a.action,
                    route: a.route,
                    records: a.ids.len(),
                })
                .collect();
            (stored, about, own)
        };
        let mut notes = Vec::new();
        let stage = self.analyses.stages();
        let as_of_t = stage
            .as_ref()
            .map(|b| b.as_of)
            .ok()
            .or_else(|| self.book().ok().map(|b| b.as_of))
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let stage_bias = match &stage {
            Ok(b) => {
                let found = b.bias.iter().find(|r| r.rep_id == target).cloned();
                if found.is_none() {
                    notes.push(
                        "stage bias: no open deal of theirs in the weeks the evidence-stage engine analysed"
                            .to_string(),
                    );
                }
                found
            }
            Err(e) => {
                notes.push(format!("stage bias: {e}"));
                None
            }
        };
        let coaching = match self.analyses.coaching() {
            Ok(base) => {
                let v = insight::rep_coaching(&base, &caller.scope, &target, &self.decisions()?);
                if v.is_none() {
                    notes.push("coaching: no coaching profile (not a rep with closed deals in the coaching window)".to_string());
                }
                v
            }
            Err(e) => {
                notes.push(format!("coaching: {e}"));
                None
            }
        };
        let groups = memberships(&stored, as_of_t);
        let v = MyData {
            generated_at: now,
            as_of: Some(pipewise_features::format_date(as_of_t)),
            stored,
            groups,
            stage_bias,
            coaching,
            read_by_others,
            own_actions,
            notes,
        };
        self.audit(
            Some(caller),
            "read",
            via,
            std::slice::from_ref(&target),
            Some("my data"),
        )
        .await?;
        Ok(v)
    }

    /// The fairness report of `kind` (`win`, `slip`, `lead` or `coaching`)
    /// by `groups` (empty: the defaults; built-in groups only: an
    /// attributes file is for the command line) (admins only). A model's
    /// held-out scores are read from the database on each call; the record
    /// by group and the coaching plans come from the background analyses
    /// (503 while they compute). Recorded in the audit log.
    pub async fn fairness(
        &self,
        caller: &Caller,
        kind: &str,
        groups: &[String],
        via: &str,
    ) -> Result<crate::fairness::FairnessReport, AppError> {
        use crate::fairness::{self as f, Subject};
        if !caller.is_admin() {
            return Err(AppError::Forbidden("admin"));
        }
        let Some(subject) = Subject::parse(kind) else {
            return Err(AppError::Absent(format!(
                "no fairness report for {kind:?}: expected win, slip, lead or coaching"
            )));
        };
        let known: Vec<&str> = f::REP_GROUPS
            .iter()
            .chain(f::CUSTOMER_GROUPS.iter())
            .copied()
            .collect();
        if let Some(bad) = groups.iter().find(|g| !known.contains(&g.as_str())) {
            return Err(InputError::new(
                "groups",
                &format!("a comma-separated list of {}", known.join(", ")),
                bad,
            )
            .into());
        }
        let groups = f::groups_or_default(groups, subject, None);
        let unavailable = |e: anyhow::Error| AppError::Unavailable(format!("{e:#}"));
        let report = if subject == Subject::Coaching {
            let base = self.analyses.coaching()?;
            let decisions = self.decisions()?;
            let plans = base.plans(decisions.0, &decisions.1);
            f::coaching_fairness(
                &plans,
                &base.run.crm,
                base.run.profiles.as_of,
                &groups,
                None,
            )
            .map_err(unavailable)?
        } else {
            let mut r = {
                let store = self.store();
                if store.model(kind, None)?.is_none() {
                    return Err(AppError::Absent(format!(
                        "no active {kind} model: {}",
                        if kind == "lead" {
                            "`pipewise score leads` fits and registers one"
                        } else {
                            "train one first (pipewise train)"
                        }
                    )));
                }
                let crm = store.load_crm()?;
                f::model_fairness(&store, &crm, subject, None, &groups, None)
                    .map_err(unavailable)?
            };
            if subject != Subject::Lead {
                match self.analyses.stages() {
                    Ok(base) => match &base.record {
                        Ok(all) => r.set_record(
                            all.iter()
                                .filter(|a| groups.contains(&a.attribute))
                                .cloned()
                                .collect(),
                        ),
                        Err(why) => r.notes.push(format!("the record by group: {why}")),
                    },
                    Err(e) => r.notes.push(format!("the record by group: {e}")),
                }
            }
            r
        };
        self.audit(
            Some(caller),
            "read",
            via,
            &[],
            Some(&format!("fairness {kind}")),
        )
        .await?;
        Ok(report)
    }

    /// The caller's open deals with their scores as CSV (recorded as an export).
    pub async fn scores_csv(&self, caller: &Caller, via: &str) -> Result<String, AppError> {
        let (csv, ids) = self.book()?.scores_csv(&caller.scope)?;
        self.audit(Some(caller), "export", via, &ids, Some("scores.csv"))
            .await?;
        Ok(csv)
    }

    /// Open leads in the caller's scope with their conversion scores.
    pub async fn leads(
        &self,
        caller: &Caller,
        q: &LeadQuery,
        via: &str,
    ) -> Result<LeadPage, AppError> {
        let page = crate::leads::list(&*self.analyses.leads()?, &caller.scope, q)?;
        let ids: Vec<String> = page.items.iter().map(|l| l.id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(page)
    }

    /// Stores an inbound lead (admin: the token of the integration) and
    /// re-scores the open leads in the background.
    pub async fn inbound_lead(
        &self,
        caller: &Caller,
        lead: &InboundLead,
        via: &str,
    ) -> Result<InboundAccepted, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "lead.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        let id = match &lead.id {
            Some(i) => i.clone(),
            None => format!("in-{}", auth::random_hex(8)?),
        };
        let mut row = lead.to_new(id.clone())?;
        // Routed at once when the sender names no owner and a router is
        // trained; the decision counts towards the next lead's.
        let mut routing = None;
        if row.owner_id.is_none()
            && let Ok(base) = self.analyses.leads()
            && let Ok(router) = &base.desk.router
        {
            let created =
                chrono::DateTime::parse_from_rfc3339(&row.created_at).map_or(0, |t| t.timestamp());
            let known = base.desk.lead(&id).is_some();
            if !known {
                let r = router.lock().unwrap_or_else(|p| p.into_inner()).route(
                    &base.desk.crm,
                    crate::lead_desk::LeadToRoute {
                        id: &id,
                        created_at: created,
                        source: row.source.as_deref(),
                        account_id: None,
                        title: row.title.as_deref(),
                        inquiry: row.inquiry.as_deref(),
                        owner_id: None,
                    },
                );
                if let Some(r) = r {
                    row.owner_id = Some(r.recommended.rep_id.clone());
                    routing = Some(r);
                }
            }
        }
        let stored = self.store().insert_lead(&row).map_err(|e| match e {
            pipewise_store::StoreError::Invalid(why) if why.starts_with("no campaign") => {
                AppError::Input(InputError::new(
                    "campaign_id",
                    "the id of a campaign in the database",
                    row.campaign_id.as_deref().unwrap_or(""),
                ))
            }
            pipewise_store::StoreError::Invalid(_) => AppError::Input(InputError::new(
                "owner_id",
                "the id of a user in the database",
                row.owner_id.as_deref().unwrap_or(""),
            )),
            other => other.into(),
        })?;
        if !stored {
            return Err(AppError::Conflict(format!("a lead with id {id:?} exists")));
        }
        self.audit(
            Some(caller),
            "lead.inbound",
            via,
            std::slice::from_ref(&id),
            routing
                .as_ref()
                .map(|r| format!("routed: {}", r.why))
                .as_deref(),
        )
        .await?;
        self.analyses.refresh_leads(self.path.clone());
        Ok(InboundAccepted {
            id,
            created_at: row.created_at,
            status: "new".into(),
            owner_id: row.owner_id,
            routing,
        })
    }

    /// The lead `id` when the caller's scope holds it (else 404, audited).
    async fn scoped_lead(
        &self,
        caller: &Caller,
        base: &crate::leads::LeadBase,
        id: &str,
        via: &str,
    ) -> Result<(), AppError> {
        let ok = base
            .desk
            .lead(id)
            .is_some_and(|l| caller.scope.allows(l.owner_id.as_deref()));
        if !ok {
            self.audit(Some(caller), "read.denied", via, &[id.to_string()], None)
                .await?;
            return Err(AppError::NotFound {
                what: "lead",
                id: id.into(),
            });
        }
        Ok(())
    }

    /// A rep's follow-up tasks for a day (default: the caller's own; a rep
    /// outside the caller's scope answers 404).
    pub async fn lead_queue(
        &self,
        caller: &Caller,
        q: &crate::lead_desk::QueueQuery,
        via: &str,
    ) -> Result<crate::leads::RepQueue, AppError> {
        let base = self.analyses.leads()?;
        let date = q
            .date
            .as_deref()
            .map(|d| crate::lead_desk::parse_day("date", d))
            .transpose()?;
        let rep = q.rep.clone().unwrap_or_else(|| caller.user_id.clone());
        if base.desk.crm.users.iter().all(|u| u.id != rep) || !caller.scope.allows(Some(&rep)) {
            self.audit(
                Some(caller),
                "read.denied",
                via,
                std::slice::from_ref(&rep),
                None,
            )
            .await?;
            return Err(AppError::NotFound {
                what: "rep",
                id: rep,
            });
        }
        let v = base.desk.queue(&rep, date, q.all.unwrap_or(false))?;
        let ids: Vec<String> = v.tasks.iter().map(|t| t.lead_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(v)
    }

    /// `rep` (default: the caller) when the data holds them and the caller's
    /// scope allows them; otherwise 404, recorded as a denied read.
    async fn scoped_rep(
        &self,
        caller: &Caller,
        crm: &pipewise_store::read::CrmData,
        rep: Option<&str>,
        via: &str,
    ) -> Result<String, AppError> {
        let rep = rep.map_or_else(|| caller.user_id.clone(), str::to_string);
        if crm.users.iter().all(|u| u.id != rep) || !caller.scope.allows(Some(&rep)) {
            self.audit(
                Some(caller),
                "read.denied",
                via,
                std::slice::from_ref(&rep),
                None,
            )
            .await?;
            return Err(AppError::NotFound {
                what: "rep",
                id: rep,
            });
        }
        Ok(rep)
    }

    /// A rep's next-best actions for a day (default: the caller's own; a rep
    /// outside the caller's scope answers 404), stored for adherence unless
    /// `record` is false.
    pub async fn actions(
        &self,
        caller: &Caller,
        q: &crate::actions::ActionsQuery,
        via: &str,
    ) -> Result<crate::actions::RepActions, AppError> {
        let date = q
            .date
            .as_deref()
            .map(|d| crate::lead_desk::parse_day("date", d))
            .transpose()?;
        if let Some(h) = q.hours
            && !(h.is_finite() && (0.0..=24.0).contains(&h))
        {
            return Err(InputError::new("hours", "hours in a day, 0 to 24", &h.to_string()).into());
        }
        if let Some(r) = q.save_rate
            && !(r.is_finite() && (0.0..=1.0).contains(&r))
        {
            return Err(InputError::new("save_rate", "a share from 0 to 1", &r.to_string()).into());
        }
        let crm = self.analyses.leads()?.desk.crm.clone();
        let rep = self.scoped_rep(caller, &crm, q.rep.as_deref(), via).await?;
        let opts = crate::actions::ActionOptions {
            date,
            hours: q.hours,
            save_rate: q
                .save_rate
                .unwrap_or(pipewise_engines::actions::DEFAULT_SAVE_RATE),
            record: q.record.unwrap_or(true),
        };
        let path = self.path.clone();
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            // Its own connection: the list takes a second or two to make.
            let mut store = SqliteStore::open(&path)?;
            crate::actions::rep_actions(&mut store, &crm, &rep, &opts)
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
        let ids: Vec<String> = r.plan.actions.iter().map(|a| a.target_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(r)
    }

    /// Dismisses an action from a rep's list (the caller's own, or a rep's
    /// in their scope) with a reason.
    pub async fn dismiss_action(
        &self,
        caller: &Caller,
        req: &crate::actions::DismissRequest,
        via: &str,
    ) -> Result<pipewise_store::actions::ActionDismissal, AppError> {
        req.check()?;
        let crm = self.analyses.leads()?.desk.crm.clone();
        let rep = self
            .scoped_rep(caller, &crm, req.rep.as_deref(), via)
            .await?;
        let id = req.target_id.as_str();
        // An action its target does not take (a cadence step on a deal) is
        // no action of any list: not found, as a step a cadence lacks.
        if !pipewise_engines::actions::fits_target(&req.target_kind, &req.action) {
            return Err(AppError::NotFound {
                what: "action",
                id: format!("{} on {} {id}", req.action, req.target_kind),
            });
        }
        let known = match req.target_kind.as_str() {
            "deal" => crm.opportunities.iter().any(|o| o.id == id),
            "lead" => crm.leads.iter().any(|l| l.id == id),
            _ => crm.accounts.iter().any(|a| a.id == id),
        };
        if !known {
            return Err(AppError::NotFound {
                what: match req.target_kind.as_str() {
                    "deal" => "deal",
                    "lead" => "lead",
                    _ => "account",
                },
                id: id.to_string(),
            });
        }
        let day = match &req.date {
            Some(d) => d.clone(),
            None => crate::actions::default_day(&crm)
                .ok_or_else(|| AppError::Unavailable("the database holds no records yet".into()))?,
        };
        let d = self.store().record_dismissal(
            &rep,
            &req.target_kind,
            id,
            &req.action,
            &day,
            &req.reason,
            req.note.as_deref().map(str::trim).filter(|n| !n.is_empty()),
            Some(&caller.user_id),
            &auth::now(),
        )?;
        self.audit(
            Some(caller),
            "action.dismissed",
            via,
            &[id.to_string()],
            Some(&format!("{} {}", d.action, d.reason)),
        )
        .await?;
        Ok(d)
    }

    /// Adherence over the stored lists of the reps in the caller's scope
    /// (managers and above).
    pub async fn adherence(
        &self,
        caller: &Caller,
        q: &crate::actions::AdherenceQuery,
        via: &str,
    ) -> Result<crate::actions::AdherenceReport, AppError> {
        self.over_lists(caller, q, via, crate::actions::adherence_of)
            .await
    }

    /// What following the deal recommendations of the reps in the
    /// caller's scope was worth (managers and above;
    /// [`crate::actions::adherence_effect`]).
    pub async fn adherence_effect(
        &self,
        caller: &Caller,
        q: &crate::actions::AdherenceQuery,
        via: &str,
    ) -> Result<crate::actions::AdherenceEffectReport, AppError> {
        self.over_lists(caller, q, via, crate::actions::adherence_effect)
            .await
    }

    /// The live message tests and where they stand (managers and above;
    /// message tests are the org's, so the whole org's sends are read:
    /// [`crate::messages::report`]). Errors: an unknown `test` (404).
    pub async fn messages(
        &self,
        caller: &Caller,
        q: &crate::messages::MessagesQuery,
        via: &str,
    ) -> Result<crate::messages::MessagesReport, AppError> {
        self.manager_or_denied(caller, via).await?;
        let rules = crate::messages::rules_of(q.min_sends)?;
        let replies = q.replies.unwrap_or_default();
        let crm = self.analyses.leads()?.desk.crm.clone();
        let path = self.path.clone();
        let test = q.test.clone();
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = SqliteStore::open(&path)?;
            let mut r = crate::messages::report(&store, &crm, rules, replies)?;
            let known: Vec<String> = r.tests.iter().map(|x| x.test.clone()).collect();
            if let Some(t) = &test {
                r.tests.retain(|x| &x.test == t);
            }
            Ok((r, known))
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
        let (r, known) = r;
        if let Some(t) = &q.test
            && r.tests.is_empty()
        {
            return Err(AppError::Absent(format!(
                "no message test {t:?}: the tests are {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    /// The variants of a test's next sends with their selection
    /// probabilities (managers and above; [`crate::messages::choose`]).
    /// Errors: an unknown test (404), `sends` outside 1-1000.
    pub async fn message_choice(
        &self,
        caller: &Caller,
        q: &crate::messages::ChooseQuery,
        via: &str,
    ) -> Result<crate::messages::ChoiceReport, AppError> {
        self.manager_or_denied(caller, via).await?;
        let rules = crate::messages::rules_of(q.min_sends)?;
        let sends = q.sends.unwrap_or(1);
        if !(1..=1000).contains(&sends) {
            return Err(
                InputError::new("sends", "sends from 1 to 1000", &sends.to_string()).into(),
            );
        }
        let replies = q.replies.unwrap_or_default();
        let crm = self.analyses.leads()?.desk.crm.clone();
        let path = self.path.clone();
        let test = q.test.clone();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = SqliteStore::open(&path)?;
            if !crate::messages::test_names(&store)?.contains(&test) {
                return Ok(None);
            }
            crate::messages::choose(&store, &crm, &test, sends as usize, rules, replies, seed)
                .map(Some)
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
        let Some(r) = r else {
            return Err(AppError::Absent(format!(
                "no message test {:?}: see GET /api/v1/messages for the tests there are",
                q.test
            )));
        };
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    /// The return on AI-assisted coaching (directors and admins): the
    /// query's figures, and what it leaves out measured on the whole org
    /// ([`crate::roi::evaluate`]). Errors: a figure out of range or
    /// coaching beyond the managers' week (400, naming the parameter).
    pub async fn roi(
        &self,
        caller: &Caller,
        q: &crate::roi::RoiQuery,
        via: &str,
    ) -> Result<crate::roi::RoiReport, AppError> {
        self.director_or_denied(caller, via).await?;
        q.check()?;
        let need =
            q.win_rate_change.is_none() || q.deals_per_rep.is_none() || q.deal_size.is_none();
        let crm = if need {
            Some(self.analyses.leads()?.desk.crm.clone())
        } else {
            None
        };
        // The engine's checks first, so a bad figure answers at once.
        let check = crate::roi::RoiQuery {
            win_rate_change: q.win_rate_change.or(Some(0.0)),
            deals_per_rep: q.deals_per_rep.or(Some(0.0)),
            deal_size: q.deal_size.or(Some(0.0)),
            ..q.clone()
        };
        if let Err(e) = crate::roi::evaluate(&check, None) {
            // The engine names its option (`--coaching-hours-before 2:
            // 200.0 hours a week per manager, ...`): the parameter, and
            // what was wrong with it.
            let msg = e.to_string();
            let (head, why) = msg.split_once(": ").unwrap_or(("", msg.as_str()));
            let mut words = head.trim_start_matches("--").splitn(2, ' ');
            let field = words.next().unwrap_or("query").replace('-', "_");
            let got = words.next().unwrap_or("");
            return Err(InputError::refused(
                if field.is_empty() { "query" } else { &field },
                "coaching that fits the managers' 40-hour week (reps × hours ÷ managers)",
                &format!("{got} ({why})"),
            )
            .into());
        }
        let q = q.clone();
        let r = tokio::task::spawn_blocking(move || crate::roi::evaluate(&q, crm))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(|e| AppError::Unavailable(format!("{e:#}")))?;
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    /// The incentive plans of the server's plans directory (directors and
    /// admins): each `*.toml` by name, the plan or why it does not read.
    pub async fn comp_plans(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<crate::comp::PlanList, AppError> {
        self.director_or_denied(caller, via).await?;
        let r = match &self.plans {
            None => crate::comp::PlanList {
                directory: None,
                plans: Vec::new(),
                note: Some("no plans directory: start the server with --plans DIR (a directory of plan TOML files, docs/comp.md)".into()),
            },
            Some(dir) => crate::comp::PlanList {
                directory: Some(dir.display().to_string()),
                plans: crate::comp::plan_files(dir)?,
                note: None,
            },
        };
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    /// A plan of the plans directory, and another beside it, on the org's
    /// performance over a period (directors and admins:
    /// [`crate::comp::simulate`]). Errors: a plan not in the directory, or
    /// one that does not read (404); a bad date or period, or an
    /// assumption that does not fit (400).
    pub async fn comp_simulate(
        &self,
        caller: &Caller,
        q: &crate::comp::CompQuery,
        via: &str,
    ) -> Result<crate::comp::CompReport, AppError> {
        self.director_or_denied(caller, via).await?;
        let files = match &self.plans {
            Some(dir) => crate::comp::plan_files(dir)?,
            None => Vec::new(),
        };
        let find = |name: &str| {
            files
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.plan.clone())
                .ok_or_else(|| AppError::NotFound {
                    what: "plan",
                    id: name.to_string(),
                })
        };
        let plan = find(&q.plan)?;
        let vs = q.vs.as_deref().map(find).transpose()?;
        let behaviour =
            crate::comp::behaviour_of(q.behaviour.as_deref(), q.elasticity, vs.is_some())?;
        for (field, v) in [("from", &q.from), ("to", &q.to)] {
            if let Some(d) = v {
                crate::lead_desk::parse_day(field, d)?;
            }
        }
        if let (Some(f), Some(t)) = (&q.from, &q.to)
            && f > t
        {
            return Err(InputError::refused("from", "a day on or before to", f).into());
        }
        let crm = self.analyses.leads()?.desk.crm.clone();
        let path = self.path.clone();
        let (from, to) = (q.from.clone(), q.to.clone());
        let r = tokio::task::spawn_blocking(move || {
            let store = SqliteStore::open(&path)?;
            crate::comp::simulate(
                &store,
                &crm,
                &plan,
                vs.as_ref(),
                from.as_deref(),
                to.as_deref(),
                behaviour,
            )
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| {
            let msg = format!("{e:#}");
            if msg.starts_with("cannot judge") {
                AppError::Unavailable(msg)
            } else {
                InputError::refused("to", "a period of a month or more", &msg).into()
            }
        })?;
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    async fn director_or_denied(&self, caller: &Caller, via: &str) -> Result<(), AppError> {
        if caller.role < Role::Director {
            self.audit(Some(caller), "read.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("director"));
        }
        Ok(())
    }

    async fn manager_or_denied(&self, caller: &Caller, via: &str) -> Result<(), AppError> {
        if caller.role < Role::Manager {
            self.audit(Some(caller), "read.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("manager"));
        }
        Ok(())
    }

    /// Runs `f` over the stored lists of days in the query's range of the
    /// reps in the caller's scope (managers and above).
    async fn over_lists<T: Send + 'static>(
        &self,
        caller: &Caller,
        q: &crate::actions::AdherenceQuery,
        via: &str,
        f: OverLists<T>,
    ) -> Result<T, AppError> {
        self.manager_or_denied(caller, via).await?;
        for (field, v) in [("from", &q.from), ("to", &q.to)] {
            if let Some(d) = v {
                crate::lead_desk::parse_day(field, d)?;
            }
        }
        let crm = self.analyses.leads()?.desk.crm.clone();
        let scope = caller.scope.clone();
        let (from, to) = (q.from.clone(), q.to.clone());
        let path = self.path.clone();
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = SqliteStore::open(&path)?;
            f(&store, &crm, from.as_deref(), to.as_deref(), &|rep| {
                scope.allows(Some(rep))
            })
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    /// Speed to lead over the leads the caller's scope holds.
    pub async fn lead_sla(
        &self,
        caller: &Caller,
        q: &crate::lead_desk::SlaQuery,
        via: &str,
    ) -> Result<pipewise_engines::lead_sla::SlaReport, AppError> {
        let minutes = q.minutes()?;
        let base = self.analyses.leads()?;
        let r = pipewise_engines::lead_sla::report(
            &base.desk.crm,
            &pipewise_engines::lead_sla::SlaOptions {
                minutes,
                owners: caller.scope.users().cloned(),
                ..Default::default()
            },
        );
        let ids: Vec<String> = r.waiting.iter().map(|w| w.lead_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(r)
    }

    /// The first reply to a lead in the caller's scope, drafted from its
    /// inquiry.
    pub async fn lead_draft(
        &self,
        caller: &Caller,
        id: &str,
        via: &str,
    ) -> Result<pipewise_engines::lead_draft::Draft, AppError> {
        let base = self.analyses.leads()?;
        self.scoped_lead(caller, &base, id, via).await?;
        let (crm, llm, lead) = (base.desk.crm.clone(), self.llm.clone(), id.to_string());
        let d = tokio::task::spawn_blocking(move || {
            crate::leads::draft_reply_with(&crm, &lead, llm.as_ref())
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
        self.audit(Some(caller), "read", via, &[id.to_string()], None)
            .await?;
        Ok(d)
    }

    /// Who should own a lead in the caller's scope, and why, among the reps
    /// of that scope (managers and above: the reason compares reps).
    /// Nothing changes.
    pub async fn lead_routing(
        &self,
        caller: &Caller,
        id: &str,
        via: &str,
    ) -> Result<crate::leads::RoutedLead, AppError> {
        if caller.role < Role::Manager {
            self.audit(Some(caller), "read.denied", via, &[id.to_string()], None)
                .await?;
            return Err(AppError::Forbidden("manager"));
        }
        let base = self.analyses.leads()?;
        self.scoped_lead(caller, &base, id, via).await?;
        let r = base.desk.recommend(id, caller.scope.users())?;
        self.audit(Some(caller), "read", via, &[id.to_string()], None)
            .await?;
        Ok(r)
    }

    /// Account segments: every segment's description, and the accounts of
    /// the caller's scope with their segment.
    pub async fn territory_segments(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<crate::territories::SegmentsView, AppError> {
        let base = self.analyses.territories()?;
        let v = base.segments_view(caller);
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(v)
    }

    /// The proposed account plan against the current one (managers and
    /// above): the org's totals, the assignments and balances of the
    /// caller's reps.
    pub async fn territory_plan(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<pipewise_engines::territory::PlanReport, AppError> {
        if caller.role < Role::Manager {
            self.audit(Some(caller), "read.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("manager"));
        }
        let base = self.analyses.territories()?;
        let p = base.plan_view(caller)?;
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(p)
    }

    /// Untouched accounts of the caller's scope by likeness to customers and
    /// expected value (managers and above).
    pub async fn territory_whitespace(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<pipewise_engines::whitespace::WhitespaceReport, AppError> {
        if caller.role < Role::Manager {
            self.audit(Some(caller), "read.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("manager"));
        }
        let base = self.analyses.territories()?;
        let r = base.whitespace_view(caller)?;
        self.audit(Some(caller), "read", via, &[], None).await?;
        Ok(r)
    }

    /// Each customer's next product in the caller's scope.
    pub async fn next_products(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<crate::territories::NextProductsView, AppError> {
        let base = self.analyses.territories()?;
        let v = base.next_products_view(caller)?;
        let ids: Vec<String> = v.accounts.iter().map(|a| a.account_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(v)
    }

    /// Churn risk of the open renewals in the caller's scope.
    pub async fn churn_risk(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<pipewise_engines::accounts::ChurnReport, AppError> {
        let base = self.analyses.territories()?;
        let r = base.churn_view(caller)?;
        let ids: Vec<String> = r.open.iter().map(|c| c.opportunity_id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None).await?;
        Ok(r)
    }

    /// The speed-to-lead watch at `now` (epoch seconds): each lead waiting
    /// past the SLA gives one `lead.sla_breached` event per owner (for the
    /// rep and their manager); past twice the SLA, when `watch.reassign`,
    /// the lead is given to the rep the live router recommends among the
    /// others and gives a `lead.reassigned` event. A reassigned lead's clock
    /// starts again for its new owner at the reassignment. Both are written
    /// to the audit log, which the watch reads back after a restart.
    pub async fn sla_sweep(
        &self,
        watch: &crate::lead_desk::SlaWatch,
        now: i64,
    ) -> Result<Vec<crate::lead_desk::LeadEvent>, AppError> {
        use crate::lead_desk::LeadEvent;
        let base = self.analyses.leads()?;
        let o = pipewise_engines::lead_sla::SlaOptions {
            minutes: watch.minutes,
            ..Default::default()
        };
        self.load_lead_watch(now, o.waiting_days)?;
        let waiting = pipewise_engines::lead_sla::waiting_at(&base.desk.crm, now, &o);
        let roster = pipewise_engines::lead_sla::roster(&base.desk.crm, &o);
        let directory = self.directory();
        let at = pipewise_core::value::format_instant(
            chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
        );
        let mut out = Vec::new();
        let mut reassigned = false;
        for w in &waiting {
            let owner = w.owner_id.clone().unwrap_or_default();
            // The owner's clock: from the last reassignment, if any.
            let since = self
                .lead_watch()
                .reassigned_at
                .get(&w.lead_id)
                .copied()
                .filter(|&t| t > w.created_at);
            let minutes = match since {
                Some(t) => {
                    pipewise_engines::lead_sla::clock_seconds(
                        &roster,
                        w.owner_id.as_deref(),
                        t,
                        now,
                    ) as f64
                        / 60.0
                }
                None => w.waiting_minutes,
            };
            // An owner who is away answers nothing: their clock stands
            // still, and the lead moves at once.
            let away = w.owner_away_until;
            if minutes <= watch.minutes && away.is_none() {
                continue;
            }
            let manager = w
                .owner_id
                .as_deref()
                .and_then(|o| directory.user(o))
                .and_then(|u| u.manager_id.clone());
            let event = |kind: &str, new: Option<String>, why: Option<String>| LeadEvent {
                event: kind.into(),
                lead_id: w.lead_id.clone(),
                owner_id: w.owner_id.clone(),
                manager_id: manager.clone(),
                new_owner_id: new,
                waiting_minutes: minutes,
                sla_minutes: watch.minutes,
                at: at.clone(),
                why,
            };
            let key = (
                w.lead_id.clone(),
                "lead.sla_breached".to_string(),
                owner.clone(),
            );
            if minutes > watch.minutes && self.lead_watch().sent.insert(key) {
                self.audit(
                    None,
                    "lead.sla_breached",
                    "sla watch",
                    std::slice::from_ref(&w.lead_id),
                    Some(&format!("owner {owner}: {minutes:.0} business minutes")),
                )
                .await?;
                out.push(event("lead.sla_breached", None, None));
            }
            if (minutes <= 2.0 * watch.minutes && away.is_none()) || !watch.reassign {
                continue;
            }
            let key = (
                w.lead_id.clone(),
                "lead.reassigned".to_string(),
                owner.clone(),
            );
            if self.lead_watch().sent.contains(&key) {
                continue;
            }
            let (Some(lead), Ok(router)) = (base.desk.lead(&w.lead_id), &base.desk.router) else {
                continue;
            };
            let others: std::collections::BTreeSet<String> = base
                .desk
                .crm
                .users
                .iter()
                .filter(|u| u.role.as_deref() == Some("rep"))
                .filter(|u| Some(u.id.as_str()) != lead.owner_id.as_deref())
                .map(|u| u.id.clone())
                .collect();
            let decision = router
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .route_within(&base.desk.crm, lead.into(), Some(&others));
            let Some(d) = decision else { continue };
            let new = d.recommended.rep_id.clone();
            if !self.store().assign_lead(&w.lead_id, &new)? {
                continue;
            }
            {
                let mut st = self.lead_watch();
                st.sent.insert(key);
                st.reassigned_at.insert(w.lead_id.clone(), now);
            }
            let why = match away {
                Some(back) => format!(
                    "the owner is out of office until {} ({minutes:.0} business minutes waited): {}",
                    pipewise_core::value::format_instant(
                        chrono::DateTime::from_timestamp(back, 0).unwrap_or_default()
                    ),
                    d.why
                ),
                None => format!(
                    "no first response after {minutes:.0} business minutes (SLA {} min, twice it passed): {}",
                    watch.minutes, d.why
                ),
            };
            self.audit(
                None,
                "lead.reassigned",
                "sla watch",
                std::slice::from_ref(&w.lead_id),
                Some(&format!("owner {owner} to {new}: {why}")),
            )
            .await?;
            reassigned = true;
            out.push(event("lead.reassigned", Some(new), Some(why)));
        }
        if reassigned {
            self.analyses.refresh_leads(self.path.clone());
        }
        Ok(out)
    }

    fn lead_watch(&self) -> std::sync::MutexGuard<'_, LeadWatchState> {
        self.lead_watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the watch's past events back from the audit log (the last
    /// `days` + 1 days), once.
    fn load_lead_watch(&self, now: i64, days: i64) -> Result<(), AppError> {
        if self.lead_watch().loaded {
            return Ok(());
        }
        let since = pipewise_core::value::format_instant(
            chrono::DateTime::from_timestamp(now - (days + 1) * 86_400, 0).unwrap_or_default(),
        );
        let rows = self
            .store()
            .audit_actions(&["lead.sla_breached", "lead.reassigned"], &since)?;
        let mut st = self.lead_watch();
        for r in rows {
            let (Some(lead), Some(detail)) = (r.ids.first(), r.detail.as_deref()) else {
                continue;
            };
            // "owner ID: ..." or "owner ID to NEW: ...".
            let owner = detail
                .strip_prefix("owner ")
                .and_then(|x| x.split([':', ' ']).next())
                .unwrap_or("")
                .to_string();
            st.sent.insert((lead.clone(), r.action.clone(), owner));
            if r.action == "lead.reassigned"
                && let Ok(t) = chrono::DateTime::parse_from_rfc3339(&r.at)
            {
                st.reassigned_at.insert(lead.clone(), t.timestamp());
            }
        }
        st.loaded = true;
        Ok(())
    }

    /// Marks a follow-up task of a lead in the caller's scope done or
    /// skipped; the queue moves on at once.
    pub async fn mark_lead_task(
        &self,
        caller: &Caller,
        id: &str,
        mark: &crate::lead_desk::TaskMarkRequest,
        via: &str,
    ) -> Result<pipewise_store::LeadTaskMark, AppError> {
        let base = self.analyses.leads()?;
        self.scoped_lead(caller, &base, id, via).await?;
        mark.check(base.desk.cadence.steps.len())?;
        let m = self.store().record_lead_task(
            id,
            mark.step,
            &mark.status,
            mark.note
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty()),
            Some(&caller.user_id),
            &auth::now(),
        )?;
        base.desk.add_mark(m.clone());
        self.audit(
            Some(caller),
            "lead.task",
            via,
            &[id.to_string()],
            Some(&format!("step {} {}", m.step, m.status)),
        )
        .await?;
        Ok(m)
    }

    /// Starts an import job (admin): the files are checked and stored, the
    /// import runs in the background.
    pub async fn import(
        &self,
        caller: &Caller,
        req: ImportRequest,
        via: &str,
    ) -> Result<ImportJob, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "import.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        let imports = self.imports.clone();
        let user = caller.user_id.clone();
        let job = tokio::task::spawn_blocking(move || imports.submit(&user, req))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("the import stopped: {e}")))??;
        self.audit(
            Some(caller),
            "import",
            via,
            std::slice::from_ref(&job.id),
            Some(&job.files.join(", ")),
        )
        .await?;
        Ok(job)
    }

    /// The import jobs since the server started, newest first (admin).
    pub async fn import_jobs(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<Vec<ImportJob>, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "import.denied", via, &[], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        Ok(self.imports.list())
    }

    /// One import job with its progress and report (admin).
    pub async fn import_job(
        &self,
        caller: &Caller,
        id: &str,
        via: &str,
    ) -> Result<ImportJob, AppError> {
        if !caller.is_admin() {
            self.audit(Some(caller), "import.denied", via, &[id.to_string()], None)
                .await?;
            return Err(AppError::Forbidden("admin"));
        }
        self.imports.get(id).ok_or_else(|| AppError::NotFound {
            what: "import job",
            id: id.to_string(),
        })
    }

    /// The coaching report of one rep (`rep_id`) or of the caller's whole
    /// scope, rendered; the media type and the text. 404 outside the scope.
    pub async fn coaching_report(
        &self,
        caller: &Caller,
        rep_id: Option<&str>,
        format: insight::ReportFormat,
        via: &str,
    ) -> Result<(&'static str, String), AppError> {
        let base = self.analyses.coaching()?;
        let Some(text) =
            insight::coaching_report(&base, &caller.scope, rep_id, &self.decisions()?, format)
        else {
            let id = rep_id.unwrap_or_default().to_string();
            self.audit(
                Some(caller),
                "read.denied",
                via,
                std::slice::from_ref(&id),
                None,
            )
            .await?;
            return Err(AppError::NotFound {
                what: "rep with a coaching profile",
                id,
            });
        };
        let ids: Vec<String> = match rep_id {
            Some(r) => vec![r.to_string()],
            None => base
                .run
                .profiles
                .reps
                .iter()
                .filter(|r| caller.scope.allows(Some(&r.id)))
                .map(|r| r.id.clone())
                .collect(),
        };
        self.audit(Some(caller), "read", via, &ids, Some("report"))
            .await?;
        Ok((format.media_type(), text))
    }

    /// Every API token (never the secrets), newest first (admin).
    pub async fn tokens(
        &self,
        caller: &Caller,
        via: &str,
    ) -> Result<Vec<pipewise_store::access::TokenRecord>, AppError> {
        self.admin_only(caller, "token.denied", via).await?;
        let mut t = self.store().tokens(None)?;
        t.sort_by_key(|b| std::cmp::Reverse(b.id));
        Ok(t)
    }

    /// Creates an API token for a user (admin); the secret is in the
    /// result only. Errors on an unknown user or a bad expiry (1-365 days).
    pub async fn create_token(
        &self,
        caller: &Caller,
        user_id: &str,
        label: Option<&str>,
        expires_days: Option<u32>,
        via: &str,
    ) -> Result<auth::NewToken, AppError> {
        self.admin_only(caller, "token.denied", via).await?;
        if self.directory().caller(user_id).is_none() {
            return Err(
                InputError::new("user_id", "the id of a user in the database", user_id).into(),
            );
        }
        if let Some(d) = expires_days
            && !(1..=365).contains(&d)
        {
            return Err(InputError::new(
                "expires_days",
                "a number of days from 1 to 365",
                &d.to_string(),
            )
            .into());
        }
        if label.is_some_and(|l| l.chars().count() > 200) {
            return Err(
                InputError::new("label", "at most 200 characters", "a longer label").into(),
            );
        }
        let t = auth::create_token(&mut self.store(), user_id, label, expires_days)?;
        self.audit(
            Some(caller),
            "token.create",
            via,
            &[user_id.to_string()],
            Some(&format!("token {}", t.record.id)),
        )
        .await?;
        Ok(t)
    }

    /// Revokes a token by its id (admin); 404 when there is none, 409 when
    /// it was already revoked.
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        id: i64,
        via: &str,
    ) -> Result<pipewise_store::access::TokenRecord, AppError> {
        self.admin_only(caller, "token.denied", via).await?;
        let known = self.store().tokens(None)?.into_iter().find(|t| t.id == id);
        match known {
            None => {
                return Err(AppError::NotFound {
                    what: "token",
                    id: id.to_string(),
                });
            }
            Some(t) if t.revoked_at.is_some() => {
                return Err(AppError::Conflict(format!(
                    "token {id} was already revoked at {}",
                    t.revoked_at.unwrap_or_default()
                )));
            }
            Some(_) => {}
        }
        let rec = self
            .store()
            .revoke_token(id, &auth::now())?
            .ok_or_else(|| AppError::NotFound {
                what: "token",
                id: id.to_string(),
            })?;
        // Revoked tokens stop working now, not after the cache's lifetime.
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.audit(
            Some(caller),
            "token.revoke",
            via,
            std::slice::from_ref(&rec.user_id),
            Some(&format!("token {id}")),
        )
        .await?;
        Ok(rec)
    }

    async fn admin_only(&self, caller: &Caller, denied: &str, via: &str) -> Result<(), AppError> {
        if caller.is_admin() {
            return Ok(());
        }
        self.audit(Some(caller), denied, via, &[], None).await?;
        Err(AppError::Forbidden("admin"))
    }
}
