//! Live replies and media, end to end through `clawgate up` and fake platforms that answer as
//! Telegram, Slack and OpenAI do: a preview edited exactly once per step (also across kill -9),
//! `/stop` during a long `exec`, photos and voice notes in, a Slack `file_share`, and files out
//! with the `message` tool.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use fakes::{last_tool_result, Fakes, Reply};
use serde_json::{json, Value};
use stack::{process_running as running, spawn_stack, telegram_dm, StackOptions};

const WITHIN: Duration = Duration::from_secs(60);
/// The start of a JPEG (SOI + APP0 JFIF), enough for a type check.
const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9,
];
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";

fn options(streaming: &'static str) -> StackOptions {
    StackOptions {
        docker: false,
        streaming,
        ..StackOptions::default()
    }
}

fn texts(calls: &[fakes::Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.body["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The blocks of the last user turn the model was sent.
fn last_user_blocks(body: &Value) -> Vec<Value> {
    let messages = body["messages"].as_array().unwrap();
    let last = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    last["content"].as_array().cloned().unwrap_or_default()
}

/// Two tool calls, the model slow enough that every step is its own edit.
fn two_tools(n: usize, _: &Value) -> Reply {
    match n {
        1 => Reply::tool_use("toolu_1", "exec", json!({"command": "echo one"}))
            .after(Duration::from_millis(2600)),
        2 => Reply::tool_use("toolu_2", "exec", json!({"command": "echo two"}))
            .after(Duration::from_millis(1500)),
        _ => Reply::text("All done.").after(Duration::from_millis(1500)),
    }
}

/// The preview shows the answer.
fn answered_in_the_preview(fakes: &Fakes) -> bool {
    texts(&fakes.edits()).iter().any(|t| t == "All done.")
}

fn one_message_edited(fakes: &Fakes) -> (Vec<String>, Vec<String>) {
    let posted = fakes.sent_messages();
    let edits = fakes.edits();
    let ids: std::collections::BTreeSet<_> = edits
        .iter()
        .map(|e| e.body["message_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "every edit is of the one preview: {ids:?}");
    (texts(&posted), texts(&edits))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_tool_run_shows_one_preview_edited_three_times() {
    let stack = spawn_stack(Arc::new(two_tools), options("progress")).await;

    stack
        .post_telegram(&telegram_dm(8101, "do two things"))
        .await;
    let done = stack.wait_for(WITHIN, answered_in_the_preview).await;

    assert!(done, "{}", stack.log_text());
    let (posted, edits) = one_message_edited(&stack.fakes);
    assert_eq!(
        posted,
        ["⏳ Working on it…"],
        "one preview, no second message"
    );
    assert_eq!(edits.len(), 3, "{edits:?}");
    assert!(edits[0].ends_with("🔧 exec echo one"), "{edits:?}");
    assert!(edits[1].contains("echo one\n🔧 exec echo two"), "{edits:?}");
    assert_eq!(edits[2], "All done.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_killed_between_two_edits_is_edited_by_the_resumed_job_not_posted_again() {
    // The second model call never answers the first process: it is killed waiting for it.
    let mut stack = spawn_stack(
        Arc::new(|n, body: &Value| match n {
            2 => Reply::text("never seen").after(Duration::from_secs(120)),
            1 => two_tools(1, body),
            3 => two_tools(2, body),
            _ => two_tools(3, body),
        }),
        options("progress"),
    )
    .await;
    stack
        .post_telegram(&telegram_dm(8201, "do two things"))
        .await;
    // Killed while the second model call is out: after the first edit, before the second.
    let first_edit = stack
        .wait_for(WITHIN, |f| {
            f.edits().len() == 1 && f.model_calls().len() == 2
        })
        .await;
    assert!(first_edit, "{}", stack.log_text());

    stack.kill();
    stack.start();
    let done = stack.wait_for(WITHIN, answered_in_the_preview).await;

    assert!(done, "{}", stack.log_text());
    let (posted, edits) = one_message_edited(&stack.fakes);
    assert_eq!(
        posted.len(),
        1,
        "the resumed job posts no second preview: {posted:?}"
    );
    assert_eq!(edits.len(), 3, "{edits:?}");
    assert!(
        edits[1].contains("echo one\n🔧 exec echo two"),
        "the resumed job keeps the first line: {edits:?}"
    );
    assert_eq!(stack.fakes.model_calls().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_long_exec_kills_it_and_the_next_message_is_answered() {
    let stack = spawn_stack(
        Arc::new(|n, body: &Value| {
            let last = last_user_blocks(body);
            let asked = last.iter().any(|b| {
                b["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("still there"))
            });
            match n {
                _ if asked => Reply::text("Yes, here."),
                1 => Reply::tool_use(
                    "toolu_s",
                    "exec",
                    json!({"command": "sleep 31.7; echo late"}),
                ),
                _ => Reply::text("the stopped run must not ask again"),
            }
        }),
        options("off"),
    )
    .await;
    stack
        .post_telegram(&telegram_dm(8301, "run something long"))
        .await;
    let started = {
        let deadline = Instant::now() + WITHIN;
        while !running("sleep 31.7") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running("sleep 31.7")
    };
    assert!(started, "{}", stack.log_text());

    let stopped_at = Instant::now();
    stack.post_telegram(&telegram_dm(8302, "/stop")).await;
    while running("sleep 31.7") && stopped_at.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = stopped_at.elapsed();
    eprintln!("/stop ended the exec after {took:?}");
    let confirmed = stack
        .wait_for(WITHIN, |f| {
            texts(&f.sent_messages()).contains(&"⏹ Stopped.".to_string())
        })
        .await;
    stack
        .post_telegram(&telegram_dm(8303, "are you still there?"))
        .await;
    let answered = stack
        .wait_for(WITHIN, |f| {
            texts(&f.sent_messages()).contains(&"Yes, here.".to_string())
        })
        .await;

    assert!(
        took < Duration::from_secs(5),
        "the exec outlived the stop: {took:?}"
    );
    assert!(confirmed && answered, "{}", stack.log_text());
    assert_eq!(
        texts(&stack.fakes.sent_messages()),
        ["⏹ Stopped.", "Yes, here."],
        "the stopped run says nothing more"
    );
    assert_eq!(stack.fakes.model_calls().len(), 2);
    let session = "agent:main:telegram:dm:12345".parse().unwrap();
    let entries = stack
        .backends()
        .await
        .store
        .load_transcript_from(&session, 0)
        .await
        .unwrap();
    let recorded = entries.iter().any(|e| {
        matches!(&e.body, infra::model::EntryBody::ToolResult { output, is_error: true, .. } if output.contains("stopped by the user"))
    });
    assert!(
        recorded,
        "the transcript says the exec was stopped: {entries:#?}"
    );
}

fn photo_update(update_id: i64, file_id: &str, size: usize) -> Value {
    json!({"update_id": update_id, "message": {"message_id": 9, "from": {"id": 12345, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": 12345, "type": "private"}, "date": 1764064800, "caption": "what is this?",
        "photo": [{"file_id": "small", "file_unique_id": "s", "file_size": 10, "width": 90, "height": 90},
                  {"file_id": file_id, "file_unique_id": "l", "file_size": size, "width": 800, "height": 600}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_photo_reaches_the_model_as_an_image_block_and_stays_in_the_workspace() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("A photo.")),
        options("off"),
    )
    .await;
    stack.fakes.telegram_file("AgACphoto1", JPEG.to_vec());

    stack
        .post_telegram(&photo_update(8401, "AgACphoto1", JPEG.len()))
        .await;
    let answered = stack
        .wait_for(WITHIN, |f| f.sent_messages().len() == 1)
        .await;

    assert!(answered, "{}", stack.log_text());
    let blocks = last_user_blocks(&stack.fakes.model_calls()[0].body);
    let image = blocks
        .iter()
        .find(|b| b["type"] == "image")
        .expect("an image block");
    assert_eq!(image["source"]["media_type"], "image/jpeg");
    assert_eq!(
        image["source"]["data"],
        base64::engine::general_purpose::STANDARD.encode(JPEG)
    );
    let text = blocks.last().unwrap()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("what is this?\n[image attached"), "{text}");
    let saved: Vec<_> = std::fs::read_dir(stack.workspace.join("inbound"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(saved[0].path()).unwrap(), JPEG);
    assert!(text.contains(&format!(
        "inbound/{}",
        saved[0].file_name().to_string_lossy()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_arrives_as_a_transcript() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("Noted.")),
        StackOptions {
            extra: r#"tools: { media: { audio: { models: [{ provider: "openai", model: "whisper-1" }], baseUrl: "{fakes}/v1" } } },"#.into(),
            ..options("off")
        },
    )
    .await;
    stack.fakes.set_transcript("remind me to buy milk");
    let ogg = [b"OggS\x00\x02".as_slice(), &[0u8; 40]].concat();
    stack.fakes.telegram_file("AwACvoice1", ogg.clone());
    let update = json!({"update_id": 8501, "message": {"message_id": 10, "from": {"id": 12345, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": 12345, "type": "private"}, "date": 1764064800,
        "voice": {"duration": 2, "mime_type": "audio/ogg", "file_id": "AwACvoice1", "file_unique_id": "v", "file_size": ogg.len()}}});

    stack.post_telegram(&update).await;
    let answered = stack
        .wait_for(WITHIN, |f| f.sent_messages().len() == 1)
        .await;

    assert!(answered, "{}", stack.log_text());
    let transcriptions = stack.fakes.calls("/v1/audio/transcriptions");
    assert_eq!(transcriptions.len(), 1);
    assert_eq!(transcriptions[0].body["model"], "whisper-1");
    assert_eq!(transcriptions[0].body["file"]["bytes"], ogg.len());
    let blocks = last_user_blocks(&stack.fakes.model_calls()[0].body);
    let text = blocks[0]["text"].as_str().unwrap();
    assert!(
        text.contains("transcript, made by a speech-to-text model]: remind me to buy milk"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_file_share_is_fetched_with_the_bot_token_and_shown_to_the_model() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("A chart.")),
        options("off"),
    )
    .await;
    let url = stack.fakes.slack_file("chart.png", PNG.to_vec());
    let event = json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "EvFILE0001", "event_time": 1700000400,
        "event": {"type": "message", "subtype": "file_share", "channel": "D0PNCRP9N", "channel_type": "im",
            "user": "U2147483697", "text": "what is this?", "ts": "1700000400.000100",
            "files": [{"id": "F1", "name": "chart.png", "mimetype": "image/png", "size": PNG.len(),
                       "url_private": url, "url_private_download": url}]}});

    let status = stack.post_slack(&event).await;
    let answered = stack.wait_for(WITHIN, |f| f.slack_posts().len() == 1).await;

    assert_eq!(status, 200);
    assert!(answered, "{}", stack.log_text());
    let fetched = stack.fakes.calls("/files-pri/");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].auth.as_deref(), Some("Bearer xoxb-e2e"));
    let blocks = last_user_blocks(&stack.fakes.model_calls()[0].body);
    assert!(blocks
        .iter()
        .any(|b| b["type"] == "image" && b["source"]["media_type"] == "image/png"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_tool_sends_a_workspace_png_as_one_photo_and_refuses_a_path_outside() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            1 => Reply::tool_use("toolu_m1", "message", json!({"media": "../outside.png"})),
            2 => Reply::tool_use(
                "toolu_m2",
                "message",
                json!({"action": "send", "media": "out/chart.png", "message": "Here is the chart"}),
            ),
            _ => Reply::text("Sent it."),
        }),
        options("off"),
    )
    .await;
    std::fs::create_dir_all(stack.workspace.join("out")).unwrap();
    std::fs::write(stack.workspace.join("out/chart.png"), PNG).unwrap();

    stack
        .post_telegram(&telegram_dm(8601, "send me the chart"))
        .await;
    let answered = stack
        .wait_for(WITHIN, |f| {
            texts(&f.sent_messages()).contains(&"Sent it.".to_string())
        })
        .await;

    assert!(answered, "{}", stack.log_text());
    let photos = stack.fakes.calls("/sendPhoto ok:");
    assert_eq!(photos.len(), 1, "exactly one photo");
    assert_eq!(photos[0].body["photo"]["is_image"], true);
    assert_eq!(photos[0].body["photo"]["filename"], "chart.png");
    assert_eq!(photos[0].body["caption"], "Here is the chart");
    assert_eq!(photos[0].body["chat_id"], "12345");
    let calls = stack.fakes.model_calls();
    let refused = last_tool_result(&calls[1].body).unwrap();
    assert!(
        refused.contains("outside the workspace") || refused.contains(".."),
        "{refused}"
    );
    assert!(last_tool_result(&calls[2].body)
        .unwrap()
        .contains("\"sent\":true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_tool_uploads_to_slack_with_the_external_upload_flow() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            1 => Reply::tool_use("toolu_s1", "message", json!({"media": "report.txt"})),
            _ => Reply::text("Uploaded."),
        }),
        options("off"),
    )
    .await;
    std::fs::create_dir_all(&stack.workspace).unwrap();
    std::fs::write(stack.workspace.join("report.txt"), "all good\n").unwrap();
    let event = json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "EvUPLOAD01", "event_time": 1700000500,
        "event": {"type": "message", "channel": "D0PNCRP9N", "channel_type": "im",
            "user": "U2147483697", "text": "send the report", "ts": "1700000500.000100"}});

    stack.post_slack(&event).await;
    let answered = stack.wait_for(WITHIN, |f| f.slack_posts().len() == 1).await;

    assert!(answered, "{}", stack.log_text());
    let asked = stack.fakes.calls("/api/files.getUploadURLExternal");
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].body,
        json!({"filename": "report.txt", "length": "9"})
    );
    assert_eq!(stack.fakes.calls("/upload/v1/").len(), 1);
    let completed = stack.fakes.calls("/api/files.completeUploadExternal");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].body["channel_id"], "D0PNCRP9N");
    assert_eq!(completed[0].body["files"][0]["title"], "report.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_are_saved_inside_inbound_never_shown_as_images_and_oversized_ones_not_fetched(
) {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("Looked.")),
        options("off"),
    )
    .await;
    let script = b"#!/bin/sh\nrm -rf ~\n".to_vec();
    stack.fakes.telegram_file("BQACevil", script.clone());
    let disguised = json!({"update_id": 8701, "message": {"message_id": 11, "from": {"id": 12345, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": 12345, "type": "private"}, "date": 1764064800, "caption": "a picture",
        "document": {"file_name": "../../evil.png", "mime_type": "image/png", "file_id": "BQACevil", "file_unique_id": "e", "file_size": script.len()}}});

    stack.post_telegram(&disguised).await;
    stack
        .post_telegram(&photo_update(8702, "AgAChuge", 30 * 1024 * 1024))
        .await;
    let answered = stack
        .wait_for(WITHIN, |f| f.sent_messages().len() == 2)
        .await;

    assert!(answered, "{}", stack.log_text());
    let calls = stack.fakes.model_calls();
    let first = last_user_blocks(&calls[0].body);
    assert!(
        first.iter().all(|b| b["type"] != "image"),
        "not an image: {first:?}"
    );
    let note = first.last().unwrap()["text"].as_str().unwrap().to_string();
    assert!(
        note.contains("[file received, saved at inbound/") && note.contains("-evil.png"),
        "{note}"
    );
    let saved: Vec<_> = std::fs::read_dir(stack.workspace.join("inbound"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(saved, [script], "saved once, inside inbound/");
    let second = last_user_blocks(&calls[1].body);
    let refused = second.last().unwrap()["text"].as_str().unwrap().to_string();
    assert!(
        refused.contains("could not be received: it is larger than"),
        "{refused}"
    );
    let asked: Vec<_> = stack
        .fakes
        .calls("/getFile")
        .iter()
        .map(|c| c.body["file_id"].clone())
        .collect();
    assert_eq!(
        asked,
        [json!("BQACevil")],
        "the oversized photo was not fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_collect_mode_messages_sent_during_a_run_are_answered_together_in_one_turn() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            1 => Reply::text("First answer.").after(Duration::from_millis(2500)),
            _ => Reply::text("Both answered."),
        }),
        StackOptions {
            extra: r#"messages: { queue: { mode: "collect" } },"#.into(),
            ..options("off")
        },
    )
    .await;

    stack
        .post_telegram(&telegram_dm(8801, "first question"))
        .await;
    let running = stack.wait_for(WITHIN, |f| f.model_calls().len() == 1).await;
    stack
        .post_telegram(&telegram_dm(8802, "second question"))
        .await;
    stack
        .post_telegram(&telegram_dm(8803, "third question"))
        .await;
    let answered = stack
        .wait_for(WITHIN, |f| {
            texts(&f.sent_messages()).contains(&"Both answered.".to_string())
        })
        .await;
    // Give a stray third turn time to show itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert!(running && answered, "{}", stack.log_text());
    assert_eq!(
        texts(&stack.fakes.sent_messages()),
        ["First answer.", "Both answered."]
    );
    let calls = stack.fakes.model_calls();
    assert_eq!(calls.len(), 2, "one turn for the two collected messages");
    let said: Vec<String> = calls[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    let last = said.last().unwrap();
    assert!(
        last.contains("second question") && last.contains("third question"),
        "both in the last user turn: {said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_preview_that_cannot_be_edited_gives_way_to_a_new_message_with_the_answer() {
    let stack = spawn_stack(Arc::new(two_tools), options("progress")).await;
    let event = json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "EvPREVIEW1", "event_time": 1700000600,
        "event": {"type": "message", "channel": "D0PNCRP9N", "channel_type": "im",
            "user": "U2147483697", "text": "do two things", "ts": "1700000600.000100"}});

    stack.post_slack(&event).await;
    let previewed = stack
        .wait_for(WITHIN, |f| f.calls("/api/chat.update").len() == 1)
        .await;
    stack.fakes.delete_slack_messages();
    let answered = stack
        .wait_for(WITHIN, |f| {
            texts(&f.slack_posts()).contains(&"All done.".to_string())
        })
        .await;

    assert!(previewed && answered, "{}", stack.log_text());
    assert_eq!(
        texts(&stack.fakes.slack_posts()),
        ["⏳ Working on it…", "All done."],
        "the preview, then the answer as a new message once the preview was gone"
    );
    let updates = stack.fakes.calls("/api/chat.update");
    assert!(updates[0].body["text"]
        .as_str()
        .unwrap()
        .contains("exec echo one"));
    assert_eq!(updates[0].body["ts"], updates.last().unwrap().body["ts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webchat_files_go_in_and_out_only_with_the_token_and_only_as_uploads_made_them() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| match n {
            1 => Reply::tool_use("toolu_w1", "message", json!({"media": "out/report.txt"})),
            _ => Reply::text("Here it is."),
        }),
        options("off"),
    )
    .await;
    std::fs::create_dir_all(stack.workspace.join("out")).unwrap();
    std::fs::write(
        stack.workspace.join("out/report.txt"),
        "quarterly numbers\n",
    )
    .unwrap();
    let (base, token, http) = (&stack.base_url, stack.token(), &stack.http);
    let upload = |content_type: &'static str, with_token: bool| {
        let mut request = http
            .post(format!(
                "{base}/webchat/upload?conversation=web-files&name=../../evil.sh"
            ))
            .header("content-type", content_type)
            .body("#!/bin/sh\n");
        if with_token {
            request = request.bearer_auth(&token);
        }
        request.send()
    };

    let no_token = upload("application/octet-stream", false).await.unwrap();
    let form = upload("text/plain", true).await.unwrap();
    let uploaded: Value = upload("application/octet-stream", true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let send = |files: Value| {
        http.post(format!("{base}/webchat/send"))
            .bearer_auth(&token)
            .json(
                &json!({"conversation": "web-files", "text": "the report please", "files": files}),
            )
            .send()
    };
    let forged = send(json!([{"path": "notes/../../etc/passwd"}]))
        .await
        .unwrap();
    let sent = send(json!([{"path": uploaded["path"], "name": "evil.sh"}]))
        .await
        .unwrap();
    let answered = stack.wait_for(WITHIN, |f| f.model_calls().len() == 2).await;
    let file = |path: &str, with_token: bool| {
        let mut request = http.get(format!(
            "{base}/webchat/file?conversation=web-files&path={path}"
        ));
        if with_token {
            request = request.bearer_auth(&token);
        }
        request.send()
    };
    let download = file("out/report.txt", true).await.unwrap();
    let download_status = download.status();
    let downloaded = download.text().await.unwrap();
    let anonymous = file("out/report.txt", false).await.unwrap();
    let outside = file("../../etc/passwd", true).await.unwrap();

    assert_eq!(no_token.status(), 401);
    assert_eq!(form.status(), 415);
    let path = uploaded["path"].as_str().unwrap();
    assert!(
        path.starts_with("inbound/up-") && path.ends_with("-evil.sh"),
        "{uploaded}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.workspace.join(path)).unwrap(),
        "#!/bin/sh\n"
    );
    assert_eq!(forged.status(), 400);
    assert_eq!(sent.status(), 202);
    assert!(answered, "{}", stack.log_text());
    let first = last_user_blocks(&stack.fakes.model_calls()[0].body);
    let text = first[0]["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains(&format!("saved at {path}")), "{text}");
    assert_eq!(download_status, 200);
    assert_eq!(downloaded, "quarterly numbers\n");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(outside.status(), 404);
}
