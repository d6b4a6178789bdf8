//! Discord end to end through `spawn_stack()`: slash commands on the Interactions endpoint
//! (signed, deferred, answered by editing the deferred response) and DMs and mentions over the
//! Gateway, including a crash of `clawgate up` that loses nothing and answers once.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::discord::DISCORD_BOT;
use fakes::Reply;
use serde_json::{json, Value};
use stack::{spawn_stack, Backend, Stack, StackOptions, DISCORD_GUILD, DISCORD_OWNER};

const CHANNEL: &str = "1100000000000000010";

async fn stack(gateway: bool) -> Stack {
    let answers = Arc::new(|n: usize, _: &Value| Reply::text(&format!("answer {n}")));
    spawn_stack(
        answers,
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            discord_gateway: gateway,
            ..Default::default()
        },
    )
    .await
}

/// A slash command as Discord posts it: `/ask prompt` (or `/new`, `/status`), in a guild
/// channel or a DM.
fn interaction(id: &str, command: &str, prompt: Option<&str>, guild: Option<&str>) -> Value {
    let user =
        json!({"id": DISCORD_OWNER, "username": "ada", "global_name": "Ada", "discriminator": "0"});
    let mut data = json!({"id": "1150000000000000100", "name": command, "type": 1});
    if let Some(prompt) = prompt {
        data["options"] = json!([{"name": "prompt", "type": 3, "value": prompt}]);
    }
    let mut body = json!({"type": 2, "id": id, "application_id": DISCORD_BOT,
        "token": format!("itoken-{id}"), "channel_id": CHANNEL, "data": data, "version": 1,
        "locale": "en-US"});
    match guild {
        Some(guild) => {
            body["guild_id"] = json!(guild);
            body["member"] = json!({"user": user, "roles": [], "permissions": "0"});
        }
        None => body["user"] = user,
    }
    body
}

