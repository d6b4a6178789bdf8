//! MCP servers' tools for the model (`mcp.servers`): each server's tools offered as
//! `mcp__<server>__<tool>` (so a tool policy names them with `mcp__*` or `mcp__<server>__*`), in
//! the owner's sessions only, spoken to with the maintained Rust SDK (`rmcp`), never a
//! hand-written protocol: over streamable HTTP by the worker (`url`), or over the stdio of a
//! process the sandbox's agent starts (`command`: `sandbox_agent::attach`), one per job, in
//! sandboxed owner sessions only (a session on the host would run it on the host).
//!
//! Decisions:
//! - The HTTP client is the egress guard's (`web::guard`): the server's address is checked
//!   like any the worker reaches for the model (private ranges refused unless the server's
//!   `dangerouslyAllowPrivateNetwork` says so, `tools.web.allowDomains`/`denyDomains`, every
//!   redirect), and resolved once per connection (no rebinding).
//! - One connection per server per worker, made on first use and remade after a failure; the
//!   tool list is read when connecting. A server that cannot be reached is logged, its tools
//!   are not offered, and it is not tried again for a minute, so a server that is down never
//!   fails a job or holds one up.
//! - What a tool returns is the server's: text blocks joined, other content named, cut to
//!   [`MAX_RESULT_CHARS`], inside the untrusted-content markers. A tool whose name does not
//!   fit `mcp__<server>__<tool>` in 64 characters of `[A-Za-z0-9_-]` is not offered.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use infra::config::{McpConfig, WebToolsConfig};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use super::{ExtraTools, ToolOutcome, ToolSpec};
use crate::web::guard::{self, EgressPolicy};

/// The most of a tool result the model gets.
pub const MAX_RESULT_CHARS: usize = 50_000;
/// The most of one server answer that is read.
const MAX_ANSWER_BYTES: usize = 4 << 20;
const PREFIX: &str = "mcp__";
/// The longest wait for a server to connect and list its tools.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server that failed to connect is left alone.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// A live session with one server and the tools it listed.
struct Connection {
    service: RunningService<RoleClient, ClientConfig>,
    tools: Vec<ToolSpec>,
}

impl Connection {
    /// The MCP session over `transport` with server `server`, and its tools as offered.
    async fn open<T, E, A>(server: &str, transport: T) -> Result<Connection, String>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("clawgate", env!("CARGO_PKG_VERSION")),
        );
        let service = info
            .serve(transport)
            .await
            .map_err(|e| format!("connecting: {}", innermost(&e)))?;
        let listed = service
            .list_all_tools()
            .await
            .map_err(|e| format!("listing tools: {}", innermost(&e)))?;
        let tools = listed
            .into_iter()
            .filter_map(|tool| {
                let name = format!("{PREFIX}{server}__{}", tool.name);
                let fits = name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !fits {
                    tracing::warn!(%server, tool = %tool.name, "MCP tool name does not fit mcp__<server>__<tool> in 64 characters; not offered");
                    return None;
                }
                let description = tool.description.as_deref().unwrap_or("").to_string();
                Some(ToolSpec {
                    name: Cow::Owned(name),
                    description: Cow::Owned(format!(
                        "[MCP server {server}] {}",
                        infra::channels::truncate_chars(&description, 1_000)
                    )),
                    input_schema: Value::Object((*tool.input_schema).clone()),
                })
            })
            .collect();
        Ok(Connection { service, tools })
    }

    /// Calls `tool`: its outcome for the model, or `Err` when the session itself failed.
    async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: serde_json::Map<String, Value>,
        timeout: Duration,
    ) -> Result<ToolOutcome, String> {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result = match tokio::time::timeout(timeout, self.service.call_tool(params)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(innermost(&e)),
            Err(_) => return Err(format!("no answer within {} s", timeout.as_secs())),
        };
        let text = result_text(&serde_json::to_value(&result).unwrap_or_default());
        let marked = format!(
            "<<<EXTERNAL_UNTRUSTED_CONTENT source=mcp:{server}>>>\n{}\n<<<END_EXTERNAL_UNTRUSTED_CONTENT>>>",
            infra::channels::truncate_chars(&text, MAX_RESULT_CHARS)
        );
        Ok(if result.is_error == Some(true) {
            ToolOutcome::error(marked)
        } else {
            ToolOutcome::ok(marked)
        })
    }
}

