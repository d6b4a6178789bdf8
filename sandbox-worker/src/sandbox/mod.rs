//! Where tool calls run (DESIGN §6): the plan for a session (mode, scope, workspace, container),
//! and the two exec backends behind one trait, Docker ([`docker`]) and the host ([`host`]).
//!
//! Decisions:
//! - When the plan says "sandboxed" and Docker is unreachable, the call fails with an error
//!   naming the socket. Nothing ever falls back to the host.
//! - The workspace is a host directory, bind-mounted at `/workspace` in the container. With
//!   `workspaceAccess: none` it is a scratch directory per scope under `workspaceRoot`; with
//!   `ro`/`rw` it is the agent's workspace. Host runs (mode `off`, or the main session under
//!   `non-main`) use the agent's workspace.

pub mod docker;
pub mod host;
pub mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use infra::config::{
    expand_home, AgentEntry, Config, DockerConfig, PruneConfig, SandboxConfig, SandboxMode,
    SandboxScope, WorkspaceAccess,
};
use infra::model::SessionKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub command: String,
    /// Working directory as the backend sees it (already confined to the workspace).
    pub workdir: String,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Cap on each of stdout and stderr (head + tail).
    pub max_output_bytes: usize,
}

/// What a command did.
#[derive(Debug, Clone, Serialize)]
pub struct ExecOutput {
    /// `None` when the process was gone before its status could be read (container restarted).
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl ExecOutput {
    /// The result of a finished (or killed) command from its two captured streams.
    pub fn from_capture(
        exit_code: Option<i64>,
        stdout: &output::CappedOutput,
        stderr: &output::CappedOutput,
        timed_out: bool,
        started: tokio::time::Instant,
    ) -> Self {
        ExecOutput {
            exit_code,
            stdout: stdout.text(),
            stderr: stderr.text(),
            stdout_bytes: stdout.total_bytes(),
            stderr_bytes: stderr.total_bytes(),
            timed_out,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Docker is unreachable at {socket}: {message}. The sandbox is required here (sandbox mode {mode:?}); start the Docker daemon, or set agents.defaults.sandbox.mode to \"off\" to run tools on the host")]
    DockerUnreachable {
        socket: String,
        mode: String,
        message: String,
    },
    #[error("sandbox image {image:?} is not present; build it with `docker build -t {image} -f Dockerfile.sandbox .` (clawgate never pulls images)")]
    ImageMissing { image: String },
    #[error("sandbox setup command failed in {container} (exit {exit_code:?}): {output}")]
    SetupFailed {
        container: String,
        exit_code: Option<i64>,
        output: String,
    },
    #[error("Docker error on {container}: {message}")]
    Docker { container: String, message: String },
    #[error("cannot prepare the workspace {path}: {message}")]
    Workspace { path: String, message: String },
    #[error("could not run the command: {0}")]
    Spawn(String),
}

/// Runs commands somewhere: in a container, or on the host.
#[async_trait]
pub trait ExecBackend: Send + Sync {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, SandboxError>;
    /// Where commands run, for logs and `/status`.
    fn describe(&self) -> String;
}

/// Connects to Docker once, on first need, and hands out the backend a plan calls for.
pub struct SandboxRuntime {
    socket: Option<String>,
    activity_dir: PathBuf,
    docker: tokio::sync::OnceCell<std::sync::Arc<docker::DockerSandboxes>>,
}

impl SandboxRuntime {
    /// `socket`: the Docker socket (default `/var/run/docker.sock`); `activity_dir`: where the
    /// last use of each container is recorded.
    pub fn new(socket: Option<String>, activity_dir: PathBuf) -> Self {
        SandboxRuntime {
            socket,
            activity_dir,
            docker: tokio::sync::OnceCell::new(),
        }
    }

