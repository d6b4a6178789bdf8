//! Embedded adapter benchmarks (`cargo bench -p infra --bench sqlite_ports`):
//! - SQLite queue: send + receive + ack throughput, one producer and two consumers, WAL file.
//! - SQLite store: transcript append latency, p50 and p99.
//!
//! Targets (issue 2): queue ≥ 2,000 jobs/s; append p50 ≤ 1 ms. Numbers go in docs/benchmarks.md.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use infra::model::{Channel, EntryBody, SessionKey, TranscriptEntry};
use infra::queue::sqlite::SqliteQueue;
use infra::queue::JobQueue;
use infra::store::sqlite::SqliteStore;
use infra::store::TranscriptStore;
use support::{cores, Latencies};

const JOBS: usize = 20_000;
const APPENDS: u64 = 5_000;
const SESSIONS: u64 = 50;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    println!("# sqlite_ports on {} cores", cores());
    let dir = tempfile::tempdir().unwrap();
    queue_throughput(&dir.path().join("queue.db")).await;
    append_latency(&dir.path().join("state.db")).await;
}

async fn queue_throughput(path: &std::path::Path) {
    let queue = Arc::new(SqliteQueue::open(path, "jobs", Duration::from_secs(60), None).unwrap());
    let body = include_str!("../fixtures/job_v1.json").replace('\n', "");
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let producer = {
        let (queue, body) = (queue.clone(), body.clone());
        tokio::spawn(async move {
            for i in 0..JOBS {
                // 500 sessions: groups interleave as they would with many chats.
                let group = format!("agent:main:telegram:dm:{}", i % 500);
                queue
                    .send_raw(&body, &group, &format!("event-{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, done) = (queue.clone(), done.clone());
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < JOBS {
                    for d in queue.receive(10, Duration::from_millis(100)).await.unwrap() {
                        queue.ack(&d.receipt).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    producer.await.unwrap();
    for c in consumers {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "sqlite queue: {JOBS} jobs sent+received+acked in {:.2} s = {:.0} jobs/s (WAL, synchronous=NORMAL, 1 producer, 2 consumers, batches of 10)",
        elapsed.as_secs_f64(),
        JOBS as f64 / elapsed.as_secs_f64()
    );
}

async fn append_latency(path: &std::path::Path) {
    let store = SqliteStore::open(path).unwrap();
    let text = "a typical chat message of a few dozen words, ".repeat(8);
    let mut latencies = Latencies::new();
    for i in 0..APPENDS {
        let key = SessionKey::dm("main", Channel::Telegram, &format!("{}", i % SESSIONS));
        let entry = TranscriptEntry {
            seq: i / SESSIONS,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::User {
                text: text.clone(),
                sender: None,
            },
        };
        let started = Instant::now();
        store.append_transcript(&key, "main", &entry).await.unwrap();
        latencies.record(started.elapsed());
    }
    println!(
        "sqlite store transcript append ({} B entries): {}",
        text.len(),
        latencies.summary()
    );
}
