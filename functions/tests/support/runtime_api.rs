//! A minimal Lambda Runtime API (the 2018-06-01 HTTP interface a `provided.al2023` bootstrap
//! polls) on loopback, shared by the Lambda tests and the cold-start benchmark.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

#[derive(Default)]
pub struct Runtime {
    /// Events to hand out, as (request id, body), in order.
    pub events: Mutex<VecDeque<(String, String)>>,
    /// What the function answered, as (request id, body), or ("error", text).
    pub responses: Mutex<Vec<(String, Value)>>,
    /// When the function first asked for an event: it is ready.
    pub first_poll: Mutex<Option<Instant>>,
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

/// Kills the function however the caller ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves the Runtime API for `runtime` on a free loopback port; returns `host:port` for
/// `AWS_LAMBDA_RUNTIME_API`.
pub async fn serve(runtime: Arc<Runtime>) -> String {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    api
}
