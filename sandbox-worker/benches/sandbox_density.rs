//! Idle sandboxes on one host (`cargo bench -p sandbox-worker --bench sandbox_density`, needs
//! Docker): the host memory each idle sandbox costs (the drop of `MemAvailable` over
//! [`IDLE`] of them, after the page cache settles), and the `exec` tool's latency with them
//! idle beside it against with none.
//!
//! Targets (issue 17): ≤ 10 MiB per idle sandbox; exec p50 with 50 idle within 1.1× of one.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Stat;
use infra::model::{Channel, SessionKey};
use sandbox_worker::tools::ToolBox;
use serde_json::json;

const IDLE: usize = 50;
const ROUNDS: usize = 200;

/// `MemAvailable` in KiB.
fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The least `MemAvailable` over a few seconds of quiet (the daemons settle after a burst).
async fn settled_available_kib() -> u64 {
    let mut samples = vec![];
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(mem_available_kib());
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

async fn exec_p50(tools: &ToolBox) -> Stat {
    let mut stat = Stat::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let out = tools.run("exec", &json!({"command": "echo hi"})).await;
        assert!(!out.is_error, "{}", out.output);
        stat.record(started.elapsed());
    }
    stat
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::docker_available() {
        println!("sandbox_density skipped: no Docker daemon");
        return;
    }
    let sb = common::Sandbox::new();
    let config = sb.config("prune: { maxContainers: 0 },", "");
    let runtime = sb.runtime();
    let session = |n: usize| SessionKey::dm("main", Channel::Telegram, &format!("density-{n}"));
    let busy = ToolBox::for_session(&runtime, &config, "main", &session(0)).await;
    let alone = exec_p50(&busy).await;

    let before = settled_available_kib().await;
    let started = Instant::now();
    for n in 1..=IDLE {
        let tools = ToolBox::for_session(&runtime, &config, "main", &session(n)).await;
        let out = tools.run("exec", &json!({"command": "true"})).await;
        assert!(!out.is_error, "{}", out.output);
    }
    let made = started.elapsed();
    let after = settled_available_kib().await;
    let crowded = exec_p50(&busy).await;

    let per_sandbox_mib = before.saturating_sub(after) as f64 / 1024.0 / IDLE as f64;
    println!(
        "# sandbox_density on {} cores: {IDLE} idle sandboxes made in {:.1} s",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        made.as_secs_f64()
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!("| host memory per idle sandbox (MemAvailable drop / {IDLE}) | {per_sandbox_mib:.1} MiB | ≤ 10 MiB |");
    println!(
        "| exec tool p50 / p95, 1 sandbox | {:.1} / {:.1} ms | |",
        alone.p50_ms(),
        alone.p95_ms()
    );
    println!(
        "| exec tool p50 / p95, with {IDLE} idle beside it | {:.1} / {:.1} ms | |",
        crowded.p50_ms(),
        crowded.p95_ms()
    );
    println!(
        "| p50 ratio | {:.2} | ≤ 1.1 |",
        crowded.p50_ms() / alone.p50_ms()
    );
}
