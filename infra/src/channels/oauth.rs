//! Bearer tokens both ways for the channels that speak OAuth (Google Chat, Microsoft Teams):
//! a platform's published signing keys, fetched and cached, against which its request JWTs are
//! verified ([`KeySet`]); the access token the gateway gets for the platform's API, cached
//! until it nears expiry ([`CachedToken`]); and the JSON API call with a bearer token those
//! two and Matrix make ([`call_json`]).
//!
//! Decisions:
//! - The key set is refreshed when it is an hour old, or when a token names a `kid` it lacks,
//!   at most once a minute (a failed fetch counts as an attempt), so forged `kid`s cannot turn
//!   into a fetch per request. Verification itself needs no I/O: the route refreshes first.
//! - The key URL may be an OpenID metadata document (Bot Framework): its `jwks_uri` is
//!   followed. A key's `endorsements` (the channels it may sign for) are kept beside it.
//! - An access token is reused until five minutes before it expires.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{ChannelError, Refusal, WebhookRequest};
use crate::config::Secret;

const KEYS_TTL: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(60);
const TOKEN_MARGIN: u64 = 300;

/// One signing key and the channels it is endorsed for (empty when the set says nothing).
#[derive(Clone)]
pub struct SigningKey {
    pub key: DecodingKey,
    pub endorsements: Vec<String>,
}

/// A platform's signing keys, by `kid`, fetched and cached.
pub struct KeySet {
    url: String,
    http: reqwest::Client,
    cache: RwLock<(Option<Instant>, HashMap<String, SigningKey>)>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    n: String,
    e: String,
    #[serde(default)]
    endorsements: Vec<String>,
}

impl KeySet {
    /// Keys from `url`: a JWKS, or an OpenID metadata document naming one (`jwks_uri`).
    pub fn new(url: &str, http: reqwest::Client) -> Self {
        KeySet {
            url: url.to_string(),
            http,
            cache: RwLock::new((None, HashMap::new())),
        }
    }

    /// A key set read from JWKS text now (tests; a cached copy).
    pub fn from_jwks(url: &str, http: reqwest::Client, jwks: &str) -> Self {
        let keys = KeySet::new(url, http);
        if let (Ok(jwks), Ok(mut cache)) = (serde_json::from_str::<Jwks>(jwks), keys.cache.write())
        {
            *cache = (Some(Instant::now()), parse_keys(jwks));
        }
        keys
    }

    pub fn key(&self, kid: &str) -> Option<SigningKey> {
        self.cache.read().ok()?.1.get(kid).cloned()
    }

    /// Fetches the key set when it is stale or lacks `kid` (no more than once a minute).
    pub async fn refresh_for(&self, kid: Option<&str>) {
        let (fetched, known) = match self.cache.read() {
            Ok(cache) => (cache.0, kid.is_none_or(|k| cache.1.contains_key(k))),
            Err(_) => return,
        };
        let due = match fetched {
            None => true,
            Some(at) => at.elapsed() > KEYS_TTL || (!known && at.elapsed() > MIN_REFRESH),
        };
        if !due {
            return;
        }
        let fetched = self.fetch().await;
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        match fetched {
            Some(keys) => *cache = (Some(Instant::now()), keys),
            None => {
                // A failure counts as an attempt too: a flood of requests cannot become a flood
                // of fetches while the keys are unreachable.
                cache.0 = Some(Instant::now());
                tracing::warn!(url = %self.url, "a signing key set could not be fetched; unknown keys are refused until it is");
            }
        }
    }

    async fn fetch(&self) -> Option<HashMap<String, SigningKey>> {
        let get = |url: String| async move {
            let response = self.http.get(url).send().await.ok()?;
            response
                .status()
                .is_success()
                .then_some(response.json::<Value>().await.ok()?)
        };
        let mut document = get(self.url.clone()).await?;
        if document.get("keys").is_none() {
            let jwks_uri = document["jwks_uri"].as_str()?.to_string();
            document = get(jwks_uri).await?;
        }
        Some(parse_keys(serde_json::from_value(document).ok()?))
    }
}

fn parse_keys(jwks: Jwks) -> HashMap<String, SigningKey> {
    jwks.keys
        .into_iter()
        .filter_map(|k| {
            let key = DecodingKey::from_rsa_components(&k.n, &k.e).ok()?;
            Some((
                k.kid,
                SigningKey {
                    key,
                    endorsements: k.endorsements,
                },
            ))
        })
        .collect()
}

impl KeySet {
    /// The claims of the request's bearer token, checked by `validation` with this set's key
    /// for the token's `kid`, and that key (its endorsements); or the refusal.
    pub fn verify_bearer(
        &self,
        request: &WebhookRequest<'_>,
        validation: &Validation,
    ) -> Result<(Value, SigningKey), Refusal> {
        let refused = |why: String| Refusal::Unauthorized(why);
        let token = bearer(request).ok_or_else(|| refused("missing bearer token".into()))?;
        let kid = bearer_kid(request).ok_or_else(|| refused("the token names no key".into()))?;
        let key = self
            .key(&kid)
            .ok_or_else(|| refused("the token's key is not in the platform's key set".into()))?;
        let claims = decode::<Value>(&token, &key.key, validation)
            .map_err(|e| refused(format!("the token does not verify: {e}")))?
            .claims;
        Ok((claims, key))
    }
}

