//! The scheduler's tick with a controllable clock, on both pairs of adapters (SQLite store and
//! queue always; DynamoDB and SQS on the emulator at `AWS_ENDPOINT_URL`): a slot is queued
//! once however many ticks race, missed slots coalesce into one late run, and a slot past
//! the catch-up window is skipped and recorded, never silently.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use infra::cron::tick;
use infra::model::{
    CronDelivery, CronJob, CronSession, JobMessage, ReplyTarget, Schedule, TelegramTarget,
};
use infra::queue::sqlite::SqliteQueue;
use infra::queue::sqs::SqsQueue;
use infra::queue::{JobQueue, JobQueueExt};
use infra::store::dynamo::DynamoStore;
use infra::store::sqlite::SqliteStore;
use infra::store::StateStore;

use common::{emulator, unique_name};

const WINDOW: Duration = Duration::from_secs(3600);

struct Pair {
    store: Arc<dyn StateStore>,
    queue: Arc<dyn JobQueue>,
    cleanup: Option<(DynamoStore, SqsQueue)>,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn sqlite() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let queue = SqliteQueue::open(
            &dir.path().join("queue.db"),
            "jobs",
            Duration::from_secs(30),
            None,
        )
        .unwrap();
        Pair {
            store: Arc::new(store),
            queue: Arc::new(queue),
            cleanup: None,
            _dir: dir,
        }
    }

    async fn emulator() -> Option<Pair> {
        let config = emulator().await?;
        let name = unique_name("cg-cron");
        let store = DynamoStore::create_table(&config, &name).await.unwrap();
        let queue = SqsQueue::create_fifo(&config, &name, 3, Duration::from_secs(30))
            .await
            .unwrap();
        Some(Pair {
            store: Arc::new(store.clone()),
            queue: Arc::new(queue.clone()),
            cleanup: Some((store, queue)),
            _dir: tempfile::tempdir().unwrap(),
        })
    }

    async fn drop_all(self) {
        if let Some((store, queue)) = self.cleanup {
            let _ = store.delete_table().await;
            let _ = queue.delete_with_dead_letter_queue().await;
        }
    }

    /// Every queued job, in order.
    async fn drain(&self) -> Vec<JobMessage> {
        let mut jobs = Vec::new();
        for _ in 0..10 {
            let got = self
                .queue
                .receive_jobs(10, Duration::from_millis(200))
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            for delivery in got {
                self.queue.ack(&delivery.delivery.receipt).await.unwrap();
                jobs.push(delivery.job);
            }
        }
        jobs
    }
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Span::minutes(minutes)
}

fn every_minute(id: &str) -> CronJob {
    let schedule = Schedule::every(Duration::from_secs(60), at(0)).unwrap();
    CronJob {
        id: id.into(),
        agent: "main".into(),
        next_run: schedule.next_after(at(0)),
        schedule,
        session: CronSession::Isolated,
        message: "check the inbox".into(),
        deliver: CronDelivery::Chat {
            account: "default".into(),
            target: ReplyTarget::Telegram(TelegramTarget {
                chat_id: 12345,
                message_thread_id: None,
                reply_to_message_id: None,
            }),
        },
        enabled: true,
        created_at: at(0),
        last_run: None,
        active_hours: None,
        heartbeat: None,
    }
}

async fn racing_ticks_queue_each_slot_once(p: &Pair) {
    let recurring = every_minute("recurring");
    let mut once = every_minute("once");
    once.schedule = Schedule::At { at: at(1) };
    once.next_run = Some(at(1));
    for job in [&recurring, &once] {
        p.store.put_cron(job).await.unwrap();
    }

    // Two ticks at the same instant, then one a minute later.
    let (a, b) = tokio::join!(
        tick(p.store.as_ref(), p.queue.as_ref(), at(1), WINDOW),
        tick(p.store.as_ref(), p.queue.as_ref(), at(1), WINDOW)
    );
    let later = tick(p.store.as_ref(), p.queue.as_ref(), at(2), WINDOW)
        .await
        .unwrap();
    let jobs = p.drain().await;

    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    ids.sort();
    let (one, two) = (at(1).timestamp_millis(), at(2).timestamp_millis());
    assert_eq!(
        ids,
        [
            format!("cron:once:{one}"),
            format!("cron:recurring:{one}"),
            format!("cron:recurring:{two}")
        ],
        "each slot once: {a:?} {b:?} {later:?}"
    );
    assert_eq!(
        a.queued.len() + b.queued.len(),
        2,
        "each slot taken by exactly one tick"
    );
    let done = p.store.get_cron("once").await.unwrap().unwrap();
    assert_eq!(done.next_run, None, "a one-shot runs once");
    let job = jobs
        .iter()
        .find(|j| j.job_id.starts_with("cron:recurring"))
        .unwrap();
    assert_eq!(job.session_key.to_string(), "cron:recurring");
    assert!(
        job.inbound.text.ends_with("check the inbox"),
        "{}",
        job.inbound.text
    );
    assert!(matches!(job.reply_to, Some(ReplyTarget::Telegram(ref t)) if t.chat_id == 12345));
}

