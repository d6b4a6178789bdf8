//! The assistant's reach beyond the sandbox (issue 18, in progress): the egress guard every
//! request the worker makes on the model's behalf goes through ([`guard`]), `web_fetch` on it
//! ([`fetch`]) and `web_search` ([`search`], whose provider endpoint is the owner's config).
//! The sandbox's egress proxy is not built yet; it is to use this guard and nothing else to
//! reach the network.

pub mod fetch;
pub mod guard;
pub mod search;
