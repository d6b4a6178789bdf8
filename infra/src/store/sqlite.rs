//! `SqliteStore`: the embedded state store for one-machine mode, in one SQLite file.
//!
//! Every multi-step operation runs in one `BEGIN IMMEDIATE` transaction, so it is atomic against
//! other handles and other processes on the same file. Expired dedup markers and pairing codes
//! are filtered out on read (and swept now and then), as DynamoDB's lazy TTL demands of the
//! other adapter too.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    capped, capped_detail, claim_decision, duration_ms, new_pairing_code, normalize_code, Claim,
    ClaimDecision, StateStore, StoreError, TranscriptPage, MAX_PENDING_PAIRINGS,
};
use crate::embedded::{now_ms, Db};
use crate::model::{
    JobRecord, JobStatus, PairingRequest, SessionKey, SessionMeta, TranscriptEntry,
};

const SCHEMA: &str = "
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

/// The state store in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(SqliteStore {
            db: Db::open(path, SCHEMA)?,
        })
    }

    /// Runs `f` in an immediate (write-locking) transaction.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
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

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
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

    /// Changes a running job held by `owner`; `LeaseLost` otherwise.
    async fn update_held_job(
        &self,
        job_id: &str,
        owner: &str,
        change: impl FnOnce(&mut JobRecord, i64) + Send + 'static,
    ) -> Result<(), StoreError> {
        let (job_id, owner) = (job_id.to_string(), owner.to_string());
        self.write(move |tx, now| {
            let held = load_job(tx, &job_id)?.filter(|r| {
                r.status == JobStatus::Running && r.lease_owner.as_deref() == Some(&owner)
            });
            let Some(mut record) = held else {
                return Err(TxError::Store(StoreError::LeaseLost { job_id, owner }));
            };
            change(&mut record, now);
            record.updated_ms = now;
            save_job(tx, &record, now)?;
            Ok(())
        })
        .await
    }
}

/// Inside a transaction: a database failure (rolls back, maps to the store's error) or a
/// contract refusal (rolls back, returned as is).
enum TxError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        TxError::Sqlite(e)
    }
}

fn corrupt(e: impl std::fmt::Display) -> TxError {
    TxError::Store(StoreError::Corrupt(e.to_string()))
}

fn load_job(conn: &Connection, job_id: &str) -> Result<Option<JobRecord>, TxError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT record FROM jobs WHERE job_id = ?1",
            params![job_id],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|t| serde_json::from_str(&t).map_err(corrupt))
        .transpose()
}

fn save_job(conn: &Connection, record: &JobRecord, now: i64) -> Result<(), TxError> {
    let text = serde_json::to_string(record).map_err(corrupt)?;
    conn.execute(
        "INSERT OR REPLACE INTO jobs (job_id, record, expires_ms) VALUES (?1, ?2, ?3)",
        params![
            record.job_id,
            text,
            now + duration_ms(super::JOB_RECORD_TTL)
        ],
    )?;
    Ok(())
}

fn session_from_row(row: &rusqlite::Row<'_>) -> Result<SessionMeta, rusqlite::Error> {
    let key: String = row.get(0)?;
    let key = key.parse::<SessionKey>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(SessionMeta {
        key,
        agent: row.get(1)?,
        channel: row.get(2)?,
        peer: row.get(3)?,
        created_ms: row.get(4)?,
        last_active_ms: row.get(5)?,
        next_seq: row.get::<_, i64>(6)? as u64,
    })
}

const SESSION_COLUMNS: &str = "key, agent, channel, peer, created_ms, last_active_ms, next_seq";

fn pairing_from_row(row: &rusqlite::Row<'_>) -> Result<PairingRequest, rusqlite::Error> {
    Ok(PairingRequest {
        channel: row.get(0)?,
        account: row.get(1)?,
        code: row.get(2)?,
        peer: row.get(3)?,
        peer_name: row.get(4)?,
        created_ms: row.get(5)?,
        expires_ms: row.get(6)?,
    })
}

const PAIRING_COLUMNS: &str = "channel, account, code, peer, peer_name, created_ms, expires_ms";

