//! The SQLite file behind the embedded adapters: opened with durable settings, used from async
//! code through a blocking thread, shared by every handle opened from it.
//!
//! Settings: WAL journal with `synchronous = NORMAL`, so a committed write survives a process
//! crash (the WAL is on disk before the commit returns) and readers never block the writer; a
//! power cut may lose the last transactions, which the queue's redelivery and the store's
//! idempotent writes absorb. `busy_timeout` lets several processes share one file.
//!
//! Schemas change through numbered migrations (`rusqlite_migration`, on SQLite's
//! `user_version`): migration 1 is the first schema, written `IF NOT EXISTS` so files made
//! before migrations existed take it as already applied.
//!
//! The files hold transcripts and pairing codes: the directory is made `0700` and the file
//! `0600` (SQLite gives its `-wal` and `-shm` files the database file's mode).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use rusqlite_migration::Migrations;
use tokio::sync::Notify;

/// One open SQLite file. Cloning shares the connection and the in-process change notifier.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// Woken after writes that may interest long-pollers in this process.
    pub(crate) changed: Arc<Notify>,
}

impl Db {
    /// Opens (creating if needed) the file and its parent directory, and migrates it to the
    /// latest schema.
    pub fn open(path: &Path, migrations: &Migrations<'static>) -> Result<Db, EmbeddedError> {
        let fail = |e: &dyn std::fmt::Display| EmbeddedError {
            path: path.display().to_string(),
            message: e.to_string(),
            retryable: false,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(|e| fail(&e))?;
        }
        let mut conn = Connection::open(path).map_err(|e| fail(&e))?;
        private_file(path).map_err(|e| fail(&e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| fail(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| fail(&e))?;
        migrations.to_latest(&mut conn).map_err(|e| fail(&e))?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
            changed: Arc::new(Notify::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> Result<T, EmbeddedError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            // A panic in another call poisons the lock; the connection itself is still sound
            // (SQLite rolled back the unfinished transaction), so keep going.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await;
        let path = path.display().to_string();
        match joined {
            Ok(result) => result.map_err(|e| EmbeddedError::from_sqlite(&path, e)),
            Err(join) => Err(EmbeddedError {
                path,
                message: format!("database task failed: {join}"),
                retryable: false,
            }),
        }
    }
}

/// Creates `dir` (and its parents) when missing, and makes `dir` itself `0700`: it holds
/// transcripts, pairing codes and the gateway token.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Makes an existing file readable and writable by its owner only.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// A failure of the embedded database, naming its file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct EmbeddedError {
    pub path: String,
    pub message: String,
    /// Busy or locked by another process: the same call may succeed later.
    pub retryable: bool,
}

impl EmbeddedError {
    fn from_sqlite(path: &str, err: rusqlite::Error) -> Self {
        let retryable = matches!(
            err.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        );
        EmbeddedError {
            path: path.to_string(),
            message: err.to_string(),
            retryable,
        }
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
