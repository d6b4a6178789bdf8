//! Microsoft Teams end to end through `spawn_stack()`: activities carry a bearer JWT the test
//! signs with the key the fake Bot Framework publishes behind its OpenID metadata (the real
//! metadata URL stays the config's default); replies, "typing…" and the preview's update go
//! to the fake Bot Connector with a client-credentials token.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::googlechat::GOOGLE_TEST_KEY;
use fakes::msteams::MSTEAMS_APP_ID;
use fakes::Reply;
use serde_json::{json, Value};
use stack::{spawn_stack, StackOptions};

const ISSUER: &str = "https://api.botframework.com";
const PATH: &str = "/api/messages";

/// A fixture activity, sent from the fake Connector's service URL.
fn activity(name: &str, service_url: &str) -> Value {
    let path = format!(
        "{}/infra/fixtures/msteams/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut activity: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    activity["serviceUrl"] = json!(service_url);
    activity
}

/// A token as the Bot Framework signs one: for `audience`, bound to `service_url`.
fn channel_token(audience: &str, service_url: &str, expires_in: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("e2e-chat-key-1".into());
    let claims = json!({"iss": ISSUER, "aud": audience, "serviceUrl": service_url,
        "nbf": now - 10, "iat": now - 10, "exp": now + expires_in});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(GOOGLE_TEST_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_dm_and_a_channel_mention_are_answered_in_place_and_bad_tokens_reach_nothing() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            // The DM's turn runs a tool, so its preview is posted and then updated.
            1 => Reply::tool_use("toolu_t1", "session_status", json!({})),
            _ => Reply::text("Here you go."),
        }),
        StackOptions {
            streaming: "progress",
            ..StackOptions::no_docker()
        },
    )
    .await;
    let service = stack.fakes.msteams_service_url();
    let good = channel_token(MSTEAMS_APP_ID, &service, 3600);
    let dm = activity("message_personal.json", &service);

    let unsigned = stack.post_bearer(PATH, &dm, None).await.status();
    let other_bot = stack
        .post_bearer(
            PATH,
            &dm,
            Some(&channel_token("another-bot", &service, 3600)),
        )
        .await
        .status();
    let expired = stack
        .post_bearer(
            PATH,
            &dm,
            Some(&channel_token(MSTEAMS_APP_ID, &service, -900)),
        )
        .await
        .status();
    // A genuine token replayed with a body pointing the bot's replies elsewhere.
    let redirected = stack
        .post_bearer(
            PATH,
            &activity("message_personal.json", "https://evil.example/"),
            Some(&good),
        )
        .await
        .status();
    // Bound to the token, but no conversation or sender.
    let malformed = stack
        .post_bearer(
            PATH,
            &json!({"type": "message", "channelId": "msteams", "serviceUrl": service}),
            Some(&good),
        )
        .await
        .status();
    let first = stack.post_bearer(PATH, &dm, Some(&good)).await.status();
    let redelivered = stack.post_bearer(PATH, &dm, Some(&good)).await.status();
    let dm_answered = stack
        .wait_for(Duration::from_secs(60), |f| !f.msteams_sent().is_empty())
        .await;
    let mention = stack
        .post_bearer(
            PATH,
            &activity("message_channel_mention.json", &service),
            Some(&good),
        )
        .await
        .status();
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| {
            f.msteams_sent().len() >= 2
                && (f.calls("/msteams/updates").iter()).any(|u| u.body["text"] == "Here you go.")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        [unsigned, other_bot, expired, redirected].map(|s| s.as_u16()),
        [401; 4]
    );
    assert_eq!(malformed, 400);
    assert_eq!(
        (first.as_u16(), redelivered.as_u16(), mention.as_u16()),
        (200, 200, 200)
    );
    assert!(dm_answered && answered, "{}", stack.log_text());
    let sent = stack.fakes.msteams_sent();
    assert_eq!(sent.len(), 2, "one message per conversation: {sent:?}");
    let in_dm = &sent[0];
    assert!(in_dm.body["text"]
        .as_str()
        .unwrap()
        .contains("session_status"));
    assert!(in_dm.body["conversation"]
        .as_str()
        .unwrap()
        .starts_with("a:1Xk9"));
    assert_eq!(in_dm.body["replyTo"], "1733307330123");
    let updates = stack.fakes.calls("/msteams/updates");
    assert!(
        updates.iter().any(|u| u.body["text"] == "Here you go."),
        "the preview became the answer: {updates:?}"
    );
    let in_channel = &sent[1];
    assert_eq!(
        in_channel.body["conversation"],
        "19:8a1b2c3d4e5f60718293a4b5c6d7e8f9@thread.tacv2;messageid=1733307000000"
    );
    assert_eq!(in_channel.body["replyTo"], "1733307400456");
    assert!(!stack.fakes.calls("/msteams/typing").is_empty());
    assert_eq!(
        stack.fakes.calls("/msteams/token granted=true").len(),
        1,
        "the token is reused"
    );
    assert_eq!(
        stack.fakes.model_calls().len(),
        3,
        "the redelivery reached no model"
    );
}
