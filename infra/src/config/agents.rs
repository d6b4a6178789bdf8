//! The `agents`, `tools` and `models` sections, and [`AgentProfile`]: an agent's settings
//! resolved once (its own entry over `agents.defaults`), the only place that reads them.
//!
//! Decisions (docs/security.md):
//! - The sandbox defaults are OpenClaw's: `scope: "session"`, `workspaceAccess: "none"` (a
//!   scratch workspace per session under `workspaceRoot`). Owners who want their agent
//!   workspace in the sandbox say `workspaceAccess: "rw"` or `"ro"`.
//! - Guest sessions (groups, channels, hooks) never inherit the owner's scope and workspace
//!   access: `sandbox.guest` decides for them, by default a container and scratch workspace of
//!   their own, and they never run tools on the host unless
//!   `sandbox.guest.dangerouslyAllowHostTools` says so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{expand_home, Config, Secret};

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
    /// `anthropic/<model>` or `openai/<model>`, or OpenClaw's `{primary, fallbacks}`;
    /// `CLAWGATE_MODEL` (and `--model`) override the primary. Unset: [`DEFAULT_MODEL`], or, with
    /// `OPENAI_BASE_URL` and no Anthropic key, the first model that server lists (resolved
    /// once at start-up by the worker's `llm` module).
    pub model: Option<ModelSetting>,
    pub workspace: String,
    /// The most characters of each workspace bootstrap file (AGENTS.md, SOUL.md, …) the
    /// system prompt carries (OpenClaw's key); longer files are cut with a visible marker.
    pub bootstrap_max_chars: usize,
    /// The model's context window in tokens (OpenClaw's key): compaction keeps the context
    /// `compaction.reserveTokensFloor` below it.
    pub context_tokens: u64,
    pub compaction: CompactionConfig,
    /// The default agent's periodic check-in (`crate::cron::sync_heartbeats`).
    pub heartbeat: HeartbeatConfig,
    pub sandbox: SandboxConfig,
    pub subagents: SubagentsConfig,
}

/// `agents.defaults.subagents` (OpenClaw's `maxSpawnDepth`; the hourly count is ours, since a
/// serverless fleet has no process that could count running children).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SubagentsConfig {
    /// How deep spawns may nest: 1 lets the owner's sessions spawn sub-agents that cannot
    /// spawn their own.
    pub max_spawn_depth: u32,
    /// Sub-agents one session may spawn per hour, counted in the store.
    pub max_spawns_per_hour: u32,
}

impl Default for SubagentsConfig {
    fn default() -> Self {
        SubagentsConfig {
            max_spawn_depth: 1,
            max_spawns_per_hour: 20,
        }
    }
}

/// `agents.defaults.heartbeat` (OpenClaw's keys): a periodic turn in the default agent's main
/// session with `HEARTBEAT.md` as its checklist. An answer of `HEARTBEAT_OK` is not delivered;
/// anything else goes to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HeartbeatConfig {
    /// `30m`, `1h`; unset (the default: each beat is a model call) or `0m` is off.
    pub every: Option<String>,
    /// `last` (the chat you wrote from last), `none`, or a chat: `telegram:<id>`,
    /// `slack:<channel>`, `webchat:<conversation>`.
    pub target: String,
    pub active_hours: Option<crate::model::ActiveHours>,
    /// The beat's instruction (default: follow HEARTBEAT.md, answer HEARTBEAT_OK when nothing
    /// needs you).
    pub prompt: Option<String>,
    /// How much text beside `HEARTBEAT_OK` still counts as "nothing to report".
    pub ack_max_chars: usize,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            every: None,
            target: "last".into(),
            active_hours: None,
            prompt: None,
            ack_max_chars: 300,
        }
    }
}

impl HeartbeatConfig {
    /// The interval, when the heartbeat is on.
    pub fn interval(&self) -> Result<Option<std::time::Duration>, String> {
        match self.every.as_deref().map(str::trim) {
            None | Some("") | Some("0") | Some("0m") => Ok(None),
            Some(every) => humantime::parse_duration(every)
                .map(|d| (!d.is_zero()).then_some(d))
                .map_err(|e| format!("{every:?}: {e} (use e.g. 30m, 1h)")),
        }
    }
}

/// `agents.defaults.compaction`: when older turns are summarised, and the memory flush first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CompactionConfig {
    /// Tokens kept free below `contextTokens` for the next answer and its tool results.
    pub reserve_tokens_floor: u64,
    pub memory_flush: MemoryFlushConfig,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            reserve_tokens_floor: 20_000,
            memory_flush: MemoryFlushConfig::default(),
        }
    }
}

