//! Microsoft Teams on the Bot Framework: activities in at `/api/messages` (a bearer JWT the
//! Bot Framework signs, checked against the keys its OpenID metadata names), replies out to
//! the activity's service URL with a client-credentials token (Bot Connector API v3).
//!
//! Decisions (the config's are in [`crate::config::MsTeamsConfig`]):
//! - The token must be RS256 from `https://api.botframework.com`, for the bot's app id, within
//!   five minutes of its validity (the Bot Framework's clock-skew allowance), signed by a key
//!   endorsed for the activity's `channelId`, and its `serviceUrl` claim must equal the
//!   activity's: the worker sends its own token to that URL, so an unbound one would let a
//!   replayed token steer the bot's credentials anywhere.
//! - `message` activities are jobs, by activity id; `conversationUpdate`, reactions and the
//!   rest are acknowledged and ignored. Activities from another tenant than `tenantId` are
//!   ignored.
//! - A personal chat is the sender's DM (by Entra object id); a group chat is its conversation;
//!   a channel post is the channel, narrowed to its thread (`;messageid=`), with the team as
//!   the workspace. The bot's `<at>` mention is cut from the text and is what addresses it.
//! - Replies are markdown (`textFormat: markdown`), threaded under the activity answered;
//!   previews edit the posted activity (`PUT`), "typing…" is a `typing` activity.
//! - Files are neither fetched nor sent yet (Teams needs Graph or a consent card for them).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{json, Value};

use super::oauth::{call_json, token_grant, CachedToken, KeySet};
use super::{
    wrong_target, ChannelAccount, ChannelError, ChannelSender, Incoming, Parsed, Refusal,
    WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::{MsTeamsConfig, Secret};
use crate::model::{Channel, ChatKind, MsTeamsTarget, ReplyTarget, Sender, SubThread};

/// Teams caps a message near 28 KB; this leaves room for multi-byte text and markup.
pub const MAX_MESSAGE_CHARS: usize = 12_000;
const CHANNEL: &str = "msteams";
const CLOCK_SKEW_SECS: u64 = 300;

/// What the gateway knows about the bot.
pub struct MsTeamsBot {
    /// The account; its group rules are replaced per team when an activity is read.
    pub account: ChannelAccount,
    pub config: MsTeamsConfig,
    pub keys: KeySet,
}

impl WebhookChannel for MsTeamsBot {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        let Some(app_id) = &self.config.app_id else {
            return Err(Refusal::NotConfigured(
                "msteams appId is not configured".into(),
            ));
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[app_id]);
        validation.set_issuer(&[MsTeamsConfig::ISSUER]);
        validation.leeway = CLOCK_SKEW_SECS;
        let (claims, key) = self.keys.verify_bearer(request, &validation)?;
        let refused = |why: &str| Refusal::Unauthorized(why.to_string());
        // The body binds to the token through its channel and service URL. A body that is not
        // JSON carries neither and is refused by `parse` before anything is queued.
        if let Ok(activity) = serde_json::from_slice::<Value>(request.body) {
            let channel_id = activity["channelId"].as_str().unwrap_or_default();
            if !key.endorsements.iter().any(|e| e == channel_id) {
                return Err(refused(
                    "the key is not endorsed for the activity's channel",
                ));
            }
            if claims["serviceUrl"] != activity["serviceUrl"] {
                return Err(refused("the token is for another service URL"));
            }
        }
        Ok(())
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let activity: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
        match activity["type"].as_str() {
            Some("message") => {}
            Some(_) => return Ok(Parsed::Ignored("an activity other than a message")),
            None => return Err(WebhookError::NotAnEvent("an activity needs a type".into())),
        }
        let conversation = &activity["conversation"];
        let (Some(id), Some(conversation_id), Some(from), Some(service_url)) = (
            activity["id"].as_str().filter(|s| !s.is_empty()),
            conversation["id"].as_str().filter(|s| !s.is_empty()),
            activity["from"]["id"].as_str().filter(|s| !s.is_empty()),
            activity["serviceUrl"]
                .as_str()
                .filter(|s| s.starts_with("https://") || s.starts_with("http://")),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "a message needs id, conversation.id, from.id and serviceUrl".into(),
            ));
        };
        let tenant = conversation["tenantId"]
            .as_str()
            .or(activity["channelData"]["tenant"]["id"].as_str());
        if let Some(own) = &self.config.tenant_id {
            if tenant != Some(own.as_str()) {
                return Ok(Parsed::Ignored("an activity from another tenant"));
            }
        }
        let bot = activity["recipient"]["id"].as_str().unwrap_or_default();
        let (text, addressed) = without_bot_mention(&activity, bot);
        if text.is_empty() {
            return Ok(Parsed::Ignored("no text"));
        }
        let (kind, base, thread) = match conversation["conversationType"].as_str() {
            Some("personal") => (ChatKind::Dm, conversation_id, None),
            Some("channel") => match conversation_id.split_once(";messageid=") {
                Some((channel, root)) => (ChatKind::Channel, channel, Some(root)),
                None => (ChatKind::Channel, conversation_id, None),
            },
            _ => (ChatKind::Group, conversation_id, None),
        };
        let team = match kind {
            ChatKind::Channel => activity["channelData"]["team"]["id"].as_str(),
            _ => Some(base),
        };
        let account = ChannelAccount {
            groups: self.config.group_access(team),
            ..self.account.clone()
        };
        let sender = activity["from"]["aadObjectId"].as_str().unwrap_or(from);
        account.admit(
            Incoming {
                event_id: id,
                kind,
                chat_id: base,
                sender: Sender {
                    id: sender.to_string(),
                    name: activity["from"]["name"].as_str().map(str::to_string),
                },
                text,
                media: vec![],
                sub: thread.map(|t| SubThread::Thread(t.to_string())),
                team_id: team.filter(|_| kind != ChatKind::Dm),
                addressed: kind == ChatKind::Dm || addressed,
                reply_to: ReplyTarget::Msteams(MsTeamsTarget {
                    service_url: service_url.to_string(),
                    conversation_id: conversation_id.to_string(),
                    reply_to_id: Some(id.to_string()),
                }),
            },
            now,
        )
    }
}

