//! `processor`: see the crate documentation (`lib.rs`).

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "processor",
    version,
    about = "RTFM processor: indexes messages in Chroma and answers questions"
)]
struct Cli {
    #[command(flatten)]
    config: processor::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rtfm_core::config::load_dotenv();
    rtfm_core::telemetry::init_tracing();
    let cli = Cli::parse();
    let shutdown = rtfm_core::telemetry::shutdown_on_signals();
    match processor::run(cli.config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "processor failed");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