async fn a_restart_spanning_three_slots_gives_one_late_run(p: &Pair) {
    p.store.put_cron(&every_minute("brief")).await.unwrap();

    // Nothing ticked at 08:01, 08:02 or 08:03; the first tick after the restart is 08:03:30.
    let now = at(3) + Span::seconds(30);
    let report = tick(p.store.as_ref(), p.queue.as_ref(), now, WINDOW)
        .await
        .unwrap();
    let jobs = p.drain().await;
    let job = p.store.get_cron("brief").await.unwrap().unwrap();

    assert_eq!(report.queued.len(), 1);
    assert_eq!(jobs.len(), 1, "one coalesced run, not three");
    let run = job.last_run.unwrap();
    assert_eq!((run.slot, run.slots, run.late_secs()), (at(3), 3, 30));
    assert_eq!(
        jobs[0].job_id,
        format!("cron:brief:{}", at(3).timestamp_millis())
    );
    assert_eq!(job.next_run, Some(at(4)));
}

async fn a_slot_past_the_catch_up_window_is_skipped_and_recorded(p: &Pair) {
    p.store.put_cron(&every_minute("stale")).await.unwrap();

    // Off for over three hours; back 50 s after a slot, with a 30 s window.
    let report = tick(
        p.store.as_ref(),
        p.queue.as_ref(),
        at(200) + Span::seconds(50),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let job = p.store.get_cron("stale").await.unwrap().unwrap();

    assert_eq!(report.skipped, ["stale"]);
    assert!(p.drain().await.is_empty());
    let run = job.last_run.unwrap();
    assert!(run.work_id.is_none());
    assert!(
        run.skipped.unwrap().starts_with("missed"),
        "the record says why"
    );
    assert_eq!(job.next_run, Some(at(201)));
}

async fn the_heartbeat_follows_the_config_and_keeps_to_its_active_hours(p: &Pair) {
    let config = |text: &str| infra::config::Config::parse(text).unwrap();
    let on = config(
        r#"{ agents: { defaults: { heartbeat: { every: "30m", target: "none",
                          activeHours: { start: "09:00", end: "17:00" } } } } }"#,
    );
    let id = infra::cron::heartbeat_id("main");

    infra::cron::sync_heartbeats(p.store.as_ref(), &on, at(0))
        .await
        .unwrap();
    let made = p.store.get_cron(&id).await.unwrap().unwrap();
    infra::cron::sync_heartbeats(p.store.as_ref(), &on, at(10))
        .await
        .unwrap();
    let kept = p.store.get_cron(&id).await.unwrap().unwrap();
    // 08:30 is before the active hours: the beat is skipped, and the record says so.
    let early = tick(p.store.as_ref(), p.queue.as_ref(), at(30), WINDOW)
        .await
        .unwrap();
    infra::cron::sync_heartbeats(p.store.as_ref(), &config("{}"), at(40))
        .await
        .unwrap();

    assert_eq!(made.next_run, Some(at(30)));
    assert_eq!(made.session, CronSession::Main);
    assert!(made.heartbeat.is_some());
    assert_eq!(kept, made, "an unchanged config leaves the job alone");
    assert_eq!(early.skipped, std::slice::from_ref(&id));
    assert!(p.drain().await.is_empty());
    assert!(
        p.store.get_cron(&id).await.unwrap().is_none(),
        "off removes it"
    );
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let p = super::Pair::sqlite();
                    super::$case(&p).await;
                    p.drop_all().await;
                }
            )*
        }
        mod sqs_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(p) = super::Pair::emulator().await else { return };
                    super::$case(&p).await;
                    p.drop_all().await;
                }
            )*
        }
    };
}

on_both!(
    racing_ticks_queue_each_slot_once,
    a_restart_spanning_three_slots_gives_one_late_run,
    a_slot_past_the_catch_up_window_is_skipped_and_recorded,
    the_heartbeat_follows_the_config_and_keeps_to_its_active_hours,
);
