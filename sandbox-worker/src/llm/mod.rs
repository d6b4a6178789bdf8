//! Model providers behind one trait: Anthropic Messages ([`anthropic`]) and OpenAI-compatible
//! Chat Completions ([`openai`], also Ollama, vLLM and LM Studio through a base URL), with one
//! retry policy for both ([`send_with_retry`]).
//!
//! Decisions:
//! - The model sees the session's context as transcript entries; each provider maps them to
//!   its wire format, so the transcript stays provider-neutral and a session can change model.
//! - Retries: 429, 529 and 5xx and network errors, waiting what `retry-after` (or
//!   `retry-after-ms`) says, else exponential backoff. A 429 that says the account is out of
//!   quota or over its spend limit is final: retrying cannot help. The provider's advice is
//!   untrusted input: a wait longer than the policy's `max_delay` (or one that is not a finite
//!   number) is capped there, so a hostile `retry-after: inf` or `1e9` cannot stall a job.
//! - API keys go in headers only; no error message carries a request or a key.

pub mod anthropic;
pub mod keys;
pub mod openai;

use std::time::Duration;

use async_trait::async_trait;
use infra::config::{AgentProfile, ProvidersConfig, Secret};
use infra::model::{ThinkLevel, ToolCall, TranscriptEntry};
pub use keys::{KeyRing, KeyRings};
use serde_json::Value;

/// A tool as offered to a model: name, description and JSON schema of its input.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: std::borrow::Cow<'static, str>,
    pub description: std::borrow::Cow<'static, str>,
    pub input_schema: Value,
}

/// What one model call gets.
pub struct ModelRequest<'a> {
    pub system: &'a str,
    /// The context, oldest first (a leading summary, then the turns since).
    pub history: &'a [TranscriptEntry],
    pub tools: &'a [ToolSpec],
    pub max_tokens: u32,
    /// `/think`: how hard to reason first; `None` or `Off` asks for no reasoning.
    pub thinking: Option<ThinkLevel>,
    /// Images shown with the user message of this seq (the current job's), when any.
    pub images: Option<(u64, &'a [InlineImage])>,
}

/// An image sent to the model with a user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`, from the bytes.
    pub media_type: String,
    /// Base64 of the bytes.
    pub data: String,
}

impl ModelRequest<'_> {
    /// The images that go with the entry `seq`.
    pub fn images_for(&self, seq: u64) -> &[InlineImage] {
        match self.images {
            Some((at, images)) if at == seq => images,
            _ => &[],
        }
    }
}

/// What a model said.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReply {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// The provider's stop reason (`end_turn`, `tool_use`, `stop`, `tool_calls`, …).
    pub stop: String,
    /// Tokens in and out, when the provider says.
    pub usage: Option<Usage>,
    /// Which model answered, when a [`Failover`] chose among several.
    pub model: Option<String>,
    /// Reasoning blocks to send back with this turn (see `EntryBody::Assistant`).
    pub reasoning: Vec<Value>,
}

/// A model call's token counts.
pub type Usage = infra::usage::Tokens;

