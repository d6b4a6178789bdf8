//! [`SenderStore`] on SQLite: the allowlist and pairing codes.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{SqliteStore, TxError};
use crate::model::PairingRequest;
use crate::store::{
    duration_ms, new_pairing_code, normalize_code, SenderStore, StoreError, MAX_PENDING_PAIRINGS,
};

fn pairing_from_row(row: &rusqlite::Row<'_>) -> Result<PairingRequest, rusqlite::Error> {
    Ok(PairingRequest {
        channel: row.get(0)?,
        account: row.get(1)?,
        code: row.get(2)?,
        peer: row.get(3)?,
        peer_name: row.get(4)?,
        created_ms: row.get(5)?,
        expires_ms: row.get(6)?,
    })
}

const PAIRING_COLUMNS: &str = "channel, account, code, peer, peer_name, created_ms, expires_ms";

fn live_pairings(
    conn: &Connection,
    channel: &str,
    account: &str,
    now: i64,
) -> Result<Vec<PairingRequest>, TxError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PAIRING_COLUMNS} FROM pairing
         WHERE channel = ?1 AND account = ?2 AND expires_ms > ?3 ORDER BY created_ms, peer"
    ))?;
    let rows = stmt.query_map(params![channel, account, now], pairing_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[async_trait]
impl SenderStore for SqliteStore {
    async fn allow_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<(), StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        self.write(move |tx, now| {
            tx.execute(
                "INSERT OR IGNORE INTO allowlist (channel, account, peer, added_ms) VALUES (?1, ?2, ?3, ?4)",
                params![c, a, p, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        self.write(move |tx, _| {
            let n = tx.execute(
                "DELETE FROM allowlist WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                params![c, a, p],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn is_allowed(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        self.read(move |conn, _| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM allowlist WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                    params![c, a, p],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    async fn list_allowed(&self, channel: &str, account: &str) -> Result<Vec<String>, StoreError> {
        let (c, a) = (channel.to_string(), account.to_string());
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT peer FROM allowlist WHERE channel = ?1 AND account = ?2 ORDER BY peer",
            )?;
            let rows = stmt.query_map(params![c, a], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn request_pairing(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
        peer_name: Option<&str>,
        ttl: Duration,
    ) -> Result<PairingRequest, StoreError> {
        let (c, a, p) = (channel.to_string(), account.to_string(), peer.to_string());
        let name = peer_name.map(str::to_string);
        let ttl = duration_ms(ttl);
        self.write(move |tx, now| {
            tx.execute("DELETE FROM pairing WHERE expires_ms <= ?1", params![now])?;
            let pending = live_pairings(tx, &c, &a, now)?;
            if let Some(existing) = pending.iter().find(|r| r.peer == p) {
                return Ok(existing.clone());
            }
            if pending.len() >= MAX_PENDING_PAIRINGS {
                return Err(TxError::Store(StoreError::TooManyPending {
                    channel: c,
                    account: a,
                    limit: MAX_PENDING_PAIRINGS,
                }));
            }
            let request = PairingRequest {
                channel: c,
                account: a,
                code: new_pairing_code(),
                peer: p,
                peer_name: name,
                created_ms: now,
                expires_ms: now + ttl,
            };
            tx.execute(
                &format!(
                    "INSERT INTO pairing ({PAIRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    request.channel,
                    request.account,
                    request.code,
                    request.peer,
                    request.peer_name,
                    request.created_ms,
                    request.expires_ms
                ],
            )?;
            Ok(request)
        })
        .await
    }

    async fn list_pairing(
        &self,
        channel: &str,
        account: &str,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        let (c, a) = (channel.to_string(), account.to_string());
        self.read(move |conn, now| live_pairings(conn, &c, &a, now))
            .await
    }

    async fn approve_pairing(
        &self,
        channel: &str,
        account: &str,
        code: &str,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let (c, a, code) = (
            channel.to_string(),
            account.to_string(),
            normalize_code(code),
        );
        self.write(move |tx, now| {
            let request = tx
                .query_row(
                    &format!(
                        "SELECT {PAIRING_COLUMNS} FROM pairing
                         WHERE channel = ?1 AND account = ?2 AND code = ?3 AND expires_ms > ?4"
                    ),
                    params![c, a, code, now],
                    pairing_from_row,
                )
                .optional()?;
            let Some(request) = request else {
                return Ok(None);
            };
            tx.execute(
                "DELETE FROM pairing WHERE channel = ?1 AND account = ?2 AND code = ?3",
                params![c, a, code],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO allowlist (channel, account, peer, added_ms) VALUES (?1, ?2, ?3, ?4)",
                params![c, a, request.peer, now],
            )?;
            Ok(Some(request))
        })
        .await
    }
}
