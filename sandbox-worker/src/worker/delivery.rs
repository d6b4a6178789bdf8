//! The reply: posted to the job's chat chunk by chunk (the first one edited into the job's
//! preview when it has one), each chunk marked sent on the job record so a resumed job never
//! posts it twice; on WebChat, stored as a `Delivered` entry the
//! page reads. The lease is checked before each chunk: a worker that lost it posts nothing.

use infra::model::{EntryBody, JobMessage, JobRecord, ReplyTarget};
use tracing::Instrument;

use super::job::JobError;
use super::live::{Preview, Watch};
use super::{work_id, Worker};
use crate::agent::Lease;
use crate::phase;

impl Worker {
    /// Posts the reply chunk by chunk, skipping chunks an earlier attempt already sent.
    pub(super) async fn deliver(
        &self,
        job: &JobMessage,
        record: &JobRecord,
        preview: &Preview,
        lease: &Lease,
        text: &str,
    ) -> Result<(), JobError> {
        let Some(target) = &job.reply_to else {
            // A sub-agent's answer (or its failure) goes back to the session that spawned it.
            if let Some(announce) = crate::tools::spawn::announcement(job, text) {
                lease.check()?;
                use infra::queue::JobQueueExt;
                self.backends
                    .queue
                    .send(&announce)
                    .instrument(phase::span("queue"))
                    .await
                    .map_err(|e| JobError::Retry(format!("announcing the sub-agent: {e}")))?;
            }
            return Ok(());
        };
        if let ReplyTarget::Webchat(_) = target {
            return self.deliver_to_webchat(job, record, lease, text).await;
        }
        let store = &self.backends.store;
        for (i, chunk) in self
            .outbound
            .chunks(&job.inbound.account, target, text)
            .iter()
            .enumerate()
        {
            let index = i as u32;
            if record.chunks_sent.contains(&index) {
                continue;
            }
            lease.check()?;
            let watch = Watch {
                worker: self,
                job,
                lease,
                preview,
            };
            // The first chunk replaces the preview when there is one.
            let shown = index == 0 && preview.finish(&watch, chunk).await;
            if !shown {
                self.outbound
                    .post(&job.inbound.account, target, chunk)
                    .instrument(phase::span("reply"))
                    .await?;
            }
            store
                .mark_chunk_sent(work_id(job), &self.settings.worker_id, index)
                .instrument(phase::span("store"))
                .await?;
        }
        Ok(())
    }

    /// WebChat has nothing to post to: the reply becomes a `Delivered` transcript entry, which
    /// the page reads (`GET /webchat/history`). One chunk, marked like any channel's.
    async fn deliver_to_webchat(
        &self,
        job: &JobMessage,
        record: &JobRecord,
        lease: &Lease,
        text: &str,
    ) -> Result<(), JobError> {
        if record.chunks_sent.contains(&0) {
            return Ok(());
        }
        lease.check()?;
        let store = &self.backends.store;
        let key = &job.session_key;
        let next_seq = store
            .get_session(key)
            .instrument(phase::span("store"))
            .await?
            .map_or(0, |s| s.next_seq);
        let entry = infra::model::TranscriptEntry {
            seq: next_seq,
            at: chrono::Utc::now(),
            job_id: Some(job.job_id.clone()),
            body: EntryBody::Delivered {
                text: text.to_string(),
            },
        };
        store
            .append_transcript(key, &job.agent_id, &entry)
            .instrument(phase::span("store"))
            .await?;
        store
            .mark_chunk_sent(work_id(job), &self.settings.worker_id, 0)
            .instrument(phase::span("store"))
            .await?;
        Ok(())
    }
}
