//! A job's store cost against the length of its session's history
//! (`cargo bench -p infra --bench transcript_cost`): the store calls one job makes (claim,
//! rate counters, read the transcript, four appends, a chunk mark, finish) on a session of 10
//! entries (a fresh one for each job) and on one of 10,000 entries whose older part a
//! compaction summarised (after each job a new summary keeps its tail at 10 entries, as the
//! agent's compaction would), interleaved A B A B. Reports items read and store time per job (p50, p99) on SQLite and, when
//! `AWS_ENDPOINT_URL` is set, DynamoDB on the emulator; and, for contrast, what reading the
//! whole history (what a job did before issue 12) costs on the long session.
//!
//! Target (issue 12): the long session within 1.2× of the short one. Numbers go in
//! docs/benchmarks.md.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use infra::model::{Channel, EntryBody, SessionKey, ToolCall, Transcript, TranscriptEntry};
use infra::store::dynamo::DynamoStore;
use infra::store::sqlite::SqliteStore;
use infra::store::StateStore;
use support::{cores, Latencies};

const JOBS: usize = 40;
const LONG: u64 = 10_000;
const SHORT: u64 = 10;

fn entry(seq: u64, body: EntryBody) -> TranscriptEntry {
    TranscriptEntry {
        seq,
        at: Utc::now(),
        job_id: None,
        body,
    }
}

fn user(seq: u64) -> EntryBody {
    EntryBody::User {
        text: format!("message {seq}: please look at the notes and tell me what is left"),
        sender: None,
    }
}

/// Entry `seq` of a seeded session: chat, and the summary at `summary_at`, which covers all
/// but the few entries before it, as the agent loop writes one.
fn body_at(seq: u64, summary_at: Option<u64>) -> EntryBody {
    if Some(seq) == summary_at {
        EntryBody::Summary {
            text: "the user is planning a trip; notes are in notes/trip.md".into(),
            through_seq: seq - 3,
        }
    } else if seq % 2 == 0 {
        user(seq)
    } else {
        EntryBody::Assistant {
            text: Some(format!("reply {seq}: two items are left on the list")),
            tool_calls: vec![],
            model: None,
            usage: None,
            reasoning: vec![],
        }
    }
}

/// `n` entries of ordinary chat; past 20 entries, a compaction summary 8 entries from the end
/// stands for everything before it, as the agent loop writes one.
async fn seed(store: &dyn StateStore, key: &SessionKey, n: u64) {
    let summary_at = (n > 20).then(|| n - 8);
    for seq in 0..n {
        let body = body_at(seq, summary_at);
        store
            .append_transcript(key, "main", &entry(seq, body))
            .await
            .unwrap();
    }
}

/// The store calls of one job with one tool call: items read, and the time they took.
async fn one_job(store: &dyn StateStore, key: &SessionKey, job: &str) -> (usize, Duration) {
    let started = Instant::now();
    store
        .claim_job(job, "bench", Duration::from_secs(60))
        .await
        .unwrap();
    for counter in ["sender:bench", "session:bench"] {
        store
            .add(counter, Duration::from_secs(60), 1)
            .await
            .unwrap();
    }
    let mut transcript: Transcript = store.load_context(key).await.unwrap();
    let items_read = transcript.entries.len() + 1; // the entries and the session record
    let call = ToolCall {
        id: format!("call-{job}"),
        name: "exec".into(),
        input: serde_json::json!({"command": "ls notes"}),
    };
    let steps = [
        user(transcript.next_seq),
        EntryBody::Assistant {
            text: None,
            tool_calls: vec![call.clone()],
            model: None,
            usage: None,
            reasoning: vec![],
        },
        EntryBody::ToolResult {
            call_id: call.id,
            name: "exec".into(),
            output: "{\"stdout\":\"trip.md\\n\",\"exit_code\":0}".into(),
            is_error: false,
        },
        EntryBody::Assistant {
            text: Some("the notes are in trip.md".into()),
            tool_calls: vec![],
            model: None,
            usage: None,
            reasoning: vec![],
        },
    ];
    store
        .add("tools:bench", Duration::from_secs(3600), 1)
        .await
        .unwrap();
    for body in steps {
        let next = transcript.next_entry(Some(job), body);
        let stored = store.append_transcript(key, "main", &next).await.unwrap();
        transcript.push(stored);
    }
    store.mark_chunk_sent(job, "bench", 0).await.unwrap();
    store
        .finish_job(job, "bench", infra::model::JobStatus::Done, None, None)
        .await
        .unwrap();
    (items_read, started.elapsed())
}

/// What the agent's compaction does once a context grows: a summary standing for everything
/// but the last `keep` entries (not timed: it belongs to the model call that wrote it).
async fn compact(store: &dyn StateStore, key: &SessionKey, keep: u64) {
    let next = store.get_session(key).await.unwrap().unwrap().next_seq;
    let summary = EntryBody::Summary {
        text: "the user is planning a trip; notes are in notes/trip.md".into(),
        through_seq: next - keep - 1,
    };
    store
        .append_transcript(key, "main", &entry(next, summary))
        .await
        .unwrap();
}

