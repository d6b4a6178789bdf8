//! clawgate's shared core: the domain model, the config file, and the two ports that carry all
//! state, [`store::StateStore`] and [`queue::JobQueue`], each with a cloud and an embedded adapter.

pub mod aws;
pub mod channels;
pub mod config;
pub mod cron;
pub mod embedded;
pub mod markdown;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod setup;
pub mod store;
pub mod telemetry;
pub mod usage;
