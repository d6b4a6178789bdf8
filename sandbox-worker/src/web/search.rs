//! `web_search`: one query to the configured provider (Brave Search, Tavily or a SearXNG
//! instance, behind [`SearchProvider`]), its results as title / url / snippet, marked as
//! untrusted content, and kept for `cacheTtlMinutes` so a repeated query costs nothing.
//!
//! Decisions:
//! - The provider's endpoint is the owner's config, not the model's choice, so it is reached
//!   with a plain client rather than through the egress guard: a private SearXNG is the usual
//!   way to run one. The client follows no redirects, so the endpoint cannot bounce the
//!   request (and its key) elsewhere. What the model chooses is the query, and what comes
//!   back (titles, urls, snippets) is untrusted text like any page.
//! - Keys travel in headers (`X-Subscription-Token`, `Authorization: Bearer`), never in a URL,
//!   so a transport error (which names the URL) cannot carry one into the model's context.
//! - The cache is an `lru` map per worker (small and maintained), keyed by provider, query and
//!   count, entries older than the TTL ignored.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use infra::config::{SearchProviderName, WebSearchConfig, MAX_SEARCH_RESULTS};
use serde::Deserialize;
use serde_json::json;

const BRAVE_URL: &str = "https://api.search.brave.com/res/v1/web/search";
const TAVILY_URL: &str = "https://api.tavily.com/search";
/// Queries answered from memory per worker.
const CACHE_ENTRIES: usize = 256;
/// The most of a provider's answer that is read.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// A snippet longer than this is cut (providers send a sentence or two).
const SNIPPET_CHARS: usize = 500;

/// One result, as every provider's answer is reduced to.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub title: String,
    pub url: String,
    pub snippet: String,
}

