//! The `process` tool in the Docker sandbox: every action, the per-sandbox cap, and a
//! restarted container. In a test binary of its own: it restarts a container and signals
//! process groups, which the hardening probes of `docker_sandbox.rs` should not run beside.

mod common;

use std::time::Duration;

use infra::model::{Channel, SessionKey};
use sandbox_worker::sandbox::SandboxPlan;
use sandbox_worker::tools::ToolBox;
use serde_json::{json, Value};

use common::{docker_available, Sandbox};

fn dm(peer: &str) -> SessionKey {
    SessionKey::dm("main", Channel::Telegram, peer)
}

async fn process(tools: &ToolBox, input: Value) -> Value {
    let out = tools.run("process", &input).await;
    assert!(!out.is_error, "{input}: {}", out.output);
    serde_json::from_str(&out.output).unwrap()
}

#[tokio::test]
async fn background_processes_start_stream_take_input_stop_and_are_gone_after_a_restart() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "");
    let tools = ToolBox::for_session(&sb.runtime(), &config, "main", &dm("proc")).await;

    let ticker = process(
        &tools,
        json!({"action": "start", "command": "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"}),
    )
    .await;
    let echo = process(
        &tools,
        json!({"action": "start", "command": "read line; echo got:$line; exit 3"}),
    )
    .await;
    let (ticker, echo) = (ticker["id"].as_str().unwrap(), echo["id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let first = process(&tools, json!({"action": "poll", "id": ticker})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = process(
        &tools,
        json!({"action": "poll", "id": ticker, "offset": first["next_offset"]}),
    )
    .await;
    let waiting = process(&tools, json!({"action": "poll", "id": echo})).await;
    process(
        &tools,
        json!({"action": "write", "id": echo, "data": "hello\n"}),
    )
    .await;
    let answered = process(&tools, json!({"action": "wait", "id": echo, "timeout": 10})).await;
    let listed = process(&tools, json!({"action": "list"})).await;
    process(&tools, json!({"action": "kill", "id": ticker})).await;
    let killed = process(
        &tools,
        json!({"action": "wait", "id": ticker, "timeout": 10}),
    )
    .await;
    let unknown = tools
        .run("process", &json!({"action": "poll", "id": "../../etc"}))
        .await;
    // A restart ends every process in the sandbox; the tool says so.
    let survivor = process(&tools, json!({"action": "start", "command": "sleep 600"})).await;
    let name = SandboxPlan::for_session(&config, "main", &dm("proc")).container_name;
    assert!(std::process::Command::new("docker")
        .args(["restart", "-t", "0", &name])
        .status()
        .unwrap()
        .success());
    let after_restart = process(&tools, json!({"action": "poll", "id": survivor["id"]})).await;

    assert_eq!(first["state"], "running");
    assert!(
        first["output"]
            .as_str()
            .unwrap()
            .starts_with("tick 0\ntick 1\n"),
        "{first}"
    );
    let later_text = later["output"].as_str().unwrap();
    assert!(
        !later_text.contains("tick 0\n") && later_text.contains("tick "),
        "polls continue from the offset: {later}"
    );
    assert_eq!(
        waiting["state"], "running",
        "it waits for its stdin: {waiting}"
    );
    assert_eq!(answered["output"], "got:hello\n");
    assert_eq!(answered["state"], "exited with 3");
    assert_eq!(listed["processes"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(killed["state"], "ended by a signal", "{killed}");
    assert!(
        unknown.is_error && unknown.output.contains("not a process id"),
        "{}",
        unknown.output
    );
    assert_eq!(after_restart["state"], "gone", "{after_restart}");
}

#[tokio::test]
async fn a_sandbox_runs_at_most_eight_background_processes() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools =
        ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("proc-cap")).await;

    for _ in 0..8 {
        process(&tools, json!({"action": "start", "command": "sleep 600"})).await;
    }
    let ninth = tools
        .run(
            "process",
            &json!({"action": "start", "command": "sleep 600"}),
        )
        .await;

    assert!(ninth.is_error, "{}", ninth.output);
    assert!(
        ninth.output.contains("8 processes are running"),
        "{}",
        ninth.output
    );
}
