//! Shared AWS plumbing for the cloud adapters: one SDK config for all clients, the endpoint a
//! call went to (for error messages), and the sorting of SDK errors into "retry" and "don't".
//!
//! `aws_config::defaults(BehaviorVersion::latest())` honours `AWS_ENDPOINT_URL`, so LocalStack
//! and moto need no code branch (DESIGN §3).

pub use aws_config::{BehaviorVersion, Region, SdkConfig};
pub use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Loads the SDK config once per process; every client is built from it.
///
/// Timeouts: the SDK sets none on a request by default, so one stuck connection could hold a
/// worker forever (seen once against moto: a queue call hung for 60 s). Each attempt gets 30 s,
/// more than SQS's 20 s long poll, and connecting gets 3 s; the SDK's retries then apply.
pub async fn load_sdk_config() -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(30))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// The secrets a deployment keeps in one Secrets Manager secret: its `SecretString` is a JSON
/// object of environment-variable names to values (`TELEGRAM_WEBHOOK_SECRET`,
/// `SLACK_SIGNING_SECRET`, `CLAWGATE_GATEWAY_TOKEN`, …), applied like the environment
/// ([`crate::config::Config::apply_env`]). One `GetSecretValue` at start-up; the error names the
/// secret's ARN and the cause, never a value.
pub async fn secret_env(
    config: &SdkConfig,
    arn: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let out = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| format!("reading secret {arn}: {}", DisplayErrorContext(&e)))?;
    let text = out
        .secret_string()
        .ok_or_else(|| format!("secret {arn} has no SecretString"))?;
    let values: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_str(text)
            .map_err(|_| format!("secret {arn} is not a JSON object of names to strings"))?;
    Ok(values
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect())
}

/// The endpoint a service's calls go to: the override when one is set, else AWS's regional one.
pub fn endpoint_label(config: &SdkConfig, service: &str) -> String {
    match config.endpoint_url() {
        Some(url) => url.to_string(),
        None => {
            let region = config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "<no region set>".into());
            format!("https://{service}.{region}.amazonaws.com")
        }
    }
}

/// What an SDK error means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No response: connection refused, DNS, TLS, timeout. Retry; the request may or may not
    /// have been applied, so callers keep their writes idempotent.
    Unreachable(String),
    /// The service answered "slow down" or had an internal error. Retry with backoff.
    Throttled { code: String, message: String },
    /// The service refused the request. `code` is AWS's error code.
    Refused { code: String, message: String },
}

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "AWS.SimpleQueueService.RequestThrottled",
    "RequestThrottled",
    "KMSThrottlingException",
];

/// Sorts an SDK error. The message carries the whole error chain, never request contents.
pub fn classify<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = DisplayErrorContext(err).to_string();
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Unreachable(message)
        }
        SdkError::ConstructionFailure(_) => Failure::Refused {
            code: "ConstructionFailure".into(),
            message,
        },
        _ => {
            let code = err.code().unwrap_or("Unknown").to_string();
            let detail = err.message().unwrap_or("").to_string();
            let message = if detail.is_empty() { message } else { detail };
            if RETRYABLE_CODES.contains(&code.as_str()) {
                Failure::Throttled { code, message }
            } else {
                Failure::Refused { code, message }
            }
        }
    }
}
