//! Discord's Gateway WebSocket: DMs and mentions for `clawgate up` and the ingress process
//! (`clawgate worker --ingress`). Identify (or resume), heartbeat, and each `MESSAGE_CREATE`
//! through the same parser as the rest of Discord and into the same queue.
//!
//! Decisions:
//! - The Gateway has no per-event acknowledgement: what it has is resume, which replays every
//!   event after the sequence number the client names. So the sequence number is advanced only
//!   once an event is queued, and, when a state file is given, written there (with the session
//!   id and resume URL) before the next event is read. A crash in between loses nothing: the
//!   restarted process resumes from the last queued event, Discord replays the rest, and the
//!   queue's dedup drops any repeat. A session Discord no longer resumes (Invalid Session) starts
//!   over with Identify, as Discord requires; what it sent meanwhile is gone (Discord keeps no
//!   more), which is the Gateway's limit, not ours.
//! - A heartbeat without its ACK before the next is due means a dead connection: reconnect and
//!   resume. Op 7 (Reconnect) and a closed socket resume too; close codes Discord marks fatal
//!   (4004 bad token, 4013/4014 intents) stop the loop with the reason in the log.
//! - Intents: guilds, guild messages, direct messages and message content (privileged: turn
//!   it on in the Developer Portal, or mentions arrive without text).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use infra::channels::discord_inbound::DiscordApp;
use infra::config::Secret;
use infra::queue::JobQueue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::transport::{next_backoff, queue_parsed, sleep_or_stop};

/// GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = 1 | (1 << 9) | (1 << 12) | (1 << 15);
/// Close codes after which reconnecting cannot help.
const FATAL_CLOSE_CODES: &[u16] = &[4004, 4010, 4011, 4012, 4013, 4014];

/// What resuming needs, kept across reconnects and (in the state file) restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    pub session_id: String,
    pub resume_url: String,
    /// The last event queued.
    pub seq: u64,
}

/// Where the Gateway is and how to sign in.
pub struct GatewaySettings {
    pub http: reqwest::Client,
    pub api_base: String,
    /// Overrides `GET /gateway/bot` (`channels.discord.gatewayUrl`).
    pub gateway_url: Option<String>,
    pub token: Secret,
    /// Where the resume state is kept between runs; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
}

/// Why a connection ended.
enum Ended {
    /// Reconnect and resume.
    Resume(String),
    /// Reconnect with a new Identify.
    Reidentify(String),
    /// Do not reconnect.
    Fatal(String),
}

/// Runs the Gateway until `stop` turns true (or a fatal close).
pub async fn run(
    settings: GatewaySettings,
    mut app: DiscordApp,
    queue: Arc<dyn JobQueue>,
    mut stop: watch::Receiver<bool>,
) {
    let mut resume = settings
        .state_file
        .as_ref()
        .and_then(|p| serde_json::from_slice::<Resume>(&std::fs::read(p).ok()?).ok());
    let mut backoff = Duration::from_secs(1);
    loop {
        let session = connect_and_serve(&settings, &mut app, queue.as_ref(), &mut resume);
        let ended = tokio::select! {
            ended = session => ended,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match ended {
            Ended::Resume(why) => tracing::info!(%why, "discord gateway closed; resuming"),
            Ended::Reidentify(why) => {
                tracing::info!(%why, "discord gateway session ended; identifying again");
                resume = None;
                save(&settings, None);
            }
            Ended::Fatal(why) => {
                tracing::error!(%why, "discord gateway refused the bot; not reconnecting");
                return;
            }
        }
        if sleep_or_stop(&mut stop, backoff).await {
            return;
        }
        backoff = next_backoff(backoff);
    }
}

fn save(settings: &GatewaySettings, resume: Option<&Resume>) {
    let Some(path) = &settings.state_file else {
        return;
    };
    let written = match resume {
        Some(r) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec(r).unwrap_or_default())
                .and_then(|_| std::fs::rename(&tmp, path))
        }
        None => std::fs::remove_file(path).or(Ok(())),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "the discord gateway state could not be saved");
    }
}

async fn gateway_url(settings: &GatewaySettings) -> Result<String, String> {
    if let Some(url) = &settings.gateway_url {
        return Ok(url.clone());
    }
    let answer: Value = settings
        .http
        .get(format!("{}/gateway/bot", settings.api_base))
        .header("authorization", format!("Bot {}", settings.token.expose()))
        .send()
        .await
        .map_err(|e| format!("GET /gateway/bot: {}", e.without_url()))?
        .json()
        .await
        .map_err(|e| format!("GET /gateway/bot: {}", e.without_url()))?;
    answer["url"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("GET /gateway/bot answered no url: {}", answer["message"]))
}