/// The text with the bot's `<at>…</at>` mentions cut out, and whether there was one.
fn without_bot_mention(activity: &Value, bot: &str) -> (String, bool) {
    let mut text = activity["text"].as_str().unwrap_or_default().to_string();
    let mut mentioned = false;
    let entities = activity["entities"].as_array().map(Vec::as_slice);
    for entity in entities.unwrap_or_default() {
        if entity["type"] == "mention" && !bot.is_empty() && entity["mentioned"]["id"] == bot {
            mentioned = true;
            if let Some(tag) = entity["text"].as_str().filter(|t| !t.is_empty()) {
                text = text.replace(tag, "");
            }
        }
    }
    (text.trim().to_string(), mentioned)
}

/// The Bot Connector API as the bot.
pub struct MsTeamsClient {
    http: reqwest::Client,
    app_id: String,
    app_password: Secret,
    token_url: String,
    service_url: String,
    token: CachedToken,
}

impl MsTeamsClient {
    /// The client, when the config holds the bot's credentials.
    pub fn from_config(config: &MsTeamsConfig, http: reqwest::Client) -> Option<Self> {
        Some(MsTeamsClient {
            http,
            app_id: config.app_id.clone()?,
            app_password: config.app_password.clone()?,
            token_url: config.token_url(),
            service_url: config.service_url().to_string(),
            token: CachedToken::default(),
        })
    }

