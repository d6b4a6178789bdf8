//! `mcp.servers`: MCP servers whose tools the model is offered, by name: a streamable HTTP
//! server (`url`), reached by the worker, or a stdio server (`command` and `args`), started
//! inside the session's sandbox for each job (docs/security.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Secret;

/// `mcp`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct McpConfig {
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// `mcp.servers.<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct McpServerConfig {
    pub enabled: bool,
    /// The server's streamable HTTP endpoint, e.g. `https://mcp.example.com/mcp`.
    pub url: Option<String>,
    /// A stdio server's program, run in the session's sandbox (with `args`).
    pub command: Option<String>,
    pub args: Vec<String>,
    /// Sent with every request (an `Authorization` header, say); never printed.
    pub headers: BTreeMap<String, Secret>,
    /// Per call, and for connecting.
    pub timeout_seconds: u64,
    /// Lets this server be on a private, loopback or link-local address (a server on the
    /// worker's own network); otherwise it goes through the same egress guard as `web_fetch`.
    pub dangerously_allow_private_network: bool,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            enabled: true,
            url: None,
            command: None,
            args: Vec::new(),
            headers: BTreeMap::new(),
            timeout_seconds: 30,
            dangerously_allow_private_network: false,
        }
    }
}

/// The longest server name: a tool is offered as `mcp__<server>__<tool>`, at most 64
/// characters in all (the model APIs' limit).
pub const MAX_MCP_SERVER_NAME: usize = 24;

impl McpServerConfig {
    /// A stdio server's command line for `sh -c`: the program and each argument quoted.
    pub fn shell_command(&self) -> Option<String> {
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let program = self.command.as_deref()?;
        Some(
            std::iter::once(program)
                .chain(self.args.iter().map(String::as_str))
                .map(quote)
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}
