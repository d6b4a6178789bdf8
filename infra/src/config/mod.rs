//! The configuration file: schema (JSON5, OpenClaw's key names), defaults, loading,
//! environment overrides for secrets, and validation that names the key path of every problem.
//! The schema is split by section: [`agents`] (agents, sandbox, tools, models and the
//! [`AgentProfile`] that resolves them), [`channels`] (Telegram, Slack, who may reach the agent)
//! and the small sections here; [`validate`] checks values, [`lenient`] collects every schema
//! problem in one pass.
//!
//! Decisions:
//! - Every struct denies unknown keys, so a typo is an error, never silently ignored.
//! - All problems are reported at once: after each schema error the offending key is removed
//!   and decoding is retried, so `config validate` lists every bad key in one run.
//! - Environment variables for secrets win over the file (the usual twelve-factor order), so a
//!   deployment can keep secrets out of the file entirely.
//! - Secrets are [`Secret`]: `Debug`, `Display` and `Serialize` print `<redacted>`.

mod agents;
mod bindings;
mod bluebubbles;
mod channels;
mod discord;
mod googlechat;
mod lenient;
mod matrix;
mod mcp;
mod media;
mod messages;
mod msteams;
mod signal;
mod skills;
mod spaces;
mod trust;
mod validate;
mod web;
mod whatsapp;
mod zalo;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

pub use agents::*;
pub use bindings::*;
pub use bluebubbles::{BlueBubblesConfig, BLUEBUBBLES_WEBHOOK_PATH};
pub use channels::*;
pub use discord::DiscordConfig;
pub use googlechat::{AudienceType, GoogleChatConfig};
pub use matrix::{AutoJoin, MatrixConfig, MatrixDm, MATRIX_TRANSACTIONS_PATH};
pub use mcp::*;
pub use media::*;
pub use messages::*;
pub use msteams::{MsTeamsConfig, MSTEAMS_WEBHOOK_PATH};
pub use signal::SignalConfig;
pub use skills::*;
pub use spaces::{SpaceChannel, SpaceRules};
pub use trust::Trust;
pub use validate::{dangerous_bind_source, dangerous_workspace, parse_bytes};
pub use web::*;
pub use whatsapp::WhatsappConfig;
pub use zalo::ZaloConfig;

/// A secret string. It never prints: `Debug`, `Display` and `Serialize` all show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub(crate) String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub agents: AgentsConfig,
    pub tools: ToolsConfig,
    pub models: ModelsConfig,
    pub channels: ChannelsConfig,
    pub gateway: GatewayConfig,
    pub state: StateConfig,
    pub queue: QueueConfig,
    pub limits: LimitsConfig,
    pub skills: SkillsConfig,
    pub mcp: McpConfig,
    /// Which agent answers which conversation ([`bindings`]).
    pub bindings: Vec<Binding>,
    pub cron: CronConfig,
    /// Messages that arrive while a run is going (`messages.queue.mode`).
    pub messages: MessagesConfig,
}

/// `cron`: the scheduler (`crate::cron`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CronConfig {
    /// Whether this deployment runs scheduled jobs at all.
    pub enabled: bool,
    /// How late a missed run may still start (minutes); an older one is skipped and recorded.
    pub catch_up_minutes: u64,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            enabled: true,
            catch_up_minutes: 60,
        }
    }
}

