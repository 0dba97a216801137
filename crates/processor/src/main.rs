//! `processor`: see the crate documentation (`lib.rs`).

use clap::Parser;

/// `processor eval`: retrieval quality on a public chat corpus, through the library's
/// ingestion and retrieval (a tool on top of the service, not part of it).
mod eval;

#[derive(Debug, Parser)]
#[command(
    name = "processor",
    version,
    about = "RTFM processor: indexes messages in Chroma and answers questions"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: processor::Config,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Measure retrieval on a chat corpus (through the real ingestion and retrieval code).
    Eval(eval::EvalArgs),
}

fn main() -> std::process::ExitCode {
    let (cli, unset) = rtfm_core::config::parse::<Cli>();
    rtfm_core::telemetry::init_tracing();
    rtfm_core::config::log_unset(&unset);
    rtfm_core::supervise::block_on(run(cli))
}

async fn run(cli: Cli) -> std::process::ExitCode {
    if let Some(Command::Eval(args)) = &cli.command {
        return match eval::run(&cli.config, args).await {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("processor eval: {err:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let shutdown = rtfm_core::telemetry::shutdown_on_signals();
    rtfm_core::telemetry::exit_code("processor", processor::run(cli.config, shutdown).await)
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
