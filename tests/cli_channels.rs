//! `clawgate telegram set-webhook` against a fake Bot API that speaks Telegram's wire format,
//! `clawgate slack manifest`, Discord's setup commands and `clawgate matrix registration`.

#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;

use std::path::Path;
use std::sync::Arc;

use fakes::{Fakes, Reply};
use serde_json::Value;

async fn fake_telegram() -> Fakes {
    Fakes::start(Arc::new(|_, _| Reply::text("unused"))).await
}

async fn clawgate(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("TELEGRAM_WEBHOOK_SECRET")
        .env_remove("TELEGRAM_API_BASE")
        .output()
        .await
        .unwrap()
}

fn write_config(dir: &Path, api_base: &str, default_secret: Option<&str>) -> std::path::PathBuf {
    let secret = default_secret
        .map(|s| format!("webhookSecret: \"{s}\","))
        .unwrap_or_default();
    let path = dir.join("clawgate.json5");
    std::fs::write(
        &path,
        format!(
            r#"{{ channels: {{ telegram: {{
                apiBase: "{api_base}", botToken: "111:default-token", {secret}
                accounts: {{ work: {{ botToken: "222:work-token", webhookSecret: "work_secret-2" }} }},
            }} }} }}"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn set_webhook_sends_the_configured_secret_and_the_handled_update_types() {
    let telegram = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &telegram.base_url, Some("configured_secret-1"));

    let out = clawgate(
        &config,
        &[
            "telegram",
            "set-webhook",
            "--url",
            "https://bot.example.com/telegram",
        ],
    )
    .await;

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = telegram.calls("/bot111:default-token/setWebhook");
    assert_eq!(calls.len(), 1, "{:?}", telegram.calls(""));
    let body = &calls[0].body;
    assert_eq!(body["url"], "https://bot.example.com/telegram");
    assert_eq!(body["secret_token"], "configured_secret-1");
    let allowed: Vec<&str> = body["allowed_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(allowed.contains(&"message") && allowed.contains(&"callback_query"));
    assert!(
        out.stdout.is_empty(),
        "a configured secret is never printed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("configured_secret-1"), "{stderr}");
}

#[tokio::test]
async fn set_webhook_without_a_secret_generates_one_and_prints_it_once() {
    let telegram = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &telegram.base_url, None);

    let out = clawgate(
        &config,
        &[
            "telegram",
            "set-webhook",
            "--url",
            "https://h.example/telegram",
        ],
    )
    .await;

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let printed = printed.trim();
    assert_eq!(printed.len(), 64, "{printed:?}");
    assert!(printed.chars().all(|c| c.is_ascii_hexdigit()));
    let calls = telegram.calls("/setWebhook");
    assert_eq!(calls[0].body["secret_token"], printed);
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhookSecret"));
}

#[tokio::test]
async fn set_webhook_for_a_named_account_uses_that_bot() {
    let telegram = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &telegram.base_url, Some("configured_secret-1"));

    let out = clawgate(
        &config,
        &[
            "telegram",
            "set-webhook",
            "--account",
            "work",
            "--url",
            "https://h.example/telegram/work",
        ],
    )
    .await;

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = telegram.calls("/bot222:work-token/setWebhook");
    assert_eq!(calls.len(), 1, "{:?}", telegram.calls(""));
    assert_eq!(calls[0].body["secret_token"], "work_secret-2");
}

#[tokio::test]
async fn set_webhook_refuses_plain_http_and_unknown_accounts_without_calling_telegram() {
    let telegram = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &telegram.base_url, Some("configured_secret-1"));

    let http = clawgate(
        &config,
        &[
            "telegram",
            "set-webhook",
            "--url",
            "http://h.example/telegram",
        ],
    )
    .await;
    let unknown = clawgate(
        &config,
        &[
            "telegram",
            "set-webhook",
            "--account",
            "nope",
            "--url",
            "https://h.example/telegram/nope",
        ],
    )
    .await;

    assert_eq!(http.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&http.stderr).contains("https://"));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"nope\""));
    assert!(telegram.calls("").is_empty());
}

