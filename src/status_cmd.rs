//! `clawgate status` (what the gateway holds right now: sessions, jobs waiting and in flight,
//! the dead-letter queue, sandboxes, pairing requests) and `clawgate dlq list|redrive|discard`.
//! Both read the same queue and store the gateway and workers use, local or deployed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Subcommand;
use infra::config::Config;
use infra::queue::admin;
use infra::setup::Backends;
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Where SQLite state lives (default ~/.clawgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Everything as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// How many of the most recent sessions per agent to show.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
}

#[derive(Subcommand)]
pub enum DlqAction {
    /// The jobs that could not be run: message id, session, reason, text.
    List {
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead-lettered job back on the queue (at the end of its session's line).
    Redrive {
        /// The message id `clawgate dlq list` shows.
        message_id: String,
    },
    /// Delete a dead-lettered job for good.
    Discard {
        /// The message id `clawgate dlq list` shows.
        message_id: String,
    },
}

/// Everything `status` reports, as JSON (the text view prints from it too).
pub async fn snapshot(config: &Config, backends: &Backends, sessions_per_agent: usize) -> Value {
    let queue = &backends.queue;
    let depth = queue.depth().await.map_err(|e| e.to_string());
    let dead = match queue.dead_letters() {
        Some(dlq) => dlq.depth().await.map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    };
    let mut sessions = Vec::new();
    for agent in config.agent_ids() {
        match backends
            .store
            .list_sessions(agent, sessions_per_agent)
            .await
        {
            Ok(list) => sessions.extend(list.into_iter().map(|s| {
                json!({ "key": s.key.to_string(), "agent": s.agent, "channel": s.channel,
                        "entries": s.next_seq, "lastActiveMs": s.last_active_ms })
            })),
            Err(e) => sessions.push(json!({ "agent": agent, "error": e.to_string() })),
        }
    }
    let mut pairing = Vec::new();
    let channels = &config.channels;
    // Collected before any await: the account iterators borrow the config.
    let mut accounts: Vec<(&str, String)> = Vec::new();
    if let Some(telegram) = &channels.telegram {
        accounts.extend(
            telegram
                .accounts()
                .map(|a| ("telegram", a.name.to_string())),
        );
    }
    if channels.slack.is_some() {
        accounts.push(("slack", "default".to_string()));
    }
    for (channel, account) in accounts {
        if let Ok(pending) = backends.store.list_pairing(channel, &account).await {
            pairing.extend(
                pending
                    .into_iter()
                    .map(|p| serde_json::to_value(p).unwrap_or_default()),
            );
        }
    }
    let sandboxes = sandboxes(config).await;
    let last_hour = match infra::metrics::read_counters(backends.store.as_ref()).await {
        Ok(counters) => Value::Object(
            counters
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        ),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let today = chrono::Utc::now().date_naive();
    let usage_today =
        match infra::usage::day_totals(backends.store.as_ref(), today, &config.model_names()).await {
            Ok(totals) => Value::Array(
                totals
                    .iter()
                    .map(|(model, tokens)| {
                        json!({ "model": model, "tokens": tokens,
                                "costUsd": infra::usage::cost(&config.models.pricing, model, tokens) })
                    })
                    .collect(),
            ),
            Err(e) => json!({ "error": e.to_string() }),
        };
    let cron = match crate::cron_cmd::describe_all(backends).await {
        Ok(jobs) => Value::Array(jobs),
        Err(e) => json!({ "error": e.to_string() }),
    };
    json!({
        "cron": cron,
        "usageToday": usage_today,
        "thisHour": last_hour,
        "queue": { "describe": queue.describe(), "depth": depth.as_ref().ok(), "error": depth.as_ref().err() },
        "deadLetters": { "depth": dead.as_ref().ok().cloned().flatten(), "configured": dead.as_ref().map(|d| d.is_some()).unwrap_or(true), "error": dead.as_ref().err() },
        "sessions": sessions,
        "sandboxes": sandboxes,
        "pairing": pairing,
    })
}

async fn sandboxes(config: &Config) -> Value {
    let mode = config.agent_profile(config.default_agent()).sandbox.mode;
    if mode == infra::config::SandboxMode::Off {
        return json!({ "mode": "off", "containers": [] });
    }
    let now = SystemTime::now();
    match crate::sandbox_cmd::runtime().docker(mode).await {
        Err(e) => json!({ "error": e.to_string(), "containers": [] }),
        Ok(docker) => match docker.list(None).await {
            Err(e) => json!({ "error": e.to_string(), "containers": [] }),
            Ok(list) => json!({ "containers": list.iter().map(|c| json!({
                "scopeKey": c.scope_key, "container": c.name, "image": c.image, "state": c.state,
                "idleSeconds": now.duration_since(c.last_used).unwrap_or_default().as_secs(),
            })).collect::<Vec<_>>() }),
        },
    }
}

pub async fn status(config: Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args.state_dir.unwrap_or_else(infra::config::default_dir);
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    let snap = snapshot(&config, &backends, args.sessions).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
        return Ok(ExitCode::SUCCESS);
    }
    let q = &snap["queue"];
    match q["depth"].as_object() {
        Some(d) => println!(
            "queue:        {} waiting, {} in flight ({})",
            d["waiting"],
            d["inFlight"],
            q["describe"].as_str().unwrap_or("")
        ),
        None => println!(
            "queue:        unreachable: {}",
            q["error"].as_str().unwrap_or("")
        ),
    }
    let dead = &snap["deadLetters"];
    match dead["depth"].as_object() {
        Some(d) => println!(
            "dead letters: {} (clawgate dlq list)",
            d["waiting"].as_u64().unwrap_or(0) + d["inFlight"].as_u64().unwrap_or(0)
        ),
        None if dead["configured"] == false => println!("dead letters: no dead-letter queue"),
        None => println!(
            "dead letters: unreachable: {}",
            dead["error"].as_str().unwrap_or("")
        ),
    }
    if let Some(counts) = snap["thisHour"]
        .as_object()
        .filter(|c| !c.contains_key("error"))
    {
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "this hour:    {} (workers with --metrics store)",
            line.join(", ")
        );
    }
    for u in snap["usageToday"].as_array().into_iter().flatten() {
        let t = &u["tokens"];
        println!(
            "tokens today: {} input {}, output {}, cache read {}, cache write {}{}",
            u["model"].as_str().unwrap_or("?"),
            t["input"],
            t["output"],
            t["cacheRead"],
            t["cacheWrite"],
            u["costUsd"]
                .as_f64()
                .map_or(String::new(), |usd| format!(" (≈ ${usd:.4})"))
        );
    }
    let sessions = snap["sessions"].as_array().cloned().unwrap_or_default();
    println!("sessions:     {} recent", sessions.len());
    for s in &sessions {
        let ago = (chrono::Utc::now().timestamp_millis() - s["lastActiveMs"].as_i64().unwrap_or(0))
            / 60_000;
        println!(
            "  {:<48} {:>5} entries  active {ago} min ago",
            s["key"].as_str().unwrap_or("?"),
            s["entries"]
        );
    }
    let containers = snap["sandboxes"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match snap["sandboxes"]["error"].as_str() {
        Some(e) => println!("sandboxes:    Docker unreachable: {e}"),
        None => println!("sandboxes:    {} container(s)", containers.len()),
    }
    for c in &containers {
        println!(
            "  {:<48} {:<8} idle {}s",
            c["scopeKey"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["idleSeconds"]
        );
    }
    let jobs = snap["cron"].as_array().cloned().unwrap_or_default();
    println!("scheduled:    {} job(s) (clawgate cron list)", jobs.len());
    for j in &jobs {
        let last = &j["lastRun"];
        let outcome = match (last["skipped"].as_str(), last["status"].as_str()) {
            (Some(skipped), _) => skipped.to_string(),
            (None, Some(status)) => format!(
                "{status}{}, {} s late",
                last["error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
                last["lateSeconds"]
            ),
            (None, None) if last.is_null() => "not run yet".to_string(),
            (None, None) => "queued".to_string(),
        };
        println!(
            "  {:<24} next {:<26} last: {outcome}",
            j["id"].as_str().unwrap_or("?"),
            j["nextRun"].as_str().unwrap_or("-")
        );
    }
    let pairing = snap["pairing"].as_array().cloned().unwrap_or_default();
    println!(
        "pairing:      {} pending (clawgate pairing approve CHANNEL CODE)",
        pairing.len()
    );
    for p in &pairing {
        println!(
            "  {} {} {} {}",
            p["channel"].as_str().unwrap_or(""),
            p["code"].as_str().unwrap_or(""),
            p["peer"].as_str().unwrap_or(""),
            p["peer_name"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn dlq(
    config: Config,
    state_dir: PathBuf,
    action: DlqAction,
) -> anyhow::Result<ExitCode> {
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    let queue = &*backends.queue;
    match action {
        DlqAction::List { json } => {
            let listed = admin::list_dead_letters(queue, 100).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if listed.is_empty() {
                eprintln!("the dead-letter queue is empty");
            } else {
                for d in listed {
                    println!(
                        "{}  {}  {}  {:?}",
                        d.message_id,
                        d.session_key.as_deref().unwrap_or("(not a job)"),
                        d.reason.as_deref().unwrap_or("received too often"),
                        d.text.as_deref().unwrap_or("")
                    );
                }
            }
        }
        DlqAction::Redrive { message_id } => {
            admin::redrive(queue, &message_id).await?;
            println!("{message_id} is back on the queue");
        }
        DlqAction::Discard { message_id } => {
            admin::discard(queue, &message_id).await?;
            println!("{message_id} discarded");
        }
    }
    Ok(ExitCode::SUCCESS)
}
