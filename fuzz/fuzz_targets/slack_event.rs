//! A Slack events body and its signature headers: verified or refused, parsed or refused.
#![no_main]
use infra::channels::slack_events::{parse_event, verify_signature, SlackApp};
use infra::config::{GroupAccess, GroupPolicy};
use libfuzzer_sys::fuzz_target;

fn header(part: Option<&[u8]>) -> Option<&str> {
    part.and_then(|p| std::str::from_utf8(p).ok())
}

fuzz_target!(|data: &[u8]| {
    let now = chrono::Utc::now();
    // The first two lines stand for the timestamp and signature headers.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (timestamp, signature, body) = (parts.next(), parts.next(), parts.next());
    let _ = verify_signature(
        "8f742231b10e8888abcd99yyyzzz85a5",
        header(timestamp),
        header(signature),
        body.unwrap_or_default(),
        now,
    );
    let app = SlackApp {
        account: infra::channels::ChannelAccount {
            channel: infra::model::Channel::Slack,
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
        signing_secret: None,
    };
    let _ = parse_event(data, &app, now);
});
