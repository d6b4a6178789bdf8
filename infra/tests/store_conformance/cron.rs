//! The `CronStore` contract: jobs by id, what is due, and the guarded advance.

use super::*;
use chrono::{DateTime, Duration as Span};
use infra::model::{CronDelivery, CronJob, CronRun, CronSession, Schedule};

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Span::minutes(minutes)
}

fn job(id: &str, next: Option<i64>) -> CronJob {
    CronJob {
        id: id.into(),
        agent: "main".into(),
        schedule: Schedule::every(Duration::from_secs(600), at(0)).unwrap(),
        session: CronSession::Isolated,
        message: format!("run {id}"),
        deliver: CronDelivery::None,
        enabled: true,
        next_run: next.map(at),
        created_at: at(0),
        last_run: None,
        active_hours: None,
        heartbeat: None,
    }
}

fn run(slot: i64) -> CronRun {
    CronRun {
        slot: at(slot),
        queued_at: at(slot),
        slots: 1,
        work_id: Some(format!("cron:x:{slot}")),
        skipped: None,
    }
}

mod cases {
    use super::*;

    pub async fn jobs_are_put_read_listed_replaced_and_removed(h: &Harness) {
        h.store.put_cron(&job("b", Some(10))).await.unwrap();
        h.store.put_cron(&job("a", Some(20))).await.unwrap();
        let mut changed = job("b", Some(30));
        changed.message = "changed".into();

        h.store.put_cron(&changed).await.unwrap();
        let listed: Vec<String> = h
            .store
            .list_cron()
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        let removed = h.store.remove_cron("a").await.unwrap();
        let again = h.store.remove_cron("a").await.unwrap();

        assert_eq!(listed, ["a", "b"]);
        assert_eq!(h.store.get_cron("b").await.unwrap(), Some(changed));
        assert!(removed && !again);
        assert_eq!(h.store.get_cron("a").await.unwrap(), None);
    }

    pub async fn due_jobs_are_the_enabled_ones_at_or_before_now_soonest_first(h: &Harness) {
        let mut disabled = job("off", Some(1));
        disabled.enabled = false;
        for j in [
            job("late", Some(5)),
            job("early", Some(2)),
            job("future", Some(60)),
            job("done", None),
            disabled,
        ] {
            h.store.put_cron(&j).await.unwrap();
        }

        let due: Vec<String> = h
            .store
            .due_cron(at(5), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        let first: Vec<String> = h
            .store
            .due_cron(at(5), 1)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();

        assert_eq!(due, ["early", "late"], "at or before now, soonest first");
        assert_eq!(first, ["early"]);
        assert!(h.store.due_cron(at(1), 10).await.unwrap().is_empty());
    }

    pub async fn of_two_advances_of_one_slot_exactly_one_wins(h: &Harness) {
        h.store.put_cron(&job("race", Some(10))).await.unwrap();
        let advance = |next| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .advance_cron("race", at(10), Some(at(next)), &run(10))
                    .await
                    .unwrap()
            })
        };

        let wins = futures_join([advance(20), advance(20)].into_iter()).await;
        let stale = h
            .store
            .advance_cron("race", at(10), Some(at(30)), &run(10))
            .await
            .unwrap();
        let after = h.store.get_cron("race").await.unwrap().unwrap();
        let missing = h
            .store
            .advance_cron("nobody", at(10), None, &run(10))
            .await
            .unwrap();

        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        assert!(!stale && !missing);
        assert_eq!(after.next_run, Some(at(20)));
        assert_eq!(after.last_run, Some(run(10)));
        assert_eq!(h.store.due_cron(at(20), 10).await.unwrap().len(), 1);
    }

    pub async fn a_job_advanced_to_no_next_run_is_never_due_again(h: &Harness) {
        h.store.put_cron(&job("once", Some(10))).await.unwrap();

        let advanced = h
            .store
            .advance_cron("once", at(10), None, &run(10))
            .await
            .unwrap();

        assert!(advanced);
        assert!(h.store.due_cron(at(1_000), 10).await.unwrap().is_empty());
        let kept = h.store.get_cron("once").await.unwrap().unwrap();
        assert_eq!(
            (kept.next_run, kept.last_run.map(|r| r.slot)),
            (None, Some(at(10)))
        );
    }
}

conformance!(
    jobs_are_put_read_listed_replaced_and_removed,
    due_jobs_are_the_enabled_ones_at_or_before_now_soonest_first,
    of_two_advances_of_one_slot_exactly_one_wins,
    a_job_advanced_to_no_next_run_is_never_due_again,
);
