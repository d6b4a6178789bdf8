//! The state store contracts, one suite per port (`transcripts`, `jobs`, `senders`,
//! `counters`, `cron`), each run against both adapters: `SqliteStore` always, `DynamoStore`
//! against the emulator at `AWS_ENDPOINT_URL`. A case that passes on one adapter and fails on
//! the other is a bug in that adapter.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use infra::model::{
    Channel, EntryBody, JobStatus, SessionKey, SessionOptions, ThinkLevel, TranscriptEntry,
};
use infra::store::dynamo::DynamoStore;
use infra::store::sqlite::SqliteStore;
use infra::store::{Claim, JobLedger, StateStore, TranscriptStore};

use common::{emulator, unique_name};

const LEASE: Duration = Duration::from_secs(30);

struct Harness {
    store: Arc<dyn StateStore>,
    dynamo: Option<DynamoStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        Harness {
            store: Arc::new(store),
            dynamo: None,
            _dir: Some(dir),
        }
    }

    async fn dynamo() -> Option<Harness> {
        let config = emulator().await?;
        let store = DynamoStore::create_table(&config, &unique_name("cg-state"))
            .await
            .expect("create table on the emulator");
        Some(Harness {
            store: Arc::new(store.clone()),
            dynamo: Some(store),
            _dir: None,
        })
    }

    async fn cleanup(self) {
        if let Some(store) = self.dynamo {
            store.delete_table().await.unwrap();
        }
    }
}

fn user(seq: u64, text: &str) -> TranscriptEntry {
    TranscriptEntry {
        seq,
        at: Utc::now(),
        job_id: Some("01JOB".into()),
        body: EntryBody::User {
            text: text.into(),
            sender: None,
        },
    }
}

fn tool_result(seq: u64, output: String) -> TranscriptEntry {
    TranscriptEntry {
        seq,
        at: Utc::now(),
        job_id: None,
        body: EntryBody::ToolResult {
            call_id: format!("call{seq}"),
            name: "exec".into(),
            output,
            is_error: false,
        },
    }
}

fn dm(peer: &str) -> SessionKey {
    SessionKey::dm("main", Channel::Telegram, peer)
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

/// One `#[tokio::test]` per case per adapter: `sqlite::case` and `dynamo::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::super::Harness::sqlite().await;
                    super::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = super::super::Harness::dynamo().await else { return };
                    super::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

mod counters;
mod cron;
mod jobs;
mod senders;
mod transcripts;

#[tokio::test]
async fn dynamo_unreachable_is_a_retryable_error_naming_the_endpoint() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::for_tests(),
        ))
        .build();
    let store = DynamoStore::new(&config, "clawgate");

    let err = store.claim_job("job", "w", LEASE).await.unwrap_err();

    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("http://127.0.0.1:9"), "{err}");
}

#[tokio::test]
async fn sqlite_state_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .append_transcript(&dm("9"), "main", &user(0, "remember me"))
            .await
            .unwrap();
        store.claim_job("job-1", "w", LEASE).await.unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();

    assert_eq!(
        store.load_transcript_from(&dm("9"), 0).await.unwrap().len(),
        1
    );
    assert!(matches!(
        store.claim_job("job-1", "other", LEASE).await.unwrap(),
        Claim::Busy(_)
    ));
}
