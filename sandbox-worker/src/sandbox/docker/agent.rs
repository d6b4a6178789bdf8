//! The worker's side of the in-sandbox agent (docs/sandbox-agent.md): finding the static agent
//! binary, the host directory its socket lives in, and calls over that socket: `exec`, the
//! file tools, and `ping` to know it is up.
//!
//! Decisions:
//! - A Unix socket in a host directory mounted into the container, not the stdio of a long
//!   exec: the worker connects straight to the agent, so a call never passes through dockerd,
//!   containerd or runc (that round trip is what made a tool call cost ~42 ms), and a
//!   restarted worker just connects again.
//! - To the worker the socket is sandbox-controlled: a process in the sandbox may delete it,
//!   put its own listener there, or a symlink to some host socket. So the path is opened with
//!   `O_PATH | O_NOFOLLOW` (which opens a link itself, not its target), must be a socket, and
//!   the connection is made through that descriptor (`/proc/self/fd/N`), never through a name
//!   a swap could redirect.
//!   Whatever answers is held to the reply cap and the call's deadline; an impostor can only
//!   return wrong output for its own sandbox, which sandbox output always may be.
//! - Connecting fails only before anything was sent, so only then is a call retried, after
//!   starting the container if it stopped (a command killed the agent) and waiting for the
//!   agent to answer `ping`.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox_agent::protocol::{self, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::sandbox::Cancel;

/// Names the agent binary to mount (`off` runs every sandbox on the exec path).
pub const AGENT_ENV: &str = "CLAWGATE_SANDBOX_AGENT";
/// The binary's file name next to the worker's own executable, where packages install it.
pub const AGENT_FILE_NAME: &str = "clawgate-sandbox-agent";
/// The label on a container made with the agent, naming the host directory of its socket
/// (whichever worker, state directory or pool name made it); containers without it use the
/// exec path.
pub const LABEL_AGENT: &str = "clawgate.agent";
/// How long a new or restarted container's agent gets to answer its first `ping`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// The agent binary to mount: `$CLAWGATE_SANDBOX_AGENT`, else `clawgate-sandbox-agent` beside
/// the running executable. `None` (the exec path) when unset and absent, set to `off`, or not
/// a static executable (a dynamic one would not start in an image without its libc).
pub fn find_binary() -> Option<PathBuf> {
    let candidate = match std::env::var_os(AGENT_ENV) {
        Some(v) if v == "off" || v.is_empty() => return None,
        Some(v) => PathBuf::from(v),
        None => std::env::current_exe()
            .ok()?
            .with_file_name(AGENT_FILE_NAME),
    };
    if !candidate.exists() {
        if std::env::var_os(AGENT_ENV).is_some() {
            tracing::warn!(path = %candidate.display(), "{AGENT_ENV} names no file; sandboxes use the exec path");
        }
        return None;
    }
    match is_static_executable(&candidate) {
        Ok(true) => candidate.canonicalize().ok(),
        Ok(false) => {
            tracing::warn!(path = %candidate.display(), "the sandbox agent is not a static executable; sandboxes use the exec path (build it with scripts/build-sandbox-agent)");
            None
        }
        Err(e) => {
            tracing::warn!(path = %candidate.display(), error = %e, "cannot read the sandbox agent; sandboxes use the exec path");
            None
        }
    }
}

/// True for a 64-bit little-endian ELF executable with no program interpreter (`PT_INTERP`),
/// i.e. one that needs no dynamic loader from the image.
pub fn is_static_executable(path: &Path) -> std::io::Result<bool> {
    let mut header = [0u8; 64];
    let mut file = std::fs::File::open(path)?;
    std::io::Read::read_exact(&mut file, &mut header)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(false);
    }
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().unwrap_or_default());
    let (entry_size, entries) = (u16_at(&header, 0x36), u16_at(&header, 0x38));
    if entry_size < 4 || entries > 4096 {
        return Ok(false);
    }
    let mut table = vec![0u8; entry_size * entries];
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(phoff))?;
    std::io::Read::read_exact(&mut file, &mut table)?;
    const PT_INTERP: u32 = 3;
    Ok(!table
        .chunks(entry_size)
        .any(|ph| u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP))
}

