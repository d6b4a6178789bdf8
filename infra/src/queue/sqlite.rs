//! `SqliteQueue`: the embedded job queue for one-machine mode, with SQS FIFO's semantics kept in
//! a SQLite file (visibility timeout, receive count, dedup window, per-group order, dead-letter).
//!
//! Decisions:
//! - A queue and its dead-letter queue are names in one table, so moving a message is one
//!   `UPDATE` and the dead-letter queue is read with the same API ([`SqliteQueue::dead_letter_queue`]).
//! - At most one message per group is in flight, and a receive hands out at most one per group.
//!   SQS may hand a consumer several of one group at once; one at a time is the stricter reading
//!   of the same guarantee, and what a worker running one job per session wants.
//! - Long polls wake at once on a send in this process and poll every 20 ms for other processes
//!   sharing the file.
//! - A receive scans messages in send order and stops after `max` candidates; a deep backlog in
//!   a blocked group is walked on every receive, which is fine at one machine's scale.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{
    Delivery, JobQueue, QueueDepth, QueueError, DEDUP_WINDOW, MAX_RECEIVE_BATCH, MAX_WAIT,
};
use crate::embedded::{now_ms, Db, EmbeddedError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_ms INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_by_queue ON queue_messages (queue, seq);
CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_by_receipt ON queue_messages (receipt);
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queue_dedup_by_expiry ON queue_dedup (expires_ms);
";

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const DEDUP_SWEEP_EVERY_MS: i64 = 10_000;

/// Where undeliverable messages go, and after how many receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPolicy {
    pub queue: String,
    pub max_receives: u32,
}

/// A named FIFO queue in a SQLite file.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    name: String,
    visibility: Duration,
    dead_letter: Option<DeadLetterPolicy>,
    last_sweep_ms: Arc<AtomicI64>,
}

impl From<EmbeddedError> for QueueError {
    fn from(e: EmbeddedError) -> Self {
        if e.retryable {
            QueueError::Unavailable {
                endpoint: e.path,
                message: e.message,
            }
        } else {
            QueueError::Embedded(e.to_string())
        }
    }
}

impl SqliteQueue {
    /// Opens queue `name` in the file at `path`, creating both as needed.
    pub fn open(
        path: &Path,
        name: &str,
        visibility: Duration,
        dead_letter: Option<DeadLetterPolicy>,
    ) -> Result<Self, QueueError> {
        static MIGRATIONS: std::sync::LazyLock<rusqlite_migration::Migrations<'static>> =
            std::sync::LazyLock::new(|| {
                rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(SCHEMA)])
            });
        let db = Db::open(path, &MIGRATIONS)?;
        Ok(SqliteQueue {
            db,
            name: name.to_string(),
            visibility,
            dead_letter,
            last_sweep_ms: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The dead-letter queue, on the same file and connection.
    pub fn dead_letter_queue(&self) -> Option<SqliteQueue> {
        let policy = self.dead_letter.as_ref()?;
        Some(SqliteQueue {
            db: self.db.clone(),
            name: policy.queue.clone(),
            visibility: self.visibility,
            dead_letter: None,
            last_sweep_ms: self.last_sweep_ms.clone(),
        })
    }

    /// One non-blocking receive: picks each group's visible head in send order, moves heads
    /// received too often to the dead-letter queue, and leases the rest.
    async fn try_receive(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let name = self.name.clone();
        let visibility_ms = self.visibility.as_millis() as i64;
        let dead_letter = self.dead_letter.clone();
        let (deliveries, moved) = self
            .db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                let mut picks = Vec::new();
                {
                    let mut stmt = tx.prepare_cached(
                        "SELECT seq, message_id, grp, body, visible_at_ms, receive_count, reason
                         FROM queue_messages WHERE queue = ?1 ORDER BY seq",
                    )?;
                    let mut rows = stmt.query(params![name])?;
                    let mut seen_groups = HashSet::new();
                    let mut delivering = 0;
                    while delivering < max {
                        let Some(row) = rows.next()? else { break };
                        let group: String = row.get(2)?;
                        // Only a group's head can go out; a head in flight blocks its group.
                        if !seen_groups.insert(group.clone()) || row.get::<_, i64>(4)? > now {
                            continue;
                        }
                        let receive_count: u32 = row.get(5)?;
                        if let Some(policy) = &dead_letter {
                            if receive_count >= policy.max_receives {
                                picks.push(Pick::DeadLetter { seq: row.get(0)? });
                                // The group's next message may go out in this same call.
                                seen_groups.remove(&group);
                                continue;
                            }
                        }
                        delivering += 1;
                        picks.push(Pick::Deliver {
                            seq: row.get(0)?,
                            delivery: Delivery {
                                message_id: row.get(1)?,
                                receipt: ulid::Ulid::new().to_string(),
                                receive_count: receive_count + 1,
                                group,
                                body: row.get(3)?,
                                dead_letter_reason: row.get(6)?,
                            },
                        });
                    }
                }
                let mut out = Vec::new();
                let mut moved = false;
                for pick in picks {
                    match pick {
                        Pick::DeadLetter { seq } => {
                            let policy = dead_letter.as_ref().expect("only picked with a policy");
                            let reason =
                                format!("received {} times (maxReceiveCount)", policy.max_receives);
                            tx.execute(
                                "UPDATE queue_messages SET queue = ?2, receipt = NULL,
                                    receive_count = 0, visible_at_ms = ?3, reason = ?4 WHERE seq = ?1",
                                params![seq, policy.queue, now, reason],
                            )?;
                            moved = true;
                        }
                        Pick::Deliver { seq, delivery } => {
                            tx.execute(
                                "UPDATE queue_messages SET receive_count = receive_count + 1,
                                    receipt = ?2, visible_at_ms = ?3 WHERE seq = ?1",
                                params![seq, delivery.receipt, now + visibility_ms],
                            )?;
                            out.push(delivery);
                        }
                    }
                }
                tx.commit()?;
                Ok((out, moved))
            })
            .await?;
        if moved {
            self.db.changed.notify_waiters();
        }
        Ok(deliveries)
    }
}

