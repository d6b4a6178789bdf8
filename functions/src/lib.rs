//! The webhook functions (docs/architecture.md §2) as one axum [`Router`]: verify, parse, apply the policy
//! that needs no I/O, and make exactly one call, the enqueue. Lambda binaries and
//! `clawgate gateway` serve this same Router.
//!
//! Status codes: bad input is a 4xx with a short body saying which (400 malformed, 401 bad
//! secret, signature or stale timestamp, 404 channel not configured, 413 body over 1 MiB);
//! an event the gateway does not handle is a 200 and is not queued (a non-2xx would make the
//! channel retry it forever); a failed enqueue is a 503 so the channel retries. Nothing here
//! panics on input, and no bad input gets a 500.
//!
//! The Lambda binaries (`src/bin/`) serve this Router through [`lambda`].
//!
//! `scripts/build-lambdas` packages them as zips; `benches/ingress.rs` measures them. WebChat
//! ([`webchat`]) needs the state store, so only `clawgate up` and `clawgate gateway` serve it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use infra::channels::bluebubbles::BlueBubblesApp;
use infra::channels::discord_inbound::DiscordApp;
use infra::channels::googlechat::GoogleChatApp;
use infra::channels::matrix::MatrixAppservice;
use infra::channels::matrix_client::MatrixClient;
use infra::channels::msteams::MsTeamsBot;
use infra::channels::oauth::KeySet;
use infra::channels::signal::SignalApp;
use infra::channels::slack_events::SlackApp;
use infra::channels::telegram_webhook::TelegramBot;
use infra::channels::whatsapp_webhook::WhatsappApp;
use infra::channels::zalo::ZaloApp;
use infra::channels::ChannelAccount;
use infra::config::{
    Config, RouteFacts, Secret, BLUEBUBBLES_WEBHOOK_PATH, MATRIX_TRANSACTIONS_PATH,
    MSTEAMS_WEBHOOK_PATH,
};
use infra::model::{Channel, ChatKind, JobMessage, SessionKey};
use infra::queue::{JobQueue, JobQueueExt, QueueError};
use serde_json::json;
use subtle::ConstantTimeEq;

mod channel_routes;
pub mod discord_gateway;
pub mod hooks;
pub mod lambda;
pub mod local_ingress;
pub mod signal_events;
pub mod slack_socket;
pub mod telegram_poll;
pub mod tick;
pub mod transport;
pub mod wake;
pub mod webchat;
pub mod webchat_files;

/// Bodies over this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handlers need: the queue and the verification secrets.
#[derive(Clone)]
pub struct Ingress {
    pub queue: Arc<dyn JobQueue>,
    /// By account name; the plain `/telegram` route serves `default`.
    pub telegram: HashMap<String, TelegramBot>,
    pub slack: Option<SlackApp>,
    pub whatsapp: Option<WhatsappApp>,
    pub discord: Option<DiscordApp>,
    pub bluebubbles: Option<BlueBubblesApp>,
    /// Signal has no webhook: its daemon's event stream is read by the local ingress.
    pub signal: Option<SignalApp>,
    pub zalo: Option<ZaloApp>,
    pub googlechat: Option<Arc<GoogleChatApp>>,
    pub msteams: Option<Arc<MsTeamsBot>>,
    pub matrix: Option<Arc<MatrixAppservice>>,
    /// Bearer token for `/hooks/agent`; without one the route is closed.
    pub hooks_token: Option<Secret>,
    pub default_agent: String,
    /// The agents a hook may name ([`Config::agent_ids`]).
    pub agents: BTreeSet<String>,
    /// The state store, when this process holds one: `/readyz` checks it too, and
    /// `/hooks/wake` finds the owner's last chat in it.
    pub store: Option<Arc<dyn infra::store::StateStore>>,
    /// Where a `/hooks/wake` event's answer goes, and what counts as "nothing to report"
    /// (`agents.defaults.heartbeat`).
    pub wake: wake::WakeRule,
}

