//! `clawgate`: the command-line entry point. Each subcommand lives in its own module; `main`
//! parses the arguments, sets up logging and maps the outcome to an exit code.

mod agents_cmd;
mod channels_cmd;
mod chat_cmd;
mod config_cmd;
mod control;
mod cron_cmd;
mod doctor_cmd;
mod gateway_cmd;
mod sandbox_cmd;
mod session_files;
mod skills_cmd;
mod status_cmd;
mod up_cmd;
mod worker_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clawgate", version, about = "Personal AI assistant gateway")]
struct Cli {
    /// Config file (default: $CLAWGATE_CONFIG, else ~/.clawgate/clawgate.json).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The default agent's model, e.g. openai/llama3.2 or anthropic/claude-sonnet-4-5 (sets
    /// CLAWGATE_MODEL, which overrides agents.defaults.model).
    #[arg(long, global = true, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check or print the configuration.
    Config {
        #[command(subcommand)]
        action: config_cmd::ConfigAction,
    },
    /// See and manage the Docker sandboxes tool calls run in.
    Sandbox {
        #[command(subcommand)]
        action: sandbox_cmd::SandboxAction,
    },
    /// Run everything on this machine: webhooks, WebChat, a worker, SQLite state, Docker.
    Up {
        #[command(flatten)]
        args: up_cmd::UpArgs,
    },
    /// Send one message through a running `clawgate up` (WebChat) and print the reply.
    Chat {
        #[command(flatten)]
        args: chat_cmd::ChatArgs,
    },
    /// Serve the webhook endpoints alone (Telegram, Slack, hooks), enqueueing jobs for workers.
    Gateway {
        #[command(flatten)]
        args: gateway_cmd::GatewayArgs,
    },
    /// Run a sandbox worker: take agent jobs from the queue until SIGTERM.
    Worker {
        #[command(flatten)]
        args: sandbox_worker::worker::WorkerArgs,
    },
    /// Connect a Telegram bot to the gateway.
    Telegram {
        #[command(subcommand)]
        action: channels_cmd::TelegramAction,
    },
    /// Connect a Slack app to the gateway.
    Slack {
        #[command(subcommand)]
        action: channels_cmd::SlackAction,
    },
    /// Connect a WhatsApp Business number (Cloud API) to the gateway.
    Whatsapp {
        #[command(subcommand)]
        action: channels_cmd::WhatsappAction,
    },
    /// Connect a Discord application to the gateway.
    Discord {
        #[command(subcommand)]
        action: channels_cmd::DiscordAction,
    },
    /// Connect the gateway to a Matrix homeserver as an application service.
    Matrix {
        #[command(subcommand)]
        action: channels_cmd::MatrixAction,
    },
    /// The agents: model chain, workspace and persona files, sandbox, what routes to each.
    Agents {
        #[command(subcommand)]
        action: agents_cmd::AgentsAction,
    },
    /// The skills (folders with a SKILL.md) an agent's owner sessions are offered.
    Skills {
        #[command(subcommand)]
        action: skills_cmd::SkillsAction,
    },
    /// Write the starter workspace files (AGENTS.md, SOUL.md, TOOLS.md, IDENTITY.md, USER.md,
    /// BOOTSTRAP.md) the assistant's persona is read from; existing files are left alone.
    Setup {
        /// The agent whose workspace to set up (default: the config's default agent).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Re-run every check and probe each dependency for real; each finding with its fix.
    /// Exits 1 when any is a problem.
    Doctor {
        #[command(flatten)]
        args: doctor_cmd::DoctorArgs,
    },
    /// Sessions, jobs waiting and in flight, dead letters, sandboxes and pairing requests.
    Status {
        #[command(flatten)]
        args: status_cmd::StatusArgs,
    },
    /// The dead-letter queue: list, redrive or discard the jobs that could not be run.
    Dlq {
        /// Where SQLite state lives (default ~/.clawgate).
        #[arg(long, value_name = "DIR", global = true)]
        state_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: status_cmd::DlqAction,
    },
    /// Print a shell completion script, e.g. `clawgate completions bash > /etc/bash_completion.d/clawgate`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Scheduled jobs: list, add, remove, run now.
    Cron {
        /// Where SQLite state lives (default ~/.clawgate).
        #[arg(long, value_name = "DIR", global = true)]
        state_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: cron_cmd::CronAction,
    },
    /// Approve senders who asked to pair with the bot.
    Pairing {
        /// Where SQLite state lives (default ~/.clawgate).
        #[arg(long, value_name = "DIR", global = true)]
        state_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: worker_cmd::PairingAction,
    },
}

/// Loads the config for a command that needs one; a broken config is reported and exits 1.
fn with_config(
    path: Option<&std::path::Path>,
    run: impl FnOnce(infra::config::Config) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let (config, _) = infra::config::Config::load(path)?;
    run(config)
}

/// A config problem as one line with its fix (`clawgate up`).
fn config_problem_line(e: &infra::config::ConfigError) -> String {
    use infra::config::ConfigError;
    match e {
        ConfigError::Invalid { path, issues } => format!(
            "config {}: {}{}: fix it, then `clawgate config validate` lists every problem",
            path.display(),
            issues[0],
            if issues.len() > 1 {
                format!(" (and {} more)", issues.len() - 1)
            } else {
                String::new()
            }
        ),
        ConfigError::Syntax { path, message } => format!(
            "config {} is not valid JSON5 ({}): fix the syntax",
            path.display(),
            message.lines().next().unwrap_or("")
        ),
        ConfigError::Read { path, source } => format!(
            "cannot read config {} ({source}): check --config or CLAWGATE_CONFIG",
            path.display()
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(model) = &cli.model {
        // One way in for the model: the environment the config loader already reads. Set
        // before any thread starts.
        std::env::set_var("CLAWGATE_MODEL", model);
    }
    infra::telemetry::init();
    let outcome = match cli.command {
        Command::Config { action } => config_cmd::run(action, cli.config.as_deref()),
        Command::Sandbox { action } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(sandbox_cmd::run(action, &config))
        }),
        Command::Up { args } => match infra::config::Config::load(cli.config.as_deref()) {
            Ok((config, _)) => tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(up_cmd::run(config, args))),
            Err(e) => Err(anyhow::anyhow!(config_problem_line(&e))),
        },
        Command::Chat { args } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(chat_cmd::run(config, args))
        }),
        Command::Gateway { args } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(gateway_cmd::run(config, args))
        }),
        Command::Worker { args } => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(worker_cmd::worker(cli.config.as_deref(), args))),
        Command::Telegram { action } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(channels_cmd::telegram(config, action))
        }),
        Command::Slack { action } => channels_cmd::slack(action),
        Command::Whatsapp { action } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(channels_cmd::whatsapp(config, action))
        }),
        Command::Discord { action } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(channels_cmd::discord(config, action))
        }),
        Command::Matrix { action } => with_config(cli.config.as_deref(), |config| {
            channels_cmd::matrix(&config, action)
        }),
        Command::Agents { action } => with_config(cli.config.as_deref(), |config| {
            agents_cmd::run(&config, action)
        }),
        Command::Skills { action } => with_config(cli.config.as_deref(), |config| {
            skills_cmd::run(&config, action)
        }),
        Command::Setup { agent } => with_config(cli.config.as_deref(), |config| {
            let agent = agent.unwrap_or_else(|| config.default_agent().to_string());
            let workspace = config.agent_profile(&agent).workspace;
            let written = sandbox_worker::persona::write_templates(&workspace)?;
            for name in &written {
                println!("wrote {}", workspace.join(name).display());
            }
            eprintln!(
                "{} starter file(s) in {}; edit them, they are the assistant's persona",
                written.len(),
                workspace.display()
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Doctor { args } => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(doctor_cmd::run(cli.config.as_deref(), args))),
        Command::Status { args } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(status_cmd::status(config, args))
        }),
        Command::Dlq { state_dir, action } => with_config(cli.config.as_deref(), |config| {
            let state_dir = state_dir.unwrap_or_else(infra::config::default_dir);
            tokio::runtime::Runtime::new()?.block_on(status_cmd::dlq(config, state_dir, action))
        }),
        Command::Cron { state_dir, action } => with_config(cli.config.as_deref(), |config| {
            let state_dir = state_dir.unwrap_or_else(infra::config::default_dir);
            tokio::runtime::Runtime::new()?.block_on(cron_cmd::run(config, state_dir, action))
        }),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "clawgate",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pairing { state_dir, action } => with_config(cli.config.as_deref(), |config| {
            let state_dir = state_dir.unwrap_or_else(infra::config::default_dir);
            tokio::runtime::Runtime::new()?.block_on(worker_cmd::pairing(config, state_dir, action))
        }),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is for.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "clawgate", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn completions_cover_the_subcommands() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "clawgate",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        for word in ["doctor", "status", "sandbox", "dlq", "--model"] {
            assert!(script.contains(word), "{word} missing");
        }
    }
}