/// `usage` as both APIs name it: Anthropic `input_tokens`, `output_tokens`,
/// `cache_read_input_tokens`, `cache_creation_input_tokens`; OpenAI `prompt_tokens`,
/// `completion_tokens`, `prompt_tokens_details.cached_tokens`.
pub fn usage_from_body(body: &Value) -> Option<Usage> {
    let usage = body.get("usage")?;
    let field = |a: &str, b: &str| usage[a].as_u64().or_else(|| usage[b].as_u64());
    Some(Usage {
        input: field("input_tokens", "prompt_tokens")?,
        output: field("output_tokens", "completion_tokens")?,
        cache_read: usage["cache_read_input_tokens"]
            .as_u64()
            .or_else(|| usage["prompt_tokens_details"]["cached_tokens"].as_u64())
            .unwrap_or(0),
        cache_write: usage["cache_creation_input_tokens"].as_u64().unwrap_or(0),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the model provider refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the model account is out of quota or over its spend limit: {0}")]
    SpendLimit(String),
    #[error("the model provider kept failing after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("the model's answer could not be read: {0}")]
    Malformed(String),
    #[error("no model is configured: {0}")]
    NotConfigured(String),
}

#[async_trait]
pub trait Model: Send + Sync {
    async fn complete(&self, request: &ModelRequest<'_>) -> Result<ModelReply, LlmError>;
    /// `provider/model`, for `/status` and logs.
    fn name(&self) -> String;
    /// A cost-free call proving the endpoint and key work (`clawgate doctor`): the provider's
    /// model list, once, without retries.
    async fn probe(&self) -> Result<Probe, LlmError> {
        Err(LlmError::NotConfigured(format!(
            "{} cannot be probed",
            self.name()
        )))
    }
}

/// What a probe saw: the ids the provider lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub models: Vec<String>,
}

/// One `GET` of a provider's model list (`{"data": [{"id": …}]}`, both APIs): a non-2xx is
/// `Refused` with the provider's message, so a bad key reads as the provider says it.
pub async fn list_models(request: reqwest::RequestBuilder) -> Result<Probe, LlmError> {
    let response = request
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| LlmError::GaveUp {
            attempts: 1,
            last: format!("network error: {}", e.without_url()),
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(LlmError::Refused {
            status,
            message: error_message(&body),
        });
    }
    let listing: Value =
        serde_json::from_str(&body).map_err(|e| LlmError::Malformed(e.to_string()))?;
    Ok(Probe {
        models: listing["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect(),
    })
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Sends a JSON POST with the retry policy; returns the JSON body of the first 2xx. Each
/// attempt takes its key from `keys` (see [`keys`]): a 429 moves to the next key at once while
/// one is ready, and only then backs off.
pub async fn send_with_retry(
    policy: &RetryPolicy,
    keys: &KeyRing,
    build: impl Fn(Option<&Secret>) -> reqwest::RequestBuilder,
) -> Result<Value, LlmError> {
    let mut last;
    let mut attempt = 1;
    let mut rotations = 0;
    loop {
        let backoff = policy
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt - 1))
            .min(policy.max_delay);
        let key = keys.pick();
        let wait = match build(key.map(|(_, k)| k)).send().await {
            Err(e) => {
                last = format!("network error: {}", e.without_url());
                backoff
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let advised = retry_after(response.headers());
                let body = response.text().await.unwrap_or_default();
                if (200..300).contains(&status) {
                    return serde_json::from_str(&body)
                        .map_err(|e| LlmError::Malformed(e.to_string()));
                }
                let message = error_message(&body);
                if status == 429 && is_spend_limit(&body) {
                    return Err(LlmError::SpendLimit(message));
                }
                if !(status == 429 || status == 529 || status >= 500) {
                    return Err(LlmError::Refused { status, message });
                }
                last = format!("{status}: {message}");
                if let (429, Some((i, _))) = (status, key) {
                    let rest = advised.unwrap_or(keys::DEFAULT_COOL_DOWN);
                    // Bounded: a ring whose keys all keep refusing falls back to the backoff.
                    if keys.rate_limited(i, rest) && rotations < keys.len() * 2 {
                        rotations += 1;
                        tracing::warn!(
                            key = i,
                            keys = keys.len(),
                            "rate limited; trying the next API key"
                        );
                        continue;
                    }
                }
                // The provider's advice wins over our backoff, up to the policy's maximum.
                advised.map_or(backoff, |wait| wait.min(policy.max_delay))
            }
        };
        if attempt >= policy.max_attempts {
            break;
        }
        tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %last, "model call failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
    Err(LlmError::GaveUp {
        attempts: policy.max_attempts,
        last,
    })
}

/// The wait a response advises, when it is a finite, non-negative number (seconds in
/// `retry-after`, milliseconds in `retry-after-ms`). Anything else is no advice.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let secs = get("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| get("retry-after"))?;
    // Anything past a day is as good as a day; the caller caps it lower still.
    Duration::try_from_secs_f64(secs.min(86_400.0)).ok()
}

fn is_spend_limit(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    [
        "insufficient_quota",
        "spend limit",
        "spending limit",
        "billing",
        "credit balance",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The provider's error text (both APIs put it at `error.message`), short.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    message.chars().take(300).collect()
}

/// How the default agent's model was chosen, for the start-up report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// The config, `CLAWGATE_MODEL` or `--model` named it (or nothing pointed elsewhere).
    Configured,
    /// Nothing named one and `OPENAI_BASE_URL` is set without an Anthropic key: the first
    /// model that server lists, of `listed`.
    FromServer { model: String, listed: usize },
    /// As above, but the server's model list could not be had.
    ServerSilent { base_url: String, reason: String },
}

/// Resolves an unset `agents.defaults.model` once, at start-up: with `OPENAI_BASE_URL` (Ollama,
/// vLLM, LM Studio…) and no Anthropic key, a user who exported the URL alone means that server,
/// so the default becomes `openai/<first model it lists>` (`GET {base}/models`). A named model
/// (config, `CLAWGATE_MODEL`, `--model`) is never second-guessed.
pub async fn resolve_default_model(
    config: &mut infra::config::Config,
    http: &reqwest::Client,
) -> ModelChoice {
    let providers = &config.models.providers;
    let base_url = match (&config.agents.defaults.model, &providers.anthropic.api_key) {
        (None, None) => match &providers.openai.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => return ModelChoice::Configured,
        },
        _ => return ModelChoice::Configured,
    };
    let mut request = http
        .get(format!("{base_url}/models"))
        .timeout(Duration::from_secs(5));
    if let Some(key) = &providers.openai.api_key {
        request = request.bearer_auth(key.expose());
    }
    let silent = |reason: String| ModelChoice::ServerSilent {
        base_url: base_url.clone(),
        reason,
    };
    let listing: Value = match request.send().await {
        Ok(response) if response.status().is_success() => match response.json().await {
            Ok(listing) => listing,
            Err(e) => return silent(format!("the model list is not JSON ({e})")),
        },
        Ok(response) => return silent(format!("GET /models answered {}", response.status())),
        Err(e) => return silent(format!("GET /models failed ({e})")),
    };
    let ids: Vec<&str> = listing["data"]
        .as_array()
        .map(|models| models.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    match ids.first() {
        Some(first) => {
            let model = format!("openai/{first}");
            config.agents.defaults.model = Some(infra::config::ModelSetting::Name(model.clone()));
            ModelChoice::FromServer {
                model,
                listed: ids.len(),
            }
        }
        None => silent("it lists no models".into()),
    }
}

/// The model of an agent's profile (`anthropic/<model>` or `openai/<model>`), with the
/// provider settings (keys, base URLs) from `providers` and each provider's keys from `rings`;
/// with fallbacks, a [`Failover`] over the primary and each fallback that is configured.
pub fn model_for(
    profile: &AgentProfile,
    providers: &ProvidersConfig,
    rings: &KeyRings,
    http: reqwest::Client,
    retry: RetryPolicy,
) -> Result<Box<dyn Model>, LlmError> {
    let one = |spec: &str| one_model(spec, providers, rings, http.clone(), retry.clone());
    let primary = one(&profile.model)?;
    if profile.fallbacks.is_empty() {
        return Ok(primary);
    }
    let mut models = vec![primary];
    for spec in &profile.fallbacks {
        match one(spec) {
            Ok(model) => models.push(model),
            Err(e) => tracing::warn!(model = %spec, error = %e, "fallback model left out"),
        }
    }
    Ok(Box::new(Failover { models }))
}

/// An agent's models in order: each call goes to the first, and moves down the list when one
/// fails for good (a refusal such as a bad key, its retries spent on rate limits or outages, a
/// spend limit, an unreadable answer). OpenClaw's `model: { primary, fallbacks }`. The reply
/// says which model answered, and the transcript keeps it.
pub struct Failover {
    models: Vec<Box<dyn Model>>,
}

#[async_trait]
impl Model for Failover {
    async fn complete(&self, request: &ModelRequest<'_>) -> Result<ModelReply, LlmError> {
        let mut last = None;
        for model in &self.models {
            match model.complete(request).await {
                Ok(mut reply) => {
                    reply.model = Some(model.name());
                    return Ok(reply);
                }
                Err(e) => {
                    tracing::warn!(model = %model.name(), error = %e, "model failed; trying the next one");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| LlmError::NotConfigured("no model".into())))
    }

    fn name(&self) -> String {
        self.models.first().map(|m| m.name()).unwrap_or_default()
    }

    async fn probe(&self) -> Result<Probe, LlmError> {
        match self.models.first() {
            Some(model) => model.probe().await,
            None => Err(LlmError::NotConfigured("no model".into())),
        }
    }
}

/// One `provider/model` with its provider's settings.
fn one_model(
    spec: &str,
    providers: &ProvidersConfig,
    rings: &KeyRings,
    http: reqwest::Client,
    retry: RetryPolicy,
) -> Result<Box<dyn Model>, LlmError> {
    let (provider, model) = spec
        .split_once('/')
        .ok_or_else(|| LlmError::NotConfigured(format!("model {spec:?} is not provider/model")))?;
    match provider {
        "anthropic" => Ok(Box::new(anthropic::Anthropic {
            http,
            base_url: providers
                .anthropic
                .base_url
                .clone()
                .unwrap_or_else(|| "https://api.anthropic.com".into()),
            keys: match providers.anthropic.keys() {
                keys if keys.is_empty() => {
                    return Err(LlmError::NotConfigured("set ANTHROPIC_API_KEY".into()))
                }
                keys => rings.ring("anthropic", keys),
            },
            model: model.to_string(),
            retry: retry.clone(),
        })),
        "openai" => Ok(Box::new(openai::OpenAi {
            http,
            base_url: providers
                .openai
                .base_url
                .clone()
                .unwrap_or_else(|| "https://api.openai.com/v1".into()),
            keys: rings.ring("openai", providers.openai.keys()),
            model: model.to_string(),
            retry,
        })),
        other => Err(LlmError::NotConfigured(format!(
            "unknown model provider {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose `GET /models` answers `status` with `body`.
    async fn model_list(status: u16, body: Value) -> String {
        let app = axum::Router::new().route(
            "/v1/models",
            axum::routing::get(move || async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn config(json5: &str, base_url: &str) -> infra::config::Config {
        let mut config = infra::config::Config::parse(json5).unwrap();
        config.models.providers.openai.base_url = Some(base_url.into());
        config
    }

    #[tokio::test]
    async fn openai_base_url_alone_picks_the_servers_first_model_and_a_named_one_is_kept() {
        let url = model_list(
            200,
            serde_json::json!({"data": [{"id": "llama3.2"}, {"id": "qwen"}]}),
        )
        .await;
        let http = reqwest::Client::new();
        let mut alone = config("{}", &url);
        let mut named = config(
            r#"{ agents: { defaults: { model: "openai/mine" } } }"#,
            &url,
        );
        let mut anthropic = config("{}", &url);
        anthropic.models.providers.anthropic.api_key = Some(infra::config::Secret::new("k"));

        let chose = resolve_default_model(&mut alone, &http).await;
        let kept = resolve_default_model(&mut named, &http).await;
        let left = resolve_default_model(&mut anthropic, &http).await;

        assert_eq!(
            chose,
            ModelChoice::FromServer {
                model: "openai/llama3.2".into(),
                listed: 2
            }
        );
        assert_eq!(alone.agent_profile("main").model, "openai/llama3.2");
        assert_eq!(
            (kept, named.agent_profile("main").model),
            (ModelChoice::Configured, "openai/mine".into())
        );
        assert_eq!(
            (left, anthropic.agents.defaults.model),
            (ModelChoice::Configured, None)
        );
    }

    #[tokio::test]
    async fn a_server_without_a_model_list_leaves_the_model_unset_and_says_why() {
        let failing = model_list(500, serde_json::json!({"error": "boom"})).await;
        let empty = model_list(200, serde_json::json!({"data": []})).await;
        let http = reqwest::Client::new();

        for url in [failing, empty] {
            let mut config = config("{}", &url);
            let choice = resolve_default_model(&mut config, &http).await;
            assert!(
                matches!(choice, ModelChoice::ServerSilent { .. }),
                "{choice:?}"
            );
            assert_eq!(config.agents.defaults.model, None);
        }
    }

    #[test]
    fn spend_limit_429s_are_recognised() {
        assert!(is_spend_limit(
            r#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}"#
        ));
        assert!(is_spend_limit(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Your spend limit was reached"}}"#
        ));
        assert!(!is_spend_limit(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
    }

    #[test]
    fn hostile_retry_after_values_are_no_advice_or_bounded() {
        for (value, expected) in [
            ("inf", None),
            ("NaN", None),
            ("-5", None),
            ("soon", None),
            ("1e9", Some(Duration::from_secs(86_400))),
            ("1e308", Some(Duration::from_secs(86_400))),
        ] {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("retry-after", value.parse().unwrap());
            assert_eq!(retry_after(&headers), expected, "{value}");
        }
    }
}
