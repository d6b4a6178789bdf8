//! `clawgate config validate|show`: check a config file and list every problem with its key
//! path, or print the effective config with secrets redacted.

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
        (ConfigAction::Validate, Ok((_, path))) => {
            println!("ok: {} is valid", path.display());
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
