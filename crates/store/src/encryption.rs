//! Encryption at rest: the whole database file, its write-ahead log and its
//! rollback journal, by SQLCipher 4 (built into the bundled SQLite).
//!
//! SQLCipher's defaults, which pipewise does not change: every 4,096-byte
//! page is encrypted with AES-256 in CBC mode under a random per-page IV and
//! authenticated with HMAC-SHA512; the key is derived from the passphrase by
//! PBKDF2-HMAC-SHA512 with 256,000 iterations and a random per-file salt
//! (<https://www.zetetic.net/sqlcipher/design/>). Temporary tables and sorts
//! are kept in memory when a database is encrypted, since SQLite's temporary
//! files are not.
//!
//! One key per process: the command line and the server set it once
//! ([`set_database_key`]) from `PIPEWISE_KEY` or a key file, and every
//! [`SqliteStore::open`] uses it. A file's state decides what the key does:
//! - a new (missing or empty) file is created encrypted when there is a key;
//! - a plaintext file opens as plaintext whatever the key
//!   ([`SqliteStore::is_encrypted`] tells; `pipewise db encrypt` converts it);
//! - an encrypted file needs its key: without one, or with another, opening
//!   fails with [`StoreError::Encrypted`] or [`StoreError::WrongKey`].

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rusqlite::Connection;

use crate::{Result, SqliteStore, StoreError};

/// The first 16 bytes of every plaintext SQLite file.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The fewest bytes a key may have: a short key is guessed, and a guessed key
/// opens everything.
pub const MIN_KEY_BYTES: usize = 16;

static KEY: RwLock<Option<String>> = RwLock::new(None);

/// Sets (or clears) the key every later [`SqliteStore::open`] in this process
/// uses. Errors: a key shorter than [`MIN_KEY_BYTES`].
pub fn set_database_key(key: Option<String>) -> Result<()> {
    if let Some(k) = &key {
        check_key(k)?;
    }
    *KEY.write().unwrap_or_else(|e| e.into_inner()) = key;
    Ok(())
}

/// The key set by [`set_database_key`], if any.
pub fn database_key() -> Option<String> {
    KEY.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn check_key(k: &str) -> Result<()> {
    if k.len() < MIN_KEY_BYTES {
        return Err(StoreError::Invalid(format!(
            "the key has {} bytes: give {MIN_KEY_BYTES} or more",
            k.len()
        )));
    }
    Ok(())
}

/// What a database file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// No file, or an empty one: opening creates it.
    New,
    /// A plaintext SQLite file.
    Plain,
    /// Anything else: an encrypted database (or not a database at all).
    Encrypted,
}

/// Reads the first 16 bytes of `path`. Errors: the file exists but cannot
/// be read.
pub fn file_state(path: &Path) -> Result<FileState> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(e) => {
            return Err(StoreError::Invalid(format!(
                "cannot read database {}: {e}",
                path.display()
            )));
        }
    };
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(StoreError::Invalid(format!(
                    "cannot read database {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(match n {
        0 => FileState::New,
        16 if &head == PLAIN_HEADER => FileState::Plain,
        _ => FileState::Encrypted,
    })
}

/// Gives the connection its key (before anything else is read) and checks
/// it opens the file. Errors: a wrong key, or a file that is no database.
pub(crate) fn apply_key(conn: &Connection, key: &str, path: &str) -> Result<()> {
    // SQLCipher logs a failed page check to stderr; the error says it better.
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE");
    conn.pragma_update(None, "key", key)
        .map_err(|source| StoreError::Open {
            path: path.to_string(),
            source,
        })?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|_| StoreError::WrongKey {
        path: path.to_string(),
    })?;
    Ok(())
}

/// What [`SqliteStore::rewrite_keyed`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rewrite {
    pub path: String,
    pub encrypted_before: bool,
    pub encrypted_after: bool,
    /// Size of the rewritten file, bytes.
    pub bytes: u64,
}

