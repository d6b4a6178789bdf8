//! The configuration file: schema (JSON5, OpenClaw's key names, DESIGN §5), defaults, loading,
//! environment overrides for secrets, and validation that names the key path of every problem.
//!
//! Decisions:
//! - Every struct denies unknown keys, so a typo is an error, never silently ignored.
//! - All problems are reported at once: after each schema error the offending key is removed
//!   and decoding is retried, so `config validate` lists every bad key in one run.
//! - Environment variables for secrets win over the file (the usual twelve-factor order), so a
//!   deployment can keep secrets out of the file entirely.
//! - Secrets are [`Secret`]: `Debug`, `Display` and `Serialize` print `<redacted>`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A secret string. It never prints: `Debug`, `Display` and `Serialize` all show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentsConfig {
    pub defaults: AgentDefaults,
    /// Per-agent overrides; an agent's `sandbox`/`tools` replace the defaults' wholesale.
    pub list: Vec<AgentEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentDefaults {
    /// `anthropic/<model>` or `openai/<model>`.
    pub model: String,
    pub workspace: String,
    pub sandbox: SandboxConfig,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            model: "anthropic/claude-sonnet-4-5".into(),
            workspace: "~/.clawgate/workspace".into(),
            sandbox: SandboxConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentEntry {
    pub id: String,
    pub default: bool,
    pub model: Option<String>,
    pub workspace: Option<String>,
    pub sandbox: Option<SandboxConfig>,
    pub tools: Option<ToolsConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    Off,
    NonMain,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxScope {
    Session,
    Agent,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceAccess {
    None,
    Ro,
    Rw,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    pub scope: SandboxScope,
    pub workspace_access: WorkspaceAccess,
    pub workspace_root: String,
    pub docker: DockerConfig,
    pub prune: PruneConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            mode: SandboxMode::All,
            scope: SandboxScope::Agent,
            workspace_access: WorkspaceAccess::Rw,
            workspace_root: "~/.clawgate/sandboxes".into(),
            docker: DockerConfig::default(),
            prune: PruneConfig::default(),
        }
    }
}

/// A ulimit: a single number (soft = hard) or `{ soft, hard }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ulimit {
    Both(i64),
    Pair { soft: i64, hard: i64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DockerConfig {
    pub image: String,
    pub container_prefix: String,
    pub workdir: String,
    pub read_only_root: bool,
    pub tmpfs: Vec<String>,
    pub network: String,
    pub user: String,
    pub cap_drop: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub setup_command: String,
    pub pids_limit: i64,
    pub memory: String,
    pub memory_swap: String,
    pub cpus: f64,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub seccomp_profile: Option<String>,
    pub apparmor_profile: Option<String>,
    pub dns: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub binds: Vec<String>,
    /// Runs the container privileged. Refused unless `dangerouslyAllowPrivileged` is set.
    pub privileged: bool,
    /// Allows `network: "host"` and `container:<id>` joins. Off by default.
    pub dangerously_allow_host_network: bool,
    /// Allows binds of the Docker socket and of system paths. Off by default.
    pub dangerously_allow_system_binds: bool,
    /// Allows `privileged: true`. Off by default.
    pub dangerously_allow_privileged: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            image: "clawgate-sandbox:bookworm-slim".into(),
            container_prefix: "clawgate-sbx-".into(),
            workdir: "/workspace".into(),
            read_only_root: true,
            tmpfs: vec!["/tmp".into(), "/var/tmp".into(), "/run".into()],
            network: "none".into(),
            user: "1000:1000".into(),
            cap_drop: vec!["ALL".into()],
            env: BTreeMap::from([("LANG".to_string(), "C.UTF-8".to_string())]),
            setup_command: String::new(),
            pids_limit: 256,
            memory: "1g".into(),
            memory_swap: "2g".into(),
            cpus: 1.0,
            ulimits: BTreeMap::from([(
                "nofile".to_string(),
                Ulimit::Pair {
                    soft: 1024,
                    hard: 2048,
                },
            )]),
            seccomp_profile: None,
            apparmor_profile: None,
            dns: vec![],
            extra_hosts: vec![],
            binds: vec![],
            privileged: false,
            dangerously_allow_host_network: false,
            dangerously_allow_system_binds: false,
            dangerously_allow_privileged: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PruneConfig {
    pub idle_hours: f64,
    pub max_age_days: f64,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            idle_hours: 24.0,
            max_age_days: 7.0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolsConfig {
    pub sandbox: ToolsSandbox,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolsSandbox {
    pub tools: ToolPolicyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolPolicyConfig {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Default for ToolPolicyConfig {
    fn default() -> Self {
        ToolPolicyConfig {
            allow: vec![
                "group:fs".into(),
                "group:runtime".into(),
                "group:sessions".into(),
            ],
            deny: vec![
                "browser".into(),
                "canvas".into(),
                "nodes".into(),
                "cron".into(),
                "gateway".into(),
            ],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelsConfig {
    pub providers: ProvidersConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvidersConfig {
    pub anthropic: ProviderConfig,
    pub openai: ProviderConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderConfig {
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelsConfig {
    pub telegram: Option<TelegramConfig>,
    pub slack: Option<SlackConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    Pairing,
    Allowlist,
    Open,
    Disabled,
}

/// A peer id given as a number or a string; kept as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeerId {
    Number(i64),
    Text(String),
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerId::Number(n) => write!(f, "{n}"),
            PeerId::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupsConfig {
    pub require_mention: bool,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            require_mention: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramConfig {
    pub enabled: bool,
    /// Bot API base URL (default `https://api.telegram.org`; `TELEGRAM_API_BASE` overrides).
    pub api_base: Option<String>,
    pub bot_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    /// The bot's @username (without `@`), for mention gating in groups.
    pub bot_username: Option<String>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
    pub groups: GroupsConfig,
    /// More bots, by account name (served at `/telegram/{account}`). The fields above are the
    /// `default` account; each extra bot shares the DM policy, allowlist and group settings.
    pub accounts: BTreeMap<String, TelegramAccountConfig>,
}

/// One extra Telegram bot (`channels.telegram.accounts.<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramAccountConfig {
    pub bot_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub bot_username: Option<String>,
    /// The agent this bot talks to (default: the default agent).
    pub agent: Option<String>,
}

/// One Telegram bot as every part of the system sees it: the `default` account (the top-level
/// fields) or an entry of `accounts`.
#[derive(Debug, Clone)]
pub struct TelegramAccount<'a> {
    pub name: &'a str,
    pub bot_token: Option<&'a Secret>,
    pub webhook_secret: Option<&'a Secret>,
    pub bot_username: Option<&'a str>,
    pub agent: Option<&'a str>,
}

impl TelegramConfig {
    /// The name of the account the top-level fields describe.
    pub const DEFAULT_ACCOUNT: &'static str = "default";

    /// Every bot: `default` first, then the named accounts in name order.
    pub fn accounts(&self) -> impl Iterator<Item = TelegramAccount<'_>> {
        let default = TelegramAccount {
            name: Self::DEFAULT_ACCOUNT,
            bot_token: self.bot_token.as_ref(),
            webhook_secret: self.webhook_secret.as_ref(),
            bot_username: self.bot_username.as_deref(),
            agent: None,
        };
        std::iter::once(default).chain(self.accounts.iter().map(|(name, a)| TelegramAccount {
            name,
            bot_token: a.bot_token.as_ref(),
            webhook_secret: a.webhook_secret.as_ref(),
            bot_username: a.bot_username.as_deref(),
            agent: a.agent.as_deref(),
        }))
    }

    /// The bot called `name`, if configured.
    pub fn account(&self, name: &str) -> Option<TelegramAccount<'_>> {
        self.accounts().find(|a| a.name == name)
    }
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            enabled: true,
            api_base: None,
            bot_token: None,
            webhook_secret: None,
            bot_username: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            groups: GroupsConfig::default(),
            accounts: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackConfig {
    pub enabled: bool,
    /// Web API base URL (default `https://slack.com`; `SLACK_API_BASE` overrides).
    pub api_base: Option<String>,
    pub bot_token: Option<Secret>,
    pub signing_secret: Option<Secret>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            enabled: true,
            api_base: None,
            bot_token: None,
            signing_secret: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
        }
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
        let (mut config, mut issues) = match Config::parse_lenient(&text) {
            Ok(parsed) => parsed,
            Err(message) => return Err(ConfigError::Syntax { path, message }),
        };
        config.apply_env(|name| std::env::var(name).ok());
        issues.extend(config.validate().err().unwrap_or_default());
        if issues.is_empty() {
            Ok((config, path))
        } else {
            Err(ConfigError::Invalid { path, issues })
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

    /// Parses JSON5 text, collecting every schema problem: the config it returns is the file
    /// with the offending keys left out (so their defaults apply), beside the list of problems.
    /// Only a JSON5 syntax error stops it.
    fn parse_lenient(text: &str) -> Result<(Config, Vec<ConfigIssue>), String> {
        let mut value: Value = json5::from_str(text).map_err(|e| e.to_string())?;
        let mut issues = Vec::new();
        // Each failed decode names one problem; drop that key and decode again, so one run
        // reports them all. The bound only guards against a pathological file.
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, Config>(&value) {
                Ok(config) => return Ok((config, issues)),
                Err(err) => {
                    let (path, message) = describe(&err);
                    let removed = remove_path(&mut value, &path);
                    issues.push(ConfigIssue {
                        path: if path.is_empty() {
                            "(root)".into()
                        } else {
                            path
                        },
                        message,
                    });
                    if !removed {
                        break;
                    }
                }
            }
        }
        Ok((Config::default(), issues))
    }

    /// Overrides secrets (and the OpenAI base URL) from the environment.
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
        if let Some(url) = get("TELEGRAM_API_BASE") {
            self.channels
                .telegram
                .get_or_insert_with(Default::default)
                .api_base = Some(url);
        }
        if let Some(url) = get("SLACK_API_BASE") {
            self.channels
                .slack
                .get_or_insert_with(Default::default)
                .api_base = Some(url);
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

    /// Checks values the schema alone cannot: formats, ranges, and keys that need each other.
    pub fn validate(&self) -> Result<(), Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut bad = |path: &str, message: String| {
            issues.push(ConfigIssue {
                path: path.to_string(),
                message,
            })
        };
        check_model(
            &self.agents.defaults.model,
            "agents.defaults.model",
            &mut bad,
        );
        check_sandbox(
            &self.agents.defaults.sandbox,
            "agents.defaults.sandbox",
            &mut bad,
        );
        let mut seen = std::collections::BTreeSet::new();
        for (i, agent) in self.agents.list.iter().enumerate() {
            let at = format!("agents.list[{i}]");
            if agent.id.is_empty()
                || !agent
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bad(
                    &format!("{at}.id"),
                    format!(
                        "{:?} is not an agent id: use 1+ of A-Z a-z 0-9 - _",
                        agent.id
                    ),
                );
            }
            if !seen.insert(agent.id.clone()) {
                bad(
                    &format!("{at}.id"),
                    format!("duplicate agent id {:?}", agent.id),
                );
            }
            if let Some(model) = &agent.model {
                check_model(model, &format!("{at}.model"), &mut bad);
            }
            if let Some(sandbox) = &agent.sandbox {
                check_sandbox(sandbox, &format!("{at}.sandbox"), &mut bad);
            }
        }
        if let Some(tg) = &self.channels.telegram {
            for account in tg.accounts() {
                let at = if account.name == TelegramConfig::DEFAULT_ACCOUNT {
                    "channels.telegram".to_string()
                } else {
                    format!("channels.telegram.accounts.{}", account.name)
                };
                if account.name != TelegramConfig::DEFAULT_ACCOUNT && !is_url_segment(account.name)
                {
                    bad(
                        &at,
                        "an account name must be 1-64 characters of a-z 0-9 _ - (it is a URL path segment)".into(),
                    );
                }
                if let Some(secret) = account.webhook_secret {
                    if !is_telegram_secret_token(secret.expose()) {
                        // The value is a secret: say what is wrong, never what it is.
                        bad(
                            &format!("{at}.webhookSecret"),
                            "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule)".into(),
                        );
                    }
                }
                if let Some(agent) = account.agent {
                    if !self.agents.list.is_empty()
                        && !self.agents.list.iter().any(|a| a.id == agent)
                    {
                        bad(
                            &format!("{at}.agent"),
                            format!("no agent {agent:?} in agents.list"),
                        );
                    }
                }
            }
        }
        if self.state.backend == StateBackend::Dynamodb
            && self.state.table.as_deref().unwrap_or("").is_empty()
        {
            bad(
                "state.table",
                "required when state.backend is \"dynamodb\"".into(),
            );
        }
        if self.queue.backend == QueueBackend::Sqs {
            match self.queue.url.as_deref() {
                None | Some("") => {
                    bad("queue.url", "required when queue.backend is \"sqs\"".into())
                }
                Some(url) if !url.ends_with(".fifo") => bad(
                    "queue.url",
                    format!("{url:?} is not a FIFO queue: the URL must end in .fifo"),
                ),
                _ => {}
            }
        }
        if !(1..=43_200).contains(&self.queue.visibility_timeout_seconds) {
            bad(
                "queue.visibilityTimeoutSeconds",
                "must be 1 to 43200 (SQS's range)".into(),
            );
        }
        if !(1..=1000).contains(&self.queue.max_receive_count) {
            bad(
                "queue.maxReceiveCount",
                "must be 1 to 1000 (SQS's range)".into(),
            );
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
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
            .collect()
    }

    /// The effective config as JSON with every secret redacted (`clawgate config show`).
    pub fn redacted_json(&self) -> Value {
        serde_json::to_value(self).expect("a Config always serialises")
    }
}

/// Telegram's rule for `setWebhook`'s `secret_token`.
pub fn is_telegram_secret_token(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_url_segment(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_model(model: &str, path: &str, bad: &mut impl FnMut(&str, String)) {
    match model.split_once('/') {
        Some(("anthropic" | "openai", name)) if !name.is_empty() => {}
        _ => bad(
            path,
            format!("{model:?} is not <provider>/<model>; provider is one of: anthropic, openai"),
        ),
    }
}

fn check_sandbox(sandbox: &SandboxConfig, path: &str, bad: &mut impl FnMut(&str, String)) {
    let docker = &sandbox.docker;
    for (key, value) in [
        ("memory", &docker.memory),
        ("memorySwap", &docker.memory_swap),
    ] {
        if !value.is_empty() && parse_bytes(value).is_none() {
            bad(
                &format!("{path}.docker.{key}"),
                format!("{value:?} is not a size: use a number with b, k, m or g (e.g. \"1g\")"),
            );
        }
    }
    if !(docker.cpus > 0.0 && docker.cpus <= 1024.0) {
        bad(
            &format!("{path}.docker.cpus"),
            "must be greater than 0".into(),
        );
    }
    if docker.pids_limit < 1 {
        bad(
            &format!("{path}.docker.pidsLimit"),
            "must be at least 1".into(),
        );
    }
    for (name, limit) in &docker.ulimits {
        if let Ulimit::Pair { soft, hard } = limit {
            if soft > hard {
                bad(
                    &format!("{path}.docker.ulimits.{name}"),
                    format!("soft ({soft}) is above hard ({hard})"),
                );
            }
        }
    }
    check_isolation(docker, &format!("{path}.docker"), bad);
    if sandbox.prune.idle_hours < 0.0 {
        bad(
            &format!("{path}.prune.idleHours"),
            "must not be negative".into(),
        );
    }
    if sandbox.prune.max_age_days < 0.0 {
        bad(
            &format!("{path}.prune.maxAgeDays"),
            "must not be negative".into(),
        );
    }
}

/// Refuses settings that break the sandbox open, unless their `dangerously…` key says so
/// (DESIGN §6): host networking, joining another container's namespaces, privileged mode, and
/// binds of the Docker socket or of system paths.
fn check_isolation(docker: &DockerConfig, path: &str, bad: &mut impl FnMut(&str, String)) {
    let network = docker.network.trim();
    if (network == "host" || network.starts_with("container:"))
        && !docker.dangerously_allow_host_network
    {
        bad(
            &format!("{path}.network"),
            format!("{network:?} shares a namespace with the host or another container; use \"none\" or a bridge network, or set {path}.dangerouslyAllowHostNetwork: true"),
        );
    }
    if docker.privileged && !docker.dangerously_allow_privileged {
        bad(
            &format!("{path}.privileged"),
            format!("a privileged container is no sandbox; set {path}.dangerouslyAllowPrivileged: true to allow it"),
        );
    }
    for (i, bind) in docker.binds.iter().enumerate() {
        let source = bind.split(':').next().unwrap_or("");
        if let Some(why) = dangerous_bind_source(source) {
            if !docker.dangerously_allow_system_binds {
                bad(
                    &format!("{path}.binds[{i}]"),
                    format!("{bind:?} mounts {why}; set {path}.dangerouslyAllowSystemBinds: true to allow it"),
                );
            }
        }
        if !source.starts_with('/') {
            bad(
                &format!("{path}.binds[{i}]"),
                format!("{bind:?}: the source must be an absolute host path (host:container[:ro])"),
            );
        }
    }
}

/// Why a bind source is dangerous, if it is: the Docker socket, or a system directory.
pub fn dangerous_bind_source(source: &str) -> Option<&'static str> {
    let mut parts: Vec<&str> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let normalized = format!("/{}", parts.join("/"));
    if parts.last().is_some_and(|f| f.ends_with(".sock")) {
        return Some("a daemon socket (such a socket gives root on the host)");
    }
    const EXACT: &[&str] = &[
        "/", "/home", "/var", "/var/run", "/run", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt",
    ];
    const TREES: &[&str] = &[
        "/etc",
        "/proc",
        "/sys",
        "/dev",
        "/boot",
        "/root",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/run/containerd",
    ];
    if EXACT.contains(&normalized.as_str())
        || TREES
            .iter()
            .any(|t| normalized == *t || normalized.starts_with(&format!("{t}/")))
    {
        return Some("a system path");
    }
    None
}

/// Parses Docker-style sizes: `512m`, `1g`, `1048576`, `64k`, `1.5g`.
pub fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let factor: f64 = match unit.trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    if unit.len() > 2 || (unit.len() == 2 && !unit.ends_with('b')) {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    (n > 0.0 && n.is_finite()).then_some((n * factor) as i64)
}

/// A problem found while parsing text, before a file path is known.
#[derive(Debug)]
pub enum ParseError {
    Syntax(String),
    Invalid(Vec<ConfigIssue>),
}

/// The key path and message of one decode error. For an unknown key serde reports the parent
/// path; the key is in the message, so it is appended to the path.
fn describe(err: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut path = err.path().to_string();
    if path == "." {
        path.clear();
    }
    let message = err.inner().to_string();
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let key = &rest[..end];
            if !path.ends_with(key) {
                path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
            }
            let expected = rest[end + 1..].trim_start_matches(", ");
            return (path, format!("unknown key; {expected}"));
        }
    }
    (path, message)
}

/// Removes the value at a `a.b[2].c` path; false when the path does not lead anywhere.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut segments = Vec::new();
    for dotted in path.split('.').filter(|s| !s.is_empty()) {
        let mut rest = dotted;
        if let Some(i) = rest.find('[') {
            segments.push(Segment::Key(rest[..i].to_string()));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                match rest[1..end].parse() {
                    Ok(n) => segments.push(Segment::Index(n)),
                    Err(_) => return false,
                }
                rest = &rest[end + 1..];
            }
        } else {
            segments.push(Segment::Key(rest.to_string()));
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cursor = value;
    for seg in parents {
        cursor = match (seg, cursor) {
            (Segment::Key(k), Value::Object(map)) => match map.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cursor) {
        (Segment::Key(k), Value::Object(map)) => map.remove(k).is_some(),
        (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
            // Replace rather than shift, so later indices in the file keep their numbers.
            items[*i] = Value::Null;
            true
        }
        _ => false,
    }
}

enum Segment {
    Key(String),
    Index(usize),
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
        assert_eq!(sandbox.scope, SandboxScope::Agent);
        assert_eq!(sandbox.docker.network, "none");
        assert_eq!(sandbox.docker.user, "1000:1000");
        assert_eq!(sandbox.docker.pids_limit, 256);
        assert_eq!(config.state.backend, StateBackend::Sqlite);
        assert_eq!(config.queue.max_receive_count, 5);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_design_doc_example_parses() {
        let text = include_str!("../fixtures/clawgate.example.json5");
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        let tg = config.channels.telegram.as_ref().unwrap();
        assert_eq!(tg.dm_policy, DmPolicy::Pairing);
        assert!(tg.groups.require_mention);
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
