//! Log set-up: `tracing` to stderr, filtered by `STEPWISE_LOG` (or `RUST_LOG`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies when neither `STEPWISE_LOG` nor
/// `RUST_LOG` is set: the long-running commands log at `info`, the one-shot commands stay quiet
/// so their output is what the user asked for.
pub fn init(default_level: &str) {
    let filter = ["STEPWISE_LOG", EnvFilter::DEFAULT_ENV]
        .into_iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
        .and_then(|directives| match EnvFilter::try_new(&directives) {
            Ok(filter) => Some(filter),
            Err(error) => {
                eprintln!("warning: ignoring invalid log filter `{directives}`: {error}");
                None
            }
        })
        .unwrap_or_else(|| EnvFilter::new(default_level));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
