//! A Telegram webhook body, for a bot that answers every group: a job, an ignore or an error.
#![no_main]
use infra::channels::telegram_webhook::{parse_update, TelegramBot};
use infra::channels::Parsed;
use infra::config::{GroupAccess, GroupPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bot = TelegramBot {
        account: infra::channels::ChannelAccount {
            channel: infra::model::Channel::Telegram,
            account: "default".into(),
            routes: std::sync::Arc::new(infra::config::AgentRoutes {
                default_agent: "main".into(),
                ..Default::default()
            }),
            groups: GroupAccess {
                policy: GroupPolicy::Open,
                ..Default::default()
            },
        },
        username: Some("clawgate_bot".into()),
        secret: None,
    };
    if let Ok(Parsed::Queue { jobs, .. }) = parse_update(data, &bot, chrono::Utc::now()) {
        // What ingress does next: each job must encode (or be refused as too large).
        for job in jobs {
            let _ = job.encode();
        }
    }
});
