//! Per-job overhead of the worker (`cargo bench -p sandbox-worker --bench worker_jobs`): a
//! zero-latency fake model that asks for one `echo` tool call and then answers, the tool in
//! the Docker sandbox (one warm container, scope "agent"), replies to a fake Telegram. Run
//! against SQLite with 1, 2, 4 and 8 jobs in flight and, when `AWS_ENDPOINT_URL` is set, SQS +
//! DynamoDB on the emulator with 1 and 4 (closed loops: each loop sends a job and waits for
//! its reply).
//! Live previews are off (`streaming: "off"`): with them a job this short would wait out
//! Telegram's one-edit-a-second before its answer (docs/live-replies.md), which is the chat's
//! limit, not the worker's cost.
//! Reports jobs/s, p50 and p99 latency (send to reply), the time per job in each phase, and
//! the machine's CPU time per job (every process, dockerd and the in-process fakes included:
//! from `/proc/stat`), which the fleet model is calibrated with (benches/fleet.rs).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fakes/mod.rs"]
mod fakes;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fakes::{last_tool_result, Fakes, Reply};
use hdrhistogram::Histogram;
use infra::config::Config;
use infra::model::{JobMessage, ReplyTarget};
use infra::queue::sqs::SqsQueue;
use infra::queue::JobQueueExt;
use infra::setup::open_backends;
use infra::store::dynamo::DynamoStore;
use sandbox_worker::phase::PhaseTimes;
use sandbox_worker::worker::{Worker, WorkerSettings};
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Jobs per row on SQLite (enough for the rows to repeat within a few per cent) and on the
/// emulator (whose rows take seconds each).
const SQLITE_JOBS: usize = 300;
const EMULATOR_JOBS: usize = 60;

/// Every job of the whole bench gets its own chat, so a reply is never mistaken for another
/// run's.
static NEXT_CHAT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(100_000);

fn next_job() -> (JobMessage, i64) {
    let chat = NEXT_CHAT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (job(chat), chat)
}

fn job(chat: i64) -> JobMessage {
    let mut job = JobMessage::decode(include_str!("../../infra/fixtures/job_v1.json")).unwrap();
    job.job_id = ulid::Ulid::new().to_string();
    job.inbound.event_id = format!("telegram:default:bench-{}", job.job_id);
    job.session_key = format!("agent:main:telegram:dm:{chat}").parse().unwrap();
    if let Some(ReplyTarget::Telegram(t)) = job.reply_to.as_mut() {
        t.chat_id = chat;
    }
    job
}

