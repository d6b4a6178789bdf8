//! `clawgate config validate|show`: check a config file and list every problem with its key
//! path (and, when it is valid, who may reach the agent through each channel), or print the
//! effective config with secrets redacted.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use infra::config::{Config, ConfigError};

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Exit 0 when the config is valid; otherwise list every problem and exit 1.
    Validate,
    /// Print the effective config (file, defaults and environment) with secrets redacted.
    Show,
}

pub fn run(action: ConfigAction, path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = Config::load(path);
    match (action, loaded) {
        (ConfigAction::Validate, Ok((config, path))) => {
            println!("ok: {} is valid", path.display());
            for line in effective_policy(&config) {
                println!("  {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        (ConfigAction::Show, Ok((config, path))) => {
            eprintln!(
                "# effective config from {} (secrets redacted)",
                path.display()
            );
            println!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
            Ok(ExitCode::SUCCESS)
        }
        (_, Err(ConfigError::Invalid { path, issues })) => {
            eprintln!("{}: {} problem(s)", path.display(), issues.len());
            for issue in issues {
                eprintln!("  {issue}");
            }
            Ok(ExitCode::FAILURE)
        }
        (_, Err(other)) => {
            eprintln!("{other}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Who may reach the agent through each configured channel, in words.
fn effective_policy(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(tg) = config.channels.telegram.as_ref().filter(|t| t.enabled) {
        lines.push(format!(
            "telegram {}",
            infra::config::explain_dm(tg.dm_policy, &tg.allow_from)
        ));
        lines.push(format!("telegram {}", tg.group_access().explain()));
    }
    if let Some(slack) = config.channels.slack.as_ref().filter(|s| s.enabled) {
        lines.push(format!(
            "slack {}",
            infra::config::explain_dm(slack.dm_policy, &slack.allow_from)
        ));
        lines.push(format!("slack {}", slack.group_access().explain()));
    }
    if let Some(wa) = config.channels.whatsapp.as_ref().filter(|w| w.enabled) {
        lines.push(format!(
            "whatsapp {}",
            infra::config::explain_dm(wa.dm_policy, &wa.allow_from)
        ));
        lines.push("whatsapp groups: none (the Cloud API delivers one-to-one chats only)".into());
    }
    if let Some(discord) = config.channels.discord.as_ref().filter(|d| d.enabled) {
        lines.push(format!(
            "discord {}",
            infra::config::explain_dm(discord.dm_policy, &discord.allow_from)
        ));
        lines.push(explain_spaces(
            "discord guilds",
            discord.group_policy,
            &discord.guilds,
        ));
    }
    if let Some(matrix) = config.channels.matrix.as_ref().filter(|m| m.enabled) {
        lines.push(format!(
            "matrix {}",
            infra::config::explain_dm(matrix.dm_policy(), &matrix.dm.allow_from)
        ));
        lines.push(format!("matrix {}", matrix.group_access().explain()));
    }
    if let Some(teams) = config.channels.msteams.as_ref().filter(|t| t.enabled) {
        lines.push(format!(
            "msteams {}",
            infra::config::explain_dm(teams.dm_policy, &teams.allow_from)
        ));
        lines.push(explain_spaces(
            "msteams teams and group chats",
            teams.group_policy,
            &teams.teams,
        ));
    }
    if let Some(bb) = config.channels.bluebubbles.as_ref().filter(|b| b.enabled) {
        lines.push(format!(
            "bluebubbles {}",
            infra::config::explain_dm(bb.dm_policy, &bb.allow_from)
        ));
        lines.push(format!("bluebubbles {}", bb.group_access().explain()));
    }
    if let Some(signal) = config.channels.signal.as_ref().filter(|c| c.enabled) {
        lines.push(format!(
            "signal {}",
            infra::config::explain_dm(signal.dm_policy, &signal.allow_from)
        ));
        lines.push(format!("signal {}", signal.group_access().explain()));
    }
    if let Some(zalo) = config.channels.zalo.as_ref().filter(|z| z.enabled) {
        lines.push(format!(
            "zalo {}",
            infra::config::explain_dm(zalo.dm_policy, &zalo.allow_from)
        ));
    }
    if let Some(chat) = config.channels.googlechat.as_ref().filter(|g| g.enabled) {
        lines.push(format!(
            "googlechat {}",
            infra::config::explain_dm(chat.dm_policy, &chat.allow_from)
        ));
        lines.push(format!("googlechat {}", chat.group_access().explain()));
    }
    lines.push("webchat and /hooks/agent: whoever holds the gateway token".into());
    lines
}

/// Who is answered in a channel's workspaces (Discord guilds, Teams teams).
fn explain_spaces(
    what: &str,
    policy: infra::config::GroupPolicy,
    spaces: &std::collections::BTreeMap<String, infra::config::SpaceRules>,
) -> String {
    let listed: Vec<&str> = spaces.keys().map(String::as_str).collect();
    match (policy, listed.is_empty()) {
        (infra::config::GroupPolicy::Disabled, _) => {
            format!("{what}: never answered (groupPolicy \"disabled\")")
        }
        (infra::config::GroupPolicy::Allowlist, true) => {
            format!("{what}: none answered (groupPolicy \"allowlist\" and none listed)")
        }
        _ => format!(
            "{what}: {} (their channels and users as listed), when the bot is mentioned unless requireMention is false",
            if listed.is_empty() { "any".to_string() } else { listed.join(", ") }
        ),
    }
}
