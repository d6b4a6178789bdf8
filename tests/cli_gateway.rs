//! `clawgate gateway`: the real binary on a free loopback port, a real update over HTTP, the
//! job read back from the SQLite queue it wrote.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use infra::queue::sqlite::SqliteQueue;
use infra::queue::JobQueueExt;

/// Kills the gateway however the test ends, so a failed assertion leaves no process behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_gateway_serves_the_router_and_queues_a_telegram_update() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json");
    std::fs::write(
        &config,
        r#"{ channels: { telegram: { webhookSecret: "s3cr3t_token-1" } } }"#,
    )
    .unwrap();
    let mut gateway = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .arg("--config")
            .arg(&config)
            .args(["gateway", "--port", "0", "--state-dir"])
            .arg(dir.path())
            .env_remove("TELEGRAM_WEBHOOK_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(gateway.0.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    // Keep reading: a closed pipe would make the gateway's next log line fail.
    std::thread::spawn(move || for _ in stderr.lines() {});
    let base = banner.trim().rsplit(' ').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let update = std::fs::read(format!(
        "{}/infra/fixtures/telegram/private_message.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    let refused = http
        .post(format!("{base}/telegram"))
        .body(update.clone())
        .send()
        .await
        .unwrap();
    let queued = http
        .post(format!("{base}/telegram"))
        .header("X-Telegram-Bot-Api-Secret-Token", "s3cr3t_token-1")
        .body(update)
        .send()
        .await
        .unwrap();
    let queue = SqliteQueue::open(
        &dir.path().join("queue.db"),
        "jobs",
        Duration::from_secs(30),
        None,
    )
    .unwrap();
    let jobs = queue
        .receive_jobs(10, Duration::from_secs(2))
        .await
        .unwrap();
    drop(gateway);

    assert!(
        banner.starts_with("clawgate gateway listening on http://127.0.0.1:"),
        "{banner}"
    );
    assert_eq!(health.status(), 200);
    assert_eq!(refused.status(), 401);
    assert_eq!(queued.status(), 200);
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].job.session_key.to_string(),
        "agent:main:telegram:dm:12345"
    );
}

#[test]
fn a_public_bind_without_a_configured_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json");
    std::fs::write(&config, "{}").unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(&config)
        .args(["gateway", "--port", "0", "--bind", "0.0.0.0", "--state-dir"])
        .arg(dir.path().join("state"))
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs a gateway token"), "{stderr}");
    assert!(
        !dir.path().join("state").join("queue.db").exists(),
        "nothing was opened"
    );
}
