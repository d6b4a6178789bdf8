//! The `JobLedger` contract: dedup markers, claims, leases and finished jobs.

use super::*;
use infra::model::Tokens;
use infra::store::{Claim, StoreError};

mod cases {
    use super::*;

    pub async fn a_dedup_marker_has_one_first_writer_and_expires(h: &Harness) {
        let racers = (0..8).map(|_| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .mark_seen("telegram:default:42", Duration::from_secs(1))
                    .await
            })
        });
        let firsts = futures_join(racers)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        let again = h
            .store
            .mark_seen("telegram:default:42", Duration::from_secs(1))
            .await
            .unwrap();

        tokio::time::sleep(Duration::from_millis(1200)).await;
        let after_expiry = h
            .store
            .mark_seen("telegram:default:42", Duration::from_secs(60))
            .await
            .unwrap();

        assert_eq!(firsts, 1);
        assert!(!again);
        assert!(after_expiry, "an expired marker must not block");
    }

    pub async fn racing_claims_have_exactly_one_winner(h: &Harness) {
        let racers = (0..8).map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .claim_job("job-race", &format!("worker-{i}"), LEASE)
                    .await
            })
        });

        let claims: Vec<Claim> = futures_join(racers)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();

        let won: Vec<_> = claims
            .iter()
            .filter(|c| matches!(c, Claim::Claimed(_)))
            .collect();
        assert_eq!(won.len(), 1, "{claims:?}");
        assert_eq!(
            claims
                .iter()
                .filter(|c| matches!(c, Claim::Busy(_)))
                .count(),
            7
        );
        let Claim::Claimed(record) = won[0] else {
            unreachable!()
        };
        assert_eq!(record.attempt, 1);
        assert_eq!(record.status, JobStatus::Running);
    }

    pub async fn an_expired_lease_is_taken_over_and_the_old_holder_loses_it(h: &Harness) {
        let Claim::Claimed(_) = h
            .store
            .claim_job("job-exp", "a", Duration::from_millis(400))
            .await
            .unwrap()
        else {
            panic!("first claim must win")
        };
        let early = h.store.claim_job("job-exp", "b", LEASE).await.unwrap();

        tokio::time::sleep(Duration::from_millis(600)).await;
        let late = h.store.claim_job("job-exp", "b", LEASE).await.unwrap();
        let renew = h
            .store
            .renew_lease("job-exp", "a", LEASE)
            .await
            .unwrap_err();
        let finish = h
            .store
            .finish_job("job-exp", "a", JobStatus::Done, None, None)
            .await
            .unwrap_err();

        assert!(
            matches!(early, Claim::Busy(ref r) if r.lease_owner.as_deref() == Some("a")),
            "{early:?}"
        );
        let Claim::Claimed(record) = late else {
            panic!("{late:?}")
        };
        assert_eq!(record.attempt, 2);
        assert_eq!(record.lease_owner.as_deref(), Some("b"));
        assert!(matches!(renew, StoreError::LeaseLost { .. }));
        assert!(matches!(finish, StoreError::LeaseLost { .. }));
        assert_eq!(
            h.store.get_job("job-exp").await.unwrap().unwrap().status,
            JobStatus::Running
        );
    }

    pub async fn a_released_job_can_be_claimed_at_once_and_keeps_its_sent_chunks(h: &Harness) {
        h.store.claim_job("job-rel", "a", LEASE).await.unwrap();
        h.store.mark_chunk_sent("job-rel", "a", 0).await.unwrap();
        h.store.mark_chunk_sent("job-rel", "a", 1).await.unwrap();
        h.store.mark_chunk_sent("job-rel", "a", 1).await.unwrap();

        h.store.release_job("job-rel", "a").await.unwrap();
        let taken = h.store.claim_job("job-rel", "b", LEASE).await.unwrap();

        let Claim::Claimed(record) = taken else {
            panic!("{taken:?}")
        };
        assert_eq!(record.chunks_sent, vec![0, 1]);
        assert_eq!(record.attempt, 2);
    }

    pub async fn renewing_a_lease_keeps_others_out(h: &Harness) {
        h.store
            .claim_job("job-renew", "a", Duration::from_millis(400))
            .await
            .unwrap();
        h.store.renew_lease("job-renew", "a", LEASE).await.unwrap();

        tokio::time::sleep(Duration::from_millis(600)).await;
        let other = h.store.claim_job("job-renew", "b", LEASE).await.unwrap();
        let own = h.store.claim_job("job-renew", "a", LEASE).await.unwrap();

        assert!(matches!(other, Claim::Busy(_)), "{other:?}");
        assert!(
            matches!(own, Claim::Claimed(_)),
            "re-claiming one's own lease succeeds"
        );
    }

    pub async fn a_finished_job_stays_finished(h: &Harness) {
        h.store.claim_job("job-done", "a", LEASE).await.unwrap();
        h.store
            .finish_job(
                "job-done",
                "a",
                JobStatus::Failed,
                Some("model kept failing"),
                Some(Tokens {
                    input: 1200,
                    output: 300,
                    cache_read: 7,
                    cache_write: 0,
                }),
            )
            .await
            .unwrap();

        let later = h.store.claim_job("job-done", "b", LEASE).await.unwrap();
        let record = h.store.get_job("job-done").await.unwrap().unwrap();
        let mark = h
            .store
            .mark_chunk_sent("job-done", "a", 0)
            .await
            .unwrap_err();

        assert!(
            matches!(later, Claim::Finished(ref r) if r.status == JobStatus::Failed),
            "{later:?}"
        );
        assert_eq!(record.detail.as_deref(), Some("model kept failing"));
        assert_eq!(
            record.usage.map(|u| (u.input, u.output, u.cache_read)),
            Some((1200, 300, 7)),
            "the job's tokens are on its record"
        );
        assert!(matches!(mark, StoreError::LeaseLost { .. }));
        assert!(h.store.get_job("never-seen").await.unwrap().is_none());
    }

    pub async fn only_the_lease_holder_changes_a_job(h: &Harness) {
        h.store.claim_job("job-own", "a", LEASE).await.unwrap();
        let before = h.store.get_job("job-own").await.unwrap().unwrap();

        let errors = [
            h.store
                .renew_lease("job-own", "b", LEASE)
                .await
                .unwrap_err(),
            h.store.release_job("job-own", "b").await.unwrap_err(),
            h.store
                .mark_chunk_sent("job-own", "b", 3)
                .await
                .unwrap_err(),
            h.store
                .finish_job("job-own", "b", JobStatus::Done, None, None)
                .await
                .unwrap_err(),
            h.store
                .set_preview("job-own", "b", "1001")
                .await
                .unwrap_err(),
        ];

        for err in &errors {
            assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
        }
        assert_eq!(h.store.get_job("job-own").await.unwrap().unwrap(), before);
    }

    pub async fn a_preview_id_survives_a_takeover(h: &Harness) {
        h.store.claim_job("job-prev", "a", LEASE).await.unwrap();
        h.store.set_preview("job-prev", "a", "1001").await.unwrap();
        h.store.release_job("job-prev", "a").await.unwrap();

        let taken = h.store.claim_job("job-prev", "b", LEASE).await.unwrap();

        let Claim::Claimed(record) = taken else {
            panic!("{taken:?}")
        };
        assert_eq!(record.preview.as_deref(), Some("1001"));
        assert_eq!(h.store.get_job("job-prev").await.unwrap().unwrap(), record);
    }

    pub async fn the_latest_stop_of_a_session_wins(h: &Harness) {
        let (session, other) = (dm("stop-1"), dm("stop-2"));
        let never = h.store.stop_requested(&session).await.unwrap();

        h.store.request_stop(&session, 2_000).await.unwrap();
        h.store.request_stop(&session, 1_000).await.unwrap();
        let latest = h.store.stop_requested(&session).await.unwrap();
        h.store.request_stop(&session, 3_000).await.unwrap();

        assert_eq!(never, None);
        assert_eq!(
            latest,
            Some(2_000),
            "an older stop must not overwrite a newer one"
        );
        assert_eq!(h.store.stop_requested(&session).await.unwrap(), Some(3_000));
        assert_eq!(h.store.stop_requested(&other).await.unwrap(), None);
    }
}

conformance!(
    a_preview_id_survives_a_takeover,
    the_latest_stop_of_a_session_wins,
    a_dedup_marker_has_one_first_writer_and_expires,
    racing_claims_have_exactly_one_winner,
    an_expired_lease_is_taken_over_and_the_old_holder_loses_it,
    a_released_job_can_be_claimed_at_once_and_keeps_its_sent_chunks,
    renewing_a_lease_keeps_others_out,
    a_finished_job_stays_finished,
    only_the_lease_holder_changes_a_job,
);
