//! The channels that joined on the channel contract, end to end through `spawn_stack()`: the real
//! `clawgate up`, its queue and store, and fakes that speak each platform's wire format and
//! refuse what the platform refuses.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::Reply;
use serde_json::{json, Value};
use stack::{spawn_stack, whatsapp_text, Stack, StackOptions};

const OWNER_WA: &str = "16505551234";

async fn stack_answering(text: &'static str, options: StackOptions) -> Stack {
    spawn_stack(Arc::new(move |_, _: &Value| Reply::text(text)), options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_message_is_answered_through_the_cloud_api_and_a_redelivery_answers_once() {
    let stack = stack_answering("**Blue** and green, yes.", StackOptions::no_docker()).await;
    let message = whatsapp_text(OWNER_WA, "wamid.E2E.ONE", "Does it come in another color?");

    let first = stack.post_whatsapp(&message).await;
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| !f.whatsapp_sent().is_empty())
        .await;
    // Meta redelivers a notification it got no 200 for, for days: the same wamid.
    let again = stack.post_whatsapp(&message).await;
    let control = whatsapp_text(OWNER_WA, "wamid.E2E.TWO", "and in red?");
    stack.post_whatsapp(&control).await;
    let second = stack
        .wait_for(Duration::from_secs(60), |f| f.whatsapp_sent().len() >= 2)
        .await;

    assert_eq!((first.as_u16(), again.as_u16()), (200, 200));
    assert!(answered && second, "{}", stack.log_text());
    let sent = stack.fakes.whatsapp_sent();
    assert_eq!(sent.len(), 2, "the redelivered message was answered again");
    assert_eq!(sent[0].body["to"], OWNER_WA);
    assert_eq!(sent[0].body["type"], "text");
    assert_eq!(
        sent[0].body["text"]["body"], "*Blue* and green, yes.",
        "markdown becomes WhatsApp markup"
    );
    let model = stack.fakes.model_calls();
    assert_eq!(model.len(), 2);
    assert!(model[0].body.to_string().contains("another color"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_malformed_and_oversized_whatsapp_requests_reach_nothing() {
    let stack = stack_answering("should not be said", StackOptions::no_docker()).await;
    let url = format!("{}/whatsapp", stack.base_url);
    let body = serde_json::to_vec(&whatsapp_text(OWNER_WA, "wamid.FORGED", "hi")).unwrap();
    let post = |body: Vec<u8>, signature: String| {
        // Each on a connection of its own, as an attacker's would be: a refused oversized body
        // ends its connection, which must not fail the next request.
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
    };
    let sign = |body: &[u8]| infra::channels::whatsapp_webhook::sign(stack::WA_SECRET, body);
    let mut stale = whatsapp_text(OWNER_WA, "wamid.STALE", "hi");
    let two_days_ago = chrono::Utc::now().timestamp() - 2 * 24 * 3600;
    stale["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(two_days_ago.to_string());
    let stale = serde_json::to_vec(&stale).unwrap();
    let malformed = b"{\"object\": \"whatsapp_business_account\", \"entry\": [".to_vec();
    let huge = vec![b' '; 2 * 1024 * 1024];
    let stranger = whatsapp_text("15550009999", "wamid.STRANGER", "let me in");

    let forged = post(body.clone(), sign(b"another body")).await.unwrap();
    let wrong_key = post(
        body.clone(),
        infra::channels::whatsapp_webhook::sign("guessed", &body),
    )
    .await
    .unwrap();
    let old = post(stale.clone(), sign(&stale)).await.unwrap();
    let broken = post(malformed.clone(), sign(&malformed)).await.unwrap();
    let oversized = post(huge.clone(), sign(&huge)).await.unwrap();
    let from_stranger = stack.post_whatsapp(&stranger).await;
    let handshake = |token: &str| {
        stack
            .http
            .get(format!(
                "{url}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
            ))
            .send()
    };
    let subscribed = handshake("e2e-verify").await.unwrap();
    let refused = handshake("guess").await.unwrap();
    // A control message shows the worker was running all along.
    stack
        .post_whatsapp(&whatsapp_text(OWNER_WA, "wamid.CONTROL", "ping"))
        .await;
    let control = stack
        .wait_for(Duration::from_secs(60), |f| !f.whatsapp_sent().is_empty())
        .await;

    assert_eq!(forged.status(), 401);
    assert_eq!(wrong_key.status(), 401);
    assert_eq!(
        old.status(),
        200,
        "acknowledged, so Meta stops redelivering"
    );
    assert_eq!(broken.status(), 400);
    assert_eq!(oversized.status(), 413);
    assert_eq!(from_stranger, 200);
    // `clawgate whatsapp check` does Meta's handshake the same way (and fails loudly if not).
    stack.cli(&["whatsapp", "check", "--url", &url]);
    assert_eq!(subscribed.status(), 200);
    assert_eq!(subscribed.text().await.unwrap(), "1158201444");
    assert_eq!(refused.status(), 403);
    assert!(control, "{}", stack.log_text());
    let model = stack.fakes.model_calls();
    assert_eq!(model.len(), 1, "only the control message reached the model");
    assert!(model[0].body.to_string().contains("ping"));
    assert_eq!(stack.fakes.whatsapp_sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_outside_the_customer_service_window_fails_with_the_reason() {
    let token = "hook-token-0123456789abcdef";
    let stack = stack_answering(
        "your package shipped",
        StackOptions {
            gateway_token: Some(token.into()),
            ..StackOptions::no_docker()
        },
    )
    .await;

    // The user has never written: WhatsApp refuses a free-form message (code 131047).
    let accepted = stack
        .http
        .post(format!("{}/hooks/agent", stack.base_url))
        .bearer_auth(token)
        .json(&json!({"message": "tell them the package shipped",
                      "sessionKey": "agent:main:whatsapp:dm:+15557654321", "deliver": true}))
        .send()
        .await
        .unwrap()
        .status();
    let refused = stack
        .wait_for(Duration::from_secs(60), |f| {
            !f.calls("/whatsapp/messages window").is_empty()
        })
        .await;
    let explained = {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !stack.log_text().contains("customer-service window")
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stack.log_text().contains("customer-service window")
    };

    assert_eq!(accepted, 202);
    assert!(refused, "{}", stack.log_text());
    assert_eq!(
        stack.fakes.calls("/whatsapp/messages window")[0].body["to"],
        "15557654321"
    );
    assert!(explained, "{}", stack.log_text());
    assert!(stack.fakes.whatsapp_sent().is_empty());
}

/// A Slack `app_mention` in the listed channel, as an Events API payload.
fn slack_mention(event_id: &str, text: &str) -> Value {
    json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": 1700000300,
        "event": {"type": "app_mention", "user": "U2147483697", "text": text,
                  "ts": format!("1700000300.{}", &event_id[event_id.len() - 4..]),
                  "channel": "C024BE91L", "event_ts": "1700000300.000100"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_socket_mode_a_crash_before_the_ack_answers_once_and_bad_envelopes_are_skipped() {
    let mut stack = stack_answering(
        "over the socket",
        StackOptions {
            slack_socket: true,
            ..StackOptions::no_docker()
        },
    )
    .await;

    // Queued, answered, and the ack never taken: as if the process died before sending it.
    stack.fakes.hold_socket_acks(true);
    stack
        .fakes
        .push_socket_event("env-1", slack_mention("EvCRASH0001", "<@U0LAN0Z89> first"));
    let first = stack
        .wait_for(Duration::from_secs(60), |f| !f.slack_posts().is_empty())
        .await;
    assert!(first, "{}", stack.log_text());
    stack.kill();
    stack.fakes.hold_socket_acks(false);
    stack.start();
    // Slack sends env-1 again on the new connection; then hostile envelopes and a control.
    stack
        .fakes
        .push_socket_event("env-bad", json!({"type": "event_callback"}));
    let huge = "x".repeat(300 * 1024);
    stack
        .fakes
        .push_socket_event("env-huge", slack_mention("EvHUGE00001", &huge));
    stack.fakes.push_socket_event(
        "env-ctrl",
        slack_mention("EvCTRL00001", "<@U0LAN0Z89> control"),
    );
    let control = stack
        .wait_for(Duration::from_secs(60), |f| f.slack_posts().len() >= 2)
        .await;
    let all_acked = stack
        .wait_for(Duration::from_secs(10), |f| {
            let acks = f.socket_acks();
            ["env-bad", "env-huge", "env-ctrl"]
                .iter()
                .all(|id| acks.iter().any(|a| a == id))
                && acks.iter().filter(|a| *a == "env-1").count() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert!(control, "{}", stack.log_text());
    assert!(all_acked, "acks: {:?}", stack.fakes.socket_acks());
    assert_eq!(stack.fakes.slack_posts().len(), 2, "env-1 answered once");
    assert_eq!(stack.fakes.model_calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_skips_malformed_and_oversized_updates_and_answers_the_next() {
    let stack = stack_answering(
        "polled",
        StackOptions {
            telegram_polling: true,
            ..StackOptions::no_docker()
        },
    )
    .await;

    stack
        .fakes
        .push_telegram_update(json!({"update_id": 7001, "message": {"message_id": 1, "chat": "not an object", "text": "hi"}}));
    stack
        .fakes
        .push_telegram_update(stack::telegram_dm(7002, &"y".repeat(300 * 1024)));
    stack
        .fakes
        .push_telegram_update(stack::telegram_dm(7003, "control"));
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| !f.sent_messages().is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert!(answered, "{}", stack.log_text());
    assert_eq!(stack.fakes.sent_messages().len(), 1);
    let model = stack.fakes.model_calls();
    assert_eq!(model.len(), 1, "only the control update reached the model");
    assert!(model[0].body.to_string().contains("control"));
}

/// `clawgate worker` with `--ingress`, alone (no `clawgate up`): it long-polls the fake bot and
/// answers; with no channel set up for it, `--ingress` refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_with_ingress_long_polls_and_answers_and_refuses_when_there_is_nothing_to_take() {
    let fakes = fakes::Fakes::start(Arc::new(|_, _: &Value| Reply::text("from the worker"))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{ agents: {{ defaults: {{ model: "anthropic/claude-test", workspace: "{ws}", sandbox: {{ mode: "off" }} }} }},
                 models: {{ providers: {{ anthropic: {{ apiKey: "sk-ant-e2e", baseUrl: "{base}" }} }} }},
                 channels: {{ telegram: {{ botToken: "{token}", apiBase: "{base}", dmPolicy: "allowlist", allowFrom: [12345] }} }} }}"#,
            ws = dir.path().join("ws").display(),
            base = fakes.base_url,
            token = stack::TG_TOKEN,
        ),
    )
    .unwrap();
    let bare = dir.path().join("bare.json5");
    std::fs::write(&bare, "{}").unwrap();
    let worker = |config: &std::path::Path, state: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .arg("--config")
            .arg(config)
            .args(["worker", "--ingress", "--state-dir"])
            .arg(dir.path().join(state))
            .env_remove("TELEGRAM_BOT_TOKEN")
            .env_remove("SLACK_APP_TOKEN")
            .env_remove("DISCORD_BOT_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{state}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let log = |state: &str| {
        std::fs::read_to_string(dir.path().join(format!("{state}.log"))).unwrap_or_default()
    };

    let refused = worker(&bare, "bare").wait().unwrap();
    let _running = stack::KillOnDrop(worker(&config, "state"));
    fakes.push_telegram_update(stack::telegram_dm(9101, "are you there?"));
    let answered = fakes
        .wait_for(Duration::from_secs(60), |f| !f.sent_messages().is_empty())
        .await;

    assert!(!refused.success());
    assert!(
        log("bare").contains("--ingress: no channel"),
        "{}",
        log("bare")
    );
    assert!(
        answered,
        "the worker never answered the polled DM:\n{}",
        log("state")
    );
    assert_eq!(fakes.sent_messages()[0].body["text"], "from the worker");
}

/// An iMessage from `handle` as BlueBubbles posts it (`new-message`).
fn imessage(guid: &str, handle: &str, text: &str) -> Value {
    json!({"type": "new-message", "data": {"guid": guid, "text": text, "isFromMe": false,
        "itemType": 0, "associatedMessageType": null, "attachments": [],
        "handle": {"address": handle, "service": "iMessage"}, "dateCreated": 1764842400000i64,
        "chats": [{"guid": format!("iMessage;-;{handle}"), "style": 45, "chatIdentifier": handle}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imessage_through_bluebubbles_is_answered_once_and_a_wrong_password_reaches_nothing() {
    let stack = stack_answering("On it.", StackOptions::no_docker()).await;
    let password = fakes::bluebubbles::BLUEBUBBLES_PASSWORD;
    let message = imessage("5C2B4F2A-0001", "+15551234567", "check my flight");

    let wrong = stack
        .post_bluebubbles(&imessage("FORGED-1", "+15551234567", "hi"), "guess")
        .await;
    let stranger = stack
        .post_bluebubbles(
            &imessage("STRANGER-1", "+15550009999", "let me in"),
            password,
        )
        .await;
    let first = stack.post_bluebubbles(&message, password).await;
    let again = stack.post_bluebubbles(&message, password).await;
    stack
        .post_bluebubbles(
            &imessage("5C2B4F2A-0002", "+15551234567", "and the hotel?"),
            password,
        )
        .await;
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| f.bluebubbles_sent().len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(wrong, 401);
    assert_eq!(
        (stranger.as_u16(), first.as_u16(), again.as_u16()),
        (200, 200, 200)
    );
    assert!(answered, "{}", stack.log_text());
    let sent = stack.fakes.bluebubbles_sent();
    assert_eq!(sent.len(), 2, "the redelivered message was answered again");
    assert_eq!(sent[0].body["chatGuid"], "iMessage;-;+15551234567");
    assert_eq!(sent[0].body["message"], "On it.");
    assert_eq!(
        stack.fakes.model_calls().len(),
        2,
        "the stranger and the forgery reached no model"
    );
}

/// A Signal data message as signal-cli streams it: from `source`, in a group when given.
fn signal_message(source: &str, sent: i64, text: &str, group: Option<&str>) -> Value {
    let mut data =
        json!({"timestamp": sent, "message": text, "expiresInSeconds": 0, "viewOnce": false});
    if let Some(group) = group {
        data["groupInfo"] = json!({"groupId": group, "type": "DELIVER"});
        data["mentions"] = json!([{"number": "+15550001111", "start": 0, "length": 1}]);
    }
    json!({"envelope": {"source": source, "sourceNumber": source, "sourceName": "Ada",
        "sourceDevice": 1, "timestamp": sent, "dataMessage": data}, "account": "+15550001111"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_messages_come_over_signal_cli_events_and_are_answered_with_json_rpc_send() {
    let stack = stack_answering(
        "Noted.",
        StackOptions {
            signal: true,
            ..StackOptions::no_docker()
        },
    )
    .await;
    let group = "S2V5Q2hhaW5Hcm91cElkRm9yVGVzdGluZz0=";

    stack.fakes.push_signal_event(json!({"envelope": {"source": "+15551234567", "timestamp": 1, "receiptMessage": {"isDelivery": true}}}));
    stack.fakes.push_signal_event(json!({"not": "an envelope"}));
    stack.fakes.push_signal_event(signal_message(
        "+15550009999",
        1764842400001,
        "a stranger",
        None,
    ));
    stack.fakes.push_signal_event(signal_message(
        "+15551234567",
        1764842400002,
        "call the bank",
        None,
    ));
    stack.fakes.push_signal_event(signal_message(
        "+15557654321",
        1764842400003,
        "meeting time?",
        Some(group),
    ));
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| f.signal_sent().len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(answered, "{}", stack.log_text());
    let sent = stack.fakes.signal_sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent
        .iter()
        .any(|c| c.body["recipient"] == json!(["+15551234567"]) && c.body["message"] == "Noted."));
    assert!(sent.iter().any(|c| c.body["groupId"] == group));
    assert!(sent.iter().all(|c| c.body["account"] == "+15550001111"));
    assert_eq!(
        stack.fakes.model_calls().len(),
        2,
        "the receipt, the junk and the stranger reached no model"
    );
    assert!(stack
        .log_text()
        .contains("Signal: signal-cli's event stream"));
}

/// A `user_send_text` event from `user`, as the Zalo OA webhook posts it.
fn zalo_text(user: &str, msg_id: &str, text: &str) -> Value {
    json!({"app_id": stack::ZALO_APP, "user_id_by_app": "979122185046046317",
        "event_name": "user_send_text", "sender": {"id": user}, "recipient": {"id": "3662729599332560487"},
        "message": {"text": text, "msg_id": msg_id},
        "timestamp": chrono::Utc::now().timestamp_millis().to_string()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zalo_message_is_answered_once_and_a_forged_one_reaches_nothing() {
    let stack = stack_answering("Chúng tôi mở cửa 8 giờ.", StackOptions::no_docker()).await;
    let owner = "6142494823123456789";
    let message = zalo_text(owner, "cb31dff1c39642cc1b83", "giờ mở cửa?");

    let forged = reqwest::Client::new()
        .post(format!("{}/zalo", stack.base_url))
        .header("x-zevent-signature", "mac=00")
        .json(&zalo_text(owner, "forged0001", "hi"))
        .send()
        .await
        .unwrap()
        .status();
    let first = stack.post_zalo(&message).await;
    let again = stack.post_zalo(&message).await;
    stack
        .post_zalo(&zalo_text(owner, "cb31dff1c39642cc1b84", "và chủ nhật?"))
        .await;
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| f.zalo_sent().len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(forged, 401);
    assert_eq!((first.as_u16(), again.as_u16()), (200, 200));
    assert!(answered, "{}", stack.log_text());
    let sent = stack.fakes.zalo_sent();
    assert_eq!(sent.len(), 2, "Zalo's retry was answered again");
    assert_eq!(sent[0].body["recipient"]["user_id"], owner);
    assert_eq!(stack.fakes.model_calls().len(), 2);
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";

/// A WhatsApp image `media_id` with `caption`, as the Cloud API notifies it.
fn whatsapp_image(wamid: &str, media_id: &str, caption: &str) -> Value {
    let mut message = stack::whatsapp_text(OWNER_WA, wamid, "");
    message["entry"][0]["changes"][0]["value"]["messages"][0] = json!({"from": OWNER_WA, "id": wamid,
        "timestamp": chrono::Utc::now().timestamp().to_string(), "type": "image",
        "image": {"caption": caption, "mime_type": "image/png", "sha256": "unused", "id": media_id}});
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_image_reaches_the_model_and_the_message_tool_uploads_a_file_back() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            1 => Reply::tool_use(
                "toolu_w1",
                "message",
                json!({"action": "send", "media": "out/chart.png", "message": "The chart"}),
            ),
            _ => Reply::text("Sent."),
        }),
        StackOptions::no_docker(),
    )
    .await;
    stack
        .fakes
        .whatsapp_media("1003383421387256", "image/png", PNG);
    std::fs::create_dir_all(stack.workspace.join("out")).unwrap();
    std::fs::write(stack.workspace.join("out/chart.png"), PNG).unwrap();

    let status = stack
        .post_whatsapp(&whatsapp_image(
            "wamid.IMG1",
            "1003383421387256",
            "what is this?",
        ))
        .await;
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| {
            f.whatsapp_sent().iter().any(|c| c.body["type"] == "text")
        })
        .await;

    assert_eq!(status, 200);
    assert!(answered, "{}", stack.log_text());
    let asked = stack.fakes.model_calls()[0].body.to_string();
    assert!(
        asked.contains("\"media_type\":\"image/png\""),
        "no image block: {asked:.400}"
    );
    let uploads = stack.fakes.calls("/whatsapp/media");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].body["type"], "image/png");
    let sent = stack.fakes.whatsapp_sent();
    let image = sent
        .iter()
        .find(|c| c.body["type"] == "image")
        .expect("the image message");
    assert_eq!(image.body["image"]["id"], uploads[0].body["id"]);
    assert_eq!(image.body["image"]["caption"], "The chart");
}
