//! The `JobQueue` contract, run against both adapters: `SqliteQueue` always, `SqsQueue` against
//! the emulator at `AWS_ENDPOINT_URL`. A case that passes on one adapter and fails on the other
//! is a bug in that adapter.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::model::{JobMessage, MAX_JOB_MESSAGE_BYTES};
use infra::queue::sqlite::{DeadLetterPolicy, SqliteQueue};
use infra::queue::sqs::SqsQueue;
use infra::queue::{admin, group_token, JobQueue, JobQueueExt, QueueDepth, QueueError};

use common::{emulator, sample_job, unique_name};

/// SQS visibility is whole seconds, so the suite uses the smallest: one.
const VISIBILITY: Duration = Duration::from_secs(1);
const MAX_RECEIVES: u32 = 3;
const SHORT: Duration = Duration::from_millis(200);

/// A queue, its dead-letter queue, and whatever must be cleaned up after the case.
struct Harness {
    queue: Arc<dyn JobQueue>,
    dlq: Arc<dyn JobQueue>,
    sqs: Option<SqsQueue>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let queue = SqliteQueue::open(
            &dir.path().join("queue.db"),
            "jobs",
            VISIBILITY,
            Some(DeadLetterPolicy {
                queue: "jobs-dlq".into(),
                max_receives: MAX_RECEIVES,
            }),
        )
        .unwrap();
        let dlq = queue.dead_letters().unwrap();
        Harness {
            queue: Arc::new(queue),
            dlq: Arc::from(dlq),
            sqs: None,
            _dir: Some(dir),
        }
    }

    async fn sqs() -> Option<Harness> {
        let config = emulator().await?;
        let queue = SqsQueue::create_fifo(&config, &unique_name("cg-q"), MAX_RECEIVES, VISIBILITY)
            .await
            .expect("create queue on the emulator");
        // Connect afresh, as a worker would: the DLQ must be found from the redrive policy.
        let queue = SqsQueue::connect(&config, queue.url(), VISIBILITY)
            .await
            .unwrap();
        let dlq = queue.dead_letters().expect("redrive policy names a DLQ");
        Some(Harness {
            queue: Arc::new(queue.clone()),
            dlq: Arc::from(dlq),
            sqs: Some(queue),
            _dir: None,
        })
    }

    async fn cleanup(self) {
        if let Some(q) = self.sqs {
            q.delete_with_dead_letter_queue().await.unwrap();
        }
    }

    async fn drain(&self, n: usize, within: Duration) -> Vec<infra::queue::Delivery> {
        drain(&*self.queue, n, within).await
    }

    /// Receives `n` messages and keeps them in flight.
    async fn drain_without_ack(&self, n: usize) -> Vec<infra::queue::Delivery> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(
                self.queue
                    .receive(n - got.len(), Duration::from_secs(2))
                    .await
                    .unwrap(),
            );
        }
        got
    }
}

/// Receives and acks until `n` messages came or `within` passed. Acking matters: an unacked
/// message comes back after the one-second visibility and would be counted twice.
async fn drain(q: &dyn JobQueue, n: usize, within: Duration) -> Vec<infra::queue::Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        for d in q
            .receive(n - got.len(), Duration::from_secs(1))
            .await
            .unwrap()
        {
            q.ack(&d.receipt).await.unwrap();
            got.push(d);
        }
    }
    got
}

mod cases {
    use super::*;

    pub async fn delivers_a_sent_job_with_its_fields(h: &Harness) {
        let job = sample_job("100", "1");
        h.queue.send(&job).await.unwrap();

        let got = h
            .queue
            .receive_jobs(10, Duration::from_secs(2))
            .await
            .unwrap();

        assert_eq!(got.len(), 1);
        assert_eq!(got[0].job, job);
        assert_eq!(got[0].delivery.receive_count, 1);
        assert_eq!(got[0].delivery.group, group_token(&job.session_key));
        assert!(!got[0].delivery.receipt.is_empty());
    }

