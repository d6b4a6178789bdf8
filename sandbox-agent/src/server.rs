//! The agent's accept loop: a thread per connection, one request each, the reply, then close
//! (an `attach` keeps its connection as the started process's stdio: `crate::attach`).
//!
//! Decisions:
//! - A connection whose thread cannot be made (the pids limit is full) is served on the accept
//!   thread: slower, but the worker's kill of a fork loop still gets through.
//! - Nothing in a request can end the agent: bad JSON is a `refused` reply, a panic in a file
//!   tool is caught and reported, and a worker that goes away mid-call only loses its reply.

use std::io::{BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::fs::Workspace;
use crate::protocol::{self, FileSpec, Reply, Request};
use crate::{attach, exec, file_tools};

/// Serves connections on `listener` until accepting fails for good.
pub fn serve(listener: UnixListener) -> std::io::Result<()> {
    loop {
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // A second descriptor for the same connection, for when no thread can be had.
        let fallback = conn.try_clone();
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || handle(conn));
        if spawned.is_err() {
            if let Ok(conn) = fallback {
                handle(conn);
            }
        }
    }
}

/// One call: read the request, run it, write the reply.
pub fn handle(conn: UnixStream) {
    let reply = match read_request(&conn) {
        Ok(Request::Attach(spec)) => match attach::start(&spec) {
            Ok(child) => {
                if send(&conn, &Reply::Attached) {
                    attach::relay(child, conn);
                }
                return;
            }
            Err(message) => Reply::Refused { message },
        },
        Ok(request) => answer(request, &conn),
        Err(message) => Reply::Refused { message },
    };
    send(&conn, &reply);
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Writes `reply` as one line; whether it went.
fn send(conn: &UnixStream, reply: &Reply) -> bool {
    let mut line = serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!(r#"{{"reply":"refused","message":"unencodable reply: {e}"}}"#).into_bytes()
    });
    line.push(b'\n');
    let mut conn = conn;
    conn.write_all(&line).is_ok()
}

fn read_request(conn: &UnixStream) -> Result<Request, String> {
    let mut reader = BufReader::new(conn);
    let line = protocol::read_line(&mut reader, protocol::MAX_REQUEST_BYTES)
        .map_err(|e| format!("unreadable request: {e}"))?
        .ok_or("no request")?;
    serde_json::from_slice(&line).map_err(|e| format!("malformed request: {e}"))
}

fn answer(request: Request, conn: &UnixStream) -> Reply {
    match request {
        Request::Ping => Reply::Pong {
            version: protocol::PROTOCOL_VERSION,
        },
        Request::Exec(spec) => match exec::run(&spec, conn.as_fd()) {
            Ok(reply) => Reply::Exec(reply),
            Err(message) => Reply::Refused { message },
        },
        Request::Attach(_) => Reply::Refused {
            message: "attach is answered before this point".into(),
        },
        Request::File(spec) => match std::panic::catch_unwind(|| file_tool(&spec)) {
            Ok(Ok(text)) => Reply::File { ok: true, text },
            Ok(Err(text)) => Reply::File { ok: false, text },
            Err(_) => Reply::File {
                ok: false,
                text: "the file tool failed inside the sandbox agent (an internal error)".into(),
            },
        },
    }
}

fn file_tool(spec: &FileSpec) -> Result<String, String> {
    let ws = Workspace::new(
        Path::new(&spec.workspace),
        &spec.workspace,
        spec.read_only,
        None,
    )
    .map_err(|e| format!("cannot open the workspace {}: {e}", spec.workspace))?;
    file_tools::run(&ws, &spec.tool, &spec.input)
}
