//! The RTFM bot: the Discord-facing side.
//!
//! ```text
//! Discord gateway ──▶ discord (handler) ──▶ pipeline ──▶ discord-messages / bot-queries
//! terminal ─────────▶ console ────────────▶ pipeline
//! bot-responses ──▶ responder ──▶ reply (split) ──▶ outbox ──▶ Discord REST | terminal
//! ```
//!
//! - [`trigger`]: trigger phrases, mentions, question extraction (pure);
//! - [`reply`]: splitting answers under 2 000 characters, code blocks intact (pure);
//! - [`ratelimit`]: per-user trigger limit (pure);
//! - [`records`]: Discord events → wire records (pure);
//! - [`pipeline`]: what happens to a message or trigger, pending questions;
//! - [`responder`]: `bot-responses` → one reply per query;
//! - [`outbox`]: posting with retries, nonces and safe `allowed_mentions`;
//! - [`commands`]: the slash commands registered, and what an invocation asks;
//! - [`community`]: forget-me, remember-me and moderators' channel choices (`rtfm-control`);
//! - [`discord`]: serenity handler (the only module that sees gateway events);
//! - [`view`]: the plain view of Discord's messages and channels;
//! - [`console`]: terminal chat when there is no `DISCORD_TOKEN`;
//! - [`history`]: channel history pages; the check for the bot's own earlier answer;
//! - [`walk`]: the one engine reading history, over the channels [`listing`] finds;
//! - [`backfill`]: publishing a guild's or a channel's history through it;
//! - [`visibility`]: which channels a guild-wide question may search (Discord permissions);
//! - [`setup`]: the invite URL and permissions; what Discord's set-up refusals mean;
//! - [`metrics`].
//!
//! [`App::build`] binds the HTTP endpoint and builds the parts (Kafka producer and
//! `bot-responses` consumer, pipeline, Discord client); [`App::run_until_stopped`] connects and
//! runs them under one supervisor until shutdown. [`run`] is both; `main.rs` only parses the
//! config and calls it (or [`backfill`]).

pub mod backfill;
pub mod catchup;
pub mod client;
pub mod commands;
pub mod community;
mod config;
pub mod console;
pub mod discord;
pub mod history;
pub mod interactions;
pub mod listing;
pub mod marks;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod questions;
pub mod ratelimit;
pub mod recent;
pub mod records;
pub mod reply;
pub mod responder;
pub mod setup;
pub mod trigger;
pub mod view;
pub mod visibility;
pub mod walk;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rtfm_core::kafka::{Consumer, ConsumerOptions, Producer};
use rtfm_core::supervise::{every, Service};
use rtfm_core::topics::GROUP_RESPONSE_SENDER;
use rtfm_core::BotResponse;
use secrecy::ExposeSecret;
use serenity::all::ClientBuilder;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use crate::config::Config;
use crate::marks::Marks;
use crate::outbox::Outbox;
use crate::pipeline::Pipeline;
use crate::trigger::Triggers;

/// Runs the bot (gateway, or console mode without a token) until `shutdown` or a failure.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    App::build(config, shutdown)
        .await?
        .run_until_stopped()
        .await
}

/// Where the bot talks to people.
enum Front {
    /// A terminal chat (no `DISCORD_TOKEN`, or `--console`).
    Console,
    /// Discord's gateway and REST API.
    Discord(Box<serenity::Client>),
}

/// The bot with its parts built and its HTTP endpoint bound, not yet connected to the gateway.
pub struct App {
    service: Service,
    producer: Producer,
    pipeline: Arc<Pipeline>,
    responses: Arc<Consumer<BotResponse>>,
    front: Front,
    /// What a new gateway session missed, read from the channels.
    catch_up: Arc<catchup::CatchUp>,
    /// Members' and moderators' choices (Discord only).
    community: Option<Arc<community::Community>>,
}

