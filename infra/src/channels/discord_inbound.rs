//! Discord ingress: the Interactions endpoint (Ed25519 signature, PING, the slash commands
//! `/ask`, `/new`, `/status`) and the Gateway's `MESSAGE_CREATE` events (DMs and mentions).
//!
//! Decisions:
//! - The signature is Ed25519 over `timestamp + raw body` with the application's public key;
//!   a timestamp more than five minutes from now is refused as a replay, as Slack's is.
//! - A slash command is answered at once with a deferred response (`{"type": 5}`: Discord shows
//!   "thinking…") and queued; the worker's answer replaces it ([`super::discord`]). The 3-second
//!   deadline is met because nothing but the enqueue happens first.
//! - `/ask prompt:<text>` is a message; `/new` and `/status` are the chat commands of the same
//!   names. A command the gateway does not know, or one refused by the group rules, gets an
//!   ephemeral answer (only the user sees it) rather than silence, which Discord would show as
//!   a failed interaction. The refusal says nothing about why.
//! - Gateway messages: bots (the bot itself included) are ignored; in a guild a message is
//!   addressed when it mentions the bot or replies to it. Guild rules are per guild
//!   ([`DiscordConfig::group_access`]); the guild rides along as the chat's `space` so the
//!   worker decides alike.
//! - The event id is the interaction's or message's snowflake: unique, so a redelivery (a
//!   replayed Gateway event after a resume) is dropped by the queue's dedup.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{json, Value};

use super::{
    ChannelAccount, Incoming, Parsed, Refusal, WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::DiscordConfig;
use crate::model::{
    ChatKind, DiscordInteraction, DiscordTarget, MediaKind, MediaRef, MediaSource, ReplyTarget,
    Sender, MAX_MEDIA_PER_MESSAGE,
};

/// How far a request timestamp may be from now.
pub const REPLAY_WINDOW_SECS: i64 = 300;
/// The slash commands the app registers (`clawgate discord register-commands`).
pub const COMMANDS: &[(&str, &str)] = &[
    ("ask", "Ask the assistant"),
    ("new", "Start a new conversation"),
    ("status", "Show the session's status"),
];

/// What the gateway knows about the Discord application.
#[derive(Debug, Clone)]
pub struct DiscordApp {
    /// Its account name and routes (the group rules are per guild: `config`).
    pub account: ChannelAccount,
    pub config: DiscordConfig,
    /// The bot's user id (from the Gateway's READY): what a mention names.
    pub bot_user_id: Option<String>,
}

/// `{"type": 4}` with an ephemeral message only the user who asked sees.
fn ephemeral(text: &str) -> Parsed {
    Parsed::Answer(json!({"type": 4, "data": {"content": text, "flags": 64}}))
}

/// The application commands [`COMMANDS`] as Discord's bulk-overwrite body.
pub fn command_definitions() -> Value {
    let commands: Vec<Value> = COMMANDS
        .iter()
        .map(|(name, description)| {
            let mut command = json!({"name": name, "description": description, "type": 1});
            if *name == "ask" {
                command["options"] = json!([{"type": 3, "name": "prompt",
                    "description": "What to ask", "required": true}]);
            }
            command
        })
        .collect();
    Value::Array(commands)
}

impl DiscordApp {
    /// The account with the group rules of `guild`.
    fn in_guild(&self, guild: Option<&str>) -> ChannelAccount {
        ChannelAccount {
            groups: self.config.group_access(guild),
            ..self.account.clone()
        }
    }

    /// One Gateway `MESSAGE_CREATE` payload (`d`) as a job, or why not.
    pub fn parse_gateway_message(
        &self,
        d: &Value,
        now: DateTime<Utc>,
    ) -> Result<Parsed, WebhookError> {
        let author = &d["author"];
        if author["bot"] == true {
            return Ok(Parsed::Ignored("message from a bot"));
        }
        let (Some(id), Some(channel), Some(_)) = (
            d["id"].as_str(),
            d["channel_id"].as_str(),
            author["id"].as_str().filter(|u| !u.is_empty()),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "a message needs id, channel_id and author.id".into(),
            ));
        };
        let guild = d["guild_id"].as_str();
        let bot = self.bot_user_id.as_deref();
        let mentioned = d["mentions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| bot.is_some_and(|b| m["id"] == b));
        let replied_to = bot.is_some_and(|b| d["referenced_message"]["author"]["id"] == b);
        let media = attachments(d);
        let text = d["content"].as_str().unwrap_or("");
        if text.is_empty() && media.is_empty() {
            return Ok(Parsed::Ignored(
                "no text or file (is the Message Content intent on?)",
            ));
        }
        self.in_guild(guild).admit(
            Incoming {
                event_id: id,
                kind: if guild.is_some() {
                    ChatKind::Channel
                } else {
                    ChatKind::Dm
                },
                chat_id: channel,
                sender: sender(author),
                text: text.to_string(),
                media,
                sub: None,
                team_id: guild,
                addressed: mentioned || replied_to,
                reply_to: ReplyTarget::Discord(DiscordTarget {
                    channel_id: channel.to_string(),
                    dm_user: None,
                    reply_to_message_id: guild.map(|_| id.to_string()),
                    interaction: None,
                }),
            },
            now,
        )
    }
}

