//! The job queue port: a FIFO queue of agent jobs, grouped by session, deduplicated by channel
//! event, with visibility timeouts, redelivery and a dead-letter queue (docs/architecture.md §2, §3).
//!
//! Two adapters keep the same contract, proven by `tests/queue_conformance.rs`:
//! [`sqs::SqsQueue`] (SQS FIFO) and [`sqlite::SqliteQueue`] (an embedded file).

pub mod admin;
pub mod sqlite;
pub mod sqs;

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::model::{JobDecodeError, JobMessage, SessionKey};

/// SQS's cap on one receive, which both adapters keep.
pub const MAX_RECEIVE_BATCH: usize = 10;
/// SQS's cap on a long poll, which both adapters keep.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS FIFO's deduplication window, which both adapters keep.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// One received message. The receipt is what `extend`, `release` and `ack` take; it is only
/// good until the message's visibility runs out and it is received again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    pub receipt: String,
    /// How many times this message has been received, this time included (1 the first time).
    pub receive_count: u32,
    /// The FIFO group (a token derived from the session key).
    pub group: String,
    pub body: String,
    /// Set on messages in a dead-letter queue that were moved there with a reason.
    pub dead_letter_reason: Option<String>,
}

/// How many messages a queue holds (approximate on SQS, exact on SQLite).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    /// Visible: waiting for a worker (or, on a dead-letter queue, for an operator).
    pub waiting: u64,
    /// Received and not yet acked or released.
    pub in_flight: u64,
}

/// A delivery whose body decoded as a job this build can run.
#[derive(Debug, Clone)]
pub struct JobDelivery {
    pub delivery: Delivery,
    pub job: JobMessage,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unreachable at {endpoint}: {message}")]
    Unavailable { endpoint: String, message: String },
    #[error("queue at {endpoint} asked us to slow down ({code}): {message}")]
    Throttled {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("the receipt is no longer valid: the message was acked, or its visibility ran out")]
    ReceiptInvalid,
    #[error("job refused: {0}")]
    Rejected(#[from] JobDecodeError),
    #[error("queue {queue} has no dead-letter queue configured")]
    NoDeadLetterQueue { queue: String },
    #[error("queue at {endpoint} refused the request ({code}): {message}")]
    Refused {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("embedded queue failed: {0}")]
    Embedded(String),
}

impl QueueError {
    /// True when the same call may succeed later (network, throttling, a busy database file).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Unavailable { .. } | QueueError::Throttled { .. }
        )
    }
}

/// A FIFO job queue.
///
/// Contract (each point is a case in the conformance suite):
/// - `send_raw` enqueues `body` at the tail of FIFO group `group`. A second send with the same
///   `dedup_id` within [`DEDUP_WINDOW`] succeeds and delivers nothing new.
/// - `receive` returns up to `max` (≤ [`MAX_RECEIVE_BATCH`]) messages, waiting up to `wait`
///   (≤ [`MAX_WAIT`]) and returning as soon as one is available. Within a group, messages come
///   in send order. One receive may return several messages of one group, in that order (SQS
///   FIFO does; the embedded queue returns one), but no message of a group is handed out while
///   a message of that group from an earlier receive is in flight; different groups are
///   independent. A consumer runs the messages of one group one at a time, in the order
///   received (the worker's lanes). A received message is invisible for the queue's visibility
///   timeout and then comes back with `receive_count` one higher.
/// - With a dead-letter queue configured, a message already received `max_receives` times is
///   moved there instead of being delivered again.
/// - `extend` sets a message's remaining invisibility to `visibility` from now (a heartbeat);
///   `release` makes it visible at once; both fail with `ReceiptInvalid` on a stale receipt.
/// - `ack` deletes the message; acking an already-deleted message is not an error.
/// - `dead_letter` moves the message to the dead-letter queue now, with a reason.
/// - `depth` counts the messages waiting and in flight; `dead_letters` is the dead-letter
///   queue as a queue of its own (what the operator's redrive and discard receive from), or
///   `None` when there is none.
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn send_raw(&self, body: &str, group: &str, dedup_id: &str)
        -> Result<String, QueueError>;
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError>;
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError>;
    /// Where this queue lives, for logs: `sqs <url>` or `sqlite <file> <name>`.
    fn describe(&self) -> String;
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
    fn dead_letters(&self) -> Option<Box<dyn JobQueue>>;

    async fn release(&self, receipt: &str) -> Result<(), QueueError> {
        self.extend(receipt, Duration::ZERO).await
    }
}

/// Job-level operations on any queue: encoding, FIFO tokens, and poison handling.
#[async_trait]
pub trait JobQueueExt: JobQueue {
    /// Enqueues a job: group = its session key (a `/stop`'s own lane beside it), dedup id =
    /// its channel event id.
    async fn send(&self, job: &JobMessage) -> Result<String, QueueError> {
        let body = job.encode()?;
        let group = if job.is_stop() {
            fifo_token(&format!("{}#stop", job.session_key))
        } else {
            group_token(&job.session_key)
        };
        self.send_raw(&body, &group, &fifo_token(job.dedup_id()))
            .await
    }

    /// Receives and decodes jobs. A body that is not a job this build can run (malformed JSON,
    /// an unknown version) is logged with its reason and dead-lettered, never returned and
    /// never retried: the same bytes would fail the same way on every worker.
    async fn receive_jobs(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<JobDelivery>, QueueError> {
        let mut jobs = Vec::new();
        for delivery in self.receive(max, wait).await? {
            match JobMessage::decode(&delivery.body) {
                Ok(job) => jobs.push(JobDelivery { delivery, job }),
                Err(reason) => {
                    let reason = reason.to_string();
                    tracing::warn!(
                        message_id = %delivery.message_id,
                        queue = %self.describe(),
                        %reason,
                        "dead-lettering a job message that cannot be decoded"
                    );
                    self.dead_letter(&delivery, &reason).await?;
                }
            }
        }
        Ok(jobs)
    }
}

impl<Q: JobQueue + ?Sized> JobQueueExt for Q {}

/// The FIFO group for a session: its key, made safe for SQS.
pub fn group_token(key: &SessionKey) -> String {
    fifo_token(&key.to_string())
}

/// Makes a string usable as an SQS `MessageGroupId` / `MessageDeduplicationId` (1–128 chars of
/// ASCII letters, digits and punctuation). Valid strings pass unchanged, so ids stay readable
/// in the console; anything else becomes a readable prefix plus a SHA-256, so distinct inputs
/// stay distinct.
pub fn fifo_token(raw: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation();
    if !raw.is_empty() && raw.len() <= 128 && raw.chars().all(valid) {
        return raw.to_string();
    }
    let digest = Sha256::digest(raw.as_bytes());
    let hex = hex::encode(digest);
    let prefix: String = raw.chars().filter(|c| valid(*c)).take(60).collect();
    format!("{prefix}~{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_fifo_tokens_pass_unchanged() {
        assert_eq!(
            fifo_token("agent:main:telegram:dm:12345"),
            "agent:main:telegram:dm:12345"
        );
    }

    #[test]
    fn long_or_exotic_fifo_tokens_are_hashed_and_stay_distinct() {
        let a = fifo_token(&"x".repeat(200));
        let b = fifo_token(&format!("{}y", "x".repeat(199)));
        assert!(a.len() <= 128 && b.len() <= 128);
        assert_ne!(a, b);
        let spaced = fifo_token("slack event with spaces é");
        assert!(spaced.chars().all(|c| c.is_ascii_graphic()));
        assert!(spaced.len() <= 128);
        assert_ne!(fifo_token(""), "");
    }
}
