//! `web_fetch`: one HTTP(S) GET through the egress guard, its HTML reduced to markdown, and the
//! text handed to the model marked as untrusted content from that address.
//!
//! Decisions:
//! - HTML becomes markdown with `htmd` (a maintained turndown.js port over html5ever), with
//!   `script`, `style`, `noscript`, `template`, `iframe`, `svg` and `head` dropped; other text
//!   types come as they are; anything else (images, archives, PDFs) is refused by type.
//! - Caps: the body is read to at most [`MAX_BODY_BYTES`] (the rest is never downloaded), the
//!   text to `maxChars` (at most `maxCharsCap`), the whole call to `timeoutSeconds`, redirects
//!   to `maxRedirects` (each checked by the guard).
//! - The result says where it came from and that it is data, inside markers the system prompt
//!   names, so a page's "ignore your instructions" reads as the page's text.

use std::time::Duration;

use infra::config::WebToolsConfig;
use serde_json::json;

use super::guard::{self, EgressPolicy};

/// The most of a response body that is read.
pub const MAX_BODY_BYTES: usize = 4 << 20;
const DEFAULT_USER_AGENT: &str = concat!("clawgate/", env!("CARGO_PKG_VERSION"), " (web_fetch)");
/// Tags whose content is never text for the model.
const SKIPPED: [&str; 7] = [
    "script", "style", "noscript", "template", "iframe", "svg", "head",
];

/// The fetcher of one worker: the guarded client, built once.
pub struct WebFetch {
    client: reqwest::Client,
    policy: EgressPolicy,
    max_chars: usize,
    max_chars_cap: usize,
}

impl WebFetch {
    /// From `tools.web`; `allow_loopback` is the tests' exception (never from the config).
    pub fn new(config: &WebToolsConfig, allow_loopback: bool) -> reqwest::Result<Self> {
        let policy = EgressPolicy::from_config(config, allow_loopback);
        let agent = config
            .fetch
            .user_agent
            .clone()
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string());
        let client = guard::client(
            policy.clone(),
            Duration::from_secs(config.fetch.timeout_seconds.max(1)),
            &agent,
        )?;
        Ok(WebFetch {
            client,
            policy,
            max_chars: config.fetch.max_chars,
            max_chars_cap: config.fetch.max_chars_cap,
        })
    }

    /// Fetches `url`: the report for the model, or why not.
    pub async fn fetch(
        &self,
        url: &str,
        markdown: bool,
        max_chars: Option<usize>,
    ) -> Result<String, String> {
        let response = guard::get(&self.client, &self.policy, url).await?;
        let status = response.status();
        let final_url = response.url().to_string();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let html = content_type.contains("html");
        let textual = html
            || content_type.starts_with("text/")
            || content_type.contains("json")
            || content_type.contains("xml")
            || content_type.is_empty();
        if !textual {
            return Err(format!(
                "{final_url} is {content_type}, not a page web_fetch can read"
            ));
        }
        let (body, cut) = read_capped(response, MAX_BODY_BYTES).await?;
        let body = String::from_utf8_lossy(&body);
        let text = if html {
            page_text(&body, markdown)
        } else {
            body.into_owned()
        };
        let limit = max_chars.unwrap_or(self.max_chars).min(self.max_chars_cap);
        let truncated = cut || text.chars().count() > limit;
        let text = infra::channels::truncate_chars(&text, limit);
        Ok(json!({
            "url": url,
            "finalUrl": final_url,
            "status": status.as_u16(),
            "contentType": content_type,
            "truncated": truncated,
            "text": format!(
                "<<<EXTERNAL_UNTRUSTED_CONTENT source={final_url}>>>\n{text}\n<<<END_EXTERNAL_UNTRUSTED_CONTENT>>>"
            ),
        })
        .to_string())
    }
}

/// The page as markdown (or plain text: markdown without its link targets and emphasis).
fn page_text(html: &str, markdown: bool) -> String {
    let converter = htmd::HtmlToMarkdown::builder()
        .skip_tags(SKIPPED.to_vec())
        .build();
    let text = converter.convert(html).unwrap_or_default();
    if markdown {
        return text;
    }
    text.replace(['*', '_', '#', '`'], "")
}

/// At most `max` bytes of the body (the rest is never downloaded), and whether there was more.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        let room = max - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}
