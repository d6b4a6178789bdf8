//! A Telegram webhook body, for a bot that answers every group: a job, an ignore or an error.
#![no_main]
use infra::channels::telegram_webhook::{parse_update, Parsed, TelegramBot};
use infra::config::{GroupAccess, GroupPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bot = TelegramBot {
        account: "default".into(),
        agent: "main".into(),
        username: Some("clawgate_bot".into()),
        groups: GroupAccess {
            policy: GroupPolicy::Open,
            ..Default::default()
        },
    };
    if let Ok(Parsed::Job(job)) = parse_update(data, &bot, chrono::Utc::now()) {
        // What ingress does next: the job must encode (or be refused as too large).
        let _ = job.encode();
    }
});
