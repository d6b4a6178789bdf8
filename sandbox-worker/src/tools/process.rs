//! The `process` tool (OpenClaw's semantics): background commands the agent starts, lists,
//! polls, writes to, signals and waits for. They belong to the sandbox and outlive the turn
//! that started them; a restarted sandbox, or a job now running on another worker, has none of
//! them, and says so ("gone") rather than pretending.
//!
//! Decisions:
//! - Built on the backend's `exec`, so it runs wherever `exec` does, with its hardening. Each
//!   process gets a directory (`ExecBackend::process_dir`, the container's `/tmp` tmpfs): its
//!   command, pid, a FIFO for stdin (held open, so a process reading stdin waits for `write`),
//!   its output (stdout and stderr together) and, once it ends, its exit code.
//! - It runs in its own session (`setsid`), so `exec`'s end-of-command reaper does not take
//!   it; `kill` signals its whole process group.
//! - Bounded: at most [`MAX_RUNNING`] running per sandbox; a poll returns at most
//!   [`POLL_CHUNK`] from its offset. The output file is written as the process writes (no
//!   pipe, so nothing sits in a buffer); it lives in the sandbox's tmpfs, whose pages count
//!   against the sandbox's memory limit, so a flood ends the sandbox's process, not the host.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse, Ready, ToolOutcome};
use crate::sandbox::{Cancel, ExecRequest};

/// Running background processes per sandbox.
pub const MAX_RUNNING: usize = 8;
/// Output returned by one poll, in bytes.
pub const POLL_CHUNK: u64 = 16 * 1024;
/// How long a helper command may take.
const STEP: Duration = Duration::from_secs(10);
/// The longest `wait`.
const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    action: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    signal: Option<String>,
    #[serde(default)]
    timeout: Option<u64>,
}

/// `'text'` for `sh`, whatever the text holds.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One of the process's state, as a helper reports it.
#[derive(Debug, PartialEq)]
enum State {
    Running,
    Exited(i64),
    /// Its directory is gone: the sandbox restarted, or this is another worker's sandbox.
    Gone,
    /// Not running, and no exit code: killed before the shell could record one.
    Killed,
}

pub(super) async fn run(ready: &Ready, cancel: &Cancel, input: &Value) -> ToolOutcome {
    let input = match parse::<Input>("process", input) {
        Ok(input) => input,
        Err(e) => return ToolOutcome::error(e),
    };
    let tool = Process { ready, cancel };
    let done = match input.action.as_str() {
        "start" => tool.start(&input).await,
        "list" => tool.list().await,
        "poll" => tool.poll(&input).await,
        "write" => tool.write(&input).await,
        "kill" => tool.kill(&input).await,
        "wait" => tool.wait(&input).await,
        other => Err(format!(
            "unknown action {other:?}: use start, list, poll, write, kill or wait"
        )),
    };
    match done {
        Ok(report) => ToolOutcome::ok(report.to_string()),
        Err(e) => ToolOutcome::error(e),
    }
}

struct Process<'a> {
    ready: &'a Ready,
    cancel: &'a Cancel,
}