/// The bearer token of a request.
pub fn bearer(request: &WebhookRequest<'_>) -> Option<String> {
    request
        .headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// The `kid` a request's bearer token names, if it has one that parses.
pub fn bearer_kid(request: &WebhookRequest<'_>) -> Option<String> {
    decode_header(&bearer(request)?).ok()?.kid
}

/// An API access token, reused until five minutes before it expires.
#[derive(Default)]
pub struct CachedToken(tokio::sync::Mutex<Option<(Instant, Secret)>>);

impl CachedToken {
    /// The cached token, or a new one from `grant` (a token and its lifetime in seconds).
    pub async fn get<F>(&self, grant: F) -> Result<Secret, ChannelError>
    where
        F: std::future::Future<Output = Result<(Secret, u64), ChannelError>>,
    {
        let mut cached = self.0.lock().await;
        if let Some((until, token)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = grant.await?;
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(TOKEN_MARGIN));
        *cached = Some((until, token.clone()));
        Ok(token)
    }
}

/// Posts an OAuth token request (`form`) to `url`: the access token and its lifetime. The
/// answer's error code is reported, never the form (it holds the credential).
pub async fn token_grant(
    http: &reqwest::Client,
    channel: &'static str,
    url: &str,
    form: &[(&str, &str)],
) -> Result<(Secret, u64), ChannelError> {
    let response = http
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| ChannelError::Retryable {
            channel,
            message: format!("token: {}", e.without_url()),
        })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    match answer["access_token"].as_str() {
        Some(token) if status.is_success() => Ok((
            Secret::new(token),
            answer["expires_in"].as_u64().unwrap_or(3600),
        )),
        _ => Err(api_error(
            channel,
            status,
            format!("token: HTTP {}: {}", status.as_u16(), answer["error"]),
        )),
    }
}

/// Sends an API call with `token`: its status and JSON answer (`null` when it is not JSON);
/// only a failure to reach the API is an error.
pub async fn send_json(
    channel: &'static str,
    request: reqwest::RequestBuilder,
    token: &Secret,
) -> Result<(reqwest::StatusCode, Value), ChannelError> {
    let response = request
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| ChannelError::Retryable {
            channel,
            message: e.without_url().to_string(),
        })?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or_default()))
}

/// Sends an API call with `token`: the JSON answer, or the failure with the API's message
/// (Google's and the Bot Connector's `error.message` or `message`, Matrix's `errcode: error`).
pub async fn call_json(
    channel: &'static str,
    request: reqwest::RequestBuilder,
    token: &Secret,
) -> Result<Value, ChannelError> {
    let (status, answer) = send_json(channel, request, token).await?;
    match status.is_success() {
        true => Ok(answer),
        false => Err(failure(channel, status, &answer)),
    }
}

/// A refused API call as an error, with what the API said.
pub fn failure(channel: &'static str, status: reqwest::StatusCode, answer: &Value) -> ChannelError {
    let said = match (&answer["errcode"], &answer["error"]) {
        (Value::String(code), Value::String(error)) => format!("{code}: {error}"),
        (_, error) => (error["message"].as_str().or(answer["message"].as_str()))
            .unwrap_or("no message")
            .to_string(),
    };
    api_error(channel, status, format!("HTTP {}: {said}", status.as_u16()))
}

/// An API's failure: retryable when the server erred or asked to slow down, else permanent.
pub fn api_error(
    channel: &'static str,
    status: reqwest::StatusCode,
    message: String,
) -> ChannelError {
    if status.is_server_error() || status.as_u16() == 429 {
        ChannelError::Retryable { channel, message }
    } else {
        ChannelError::Permanent { channel, message }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A key server: `/jwks` fails and counts; `/metadata` points at `/keys`, which serves the
    /// committed test key endorsed for `msteams`.
    async fn key_server() -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let jwks = std::fs::read_to_string(format!(
            "{}/fixtures/googlechat/jwks.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut endorsed: Value = serde_json::from_str(&jwks).unwrap();
        endorsed["keys"][0]["endorsements"] = serde_json::json!(["msteams"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let metadata = serde_json::json!({"jwks_uri": format!("{base}/keys")});
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }
                }),
            )
            .route(
                "/metadata",
                axum::routing::get(move || async move { axum::Json(metadata) }),
            )
            .route(
                "/keys",
                axum::routing::get(move || async move { axum::Json(endorsed) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, hits)
    }

    #[tokio::test]
    async fn an_unreachable_key_set_is_asked_for_at_most_once_a_minute() {
        let (base, hits) = key_server().await;
        let keys = KeySet::new(&format!("{base}/jwks"), reqwest::Client::new());

        for kid in ["forged-1", "forged-2", "forged-3"] {
            keys.refresh_for(Some(kid)).await;
        }

        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(keys.key("forged-1").is_none());
    }

    #[tokio::test]
    async fn openid_metadata_leads_to_the_keys_and_their_endorsements() {
        let (base, _) = key_server().await;
        let keys = KeySet::new(&format!("{base}/metadata"), reqwest::Client::new());

        keys.refresh_for(Some("e2e-chat-key-1")).await;

        let key = keys.key("e2e-chat-key-1").expect("the key behind jwks_uri");
        assert_eq!(key.endorsements, ["msteams"]);
    }

    #[tokio::test]
    async fn a_cached_token_is_reused_and_a_refused_grant_is_not_cached() {
        let cache = CachedToken::default();
        let refused = cache
            .get(async {
                Err(ChannelError::Permanent {
                    channel: "test",
                    message: "no".into(),
                })
            })
            .await;

        let first = cache.get(async { Ok((Secret::new("one"), 3600)) }).await;
        let second = cache.get(async { Ok((Secret::new("two"), 3600)) }).await;

        assert!(refused.is_err());
        assert_eq!(first.unwrap().expose(), "one");
        assert_eq!(second.unwrap().expose(), "one");
    }
}