impl App {
    /// Binds `HTTP_ADDR` and builds the Kafka producer, the `bot-responses` consumer, the
    /// pipeline and (with a token) the Discord client.
    pub async fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let console = config.console_mode();
        let service = Service::bind(
            "bot",
            &config.service,
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &["kafka", "discord"],
            &shutdown,
        )
        .await?;
        info!(console, "front end");
        let producer =
            Producer::new(&config.kafka, "bot").context("while creating the Kafka producer")?;
        let marks = Arc::new(if console {
            Marks::in_memory()
        } else {
            let path = config.state_file();
            let marks = Marks::load(&path)?;
            info!(path = %path.display(), earlier_run = marks.had_earlier_run(), "high-water marks");
            marks
        });
        let deferred = Arc::new(if console {
            interactions::Deferred::in_memory()
        } else {
            interactions::Deferred::load(&config.interactions_file())?
        });
        let pipeline = Arc::new(config.pipeline(producer.clone(), marks, deferred)?);
        let group = if console {
            format!("{GROUP_RESPONSE_SENDER}-console")
        } else {
            GROUP_RESPONSE_SENDER.to_string()
        };
        let responses: Arc<Consumer<BotResponse>> = Arc::new(Consumer::new(
            &config.kafka,
            &ConsumerOptions::new(&group, "responses").offset_reset(config.responses_offset_reset),
            producer.clone(),
        )?);
        let catch_up = Arc::new(catchup::CatchUp::default());
        let mut community = None;
        let front = if console {
            service.readiness.set("discord", true);
            Front::Console
        } else {
            let follower =
                rtfm_core::kafka::Follower::start(&config.kafka, "bot", service.stop.clone())
                    .context("while following the community's choices")?;
            let chosen = Arc::new(community::Community {
                pipeline: Arc::clone(&pipeline),
                follower,
                policy: config.control.index_channels,
                waiting: Arc::new(interactions::Deferred::load(&config.receipts_file())?),
                state_dir: config
                    .state_file()
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default(),
                shutdown: service.stop.clone(),
                presence: Default::default(),
            });
            community = Some(Arc::clone(&chosen));
            let token = config
                .discord_token
                .as_ref()
                .map(|token| token.expose_secret().to_string())
                .unwrap_or_default();
            let http = discord::http_client(&token, &config.discord_endpoint()?);
            check_token(&http).await?;
            let handler = discord::Handler::new(
                Arc::clone(&pipeline),
                producer.clone(),
                service.readiness.clone(),
                service.stop.clone(),
            )
            .with_command_guild(config.discord_guild_id)
            .with_community(chosen)
            .with_catch_up(Arc::clone(&catch_up))
            .with_catch_up_max_age(chrono::Duration::seconds(config.query_max_age_secs.max(0)));
            let client = ClientBuilder::new_with_http(http, discord::intents())
                .event_handler(handler)
                .await
                .context("while creating the Discord client")?;
            Front::Discord(Box::new(client))
        };
        Ok(Self {
            service,
            producer,
            pipeline,
            responses,
            front,
            catch_up,
            community,
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served (`HTTP_ADDR` with its port bound).
    pub fn http_addr(&self) -> SocketAddr {
        self.service.http_addr()
    }

    /// Connects (gateway or terminal) and relays until the shutdown token fires or a part
    /// fails; then gives the replies in hand the grace period and flushes the producer.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stop = &self.service.stop;
        let mut tasks = JoinSet::new();
        let (producer, readiness) = (self.producer.clone(), self.service.readiness.clone());
        let kafka_stop = stop.clone();
        tasks.spawn(async move {
            // Kafka reachability for `/readyz`.
            every(Duration::from_secs(5), &kafka_stop, || async {
                readiness.set("kafka", producer.reachable(Duration::from_secs(3)).await);
            })
            .await
        });
        let (outbox, console) = match self.front {
            Front::Console => (Outbox::Console(outbox::Console), true),
            Front::Discord(mut client) => {
                let outbox = Outbox::Discord(Arc::clone(&client.http));
                if let Some(community) = &self.community {
                    tasks.spawn(Arc::clone(community).deliver_receipts(Arc::clone(&client.http)));
                }
                let shard_manager = Arc::clone(&client.shard_manager);
                let gateway_stop = stop.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        result = client.start() => match result {
                            Err(err) => match setup::explain_gateway_error(&err) {
                                Some(fix) => Err(anyhow::anyhow!(fix)),
                                None => Err(anyhow::Error::new(err).context("Discord gateway client stopped")),
                            },
                            Ok(()) => Ok(()),
                        },
                        _ = gateway_stop.cancelled() => {
                            shard_manager.shutdown_all().await;
                            Ok(())
                        }
                    }
                });
                (outbox, false)
            }
        };
        tasks.spawn(responder::run(
            Arc::clone(&self.responses),
            outbox.clone(),
            Arc::clone(&self.pipeline.questions),
            stop.clone(),
            console,
        ));
        if console {
            let console_pipeline = Arc::clone(&self.pipeline);
            let console_stop = stop.clone();
            tasks.spawn(async move {
                let result = console::run(console_pipeline, console_stop.clone()).await;
                // End of input ends the session.
                console_stop.cancel();
                result
            });
        } else {
            let watcher = Arc::clone(&self.pipeline.questions);
            // Commands deferred before a restart still get their one follow-up.
            watcher.restore_deferred();
            let watcher_stop = stop.clone();
            tasks.spawn(async move { watcher.watch(outbox, watcher_stop).await });
            let marks = Arc::clone(&self.pipeline.marks);
            let marks_stop = stop.clone();
            let catch_up = Arc::clone(&self.catch_up);
            tasks.spawn(async move {
                let save = || {
                    if let Err(err) = marks.save() {
                        tracing::warn!(error = %format!("{err:#}"), "could not save the high-water marks; trying again");
                    }
                };
                every(Duration::from_secs(2), &marks_stop, || async { save() }).await?;
                // A catch-up in hand stops at shutdown and moves its marks: wait for it.
                let _ = tokio::time::timeout(Duration::from_secs(10), catch_up.wait_idle()).await;
                save();
                Ok(())
            });
        }
        self.service.run(tasks, &self.producer).await
    }
}

