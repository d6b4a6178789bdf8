//! Runs one command inside the sandbox for the worker: `sh -c` with what the Docker exec path's
//! wrapper does done by the agent itself, output drained to the end under head + tail caps, and on a timeout or a
//! cancel the whole tree killed: its process group, then every process whose environment
//! carries the call's id (children that left the group).
//!
//! Decisions:
//! - One thread per call: the two pipes, the command's exit (a pidfd) and the worker's
//!   connection are watched with `poll`,
//!   so a call costs no extra threads (they count against the sandbox's pids limit, and a fork
//!   loop that fills it must not stop the agent from killing it).
//! - The worker's connection closing is a cancel (`/stop`): the same kill as a timeout, and
//!   the reply still carries what the command printed.
//! - A tree that holds the output open [`KILL_GRACE`] past the kill is reported as
//!   `tree_survived`, and the worker restarts the container, as on the exec path.

use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::output::CappedOutput;
use crate::protocol::{ExecReply, ExecSpec};

/// Carries the call's id in the command's environment, inherited by every descendant.
pub const EXEC_ID_VAR: &str = "CLAWGATE_EXEC_ID";
/// Runs `$1` with `sh -c` (not a login shell: no profile file is read), then terminates whatever
/// it left running in its process group (the command runs in a group of its own) and exits with
/// its status. Shell builtins only, so no extra fork.
pub const EXEC_WRAPPER: &str =
    "sh -c \"$1\" & trap '' TERM; wait $!; rc=$?; kill -TERM 0 2>/dev/null; exit $rc";
/// How long a killed tree gets to let go of its output before it counts as having survived.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Runs `spec`, watching `hangup` (the worker's connection) for a cancel. An error only when
/// the command could not be started.
pub fn run(spec: &ExecSpec, hangup: BorrowedFd<'_>) -> Result<ExecReply, String> {
    let started = Instant::now();
    // `sh -c` straight from the agent, in a group of its own: the agent does what
    // `EXEC_WRAPPER` does on the exec path (end the group's leftovers when the command ends),
    // which saves a shell per call.
    let mut child = Command::new("sh")
        .args(["-c", &spec.command])
        .current_dir(&spec.workdir)
        .envs(&spec.env)
        .env(EXEC_ID_VAR, &spec.exec_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not run the command: {e}"))?;
    let group = child.id() as i32;
    // Readable when the command exits (Linux 5.3+); without it, a short poll and `try_wait`.
    let mut exit_watch = pidfd_open(group);
    let mut streams = [
        child.stdout.take().map(|p| Stream::new(OwnedFd::from(p))),
        child.stderr.take().map(|p| Stream::new(OwnedFd::from(p))),
    ];
    let mut captured = [
        CappedOutput::new(spec.max_output_bytes),
        CappedOutput::new(spec.max_output_bytes),
    ];
    let mut deadline = started + Duration::from_millis(spec.timeout_ms);
    let mut status = None;
    let mut killed = false;
    let mut survived = false;
    let mut watch_hangup = true;
    let mut buf = vec![0u8; 64 * 1024];
    while streams.iter().any(Option::is_some) || status.is_none() {
        let now = Instant::now();
        if now >= deadline {
            if killed {
                survived = true;
                break;
            }
            killed = true;
            kill_tree(group, &spec.exec_id);
            deadline = now + KILL_GRACE;
            continue;
        }
        let mut fds: Vec<libc::pollfd> = streams.iter().flatten().map(|s| poll_fd(s.fd)).collect();
        if watch_hangup {
            fds.push(poll_fd(hangup.as_raw_fd()));
        }
        let watching_exit = status.is_none() && exit_watch.is_some();
        if let Some(pidfd) = exit_watch.as_ref().filter(|_| watching_exit) {
            fds.push(poll_fd(pidfd.as_raw_fd()));
        }
        let mut wait = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
        if status.is_none() && exit_watch.is_none() {
            wait = wait.min(5);
        }
        // SAFETY: `fds` is a live, correctly sized array of pollfd.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
        let fired = |fd: i32| ready > 0 && fds.iter().any(|p| p.fd == fd && p.revents != 0);
        for (slot, out) in streams.iter_mut().zip(captured.iter_mut()) {
            let Some(stream) = slot else { continue };
            if !fired(stream.fd) {
                continue;
            }
            match stream.pipe.read(&mut buf) {
                Ok(0) | Err(_) => *slot = None,
                Ok(n) => out.push(&buf[..n]),
            }
        }
        if watch_hangup && fired(hangup.as_raw_fd()) && peer_closed(hangup) {
            watch_hangup = false;
            deadline = Instant::now(); // cancelled: the kill path, now
        }
        if status.is_none() {
            if let Ok(Some(exited)) = child.try_wait() {
                status = Some(exited);
                exit_watch = None;
                // What the command left running in its group is ended with it.
                // SAFETY: kill(2) on a process group; no memory is touched.
                unsafe { libc::kill(-group, libc::SIGTERM) };
            }
        }
    }
    if survived {
        kill_tree(group, &spec.exec_id);
        if status.is_none() {
            reap_later(child);
        }
    }
    let exit_code = status.filter(|_| !survived).and_then(|s| {
        s.code()
            .or_else(|| s.signal().map(|n| 128 + n))
            .map(i64::from)
    });
    let [stdout, stderr] = captured;
    Ok(ExecReply {
        exit_code,
        stdout: stdout.text(),
        stderr: stderr.text(),
        stdout_bytes: stdout.total_bytes(),
        stderr_bytes: stderr.total_bytes(),
        timed_out: killed,
        tree_survived: survived,
    })
}

/// A descriptor that becomes readable when process `pid` exits, where the kernel has them.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a descriptor this process now owns.
    (fd >= 0).then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// One of the command's output pipes.
struct Stream {
    fd: i32,
    pipe: std::fs::File,
}

impl Stream {
    fn new(pipe: OwnedFd) -> Self {
        Stream {
            fd: pipe.as_raw_fd(),
            pipe: pipe.into(),
        }
    }
}

fn poll_fd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    }
}

