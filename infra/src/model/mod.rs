//! Domain types shared by the webhook functions and the workers: session keys, inbound messages,
//! reply targets, the versioned job message, transcript entries and job records.
//!
//! Nothing here names an AWS, bollard or axum type; the adapters translate at the edges.

mod cron;
mod job;
mod media;
mod records;
mod session_key;
mod transcript;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use cron::*;
pub use job::*;
pub use media::*;
pub use records::*;
pub use session_key::*;
pub use transcript::*;

/// The job message version this build writes and the newest it can read.
pub const JOB_MESSAGE_VERSION: u32 = 1;

/// The largest encoded job message accepted at ingress. SQS's classic limit is 256 KiB; we keep
/// to it so the same message fits every queue (SQS, LocalStack, moto, the embedded queue).
pub const MAX_JOB_MESSAGE_BYTES: usize = 256 * 1024;

/// The longest session key we accept. Keys are built from channel ids, which are short; the
/// bound keeps a hostile id from producing a key that cannot be stored or used as a group id.
pub const MAX_SESSION_KEY_LEN: usize = 512;

/// A chat channel clawgate speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Telegram,
    Slack,
    Webchat,
    Whatsapp,
    Discord,
    Bluebubbles,
    Signal,
    Zalo,
    Googlechat,
    Msteams,
    Matrix,
    Hook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Slack => "slack",
            Channel::Webchat => "webchat",
            Channel::Whatsapp => "whatsapp",
            Channel::Discord => "discord",
            Channel::Bluebubbles => "bluebubbles",
            Channel::Signal => "signal",
            Channel::Zalo => "zalo",
            Channel::Googlechat => "googlechat",
            Channel::Msteams => "msteams",
            Channel::Matrix => "matrix",
            Channel::Hook => "hook",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "telegram" => Ok(Channel::Telegram),
            "slack" => Ok(Channel::Slack),
            "webchat" => Ok(Channel::Webchat),
            "whatsapp" => Ok(Channel::Whatsapp),
            "discord" => Ok(Channel::Discord),
            "bluebubbles" => Ok(Channel::Bluebubbles),
            "signal" => Ok(Channel::Signal),
            "zalo" => Ok(Channel::Zalo),
            "googlechat" => Ok(Channel::Googlechat),
            "msteams" => Ok(Channel::Msteams),
            "matrix" => Ok(Channel::Matrix),
            "hook" => Ok(Channel::Hook),
            other => Err(ModelError::UnknownChannel(other.to_string())),
        }
    }
}

/// What kind of conversation a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Dm,
    Group,
    Channel,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Dm => "dm",
            ChatKind::Group => "group",
            ChatKind::Channel => "channel",
        }
    }
}

/// Errors from building or parsing domain values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid session key {key:?}: {reason}")]
    InvalidSessionKey { key: String, reason: String },
    #[error("unknown channel {0:?} (expected telegram, slack, webchat or hook)")]
    UnknownChannel(String),
}
