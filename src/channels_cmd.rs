//! `clawgate telegram set-webhook`, `clawgate slack manifest`, `clawgate whatsapp
//! verify-token|check`, `clawgate discord register-commands|invite-url` and `clawgate matrix
//! registration`: pointing a channel at the gateway.
//!
//! Decisions:
//! - The webhook URL must be `https://`: Telegram refuses anything else, and Slack's Events
//!   API requires it.
//! - When the account has no `webhookSecret`, one is generated and printed once on stdout,
//!   alone, so it can be piped into a secret store; the instructions go to stderr. It is never
//!   logged. The gateway refuses every update until the same secret is configured, so a
//!   forgotten secret fails closed.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use infra::channels::discord::DiscordClient;
use infra::channels::telegram::TelegramClient;
use infra::channels::{discord_inbound, slack_events, telegram_webhook};
use infra::config::{Config, TelegramConfig};

#[derive(Subcommand)]
pub enum TelegramAction {
    /// Register the gateway's URL as the bot's webhook (setWebhook with a secret token).
    SetWebhook {
        /// The public URL Telegram will POST updates to, e.g. https://host/telegram.
        #[arg(long)]
        url: String,
        /// Which bot (`channels.telegram.accounts.<name>`); default: the top-level bot.
        #[arg(long, default_value = TelegramConfig::DEFAULT_ACCOUNT)]
        account: String,
    },
    /// Remove the bot's webhook (deleteWebhook), so `clawgate up` can long-poll instead.
    DeleteWebhook {
        /// Which bot (`channels.telegram.accounts.<name>`); default: the top-level bot.
        #[arg(long, default_value = TelegramConfig::DEFAULT_ACCOUNT)]
        account: String,
    },
}

#[derive(Subcommand)]
pub enum SlackAction {
    /// Print a Slack app manifest (JSON) whose Events API request URL is `--url`.
    Manifest {
        /// The public URL of the gateway's Slack route, e.g. https://host/slack/events.
        #[arg(long)]
        url: String,
        /// The app's and bot user's display name.
        #[arg(long, default_value = "clawgate")]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum WhatsappAction {
    /// Make a verify token for the Meta app's webhook (printed once on stdout).
    VerifyToken,
    /// Do Meta's subscription handshake against the gateway's URL with the configured
    /// verifyToken, as Meta will when you save the Callback URL.
    Check {
        /// The public URL of the gateway's WhatsApp route, e.g. https://host/whatsapp (or
        /// http://127.0.0.1:<port>/whatsapp for a gateway on this machine).
        #[arg(long)]
        url: String,
    },
}

#[derive(Subcommand)]
pub enum DiscordAction {
    /// Register the slash commands (/ask, /new, /status) with Discord.
    RegisterCommands {
        /// Register them in one guild (they appear at once there) instead of globally.
        #[arg(long)]
        guild: Option<String>,
    },
    /// Print the URL that adds the bot to a server with the permissions it needs.
    InviteUrl,
}

#[derive(Subcommand)]
pub enum MatrixAction {
    /// Print the application service registration file (YAML) for the homeserver: the configured
    /// asToken/hsToken, or new ones (then put them in the config too, as printed on stderr).
    Registration {
        /// The gateway's base URL as the homeserver reaches it, e.g. https://host (the homeserver
        /// adds /_matrix/app/v1/transactions/…).
        #[arg(long)]
        url: String,
    },
}

/// View Channels, Send Messages, Attach Files, Read Message History, Send Messages in Threads.
const DISCORD_PERMISSIONS: u64 = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 38);

fn check_url(url: &str) -> anyhow::Result<()> {
    match url.strip_prefix("https://") {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => bail!("--url must be an https:// URL with a host (got {url:?})"),
    }
}