impl CronConfig {
    pub fn catch_up(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.catch_up_minutes.saturating_mul(60))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayConfig {
    pub port: u16,
    pub bind: String,
    /// Required for a non-loopback bind; also guards WebChat and `/hooks/agent`.
    pub token: Option<Secret>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            port: 18789,
            bind: "127.0.0.1".into(),
            token: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    Sqlite,
    Dynamodb,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StateConfig {
    pub backend: StateBackend,
    /// DynamoDB table name (backend `dynamodb`).
    pub table: Option<String>,
    /// SQLite file (backend `sqlite`); relative to the state directory.
    pub path: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::Sqlite,
            table: None,
            path: "state.db".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    Sqlite,
    Sqs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueConfig {
    pub backend: QueueBackend,
    /// SQS FIFO queue URL (backend `sqs`).
    pub url: Option<String>,
    /// SQLite file (backend `sqlite`); relative to the state directory.
    pub path: String,
    pub visibility_timeout_seconds: u32,
    /// Receives before a job is dead-lettered (SQS redrive `maxReceiveCount`).
    pub max_receive_count: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            backend: QueueBackend::Sqlite,
            url: None,
            path: "queue.db".into(),
            visibility_timeout_seconds: 60,
            max_receive_count: 5,
        }
    }
}

/// The shortest gateway token accepted: it guards WebChat and `/hooks/agent`, which the AWS
/// deployment serves on the internet.
pub const GATEWAY_TOKEN_MIN_CHARS: usize = 24;

/// `limits`: rate and cost limits, counted in the state store so they hold across a fleet.
/// Zero turns a limit off. Over a limit, a message gets one short notice per window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Messages one sender may send per minute, over all their chats.
    pub sender_messages_per_minute: u32,
    /// Messages one session (a chat, a group) takes per minute, from everyone in it.
    pub session_messages_per_minute: u32,
    /// Tool calls one session may make per hour.
    pub session_tool_calls_per_hour: u32,
    /// Messages one session may send to others with `sessions_send` per minute.
    pub sessions_send_per_minute: u32,
    /// How many `sessions_send` hops a chain of messages may make (A → B → C is two).
    pub sessions_send_max_depth: u32,
    /// `web_fetch` and `web_search` calls one session may make per minute (together).
    pub web_calls_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            sender_messages_per_minute: 20,
            session_messages_per_minute: 30,
            session_tool_calls_per_hour: 600,
            sessions_send_per_minute: 6,
            sessions_send_max_depth: 2,
            web_calls_per_minute: 20,
        }
    }
}

/// One problem with a config file, at a key path such as `agents.defaults.sandbox.mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid JSON5: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path} has {} problem(s):\n{}", issues.len(), issues.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

/// Where the config comes from: `--config`, else `CLAWGATE_CONFIG`, else the default path.
pub fn resolve_path(explicit: Option<&Path>) -> (PathBuf, bool) {
    if let Some(p) = explicit {
        return (p.to_path_buf(), true);
    }
    if let Ok(p) = std::env::var("CLAWGATE_CONFIG") {
        if !p.is_empty() {
            return (PathBuf::from(p), true);
        }
    }
    (default_dir().join("clawgate.json"), false)
}

/// `~/.clawgate`, or `CLAWGATE_HOME` when set.
pub fn default_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CLAWGATE_HOME") {
        if !dir.is_empty() {
            return PathBuf::from(dir);
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".clawgate")
}

/// Expands a leading `~/` to `$HOME`.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(rest)
        }
        None => PathBuf::from(path),
    }
}

