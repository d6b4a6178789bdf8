//! `attach`: a long-lived process inside the sandbox whose stdin and stdout become the worker's
//! connection, byte for byte, once the agent has answered `attached` (a stdio MCP server, run in
//! the sandbox rather than on the host). The process runs in a group of its own; when either
//! side closes (the worker drops the connection, the process exits) the group is killed.
//!
//! The worker must send nothing after its request line until it has read the `attached`
//! reply: the request is read through a buffer, and bytes behind it would be lost.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::protocol::AttachSpec;

/// Starts the process of `spec`.
pub fn start(spec: &AttachSpec) -> Result<Child, String> {
    Command::new("sh")
        .arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.workdir)
        .envs(&spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", spec.command))
}

/// Carries bytes between `conn` and the process until either side closes, then ends the
/// process's group and reaps it.
pub fn relay(mut child: Child, conn: UnixStream) {
    let group = child.id() as i32;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        kill(group, &mut child);
        return;
    };
    let Ok(mut from_worker) = conn.try_clone() else {
        kill(group, &mut child);
        return;
    };
    let inbound = std::thread::spawn(move || {
        let _ = copy_flushing(&mut from_worker, &mut stdin);
        // The worker hung up: the process's input ends, and so does the process.
    });
    let mut to_worker = conn;
    let _ = copy_flushing(&mut stdout, &mut to_worker);
    let _ = to_worker.shutdown(std::net::Shutdown::Both);
    kill(group, &mut child);
    let _ = inbound.join();
}

/// Copies until EOF, flushing after every read (a JSON-RPC line must not wait in a buffer).
fn copy_flushing(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

fn kill(group: i32, child: &mut Child) {
    // SAFETY: a signal to a process group this agent made; no memory is touched.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn the_process_talks_over_the_connection_and_dies_when_it_closes() {
        let (worker, agent) = UnixStream::pair().unwrap();
        let spec = AttachSpec {
            command: "while read -r line; do echo \"got $line\"; done".into(),
            workdir: "/".into(),
            env: Default::default(),
        };
        let child = start(&spec).unwrap();
        let pid = child.id();
        let relaying = std::thread::spawn(move || relay(child, agent));

        (&worker).write_all(b"hello\n").unwrap();
        let mut line = String::new();
        BufReader::new(&worker).read_line(&mut line).unwrap();
        worker.shutdown(std::net::Shutdown::Both).unwrap();
        relaying.join().unwrap();

        assert_eq!(line, "got hello\n");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the process is gone with the connection"
        );
    }
}
