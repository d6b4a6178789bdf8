//! Cloud adapter overhead (`cargo bench -p infra --bench aws_overhead`, with `AWS_ENDPOINT_URL`
//! pointing at moto or LocalStack): each adapter call against the raw SDK call it wraps, same
//! client settings, interleaved A B A B in one run so the emulator's drift hits both alike.
//!
//! Target (issue 2): adapter median ≤ 1.05 × raw median. The SQS queue is kept drained between
//! sends (moto's SendMessage slows as a FIFO queue grows, docs/architecture.md §11).

mod support;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use infra::queue::sqs::SqsQueue;
use infra::queue::JobQueue;
use infra::store::dynamo::DynamoStore;
use infra::store::JobLedger;
use support::{cores, Latencies};

const ROUNDS: usize = 300;

struct Pair {
    name: &'static str,
    adapter: Latencies,
    raw: Latencies,
}

impl Pair {
    fn new(name: &'static str) -> Self {
        Pair {
            name,
            adapter: Latencies::new(),
            raw: Latencies::new(),
        }
    }

    fn report(&self) {
        let ratio = self.adapter.median_us() as f64 / self.raw.median_us().max(1) as f64;
        println!(
            "| {} | {} / {} | {} / {} | {:.3} |",
            self.name,
            self.adapter.median_us(),
            self.adapter.p99_us(),
            self.raw.median_us(),
            self.raw.p99_us(),
            ratio
        );
    }
}

async fn time<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

/// Times `adapter` and `raw` once each, alternating which goes first by round, so neither side
/// always pays for a cold connection or a just-busy emulator.
macro_rules! interleave {
    ($round:expr, $pair:expr, adapter: $adapter:expr, raw: $raw:expr $(,)?) => {
        if $round % 2 == 0 {
            let (_, d) = time($adapter).await;
            $pair.adapter.record(d);
            let (_, d) = time($raw).await;
            $pair.raw.record(d);
        } else {
            let (_, d) = time($raw).await;
            $pair.raw.record(d);
            let (_, d) = time($adapter).await;
            $pair.adapter.record(d);
        }
    };
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        println!("aws_overhead skipped: set AWS_ENDPOINT_URL (scripts/bench starts moto)");
        return;
    };
    println!(
        "# aws_overhead against {endpoint} on {} cores, {ROUNDS} interleaved rounds",
        cores()
    );
    let config = infra::aws::load_sdk_config().await;
    let suffix = ulid::Ulid::new().to_string().to_lowercase();

    let queue = SqsQueue::create_fifo(
        &config,
        &format!("bench-{suffix}"),
        5,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let body = include_str!("../fixtures/job_v1.json").replace('\n', "");

    let table = format!("bench-{suffix}");
    let store = DynamoStore::create_table(&config, &table).await.unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    store
        .claim_job("bench-job", "w", Duration::from_secs(3600))
        .await
        .unwrap();

    let mut send = Pair::new("SQS send (SendMessage)");
    let mut receive = Pair::new("SQS receive + ack (ReceiveMessage + DeleteMessage)");
    let mut get = Pair::new("DynamoDB get_job (GetItem)");
    let mut seen = Pair::new("DynamoDB mark_seen (conditional PutItem)");
    let mut claim = Pair::new("DynamoDB claim_job (conditional UpdateItem)");

    for i in 0..ROUNDS {
        // SQS: one message each way per round, then both drained, so the queue stays empty.
        interleave!(i, send,
            adapter: queue.send_raw(&body, &format!("g{i}"), &format!("a{i}")),
            raw: sqs
                .send_message()
                .queue_url(queue.url())
                .message_body(&body)
                .message_group_id(format!("h{i}"))
                .message_deduplication_id(format!("b{i}"))
                .send(),
        );
        interleave!(i, receive,
            adapter: async {
                for m in queue.receive(1, Duration::ZERO).await.unwrap() {
                    queue.ack(&m.receipt).await.unwrap();
                }
            },
            raw: async {
                let out = sqs
                    .receive_message()
                    .queue_url(queue.url())
                    .max_number_of_messages(1)
                    .wait_time_seconds(0)
                    .visibility_timeout(30)
                    .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                    .send()
                    .await
                    .unwrap();
                for m in out.messages.unwrap_or_default() {
                    sqs.delete_message()
                        .queue_url(queue.url())
                        .receipt_handle(m.receipt_handle.unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            },
        );
        interleave!(i, get,
            adapter: store.get_job("bench-job"),
            raw: ddb
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("JOB#bench-job".into()))
                .key("sk", AttributeValue::S("JOB".into()))
                .consistent_read(true)
                .send(),
        );
        interleave!(i, seen,
            adapter: store.mark_seen(&format!("m{i}"), Duration::from_secs(3600)),
            raw: ddb
                .put_item()
                .table_name(&table)
                .item("pk", AttributeValue::S(format!("DEDUP#r{i}")))
                .item("sk", AttributeValue::S("DEDUP".into()))
                .item("exp_ms", AttributeValue::N("9999999999999".into()))
                .item("ttl", AttributeValue::N("9999999999".into()))
                .condition_expression("attribute_not_exists(pk) OR #exp_ms <= :now")
                .expression_attribute_names("#exp_ms", "exp_ms")
                .expression_attribute_values(":now", AttributeValue::N("0".into()))
                .send(),
        );
        interleave!(i, claim,
            adapter: store.claim_job(&format!("j{i}"), "w", Duration::from_secs(60)),
            raw: raw_claim(&ddb, &table, i),
        );
    }

    println!("| call | adapter p50 / p99 µs | raw SDK p50 / p99 µs | adapter ÷ raw (p50) |");
    println!("|---|---|---|---|");
    for pair in [&send, &receive, &get, &seen, &claim] {
        pair.report();
    }
    queue.delete_with_dead_letter_queue().await.unwrap();
    store.delete_table().await.unwrap();
}

/// The UpdateItem that `DynamoStore::claim_job` sends, written out by hand.
async fn raw_claim(ddb: &aws_sdk_dynamodb::Client, table: &str, i: usize) {
    let names = [
        "status",
        "lease_owner",
        "lease_until_ms",
        "attempt",
        "created_ms",
        "updated_ms",
        "job_id",
        "ttl",
    ];
    let mut request = ddb
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("JOB#r{i}")))
        .key("sk", AttributeValue::S("JOB".into()))
        .update_expression(
            "SET #status = :running, #lease_owner = :me, #lease_until_ms = :until, \
             #attempt = if_not_exists(#attempt, :zero) + :one, \
             #created_ms = if_not_exists(#created_ms, :now), #updated_ms = :now, \
             #job_id = :job_id, #ttl = :ttl",
        )
        .condition_expression(
            "attribute_not_exists(pk) OR (#status = :running AND (#lease_until_ms <= :now OR #lease_owner = :me))",
        )
        .expression_attribute_values(":running", AttributeValue::S("running".into()))
        .expression_attribute_values(":me", AttributeValue::S("w".into()))
        .expression_attribute_values(":until", AttributeValue::N("9999999999999".into()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":now", AttributeValue::N("1".into()))
        .expression_attribute_values(":job_id", AttributeValue::S(format!("r{i}")))
        .expression_attribute_values(":ttl", AttributeValue::N("9999999999".into()))
        .return_values(ReturnValue::AllNew);
    for name in names {
        request = request.expression_attribute_names(format!("#{name}"), name);
    }
    request.send().await.unwrap();
}
