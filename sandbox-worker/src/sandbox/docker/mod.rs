//! The Docker backend (bollard): hardened containers per scope, found again by their labels
//! after a restart, recreated when their config changes and they are idle, pruned when idle or
//! old; and exec with output caps and a timeout that kills the whole process tree.
//!
//! Decisions:
//! - Every exec carries `CLAWGATE_EXEC_ID=<ulid>` in its environment, which every descendant
//!   inherits. On timeout a second exec kills every process whose environment holds that id,
//!   which catches children that left the process group. If that exec cannot run (the pids
//!   limit is full) or the tree survives, the container is restarted: it is disposable, the
//!   workspace is what persists.
//! - A command's leftover background processes are terminated when it ends: the exec runs
//!   under a tiny wrapper (`sh -c CMD & wait; kill -TERM 0`, shell builtins only, so no
//!   extra fork) in its own process group. Otherwise a fork loop would pin the pids limit and
//!   wedge the sandbox. Long-running services belong to a future `process` tool, not `exec`.
//! - Last use is the mtime of a per-container file under the activity directory, so a
//!   restarted worker and `clawgate sandbox list` see it too. Containers are per host, and so
//!   is that directory.
//! - Images are never pulled: a missing image is an error saying how to build it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    CreateContainerOptions, RestartContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::time::Instant;

pub mod agent;
mod image;
mod lifecycle;
mod pool;
pub mod spec;

pub use image::{
    base_image, dockerfile_digest, BuildEvent, ImageStatus, BASE_ENV, DEFAULT_BASE, DOCKERFILE,
    LABEL_BASE, LABEL_DOCKERFILE,
};
pub use lifecycle::{prune_limits, SandboxInfo};
pub use pool::LABEL_POOL;
pub use spec::container_body;
use spec::prepare_workspace;

use super::output::CappedOutput;
// One wrapper, one marker and one grace for both paths (the agent runs the same).
use super::{numeric_owner, ExecBackend, ExecOutput, ExecRequest, SandboxError, SandboxPlan};
use sandbox_agent::exec::{EXEC_ID_VAR, EXEC_WRAPPER, KILL_GRACE};

pub const LABEL_SANDBOX: &str = "clawgate.sandbox";
pub const LABEL_SCOPE: &str = "clawgate.scope";
pub const LABEL_CREATED: &str = "clawgate.created";
pub const LABEL_CONFIG_HASH: &str = "clawgate.config-hash";
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

const SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a container is restarted when a command's tree outlives its kill.
const RUNAWAY: &str = "a command outlived its kill";

/// A running sandbox container.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub name: String,
    pub id: String,
    pub user: String,
    pub created: bool,
    /// The host path of its agent's socket, when it was made with the agent (else: the exec
    /// path).
    pub agent_socket: Option<PathBuf>,
}

/// All sandbox containers on one Docker daemon.
pub struct DockerSandboxes {
    docker: Docker,
    socket: String,
    activity_dir: PathBuf,
    /// The static agent binary mounted into new containers (`None`: the exec path).
    agent: Option<PathBuf>,
    /// Execs running per container, so a busy container is never recreated or pruned.
    in_flight: Mutex<HashMap<String, usize>>,
    /// One ensure at a time per container name.
    ensuring: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One revive of an agent at a time per container name.
    reviving: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Warm pools being filled (by config hash), one fill at a time each.
    filling: Mutex<std::collections::HashSet<String>>,
}

fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

