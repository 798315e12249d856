//! The use cases over one database, as the server runs them: each call
//! takes the caller, filters by their scope and records what they read or
//! changed in the audit log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use pipewise_store::SqliteStore;
use pipewise_store::access::{AuditCheck, AuditRecord, NewAudit};
use serde::Serialize;
use utoipa::ToSchema;

use crate::InputError;
use crate::auth::{self, AuthError};
use crate::book::{Book, DealDetail, DealPage, DealQuery};
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
    #[error("this needs the {0} role")]
    Forbidden(&'static str),
    /// The data or models this needs are not there yet.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<pipewise_store::StoreError> for AppError {
    fn from(e: pipewise_store::StoreError) -> Self {
        AppError::Internal(e.into())
    }
}

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
    /// The users whose records the caller sees (absent: everyone).
    pub scope_users: Option<Vec<String>>,
    /// Open deals the caller sees.
    pub open_deals: usize,
}

/// The use cases over one database.
pub struct Service {
    path: PathBuf,
    store: Mutex<SqliteStore>,
    directory: RwLock<Arc<Directory>>,
    book: RwLock<Result<Arc<Book>, String>>,
}

impl Service {
    /// Opens the database and scores the open pipeline. A database without
    /// a trained model still opens: the pipeline use cases then answer
    /// [`AppError::Unavailable`] with what to do.
    pub fn open(path: &Path) -> anyhow::Result<Service> {
        let store = SqliteStore::open(path)?;
        let directory = Directory::new(store.users()?, store.admins()?);
        let book = Book::build(&store).map(Arc::new).map_err(|e| e.to_string());
        Ok(Service {
            path: path.to_path_buf(),
            store: Mutex::new(store),
            directory: RwLock::new(Arc::new(directory)),
            book: RwLock::new(book),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let directory = Directory::new(store.users()?, store.admins()?);
        let book = Book::build(&store).map(Arc::new).map_err(|e| e.to_string());
        drop(store);
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(directory);
        *self.book.write().unwrap_or_else(|p| p.into_inner()) = book;
        Ok(())
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

    /// The caller a bearer token stands for.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        let directory = self.directory();
        auth::authenticate(&self.store(), &directory, token, &auth::now())
    }

    /// Records what a caller did. `via` is the route or command.
    pub fn audit(
        &self,
        caller: Option<&Caller>,
        action: &str,
        via: &str,
        ids: &[String],
        detail: Option<&str>,
    ) -> Result<AuditRecord, AppError> {
        let at = auth::now();
        Ok(self.store().append_audit(&NewAudit {
            at: &at,
            user_id: caller.map(|c| c.user_id.as_str()),
            action,
            route: Some(via),
            ids,
            detail,
        })?)
    }

    pub fn me(&self, caller: &Caller) -> Result<Me, AppError> {
        let open_deals = self.book().map_or(0, |b| {
            b.list(
                &caller.scope,
                &DealQuery {
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .map_or(0, |p| p.total)
        });
        Ok(Me {
            user_id: caller.user_id.clone(),
            name: caller.name.clone(),
            role: caller.role,
            scope_users: caller.scope.users().map(|u| u.iter().cloned().collect()),
            open_deals,
        })
    }

    /// The caller's open deals, filtered, sorted and paged (the deals on the
    /// page are recorded as read).
    pub fn opportunities(
        &self,
        caller: &Caller,
        q: &DealQuery,
        via: &str,
    ) -> Result<DealPage, AppError> {
        let page = self.book()?.list(&caller.scope, q)?;
        let ids: Vec<String> = page.items.iter().map(|d| d.id.clone()).collect();
        self.audit(Some(caller), "read", via, &ids, None)?;
        Ok(page)
    }

    /// One open deal with its factors, feature values and history.
    pub fn opportunity(
        &self,
        caller: &Caller,
        id: &str,
        via: &str,
    ) -> Result<DealDetail, AppError> {
        let book = self.book()?;
        let d = book
            .deal(&caller.scope, id)
            .ok_or_else(|| AppError::NotFound {
                what: "open opportunity",
                id: id.to_string(),
            })?;
        self.audit(Some(caller), "read", via, &[id.to_string()], None)?;
        Ok(d.clone())
    }

    /// The audit log, newest first (admin only).
    pub fn audit_log(
        &self,
        caller: &Caller,
        user: Option<&str>,
        id: Option<&str>,
        limit: usize,
        via: &str,
    ) -> Result<Vec<AuditEntry>, AppError> {
        if !caller.is_admin() {
            return Err(AppError::Forbidden("admin"));
        }
        let rows = self.store().audit(user, id, limit)?;
        self.audit(Some(caller), "audit.read", via, &[], None)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// Checks the audit chain.
    pub fn verify_audit(&self) -> Result<AuditCheck, AppError> {
        Ok(self.store().verify_audit()?)
    }
}
