//! Shared AWS plumbing for the cloud adapters: one SDK config for all clients, the endpoint a
//! call went to (for error messages), and the sorting of SDK errors into "retry" and "don't".
//!
//! `aws_config::defaults(BehaviorVersion::latest())` honours `AWS_ENDPOINT_URL`, so LocalStack
//! and moto need no code branch (docs/architecture.md §3).

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

/// Why a deployed process could not get its config.
#[derive(Debug, thiserror::Error)]
pub enum DeployedConfigError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("config parameter {name}: {message}")]
    Parameter { name: String, message: String },
    #[error("secrets: {0}")]
    Secrets(String),
    #[error("the config with its secrets applied has problems:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<crate::config::ConfigIssue>),
}

/// The config a deployed process runs with, read once at start-up (the webhook functions, the
/// worker). Decision: one config reaches every part of a deployment from one place.
/// - With `CLAWGATE_CONFIG_PARAMETER`, the config is that SSM parameter's value (a
///   `SecureString`, decrypted): Terraform writes it from one variable, and both the functions
///   and the fleet read it. Otherwise it is the file (`explicit`, `CLAWGATE_CONFIG`, or the
///   default path), as on one machine.
/// - With `CLAWGATE_SECRETS_ARN`, the secrets come from that secret ([`secret_env`]) over the
///   environment's; secrets never live in the parameter.
///
/// Returns the config and where it came from (for the start-up log).
pub async fn load_deployed_config(
    explicit: Option<&std::path::Path>,
) -> Result<(crate::config::Config, String), DeployedConfigError> {
    let parameter = std::env::var("CLAWGATE_CONFIG_PARAMETER")
        .ok()
        .filter(|p| !p.is_empty());
    let secrets_arn = std::env::var("CLAWGATE_SECRETS_ARN")
        .ok()
        .filter(|a| !a.is_empty());
    let sdk = if parameter.is_some() || secrets_arn.is_some() {
        Some(load_sdk_config().await)
    } else {
        None
    };
    let (mut config, origin) = match (&parameter, &sdk) {
        (Some(name), Some(sdk)) => {
            let text = parameter_text(sdk, name).await?;
            let origin = format!("ssm:{name}");
            (
                crate::config::Config::load_text(&text, std::path::Path::new(&origin))?,
                origin,
            )
        }
        _ => {
            let (config, path) = crate::config::Config::load(explicit)?;
            (config, path.display().to_string())
        }
    };
    if let (Some(arn), Some(sdk)) = (&secrets_arn, &sdk) {
        let secrets = secret_env(sdk, arn)
            .await
            .map_err(DeployedConfigError::Secrets)?;
        config.apply_env(|name| secrets.get(name).cloned());
        config.validate().map_err(DeployedConfigError::Invalid)?;
    }
    Ok((config, origin))
}

/// The value of SSM parameter `name`, decrypted.
async fn parameter_text(sdk: &SdkConfig, name: &str) -> Result<String, DeployedConfigError> {
    let fail = |message: String| DeployedConfigError::Parameter {
        name: name.to_string(),
        message,
    };
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
    out.parameter
        .and_then(|p| p.value)
        .ok_or_else(|| fail("the parameter has no value".into()))
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
