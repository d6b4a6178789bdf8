//! `clawgate agents list`: each agent with its model chain, workspace, sandbox mode, which of
//! its workspace persona files exist, and what routes messages to it: its `bindings` (with
//! their rank), the Telegram accounts whose `agent` it is, and "the default" for the default
//! agent (see `infra::config::bindings` for the order).

use std::process::ExitCode;

use infra::config::Config;
use serde_json::{json, Value};

#[derive(clap::Subcommand)]
pub enum AgentsAction {
    /// Every agent the config names (and the default one).
    List {
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
}

fn describe(config: &Config) -> Vec<Value> {
    let default = config.default_agent();
    config
        .agent_ids()
        .into_iter()
        .map(|id| {
            let profile = config.agent_profile(id);
            let files: Vec<&str> = sandbox_worker::persona::PERSONA_FILES
                .iter()
                .chain([&sandbox_worker::persona::MEMORY_FILE])
                .copied()
                .filter(|name| profile.workspace.join(name).is_file())
                .collect();
            let mut routes: Vec<String> = config
                .bindings
                .iter()
                .enumerate()
                .filter(|(_, b)| b.agent_id == id)
                .map(|(i, b)| format!("bindings[{i}] {}", b.matches.describe()))
                .collect();
            routes.extend(
                config
                    .channels
                    .telegram
                    .iter()
                    .flat_map(|t| t.accounts())
                    .filter(|a| a.agent.unwrap_or(default) == id)
                    .map(|a| format!("telegram account {}", a.name)),
            );
            if id == default {
                routes.push("everything no binding or account names (the default agent)".into());
            }
            json!({
                "id": id,
                "default": id == default,
                "model": profile.model,
                "fallbacks": profile.fallbacks,
                "workspace": profile.workspace,
                "sandbox": profile.sandbox.mode.as_str(),
                "personaFiles": files,
                "routes": routes,
            })
        })
        .collect()
}

pub fn run(config: &Config, action: AgentsAction) -> anyhow::Result<ExitCode> {
    let AgentsAction::List { json } = action;
    let agents = describe(config);
    if json {
        println!("{}", serde_json::to_string_pretty(&agents)?);
        return Ok(ExitCode::SUCCESS);
    }
    for a in &agents {
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let list = |v: &Value| {
            v.as_array()
                .map(|xs| xs.iter().map(&text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        println!(
            "{}{}",
            text(&a["id"]),
            if a["default"] == true {
                " (default)"
            } else {
                ""
            }
        );
        println!(
            "  model:     {}{}",
            text(&a["model"]),
            match list(&a["fallbacks"]) {
                f if f.is_empty() => String::new(),
                f => format!(", then {f}"),
            }
        );
        println!(
            "  workspace: {} (persona files: {})",
            text(&a["workspace"]),
            match list(&a["personaFiles"]) {
                f if f.is_empty() => "none; `clawgate setup` writes starters".to_string(),
                f => f,
            }
        );
        println!("  sandbox:   {}", text(&a["sandbox"]));
        println!("  routed:    {}", list(&a["routes"]));
    }
    Ok(ExitCode::SUCCESS)
}
