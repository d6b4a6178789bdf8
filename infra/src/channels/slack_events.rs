//! Slack Events API ingress: the v0 request signature and the parsing of an event callback
//! into a job.
//!
//! Decisions:
//! - The signature is HMAC-SHA256 of `v0:{timestamp}:{raw body}`, compared in constant time;
//!   a timestamp more than five minutes from now, either way, is refused (replay window).
//! - DMs (`message` with `channel_type: im`) and `app_mention` are handled, with the files
//!   they carry (a DM with files is subtype `file_share`) as references the worker fetches.
//!   Events with a `bot_id` or any other `subtype` (edits, joins, the bot's own posts) are
//!   acked and dropped.
//! - A mention in a channel opens a thread session keyed by the thread's root `ts`, and the
//!   reply goes into that thread; a DM is one session per user. A mention passes the app's
//!   channel rules first (`groupPolicy`, `channels`, `groupAllowFrom`: [`GroupAccess`]): by
//!   default no channel is answered until the owner lists it, so a guest or a Slack Connect
//!   member who mentions the bot reaches nothing.
//! - The event id is `slack:<account>:<event_id>`: Slack's retries (`X-Slack-Retry-Num`) carry
//!   the same `event_id`, so the queue drops them.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{
    ChannelAccount, Incoming, Parsed, Refusal, WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::Secret;
use crate::model::{
    ChatKind, MediaKind, MediaRef, MediaSource, ReplyTarget, Sender, SlackTarget, SubThread,
    MAX_MEDIA_PER_MESSAGE,
};

/// The files an event carries (`files`), as references the worker fetches with the bot
/// token. A file without a private URL (a Slack Connect file not yet shared, a deleted one) is
/// skipped.
fn event_files(event: &Value) -> Vec<MediaRef> {
    let Some(files) = event["files"].as_array() else {
        return vec![];
    };
    files
        .iter()
        .filter_map(|f| {
            let url = f["url_private_download"]
                .as_str()
                .or(f["url_private"].as_str())?;
            let mime = f["mimetype"].as_str().map(str::to_string);
            let kind = match mime.as_deref() {
                _ if f["subtype"] == "slack_audio" => MediaKind::Voice,
                Some(m) => MediaKind::from_mime(m),
                None => MediaKind::Document,
            };
            Some(MediaRef {
                kind,
                source: MediaSource::Slack {
                    url: url.to_string(),
                },
                name: f["name"].as_str().map(str::to_string),
                mime,
                size: f["size"].as_u64(),
            })
        })
        .take(MAX_MEDIA_PER_MESSAGE)
        .collect()
}

/// The bot events [`parse_event`] handles: what the app manifest subscribes to.
pub const BOT_EVENTS: &[&str] = &["app_mention", "message.im"];

/// The bot scopes those events, `chat.postMessage`/`chat.update`, fetching the files people
/// share (`files:read`) and sending files back (`files:write`) need, and no more.
pub const BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "chat:write",
    "files:read",
    "files:write",
    "im:history",
    "im:read",
];

/// A Slack app manifest (JSON form) for an app whose Events API requests go to `events_url`:
/// paste it at api.slack.com/apps → Create New App → From a manifest.
pub fn app_manifest(app_name: &str, events_url: &str) -> Value {
    serde_json::json!({
        "display_information": {
            "name": app_name,
            "description": "Personal AI assistant (clawgate)",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": false,
                "messages_tab_enabled": true,
                "messages_tab_read_only_enabled": false,
            },
            "bot_user": { "display_name": app_name, "always_online": true },
        },
        "oauth_config": { "scopes": { "bot": BOT_SCOPES } },
        "settings": {
            "event_subscriptions": { "request_url": events_url, "bot_events": BOT_EVENTS },
            "org_deploy_enabled": false,
            "socket_mode_enabled": false,
            "token_rotation_enabled": false,
        },
    })
}