fn sender(user: &Value) -> Sender {
    Sender {
        id: user["id"].as_str().unwrap_or("").to_string(),
        name: user["global_name"]
            .as_str()
            .or(user["username"].as_str())
            .map(str::to_string),
    }
}

/// A message's attachments, as CDN URLs the worker fetches.
fn attachments(d: &Value) -> Vec<MediaRef> {
    d["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let url = a["url"].as_str()?;
            let mime = a["content_type"].as_str().map(str::to_string);
            Some(MediaRef {
                kind: MediaKind::from_mime(mime.as_deref().unwrap_or("")),
                source: MediaSource::Discord {
                    url: url.to_string(),
                },
                name: a["filename"].as_str().map(str::to_string),
                mime,
                size: a["size"].as_u64(),
            })
        })
        .take(MAX_MEDIA_PER_MESSAGE)
        .collect()
}

/// The Ed25519 check over `timestamp + body`.
pub fn verify_signature(
    public_key_hex: &str,
    signature_hex: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let refused = |why: &str| Refusal::Unauthorized(why.to_string());
    let key: [u8; 32] = hex::decode(public_key_hex)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| Refusal::NotConfigured("discord publicKey is not 32 bytes of hex".into()))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| Refusal::NotConfigured("discord publicKey is not an Ed25519 key".into()))?;
    let (Some(signature), Some(timestamp)) = (signature_hex, timestamp) else {
        return Err(refused(
            "missing X-Signature-Ed25519 or X-Signature-Timestamp",
        ));
    };
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| refused("X-Signature-Timestamp is not a number"))?;
    if (now.timestamp() - sent).abs() > REPLAY_WINDOW_SECS {
        return Err(refused(
            "request timestamp is more than five minutes from now (replayed or clock skew)",
        ));
    }
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| refused("X-Signature-Ed25519 is not 64 bytes of hex"))?;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    key.verify_strict(&message, &Signature::from_bytes(&signature))
        .map_err(|_| refused("signature does not match the body"))
}

