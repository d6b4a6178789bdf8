//! clawgate's in-sandbox agent (docs/sandbox-agent.md): a small static binary mounted read-only
//! into every sandbox container and run as its long-lived process. The worker talks to it over a
//! Unix socket ([`protocol`]); it runs commands ([`exec`]) and the file tools ([`file_tools`] on
//! [`fs`] and [`patch`]) inside the container's own namespaces, with [`output`] caps. The same
//! file-tool code runs host-side for host runs and for containers made before the agent existed.

pub mod attach;
pub mod exec;
pub mod file_tools;
pub mod fs;
pub mod output;
pub mod patch;
pub mod protocol;
pub mod relay;
pub mod server;