/// The host directory to mount at `/.clawgate/run` in a new container: under
/// `<activity_dir>/.agent/` (private to the worker), one per container.
pub fn run_dir(activity_dir: &Path, container: &str) -> PathBuf {
    activity_dir.join(".agent").join(container)
}

/// Where the agent of a container with these labels listens, if it has one.
pub fn socket_from_labels(labels: &std::collections::HashMap<String, String>) -> Option<PathBuf> {
    let dir = labels.get(LABEL_AGENT)?;
    Some(Path::new(dir).join(protocol::SOCKET_NAME))
}

/// Creates `dir` for the agent running as `owner`. When it cannot be handed over (a user name
/// that is not numeric, or a worker not running as root) it is 0777 instead, in a parent only
/// the worker can enter: the container sees the directory itself, never that parent.
pub fn prepare_run_dir(dir: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    let handed_over =
        owner.is_some_and(|(uid, gid)| std::os::unix::fs::chown(dir, Some(uid), Some(gid)).is_ok());
    let mode = if handed_over { 0o700 } else { 0o777 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// How a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Nothing was sent: no agent listens there (yet, or any more).
    Connect(std::io::Error),
    /// The call was sent and no valid reply came.
    Broken(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "the sandbox agent is not listening: {e}"),
            CallError::Broken(why) => write!(f, "the sandbox agent's reply was lost: {why}"),
        }
    }
}

/// Connects to the socket at `path` without following a link there (see the module notes).
async fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)?;
    if !handle.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other(format!(
            "{} is not a socket",
            path.display()
        )));
    }
    use std::os::fd::AsRawFd;
    let through = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let stream = UnixStream::connect(&through).await;
    drop(handle);
    stream
}

