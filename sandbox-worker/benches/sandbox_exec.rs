//! Sandbox exec latency (`scripts/bench sandbox_exec`, needs Docker and the static agent):
//! - warm: the `exec` tool through the in-sandbox agent and through `docker exec` (containers
//!   without the agent), against a raw bollard exec and the `docker exec` CLI, same command,
//!   interleaved with the order rotating every round;
//! - cold: create + start + first exec through the sandbox, next to `docker run --rm`.
//!
//! Targets: agent path p50 ≤ 5 ms, p95 ≤ 10 ms, ≤ 0.1 × the CLI (issue 17); exec path ≤ 1.15 ×
//! raw bollard (issue 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use common::Stat;
use futures_util::StreamExt;
use infra::model::{Channel, SessionKey};
use sandbox_worker::sandbox::SandboxPlan;
use sandbox_worker::tools::ToolBox;
use serde_json::json;

const ROUNDS: usize = 200;
const COLD_RUNS: usize = 15;

async fn raw_bollard(docker: &bollard::Docker, container: &str) {
    let exec = docker
        .create_exec(
            container,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(vec!["echo".into(), "hi".into()]),
                user: Some("1000:1000".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        while output.next().await.is_some() {}
    }
    assert_eq!(
        docker.inspect_exec(&exec.id).await.unwrap().exit_code,
        Some(0)
    );
}

fn docker_cli(args: &[&str]) {
    let status = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::docker_available() {
        println!("sandbox_exec skipped: no Docker daemon");
        return;
    }
    let sb = common::Sandbox::new();
    let config = sb.config("", "");
    let session = SessionKey::dm("main", Channel::Telegram, "bench");
    let runtime = sb.runtime();
    let tools = ToolBox::for_session(&runtime, &config, "main", &session).await;
    let exec_session = SessionKey::dm("main", Channel::Telegram, "bench-exec");
    let exec_tools = ToolBox::for_session(
        &sb.runtime_on(common::ExecPath::DockerExec),
        &config,
        "main",
        &exec_session,
    )
    .await;
    assert!(tools.describe_backend().contains("its agent"));
    assert!(exec_tools.describe_backend().contains("docker exec"));
    let container = SandboxPlan::for_session(&config, "main", &session).container_name;
    let docker = bollard::Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    println!(
        "# sandbox_exec on {} cores, Docker {}, {ROUNDS} rounds",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        docker.version().await.unwrap().version.unwrap_or_default()
    );

    let (mut tool, mut exec_path, mut raw, mut cli) =
        (Stat::new(), Stat::new(), Stat::new(), Stat::new());
    for round in 0..ROUNDS {
        for step in 0..4 {
            let started = Instant::now();
            match (round + step) % 4 {
                0 => {
                    let out = tools.run("exec", &json!({"command": "echo hi"})).await;
                    assert!(!out.is_error, "{}", out.output);
                    tool.record(started.elapsed());
                }
                1 => {
                    let out = exec_tools.run("exec", &json!({"command": "echo hi"})).await;
                    assert!(!out.is_error, "{}", out.output);
                    exec_path.record(started.elapsed());
                }
                2 => {
                    raw_bollard(&docker, &container).await;
                    raw.record(started.elapsed());
                }
                _ => {
                    tokio::task::block_in_place(|| {
                        docker_cli(&["exec", "-u", "1000:1000", &container, "echo", "hi"])
                    });
                    cli.record(started.elapsed());
                }
            }
        }
    }
    println!("| path | p50 ms | p95 ms |");
    println!("|---|---|---|");
    println!(
        "| exec tool through the agent (ToolBox::run, sh -c, leftovers ended by the agent) | {:.2} | {:.2} |",
        tool.p50_ms(),
        tool.p95_ms()
    );
    println!(
        "| exec tool through docker exec (same wrapper) | {:.1} | {:.1} |",
        exec_path.p50_ms(),
        exec_path.p95_ms()
    );
    println!(
        "| raw bollard exec (echo hi) | {:.1} | {:.1} |",
        raw.p50_ms(),
        raw.p95_ms()
    );
    println!(
        "| docker exec CLI (echo hi) | {:.1} | {:.1} |",
        cli.p50_ms(),
        cli.p95_ms()
    );
    println!(
        "agent: p50 {:.2} ms (target ≤ 5), p95 {:.2} ms (target ≤ 10), / CLI = {:.3} (target ≤ 0.1)",
        tool.p50_ms(),
        tool.p95_ms(),
        tool.p50_ms() / cli.p50_ms()
    );
    println!(
        "docker exec path / raw bollard = {:.3} (target ≤ 1.15); / CLI = {:.3} (target ≤ 0.75)",
        exec_path.p50_ms() / raw.p50_ms(),
        exec_path.p50_ms() / cli.p50_ms()
    );

    let (mut cold, mut run_rm) = (Stat::new(), Stat::new());
    let sandboxes = runtime
        .docker(config.agents.defaults.sandbox.mode)
        .await
        .unwrap();
    for i in 0..COLD_RUNS {
        let key = SessionKey::dm("main", Channel::Telegram, &format!("cold{i}"));
        let plan = SandboxPlan::for_session(&config, "main", &key);
        let started = Instant::now();
        let tools = ToolBox::for_session(&runtime, &config, "main", &key).await;
        let out = tools.run("exec", &json!({"command": "echo hi"})).await;
        cold.record(started.elapsed());
        assert!(!out.is_error, "{}", out.output);
        sandboxes.remove(&plan.container_name).await.unwrap();

        let started = Instant::now();
        tokio::task::block_in_place(|| {
            docker_cli(&[
                "run",
                "--rm",
                "--network",
                "none",
                "-u",
                "1000:1000",
                common::TEST_IMAGE,
                "echo",
                "hi",
            ])
        });
        run_rm.record(started.elapsed());
    }
    // A new session's first call with a warm pool: a pooled container is waiting each time.
    let pooled_config = sb.config("warmPool: 1, workspaceAccess: \"none\",", "");
    let mut warm_first = Stat::new();
    for i in 0..COLD_RUNS {
        let key = SessionKey::dm("main", Channel::Telegram, &format!("warm{i}"));
        let plan = SandboxPlan::for_session(&pooled_config, "main", &key);
        sandboxes.fill_pool(&plan).await.unwrap();
        let started = Instant::now();
        let tools = ToolBox::for_session(&runtime, &pooled_config, "main", &key).await;
        let out = tools.run("exec", &json!({"command": "echo hi"})).await;
        warm_first.record(started.elapsed());
        assert!(!out.is_error, "{}", out.output);
        // Let the background refill finish before timing the next one.
        sandboxes.fill_pool(&plan).await.unwrap();
        sandboxes.remove(&plan.container_name).await.unwrap();
    }
    println!("| cold path | p50 ms | p95 ms |");
    println!("|---|---|---|");
    println!(
        "| sandbox: create + start + first exec ({COLD_RUNS} runs) | {:.1} | {:.1} |",
        cold.p50_ms(),
        cold.p95_ms()
    );
    println!(
        "| new session, first exec, warm pool (target ≤ 20 ms) | {:.1} | {:.1} |",
        warm_first.p50_ms(),
        warm_first.p95_ms()
    );
    println!(
        "| docker run --rm (CLI) | {:.1} | {:.1} |",
        run_rm.p50_ms(),
        run_rm.p95_ms()
    );
}
