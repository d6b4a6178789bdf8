//! The outbound channel clients against fake Telegram and Slack APIs on loopback that answer
//! the way the real ones do for formatting errors and rate limits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use infra::channels::slack::SlackClient;
use infra::channels::telegram::TelegramClient;
use infra::config::Secret;
use infra::model::{SlackTarget, TelegramTarget};
use serde_json::{json, Value};

type Log = Arc<Mutex<Vec<(Instant, Value)>>>;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Rejects HTML once (as Telegram does for broken entities), rate-limits once, then accepts.
async fn telegram(State(log): State<Log>, Json(body): Json<Value>) -> Response {
    let n = {
        let mut log = log.lock().unwrap();
        log.push((Instant::now(), body.clone()));
        log.len()
    };
    match n {
        1 => (StatusCode::BAD_REQUEST, Json(json!({"ok": false, "error_code": 400,
            "description": "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"}))).into_response(),
        2 => (StatusCode::TOO_MANY_REQUESTS, Json(json!({"ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}))).into_response(),
        _ => Json(json!({"ok": true, "result": {"message_id": 42}})).into_response(),
    }
}

#[tokio::test]
async fn telegram_falls_back_to_plain_text_and_honours_retry_after() {
    let log: Log = Arc::default();
    let url = serve(
        Router::new()
            .route("/bot{token}/sendMessage", post(telegram))
            .with_state(log.clone()),
    )
    .await;
    let client = TelegramClient::new(reqwest::Client::new(), &url, Secret::new("1:T"));
    let target = TelegramTarget {
        chat_id: 5,
        message_thread_id: Some(9),
        reply_to_message_id: None,
    };

    let id = client.send_message(&target, "**bold** <x>").await.unwrap();

    let log = log.lock().unwrap();
    assert_eq!(id, 42);
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].1["parse_mode"], "HTML");
    assert_eq!(log[0].1["text"], "<b>bold</b> &lt;x&gt;");
    assert_eq!(log[0].1["message_thread_id"], 9);
    assert!(
        log[1].1.get("parse_mode").is_none(),
        "the retry is plain text"
    );
    assert_eq!(log[1].1["text"], "**bold** <x>");
    assert!(
        log[2].0 - log[1].0 >= Duration::from_millis(950),
        "retry_after was not honoured"
    );
}

#[tokio::test]
async fn telegram_errors_never_show_the_bot_token() {
    let client = TelegramClient::new(
        reqwest::Client::new(),
        "http://127.0.0.1:9",
        Secret::new("123:SECRET-TOKEN"),
    );
    let target = TelegramTarget {
        chat_id: 5,
        message_thread_id: None,
        reply_to_message_id: None,
    };

    let err = client.send_message(&target, "hi").await.unwrap_err();

    assert!(err.is_retryable());
    assert!(!err.to_string().contains("SECRET-TOKEN"), "{err}");
}

async fn slack(State(log): State<Log>, Json(body): Json<Value>) -> Response {
    let n = {
        let mut log = log.lock().unwrap();
        log.push((Instant::now(), body.clone()));
        log.len()
    };
    if n == 1 {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
    }
    if body["channel"] == "C_GONE" {
        return Json(json!({"ok": false, "error": "channel_not_found"})).into_response();
    }
    Json(json!({"ok": true, "ts": "1.2"})).into_response()
}

#[tokio::test]
async fn slack_honours_retry_after_and_reports_refusals_as_permanent() {
    let log: Log = Arc::default();
    let url = serve(
        Router::new()
            .route("/api/chat.postMessage", post(slack))
            .with_state(log.clone()),
    )
    .await;
    let client = SlackClient::new(reqwest::Client::new(), &url, Secret::new("xoxb-1"));
    let thread = SlackTarget {
        channel: "C1".into(),
        thread_ts: Some("1700.1".into()),
    };

    let ts = client.post_message(&thread, "hello").await.unwrap();
    let gone = client
        .post_message(
            &SlackTarget {
                channel: "C_GONE".into(),
                thread_ts: None,
            },
            "x",
        )
        .await
        .unwrap_err();

    let log = log.lock().unwrap();
    assert_eq!(ts, "1.2");
    assert_eq!(log[1].1["thread_ts"], "1700.1");
    assert!(
        log[1].0 - log[0].0 >= Duration::from_millis(950),
        "Retry-After was not honoured"
    );
    assert!(!gone.is_retryable());
    assert!(gone.to_string().contains("channel_not_found"));
}
