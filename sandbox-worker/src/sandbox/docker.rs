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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, RestartContainerOptions,
    StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use infra::config::{parse_bytes, PruneConfig, Ulimit};
use tokio::time::Instant;

use super::output::CappedOutput;
use super::{numeric_owner, ExecBackend, ExecOutput, ExecRequest, SandboxError, SandboxPlan};

pub const LABEL_SANDBOX: &str = "clawgate.sandbox";
pub const LABEL_SCOPE: &str = "clawgate.scope";
pub const LABEL_CREATED: &str = "clawgate.created";
pub const LABEL_CONFIG_HASH: &str = "clawgate.config-hash";
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

const EXEC_ID_VAR: &str = "CLAWGATE_EXEC_ID";
/// How long a timed-out tree gets to die after the kill before the container is restarted.
const KILL_GRACE: Duration = Duration::from_secs(5);
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Runs `$1` with `sh -c` (not a login shell: no profile file is read), then terminates whatever it left running in its process group (the
/// exec is a session leader, so that group is this command's alone) and exits with its status.
const EXEC_WRAPPER: &str =
    "sh -c \"$1\" & trap '' TERM; wait $!; rc=$?; kill -TERM 0 2>/dev/null; exit $rc";

/// A running sandbox container.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub name: String,
    pub id: String,
    pub user: String,
    pub created: bool,
}

/// What `clawgate sandbox list` shows.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub name: String,
    pub scope_key: String,
    pub image: String,
    pub state: String,
    pub created: SystemTime,
    pub last_used: SystemTime,
    pub config_hash: String,
}