/// How the long session is written before timing starts.
enum Seeding {
    /// Append by append, through the port.
    Appends,
    /// In bulk with `BatchWriteItem` in the adapter's item layout (docs/architecture.md §3),
    /// the last entry through the port: moto takes about as long per append as the whole rest
    /// of the run, so 10,000 single appends would take it most of an hour.
    DynamoBulk(Box<(aws_config::SdkConfig, String)>),
}

async fn seed_bulk(
    store: &dyn StateStore,
    sdk: &aws_config::SdkConfig,
    table: &str,
    key: &SessionKey,
    n: u64,
) {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let pk = format!("SESSION#{key}");
    let s = |v: String| AttributeValue::S(v);
    let summary_at = n - 8;
    let mut last = None;
    let mut requests = Vec::new();
    for seq in 0..n {
        let body = body_at(seq, Some(summary_at));
        if seq == n - 1 {
            last = Some(entry(seq, body));
            break;
        }
        let item = [
            ("pk".to_string(), s(pk.clone())),
            ("sk".to_string(), s(format!("MSG#{seq:012}"))),
            (
                "body".to_string(),
                s(serde_json::to_string(&entry(seq, body)).unwrap()),
            ),
        ];
        requests.push(
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item.into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        );
    }
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let meta = [
        ("pk".to_string(), s(pk.clone())),
        ("sk".to_string(), s("META".into())),
        (
            "next_seq".to_string(),
            AttributeValue::N((n - 1).to_string()),
        ),
        (
            "context_from_seq".to_string(),
            AttributeValue::N((summary_at - 2).to_string()),
        ),
        ("agent".to_string(), s("main".into())),
        ("session_key".to_string(), s(key.to_string())),
        ("created_ms".to_string(), AttributeValue::N(now.clone())),
        ("last_active_ms".to_string(), AttributeValue::N(now)),
    ];
    requests.push(
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(meta.into()))
                    .build()
                    .unwrap(),
            )
            .build(),
    );
    for batch in requests.chunks(25) {
        let mut pending = Some(std::collections::HashMap::from([(
            table.to_string(),
            batch.to_vec(),
        )]));
        while let Some(items) = pending.take().filter(|p| !p.is_empty()) {
            let out = client
                .batch_write_item()
                .set_request_items(Some(items))
                .send()
                .await
                .unwrap();
            pending = out.unprocessed_items;
        }
    }
    store
        .append_transcript(key, "main", &last.expect("n ≥ 1"))
        .await
        .unwrap();
}

async fn compare(label: &str, store: Arc<dyn StateStore>, seeding_by: Seeding) {
    let long = SessionKey::dm("main", Channel::Telegram, "long");
    let seeding = Instant::now();
    match &seeding_by {
        Seeding::Appends => seed(store.as_ref(), &long, LONG).await,
        Seeding::DynamoBulk(bulk) => {
            let (sdk, table) = bulk.as_ref();
            seed_bulk(store.as_ref(), sdk, table, &long, LONG).await
        }
    }
    eprintln!(
        "{label}: seeded in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let (mut short_time, mut long_time) = (Latencies::new(), Latencies::new());
    let (mut short_items, mut long_items) = (0, 0);
    for i in 0..JOBS {
        // Interleaved, so drift in the machine or the emulator hits both alike. Each short job
        // gets a fresh 10-entry session; the long one is compacted back to a 10-entry tail.
        let short = SessionKey::dm("main", Channel::Telegram, &format!("short-{i}"));
        seed(store.as_ref(), &short, SHORT).await;
        let (items, time) = one_job(store.as_ref(), &short, &format!("short-{i}")).await;
        short_time.record(time);
        short_items += items;
        let (items, time) = one_job(store.as_ref(), &long, &format!("long-{i}")).await;
        long_time.record(time);
        long_items += items;
        compact(store.as_ref(), &long, 9).await;
    }
    let mut whole = Latencies::new();
    let mut whole_items = 0;
    for _ in 0..5 {
        let started = Instant::now();
        whole_items = store.load_transcript_from(&long, 0).await.unwrap().len() + 1;
        whole.record(started.elapsed());
    }
    let ratio = long_time.median_ns() as f64 / short_time.median_ns() as f64;
    println!(
        "| {label} | {:.1} | {} / {} µs | {:.1} | {} / {} µs | {ratio:.2} | {whole_items} items, {} µs |",
        short_items as f64 / JOBS as f64,
        short_time.median_us(),
        short_time.p99_us(),
        long_items as f64 / JOBS as f64,
        long_time.median_us(),
        long_time.p99_us(),
        whole.median_us(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "# transcript_cost on {} cores, {JOBS} jobs per session, interleaved",
        cores()
    );
    println!("| store | 10-entry session: items read / job | store time / job p50 / p99 | 10,000-entry session: items read / job | store time / job p50 / p99 | ratio (p50) | reading the whole 10,000 (before) |");
    println!("|---|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    compare("SQLite", Arc::new(sqlite), Seeding::Appends).await;
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        let sdk = infra::aws::load_sdk_config().await;
        let name = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
        let table = DynamoStore::create_table(&sdk, &name).await.unwrap();
        let bulk = Seeding::DynamoBulk(Box::new((sdk.clone(), table.table().to_string())));
        compare("DynamoDB (moto)", Arc::new(table.clone()), bulk).await;
        table.delete_table().await.unwrap();
    } else {
        println!("(DynamoDB row skipped: AWS_ENDPOINT_URL is not set)");
    }
}
