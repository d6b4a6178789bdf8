//! The Lambda binaries as Lambda runs them: the real `telegram-webhook` binary against a minimal
//! Lambda Runtime API stub on loopback, fed API Gateway HTTP API v2 and Function URL events
//! (fixtures), enqueueing to SQS on the emulator. The answers must be what the axum server
//! gives for the same requests (`tests/router.rs`): 200 "queued", and 401 for a bad secret.

#[path = "support/runtime_api.rs"]
mod runtime_api;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::queue::sqs::SqsQueue;
use infra::queue::JobQueueExt;
use runtime_api::{KillOnDrop, Runtime};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telegram_lambda_answers_apigw_and_function_url_events_like_the_axum_server() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
        }
        eprintln!("skipped: the Lambda functions enqueue to SQS; set AWS_ENDPOINT_URL (scripts/test starts moto)");
        return;
    }
    let sdk = infra::aws::load_sdk_config().await;
    let name = format!("cg-lambda-{}", ulid::Ulid::new().to_string().to_lowercase());
    let queue = SqsQueue::create_fifo(&sdk, &name, 3, Duration::from_secs(30))
        .await
        .unwrap();
    let runtime = Arc::new(Runtime::default());
    for (id, file) in [
        ("req-apigw", "apigw_v2_telegram.json"),
        ("req-url", "function_url_telegram.json"),
        ("req-bad", "function_url_bad_secret.json"),
    ] {
        runtime
            .events
            .lock()
            .unwrap()
            .push_back((id.to_string(), fixture(file)));
    }
    let api = runtime_api::serve(runtime.clone()).await;
    let home = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let _function = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_telegram-webhook"))
            .env_remove("CLAWGATE_CONFIG")
            .env("HOME", home.path())
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "telegram-webhook")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("TELEGRAM_WEBHOOK_SECRET", "s3cr3t_token-1")
            .env("CLAWGATE_QUEUE_URL", queue.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.responses.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_after = runtime.first_poll.lock().unwrap().map(|t| t - started);
    let responses = runtime.responses.lock().unwrap().clone();
    let jobs = queue
        .receive_jobs(10, Duration::from_secs(2))
        .await
        .unwrap();
    queue.delete_with_dead_letter_queue().await.unwrap();

    eprintln!("cold start to first poll: {ready_after:?} (debug build)");
    assert_eq!(responses.len(), 3, "{responses:?}");
    let by_id = |id: &str| {
        responses
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for id in ["req-apigw", "req-url"] {
        let response = by_id(id);
        assert_eq!(response["statusCode"], 200, "{id}: {response}");
        assert_eq!(response["body"], "queued", "{id}: {response}");
    }
    let refused = by_id("req-bad");
    assert_eq!(refused["statusCode"], 401, "{refused}");
    assert!(refused["body"].as_str().unwrap().contains("Secret-Token"));
    let mut events: Vec<String> = jobs
        .iter()
        .map(|j| j.job.inbound.event_id.clone())
        .collect();
    events.sort();
    assert_eq!(
        events,
        ["telegram:default:987654", "telegram:default:987999"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_reads_its_secrets_from_secrets_manager_when_given_an_arn() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
        }
        eprintln!("skipped: needs the emulator (AWS_ENDPOINT_URL)");
        return;
    }
    let sdk = infra::aws::load_sdk_config().await;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let queue = SqsQueue::create_fifo(&sdk, &format!("cg-lsec-{id}"), 3, Duration::from_secs(30))
        .await
        .unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = secrets
        .create_secret()
        .name(format!("clawgate-test-{id}"))
        .secret_string(r#"{"TELEGRAM_WEBHOOK_SECRET": "s3cr3t_token-1"}"#)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let runtime = Arc::new(Runtime::default());
    for (id, file) in [
        ("req-good", "apigw_v2_telegram.json"),
        ("req-bad", "function_url_bad_secret.json"),
    ] {
        runtime
            .events
            .lock()
            .unwrap()
            .push_back((id.to_string(), fixture(file)));
    }
    let api = runtime_api::serve(runtime.clone()).await;
    let home = tempfile::tempdir().unwrap();

    let _function = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_telegram-webhook"))
            .env_remove("CLAWGATE_CONFIG")
            .env_remove("TELEGRAM_WEBHOOK_SECRET")
            .env("HOME", home.path())
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "telegram-webhook")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("CLAWGATE_SECRETS_ARN", &arn)
            .env("CLAWGATE_QUEUE_URL", queue.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.responses.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let responses = runtime.responses.lock().unwrap().clone();
    let jobs = queue
        .receive_jobs(10, Duration::from_secs(2))
        .await
        .unwrap();
    queue.delete_with_dead_letter_queue().await.unwrap();
    let _ = secrets
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await;

    let status = |id: &str| {
        responses
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, v)| v["statusCode"].clone())
    };
    assert_eq!(status("req-good"), Some(200.into()), "{responses:?}");
    assert_eq!(status("req-bad"), Some(401.into()), "{responses:?}");
    assert_eq!(jobs.len(), 1);
}