/// True when the worker closed (or broke) its side; bytes it sent are read and ignored.
fn peer_closed(conn: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 512];
    // SAFETY: reads into a local buffer of the stated size from a valid descriptor.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            byte.len(),
            libc::MSG_DONTWAIT,
        )
    };
    n == 0
        || (n < 0
            && !matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EAGAIN | libc::EINTR)
            ))
}

/// Reaps a command that outlived the kill once it is gone (the container restart ends it).
fn reap_later(mut child: Child) {
    let _ = child.kill();
    let _ = std::thread::Builder::new().spawn(move || child.wait());
}

/// Kills the process group, then (three passes, so a loop that forks between passes is caught
/// too) every process whose environment holds `EXEC_ID_VAR=<id>`.
pub fn kill_tree(group: i32, exec_id: &str) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let marker = format!("{EXEC_ID_VAR}={exec_id}");
    let me = std::process::id();
    for _ in 0..3 {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                // SAFETY: as above, a signal to one pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn spec(command: &str, timeout_ms: u64) -> ExecSpec {
        ExecSpec {
            command: command.into(),
            workdir: "/".into(),
            env: [("GREETING".to_string(), "hi".to_string())].into(),
            timeout_ms,
            max_output_bytes: 1000,
            // Unique per call: tests run at once, and a kill takes every process with the id.
            exec_id: format!("test-{}-{command}", std::process::id()),
        }
    }

    #[test]
    fn a_command_reports_its_output_and_exit_code() {
        let (conn, _worker) = UnixStream::pair().unwrap();
        let reply = run(
            &spec("echo $GREETING; echo oops >&2; exit 3", 10_000),
            conn.as_fd(),
        )
        .unwrap();
        assert_eq!(reply.exit_code, Some(3));
        assert_eq!(reply.stdout, "hi\n");
        assert_eq!(reply.stderr, "oops\n");
        assert!(!reply.timed_out && !reply.tree_survived);
    }

    #[test]
    fn a_timeout_kills_the_tree_and_keeps_what_it_printed() {
        let (conn, _worker) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let reply = run(
            &spec("echo before; (sleep 30; echo child) & sleep 30", 300),
            conn.as_fd(),
        )
        .unwrap();
        assert!(reply.timed_out, "{reply:?}");
        assert_eq!(reply.stdout, "before\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_worker_closing_its_side_cancels_the_command() {
        let (conn, worker) = UnixStream::pair().unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            worker.shutdown(std::net::Shutdown::Write).unwrap();
            worker
        });
        let reply = run(&spec("echo started; sleep 30", 60_000), conn.as_fd()).unwrap();
        closer.join().unwrap();
        assert!(reply.timed_out, "{reply:?}");
        assert_eq!(reply.stdout, "started\n");
    }

    #[test]
    fn what_a_command_leaves_running_in_its_group_ends_with_it() {
        let (conn, _worker) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let reply = run(&spec("sleep 30 & echo done", 60_000), conn.as_fd()).unwrap();
        assert_eq!(
            (reply.exit_code, reply.stdout.as_str()),
            (Some(0), "done\n")
        );
        assert!(!reply.timed_out);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_command_that_closes_its_output_early_is_still_waited_for() {
        let (conn, _worker) = UnixStream::pair().unwrap();
        let reply = run(
            &spec("echo early; exec >&- 2>&-; sleep 0.3; exit 4", 10_000),
            conn.as_fd(),
        )
        .unwrap();
        assert_eq!(reply.exit_code, Some(4), "{reply:?}");
        assert_eq!(reply.stdout, "early\n");
    }

    #[test]
    fn a_flood_is_capped_and_counted() {
        let (conn, _worker) = UnixStream::pair().unwrap();
        let reply = run(&spec("yes | head -c 1000000", 10_000), conn.as_fd()).unwrap();
        assert_eq!(reply.exit_code, Some(0));
        assert_eq!(reply.stdout_bytes, 1_000_000);
        assert!(reply.stdout.len() < 1200, "{}", reply.stdout.len());
    }
}