/// All sandbox containers on one Docker daemon.
pub struct DockerSandboxes {
    docker: Docker,
    socket: String,
    activity_dir: PathBuf,
    /// Execs running per container, so a busy container is never recreated or pruned.
    in_flight: Mutex<HashMap<String, usize>>,
    /// One ensure at a time per container name.
    ensuring: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
            in_flight: Mutex::new(HashMap::new()),
            ensuring: Mutex::new(HashMap::new()),
        })
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
                let same = labels.get(LABEL_CONFIG_HASH) == Some(&plan.config_hash);
                if !same && self.running_execs(name) == 0 {
                    tracing::info!(container = %name, "sandbox config changed; recreating the idle container");
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
                    if !running {
                        self.docker
                            .start_container(name, None::<StartContainerOptions>)
                            .await
                            .map_err(|e| self.error(name, &e))?;
                    }
                    self.touch(name);
                    return Ok(ContainerRef {
                        name: name.clone(),
                        id: existing.id.unwrap_or_default(),
                        user: plan.docker.user.clone(),
                        created: false,
                    });
                }
            }
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.error(name, &e)),
        }
        self.create(plan).await
    }

    async fn create(&self, plan: &SandboxPlan) -> Result<ContainerRef, SandboxError> {
        let name = &plan.container_name;
        prepare_workspace(&plan.workspace, &plan.docker.user)?;
        let body = container_body(plan);
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
        };
        let setup = plan.docker.setup_command.trim();
        if !setup.is_empty() {
            let request = ExecRequest {
                command: setup.to_string(),
                workdir: plan.workspace_view.clone(),
                env: Default::default(),
                timeout: SETUP_TIMEOUT,
                max_output_bytes: 8 * 1024,
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
        loop {
            tokio::select! {
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
                            self.restart(&container.name).await?;
                            restarted = true;
                        }
                        deadline = Instant::now() + KILL_GRACE;
                    } else {
                        // The tree outlived the kill: take the container down with it.
                        self.restart(&container.name).await?;
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

    async fn restart(&self, name: &str) -> Result<(), SandboxError> {
        tracing::warn!(container = %name, "restarting the sandbox container to stop a runaway command");
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

    /// Every clawgate sandbox container on this daemon whose name starts with `prefix` (all of
    /// them with `None`).
    pub async fn list(&self, prefix: Option<&str>) -> Result<Vec<SandboxInfo>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_SANDBOX}=1")])]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("(list)", &e))?;
        let mut out = Vec::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let created = labels
                .get(LABEL_CREATED)
                .and_then(|s| s.parse::<u64>().ok())
                .or(c.created.map(|s| s as u64))
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                .unwrap_or(UNIX_EPOCH);
            if prefix.is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let last_used = std::fs::metadata(self.activity_dir.join(&name))
                .and_then(|m| m.modified())
                .unwrap_or(created);
            out.push(SandboxInfo {
                scope_key: labels.get(LABEL_SCOPE).cloned().unwrap_or_default(),
                config_hash: labels.get(LABEL_CONFIG_HASH).cloned().unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                name,
                created,
                last_used,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes sandbox containers (named with `prefix`, or all) idle longer than `idle` or
    /// older than `max_age` (or every one with `all`), except those running an exec. Returns
    /// the names removed.
    pub async fn prune(
        &self,
        prefix: Option<&str>,
        idle: Duration,
        max_age: Duration,
        now: SystemTime,
        all: bool,
    ) -> Result<Vec<String>, SandboxError> {
        let mut removed = Vec::new();
        for info in self.list(prefix).await? {
            if self.running_execs(&info.name) > 0 {
                continue;
            }
            let idle_for = now.duration_since(info.last_used).unwrap_or_default();
            let age = now.duration_since(info.created).unwrap_or_default();
            if all || idle_for > idle || age > max_age {
                self.remove(&info.name).await?;
                removed.push(info.name);
            }
        }
        Ok(removed)
    }

    /// Prunes this prefix's containers by `limits` every `every`, for as long as the task runs.
    pub fn spawn_prune_loop(
        self: &Arc<Self>,
        prefix: String,
        limits: &PruneConfig,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let (idle, max_age) = prune_limits(limits);
        let sandboxes = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match sandboxes
                    .prune(Some(&prefix), idle, max_age, SystemTime::now(), false)
                    .await
                {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(?removed, "pruned idle or old sandboxes")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sandbox prune failed; will retry"),
                }
            }
        })
    }

    /// Removes one container (running or not) and its activity record.
    pub async fn remove(&self, name: &str) -> Result<(), SandboxError> {
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.error(name, &e)),
        }
        let _ = std::fs::remove_file(self.activity_dir.join(name));
        Ok(())
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

/// `prune.idleHours` and `prune.maxAgeDays` as durations.
pub fn prune_limits(prune: &PruneConfig) -> (Duration, Duration) {
    (
        Duration::from_secs_f64(prune.idle_hours * 3600.0),
        Duration::from_secs_f64(prune.max_age_days * 86400.0),
    )
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

/// Creates the workspace and hands it to the container user, so a non-root user can write.
fn prepare_workspace(path: &Path, user: &str) -> Result<(), SandboxError> {
    let fail = |e: std::io::Error| SandboxError::Workspace {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    if let Some((uid, gid)) = numeric_owner(user) {
        let meta = std::fs::metadata(path).map_err(fail)?;
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(fail)?;
        }
    }
    Ok(())
}

/// The container spec: every option of the config, with the hardening defaults always on.
pub fn container_body(plan: &SandboxPlan) -> ContainerCreateBody {
    let d = &plan.docker;
    let mut binds = vec![format!(
        "{}:{}{}",
        plan.workspace.display(),
        d.workdir,
        if plan.read_only { ":ro" } else { "" }
    )];
    binds.extend(d.binds.iter().cloned());
    let mut security_opt = vec!["no-new-privileges".to_string()];
    if let Some(profile) = &d.seccomp_profile {
        security_opt.push(format!("seccomp={profile}"));
    }
    if let Some(profile) = &d.apparmor_profile {
        security_opt.push(format!("apparmor={profile}"));
    }
    let tmpfs: HashMap<String, String> = d
        .tmpfs
        .iter()
        .map(|spec| match spec.split_once(':') {
            Some((path, opts)) => (path.to_string(), opts.to_string()),
            // An explicit mode: a directory of that name in the image would set it otherwise.
            None => (spec.clone(), "rw,nosuid,nodev,mode=1777".to_string()),
        })
        .collect();
    let ulimits = d
        .ulimits
        .iter()
        .map(|(name, limit)| {
            let (soft, hard) = match limit {
                Ulimit::Both(n) => (*n, *n),
                Ulimit::Pair { soft, hard } => (*soft, *hard),
            };
            ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(soft),
                hard: Some(hard),
            }
        })
        .collect();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let labels = HashMap::from([
        (LABEL_SANDBOX.to_string(), "1".to_string()),
        (LABEL_SCOPE.to_string(), plan.scope_key.clone()),
        (LABEL_CREATED.to_string(), created.to_string()),
        (LABEL_CONFIG_HASH.to_string(), plan.config_hash.clone()),
    ]);
    let host_config = HostConfig {
        binds: Some(binds),
        network_mode: Some(d.network.clone()),
        cap_drop: Some(d.cap_drop.clone()),
        security_opt: Some(security_opt),
        readonly_rootfs: Some(d.read_only_root),
        tmpfs: Some(tmpfs),
        pids_limit: Some(d.pids_limit),
        memory: parse_bytes(&d.memory),
        memory_swap: parse_bytes(&d.memory_swap),
        nano_cpus: Some((d.cpus * 1e9) as i64),
        ulimits: Some(ulimits),
        dns: (!d.dns.is_empty()).then(|| d.dns.clone()),
        extra_hosts: (!d.extra_hosts.is_empty()).then(|| d.extra_hosts.clone()),
        init: Some(true),
        privileged: Some(d.privileged && d.dangerously_allow_privileged),
        auto_remove: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(d.image.clone()),
        // Only the configured environment: nothing from the worker's own leaks in.
        env: Some(d.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: Some(d.user.clone()),
        working_dir: Some(d.workdir.clone()),
        cmd: Some(vec!["sleep".into(), "2147483647".into()]),
        labels: Some(labels),
        network_disabled: Some(d.network == "none"),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// One container as an [`ExecBackend`].
pub struct DockerExec {
    pub sandboxes: Arc<DockerSandboxes>,
    pub container: ContainerRef,
}

#[async_trait]
impl ExecBackend for DockerExec {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        self.sandboxes.exec(&self.container, request).await
    }

    fn describe(&self) -> String {
        format!(
            "docker container {} (via {})",
            self.container.name,
            self.sandboxes.socket()
        )
    }
}
