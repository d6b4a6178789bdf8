//! The `StateStore` contract, run against both adapters: `SqliteStore` always, `DynamoStore`
//! against the emulator at `AWS_ENDPOINT_URL`. A case that passes on one adapter and fails on
//! the other is a bug in that adapter.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use infra::model::{Channel, EntryBody, JobStatus, SessionKey, TranscriptEntry};
use infra::store::dynamo::DynamoStore;
use infra::store::sqlite::SqliteStore;
use infra::store::{Claim, StateStore, StoreError, MAX_ENTRY_BYTES, MAX_PENDING_PAIRINGS};

use common::{emulator, unique_name};

const LEASE: Duration = Duration::from_secs(30);

struct Harness {
    store: Arc<dyn StateStore>,
    dynamo: Option<DynamoStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        Harness {
            store: Arc::new(store),
            dynamo: None,
            _dir: Some(dir),
        }
    }

    async fn dynamo() -> Option<Harness> {
        let config = emulator().await?;
        let store = DynamoStore::create_table(&config, &unique_name("cg-state"))
            .await
            .expect("create table on the emulator");
        Some(Harness {
            store: Arc::new(store.clone()),
            dynamo: Some(store),
            _dir: None,
        })
    }

    async fn cleanup(self) {
        if let Some(store) = self.dynamo {
            store.delete_table().await.unwrap();
        }
    }
}

fn user(seq: u64, text: &str) -> TranscriptEntry {
    TranscriptEntry {
        seq,
        at: Utc::now(),
        job_id: Some("01JOB".into()),
        body: EntryBody::User {
            text: text.into(),
            sender: None,
        },
    }
}

fn tool_result(seq: u64, output: String) -> TranscriptEntry {
    TranscriptEntry {
        seq,
        at: Utc::now(),
        job_id: None,
        body: EntryBody::ToolResult {
            call_id: format!("call{seq}"),
            name: "exec".into(),
            output,
            is_error: false,
        },
    }
}

fn dm(peer: &str) -> SessionKey {
    SessionKey::dm("main", Channel::Telegram, peer)
}

mod cases {
    use super::*;

    pub async fn append_then_load_returns_entries_in_order_and_tracks_the_session(h: &Harness) {
        let key = dm("1");
        for (seq, text) in ["hello", "world", "again"].iter().enumerate() {
            h.store
                .append_transcript(&key, "main", &user(seq as u64, text))
                .await
                .unwrap();
        }

        let page = h.store.load_transcript(&key, 0, 10).await.unwrap();
        let meta = h.store.get_session(&key).await.unwrap().unwrap();

        let texts: Vec<_> = page
            .entries
            .iter()
            .map(|e| match &e.body {
                EntryBody::User { text, .. } => text.as_str(),
                _ => "?",
            })
            .collect();
        assert_eq!(texts, ["hello", "world", "again"]);
        assert_eq!(page.next_seq, None);
        assert_eq!(meta.next_seq, 3);
        assert_eq!(meta.agent, "main");
        assert_eq!(meta.channel.as_deref(), Some("telegram"));
        assert_eq!(meta.peer.as_deref(), Some("1"));
        assert!(h.store.get_session(&dm("nobody")).await.unwrap().is_none());
    }

    pub async fn an_append_with_a_wrong_seq_is_refused_and_writes_nothing(h: &Harness) {
        let key = dm("2");
        h.store
            .append_transcript(&key, "main", &user(0, "first"))
            .await
            .unwrap();

        let again = h
            .store
            .append_transcript(&key, "main", &user(0, "dup"))
            .await
            .unwrap_err();
        let gap = h
            .store
            .append_transcript(&key, "main", &user(5, "gap"))
            .await
            .unwrap_err();
        let page = h.store.load_transcript(&key, 0, 10).await.unwrap();

        assert!(
            matches!(
                again,
                StoreError::SeqConflict {
                    expected: 1,
                    attempted: 0,
                    ..
                }
            ),
            "{again}"
        );
        assert!(
            matches!(
                gap,
                StoreError::SeqConflict {
                    expected: 1,
                    attempted: 5,
                    ..
                }
            ),
            "{gap}"
        );
        assert_eq!(page.entries.len(), 1);
        assert_eq!(
            h.store.get_session(&key).await.unwrap().unwrap().next_seq,
            1
        );
    }

