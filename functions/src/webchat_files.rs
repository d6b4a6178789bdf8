//! WebChat files: `POST /webchat/upload` puts a file in the conversation's workspace under
//! `inbound/` (then `POST /webchat/send` names it in `files`), and `GET /webchat/file` reads a
//! file the assistant sent with its `message` tool, for the page's download link.
//!
//! Decisions:
//! - Only a process that shares the workspaces with its workers serves these (`clawgate up`):
//!   the workspace is reached through [`SessionFiles`], which the binary implements with the
//!   worker's own resolver (beneath the workspace, no symlink out). Elsewhere both answer 501.
//! - The upload body is the file itself, `Content-Type: application/octet-stream`, with the
//!   token in the header like every WebChat call: a cross-site page can send neither without a
//!   CORS preflight, which the gateway never answers. Over [`MAX_UPLOAD_BYTES`] is a 413.
//! - The saved name is chosen here (`inbound/up-<id>-<safe name>`); the page's name is only a
//!   hint, and `send` takes only paths of that shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use infra::model::{MediaKind, MediaRef, MediaSource, SessionKey};
use serde::Deserialize;
use serde_json::json;

use crate::webchat::{check_request, refuse, session_key, valid_conversation, WebChat};

/// The largest upload (Telegram's and the default `mediaMaxMb`).
pub const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;

/// The conversations' workspaces, as the worker sees them.
pub trait SessionFiles: Send + Sync {
    /// Saves an upload under `inbound/`; returns its path in the workspace.
    fn save_upload(&self, session: &SessionKey, name: &str, bytes: &[u8])
        -> Result<String, String>;
    /// Reads a workspace file of at most `max` bytes.
    fn read(&self, session: &SessionKey, path: &str, max: u64) -> Result<Vec<u8>, String>;
}

/// A file `send` attaches: a path an upload returned.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachedFile {
    pub path: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime: Option<String>,
}

impl AttachedFile {
    /// The media reference for the job, when `path` is one an upload made.
    pub fn media(&self) -> Option<MediaRef> {
        let rest = self.path.strip_prefix("inbound/up-")?;
        let safe = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !rest.contains("..");
        let mime = self
            .mime
            .clone()
            .filter(|m| m.len() <= 100 && m.contains('/'));
        safe.then(|| MediaRef {
            kind: mime
                .as_deref()
                .map_or(MediaKind::Document, MediaKind::from_mime),
            source: MediaSource::Workspace {
                path: self.path.clone(),
            },
            name: self.name.clone().map(|n| n.chars().take(200).collect()),
            mime,
            size: None,
        })
    }
}

#[derive(Deserialize)]
pub struct FileQuery {
    conversation: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

fn not_served() -> Response {
    refuse(
        StatusCode::NOT_IMPLEMENTED,
        "files need a gateway that shares the workspaces with its workers (clawgate up)",
    )
}

#[allow(clippy::result_large_err)] // the refusal is the response itself, built once (as webchat's)
fn read_query(
    webchat: &WebChat,
    headers: &HeaderMap,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(SessionKey, FileQuery, Arc<dyn SessionFiles>), Response> {
    if let Some(refused) = check_request(webchat, headers, false) {
        return Err(refused);
    }
    let Some(files) = webchat.files.clone() else {
        return Err(not_served());
    };
    let Ok(Query(query)) = query else {
        return Err(refuse(StatusCode::BAD_REQUEST, "expected ?conversation=ID"));
    };
    if !valid_conversation(&query.conversation) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "conversation must be 1-64 characters of A-Z a-z 0-9 _ -",
        ));
    }
    Ok((session_key(webchat, &query.conversation), query, files))
}

/// `POST /webchat/upload?conversation=C&name=N`: the body is the file.
pub async fn upload(
    State(webchat): State<Arc<WebChat>>,
    headers: HeaderMap,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let (key, query, files) = match read_query(&webchat, &headers, query) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let octets = crate::header_text(&headers, axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t == "application/octet-stream");
    if !octets {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an upload is the file itself, Content-Type: application/octet-stream",
        );
    }
    if body.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "the file is empty");
    }
    let name = query.name.unwrap_or_default();
    match files.save_upload(&key, &name, &body) {
        Ok(path) => (
            StatusCode::CREATED,
            axum::Json(json!({ "path": path, "bytes": body.len() })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "webchat: upload not saved");
            refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("not saved: {e}"))
        }
    }
}

/// `GET /webchat/file?conversation=C&path=P`: a workspace file, as an attachment.
pub async fn file(
    State(webchat): State<Arc<WebChat>>,
    headers: HeaderMap,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (key, query, files) = match read_query(&webchat, &headers, query) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let Some(path) = query.path.filter(|p| !p.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "expected &path=…");
    };
    match files.read(&key, &path, MAX_UPLOAD_BYTES as u64) {
        Ok(bytes) => (
            [
                (axum::http::header::CONTENT_TYPE, "application/octet-stream"),
                (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => refuse(StatusCode::NOT_FOUND, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attached(path: &str) -> AttachedFile {
        AttachedFile {
            path: path.into(),
            name: Some("cat.png".into()),
            mime: Some("image/png".into()),
        }
    }

    #[test]
    fn send_takes_only_paths_an_upload_made() {
        let media = attached("inbound/up-01jx-cat.png").media().unwrap();
        assert_eq!(media.kind, MediaKind::Image);
        assert_eq!(
            media.source,
            MediaSource::Workspace {
                path: "inbound/up-01jx-cat.png".into()
            }
        );
        for path in [
            "inbound/up-",
            "inbound/up-../../etc/passwd",
            "inbound/up-a/b",
            "notes/secret.txt",
            "/etc/passwd",
            "inbound/up-..",
        ] {
            assert!(attached(path).media().is_none(), "{path}");
        }
    }
}