impl DockerSandboxes {
    /// Connects to the daemon at `socket` (default `/var/run/docker.sock`) and negotiates the
    /// API version. `mode` is only for the error message.
    pub async fn connect(
        socket: Option<&str>,
        activity_dir: &Path,
        mode: &str,
    ) -> Result<Self, SandboxError> {
        let socket = socket
            .unwrap_or(DEFAULT_SOCKET)
            .trim_start_matches("unix://")
            .to_string();
        let unreachable = |message: String| SandboxError::DockerUnreachable {
            socket: socket.clone(),
            mode: mode.to_string(),
            message,
        };
        let docker = Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerSandboxes {
            docker,
            socket,
            activity_dir: activity_dir.to_path_buf(),
            agent: None,
            in_flight: Mutex::new(HashMap::new()),
            ensuring: Mutex::new(HashMap::new()),
            reviving: Mutex::new(HashMap::new()),
            filling: Mutex::new(Default::default()),
        })
    }

    /// New containers get `agent` (a static binary) mounted and run as their long-lived process.
    pub fn with_agent(mut self, agent: Option<PathBuf>) -> Self {
        self.agent = agent;
        self
    }

    /// The agent binary new containers get, if any.
    pub fn agent(&self) -> Option<&Path> {
        self.agent.as_deref()
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// The container for `plan`, created and started if needed: reused when its labels match,
    /// recreated when its config hash changed and no exec is running in it.
    pub async fn ensure(&self, plan: &SandboxPlan) -> Result<ContainerRef, SandboxError> {
        let lock = {
            let mut map = self.ensuring.lock().expect("lock");
            map.entry(plan.container_name.clone()).or_default().clone()
        };
        let _held = lock.lock().await;
        let name = &plan.container_name;
        match self.docker.inspect_container(name, None).await {
            Ok(existing) => {
                let labels = existing
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                // Its agent's socket directory gone (the state directory that held it was
                // removed): the agent could never listen again, so it is remade like a change.
                let orphaned = agent::socket_from_labels(&labels)
                    .is_some_and(|socket| socket.parent().is_some_and(|dir| !dir.is_dir()));
                let same = labels.get(LABEL_CONFIG_HASH) == Some(&plan.config_hash) && !orphaned;
                if !same && self.running_execs(name) == 0 {
                    tracing::info!(container = %name, orphaned, "sandbox config changed; recreating the idle container");
                    self.remove(name).await?;
                } else {
                    if !same {
                        tracing::info!(container = %name, "sandbox config changed; keeping the busy container until idle");
                    }
                    let running = existing
                        .state
                        .as_ref()
                        .and_then(|s| s.running)
                        .unwrap_or(false);
                    let agent_socket = agent::socket_from_labels(&labels);
                    match &agent_socket {
                        Some(socket) if !running => self.revive(name, socket).await?,
                        None if !running => self
                            .docker
                            .start_container(name, None::<StartContainerOptions>)
                            .await
                            .map_err(|e| self.error(name, &e))?,
                        _ => {}
                    }
                    self.touch(name);
                    return Ok(ContainerRef {
                        name: name.clone(),
                        id: existing.id.unwrap_or_default(),
                        user: plan.docker.user.clone(),
                        created: false,
                        agent_socket,
                    });
                }
            }
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.error(name, &e)),
        }
        if let Some(claimed) = self.claim_from_pool(plan).await {
            self.touch(name);
            return Ok(claimed);
        }
        let created = self.create(plan, None).await?;
        // A dense host: past the cap, the least recently used idle container makes room.
        match self.evict_over_cap(plan).await {
            Ok(evicted) if !evicted.is_empty() => {
                tracing::info!(
                    ?evicted,
                    cap = plan.prune.max_containers,
                    "evicted the least recently used sandboxes"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not evict sandboxes over the cap"),
        }
        Ok(created)
    }

    /// Creates and starts the plan's container (for the warm pool of config hash `pool`, when
    /// given), waits for its agent and runs the setup command.
    async fn create(
        &self,
        plan: &SandboxPlan,
        pool: Option<&str>,
    ) -> Result<ContainerRef, SandboxError> {
        let name = &plan.container_name;
        prepare_workspace(&plan.workspace, &plan.docker.user)?;
        let run_dir = agent::run_dir(&self.activity_dir, name);
        let agent = match &self.agent {
            Some(binary) => {
                agent::prepare_run_dir(&run_dir, numeric_owner(&plan.docker.user)).map_err(
                    |e| SandboxError::Workspace {
                        path: run_dir.display().to_string(),
                        message: e.to_string(),
                    },
                )?;
                Some(spec::AgentMount {
                    binary: binary.clone(),
                    run_dir: run_dir.clone(),
                })
            }
            None => None,
        };
        let body = container_body(plan, agent.as_ref(), pool);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        let id = match created {
            Ok(response) => response.id,
            Err(e) if status_code(&e) == Some(404) => {
                return Err(SandboxError::ImageMissing {
                    image: plan.docker.image.clone(),
                })
            }
            Err(e) => return Err(self.error(name, &e)),
        };
        if let Err(e) = self
            .docker
            .start_container(name, None::<StartContainerOptions>)
            .await
        {
            let _ = self.remove(name).await;
            return Err(self.error(name, &e));
        }
        let container = ContainerRef {
            name: name.clone(),
            id,
            user: plan.docker.user.clone(),
            created: true,
            agent_socket: agent.map(|a| a.run_dir.join(sandbox_agent::protocol::SOCKET_NAME)),
        };
        if let Some(socket) = &container.agent_socket {
            if let Err(e) = agent::wait_ready(socket).await {
                let _ = self.remove(name).await;
                return Err(self.agent_error(&container, e));
            }
        }
        let setup = plan.docker.setup_command.trim();
        if !setup.is_empty() {
            let request = ExecRequest {
                command: setup.to_string(),
                workdir: plan.workspace_view.clone(),
                env: Default::default(),
                timeout: SETUP_TIMEOUT,
                max_output_bytes: 8 * 1024,
                cancel: Default::default(),
            };
            let out = self.exec(&container, &request).await?;
            if out.exit_code != Some(0) {
                // Leave nothing half-made: the next ensure starts from scratch.
                let _ = self.remove(name).await;
                return Err(SandboxError::SetupFailed {
                    container: name.clone(),
                    exit_code: out.exit_code,
                    output: format!("{}{}", out.stdout, out.stderr),
                });
            }
        }
        tracing::info!(container = %name, scope = %plan.scope_key, "sandbox container created");
        self.touch(name);
        Ok(container)
    }

    /// Runs a command in the container: `sh -c`, output drained to the end with head + tail
    /// caps, the whole tree killed on timeout.
    pub async fn exec(
        &self,
        container: &ContainerRef,
        request: &ExecRequest,
    ) -> Result<ExecOutput, SandboxError> {
        let _busy = InFlight::enter(&self.in_flight, &container.name);
        self.touch(&container.name);
        let started = Instant::now();
        let marker = ulid::Ulid::new().to_string();
        if let Some(socket) = &container.agent_socket {
            let out = self
                .exec_via_agent(container, socket, request, marker)
                .await;
            self.touch(&container.name);
            return out;
        }
        let mut env = vec![format!("{EXEC_ID_VAR}={marker}")];
        env.extend(request.env.iter().map(|(k, v)| format!("{k}={v}")));
        let exec = self
            .docker
            .create_exec(
                &container.name,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        EXEC_WRAPPER.into(),
                        "sh".into(),
                        request.command.clone(),
                    ]),
                    env: Some(env),
                    user: Some(container.user.clone()),
                    working_dir: Some(request.workdir.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error(&container.name, &e))?;
        let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.error(&container.name, &e))?
        else {
            return Err(SandboxError::Docker {
                container: container.name.clone(),
                message: "exec started detached".into(),
            });
        };
        let mut stdout = CappedOutput::new(request.max_output_bytes);
        let mut stderr = CappedOutput::new(request.max_output_bytes);
        let mut timed_out = false;
        let mut deadline = started + request.timeout;
        let mut restarted = false;
        let mut cancelled = false;
        loop {
            tokio::select! {
                // A cancel is a timeout now: the same kill path.
                _ = request.cancel.cancelled(), if !cancelled && !timed_out => {
                    cancelled = true;
                    deadline = Instant::now();
                }
                item = output.next() => match item {
                    Some(Ok(LogOutput::StdOut { message })) => stdout.push(&message),
                    Some(Ok(LogOutput::StdErr { message })) => stderr.push(&message),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if timed_out {
                            break; // the stream died with the killed tree
                        }
                        return Err(self.error(&container.name, &e));
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if !timed_out {
                        timed_out = true;
                        if !self.kill_tree(container, &marker).await {
                            self.restart(&container.name, RUNAWAY).await?;
                            restarted = true;
                        }
                        deadline = Instant::now() + KILL_GRACE;
                    } else {
                        // The tree outlived the kill: take the container down with it.
                        self.restart(&container.name, RUNAWAY).await?;
                        restarted = true;
                        break;
                    }
                }
            }
        }
        let exit_code = if restarted {
            None
        } else {
            self.docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| self.error(&container.name, &e))?
                .exit_code
        };
        self.touch(&container.name);
        Ok(ExecOutput::from_capture(
            exit_code, &stdout, &stderr, timed_out, started,
        ))
    }

    /// Kills every process carrying `marker` in its environment, three passes so a loop that
    /// forks between passes is caught too. False when the killer could not run.
    async fn kill_tree(&self, container: &ContainerRef, marker: &str) -> bool {
        let script = format!(
            "for pass in 1 2 3; do for p in /proc/[0-9]*; do \
               if tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qx '{EXEC_ID_VAR}={marker}'; then \
                 kill -9 \"${{p#/proc/}}\" 2>/dev/null; fi; done; done"
        );
        let killer = async {
            let exec = self
                .docker
                .create_exec(
                    &container.name,
                    ExecConfig {
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        cmd: Some(vec!["sh".into(), "-c".into(), script]),
                        user: Some(container.user.clone()),
                        ..Default::default()
                    },
                )
                .await
                .ok()?;
            if let StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec.id, None).await.ok()?
            {
                while output.next().await.is_some() {}
            }
            self.docker.inspect_exec(&exec.id).await.ok()?.exit_code
        };
        matches!(tokio::time::timeout(KILL_GRACE, killer).await, Ok(Some(0)))
    }

    /// Restarts the container at once (`why` is logged): it is disposable, the workspace is what
    /// persists.
    pub(super) async fn restart(&self, name: &str, why: &str) -> Result<(), SandboxError> {
        tracing::warn!(container = %name, "restarting the sandbox container: {why}");
        self.docker
            .restart_container(
                name,
                Some(RestartContainerOptions {
                    t: Some(0),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| self.error(name, &e))
    }

    fn running_execs(&self, name: &str) -> usize {
        self.in_flight
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    fn touch(&self, name: &str) {
        let path = self.activity_dir.join(name);
        let touched = std::fs::create_dir_all(&self.activity_dir).and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?
                .set_modified(SystemTime::now())
        });
        if let Err(e) = touched {
            tracing::debug!(path = %path.display(), error = %e, "could not record sandbox activity");
        }
    }

    fn error(&self, container: &str, e: &bollard::errors::Error) -> SandboxError {
        SandboxError::Docker {
            container: container.to_string(),
            message: docker_message(e),
        }
    }
}

