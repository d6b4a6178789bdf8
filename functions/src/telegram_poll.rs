//! Telegram without a public URL: `getUpdates` long polling for a bot that has no webhook
//! (`clawgate up` on a machine nobody can reach). Each update goes through the same parser as a
//! webhook's and into the same queue.
//!
//! Decisions:
//! - The next offset (which confirms every earlier update to Telegram) is asked for only once
//!   the updates before it are queued: a crash in between loses nothing, and the update that
//!   comes again is dropped by the queue's dedup on its event id (`telegram:<account>:<id>`).
//! - Never both polling and a webhook: at start the bot's webhook is read, and polling refuses
//!   to run while one is set (Telegram would refuse `getUpdates` anyway) and says how to remove
//!   it (`clawgate telegram delete-webhook`); deleting it is never implicit.
//! - A queue that refuses is retried with backoff without moving the offset; an update the
//!   parser refuses is logged and passed (it would fail the same way forever).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use infra::channels::telegram::TelegramClient;
use infra::channels::telegram_webhook::{self, TelegramBot};
use infra::queue::JobQueue;
use tokio::sync::watch;

use crate::transport::{next_backoff, queue_parsed, sleep_or_stop};

/// How long one `getUpdates` waits for an update.
pub const LONG_POLL_SECONDS: u64 = 25;

/// Why polling did not start.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the bot has a webhook set ({0}); long polling would compete with it. Remove it with `clawgate telegram delete-webhook`, or give this bot a webhookSecret and serve the webhook")]
    WebhookSet(String),
    #[error("getWebhookInfo failed: {0}")]
    Telegram(String),
}

/// Checks that no webhook is set; the poll loop is [`run`].
pub async fn check_no_webhook(client: &TelegramClient) -> Result<(), PollError> {
    let info = client
        .get_webhook_info()
        .await
        .map_err(|e| PollError::Telegram(e.to_string()))?;
    match info["url"].as_str() {
        Some(url) if !url.is_empty() => Err(PollError::WebhookSet(url.to_string())),
        _ => Ok(()),
    }
}

/// Polls until `stop` turns true: each update parsed as `bot`'s and queued, then confirmed.
pub async fn run(
    client: TelegramClient,
    bot: TelegramBot,
    queue: Arc<dyn JobQueue>,
    mut stop: watch::Receiver<bool>,
) {
    let account = bot.account.account.clone();
    let mut offset: i64 = 0;
    let mut backoff = Duration::from_secs(1);
    loop {
        let polled = tokio::select! {
            polled = client.get_updates(offset, LONG_POLL_SECONDS, telegram_webhook::ALLOWED_UPDATES) => polled,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let updates = match polled {
            Ok(updates) => {
                backoff = Duration::from_secs(1);
                updates
            }
            Err(e) => {
                tracing::warn!(%account, error = %e, ?backoff, "telegram getUpdates failed; retrying");
                if sleep_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = next_backoff(backoff);
                continue;
            }
        };
        for update in updates {
            let Some(id) = update["update_id"].as_i64() else {
                tracing::warn!(%account, "an update without update_id; skipped");
                continue;
            };
            if id < offset {
                continue;
            }
            let body = update.to_string();
            let parsed = telegram_webhook::parse_update(body.as_bytes(), &bot, Utc::now());
            while let Err(e) = queue_parsed(queue.as_ref(), parsed.clone(), "long polling").await {
                tracing::error!(%account, error = %e, "enqueue failed; the update stays unconfirmed and is retried");
                if sleep_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = next_backoff(backoff);
            }
            offset = id + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::{Json, Router};
    use infra::config::Secret;
    use serde_json::json;

    /// A Bot API whose bot has a webhook set.
    async fn api_with_webhook() -> String {
        let app = Router::new().route(
            "/{bot}/getWebhookInfo",
            post(|| async {
                Json(json!({"ok": true, "result": {"url": "https://example.com/telegram", "pending_update_count": 3}}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn polling_refuses_to_start_while_a_webhook_is_set_and_says_how_to_remove_it() {
        let base = api_with_webhook().await;
        let client = TelegramClient::new(reqwest::Client::new(), &base, Secret::new("1:T"));

        let refused = check_no_webhook(&client).await;

        let message = refused.expect_err("a webhook is set").to_string();
        assert!(
            message.contains("https://example.com/telegram"),
            "{message}"
        );
        assert!(
            message.contains("clawgate telegram delete-webhook"),
            "{message}"
        );
    }
}
