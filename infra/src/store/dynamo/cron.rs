//! [`CronStore`] on DynamoDB: every job in one partition (`CRON`, a personal assistant has
//! tens of jobs, not millions), and an entry in the table's secondary index while it has a
//! next run (`gsi1pk = CRONDUE`, `gsi1sk = next run ms # id`), so "what is due" is one query.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use super::{get_s, is_code, key, n, s, DynamoStore, Expr, Item, AGENT_INDEX};
use crate::model::{CronJob, CronRun};
use crate::store::{CronStore, StoreError};

const PARTITION: &str = "CRON";
const DUE: &str = "CRONDUE";

fn sort_key(id: &str) -> String {
    format!("JOB#{id}")
}

/// The index sort key: the next run, zero-padded so text order is time order.
fn due_key(next_ms: i64, id: &str) -> String {
    format!("{next_ms:015}#{id}")
}

fn job_from_item(item: &Item) -> Result<CronJob, StoreError> {
    let body = get_s(item, "body")
        .ok_or_else(|| StoreError::Corrupt("cron item without a body".into()))?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("cron job: {e}")))
}

fn encode(job: &CronJob) -> Result<String, StoreError> {
    serde_json::to_string(job).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl CronStore for DynamoStore {
    async fn put_cron(&self, job: &CronJob) -> Result<(), StoreError> {
        let mut item = key(PARTITION.into(), &sort_key(&job.id));
        item.insert("body".into(), s(encode(job)?));
        if let (Some(next), true) = (job.next_run, job.enabled) {
            let next = next.timestamp_millis();
            item.insert("next_run_ms".into(), n(next));
            item.insert("gsi1pk".into(), s(DUE));
            item.insert("gsi1sk".into(), s(due_key(next, &job.id)));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn get_cron(&self, id: &str) -> Result<Option<CronJob>, StoreError> {
        self.get_item(PARTITION.into(), &sort_key(id))
            .await?
            .map(|item| job_from_item(&item))
            .transpose()
    }

    async fn list_cron(&self) -> Result<Vec<CronJob>, StoreError> {
        self.query_partition(PARTITION.into())
            .await?
            .iter()
            .map(job_from_item)
            .collect()
    }

    async fn remove_cron(&self, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(PARTITION.into(), &sort_key(id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn due_cron(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<CronJob>, StoreError> {
        // Everything sorted before the next millisecond is due now.
        let upto = format!("{:015}", now.timestamp_millis() + 1);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(AGENT_INDEX)
            .key_condition_expression("gsi1pk = :due AND gsi1sk < :upto")
            .expression_attribute_values(":due", s(DUE))
            .expression_attribute_values(":upto", s(upto))
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let mut due = Vec::new();
        for item in out.items.unwrap_or_default() {
            let job = job_from_item(&item)?;
            // The index lags writes by a moment: what it says is checked against the job.
            if job.enabled && job.next_run.is_some_and(|t| t <= now) {
                due.push(job);
            }
        }
        Ok(due)
    }

    async fn advance_cron(
        &self,
        id: &str,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        run: &CronRun,
    ) -> Result<bool, StoreError> {
        let Some(mut job) = self.get_cron(id).await? else {
            return Ok(false);
        };
        if job.next_run != Some(expected) {
            return Ok(false);
        }
        job.next_run = next;
        job.last_run = Some(run.clone());
        let mut e = Expr::default();
        let mut sets = vec![format!(
            "{} = {}",
            e.name("body"),
            e.value("body", s(encode(&job)?))
        )];
        let mut removes = vec![];
        match next.filter(|_| job.enabled) {
            Some(next) => {
                let next = next.timestamp_millis();
                sets.push(format!(
                    "{} = {}",
                    e.name("next_run_ms"),
                    e.value("next", n(next))
                ));
                sets.push(format!("{} = {}", e.name("gsi1pk"), e.value("due", s(DUE))));
                sets.push(format!(
                    "{} = {}",
                    e.name("gsi1sk"),
                    e.value("order", s(due_key(next, id)))
                ));
            }
            None => {
                for attribute in ["next_run_ms", "gsi1pk", "gsi1sk"] {
                    removes.push(e.name(attribute));
                }
            }
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let condition = format!(
            "{} = {}",
            e.name("next_run_ms"),
            e.value("expected", n(expected.timestamp_millis()))
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(PARTITION.into(), &sort_key(id))))
            .update_expression(update)
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
}