    /// A token for the Bot Connector (`client_credentials`, scope `api.botframework.com`).
    async fn access_token(&self) -> Result<Secret, ChannelError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.app_id.as_str()),
            ("client_secret", self.app_password.expose()),
            ("scope", "https://api.botframework.com/.default"),
        ];
        self.token
            .get(token_grant(&self.http, CHANNEL, &self.token_url, &form))
            .await
    }

    /// `…/v3/conversations/<id>/activities[/<activity>]` at the target's service URL.
    fn activities_url(
        &self,
        target: &MsTeamsTarget,
        activity: Option<&str>,
    ) -> Result<reqwest::Url, ChannelError> {
        let base = match target.service_url.as_str() {
            "" => self.service_url.as_str(),
            url => url,
        };
        let mut url = reqwest::Url::parse(base)
            .map_err(|_| wrong_target(CHANNEL, "a service URL that is not a URL"))?;
        url.path_segments_mut()
            .map_err(|_| wrong_target(CHANNEL, "a service URL that cannot take a path"))?
            .pop_if_empty()
            .extend(["v3", "conversations", &target.conversation_id, "activities"])
            .extend(activity);
        Ok(url)
    }

    /// A Connector call; its answer.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ChannelError> {
        call_json(CHANNEL, request, &self.access_token().await?).await
    }
}

