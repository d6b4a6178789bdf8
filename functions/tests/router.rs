//! The webhook Router with real payloads (fixture files) into a real queue, read back after:
//! SQLite always, SQS on the emulator when `AWS_ENDPOINT_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use functions::{router, Ingress};
use infra::channels::slack_events::sign;
use infra::config::Config;
use infra::queue::sqlite::SqliteQueue;
use infra::queue::sqs::SqsQueue;
use infra::queue::{JobDelivery, JobQueue, JobQueueExt};
use tower::ServiceExt;

const TG_SECRET: &str = "s3cr3t_token-1";
const TG_WORK_SECRET: &str = "w0rk_secret-2";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const HOOK_TOKEN: &str = "hook-token-123";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../infra/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn config() -> Config {
    Config::parse(&format!(
        r#"{{ channels: {{ telegram: {{ webhookSecret: "{TG_SECRET}", botUsername: "clawgate_bot",
                                      groups: {{ "*": {{}} }},
                                      accounts: {{ work: {{ webhookSecret: "{TG_WORK_SECRET}", agent: "ops" }} }} }},
                          slack: {{ signingSecret: "{SLACK_SECRET}", channels: {{ "*": {{}} }} }} }},
             gateway: {{ token: "{HOOK_TOKEN}" }} }}"#
    ))
    .unwrap()
}

struct Harness {
    queue: Arc<dyn JobQueue>,
    sqs: Option<SqsQueue>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var("AWS_ENDPOINT_URL").is_ok() {
            let sdk = infra::aws::load_sdk_config().await;
            let name = format!("cg-fn-{}", ulid::Ulid::new().to_string().to_lowercase());
            let queue = SqsQueue::create_fifo(&sdk, &name, 3, Duration::from_secs(30))
                .await
                .unwrap();
            return Harness {
                queue: Arc::new(queue.clone()),
                sqs: Some(queue),
                _dir: dir,
            };
        }
        if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
        }
        let queue = SqliteQueue::open(
            &dir.path().join("q.db"),
            "jobs",
            Duration::from_secs(30),
            None,
        )
        .unwrap();
        Harness {
            queue: Arc::new(queue),
            sqs: None,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let app = router(Ingress::from_config(&config(), self.queue.clone()));
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Everything queued, acked.
    async fn queued(&self) -> Vec<JobDelivery> {
        let mut all = Vec::new();
        loop {
            let got = self
                .queue
                .receive_jobs(10, Duration::from_millis(300))
                .await
                .unwrap();
            if got.is_empty() {
                return all;
            }
            for d in &got {
                self.queue.ack(&d.delivery.receipt).await.unwrap();
            }
            all.extend(got);
        }
    }

    async fn cleanup(self) {
        if let Some(q) = self.sqs {
            q.delete_with_dead_letter_queue().await.unwrap();
        }
    }
}

fn telegram(body: Vec<u8>, secret: Option<&str>) -> Request<Body> {
    telegram_at("/telegram", body, secret)
}

fn telegram_at(path: &str, body: Vec<u8>, secret: Option<&str>) -> Request<Body> {
    let mut r = Request::post(path).header("content-type", "application/json");
    if let Some(s) = secret {
        r = r.header("x-telegram-bot-api-secret-token", s);
    }
    r.body(Body::from(body)).unwrap()
}

fn slack(body: Vec<u8>, timestamp: i64, signed_body: Option<&[u8]>, retry: bool) -> Request<Body> {
    let signature = sign(SLACK_SECRET, timestamp, signed_body.unwrap_or(&body));
    let mut r = Request::post("/slack/events")
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature);
    if retry {
        r = r
            .header("x-slack-retry-num", "1")
            .header("x-slack-retry-reason", "http_timeout");
    }
    r.body(Body::from(body)).unwrap()
}

