//! `messages.queue.mode: collect`: messages that arrived while a run of their session was going
//! are answered together, in one turn after it.
//!
//! How, with a FIFO queue and no peeking into it: a message whose session wrote anything after
//! the message arrived (so a run was going when it came) is added to the transcript and not
//! answered; its job queues a *collected turn* behind it in the session's lane. Messages that
//! came with it are queued before that turn, so they too are in the transcript when it runs;
//! the first such turn answers them all, and a later one finds nothing new and ends quietly.
//! Every step is idempotent: a retried message is not added twice, a second collected turn for
//! the same message is the queue's duplicate (or finds nothing to answer).
//!
//! Images that came with a collected message are announced by path (saved in the workspace)
//! but not shown to the model as image blocks: the collected turn carries no files.

use infra::config::QueueMode;
use infra::model::{Channel, EntryBody, JobMessage, Transcript};
use infra::queue::JobQueueExt;

use super::job::JobError;
use super::Worker;

impl Worker {
    /// Whether `job`'s message is collected for a later turn rather than answered now.
    pub(super) fn collects(&self, job: &JobMessage, transcript: &Transcript) -> bool {
        if self.config.messages.queue.mode != QueueMode::Collect
            || job.collected
            || job.heartbeat.is_some()
            || job.origin.is_some()
            || job.inbound.channel == Channel::Hook
        {
            return false;
        }
        let arrived = job.inbound.received_at;
        transcript
            .entries
            .iter()
            .any(|e| e.job_id.as_deref() != Some(&job.job_id) && e.at > arrived)
    }

    /// Queues the turn that answers `job`'s message with the others collected beside it.
    pub(super) async fn queue_collected_turn(&self, job: &JobMessage) -> Result<(), JobError> {
        let mut turn = JobMessage::new(
            job.session_key.clone(),
            &job.agent_id,
            job.inbound.clone(),
            job.reply_to.clone(),
        );
        turn.inbound.event_id = format!("{}:collected", job.inbound.event_id);
        turn.inbound.text.clear();
        turn.inbound.media.clear();
        turn.collected = true;
        turn.trace_id = job.trace_id.clone();
        self.backends
            .queue
            .send(&turn)
            .await
            .map_err(|e| JobError::Retry(format!("could not queue the collected turn: {e}")))?;
        tracing::info!(job = %job.job_id, turn = %turn.job_id, "collected; answered with the messages beside it");
        Ok(())
    }
}

/// Whether the session's last word is already an answer: a collected turn has nothing to do.
pub(super) fn nothing_to_answer(transcript: &Transcript) -> bool {
    let last = transcript
        .entries
        .iter()
        .rev()
        .find(|e| !matches!(e.body, EntryBody::Delivered { .. } | EntryBody::Options(_)));
    !matches!(last.map(|e| &e.body), Some(EntryBody::User { .. }))
}
