//! Ingress benchmarks (numbers in docs/benchmarks.md):
//!
//! - `cpu`: handler CPU per request, no I/O: verify + parse + build (encode) the job, for a
//!   Telegram update and a Slack event; and the whole Router in-process with a queue that
//!   discards, which adds axum's request handling.
//! - `ack`: ack latency p50/p99 of `POST /telegram` over loopback HTTP to the Router enqueueing
//!   to SQS on the emulator, under a bounded load, next to the bare SQS `SendMessage` of the
//!   same job measured in the same run (rounds alternate so neither gets the warmer emulator).
//!   Needs `AWS_ENDPOINT_URL` (scripts/bench starts moto).
//! - `cold`: process start to the first poll of a local Lambda Runtime API stub (ready for the
//!   first event) and to the first answer, for the `telegram-webhook` binary of this build
//!   (`cargo bench` builds it with the release settings) or `CLAWGATE_LAMBDA_BIN`; plus the zip
//!   sizes from `scripts/build-lambdas` when they exist.
//!
//!   cargo bench -p functions --bench ingress [cpu|ack|cold]...

#[path = "../tests/support/runtime_api.rs"]
mod runtime_api;
#[path = "../../infra/benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use functions::{router, Ingress};
use infra::channels::slack_events;
use infra::channels::telegram_webhook::{self, TelegramBot};
use infra::channels::{ChannelAccount, Parsed};
use infra::config::Secret;
use infra::model::Channel;
use infra::queue::sqs::SqsQueue;
use infra::queue::{group_token, Delivery, JobQueue, QueueDepth, QueueError};
use runtime_api::{KillOnDrop, Runtime};
use support::Latencies;
use tower::ServiceExt;

const TG_SECRET: &str = "s3cr3t_token-1";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../infra/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn bot() -> TelegramBot {
    TelegramBot {
        account: ChannelAccount {
            channel: Channel::Telegram,
            account: "default".into(),
            routes: std::sync::Arc::new(infra::config::AgentRoutes {
                default_agent: "main".into(),
                ..Default::default()
            }),
            groups: Default::default(),
        },
        username: Some("clawgate_bot".into()),
        secret: Some(Secret::new(TG_SECRET)),
    }
}

/// A private message with its own update id (so no two are deduplicated).
fn telegram_update(update_id: u64) -> String {
    let template = String::from_utf8(fixture("telegram/private_message.json")).unwrap();
    template.replacen("987654", &update_id.to_string(), 1)
}

/// Median per-operation time of `op`, over `batches` batches of `per_batch` calls.
fn per_op(batches: usize, per_batch: usize, mut op: impl FnMut()) -> Latencies {
    let mut nanos = Vec::with_capacity(batches);
    for _ in 0..per_batch {
        op(); // warm up
    }
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..per_batch {
            op();
        }
        nanos.push(started.elapsed() / per_batch as u32);
    }
    let mut l = Latencies::new();
    for n in nanos {
        l.record(n);
    }
    l
}

/// Accepts every job and keeps nothing: the Router's cost without the network.
struct DiscardQueue;

#[async_trait]
impl JobQueue for DiscardQueue {
    async fn send_raw(&self, body: &str, _: &str, _: &str) -> Result<String, QueueError> {
        black_box(body);
        Ok("discarded".into())
    }
    async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, QueueError> {
        Ok(vec![])
    }
    async fn extend(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
    async fn ack(&self, _: &str) -> Result<(), QueueError> {
        Ok(())
    }
    async fn dead_letter(&self, _: &Delivery, _: &str) -> Result<(), QueueError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "discard".into()
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Ok(QueueDepth::default())
    }
    fn dead_letters(&self) -> Option<Box<dyn JobQueue>> {
        None
    }
}

fn ingress(queue: Arc<dyn JobQueue>) -> Ingress {
    Ingress {
        queue,
        telegram: [("default".to_string(), bot())].into(),
        slack: None,
        whatsapp: None,
        discord: None,
        bluebubbles: None,
        signal: None,
        zalo: None,
        googlechat: None,
        msteams: None,
        matrix: None,
        hooks_token: None,
        default_agent: "main".into(),
        agents: ["main".to_string()].into(),
        store: None,
        wake: functions::wake::WakeRule::from_config(&Default::default()),
    }
}