/// Why a search failed, in words fit for the model (never a key).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{provider} answered {status}: {detail}")]
    Refused {
        provider: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{provider} could not be reached: {0}", provider = .1)]
    Transport(String, &'static str),
    #[error("{provider}'s answer was not what its API returns: {0}", provider = .1)]
    Decode(String, &'static str),
}

/// A search API. Contract: at most `count` results, in the provider's order; an error for
/// any answer that is not a success, with the provider's own words where it gave some.
#[async_trait::async_trait]
pub trait SearchProvider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn search(&self, query: &str, count: usize) -> Result<Vec<SearchResult>, SearchError>;
}

/// Results remembered per (query, count), with when they were fetched.
type Cache = lru::LruCache<(String, usize), (Instant, Vec<SearchResult>)>;

/// The `web_search` of one worker: the provider, the default result count and the cache.
pub struct WebSearch {
    provider: Box<dyn SearchProvider>,
    max_results: usize,
    ttl: Duration,
    cache: Mutex<Cache>,
}

impl WebSearch {
    /// From `tools.web.search`; `None` when search is off or no provider is configured.
    pub fn from_config(config: &WebSearchConfig) -> reqwest::Result<Option<Self>> {
        let Some(name) = config.provider() else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "clawgate/",
                env!("CARGO_PKG_VERSION"),
                " (web_search)"
            ))
            .build()?;
        let key = |secret: &Option<infra::config::Secret>| {
            secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default()
        };
        let provider: Box<dyn SearchProvider> = match name {
            SearchProviderName::Brave => Box::new(Brave {
                client,
                url: config
                    .brave
                    .base_url
                    .clone()
                    .unwrap_or_else(|| BRAVE_URL.into()),
                key: key(&config.api_key),
            }),
            SearchProviderName::Tavily => Box::new(Tavily {
                client,
                url: config
                    .tavily
                    .base_url
                    .clone()
                    .unwrap_or_else(|| TAVILY_URL.into()),
                key: key(&config.tavily.api_key),
            }),
            SearchProviderName::Searxng => Box::new(Searxng {
                client,
                url: config.searxng.base_url.clone().unwrap_or_default(),
                categories: config.searxng.categories.clone(),
                language: config.searxng.language.clone(),
            }),
        };
        Ok(Some(Self::with_provider(
            provider,
            config.max_results,
            Duration::from_secs(config.cache_ttl_minutes * 60),
        )))
    }

    pub fn with_provider(
        provider: Box<dyn SearchProvider>,
        max_results: usize,
        ttl: Duration,
    ) -> Self {
        WebSearch {
            provider,
            max_results: max_results.clamp(1, MAX_SEARCH_RESULTS),
            ttl,
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Searches (or remembers): the report for the model, or why not.
    pub async fn search(&self, query: &str, count: Option<usize>) -> Result<String, String> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > 400 {
            return Err("the query must be 1 to 400 characters".into());
        }
        let count = count
            .unwrap_or(self.max_results)
            .clamp(1, MAX_SEARCH_RESULTS);
        let key = (query.to_string(), count);
        let remembered = self
            .lock()
            .get(&key)
            .and_then(|(at, results)| (at.elapsed() < self.ttl).then(|| results.clone()));
        let cached = remembered.is_some();
        let results = match remembered {
            Some(results) => results,
            None => {
                let mut results = self
                    .provider
                    .search(query, count)
                    .await
                    .map_err(|e| e.to_string())?;
                results.truncate(count);
                self.lock().put(key, (Instant::now(), results.clone()));
                results
            }
        };
        Ok(report(self.provider.name(), query, &results, cached))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The results for the model: a numbered markdown list inside the untrusted-content markers.
fn report(provider: &str, query: &str, results: &[SearchResult], cached: bool) -> String {
    let mut list = String::new();
    for (i, r) in results.iter().enumerate() {
        list.push_str(&format!(
            "{}. [{}]({})\n   {}\n",
            i + 1,
            r.title,
            r.url,
            r.snippet
        ));
    }
    if results.is_empty() {
        list.push_str("(no results)\n");
    }
    json!({
        "query": query,
        "provider": provider,
        "count": results.len(),
        "cached": cached,
        "results": format!(
            "<<<EXTERNAL_UNTRUSTED_CONTENT source=web_search:{provider}>>>\n{list}<<<END_EXTERNAL_UNTRUSTED_CONTENT>>>"
        ),
    })
    .to_string()
}

/// One result from a provider's fields: snippets lose their HTML (Brave marks matches with
/// `<strong>`) and are cut to [`SNIPPET_CHARS`]; no line breaks survive in titles.
fn result(title: &str, url: &str, snippet: &str) -> SearchResult {
    let snippet = htmd::convert(snippet).unwrap_or_else(|_| snippet.to_string());
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    SearchResult {
        title: one_line(title),
        url: url.trim().to_string(),
        snippet: infra::channels::truncate_chars(&one_line(&snippet), SNIPPET_CHARS),
    }
}

/// `base` with `params` as its query string (encoded).
fn with_query(base: &str, params: &[(&str, &str)]) -> Result<url::Url, SearchError> {
    url::Url::parse_with_params(base, params)
        .map_err(|e| SearchError::Transport(format!("the configured URL: {e}"), "web_search"))
}

/// Sends `request` and decodes a success as `T`; a failure carries the provider's words.
async fn call<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<T, SearchError> {
    let response = request
        .send()
        .await
        .map_err(|e| SearchError::Transport(e.without_url().to_string(), provider))?;
    let status = response.status();
    let body = crate::web::fetch::read_capped(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| SearchError::Transport(e, provider))?
        .0;
    if !status.is_success() {
        let detail = String::from_utf8_lossy(&body);
        return Err(SearchError::Refused {
            provider,
            status: status.as_u16(),
            detail: infra::channels::truncate_chars(detail.trim(), 300),
        });
    }
    serde_json::from_slice(&body).map_err(|e| SearchError::Decode(e.to_string(), provider))
}

/// Brave Search's web search API (`GET /res/v1/web/search`, `X-Subscription-Token`).
struct Brave {
    client: reqwest::Client,
    url: String,
    key: String,
}

#[derive(Deserialize)]
struct BraveAnswer {
    #[serde(default)]
    web: Option<BraveWeb>,
}

#[derive(Deserialize)]
struct BraveWeb {
    #[serde(default)]
    results: Vec<BraveResult>,
}

#[derive(Deserialize)]
struct BraveResult {
    title: String,
    url: String,
    #[serde(default)]
    description: String,
}

#[async_trait::async_trait]
impl SearchProvider for Brave {
    fn name(&self) -> &'static str {
        "brave"
    }

    async fn search(&self, query: &str, count: usize) -> Result<Vec<SearchResult>, SearchError> {
        let url = with_query(&self.url, &[("q", query), ("count", &count.to_string())])?;
        let request = self
            .client
            .get(url)
            .header("Accept", "application/json")
            .header("X-Subscription-Token", &self.key);
        let answer: BraveAnswer = call(self.name(), request).await?;
        Ok(answer
            .web
            .map(|w| w.results)
            .unwrap_or_default()
            .iter()
            .map(|r| result(&r.title, &r.url, &r.description))
            .collect())
    }
}

/// Tavily's search API (`POST /search` with a JSON body, `Authorization: Bearer`).
struct Tavily {
    client: reqwest::Client,
    url: String,
    key: String,
}

#[derive(Deserialize)]
struct TavilyAnswer {
    results: Vec<TavilyResult>,
}

#[derive(Deserialize)]
struct TavilyResult {
    title: String,
    url: String,
    #[serde(default)]
    content: String,
}

#[async_trait::async_trait]
impl SearchProvider for Tavily {
    fn name(&self) -> &'static str {
        "tavily"
    }

    async fn search(&self, query: &str, count: usize) -> Result<Vec<SearchResult>, SearchError> {
        let request = self
            .client
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&json!({"query": query, "max_results": count, "search_depth": "basic"}));
        let answer: TavilyAnswer = call(self.name(), request).await?;
        Ok(answer
            .results
            .iter()
            .map(|r| result(&r.title, &r.url, &r.content))
            .collect())
    }
}