impl SqliteStore {
    /// Whether the file is encrypted (false for in-memory databases).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Rewrites the database file at `path` under `new_key` (`None`:
    /// plaintext), reading it with `old_key`: encrypts a plaintext file,
    /// rotates an encrypted file's key, or decrypts it. The copy is made by
    /// `sqlcipher_export` into a new file beside the old one, synced, then
    /// renamed over it, so a failure at any point leaves the old file whole;
    /// the old write-ahead log is checkpointed into it first and removed.
    /// Nothing else may have the file open (stop `pipewise serve` first):
    /// the copy holds an exclusive lock while it runs, so a writer waits or
    /// fails rather than losing its write. The old file's blocks are freed,
    /// not overwritten: a file system that keeps old blocks (snapshots,
    /// SSD wear levelling) may keep the plaintext there.
    ///
    /// Errors: the file is missing, the old key is wrong, the new key is
    /// too short, or the file system refuses the write or the rename.
    pub fn rewrite_keyed(
        path: &Path,
        old_key: Option<&str>,
        new_key: Option<&str>,
    ) -> Result<Rewrite> {
        if let Some(k) = new_key {
            check_key(k)?;
        }
        let state = file_state(path)?;
        if state == FileState::New {
            return Err(StoreError::Invalid(format!(
                "no database at {}",
                path.display()
            )));
        }
        // Nobody else may have it open: a server or another command would
        // go on writing to the old file once the new one is renamed over
        // it, and those writes would be lost.
        let in_use = std::fs::File::open(path).map_err(|e| {
            StoreError::Invalid(format!("cannot read database {}: {e}", path.display()))
        })?;
        match in_use.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Invalid(format!(
                    "{} is open in another process (a running `pipewise serve`, or another command): stop it first, then run this again",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(_)) => {}
        }
        // Open with the old key (bringing the schema up to date), fold the
        // write-ahead log into the file.
        let store = Self::open_unlocked(path, old_key)?;
        let encrypted_before = store.encrypted;
        let version = store.schema_version()?;
        store
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let tmp = sibling(path, ".rekey");
        let _ = std::fs::remove_file(&tmp);
        let tmp_s = tmp.display().to_string();
        let conn = &store.conn;
        conn.execute(
            "ATTACH DATABASE ?1 AS rekeyed KEY ?2",
            rusqlite::params![tmp_s, new_key.unwrap_or("")],
        )?;
        // The copy runs under a write lock: a writer waits (or fails) rather
        // than writing to the old file after it has been copied.
        let exported = conn
            .execute_batch("BEGIN IMMEDIATE")
            .and_then(|_| conn.query_row("SELECT sqlcipher_export('rekeyed')", [], |_| Ok(())))
            .and_then(|_| conn.execute_batch(&format!("PRAGMA rekeyed.user_version = {version}")))
            .and_then(|_| conn.execute_batch("COMMIT"))
            .and_then(|_| conn.execute_batch("DETACH DATABASE rekeyed"));
        if let Err(e) = exported {
            let _ = conn.execute_batch("ROLLBACK");
            let _ = conn.execute_batch("DETACH DATABASE rekeyed");
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        drop(store);
        let io = |what: &str, e: std::io::Error| {
            StoreError::Invalid(format!("{what} {}: {e}", path.display()))
        };
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("cannot sync the rewritten copy of", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("cannot replace", e))?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(sibling(path, suffix));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        // Open once more: proves the new key opens it, and sets WAL mode.
        drop(in_use);
        let reopened = Self::open_with_key(path, new_key)?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(Rewrite {
            path: path.display().to_string(),
            encrypted_before,
            encrypted_after: reopened.encrypted,
            bytes,
        })
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "ann.secret-lee@example.org";

    fn write_person(s: &mut SqliteStore) {
        s.conn
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS probe (t TEXT);
                 INSERT INTO probe VALUES ('{EMAIL}');"
            ))
            .unwrap();
    }

