//! Logging for every clawgate binary: `tracing` with JSON lines in the cloud (on Lambda, or when
//! `CLAWGATE_LOG_FORMAT=json`) and human-readable lines locally. `RUST_LOG` sets the filter.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing. Logs go to stderr, so a
/// command's own output on stdout stays clean for pipes.
pub fn init() {
    // `rusqlite_migration` announces every migration at info; that is not news to a user.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rusqlite_migration=warn"));
    let json = std::env::var("CLAWGATE_LOG_FORMAT").is_ok_and(|f| f == "json")
        || std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
