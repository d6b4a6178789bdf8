//! The assistant's reach beyond the sandbox (issue 18, in progress): the egress guard every
//! request the worker makes on the model's behalf goes through ([`guard`]) and `web_fetch` on
//! it ([`fetch`]). `web_search` and the sandbox's egress proxy are not built yet; they are to
//! use this guard and nothing else to reach the network.

pub mod fetch;
pub mod guard;
