//! `bot`: see the crate documentation (`lib.rs`).

use clap::Parser;
use rtfm_core::telemetry::LogOutput;

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
    /// Print the link that adds the bot to a Discord server, with the permissions it needs.
    InviteUrl {
        /// The application's id (Developer Portal → General Information). Default: read from
        /// DISCORD_TOKEN.
        #[arg(long = "application-id", env = "DISCORD_APPLICATION_ID")]
        application_id: Option<u64>,
    },
}

fn main() -> std::process::ExitCode {
    let (cli, unset) = rtfm_core::config::parse::<Cli>();
    // Console mode's terminal is a chat: its logs go to a file, named on the terminal.
    let log_file = match &cli.command {
        None if cli.config.console_mode() => cli.config.console_log_path(),
        _ => None,
    };
    let logs_to_file = match &log_file {
        Some(path) => match open_private(path) {
            Ok(file) => {
                rtfm_core::telemetry::init_tracing_to(LogOutput::File(file));
                eprintln!("RTFM console: logs go to {}", path.display());
                true
            }
            Err(err) => {
                rtfm_core::telemetry::init_tracing();
                tracing::warn!(path = %path.display(), error = %err, "cannot write the console log file; logging here");
                false
            }
        },
        None => {
            rtfm_core::telemetry::init_tracing();
            false
        }
    };
    rtfm_core::config::log_unset(&unset);
    rtfm_core::supervise::block_on(run(cli, logs_to_file))
}

/// Opens `path` for appending, creating it (and its folder) readable by its owner only: the
/// console's log holds what was typed.
fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

async fn run(cli: Cli, logs_to_file: bool) -> std::process::ExitCode {
    let shutdown = rtfm_core::telemetry::shutdown_on_signals();
    let result = match cli.command {
        Some(Command::Backfill(args)) => {
            bot::backfill(cli.config, args, shutdown)
                .await
                .map(|report| {
                    println!(
                        "published {} messages from {} channels{}{}",
                        report.published,
                        report.channels,
                        if report.refused > 0 {
                            format!(
                                " ({} refused by Discord: run again to retry them)",
                                report.refused
                            )
                        } else {
                            String::new()
                        },
                        if report.complete {
                            ""
                        } else {
                            " (interrupted; run again to resume)"
                        }
                    );
                })
        }
        Some(Command::InviteUrl { application_id }) => invite_url(&cli.config, application_id),
        None => bot::run(cli.config, shutdown).await,
    };
    if logs_to_file {
        // The log is in a file: a failure must still reach the terminal.
        if let Err(err) = &result {
            eprintln!("bot: {err:#}");
        }
    }
    rtfm_core::telemetry::exit_code("bot", result)
}

fn invite_url(config: &bot::Config, application_id: Option<u64>) -> anyhow::Result<()> {
    use rtfm_core::config::ExposeSecret;
    let from_token = || {
        config
            .discord_token
            .as_ref()
            .and_then(|token| bot::setup::application_id_from_token(token.expose_secret()))
    };
    let Some(application_id) = application_id.or_else(from_token) else {
        anyhow::bail!(
            "no application id: set DISCORD_TOKEN (the id is read from it) or pass \
             --application-id (Developer Portal → your application → General Information)"
        );
    };
    print!(
        "{}",
        bot::setup::invite_text(application_id, config.discord_guild_id)
    );
    Ok(())
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