/// A `MESSAGE_CREATE` from the owner: in a DM, or mentioning the bot in the listed guild.
fn gateway_message(id: &str, text: &str, in_guild: bool) -> Value {
    let mut d = json!({"id": id, "channel_id": if in_guild { CHANNEL } else { "1100000000000000077" },
        "author": {"id": DISCORD_OWNER, "username": "ada", "global_name": "Ada"},
        "content": text, "attachments": [], "mentions": [], "type": 0,
        "timestamp": "2026-12-04T10:00:00.000000+00:00"});
    if in_guild {
        d["guild_id"] = json!(DISCORD_GUILD);
        d["mentions"] = json!([{"id": DISCORD_BOT, "username": "clawgate", "bot": true}]);
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_is_deferred_at_once_and_its_answer_replaces_the_thinking_message() {
    let stack = stack(false).await;

    let response = stack
        .post_discord(&interaction(
            "1200000000000000002",
            "ask",
            Some("what is due today?"),
            Some(DISCORD_GUILD),
        ))
        .await;
    let status = response.status();
    let ack: Value = response.json().await.unwrap();
    let token = "itoken-1200000000000000002";
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| {
            f.discord_original(token)
                .is_some_and(|(content, flags)| !content.is_empty() && flags == 0)
        })
        .await;

    assert_eq!(status, 200);
    assert_eq!(ack, json!({"type": 5}), "deferred: Discord shows thinking…");
    assert!(answered, "{}", stack.log_text());
    assert_eq!(stack.fakes.discord_original(token).unwrap().0, "answer 1");
    let edit = &stack.fakes.calls("/discord/interaction-edit @original")[0];
    assert_eq!(
        edit.body["allowed_mentions"],
        json!({"parse": []}),
        "model text pings nobody"
    );
    assert!(stack
        .fakes
        .calls("/discord/interaction-followup")
        .is_empty());
    assert!(stack.fakes.model_calls()[0]
        .body
        .to_string()
        .contains("what is due today?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_malformed_oversized_and_unlisted_interactions_reach_no_model() {
    use ed25519_dalek::Signer;
    let stack = stack(false).await;
    let url = format!("{}/discord/interactions", stack.base_url);
    let body = serde_json::to_vec(&interaction(
        "1200000000000000010",
        "ask",
        Some("hi"),
        Some(DISCORD_GUILD),
    ))
    .unwrap();
    let post = |body: Vec<u8>, key: ed25519_dalek::SigningKey, at: i64| {
        let timestamp = at.to_string();
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(&body);
        let signature = hex::encode(key.sign(&message).to_bytes());
        // Each on a connection of its own, as an attacker's would be: a refused oversized body
        // ends its connection, which must not fail the next request.
        reqwest::Client::new()
            .post(&url)
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", timestamp)
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);

    let forged = post(body.clone(), stranger, now).await.unwrap();
    let stale = post(body.clone(), stack::discord_key(), now - 600)
        .await
        .unwrap();
    let malformed = post(
        b"{\"type\": 2, \"data\":".to_vec(),
        stack::discord_key(),
        now,
    )
    .await
    .unwrap();
    let oversized = post(vec![b' '; 2 << 20], stack::discord_key(), now)
        .await
        .unwrap();
    let unlisted = stack
        .post_discord(&interaction(
            "1200000000000000011",
            "ask",
            Some("hi"),
            Some("1199999999999999999"),
        ))
        .await;
    let unlisted_status = unlisted.status();
    let unlisted_body: Value = unlisted.json().await.unwrap();
    let ping = stack.post_discord(&json!({"type": 1, "id": "1", "application_id": DISCORD_BOT, "token": "t", "version": 1})).await;
    let ping_status = ping.status();
    let pong: Value = ping.json().await.unwrap();
    // A control command shows the worker was running all along.
    stack
        .post_discord(&interaction(
            "1200000000000000012",
            "ask",
            Some("control"),
            Some(DISCORD_GUILD),
        ))
        .await;
    let control = stack
        .wait_for(Duration::from_secs(60), |f| !f.model_calls().is_empty())
        .await;

    assert_eq!(forged.status(), 401);
    assert_eq!(stale.status(), 401);
    assert_eq!(malformed.status(), 400);
    assert_eq!(oversized.status(), 413);
    assert_eq!(unlisted_status, 200);
    assert_eq!(unlisted_body["data"]["flags"], 64, "an ephemeral refusal");
    assert_eq!((ping_status.as_u16(), pong), (200, json!({"type": 1})));
    assert!(control, "{}", stack.log_text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let model = stack.fakes.model_calls();
    assert_eq!(model.len(), 1, "only the control command reached the model");
    assert!(model[0].body.to_string().contains("control"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_gateway_a_dm_and_a_mention_are_answered_and_a_crash_loses_nothing_and_answers_once(
) {
    let mut stack = stack(true).await;
    let signed_in = stack
        .wait_for(Duration::from_secs(30), |f| f.discord_sign_ins().0 == 1)
        .await;
    assert!(signed_in, "{}", stack.log_text());

    stack.fakes.push_discord_message(gateway_message(
        "1200000000000000101",
        "hello from a DM",
        false,
    ));
    stack.fakes.push_discord_message(gateway_message(
        "1200000000000000102",
        "<@1150000000000000001> and here",
        true,
    ));
    let both = stack
        .wait_for(Duration::from_secs(60), |f| {
            f.discord_channel_messages().len() >= 2
        })
        .await;
    assert!(both, "{}", stack.log_text());
    // The crash: `clawgate up` is killed; while it is down a message arrives; and its resume
    // comes back with everything again (as if its progress had not been saved).
    stack.kill();
    stack.fakes.discord_replay_all(true);
    stack.fakes.push_discord_message(gateway_message(
        "1200000000000000103",
        "sent while you were down",
        false,
    ));
    stack.start();
    let third = stack
        .wait_for(Duration::from_secs(60), |f| {
            f.discord_channel_messages().len() >= 3
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert!(third, "{}", stack.log_text());
    let sent = stack.fakes.discord_channel_messages();
    assert_eq!(sent.len(), 3, "each message answered once: {sent:?}");
    // The DM and the mention are different sessions, answered in either order.
    let in_dm = sent
        .iter()
        .filter(|c| c.body["channel"] == "1100000000000000077")
        .count();
    assert_eq!(in_dm, 2, "the DM and the one sent while down: {sent:?}");
    let in_guild = sent
        .iter()
        .find(|c| c.body["channel"] == CHANNEL)
        .expect("the mention's answer");
    assert_eq!(
        in_guild.body["message_reference"]["message_id"],
        "1200000000000000102"
    );
    assert_eq!(stack.fakes.model_calls().len(), 3);
    let (identifies, resumes) = stack.fakes.discord_sign_ins();
    assert_eq!(identifies, 1, "the restart resumed the saved session");
    assert!(resumes >= 1);
    assert!(stack.log_text().contains("Discord: Gateway"));
}
