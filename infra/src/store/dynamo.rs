//! `DynamoStore`: the state store in one DynamoDB table (single-table design, DESIGN §3).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | session meta | `SESSION#{key}` | `META` (also `gsi1pk = AGENT#{agent}`, `gsi1sk = last active`) |
//! | transcript entry | `SESSION#{key}` | `MSG#{seq:012}` |
//! | job record | `JOB#{job_id}` | `JOB` |
//! | dedup marker | `DEDUP#{marker}` | `DEDUP` |
//! | allowlist | `ALLOW#{channel}#{account}` | `PEER#{id}` |
//! | pairing code | `PAIR#{channel}#{account}` | `CODE#{code}` |
//!
//! Decisions:
//! - Every guarded write is one conditional write or one transaction, so it happened or it did
//!   not; a timeout leaves the caller to retry, and each write is safe to repeat.
//! - TTL'd items carry `ttl` (seconds, for DynamoDB's sweeper, which may lag by days) and
//!   `exp_ms` (checked on every read and in conditions), so expiry is exact.
//! - `list_sessions` reads the `by_agent` index, which DynamoDB keeps eventually consistent.
//! - Every attribute in an expression goes through a `#name` placeholder, so no attribute can
//!   collide with DynamoDB's reserved words.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::{
    capped, capped_detail, duration_ms, new_pairing_code, normalize_code, Claim, StateStore,
    StoreError, TranscriptPage, JOB_RECORD_TTL, MAX_PENDING_PAIRINGS,
};
use crate::aws::{classify, endpoint_label, Failure};
use crate::embedded::now_ms;
use crate::model::{
    JobRecord, JobStatus, PairingRequest, SessionKey, SessionMeta, TranscriptEntry,
};

type Item = HashMap<String, AttributeValue>;

/// The index sessions are listed by.
pub const AGENT_INDEX: &str = "by_agent";
const MAX_SEQ: u64 = 999_999_999_999;

/// The state store on a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    endpoint: String,
}

/// Collects `#name` and `:value` placeholders for one expression.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{key}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn session_pk(key: &SessionKey) -> String {
    format!("SESSION#{key}")
}

fn ttl_secs(expires_ms: i64) -> i64 {
    expires_ms / 1000 + 1
}

fn is_code(err_code: Option<&str>, code: &str) -> bool {
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

    fn error<E, R>(&self, err: SdkError<E, R>) -> StoreError
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

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
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
    async fn query_partition(&self, pk: String) -> Result<Vec<Item>, StoreError> {
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

    /// Applies `sets` (and an `add` clause) to a running job held by `owner`; `LeaseLost` when
    /// the condition fails, and then nothing changes.
    async fn update_held_job(
        &self,
        job_id: &str,
        owner: &str,
        mut e: Expr,
        mut sets: Vec<String>,
        add: Option<String>,
    ) -> Result<(), StoreError> {
        let condition = format!(
            "{} = {} AND {} = {}",
            e.name("lease_owner"),
            e.value("me", s(owner)),
            e.name("status"),
            e.value("running", s(JobStatus::Running.as_str()))
        );
        sets.push(format!(
            "{} = {}",
            e.name("updated_ms"),
            e.value("now", n(now_ms()))
        ));
        let mut update = format!("SET {}", sets.join(", "));
        if let Some(add) = add {
            update.push_str(&format!(" ADD {add}"));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("JOB#{job_id}"), "JOB")))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_code(err.code(), "ConditionalCheckFailedException") => {
                Err(StoreError::LeaseLost {
                    job_id: job_id.to_string(),
                    owner: owner.to_string(),
                })
            }
            Err(err) => Err(self.error(err)),
        }
    }
}

fn job_from_item(item: &Item) -> Result<JobRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("job record without a valid {what}"));
    let mut chunks_sent: Vec<u32> = match item.get("chunks_sent") {
        Some(AttributeValue::Ns(values)) => values.iter().filter_map(|v| v.parse().ok()).collect(),
        _ => vec![],
    };
    chunks_sent.sort_unstable();
    Ok(JobRecord {
        job_id: get_s(item, "job_id").ok_or_else(|| corrupt("job_id"))?,
        status: get_s(item, "status")
            .and_then(|st| st.parse().ok())
            .ok_or_else(|| corrupt("status"))?,
        lease_owner: get_s(item, "lease_owner"),
        lease_until_ms: get_n(item, "lease_until_ms").unwrap_or(0),
        attempt: get_n(item, "attempt").unwrap_or(0),
        chunks_sent,
        created_ms: get_n(item, "created_ms").unwrap_or(0),
        updated_ms: get_n(item, "updated_ms").unwrap_or(0),
        detail: get_s(item, "detail"),
    })
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
    })
}

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

