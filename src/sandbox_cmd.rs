//! `clawgate sandbox build|list|explain|prune|exec`: build the sandbox image, see and manage
//! the sandbox containers, and ask why a session's tools run where they do.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Subcommand;
use infra::config::{default_dir, Config};
use infra::model::SessionKey;
use sandbox_worker::profile::SessionSetup;
use sandbox_worker::sandbox::docker::prune_limits;
use sandbox_worker::sandbox::SandboxRuntime;
use sandbox_worker::tools::policy::Verdict;
use sandbox_worker::tools::{builtin_specs, ToolBox};

#[derive(Subcommand)]
pub enum SandboxAction {
    /// Build the sandbox image from the Dockerfile.sandbox compiled into clawgate, through the
    /// Docker API (no checkout and no docker CLI needed).
    Build {
        /// The image to make (default: the config's agents.defaults.sandbox.docker.image).
        #[arg(long)]
        tag: Option<String>,
        /// The Debian base to build from (default: $CLAWGATE_SANDBOX_BASE, else
        /// debian:bookworm-slim, which the daemon pulls if it lacks it).
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// Do nothing when the image already exists.
        #[arg(long)]
        if_missing: bool,
    },
    /// List sandbox containers: scope key, container, image, age, idle time.
    List {
        /// One JSON object per container, as an array.
        #[arg(long)]
        json: bool,
    },
    /// Show where a session's tools run and why: mode, scope, image, workspace, tool policy.
    Explain {
        /// The session key, e.g. agent:main:telegram:dm:123456789 (see `clawgate status`).
        #[arg(long)]
        session: String,
        /// The agent (default: the session key's, else the config's default agent).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Remove containers idle past prune.idleHours or older than prune.maxAgeDays.
    Prune {
        /// Remove every sandbox container of this config, idle or not.
        #[arg(long)]
        all: bool,
    },
    /// Run a command as the session's exec tool would, and exit with its status.
    Exec {
        /// The session key, e.g. agent:main:telegram:dm:123456789.
        #[arg(long)]
        session: String,
        /// The agent (default: the session key's, else the config's default agent).
        #[arg(long)]
        agent: Option<String>,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The command after `--`, one word per argument as with `docker exec`, e.g.
        /// `-- sh -c "echo one two"`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// The Docker socket: `DOCKER_HOST` when it names a unix socket, else the default.
fn docker_socket() -> Option<String> {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
}

/// The sandbox runtime every operator command uses (`DOCKER_HOST`, the default activity dir).
pub fn runtime() -> SandboxRuntime {
    SandboxRuntime::new(docker_socket(), activity_dir())
}

pub fn activity_dir() -> PathBuf {
    default_dir().join("sandbox-activity")
}

fn session_and_agent(
    config: &Config,
    session: &str,
    agent: Option<String>,
) -> anyhow::Result<(SessionKey, String)> {
    let key: SessionKey = session.parse().context("--session")?;
    let agent = agent.unwrap_or_else(|| key.agent(config.default_agent()).to_string());
    Ok((key, agent))
}

/// Every container prefix the config's agents use.
fn prefixes(config: &Config) -> Vec<String> {
    let mut all: Vec<String> = config
        .agent_ids()
        .into_iter()
        .map(|id| config.agent_profile(id).sandbox.docker.container_prefix)
        .collect();
    all.sort();
    all.dedup();
    all
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub async fn run(action: SandboxAction, config: &Config) -> anyhow::Result<ExitCode> {
    match action {
        SandboxAction::Build {
            tag,
            base,
            if_missing,
        } => {
            let sandbox = config.agent_profile(config.default_agent()).sandbox;
            let tag = tag.unwrap_or(sandbox.docker.image);
            let docker = runtime().docker(sandbox.mode).await?;
            docker
                .build_command(&tag, base.as_deref(), if_missing)
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        SandboxAction::List { json } => {
            let docker = runtime()
                .docker(config.agent_profile(config.default_agent()).sandbox.mode)
                .await?;
            let now = SystemTime::now();
            let containers = docker.list(None).await?;
            if json {
                let rows: Vec<_> = containers
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "scopeKey": c.scope_key,
                            "container": c.name,
                            "image": c.image,
                            "state": c.state,
                            "ageSeconds": now.duration_since(c.created).unwrap_or_default().as_secs(),
                            "idleSeconds": now.duration_since(c.last_used).unwrap_or_default().as_secs(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:<52} {:<32} {:<8} {:>6} {:>6}",
                "SCOPE", "CONTAINER", "IMAGE", "STATE", "AGE", "IDLE"
            );
            for c in containers {
                println!(
                    "{:<28} {:<52} {:<32} {:<8} {:>6} {:>6}",
                    c.scope_key,
                    c.name,
                    c.image,
                    c.state,
                    human(now.duration_since(c.created).unwrap_or_default()),
                    human(now.duration_since(c.last_used).unwrap_or_default())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxAction::Explain { session, agent } => {
            let (key, agent) = session_and_agent(config, &session, agent)?;
            explain(config, &agent, &key);
            Ok(ExitCode::SUCCESS)
        }
        SandboxAction::Prune { all } => {
            let removed = prune(config, all).await?;
            for name in &removed {
                println!("removed {name}");
            }
            eprintln!("{} container(s) removed", removed.len());
            Ok(ExitCode::SUCCESS)
        }
        SandboxAction::Exec {
            session,
            agent,
            timeout,
            command,
        } => {
            let (key, agent) = session_and_agent(config, &session, agent)?;
            let tools = ToolBox::for_session(&runtime(), config, &agent, &key).await;
            // Quoted back into one `sh -c` line, so each argument stays one word.
            let line = shlex::try_join(command.iter().map(String::as_str))
                .context("a command argument holds a NUL byte")?;
            let input = serde_json::json!({ "command": line, "timeout": timeout });
            let out = tools.run("exec", &input).await;
            let Ok(report) = serde_json::from_str::<serde_json::Value>(&out.output) else {
                eprintln!("error: {}", out.output);
                return Ok(ExitCode::FAILURE);
            };
            print!("{}", report["stdout"].as_str().unwrap_or(""));
            eprint!("{}", report["stderr"].as_str().unwrap_or(""));
            if report["timed_out"] == true {
                eprintln!("clawgate: timed out after {timeout}s; the command and its children were killed");
            }
            let code = report["exit_code"].as_i64().unwrap_or(1);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}

/// Removes this config's containers idle past `prune.idleHours` or older than
/// `prune.maxAgeDays` (every one with `all`); returns their names. `sandbox prune` and the
/// Control UI.
pub async fn prune(config: &Config, all: bool) -> anyhow::Result<Vec<String>> {
    let sandbox = config.agent_profile(config.default_agent()).sandbox;
    let docker = runtime().docker(sandbox.mode).await?;
    let (idle, max_age) = prune_limits(&sandbox.prune);
    let mut removed = Vec::new();
    for prefix in prefixes(config) {
        removed.extend(
            docker
                .prune(Some(&prefix), idle, max_age, SystemTime::now(), all)
                .await?,
        );
    }
    Ok(removed)
}

fn explain(config: &Config, agent: &str, key: &SessionKey) {
    let setup = SessionSetup::resolve(config, agent, key);
    let plan = &setup.plan;
    let d = &plan.docker;
    println!("session:    {}", plan.session);
    println!("agent:      {agent}");
    if let SessionKey::Peer {
        channel,
        kind,
        peer,
        sub,
        ..
    } = key
    {
        if let Ok(channel) = channel.parse() {
            let topic = match sub {
                Some(infra::model::SubThread::Topic(t)) => Some(t.as_str()),
                _ => None,
            };
            let routes = config.agent_routes();
            let facts = infra::config::RouteFacts {
                channel,
                account: "",
                peer_kind: *kind,
                peer_id: peer,
                topic,
                team_id: None,
            };
            let route = routes.explain(agent, &facts);
            println!("routed by:  {}", route.describe(&routes.bindings));
        }
    }
    println!("whose:      {} ({})", plan.trust, plan.trust_reason);
    println!("mode:       {}", plan.mode.as_str());
    println!(
        "runs in:    {}",
        match (&plan.refusal, plan.sandboxed) {
            (Some(_), _) => "nowhere: tools are off in this session",
            (None, true) => "a Docker container",
            (None, false) => "the host, with NO isolation",
        }
    );
    println!("why:        {}", plan.reason);
    if let Some(refusal) = &plan.refusal {
        println!("refused:    {refusal}");
    }
    println!(
        "scope:      {} (scope key {:?})",
        serde_json::to_value(plan.scope)
            .unwrap_or_default()
            .as_str()
            .unwrap_or("?"),
        plan.scope_key
    );
    println!(
        "workspace:  {} ({}, seen as {})",
        plan.workspace.display(),
        serde_json::to_value(plan.workspace_access)
            .unwrap_or_default()
            .as_str()
            .unwrap_or("?"),
        plan.workspace_view
    );
    if plan.sandboxed {
        println!(
            "container:  {} (config hash {})",
            plan.container_name, plan.config_hash
        );
        println!("image:      {}", d.image);
        println!(
            "hardening:  network {}, user {}, cap_drop {:?}, read-only root {}, no-new-privileges, init",
            d.network, d.user, d.cap_drop, d.read_only_root
        );
        println!(
            "limits:     memory {} (swap {}), cpus {}, pids {}, ulimits {:?}",
            d.memory, d.memory_swap, d.cpus, d.pids_limit, d.ulimits
        );
        println!(
            "prune:      idle > {}h or age > {}d",
            plan.prune.idle_hours, plan.prune.max_age_days
        );
    } else if plan.refusal.is_none() {
        println!("host:       commands run as `sh -c` under this machine's user, with a scrubbed environment; a process that leaves its process group outlives the timeout. Use mode \"all\" for isolation.");
    }
    let visibility = setup.profile.sandbox.session_tools_visibility;
    println!(
        "sessions:   {}",
        if !plan.sandboxed {
            "the session tools see this agent's sessions".to_string()
        } else if visibility == infra::config::SessionToolsVisibility::Spawned {
            "the session tools see only this session (sessionToolsVisibility \"spawned\")"
                .to_string()
        } else {
            format!(
                "the session tools see this agent's {}sessions",
                if plan.trust == "guest" { "guest " } else { "" }
            )
        }
    );
    let policy = &setup.policy;
    println!(
        "tools:      allow {:?}, deny {:?}",
        policy.allow_list(),
        policy.deny_list()
    );
    for spec in builtin_specs() {
        let verdict = match policy.verdict(&spec.name) {
            Verdict::Allowed { by: Some(rule) } => format!("allowed (by {rule:?})"),
            Verdict::Allowed { by: None } => "allowed (no allow list)".to_string(),
            Verdict::Denied { by } => format!("denied (by {by:?})"),
            Verdict::NotAllowed => "not allowed (not in the allow list)".to_string(),
        };
        println!("  {:<12} {verdict}", spec.name);
    }
}