/// One configured server.
struct Server {
    name: String,
    url: String,
    /// Checks the URL itself (a literal address never reaches the client's resolver).
    policy: EgressPolicy,
    client: reqwest::Client,
    headers: Vec<(String, String)>,
    timeout: Duration,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// When connecting last failed, and why.
    failed: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

/// A stdio server: what the sandbox runs for each job that offers it.
struct StdioServer {
    name: String,
    /// For `sh -c` in the sandbox.
    command: String,
    timeout: Duration,
}

/// The MCP servers of one worker.
pub struct McpServers {
    servers: Vec<Server>,
    stdio: Vec<StdioServer>,
}

impl McpServers {
    /// From `mcp.servers` (enabled ones), each with a client guarded by `tools.web`'s lists;
    /// `allow_loopback` is the tests' exception, never config. `None` without servers.
    pub fn from_config(
        mcp: &McpConfig,
        web: &WebToolsConfig,
        allow_loopback: bool,
    ) -> reqwest::Result<Option<Self>> {
        let (mut servers, mut stdio) = (Vec::new(), Vec::new());
        for (name, config) in mcp.servers.iter().filter(|(_, c)| c.enabled) {
            let timeout = Duration::from_secs(config.timeout_seconds.max(1));
            if let Some(command) = config.shell_command() {
                stdio.push(StdioServer {
                    name: name.clone(),
                    command,
                    timeout,
                });
                continue;
            }
            let Some(url) = &config.url else { continue };
            let mut policy = EgressPolicy::from_config(web, allow_loopback);
            policy.allow_private |= config.dangerously_allow_private_network;
            servers.push(Server {
                name: name.clone(),
                url: url.clone(),
                // The SSE stream may stay open: the per-call deadline is ours, not the client's.
                policy: policy.clone(),
                client: guard::client(
                    policy,
                    Duration::from_secs(3600),
                    concat!("clawgate/", env!("CARGO_PKG_VERSION"), " (mcp)"),
                )?,
                headers: config
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
                timeout,
                connection: tokio::sync::Mutex::new(None),
                failed: tokio::sync::Mutex::new(None),
            });
        }
        let any = !servers.is_empty() || !stdio.is_empty();
        Ok(any.then_some(McpServers { servers, stdio }))
    }

    /// Whether any server runs in the sandbox (`command`).
    pub fn has_stdio(&self) -> bool {
        !self.stdio.is_empty()
    }

    /// The tools of every HTTP server that answers, connecting where needed.
    pub async fn tools(&self) -> Vec<ToolSpec> {
        let mut specs = Vec::new();
        for server in &self.servers {
            match server.connect().await {
                Ok(connection) => specs.extend(connection.tools.iter().cloned()),
                Err(why) => {
                    tracing::warn!(server = %server.name, %why, "MCP server not reachable; its tools are not offered")
                }
            }
        }
        specs
    }

    /// Calls `mcp__<server>__<tool>` on an HTTP server; `None` when the name is no server's.
    pub async fn call(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        let (server_name, tool) = split_name(name)?;
        let server = self.servers.iter().find(|s| s.name == server_name)?;
        Some(match arguments(name, input) {
            Ok(arguments) => server.call(tool, arguments).await,
            Err(refused) => refused,
        })
    }
}

impl Server {
    /// The live connection, or a new one. A server that just failed is not tried again for
    /// [`RETRY_AFTER`], so a server that is down costs a job nothing, not a timeout each.
    async fn connect(&self) -> Result<Arc<Connection>, String> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.service.is_transport_closed() {
                return Ok(connection.clone());
            }
        }
        let mut failed = self.failed.lock().await;
        if let Some((at, why)) = failed.as_ref() {
            if at.elapsed() < RETRY_AFTER {
                return Err(format!(
                    "{why} (not retried for {} s)",
                    RETRY_AFTER.as_secs()
                ));
            }
        }
        let limit = self.timeout.min(CONNECT_TIMEOUT);
        let opened = tokio::time::timeout(limit, self.open())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", limit.as_secs())));
        match opened {
            Ok(connection) => {
                *failed = None;
                let connection = Arc::new(connection);
                *slot = Some(connection.clone());
                Ok(connection)
            }
            Err(why) => {
                *failed = Some((std::time::Instant::now(), why.clone()));
                Err(why)
            }
        }
    }

    async fn open(&self) -> Result<Connection, String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("{:?}: {e}", self.url))?;
        self.policy.check_url(&url).map_err(|e| e.to_string())?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.clone());
        config.max_json_response_size = MAX_ANSWER_BYTES;
        for (key, value) in &self.headers {
            let (Ok(key), Ok(value)) = (
                reqwest::header::HeaderName::try_from(key.as_str()),
                reqwest::header::HeaderValue::try_from(value.as_str()),
            ) else {
                return Err(format!("header {key:?} is not a valid HTTP header"));
            };
            config.custom_headers.insert(key, value);
        }
        let transport = StreamableHttpClientTransport::with_client(self.client.clone(), config);
        Connection::open(&self.name, transport).await
    }

    async fn call(&self, tool: &str, arguments: serde_json::Map<String, Value>) -> ToolOutcome {
        let name = format!("{PREFIX}{}__{tool}", self.name);
        let connection = match self.connect().await {
            Ok(connection) => connection,
            Err(why) => return ToolOutcome::error(format!("{name}: {why}")),
        };
        match connection
            .call(&self.name, tool, arguments, self.timeout)
            .await
        {
            Ok(outcome) => outcome,
            Err(why) => {
                // The session may be gone: the next call connects afresh.
                *self.connection.lock().await = None;
                ToolOutcome::error(format!("{name}: {why}"))
            }
        }
    }
}

