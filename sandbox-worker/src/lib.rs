//! Sandbox worker: queue loop, agent loop, LLM providers, tools and the Docker sandbox.
//!
//! NOT BUILT YET: this crate is a placeholder that exists so the workspace has its final shape.
//! The Docker sandbox and tools arrive with issue 3, the worker and agent loop with issue 4.