/// `POST /hooks/agent` with the right bearer token.
fn hook(body: &'static str) -> Request<Body> {
    Request::post("/hooks/agent")
        .header("authorization", format!("Bearer {HOOK_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_telegram_update_is_queued_as_the_expected_job() {
    let h = Harness::new().await;

    let (status, body) = h
        .send(telegram(
            fixture("telegram/forum_topic.json"),
            Some(TG_SECRET),
        ))
        .await;
    let queued = h.queued().await;

    assert_eq!((status, body.as_str()), (StatusCode::OK, "queued"));
    assert_eq!(queued.len(), 1);
    let job = &queued[0].job;
    assert_eq!(
        job.session_key.to_string(),
        "agent:main:telegram:group:-1009876543210:topic:42"
    );
    assert_eq!(job.inbound.event_id, "telegram:default:987658");
    assert_eq!(
        queued[0].delivery.group,
        "agent:main:telegram:group:-1009876543210:topic:42"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn a_second_bot_has_its_own_secret_agent_and_event_ids() {
    let h = Harness::new().await;
    let update = fixture("telegram/private_message.json");

    let (wrong_secret, _) = h
        .send(telegram_at(
            "/telegram/work",
            update.clone(),
            Some(TG_SECRET),
        ))
        .await;
    let (status, body) = h
        .send(telegram_at(
            "/telegram/work",
            update.clone(),
            Some(TG_WORK_SECRET),
        ))
        .await;
    let (unknown, _) = h
        .send(telegram_at("/telegram/home", update, Some(TG_WORK_SECRET)))
        .await;
    let queued = h.queued().await;

    assert_eq!(wrong_secret, StatusCode::UNAUTHORIZED);
    assert_eq!((status, body.as_str()), (StatusCode::OK, "queued"));
    assert_eq!(unknown, StatusCode::NOT_FOUND);
    assert_eq!(queued.len(), 1);
    let job = &queued[0].job;
    assert_eq!(job.agent_id, "ops");
    assert_eq!(job.inbound.account, "work");
    assert!(
        job.inbound.event_id.starts_with("telegram:work:"),
        "{}",
        job.inbound.event_id
    );
    assert!(job
        .session_key
        .to_string()
        .starts_with("agent:ops:telegram:"));
    h.cleanup().await;
}

#[tokio::test]
async fn a_slack_mention_is_queued_and_url_verification_is_answered() {
    let h = Harness::new().await;
    let now = Utc::now().timestamp();

    let (status, _) = h
        .send(slack(
            fixture("slack/app_mention_thread.json"),
            now,
            None,
            false,
        ))
        .await;
    let (check, challenge) = h
        .send(slack(
            fixture("slack/url_verification.json"),
            now,
            None,
            false,
        ))
        .await;
    let queued = h.queued().await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(check, StatusCode::OK);
    assert_eq!(
        challenge,
        r#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#
    );
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].job.inbound.event_id, "slack:default:Ev08MFMKH6");
    h.cleanup().await;
}

#[tokio::test]
async fn retries_of_the_same_event_queue_nothing_new() {
    let h = Harness::new().await;
    let now = Utc::now().timestamp();

    for _ in 0..2 {
        let (status, _) = h
            .send(telegram(
                fixture("telegram/private_message.json"),
                Some(TG_SECRET),
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (first, _) = h
        .send(slack(fixture("slack/message_im.json"), now, None, false))
        .await;
    let (retry, _) = h
        .send(slack(fixture("slack/message_im.json"), now, None, true))
        .await;
    let queued = h.queued().await;

    assert_eq!(
        (first, retry),
        (StatusCode::OK, StatusCode::OK),
        "retries are acked"
    );
    let events: Vec<&str> = queued
        .iter()
        .map(|d| d.job.inbound.event_id.as_str())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events.contains(&"telegram:default:987654") && events.contains(&"slack:default:Ev0PV52K25")
    );
    h.cleanup().await;
}

#[tokio::test]
async fn every_bad_request_gets_a_4xx_saying_which_and_queues_nothing() {
    let h = Harness::new().await;
    let now = Utc::now().timestamp();
    let update = fixture("telegram/private_message.json");
    let event = fixture("slack/message_im.json");
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "telegram without secret",
            telegram(update.clone(), None),
            StatusCode::UNAUTHORIZED,
            "Secret-Token",
        ),
        (
            "telegram wrong secret",
            telegram(update.clone(), Some("s3cr3t_token-2")),
            StatusCode::UNAUTHORIZED,
            "Secret-Token",
        ),
        (
            "telegram empty body",
            telegram(vec![], Some(TG_SECRET)),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "telegram malformed",
            telegram(b"{\"update_id\": ".to_vec(), Some(TG_SECRET)),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "telegram not an update",
            telegram(br#"{"hello":"world"}"#.to_vec(), Some(TG_SECRET)),
            StatusCode::BAD_REQUEST,
            "update_id",
        ),
        (
            "telegram 2 MiB",
            telegram(vec![b' '; 2 * 1024 * 1024], Some(TG_SECRET)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "slack six minutes old",
            slack(event.clone(), now - 360, None, false),
            StatusCode::UNAUTHORIZED,
            "five minutes",
        ),
        (
            "slack other body",
            slack(event.clone(), now, Some(b"{}"), false),
            StatusCode::UNAUTHORIZED,
            "does not match",
        ),
        (
            "slack missing signature",
            Request::post("/slack/events")
                .header("x-slack-request-timestamp", now.to_string())
                .body(Body::from(event.clone()))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "missing",
        ),
        (
            "slack empty body",
            slack(vec![], now, None, false),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "slack not an event",
            slack(b"{\"x\":1}".to_vec(), now, None, false),
            StatusCode::BAD_REQUEST,
            "needs a type",
        ),
        (
            "hook without token",
            Request::post("/hooks/agent")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"message":"hi"}"#))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "bearer",
        ),
        (
            "hook as text/plain (a cross-site form or fetch)",
            Request::post("/hooks/agent")
                .header("authorization", format!("Bearer {HOOK_TOKEN}"))
                .header("content-type", "text/plain")
                .body(Body::from(r#"{"message":"hi"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            "hook from another site's page",
            Request::post("/hooks/agent")
                .header("authorization", format!("Bearer {HOOK_TOKEN}"))
                .header("content-type", "application/json")
                .header("origin", "http://evil.example")
                .header("host", "gateway.example")
                .body(Body::from(r#"{"message":"hi"}"#))
                .unwrap(),
            StatusCode::FORBIDDEN,
            "cross-origin",
        ),
        (
            "hook malformed",
            hook("{"),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "hook bad session key",
            hook(r#"{"message":"hi","sessionKey":"agent:x"}"#),
            StatusCode::BAD_REQUEST,
            "invalid session key",
        ),
        (
            "hook empty message",
            hook(r#"{"message":"  "}"#),
            StatusCode::BAD_REQUEST,
            "message is empty",
        ),
        (
            "hook unknown agent",
            hook(r#"{"message":"hi","agentId":"nope"}"#),
            StatusCode::BAD_REQUEST,
            "unknown agent \"nope\"",
        ),
        (
            "hook agent other than the session's",
            hook(r#"{"message":"hi","agentId":"ops","sessionKey":"agent:main:main"}"#),
            StatusCode::BAD_REQUEST,
            "is not the agent of sessionKey",
        ),
        (
            "hook deliver to no chat",
            hook(r#"{"message":"hi","deliver":true}"#),
            StatusCode::BAD_REQUEST,
            "deliver needs a sessionKey that names a chat",
        ),
        (
            "hook with an OpenClaw channel override",
            hook(r#"{"message":"hi","deliver":true,"channel":"last"}"#),
            StatusCode::BAD_REQUEST,
            "unknown field `channel`",
        ),
    ];

    for (name, request, status, says) in cases {
        let (got, body) = h.send(request).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(
            body.contains(says),
            "{name}: {body:?} does not say {says:?}"
        );
    }
    assert!(
        h.queued().await.is_empty(),
        "a refused request queued something"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn ignored_updates_are_acked_and_not_queued() {
    let h = Harness::new().await;

    let (status, body) = h
        .send(telegram(
            fixture("telegram/group_no_mention.json"),
            Some(TG_SECRET),
        ))
        .await;
    let (bot, _) = h
        .send(slack(
            fixture("slack/bot_message.json"),
            Utc::now().timestamp(),
            None,
            false,
        ))
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ignored: group message without a mention");
    assert_eq!(bot, StatusCode::OK);
    assert!(h.queued().await.is_empty());
    h.cleanup().await;
}

#[tokio::test]
async fn a_hook_is_accepted_with_its_job_id() {
    let h = Harness::new().await;
    let request = hook(r#"{"message":"nightly report","agentId":"ops"}"#);

    let (status, body) = h.send(request).await;
    let queued = h.queued().await;

    assert_eq!(status, StatusCode::ACCEPTED);
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["jobId"], queued[0].job.job_id.as_str());
    assert_eq!(queued[0].job.agent_id, "ops");
    assert!(queued[0].job.session_key.to_string().starts_with("hook:"));
    assert_eq!(queued[0].job.inbound.text, "nightly report");
    h.cleanup().await;
}

#[tokio::test]
async fn a_hook_with_deliver_replies_in_the_chat_its_session_key_names() {
    let h = Harness::new().await;

    let (to_telegram, _) = h
        .send(hook(
            r#"{"message":"ping","sessionKey":"agent:ops:telegram:dm:12345","deliver":true}"#,
        ))
        .await;
    let (to_slack, _) = h
        .send(hook(
            r#"{"message":"ping","sessionKey":"agent:main:slack:channel:C024BE91L:thread:1700000000.000100","deliver":true}"#,
        ))
        .await;
    let mut queued = h.queued().await;
    queued.sort_by_key(|d| d.job.agent_id.clone());

    assert_eq!(
        (to_telegram, to_slack),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    let (slack, telegram) = (&queued[0].job, &queued[1].job);
    assert_eq!(telegram.agent_id, "ops");
    assert_eq!(telegram.inbound.account, "work", "the bot that serves ops");
    assert_eq!(
        serde_json::to_value(&telegram.reply_to).unwrap(),
        serde_json::json!({"telegram": {"chat_id": 12345, "message_thread_id": null, "reply_to_message_id": null}})
    );
    assert_eq!(slack.inbound.account, "default");
    assert_eq!(
        serde_json::to_value(&slack.reply_to).unwrap(),
        serde_json::json!({"slack": {"channel": "C024BE91L", "thread_ts": "1700000000.000100"}})
    );
    h.cleanup().await;
}

#[tokio::test]
async fn a_queue_that_cannot_be_reached_gets_a_503_so_the_channel_retries() {
    let sdk = aws_sdk_config_for("http://127.0.0.1:9");
    let queue: Arc<dyn JobQueue> = Arc::new(SqsQueue::new(
        &sdk,
        "http://127.0.0.1:9/000000000000/jobs.fifo",
        Duration::from_secs(30),
    ));
    let app = router(Ingress::from_config(&config(), queue));

    let response = app
        .oneshot(telegram(
            fixture("telegram/private_message.json"),
            Some(TG_SECRET),
        ))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

fn aws_sdk_config_for(endpoint: &str) -> infra::aws::SdkConfig {
    infra::aws::SdkConfig::builder()
        .behavior_version(infra::aws::BehaviorVersion::latest())
        .region(infra::aws::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(infra::aws::SharedCredentialsProvider::new(
            infra::aws::Credentials::for_tests(),
        ))
        .build()
}

#[tokio::test]
async fn readyz_answers_200_when_the_queue_answers_and_503_without_saying_where() {
    let h = Harness::new().await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::for_tests(),
        ))
        .build();
    let dead: Arc<dyn JobQueue> = Arc::new(SqsQueue::new(
        &sdk,
        "http://127.0.0.1:9/000000000000/gone.fifo",
        Duration::from_secs(30),
    ));

    let (ready, ready_body) = h
        .send(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    let response = router(Ingress::from_config(&config(), dead))
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);

    assert_eq!(ready, StatusCode::OK, "{ready_body}");
    assert_eq!(ready_body, r#"{"queue":"ok","ready":true}"#);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"queue":"unreachable","ready":false}"#);
    h.cleanup().await;
}
