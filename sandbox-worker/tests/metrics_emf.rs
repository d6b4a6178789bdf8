//! The fleet's metrics as CloudWatch reads them: the `sandbox-worker` binary with
//! `CLAWGATE_METRICS=emf` answers a job that runs a tool in Docker, and its stdout must hold
//! embedded-metric-format lines for every job metric, each declaring its namespace, unit and
//! dimensions the way CloudWatch parses them. Then the same job on `--metrics store` leaves the
//! hourly counters `clawgate status` reads.

mod common;
mod fakes;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fakes::{last_tool_result, Fakes, Reply};
use infra::config::Config;
use infra::model::JobMessage;
use infra::queue::JobQueueExt;
use infra::setup::open_backends;
use serde_json::{json, Value};

fn config_text(fakes: &Fakes, sb: &common::Sandbox) -> String {
    format!(
        r#"{{ agents: {{ defaults: {{ model: "anthropic/claude-test", sandbox: {{ mode: "all", scope: "session",
               workspaceAccess: "rw", workspaceRoot: "{root}",
               docker: {{ image: "{image}", containerPrefix: "{prefix}" }} }} }} }},
             models: {{ providers: {{ anthropic: {{ apiKey: "sk-ant-test-key", baseUrl: "{base}" }} }} }},
             channels: {{ telegram: {{ botToken: "123456:TESTTOKEN", apiBase: "{base}", streaming: "off", dmPolicy: "allowlist", allowFrom: [12345] }} }} }}"#,
        root = sb.dir.path().join("sbx").display(),
        image = common::TEST_IMAGE,
        prefix = sb.prefix,
        base = fakes.base_url,
    )
}

fn job(event: &str) -> JobMessage {
    let mut job = JobMessage::decode(include_str!("../../infra/fixtures/job_v1.json")).unwrap();
    job.job_id = ulid::Ulid::new().to_string();
    job.inbound.event_id = format!("telegram:default:{event}");
    job
}

/// Runs the worker binary until the fakes saw `replies` replies, then stops it; returns stdout.
async fn run_worker(
    config: &Path,
    state: &Path,
    metrics: &str,
    fakes: &Fakes,
    replies: usize,
) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_sandbox-worker"))
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .env("CLAWGATE_METRICS", metrics)
        .env_remove("ANTHROPIC_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(60), |f| {
            f.sent_messages().len() >= replies
        })
        .await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(answered, "the worker did not answer");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_emits_every_job_metric_as_emf_and_counts_them_in_the_store_locally() {
    if !common::docker_available() {
        return;
    }
    let sb = common::Sandbox::new();
    let fakes = Fakes::start(Arc::new(|_, body: &Value| match last_tool_result(body) {
        Some(_) => Reply::text("done"),
        None => Reply::tool_use(
            &format!("toolu_{}", ulid::Ulid::new()),
            "exec",
            json!({"command": "true"}),
        ),
    }))
    .await;
    let config_path = sb.dir.path().join("clawgate.json");
    std::fs::write(&config_path, config_text(&fakes, &sb)).unwrap();
    let config = Config::load(Some(&config_path)).unwrap().0;
    let state = sb.dir.path().join("state");
    let backends = open_backends(&config, &state).await.unwrap();

    backends.queue.send(&job("emf-1")).await.unwrap();
    let stdout = run_worker(&config_path, &state, "emf", &fakes, 1).await;
    backends.queue.send(&job("store-1")).await.unwrap();
    let _ = run_worker(&config_path, &state, "store", &fakes, 2).await;
    let counters = infra::metrics::read_counters(backends.store.as_ref())
        .await
        .unwrap();

    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|_| panic!("stdout holds a non-JSON line: {l}"))
        })
        .collect();
    let metric = |name: &str| {
        lines
            .iter()
            .find(|l| l["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == name)
            .unwrap_or_else(|| panic!("no {name} line in {stdout}"))
    };
    for name in [
        "JobsStarted",
        "JobsFinished",
        "QueueWait",
        "JobDuration",
        "ModelLatency",
        "ModelInputTokens",
        "ModelOutputTokens",
        "ToolCalls",
        "ToolDuration",
        "SandboxColdStarts",
    ] {
        let line = metric(name);
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "clawgate");
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        assert!(line[name].is_number(), "{line}");
        for key in declared["Dimensions"][0].as_array().unwrap() {
            assert!(
                line[key.as_str().unwrap()].is_string(),
                "dimension {key} has no value: {line}"
            );
        }
    }
    assert_eq!(metric("ToolCalls")["Tool"], "exec");
    assert_eq!(
        metric("ToolDuration")["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
        "Milliseconds"
    );
    assert_eq!(metric("ModelInputTokens")["ModelInputTokens"], 1.0);
    assert!(lines.iter().all(|l| l["Service"] == "worker"));
    assert!(!stdout.contains("sk-ant-test-key") && !stdout.contains("TESTTOKEN"));
    let count = |name: &str| counters.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(count("JobsStarted"), Some(1), "{counters:?}");
    assert_eq!(count("JobsFinished"), Some(1), "{counters:?}");
    assert_eq!(count("ToolCalls"), Some(1), "{counters:?}");
}
