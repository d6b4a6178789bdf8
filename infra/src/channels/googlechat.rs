//! Google Chat: the app's HTTP endpoint in (a bearer JWT Google signs, checked against its
//! published key set), the Chat API out as the app's service account (an OAuth token from a
//! JWT-bearer grant, cached until it nears expiry).
//!
//! Decisions (the config's are in [`crate::config::GoogleChatConfig`]):
//! - The key set is fetched and cached ([`KeySet`], shared with Teams): the route refreshes it
//!   before verifying; verification itself needs no I/O.
//! - The endpoint answers `{}` at once (no synchronous reply: the answer comes from a worker
//!   through the Chat API, in the message's thread).
//! - `MESSAGE` events are jobs (in a space the app only gets messages that mention it or slash
//!   commands, so they are addressed); `ADDED_TO_SPACE` and the rest are acknowledged and
//!   ignored. A DM's session is the sender (`users/<id>`); a space's is the space and thread.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::oauth::{call_json, token_grant, CachedToken, KeySet};
use super::{
    wrong_target, ChannelAccount, ChannelError, ChannelSender, Incoming, Parsed, Refusal,
    WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::{AudienceType, GoogleChatConfig, Secret};
use crate::model::{Channel, ChatKind, GoogleChatTarget, ReplyTarget, Sender, SubThread};

/// Chat's limit on a message's text.
pub const MAX_MESSAGE_CHARS: usize = 4096;
const CHANNEL: &str = "googlechat";

/// What the gateway knows about the Chat app.
pub struct GoogleChatApp {
    pub account: ChannelAccount,
    pub config: GoogleChatConfig,
    pub keys: KeySet,
}

impl WebhookChannel for GoogleChatApp {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        let Some(audience) = &self.config.audience else {
            return Err(Refusal::NotConfigured(
                "googlechat audience is not configured".into(),
            ));
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[self.config.issuer()]);
        let (claims, _) = self.keys.verify_bearer(request, &validation)?;
        if self.config.audience_type == AudienceType::AppUrl
            && claims["email"] != GoogleChatConfig::CHAT_ISSUER
        {
            return Err(Refusal::Unauthorized(
                "the token is not Google Chat's".into(),
            ));
        }
        Ok(())
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let event: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
        match event["type"].as_str() {
            Some("MESSAGE") => {}
            Some(_) => return Ok(Parsed::Ignored("an event other than MESSAGE")),
            None => return Err(WebhookError::NotAnEvent("a Chat event needs a type".into())),
        }
        let message = &event["message"];
        let space = &message["space"];
        let (Some(name), Some(space_name), Some(sender)) = (
            message["name"].as_str().filter(|n| !n.is_empty()),
            space["name"].as_str().filter(|s| s.starts_with("spaces/")),
            message["sender"]["name"]
                .as_str()
                .filter(|s| s.starts_with("users/")),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "a message needs name, space.name and sender.name".into(),
            ));
        };
        if message["sender"]["type"] == "BOT" {
            return Ok(Parsed::Ignored("message from a bot"));
        }
        let dm = space["type"] == "DM" || space["spaceType"] == "DIRECT_MESSAGE";
        let thread = message["thread"]["name"].as_str().map(str::to_string);
        let text = message["argumentText"]
            .as_str()
            .or(message["text"].as_str())
            .unwrap_or("")
            .trim()
            .to_string();
        if text.is_empty() {
            return Ok(Parsed::Ignored("no text"));
        }
        let parsed = self.account.admit(
            Incoming {
                event_id: name,
                kind: if dm { ChatKind::Dm } else { ChatKind::Group },
                chat_id: space_name,
                sender: Sender {
                    id: sender.to_string(),
                    name: message["sender"]["displayName"]
                        .as_str()
                        .map(str::to_string),
                },
                text,
                media: vec![],
                sub: if dm {
                    None
                } else {
                    thread.clone().map(SubThread::Thread)
                },
                team_id: None,
                addressed: true,
                reply_to: ReplyTarget::Googlechat(GoogleChatTarget {
                    space: space_name.to_string(),
                    thread,
                    dm_user: None,
                }),
            },
            now,
        )?;
        Ok(match parsed {
            Parsed::Queue { jobs, .. } => Parsed::Queue {
                jobs,
                ack: Some(json!({})),
            },
            other => other,
        })
    }
}

/// A service account key file's fields the grant needs.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// The Chat API as the app's service account.
pub struct GoogleChatClient {
    http: reqwest::Client,
    api_base: String,
    account: ServiceAccount,
    key: EncodingKey,
    token: CachedToken,
}

impl GoogleChatClient {
    /// The client, when the config holds a usable service account key (or why not).
    pub fn from_config(
        config: &GoogleChatConfig,
        http: reqwest::Client,
    ) -> Result<Option<Self>, String> {
        let json = match (&config.service_account, &config.service_account_file) {
            (Some(secret), _) => secret.expose().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("channels.googlechat.serviceAccountFile: {e}"))?,
            (None, None) => return Ok(None),
        };
        let account: ServiceAccount = serde_json::from_str(&json)
            .map_err(|_| "the Google Chat service account key is not a key file".to_string())?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|_| {
            "the Google Chat service account's private_key is not an RSA key".to_string()
        })?;
        Ok(Some(GoogleChatClient {
            http,
            api_base: config.api_base().to_string(),
            account,
            key,
            token: CachedToken::default(),
        }))
    }

    /// An access token for the `chat.bot` scope (a JWT-bearer grant signed with the key).
    async fn access_token(&self) -> Result<Secret, ChannelError> {
        self.token
            .get(async {
                let now = Utc::now().timestamp();
                let claims = json!({"iss": self.account.client_email,
                    "scope": "https://www.googleapis.com/auth/chat.bot",
                    "aud": self.account.token_uri, "iat": now, "exp": now + 3600});
                let assertion =
                    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
                        .map_err(|e| ChannelError::NotConfigured {
                            channel: CHANNEL,
                            message: format!("signing the token request: {e}"),
                        })?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                token_grant(&self.http, CHANNEL, &self.account.token_uri, &form).await
            })
            .await
    }

    /// A Chat API call; its answer.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ChannelError> {
        call_json(CHANNEL, request, &self.access_token().await?).await
    }
}