    pub async fn drops_a_duplicate_within_the_dedup_window(h: &Harness) {
        let first = sample_job("100", "same-event");
        let retry = sample_job("100", "same-event");
        h.queue.send(&first).await.unwrap();
        h.queue.send(&retry).await.unwrap();

        let got = h.drain(2, Duration::from_secs(2)).await;

        assert_eq!(got.len(), 1, "the retry must not be delivered");
        assert_eq!(
            JobMessage::decode(&got[0].body).unwrap().job_id,
            first.job_id
        );
    }

    pub async fn two_consumers_on_one_group_get_its_messages_in_order_one_at_a_time(h: &Harness) {
        let (m1, m2) = (sample_job("7", "a"), sample_job("7", "b"));
        h.queue.send(&m1).await.unwrap();
        h.queue.send(&m2).await.unwrap();

        let first = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();
        let second_consumer = h.queue.receive(10, SHORT).await.unwrap();
        h.queue.ack(&first[0].receipt).await.unwrap();
        let after_ack = h.drain(1, Duration::from_secs(2)).await;

        assert_eq!(
            JobMessage::decode(&first[0].body).unwrap().job_id,
            m1.job_id
        );
        assert!(
            second_consumer.is_empty(),
            "group is blocked while m1 is in flight"
        );
        assert_eq!(
            JobMessage::decode(&after_ack[0].body).unwrap().job_id,
            m2.job_id
        );
    }

    pub async fn different_groups_are_served_in_parallel(h: &Harness) {
        h.queue.send(&sample_job("1", "x")).await.unwrap();
        h.queue.send(&sample_job("2", "y")).await.unwrap();

        let a = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();
        let b = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();

        assert_eq!((a.len(), b.len()), (1, 1));
        assert_ne!(a[0].group, b[0].group);
    }

    pub async fn redelivers_after_the_visibility_timeout_with_a_higher_receive_count(h: &Harness) {
        h.queue.send(&sample_job("3", "v")).await.unwrap();
        let first = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();

        let hidden = h.queue.receive(1, Duration::ZERO).await.unwrap();
        tokio::time::sleep(VISIBILITY + Duration::from_millis(300)).await;
        let again = h.drain(1, Duration::from_secs(3)).await;

        assert!(hidden.is_empty());
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_eq!(again[0].receive_count, 2);
        assert_ne!(again[0].receipt, first[0].receipt);
    }

    pub async fn extend_keeps_a_message_invisible_past_its_timeout(h: &Harness) {
        h.queue.send(&sample_job("4", "e")).await.unwrap();
        let got = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();

        h.queue
            .extend(&got[0].receipt, Duration::from_secs(4))
            .await
            .unwrap();
        tokio::time::sleep(VISIBILITY + Duration::from_millis(500)).await;
        let during = h.queue.receive(1, Duration::ZERO).await.unwrap();

        assert!(during.is_empty(), "the heartbeat must keep it hidden");
    }

    pub async fn release_makes_a_message_visible_at_once(h: &Harness) {
        h.queue.send(&sample_job("5", "r")).await.unwrap();
        let got = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();

        h.queue.release(&got[0].receipt).await.unwrap();
        let again = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();

        assert_eq!(again[0].message_id, got[0].message_id);
        assert_eq!(again[0].receive_count, 2);
    }

    pub async fn ack_deletes_for_good_and_is_idempotent(h: &Harness) {
        h.queue.send(&sample_job("6", "k")).await.unwrap();
        let got = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();

        h.queue.ack(&got[0].receipt).await.unwrap();
        h.queue.ack(&got[0].receipt).await.unwrap();
        tokio::time::sleep(VISIBILITY + Duration::from_millis(300)).await;
        let after = h.queue.receive(1, SHORT).await.unwrap();

        assert!(after.is_empty());
    }

