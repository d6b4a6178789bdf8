//! [`RateCounters`] on DynamoDB: one item per key and window, bumped with an atomic `ADD`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{get_n, key, n, ttl_secs, DynamoStore, Expr};
use crate::embedded::now_ms;
use crate::store::{window_bounds, RateCounters, StoreError};

#[async_trait]
impl RateCounters for DynamoStore {
    async fn add(&self, key_name: &str, window: Duration, by: u32) -> Result<u64, StoreError> {
        let (start, end) = window_bounds(now_ms(), window);
        let mut e = Expr::default();
        // `ADD` is atomic: concurrent adds from a fleet are never lost. The item outlives its
        // window by the TTL sweep only; reads never look at an old window.
        let update = format!(
            "ADD {} {} SET {} = {}",
            e.name("count"),
            e.value("by", n(by)),
            e.name("ttl"),
            e.value("ttl", n(ttl_secs(end)))
        );
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("RATE#{key_name}#{start}"), "RATE")))
            .update_expression(update)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            // ALL_NEW, not UPDATED_NEW: adding 0 reads a counter (`infra::usage`, `status`),
            // and an emulator may leave an unchanged attribute out of UPDATED_NEW.
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| self.error(err))?;
        Ok(out
            .attributes
            .as_ref()
            .and_then(|a| get_n::<u64>(a, "count"))
            .unwrap_or(u64::from(by)))
    }
}
