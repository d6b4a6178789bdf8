//! `clawgate doctor`: every check `up` makes, re-run at any time and probed for real. The
//! config; the model (its provider's model list: no tokens spent); each Telegram bot (`getMe`,
//! `getWebhookInfo`: the registered URL, pending updates, the last delivery error); Slack
//! (`auth.test`); Docker and the sandbox image; the queue, its dead-letter queue and the store.
//! Each finding comes with its fix; the exit code is 1 when any is a problem.
//!
//! Decisions:
//! - A check that cannot finish in [`CHECK_TIMEOUT`] is a problem, so a hung dependency cannot
//!   hang the doctor.
//! - Without `webhookUrl`, the right Telegram webhook is one whose path is the gateway's
//!   (`/telegram`, or `/telegram/<account>`) over HTTPS; with it, exactly that URL.
//! - No secret is printed: findings name keys and variables, never their values.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use infra::channels::slack::SlackClient;
use infra::channels::telegram::TelegramClient;
use infra::config::{Config, SandboxMode, TelegramAccount};
use infra::model::SessionKey;
use sandbox_worker::llm::{self, LlmError, RetryPolicy};
use sandbox_worker::sandbox::docker::dockerfile_digest;
use serde::Serialize;

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Where SQLite state lives (default ~/.clawgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The findings as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Problem,
}

/// One thing checked: what was seen, and how to fix it when it is not right.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub level: Level,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn bad(
    level: Level,
    check: impl Into<String>,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        check: check.into(),
        level,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Runs `check`, or reports it as hung after [`CHECK_TIMEOUT`].
async fn bounded(
    name: &str,
    check: impl std::future::Future<Output = Vec<Finding>>,
) -> Vec<Finding> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(findings) => findings,
        Err(_) => vec![bad(
            Level::Problem,
            name,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            "check that the service is up and reachable from here",
        )],
    }
}

