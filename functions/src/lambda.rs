//! The Lambda entry point every function binary shares: build the config from the environment
//! and the SQS client once, then serve the Router through `lambda_http` (API Gateway HTTP API
//! v2 and Function URL events, which share one payload format).
//!
//! Environment: `CLAWGATE_QUEUE_URL` (the FIFO queue), `CLAWGATE_CONFIG_PARAMETER` (the SSM
//! parameter holding the deployment's one config, which the worker fleet reads too; without
//! it, `CLAWGATE_CONFIG` or defaults), and the channel secrets (`TELEGRAM_WEBHOOK_SECRET`,
//! `SLACK_SIGNING_SECRET`, `CLAWGATE_GATEWAY_TOKEN`), or `CLAWGATE_SECRETS_ARN` naming the
//! Secrets Manager secret that holds them. Start-up makes at most those two reads
//! (`infra::aws::load_deployed_config`), once per cold start; an event makes one call, the
//! enqueue.

use std::sync::Arc;
use std::time::Duration;

use infra::aws::SdkConfig;
use infra::config::Config;
use infra::queue::sqs::SqsQueue;

use crate::{router, Ingress};

/// What every function builds once per cold start: the deployment's config, the AWS SDK
/// config, and the job queue.
pub async fn deployed() -> Result<(Config, SdkConfig, Arc<SqsQueue>), lambda_http::Error> {
    infra::telemetry::init();
    let (config, origin) = infra::aws::load_deployed_config(None).await?;
    tracing::info!(config = %origin, "config loaded");
    let sdk = infra::aws::load_sdk_config().await;
    let url = config
        .queue
        .url
        .clone()
        .ok_or("set CLAWGATE_QUEUE_URL to the SQS FIFO queue URL")?;
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    let queue = Arc::new(SqsQueue::new(&sdk, &url, visibility));
    Ok((config, sdk, queue))
}

pub async fn run() -> Result<(), lambda_http::Error> {
    let (config, _, queue) = deployed().await?;
    lambda_http::run(router(Ingress::from_config(&config, queue))).await
}