impl WebhookChannel for DiscordApp {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), Refusal> {
        let WebhookRequest { headers, body, .. } = *request;
        let Some(key) = &self.config.public_key else {
            return Err(Refusal::NotConfigured(
                "discord publicKey is not configured".into(),
            ));
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        verify_signature(
            key,
            header("x-signature-ed25519"),
            header("x-signature-timestamp"),
            body,
            now,
        )
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let interaction: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
        match interaction["type"].as_i64() {
            Some(1) => return Ok(Parsed::Answer(json!({"type": 1}))),
            Some(2) => {}
            Some(_) => {
                return Ok(ephemeral(
                    "This assistant only takes /ask, /new and /status.",
                ))
            }
            None => {
                return Err(WebhookError::NotAnEvent(
                    "an interaction needs a numeric type".into(),
                ))
            }
        }
        let data = &interaction["data"];
        let text = match data["name"].as_str() {
            Some("ask") => data["options"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["name"] == "prompt")
                .and_then(|o| o["value"].as_str())
                .unwrap_or("")
                .to_string(),
            Some(command @ ("new" | "status")) => format!("/{command}"),
            _ => return Ok(ephemeral("Unknown command: try /ask, /new or /status.")),
        };
        if text.trim().is_empty() {
            return Ok(ephemeral("/ask needs a prompt."));
        }
        let (Some(id), Some(channel), Some(token), Some(application)) = (
            interaction["id"].as_str(),
            interaction["channel_id"].as_str(),
            interaction["token"].as_str(),
            interaction["application_id"].as_str(),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "an interaction needs id, channel_id, token and application_id".into(),
            ));
        };
        let guild = interaction["guild_id"].as_str();
        let user = match guild {
            Some(_) => &interaction["member"]["user"],
            None => &interaction["user"],
        };
        if user["id"].as_str().is_none_or(str::is_empty) {
            return Err(WebhookError::NotAnEvent(
                "an interaction needs its user".into(),
            ));
        }
        let parsed = self.in_guild(guild).admit(
            Incoming {
                event_id: id,
                kind: if guild.is_some() {
                    ChatKind::Channel
                } else {
                    ChatKind::Dm
                },
                chat_id: channel,
                sender: sender(user),
                text,
                media: vec![],
                sub: None,
                team_id: guild,
                addressed: true,
                reply_to: ReplyTarget::Discord(DiscordTarget {
                    channel_id: channel.to_string(),
                    dm_user: None,
                    reply_to_message_id: None,
                    interaction: Some(DiscordInteraction {
                        application_id: application.to_string(),
                        token: token.to_string(),
                    }),
                }),
            },
            now,
        )?;
        Ok(match parsed {
            Parsed::Queue { jobs, .. } => Parsed::Queue {
                jobs,
                ack: Some(json!({"type": 5})),
            },
            Parsed::Ignored(_) => ephemeral("This assistant does not answer here."),
            answer => answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reqwest::header::HeaderMap;

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::config::AgentRoutes;
    use crate::model::{Channel, JobMessage};

    const BOT: &str = "1150000000000000001";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/discord/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    /// An app whose owner listed guild 1100000000000000001, mention required.
    fn app() -> DiscordApp {
        let config: DiscordConfig = serde_json::from_value(json!({
            "publicKey": hex::encode(key().verifying_key().to_bytes()),
            "guilds": {"1100000000000000001": {}},
        }))
        .unwrap();
        DiscordApp {
            account: ChannelAccount {
                channel: Channel::Discord,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: Default::default(),
            },
            config,
            bot_user_id: Some(BOT.into()),
        }
    }

    fn headers(timestamp: &str, body: &[u8], key: &SigningKey) -> HeaderMap {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        let signature = hex::encode(key.sign(&message).to_bytes());
        let mut headers = HeaderMap::new();
        headers.insert("x-signature-ed25519", signature.parse().unwrap());
        headers.insert("x-signature-timestamp", timestamp.parse().unwrap());
        headers
    }

    fn one_job(parsed: Parsed) -> (JobMessage, Option<Value>) {
        match parsed {
            Parsed::Queue { mut jobs, ack } if jobs.len() == 1 => (jobs.remove(0), ack),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_ping_is_answered_with_a_pong() {
        let parsed = app().parse(&fixture("ping.json"), Utc::now()).unwrap();

        assert_eq!(parsed, Parsed::Answer(json!({"type": 1})));
    }

    #[test]
    fn ask_in_a_listed_guild_is_deferred_and_queued_with_its_interaction() {
        let (job, ack) = one_job(
            app()
                .parse(&fixture("slash_ask_guild.json"), Utc::now())
                .unwrap(),
        );

        assert_eq!(ack, Some(json!({"type": 5})));
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:discord:channel:1100000000000000010"
        );
        assert_eq!(job.inbound.text, "what is on my calendar today?");
        assert_eq!(job.inbound.event_id, "discord:default:1200000000000000002");
        assert_eq!(
            job.inbound.chat.space.as_deref(),
            Some("1100000000000000001")
        );
        let Some(ReplyTarget::Discord(target)) = &job.reply_to else {
            panic!("{:?}", job.reply_to)
        };
        assert_eq!(
            target
                .interaction
                .as_ref()
                .map(|i| i.application_id.as_str()),
            Some(BOT)
        );
    }

    #[test]
    fn a_binding_on_the_guild_picks_the_agent() {
        let mut app = app();
        app.account.routes = Arc::new(AgentRoutes {
            bindings: vec![serde_json::from_value(json!({"agentId": "ops",
                "match": {"channel": "discord", "guildId": "1100000000000000001"}}))
            .unwrap()],
            default_agent: "main".into(),
            ..AgentRoutes::default()
        });

        let (job, _) = one_job(
            app.parse(&fixture("slash_ask_guild.json"), Utc::now())
                .unwrap(),
        );

        assert_eq!(job.agent_id, "ops");
    }

    #[test]
    fn new_in_a_dm_is_the_chat_command_in_the_users_session() {
        let (job, _) = one_job(
            app()
                .parse(&fixture("slash_new_dm.json"), Utc::now())
                .unwrap(),
        );

        assert_eq!(job.inbound.text, "/new");
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:discord:dm:1000000000000000042"
        );
    }

    #[test]
    fn a_command_in_an_unlisted_guild_gets_an_ephemeral_refusal_and_nothing_is_queued() {
        let mut unlisted = app();
        unlisted.config.guilds.clear();

        let parsed = unlisted
            .parse(&fixture("slash_ask_guild.json"), Utc::now())
            .unwrap();

        assert!(parsed.jobs().is_empty());
        assert!(matches!(parsed, Parsed::Answer(body) if body["data"]["flags"] == 64));
    }

    #[test]
    fn a_mention_over_the_gateway_is_a_channel_job_with_its_attachment() {
        let d: Value = serde_json::from_slice(&fixture("message_create_mention.json")).unwrap();
        let mut unmentioned = d.clone();
        unmentioned["mentions"] = json!([]);
        let mut from_bot = d.clone();
        from_bot["author"]["bot"] = json!(true);

        let (job, _) = one_job(app().parse_gateway_message(&d, Utc::now()).unwrap());
        let quiet = app()
            .parse_gateway_message(&unmentioned, Utc::now())
            .unwrap();
        let bot = app().parse_gateway_message(&from_bot, Utc::now()).unwrap();

        assert_eq!(job.inbound.media.len(), 1);
        assert!(
            matches!(&job.inbound.media[0].source, MediaSource::Discord { url } if url.starts_with("https://cdn.discordapp.com/"))
        );
        assert_eq!(quiet, Parsed::Ignored("group message without a mention"));
        assert_eq!(bot, Parsed::Ignored("message from a bot"));
    }

    #[test]
    fn only_a_fresh_request_signed_by_the_application_key_passes() {
        let body = fixture("slash_ask_guild.json");
        let now = Utc::now();
        let fresh = now.timestamp().to_string();
        let old = (now.timestamp() - REPLAY_WINDOW_SECS - 1).to_string();
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let stranger = SigningKey::from_bytes(&[9; 32]);

        let good = app().verify(
            &WebhookRequest::new(&headers(&fresh, &body, &key()), &body),
            now,
        );
        let replayed = app().verify(
            &WebhookRequest::new(&headers(&old, &body, &key()), &body),
            now,
        );
        let altered = app().verify(
            &WebhookRequest::new(&headers(&fresh, &body, &key()), &tampered),
            now,
        );
        let forged = app().verify(
            &WebhookRequest::new(&headers(&fresh, &body, &stranger), &body),
            now,
        );
        let unsigned = app().verify(&WebhookRequest::new(&HeaderMap::new(), &body), now);

        assert_eq!(good, Ok(()));
        assert!(
            matches!(replayed, Err(Refusal::Unauthorized(why)) if why.contains("five minutes"))
        );
        assert!(matches!(altered, Err(Refusal::Unauthorized(_))));
        assert!(matches!(forged, Err(Refusal::Unauthorized(_))));
        assert!(matches!(unsigned, Err(Refusal::Unauthorized(_))));
    }

    #[test]
    fn malformed_interactions_are_refused_with_the_reason() {
        let now = Utc::now();
        let not_json = app().parse(b"{\"type\":", now);
        let no_type = app().parse(b"{}", now);
        let no_token = app().parse(
            br#"{"type":2,"id":"1","channel_id":"2","data":{"name":"status"},"user":{"id":"3"}}"#,
            now,
        );

        assert!(matches!(not_json, Err(WebhookError::MalformedJson(_))));
        assert!(matches!(no_type, Err(WebhookError::NotAnEvent(_))));
        assert!(matches!(no_token, Err(WebhookError::NotAnEvent(_))));
    }
}
