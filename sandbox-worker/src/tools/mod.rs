//! The agent's tools (docs/architecture.md §7): `exec`, `read`, `write`, `edit`, `apply_patch`, their JSON
//! schemas for the model, and one entry point that checks the policy before anything runs.
//!
//! Every failure, refusal included, is a [`ToolOutcome`] with `is_error`, never a panic or a
//! dropped call: the model sees what went wrong and can try something else.

pub mod cron;
pub mod mcp;
pub mod memory;
pub mod message;
pub mod policy;
mod process;
pub mod sessions;
pub mod spawn;
pub mod web;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

pub use crate::llm::ToolSpec;
use crate::sandbox::{Cancel, ExecBackend, ExecRequest, SandboxPlan, SandboxRuntime};
use fs::Workspace;
use policy::ToolPolicy;
use sandbox_agent::file_tools::{self, parse};
pub use sandbox_agent::{fs, patch};

/// What a tool call returns to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub output: String,
    pub is_error: bool,
}

impl ToolOutcome {
    pub fn ok(output: impl Into<String>) -> Self {
        ToolOutcome {
            output: output.into(),
            is_error: false,
        }
    }

    pub fn error(output: impl Into<String>) -> Self {
        ToolOutcome {
            output: output.into(),
            is_error: true,
        }
    }

    /// The outcome with every secret's value replaced by `<secret:NAME>`, so a command that
    /// echoes one (or a file it wrote) never carries it into the model's context or the
    /// transcript. Values shorter than [`MIN_REDACTED_CHARS`] are left alone (redacting them
    /// would blank out ordinary text); an encoded value (base64, reversed) is not recognised,
    /// which is why secrets reach owner sessions only.
    pub fn redacted(mut self, secrets: &[(String, infra::config::Secret)]) -> Self {
        for (name, value) in secrets {
            let value = value.expose();
            if value.chars().count() >= MIN_REDACTED_CHARS && self.output.contains(value) {
                self.output = self.output.replace(value, &format!("<secret:{name}>"));
            }
        }
        self
    }
}

/// Counts one use of `key` in the store's `window` (so the count holds across workers) and says
/// whether it is within `limit`; 0 is no limit and counts nothing.
pub(crate) async fn within_rate(
    store: &dyn infra::store::RateCounters,
    key: &str,
    window: std::time::Duration,
    limit: u32,
) -> Result<bool, String> {
    if limit == 0 {
        return Ok(true);
    }
    let count = store.add(key, window, 1).await.map_err(|e| e.to_string())?;
    Ok(count <= u64::from(limit))
}

/// The shortest secret value [`ToolOutcome::redacted`] looks for.
pub const MIN_REDACTED_CHARS: usize = 4;

/// Tools served outside the sandbox, by the worker (the session tools).
#[async_trait::async_trait]
pub trait ExtraTools: Send + Sync {
    fn specs(&self) -> Vec<ToolSpec>;
    /// `None` when `name` is not one of these tools.
    async fn run(&self, name: &str, input: &serde_json::Value) -> Option<ToolOutcome>;
}

/// Bounds on `exec`.
#[derive(Debug, Clone)]
pub struct ExecLimits {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    /// Per stream, head + tail.
    pub max_output_bytes: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            default_timeout: Duration::from_secs(120),
            max_timeout: Duration::from_secs(1800),
            max_output_bytes: 32 * 1024,
        }
    }
}

/// The built-in tools and their schemas.
pub fn builtin_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "exec".into(),
            description: "Run a shell command (sh -c) in the workspace. Returns exit_code, stdout and stderr (long output keeps its head and tail) and timed_out.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "Shell command line."},
                    "workdir": {"type": "string", "description": "Directory inside the workspace (default: the workspace root)."},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra environment variables."},
                    "timeout": {"type": "integer", "minimum": 1, "description": "Seconds before the command and its children are killed (default 120)."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "process".into(),
            description: "Background processes in the sandbox (servers, watchers, long builds): start {command, workdir?} gives an id; list; poll {id, offset?} returns output from offset and next_offset; write {id, data} to its stdin; kill {id, signal?}; wait {id, timeout?}. They outlive this turn but not a sandbox restart.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["start", "list", "poll", "write", "kill", "wait"]},
                    "command": {"type": "string"},
                    "workdir": {"type": "string"},
                    "id": {"type": "string"},
                    "offset": {"type": "integer", "minimum": 0},
                    "data": {"type": "string"},
                    "signal": {"type": "string"},
                    "timeout": {"type": "integer", "minimum": 1}
                },
                "required": ["action"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "read".into(),
            description: "Read a text file in the workspace, optionally a range of lines.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Path relative to the workspace, or absolute under it."},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)."},
                    "limit": {"type": "integer", "minimum": 1, "description": "How many lines (default 2000)."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "write".into(),
            description: "Create or overwrite a file in the workspace; parent directories are created.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "content": {"type": "string"}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "edit".into(),
            description: "Replace one exact occurrence of oldText with newText in a file. oldText must occur exactly once. Returns a short diff.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "oldText": {"type": "string"},
                    "newText": {"type": "string"}
                },
                "required": ["path", "oldText", "newText"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "apply_patch".into(),
            description: "Apply a unified diff (--- a/path, +++ b/path, @@ hunks) to one or more files; /dev/null creates or deletes. All or nothing.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"patch": {"type": "string"}},
                "required": ["patch"],
                "additionalProperties": false
            }),
        },
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecInput {
    command: String,
    workdir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout: Option<u64>,
}