/// What a receive does with one group head.
enum Pick {
    Deliver { seq: i64, delivery: Delivery },
    DeadLetter { seq: i64 },
}

#[async_trait]
impl JobQueue for SqliteQueue {
    async fn send_raw(
        &self,
        body: &str,
        group: &str,
        dedup_id: &str,
    ) -> Result<String, QueueError> {
        let name = self.name.clone();
        let (body, group, dedup_id) = (body.to_string(), group.to_string(), dedup_id.to_string());
        let now = now_ms();
        let sweep = now - self.last_sweep_ms.load(Ordering::Relaxed) > DEDUP_SWEEP_EVERY_MS;
        if sweep {
            self.last_sweep_ms.store(now, Ordering::Relaxed);
        }
        let message_id = self
            .db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if sweep {
                    tx.execute("DELETE FROM queue_dedup WHERE expires_ms <= ?1", params![now])?;
                }
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT message_id FROM queue_dedup
                         WHERE queue = ?1 AND dedup_id = ?2 AND expires_ms > ?3",
                        params![name, dedup_id, now],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = existing {
                    return Ok(id);
                }
                let id = ulid::Ulid::new().to_string();
                tx.execute(
                    "INSERT INTO queue_messages (queue, message_id, grp, body, sent_ms, visible_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![name, id, group, body, now],
                )?;
                tx.execute(
                    "INSERT OR REPLACE INTO queue_dedup (queue, dedup_id, message_id, expires_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![name, dedup_id, id, now + DEDUP_WINDOW.as_millis() as i64],
                )?;
                tx.commit()?;
                Ok(id)
            })
            .await?;
        self.db.changed.notify_waiters();
        Ok(message_id)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let max = max.clamp(1, MAX_RECEIVE_BATCH);
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            // Register for wake-ups before looking, so a send between the look and the wait
            // is not missed.
            let notified = self.db.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.try_receive(max).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let nap = POLL_INTERVAL.min(deadline - now);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        let (name, receipt) = (self.name.clone(), receipt.to_string());
        let until = now_ms() + visibility.as_millis() as i64;
        let changed = self
            .db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue_messages SET visible_at_ms = ?3 WHERE queue = ?1 AND receipt = ?2",
                    params![name, receipt, until],
                )
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::ReceiptInvalid);
        }
        if visibility.is_zero() {
            self.db.changed.notify_waiters();
        }
        Ok(())
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let (name, receipt) = (self.name.clone(), receipt.to_string());
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2",
                    params![name, receipt],
                )
            })
            .await?;
        // Acking unblocks the group's next message.
        self.db.changed.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let Some(policy) = self.dead_letter.clone() else {
            return Err(QueueError::NoDeadLetterQueue {
                queue: self.name.clone(),
            });
        };
        let name = self.name.clone();
        let receipt = delivery.receipt.clone();
        let reason = reason.to_string();
        let changed = self
            .db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue_messages SET queue = ?3, receipt = NULL, receive_count = 0,
                        visible_at_ms = ?4, reason = ?5 WHERE queue = ?1 AND receipt = ?2",
                    params![name, receipt, policy.queue, now_ms(), reason],
                )
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::ReceiptInvalid);
        }
        self.db.changed.notify_waiters();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("sqlite {} queue {}", self.db.path().display(), self.name)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let name = self.name.clone();
        let now = now_ms();
        let (waiting, in_flight) = self
            .db
            .call(move |conn| {
                conn.query_row(
                    "SELECT COALESCE(SUM(visible_at_ms <= ?2), 0), COALESCE(SUM(visible_at_ms > ?2), 0)
                     FROM queue_messages WHERE queue = ?1",
                    params![name, now],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
                )
            })
            .await?;
        Ok(QueueDepth {
            waiting: waiting.max(0) as u64,
            in_flight: in_flight.max(0) as u64,
        })
    }

    fn dead_letters(&self) -> Option<Box<dyn JobQueue>> {
        self.dead_letter_queue()
            .map(|q| Box::new(q) as Box<dyn JobQueue>)
    }
}