    pub async fn racing_appends_of_one_seq_have_exactly_one_winner(h: &Harness) {
        let key = dm("3");
        let attempts = (0..8).map(|i| {
            let (store, key) = (h.store.clone(), key.clone());
            tokio::spawn(async move {
                store
                    .append_transcript(&key, "main", &user(0, &format!("writer {i}")))
                    .await
            })
        });

        let results: Vec<_> = futures_join(attempts).await;
        let page = h.store.load_transcript(&key, 0, 10).await.unwrap();

        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for loser in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(loser, StoreError::SeqConflict { .. }), "{loser}");
        }
        assert_eq!(page.entries, vec![winners[0].clone()]);
    }

    pub async fn load_pages_through_a_long_transcript(h: &Harness) {
        let key = dm("4");
        for seq in 0..25 {
            h.store
                .append_transcript(&key, "main", &user(seq, &format!("m{seq}")))
                .await
                .unwrap();
        }

        let first = h.store.load_transcript(&key, 0, 10).await.unwrap();
        let second = h
            .store
            .load_transcript(&key, first.next_seq.unwrap(), 10)
            .await
            .unwrap();
        let tail = h.store.load_transcript(&key, 20, 10).await.unwrap();
        let all = h.store.load_transcript_from(&key, 0).await.unwrap();

        assert_eq!(
            first.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(second.entries[0].seq, 10);
        assert_eq!(tail.entries.len(), 5);
        assert_eq!(tail.next_seq, None);
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (0..25).collect::<Vec<_>>()
        );
    }

    pub async fn oversized_entries_are_capped_before_writing_and_load_back_whole(h: &Harness) {
        let key = dm("5");
        let huge = tool_result(0, "y".repeat(1024 * 1024));
        let stored = h
            .store
            .append_transcript(&key, "main", &huge)
            .await
            .unwrap();
        // Four entries just under the cap: more than one DynamoDB 1 MB query page.
        for seq in 1..5 {
            let output = "z".repeat(MAX_ENTRY_BYTES - 200);
            h.store
                .append_transcript(&key, "main", &tool_result(seq, output))
                .await
                .unwrap();
        }

        let all = h.store.load_transcript_from(&key, 0).await.unwrap();

        assert!(stored.encoded_len() <= MAX_ENTRY_BYTES);
        let EntryBody::ToolResult { output, .. } = &stored.body else {
            unreachable!()
        };
        assert!(output.contains("truncated by clawgate"));
        assert_eq!(all.len(), 5);
        assert_eq!(all[0], stored);
    }

    pub async fn sessions_are_listed_per_agent_most_recent_first(h: &Harness) {
        for peer in ["a", "b", "c"] {
            h.store
                .append_transcript(&dm(peer), "main", &user(0, "hi"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let other = SessionKey::dm("work", Channel::Slack, "U1");
        h.store
            .append_transcript(&other, "work", &user(0, "hi"))
            .await
            .unwrap();
        h.store
            .append_transcript(&dm("a"), "main", &user(1, "back"))
            .await
            .unwrap();

        let main = h.store.list_sessions("main", 10).await.unwrap();
        let top = h.store.list_sessions("main", 1).await.unwrap();

        let peers: Vec<_> = main.iter().map(|m| m.peer.clone().unwrap()).collect();
        assert_eq!(peers, ["a", "c", "b"]);
        assert_eq!(top.len(), 1);
        assert_eq!(
            h.store.list_sessions("work", 10).await.unwrap()[0].key,
            other
        );
    }

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
            .finish_job("job-exp", "a", JobStatus::Done, None)
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
                .finish_job("job-own", "b", JobStatus::Done, None)
                .await
                .unwrap_err(),
        ];

        for err in &errors {
            assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
        }
        assert_eq!(h.store.get_job("job-own").await.unwrap().unwrap(), before);
    }

    pub async fn the_allowlist_adds_checks_lists_and_revokes(h: &Harness) {
        h.store
            .allow_sender("telegram", "default", "42")
            .await
            .unwrap();
        h.store
            .allow_sender("telegram", "default", "7")
            .await
            .unwrap();
        h.store
            .allow_sender("telegram", "default", "7")
            .await
            .unwrap();
        h.store
            .allow_sender("slack", "default", "U1")
            .await
            .unwrap();

        let listed = h.store.list_allowed("telegram", "default").await.unwrap();
        let revoked = h
            .store
            .revoke_sender("telegram", "default", "42")
            .await
            .unwrap();
        let revoked_again = h
            .store
            .revoke_sender("telegram", "default", "42")
            .await
            .unwrap();

        assert_eq!(listed, ["42", "7"]);
        assert!(revoked && !revoked_again);
        assert!(!h
            .store
            .is_allowed("telegram", "default", "42")
            .await
            .unwrap());
        assert!(h
            .store
            .is_allowed("telegram", "default", "7")
            .await
            .unwrap());
        assert!(!h.store.is_allowed("telegram", "other", "7").await.unwrap());
    }

    pub async fn pairing_codes_are_one_per_peer_capped_and_approved_once(h: &Harness) {
        let ttl = Duration::from_secs(3600);
        let first = h
            .store
            .request_pairing("telegram", "default", "p1", Some("Ada"), ttl)
            .await
            .unwrap();
        let repeat = h
            .store
            .request_pairing("telegram", "default", "p1", Some("Ada"), ttl)
            .await
            .unwrap();
        for peer in ["p2", "p3"] {
            h.store
                .request_pairing("telegram", "default", peer, None, ttl)
                .await
                .unwrap();
        }
        let over = h
            .store
            .request_pairing("telegram", "default", "p4", None, ttl)
            .await
            .unwrap_err();

        let approved = h
            .store
            .approve_pairing("telegram", "default", &first.code.to_lowercase())
            .await
            .unwrap();
        let twice = h
            .store
            .approve_pairing("telegram", "default", &first.code)
            .await
            .unwrap();
        let pending = h.store.list_pairing("telegram", "default").await.unwrap();

        assert_eq!(repeat.code, first.code);
        assert!(
            matches!(
                over,
                StoreError::TooManyPending {
                    limit: MAX_PENDING_PAIRINGS,
                    ..
                }
            ),
            "{over}"
        );
        assert_eq!(approved.unwrap().peer_name.as_deref(), Some("Ada"));
        assert!(twice.is_none());
        assert!(h
            .store
            .is_allowed("telegram", "default", "p1")
            .await
            .unwrap());
        assert_eq!(
            pending.iter().map(|r| r.peer.as_str()).collect::<Vec<_>>(),
            ["p2", "p3"]
        );
        assert!(h
            .store
            .approve_pairing("telegram", "default", "NOSUCH00")
            .await
            .unwrap()
            .is_none());
    }

    pub async fn expired_pairing_codes_are_invisible_and_unapprovable(h: &Harness) {
        let request = h
            .store
            .request_pairing("slack", "default", "U9", None, Duration::from_millis(500))
            .await
            .unwrap();

        tokio::time::sleep(Duration::from_millis(800)).await;
        let pending = h.store.list_pairing("slack", "default").await.unwrap();
        let approved = h
            .store
            .approve_pairing("slack", "default", &request.code)
            .await
            .unwrap();
        let fresh = h
            .store
            .request_pairing("slack", "default", "U9", None, Duration::from_secs(60))
            .await
            .unwrap();

        assert!(pending.is_empty());
        assert!(approved.is_none());
        assert!(!h.store.is_allowed("slack", "default", "U9").await.unwrap());
        assert_ne!(fresh.code, request.code);
    }
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

/// One `#[tokio::test]` per case per adapter: `sqlite::case` and `dynamo::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::Harness::sqlite().await;
                    super::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = super::Harness::dynamo().await else { return };
                    super::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    append_then_load_returns_entries_in_order_and_tracks_the_session,
    an_append_with_a_wrong_seq_is_refused_and_writes_nothing,
    racing_appends_of_one_seq_have_exactly_one_winner,
    load_pages_through_a_long_transcript,
    oversized_entries_are_capped_before_writing_and_load_back_whole,
    sessions_are_listed_per_agent_most_recent_first,
    a_dedup_marker_has_one_first_writer_and_expires,
    racing_claims_have_exactly_one_winner,
    an_expired_lease_is_taken_over_and_the_old_holder_loses_it,
    a_released_job_can_be_claimed_at_once_and_keeps_its_sent_chunks,
    renewing_a_lease_keeps_others_out,
    a_finished_job_stays_finished,
    only_the_lease_holder_changes_a_job,
    the_allowlist_adds_checks_lists_and_revokes,
    pairing_codes_are_one_per_peer_capped_and_approved_once,
    expired_pairing_codes_are_invisible_and_unapprovable,
);

#[tokio::test]
async fn dynamo_unreachable_is_a_retryable_error_naming_the_endpoint() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::for_tests(),
        ))
        .build();
    let store = DynamoStore::new(&config, "clawgate");

    let err = store.claim_job("job", "w", LEASE).await.unwrap_err();

    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("http://127.0.0.1:9"), "{err}");
}

#[tokio::test]
async fn sqlite_state_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .append_transcript(&dm("9"), "main", &user(0, "remember me"))
            .await
            .unwrap();
        store.claim_job("job-1", "w", LEASE).await.unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();

    assert_eq!(
        store.load_transcript_from(&dm("9"), 0).await.unwrap().len(),
        1
    );
    assert!(matches!(
        store.claim_job("job-1", "other", LEASE).await.unwrap(),
        Claim::Busy(_)
    ));
}
