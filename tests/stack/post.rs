//! How each platform posts to the stack: signed with its secret, in its wire format.

use serde_json::{json, Value};

use super::*;

/// The key the stack's Discord application signs interactions with (its public half is the
/// config's `publicKey`).
pub fn discord_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// A WhatsApp text message from `wa_id`, as the Cloud API notifies it.
pub fn whatsapp_text(wa_id: &str, wamid: &str, text: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_PHONE_ID},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": chrono::Utc::now().timestamp().to_string(),
                "type": "text", "text": {"body": text}}]}}]}]})
}

impl Stack {
    /// A Telegram update as Telegram posts it.
    pub async fn post_telegram(&self, update: &Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/telegram", self.base_url))
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A Slack event, signed now, as Slack posts it.
    pub async fn post_slack(&self, event: &Value) -> reqwest::StatusCode {
        let body = serde_json::to_vec(event).unwrap();
        let now = chrono::Utc::now().timestamp();
        self.http
            .post(format!("{}/slack/events", self.base_url))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", now.to_string())
            .header(
                "x-slack-signature",
                infra::channels::slack_events::sign(SLACK_SECRET, now, &body),
            )
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A WhatsApp notification, signed with the app secret, as Meta posts it. Each message's
    /// sender has written, so the fake opens their customer-service window.
    pub async fn post_whatsapp(&self, notification: &Value) -> reqwest::StatusCode {
        for change in notification["entry"][0]["changes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for message in change["value"]["messages"].as_array().into_iter().flatten() {
                if let Some(from) = message["from"].as_str() {
                    self.fakes.whatsapp_customer_wrote(from);
                }
            }
        }
        let body = serde_json::to_vec(notification).unwrap();
        self.http
            .post(format!("{}/whatsapp", self.base_url))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                infra::channels::whatsapp_webhook::sign(WA_SECRET, &body),
            )
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A Discord interaction, signed now with the application's key, as Discord posts it. The
    /// fake is told first that it was deferred (Discord records that when it gets the `{"type":
    /// 5}` this answers), so the worker's answer finds its "thinking…" original.
    pub async fn post_discord(&self, interaction: &Value) -> reqwest::Response {
        use ed25519_dalek::Signer;
        if let Some(token) = interaction["token"].as_str() {
            self.fakes.discord_deferred(token);
        }
        let body = serde_json::to_vec(interaction).unwrap();
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(&body);
        let signature = hex::encode(discord_key().sign(&message).to_bytes());
        self.http
            .post(format!("{}/discord/interactions", self.base_url))
            .header("content-type", "application/json")
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", timestamp)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A Zalo OA event, signed as Zalo signs it. A `user_send_text` opens its sender's
    /// interaction window at the fake.
    pub async fn post_zalo(&self, event: &Value) -> reqwest::StatusCode {
        if let Some(user) = event["sender"]["id"].as_str() {
            self.fakes.zalo_user_wrote(user);
        }
        let body = serde_json::to_vec(event).unwrap();
        let timestamp = event["timestamp"].as_str().unwrap_or("").to_string();
        let signature = infra::channels::zalo::sign(ZALO_APP, &body, &timestamp, ZALO_SECRET);
        self.http
            .post(format!("{}/zalo", self.base_url))
            .header("content-type", "application/json")
            .header("x-zevent-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A BlueBubbles webhook event, with the server password in the query as BlueBubbles is
    /// told to send it.
    pub async fn post_bluebubbles(&self, event: &Value, password: &str) -> reqwest::StatusCode {
        let mut url =
            reqwest::Url::parse(&format!("{}/bluebubbles-webhook", self.base_url)).unwrap();
        url.query_pairs_mut().append_pair("password", password);
        self.http
            .post(url)
            .json(event)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A Google Chat event or Teams activity (`path`) with the bearer token the platform would
    /// send (`token`, made by the test).
    pub async fn post_bearer(
        &self,
        path: &str,
        event: &Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base_url))
            .json(event);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// A Matrix transaction as the homeserver pushes it, with `token` as its `hs_token`.
    pub async fn put_matrix(&self, txn_id: &str, events: &Value, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .put(format!(
                "{}/_matrix/app/v1/transactions/{txn_id}",
                self.base_url
            ))
            .bearer_auth(token)
            .json(events)
            .send()
            .await
            .unwrap()
    }
}
