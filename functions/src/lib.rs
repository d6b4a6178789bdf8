//! Webhook functions (Telegram, Slack, hooks ingress) as one axum Router.
//!
//! NOT BUILT YET: this crate is a placeholder that exists so the workspace has its final shape.
//! The router, the handlers and the per-function Lambda binaries arrive with issue 5.
