//! `messages`: what happens to messages that arrive while a session's run is going
//! (OpenClaw's `messages.queue.mode`).

use serde::{Deserialize, Serialize};

/// `messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MessagesConfig {
    pub queue: MessageQueue,
}

/// `messages.queue`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MessageQueue {
    pub mode: QueueMode,
}

/// `messages.queue.mode`. OpenClaw's `steer`, `steer-backlog`, `queue` and `interrupt` are not
/// built (a run is not fed new messages mid-way; `/stop` interrupts), so they are refused by
/// name rather than read as something else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueMode {
    /// Each message is its own turn, in order, after the run before it.
    #[default]
    Followup,
    /// Messages that arrived while a run was going are answered together, in one turn after
    /// it.
    Collect,
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn collect_is_read_and_unbuilt_modes_are_refused_by_name() {
        let collect = Config::parse(r#"{ messages: { queue: { mode: "collect" } } }"#).unwrap();
        let steer = Config::parse(r#"{ messages: { queue: { mode: "steer" } } }"#).unwrap_err();

        assert_eq!(collect.messages.queue.mode, super::QueueMode::Collect);
        assert_eq!(
            Config::default().messages.queue.mode,
            super::QueueMode::Followup
        );
        assert!(format!("{steer:?}").contains("steer"), "{steer:?}");
    }
}