/// One session's tools: its policy, its workspace and where its commands run.
pub struct ToolBox {
    pub policy: ToolPolicy,
    pub limits: ExecLimits,
    /// The workspace and backend, or why they cannot be had (e.g. the sandbox is required and
    /// Docker is down). In the latter case every tool fails with that reason: never a silent
    /// run on the host.
    ready: Result<Ready, String>,
    /// Kills a running `exec` when the job is stopped.
    cancel: Cancel,
}

struct Ready {
    workspace: Workspace,
    backend: Arc<dyn ExecBackend>,
}

impl ToolBox {
    pub fn new(
        policy: ToolPolicy,
        workspace: Workspace,
        backend: Arc<dyn ExecBackend>,
        limits: ExecLimits,
    ) -> Self {
        ToolBox {
            policy,
            limits,
            ready: Ok(Ready { workspace, backend }),
            cancel: Cancel::default(),
        }
    }

    /// The box with `cancel` wired to every `exec` it runs.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// A box whose every call fails with `reason`.
    pub fn unavailable(policy: ToolPolicy, reason: String) -> Self {
        ToolBox {
            policy,
            limits: ExecLimits::default(),
            ready: Err(reason),
            cancel: Cancel::default(),
        }
    }

    /// The tools of `session` of `agent`, resolved from the config (the CLI and tests; a worker
    /// prepares the session once and calls [`ToolBox::for_plan`]).
    pub async fn for_session(
        runtime: &SandboxRuntime,
        config: &infra::config::Config,
        agent: &str,
        session: &infra::model::SessionKey,
    ) -> ToolBox {
        let setup = crate::profile::SessionSetup::resolve(config, agent, session);
        ToolBox::for_plan(runtime, &setup.plan, setup.policy).await
    }

    /// The tools of one session: its policy, its plan's workspace, and its backend (the
    /// container is ensured here). A plan that refuses tools (a guest on the host) gives a box
    /// whose every call fails with that reason.
    pub async fn for_plan(
        runtime: &SandboxRuntime,
        plan: &SandboxPlan,
        policy: ToolPolicy,
    ) -> ToolBox {
        if let Some(refusal) = &plan.refusal {
            return ToolBox::unavailable(policy, refusal.clone());
        }
        let backend = match runtime.backend(plan).await {
            Ok(backend) => backend,
            Err(e) => return ToolBox::unavailable(policy, e.to_string()),
        };
        match plan.open_workspace() {
            Ok(workspace) => ToolBox::new(policy, workspace, backend, ExecLimits::default()),
            Err(e) => ToolBox::unavailable(
                policy,
                format!(
                    "cannot open the workspace {}: {e}",
                    plan.workspace.display()
                ),
            ),
        }
    }

    /// Starts `command` in the sandbox with its stdio as the returned stream (a stdio MCP
    /// server); `None` when this box has no sandbox agent.
    pub async fn attach(&self, command: &str) -> Option<Result<tokio::net::UnixStream, String>> {
        let ready = self.ready.as_ref().ok()?;
        ready.backend.attach(command).await
    }

    /// The workspace, when the box is usable.
    pub fn workspace(&self) -> Option<&Workspace> {
        self.ready.as_ref().ok().map(|r| &r.workspace)
    }

    /// Where commands run, or why they cannot.
    pub fn describe_backend(&self) -> String {
        match &self.ready {
            Ok(r) => r.backend.describe(),
            Err(e) => format!("unavailable: {e}"),
        }
    }