fn target_of(target: &ReplyTarget) -> Result<&MsTeamsTarget, ChannelError> {
    match target {
        ReplyTarget::Msteams(target) => Ok(target),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}

#[async_trait::async_trait]
impl ChannelSender for MsTeamsClient {
    fn channel(&self) -> Channel {
        Channel::Msteams
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let target = target_of(target)?;
        let mut activity = json!({"type": "message", "text": text, "textFormat": "markdown"});
        if let Some(id) = &target.reply_to_id {
            activity["replyToId"] = json!(id);
        }
        let url = self.activities_url(target, target.reply_to_id.as_deref())?;
        let created = self.call(self.http.post(url).json(&activity)).await?;
        Ok(created["id"].as_str().unwrap_or_default().to_string())
    }

    fn can_edit(&self) -> bool {
        true
    }

    /// The Connector allows about one message a second per conversation.
    fn min_edit_interval(&self) -> Duration {
        Duration::from_millis(1500)
    }

    async fn edit(&self, target: &ReplyTarget, id: &str, text: &str) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        let activity = json!({"type": "message", "id": id, "text": text, "textFormat": "markdown"});
        let url = self.activities_url(target, Some(id))?;
        self.call(self.http.put(url).json(&activity))
            .await
            .map(|_| ())
    }

    async fn typing(&self, target: &ReplyTarget) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        let url = self.activities_url(target, None)?;
        let activity = json!({"type": "typing"});
        self.call(self.http.post(url).json(&activity))
            .await
            .map(|_| ())
    }

    /// Teams shows "typing…" for about three seconds.
    fn typing_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(3))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jsonwebtoken::{EncodingKey, Header};
    use reqwest::header::HeaderMap;

    use super::*;
    use crate::config::AgentRoutes;

    const APP_ID: &str = "0d3e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a";
    const TEAM: &str = "19:f00dfeedf00dfeedf00dfeedf00dfeed@thread.tacv2";

    fn fixture(dir: &str, name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/{dir}/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn bot(config: Value) -> MsTeamsBot {
        let mut config: MsTeamsConfig = serde_json::from_value(config).unwrap();
        config.app_id = Some(APP_ID.into());
        let mut jwks: Value = serde_json::from_slice(&fixture("googlechat", "jwks.json")).unwrap();
        jwks["keys"][0]["endorsements"] = json!(["msteams"]);
        MsTeamsBot {
            account: ChannelAccount {
                channel: Channel::Msteams,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: Default::default(),
            },
            config,
            keys: KeySet::from_jwks("http://unused", reqwest::Client::new(), &jwks.to_string()),
        }
    }

    fn token(claims: Value) -> HeaderMap {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("e2e-chat-key-1".into());
        let key =
            EncodingKey::from_rsa_pem(&fixture("googlechat", "test-signing-key.pem")).unwrap();
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn a_personal_chat_is_the_senders_dm_and_a_channel_post_its_thread() {
        let dm = bot(json!({}))
            .parse(&fixture("msteams", "message_personal.json"), Utc::now())
            .unwrap();
        let listed = bot(json!({"teams": {TEAM: {}}}))
            .parse(
                &fixture("msteams", "message_channel_mention.json"),
                Utc::now(),
            )
            .unwrap();
        let unlisted = bot(json!({}))
            .parse(
                &fixture("msteams", "message_channel_mention.json"),
                Utc::now(),
            )
            .unwrap();
        let update = bot(json!({}))
            .parse(&fixture("msteams", "conversation_update.json"), Utc::now())
            .unwrap();
        let foreign = bot(json!({"tenantId": "another-tenant"}))
            .parse(&fixture("msteams", "message_personal.json"), Utc::now())
            .unwrap();

        assert_eq!(
            dm.jobs()[0].session_key.to_string(),
            "agent:main:msteams:dm:6b1f7d9e-2c4a-4e57-9a1d-0f3b8c5e7a21"
        );
        let job = &listed.jobs()[0];
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:msteams:channel:19%3A8a1b2c3d4e5f60718293a4b5c6d7e8f9@thread.tacv2:thread:1733307000000"
        );
        assert_eq!(job.inbound.text, "summarize this thread, please");
        assert_eq!(job.inbound.chat.space.as_deref(), Some(TEAM));
        let Some(ReplyTarget::Msteams(target)) = &job.reply_to else {
            panic!("a Teams target: {:?}", job.reply_to);
        };
        assert_eq!(target.reply_to_id.as_deref(), Some("1733307400456"));
        assert_eq!(
            ReplyTarget::for_session(&job.session_key),
            Some(ReplyTarget::Msteams(MsTeamsTarget {
                service_url: String::new(),
                conversation_id: target.conversation_id.clone(),
                reply_to_id: None,
            }))
        );
        assert!(matches!(unlisted, Parsed::Ignored(why) if why.contains("not listed")));
        assert!(matches!(update, Parsed::Ignored(_)));
        assert!(matches!(foreign, Parsed::Ignored(why) if why.contains("tenant")));
    }

    #[test]
    fn a_channel_post_without_the_bots_mention_is_not_answered() {
        let mut activity: Value =
            serde_json::from_slice(&fixture("msteams", "message_channel_mention.json")).unwrap();
        activity["entities"] = json!([]);
        activity["text"] = json!("just chatting");

        let parsed = bot(json!({"teams": {TEAM: {}}}))
            .parse(activity.to_string().as_bytes(), Utc::now())
            .unwrap();

        assert!(matches!(parsed, Parsed::Ignored(why) if why.contains("mention")));
    }

    #[test]
    fn only_a_fresh_bot_framework_token_bound_to_the_activity_passes() {
        let body = fixture("msteams", "message_personal.json");
        let now = Utc::now().timestamp();
        let service = "https://smba.trafficmanager.net/emea/";
        let claims = |iss: &str, aud: &str, exp: i64, url: &str| json!({"iss": iss, "aud": aud, "iat": now, "nbf": now, "exp": exp, "serviceUrl": url});
        let check = |headers: HeaderMap, body: &[u8]| {
            bot(json!({})).verify(&WebhookRequest::new(&headers, body), Utc::now())
        };
        let iss = MsTeamsConfig::ISSUER;

        let good = check(token(claims(iss, APP_ID, now + 600, service)), &body);
        let within_skew = check(token(claims(iss, APP_ID, now - 120, service)), &body);
        let expired = check(token(claims(iss, APP_ID, now - 600, service)), &body);
        let other_issuer = check(
            token(claims(
                "https://sts.windows.net/x/",
                APP_ID,
                now + 600,
                service,
            )),
            &body,
        );
        let other_bot = check(token(claims(iss, "another-app", now + 600, service)), &body);
        let other_service = check(
            token(claims(iss, APP_ID, now + 600, "https://evil.example/")),
            &body,
        );
        let mut skype: Value = serde_json::from_slice(&body).unwrap();
        skype["channelId"] = json!("skype");
        let unendorsed = check(
            token(claims(iss, APP_ID, now + 600, service)),
            skype.to_string().as_bytes(),
        );
        let no_token = check(HeaderMap::new(), &body);

        assert_eq!(good, Ok(()));
        assert_eq!(within_skew, Ok(()));
        for refused in [
            expired,
            other_issuer,
            other_bot,
            other_service,
            unendorsed,
            no_token,
        ] {
            assert!(
                matches!(refused, Err(Refusal::Unauthorized(_))),
                "{refused:?}"
            );
        }
    }
}
