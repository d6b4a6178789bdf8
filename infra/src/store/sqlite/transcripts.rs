//! [`TranscriptStore`] on SQLite: sessions and their transcripts.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{corrupt, SqliteStore, TxError};
use crate::model::{EntryBody, SessionKey, SessionMeta, TranscriptEntry};
use crate::store::{capped, StoreError, TranscriptPage, TranscriptStore};

fn session_from_row(row: &rusqlite::Row<'_>) -> Result<SessionMeta, rusqlite::Error> {
    let key: String = row.get(0)?;
    let key = key.parse::<SessionKey>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(SessionMeta {
        key,
        agent: row.get(1)?,
        channel: row.get(2)?,
        peer: row.get(3)?,
        created_ms: row.get(4)?,
        last_active_ms: row.get(5)?,
        next_seq: row.get::<_, i64>(6)? as u64,
        context_from_seq: row.get::<_, i64>(7)? as u64,
        options: match row.get::<_, Option<String>>(8)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    8,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            None => Default::default(),
        },
    })
}

const SESSION_COLUMNS: &str =
    "key, agent, channel, peer, created_ms, last_active_ms, next_seq, context_from_seq, options";

#[async_trait]
impl TranscriptStore for SqliteStore {
    async fn get_session(&self, key: &SessionKey) -> Result<Option<SessionMeta>, StoreError> {
        let key = key.to_string();
        self.read(move |conn, _| {
            Ok(conn
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?1"),
                    params![key],
                    session_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn list_sessions(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<SessionMeta>, StoreError> {
        let agent = agent.to_string();
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE agent = ?1
                 ORDER BY last_active_ms DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![agent, limit as i64], session_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn append_transcript(
        &self,
        key: &SessionKey,
        agent: &str,
        entry: &TranscriptEntry,
    ) -> Result<TranscriptEntry, StoreError> {
        let stored = capped(entry);
        let body =
            serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (channel, peer) = match key.channel_and_peer() {
            Some((c, p)) => (Some(c.to_string()), Some(p.to_string())),
            None => (None, None),
        };
        let (key, agent, seq) = (key.to_string(), agent.to_string(), stored.seq);
        let stored_body = stored.body.clone();
        self.write(move |tx, now| {
            let next: u64 = tx
                .query_row("SELECT next_seq FROM sessions WHERE key = ?1", params![key], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .unwrap_or(0) as u64;
            if seq != next {
                return Err(TxError::Store(StoreError::SeqConflict {
                    session: key,
                    expected: next,
                    attempted: seq,
                }));
            }
            tx.execute(
                "INSERT INTO transcript (session, seq, body) VALUES (?1, ?2, ?3)",
                params![key, seq as i64, body],
            )?;
            // The rules of the contract: a summary moves where jobs start reading; only a
            // user's message (or the first entry) moves the activity the listing sorts by.
            let context_from = match &stored_body {
                EntryBody::Summary { through_seq, .. } => Some((through_seq + 1) as i64),
                _ => None,
            };
            let active = matches!(stored_body, EntryBody::User { .. });
            // An `Options` entry is the session's options from now on.
            let options = match &stored_body {
                EntryBody::Options(o) => Some(serde_json::to_string(o).map_err(|e| {
                    TxError::Store(StoreError::Corrupt(e.to_string()))
                })?),
                _ => None,
            };
            tx.execute(
                "INSERT INTO sessions (key, agent, channel, peer, created_ms, last_active_ms, next_seq, context_from_seq, options)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, COALESCE(?7, 0), ?9)
                 ON CONFLICT (key) DO UPDATE SET next_seq = ?6, agent = ?2,
                     last_active_ms = CASE WHEN ?8 THEN ?5 ELSE last_active_ms END,
                     context_from_seq = COALESCE(?7, context_from_seq),
                     options = COALESCE(?9, options)",
                params![key, agent, channel, peer, now, (seq + 1) as i64, context_from, active, options],
            )?;
            Ok(())
        })
        .await?;
        Ok(stored)
    }

    async fn load_transcript(
        &self,
        key: &SessionKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<TranscriptPage, StoreError> {
        let key = key.to_string();
        let limit = limit.max(1);
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM transcript WHERE session = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )?;
            let bodies = stmt.query_map(params![key, from_seq as i64, limit as i64], |r| {
                r.get::<_, String>(0)
            })?;
            let mut entries = Vec::new();
            for body in bodies {
                let entry: TranscriptEntry = serde_json::from_str(&body?).map_err(corrupt)?;
                entries.push(entry);
            }
            let next_seq = (entries.len() == limit).then(|| entries.last().map(|e| e.seq + 1)).flatten();
            Ok(TranscriptPage { entries, next_seq })
        })
        .await
    }
}
