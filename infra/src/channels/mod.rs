//! Chat channels, each on one contract ([`contract`]): inbound verification and parsing for
//! the webhook functions ([`telegram_webhook`], [`slack_events`], [`whatsapp_webhook`],
//! [`discord_inbound`], [`bluebubbles`], [`signal`], [`zalo`], [`googlechat`], [`msteams`],
//! [`matrix`]), outbound clients for the worker ([`telegram`], [`slack`], [`whatsapp`],
//! [`discord`], [`bluebubbles`], [`signal`], [`zalo`], [`googlechat`], [`msteams`],
//! [`matrix_client`]), the bearer-token pieces several share ([`oauth`]), and the chunking
//! replies need.

pub mod bluebubbles;
pub mod contract;
pub mod discord;
pub mod discord_inbound;
pub mod googlechat;
pub mod matrix;
pub mod matrix_client;
pub mod msteams;
pub mod oauth;
pub mod signal;
pub mod slack;
pub mod slack_events;
pub mod telegram;
pub mod telegram_webhook;
pub mod whatsapp;
pub mod whatsapp_webhook;
pub mod zalo;

use std::time::Duration;

pub use contract::{
    wrong_target, ChannelAccount, ChannelSender, Incoming, Parsed, Refusal, WebhookChannel,
    WebhookRequest,
};

/// Why an inbound webhook body was refused. Each is a 4xx with this text as the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("valid JSON, but not an event this endpoint takes: {0}")]
    NotAnEvent(String),
}

/// Why a channel call failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("{channel} API failed (will retry): {message}")]
    Retryable {
        channel: &'static str,
        message: String,
    },
    #[error("{channel} API refused the message: {message}")]
    Permanent {
        channel: &'static str,
        message: String,
    },
    #[error("{channel} is not configured: {message}")]
    NotConfigured {
        channel: &'static str,
        message: String,
    },
}

impl ChannelError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChannelError::Retryable { .. })
    }
}

/// How many times a rate-limited call is repeated after waiting what the channel asked.
pub(crate) const MAX_RATE_LIMIT_WAITS: u32 = 5;
/// The longest rate-limit wait honoured; beyond it the call fails as retryable.
pub(crate) const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);

/// A file to send to a chat (the `message` tool).
#[derive(Debug, Clone)]
pub struct OutboundFile {
    /// The name the chat shows (a plain file name, no directories).
    pub name: String,
    /// Checked against the bytes before sending.
    pub mime: String,
    pub bytes: Vec<u8>,
    pub caption: Option<String>,
}

/// The error for a file over the fetch cap.
pub(crate) fn too_large(channel: &'static str, max_bytes: u64) -> ChannelError {
    ChannelError::Permanent {
        channel,
        message: format!("the file is larger than the {max_bytes}-byte limit"),
    }
}

/// Sends a file request and reads its body capped at `max_bytes` ([`read_capped`]); failing to
/// reach the host is retryable.
pub(crate) async fn fetch_capped(
    channel: &'static str,
    request: reqwest::RequestBuilder,
    max_bytes: u64,
) -> Result<Vec<u8>, ChannelError> {
    let response = request.send().await.map_err(|e| ChannelError::Retryable {
        channel,
        message: format!("file download: {}", e.without_url()),
    })?;
    read_capped(channel, response, max_bytes).await
}

/// Reads a download's body, stopping (and failing) as soon as it passes `max_bytes`: a
/// hostile or mislabelled file never fills memory.
pub(crate) async fn read_capped(
    channel: &'static str,
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, ChannelError> {
    let status = response.status();
    if !status.is_success() {
        let error = format!("file download: HTTP {}", status.as_u16());
        return Err(if status.is_server_error() {
            ChannelError::Retryable {
                channel,
                message: error,
            }
        } else {
            ChannelError::Permanent {
                channel,
                message: error,
            }
        });
    }
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large(channel, max_bytes));
    }
    let mut bytes = Vec::new();
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| ChannelError::Retryable {
            channel,
            message: format!("file download: {}", e.without_url()),
        })?
    {
        if (bytes.len() + piece.len()) as u64 > max_bytes {
            return Err(too_large(channel, max_bytes));
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(bytes)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Splits `text` into chunks of at most `max` characters, preferring line boundaries, then
/// spaces, then a hard cut. Empty text gives no chunks.
pub fn chunk_text(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text.trim_end();
    while !rest.is_empty() {
        if rest.chars().count() <= max {
            chunks.push(rest.to_string());
            break;
        }
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = window
            .rfind('\n')
            .filter(|&i| i > limit / 2)
            .or_else(|| window.rfind(' ').filter(|&i| i > limit / 2))
            .unwrap_or(limit);
        let (head, tail) = rest.split_at(cut);
        chunks.push(head.trim_end().to_string());
        rest = tail.trim_start_matches(['\n', ' ']);
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one HTTP response of `body_len` bytes, chunked (no length to check up front)
    /// when `chunked`.
    async fn serve_once(body_len: usize, chunked: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/f", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let body = vec![b'x'; body_len];
            let head = if chunked {
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n")
            };
            let _ = socket.write_all(head.as_bytes()).await;
            if chunked {
                for piece in body.chunks(1000) {
                    let _ = socket
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await;
                    let _ = socket.write_all(piece).await;
                    let _ = socket.write_all(b"\r\n").await;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            } else {
                let _ = socket.write_all(&body).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn a_download_over_the_cap_is_refused_with_or_without_a_length() {
        let http = reqwest::Client::new();
        for chunked in [false, true] {
            let over = http
                .get(serve_once(5_000, chunked).await)
                .send()
                .await
                .unwrap();
            let under = http
                .get(serve_once(3_000, chunked).await)
                .send()
                .await
                .unwrap();

            let refused = read_capped("test", over, 4_000).await.unwrap_err();
            let read = read_capped("test", under, 4_000).await.unwrap();

            assert!(refused.to_string().contains("4000-byte limit"), "{refused}");
            assert_eq!(read.len(), 3_000);
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(chunk_text("hello\nworld\n", 4096), vec!["hello\nworld"]);
        assert!(chunk_text("  \n", 10).is_empty());
    }

    #[test]
    fn long_text_splits_on_line_boundaries_within_the_limit() {
        let text: String = (0..1000).map(|i| format!("line number {i}\n")).collect();
        let chunks = chunk_text(&text, 4096);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.chars().count() <= 4096);
            assert!(
                c.starts_with("line number") && c.ends_with(|ch: char| ch.is_ascii_digit()),
                "{c:.40}"
            );
        }
        assert_eq!(chunks.join("\n"), text.trim_end());
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_nothing_is_lost() {
        let text = "é".repeat(10_000);
        let chunks = chunk_text(&text, 4096);
        assert_eq!(
            chunks.iter().map(|c| c.chars().count()).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
    }
}
