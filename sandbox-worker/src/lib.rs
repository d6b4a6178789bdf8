//! clawgate's worker side: the Docker sandbox and host backend that tool calls run in, and the
//! agent tools with their policy.
//!
//! NOT BUILT YET here: the queue loop, the agent loop and the LLM providers (issue 4).

pub mod agent;
pub mod llm;
pub mod reply;
pub mod sandbox;
pub mod tools;
pub mod worker;