/// One environment variable over a section's key.
type EnvKey<T> = (&'static str, fn(&mut T, String));

/// Sets keys of an optional section from the environment: each variable that is set creates the
/// section when it is absent and applies its value (the channels' `apply_env`).
fn env_over<T: Default>(
    slot: &mut Option<T>,
    get: impl Fn(&str) -> Option<String>,
    keys: &[EnvKey<T>],
) {
    for (name, apply) in keys {
        if let Some(value) = get(name) {
            apply(slot.get_or_insert_with(T::default), value);
        }
    }
}

impl Config {
    /// Loads the config: the file when it exists (a missing file is an error only when it was
    /// named explicitly), then the environment's secrets, then validation.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, PathBuf), ConfigError> {
        let (path, named) = resolve_path(explicit);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => String::from("{}"),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config = Config::load_text(&text, &path)?;
        Ok((config, path))
    }

    /// The config in `text` (read from `origin`, for messages), with the environment's secrets
    /// applied and validated: what [`Config::load`] does once it has the file's text.
    pub fn load_text(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let (mut config, mut issues) = match Config::parse_lenient(text) {
            Ok(parsed) => parsed,
            Err(message) => {
                return Err(ConfigError::Syntax {
                    path: origin.to_path_buf(),
                    message,
                })
            }
        };
        config.apply_env(|name| std::env::var(name).ok());
        issues.extend(config.validate().err().unwrap_or_default());
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_path_buf(),
                issues,
            })
        }
    }

    /// Parses JSON5 text into a config, failing on any schema problem.
    pub fn parse(text: &str) -> Result<Config, ParseError> {
        match Config::parse_lenient(text) {
            Ok((config, issues)) if issues.is_empty() => Ok(config),
            Ok((_, issues)) => Err(ParseError::Invalid(issues)),
            Err(message) => Err(ParseError::Syntax(message)),
        }
    }

    /// Overrides secrets, endpoints and the model (`CLAWGATE_MODEL`) from the environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        if let Some(token) = get("TELEGRAM_BOT_TOKEN") {
            self.channels
                .telegram
                .get_or_insert_with(Default::default)
                .bot_token = Some(Secret(token));
        }
        if let Some(secret) = get("TELEGRAM_WEBHOOK_SECRET") {
            self.channels
                .telegram
                .get_or_insert_with(Default::default)
                .webhook_secret = Some(Secret(secret));
        }
        if let Some(token) = get("SLACK_BOT_TOKEN") {
            self.channels
                .slack
                .get_or_insert_with(Default::default)
                .bot_token = Some(Secret(token));
        }
        if let Some(secret) = get("SLACK_SIGNING_SECRET") {
            self.channels
                .slack
                .get_or_insert_with(Default::default)
                .signing_secret = Some(Secret(secret));
        }
        if let Some(token) = get("SLACK_APP_TOKEN") {
            self.channels
                .slack
                .get_or_insert_with(Default::default)
                .app_token = Some(Secret(token));
        }
        if let Some(url) = get("TELEGRAM_API_BASE") {
            self.channels
                .telegram
                .get_or_insert_with(Default::default)
                .api_base = Some(url);
        }
        WhatsappConfig::apply_env(&mut self.channels.whatsapp, get);
        DiscordConfig::apply_env(&mut self.channels.discord, get);
        BlueBubblesConfig::apply_env(&mut self.channels.bluebubbles, get);
        SignalConfig::apply_env(&mut self.channels.signal, get);
        ZaloConfig::apply_env(&mut self.channels.zalo, get);
        GoogleChatConfig::apply_env(&mut self.channels.googlechat, get);
        MsTeamsConfig::apply_env(&mut self.channels.msteams, get);
        MatrixConfig::apply_env(&mut self.channels.matrix, get);
        if let Some(url) = get("SLACK_API_BASE") {
            self.channels
                .slack
                .get_or_insert_with(Default::default)
                .api_base = Some(url);
        }
        let search = &mut self.tools.web.search;
        if let Some(key) = get("BRAVE_API_KEY") {
            search.api_key = Some(Secret(key));
        }
        if let Some(key) = get("TAVILY_API_KEY") {
            search.tavily.api_key = Some(Secret(key));
        }
        if let Some(url) = get("SEARXNG_BASE_URL") {
            search.searxng.base_url = Some(url);
        }
        if let Some(key) = get("ANTHROPIC_API_KEY") {
            self.models.providers.anthropic.api_key = Some(Secret(key));
        }
        if let Some(url) = get("ANTHROPIC_BASE_URL") {
            self.models.providers.anthropic.base_url = Some(url);
        }
        if let Some(key) = get("OPENAI_API_KEY") {
            self.models.providers.openai.api_key = Some(Secret(key));
        }
        if let Some(url) = get("OPENAI_BASE_URL") {
            self.models.providers.openai.base_url = Some(url);
        }
        // OpenClaw's `<PROVIDER>_API_KEYS`: more keys, comma-separated, rotated on 429.
        for (name, provider) in [
            ("ANTHROPIC_API_KEYS", &mut self.models.providers.anthropic),
            ("OPENAI_API_KEYS", &mut self.models.providers.openai),
        ] {
            if let Some(keys) = get(name) {
                provider.api_keys = keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| Secret(k.to_string()))
                    .collect();
            }
        }
        // `{ secret: "NAME" }` in a sandbox's env: the worker's variable NAME, read once here.
        let sandboxes = std::iter::once(&mut self.agents.defaults.sandbox).chain(
            self.agents
                .list
                .iter_mut()
                .filter_map(|a| a.sandbox.as_mut()),
        );
        for sandbox in sandboxes {
            for value in sandbox.docker.env.values_mut() {
                // A later source (the deployment's Secrets Manager secret) adds to what an
                // earlier one (the environment) found; it never unsets it.
                if let EnvValue::Secret(secret) = value {
                    if let Some(found) = get(&secret.secret) {
                        secret.value = Some(Secret(found));
                    }
                }
            }
        }
        if let Some(model) = get("CLAWGATE_MODEL") {
            self.agents.defaults.model = Some(match &self.agents.defaults.model {
                Some(setting) => setting.with_primary(model),
                None => ModelSetting::Name(model),
            });
        }
        if let Some(url) = get("CLAWGATE_QUEUE_URL") {
            self.queue.backend = QueueBackend::Sqs;
            self.queue.url = Some(url);
        }
        if let Some(table) = get("CLAWGATE_STATE_TABLE") {
            self.state.backend = StateBackend::Dynamodb;
            self.state.table = Some(table);
        }
        if let Some(token) = get("CLAWGATE_GATEWAY_TOKEN") {
            self.gateway.token = Some(Secret(token));
        }
    }

    /// The agent that serves sessions that do not name one: the entry marked `default`, else
    /// the first listed, else `main`.
    pub fn default_agent(&self) -> &str {
        self.agents
            .list
            .iter()
            .find(|a| a.default)
            .or(self.agents.list.first())
            .map_or("main", |a| a.id.as_str())
    }

    /// Every agent the config names: the default one, `agents.list`, and the agents channel
    /// accounts are bound to (which `validate` keeps inside `agents.list` when it is non-empty).
    /// A request that names any other agent is a typo or a probe, and is refused.
    pub fn agent_ids(&self) -> std::collections::BTreeSet<&str> {
        let bound = self
            .channels
            .telegram
            .iter()
            .flat_map(|t| t.accounts().filter_map(|a| a.agent));
        std::iter::once(self.default_agent())
            .chain(self.agents.list.iter().map(|a| a.id.as_str()))
            .chain(bound)
            .chain(self.bindings.iter().map(|b| b.agent_id.as_str()))
            .collect()
    }

    /// The routing table channels pick agents with: `bindings`, the Telegram accounts' own
    /// `agent` settings, and the default agent.
    pub fn agent_routes(&self) -> AgentRoutes {
        let account_agents = self
            .channels
            .telegram
            .iter()
            .filter(|t| t.enabled)
            .flat_map(|t| {
                t.accounts().filter_map(|a| {
                    let agent = a.agent?;
                    Some((
                        crate::model::Channel::Telegram,
                        a.name.to_string(),
                        agent.to_string(),
                    ))
                })
            })
            .collect();
        AgentRoutes {
            bindings: self.bindings.clone(),
            account_agents,
            default_agent: self.default_agent().to_string(),
        }
    }

    /// The effective config as JSON with every secret redacted (`clawgate config show`).
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a Config always serialises")
    }
}