pub async fn telegram(config: Config, action: TelegramAction) -> anyhow::Result<ExitCode> {
    let (url, account) = match action {
        TelegramAction::SetWebhook { url, account } => (url, account),
        TelegramAction::DeleteWebhook { account } => {
            let client = telegram_client(&config, &account)?;
            client
                .delete_webhook()
                .await
                .context("deleteWebhook failed")?;
            eprintln!("telegram webhook for account {account:?} removed; `clawgate up` long-polls this bot when it has no webhookSecret or webhookUrl");
            return Ok(ExitCode::SUCCESS);
        }
    };
    check_url(&url)?;
    let Some(tg) = config.channels.telegram.as_ref() else {
        bail!("channels.telegram is not configured: set TELEGRAM_BOT_TOKEN or channels.telegram.botToken");
    };
    let Some(bot) = tg.account(&account) else {
        bail!("no telegram account {account:?}: add it under channels.telegram.accounts");
    };
    let Some(token) = bot.bot_token else {
        bail!(
            "telegram account {account:?} has no botToken: set TELEGRAM_BOT_TOKEN or its botToken"
        );
    };
    let (secret, generated) = match bot.webhook_secret {
        Some(secret) => (secret.clone(), false),
        None => (telegram_webhook::generate_secret_token(), true),
    };
    let base = tg.api_base.as_deref().unwrap_or("https://api.telegram.org");
    let client = TelegramClient::new(reqwest::Client::new(), base, token.clone());
    client
        .set_webhook(&url, &secret, telegram_webhook::ALLOWED_UPDATES)
        .await
        .context("setWebhook failed")?;
    eprintln!("telegram webhook for account {account:?} set to {url}");
    if generated {
        let key = if account == TelegramConfig::DEFAULT_ACCOUNT {
            "channels.telegram.webhookSecret (or TELEGRAM_WEBHOOK_SECRET)".to_string()
        } else {
            format!("channels.telegram.accounts.{account}.webhookSecret")
        };
        eprintln!("generated a webhook secret (printed below, once); put it in {key} where the gateway runs, or every update gets 401:");
        println!("{}", secret.expose());
    }
    Ok(ExitCode::SUCCESS)
}

/// The Bot API client of account `account`.
fn telegram_client(config: &Config, account: &str) -> anyhow::Result<TelegramClient> {
    let Some(tg) = config.channels.telegram.as_ref() else {
        bail!("channels.telegram is not configured: set TELEGRAM_BOT_TOKEN or channels.telegram.botToken");
    };
    let Some(token) = tg.account(account).and_then(|a| a.bot_token.cloned()) else {
        bail!("telegram account {account:?} has no botToken");
    };
    let base = tg.api_base.as_deref().unwrap_or("https://api.telegram.org");
    Ok(TelegramClient::new(reqwest::Client::new(), base, token))
}

pub fn slack(action: SlackAction) -> anyhow::Result<ExitCode> {
    let SlackAction::Manifest { url, name } = action;
    check_url(&url)?;
    let manifest = slack_events::app_manifest(&name, &url);
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    eprintln!("create the app from this manifest at https://api.slack.com/apps, install it, then set SLACK_BOT_TOKEN (xoxb-…) and SLACK_SIGNING_SECRET where the gateway and workers run");
    Ok(ExitCode::SUCCESS)
}

