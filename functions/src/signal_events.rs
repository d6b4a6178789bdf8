//! Signal's inbound side: the `signal-cli` daemon's server-sent event stream
//! (`GET /api/v1/events`, read with `eventsource-stream`), each `receive` event through
//! [`SignalApp::parse_event`] into the queue, for `clawgate up` and `clawgate worker --ingress`.
//!
//! Decisions:
//! - The stream has no acknowledgement and no replay: signal-cli has already taken the message
//!   from Signal's servers when it sends the event. So an event is held until it is queued (a
//!   failing queue is retried with backoff, the stream waiting meanwhile); what is lost is only
//!   an event the process received and died before queueing, which the Signal protocol cannot
//!   give back. Documented as the channel's limit.
//! - A dropped stream or a daemon that is down is reconnected with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use infra::channels::signal::SignalApp;
use infra::queue::JobQueue;
use tokio::sync::watch;

use crate::transport::{next_backoff, queue_parsed, sleep_or_stop};

/// Reads the daemon's events until `stop` turns true.
pub async fn run(
    http: reqwest::Client,
    base_url: String,
    app: SignalApp,
    queue: Arc<dyn JobQueue>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut inner = stop.clone();
        let ended = tokio::select! {
            ended = serve(&http, &base_url, &app, queue.as_ref(), &mut inner) => ended,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match ended {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "signal-cli event stream failed; reconnecting");
                backoff = next_backoff(backoff);
            }
        }
        if sleep_or_stop(&mut stop, backoff).await {
            return;
        }
    }
}

/// One connection: every event queued before the next is read. `Ok` when the stream ended.
async fn serve(
    http: &reqwest::Client,
    base_url: &str,
    app: &SignalApp,
    queue: &dyn JobQueue,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let response = http
        .get(format!("{base_url}/api/v1/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "GET /api/v1/events: HTTP {}",
            response.status().as_u16()
        ));
    }
    tracing::info!("signal-cli event stream open");
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        if !matches!(event.event.as_str(), "receive" | "message" | "") {
            continue;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            let parsed = app.parse_event(event.data.as_bytes(), Utc::now());
            match queue_parsed(queue, parsed, "signal").await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "enqueue failed; holding the Signal event and retrying");
                    if sleep_or_stop(stop, backoff).await {
                        return Ok(());
                    }
                    backoff = next_backoff(backoff);
                }
            }
        }
    }
    Ok(())
}
