//! What the ingress transports that hold a connection share (Telegram long polling, Slack
//! Socket Mode, the Discord Gateway): queue what the channel's parser made, and say whether the
//! event may be acknowledged; back off and stop on request.
//!
//! The rule every transport keeps: acknowledge (confirm the offset, `ack` the envelope) only
//! once the event is queued or found to be one the gateway does not take. A crash in between
//! loses nothing; the channel sends the event again and the queue's dedup drops the repeat.

use std::time::Duration;

use infra::channels::{Parsed, WebhookError};
use infra::queue::{JobQueue, JobQueueExt, QueueError};
use tokio::sync::watch;

/// The longest pause between reconnects or retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Queues what an event became. `Ok` when it may be acknowledged (queued, ignored, or
/// unparseable or too large to queue: those would fail the same way forever, so they are
/// logged and passed); `Err` when the queue failed and the event must stay unacknowledged.
pub async fn queue_parsed(
    queue: &dyn JobQueue,
    parsed: Result<Parsed, WebhookError>,
    via: &'static str,
) -> Result<(), QueueError> {
    match parsed {
        Ok(Parsed::Queue { jobs, .. }) => {
            for job in &jobs {
                match queue.send(job).await {
                    Ok(_) => {
                        tracing::info!(job = %job.job_id, session = %job.session_key, event = %job.inbound.event_id, via, "queued")
                    }
                    // Too large for any queue: it would be refused the same way forever.
                    Err(QueueError::Rejected(e)) => {
                        tracing::warn!(error = %e, event = %job.inbound.event_id, via, "refused by the queue; acknowledged and skipped")
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Parsed::Ignored(why)) => tracing::debug!(why, via, "ignored"),
        Ok(Parsed::Answer(_)) => {}
        Err(e) => tracing::warn!(error = %e, via, "unparseable event; acknowledged and skipped"),
    }
    Ok(())
}

/// Sleeps `pause`, or returns true early when asked to stop.
pub async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stop.wait_for(|stopped| *stopped) => true,
    }
}

/// The next backoff: doubled, at most [`MAX_BACKOFF`].
pub fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}
