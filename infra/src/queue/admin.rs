//! The operator's dead-letter tools on any queue: list what is there, put a job back on its
//! queue, or discard it (`clawgate dlq`, the Control UI, `clawgate doctor`'s fix). Built from
//! the queue contract alone (receive, send, ack, release), so every adapter has them and the
//! conformance suite proves them on each.
//!
//! Decisions:
//! - Listing receives and at once releases: a dead-letter queue has no consumer, so taking a
//!   message out of sight for a moment costs nothing. Its receive count goes up, which no one
//!   reads there.
//! - A redriven job is sent with a fresh deduplication id (`redrive:<message id>`): its
//!   original id may still be inside the dedup window, which would silently drop it.
//! - Finding one message takes a few receives; at most [`MAX_ROUNDS`] (about 4 s of empty
//!   polls, so a message another lister holds for a moment is still found), then "not
//!   found". The
//!   dead-letter queue is FIFO too: a session's later dead letter is only handed out once its
//!   earlier one is gone, so the list shows each session's oldest, and the operator handles
//!   them in order.

use std::time::Duration;

use super::{Delivery, JobQueue, QueueError};
use crate::model::JobMessage;

/// Receives made to find or list messages before giving up.
const MAX_ROUNDS: usize = 20;
const POLL: Duration = Duration::from_millis(200);

/// A dead-lettered message, as an operator sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    /// Why it was moved, when the mover said (else it ran out of receives).
    pub reason: Option<String>,
    pub receive_count: u32,
    /// The session and text, when the body is a job this build reads.
    pub session_key: Option<String>,
    pub text: Option<String>,
    pub job_id: Option<String>,
}

impl DeadLetter {
    fn from_delivery(d: &Delivery) -> DeadLetter {
        let job = JobMessage::decode(&d.body).ok();
        DeadLetter {
            message_id: d.message_id.clone(),
            reason: d.dead_letter_reason.clone(),
            receive_count: d.receive_count,
            session_key: job.as_ref().map(|j| j.session_key.to_string()),
            text: job
                .as_ref()
                .map(|j| j.inbound.text.chars().take(200).collect()),
            job_id: job.map(|j| j.job_id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("this queue has no dead-letter queue")]
    NoDeadLetterQueue,
    #[error("no message {0} in the dead-letter queue (or it waits behind an earlier dead letter of its session: handle that one first)")]
    NotFound(String),
}

/// Up to `max` dead letters, oldest first as the queue hands them out.
pub async fn list_dead_letters(
    queue: &dyn JobQueue,
    max: usize,
) -> Result<Vec<DeadLetter>, AdminError> {
    let dlq = queue.dead_letters().ok_or(AdminError::NoDeadLetterQueue)?;
    let mut held = Vec::new();
    let outcome = async {
        for _ in 0..MAX_ROUNDS {
            let want = max.saturating_sub(held.len()).min(super::MAX_RECEIVE_BATCH);
            if want == 0 {
                break;
            }
            let got = dlq.receive(want, POLL).await?;
            if got.is_empty() {
                break;
            }
            held.extend(got);
        }
        Ok::<_, QueueError>(())
    }
    .await;
    let listed = held.iter().map(DeadLetter::from_delivery).collect();
    release_all(&*dlq, &held).await;
    outcome?;
    Ok(listed)
}

/// Puts dead letter `message_id` back at the tail of its group on `queue`.
pub async fn redrive(queue: &dyn JobQueue, message_id: &str) -> Result<(), AdminError> {
    let dlq = queue.dead_letters().ok_or(AdminError::NoDeadLetterQueue)?;
    let found = take(&*dlq, message_id).await?;
    queue
        .send_raw(&found.body, &found.group, &format!("redrive:{message_id}"))
        .await?;
    dlq.ack(&found.receipt).await?;
    Ok(())
}

/// Deletes dead letter `message_id` for good.
pub async fn discard(queue: &dyn JobQueue, message_id: &str) -> Result<(), AdminError> {
    let dlq = queue.dead_letters().ok_or(AdminError::NoDeadLetterQueue)?;
    let found = take(&*dlq, message_id).await?;
    dlq.ack(&found.receipt).await?;
    Ok(())
}

/// Receives until `message_id` comes, releasing every other message on the way.
async fn take(dlq: &dyn JobQueue, message_id: &str) -> Result<Delivery, AdminError> {
    let mut others = Vec::new();
    let mut found = None;
    let outcome = async {
        for _ in 0..MAX_ROUNDS {
            // An empty receive is not the end: another lister (a page's refresh, `dlq list`)
            // may hold the message for a moment; it is back once released.
            let got = dlq.receive(super::MAX_RECEIVE_BATCH, POLL).await?;
            for d in got {
                if found.is_none() && d.message_id == message_id {
                    found = Some(d);
                } else {
                    others.push(d);
                }
            }
            if found.is_some() {
                break;
            }
        }
        Ok::<_, QueueError>(())
    }
    .await;
    release_all(dlq, &others).await;
    outcome?;
    found.ok_or_else(|| AdminError::NotFound(message_id.to_string()))
}

async fn release_all(dlq: &dyn JobQueue, held: &[Delivery]) {
    for d in held {
        if let Err(e) = dlq.release(&d.receipt).await {
            tracing::warn!(message_id = %d.message_id, error = %e, "could not release a dead letter; it is back when its visibility ends");
        }
    }
}
