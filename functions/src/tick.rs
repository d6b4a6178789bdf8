//! The `scheduler-tick` Lambda: EventBridge Scheduler invokes it every minute; each call puts
//! the heartbeat in step with the config and runs one scheduler tick (`infra::cron::tick`)
//! against the deployment's table and queue. The same tick `clawgate up` runs in-process.
//!
//! Environment: as the other functions (`CLAWGATE_QUEUE_URL`, `CLAWGATE_CONFIG_PARAMETER`),
//! plus `CLAWGATE_STATE_TABLE`, the DynamoDB table. The event's content is not read: the
//! clock is the function's own, so a retried or late invocation just ticks at its time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use infra::config::Config;
use infra::queue::JobQueue;
use infra::store::dynamo::DynamoStore;
use infra::store::StateStore;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::{json, Value};

/// One invocation: the heartbeat synced, then one tick at `now`; the answer says what ran.
pub async fn handle(
    config: &Config,
    store: &dyn StateStore,
    queue: &dyn JobQueue,
    now: DateTime<Utc>,
) -> Result<Value, lambda_http::Error> {
    infra::cron::sync_heartbeats(store, config, now).await?;
    let report = infra::cron::tick(store, queue, now, config.cron.catch_up()).await?;
    Ok(json!({
        "queued": report.queued.iter().map(|(_, work)| work).collect::<Vec<_>>(),
        "skipped": report.skipped,
        "lostRaces": report.lost_races,
    }))
}

pub async fn run() -> Result<(), lambda_http::Error> {
    let (config, sdk, queue) = crate::lambda::deployed().await?;
    let table = config
        .state
        .table
        .clone()
        .ok_or("set CLAWGATE_STATE_TABLE to the DynamoDB table")?;
    let store = Arc::new(DynamoStore::new(&sdk, &table));
    let config = Arc::new(config);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let (config, store, queue) = (config.clone(), store.clone(), queue.clone());
        async move {
            if !config.cron.enabled {
                return Ok(json!({ "queued": [], "off": "cron.enabled is false" }));
            }
            handle(&config, store.as_ref(), queue.as_ref(), Utc::now()).await
        }
    }))
    .await
}
