//! clawgate's worker side (DESIGN §2.3-2.5): the queue loop ([`worker`]), the agent loop
//! ([`agent`]), the model providers ([`llm`]), replies to the channels ([`reply`]), and the
//! Docker sandbox and host backend ([`sandbox`]) that the agent's tools ([`tools`]) run in.

pub mod agent;
pub mod llm;
pub mod phases;
pub mod reply;
pub mod sandbox;
pub mod tools;
pub mod worker;