#[tokio::test]
async fn slack_manifest_points_the_events_api_at_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none.json");

    let out = clawgate(
        &config,
        &[
            "slack",
            "manifest",
            "--url",
            "https://h.example/slack/events",
        ],
    )
    .await;

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = &manifest["settings"]["event_subscriptions"];
    assert_eq!(events["request_url"], "https://h.example/slack/events");
    assert_eq!(
        events["bot_events"],
        serde_json::json!(["app_mention", "message.im"])
    );
    let scopes = manifest["oauth_config"]["scopes"]["bot"]
        .as_array()
        .unwrap();
    assert!(scopes.iter().any(|s| s == "chat:write"));
}

#[tokio::test]
async fn discord_register_commands_puts_ask_new_and_status_in_the_guild_with_the_bot_token() {
    let discord = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{ channels: {{ discord: {{ apiBase: "{}/api/v10", token: "{}", applicationId: "{}" }} }} }}"#,
            discord.base_url,
            fakes::discord::DISCORD_TOKEN,
            fakes::discord::DISCORD_BOT
        ),
    )
    .unwrap();
    let no_token = dir.path().join("no-token.json5");
    std::fs::write(
        &no_token,
        r#"{ channels: { discord: { applicationId: "1150000000000000001" } } }"#,
    )
    .unwrap();

    let out = clawgate(
        &config,
        &[
            "discord",
            "register-commands",
            "--guild",
            "1100000000000000001",
        ],
    )
    .await;
    let refused = clawgate(&no_token, &["discord", "register-commands"]).await;
    let invite = clawgate(&config, &["discord", "invite-url"]).await;

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = discord.calls("/discord/commands");
    assert_eq!(calls.len(), 1, "the token-less run made no call");
    let names: Vec<&str> = calls[0]
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ask", "new", "status"]);
    assert_eq!(calls[0].body[0]["options"][0]["required"], true);
    assert_eq!(
        calls[0].auth.as_deref(),
        Some(format!("Bot {}", fakes::discord::DISCORD_TOKEN).as_str())
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DISCORD_BOT_TOKEN"));
    let url = String::from_utf8_lossy(&invite.stdout);
    assert!(
        url.contains("client_id=1150000000000000001") && url.contains("applications.commands"),
        "{url}"
    );
}

#[tokio::test]
async fn whatsapp_verify_token_prints_a_fresh_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json5");
    std::fs::write(&config, "{}").unwrap();

    let first = clawgate(&config, &["whatsapp", "verify-token"]).await;
    let second = clawgate(&config, &["whatsapp", "verify-token"]).await;

    let token = String::from_utf8_lossy(&first.stdout).trim().to_string();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(token, String::from_utf8_lossy(&second.stdout).trim());
}

#[tokio::test]
async fn matrix_registration_makes_new_tokens_or_prints_the_configured_ones() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.json5");
    std::fs::write(
        &fresh,
        r#"{ channels: { matrix: { userId: "@clawgate:example.org" } } }"#,
    )
    .unwrap();
    let configured = dir.path().join("configured.json5");
    std::fs::write(
        &configured,
        r#"{ channels: { matrix: { userId: "@clawgate:example.org", asToken: "as-kept", hsToken: "hs-kept" } } }"#,
    )
    .unwrap();

    let made = clawgate(
        &fresh,
        &["matrix", "registration", "--url", "https://gw.example.org/"],
    )
    .await;
    let kept = clawgate(
        &configured,
        &["matrix", "registration", "--url", "http://10.0.0.5:18789"],
    )
    .await;
    let bad_url = clawgate(
        &fresh,
        &["matrix", "registration", "--url", "gw.example.org"],
    )
    .await;

    let yaml = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(yaml.contains("url: 'https://gw.example.org'\n"), "{yaml}");
    let token_of = |key: &str| {
        let line = yaml
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_string();
        line.trim_start_matches(key)
            .trim_matches(|c| c == ' ' || c == '\'')
            .to_string()
    };
    let (as_token, hs_token) = (token_of("as_token:"), token_of("hs_token:"));
    assert_eq!((as_token.len(), hs_token.len()), (64, 64), "{yaml}");
    assert_ne!(as_token, hs_token);
    assert!(String::from_utf8_lossy(&made.stderr).contains("MATRIX_HS_TOKEN"));
    let kept_yaml = String::from_utf8_lossy(&kept.stdout);
    assert!(kept_yaml.contains("as_token: 'as-kept'") && kept_yaml.contains("hs_token: 'hs-kept'"));
    assert!(!bad_url.status.success());
    assert!(bad_url.stdout.is_empty());
}
