//! Where tool calls run (docs/architecture.md §6): the plan for a session (mode, scope, workspace, container),
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
pub use sandbox_agent::output;
mod plan;

pub use plan::{container_name, numeric_owner, SandboxPlan};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use infra::config::SandboxMode;
use serde::Serialize;

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
    /// When set, the command's whole tree is killed as on a timeout (`/stop`).
    pub cancel: Cancel,
}

/// Set once to stop what is running (`/stop`); every clone sees it.
#[derive(Debug, Clone)]
pub struct Cancel(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(std::sync::Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`Cancel::cancel`] was called (at once if it was already).
    pub async fn cancelled(&self) {
        let mut seen = self.0.subscribe();
        // The sender lives as long as `self`: this wait cannot fail.
        let _ = seen.wait_for(|stopped| *stopped).await;
    }
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
    #[error("sandbox image {image:?} is not present; build it with `clawgate sandbox build --tag {image}` (clawgate never pulls images)")]
    ImageMissing { image: String },
    #[error("building the sandbox image {image:?} failed: {message}")]
    ImageBuild { image: String, message: String },
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
    /// Where the `process` tool keeps its background processes' state, as commands see it:
    /// in a container, its `/tmp` (a tmpfs, so a restart ends them and says so).
    fn process_dir(&self) -> String {
        "/tmp/.clawgate-proc".into()
    }
    /// Runs a file tool (`read`, `write`, `edit`, `apply_patch`) where the commands run, when
    /// this backend can: the text for the model or why it failed. `None`: the caller runs it on
    /// the host side of the workspace mount.
    async fn file_tool(
        &self,
        _tool: &str,
        _input: &serde_json::Value,
        _deadline: Duration,
    ) -> Option<Result<String, String>> {
        None
    }
    /// Starts `command` where the commands run with its stdin and stdout as the returned
    /// stream (a stdio MCP server), when this backend can: `None` without an agent.
    async fn attach(&self, _command: &str) -> Option<Result<tokio::net::UnixStream, String>> {
        None
    }
}

/// Connects to Docker once, on first need, and hands out the backend a plan calls for.
pub struct SandboxRuntime {
    socket: Option<String>,
    activity_dir: PathBuf,
    /// The in-sandbox agent binary, found once ([`docker::agent::find_binary`]).
    agent: Option<PathBuf>,
    metrics: infra::metrics::Metrics,
    docker: tokio::sync::OnceCell<std::sync::Arc<docker::DockerSandboxes>>,
    /// The proxy of `egress` containers (`crate::web::egress`), when the worker serves one.
    egress: Option<std::sync::Arc<crate::web::egress::EgressProxy>>,
}

impl SandboxRuntime {
    /// `socket`: the Docker socket (default `/var/run/docker.sock`); `activity_dir`: where the
    /// last use of each container is recorded.
    pub fn new(socket: Option<String>, activity_dir: PathBuf) -> Self {
        SandboxRuntime {
            socket,
            activity_dir,
            agent: docker::agent::find_binary(),
            metrics: Default::default(),
            docker: tokio::sync::OnceCell::new(),
            egress: None,
        }
    }

    /// Makes sure the worker's proxy listens in an `egress` container's run directory; fails
    /// closed (no tools) without the agent, whose relay is the container's only way out.
    fn serve_egress(
        &self,
        container: &docker::ContainerRef,
        plan: &SandboxPlan,
    ) -> Result<(), SandboxError> {
        let refuse = |message: String| SandboxError::Docker {
            container: container.name.clone(),
            message,
        };
        let (Some(proxy), Some(socket)) = (&self.egress, &container.agent_socket) else {
            return Err(refuse("network \"egress\" needs the in-sandbox agent (its relay is the only way out) and a worker serving the proxy; see docs/security.md".into()));
        };
        let at = socket.with_file_name(sandbox_agent::relay::EGRESS_SOCKET_NAME);
        proxy
            .ensure_listening(&at, numeric_owner(&plan.docker.user))
            .map_err(|e| {
                refuse(format!(
                    "the egress proxy cannot listen at {}: {e}",
                    at.display()
                ))
            })
    }

    /// Serves `proxy` to the containers of the `egress` network mode.
    pub fn with_egress(mut self, proxy: crate::web::egress::EgressProxy) -> Self {
        self.egress = Some(std::sync::Arc::new(proxy));
        self
    }

    /// Mounts `agent` into new containers instead of the one found at start (`None`: every
    /// new container uses the exec path).
    pub fn with_agent(mut self, agent: Option<PathBuf>) -> Self {
        self.agent = agent;
        self
    }

    /// Counts each container created (a cold start) in `metrics`.
    pub fn with_metrics(mut self, metrics: infra::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
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
                    .map(|docker| std::sync::Arc::new(docker.with_agent(self.agent.clone())))
            })
            .await
            .cloned()
    }

    /// Fills the warm pool for `plan`'s shape in the background (at worker start), when the
    /// plan is sandboxed and asks for one; Docker being down is only logged here.
    pub async fn prewarm(&self, plan: &SandboxPlan) {
        if !plan.sandboxed || plan.warm_pool == 0 {
            return;
        }
        match self.docker(plan.mode).await {
            Ok(sandboxes) => sandboxes.refill_pool(plan),
            Err(e) => tracing::warn!(error = %e, "no warm sandbox pool"),
        }
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
                base_env: plan.env.clone(),
            }));
        }
        let sandboxes = self.docker(plan.mode).await?;
        let container = sandboxes.ensure(plan).await?;
        if plan.docker.network == docker::spec::EGRESS_NETWORK {
            self.serve_egress(&container, plan)?;
        }
        sandboxes.refill_pool(plan);
        if container.created {
            self.metrics
                .count(infra::metrics::Metric::SandboxColdStarts, &[])
                .await;
        }
        Ok(std::sync::Arc::new(docker::DockerExec {
            sandboxes,
            container,
            workspace_view: plan.workspace_view.clone(),
            read_only: plan.read_only,
        }))
    }
}
