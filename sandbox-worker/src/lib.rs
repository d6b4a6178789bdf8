//! clawgate's worker side (docs/architecture.md): the queue loop ([`worker`]), a job's
//! prepared session ([`profile`]), the agent loop ([`agent`]) and its compaction
//! ([`compaction`]), the persona ([`persona`]), the model providers ([`llm`]),
//! replies to the channels ([`reply`]), and the Docker sandbox and host backend ([`sandbox`])
//! that the agent's tools ([`tools`]) run in; [`phase`] times them for the benchmark.

pub mod agent;
pub mod compaction;
pub mod llm;
pub mod media;
pub mod persona;
pub mod phase;
pub mod profile;
pub mod reply;
pub mod sandbox;
pub mod skills;
pub mod tools;
pub mod web;
pub mod worker;