pub async fn whatsapp(config: Config, action: WhatsappAction) -> anyhow::Result<ExitCode> {
    match action {
        WhatsappAction::VerifyToken => {
            let token = telegram_webhook::generate_secret_token();
            eprintln!("a verify token (printed below, once): put it in channels.whatsapp.verifyToken (or WHATSAPP_VERIFY_TOKEN) where the gateway runs, and in the Meta app under WhatsApp → Configuration → Verify token");
            println!("{}", token.expose());
        }
        WhatsappAction::Check { url } => {
            // Meta takes only https; a gateway on this machine can be checked before it is
            // exposed.
            let local = ["http://127.0.0.1:", "http://localhost:"]
                .iter()
                .any(|p| url.starts_with(p));
            if !local {
                check_url(&url)?;
            }
            let Some(token) = config
                .channels
                .whatsapp
                .as_ref()
                .and_then(|w| w.verify_token.clone())
            else {
                bail!("channels.whatsapp.verifyToken is not set (WHATSAPP_VERIFY_TOKEN); make one with `clawgate whatsapp verify-token`");
            };
            let challenge = telegram_webhook::generate_secret_token();
            let mut asked = reqwest::Url::parse(&url).context("--url does not parse")?;
            asked
                .query_pairs_mut()
                .append_pair("hub.mode", "subscribe")
                .append_pair("hub.verify_token", token.expose())
                .append_pair("hub.challenge", challenge.expose());
            let response = reqwest::Client::new()
                .get(asked)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GET {url}: {}", e.without_url()))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if !status.is_success() || body != challenge.expose() {
                bail!("{url} did not answer the handshake (HTTP {status}: {body:.200}); Meta would refuse this Callback URL");
            }
            eprintln!("{url} answers Meta's handshake: save it as the Callback URL and subscribe to the messages field");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn discord(config: Config, action: DiscordAction) -> anyhow::Result<ExitCode> {
    let Some(discord) = config.channels.discord.as_ref() else {
        bail!("channels.discord is not configured: set DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID, or channels.discord");
    };
    let Some(application) = discord.application_id.as_deref() else {
        bail!("channels.discord.applicationId is not set (DISCORD_APPLICATION_ID)");
    };
    match action {
        DiscordAction::InviteUrl => {
            println!("https://discord.com/oauth2/authorize?client_id={application}&scope=bot%20applications.commands&permissions={DISCORD_PERMISSIONS}");
        }
        DiscordAction::RegisterCommands { guild } => {
            if discord.token.is_none() {
                bail!("channels.discord.token is not set (DISCORD_BOT_TOKEN)");
            }
            let client = DiscordClient::from_config(discord, reqwest::Client::new());
            let count = client
                .register_commands(
                    application,
                    guild.as_deref(),
                    &discord_inbound::command_definitions(),
                )
                .await
                .context("registering the commands failed")?;
            let scope = guild.map_or(
                "globally (they may take up to an hour to appear)".to_string(),
                |g| format!("in guild {g}"),
            );
            eprintln!("{count} commands registered {scope}; set the application's Interactions Endpoint URL to https://<gateway>/discord/interactions");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `clawgate matrix registration`: the file goes to stdout, what to do with it to stderr.
pub fn matrix(config: &Config, action: MatrixAction) -> anyhow::Result<ExitCode> {
    let MatrixAction::Registration { url } = action;
    let parsed = reqwest::Url::parse(&url).context("--url is not a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("--url must be the gateway's http(s) base URL (got {url:?})");
    }
    let matrix = config.channels.matrix.clone().unwrap_or_default();
    let Some(user_id) = matrix.user_id.as_deref() else {
        bail!("set channels.matrix.userId (or MATRIX_USER_ID) to the bot's id, like @clawgate:example.org");
    };
    let mut generated = vec![];
    let mut token = |configured: Option<&infra::config::Secret>, key: &'static str| {
        configured.cloned().unwrap_or_else(|| {
            generated.push(key);
            telegram_webhook::generate_secret_token()
        })
    };
    let as_token = token(matrix.as_token.as_ref(), "asToken (MATRIX_AS_TOKEN)");
    let hs_token = token(matrix.hs_token.as_ref(), "hsToken (MATRIX_HS_TOKEN)");
    print!(
        "{}",
        infra::channels::matrix::registration(
            url.trim_end_matches('/'),
            user_id,
            as_token.expose(),
            hs_token.expose()
        )
    );
    if !generated.is_empty() {
        eprintln!(
            "generated {}: copy them from the file into channels.matrix where the gateway and workers run",
            generated.join(" and ")
        );
    }
    eprintln!("add the file to the homeserver's app_service_config_files (Synapse) and restart it; then invite {user_id} to a DM");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn webhook_urls_must_be_https_with_a_host() {
        assert!(check_url("https://bot.example.com/telegram").is_ok());
        assert!(check_url("http://bot.example.com/telegram").is_err());
        assert!(check_url("https:///telegram").is_err());
        assert!(check_url("bot.example.com").is_err());
    }
}
