//! `SqliteStore`: the embedded state store for one-machine mode, in one SQLite file. One
//! file per port: [`transcripts`], [`jobs`], [`senders`], [`counters`].
//!
//! Every multi-step operation runs in one `BEGIN IMMEDIATE` transaction, so it is atomic against
//! other handles and other processes on the same file. Expired dedup markers and pairing codes
//! are filtered out on read (and swept now and then), as DynamoDB's lazy TTL demands of the
//! other adapter too.

mod counters;
mod cron;
mod jobs;
mod senders;
mod transcripts;

use std::path::Path;
use std::sync::LazyLock;

use rusqlite::{Connection, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use super::StoreError;
use crate::embedded::{now_ms, Db};

/// The first schema (`IF NOT EXISTS`: files from before migrations already have it).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    channel TEXT,
    peer TEXT,
    created_ms INTEGER NOT NULL,
    last_active_ms INTEGER NOT NULL,
    next_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_agent ON sessions (agent, last_active_ms DESC);
CREATE TABLE IF NOT EXISTS transcript (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    marker TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS allowlist (
    channel TEXT NOT NULL,
    account TEXT NOT NULL,
    peer TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, account, peer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pairing (
    channel TEXT NOT NULL,
    account TEXT NOT NULL,
    code TEXT NOT NULL,
    peer TEXT NOT NULL,
    peer_name TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, account, code)
) WITHOUT ROWID;
";

/// Migration 2: where a job starts reading (`context_from_seq`), and rate-limit counters.
const SCHEMA_V2: &str = "
ALTER TABLE sessions ADD COLUMN context_from_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE counters (
    key TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (key, window_start_ms)
) WITHOUT ROWID;
";

/// Migration 3: a session's options (`/model`, `/think`), as JSON.
const SCHEMA_V3: &str = "ALTER TABLE sessions ADD COLUMN options TEXT;";

/// Migration 4: scheduled jobs, indexed by their next run.
const SCHEMA_V4: &str = "
CREATE TABLE cron (
    id TEXT PRIMARY KEY,
    next_run_ms INTEGER,
    enabled INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX cron_due ON cron (next_run_ms) WHERE next_run_ms IS NOT NULL AND enabled = 1;
";

/// Migration 5: the latest `/stop` per session.
const SCHEMA_V5: &str = "
CREATE TABLE stops (
    session TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(SCHEMA_V1),
        M::up(SCHEMA_V2),
        M::up(SCHEMA_V3),
        M::up(SCHEMA_V4),
        M::up(SCHEMA_V5),
    ])
});

/// The state store in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(SqliteStore {
            db: Db::open(path, &MIGRATIONS)?,
        })
    }

    /// Runs `f` in an immediate (write-locking) transaction.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T, TxError> + Send + 'static,
    {
        let result = self
            .db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                match f(&tx, now_ms()) {
                    Ok(value) => {
                        tx.commit()?;
                        Ok(Ok(value))
                    }
                    // Dropping the transaction rolls it back: nothing is half-written.
                    Err(TxError::Sqlite(e)) => Err(e),
                    Err(TxError::Store(e)) => Ok(Err(e)),
                }
            })
            .await?;
        result
    }

    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, TxError> + Send + 'static,
    {
        let result = self
            .db
            .call(move |conn| match f(conn, now_ms()) {
                Ok(v) => Ok(Ok(v)),
                Err(TxError::Sqlite(e)) => Err(e),
                Err(TxError::Store(e)) => Ok(Err(e)),
            })
            .await?;
        result
    }
}

/// Inside a transaction: a database failure (rolls back, maps to the store's error) or a
/// contract refusal (rolls back, returned as is).
pub(super) enum TxError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        TxError::Sqlite(e)
    }
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> TxError {
    TxError::Store(StoreError::Corrupt(e.to_string()))
}
