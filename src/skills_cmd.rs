//! `clawgate skills list`: the skills an agent's owner sessions see, in lookup order (the
//! workspace's `skills/`, `~/.clawgate/skills`, `skills.load.extraDirs`), each with where it
//! was found; skills turned off or unreadable are not listed (the worker logs why).

use std::process::ExitCode;

use infra::config::Config;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum SkillsAction {
    /// Each skill an agent's owner sessions are offered.
    List {
        /// The agent (default: the config's default agent).
        #[arg(long)]
        agent: Option<String>,
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Config, action: SkillsAction) -> anyhow::Result<ExitCode> {
    let SkillsAction::List { agent, json } = action;
    let agent = agent.unwrap_or_else(|| config.default_agent().to_string());
    if !config.agent_ids().contains(&agent.as_str()) {
        anyhow::bail!("no agent {agent:?} in the config");
    }
    let profile = config.agent_profile(&agent);
    let skills = sandbox_worker::skills::discover(&profile.workspace, &config.skills);
    if json {
        let list: Vec<_> = skills
            .iter()
            .map(|s| json!({"name": s.name, "description": s.description, "source": s.source}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if skills.is_empty() {
        println!(
            "no skills for agent {agent}: put folders with a SKILL.md in {} or {}",
            profile.workspace.join("skills").display(),
            config.skills.shared_dirs()[0].display()
        );
    }
    for s in &skills {
        println!("{}  {}\n    {}", s.name, s.source.display(), s.description);
    }
    Ok(ExitCode::SUCCESS)
}