async fn cpu() {
    let body = fixture("telegram/private_message.json");
    let bot = bot();
    let telegram = per_op(200, 2_000, || {
        assert!(telegram_webhook::secret_matches(TG_SECRET, Some(TG_SECRET)));
        let Ok(Parsed::Queue { jobs, .. }) =
            telegram_webhook::parse_update(&body, &bot, Utc::now())
        else {
            panic!("the fixture is a job");
        };
        let job = &jobs[0];
        black_box(job.encode().unwrap());
    });
    println!(
        "cpu telegram verify+parse+encode: median {:.1} µs/request (p99 of batch means {:.1} µs)",
        telegram.median_ns() as f64 / 1000.0,
        telegram.p99_ns() as f64 / 1000.0
    );

    let body = fixture("slack/app_mention_thread.json");
    let now = Utc::now();
    let signature = slack_events::sign(SLACK_SECRET, now.timestamp(), &body);
    let timestamp = now.timestamp().to_string();
    // An owner who listed every channel, so the mention is queued.
    let slack_app = slack_events::SlackApp {
        account: ChannelAccount {
            channel: Channel::Slack,
            account: "default".into(),
            routes: std::sync::Arc::new(infra::config::AgentRoutes {
                default_agent: "main".into(),
                ..Default::default()
            }),
            groups: infra::config::GroupAccess {
                groups: [("*".to_string(), Default::default())].into(),
                ..Default::default()
            },
        },
        signing_secret: None,
    };
    let slack = per_op(200, 2_000, || {
        slack_events::verify_signature(
            SLACK_SECRET,
            Some(&timestamp),
            Some(&signature),
            &body,
            now,
        )
        .unwrap();
        let Ok(Parsed::Queue { jobs, .. }) = slack_events::parse_event(&body, &slack_app, now)
        else {
            panic!("the fixture is a job");
        };
        let job = &jobs[0];
        black_box(job.encode().unwrap());
    });
    println!(
        "cpu slack verify+parse+encode: median {:.1} µs/request (p99 of batch means {:.1} µs)",
        slack.median_ns() as f64 / 1000.0,
        slack.p99_ns() as f64 / 1000.0
    );

    // The whole Router in-process: axum routing, body limit, headers, plus the above.
    let app = router(ingress(Arc::new(DiscardQueue)));
    let body = fixture("telegram/private_message.json");
    let mut l = Latencies::new();
    for i in 0..22_000 {
        let request = Request::post("/telegram")
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let started = Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), 200);
        if i >= 2_000 {
            l.record(took);
        }
    }
    println!(
        "cpu router /telegram in-process (discarding queue): median {:.1} µs, p99 {:.1} µs",
        l.median_ns() as f64 / 1000.0,
        l.p99_ns() as f64 / 1000.0
    );
}

async fn ack() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        println!("ack: skipped, set AWS_ENDPOINT_URL (scripts/bench starts moto)");
        return;
    }
    // Latency at concurrency 1, where the emulator is not the queue (docs/architecture.md §11), then under a
    // bounded load of 4 in flight, where moto on 2 cores is the bottleneck.
    for concurrency in [1, 4] {
        ack_at(concurrency).await;
    }
}