/// An `attach`: the request, the `attached` reply (read a byte at a time, so nothing the
/// process writes next is swallowed), then the connection is the process's stdio.
pub async fn attach(
    socket: &Path,
    spec: protocol::AttachSpec,
    limit: Duration,
) -> Result<UnixStream, String> {
    let exchange = async {
        let mut stream = connect(socket).await.map_err(|e| e.to_string())?;
        let mut line = serde_json::to_vec(&Request::Attach(spec)).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while reply.len() < 64 * 1024 {
            if stream.read(&mut byte).await.map_err(|e| e.to_string())? == 0 {
                return Err("the agent closed the connection".to_string());
            }
            if byte[0] == b'\n' {
                break;
            }
            reply.push(byte[0]);
        }
        match serde_json::from_slice::<Reply>(&reply) {
            Ok(Reply::Attached) => Ok(stream),
            Ok(Reply::Refused { message }) => Err(message),
            Ok(_) | Err(_) => Err("the agent's answer to attach was not `attached`".to_string()),
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("the agent did not attach within {} s", limit.as_secs()))?
}

/// One call: the request, then the reply line (capped), all within `limit`. A `cancel` that
/// fires meanwhile half-closes the connection, which the agent takes as `/stop`.
pub async fn call(
    socket: &Path,
    request: &Request,
    cancel: Option<&Cancel>,
    limit: Duration,
) -> Result<Reply, CallError> {
    let mut stream = connect(socket).await.map_err(CallError::Connect)?;
    let mut line = serde_json::to_vec(request).map_err(|e| CallError::Broken(e.to_string()))?;
    line.push(b'\n');
    let exchange = async {
        stream.write_all(&line).await?;
        let (reader, mut writer) = stream.split();
        let mut reader = BufReader::new(reader).take(protocol::MAX_REPLY_BYTES + 1);
        let mut reply = Vec::new();
        let stopped = async {
            match cancel {
                Some(cancel) => cancel.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        let mut told = false;
        let read = reader.read_until(b'\n', &mut reply);
        tokio::pin!(read);
        loop {
            tokio::select! {
                done = &mut read => { done?; break; }
                _ = &mut stopped, if !told => {
                    told = true;
                    writer.shutdown().await?;
                }
            }
        }
        Ok::<_, std::io::Error>(reply)
    };
    let reply = match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return Err(CallError::Broken(e.to_string())),
        Err(_) => {
            return Err(CallError::Broken(format!(
                "no reply within {} s",
                limit.as_secs()
            )))
        }
    };
    if reply.last() != Some(&b'\n') {
        return Err(CallError::Broken(
            "the reply was cut off or over the size limit".into(),
        ));
    }
    serde_json::from_slice(&reply).map_err(|e| CallError::Broken(format!("malformed reply: {e}")))
}

/// True when the agent at `socket` answers `ping` within a second.
async fn answers(socket: &Path) -> bool {
    matches!(
        call(socket, &Request::Ping, None, Duration::from_secs(1)).await,
        Ok(Reply::Pong { .. })
    )
}

/// Waits until the agent at `socket` answers `ping` with this protocol's version.
pub async fn wait_ready(socket: &Path) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        match call(socket, &Request::Ping, None, Duration::from_secs(1)).await {
            Ok(Reply::Pong { version }) if version == protocol::PROTOCOL_VERSION => return Ok(()),
            Ok(other) => {
                return Err(format!(
                    "the sandbox agent speaks another protocol: {other:?}"
                ))
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(format!(
        "the sandbox agent did not come up within {} s ({last})",
        READY_WITHIN.as_secs()
    ))
}

impl super::DockerSandboxes {
    /// Runs `request` through the container's agent (the fast path; see the module notes).
    pub(super) async fn exec_via_agent(
        &self,
        container: &super::ContainerRef,
        socket: &Path,
        request: &crate::sandbox::ExecRequest,
        exec_id: String,
    ) -> Result<crate::sandbox::ExecOutput, crate::sandbox::SandboxError> {
        let started = tokio::time::Instant::now();
        let spec = protocol::ExecSpec {
            command: request.command.clone(),
            workdir: request.workdir.clone(),
            env: request.env.clone(),
            timeout_ms: request.timeout.as_millis() as u64,
            max_output_bytes: request.max_output_bytes,
            exec_id,
        };
        // The agent enforces the timeout; this only bounds an agent that stopped answering.
        let limit = request.timeout + 2 * sandbox_agent::exec::KILL_GRACE + READY_WITHIN;
        let reply = self
            .call_agent(
                container,
                socket,
                &Request::Exec(spec),
                Some(&request.cancel),
                limit,
            )
            .await;
        let reply = match reply {
            Ok(Reply::Exec(reply)) => reply,
            Ok(Reply::Refused { message }) => {
                return Err(crate::sandbox::SandboxError::Spawn(message))
            }
            Ok(other) => {
                return Err(self.agent_error(container, format!("unexpected reply {other:?}")))
            }
            Err(e) => {
                // An agent that went quiet mid-call may leave the command running: as for a
                // tree that outlives its kill, the container goes down with it. One that
                // answers lost only this reply (another call's revive restarted it).
                if !answers(socket).await {
                    self.revive(&container.name, socket).await?;
                }
                return Err(self.agent_error(container, e));
            }
        };
        if reply.tree_survived {
            self.restart(&container.name, super::RUNAWAY).await?;
        }
        Ok(crate::sandbox::ExecOutput {
            exit_code: reply.exit_code,
            stdout: reply.stdout,
            stderr: reply.stderr,
            stdout_bytes: reply.stdout_bytes,
            stderr_bytes: reply.stderr_bytes,
            timed_out: reply.timed_out,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// One file tool through the container's agent: the text for the model, or why not.
    pub async fn file_via_agent(
        &self,
        container: &super::ContainerRef,
        socket: &Path,
        spec: protocol::FileSpec,
        limit: Duration,
    ) -> Result<String, String> {
        let _busy = super::InFlight::enter(&self.in_flight, &container.name);
        self.touch(&container.name);
        match self
            .call_agent(container, socket, &Request::File(spec), None, limit)
            .await
        {
            Ok(Reply::File { ok: true, text }) => Ok(text),
            Ok(Reply::File { ok: false, text }) => Err(text),
            Ok(Reply::Refused { message }) => Err(message),
            Ok(other) => Err(format!(
                "unexpected reply from the sandbox agent: {other:?}"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A call, retried once when nothing could be sent: the container is started if it stopped
    /// and the agent waited for.
    async fn call_agent(
        &self,
        container: &super::ContainerRef,
        socket: &Path,
        request: &Request,
        cancel: Option<&Cancel>,
        limit: Duration,
    ) -> Result<Reply, String> {
        match call(socket, request, cancel, limit).await {
            Err(CallError::Connect(e)) => {
                tracing::info!(container = %container.name, error = %e, "the sandbox agent is not answering; reviving the container");
                self.revive(&container.name, socket)
                    .await
                    .map_err(|e| e.to_string())?;
                call(socket, request, cancel, limit)
                    .await
                    .map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// Brings the agent back: starts the container if it stopped (a command killed the agent),
    /// restarts it if it runs without an answering agent (a command removed or replaced the
    /// socket; the agent makes a new one when it starts), then waits for the agent. One revive
    /// per container at a time, and none when the agent answers by then: calls that failed
    /// together restart the container once, not once each.
    pub(super) async fn revive(
        &self,
        name: &str,
        socket: &Path,
    ) -> Result<(), crate::sandbox::SandboxError> {
        let lock = {
            let mut map = self.reviving.lock().expect("lock");
            map.entry(name.to_string()).or_default().clone()
        };
        let _held = lock.lock().await;
        if answers(socket).await {
            return Ok(());
        }
        let running = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(|e| self.error(name, &e))?
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        if running {
            self.restart(name, "its agent does not answer").await?;
        } else {
            self.docker
                .start_container(
                    name,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| self.error(name, &e))?;
        }
        wait_ready(socket)
            .await
            .map_err(|message| crate::sandbox::SandboxError::Docker {
                container: name.to_string(),
                message,
            })
    }

    pub(super) fn agent_error(
        &self,
        container: &super::ContainerRef,
        message: impl std::fmt::Display,
    ) -> crate::sandbox::SandboxError {
        crate::sandbox::SandboxError::Docker {
            container: container.name.clone(),
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_executable_without_an_interpreter_counts_as_static() {
        // The test binary itself is dynamic; a shell script is no ELF at all.
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_executable(&me).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("agent");
        std::fs::write(&script, "#!/bin/sh\n".repeat(20)).unwrap();
        assert!(!is_static_executable(&script).unwrap());
    }

    #[tokio::test]
    async fn a_symlink_or_a_file_in_place_of_the_socket_is_never_connected_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&real).unwrap();
        let link = dir.path().join("agent.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // `O_PATH | O_NOFOLLOW` opens the link itself, which is no socket.
        let err = connect(&link).await.unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");

        let file = dir.path().join("file.sock");
        std::fs::write(&file, "x").unwrap();
        assert!(connect(&file)
            .await
            .unwrap_err()
            .to_string()
            .contains("not a socket"));
        assert!(connect(&real).await.is_ok(), "the real socket connects");
    }

    #[tokio::test]
    async fn an_impostor_that_floods_or_stalls_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let junk = vec![b'x'; 1 << 20];
                    for _ in 0..100 {
                        if conn.write_all(&junk).await.is_err() {
                            return;
                        }
                    }
                    std::future::pending::<()>().await;
                });
            }
        });
        let flooded = call(&path, &Request::Ping, None, Duration::from_secs(5)).await;
        assert!(matches!(flooded, Err(CallError::Broken(_))), "{flooded:?}");

        let quiet = dir.path().join("quiet.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&quiet).unwrap();
        let stalled = call(&quiet, &Request::Ping, None, Duration::from_millis(200)).await;
        assert!(
            matches!(&stalled, Err(CallError::Broken(why)) if why.contains("no reply")),
            "{stalled:?}"
        );
    }
}
