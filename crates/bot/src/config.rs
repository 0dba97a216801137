//! The bot's configuration: flags and environment variables, and what follows from them (the
//! state files' paths, the Discord endpoint, the inbound pipeline).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rtfm_core::kafka::{KafkaConfig, OffsetReset, Producer};
use secrecy::SecretString;

use crate::marks::Marks;
use crate::pipeline::Pipeline;
use crate::questions::Questions;
use crate::ratelimit::RateLimiter;
use crate::recent::RecentIds;
use crate::trigger::{self, Triggers};
use crate::visibility::Visibility;
use crate::{discord, interactions};

/// Everything the bot needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// `INDEX_CHANNELS`, shown by `/rtfm-admin channels action:list` (the processor obeys it).
    #[command(flatten)]
    pub control: rtfm_core::control::ControlSettings,
    /// Discord bot token. Unset: console mode.
    #[arg(long = "discord-token", env = "DISCORD_TOKEN", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub discord_token: Option<SecretString>,
    /// Run the terminal chat even if a token is set.
    #[arg(long)]
    pub console: bool,
    /// Trigger phrases, comma-separated, matched as whole words in any case.
    #[arg(long = "rtfm-triggers", env = "RTFM_TRIGGERS", default_value = trigger::DEFAULT_TRIGGERS)]
    pub triggers: String,
    /// Triggers per user per minute.
    #[arg(
        long = "rate-limit-per-minute",
        env = "RATE_LIMIT_PER_MINUTE",
        default_value_t = 5
    )]
    pub rate_limit_per_minute: usize,
    /// Seconds without an answer before the asker is told it is delayed.
    #[arg(
        long = "response-timeout-secs",
        env = "RESPONSE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub response_timeout_secs: u64,
    /// Seconds a `/rtfm` command may wait for its answer before it gets its one follow-up
    /// saying so (the late answer then goes to the channel). Below Discord's 15-minute token
    /// lifetime: at most 870.
    #[arg(
        long = "slash-deadline-secs",
        env = "SLASH_DEADLINE_SECS",
        default_value_t = 840
    )]
    pub slash_deadline_secs: u64,
    /// Seconds a guild's channel permissions are reused before they are read again (for
    /// `bot-queries.visible_channel_ids`; a permission change applies within this time).
    #[arg(
        long = "guild-permissions-ttl-secs",
        env = "GUILD_PERMISSIONS_TTL_SECS",
        default_value_t = 30
    )]
    pub guild_permissions_ttl_secs: u64,
    /// Where a new bot-responses consumer group starts.
    #[arg(
        long = "responses-offset-reset",
        env = "RESPONSES_OFFSET_RESET",
        value_enum,
        default_value = "earliest"
    )]
    pub responses_offset_reset: OffsetReset,
    #[command(flatten)]
    pub service: rtfm_core::supervise::ServiceArgs,
    /// Base URL of a fake Discord (tests); turns serenity's rate limiter off, as a proxy needs.
    #[arg(long = "discord-api-url", env = "DISCORD_API_URL", hide = true)]
    pub discord_api_url: Option<String>,
    /// Tests only: `discord.com` resolves to this address (a fake Discord's TLS port), and
    /// everything else runs as in production: `https://discord.com/api/v10`, serenity's rate
    /// limiter on.
    #[arg(
        long = "discord-test-endpoint",
        env = "DISCORD_TEST_ENDPOINT",
        hide = true
    )]
    pub discord_test_endpoint: Option<SocketAddr>,
    /// Tests only: one more certificate authority (PEM file) to trust, the fake's.
    #[arg(long = "discord-test-ca", env = "DISCORD_TEST_CA", hide = true)]
    pub discord_test_ca: Option<std::path::PathBuf>,
    /// Register `/rtfm` in this guild only, where it appears at once (unset: globally, which
    /// Discord may take up to an hour to show).
    #[arg(long = "discord-guild-id", env = "DISCORD_GUILD_ID")]
    pub discord_guild_id: Option<u64>,
    /// Console mode only: the file the logs go to, so the terminal stays a chat (default:
    /// `$XDG_STATE_HOME/rtfm/bot-console.log`, i.e. `~/.local/state/rtfm/`, else
    /// `rtfm-bot-console.log` in the temporary directory; `-` keeps them on stderr).
    #[arg(long = "console-log-file", env = "CONSOLE_LOG_FILE")]
    pub console_log_file: Option<std::path::PathBuf>,
    /// Where the bot keeps what must survive it: per channel, the newest message it handled,
    /// from which a restart catches up (default: `$XDG_STATE_HOME/rtfm`, i.e.
    /// `~/.local/state/rtfm`; a volume under compose).
    #[arg(long = "bot-state-dir", env = "BOT_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Triggers older than this, found when catching up after downtime, are not asked (the
    /// processor's setting of the same name).
    #[arg(
        long = "query-max-age-secs",
        env = "QUERY_MAX_AGE_SECS",
        default_value_t = 3600
    )]
    pub query_max_age_secs: i64,
}