async fn ack_at(concurrency: usize) {
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 50;
    let sdk = infra::aws::load_sdk_config().await;
    let raw = aws_sdk_sqs::Client::new(&sdk);
    let http = reqwest::Client::new();
    let bot = bot();
    // moto's FIFO SendMessage slows as a queue's history grows (docs/architecture.md §11), so every round
    // gives each side a fresh queue: both always send into an equally empty one.
    let fresh_queue = || async {
        let name = format!(
            "cg-bench-ack-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        SqsQueue::create_fifo(&sdk, &name, 3, Duration::from_secs(30))
            .await
            .unwrap()
    };

    let mut gateway = Latencies::new();
    let mut bare = Latencies::new();
    let mut next_id = 1_000_000u64;
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always meets the emptier queue.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for through_gateway in order {
            let queue = fresh_queue().await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let app = router(ingress(Arc::new(queue.clone())));
            let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let ids: Vec<u64> = (0..PER_ROUND as u64).map(|i| next_id + i).collect();
            next_id += PER_ROUND as u64;
            let sample = Arc::new(std::sync::Mutex::new(Vec::new()));
            let chunks: Vec<Vec<u64>> = ids
                .chunks(PER_ROUND / concurrency)
                .map(<[u64]>::to_vec)
                .collect();
            let mut tasks = Vec::new();
            for chunk in chunks {
                let (http, base, raw, url, bot, sample) = (
                    http.clone(),
                    base.clone(),
                    raw.clone(),
                    queue.url().to_string(),
                    bot.clone(),
                    sample.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    for id in chunk {
                        let update = telegram_update(id);
                        let started = Instant::now();
                        if through_gateway {
                            let response = http
                                .post(format!("{base}/telegram"))
                                .header("x-telegram-bot-api-secret-token", TG_SECRET)
                                .header("content-type", "application/json")
                                .body(update)
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(response.status(), 200);
                        } else {
                            // The same message the handler would send, sent directly.
                            let Ok(Parsed::Queue { jobs, .. }) =
                                telegram_webhook::parse_update(update.as_bytes(), &bot, Utc::now())
                            else {
                                panic!("a job")
                            };
                            let job = &jobs[0];
                            let started_send = Instant::now();
                            raw.send_message()
                                .queue_url(&url)
                                .message_body(job.encode().unwrap())
                                .message_group_id(group_token(&job.session_key))
                                .message_deduplication_id(job.dedup_id())
                                .send()
                                .await
                                .unwrap();
                            sample.lock().unwrap().push(started_send.elapsed());
                            continue;
                        }
                        sample.lock().unwrap().push(started.elapsed());
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let target = if through_gateway {
                &mut gateway
            } else {
                &mut bare
            };
            for d in sample.lock().unwrap().iter() {
                target.record(*d);
            }
            server.abort();
            queue.delete_with_dead_letter_queue().await.unwrap();
        }
    }
    println!(
        "ack (concurrency {concurrency}, {} requests each):",
        ROUNDS * PER_ROUND
    );
    println!("  gateway POST /telegram → 200: {}", gateway.summary());
    println!("  bare SQS SendMessage:         {}", bare.summary());
    println!(
        "  ratio p50 {:.2}×, p99 {:.2}×",
        gateway.median_us() as f64 / bare.median_us() as f64,
        gateway.p99_us() as f64 / bare.p99_us() as f64
    );
}

async fn cold() {
    const RUNS: usize = 20;
    let binary = std::env::var("CLAWGATE_LAMBDA_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_telegram-webhook").to_string());
    let home = tempfile::tempdir().unwrap();
    let mut ready = Latencies::new();
    let mut answered = Latencies::new();
    let event = std::fs::read_to_string(format!(
        "{}/fixtures/function_url_bad_secret.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for run in 0..RUNS {
        let runtime = Arc::new(Runtime::default());
        runtime
            .events
            .lock()
            .unwrap()
            .push_back((format!("req-{run}"), event.clone()));
        let api = runtime_api::serve(runtime.clone()).await;
        let started = Instant::now();
        let _function = KillOnDrop(
            Command::new(&binary)
                .env_clear()
                .env("HOME", home.path())
                .env("AWS_LAMBDA_RUNTIME_API", &api)
                .env("AWS_LAMBDA_FUNCTION_NAME", "telegram-webhook")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("TELEGRAM_WEBHOOK_SECRET", TG_SECRET)
                .env(
                    "CLAWGATE_QUEUE_URL",
                    "http://127.0.0.1:9/000000000000/unused.fifo",
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let answered_at = loop {
            if !runtime.responses.lock().unwrap().is_empty() {
                break Instant::now();
            }
            assert!(Instant::now() < deadline, "no answer within 10 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let first_poll = runtime.first_poll.lock().unwrap().expect("it polled");
        ready.record(first_poll - started);
        answered.record(answered_at - started);
        let response = runtime.responses.lock().unwrap()[0].1.clone();
        assert_eq!(response["statusCode"], 401, "{response}");
    }
    println!("cold start of {binary} ({RUNS} runs):");
    println!("  spawn → first poll (ready): {}", ready.summary());
    println!("  spawn → first answer:       {}", answered.summary());
    let lambda_dir = format!("{}/../target/lambda", env!("CARGO_MANIFEST_DIR"));
    for arch in ["x86_64", "arm64"] {
        for function in ["telegram-webhook", "slack-events", "hooks-agent"] {
            let zip = format!("{lambda_dir}/{arch}/{function}/bootstrap.zip");
            if let Ok(meta) = std::fs::metadata(&zip) {
                println!("  zip {arch}/{function}: {} bytes", meta.len());
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let mut sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if sections.is_empty() {
        sections = vec!["cpu".into(), "ack".into(), "cold".into()];
    }
    println!("# ingress bench on {} cores", support::cores());
    for section in sections {
        match section.as_str() {
            "cpu" => cpu().await,
            "ack" => ack().await,
            "cold" => cold().await,
            other => panic!("unknown section {other:?} (cpu, ack, cold)"),
        }
    }
}
