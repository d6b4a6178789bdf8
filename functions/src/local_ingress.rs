//! The ingress that needs no public URL, for `clawgate up` and `clawgate worker --ingress`:
//! Telegram long polling, Slack Socket Mode, the Discord Gateway and Signal's signal-cli
//! event stream, each started when its
//! channel is configured for it, each putting events on the same queue the webhooks do.
//! [`start`] returns the report's lines (`ok`, text), one per transport started or refused.

use std::path::Path;
use std::sync::Arc;

use infra::config::Config;
use infra::queue::JobQueue;
use tokio::sync::watch;

/// Starts every transport `config` calls for; the report's lines.
pub async fn start(
    config: &Config,
    queue: Arc<dyn JobQueue>,
    state_dir: &Path,
    stop: watch::Receiver<bool>,
) -> Vec<(bool, String)> {
    let mut lines = telegram_polling(config, queue.clone(), stop.clone()).await;
    lines.extend(slack_socket_mode(config, queue.clone(), stop.clone()));
    lines.extend(discord_gateway(
        config,
        queue.clone(),
        state_dir,
        stop.clone(),
    ));
    lines.extend(signal_events(config, queue, stop));
    lines
}

/// Signal when `channels.signal` names the bot's `account`: the signal-cli daemon's event
/// stream (`signal_events`).
fn signal_events(
    config: &Config,
    queue: Arc<dyn JobQueue>,
    stop: watch::Receiver<bool>,
) -> Option<(bool, String)> {
    let signal = config.channels.signal.as_ref().filter(|c| c.enabled)?;
    signal.account.as_ref()?;
    let app = crate::Ingress::from_config(config, queue.clone()).signal?;
    let base = signal.http_url().to_string();
    tokio::spawn(crate::signal_events::run(
        reqwest::Client::new(),
        base.clone(),
        app,
        queue,
        stop,
    ));
    Some((
        true,
        format!("Signal: signal-cli's event stream at {base}, no public URL needed"),
    ))
}

/// Long-polls each Telegram bot that has neither a `webhookSecret` nor a `webhookUrl` (nothing
/// can reach this machine, and OpenClaw's default is polling too), after checking it has no
/// webhook set; the report's lines, one per such bot. Decision: a bot with either key is served
/// by webhook as before, so adding a public URL later is a config change, never a race.
async fn telegram_polling(
    config: &Config,
    queue: Arc<dyn JobQueue>,
    stop: watch::Receiver<bool>,
) -> Vec<(bool, String)> {
    let Some(tg) = config.channels.telegram.as_ref().filter(|t| t.enabled) else {
        return Vec::new();
    };
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(
            crate::telegram_poll::LONG_POLL_SECONDS + 20,
        ))
        .build()
        .unwrap_or_default();
    let base = tg.api_base.as_deref().unwrap_or("https://api.telegram.org");
    let mut bots = crate::Ingress::from_config(config, queue.clone()).telegram;
    let mut lines = Vec::new();
    for account in tg.accounts() {
        let (Some(token), None, None) = (
            account.bot_token,
            account.webhook_secret,
            account.webhook_url,
        ) else {
            continue;
        };
        let Some(bot) = bots.remove(account.name) else {
            continue;
        };
        let client =
            infra::channels::telegram::TelegramClient::new(http.clone(), base, token.clone());
        let name = account.name;
        match crate::telegram_poll::check_no_webhook(&client).await {
            Ok(()) => {
                tokio::spawn(crate::telegram_poll::run(
                    client,
                    bot,
                    queue.clone(),
                    stop.clone(),
                ));
                lines.push((true, format!("Telegram ({name}): long polling, no public URL needed (a webhookSecret or webhookUrl switches it to the webhook)")));
            }
            Err(e) => lines.push((false, format!("Telegram ({name}): {e}"))),
        }
    }
    lines
}

/// Slack over Socket Mode when the app has an `appToken` and no `signingSecret` (nothing can
/// reach this machine): the report's line, if it applies.
fn slack_socket_mode(
    config: &Config,
    queue: Arc<dyn JobQueue>,
    stop: watch::Receiver<bool>,
) -> Option<(bool, String)> {
    let slack = config.channels.slack.as_ref().filter(|s| s.enabled)?;
    let (Some(_), Some(app_token), None) =
        (&slack.bot_token, &slack.app_token, &slack.signing_secret)
    else {
        return None;
    };
    let ingress = crate::Ingress::from_config(config, queue.clone()).slack?;
    let base = slack
        .api_base
        .clone()
        .unwrap_or_else(|| "https://slack.com".to_string());
    tokio::spawn(crate::slack_socket::run(
        reqwest::Client::new(),
        base,
        app_token.clone(),
        ingress,
        queue,
        stop,
    ));
    Some((
        true,
        "Slack: Socket Mode, no public URL needed (a signingSecret switches it to the Events API)"
            .into(),
    ))
}

/// The Discord Gateway when the app has a bot `token`: DMs and mentions. Its resume state is
/// kept in `<state dir>/discord-gateway.json`, so a restart resumes where the last queued
/// event was (`discord_gateway`).
fn discord_gateway(
    config: &Config,
    queue: Arc<dyn JobQueue>,
    state_dir: &Path,
    stop: watch::Receiver<bool>,
) -> Option<(bool, String)> {
    let discord = config.channels.discord.as_ref().filter(|d| d.enabled)?;
    let token = discord.token.clone()?;
    let app = crate::Ingress::from_config(config, queue.clone()).discord?;
    let settings = crate::discord_gateway::GatewaySettings {
        http: reqwest::Client::new(),
        api_base: discord.api_base().to_string(),
        gateway_url: discord.gateway_url.clone(),
        token,
        state_file: Some(state_dir.join("discord-gateway.json")),
    };
    tokio::spawn(crate::discord_gateway::run(settings, app, queue, stop));
    Some((
        true,
        "Discord: Gateway (DMs and mentions), no public URL needed; slash commands need the Interactions endpoint".into(),
    ))
}
