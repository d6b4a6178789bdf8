//! `tools.web`: what the worker may fetch and search for the model, with OpenClaw's
//! `tools.web.fetch` and `tools.web.search` key names, and the domain lists and private-network
//! switch of the egress guard (`sandbox-worker/src/web/guard.rs`).

use serde::{Deserialize, Serialize};

use super::Secret;

/// `tools.web`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WebToolsConfig {
    pub fetch: WebFetchConfig,
    pub search: WebSearchConfig,
    /// When not empty, only these domains (and their subdomains) are fetched.
    pub allow_domains: Vec<String>,
    /// Never these domains (and their subdomains); wins over `allowDomains`.
    pub deny_domains: Vec<String>,
    /// Lets fetches reach private, loopback and link-local addresses (the cloud metadata
    /// address among them): only for a deployment that means to read its own network.
    pub dangerously_allow_private_network: bool,
    /// The ports the sandbox's egress proxy (`sandbox.docker.network: "egress"`) connects to.
    pub egress_ports: Vec<u16>,
}

impl Default for WebToolsConfig {
    fn default() -> Self {
        WebToolsConfig {
            fetch: WebFetchConfig::default(),
            search: WebSearchConfig::default(),
            allow_domains: vec![],
            deny_domains: vec![],
            dangerously_allow_private_network: false,
            egress_ports: vec![80, 443],
        }
    }
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

/// `tools.web.search` (OpenClaw's keys; `apiKey` is Brave's, as there). The provider is the
/// one named, or else the first with credentials: Brave, Tavily, SearXNG (OpenClaw's order).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WebSearchConfig {
    pub enabled: bool,
    pub provider: Option<SearchProviderName>,
    /// Brave Search's subscription token (or `BRAVE_API_KEY`).
    pub api_key: Option<Secret>,
    /// Results when the call does not say (at most [`MAX_SEARCH_RESULTS`]).
    pub max_results: usize,
    pub timeout_seconds: u64,
    /// How long one worker answers the same query from memory.
    pub cache_ttl_minutes: u64,
    pub brave: BraveSearchConfig,
    pub tavily: TavilySearchConfig,
    pub searxng: SearxngSearchConfig,
}

/// The most results one search returns (Brave's `count` goes to 20; ten is what a model reads).
pub const MAX_SEARCH_RESULTS: usize = 10;

impl Default for WebSearchConfig {
    fn default() -> Self {
        WebSearchConfig {
            enabled: true,
            provider: None,
            api_key: None,
            max_results: 5,
            timeout_seconds: 30,
            cache_ttl_minutes: 15,
            brave: BraveSearchConfig::default(),
            tavily: TavilySearchConfig::default(),
            searxng: SearxngSearchConfig::default(),
        }
    }
}

/// The search providers `web_search` speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchProviderName {
    Brave,
    Tavily,
    Searxng,
}

/// `tools.web.search.brave`: where Brave's API is (its public address unless changed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BraveSearchConfig {
    pub base_url: Option<String>,
}

/// `tools.web.search.tavily` (or `TAVILY_API_KEY`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TavilySearchConfig {
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
}

/// `tools.web.search.searxng`: a SearXNG instance with its JSON API on (or `SEARXNG_BASE_URL`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SearxngSearchConfig {
    pub base_url: Option<String>,
    /// Comma-separated, e.g. `general,news` (SearXNG's default is `general`).
    pub categories: Option<String>,
    pub language: Option<String>,
}

impl WebSearchConfig {
    /// The provider `web_search` uses, resolved once: the one named, or the first configured.
    /// `None` when search is off or nothing is configured (the tool is then not offered).
    pub fn provider(&self) -> Option<SearchProviderName> {
        if !self.enabled {
            return None;
        }
        let configured = |name: SearchProviderName| match name {
            SearchProviderName::Brave => self.api_key.is_some(),
            SearchProviderName::Tavily => self.tavily.api_key.is_some(),
            SearchProviderName::Searxng => self.searxng.base_url.is_some(),
        };
        match self.provider {
            Some(name) => configured(name).then_some(name),
            None => [
                SearchProviderName::Brave,
                SearchProviderName::Tavily,
                SearchProviderName::Searxng,
            ]
            .into_iter()
            .find(|&name| configured(name)),
        }
    }
}
