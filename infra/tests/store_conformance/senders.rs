//! The `SenderStore` contract: the allowlist and pairing codes.

use super::*;
use infra::store::{StoreError, MAX_PENDING_PAIRINGS};

mod cases {
    use super::*;

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

conformance!(
    the_allowlist_adds_checks_lists_and_revokes,
    pairing_codes_are_one_per_peer_capped_and_approved_once,
    expired_pairing_codes_are_invisible_and_unapprovable,
);