/// How far a request timestamp may be from now.
pub const REPLAY_WINDOW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature header")]
    MissingHeaders,
    #[error("request timestamp is more than five minutes from now (replayed or clock skew)")]
    Stale,
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks a request's signature against the app's signing secret.
pub fn verify_signature(
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::MissingHeaders);
    };
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Stale)?;
    if (now.timestamp() - sent).abs() > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Stale);
    }
    let Some(hex) = signature.strip_prefix("v0=") else {
        return Err(SignatureError::Mismatch);
    };
    let Ok(given) = hex::decode(hex) else {
        return Err(SignatureError::Mismatch);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `v0=` signature for a body (for tests and tools that call our endpoint).
pub fn sign(signing_secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("v0={}", hex::encode(bytes))
}

/// What the gateway knows about the Slack app.
#[derive(Debug, Clone)]
pub struct SlackApp {
    /// Its account name, routes and channel rules.
    pub account: ChannelAccount,
    /// `signingSecret`: without one the Events API endpoint accepts nothing (Socket Mode needs
    /// none).
    pub signing_secret: Option<Secret>,
}

impl WebhookChannel for SlackApp {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), Refusal> {
        let WebhookRequest { headers, body, .. } = *request;
        let Some(secret) = &self.signing_secret else {
            return Err(Refusal::NotConfigured(
                "slack signingSecret is not configured".into(),
            ));
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        verify_signature(
            secret.expose(),
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            now,
        )
        .map_err(|e| Refusal::Unauthorized(e.to_string()))
    }

    /// A retry (`X-Slack-Retry-Num`) is parsed again: its dedup id drops it at the queue.
    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        parse_event(body, self, now)
    }
}

