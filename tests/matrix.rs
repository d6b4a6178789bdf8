//! Matrix end to end through `spawn_stack()`: the test is the homeserver's pushing half (it
//! `PUT`s transactions with the registration's `hs_token`), the fake is its client-server
//! half (joins, the bot's `m.direct`, sends). The owner's DM invite is joined and recorded, the
//! DM answered once however often the transaction comes, a listed room answered on a mention,
//! and neither a DM that a third user joins nor a "DM" invite into a room with others is ever
//! answered as the owner's DM.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::matrix::MATRIX_HS_TOKEN;
use fakes::Reply;
use serde_json::{json, Value};
use stack::{spawn_stack, StackOptions};

const DM: &str = "!dmroom:example.org";
const OPS: &str = "!ops:example.org";
const CROWDED: &str = "!crowded:example.org";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/infra/fixtures/matrix/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The fixture transaction's events whose `event_id`s are listed, as one transaction.
fn only(name: &str, ids: &[&str]) -> Value {
    let events = fixture(name)["events"].as_array().unwrap().clone();
    let kept: Vec<Value> = events
        .into_iter()
        .filter(|e| ids.iter().any(|id| e["event_id"] == *id))
        .collect();
    json!({ "events": kept })
}

fn message(room: &str, sender: &str, id: &str, body: &str) -> Value {
    json!({"events": [{"type": "m.room.message", "room_id": room, "sender": sender,
        "event_id": id, "origin_server_ts": 1733310000000_i64,
        "content": {"msgtype": "m.text", "body": body}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_dm_and_a_mention_in_a_listed_room_are_answered_and_a_shared_dm_is_not() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("Here you go.")),
        StackOptions::no_docker(),
    )
    .await;
    stack.fakes.matrix_invite(DM, "@ada:example.org", &[]);
    stack
        .fakes
        .matrix_invite(OPS, "@grace:example.org", &["@ada:example.org"]);
    // A "DM" ada opens in a room eve is already in: the bot must see it is shared.
    stack
        .fakes
        .matrix_invite(CROWDED, "@ada:example.org", &["@eve:example.org"]);
    let dm_message = only(
        "transaction_messages.json",
        &["$Fq1yXUy3mHM1Zkq0sgmR1Dv9Wj5ts6yB2i4TtC0cA8Y"],
    );
    let stranger_invite = json!({"events": [{"type": "m.room.member", "room_id": "!evedm:example.org",
        "sender": "@eve:example.org", "state_key": "@clawgate:example.org", "event_id": "$eveinvite",
        "content": {"membership": "invite", "is_direct": true}}]});

    let forged = stack
        .put_matrix("t0", &dm_message, "not-the-hs-token")
        .await
        .status();
    let invited = stack
        .put_matrix(
            "t1",
            &fixture("transaction_dm_invite.json"),
            MATRIX_HS_TOKEN,
        )
        .await;
    let invited_status = invited.status();
    let ack: Value = invited.json().await.unwrap();
    let direct = stack.fakes.matrix_direct();
    let first = stack
        .put_matrix("t2", &dm_message, MATRIX_HS_TOKEN)
        .await
        .status();
    let repeated = stack
        .put_matrix("t2", &dm_message, MATRIX_HS_TOKEN)
        .await
        .status();
    let stranger = stack
        .put_matrix("t3", &stranger_invite, MATRIX_HS_TOKEN)
        .await
        .status();
    // The room's invite (listed in autoJoinAllowlist), then its messages: the DM's again among
    // them, a notice, an edit, the bot's own echo, an encrypted one, a mention, small talk.
    let mut room_events = fixture("transaction_messages.json");
    let ops_invite = json!({"type": "m.room.member", "room_id": OPS, "sender": "@grace:example.org",
        "state_key": "@clawgate:example.org", "event_id": "$opsinvite", "content": {"membership": "invite"}});
    room_events["events"]
        .as_array_mut()
        .unwrap()
        .insert(0, ops_invite);
    let room = stack
        .put_matrix("t4", &room_events, MATRIX_HS_TOKEN)
        .await
        .status();
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| f.matrix_sent().len() >= 2)
        .await;
    let shared = stack
        .put_matrix(
            "t5",
            &fixture("transaction_member_join.json"),
            MATRIX_HS_TOKEN,
        )
        .await
        .status();
    let after = message(DM, "@ada:example.org", "$afterEveJoined", "still just us?");
    let after_status = stack
        .put_matrix("t6", &after, MATRIX_HS_TOKEN)
        .await
        .status();
    let mut crowded = fixture("transaction_dm_invite.json");
    crowded["events"][0]["room_id"] = json!(CROWDED);
    let crowded_invite = stack
        .put_matrix("t7", &crowded, MATRIX_HS_TOKEN)
        .await
        .status();
    let in_crowded = message(CROWDED, "@ada:example.org", "$inCrowded", "my bank PIN?");
    let crowded_status = stack
        .put_matrix("t8", &in_crowded, MATRIX_HS_TOKEN)
        .await
        .status();
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(forged, 401);
    assert_eq!(
        [
            invited_status,
            first,
            repeated,
            stranger,
            room,
            shared,
            after_status,
            crowded_invite,
            crowded_status
        ]
        .map(|s| s.as_u16()),
        [200; 9]
    );
    assert_eq!(ack, json!({}));
    assert_eq!(direct, Some(json!({"@ada:example.org": [DM]})));
    assert!(answered, "{}", stack.log_text());
    let joins: Vec<Value> = (stack.fakes.calls("/matrix/join").iter())
        .map(|c| c.body["room"].clone())
        .collect();
    assert_eq!(
        joins,
        [json!(DM), json!(OPS), json!(CROWDED)],
        "eve's DM invite is not accepted"
    );
    let sent = stack.fakes.matrix_sent();
    assert_eq!(
        sent.len(),
        2,
        "each asked once; nothing after eve joined, nothing in the crowded room: {sent:?}"
    );
    assert_eq!(sent[0].body["room"], DM);
    assert_eq!(sent[0].body["body"], "Here you go.");
    assert_eq!(sent[0].body["formatted_body"], "<p>Here you go.</p>\n");
    let in_ops = &sent[1];
    assert_eq!(in_ops.body["room"], OPS);
    assert_eq!(
        in_ops.body["m.relates_to"]["m.in_reply_to"]["event_id"],
        "$Gr4ceAsks0nOps1aB2cD3eF4gH5iJ6kL7mN8oP9qR0s"
    );
    assert_eq!(
        stack.fakes.matrix_direct(),
        Some(json!({})),
        "neither the shared room nor the crowded one is a DM"
    );
    assert_eq!(stack.fakes.model_calls().len(), 2);
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_in_the_dm_reaches_the_model_and_the_message_tool_uploads_a_file_back() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            1 => Reply::tool_use(
                "toolu_m1",
                "message",
                json!({"action": "send", "media": "out/chart.png", "message": "The chart"}),
            ),
            _ => Reply::text("Sent."),
        }),
        StackOptions::no_docker(),
    )
    .await;
    stack.fakes.matrix_invite(DM, "@ada:example.org", &[]);
    stack
        .fakes
        .matrix_media("mxc://example.org/AdaPhoto1", "image/png", PNG);
    std::fs::create_dir_all(stack.workspace.join("out")).unwrap();
    std::fs::write(stack.workspace.join("out/chart.png"), PNG).unwrap();
    let image = json!({"events": [{"type": "m.room.message", "room_id": DM, "sender": "@ada:example.org",
        "event_id": "$adaImage", "origin_server_ts": 1733310000000_i64,
        "content": {"msgtype": "m.image", "body": "what is this?", "filename": "photo.png",
            "url": "mxc://example.org/AdaPhoto1", "info": {"mimetype": "image/png", "size": PNG.len()}}}]});

    let invited = stack
        .put_matrix(
            "i1",
            &fixture("transaction_dm_invite.json"),
            MATRIX_HS_TOKEN,
        )
        .await
        .status();
    let status = stack
        .put_matrix("i2", &image, MATRIX_HS_TOKEN)
        .await
        .status();
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| {
            f.matrix_sent().iter().any(|c| c.body["body"] == "Sent.")
        })
        .await;

    assert_eq!((invited.as_u16(), status.as_u16()), (200, 200));
    assert!(answered, "{}", stack.log_text());
    let asked = stack.fakes.model_calls()[0].body.to_string();
    assert!(
        asked.contains("\"media_type\":\"image/png\""),
        "no image block: {asked:.400}"
    );
    let uploads = stack.fakes.calls("/matrix/upload");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].body["type"], "image/png");
    let sent = stack.fakes.matrix_sent();
    let file = sent
        .iter()
        .find(|c| c.body["msgtype"] == "m.image")
        .expect("the file as an m.image");
    assert!(file.body["url"]
        .as_str()
        .unwrap()
        .starts_with("mxc://example.org/upload"));
    assert_eq!(file.body["body"], "The chart");
    assert_eq!(file.body["filename"], "chart.png");
}