impl Process<'_> {
    /// Runs a helper script; its stdout, or why it failed.
    async fn sh(&self, script: String, workdir: Option<String>) -> Result<String, String> {
        let request = ExecRequest {
            command: script,
            workdir: workdir.unwrap_or_else(|| self.ready.workspace.view_root().to_string()),
            env: BTreeMap::new(),
            timeout: STEP,
            max_output_bytes: (POLL_CHUNK as usize) * 4,
            cancel: self.cancel.clone(),
        };
        let out = self
            .ready
            .backend
            .exec(&request)
            .await
            .map_err(|e| e.to_string())?;
        if out.timed_out {
            return Err("the sandbox did not answer in time".into());
        }
        if out.exit_code != Some(0) {
            return Err(out.stderr.trim().to_string());
        }
        Ok(out.stdout)
    }

    fn dir(&self, id: &str) -> Result<String, String> {
        let valid =
            !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!("{id:?} is not a process id"));
        }
        Ok(format!("{}/{id}", self.ready.backend.process_dir()))
    }

    fn id<'i>(&self, input: &'i Input) -> Result<(&'i str, String), String> {
        let id = input.id.as_deref().ok_or("give the process id")?;
        Ok((id, self.dir(id)?))
    }

    async fn start(&self, input: &Input) -> Result<Value, String> {
        let command = input
            .command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or("give the command to start")?;
        let workdir = match input.workdir.as_deref() {
            None => None,
            Some(dir) => Some(self.ready.workspace.view_dir(dir).map_err(|e| e.0)?),
        };
        let running = self
            .states()
            .await?
            .into_iter()
            .filter(|(_, s, _)| *s == State::Running)
            .count();
        if running >= MAX_RUNNING {
            return Err(format!(
                "{running} processes are running, the most one sandbox keeps; kill one first"
            ));
        }
        let id = ulid::Ulid::new().to_string().to_lowercase()[14..].to_string();
        let dir = self.dir(&id)?;
        // The runner holds the FIFO open for writing too, so the command's stdin stays open
        // (a `read` waits for `write`) until the process ends. The start waits until the
        // runner is in its own session (`started`): `exec`'s reaper signals the group it
        // leaves, and a runner not yet out of it would go with it.
        let runner = String::from(
            ": >\"$1/started\"; exec 3<>\"$1/in\"; sh -c \"$2\" <\"$1/in\" >\"$1/out\" 2>&1; echo $? >\"$1/rc.tmp\"; mv \"$1/rc.tmp\" \"$1/rc\""
        );
        let script = format!(
            "set -e; d={dir}; mkdir -p \"$d\"; mkfifo \"$d/in\"; printf %s {cmd} >\"$d/cmd\"; : >\"$d/out\"; \
             setsid sh -c {runner} sh \"$d\" {cmd} </dev/null >/dev/null 2>&1 & echo $! >\"$d/pid\"; \
             i=0; while [ ! -e \"$d/started\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
            dir = quote(&dir),
            cmd = quote(command),
            runner = quote(&runner),
        );
        self.sh(script, workdir).await?;
        Ok(json!({"id": id, "state": "running", "command": command}))
    }

    /// Every process's id, state and output size.
    async fn states(&self) -> Result<Vec<(String, State, u64)>, String> {
        let script = format!(
            "cd {root} 2>/dev/null || exit 0; for d in *; do [ -f \"$d/pid\" ] || continue; \
             s=running; kill -0 \"$(cat \"$d/pid\")\" 2>/dev/null || s=stopped; \
             [ -f \"$d/rc\" ] && s=\"exited:$(cat \"$d/rc\")\"; \
             echo \"$d $s $(wc -c <\"$d/out\")\"; done",
            root = quote(&self.ready.backend.process_dir())
        );
        let out = self.sh(script, None).await?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let (id, state, size) = (parts.next()?, parts.next()?, parts.next()?);
                Some((
                    id.to_string(),
                    parse_state(state),
                    size.parse().unwrap_or(0),
                ))
            })
            .collect())
    }

    async fn state(&self, id: &str) -> Result<(State, u64), String> {
        Ok(self
            .states()
            .await?
            .into_iter()
            .find(|(i, _, _)| i == id)
            .map_or((State::Gone, 0), |(_, state, size)| (state, size)))
    }

    async fn list(&self) -> Result<Value, String> {
        let processes: Vec<Value> = self
            .states()
            .await?
            .into_iter()
            .map(|(id, state, size)| json!({"id": id, "state": describe(&state), "output_bytes": size}))
            .collect();
        Ok(json!({"processes": processes}))
    }

    async fn poll(&self, input: &Input) -> Result<Value, String> {
        let (id, dir) = self.id(input)?;
        let (state, size) = self.state(id).await?;
        if state == State::Gone {
            return Ok(gone(id));
        }
        let offset = input.offset.unwrap_or(0).min(size);
        let script = format!(
            "tail -c +{from} {out} | head -c {POLL_CHUNK}",
            from = offset + 1,
            out = quote(&format!("{dir}/out"))
        );
        let output = self.sh(script, None).await?;
        let next = offset + output.len() as u64;
        Ok(json!({
            "id": id, "state": describe(&state), "output": output, "next_offset": next,
            "more": next < size,
        }))
    }

    async fn write(&self, input: &Input) -> Result<Value, String> {
        let (id, dir) = self.id(input)?;
        let data = input.data.as_deref().ok_or("give data to write")?;
        if self.state(id).await?.0 != State::Running {
            return Err(format!("process {id} is not running"));
        }
        let script = format!("printf %s {} >{}", quote(data), quote(&format!("{dir}/in")));
        self.sh(script, None).await?;
        Ok(json!({"id": id, "written": data.len()}))
    }

    async fn kill(&self, input: &Input) -> Result<Value, String> {
        let (id, dir) = self.id(input)?;
        let signal = input
            .signal
            .as_deref()
            .unwrap_or("TERM")
            .trim_start_matches("SIG");
        if !["TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2"].contains(&signal) {
            return Err(format!(
                "{signal:?}: use TERM, KILL, INT, HUP, QUIT, USR1 or USR2"
            ));
        }
        if self.state(id).await?.0 != State::Running {
            return Ok(json!({"id": id, "note": "not running"}));
        }
        let script = format!("kill -{signal} -$(cat {}/pid)", quote(&dir));
        self.sh(script, None).await?;
        Ok(json!({"id": id, "signal": signal}))
    }

    async fn wait(&self, input: &Input) -> Result<Value, String> {
        let (id, _) = self.id(input)?;
        let limit = Duration::from_secs(input.timeout.unwrap_or(30)).min(MAX_WAIT);
        let until = tokio::time::Instant::now() + limit;
        loop {
            let (state, _) = self.state(id).await?;
            if state != State::Running
                || tokio::time::Instant::now() >= until
                || self.cancel.is_cancelled()
            {
                let mut report = self.poll(input).await?;
                report["waited"] = json!(state != State::Running);
                return Ok(report);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn parse_state(state: &str) -> State {
    match state.strip_prefix("exited:") {
        Some(code) => code.trim().parse().map_or(State::Killed, State::Exited),
        None if state == "running" => State::Running,
        None => State::Killed,
    }
}

fn describe(state: &State) -> String {
    match state {
        State::Running => "running".into(),
        State::Exited(code) => format!("exited with {code}"),
        State::Killed => "ended by a signal".into(),
        State::Gone => "gone".into(),
    }
}

fn gone(id: &str) -> Value {
    json!({"id": id, "state": "gone", "note": "no such process here: the sandbox was restarted, or this job now runs on another worker (processes live in their sandbox). Start it again if you still need it."})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_states_parse() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(parse_state("exited:3"), State::Exited(3));
        assert_eq!(parse_state("running"), State::Running);
        assert_eq!(parse_state("stopped"), State::Killed);
        assert_eq!(parse_state("exited:"), State::Killed);
    }
}
