//! The Lambda binaries as Lambda runs them: the real `telegram-webhook` binary against a minimal
//! Lambda Runtime API stub on loopback, fed API Gateway HTTP API v2 and Function URL events
//! (fixtures), enqueueing to SQS on the emulator. The answers must be what the axum server
//! gives for the same requests (`tests/router.rs`): 200 "queued", and 401 for a bad secret.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use infra::queue::sqs::SqsQueue;
use infra::queue::JobQueueExt;
use serde_json::Value;

#[derive(Default)]
struct Runtime {
    events: Mutex<VecDeque<(String, String)>>,
    responses: Mutex<Vec<(String, Value)>>,
    first_poll: Mutex<Option<Instant>>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> Response {
    rt.first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let event = rt.events.lock().unwrap().pop_front();
    let Some((id, body)) = event else {
        // No more events: hold the poll, as Lambda does between invocations.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return "".into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:telegram-webhook"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            .parse()
            .unwrap(),
    );
    (headers, body).into_response()
}

async fn respond(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    rt.responses.lock().unwrap().push((
        id,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ));
    "accepted"
}

async fn error(State(rt): State<Arc<Runtime>>, body: String) -> &'static str {
    rt.responses
        .lock()
        .unwrap()
        .push(("error".into(), Value::String(body)));
    "accepted"
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(runtime.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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