    pub async fn dead_letters_a_message_received_too_often(h: &Harness) {
        let poison = sample_job("8", "p");
        h.queue.send(&poison).await.unwrap();
        for attempt in 1..=MAX_RECEIVES {
            let got = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();
            assert_eq!(got[0].receive_count, attempt);
            h.queue.release(&got[0].receipt).await.unwrap();
        }
        h.queue.send(&sample_job("9", "healthy")).await.unwrap();

        let next = h.drain(2, Duration::from_secs(2)).await;
        let dead = drain(&*h.dlq, 1, Duration::from_secs(3)).await;

        assert_eq!(next.len(), 1, "only the healthy job is delivered");
        assert_eq!(
            JobMessage::decode(&next[0].body)
                .unwrap()
                .session_key
                .to_string(),
            "agent:main:telegram:dm:9"
        );
        assert_eq!(dead.len(), 1);
        assert_eq!(JobMessage::decode(&dead[0].body).unwrap(), poison);
    }

    pub async fn undecodable_messages_are_dead_lettered_with_the_reason(h: &Harness) {
        h.queue
            .send_raw("not json at all", "g-bad", "bad-1")
            .await
            .unwrap();
        let newer = include_str!("../fixtures/job_v2.json");
        h.queue.send_raw(newer, "g-new", "bad-2").await.unwrap();
        let good = sample_job("10", "good");
        h.queue.send(&good).await.unwrap();

        let mut jobs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while jobs.is_empty() && Instant::now() < deadline {
            jobs.extend(
                h.queue
                    .receive_jobs(10, Duration::from_secs(1))
                    .await
                    .unwrap(),
            );
        }
        let dead = drain(&*h.dlq, 2, Duration::from_secs(3)).await;

        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].job, good);
        let mut reasons: Vec<String> = dead
            .iter()
            .map(|d| d.dead_letter_reason.clone().unwrap_or_default())
            .collect();
        reasons.sort();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
        assert!(reasons[1].contains("version 2 is newer"), "{reasons:?}");
        let bodies: HashSet<&str> = dead.iter().map(|d| d.body.as_str()).collect();
        assert!(
            bodies.contains("not json at all"),
            "the body is kept for inspection"
        );
    }

    pub async fn long_poll_returns_as_soon_as_a_message_arrives(h: &Harness) {
        let queue = h.queue.clone();
        let started = Instant::now();
        let waiter = tokio::spawn(async move { queue.receive(1, Duration::from_secs(15)).await });
        tokio::time::sleep(Duration::from_millis(300)).await;

        h.queue.send(&sample_job("11", "late")).await.unwrap();
        let got = waiter.await.unwrap().unwrap();

        assert_eq!(got.len(), 1);
        // Generous bound: the point is "not the full 15 s", not a latency target.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }

    pub async fn racing_consumers_never_share_a_message(h: &Harness) {
        let sent: HashSet<String> = {
            let mut ids = HashSet::new();
            for i in 0..20 {
                let job = sample_job(&format!("race{i}"), &format!("race{i}"));
                h.queue.send(&job).await.unwrap();
                ids.insert(job.job_id);
            }
            ids
        };

        let consume = |queue: Arc<dyn JobQueue>| async move {
            let mut mine = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let got = queue
                    .receive_jobs(3, Duration::from_millis(500))
                    .await
                    .unwrap();
                if got.is_empty() && !mine.is_empty() {
                    break;
                }
                for d in got {
                    queue.ack(&d.delivery.receipt).await.unwrap();
                    mine.push(d.job.job_id);
                }
            }
            mine
        };
        let (a, b) = tokio::join!(consume(h.queue.clone()), consume(h.queue.clone()));

        let all: Vec<String> = a.iter().chain(&b).cloned().collect();
        let unique: HashSet<String> = all.iter().cloned().collect();
        assert_eq!(all.len(), unique.len(), "a message went to both consumers");
        assert_eq!(unique, sent);
    }

    /// A worker's view of a burst: several chats send five messages each at once, and the
    /// consumer holds each batch in flight (as running jobs) while it receives the next one.
    pub async fn bursts_into_many_groups_keep_order_without_overlap(h: &Harness) {
        const GROUPS: usize = 20;
        const PER_GROUP: usize = 5;
        for i in 0..PER_GROUP {
            for g in 0..GROUPS {
                let mut job = sample_job(&format!("burst{g}"), &format!("burst{g}-{i}"));
                job.inbound.text = i.to_string();
                h.queue.send(&job).await.unwrap();
            }
        }
        let mut order: std::collections::HashMap<String, Vec<usize>> = Default::default();
        let mut ids = HashSet::new();
        let mut in_flight: Vec<infra::queue::JobDelivery> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while ids.len() < GROUPS * PER_GROUP && Instant::now() < deadline {
            let batch = h.queue.receive_jobs(10, SHORT).await.unwrap();
            for d in &batch {
                assert!(
                    !in_flight
                        .iter()
                        .any(|f| f.delivery.group == d.delivery.group),
                    "{} was handed out while a message of its group was in flight",
                    d.job.session_key
                );
                // Held while the earlier batch finishes: keep it invisible meanwhile.
                h.queue
                    .extend(&d.delivery.receipt, Duration::from_secs(30))
                    .await
                    .unwrap();
            }
            // The earlier batch finishes, each group's messages in the order received.
            for d in in_flight.drain(..) {
                h.queue.ack(&d.delivery.receipt).await.unwrap();
                assert!(ids.insert(d.job.job_id.clone()), "delivered twice");
                order
                    .entry(d.job.session_key.to_string())
                    .or_default()
                    .push(d.job.inbound.text.parse().unwrap());
            }
            in_flight = batch;
        }
        for d in in_flight {
            h.queue.ack(&d.delivery.receipt).await.unwrap();
            ids.insert(d.job.job_id.clone());
            order
                .entry(d.job.session_key.to_string())
                .or_default()
                .push(d.job.inbound.text.parse().unwrap());
        }

        assert_eq!(ids.len(), GROUPS * PER_GROUP, "nothing is lost");
        assert_eq!(order.len(), GROUPS);
        for (group, seen) in order {
            assert_eq!(
                seen,
                (0..PER_GROUP).collect::<Vec<_>>(),
                "{group} out of order"
            );
        }
    }

    pub async fn depth_counts_waiting_in_flight_and_dead_letters(h: &Harness) {
        for peer in ["20", "21", "22"] {
            h.queue.send(&sample_job(peer, peer)).await.unwrap();
        }
        let empty_dlq = h.dlq.depth().await.unwrap();

        let got = h.queue.receive(1, Duration::from_secs(2)).await.unwrap();
        let while_running = h.queue.depth().await.unwrap();
        h.queue.dead_letter(&got[0], "operator test").await.unwrap();
        let after = h.queue.depth().await.unwrap();
        let dead = h.dlq.depth().await.unwrap();

        assert_eq!(empty_dlq, QueueDepth::default());
        assert_eq!((while_running.waiting, while_running.in_flight), (2, 1));
        assert_eq!((after.waiting, after.in_flight), (2, 0));
        assert_eq!((dead.waiting, dead.in_flight), (1, 0));
        assert!(
            h.dlq.dead_letters().is_none(),
            "a dead-letter queue has none of its own"
        );
    }

    pub async fn dead_letters_are_listed_redriven_and_discarded(h: &Harness) {
        let (stuck, junk) = (sample_job("30", "stuck"), sample_job("31", "junk"));
        h.queue.send(&stuck).await.unwrap();
        h.queue.send(&junk).await.unwrap();
        for d in h.drain_without_ack(2).await {
            h.queue.dead_letter(&d, "model kept failing").await.unwrap();
        }

        let listed = admin::list_dead_letters(&*h.queue, 10).await.unwrap();
        let id_of = |job: &JobMessage| {
            listed
                .iter()
                .find(|l| l.job_id.as_deref() == Some(job.job_id.as_str()))
                .map(|l| l.message_id.clone())
                .unwrap_or_else(|| panic!("{listed:?}"))
        };
        let (stuck_id, junk_id) = (id_of(&stuck), id_of(&junk));
        admin::redrive(&*h.queue, &stuck_id).await.unwrap();
        admin::discard(&*h.queue, &junk_id).await.unwrap();
        let again = admin::discard(&*h.queue, &junk_id).await;
        let back = h.drain(1, Duration::from_secs(3)).await;
        let left = h.dlq.depth().await.unwrap();

        assert_eq!(listed.len(), 2);
        assert!(listed
            .iter()
            .all(|l| l.reason.as_deref() == Some("model kept failing")));
        assert_eq!(
            listed[0]
                .session_key
                .as_deref()
                .map(|k| k.starts_with("agent:main:telegram:dm:3")),
            Some(true)
        );
        assert_eq!(back.len(), 1);
        assert_eq!(JobMessage::decode(&back[0].body).unwrap(), stuck);
        assert!(
            matches!(again, Err(admin::AdminError::NotFound(_))),
            "{again:?}"
        );
        assert_eq!(left, QueueDepth::default());
    }

    pub async fn an_oversized_job_is_refused_and_nothing_is_queued(h: &Harness) {
        let mut job = sample_job("12", "big");
        job.inbound.text = "x".repeat(MAX_JOB_MESSAGE_BYTES);

        let err = h.queue.send(&job).await.unwrap_err();
        let after = h.queue.receive(1, SHORT).await.unwrap();

        assert!(matches!(err, QueueError::Rejected(_)), "{err}");
        assert!(!err.is_retryable());
        assert!(after.is_empty());
    }
}