/// `mcp__<server>__<tool>` as (server, tool).
fn split_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(PREFIX)?.split_once("__")
}

/// A call's input as MCP arguments (an object; nothing is an empty one).
fn arguments(name: &str, input: &Value) -> Result<serde_json::Map<String, Value>, ToolOutcome> {
    match input {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Default::default()),
        _ => Err(ToolOutcome::error(format!(
            "{name}: the input must be an object"
        ))),
    }
}

/// A tool result's text: each text block, other blocks by kind, the structured content when
/// there is nothing else.
fn result_text(result: &Value) -> String {
    let mut parts: Vec<String> = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(
            |block| match (block["type"].as_str(), block["text"].as_str()) {
                (Some("text"), Some(text)) => text.to_string(),
                (kind, _) => format!("[{} content not shown]", kind.unwrap_or("unknown")),
            },
        )
        .collect();
    if parts.is_empty() {
        if let Some(structured) = result.get("structuredContent") {
            parts.push(structured.to_string());
        }
    }
    parts.join("\n")
}

/// The innermost cause of an error (the guard's refusal, not the SDK's wrapping).
fn innermost(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The MCP tools of one owner session: the HTTP servers' (listed when the job started) and
/// the stdio servers' its sandbox runs for this job (ended with it).
pub struct McpTools {
    pub servers: Arc<McpServers>,
    specs: Vec<ToolSpec>,
    stdio: Vec<(String, Connection, Duration)>,
}

impl McpTools {
    /// The tools for a job; `sandbox`: the session's tools when it is sandboxed (stdio servers
    /// are started there, through its agent, and offered only then).
    pub async fn for_job(servers: Arc<McpServers>, sandbox: Option<&super::ToolBox>) -> Self {
        let mut specs = servers.tools().await;
        let mut stdio = Vec::new();
        for server in &servers.stdio {
            let Some(sandbox) = sandbox else { break };
            let started = async {
                let stream = sandbox
                    .attach(&server.command)
                    .await
                    .ok_or("this sandbox has no agent to run it")??;
                Connection::open(&server.name, stream.into_split()).await
            };
            match tokio::time::timeout(server.timeout, started).await {
                Ok(Ok(connection)) => {
                    specs.extend(connection.tools.iter().cloned());
                    stdio.push((server.name.clone(), connection, server.timeout));
                }
                Ok(Err(why)) => {
                    tracing::warn!(server = %server.name, %why, "stdio MCP server did not start in the sandbox; its tools are not offered")
                }
                Err(_) => {
                    tracing::warn!(server = %server.name, "stdio MCP server did not answer in time; its tools are not offered")
                }
            }
        }
        McpTools {
            servers,
            specs,
            stdio,
        }
    }
}

#[async_trait::async_trait]
impl ExtraTools for McpTools {
    fn specs(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if !self.specs.iter().any(|s| s.name == name) {
            return None;
        }
        let (server, tool) = split_name(name)?;
        if let Some((_, connection, timeout)) = self.stdio.iter().find(|(n, ..)| n == server) {
            let arguments = match arguments(name, input) {
                Ok(arguments) => arguments,
                Err(refused) => return Some(refused),
            };
            return Some(
                connection
                    .call(server, tool, arguments, *timeout)
                    .await
                    .unwrap_or_else(|why| ToolOutcome::error(format!("{name}: {why}"))),
            );
        }
        self.servers.call(name, input).await
    }
}
