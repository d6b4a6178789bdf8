//! The wire between the worker and the agent: one connection per call, one JSON request line
//! in, one JSON reply line out, then the agent closes. To stop a running command (`/stop`) the
//! worker half-closes its side: the agent reads end-of-input as "kill it now" and still sends
//! the reply with what the command printed.
//!
//! Both sides cap what they read ([`MAX_REQUEST_BYTES`], [`MAX_REPLY_BYTES`]): to the worker the
//! socket is sandbox-controlled input (a process in the sandbox can replace the agent).

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the agent binary is mounted in the container (read-only).
pub const BINARY_IN_CONTAINER: &str = "/.clawgate/agent";
/// The directory mounted from the host that holds the socket.
pub const RUN_DIR_IN_CONTAINER: &str = "/.clawgate/run";
/// The socket's file name in that directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// Bumped when a request or reply changes incompatibly; `ping` reports it.
pub const PROTOCOL_VERSION: u32 = 1;
/// A write of the largest file the tools accept, JSON-escaped, fits.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// Twice the largest output caps, JSON-escaped, fit.
pub const MAX_REPLY_BYTES: u64 = 64 << 20;

/// One call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the agent up, and which protocol does it speak?
    Ping,
    Exec(ExecSpec),
    File(FileSpec),
    /// Start a process and hand the connection over to its stdin and stdout
    /// (`crate::attach`).
    Attach(AttachSpec),
}

/// A long-lived process whose stdio becomes the connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    pub command: String,
    pub workdir: String,
    pub env: BTreeMap<String, String>,
}

/// A command to run: `sh -c` in `workdir`, with `env` on top of the container's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    pub command: String,
    pub workdir: String,
    pub env: BTreeMap<String, String>,
    pub timeout_ms: u64,
    /// Cap on each of stdout and stderr (head + tail).
    pub max_output_bytes: usize,
    /// Set in the command's environment; every descendant carrying it is killed on a timeout.
    pub exec_id: String,
}

/// One call of a file tool (`read`, `write`, `edit`, `apply_patch`) on the workspace as the
/// container sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub tool: String,
    pub input: Value,
    /// The workspace's path in the container (`/workspace`).
    pub workspace: String,
    pub read_only: bool,
}

/// The answer to one call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Pong {
        version: u32,
    },
    Exec(ExecReply),
    /// A file tool's text for the model, or why it refused or failed.
    File {
        ok: bool,
        text: String,
    },
    /// The process of an `attach` started: from here on the connection is its stdio.
    Attached,
    /// The request could not be run at all (malformed, or no process could be started).
    Refused {
        message: String,
    },
}

/// What a command did, as the worker's `exec` reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExecReply {
    /// `None` when no status could be read (the tree outlived the kill).
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub timed_out: bool,
    /// Some process kept the output open past the kill: the worker restarts the container.
    pub tree_survived: bool,
}

/// Reads one line of at most `cap` bytes (without its newline). `None` at end of input before
/// any byte; an error when the line is longer than `cap` or ends without a newline.
pub fn read_line(reader: &mut impl BufRead, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = std::io::Read::take(reader, cap + 1).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        let why = if read as u64 > cap {
            format!("a line over {cap} bytes")
        } else {
            "a line cut off before its end".to_string()
        };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_up_to_its_cap_and_no_further() {
        let mut ok = std::io::Cursor::new(b"{\"op\":\"ping\"}\nrest".to_vec());
        assert_eq!(
            read_line(&mut ok, 64).unwrap().unwrap(),
            b"{\"op\":\"ping\"}"
        );

        let mut long = std::io::Cursor::new(vec![b'x'; 100]);
        assert!(read_line(&mut long, 10).is_err());
        let mut cut = std::io::Cursor::new(b"{\"op\"".to_vec());
        assert!(read_line(&mut cut, 64).is_err());
        let mut empty = std::io::Cursor::new(Vec::new());
        assert!(read_line(&mut empty, 64).unwrap().is_none());
    }

    #[test]
    fn requests_and_replies_keep_their_shape_on_the_wire() {
        let wire = r#"{"op":"file","tool":"read","input":{"path":"a"},"workspace":"/workspace","read_only":false}"#;
        let Request::File(spec) = serde_json::from_str(wire).unwrap() else {
            panic!("not a file request")
        };
        assert_eq!(spec.tool, "read");
        let unknown = r#"{"op":"exec","command":"id","workdir":"/","env":{},"timeout_ms":1,"max_output_bytes":1,"exec_id":"x","user":"root"}"#;
        assert!(serde_json::from_str::<Request>(unknown).is_err());
        let reply = serde_json::to_string(&Reply::Pong { version: 1 }).unwrap();
        assert_eq!(reply, r#"{"reply":"pong","version":1}"#);
    }
}
