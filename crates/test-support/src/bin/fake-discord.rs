//! `fake-discord`: the strict fake Discord of the test suite as a program, so anyone can try the
//! bot without a Discord account and outside checks can drive it over HTTP.
//!
//! ```text
//! fake-discord --addr 127.0.0.1:5005 --nonce-window-secs 0
//! DISCORD_API_URL=http://127.0.0.1:5005 DISCORD_TOKEN=anything bot
//! curl -s localhost:5005/_fake/ready
//! curl -s -XPOST localhost:5005/_fake/messages -H 'content-type: application/json' \
//!   -d '{"channel_id":"20","guild_id":"10","author_id":"42","username":"ann","content":"rtfm where are the docs?"}'
//! curl -s localhost:5005/_fake/posts
//! ```
//! The control API is described in `test_support::fake_discord`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use test_support::fake_discord::{FakeDiscord, FakeOptions};

#[derive(Debug, Parser)]
#[command(
    name = "fake-discord",
    version,
    about = "A fake Discord (REST + gateway + control API) as strict as the real one"
)]
struct Args {
    /// Address to listen on (REST under /api/v10, the gateway at /gateway, control at /_fake).
    #[arg(long, env = "FAKE_DISCORD_ADDR", default_value = "127.0.0.1:5005")]
    addr: SocketAddr,
    /// Nonces are deduplicated only for messages created this many seconds ago (Discord: "a
    /// few minutes"). 0: never, the worst case.
    #[arg(long, env = "FAKE_DISCORD_NONCE_WINDOW_SECS", default_value_t = 300)]
    nonce_window_secs: u64,
    /// Lifetime of interaction tokens in seconds (Discord: 15 minutes).
    #[arg(long, env = "FAKE_DISCORD_TOKEN_TTL_SECS", default_value_t = 900)]
    token_ttl_secs: u64,
    /// The one bot token accepted (others get 401 and gateway close 4004). Unset: any.
    #[arg(long, env = "FAKE_DISCORD_BOT_TOKEN", hide_env_values = true)]
    bot_token: Option<String>,
    /// Whether the application has the Message Content intent enabled (false: gateway close
    /// 4014 for a bot that asks for it, as Discord does).
    #[arg(long, env = "FAKE_DISCORD_MESSAGE_CONTENT_INTENT", default_value_t = true, action = clap::ArgAction::Set)]
    message_content_intent: bool,
}

fn main() -> std::process::ExitCode {
    let (args, _) = rtfm_core::config::parse::<Args>();
    rtfm_core::supervise::block_on(serve(args))
}

async fn serve(args: Args) -> std::process::ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("fake-discord: cannot listen on {}: {err}", args.addr);
            return std::process::ExitCode::FAILURE;
        }
    };
    let fake = FakeDiscord::serve(
        listener,
        FakeOptions {
            nonce_window: Duration::from_secs(args.nonce_window_secs),
            token_ttl: Duration::from_secs(args.token_ttl_secs),
            bot_token: args.bot_token.clone(),
            message_content_intent: args.message_content_intent,
            ..FakeOptions::default()
        },
    );
    eprintln!(
        "fake-discord: listening on http://{} (nonce window {} s); point the bot at it with DISCORD_API_URL=http://{}",
        fake.addr, args.nonce_window_secs, fake.addr
    );
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Args::command().debug_assert();
    }
}
