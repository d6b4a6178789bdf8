//! The host backend for sandbox mode `off` (and the main session under `non-main`): commands
//! run as `sh -c` in the workspace, with a scrubbed environment, in their own process group,
//! with the same output caps and timeout as the container. This is NO isolation: a command
//! can read and write anything the worker's user can (docs/security.md).
//!
//! Decisions:
//! - `sh -c`, not a login shell, and `HOME` is a fresh private directory outside every
//!   workspace, removed after the command: no profile file a sandboxed session could have
//!   written into a shared workspace is ever read here.
//! - The environment starts empty: `PATH`, `HOME`, `LANG`, the sandbox's configured `env`,
//!   and the call's own `env`. Nothing of the worker's (API keys, tokens, AWS credentials)
//!   reaches a command.
//! - When the command ends, whatever it left running in its process group is killed, as in
//!   the container; so is the whole group on timeout, and when the call is dropped (a job
//!   stopped at the drain deadline).
//! - A process that made itself a new session escapes the group; that is the limit of running
//!   on the host, and why `mode: "all"` is the default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::Instant;

use super::output::CappedOutput;
use super::{ExecBackend, ExecOutput, ExecRequest, SandboxError};

const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long pipes may stay open after the group was killed (a process that left the group).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs commands on this machine, in the workspace.
pub struct HostExec {
    pub workspace: PathBuf,
    /// The sandbox config's `env` (e.g. `LANG`), applied before the call's own.
    pub base_env: BTreeMap<String, String>,
}

#[async_trait]
impl ExecBackend for HostExec {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        let started = Instant::now();
        let home = PrivateHome::create()?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&request.command)
            .current_dir(&request.workdir)
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("HOME", &home.0)
            .env("LANG", "C.UTF-8")
            .envs(&self.base_env)
            .envs(&request.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| SandboxError::Spawn(e.to_string()))?;
        let pgid = child.id().map(|id| id as i32);
        // Kills the whole group however this call ends, a drop included.
        let _group = GroupKill(pgid);
        let mut out_pipe = child.stdout.take().expect("piped");
        let mut err_pipe = child.stderr.take().expect("piped");
        let mut stdout = CappedOutput::new(request.max_output_bytes);
        let mut stderr = CappedOutput::new(request.max_output_bytes);
        let (mut out_open, mut err_open) = (true, true);
        let (mut out_buf, mut err_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        let mut deadline = started + request.timeout;
        let mut timed_out = false;
        let mut status = None;
        let kill_group = || {
            if let Some(pgid) = pgid {
                // SAFETY: kill(2) with a negative pid signals the process group we created for
                // this child; it touches no memory.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        };
        let mut cancelled = false;
        while out_open || err_open || status.is_none() {
            tokio::select! {
                // A cancel is a timeout now: the same kill path.
                _ = request.cancel.cancelled(), if !cancelled && !timed_out && status.is_none() => {
                    cancelled = true;
                    deadline = Instant::now();
                }
                exited = child.wait(), if status.is_none() => {
                    status = Some(exited.map_err(|e| SandboxError::Spawn(e.to_string()))?);
                    // Leftover background processes would hold the pipes open: end them.
                    kill_group();
                    deadline = deadline.min(Instant::now() + DRAIN_GRACE);
                }
                n = out_pipe.read(&mut out_buf), if out_open => match n {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => stdout.push(&out_buf[..n]),
                },
                n = err_pipe.read(&mut err_buf), if err_open => match n {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => stderr.push(&err_buf[..n]),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if timed_out || status.is_some() {
                        break; // something outside the group holds the pipes open
                    }
                    timed_out = true;
                    kill_group();
                    deadline = Instant::now() + DRAIN_GRACE;
                }
            }
        }
        let status = match status {
            Some(status) => status,
            None => child
                .wait()
                .await
                .map_err(|e| SandboxError::Spawn(e.to_string()))?,
        };
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status
            .code()
            .map(i64::from)
            .or_else(|| status.signal().map(|s| 128 + i64::from(s)));
        Ok(ExecOutput::from_capture(
            exit_code, &stdout, &stderr, timed_out, started,
        ))
    }

    /// One directory per workspace under the host's temporary directory.
    fn process_dir(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.workspace.to_string_lossy().as_bytes());
        std::env::temp_dir()
            .join(format!("clawgate-proc-{}", &hex::encode(digest)[..12]))
            .to_string_lossy()
            .into_owned()
    }

    fn describe(&self) -> String {
        format!("host (no sandbox), workspace {}", self.workspace.display())
    }
}