    /// The tools this session may use, ready to hand to a model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        builtin_specs()
            .into_iter()
            .filter(|s| self.policy.allows(&s.name))
            .collect()
    }

    /// Runs one tool call. The policy is checked first: a denied tool never runs.
    pub async fn run(&self, name: &str, input: &Value) -> ToolOutcome {
        let tool = name.to_ascii_lowercase();
        if !self.policy.allows(&tool) {
            return ToolOutcome::error(format!(
                "tool {name:?} is not allowed by this agent's tool policy"
            ));
        }
        let ready = match &self.ready {
            Ok(ready) => ready,
            Err(unavailable) => return ToolOutcome::error(unavailable.clone()),
        };
        if tool == "exec" {
            return self.exec(ready, input).await;
        }
        if tool == "process" {
            return process::run(ready, &self.cancel, input).await;
        }
        // In a container with the agent, the file tools run inside it: no host-side path is
        // resolved for the sandbox at all.
        if let Some(result) = ready
            .backend
            .file_tool(&tool, input, FILE_TOOL_DEADLINE)
            .await
        {
            return match result {
                Ok(text) => ToolOutcome::ok(text),
                Err(text) => ToolOutcome::error(text),
            };
        }
        let (ws, input) = (ready.workspace.clone(), input.clone());
        // File work is blocking I/O: off the async threads, and bounded in time.
        let work = tokio::task::spawn_blocking(move || file_tools::run(&ws, &tool, &input));
        let result = match tokio::time::timeout(FILE_TOOL_DEADLINE, work).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the file tool failed inside clawgate (an internal error)".into()),
            Err(_) => Err(format!(
                "the file operation did not finish within {} seconds and was abandoned",
                FILE_TOOL_DEADLINE.as_secs()
            )),
        };
        match result {
            Ok(text) => ToolOutcome::ok(text),
            Err(text) => ToolOutcome::error(text),
        }
    }

    async fn exec(&self, ready: &Ready, input: &Value) -> ToolOutcome {
        let ws = &ready.workspace;
        let input = match parse::<ExecInput>("exec", input) {
            Ok(i) => i,
            Err(e) => return ToolOutcome::error(e),
        };
        for (key, value) in &input.env {
            let valid_key = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_key || key.starts_with("CLAWGATE_") || value.contains('\0') {
                return ToolOutcome::error(format!("invalid environment variable {key:?}"));
            }
        }
        let workdir = match input.workdir.as_deref() {
            None => ws.view_root().to_string(),
            Some(dir) => match ws.view_dir(dir) {
                Ok(view) => view,
                Err(e) => return ToolOutcome::error(e.0),
            },
        };
        let timeout = input
            .timeout
            .map(Duration::from_secs)
            .unwrap_or(self.limits.default_timeout)
            .clamp(Duration::from_secs(1), self.limits.max_timeout);
        let request = ExecRequest {
            command: input.command,
            workdir,
            env: input.env,
            timeout,
            max_output_bytes: self.limits.max_output_bytes,
            cancel: self.cancel.clone(),
        };
        match ready.backend.exec(&request).await {
            Ok(out) => {
                let mut report = json!({
                    "exit_code": out.exit_code,
                    "timed_out": out.timed_out,
                    "stdout": out.stdout,
                    "stderr": out.stderr,
                    "duration_ms": out.duration_ms,
                });
                if out.timed_out {
                    report["note"] = json!(format!(
                        "killed with its children after the {}s timeout",
                        timeout.as_secs()
                    ));
                } else if out.exit_code == Some(137) {
                    report["note"] = json!(
                        "killed by SIGKILL: most often the sandbox memory limit (out of memory)"
                    );
                }
                let failed = out.timed_out || out.exit_code != Some(0);
                ToolOutcome {
                    output: report.to_string(),
                    is_error: failed,
                }
            }
            Err(e) => ToolOutcome::error(e.to_string()),
        }
    }
}

/// The longest a file tool may take (a workspace on a network file system may hang).
pub const FILE_TOOL_DEADLINE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use infra::config::Secret;

    #[test]
    fn a_secret_s_value_is_replaced_by_its_name_and_a_short_one_is_left_alone() {
        let secrets = [
            ("GITHUB_TOKEN".to_string(), Secret::new("ghp_abc123")),
            ("PIN".to_string(), Secret::new("42")),
        ];

        let out =
            ToolOutcome::ok("token ghp_abc123, again ghp_abc123; answer 42").redacted(&secrets);

        assert_eq!(
            out.output,
            "token <secret:GITHUB_TOKEN>, again <secret:GITHUB_TOKEN>; answer 42"
        );
        assert!(!out.is_error);
    }
}