/// Counts an exec as running for as long as it lives.
struct InFlight<'a> {
    map: &'a Mutex<HashMap<String, usize>>,
    name: String,
}

impl<'a> InFlight<'a> {
    fn enter(map: &'a Mutex<HashMap<String, usize>>, name: &str) -> Self {
        *map.lock()
            .expect("lock")
            .entry(name.to_string())
            .or_default() += 1;
        InFlight {
            map,
            name: name.to_string(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().expect("lock");
        if let Some(n) = map.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.name);
            }
        }
    }
}

/// One container as an [`ExecBackend`].
pub struct DockerExec {
    pub sandboxes: Arc<DockerSandboxes>,
    pub container: ContainerRef,
    /// The workspace as the container sees it, for the file tools run by its agent.
    pub workspace_view: String,
    pub read_only: bool,
}

#[async_trait]
impl ExecBackend for DockerExec {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        self.sandboxes.exec(&self.container, request).await
    }

    fn describe(&self) -> String {
        let path = if self.container.agent_socket.is_some() {
            "its agent"
        } else {
            "docker exec"
        };
        format!(
            "docker container {} (via {}, {path})",
            self.container.name,
            self.sandboxes.socket()
        )
    }

    async fn attach(&self, command: &str) -> Option<Result<tokio::net::UnixStream, String>> {
        let socket = self.container.agent_socket.as_ref()?;
        let spec = sandbox_agent::protocol::AttachSpec {
            command: command.to_string(),
            workdir: self.workspace_view.clone(),
            env: Default::default(),
        };
        Some(agent::attach(socket, spec, Duration::from_secs(10)).await)
    }

    async fn file_tool(
        &self,
        tool: &str,
        input: &serde_json::Value,
        deadline: Duration,
    ) -> Option<Result<String, String>> {
        let socket = self.container.agent_socket.as_ref()?;
        let spec = sandbox_agent::protocol::FileSpec {
            tool: tool.to_string(),
            input: input.clone(),
            workspace: self.workspace_view.clone(),
            read_only: self.read_only,
        };
        Some(
            self.sandboxes
                .file_via_agent(&self.container, socket, spec, deadline)
                .await,
        )
    }
}