/// Kills a process group when dropped.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the process group we created for the
            // child; it touches no memory. A group already gone is ESRCH, which is fine.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// A fresh `HOME` for one command, outside every workspace, removed afterwards.
struct PrivateHome(PathBuf);

impl PrivateHome {
    fn create() -> Result<Self, SandboxError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!(
            "clawgate-home-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| SandboxError::Spawn(format!("cannot make a home directory: {e}")))?;
        Ok(PrivateHome(path))
    }
}

impl Drop for PrivateHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: &str, dir: &std::path::Path, timeout: Duration) -> ExecRequest {
        ExecRequest {
            command: command.into(),
            workdir: dir.display().to_string(),
            env: BTreeMap::from([("GREETING".into(), "hi".into())]),
            timeout,
            max_output_bytes: 1024,
            cancel: Default::default(),
        }
    }

    fn host(dir: &std::path::Path) -> HostExec {
        HostExec {
            workspace: dir.to_path_buf(),
            base_env: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn runs_in_the_workspace_with_a_scrubbed_environment() {
        let dir = tempfile::tempdir().unwrap();
        // cargo sets CARGO_* for this test process; none of it may reach the command.
        let out = host(dir.path())
            .exec(&request(
                "pwd; env; exit 3",
                dir.path(),
                Duration::from_secs(10),
            ))
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert!(out.stdout.starts_with(&dir.path().display().to_string()));
        assert!(out.stdout.contains("GREETING=hi"));
        assert!(!out.stdout.contains("CARGO"), "{}", out.stdout);
    }

    #[tokio::test]
    async fn home_is_private_and_no_profile_in_the_workspace_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("profile-ran");
        std::fs::write(
            dir.path().join(".profile"),
            format!("touch {}\n", marker.display()),
        )
        .unwrap();

        let out = host(dir.path())
            .exec(&request("echo $HOME", dir.path(), Duration::from_secs(10)))
            .await
            .unwrap();

        let home = out.stdout.trim();
        assert!(
            !home.starts_with(&dir.path().display().to_string()),
            "{home}"
        );
        assert!(!marker.exists(), "a .profile in the workspace ran");
        assert!(
            !std::path::Path::new(home).exists(),
            "the home is removed after"
        );
    }

    #[tokio::test]
    async fn a_dropped_call_kills_the_command_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-still-alive");
        let command = format!("(sleep 2; touch {}) & sleep 60", marker.display());
        let backend = host(dir.path());

        let long = request(&command, dir.path(), Duration::from_secs(60));
        let _ = tokio::time::timeout(Duration::from_millis(500), backend.exec(&long)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;

        assert!(
            !marker.exists(),
            "the background child outlived the dropped call"
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_command_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-still-alive");
        let command = format!("(sleep 2; touch {}) & sleep 60", marker.display());

        let out = host(dir.path())
            .exec(&request(&command, dir.path(), Duration::from_millis(300)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;

        assert!(out.timed_out);
        assert_eq!(out.exit_code, Some(128 + 9));
        assert!(
            !marker.exists(),
            "the background child survived the timeout"
        );
    }

    #[tokio::test]
    async fn huge_output_is_capped_with_head_tail_and_the_real_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = host(dir.path())
            .exec(&request(
                "seq 1 2000000; exit 7",
                dir.path(),
                Duration::from_secs(30),
            ))
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(7));
        assert!(out.stdout_bytes > 10_000_000);
        assert!(out.stdout.starts_with("1\n2\n3\n"));
        assert!(out.stdout.trim_end().ends_with("2000000"));
        assert!(out.stdout.len() < 2048);
    }
}