impl Config {
    pub fn console_mode(&self) -> bool {
        self.console || self.discord_token.is_none()
    }

    /// Where the Discord REST client sends its requests (production: Discord itself).
    pub fn discord_endpoint(&self) -> anyhow::Result<discord::Endpoint> {
        let test_ca = match &self.discord_test_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("while reading DISCORD_TEST_CA {}", path.display()))?,
            ),
            None => None,
        };
        Ok(discord::Endpoint {
            proxy: self.discord_api_url.clone(),
            resolve_to: self.discord_test_endpoint,
            test_ca,
        })
    }

    /// The high-water marks' file: one per set of topics (`KAFKA_TOPIC_SUFFIX`), so bots of
    /// separate deployments sharing a folder keep separate marks.
    pub fn state_file(&self) -> std::path::PathBuf {
        let file = format!("bot-state{}.json", self.kafka.topic_suffix);
        match (&self.state_dir, state_home()) {
            (Some(dir), _) => dir.join(file),
            (None, Some(home)) => home.join("rtfm").join(file),
            (None, None) => std::env::temp_dir().join(format!("rtfm-{file}")),
        }
    }

    /// The backfill's checkpoints (next to the marks).
    pub fn backfill_file(&self) -> std::path::PathBuf {
        self.state_file()
            .with_file_name(format!("backfill{}.json", self.kafka.topic_suffix))
    }

    /// The deferred slash commands' file (next to the marks; owner-only: it holds tokens).
    pub fn interactions_file(&self) -> std::path::PathBuf {
        let state = self.state_file();
        let name = state
            .file_name()
            .map(|name| {
                name.to_string_lossy()
                    .replacen("bot-state", "bot-interactions", 1)
            })
            .unwrap_or_else(|| "bot-interactions.json".into());
        state.with_file_name(name)
    }

    /// Commands waiting for the receipt of a removal (next to the marks; owner-only: it holds
    /// tokens).
    pub fn receipts_file(&self) -> std::path::PathBuf {
        self.interactions_file()
            .with_file_name(format!("bot-receipts{}.json", self.kafka.topic_suffix))
    }

    /// Where console mode writes its logs (`None`: stderr, as asked with `-`).
    pub fn console_log_path(&self) -> Option<std::path::PathBuf> {
        match &self.console_log_file {
            Some(path) if path.as_os_str() == "-" => None,
            Some(path) => Some(path.clone()),
            None => Some(default_console_log()),
        }
    }

    pub(crate) fn pipeline(
        &self,
        producer: Producer,
        marks: Arc<Marks>,
        deferred: Arc<interactions::Deferred>,
    ) -> anyhow::Result<Pipeline> {
        let triggers = Triggers::new(&self.triggers).map_err(anyhow::Error::msg)?;
        if self.slash_deadline_secs > 870 {
            anyhow::bail!(
                "SLASH_DEADLINE_SECS={} is too late: an interaction token expires after 900 s (use at most 870)",
                self.slash_deadline_secs
            );
        }
        let questions = Questions::new(
            deferred,
            Duration::from_secs(self.response_timeout_secs.max(1)),
            Duration::from_secs(self.slash_deadline_secs.max(1)),
        );
        Ok(Pipeline {
            producer,
            triggers,
            limiter: Mutex::new(RateLimiter::new(
                self.rate_limit_per_minute,
                Duration::from_secs(60),
            )),
            rate_limit: self.rate_limit_per_minute,
            questions: Arc::new(questions),
            visibility: Visibility::new(Duration::from_secs(self.guild_permissions_ttl_secs)),
            marks,
            seen: Mutex::new(RecentIds::new(10_000)),
        })
    }
}

/// The user's state directory (`$XDG_STATE_HOME`, else `~/.local/state`).
fn state_home() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".local/state"))
        })
}

/// The console's log file when none is named: the user's own state directory (the log holds
/// chat text), else the temporary directory.
fn default_console_log() -> std::path::PathBuf {
    match state_home() {
        Some(dir) => dir.join("rtfm").join("bot-console.log"),
        None => std::env::temp_dir().join("rtfm-bot-console.log"),
    }
}
