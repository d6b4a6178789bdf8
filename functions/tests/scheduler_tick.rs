//! The `scheduler-tick` Lambda as Lambda runs it: the real binary against the Runtime API
//! stub, one scheduled invocation, the table and queue on the emulator (the ones Terraform
//! made when `scripts/terraform-check` sets `CLAWGATE_E2E_QUEUE_URL` and
//! `CLAWGATE_E2E_STATE_TABLE`). A due job in the table must come out as a queued run.

#[path = "support/runtime_api.rs"]
mod runtime_api;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use infra::model::{CronDelivery, CronJob, CronSession, Schedule};
use infra::queue::sqs::SqsQueue;
use infra::queue::{JobQueue, JobQueueExt};
use infra::store::dynamo::DynamoStore;
use infra::store::CronStore;
use runtime_api::{KillOnDrop, Runtime};

/// What EventBridge Scheduler sends by default: the schedule's input, here `{}`.
const SCHEDULED_EVENT: &str = "{}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tick_lambda_queues_the_due_runs_of_the_table() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
        }
        eprintln!("skipped: needs the emulator (AWS_ENDPOINT_URL)");
        return;
    }
    let sdk = infra::aws::load_sdk_config().await;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let deployed = std::env::var("CLAWGATE_E2E_QUEUE_URL")
        .ok()
        .zip(std::env::var("CLAWGATE_E2E_STATE_TABLE").ok());
    let (queue, store, made) = match deployed {
        Some((url, table)) => (
            SqsQueue::new(&sdk, &url, Duration::from_secs(30)),
            DynamoStore::new(&sdk, &table),
            false,
        ),
        None => (
            SqsQueue::create_fifo(&sdk, &format!("cg-tick-{id}"), 3, Duration::from_secs(30))
                .await
                .unwrap(),
            DynamoStore::create_table(&sdk, &format!("cg-tick-{id}"))
                .await
                .unwrap(),
            true,
        ),
    };
    let now = Utc::now();
    let job_id = format!("lambda-tick-{id}");
    let due = now - chrono::Duration::seconds(20);
    let job = CronJob {
        id: job_id.clone(),
        agent: "main".into(),
        schedule: Schedule::At { at: due },
        session: CronSession::Isolated,
        message: "water the plants".into(),
        deliver: CronDelivery::None,
        enabled: true,
        next_run: Some(due),
        created_at: now,
        last_run: None,
        active_hours: None,
        heartbeat: None,
    };
    store.put_cron(&job).await.unwrap();
    let runtime = Arc::new(Runtime::default());
    runtime
        .events
        .lock()
        .unwrap()
        .push_back(("req-tick".into(), SCHEDULED_EVENT.into()));
    let api = runtime_api::serve(runtime.clone()).await;
    let home = tempfile::tempdir().unwrap();

    let _function = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_scheduler-tick"))
            .env_remove("CLAWGATE_CONFIG")
            .env_remove("CLAWGATE_CONFIG_PARAMETER")
            .env("HOME", home.path())
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "scheduler-tick")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("CLAWGATE_QUEUE_URL", queue.url())
            .env("CLAWGATE_STATE_TABLE", store.table())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.responses.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let responses = runtime.responses.lock().unwrap().clone();
    let work = job.work_id(due);
    // Take our run off the (possibly shared) queue; leave anything else for its owner.
    let mut ours = None;
    for delivery in queue
        .receive_jobs(10, Duration::from_secs(2))
        .await
        .unwrap()
    {
        if delivery.job.job_id == work {
            queue.ack(&delivery.delivery.receipt).await.unwrap();
            ours = Some(delivery.job);
        } else {
            queue.release(&delivery.delivery.receipt).await.unwrap();
        }
    }
    let after = store.get_cron(&job_id).await.unwrap().unwrap();
    store.remove_cron(&job_id).await.unwrap();
    if made {
        let _ = queue.delete_with_dead_letter_queue().await;
        let _ = store.delete_table().await;
    }

    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(
        responses[0].1["queued"],
        serde_json::json!([work]),
        "{responses:?}"
    );
    let run = ours.expect("the run is on the queue");
    assert_eq!(run.session_key.to_string(), format!("cron:{job_id}"));
    assert!(run.inbound.text.ends_with("water the plants"));
    assert_eq!(after.next_run, None, "the one-shot is spent");
    assert_eq!(after.last_run.and_then(|r| r.work_id), Some(work));
}