fn live_pairings(
    conn: &Connection,
    channel: &str,
    account: &str,
    now: i64,
) -> Result<Vec<PairingRequest>, TxError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PAIRING_COLUMNS} FROM pairing
         WHERE channel = ?1 AND account = ?2 AND expires_ms > ?3 ORDER BY created_ms, peer"
    ))?;
    let rows = stmt.query_map(params![channel, account, now], pairing_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn get_session(&self, key: &SessionKey) -> Result<Option<SessionMeta>, StoreError> {
        let key = key.to_string();
        self.read(move |conn, _| {
            Ok(conn
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?1"),
                    params![key],
                    session_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn list_sessions(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<SessionMeta>, StoreError> {
        let agent = agent.to_string();
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE agent = ?1
                 ORDER BY last_active_ms DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![agent, limit as i64], session_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn append_transcript(
        &self,
        key: &SessionKey,
        agent: &str,
        entry: &TranscriptEntry,
    ) -> Result<TranscriptEntry, StoreError> {
        let stored = capped(entry);
        let body =
            serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (channel, peer) = match key.channel_and_peer() {
            Some((c, p)) => (Some(c.to_string()), Some(p.to_string())),
            None => (None, None),
        };
        let (key, agent, seq) = (key.to_string(), agent.to_string(), stored.seq);
        self.write(move |tx, now| {
            let next: u64 = tx
                .query_row("SELECT next_seq FROM sessions WHERE key = ?1", params![key], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .unwrap_or(0) as u64;
            if seq != next {
                return Err(TxError::Store(StoreError::SeqConflict {
                    session: key,
                    expected: next,
                    attempted: seq,
                }));
            }
            tx.execute(
                "INSERT INTO transcript (session, seq, body) VALUES (?1, ?2, ?3)",
                params![key, seq as i64, body],
            )?;
            tx.execute(
                "INSERT INTO sessions (key, agent, channel, peer, created_ms, last_active_ms, next_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                 ON CONFLICT (key) DO UPDATE SET last_active_ms = ?5, next_seq = ?6, agent = ?2",
                params![key, agent, channel, peer, now, (seq + 1) as i64],
            )?;
            Ok(())
        })
        .await?;
        Ok(stored)
    }

    async fn load_transcript(
        &self,
        key: &SessionKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<TranscriptPage, StoreError> {
        let key = key.to_string();
        let limit = limit.max(1);
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM transcript WHERE session = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )?;
            let bodies = stmt.query_map(params![key, from_seq as i64, limit as i64], |r| {
                r.get::<_, String>(0)
            })?;
            let mut entries = Vec::new();
            for body in bodies {
                let entry: TranscriptEntry = serde_json::from_str(&body?).map_err(corrupt)?;
                entries.push(entry);
            }
            let next_seq = (entries.len() == limit).then(|| entries.last().map(|e| e.seq + 1)).flatten();
            Ok(TranscriptPage { entries, next_seq })
        })
        .await
    }

    async fn mark_seen(&self, marker: &str, ttl: Duration) -> Result<bool, StoreError> {
        let marker = marker.to_string();
        let ttl = duration_ms(ttl);
        self.write(move |tx, now| {
            let changed = tx.execute(
                "INSERT INTO dedup (marker, expires_ms) VALUES (?1, ?2)
                 ON CONFLICT (marker) DO UPDATE SET expires_ms = ?2 WHERE dedup.expires_ms <= ?3",
                params![marker, now + ttl, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn claim_job(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let (job_id, owner) = (job_id.to_string(), owner.to_string());
        let lease = duration_ms(lease);
        self.write(move |tx, now| {
            let existing = load_job(tx, &job_id)?;
            match claim_decision(existing.as_ref(), &owner, now) {
                ClaimDecision::Finished => {
                    Ok(Claim::Finished(existing.expect("decided on a record")))
                }
                ClaimDecision::Busy => Ok(Claim::Busy(existing.expect("decided on a record"))),
                ClaimDecision::Take => {
                    let record = match existing {
                        Some(r) => JobRecord {
                            status: JobStatus::Running,
                            lease_owner: Some(owner),
                            lease_until_ms: now + lease,
                            attempt: r.attempt + 1,
                            updated_ms: now,
                            ..r
                        },
                        None => JobRecord {
                            job_id,
                            status: JobStatus::Running,
                            lease_owner: Some(owner),
                            lease_until_ms: now + lease,
                            attempt: 1,
                            chunks_sent: vec![],
                            created_ms: now,
                            updated_ms: now,
                            detail: None,
                        },
                    };
                    save_job(tx, &record, now)?;
                    Ok(Claim::Claimed(record))
                }
            }
        })
        .await
    }

    async fn renew_lease(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let lease = duration_ms(lease);
        self.update_held_job(job_id, owner, move |r, now| r.lease_until_ms = now + lease)
            .await
    }

    async fn release_job(&self, job_id: &str, owner: &str) -> Result<(), StoreError> {
        self.update_held_job(job_id, owner, |r, _| r.lease_until_ms = 0)
            .await
    }

    async fn mark_chunk_sent(
        &self,
        job_id: &str,
        owner: &str,
        chunk: u32,
    ) -> Result<(), StoreError> {
        self.update_held_job(job_id, owner, move |r, _| {
            if let Err(at) = r.chunks_sent.binary_search(&chunk) {
                r.chunks_sent.insert(at, chunk);
            }
        })
        .await
    }

    async fn finish_job(
        &self,
        job_id: &str,
        owner: &str,
        status: JobStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        debug_assert!(status.is_finished(), "finish_job takes Done or Failed");
        let detail = capped_detail(detail);
        self.update_held_job(job_id, owner, move |r, _| {
            r.status = status;
            r.detail = detail;
            r.lease_until_ms = 0;
        })
        .await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let job_id = job_id.to_string();
        self.read(move |conn, _| load_job(conn, &job_id)).await
    }

    async fn allow_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<(), StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        self.write(move |tx, now| {
            tx.execute(
                "INSERT OR IGNORE INTO allowlist (channel, account, peer, added_ms) VALUES (?1, ?2, ?3, ?4)",
                params![c, a, p, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        self.write(move |tx, _| {
            let n = tx.execute(
                "DELETE FROM allowlist WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                params![c, a, p],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn is_allowed(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        self.read(move |conn, _| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM allowlist WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                    params![c, a, p],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    async fn list_allowed(&self, channel: &str, account: &str) -> Result<Vec<String>, StoreError> {
        let (c, a) = (channel.to_string(), account.to_string());
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT peer FROM allowlist WHERE channel = ?1 AND account = ?2 ORDER BY peer",
            )?;
            let rows = stmt.query_map(params![c, a], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn request_pairing(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
        peer_name: Option<&str>,
        ttl: Duration,
    ) -> Result<PairingRequest, StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        let name = peer_name.map(str::to_string);
        let ttl = duration_ms(ttl);
        self.write(move |tx, now| {
            tx.execute("DELETE FROM pairing WHERE expires_ms <= ?1", params![now])?;
            let pending = live_pairings(tx, &c, &a, now)?;
            if let Some(existing) = pending.iter().find(|r| r.peer == p) {
                return Ok(existing.clone());
            }
            if pending.len() >= MAX_PENDING_PAIRINGS {
                return Err(TxError::Store(StoreError::TooManyPending {
                    channel: c,
                    account: a,
                    limit: MAX_PENDING_PAIRINGS,
                }));
            }
            let request = PairingRequest {
                channel: c,
                account: a,
                code: new_pairing_code(),
                peer: p,
                peer_name: name,
                created_ms: now,
                expires_ms: now + ttl,
            };
            tx.execute(
                &format!(
                    "INSERT INTO pairing ({PAIRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    request.channel,
                    request.account,
                    request.code,
                    request.peer,
                    request.peer_name,
                    request.created_ms,
                    request.expires_ms
                ],
            )?;
            Ok(request)
        })
        .await
    }

    async fn list_pairing(
        &self,
        channel: &str,
        account: &str,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        let (c, a) = (channel.to_string(), account.to_string());
        self.read(move |conn, now| live_pairings(conn, &c, &a, now))
            .await
    }

    async fn approve_pairing(
        &self,
        channel: &str,
        account: &str,
        code: &str,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let (c, a, code) = (
            channel.to_string(),
            account.to_string(),
            normalize_code(code),
        );
        self.write(move |tx, now| {
            let request = tx
                .query_row(
                    &format!(
                        "SELECT {PAIRING_COLUMNS} FROM pairing
                         WHERE channel = ?1 AND account = ?2 AND code = ?3 AND expires_ms > ?4"
                    ),
                    params![c, a, code, now],
                    pairing_from_row,
                )
                .optional()?;
            let Some(request) = request else {
                return Ok(None);
            };
            tx.execute(
                "DELETE FROM pairing WHERE channel = ?1 AND account = ?2 AND code = ?3",
                params![c, a, code],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO allowlist (channel, account, peer, added_ms) VALUES (?1, ?2, ?3, ?4)",
                params![c, a, request.peer, now],
            )?;
            Ok(Some(request))
        })
        .await
    }
}
