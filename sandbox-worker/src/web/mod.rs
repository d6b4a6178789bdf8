//! The assistant's reach beyond the sandbox (issue 18, in progress): the egress guard every
//! request the worker makes on the model's behalf goes through ([`guard`]), `web_fetch` on it
//! ([`fetch`]) and `web_search` ([`search`], whose provider endpoint is the owner's config).
//! The sandboxes of the `egress` network mode reach the network through the worker's proxy
//! ([`egress`]), which decides by the same policy.

pub mod egress;
pub mod fetch;
pub mod guard;
pub mod search;
