//! Resident memory of the two long-running processes (docs/architecture.md §11; numbers in
//! docs/benchmarks.md): `clawgate gateway` before and during a bounded load of Telegram
//! webhooks, and `clawgate worker` idle on an empty queue. Peak is the kernel's `VmHWM` for the
//! process, the number `/usr/bin/time -v` prints as "Maximum resident set size"; current is
//! `VmRSS`. Both on SQLite, and on SQS + DynamoDB when `AWS_ENDPOINT_URL` names an emulator.
//!
//!   cargo bench --bench memory        (scripts/bench memory starts moto)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TG_SECRET: &str = "s3cr3t_token-1";

/// Kills the process however the bench ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`).
    fn kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.0.id()))
    }

    fn mb(&self, field: &str) -> f64 {
        self.kb(field) as f64 / 1024.0
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Emulator,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Emulator => "SQS + DynamoDB (moto)",
        }
    }
}

/// A config for `backend`: one Telegram bot, a model nobody answers (no job runs here), tools
/// on the host so no Docker is needed; on the emulator, a fresh queue and table.
async fn write_config(dir: &Path, backend: Backend) -> PathBuf {
    let backends = match backend {
        Backend::Sqlite => String::new(),
        Backend::Emulator => {
            let sdk = infra::aws::load_sdk_config().await;
            let name = format!(
                "cg-bench-mem-{}",
                ulid::Ulid::new().to_string().to_lowercase()
            );
            let queue =
                infra::queue::sqs::SqsQueue::create_fifo(&sdk, &name, 3, Duration::from_secs(30))
                    .await
                    .unwrap();
            infra::store::dynamo::DynamoStore::create_table(&sdk, &name)
                .await
                .unwrap();
            format!(
                r#"queue: {{ backend: "sqs", url: "{}" }}, state: {{ backend: "dynamodb", table: "{name}" }},"#,
                queue.url()
            )
        }
    };
    let path = dir.join("clawgate.json5");
    std::fs::write(
        &path,
        format!(
            r#"{{
              agents: {{ defaults: {{ model: "anthropic/claude-bench", workspace: "{ws}", sandbox: {{ mode: "off" }} }} }},
              models: {{ providers: {{ anthropic: {{ apiKey: "sk-ant-bench", baseUrl: "http://127.0.0.1:9" }} }} }},
              channels: {{ telegram: {{ webhookSecret: "{TG_SECRET}", dmPolicy: "open" }} }},
              {backends}
            }}"#,
            ws = dir.join("ws").display()
        ),
    )
    .unwrap();
    path
}

/// `clawgate --config CONFIG SUBCOMMAND --state-dir DIR`; the caller adds the rest.
fn clawgate(config: &Path, subcommand: &str, state_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    command
        .arg("--config")
        .arg(config)
        .arg(subcommand)
        .arg("--state-dir")
        .arg(state_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for var in [
        "TELEGRAM_WEBHOOK_SECRET",
        "TELEGRAM_BOT_TOKEN",
        "CLAWGATE_CONFIG",
        "CLAWGATE_QUEUE_URL",
        "CLAWGATE_STATE_TABLE",
    ] {
        command.env_remove(var);
    }
    command
}

async fn gateway(backend: Backend, requests: u64, in_flight: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), backend).await;
    let mut child = clawgate(&config, "gateway", dir.path())
        .args(["--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let process = Process(child);
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    std::thread::spawn(move || for _ in stderr.lines() {});
    let base = Arc::new(banner.trim().rsplit(' ').next().unwrap().to_string());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = process.mb("VmRSS");

    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut loops = Vec::new();
    for lane in 0..in_flight {
        let (http, base) = (http.clone(), base.clone());
        loops.push(tokio::spawn(async move {
            for i in (lane..requests).step_by(in_flight as usize) {
                let update = serde_json::json!({"update_id": 500_000 + i, "message": {
                    "message_id": i, "date": 1764064800, "text": "hello there",
                    "from": {"id": 10_000 + i, "is_bot": false, "first_name": "Ada"},
                    "chat": {"id": 10_000 + i, "type": "private", "first_name": "Ada"}}});
                let status = http
                    .post(format!("{base}/telegram"))
                    .header("x-telegram-bot-api-secret-token", TG_SECRET)
                    .json(&update)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 200);
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "gateway, {}: idle {idle:.1} MB; {requests} webhooks at {in_flight} in flight ({:.0}/s): peak {:.1} MB, after {:.1} MB",
        backend.name(),
        requests as f64 / elapsed,
        process.mb("VmHWM"),
        process.mb("VmRSS"),
    );
}

async fn idle_worker(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), backend).await;
    let ready = dir.path().join("ready");
    let process = Process(
        clawgate(&config, "worker", dir.path())
            .arg("--ready-file")
            .arg(&ready)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the worker never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several empty receives (long polls) and prune ticks after start.
    tokio::time::sleep(Duration::from_secs(25)).await;
    println!(
        "worker idle, {}: {:.1} MB now, peak {:.1} MB",
        backend.name(),
        process.mb("VmRSS"),
        process.mb("VmHWM"),
    );
}

#[tokio::main]
async fn main() {
    println!(
        "# memory on {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    gateway(Backend::Sqlite, 5_000, 8).await;
    idle_worker(Backend::Sqlite).await;
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        // moto saturates near 40-45 requests/s (docs/architecture.md §11): fewer requests, same shape.
        gateway(Backend::Emulator, 1_000, 4).await;
        idle_worker(Backend::Emulator).await;
    } else {
        println!("emulator rows skipped: set AWS_ENDPOINT_URL (scripts/bench starts moto)");
    }
}
