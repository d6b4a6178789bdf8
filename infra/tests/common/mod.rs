//! Helpers shared by the port conformance suites: the emulator's SDK config, unique resource
//! names and sample jobs.
#![allow(dead_code)]

use aws_config::SdkConfig;
use infra::model::{Channel, JobMessage, SessionKey};

/// The emulator's SDK config, or `None` (with a printed reason) when no emulator is configured.
/// `scripts/test` sets `CLAWGATE_REQUIRE_AWS=1`, which turns a missing emulator into a failure,
/// so CI can never pass by skipping the cloud adapters.
pub async fn emulator() -> Option<SdkConfig> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(infra::aws::load_sdk_config().await),
        _ => {
            if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
                panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
            }
            eprintln!(
                "skipped: AWS_ENDPOINT_URL is not set (scripts/test starts moto and sets it)"
            );
            None
        }
    }
}

/// A name no other test run uses: tests share one emulator.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A valid job for Telegram peer `peer`, carrying channel event `event`.
pub fn sample_job(peer: &str, event: &str) -> JobMessage {
    let fixture = include_str!("../../fixtures/job_v1.json");
    let mut job = JobMessage::decode(fixture).expect("fixture decodes");
    job.job_id = ulid::Ulid::new().to_string();
    job.session_key = SessionKey::dm("main", Channel::Telegram, peer);
    job.inbound.chat.id = peer.to_string();
    job.inbound.sender.id = peer.to_string();
    job.inbound.event_id = format!("telegram:default:{event}");
    job
}
