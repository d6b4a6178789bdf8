//! The worker in-process for end-to-end tests: a config around the fake platforms, jobs as the
//! channels queue them, and a worker on SQLite files that a test starts and shuts down.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use infra::config::Config;
use infra::model::JobMessage;
use infra::setup::{open_backends, Backends};
use sandbox_worker::llm::RetryPolicy;
use sandbox_worker::worker::{Worker, WorkerSettings};
use tokio::sync::watch;

use crate::fakes::Fakes;

/// `sandbox` is spliced into `agents.defaults.sandbox`; `extra` into the top level.
pub fn config_text(fakes: &Fakes, workspace: &Path, sandbox: &str, extra: &str) -> String {
    format!(
        r#"{{
          agents: {{ defaults: {{ model: "anthropic/claude-test", workspace: "{ws}", sandbox: {{ {sandbox} }} }} }},
          models: {{ providers: {{ anthropic: {{ apiKey: "sk-ant-test-key", baseUrl: "{base}" }} }} }},
          channels: {{
            telegram: {{ botToken: "123456:TESTTOKEN", apiBase: "{base}", streaming: "off", dmPolicy: "allowlist", allowFrom: [12345] }},
            slack: {{ botToken: "xoxb-test-token", apiBase: "{base}", streaming: "off", dmPolicy: "allowlist", allowFrom: ["U2147483697"],
                     channels: {{ "*": {{}} }} }},
          }},
          queue: {{ visibilityTimeoutSeconds: 2, maxReceiveCount: 3 }},
          {extra}
        }}"#,
        ws = workspace.display(),
        base = fakes.base_url,
    )
}

/// Tools on the host (no Docker needed), the workspace under `dir`; `extra` as in
/// [`config_text`].
pub fn host_config(fakes: &Fakes, dir: &Path, extra: &str) -> Config {
    Config::parse(&config_text(
        fakes,
        &dir.join("ws"),
        r#"mode: "off""#,
        extra,
    ))
    .unwrap()
}

pub fn telegram_job(event: &str) -> JobMessage {
    let mut job = JobMessage::decode(include_str!("../../../infra/fixtures/job_v1.json")).unwrap();
    job.job_id = ulid::Ulid::new().to_string();
    job.inbound.event_id = format!("telegram:default:{event}");
    job
}

pub fn slack_job(event: &str) -> JobMessage {
    let mut job =
        JobMessage::decode(include_str!("../../../infra/fixtures/job_v1_slack.json")).unwrap();
    job.job_id = ulid::Ulid::new().to_string();
    job.inbound.event_id = format!("slack:default:{event}");
    job
}

pub struct InProcess {
    pub backends: Backends,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn start_worker(
    config: &Config,
    dir: &Path,
    tweak: impl FnOnce(&mut WorkerSettings),
) -> InProcess {
    let backends = open_backends(config, dir).await.unwrap();
    let mut settings = WorkerSettings::new(backends.visibility);
    settings.receive_wait = Duration::from_millis(500);
    settings.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
    };
    tweak(&mut settings);
    let worker = Arc::new(Worker::new(config.clone(), backends.clone(), dir, settings).unwrap());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    InProcess {
        backends,
        stop,
        task,
    }
}

impl InProcess {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}
