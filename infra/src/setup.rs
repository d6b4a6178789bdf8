//! Opens the queue and store the config names: SQS and DynamoDB through one AWS SDK config, or
//! SQLite files under the state directory. One place, so the worker, the CLI and the gateway
//! cannot disagree about where state lives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, QueueBackend, StateBackend};
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
