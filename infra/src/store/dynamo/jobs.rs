//! [`JobLedger`] on DynamoDB: job records with leases (conditional updates), dedup markers.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{get_n, get_s, is_code, key, n, s, ttl_secs, DynamoStore, Expr, Item};
use crate::embedded::now_ms;
use crate::model::{JobRecord, JobStatus, SessionKey, Tokens};
use crate::store::{
    capped_detail, duration_ms, Claim, JobLedger, StoreError, JOB_RECORD_TTL, STOP_TTL,
};

impl DynamoStore {
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
        usage: get_s(item, "usage").and_then(|json| serde_json::from_str(&json).ok()),
        preview: get_s(item, "preview"),
    })
}

#[async_trait]
impl JobLedger for DynamoStore {
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
        self.put_if(item, condition, e).await
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
        usage: Option<Tokens>,
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
        if let Some(usage) = usage {
            let json =
                serde_json::to_string(&usage).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sets.push(format!(
                "{} = {}",
                e.name("usage"),
                e.value("usage", s(json))
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

    async fn set_preview(
        &self,
        job_id: &str,
        owner: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let mut e = Expr::default();
        let sets = vec![format!(
            "{} = {}",
            e.name("preview"),
            e.value("preview", s(message_id))
        )];
        self.update_held_job(job_id, owner, e, sets, None).await
    }

    async fn request_stop(&self, session: &SessionKey, at_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let expires = now + duration_ms(STOP_TTL);
        let mut item = key(format!("STOP#{session}"), "STOP");
        item.insert("at_ms".into(), n(at_ms));
        item.insert("exp_ms".into(), n(expires));
        item.insert("ttl".into(), n(ttl_secs(expires)));
        let mut e = Expr::default();
        // A later stop, or any stop over an expired one, wins; an older one changes nothing.
        let condition = format!(
            "attribute_not_exists(pk) OR {at} < {new} OR {exp} <= {now}",
            at = e.name("at_ms"),
            new = e.value("at", n(at_ms)),
            exp = e.name("exp_ms"),
            now = e.value("now", n(now)),
        );
        self.put_if(item, condition, e).await.map(|_| ())
    }

    async fn stop_requested(&self, session: &SessionKey) -> Result<Option<i64>, StoreError> {
        let item = self.get_item(format!("STOP#{session}"), "STOP").await?;
        Ok(item
            .filter(|i| get_n::<i64>(i, "exp_ms").unwrap_or(0) > now_ms())
            .and_then(|i| get_n(&i, "at_ms")))
    }
}