impl Ingress {
    pub fn from_config(config: &Config, queue: Arc<dyn JobQueue>) -> Self {
        let agent = config.default_agent().to_string();
        let routes = Arc::new(config.agent_routes());
        // Every channel's account: its routes, and its group rules where it has its own.
        let account = |channel, name: &str, groups| ChannelAccount {
            channel,
            account: name.to_string(),
            routes: routes.clone(),
            groups,
        };
        let telegram = config
            .channels
            .telegram
            .iter()
            .filter(|t| t.enabled)
            .flat_map(|t| {
                let groups = t.group_access();
                let account = &account;
                t.accounts().map(move |bot| {
                    let ingress = TelegramBot {
                        account: account(Channel::Telegram, bot.name, groups.clone()),
                        username: bot.bot_username.map(str::to_string),
                        secret: bot.webhook_secret.cloned(),
                    };
                    (bot.name.to_string(), ingress)
                })
            })
            .collect();
        let slack = config
            .channels
            .slack
            .as_ref()
            .filter(|s| s.enabled)
            .map(|s| SlackApp {
                account: account(Channel::Slack, "default", s.group_access()),
                signing_secret: s.signing_secret.clone(),
            });
        let whatsapp = config
            .channels
            .whatsapp
            .as_ref()
            .filter(|w| w.enabled)
            .map(|w| WhatsappApp {
                // The Cloud API delivers no group messages.
                account: account(Channel::Whatsapp, "default", Default::default()),
                phone_number_id: w.phone_number_id.clone(),
                app_secret: w.app_secret.clone(),
                verify_token: w.verify_token.clone(),
            });
        let discord = config
            .channels
            .discord
            .as_ref()
            .filter(|d| d.enabled)
            .map(|d| DiscordApp {
                // Group rules are per guild (`DiscordApp::config`).
                account: account(Channel::Discord, "default", Default::default()),
                config: d.clone(),
                bot_user_id: None,
            });
        let bluebubbles = config
            .channels
            .bluebubbles
            .as_ref()
            .filter(|b| b.enabled)
            .map(|b| BlueBubblesApp {
                account: account(Channel::Bluebubbles, "default", b.group_access()),
                password: b.password.clone(),
            });
        let signal = config
            .channels
            .signal
            .as_ref()
            .filter(|c| c.enabled)
            .map(|c| SignalApp {
                account: account(Channel::Signal, "default", c.group_access()),
                number: c.account.clone(),
            });
        let zalo = config
            .channels
            .zalo
            .as_ref()
            .filter(|z| z.enabled)
            .map(|z| ZaloApp {
                // An OA talks to people one-to-one.
                account: account(Channel::Zalo, "default", Default::default()),
                app_id: z.app_id.clone(),
                oa_secret_key: z.oa_secret_key.clone(),
            });
        let googlechat = config
            .channels
            .googlechat
            .as_ref()
            .filter(|g| g.enabled)
            .map(|g| {
                Arc::new(GoogleChatApp {
                    account: account(Channel::Googlechat, "default", g.group_access()),
                    config: g.clone(),
                    keys: KeySet::new(g.jwks_url(), reqwest::Client::new()),
                })
            });
        let msteams = config
            .channels
            .msteams
            .as_ref()
            .filter(|t| t.enabled)
            .map(|t| {
                Arc::new(MsTeamsBot {
                    // Group rules depend on the team: the bot resolves them per activity.
                    account: account(Channel::Msteams, "default", Default::default()),
                    config: t.clone(),
                    keys: KeySet::new(t.open_id_metadata_url(), reqwest::Client::new()),
                })
            });
        let matrix = config
            .channels
            .matrix
            .as_ref()
            .filter(|m| m.enabled)
            .map(|m| {
                Arc::new(MatrixAppservice {
                    account: account(Channel::Matrix, "default", m.group_access()),
                    config: m.clone(),
                    client: MatrixClient::from_config(m, reqwest::Client::new()),
                })
            });
        Ingress {
            queue,
            telegram,
            slack,
            whatsapp,
            discord,
            bluebubbles,
            signal,
            zalo,
            googlechat,
            msteams,
            matrix,
            hooks_token: config.gateway.token.clone(),
            default_agent: agent,
            agents: config.agent_ids().into_iter().map(str::to_string).collect(),
            store: None,
            wake: wake::WakeRule::from_config(config),
        }
    }
}

/// A header's value as text, when it has one.
pub(crate) fn header_text(
    headers: &HeaderMap,
    name: axum::http::header::HeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses what a browser on another site could send: an `Origin` that is not this host's
/// (403), and, when the route takes a JSON body, any other content type (415). A request with
/// no `Origin` (scripts, other servers) passes to the token check.
pub(crate) fn browser_guard(headers: &HeaderMap, json_body: bool) -> Option<Response> {
    use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
    if let Some(origin) = header_text(headers, ORIGIN) {
        let host = header_text(headers, HOST).unwrap_or("");
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Some(reply(
                StatusCode::FORBIDDEN,
                "cross-origin requests are refused",
            ));
        }
    }
    if json_body {
        let json = header_text(headers, CONTENT_TYPE)
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Some(reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
    }
    None
}

/// True when `headers` carry `Authorization: Bearer <token>`, compared in constant time.
pub(crate) fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
}