#[async_trait]
impl StateStore for DynamoStore {
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
        let mut sessions = Vec::new();
        let mut start = None;
        while sessions.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(AGENT_INDEX)
                .key_condition_expression("gsi1pk = :agent")
                .expression_attribute_values(":agent", s(format!("AGENT#{agent}")))
                .scan_index_forward(false)
                .limit((limit - sessions.len()) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            for item in out.items.unwrap_or_default() {
                sessions.push(session_from_item(&item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(sessions)
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
                format!("{} = {}", e.name("last_active_ms"), e.value("now", n(now))),
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
                format!(
                    "{} = {}",
                    e.name("gsi1pk"),
                    e.value("g1", s(format!("AGENT#{agent}")))
                ),
                format!(
                    "{} = {}",
                    e.name("gsi1sk"),
                    e.value("g1s", s(format!("{now:015}#{key}")))
                ),
            ];
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

    async fn mark_seen(&self, marker: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_ms();
        let expires = now + duration_ms(ttl);
        let mut item = key(format!("DEDUP#{marker}"), "DEDUP");
        item.insert("exp_ms".into(), n(expires));
        item.insert("ttl".into(), n(ttl_secs(expires)));
        let mut e = Expr::default();
        let condition = format!(
            "attribute_not_exists(pk) OR {} <= {}",
            e.name("exp_ms"),
            e.value("now", n(now))
        );
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

    async fn claim_job(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let mut e = Expr::default();
        let update = format!(
            "SET {st} = {running}, {owner} = {me}, {until} = {lease_until}, \
             {attempt} = if_not_exists({attempt}, {zero}) + {one}, \
             {created} = if_not_exists({created}, {now}), {updated} = {now}, \
             {job} = {job_id}, {ttl} = {ttl_value}",
            st = e.name("status"),
            running = e.value("running", s(JobStatus::Running.as_str())),
            owner = e.name("lease_owner"),
            me = e.value("me", s(owner)),
            until = e.name("lease_until_ms"),
            lease_until = e.value("until", n(now + duration_ms(lease))),
            attempt = e.name("attempt"),
            zero = e.value("zero", n(0)),
            one = e.value("one", n(1)),
            created = e.name("created_ms"),
            now = e.value("now", n(now)),
            updated = e.name("updated_ms"),
            job = e.name("job_id"),
            job_id = e.value("job_id", s(job_id)),
            ttl = e.name("ttl"),
            ttl_value = e.value("ttl", n(ttl_secs(now + duration_ms(JOB_RECORD_TTL)))),
        );
        // The rule of `super::claim_decision`, as a condition.
        let condition = format!(
            "attribute_not_exists(pk) OR ({st} = {running} AND ({until} <= {now} OR {owner} = {me}))",
            st = e.name("status"),
            running = e.value("running", s(JobStatus::Running.as_str())),
            until = e.name("lease_until_ms"),
            now = e.value("now", n(now)),
            owner = e.name("lease_owner"),
            me = e.value("me", s(owner)),
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("JOB#{job_id}"), "JOB")))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Claimed(job_from_item(
                &out.attributes.unwrap_or_default(),
            )?)),
            Err(err) if is_code(err.code(), "ConditionalCheckFailedException") => {
                let item = self
                    .get_item(format!("JOB#{job_id}"), "JOB")
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("job {job_id} vanished during a claim"))
                    })?;
                let record = job_from_item(&item)?;
                Ok(if record.status.is_finished() {
                    Claim::Finished(record)
                } else {
                    Claim::Busy(record)
                })
            }
            Err(err) => Err(self.error(err)),
        }
    }

    async fn renew_lease(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let mut e = Expr::default();
        let until = e.value("until", n(now_ms() + duration_ms(lease)));
        let sets = vec![format!("{} = {until}", e.name("lease_until_ms"))];
        self.update_held_job(job_id, owner, e, sets, None).await
    }

    async fn release_job(&self, job_id: &str, owner: &str) -> Result<(), StoreError> {
        let mut e = Expr::default();
        let sets = vec![format!(
            "{} = {}",
            e.name("lease_until_ms"),
            e.value("zero", n(0))
        )];
        self.update_held_job(job_id, owner, e, sets, None).await
    }

    async fn mark_chunk_sent(
        &self,
        job_id: &str,
        owner: &str,
        chunk: u32,
    ) -> Result<(), StoreError> {
        let mut e = Expr::default();
        // ADD to a number set is idempotent: marking a chunk twice records it once.
        let add = format!(
            "{} {}",
            e.name("chunks_sent"),
            e.value("chunk", AttributeValue::Ns(vec![chunk.to_string()]))
        );
        self.update_held_job(job_id, owner, e, vec![], Some(add))
            .await
    }

    async fn finish_job(
        &self,
        job_id: &str,
        owner: &str,
        status: JobStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        debug_assert!(status.is_finished(), "finish_job takes Done or Failed");
        let mut e = Expr::default();
        let mut sets = vec![
            format!(
                "{} = {}",
                e.name("status"),
                e.value("status", s(status.as_str()))
            ),
            format!("{} = {}", e.name("lease_until_ms"), e.value("zero", n(0))),
        ];
        if let Some(detail) = capped_detail(detail) {
            sets.push(format!(
                "{} = {}",
                e.name("detail"),
                e.value("detail", s(detail))
            ));
        }
        self.update_held_job(job_id, owner, e, sets, None).await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.get_item(format!("JOB#{job_id}"), "JOB")
            .await?
            .map(|item| job_from_item(&item))
            .transpose()
    }

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

fn key_item(key: &SessionKey, sk: &str) -> Item {
    self::key(session_pk(key), sk)
}

fn allow_item(channel: &str, account: &str, peer: &str, now: i64) -> Item {
    let mut item = key(
        format!("ALLOW#{channel}#{account}"),
        &format!("PEER#{peer}"),
    );
    item.insert("added_ms".into(), n(now));
    item
}
