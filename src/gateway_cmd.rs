//! `clawgate gateway`: serves the webhook Router alone (no worker), enqueueing to the queue the
//! config names, for users who run the ingress on one host and workers elsewhere. It serves
//! WebChat too (it has the store); replies come once a worker takes the jobs.
//!
//! Like `clawgate up`, it refuses a bind that is not loopback without a configured
//! `gateway.token`, and on loopback uses the token in the state directory (made when missing).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use infra::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Port to listen on (default: gateway.port, 18789; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to bind (default: gateway.bind, 127.0.0.1).
    #[arg(long)]
    pub bind: Option<String>,
    /// Where SQLite state lives (default ~/.clawgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

pub async fn run(config: Config, args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args.state_dir.unwrap_or_else(infra::config::default_dir);
    let bind = args.bind.unwrap_or_else(|| config.gateway.bind.clone());
    let ip: IpAddr = bind
        .parse()
        .with_context(|| format!("--bind {bind:?} is not an IP address"))?;
    if !ip.is_loopback() && config.gateway.token.is_none() {
        anyhow::bail!(
            "binding {ip} (not loopback) needs a gateway token: set gateway.token or CLAWGATE_GATEWAY_TOKEN, or bind 127.0.0.1"
        );
    }
    let (token, _) = infra::setup::gateway_token(&config, &state_dir)?;
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    let port = args.port.unwrap_or(config.gateway.port);
    let addr = SocketAddr::new(ip, port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: is another process using the port? (try --port)")
    })?;
    let app = functions::router_with_webchat(
        &config,
        backends.queue.clone(),
        backends.store.clone(),
        token.clone(),
        ip.is_loopback(),
        // The workspaces live with the workers, not here: WebChat files need `clawgate up`.
        None,
    )
    .merge(crate::control::routes(crate::control::Control {
        config: std::sync::Arc::new(config.clone()),
        backends: backends.clone(),
        token,
        loopback_only: ip.is_loopback(),
    }));
    eprintln!(
        "clawgate gateway listening on http://{}",
        listener.local_addr()?
    );
    eprintln!("  queue: {}", backends.queue.describe());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
