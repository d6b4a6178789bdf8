//! Opens the queue and store the config names: SQS and DynamoDB through one AWS SDK config, or
//! SQLite files under the state directory. One place, so the worker, the CLI and the gateway
//! cannot disagree about where state lives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, QueueBackend, Secret, StateBackend, GATEWAY_TOKEN_MIN_CHARS};
use crate::queue::sqlite::{DeadLetterPolicy, SqliteQueue};
use crate::queue::sqs::SqsQueue;
use crate::queue::{JobQueue, QueueError};
use crate::store::dynamo::DynamoStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{StateStore, StoreError};

/// The embedded queue's name and its dead-letter queue's.
pub const SQLITE_QUEUE: &str = "jobs";
pub const SQLITE_DEAD_LETTER_QUEUE: &str = "jobs-dlq";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("gateway token file {path}: {message}")]
    Token { path: String, message: String },
}

/// The file under the state directory that holds the gateway token made on first run.
pub const GATEWAY_TOKEN_FILE: &str = "gateway-token";

/// Where the gateway token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `gateway.token` or `CLAWGATE_GATEWAY_TOKEN`.
    Config,
    /// The state directory's token file; `created` when this call made it.
    File { path: PathBuf, created: bool },
}

/// The gateway token, which WebChat and `/hooks/agent` always need: the configured one, else
/// the one in `<state_dir>/gateway-token`, made (32 random bytes, hex, mode `0600`) when
/// missing. Decision: the gateway never runs without a token, even on loopback, because any
/// web page the owner visits can post to `127.0.0.1` (docs/security.md).
pub fn gateway_token(
    config: &Config,
    state_dir: &Path,
) -> Result<(Secret, TokenSource), SetupError> {
    if let Some(token) = &config.gateway.token {
        return Ok((token.clone(), TokenSource::Config));
    }
    let path = state_dir.join(GATEWAY_TOKEN_FILE);
    let fail = |message: String| SetupError::Token {
        path: path.display().to_string(),
        message,
    };
    match read_token_file(&path).map_err(|e| fail(e.to_string()))? {
        Some(token) => Ok((
            token,
            TokenSource::File {
                path,
                created: false,
            },
        )),
        None => {
            use rand::RngCore;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            crate::embedded::private_dir(state_dir).map_err(|e| fail(e.to_string()))?;
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = hex::encode(bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| fail(e.to_string()))?;
            file.write_all(format!("{token}\n").as_bytes())
                .map_err(|e| fail(e.to_string()))?;
            Ok((
                Secret::new(token),
                TokenSource::File {
                    path,
                    created: true,
                },
            ))
        }
    }
}

/// The token a client should send: the configured one, else the state directory's file (never
/// made here).
pub fn client_gateway_token(config: &Config, state_dir: &Path) -> Option<Secret> {
    config.gateway.token.clone().or_else(|| {
        read_token_file(&state_dir.join(GATEWAY_TOKEN_FILE))
            .ok()
            .flatten()
    })
}

fn read_token_file(path: &Path) -> std::io::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            if token.chars().count() < GATEWAY_TOKEN_MIN_CHARS {
                return Err(std::io::Error::other(format!(
                    "the token in it is shorter than {GATEWAY_TOKEN_MIN_CHARS} characters; delete the file to have a new one made"
                )));
            }
            Ok(Some(Secret::new(token)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The queue and store a process works with.
#[derive(Clone)]
pub struct Backends {
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn StateStore>,
    /// The queue's visibility timeout (heartbeats extend by this much).
    pub visibility: Duration,
}

fn under(state_dir: &Path, file: &str) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        state_dir.join(path)
    }
}

pub async fn open_backends(config: &Config, state_dir: &Path) -> Result<Backends, SetupError> {
    let needs_aws =
        config.queue.backend == QueueBackend::Sqs || config.state.backend == StateBackend::Dynamodb;
    let sdk = if needs_aws {
        Some(crate::aws::load_sdk_config().await)
    } else {
        None
    };
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    let queue: Arc<dyn JobQueue> = match config.queue.backend {
        QueueBackend::Sqs => {
            let url = config.queue.url.as_deref().unwrap_or_default();
            Arc::new(
                SqsQueue::connect(sdk.as_ref().expect("loaded for sqs"), url, visibility).await?,
            )
        }
        QueueBackend::Sqlite => Arc::new(SqliteQueue::open(
            &under(state_dir, &config.queue.path),
            SQLITE_QUEUE,
            visibility,
            Some(DeadLetterPolicy {
                queue: SQLITE_DEAD_LETTER_QUEUE.into(),
                max_receives: config.queue.max_receive_count,
            }),
        )?),
    };
    let store: Arc<dyn StateStore> = match config.state.backend {
        StateBackend::Dynamodb => Arc::new(DynamoStore::new(
            sdk.as_ref().expect("loaded for dynamodb"),
            config.state.table.as_deref().unwrap_or_default(),
        )),
        StateBackend::Sqlite => Arc::new(SqliteStore::open(&under(state_dir, &config.state.path))?),
    };
    Ok(Backends {
        queue,
        store,
        visibility,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = Config::default();

        let (first, made) = gateway_token(&config, &state).unwrap();
        let (second, again) = gateway_token(&config, &state).unwrap();
        let file = state.join(GATEWAY_TOKEN_FILE);

        assert!(matches!(made, TokenSource::File { created: true, .. }));
        assert!(matches!(again, TokenSource::File { created: false, .. }));
        assert_eq!(first.expose(), second.expose());
        assert_eq!(first.expose().len(), 64);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            client_gateway_token(&config, &state).unwrap().expose(),
            first.expose()
        );
    }

    #[test]
    fn a_configured_token_wins_and_a_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(GATEWAY_TOKEN_FILE), "short\n").unwrap();
        let mut config = Config::default();

        let refused = gateway_token(&config, dir.path()).unwrap_err();
        config.gateway.token = Some(Secret::new("a-configured-token-of-enough-length"));
        let (token, source) = gateway_token(&config, dir.path()).unwrap();

        assert!(refused.to_string().contains("shorter than"), "{refused}");
        assert!(!refused.to_string().contains("short\n"));
        assert_eq!(source, TokenSource::Config);
        assert_eq!(token.expose(), "a-configured-token-of-enough-length");
    }
}
