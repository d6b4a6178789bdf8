//! [`JobLedger`] on SQLite: job records with leases, and dedup markers.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{corrupt, SqliteStore, TxError};
use crate::model::{JobRecord, JobStatus, SessionKey, Tokens};
use crate::store::{
    capped_detail, claim_decision, duration_ms, Claim, ClaimDecision, JobLedger, StoreError,
    STOP_TTL,
};

impl SqliteStore {
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
            now + duration_ms(crate::store::JOB_RECORD_TTL)
        ],
    )?;
    Ok(())
}

#[async_trait]
impl JobLedger for SqliteStore {
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
                            usage: None,
                            preview: None,
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
        usage: Option<Tokens>,
    ) -> Result<(), StoreError> {
        debug_assert!(status.is_finished(), "finish_job takes Done or Failed");
        let detail = capped_detail(detail);
        self.update_held_job(job_id, owner, move |r, _| {
            r.status = status;
            r.detail = detail;
            r.usage = usage;
            r.lease_until_ms = 0;
        })
        .await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let job_id = job_id.to_string();
        self.read(move |conn, _| load_job(conn, &job_id)).await
    }

    async fn set_preview(
        &self,
        job_id: &str,
        owner: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let message_id = message_id.to_string();
        self.update_held_job(job_id, owner, move |r, _| r.preview = Some(message_id))
            .await
    }

    async fn request_stop(&self, session: &SessionKey, at_ms: i64) -> Result<(), StoreError> {
        let session = session.to_string();
        self.write(move |tx, now| {
            tx.execute(
                "INSERT INTO stops (session, at_ms, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (session) DO UPDATE SET at_ms = ?2, expires_ms = ?3
                 WHERE stops.at_ms < ?2 OR stops.expires_ms <= ?4",
                params![session, at_ms, now + duration_ms(STOP_TTL), now],
            )?;
            Ok(())
        })
        .await
    }

    async fn stop_requested(&self, session: &SessionKey) -> Result<Option<i64>, StoreError> {
        let session = session.to_string();
        self.read(move |conn, now| {
            Ok(conn
                .query_row(
                    "SELECT at_ms FROM stops WHERE session = ?1 AND expires_ms > ?2",
                    params![session, now],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }
}