pub async fn run(config_path: Option<&Path>, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut findings = Vec::new();
    match infra::aws::load_deployed_config(config_path).await {
        Err(e) => findings.push(bad(
            Level::Problem,
            "config",
            e.to_string(),
            "fix it; `clawgate config validate` lists every problem with its key",
        )),
        Ok((mut config, origin)) => {
            findings.push(ok("config", format!("{origin}: valid")));
            let http = reqwest::Client::new();
            let choice = llm::resolve_default_model(&mut config, &http).await;
            findings.extend(bounded("model", check_model(&config, &http, &choice)).await);
            findings.extend(bounded("telegram", check_telegram(&config, &http)).await);
            findings.extend(bounded("slack", check_slack(&config, &http)).await);
            findings.extend(bounded("docker", check_docker(&config)).await);
            let state_dir = args.state_dir.unwrap_or_else(infra::config::default_dir);
            findings.extend(bounded("queue", check_queue_and_store(&config, &state_dir)).await);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let mark = match f.level {
                Level::Ok => "✓",
                Level::Warn => "!",
                Level::Problem => "✗",
            };
            println!("{mark} {}: {}", f.check, f.detail);
            if let Some(fix) = &f.fix {
                println!("    fix: {fix}");
            }
        }
    }
    let problems = findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .count();
    if !args.json {
        println!(
            "{}",
            match problems {
                0 => "no problems found".to_string(),
                n => format!("{n} problem(s) found"),
            }
        );
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check_model(
    config: &Config,
    http: &reqwest::Client,
    choice: &llm::ModelChoice,
) -> Vec<Finding> {
    let profile = config.agent_profile(config.default_agent());
    let check = format!("model {}", profile.model);
    if let llm::ModelChoice::ServerSilent { base_url, reason } = choice {
        return vec![bad(
            Level::Problem,
            check,
            format!("{base_url} gave no model list ({reason})"),
            "start the server, or name the model with --model openai/<name>",
        )];
    }
    let model = match llm::model_for(&profile, &config.models.providers, &llm::KeyRings::default(), http.clone(), RetryPolicy::default()) {
        Ok(model) => model,
        Err(e) => {
            return vec![bad(
                Level::Problem,
                check,
                e.to_string(),
                "set ANTHROPIC_API_KEY, or OPENAI_BASE_URL for a local OpenAI-compatible server, or --model openai/<name> with OPENAI_API_KEY",
            )]
        }
    };
    let openai = profile.model.starts_with("openai/");
    let key_var = if openai {
        "OPENAI_API_KEY"
    } else {
        "ANTHROPIC_API_KEY"
    };
    match model.probe().await {
        Ok(probe) => {
            let id = profile.model.split_once('/').map_or("", |(_, m)| m);
            if openai && !probe.models.iter().any(|m| m == id) {
                vec![bad(
                    Level::Warn,
                    check,
                    format!(
                        "the key works, but {id:?} is not among the {} models the server lists",
                        probe.models.len()
                    ),
                    "check the name (`--model openai/<name>`), or pull the model on the server",
                )]
            } else {
                vec![ok(
                    check,
                    format!(
                        "the provider answers and accepts the key ({} models listed)",
                        probe.models.len()
                    ),
                )]
            }
        }
        Err(LlmError::Refused {
            status: 401 | 403,
            message,
        }) => vec![bad(
            Level::Problem,
            check,
            format!("the provider refused the key: {message}"),
            format!("set a valid {key_var} (or models.providers.*.apiKey)"),
        )],
        Err(e) => vec![bad(
            Level::Problem,
            check,
            e.to_string(),
            "check the provider's base URL and that it is reachable from here",
        )],
    }
}

/// Whether `url` is where this account's webhook should point.
fn webhook_mismatch(account: &TelegramAccount<'_>, url: &str) -> Option<String> {
    if let Some(expected) = account.webhook_url {
        return (url != expected).then(|| format!("is {url:?}, but webhookUrl says {expected:?}"));
    }
    let path = if account.name == infra::config::TelegramConfig::DEFAULT_ACCOUNT {
        "/telegram".to_string()
    } else {
        format!("/telegram/{}", account.name)
    };
    let https = url.starts_with("https://");
    (!https || !url.trim_end_matches('/').ends_with(&path))
        .then(|| format!("is {url:?}, which is not an https:// URL ending in {path}"))
}

async fn check_telegram(config: &Config, http: &reqwest::Client) -> Vec<Finding> {
    let Some(tg) = config.channels.telegram.as_ref().filter(|t| t.enabled) else {
        return vec![ok("telegram", "not configured")];
    };
    let base = tg.api_base.as_deref().unwrap_or("https://api.telegram.org");
    let mut findings = Vec::new();
    for account in tg.accounts() {
        let Some(token) = account.bot_token else {
            continue;
        };
        let check = format!("telegram {}", account.name);
        let client = TelegramClient::new(http.clone(), base, token.clone());
        let me = match client.get_me().await {
            Ok(me) => me,
            Err(e) => {
                findings.push(bad(
                    Level::Problem,
                    check,
                    format!("getMe failed: {e}"),
                    "check the bot token (TELEGRAM_BOT_TOKEN or botToken) with @BotFather",
                ));
                continue;
            }
        };
        let username = me["username"].as_str().unwrap_or("?");
        if account.webhook_secret.is_none() {
            findings.push(bad(
                Level::Problem,
                check.clone(),
                "no webhookSecret: every update is refused",
                "run `clawgate telegram set-webhook --url https://<host>/telegram`",
            ));
        }
        let info = match client.get_webhook_info().await {
            Ok(info) => info,
            Err(e) => {
                findings.push(bad(
                    Level::Problem,
                    check,
                    format!("getWebhookInfo failed: {e}"),
                    "retry; Telegram may be unreachable from here",
                ));
                continue;
            }
        };
        let url = info["url"].as_str().unwrap_or("");
        let pending = info["pending_update_count"].as_u64().unwrap_or(0);
        let set_webhook = |url: &str| {
            let account_flag = if account.name == infra::config::TelegramConfig::DEFAULT_ACCOUNT {
                String::new()
            } else {
                format!(" --account {}", account.name)
            };
            format!("clawgate telegram set-webhook --url {url}{account_flag}")
        };
        let right_url = account.webhook_url.unwrap_or("https://<host>/telegram");
        if url.is_empty() {
            findings.push(bad(
                Level::Problem,
                check,
                format!("@{username}: no webhook is registered, so no update reaches the gateway"),
                set_webhook(right_url),
            ));
            continue;
        }
        if let Some(why) = webhook_mismatch(&account, url) {
            findings.push(bad(
                Level::Problem,
                check,
                format!("@{username}: the registered webhook {why} ({pending} updates pending)"),
                set_webhook(right_url),
            ));
            continue;
        }
        match info["last_error_message"].as_str() {
            Some(error) => findings.push(bad(
                Level::Warn,
                check,
                format!("@{username}: webhook {url}; Telegram's last delivery failed: {error} ({pending} updates pending)"),
                "check that the gateway is reachable at that URL over HTTPS and answers 200",
            )),
            None => findings.push(ok(check, format!("@{username}: webhook {url}, {pending} updates pending"))),
        }
    }
    if findings.is_empty() {
        findings.push(ok("telegram", "no bot token"));
    }
    findings
}

async fn check_slack(config: &Config, http: &reqwest::Client) -> Vec<Finding> {
    let Some(slack) = config.channels.slack.as_ref().filter(|s| s.enabled) else {
        return vec![ok("slack", "not configured")];
    };
    let Some(token) = &slack.bot_token else {
        return vec![ok("slack", "no bot token")];
    };
    let base = slack.api_base.as_deref().unwrap_or("https://slack.com");
    let mut findings = Vec::new();
    if slack.signing_secret.is_none() {
        findings.push(bad(
            Level::Problem,
            "slack",
            "no signing secret: every event is refused",
            "set SLACK_SIGNING_SECRET (the app's Basic Information page)",
        ));
    }
    match SlackClient::new(http.clone(), base, token.clone()).auth_test().await {
        Ok(who) => findings.push(ok("slack", format!(
            "bot {} in team {}",
            who["user"].as_str().unwrap_or("?"),
            who["team"].as_str().unwrap_or("?")
        ))),
        Err(e) => findings.push(bad(Level::Problem, "slack", format!("auth.test failed: {e}"), "check SLACK_BOT_TOKEN (xoxb-…, from OAuth & Permissions) and that the app is installed")),
    }
    findings
}

async fn check_docker(config: &Config) -> Vec<Finding> {
    let sandbox = config.agent_profile(config.default_agent()).sandbox;
    if sandbox.mode == SandboxMode::Off {
        return vec![bad(
            Level::Warn,
            "docker",
            "sandbox mode \"off\": tools run on this host with NO isolation",
            "set agents.defaults.sandbox.mode: \"all\" to run tools in Docker",
        )];
    }
    let docker = match crate::sandbox_cmd::runtime().docker(sandbox.mode).await {
        Ok(docker) => docker,
        Err(e) => {
            return vec![bad(
            Level::Problem,
            "docker",
            e.to_string(),
            "start Docker (sudo systemctl start docker) and make sure this user may use its socket",
        )]
        }
    };
    let agent = match docker.agent() {
        Some(path) => ok("sandbox agent", format!("{} (tool calls in milliseconds)", path.display())),
        None => bad(
            Level::Warn,
            "sandbox agent",
            "no static clawgate-sandbox-agent beside this binary or in CLAWGATE_SANDBOX_AGENT: tool calls take the docker exec path (~50 ms each)",
            "scripts/build-sandbox-agent --release, then put it beside clawgate or set CLAWGATE_SANDBOX_AGENT",
        ),
    };
    let image = &sandbox.docker.image;
    let check = format!("sandbox image {image}");
    let mut findings = match docker.image_status(image).await {
        Err(e) => vec![
            ok("docker", "the daemon answers"),
            bad(
                Level::Problem,
                check,
                e.to_string(),
                "check the Docker daemon's logs",
            ),
        ],
        Ok(None) => vec![
            ok("docker", "the daemon answers"),
            bad(
                Level::Problem,
                check,
                "not present: every tool call would fail",
                format!("clawgate sandbox build --tag {image}"),
            ),
        ],
        Ok(Some(status)) => {
            let stale = status
                .dockerfile_sha256
                .is_some_and(|sha| sha != dockerfile_digest());
            vec![
                ok("docker", "the daemon answers"),
                if stale {
                    bad(
                        Level::Warn,
                        check,
                        "built from an older Dockerfile.sandbox",
                        format!("clawgate sandbox build --tag {image}"),
                    )
                } else {
                    ok(check, "present")
                },
            ]
        }
    };
    findings.push(agent);
    findings
}

async fn check_queue_and_store(config: &Config, state_dir: &Path) -> Vec<Finding> {
    let backends = match infra::setup::open_backends(config, state_dir).await {
        Ok(backends) => backends,
        Err(e @ infra::setup::SetupError::Queue(_)) => return vec![bad(Level::Problem, "queue", e.to_string(), "check queue.url, AWS credentials and AWS_ENDPOINT_URL (or that the state directory is writable)")],
        Err(e) => return vec![bad(Level::Problem, "store", e.to_string(), "check state.table, AWS credentials and AWS_ENDPOINT_URL (or that the state directory is writable)")],
    };
    let mut findings = Vec::new();
    let queue = &backends.queue;
    match queue.depth().await {
        Ok(depth) => findings.push(ok(
            "queue",
            format!(
                "{}: {} waiting, {} in flight",
                queue.describe(),
                depth.waiting,
                depth.in_flight
            ),
        )),
        Err(e) => findings.push(bad(
            Level::Problem,
            "queue",
            e.to_string(),
            "check queue.url, AWS credentials and AWS_ENDPOINT_URL",
        )),
    }
    match queue.dead_letters() {
        None => findings.push(bad(Level::Warn, "dead-letter queue", "none configured: a job that keeps failing is retried forever", "give the queue a redrive policy (the Terraform job-queue module does)")),
        Some(dlq) => match dlq.depth().await {
            Ok(depth) if depth.waiting + depth.in_flight == 0 => findings.push(ok("dead-letter queue", "empty")),
            Ok(depth) => findings.push(bad(Level::Problem, "dead-letter queue", format!("{} job(s) could not be run", depth.waiting + depth.in_flight), "look at them with `clawgate dlq list`, then `clawgate dlq redrive ID` or `clawgate dlq discard ID` (or in the Control UI at /control)")),
            Err(e) => findings.push(bad(Level::Problem, "dead-letter queue", e.to_string(), "check the queue's redrive policy and permissions")),
        },
    }
    let probe: SessionKey = "agent:main:main".parse().expect("a valid key");
    match backends.store.get_session(&probe).await {
        Ok(_) => findings.push(ok("store", "reads work")),
        Err(e) => findings.push(bad(
            Level::Problem,
            "store",
            e.to_string(),
            "check state.table, AWS credentials and AWS_ENDPOINT_URL (or the state directory)",
        )),
    }
    findings
}