/// A problem found while parsing text, before a file path is known.
#[derive(Debug)]
pub enum ParseError {
    Syntax(String),
    Invalid(Vec<ConfigIssue>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<ConfigIssue> {
        match Config::parse(text) {
            Ok(config) => config.validate().err().unwrap_or_default(),
            Err(ParseError::Invalid(issues)) => issues,
            Err(ParseError::Syntax(m)) => panic!("syntax: {m}"),
        }
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let config = Config::parse("{}").unwrap();
        let sandbox = &config.agents.defaults.sandbox;
        assert_eq!(sandbox.mode, SandboxMode::All);
        assert_eq!(sandbox.scope, SandboxScope::Session);
        assert_eq!(sandbox.workspace_access, WorkspaceAccess::None);
        assert_eq!(sandbox.docker.network, "none");
        assert_eq!(sandbox.docker.user, "1000:1000");
        assert_eq!(sandbox.docker.pids_limit, 256);
        assert_eq!(config.state.backend, StateBackend::Sqlite);
        assert_eq!(config.queue.max_receive_count, 5);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../fixtures/clawgate.example.json5");
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        let tg = config.channels.telegram.as_ref().unwrap();
        assert_eq!(tg.dm_policy, DmPolicy::Pairing);
        assert_eq!(tg.group_policy, GroupPolicy::Allowlist);
        assert_eq!(tg.groups[ANY_GROUP].require_mention, Some(true));
        assert_eq!(
            config.agents.defaults.sandbox.docker.ulimits["nofile"],
            Ulimit::Pair {
                soft: 1024,
                hard: 2048
            }
        );
        assert_eq!(config.tools.sandbox.tools.deny.len(), 5);
    }

    #[test]
    fn a_typo_in_a_key_names_the_path_and_the_allowed_keys() {
        let found = issues(r#"{ agents: { defaults: { sandbox: { mdoe: "all" } } } }"#);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "agents.defaults.sandbox.mdoe");
        assert!(found[0].message.contains("`mode`"), "{}", found[0].message);
    }

    #[test]
    fn an_unknown_enum_value_lists_the_allowed_values() {
        let found = issues(r#"{ agents: { defaults: { sandbox: { mode: "sometimes" } } } }"#);
        assert_eq!(found[0].path, "agents.defaults.sandbox.mode");
        for allowed in ["off", "non-main", "all"] {
            assert!(found[0].message.contains(allowed), "{}", found[0].message);
        }
    }

    #[test]
    fn a_wrong_type_names_the_path() {
        let found =
            issues(r#"{ agents: { defaults: { sandbox: { docker: { pidsLimit: "lots" } } } } }"#);
        assert_eq!(found[0].path, "agents.defaults.sandbox.docker.pidsLimit");
        assert!(found[0].message.contains("invalid type"));
    }

    #[test]
    fn every_problem_is_reported_in_one_pass() {
        let found = issues(
            r#"{
              agents: { defaults: { sandbox: { scope: "galaxy", docker: { memory: "lots" } } },
                        list: [{ id: "ok" }, { id: "bad id", modle: "x" }] },
              channels: { slack: { dmPolicy: "maybe" } },
              stat: {},
            }"#,
        );
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        for expected in [
            "agents.defaults.sandbox.scope",
            "agents.list[1].modle",
            "channels.slack.dmPolicy",
            "stat",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
    }

    #[test]
    fn semantic_checks_name_their_keys() {
        let found = issues(
            r#"{ agents: { defaults: { model: "gpt-4", sandbox: { docker: { memory: "lots", cpus: 0 } } } },
                 queue: { backend: "sqs", url: "https://sqs.example/q" },
                 state: { backend: "dynamodb" } }"#,
        );
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "agents.defaults.model",
                "agents.defaults.sandbox.docker.memory",
                "agents.defaults.sandbox.docker.cpus",
                "state.table",
                "queue.url"
            ]
        );
    }

    #[test]
    fn a_bad_webhook_secret_is_reported_without_echoing_it() {
        let found = issues(r#"{ channels: { telegram: { webhookSecret: "has spaces!!" } } }"#);
        assert_eq!(found[0].path, "channels.telegram.webhookSecret");
        assert!(!found[0].message.contains("has spaces"));
    }

    #[test]
    fn extra_telegram_bots_are_listed_after_the_default_and_checked_by_name() {
        let text = r#"{ agents: { list: [{ id: "main" }, { id: "ops" }] },
            channels: { telegram: { botToken: "1:a", accounts: {
                work: { botToken: "2:b", agent: "ops", botUsername: "work_bot" } } } } }"#;
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        let tg = config.channels.telegram.as_ref().unwrap();
        let names: Vec<_> = tg.accounts().map(|a| a.name).collect();
        assert_eq!(names, ["default", "work"]);
        let work = tg.account("work").unwrap();
        assert_eq!(work.bot_token.unwrap().expose(), "2:b");
        assert_eq!(
            (work.agent, work.bot_username),
            (Some("ops"), Some("work_bot"))
        );

        let found = issues(
            r#"{ agents: { list: [{ id: "main" }] }, channels: { telegram: { accounts: {
                "Bad/Name": {}, work: { agent: "nobody", webhookSecret: "no spaces allowed" } } } } }"#,
        );
        let paths: Vec<_> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.telegram.accounts.Bad/Name",
                "channels.telegram.accounts.work.webhookSecret",
                "channels.telegram.accounts.work.agent",
            ]
        );
        assert!(!found[1].message.contains("no spaces"));
    }

    #[test]
    fn a_sandbox_secret_comes_from_the_environment_or_the_deployment_s_secret_and_never_prints() {
        let mut config = Config::parse(
            r#"{ agents: { defaults: { sandbox: { docker: { env: {
                GH: { secret: "GITHUB_TOKEN" }, NPM: { secret: "NPM_TOKEN" } } } } } } }"#,
        )
        .unwrap();
        // The environment first (load_text), then the Secrets Manager secret's map
        // (load_deployed_config), which adds what the environment lacked and unsets nothing.
        config.apply_env(|name| (name == "GITHUB_TOKEN").then(|| "ghp_from_env".to_string()));
        config.apply_env(|name| (name == "NPM_TOKEN").then(|| "npm_from_secret".to_string()));

        let value = |key: &str| match &config.agents.defaults.sandbox.docker.env[key] {
            EnvValue::Secret(secret) => secret.value.as_ref().map(|v| v.expose().to_string()),
            EnvValue::Text(_) => None,
        };
        assert_eq!(value("GH").as_deref(), Some("ghp_from_env"));
        assert_eq!(value("NPM").as_deref(), Some("npm_from_secret"));
        let shown = serde_json::to_string(&config.redacted_json()).unwrap();
        let debugged = format!("{config:?}");
        for text in [&shown, &debugged] {
            assert!(
                !text.contains("ghp_from_env") && !text.contains("npm_from_secret"),
                "{text}"
            );
        }
        assert!(shown.contains("GITHUB_TOKEN"));
    }

    #[test]
    fn environment_secrets_override_the_file_and_never_print() {
        let mut config =
            Config::parse(r#"{ channels: { telegram: { botToken: "from-file" } } }"#).unwrap();
        config.apply_env(|name| match name {
            "TELEGRAM_BOT_TOKEN" => Some("123:from-env".into()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-secret".into()),
            _ => None,
        });
        let tg = config.channels.telegram.as_ref().unwrap();
        assert_eq!(tg.bot_token.as_ref().unwrap().expose(), "123:from-env");
        let shown = serde_json::to_string(&config.redacted_json()).unwrap();
        let debugged = format!("{config:?}");
        for text in [&shown, &debugged] {
            assert!(!text.contains("from-env"));
            assert!(!text.contains("sk-ant-secret"));
            assert!(text.contains("<redacted>"));
        }
    }

    #[test]
    fn clawgate_model_overrides_the_file_and_an_unset_model_is_the_default() {
        let mut named =
            Config::parse(r#"{ agents: { defaults: { model: "openai/a" } } }"#).unwrap();
        let unset = Config::parse("{}").unwrap();
        named.apply_env(|name| (name == "CLAWGATE_MODEL").then(|| "openai/from-env".into()));

        assert_eq!(named.agent_profile("main").model, "openai/from-env");
        assert_eq!(unset.agents.defaults.model, None);
        assert_eq!(unset.agent_profile("main").model, DEFAULT_MODEL);
    }

    #[test]
    fn a_model_chain_is_checked_per_model_and_clawgate_model_keeps_its_fallbacks() {
        let bad = issues(
            r#"{ agents: { defaults: { model: { primary: "anthropic/a", fallbacks: ["openai/b", "gpt-4"] } } } }"#,
        );
        let mut chain = Config::parse(
            r#"{ agents: { defaults: { model: { primary: "anthropic/a", fallbacks: ["openai/b"] } } } }"#,
        )
        .unwrap();
        chain.apply_env(|name| (name == "CLAWGATE_MODEL").then(|| "openai/c".into()));
        let profile = chain.agent_profile("main");

        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].path, "agents.defaults.model.fallbacks[1]");
        assert_eq!(
            (profile.model.as_str(), profile.fallbacks),
            ("openai/c", vec!["openai/b".to_string()])
        );
    }

    #[test]
    fn loading_a_file_lists_schema_and_value_problems_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clawgate.json");
        std::fs::write(
            &path,
            r#"{ agents: { defaults: { sandbox: { mode: "sometimes", docker: { memory: "lots" } } } } }"#,
        )
        .unwrap();
        let Err(ConfigError::Invalid { issues, .. }) = Config::load(Some(&path)) else {
            panic!("expected an invalid config")
        };
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "agents.defaults.sandbox.mode",
                "agents.defaults.sandbox.docker.memory"
            ]
        );
    }

    #[test]
    fn a_named_config_file_that_is_missing_is_an_error() {
        let missing = Path::new("/nonexistent/clawgate.json");
        assert!(matches!(
            Config::load(Some(missing)),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn sandbox_escapes_are_refused_with_the_key_that_allows_them() {
        let found = issues(
            r#"{ agents: { defaults: { sandbox: { docker: {
                 network: "host", privileged: true,
                 binds: ["/var/run/docker.sock:/var/run/docker.sock", "/etc:/host-etc:ro", "/srv/data:/data:ro", "/srv/../proc:/p"] } } } } }"#,
        );
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "agents.defaults.sandbox.docker.network",
                "agents.defaults.sandbox.docker.privileged",
                "agents.defaults.sandbox.docker.binds[0]",
                "agents.defaults.sandbox.docker.binds[1]",
                "agents.defaults.sandbox.docker.binds[3]",
            ]
        );
        assert!(found[0].message.contains("dangerouslyAllowHostNetwork"));
        assert!(found[1].message.contains("dangerouslyAllowPrivileged"));
        assert!(found[2].message.contains("dangerouslyAllowSystemBinds"));
    }

    #[test]
    fn sandbox_escapes_pass_when_the_dangerous_key_says_so() {
        let found = issues(
            r#"{ agents: { defaults: { sandbox: { docker: {
                 network: "container:other", privileged: true, binds: ["/var/run/docker.sock:/d.sock"],
                 dangerouslyAllowHostNetwork: true, dangerouslyAllowPrivileged: true,
                 dangerouslyAllowSystemBinds: true } } } } }"#,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn weakened_sandboxes_and_unbounded_numbers_are_refused_with_the_key_that_allows_them() {
        let found = issues(
            r#"{ agents: { defaults: { workspace: "/var/run", sandbox: {
                 workspaceRoot: "/etc/sbx", prune: { idleHours: 1e9, maxAgeDays: -1 },
                 docker: { user: "0", capDrop: [], seccompProfile: "unconfined",
                           apparmorProfile: "Unconfined", pidsLimit: 0 } } } },
                 gateway: { token: "short" },
                 limits: { sessionsSendMaxDepth: 99 } }"#,
        );
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();

        assert_eq!(
            paths,
            [
                "agents.defaults.sandbox.docker.pidsLimit",
                "agents.defaults.sandbox.docker.user",
                "agents.defaults.sandbox.docker.capDrop",
                "agents.defaults.sandbox.docker.seccompProfile",
                "agents.defaults.sandbox.docker.apparmorProfile",
                "agents.defaults.sandbox.workspaceRoot",
                "agents.defaults.sandbox.prune.idleHours",
                "agents.defaults.sandbox.prune.maxAgeDays",
                "agents.defaults.workspace",
                "gateway.token",
                "limits.sessionsSendMaxDepth",
            ]
        );
        assert!(found[1].message.contains("dangerouslyAllowRoot"));
        assert!(found[2].message.contains("dangerouslyAllowCapabilities"));
        assert!(found[3].message.contains("dangerouslyAllowUnconfined"));
        assert!(found[8].message.contains("dangerouslyAllowSystemBinds"));
        assert!(
            !found[9].message.contains("short"),
            "the token is not echoed"
        );
    }

    #[test]
    fn an_infinite_number_is_a_problem_at_its_key_not_a_crash() {
        let found =
            issues(r#"{ agents: { defaults: { sandbox: { prune: { idleHours: Infinity } } } } }"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "agents.defaults.sandbox.prune.idleHours");
    }

    #[test]
    fn weakened_sandboxes_pass_when_their_dangerous_keys_say_so() {
        let found = issues(
            r#"{ agents: { defaults: { workspace: "/var/run/ws", sandbox: {
                 docker: { user: "root", capDrop: ["NET_RAW"], seccompProfile: "unconfined",
                           dangerouslyAllowRoot: true, dangerouslyAllowCapabilities: true,
                           dangerouslyAllowUnconfined: true, dangerouslyAllowSystemBinds: true } } } },
                 gateway: { token: "a-token-of-twenty-four-chars" } }"#,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_home_workspace_is_fine_even_for_root() {
        let found =
            issues(r#"{ agents: { defaults: { workspace: "/root/.clawgate/workspace" } } }"#);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("64kb"), Some(64 << 10));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("1gg"), None);
        assert_eq!(parse_bytes("-1g"), None);
    }

    #[test]
    fn json5_syntax_errors_are_reported_as_such() {
        assert!(matches!(
            Config::parse("{ agents: "),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn the_agents_a_config_names_are_the_default_the_list_and_the_bound_ones() {
        let implicit = Config::parse(
            r#"{ channels: { telegram: { accounts: { work: { agent: "ops" } } } } }"#,
        )
        .unwrap();
        let listed = Config::parse(
            r#"{ agents: { list: [ { id: "home" }, { id: "ops", default: true } ] } }"#,
        )
        .unwrap();

        assert_eq!(
            implicit.agent_ids().into_iter().collect::<Vec<_>>(),
            ["main", "ops"]
        );
        assert_eq!(
            listed.agent_ids().into_iter().collect::<Vec<_>>(),
            ["home", "ops"]
        );
    }
}