/// `agents.defaults.compaction.memoryFlush`: the silent turn before a compaction that asks the
/// model to write what matters to the memory files (owner sessions only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MemoryFlushConfig {
    pub enabled: bool,
    /// The flush turn's instruction (default: write durable notes to `memory/<today>.md`).
    pub prompt: Option<String>,
}

impl Default for MemoryFlushConfig {
    fn default() -> Self {
        MemoryFlushConfig {
            enabled: true,
            prompt: None,
        }
    }
}

/// A model, or a primary with fallbacks tried in order when it fails for good (OpenClaw's
/// `model: { primary, fallbacks }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSetting {
    Name(String),
    Chain {
        primary: String,
        #[serde(default)]
        fallbacks: Vec<String>,
    },
}

impl ModelSetting {
    pub fn primary(&self) -> &str {
        match self {
            ModelSetting::Name(name) | ModelSetting::Chain { primary: name, .. } => name,
        }
    }

    pub fn fallbacks(&self) -> &[String] {
        match self {
            ModelSetting::Name(_) => &[],
            ModelSetting::Chain { fallbacks, .. } => fallbacks,
        }
    }

    /// The same chain with another primary (`CLAWGATE_MODEL`, `--model`).
    pub fn with_primary(&self, primary: String) -> ModelSetting {
        match self {
            ModelSetting::Name(_) => ModelSetting::Name(primary),
            ModelSetting::Chain { fallbacks, .. } => ModelSetting::Chain {
                primary,
                fallbacks: fallbacks.clone(),
            },
        }
    }
}

/// The agent workspace when the config names none.
pub const DEFAULT_WORKSPACE: &str = "~/.clawgate/workspace";

/// The model of an agent no setting names.
pub const DEFAULT_MODEL: &str = "anthropic/claude-sonnet-4-5";

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            model: None,
            workspace: DEFAULT_WORKSPACE.into(),
            bootstrap_max_chars: 20_000,
            context_tokens: 200_000,
            compaction: CompactionConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            sandbox: SandboxConfig::default(),
            subagents: SubagentsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentEntry {
    pub id: String,
    pub default: bool,
    pub model: Option<ModelSetting>,
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

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Off => "off",
            SandboxMode::NonMain => "non-main",
            SandboxMode::All => "all",
        }
    }
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

/// Which sessions a sandboxed session's `sessions_*` tools may see (OpenClaw's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionToolsVisibility {
    /// Itself and the sessions it spawned.
    #[default]
    Spawned,
    /// Every session of its own agent.
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    pub scope: SandboxScope,
    pub workspace_access: WorkspaceAccess,
    pub workspace_root: String,
    pub session_tools_visibility: SessionToolsVisibility,
    /// How sessions that are not the owner's (groups, channels, hooks) are sandboxed.
    pub guest: GuestSandbox,
    pub docker: DockerConfig,
    pub prune: PruneConfig,
    /// Containers kept created and started ahead of need for this profile's new sessions, so
    /// a new session's first call skips create + start (docs/sandbox-agent.md). 0 (default):
    /// none, each costs a few MiB while it waits; 2 suits a worker host.
    pub warm_pool: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            mode: SandboxMode::All,
            scope: SandboxScope::Session,
            workspace_access: WorkspaceAccess::None,
            workspace_root: "~/.clawgate/sandboxes".into(),
            session_tools_visibility: SessionToolsVisibility::Spawned,
            guest: GuestSandbox::default(),
            docker: DockerConfig::default(),
            prune: PruneConfig::default(),
            warm_pool: 0,
        }
    }
}

/// `sandbox.guest`: the scope and workspace of guest sessions, set apart from the owner's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GuestSandbox {
    pub scope: SandboxScope,
    pub workspace_access: WorkspaceAccess,
    /// Lets guest sessions run tools on the host when the mode runs them there (`off`). Off by
    /// default: a group member would otherwise get a shell on the owner's machine.
    pub dangerously_allow_host_tools: bool,
}

impl Default for GuestSandbox {
    fn default() -> Self {
        GuestSandbox {
            scope: SandboxScope::Session,
            workspace_access: WorkspaceAccess::None,
            dangerously_allow_host_tools: false,
        }
    }
}

/// A `sandbox.docker.env` value: text, or `{ secret: "NAME" }`, the worker's environment
/// variable `NAME` read when the config is loaded ([`Config::apply_env`]). A secret reaches
/// only the containers of owner sessions of the agents that name it, and tool output has its
/// value replaced by `<secret:NAME>` before the model or the transcript sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    Text(String),
    Secret(SecretRef),
}

