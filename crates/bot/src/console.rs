//! Console mode: a terminal chat against the real pipeline, for trying RTFM without a Discord
//! application. Each line you type is a message from you in a local channel: it is indexed,
//! and a line with a trigger ("rtfm how do I …?") is answered through Kafka and the processor,
//! exactly as on Discord. End of input waits for outstanding answers, then exits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;
use crate::pipeline::{Pipeline, Via};
use crate::records::Incoming;

/// The local "guild", channel and user of console mode (snowflake-shaped constants).
pub use crate::outbox::CONSOLE_GUILD;
pub const CONSOLE_CHANNEL: u64 = 100_000_000_000_000_002;
pub const CONSOLE_USER: u64 = 100_000_000_000_000_003;
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Snowflake-like ids that grow with time, unique within this process.
fn next_message_id(counter: &AtomicU64) -> u64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(DISCORD_EPOCH_MS);
    (millis.saturating_sub(DISCORD_EPOCH_MS) << 22)
        | (counter.fetch_add(1, Ordering::Relaxed) & 0x3f_ffff)
}

pub async fn run(pipeline: Arc<Pipeline>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let user = std::env::var("USER").unwrap_or_else(|_| "you".to_string());
    println!("RTFM console — no DISCORD_TOKEN, so this terminal is a Discord channel.");
    println!("Type messages to teach me; ask with \"rtfm <question>\". Ctrl-D to quit.\n");
    let outbox = Outbox::Console(crate::outbox::Console);
    let counter = AtomicU64::new(0);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            line = lines.next_line() => line?,
        };
        let Some(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let incoming = Incoming {
            message_id: next_message_id(&counter),
            channel_id: CONSOLE_CHANNEL,
            guild_id: Some(CONSOLE_GUILD),
            channel_name: Some("console".to_string()),
            author_id: CONSOLE_USER,
            author_name: user.clone(),
            author_discriminator: None,
            content: line,
            timestamp: rtfm_core::schema::now_timestamp(),
            ..Incoming::default()
        };
        if let Err(err) = pipeline
            .on_message(&incoming, None, Via::Console, &outbox, &shutdown)
            .await
        {
            eprintln!("could not send that to Kafka: {err:#}");
        }
    }
    // End of input: give outstanding questions their time to be answered.
    let deadline = Instant::now() + pipeline.questions.response_timeout;
    while pipeline.questions.count() > 0 && Instant::now() < deadline && !shutdown.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::without_console_links;

    #[test]
    fn links_to_console_messages_are_dropped_and_others_kept() {
        let link = |message: u64| {
            format!("https://discord.com/channels/{CONSOLE_GUILD}/{CONSOLE_CHANNEL}/{message}")
        };
        let extractive = format!(
            "Found:\n\n> **ann** · 2026-12-07 10:00\n> run make\n<{}>",
            link(7)
        );
        assert_eq!(
            without_console_links(&extractive),
            "Found:\n\n> **ann** · 2026-12-07 10:00\n> run make"
        );
        let model = format!(
            "Run make [1].\n\n[1] ann — <{}>\n[2] bob — <{}>",
            link(7),
            link(8)
        );
        assert_eq!(
            without_console_links(&model),
            "Run make [1].\n\n[1] ann\n[2] bob"
        );
        let elsewhere = "see <https://discord.com/channels/1/2/3>";
        assert_eq!(without_console_links(elsewhere), elsewhere);
    }

    #[test]
    fn message_ids_grow_and_are_distinct() {
        let counter = AtomicU64::new(0);
        let first = next_message_id(&counter);
        let second = next_message_id(&counter);
        assert_ne!(first, second);
        assert!(first > 1 << 40, "snowflake-sized");
    }
}