    fn files_contain(path: &Path, needle: &str) -> bool {
        ["", "-wal", "-shm", "-journal"].iter().any(|suffix| {
            std::fs::read(sibling(path, suffix))
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
    }

    #[test]
    fn keyed_file_holds_no_plaintext_and_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("org.db");
        let key = "correct horse battery staple";
        {
            let mut s = SqliteStore::open_with_key(&db, Some(key)).unwrap();
            assert!(s.is_encrypted());
            write_person(&mut s);
            // While open, the write-ahead log holds the write: it is
            // encrypted too.
            assert!(!files_contain(&db, EMAIL));
        }
        assert!(!files_contain(&db, EMAIL));
        assert_eq!(file_state(&db).unwrap(), FileState::Encrypted);
        match SqliteStore::open_with_key(&db, None) {
            Err(StoreError::Encrypted { .. }) => {}
            other => panic!("expected Encrypted, got {:?}", other.map(|_| ())),
        }
        match SqliteStore::open_with_key(&db, Some("another key of some length")) {
            Err(StoreError::WrongKey { .. }) => {}
            other => panic!("expected WrongKey, got {:?}", other.map(|_| ())),
        }
        let s = SqliteStore::open_with_key(&db, Some(key)).unwrap();
        let got: String = s
            .conn
            .query_row("SELECT t FROM probe", [], |r| r.get(0))
            .unwrap();
        assert_eq!(got, EMAIL);
    }

    #[test]
    fn encrypt_rotate_and_decrypt_keep_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("org.db");
        {
            let mut s = SqliteStore::open_with_key(&db, None).unwrap();
            assert!(!s.is_encrypted());
            write_person(&mut s);
        }
        assert!(files_contain(&db, EMAIL));
        // A key given to a plaintext file leaves it plaintext (and says so).
        assert!(
            !SqliteStore::open_with_key(&db, Some("a key of sixteen+ bytes"))
                .unwrap()
                .is_encrypted()
        );
        let k1 = "first key, sixteen bytes or more";
        let k2 = "second key, also long enough";
        let r = SqliteStore::rewrite_keyed(&db, None, Some(k1)).unwrap();
        assert!(!r.encrypted_before && r.encrypted_after);
        assert!(!files_contain(&db, EMAIL));
        let r = SqliteStore::rewrite_keyed(&db, Some(k1), Some(k2)).unwrap();
        assert!(r.encrypted_before && r.encrypted_after);
        assert!(matches!(
            SqliteStore::open_with_key(&db, Some(k1)),
            Err(StoreError::WrongKey { .. })
        ));
        let s = SqliteStore::open_with_key(&db, Some(k2)).unwrap();
        assert_eq!(s.schema_version().unwrap(), crate::SCHEMA_VERSION);
        let n: i64 = s
            .conn
            .query_row("SELECT count(*) FROM probe", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        drop(s);
        // A wrong old key changes nothing.
        assert!(SqliteStore::rewrite_keyed(&db, Some(k1), None).is_err());
        assert_eq!(file_state(&db).unwrap(), FileState::Encrypted);
        let r = SqliteStore::rewrite_keyed(&db, Some(k2), None).unwrap();
        assert!(r.encrypted_before && !r.encrypted_after);
        assert_eq!(file_state(&db).unwrap(), FileState::Plain);
        assert!(files_contain(&db, EMAIL));
        assert!(!dir.path().join("org.db.rekey").exists());
    }

    #[test]
    fn a_file_open_elsewhere_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("org.db");
        let k = "a key of sixteen bytes or more";
        let open = SqliteStore::open_with_key(&db, None).unwrap();
        let err = SqliteStore::rewrite_keyed(&db, None, Some(k)).unwrap_err();
        assert!(err.to_string().contains("open in another process"), "{err}");
        assert_eq!(file_state(&db).unwrap(), FileState::Plain);
        drop(open);
        SqliteStore::rewrite_keyed(&db, None, Some(k)).unwrap();
        assert_eq!(file_state(&db).unwrap(), FileState::Encrypted);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(set_database_key(Some("short".into())).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(SqliteStore::open_with_key(dir.path().join("a.db"), Some("short")).is_err());
    }
}