/// One `#[tokio::test]` per case per adapter: `sqlite::case` and `sqs::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::Harness::sqlite().await;
                    super::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
        mod sqs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = super::Harness::sqs().await else { return };
                    super::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    bursts_into_many_groups_keep_order_without_overlap,
    delivers_a_sent_job_with_its_fields,
    drops_a_duplicate_within_the_dedup_window,
    two_consumers_on_one_group_get_its_messages_in_order_one_at_a_time,
    different_groups_are_served_in_parallel,
    redelivers_after_the_visibility_timeout_with_a_higher_receive_count,
    extend_keeps_a_message_invisible_past_its_timeout,
    release_makes_a_message_visible_at_once,
    ack_deletes_for_good_and_is_idempotent,
    dead_letters_a_message_received_too_often,
    undecodable_messages_are_dead_lettered_with_the_reason,
    long_poll_returns_as_soon_as_a_message_arrives,
    racing_consumers_never_share_a_message,
    an_oversized_job_is_refused_and_nothing_is_queued,
    depth_counts_waiting_in_flight_and_dead_letters,
    dead_letters_are_listed_redriven_and_discarded,
);

#[tokio::test]
async fn sqs_unreachable_is_a_retryable_error_naming_the_endpoint() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::for_tests(),
        ))
        .build();

    let err = SqsQueue::connect(
        &config,
        "http://127.0.0.1:9/000000000000/q.fifo",
        VISIBILITY,
    )
    .await
    .unwrap_err();

    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("http://127.0.0.1:9"), "{err}");
}

#[tokio::test]
async fn sqlite_queue_in_an_unwritable_place_names_the_file() {
    let err = match SqliteQueue::open(
        std::path::Path::new("/proc/clawgate/queue.db"),
        "jobs",
        VISIBILITY,
        None,
    ) {
        Ok(_) => panic!("opened a queue under /proc"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("/proc/clawgate/queue.db"), "{err}");
}

#[tokio::test]
async fn sqlite_queue_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let job = sample_job("13", "durable");
    {
        let q = SqliteQueue::open(&path, "jobs", VISIBILITY, None).unwrap();
        q.send(&job).await.unwrap();
    }

    let reopened = SqliteQueue::open(&path, "jobs", VISIBILITY, None).unwrap();
    let got = reopened
        .receive_jobs(1, Duration::from_secs(1))
        .await
        .unwrap();

    assert_eq!(got[0].job, job);
}