async fn connect_and_serve(
    settings: &GatewaySettings,
    app: &mut DiscordApp,
    queue: &dyn JobQueue,
    resume: &mut Option<Resume>,
) -> Ended {
    let base = match resume {
        Some(r) if !r.resume_url.is_empty() => r.resume_url.clone(),
        _ => match gateway_url(settings).await {
            Ok(url) => url,
            Err(e) => return Ended::Resume(e),
        },
    };
    let mut url = match reqwest::Url::parse(&base) {
        Ok(url) => url,
        Err(e) => return Ended::Resume(format!("the gateway URL {base:?}: {e}")),
    };
    url.query_pairs_mut()
        .append_pair("v", "10")
        .append_pair("encoding", "json");
    let mut socket = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((socket, _)) => socket,
        Err(e) => return Ended::Resume(format!("connecting: {e}")),
    };
    let hello = match next_json(&mut socket).await {
        Some(hello) if hello["op"] == 10 => hello,
        other => return Ended::Resume(format!("expected Hello, got {other:?}")),
    };
    let every = Duration::from_millis(hello["d"]["heartbeat_interval"].as_u64().unwrap_or(41_250));
    let token = settings.token.expose();
    let opening = match resume {
        Some(r) => {
            json!({"op": 6, "d": {"token": token, "session_id": r.session_id, "seq": r.seq}})
        }
        None => json!({"op": 2, "d": {"token": token, "intents": INTENTS,
            "properties": {"os": std::env::consts::OS, "browser": "clawgate", "device": "clawgate"}}}),
    };
    if let Err(e) = socket.send(Message::Text(opening.to_string().into())).await {
        return Ended::Resume(format!("identify: {e}"));
    }
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut acked = true;
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = heartbeat.tick() => {
                if !acked {
                    return Ended::Resume("no heartbeat ACK".into());
                }
                acked = false;
                let seq = resume.as_ref().map(|r| r.seq);
                let beat = json!({"op": 1, "d": seq}).to_string();
                if socket.send(Message::Text(beat.into())).await.is_err() {
                    return Ended::Resume("the heartbeat could not be sent".into());
                }
                continue;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                let code = close.as_ref().map(|c| u16::from(c.code)).unwrap_or(1000);
                let why = format!("closed with {code}");
                return if FATAL_CLOSE_CODES.contains(&code) {
                    Ended::Fatal(why)
                } else {
                    Ended::Resume(why)
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Ended::Resume(e.to_string()),
            None => return Ended::Resume("the socket ended".into()),
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match event["op"].as_u64() {
            Some(0) => {
                if let Err(ended) = dispatch(&event, settings, app, queue, resume).await {
                    return ended;
                }
            }
            Some(1) => heartbeat.reset_immediately(),
            Some(7) => return Ended::Resume("Discord asked to reconnect".into()),
            Some(9) if event["d"] == true => {
                return Ended::Resume("invalid session (resumable)".into())
            }
            Some(9) => return Ended::Reidentify("invalid session".into()),
            Some(11) => acked = true,
            _ => {}
        }
    }
}

/// One dispatch (op 0): READY starts a session; MESSAGE_CREATE is queued, then its sequence
/// number is recorded. `Err` when the queue refused: the connection is dropped without
/// recording it, so a resume brings the event again.
async fn dispatch(
    event: &Value,
    settings: &GatewaySettings,
    app: &mut DiscordApp,
    queue: &dyn JobQueue,
    resume: &mut Option<Resume>,
) -> Result<(), Ended> {
    let seq = event["s"].as_u64();
    let d = &event["d"];
    match event["t"].as_str() {
        Some("READY") => {
            app.bot_user_id = d["user"]["id"].as_str().map(str::to_string);
            *resume = Some(Resume {
                session_id: d["session_id"].as_str().unwrap_or("").to_string(),
                resume_url: d["resume_gateway_url"].as_str().unwrap_or("").to_string(),
                seq: seq.unwrap_or(0),
            });
            tracing::info!(bot = ?app.bot_user_id, "discord gateway ready");
        }
        Some("MESSAGE_CREATE") => {
            let parsed = app.parse_gateway_message(d, Utc::now());
            if let Err(e) = queue_parsed(queue, parsed, "discord gateway").await {
                return Err(Ended::Resume(format!(
                    "enqueue failed ({e}); resuming to get the event again"
                )));
            }
        }
        _ => {}
    }
    if let (Some(seq), Some(r)) = (seq, resume.as_mut()) {
        r.seq = seq;
        save(settings, Some(r));
    }
    Ok(())
}

async fn next_json<S>(socket: &mut S) -> Option<Value>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