/// Asks Discord who the token belongs to before connecting: a refused token (401) stops the
/// bot with the fix; any other failure (Discord unreachable for now) is left to the gateway
/// client, which retries.
async fn check_token(http: &serenity::all::Http) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(15), http.get_current_user()).await {
        Ok(Ok(user)) => {
            info!(bot_id = user.id.get(), "Discord accepted the token");
            Ok(())
        }
        Ok(Err(serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(
            response,
        )))) if response.status_code.as_u16() == 401 => {
            anyhow::bail!(setup::TOKEN_REFUSED)
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not check the token with Discord; connecting anyway");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("Discord did not answer the token check within 15 s; connecting anyway");
            Ok(())
        }
    }
}

/// Publishes history (`bot backfill`).
pub async fn backfill(
    config: Config,
    args: backfill::BackfillArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<backfill::Report> {
    let token = config
        .discord_token
        .as_ref()
        .map(|token| token.expose_secret().to_string())
        .context("backfill needs DISCORD_TOKEN")?;
    let triggers = Triggers::new(&config.triggers).map_err(anyhow::Error::msg)?;
    let http = discord::http_client(&token, &config.discord_endpoint()?);
    let bot_id = http
        .get_current_user()
        .await
        .context("while asking Discord who the bot is")?
        .id
        .get();
    let producer =
        Producer::new(&config.kafka, "backfill").context("while creating the Kafka producer")?;
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| config.backfill_file());
    let publisher = backfill::Publisher {
        producer: &producer,
        triggers: &triggers,
        bot_id: Some(bot_id),
    };
    let report = backfill::run(&http, publisher, checkpoint, &args, &shutdown).await?;
    producer
        .flush(Duration::from_secs(30))
        .await
        .context("while flushing the producer")?;
    Ok(report)
}
