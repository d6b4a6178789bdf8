//! [`CronStore`] on SQLite: one row per job, its JSON beside the next run the due query reads.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{corrupt, SqliteStore, TxError};
use crate::model::{CronJob, CronRun};
use crate::store::{CronStore, StoreError};

fn decode(body: String) -> Result<CronJob, TxError> {
    serde_json::from_str(&body).map_err(corrupt)
}

fn encode(job: &CronJob) -> Result<String, StoreError> {
    serde_json::to_string(job).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl CronStore for SqliteStore {
    async fn put_cron(&self, job: &CronJob) -> Result<(), StoreError> {
        let (id, next, enabled, body) = (
            job.id.clone(),
            job.next_run.map(|t| t.timestamp_millis()),
            job.enabled,
            encode(job)?,
        );
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO cron (id, next_run_ms, enabled, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET next_run_ms = ?2, enabled = ?3, body = ?4",
                params![id, next, enabled, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_cron(&self, id: &str) -> Result<Option<CronJob>, StoreError> {
        let id = id.to_string();
        self.read(move |conn, _| {
            conn.query_row("SELECT body FROM cron WHERE id = ?1", params![id], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map(decode)
            .transpose()
        })
        .await
    }

    async fn list_cron(&self) -> Result<Vec<CronJob>, StoreError> {
        self.read(|conn, _| {
            let mut stmt = conn.prepare_cached("SELECT body FROM cron ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut jobs = Vec::new();
            for body in rows {
                jobs.push(decode(body?)?);
            }
            Ok(jobs)
        })
        .await
    }

    async fn remove_cron(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |tx, _| Ok(tx.execute("DELETE FROM cron WHERE id = ?1", params![id])? == 1))
            .await
    }

    async fn due_cron(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<CronJob>, StoreError> {
        let (now, limit) = (now.timestamp_millis(), limit as i64);
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM cron WHERE next_run_ms IS NOT NULL AND enabled = 1 AND next_run_ms <= ?1
                 ORDER BY next_run_ms, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit], |r| r.get::<_, String>(0))?;
            let mut jobs = Vec::new();
            for body in rows {
                jobs.push(decode(body?)?);
            }
            Ok(jobs)
        })
        .await
    }

    async fn advance_cron(
        &self,
        id: &str,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        run: &CronRun,
    ) -> Result<bool, StoreError> {
        let (id, run) = (id.to_string(), run.clone());
        self.write(move |tx, _| {
            let Some(body) = tx
                .query_row(
                    "SELECT body FROM cron WHERE id = ?1 AND next_run_ms = ?2",
                    params![id, expected.timestamp_millis()],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
            else {
                return Ok(false);
            };
            let mut job = decode(body)?;
            job.next_run = next;
            job.last_run = Some(run);
            let body = encode(&job).map_err(TxError::Store)?;
            tx.execute(
                "UPDATE cron SET next_run_ms = ?2, body = ?3 WHERE id = ?1",
                params![id, next.map(|t| t.timestamp_millis()), body],
            )?;
            Ok(true)
        })
        .await
    }
}
