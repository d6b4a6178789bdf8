//! The `message` tool against the fake Telegram: a send is marked on the job record, so an
//! attempt that resumes the job after a crash (the send went out, its result was never
//! checkpointed) does not send it again; and a call after it is a send of its own.

mod fakes;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use fakes::{Fakes, Reply};
use infra::config::Config;
use infra::model::JobMessage;
use infra::store::sqlite::SqliteStore;
use infra::store::{Claim, StateStore};
use sandbox_worker::agent::Lease;
use sandbox_worker::reply::Outbound;
use sandbox_worker::tools::fs::Workspace;
use sandbox_worker::tools::message::{MessageTools, SEND_MARK_BASE};
use sandbox_worker::tools::ExtraTools;
use serde_json::{json, Value};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01";

fn tools(
    fakes: &Fakes,
    store: Arc<dyn StateStore>,
    job: &JobMessage,
    workspace: Workspace,
    owner: &str,
    marked: Vec<u32>,
) -> MessageTools {
    let config = Config::parse(&format!(
        r#"{{ channels: {{ telegram: {{ botToken: "123456:TESTTOKEN", apiBase: "{}" }} }} }}"#,
        fakes.base_url
    ))
    .unwrap();
    MessageTools {
        outbound: Outbound::from_config(&config, reqwest::Client::new()),
        store,
        job: job.clone(),
        work_id: job.dedup_id().to_string(),
        owner: owner.into(),
        lease: Lease::default(),
        marked,
        workspace: Some(workspace),
        sends: AtomicU32::new(0),
    }
}

#[tokio::test]
async fn a_resumed_attempt_does_not_send_a_file_the_first_one_sent() {
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("unused"))).await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let ws_dir = dir.path().join("ws");
    std::fs::create_dir_all(&ws_dir).unwrap();
    std::fs::write(ws_dir.join("chart.png"), PNG).unwrap();
    let workspace = || Workspace::new(&ws_dir, "/workspace", false, None).unwrap();
    let job = JobMessage::decode(include_str!("../../infra/fixtures/job_v1.json")).unwrap();
    let input = json!({"media": "chart.png", "message": "the chart"});
    store
        .claim_job(job.dedup_id(), "w1", Duration::from_secs(60))
        .await
        .unwrap();

    // The first attempt sends, then dies before the call's result is checkpointed.
    let first = tools(&fakes, store.clone(), &job, workspace(), "w1", vec![]);
    let sent = first.run("message", &input).await.unwrap();
    store.release_job(job.dedup_id(), "w1").await.unwrap();
    // The next attempt reads the marks of its claim and runs the same call again.
    let Claim::Claimed(record) = store
        .claim_job(job.dedup_id(), "w2", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("not claimed")
    };
    let resumed = tools(
        &fakes,
        store.clone(),
        &job,
        workspace(),
        "w2",
        record.chunks_sent.clone(),
    );
    let again = resumed.run("message", &input).await.unwrap();
    let next = resumed.run("message", &input).await.unwrap();

    assert!(
        !sent.is_error && sent.output.contains("\"sent\":true"),
        "{}",
        sent.output
    );
    assert_eq!(record.chunks_sent, vec![SEND_MARK_BASE]);
    assert!(
        again.output.contains("already sent by an earlier attempt"),
        "{}",
        again.output
    );
    assert!(!next.is_error, "{}", next.output);
    assert_eq!(
        fakes.calls("/sendPhoto ok:").len(),
        2,
        "the first send and the later call's, never the resumed one twice"
    );
}
