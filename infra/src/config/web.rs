//! `tools.web`: what the worker may fetch for the model, with OpenClaw's `tools.web.fetch` key
//! names, and the domain lists and private-network switch of the egress guard
//! (`sandbox-worker/src/web/guard.rs`).

use serde::{Deserialize, Serialize};

/// `tools.web`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WebToolsConfig {
    pub fetch: WebFetchConfig,
    /// When not empty, only these domains (and their subdomains) are fetched.
    pub allow_domains: Vec<String>,
    /// Never these domains (and their subdomains); wins over `allowDomains`.
    pub deny_domains: Vec<String>,
    /// Lets fetches reach private, loopback and link-local addresses (the cloud metadata
    /// address among them): only for a deployment that means to read its own network.
    pub dangerously_allow_private_network: bool,
}

/// `tools.web.fetch` (OpenClaw's keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WebFetchConfig {
    pub enabled: bool,
    /// Characters returned when the call does not say.
    pub max_chars: usize,
    /// The most a call may ask for.
    pub max_chars_cap: usize,
    pub timeout_seconds: u64,
    pub max_redirects: usize,
    pub user_agent: Option<String>,
}

impl Default for WebFetchConfig {
    fn default() -> Self {
        WebFetchConfig {
            enabled: true,
            max_chars: 50_000,
            max_chars_cap: 50_000,
            timeout_seconds: 30,
            max_redirects: 3,
            user_agent: None,
        }
    }
}