async fn run(
    label: &str,
    config: &Config,
    dir: &Path,
    fakes: &Arc<Fakes>,
    concurrency: usize,
    jobs: usize,
    times: &PhaseTimes,
) {
    let backends = open_backends(config, dir).await.unwrap();
    let mut settings = WorkerSettings::new(backends.visibility);
    settings.concurrency = concurrency;
    settings.receive_wait = Duration::from_secs(1);
    let worker = Arc::new(Worker::new(config.clone(), backends.clone(), dir, settings).unwrap());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    let shared = fakes.clone();
    let replied = move |chat: i64| {
        let fakes = shared.clone();
        async move {
            // Woken by the fake, not polled: at 8 loops polling every millisecond (and
            // scanning every recorded call) took a good share of the 2 cores from the worker.
            fakes.sent_to_chat(chat).await
        }
    };
    // Warm up: the container exists and the connections are open before timing starts.
    let (warm, chat) = next_job();
    backends.queue.send(&warm).await.unwrap();
    replied(chat).await;
    times.take();

    let cpu_before = machine_cpu_seconds();
    let started = Instant::now();
    let mut loops = Vec::new();
    for l in 0..concurrency {
        let (queue, replied) = (backends.queue.clone(), replied.clone());
        loops.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in (l..jobs).step_by(concurrency) {
                let (job, chat) = next_job();
                let sent = Instant::now();
                queue.send(&job).await.unwrap();
                replied(chat).await;
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for l in loops {
        for d in l.await.unwrap() {
            hist.record(d.as_micros() as u64).unwrap();
        }
    }
    let elapsed = started.elapsed();
    let cpu_per_job = (machine_cpu_seconds() - cpu_before) * 1000.0 / jobs as f64;
    let split = times.take();
    let _ = stop.send(true);
    let _ = task.await;
    let per_job = |phase: &str| {
        split
            .get(phase)
            .map_or(0.0, |(d, _)| d.as_secs_f64() * 1000.0 / jobs as f64)
    };
    println!(
        "| {label} | {concurrency} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu_per_job:.1} |",
        jobs as f64 / elapsed.as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        per_job("queue"),
        per_job("store"),
        per_job("model"),
        per_job("sandbox"),
        per_job("reply"),
    );
}

/// CPU time spent by the whole machine so far (all cores, not idle or waiting for I/O).
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let busy: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal: all but idle (3) and iowait (4).
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy as f64 / ticks
}

fn config_text(fakes: &Fakes, dir: &Path, sandbox: &str, backends: &str) -> String {
    format!(
        r#"{{ agents: {{ defaults: {{ model: "anthropic/bench", workspace: "{ws}", sandbox: {{ {sandbox} }} }} }},
             models: {{ providers: {{ anthropic: {{ apiKey: "sk-bench", baseUrl: "{base}" }} }} }},
             channels: {{ telegram: {{ botToken: "1:B", apiBase: "{base}", dmPolicy: "allowlist", allowFrom: [12345], streaming: "off" }} }},
             limits: {{ senderMessagesPerMinute: 0, sessionMessagesPerMinute: 0 }},
             queue: {{ visibilityTimeoutSeconds: 60 {backends_queue} }},
             {backends} }}"#,
        ws = dir.join("ws").display(),
        base = fakes.base_url,
        backends_queue = "",
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Logs as every binary writes them, and the phase spans (TRACE) timed beside them.
    let times = PhaseTimes::default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(times.clone())
        .init();
    let fakes = Arc::new(
        Fakes::start(Arc::new(|_, body: &Value| match last_tool_result(body) {
            None => Reply::tool_use("toolu_echo", "exec", json!({"command": "echo hi"})),
            Some(_) => Reply::text("done"),
        }))
        .await,
    );
    let docker = common::docker_available();
    let sb = docker.then(common::Sandbox::new);
    let sandbox = match &sb {
        Some(sb) => format!(
            r#"mode: "all", scope: "agent", docker: {{ image: "{}", containerPrefix: "{}" }}"#,
            common::TEST_IMAGE,
            sb.prefix
        ),
        None => r#"mode: "off""#.to_string(),
    };
    println!(
        "# worker_jobs on {} cores, {SQLITE_JOBS} jobs per SQLite row, {EMULATOR_JOBS} per emulator row, tool runs {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if docker {
            "in Docker (warm container)"
        } else {
            "on the host (no Docker)"
        }
    );
    println!("| backend | in flight | jobs/s | p50 ms | p99 ms | queue ms/job | store ms/job | model ms/job | sandbox ms/job | reply ms/job | machine CPU ms/job |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for concurrency in [1, 2, 4, 8] {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(&config_text(&fakes, dir.path(), &sandbox, "")).unwrap();
        let jobs = SQLITE_JOBS;
        run(
            "SQLite",
            &config,
            dir.path(),
            &fakes,
            concurrency,
            jobs,
            &times,
        )
        .await;
    }
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        let sdk = infra::aws::load_sdk_config().await;
        for concurrency in [1, 4] {
            let dir = tempfile::tempdir().unwrap();
            let name = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
            let queue = SqsQueue::create_fifo(&sdk, &name, 5, Duration::from_secs(60))
                .await
                .unwrap();
            let table = DynamoStore::create_table(&sdk, &name).await.unwrap();
            let backends = format!(
                r#"state: {{ backend: "dynamodb", table: "{}" }}"#,
                table.table()
            );
            let text = config_text(&fakes, dir.path(), &sandbox, &backends).replace(
                "visibilityTimeoutSeconds: 60 ",
                &format!(
                    r#"visibilityTimeoutSeconds: 60, backend: "sqs", url: "{}""#,
                    queue.url()
                ),
            );
            let config = Config::parse(&text).unwrap();
            run(
                "SQS + DynamoDB (moto)",
                &config,
                dir.path(),
                &fakes,
                concurrency,
                EMULATOR_JOBS,
                &times,
            )
            .await;
            queue.delete_with_dead_letter_queue().await.unwrap();
            table.delete_table().await.unwrap();
        }
    } else {
        println!("(emulator rows skipped: AWS_ENDPOINT_URL is not set)");
    }
}
