//! `clawgate chat "message"`: WebChat from the terminal. Sends through a running `clawgate up`
//! (the same queue and worker path as every channel), prints tool calls to stderr as they
//! happen and the reply to stdout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use infra::config::Config;
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// What to say.
    pub message: String,
    /// The gateway (default http://127.0.0.1:<gateway.port>).
    #[arg(long)]
    pub url: Option<String>,
    /// The conversation (session) to talk in; the same id continues it.
    #[arg(long, default_value = "cli")]
    pub conversation: String,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Where the gateway keeps its token when the config names none (default ~/.clawgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
}

pub async fn run(config: Config, args: ChatArgs) -> anyhow::Result<ExitCode> {
    if !functions::webchat::valid_conversation(&args.conversation) {
        bail!("--conversation must be 1-64 characters of A-Z a-z 0-9 _ -");
    }
    let base = args
        .url
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", config.gateway.port));
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let state_dir = args.state_dir.unwrap_or_else(infra::config::default_dir);
    let token = infra::setup::client_gateway_token(&config, &state_dir);
    let with_token = |request: reqwest::RequestBuilder| match &token {
        Some(token) => request.bearer_auth(token.expose()),
        None => request,
    };
    let sent = with_token(http.post(format!("{base}/webchat/send")))
        .json(&json!({ "conversation": args.conversation, "text": args.message }))
        .send()
        .await
        .map_err(|e| e.without_url())
        .with_context(|| format!("no clawgate answers at {base}: start it with `clawgate up`"))?;
    let status = sent.status();
    let sent: Value = sent.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{base} refused the message ({status}): {}",
            sent["error"].as_str().unwrap_or("")
        );
    }
    let job = sent["jobId"].as_str().unwrap_or_default().to_string();
    let mut after = sent["seq"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while Instant::now() < deadline {
        // The conversation id is checked by the gateway: URL-safe characters only.
        let url = format!(
            "{base}/webchat/history?conversation={}&after={after}",
            args.conversation
        );
        let page: Value = with_token(http.get(url))
            .send()
            .await
            .map_err(|e| e.without_url())?
            .error_for_status()
            .map_err(|e| e.without_url())?
            .json()
            .await?;
        for entry in page["entries"].as_array().into_iter().flatten() {
            if entry["jobId"].as_str() != Some(job.as_str()) {
                continue;
            }
            match entry["kind"].as_str() {
                Some("tool_call") => eprintln!(
                    "🔧 {} {}",
                    entry["name"].as_str().unwrap_or(""),
                    entry["input"]
                ),
                Some("reply") => {
                    println!("{}", entry["text"].as_str().unwrap_or(""));
                    return Ok(ExitCode::SUCCESS);
                }
                _ => {}
            }
        }
        after = page["next"].as_u64().unwrap_or(after);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bail!(
        "no reply within {} s (job {job}); is a worker running?",
        args.timeout
    )
}
