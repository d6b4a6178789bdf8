//! [`SenderStore`] on DynamoDB: the allowlist, and pairing codes with exact expiry.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, TransactWriteItem};

use super::{get_n, get_s, is_code, key, n, s, ttl_secs, DynamoStore, Expr, Item};
use crate::embedded::now_ms;
use crate::model::PairingRequest;
use crate::store::{
    duration_ms, new_pairing_code, normalize_code, SenderStore, StoreError, MAX_PENDING_PAIRINGS,
};

fn pairing_from_item(item: &Item, channel: &str, account: &str) -> Option<PairingRequest> {
    Some(PairingRequest {
        channel: channel.to_string(),
        account: account.to_string(),
        code: get_s(item, "sk")?.strip_prefix("CODE#")?.to_string(),
        peer: get_s(item, "peer")?,
        peer_name: get_s(item, "peer_name"),
        created_ms: get_n(item, "created_ms")?,
        expires_ms: get_n(item, "exp_ms")?,
    })
}

fn allow_item(channel: &str, account: &str, peer: &str, now: i64) -> Item {
    let mut item = key(
        format!("ALLOW#{channel}#{account}"),
        &format!("PEER#{peer}"),
    );
    item.insert("added_ms".into(), n(now));
    item
}

#[async_trait]
impl SenderStore for DynamoStore {
    async fn allow_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(allow_item(channel, account, peer, now_ms())))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn revoke_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("ALLOW#{channel}#{account}"),
                &format!("PEER#{peer}"),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn is_allowed(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .get_item(
                format!("ALLOW#{channel}#{account}"),
                &format!("PEER#{peer}"),
            )
            .await?
            .is_some())
    }

    async fn list_allowed(&self, channel: &str, account: &str) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_partition(format!("ALLOW#{channel}#{account}"))
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| get_s(i, "sk")?.strip_prefix("PEER#").map(str::to_string))
            .collect())
    }

    async fn request_pairing(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
        peer_name: Option<&str>,
        ttl: Duration,
    ) -> Result<PairingRequest, StoreError> {
        let pending = self.list_pairing(channel, account).await?;
        if let Some(existing) = pending.iter().find(|r| r.peer == peer) {
            return Ok(existing.clone());
        }
        // Counting then writing is not atomic: two first-time senders racing at the limit may
        // both get a code. The limit is a courtesy against spam, so a rare fourth code is fine.
        if pending.len() >= MAX_PENDING_PAIRINGS {
            return Err(StoreError::TooManyPending {
                channel: channel.to_string(),
                account: account.to_string(),
                limit: MAX_PENDING_PAIRINGS,
            });
        }
        let now = now_ms();
        for _ in 0..5 {
            let request = PairingRequest {
                channel: channel.to_string(),
                account: account.to_string(),
                code: new_pairing_code(),
                peer: peer.to_string(),
                peer_name: peer_name.map(str::to_string),
                created_ms: now,
                expires_ms: now + duration_ms(ttl),
            };
            let mut item = key(
                format!("PAIR#{channel}#{account}"),
                &format!("CODE#{}", request.code),
            );
            item.insert("peer".into(), s(peer));
            if let Some(name) = peer_name {
                item.insert("peer_name".into(), s(name));
            }
            item.insert("created_ms".into(), n(now));
            item.insert("exp_ms".into(), n(request.expires_ms));
            item.insert("ttl".into(), n(ttl_secs(request.expires_ms)));
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match result {
                Ok(_) => return Ok(request),
                // The code collided with a live one: draw another.
                Err(err) if is_code(err.code(), "ConditionalCheckFailedException") => continue,
                Err(err) => return Err(self.error(err)),
            }
        }
        Err(StoreError::Corrupt(
            "could not draw an unused pairing code".into(),
        ))
    }

    async fn list_pairing(
        &self,
        channel: &str,
        account: &str,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        let now = now_ms();
        let items = self
            .query_partition(format!("PAIR#{channel}#{account}"))
            .await?;
        let mut live: Vec<PairingRequest> = items
            .iter()
            .filter_map(|i| pairing_from_item(i, channel, account))
            .filter(|r| r.expires_ms > now)
            .collect();
        live.sort_by(|a, b| (a.created_ms, &a.peer).cmp(&(b.created_ms, &b.peer)));
        Ok(live)
    }

    async fn approve_pairing(
        &self,
        channel: &str,
        account: &str,
        code: &str,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let code = normalize_code(code);
        let now = now_ms();
        let pk = format!("PAIR#{channel}#{account}");
        let sk = format!("CODE#{code}");
        let Some(request) = self
            .get_item(pk.clone(), &sk)
            .await?
            .and_then(|i| pairing_from_item(&i, channel, account))
            .filter(|r| r.expires_ms > now)
        else {
            return Ok(None);
        };
        let mut e = Expr::default();
        let condition = format!(
            "{} > {} AND {} = {}",
            e.name("exp_ms"),
            e.value("now", n(now)),
            e.name("peer"),
            e.value("peer", s(request.peer.clone()))
        );
        let take = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, &sk)))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .build()
            .expect("delete fields are set");
        let allow = Put::builder()
            .table_name(&self.table)
            .set_item(Some(allow_item(channel, account, &request.peer, now)))
            .build()
            .expect("put fields are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(take).build())
            .transact_items(TransactWriteItem::builder().put(allow).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(request)),
            // Approved by someone else in the meantime, or expired: nothing to take.
            Err(err) if is_code(err.code(), "TransactionCanceledException") => Ok(None),
            Err(err) => Err(self.error(err)),
        }
    }
}