/// The webhook Router plus WebChat, for a process that holds the state store
/// (`clawgate up`, `clawgate gateway`). `token` guards WebChat and `/hooks/agent` (it is the
/// configured one or the one made on first run); `loopback_only` when the gateway listens on
/// loopback.
pub fn router_with_webchat(
    config: &Config,
    queue: Arc<dyn JobQueue>,
    store: Arc<dyn infra::store::StateStore>,
    token: Secret,
    loopback_only: bool,
    files: Option<Arc<dyn webchat_files::SessionFiles>>,
) -> Router {
    let mut ingress = Ingress::from_config(config, queue.clone());
    ingress.hooks_token = Some(token.clone());
    ingress.store = Some(store.clone());
    router(ingress).merge(webchat::routes(webchat::WebChat {
        queue,
        store,
        token,
        // One agent serves the gateway's WebChat (its conversation list is that agent's), so
        // only a channel-wide binding (`match: {channel: "webchat"}`) moves it.
        agent: config
            .agent_routes()
            .route(&RouteFacts {
                channel: Channel::Webchat,
                account: "default",
                peer_kind: ChatKind::Dm,
                peer_id: "",
                topic: None,
                team_id: None,
            })
            .agent,
        loopback_only,
        files,
    }))
}

/// The Router every deployment serves.
pub fn router(ingress: Ingress) -> Router {
    use channel_routes::{
        bluebubbles, discord, googlechat, matrix, msteams, slack, telegram, telegram_default,
        whatsapp, whatsapp_handshake, zalo,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/telegram", post(telegram_default))
        .route("/telegram/{account}", post(telegram))
        .route("/slack/events", post(slack))
        .route("/whatsapp", get(whatsapp_handshake).post(whatsapp))
        .route("/discord/interactions", post(discord))
        .route(BLUEBUBBLES_WEBHOOK_PATH, post(bluebubbles))
        .route("/zalo", post(zalo))
        .route("/googlechat", post(googlechat))
        .route(MSTEAMS_WEBHOOK_PATH, post(msteams))
        .route(MATRIX_TRANSACTIONS_PATH, put(matrix))
        .route("/hooks/agent", post(hooks::hook))
        .route("/hooks/wake", post(wake::wake))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(ingress))
}

/// How long `/readyz` waits for each dependency.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `/readyz`: 200 when the queue (and the store, where this process holds one) answers, else
/// 503. `/healthz` stays free of calls. Only "ok"/"unreachable" is said: the details (endpoints,
/// errors) go to the log, not to whoever asks.
async fn readyz(State(ingress): State<Arc<Ingress>>) -> Response {
    let queue = match tokio::time::timeout(READY_TIMEOUT, ingress.queue.depth()).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: queue unreachable");
            "unreachable"
        }
        Err(_) => "unreachable",
    };
    let store = match &ingress.store {
        None => None,
        Some(store) => {
            let probe: SessionKey = "agent:main:main".parse().expect("a valid key");
            Some(
                match tokio::time::timeout(READY_TIMEOUT, store.get_session(&probe)).await {
                    Ok(Ok(_)) => "ok",
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "readyz: store unreachable");
                        "unreachable"
                    }
                    Err(_) => "unreachable",
                },
            )
        }
    };
    let ready = queue == "ok" && store.is_none_or(|s| s == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({ "ready": ready, "queue": queue });
    if let Some(store) = store {
        body["store"] = json!(store);
    }
    (status, Json(body)).into_response()
}

pub(crate) fn reply(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

/// The one network call on the ack path.
pub(crate) async fn enqueue(queue: &dyn JobQueue, job: &JobMessage) -> Response {
    match queue.send(job).await {
        Ok(_) => {
            tracing::info!(job = %job.job_id, session = %job.session_key, event = %job.inbound.event_id, "queued");
            reply(StatusCode::OK, "queued")
        }
        Err(QueueError::Rejected(e)) => {
            reply(StatusCode::PAYLOAD_TOO_LARGE, format!("refused: {e}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "enqueue failed; the channel will retry");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue unavailable; retry later",
            )
        }
    }
}
