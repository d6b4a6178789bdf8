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
use infra::queue::{JobQueue, JobQueueExt};
use runtime_api::{KillOnDrop, Runtime};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The functions enqueue to SQS: without an emulator these tests skip (or fail under
/// `CLAWGATE_REQUIRE_AWS=1`, as in `scripts/test`).
fn emulator_or_skip() -> bool {
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        return true;
    }
    if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
        panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
    }
    eprintln!("skipped: the Lambda functions enqueue to SQS; set AWS_ENDPOINT_URL (scripts/test starts moto)");
    false
}

/// A Runtime API stub that hands out these (request id, fixture file) events in order.
fn runtime_with(events: &[(&str, &str)]) -> Arc<Runtime> {
    let runtime = Arc::new(Runtime::default());
    for (id, file) in events {
        runtime
            .events
            .lock()
            .unwrap()
            .push_back((id.to_string(), fixture(file)));
    }
    runtime
}

/// The real `telegram-webhook` binary as Lambda starts it, polling `api`; `env` adds to the
/// Lambda variables, and the secret variables not in `env` are removed.
fn spawn_function(api: &str, home: &std::path::Path, env: &[(&str, &str)]) -> KillOnDrop {
    let mut command = Command::new(env!("CARGO_BIN_EXE_telegram-webhook"));
    command
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("TELEGRAM_WEBHOOK_SECRET")
        .env_remove("CLAWGATE_SECRETS_ARN")
        .env("HOME", home)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "telegram-webhook")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    KillOnDrop(command.spawn().unwrap())
}

/// Waits (up to 60 s) until the function has answered `n` events.
async fn wait_for_answers(runtime: &Runtime, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.responses.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telegram_lambda_answers_apigw_and_function_url_events_like_the_axum_server() {
    if !emulator_or_skip() {
        return;
    }
    let sdk = infra::aws::load_sdk_config().await;
    let name = format!("cg-lambda-{}", ulid::Ulid::new().to_string().to_lowercase());
    let queue = SqsQueue::create_fifo(&sdk, &name, 3, Duration::from_secs(30))
        .await
        .unwrap();
    let runtime = runtime_with(&[
        ("req-apigw", "apigw_v2_telegram.json"),
        ("req-url", "function_url_telegram.json"),
        ("req-bad", "function_url_bad_secret.json"),
    ]);
    let api = runtime_api::serve(runtime.clone()).await;
    let home = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let _function = spawn_function(
        &api,
        home.path(),
        &[
            ("TELEGRAM_WEBHOOK_SECRET", "s3cr3t_token-1"),
            ("CLAWGATE_QUEUE_URL", queue.url()),
        ],
    );
    wait_for_answers(&runtime, 3).await;
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
    if !emulator_or_skip() {
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
    let runtime = runtime_with(&[
        ("req-good", "apigw_v2_telegram.json"),
        ("req-bad", "function_url_bad_secret.json"),
    ]);
    let api = runtime_api::serve(runtime.clone()).await;
    let home = tempfile::tempdir().unwrap();

    let _function = spawn_function(
        &api,
        home.path(),
        &[
            ("CLAWGATE_SECRETS_ARN", arn.as_str()),
            ("CLAWGATE_QUEUE_URL", queue.url()),
        ],
    );
    wait_for_answers(&runtime, 2).await;
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

/// An API Gateway event carrying `update` (a Telegram update) with the right secret.
fn apigw_event_with(update: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&fixture("apigw_v2_telegram.json")).unwrap();
    event["body"] = update.into();
    event["headers"]["content-length"] = update.len().to_string().into();
    event.to_string()
}

/// The config the deployment's parameter holds in this test, and in `scripts/terraform-check`'s
/// apply of `examples/complete` (its `config_json`): the bot's username and one listed group.
const DEPLOYED_CONFIG: &str = include_str!("../fixtures/deployed_config.json");

/// A group mention passes ingress only with the deployment's config (botUsername, the group
/// listed), which the function reads from the SSM parameter: on a parameter made here, or, when
/// `scripts/terraform-check` sets `CLAWGATE_E2E_CONFIG_PARAMETER` and `CLAWGATE_E2E_QUEUE_URL`,
/// on the parameter and queue Terraform made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_mention_is_queued_with_the_config_the_deployment_parameter_holds() {
    if !emulator_or_skip() {
        return;
    }
    let sdk = infra::aws::load_sdk_config().await;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let deployed = std::env::var("CLAWGATE_E2E_CONFIG_PARAMETER")
        .ok()
        .zip(std::env::var("CLAWGATE_E2E_QUEUE_URL").ok());
    let (parameter, queue_url, made) = match deployed {
        Some((parameter, url)) => (parameter, url, None),
        None => {
            let queue =
                SqsQueue::create_fifo(&sdk, &format!("cg-lcfg-{id}"), 3, Duration::from_secs(30))
                    .await
                    .unwrap();
            let name = format!("/clawgate-test-{id}/config");
            ssm.put_parameter()
                .name(&name)
                .value(DEPLOYED_CONFIG)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .send()
                .await
                .unwrap();
            (name, queue.url().to_string(), Some(queue))
        }
    };
    let group = include_str!("../../infra/fixtures/telegram/group_mention.json");
    let stranger_group = group.replace("-1001234567890", "-1009999999999");
    let runtime = Arc::new(Runtime::default());
    for (request, update) in [("req-listed", group), ("req-unlisted", &stranger_group)] {
        runtime
            .events
            .lock()
            .unwrap()
            .push_back((request.to_string(), apigw_event_with(update)));
    }
    let api = runtime_api::serve(runtime.clone()).await;
    let home = tempfile::tempdir().unwrap();

    let _function = spawn_function(
        &api,
        home.path(),
        &[
            ("TELEGRAM_WEBHOOK_SECRET", "s3cr3t_token-1"),
            ("CLAWGATE_QUEUE_URL", queue_url.as_str()),
            ("CLAWGATE_CONFIG_PARAMETER", parameter.as_str()),
        ],
    );
    wait_for_answers(&runtime, 2).await;
    let responses = runtime.responses.lock().unwrap().clone();
    let queue = SqsQueue::new(&sdk, &queue_url, Duration::from_secs(30));
    let mut ours = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ours.is_empty() && Instant::now() < deadline {
        for job in queue
            .receive_jobs(10, Duration::from_secs(1))
            .await
            .unwrap()
        {
            // On the shared Terraform-made queue, take only this update's job.
            if job.job.inbound.event_id == "telegram:default:987655" {
                queue.ack(&job.delivery.receipt).await.unwrap();
                ours.push(job);
            } else {
                let _ = queue.release(&job.delivery.receipt).await;
            }
        }
    }
    if let Some(queue) = made {
        queue.delete_with_dead_letter_queue().await.unwrap();
        let _ = ssm.delete_parameter().name(&parameter).send().await;
    }

    let body = |id: &str| {
        responses
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, v)| v["body"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(body("req-listed"), "queued", "{responses:?}");
    assert!(body("req-unlisted").starts_with("ignored"), "{responses:?}");
    assert_eq!(ours.len(), 1, "the listed group's mention is on the queue");
    assert_eq!(
        ours[0].job.session_key.to_string(),
        "agent:main:telegram:group:-1001234567890"
    );
}
