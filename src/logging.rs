//! tracing to stderr: `RUST_LOG` wins, else `--verbose` raises the level.

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber once.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "firedrill=warn",
        1 => "firedrill=info",
        2 => "firedrill=debug",
        _ => "firedrill=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
