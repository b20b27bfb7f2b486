//! The `stepwise` binary. Everything lives in the library (`stepwise_api`) so the tests can
//! drive the same code; this file only parses the command line and hands over.

use std::process::ExitCode;

use clap::Parser;
use stepwise_api::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    // Crash tests name failpoints in FAILPOINTS; builds without the feature have none.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    stepwise_api::telemetry::init(cli.command.default_log_level());
    stepwise_api::commands::run(cli).await
}
