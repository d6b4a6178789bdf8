//! Slack without a public URL: Socket Mode. With an app-level token (`xapp-…`) the gateway asks
//! `apps.connections.open` for a WebSocket URL, and Slack sends each event over it in an
//! envelope that must be acknowledged (`{"envelope_id"}`). Each event goes through the same
//! parser as an Events API request and into the same queue.
//!
//! Decisions:
//! - An envelope is acknowledged only once its event is queued (or found not to be one the
//!   gateway handles): a crash in between loses nothing, Slack redelivers, and the queue's dedup
//!   on the event id drops the repeat. A queue that refuses leaves it unacknowledged.
//! - `disconnect` (Slack refreshes connections every few hours), a closed socket or a failed
//!   open reconnects with backoff; nothing else ends the loop but the stop signal.
//! - The socket is authenticated by the app token, so there is no request signature to check.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use infra::channels::slack_events::{self, SlackApp};
use infra::config::Secret;
use infra::queue::JobQueue;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::transport::{next_backoff, queue_parsed};

/// Runs Socket Mode until `stop` turns true.
pub async fn run(
    http: reqwest::Client,
    api_base: String,
    app_token: Secret,
    slack: SlackApp,
    queue: Arc<dyn JobQueue>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let session = async {
            let url = open(&http, &api_base, &app_token).await?;
            let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| format!("connecting the socket: {e}"))?;
            serve(socket, &slack, queue.as_ref()).await
        };
        let ended = tokio::select! {
            ended = session => ended,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match ended {
            Ok(why) => {
                tracing::info!(%why, "slack socket closed; reconnecting");
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "slack socket mode failed; retrying");
                backoff = next_backoff(backoff);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// `apps.connections.open`: the WebSocket URL for one connection.
async fn open(http: &reqwest::Client, api_base: &str, token: &Secret) -> Result<String, String> {
    let answer: Value = http
        .post(format!(
            "{}/api/apps.connections.open",
            api_base.trim_end_matches('/')
        ))
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| format!("apps.connections.open: {}", e.without_url()))?
        .json()
        .await
        .map_err(|e| {
            format!(
                "apps.connections.open answered no JSON: {}",
                e.without_url()
            )
        })?;
    match (answer["ok"].as_bool(), answer["url"].as_str()) {
        (Some(true), Some(url)) => Ok(url.to_string()),
        _ => Err(format!(
            "apps.connections.open refused: {}",
            answer["error"].as_str().unwrap_or("no url")
        )),
    }
}

/// Serves one connection until Slack or the socket ends it; why it ended.
async fn serve<S>(
    mut socket: tokio_tungstenite::WebSocketStream<S>,
    slack: &SlackApp,
    queue: &dyn JobQueue,
) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = socket.next().await {
        let text = match message.map_err(|e| e.to_string())? {
            Message::Text(text) => text,
            Message::Close(_) => return Ok("closed by slack".into()),
            _ => continue,
        };
        let envelope: Value = match serde_json::from_str(text.as_str()) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "a socket message that is not JSON; skipped");
                continue;
            }
        };
        match envelope["type"].as_str() {
            Some("hello") => continue,
            Some("disconnect") => {
                return Ok(format!(
                    "disconnect ({})",
                    envelope["reason"].as_str().unwrap_or("no reason")
                ))
            }
            _ => {}
        }
        let Some(envelope_id) = envelope["envelope_id"].as_str() else {
            continue;
        };
        if handle(&envelope, slack, queue).await {
            let ack = json!({"envelope_id": envelope_id}).to_string();
            socket
                .send(Message::Text(ack.into()))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok("the socket ended".into())
}

/// Queues an envelope's event; whether to acknowledge it (false: Slack should send it again).
async fn handle(envelope: &Value, slack: &SlackApp, queue: &dyn JobQueue) -> bool {
    if envelope["type"].as_str() != Some("events_api") {
        // Slash commands and interactivity are not handled: acknowledged, not queued.
        return true;
    }
    let payload = envelope["payload"].to_string();
    let parsed = slack_events::parse_event(payload.as_bytes(), slack, Utc::now());
    match queue_parsed(queue, parsed, "socket mode").await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "enqueue failed; the envelope is left for Slack to send again");
            false
        }
    }
}
