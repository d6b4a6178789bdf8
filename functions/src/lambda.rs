//! The Lambda entry point every function binary shares: build the config from the environment
//! and the SQS client once, then serve the Router through `lambda_http` (API Gateway HTTP API
//! v2 and Function URL events, which share one payload format).
//!
//! Environment: `CLAWGATE_QUEUE_URL` (the FIFO queue), the channel secrets
//! (`TELEGRAM_WEBHOOK_SECRET`, `SLACK_SIGNING_SECRET`, `CLAWGATE_GATEWAY_TOKEN`), and
//! optionally `CLAWGATE_CONFIG` for a bundled config file. With `CLAWGATE_SECRETS_ARN`, the
//! secrets come from that Secrets Manager secret instead (a JSON object of the same names; see
//! `infra::aws::secret_env`): one `GetSecretValue` at start-up, the only network call before
//! the first event. Without it, start-up makes no network call.

use std::sync::Arc;
use std::time::Duration;

use infra::config::Config;
use infra::queue::sqs::SqsQueue;

use crate::{router, Ingress};

pub async fn run() -> Result<(), lambda_http::Error> {
    infra::telemetry::init();
    let (mut config, _) = Config::load(None)?;
    let sdk = infra::aws::load_sdk_config().await;
    if let Ok(arn) = std::env::var("CLAWGATE_SECRETS_ARN") {
        let secrets = infra::aws::secret_env(&sdk, &arn).await?;
        config.apply_env(|name| secrets.get(name).cloned());
    }
    let url = config
        .queue
        .url
        .clone()
        .ok_or("set CLAWGATE_QUEUE_URL to the SQS FIFO queue URL")?;
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    let queue = Arc::new(SqsQueue::new(&sdk, &url, visibility));
    lambda_http::run(router(Ingress::from_config(&config, queue))).await
}