#[async_trait::async_trait]
impl ChannelSender for GoogleChatClient {
    fn channel(&self) -> Channel {
        Channel::Googlechat
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let ReplyTarget::Googlechat(target) = target else {
            return Err(wrong_target(CHANNEL, "the reply target"));
        };
        let space = match (&target.dm_user, target.space.is_empty()) {
            (Some(user), true) => {
                let mut url =
                    reqwest::Url::parse(&format!("{}/v1/spaces:findDirectMessage", self.api_base))
                        .map_err(|_| wrong_target(CHANNEL, "an API base that is not a URL"))?;
                url.query_pairs_mut().append_pair("name", user);
                let found = self.call(self.http.get(url)).await?;
                found["name"].as_str().unwrap_or_default().to_string()
            }
            _ => target.space.clone(),
        };
        if !space.starts_with("spaces/") {
            return Err(wrong_target(CHANNEL, "a target without a space"));
        }
        let mut body = json!({"text": text});
        let mut url = reqwest::Url::parse(&format!("{}/v1/{space}/messages", self.api_base))
            .map_err(|_| wrong_target(CHANNEL, "a space name that is not a path"))?;
        if let Some(thread) = &target.thread {
            body["thread"] = json!({"name": thread});
            url.query_pairs_mut()
                .append_pair("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
        }
        let created = self.call(self.http.post(url).json(&body)).await?;
        Ok(created["name"].as_str().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reqwest::header::HeaderMap;

    use super::*;
    use crate::config::{AgentRoutes, GroupAccess, GroupEntry};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/googlechat/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn app(groups: GroupAccess) -> GoogleChatApp {
        let config: GoogleChatConfig =
            serde_json::from_value(json!({"audience": "123456789012"})).unwrap();
        let jwks = String::from_utf8(fixture("jwks.json")).unwrap();
        GoogleChatApp {
            account: ChannelAccount {
                channel: Channel::Googlechat,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups,
            },
            config,
            keys: KeySet::from_jwks("http://unused", reqwest::Client::new(), &jwks),
        }
    }

    fn token(claims: Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let key = EncodingKey::from_rsa_pem(&fixture("test-signing-key.pem")).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn bearing(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn a_dm_is_the_senders_session_and_a_space_message_its_threads() {
        let listed = GroupAccess {
            groups: [("spaces/AAAAteamspace".to_string(), GroupEntry::default())].into(),
            ..GroupAccess::default()
        };

        let dm = app(GroupAccess::default())
            .parse(&fixture("message_dm.json"), Utc::now())
            .unwrap();
        let space = app(listed)
            .parse(&fixture("message_space_mention.json"), Utc::now())
            .unwrap();
        let unlisted = app(GroupAccess::default())
            .parse(&fixture("message_space_mention.json"), Utc::now())
            .unwrap();

        assert_eq!(
            dm.jobs()[0].session_key.to_string(),
            "agent:main:googlechat:dm:users/112233445566778899001"
        );
        assert!(matches!(&dm, Parsed::Queue { ack: Some(ack), .. } if *ack == json!({})));
        assert_eq!(
            space.jobs()[0].session_key.to_string(),
            "agent:main:googlechat:group:spaces/AAAAteamspace:thread:spaces/AAAAteamspace/threads/kUqG2Wm2AAAA"
        );
        assert_eq!(space.jobs()[0].inbound.text, "what is on the roadmap?");
        assert!(matches!(unlisted, Parsed::Ignored(why) if why.contains("not listed")));
    }

    #[test]
    fn only_a_fresh_token_from_chat_for_this_audience_passes() {
        let now = Utc::now().timestamp();
        let claims = |iss: &str, aud: &str, exp: i64| json!({"iss": iss, "aud": aud, "iat": now, "exp": exp});
        let body = fixture("message_dm.json");
        let check = |token: &str| {
            app(GroupAccess::default())
                .verify(&WebhookRequest::new(&bearing(token), &body), Utc::now())
        };

        let good = check(&token(
            claims(GoogleChatConfig::CHAT_ISSUER, "123456789012", now + 600),
            "e2e-chat-key-1",
        ));
        let other_issuer = check(&token(
            claims("evil@example.com", "123456789012", now + 600),
            "e2e-chat-key-1",
        ));
        let other_audience = check(&token(
            claims(GoogleChatConfig::CHAT_ISSUER, "42", now + 600),
            "e2e-chat-key-1",
        ));
        let expired = check(&token(
            claims(GoogleChatConfig::CHAT_ISSUER, "123456789012", now - 600),
            "e2e-chat-key-1",
        ));
        let unknown_key = check(&token(
            claims(GoogleChatConfig::CHAT_ISSUER, "123456789012", now + 600),
            "other",
        ));
        let garbage = check("not.a.token");

        assert_eq!(good, Ok(()));
        for refused in [other_issuer, other_audience, expired, unknown_key, garbage] {
            assert!(
                matches!(refused, Err(Refusal::Unauthorized(_))),
                "{refused:?}"
            );
        }
    }
}
