//! `bot`: see the crate documentation (`lib.rs`).

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "bot",
    version,
    about = "RTFM Discord bot (console chat when DISCORD_TOKEN is unset)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: bot::Config,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Publish a channel's history to discord-messages (resumable).
    Backfill(bot::backfill::BackfillArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rtfm_core::config::load_dotenv();
    rtfm_core::telemetry::init_tracing();
    let cli = Cli::parse();
    let shutdown = rtfm_core::telemetry::shutdown_on_signals();
    let result = match cli.command {
        Some(Command::Backfill(args)) => {
            bot::backfill(cli.config, args, shutdown)
                .await
                .map(|report| {
                    println!(
                        "published {} messages{}",
                        report.published,
                        if report.complete {
                            ""
                        } else {
                            " (interrupted; run again to resume)"
                        }
                    );
                })
        }
        None => bot::run(cli.config, shutdown).await,
    };
    rtfm_core::telemetry::exit_code("bot", result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let cli = Cli::try_parse_from(["bot", "--discord-token", "MTIz.secret-token-value"])
            .expect("parses");
        assert!(!format!("{cli:?}").contains("secret-token-value"));
        assert!(!cli.config.console_mode());
    }
}