    /// The Docker connection, made on first call; a failed attempt is retried on the next.
    pub async fn docker(
        &self,
        mode: SandboxMode,
    ) -> Result<std::sync::Arc<docker::DockerSandboxes>, SandboxError> {
        let mode = serde_json::to_value(mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.docker
            .get_or_try_init(|| async {
                docker::DockerSandboxes::connect(self.socket.as_deref(), &self.activity_dir, &mode)
                    .await
                    .map(std::sync::Arc::new)
            })
            .await
            .cloned()
    }

    /// Where the plan's commands run: its container (ensured now) or the host. A sandboxed plan
    /// without Docker is an error, never a host run.
    pub async fn backend(
        &self,
        plan: &SandboxPlan,
    ) -> Result<std::sync::Arc<dyn ExecBackend>, SandboxError> {
        if !plan.sandboxed {
            return Ok(std::sync::Arc::new(host::HostExec {
                workspace: plan.workspace.clone(),
                base_env: plan.docker.env.clone().into_iter().collect(),
            }));
        }
        let sandboxes = self.docker(plan.mode).await?;
        let container = sandboxes.ensure(plan).await?;
        Ok(std::sync::Arc::new(docker::DockerExec {
            sandboxes,
            container,
        }))
    }
}

/// Where and how one session's tools run, worked out from the config (`clawgate sandbox explain`).
#[derive(Debug, Clone, Serialize)]
pub struct SandboxPlan {
    pub agent: String,
    pub session: String,
    pub mode: SandboxMode,
    /// True when tools run in Docker.
    pub sandboxed: bool,
    /// Why: the mode and session rule that decided `sandboxed`.
    pub reason: String,
    pub scope: SandboxScope,
    pub scope_key: String,
    pub workspace_access: WorkspaceAccess,
    /// The workspace on the host.
    pub workspace: PathBuf,
    /// The workspace as tools see it: `/workspace` in a container, the host path otherwise.
    pub workspace_view: String,
    pub read_only: bool,
    pub container_name: String,
    pub config_hash: String,
    pub docker: DockerConfig,
    pub prune: PruneConfig,
}

/// The agent's own config entry, if it has one.
pub fn agent_entry<'a>(config: &'a Config, agent: &str) -> Option<&'a AgentEntry> {
    config.agents.list.iter().find(|a| a.id == agent)
}

/// The sandbox section that applies to an agent: its own, which replaces the defaults whole.
pub fn sandbox_config<'a>(config: &'a Config, agent: &str) -> &'a SandboxConfig {
    agent_entry(config, agent)
        .and_then(|a| a.sandbox.as_ref())
        .unwrap_or(&config.agents.defaults.sandbox)
}

/// The agent's workspace on the host.
pub fn agent_workspace(config: &Config, agent: &str) -> PathBuf {
    let path = agent_entry(config, agent)
        .and_then(|a| a.workspace.as_deref())
        .unwrap_or(&config.agents.defaults.workspace);
    expand_home(path)
}

impl SandboxPlan {
    pub fn for_session(config: &Config, agent: &str, session: &SessionKey) -> SandboxPlan {
        let sandbox = sandbox_config(config, agent);
        let (sandboxed, reason) = match sandbox.mode {
            SandboxMode::Off => (false, "mode \"off\": tools run on the host, confined to the workspace".to_string()),
            SandboxMode::All => (true, "mode \"all\": every session is sandboxed".to_string()),
            SandboxMode::NonMain if session.is_main() => (
                false,
                format!("mode \"non-main\": {session} is the agent's main session, so it runs on the host"),
            ),
            SandboxMode::NonMain => (
                true,
                format!("mode \"non-main\": {session} is not the agent's main session, so it is sandboxed"),
            ),
        };
        let scope_key = match sandbox.scope {
            SandboxScope::Session => session.to_string(),
            SandboxScope::Agent => format!("agent:{agent}"),
            SandboxScope::Shared => "shared".to_string(),
        };
        let container_name = container_name(&sandbox.docker.container_prefix, &scope_key);
        let workspace = if sandboxed && sandbox.workspace_access == WorkspaceAccess::None {
            expand_home(&sandbox.workspace_root).join(slug_with_hash(&scope_key, 80))
        } else {
            agent_workspace(config, agent)
        };
        let workspace_view = if sandboxed {
            sandbox.docker.workdir.clone()
        } else {
            workspace.display().to_string()
        };
        let read_only = sandboxed && sandbox.workspace_access == WorkspaceAccess::Ro;
        let config_hash = config_hash(&sandbox.docker, &workspace, sandbox.workspace_access);
        SandboxPlan {
            agent: agent.to_string(),
            session: session.to_string(),
            mode: sandbox.mode,
            sandboxed,
            reason,
            scope: sandbox.scope,
            scope_key,
            workspace_access: sandbox.workspace_access,
            workspace,
            workspace_view,
            read_only,
            container_name,
            config_hash,
            docker: sandbox.docker.clone(),
            prune: sandbox.prune.clone(),
        }
    }
}

