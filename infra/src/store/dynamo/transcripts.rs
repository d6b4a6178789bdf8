//! [`TranscriptStore`] on DynamoDB: session metadata and transcript entries under one
//! partition per session, appended in one transaction with the seq guard.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use sha2::{Digest, Sha256};

use super::{
    get_n, get_s, is_code, key_item, n, s, session_pk, DynamoStore, Expr, Item, AGENT_INDEX,
    AGENT_INDEX_SHARDS, MAX_SEQ,
};
use crate::embedded::now_ms;
use crate::model::{EntryBody, SessionKey, SessionMeta, TranscriptEntry};
use crate::store::{capped, StoreError, TranscriptPage, TranscriptStore};

impl DynamoStore {
    /// The stored JSON of entry `seq`, if there is one.
    async fn stored_body(&self, key: &SessionKey, seq: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .get_item(session_pk(key), &format!("MSG#{seq:012}"))
            .await?
            .and_then(|item| get_s(&item, "body")))
    }
}

/// The index key a session is listed under: its agent and a shard drawn from its key.
fn index_key(agent: &str, key: &SessionKey) -> String {
    let shard = Sha256::digest(key.to_string().as_bytes())[0] % AGENT_INDEX_SHARDS;
    format!("AGENT#{agent}#{shard}")
}

fn session_from_item(item: &Item) -> Result<SessionMeta, StoreError> {
    let key = get_s(item, "session_key")
        .ok_or_else(|| StoreError::Corrupt("session item without session_key".into()))?;
    Ok(SessionMeta {
        key: key
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        agent: get_s(item, "agent").unwrap_or_default(),
        channel: get_s(item, "channel"),
        peer: get_s(item, "peer"),
        created_ms: get_n(item, "created_ms").unwrap_or(0),
        last_active_ms: get_n(item, "last_active_ms").unwrap_or(0),
        next_seq: get_n(item, "next_seq").unwrap_or(0),
        context_from_seq: get_n(item, "context_from_seq").unwrap_or(0),
        options: match get_s(item, "options") {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("session options: {e}")))?,
            None => Default::default(),
        },
    })
}

#[async_trait]
impl TranscriptStore for DynamoStore {
    async fn get_session(&self, key: &SessionKey) -> Result<Option<SessionMeta>, StoreError> {
        self.get_item(session_pk(key), "META")
            .await?
            .map(|item| session_from_item(&item))
            .transpose()
    }

    async fn list_sessions(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<SessionMeta>, StoreError> {
        // Each shard is sorted by activity; the newest `limit` overall are among the newest
        // `limit` of every shard.
        let mut rows: Vec<(String, SessionMeta)> = Vec::new();
        for shard in 0..AGENT_INDEX_SHARDS {
            let mut start = None;
            let mut taken = 0;
            while taken < limit {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(AGENT_INDEX)
                    .key_condition_expression("gsi1pk = :agent")
                    .expression_attribute_values(":agent", s(format!("AGENT#{agent}#{shard}")))
                    .scan_index_forward(false)
                    .limit((limit - taken) as i32)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| self.error(e))?;
                for item in out.items.unwrap_or_default() {
                    let order = get_s(&item, "gsi1sk").unwrap_or_default();
                    rows.push((order, session_from_item(&item)?));
                    taken += 1;
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(rows.into_iter().take(limit).map(|(_, m)| m).collect())
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
        let seq = stored.seq;
        // A cancelled transaction is either a real conflict (someone wrote seq first) or a
        // transient clash with a concurrent transaction; only the first is final.
        for _ in 0..5 {
            let now = now_ms();
            let mut e = Expr::default();
            let mut sets = vec![
                format!("{} = {}", e.name("next_seq"), e.value("next", n(seq + 1))),
                format!(
                    "{} = if_not_exists({}, {})",
                    e.name("created_ms"),
                    e.name("created_ms"),
                    e.value("now", n(now))
                ),
                format!("{} = {}", e.name("agent"), e.value("agent", s(agent))),
                format!(
                    "{} = {}",
                    e.name("session_key"),
                    e.value("key", s(key.to_string()))
                ),
            ];
            // The contract's rules: only a user's message (or the first entry) writes the
            // index the listing sorts by; a summary moves where jobs start reading.
            if seq == 0 || matches!(stored.body, EntryBody::User { .. }) {
                sets.push(format!(
                    "{} = {}",
                    e.name("last_active_ms"),
                    e.value("now", n(now))
                ));
                sets.push(format!(
                    "{} = {}",
                    e.name("gsi1pk"),
                    e.value("g1", s(index_key(agent, key)))
                ));
                sets.push(format!(
                    "{} = {}",
                    e.name("gsi1sk"),
                    e.value("g1s", s(format!("{now:015}#{key}")))
                ));
            }
            if let EntryBody::Summary { through_seq, .. } = &stored.body {
                sets.push(format!(
                    "{} = {}",
                    e.name("context_from_seq"),
                    e.value("from", n(through_seq + 1))
                ));
            }
            if let EntryBody::Options(options) = &stored.body {
                let json = serde_json::to_string(options)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sets.push(format!(
                    "{} = {}",
                    e.name("options"),
                    e.value("options", s(json))
                ));
            }
            if let Some((channel, peer)) = key.channel_and_peer() {
                sets.push(format!(
                    "{} = {}",
                    e.name("channel"),
                    e.value("channel", s(channel))
                ));
                sets.push(format!("{} = {}", e.name("peer"), e.value("peer", s(peer))));
            }
            let condition = if seq == 0 {
                format!("attribute_not_exists({})", e.name("next_seq"))
            } else {
                format!("{} = {}", e.name("next_seq"), e.value("seq", n(seq)))
            };
            let meta = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(key, "META")))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression(condition)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .build()
                .expect("update fields are set");
            let mut item = key_item(key, &format!("MSG#{seq:012}"));
            item.insert("body".into(), s(body.clone()));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("put fields are set");
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(meta).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(stored),
                Err(err) if is_code(err.code(), "TransactionCanceledException") => {
                    let next = self.get_session(key).await?.map_or(0, |m| m.next_seq);
                    // A retried attempt whose first try landed (its answer was lost in a
                    // timeout) meets its own entry: that is success, not a conflict.
                    if next == seq + 1 && self.stored_body(key, seq).await? == Some(body.clone()) {
                        return Ok(stored);
                    }
                    if next != seq {
                        return Err(StoreError::SeqConflict {
                            session: key.to_string(),
                            expected: next,
                            attempted: seq,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => return Err(self.error(err)),
            }
        }
        Err(StoreError::Throttled {
            endpoint: self.endpoint.clone(),
            code: "TransactionConflict".into(),
            message: format!("append to {key} kept clashing with concurrent writes"),
        })
    }

    async fn load_transcript(
        &self,
        key: &SessionKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<TranscriptPage, StoreError> {
        let limit = limit.max(1);
        let mut entries: Vec<TranscriptEntry> = Vec::new();
        let mut start = None;
        // A query page stops at 1 MB whatever the limit; keep reading until `limit` or the end.
        while entries.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(session_pk(key)))
                .expression_attribute_values(":from", s(format!("MSG#{from_seq:012}")))
                .expression_attribute_values(":to", s(format!("MSG#{MAX_SEQ:012}")))
                .consistent_read(true)
                .limit((limit - entries.len()) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            for item in out.items.unwrap_or_default() {
                let body = get_s(&item, "body")
                    .ok_or_else(|| StoreError::Corrupt("transcript item without body".into()))?;
                entries.push(
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let next_seq = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq + 1))
            .flatten();
        Ok(TranscriptPage { entries, next_seq })
    }
}
