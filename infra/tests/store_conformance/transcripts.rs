//! The `TranscriptStore` contract: sessions, transcript appends with the seq guard, paging,
//! capping, listing, and where a job starts reading.

use super::*;
use infra::store::{StoreError, MAX_ENTRY_BYTES};

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
    pub async fn only_a_users_message_moves_a_sessions_activity(h: &Harness) {
        for peer in ["a", "b"] {
            h.store
                .append_transcript(&dm(peer), "main", &user(0, "hi"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = h.store.get_session(&dm("a")).await.unwrap().unwrap();

        // The agent's steps in session a (a tool result) do not make it the most active.
        tokio::time::sleep(Duration::from_millis(5)).await;
        h.store
            .append_transcript(&dm("a"), "main", &tool_result(1, "ok".into()))
            .await
            .unwrap();

        let after = h.store.get_session(&dm("a")).await.unwrap().unwrap();
        let peers: Vec<_> = h
            .store
            .list_sessions("main", 10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.peer.clone().unwrap())
            .collect();
        assert_eq!(after.last_active_ms, before.last_active_ms);
        assert_eq!(after.next_seq, 2);
        assert_eq!(peers, ["b", "a"]);
    }

    pub async fn a_summary_moves_where_a_job_starts_reading(h: &Harness) {
        let key = dm("long");
        for seq in 0..6 {
            h.store
                .append_transcript(&key, "main", &user(seq, &format!("m{seq}")))
                .await
                .unwrap();
        }
        let summary = TranscriptEntry {
            seq: 6,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::Summary {
                text: "m0 to m3".into(),
                through_seq: 3,
            },
        };
        let whole = h.store.load_context(&key).await.unwrap();

        h.store
            .append_transcript(&key, "main", &summary)
            .await
            .unwrap();
        h.store
            .append_transcript(&key, "main", &user(7, "m7"))
            .await
            .unwrap();
        let window = h.store.load_context(&key).await.unwrap();
        let unknown = h.store.load_context(&dm("nobody")).await.unwrap();

        assert_eq!(whole.entries.len(), 6, "no summary yet: everything");
        let seqs: Vec<u64> = window.entries.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            [4, 5, 6, 7],
            "what the summary does not cover, itself, and after"
        );
        assert_eq!(window.next_seq, 8);
        assert_eq!((unknown.next_seq, unknown.entries.len()), (0, 0));
    }

    pub async fn an_options_entry_sets_the_sessions_options_across_a_compaction(h: &Harness) {
        let key = dm("options");
        let entry = |seq, body| TranscriptEntry {
            seq,
            at: Utc::now(),
            job_id: None,
            body,
        };
        let chosen = SessionOptions {
            model: Some("openai/gpt-test".into()),
            thinking: Some(ThinkLevel::High),
        };
        h.store
            .append_transcript(&key, "main", &user(0, "hi"))
            .await
            .unwrap();
        let before = h.store.get_session(&key).await.unwrap().unwrap();

        for (seq, body) in [
            (1, EntryBody::Options(chosen.clone())),
            (
                2,
                EntryBody::User {
                    text: "after".into(),
                    sender: None,
                },
            ),
            (
                3,
                EntryBody::Summary {
                    text: "all of it".into(),
                    through_seq: 2,
                },
            ),
        ] {
            h.store
                .append_transcript(&key, "main", &entry(seq, body))
                .await
                .unwrap();
        }
        let meta = h.store.get_session(&key).await.unwrap().unwrap();
        let context = h.store.load_context(&key).await.unwrap();

        assert!(before.options.is_default());
        assert_eq!(meta.options, chosen, "later entries keep the options");
        assert_eq!(context.entries.len(), 1, "only the summary is read");
        assert_eq!(
            context.options, chosen,
            "the options hold though their entry lies before the compaction"
        );
    }
}

conformance!(
    append_then_load_returns_entries_in_order_and_tracks_the_session,
    an_append_with_a_wrong_seq_is_refused_and_writes_nothing,
    racing_appends_of_one_seq_have_exactly_one_winner,
    load_pages_through_a_long_transcript,
    oversized_entries_are_capped_before_writing_and_load_back_whole,
    sessions_are_listed_per_agent_most_recent_first,
    only_a_users_message_moves_a_sessions_activity,
    a_summary_moves_where_a_job_starts_reading,
    an_options_entry_sets_the_sessions_options_across_a_compaction,
);