/// Parses one (verified) events body for `app`.
pub fn parse_event(
    body: &[u8],
    app: &SlackApp,
    now: DateTime<Utc>,
) -> Result<Parsed, WebhookError> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
    match payload["type"].as_str() {
        Some("url_verification") => {
            let challenge = payload["challenge"].as_str().ok_or_else(|| {
                WebhookError::NotAnEvent("url_verification without a challenge".into())
            })?;
            return Ok(Parsed::Answer(json!({ "challenge": challenge })));
        }
        Some("event_callback") => {}
        Some(_) => return Ok(Parsed::Ignored("payload type not handled")),
        None => {
            return Err(WebhookError::NotAnEvent(
                "a Slack events payload needs a type".into(),
            ))
        }
    }
    let event = &payload["event"];
    let event_id = payload["event_id"]
        .as_str()
        .ok_or_else(|| WebhookError::NotAnEvent("event_callback without event_id".into()))?;
    // A message with files is subtype `file_share`: the one subtype a person's message has.
    let file_share = event["subtype"] == "file_share";
    if event.get("bot_id").is_some() || (event.get("subtype").is_some() && !file_share) {
        return Ok(Parsed::Ignored("bot message or message subtype"));
    }
    let is_dm = event["type"] == "message" && event["channel_type"] == "im";
    if !(is_dm || event["type"] == "app_mention") {
        return Ok(Parsed::Ignored("event type not handled"));
    }
    let (Some(user), Some(channel), Some(ts)) = (
        event["user"].as_str(),
        event["channel"].as_str(),
        event["ts"].as_str(),
    ) else {
        return Err(WebhookError::NotAnEvent(
            "message event without user, channel or ts".into(),
        ));
    };
    let thread_ts = event["thread_ts"].as_str().map(str::to_string);
    let (kind, sub, reply_thread) = if is_dm {
        (ChatKind::Dm, None, thread_ts)
    } else {
        // A mention in a channel opens a session per thread, answered in that thread.
        let root = thread_ts.unwrap_or_else(|| ts.to_string());
        (
            ChatKind::Channel,
            Some(SubThread::Thread(root.clone())),
            Some(root),
        )
    };
    app.account.admit(
        Incoming {
            event_id,
            kind,
            chat_id: channel,
            sender: Sender::id(user),
            text: event["text"].as_str().unwrap_or("").to_string(),
            media: event_files(event),
            sub,
            team_id: payload["team_id"].as_str(),
            // An `app_mention` is a mention by definition; the channel's rules still decide.
            addressed: true,
            reply_to: ReplyTarget::Slack(SlackTarget {
                channel: channel.to_string(),
                thread_ts: reply_thread,
            }),
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::config::{AgentRoutes, GroupAccess, GroupEntry, PeerId, ANY_GROUP};
    use crate::model::{Channel, JobMessage};

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/slack/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The app of an owner who listed every channel (`channels: { "*": {} }`).
    fn app() -> SlackApp {
        SlackApp {
            account: ChannelAccount {
                channel: Channel::Slack,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: GroupAccess {
                    groups: [(ANY_GROUP.to_string(), GroupEntry::default())].into(),
                    ..GroupAccess::default()
                },
            },
            signing_secret: None,
        }
    }

    #[test]
    fn a_guest_mentioning_the_bot_in_an_unlisted_channel_is_ignored() {
        let mut unlisted = app();
        unlisted.account.groups = GroupAccess::default();
        let mut members_only = app();
        members_only.account.groups.group_allow_from = vec![PeerId::Text("U0OWNER".into())];
        let body = fixture("app_mention_thread.json");

        let by_default = parse_event(&body, &unlisted, Utc::now()).unwrap();
        let guest = parse_event(&body, &members_only, Utc::now()).unwrap();
        let dm = parse_event(&fixture("message_im.json"), &unlisted, Utc::now()).unwrap();

        assert!(matches!(by_default, Parsed::Ignored(why) if why.contains("not listed")));
        assert!(matches!(guest, Parsed::Ignored(why) if why.contains("not allowed")));
        assert!(
            matches!(dm, Parsed::Queue { .. }),
            "DMs follow dmPolicy, not the channel rules"
        );
    }

    fn job(name: &str) -> JobMessage {
        match parse_event(&fixture(name), &app(), Utc::now()).unwrap() {
            Parsed::Queue { mut jobs, .. } if jobs.len() == 1 => jobs.remove(0),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn slacks_documented_example_signature_verifies() {
        // The example from Slack's "Verifying requests from Slack" guide.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let now = DateTime::from_timestamp(1531420618, 0).unwrap();
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(
            verify_signature(SECRET, Some("1531420618"), Some(signature), body, now),
            Ok(())
        );
        assert_eq!(sign(SECRET, 1531420618, body), signature);
    }

    #[test]
    fn a_request_signed_with_the_right_secret_six_minutes_ago_is_refused() {
        let body = fixture("message_im.json");
        let now = Utc::now();
        let then = now.timestamp() - 360;
        let signature = sign(SECRET, then, &body);
        assert_eq!(
            verify_signature(
                SECRET,
                Some(&then.to_string()),
                Some(&signature),
                &body,
                now
            ),
            Err(SignatureError::Stale)
        );
        let future = now.timestamp() + 360;
        let signature = sign(SECRET, future, &body);
        assert_eq!(
            verify_signature(
                SECRET,
                Some(&future.to_string()),
                Some(&signature),
                &body,
                now
            ),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_signature_over_a_different_body_or_with_a_wrong_secret_is_refused() {
        let now = Utc::now();
        let ts = now.timestamp();
        let signature = sign(SECRET, ts, b"{\"a\":1}");
        assert_eq!(
            verify_signature(
                SECRET,
                Some(&ts.to_string()),
                Some(&signature),
                b"{\"a\":2}",
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(
                "other",
                Some(&ts.to_string()),
                Some(&signature),
                b"{\"a\":1}",
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, Some(&ts.to_string()), Some("v0=zz"), b"", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, None, Some(&signature), b"", now),
            Err(SignatureError::MissingHeaders)
        );
        assert_eq!(
            verify_signature(SECRET, Some(&ts.to_string()), None, b"", now),
            Err(SignatureError::MissingHeaders)
        );
    }

    #[test]
    fn url_verification_returns_the_challenge() {
        let parsed = parse_event(&fixture("url_verification.json"), &app(), Utc::now()).unwrap();
        assert_eq!(
            parsed,
            Parsed::Answer(json!({
                "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
            }))
        );
    }

    #[test]
    fn a_dm_becomes_a_dm_job() {
        let job = job("message_im.json");
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:slack:dm:U2147483697"
        );
        assert_eq!(job.inbound.event_id, "slack:default:Ev0PV52K25");
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Slack(SlackTarget {
                channel: "D0PNCRP9N".into(),
                thread_ts: None
            }))
        );
    }

    #[test]
    fn a_binding_on_the_channel_or_the_team_picks_the_agent() {
        let bind = |agent: &str, matches: serde_json::Value| -> crate::config::Binding {
            serde_json::from_value(serde_json::json!({"agentId": agent, "match": matches})).unwrap()
        };
        let mut app = app();
        app.account.routes = Arc::new(AgentRoutes {
            bindings: vec![
                bind(
                    "team",
                    serde_json::json!({"channel": "slack", "teamId": "T123ABC456"}),
                ),
                bind(
                    "ops",
                    serde_json::json!({"channel": "slack", "peer": {"kind": "channel", "id": "C024BE91L"}}),
                ),
            ],
            default_agent: "main".into(),
            ..AgentRoutes::default()
        });
        let job_for = |name: &str| match parse_event(&fixture(name), &app, Utc::now()).unwrap() {
            Parsed::Queue { mut jobs, .. } if jobs.len() == 1 => Box::new(jobs.remove(0)),
            other => panic!("{other:?}"),
        };
        let threaded = job_for("app_mention_thread.json");
        assert_eq!(threaded.agent_id, "ops");
        assert_eq!(
            threaded.session_key.to_string(),
            "agent:ops:slack:channel:C024BE91L:thread:1700000000.000100"
        );
        let dm = job_for("message_im.json");
        assert_eq!(
            (dm.agent_id.as_str(), dm.session_key.to_string().as_str()),
            ("team", "agent:team:slack:dm:U2147483697")
        );
    }

    #[test]
    fn a_mention_in_a_thread_keeps_the_thread() {
        let threaded = job("app_mention_thread.json");
        assert_eq!(
            threaded.session_key.to_string(),
            "agent:main:slack:channel:C024BE91L:thread:1700000000.000100"
        );
        assert_eq!(
            threaded.reply_to,
            Some(ReplyTarget::Slack(SlackTarget {
                channel: "C024BE91L".into(),
                thread_ts: Some("1700000000.000100".into())
            }))
        );
        let top = job("app_mention.json");
        assert_eq!(
            top.reply_to,
            Some(ReplyTarget::Slack(SlackTarget {
                channel: "C024BE91L".into(),
                thread_ts: Some("1700000123.000200".into())
            })),
            "a top-level mention is answered in a new thread"
        );
    }

    #[test]
    fn bot_messages_and_subtypes_are_dropped() {
        for name in ["bot_message.json", "message_changed.json"] {
            let parsed = parse_event(&fixture(name), &app(), Utc::now()).unwrap();
            assert_eq!(
                parsed,
                Parsed::Ignored("bot message or message subtype"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_file_share_is_a_job_with_its_files() {
        let job = match parse_event(&fixture("file_share.json"), &app(), Utc::now()).unwrap() {
            Parsed::Queue { mut jobs, .. } if jobs.len() == 1 => Box::new(jobs.remove(0)),
            other => panic!("{other:?}"),
        };

        assert_eq!(job.inbound.text, "what is this?");
        assert_eq!(
            job.inbound.media,
            vec![MediaRef {
                kind: MediaKind::Image,
                source: MediaSource::Slack {
                    url: "https://files.slack.com/files-pri/T061EG9R6-F0A1B2C3D/download/chart.png"
                        .into()
                },
                name: Some("chart.png".into()),
                mime: Some("image/png".into()),
                size: Some(2048),
            }]
        );
    }

    #[test]
    fn bodies_that_are_not_events_are_errors() {
        assert!(matches!(
            parse_event(b"", &app(), Utc::now()),
            Err(WebhookError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_event(b"[1,2]", &app(), Utc::now()),
            Err(WebhookError::NotAnEvent(_))
        ));
        assert!(matches!(
            parse_event(
                br#"{"type":"event_callback","event":{}}"#,
                &app(),
                Utc::now()
            ),
            Err(WebhookError::NotAnEvent(_))
        ));
    }
}
