//! `DynamoStore`: the state store in one DynamoDB table (single-table design,
//! docs/architecture.md). One file per port: [`transcripts`], [`jobs`], [`senders`],
//! [`counters`].
//!
//! | item | pk | sk |
//! |---|---|---|
//! | session meta | `SESSION#{key}` | `META` (also `gsi1pk = AGENT#{agent}#{shard}`, `gsi1sk = last active`) |
//! | transcript entry | `SESSION#{key}` | `MSG#{seq:012}` |
//! | job record | `JOB#{job_id}` | `JOB` |
//! | dedup marker | `DEDUP#{marker}` | `DEDUP` |
//! | allowlist | `ALLOW#{channel}#{account}` | `PEER#{id}` |
//! | pairing code | `PAIR#{channel}#{account}` | `CODE#{code}` |
//! | rate counter | `RATE#{key}#{window start}` | `RATE` |
//! | scheduled job | `CRON` | `JOB#{id}` (also `gsi1pk = CRONDUE`, `gsi1sk = next run # id` while it has one) |
//!
//! Decisions:
//! - Every guarded write is one conditional write or one transaction, so it happened or it did
//!   not; a timeout leaves the caller to retry, and each write is safe to repeat.
//! - TTL'd items carry `ttl` (seconds, for DynamoDB's sweeper, which may lag by days) and
//!   `exp_ms` (checked on every read and in conditions), so expiry is exact.
//! - `list_sessions` reads the `by_agent` index, which DynamoDB keeps eventually consistent.
//!   The index is written only by a user's message (once per job, not per transcript step) and
//!   spread over [`AGENT_INDEX_SHARDS`] keys per agent, so no agent's sessions share one hot
//!   index partition.
//! - Every attribute in an expression goes through a `#name` placeholder, so no attribute can
//!   collide with DynamoDB's reserved words.

use std::collections::HashMap;
use std::time::Duration;

mod counters;
mod cron;
mod jobs;
mod senders;
mod transcripts;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::StoreError;
use crate::aws::{classify, endpoint_label, Failure};

use crate::model::SessionKey;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The table's secondary index: sessions are listed by it (`AGENT#…` keys) and due scheduled
/// jobs found by it (`CRONDUE`). Its name predates the second use.
pub const AGENT_INDEX: &str = "by_agent";
/// How many index keys one agent's sessions are spread over (`AGENT#{agent}#{shard}`).
pub const AGENT_INDEX_SHARDS: u8 = 8;
pub(super) const MAX_SEQ: u64 = 999_999_999_999;

/// The state store on a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    endpoint: String,
}

/// Collects `#name` and `:value` placeholders for one expression.
#[derive(Default)]
pub(super) struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    pub(super) fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    pub(super) fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{key}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(super) fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub(super) fn session_pk(key: &SessionKey) -> String {
    format!("SESSION#{key}")
}

pub(super) fn ttl_secs(expires_ms: i64) -> i64 {
    expires_ms / 1000 + 1
}

pub(super) fn is_code(err_code: Option<&str>, code: &str) -> bool {
    err_code == Some(code)
}

impl DynamoStore {
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        DynamoStore {
            client: Client::new(config),
            table: table.to_string(),
            endpoint: endpoint_label(config, "dynamodb"),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on demand, pk/sk, the `by_agent` index, TTL on `ttl`) and waits until
    /// it is active; a table of that name that already exists is used as it is. For tests and
    /// one-command setups (`clawgate up --aws`); Terraform creates it in AWS.
    pub async fn create_table(config: &SdkConfig, table: &str) -> Result<Self, StoreError> {
        let store = DynamoStore::new(config, table);
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set")
        };
        let key_element = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type are set")
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(AGENT_INDEX)
            .key_schema(key_element("gsi1pk", KeyType::Hash))
            .key_schema(key_element("gsi1sk", KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .expect("index fields are set");
        let created = store
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .attribute_definitions(attr("gsi1pk"))
            .attribute_definitions(attr("gsi1sk"))
            .key_schema(key_element("pk", KeyType::Hash))
            .key_schema(key_element("sk", KeyType::Range))
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                return Ok(store);
            }
            Err(e) => return Err(store.error(e)),
        }
        for _ in 0..100 {
            let status = store
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| store.error(e))?
                .table
                .and_then(|t| t.table_status)
                .map(|s| s.as_str().to_string());
            if status.as_deref() == Some("ACTIVE") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        store
            .client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .expect("fields are set"),
            )
            .send()
            .await
            .map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// Deletes the table (test clean-up).
    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    pub(super) fn error<E, R>(&self, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let endpoint = self.endpoint.clone();
        match classify(&err) {
            Failure::Unreachable(message) => StoreError::Unavailable { endpoint, message },
            Failure::Throttled { code, message } => StoreError::Throttled {
                endpoint,
                code,
                message,
            },
            Failure::Refused { code, message } => StoreError::Refused {
                endpoint,
                code,
                message,
            },
        }
    }

    /// Puts `item` when `condition` holds: true when written, false when the condition failed.
    pub(super) async fn put_if(
        &self,
        item: Item,
        condition: String,
        e: Expr,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_code(err.code(), "ConditionalCheckFailedException") => Ok(false),
            Err(err) => Err(self.error(err)),
        }
    }

    pub(super) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?
            .item)
    }

    /// All items under one partition key (following pages), consistently read.
    pub(super) async fn query_partition(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

pub(super) fn key_item(key: &SessionKey, sk: &str) -> Item {
    self::key(session_pk(key), sk)
}
