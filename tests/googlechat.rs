//! Google Chat end to end through `spawn_stack()`: events carry a bearer JWT the test signs with
//! the key whose public half the fake publishes as Google's key set (the real key URLs stay the
//! config's defaults); replies go through the (fake) Chat API with a token from a service-account
//! grant.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::googlechat::GOOGLE_TEST_KEY;
use fakes::Reply;
use serde_json::{json, Value};
use stack::{spawn_stack, StackOptions, GOOGLE_AUDIENCE};

const ISSUER: &str = "chat@system.gserviceaccount.com";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/infra/fixtures/googlechat/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A token as Chat signs one, with `kid`, `aud` and `exp` as given.
fn chat_token(kid: &str, audience: &str, expires_in: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let claims = json!({"iss": ISSUER, "aud": audience, "iat": now - 10, "exp": now + expires_in});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(GOOGLE_TEST_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_dm_and_a_space_mention_are_answered_through_the_chat_api_and_bad_tokens_reach_nothing(
) {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("Here you go.")),
        StackOptions::no_docker(),
    )
    .await;
    let good = chat_token("e2e-chat-key-1", GOOGLE_AUDIENCE, 3600);

    let unsigned = stack
        .post_bearer("/googlechat", &fixture("message_dm.json"), None)
        .await
        .status();
    let other_audience = stack
        .post_bearer(
            "/googlechat",
            &fixture("message_dm.json"),
            Some(&chat_token("e2e-chat-key-1", "999", 3600)),
        )
        .await
        .status();
    let unknown_key = stack
        .post_bearer(
            "/googlechat",
            &fixture("message_dm.json"),
            Some(&chat_token("not-googles", GOOGLE_AUDIENCE, 3600)),
        )
        .await
        .status();
    let expired = stack
        .post_bearer(
            "/googlechat",
            &fixture("message_dm.json"),
            Some(&chat_token("e2e-chat-key-1", GOOGLE_AUDIENCE, -600)),
        )
        .await
        .status();
    let malformed = stack
        .post_bearer("/googlechat", &json!("not an event"), Some(&good))
        .await
        .status();
    let dm = stack
        .post_bearer("/googlechat", &fixture("message_dm.json"), Some(&good))
        .await;
    let dm_status = dm.status();
    let ack: Value = dm.json().await.unwrap();
    let again = stack
        .post_bearer("/googlechat", &fixture("message_dm.json"), Some(&good))
        .await
        .status();
    let mention = stack
        .post_bearer(
            "/googlechat",
            &fixture("message_space_mention.json"),
            Some(&good),
        )
        .await
        .status();
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| f.googlechat_sent().len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        [unsigned, other_audience, unknown_key, expired].map(|s| s.as_u16()),
        [401; 4]
    );
    assert_eq!(malformed, 400);
    assert_eq!(
        (dm_status.as_u16(), again.as_u16(), mention.as_u16()),
        (200, 200, 200)
    );
    assert_eq!(ack, json!({}), "no synchronous reply: the worker answers");
    assert!(answered, "{}", stack.log_text());
    let sent = stack.fakes.googlechat_sent();
    assert_eq!(
        sent.len(),
        2,
        "the redelivered DM was answered again: {sent:?}"
    );
    assert!(sent.iter().any(|c| c.body["space"] == "spaces/AAAAdmspace"));
    let in_space = sent
        .iter()
        .find(|c| c.body["space"] == "spaces/AAAAteamspace")
        .expect("the mention's answer");
    assert_eq!(
        in_space.body["thread"]["name"],
        "spaces/AAAAteamspace/threads/kUqG2Wm2AAAA"
    );
    assert_eq!(
        in_space.body["messageReplyOption"],
        "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
    );
    assert_eq!(
        stack.fakes.calls("/googlechat/token granted=true").len(),
        1,
        "the token is reused"
    );
    assert_eq!(stack.fakes.model_calls().len(), 2);
}
