//! `clawgate-sandbox-agent [SOCKET]`: the sandbox's long-lived process. Listens on `SOCKET`
//! (default `/.clawgate/run/agent.sock`, in a directory the worker mounts from the host) and
//! serves the worker's calls until the container stops (docs/sandbox-agent.md). With
//! `CLAWGATE_EGRESS_RELAY=<addr>` in its environment (the `egress` network mode) it also relays
//! TCP connections on `<addr>` to the worker's egress proxy (`sandbox_agent::relay`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;

use sandbox_agent::protocol::{RUN_DIR_IN_CONTAINER, SOCKET_NAME};

fn main() -> ExitCode {
    let socket = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(RUN_DIR_IN_CONTAINER).join(SOCKET_NAME));
    // A socket left by the previous run of this container (a restart) is replaced.
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "clawgate-sandbox-agent: cannot listen on {}: {e}",
                socket.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    if let Ok(addr) = std::env::var(sandbox_agent::relay::RELAY_VAR) {
        let proxy = socket.with_file_name(sandbox_agent::relay::EGRESS_SOCKET_NAME);
        std::thread::spawn(move || {
            if let Err(e) = sandbox_agent::relay::serve(&addr, proxy) {
                eprintln!("clawgate-sandbox-agent: the egress relay cannot listen on {addr}: {e}");
            }
        });
    }
    match sandbox_agent::server::serve(listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawgate-sandbox-agent: accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