/// `{ secret: "NAME" }`, and its value once resolved (never serialized: `config show` and the
/// container's config hash see the name only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub secret: String,
    #[serde(skip)]
    pub value: Option<Secret>,
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
    /// The container's whole environment: text, or `{ secret: "NAME" }` (docs/security.md).
    pub env: BTreeMap<String, EnvValue>,
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
    /// Allows binds of the Docker socket and of system paths, and a workspace in one. Off by
    /// default.
    pub dangerously_allow_system_binds: bool,
    /// Allows `privileged: true`. Off by default.
    pub dangerously_allow_privileged: bool,
    /// Allows running as root (`user: "0"`, `"root"`, or empty). Off by default.
    pub dangerously_allow_root: bool,
    /// Allows a `capDrop` without `"ALL"`. Off by default.
    pub dangerously_allow_capabilities: bool,
    /// Allows `seccompProfile` / `apparmorProfile` `"unconfined"`. Off by default.
    pub dangerously_allow_unconfined: bool,
}

/// The sandbox image `clawgate sandbox build` makes from `Dockerfile.sandbox`, and the default
/// `docker.image`.
pub const DEFAULT_SANDBOX_IMAGE: &str = "clawgate-sandbox:bookworm-slim";

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            image: DEFAULT_SANDBOX_IMAGE.into(),
            container_prefix: "clawgate-sbx-".into(),
            workdir: "/workspace".into(),
            read_only_root: true,
            tmpfs: vec!["/tmp".into(), "/var/tmp".into(), "/run".into()],
            network: "none".into(),
            user: "1000:1000".into(),
            cap_drop: vec!["ALL".into()],
            env: BTreeMap::from([("LANG".to_string(), EnvValue::Text("C.UTF-8".to_string()))]),
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
            dangerously_allow_root: false,
            dangerously_allow_capabilities: false,
            dangerously_allow_unconfined: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PruneConfig {
    pub idle_hours: f64,
    pub max_age_days: f64,
    /// The most sandbox containers kept on one host (one Docker daemon); past it the least
    /// recently used idle one is removed when another is created. 0: no cap.
    pub max_containers: u32,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            idle_hours: 24.0,
            max_age_days: 7.0,
            max_containers: 64,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolsConfig {
    pub sandbox: ToolsSandbox,
    /// Whether `sessions_send` may cross from one agent to another (OpenClaw's key).
    pub agent_to_agent: AgentToAgent,
    /// Voice-note transcription (top level only: one transcription setup per deployment).
    pub media: super::MediaToolsConfig,
    /// `web_fetch` and the egress guard (top level only).
    pub web: super::WebToolsConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolsSandbox {
    pub tools: ToolPolicyConfig,
}

/// `tools.agentToAgent`: off by default; when on, only to the agents in `allow` (`"*"`: any).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentToAgent {
    pub enabled: bool,
    pub allow: Vec<String>,
}

impl AgentToAgent {
    /// True when a session of one agent may send to a session of `target`.
    pub fn allows(&self, target: &str) -> bool {
        self.enabled && self.allow.iter().any(|a| a == "*" || a == target)
    }
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
                "group:memory".into(),
                // The `cron` tool schedules this agent's own jobs and exists only in owner
                // sessions (OpenClaw denies its gateway-wide cron tool to sandboxes).
                "group:automation".into(),
                // `message` sends only to the chat the job came from.
                "group:messaging".into(),
                // `web_fetch` (OpenClaw enables it by default), through the egress guard, in
                // owner sessions only.
                "group:web".into(),
                // `skill`: reads the owner's installed skills' instructions.
                "group:skills".into(),
                // The tools of the MCP servers the owner configured (`mcp.servers`), in owner
                // sessions only.
                "mcp__*".into(),
            ],
            deny: vec![
                "browser".into(),
                "canvas".into(),
                "nodes".into(),
                "gateway".into(),
            ],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelsConfig {
    pub providers: ProvidersConfig,
    /// USD per million tokens by `provider/model`, for `/usage` and `clawgate status`.
    pub pricing: std::collections::BTreeMap<String, crate::usage::Price>,
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
    /// More keys for the same provider (accounts, projects), tried in turn when one is rate
    /// limited; `ANTHROPIC_API_KEYS` / `OPENAI_API_KEYS` (comma-separated) set them too.
    pub api_keys: Vec<Secret>,
    pub base_url: Option<String>,
}

impl ProviderConfig {
    /// Whether the config (or its environment) set this provider up at all.
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some() || !self.api_keys.is_empty() || self.base_url.is_some()
    }

    /// Every key, `apiKey` first, each once.
    pub fn keys(&self) -> Vec<Secret> {
        let mut keys: Vec<Secret> = Vec::new();
        for key in self.api_key.iter().chain(&self.api_keys) {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }
}

/// One agent's settings with its own entry applied over the defaults: what every part of the
/// system (worker, tools, sandbox, CLI) reads, so no part can resolve them differently.
#[derive(Debug, Clone)]
pub struct AgentProfile {
    pub id: String,
    /// `provider/model`.
    pub model: String,
    /// Tried in order when `model` fails for good (auth, refusal, retries spent).
    pub fallbacks: Vec<String>,
    /// The agent's workspace on the host.
    pub workspace: PathBuf,
    pub bootstrap_max_chars: usize,
    /// Compaction starts when the context reaches this many tokens (`contextTokens` less
    /// `compaction.reserveTokensFloor`).
    pub compact_at_tokens: u64,
    pub memory_flush: MemoryFlushConfig,
    pub sandbox: SandboxConfig,
    pub tools: ToolPolicyConfig,
    pub agent_to_agent: AgentToAgent,
}

impl Config {
    /// Every `provider/model` any agent may call (primaries and fallbacks), sorted: the models
    /// usage totals are read for.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .agent_ids()
            .into_iter()
            .flat_map(|id| {
                let profile = self.agent_profile(id);
                std::iter::once(profile.model).chain(profile.fallbacks)
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The settings of agent `id`: its `agents.list` entry over `agents.defaults`, where an
    /// entry's `sandbox` or `tools` replaces the default section whole. An id the config does
    /// not list gets the defaults.
    pub fn agent_profile(&self, id: &str) -> AgentProfile {
        let entry = self.agents.list.iter().find(|a| a.id == id);
        let defaults = &self.agents.defaults;
        let tools = entry.and_then(|a| a.tools.as_ref()).unwrap_or(&self.tools);
        let model = entry
            .and_then(|a| a.model.clone())
            .or_else(|| defaults.model.clone())
            .unwrap_or_else(|| ModelSetting::Name(DEFAULT_MODEL.to_string()));
        AgentProfile {
            id: id.to_string(),
            model: model.primary().to_string(),
            fallbacks: model.fallbacks().to_vec(),
            workspace: expand_home(
                entry
                    .and_then(|a| a.workspace.as_deref())
                    .unwrap_or(&defaults.workspace),
            ),
            bootstrap_max_chars: defaults.bootstrap_max_chars,
            compact_at_tokens: defaults
                .context_tokens
                .saturating_sub(defaults.compaction.reserve_tokens_floor),
            memory_flush: defaults.compaction.memory_flush.clone(),
            sandbox: entry
                .and_then(|a| a.sandbox.clone())
                .unwrap_or_else(|| defaults.sandbox.clone()),
            tools: tools.sandbox.tools.clone(),
            agent_to_agent: self.tools.agent_to_agent.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_own_sections_replace_the_defaults_whole() {
        let config = Config::parse(
            r#"{ agents: { defaults: { model: "anthropic/a", workspace: "/srv/ws", sandbox: { mode: "all" } },
                           list: [{ id: "ops", model: "openai/b", sandbox: { mode: "off" },
                                    tools: { sandbox: { tools: { allow: ["exec"], deny: [] } } } }] },
                 tools: { sandbox: { tools: { allow: ["group:fs"], deny: [] } }, agentToAgent: { enabled: true, allow: ["ops"] } } }"#,
        )
        .unwrap();

        let ops = config.agent_profile("ops");
        let main = config.agent_profile("main");

        assert_eq!(
            (ops.model.as_str(), ops.sandbox.mode),
            ("openai/b", SandboxMode::Off)
        );
        assert_eq!(ops.tools.allow, ["exec"]);
        assert_eq!(ops.workspace, PathBuf::from("/srv/ws"));
        assert_eq!(
            (main.model.as_str(), main.sandbox.mode),
            ("anthropic/a", SandboxMode::All)
        );
        assert_eq!(main.tools.allow, ["group:fs"]);
        assert!(main.agent_to_agent.allows("ops") && !main.agent_to_agent.allows("main"));
    }

    #[test]
    fn the_sandbox_defaults_are_openclaws_and_guests_get_their_own() {
        let sandbox = Config::default().agent_profile("main").sandbox;
        assert_eq!(sandbox.scope, SandboxScope::Session);
        assert_eq!(sandbox.workspace_access, WorkspaceAccess::None);
        assert_eq!(sandbox.guest.scope, SandboxScope::Session);
        assert_eq!(sandbox.guest.workspace_access, WorkspaceAccess::None);
        assert!(!sandbox.guest.dangerously_allow_host_tools);
        assert_eq!(
            sandbox.session_tools_visibility,
            SessionToolsVisibility::Spawned
        );
    }
}