/// A SearXNG instance's JSON API (`GET /search?format=json`; the instance must allow the
/// json format, or it answers 403).
struct Searxng {
    client: reqwest::Client,
    url: String,
    categories: Option<String>,
    language: Option<String>,
}

#[derive(Deserialize)]
struct SearxngAnswer {
    results: Vec<SearxngResult>,
}

#[derive(Deserialize)]
struct SearxngResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    content: String,
}

#[async_trait::async_trait]
impl SearchProvider for Searxng {
    fn name(&self) -> &'static str {
        "searxng"
    }

    async fn search(&self, query: &str, count: usize) -> Result<Vec<SearchResult>, SearchError> {
        let mut params = vec![("q", query), ("format", "json")];
        if let Some(c) = &self.categories {
            params.push(("categories", c));
        }
        if let Some(l) = &self.language {
            params.push(("language", l));
        }
        let url = with_query(
            &format!("{}/search", self.url.trim_end_matches('/')),
            &params,
        )?;
        let answer: SearxngAnswer = call(self.name(), self.client.get(url)).await?;
        Ok(answer
            .results
            .iter()
            .take(count)
            .map(|r| result(&r.title, &r.url, &r.content))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counting(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl SearchProvider for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn search(
            &self,
            query: &str,
            count: usize,
        ) -> Result<Vec<SearchResult>, SearchError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok((0..count + 3)
                .map(|i| result(&format!("{query} {i}"), "https://example.com/", "<b>x</b>"))
                .collect())
        }
    }

    #[tokio::test]
    async fn a_repeated_query_is_answered_from_the_cache_until_the_ttl() {
        let calls = Arc::new(AtomicUsize::new(0));
        let search = WebSearch::with_provider(
            Box::new(Counting(calls.clone())),
            2,
            Duration::from_secs(60),
        );
        let first = search.search("rust", None).await.unwrap();
        let second = search.search(" rust ", None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(first.contains("\"cached\":false") && second.contains("\"cached\":true"));
        // The provider's extra results are cut to the count asked for.
        assert!(first.contains("\"count\":2"), "{first}");

        let expired =
            WebSearch::with_provider(Box::new(Counting(calls.clone())), 2, Duration::ZERO);
        expired.search("rust", None).await.unwrap();
        expired.search("rust", None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_empty_or_huge_query_is_refused_before_the_provider() {
        let calls = Arc::new(AtomicUsize::new(0));
        let search = WebSearch::with_provider(Box::new(Counting(calls.clone())), 5, Duration::ZERO);
        assert!(search.search("  ", None).await.is_err());
        assert!(search.search(&"q".repeat(401), None).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn snippets_lose_their_markup_and_titles_their_line_breaks() {
        let r = result(
            "Ferris\n the crab",
            " https://rust-lang.org ",
            "The <strong>Rust</strong>\nlanguage",
        );
        assert_eq!(r.title, "Ferris the crab");
        assert_eq!(r.url, "https://rust-lang.org");
        assert_eq!(r.snippet, "The **Rust** language");
    }
}