/// A stable hash of everything that shapes a container; a change recreates it once idle.
fn config_hash(
    docker: &DockerConfig,
    workspace: &std::path::Path,
    access: WorkspaceAccess,
) -> String {
    let spec = serde_json::json!({ "docker": docker, "workspace": workspace, "access": access });
    let digest = Sha256::digest(spec.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `<prefix><slug>-<hash8>`, at most 63 characters, valid as a Docker container name.
pub fn container_name(prefix: &str, scope_key: &str) -> String {
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let prefix = if prefix.is_empty() || !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("c{prefix}")
    } else {
        prefix
    };
    let budget = 63usize.saturating_sub(prefix.len()).max(10);
    let mut name = format!("{prefix}{}", slug_with_hash(scope_key, budget));
    name.truncate(63);
    name
}

/// A readable, filesystem- and Docker-safe slug of `key` plus an 8-hex hash, `max` chars at most.
fn slug_with_hash(key: &str, max: usize) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let mut slug = String::new();
    for c in key.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let keep = max.saturating_sub(hash.len() + 1);
    let slug: String = slug.chars().take(keep).collect();
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        hash
    } else {
        format!("{slug}-{hash}")
    }
}

/// The uid and gid of a numeric `user` setting (`"1000:1000"`, `"1000"`), for chown on the host.
pub fn numeric_owner(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::model::Channel;

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    #[test]
    fn non_main_sandboxes_everything_but_the_main_session() {
        let cfg = config(r#"{ agents: { defaults: { sandbox: { mode: "non-main" } } } }"#);
        let main = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        let dm = SandboxPlan::for_session(
            &cfg,
            "main",
            &SessionKey::dm("main", Channel::Telegram, "1"),
        );
        assert!(!main.sandboxed && dm.sandboxed);
        assert!(main.reason.contains("main session"));
    }

    #[test]
    fn scope_decides_which_sessions_share_a_container() {
        let a = SessionKey::dm("main", Channel::Telegram, "1");
        let b = SessionKey::dm("main", Channel::Slack, "U2");
        for (scope, shared) in [("session", false), ("agent", true), ("shared", true)] {
            let cfg = config(&format!(
                r#"{{ agents: {{ defaults: {{ sandbox: {{ scope: "{scope}" }} }} }} }}"#
            ));
            let pa = SandboxPlan::for_session(&cfg, "main", &a);
            let pb = SandboxPlan::for_session(&cfg, "main", &b);
            assert_eq!(pa.container_name == pb.container_name, shared, "{scope}");
        }
        let cfg = config("{}");
        let other_agent = SandboxPlan::for_session(&cfg, "work", &a);
        assert_ne!(
            SandboxPlan::for_session(&cfg, "main", &a).container_name,
            other_agent.container_name
        );
    }

    #[test]
    fn container_names_are_valid_and_bounded() {
        let long = format!(
            "agent:main:slack:channel:{}:thread:1700000000.000100",
            "C".repeat(80)
        );
        for key in [
            "shared",
            "agent:main",
            long.as_str(),
            "agent:Ω:telegram:dm:1",
        ] {
            let name = container_name("clawgate-sbx-", key);
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("clawgate-sbx-"));
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{name}"
            );
        }
        assert_ne!(
            container_name("p-", &long),
            container_name("p-", &format!("{long}x"))
        );
    }

    #[test]
    fn workspace_access_none_gets_a_scratch_dir_per_scope() {
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/srv/ws", sandbox: { workspaceAccess: "none", workspaceRoot: "/srv/sbx" } } } }"#,
        );
        let plan = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        assert!(plan.workspace.starts_with("/srv/sbx"));
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/srv/ws", sandbox: { workspaceAccess: "ro" } } } }"#,
        );
        let plan = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        assert_eq!(plan.workspace, PathBuf::from("/srv/ws"));
        assert!(plan.read_only);
        assert_eq!(plan.workspace_view, "/workspace");
    }

    #[test]
    fn an_agents_own_sandbox_section_replaces_the_defaults() {
        let cfg = config(r#"{ agents: { list: [{ id: "ops", sandbox: { mode: "off" } }] } }"#);
        let ops = SandboxPlan::for_session(&cfg, "ops", &SessionKey::main("ops"));
        let main = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        assert!(!ops.sandboxed && main.sandboxed);
    }

    #[test]
    fn the_config_hash_changes_with_the_container_spec() {
        let a = SandboxPlan::for_session(&config("{}"), "main", &SessionKey::main("main"));
        let b = SandboxPlan::for_session(
            &config(r#"{ agents: { defaults: { sandbox: { docker: { memory: "2g" } } } } }"#),
            "main",
            &SessionKey::main("main"),
        );
        assert_ne!(a.config_hash, b.config_hash);
        assert_eq!(
            a.config_hash,
            SandboxPlan::for_session(&config("{}"), "main", &SessionKey::main("main")).config_hash
        );
    }

    #[test]
    fn numeric_users_parse() {
        assert_eq!(numeric_owner("1000:1000"), Some((1000, 1000)));
        assert_eq!(numeric_owner("1000"), Some((1000, 1000)));
        assert_eq!(numeric_owner("sandbox"), None);
    }
}
