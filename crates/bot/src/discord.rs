//! The Discord edge: serenity's gateway client and its event handler. Everything here converts
//! serenity types to plain ones and calls [`Pipeline`]; the logic lives elsewhere.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtfm_core::kafka::Producer;
use rtfm_core::telemetry::Readiness;
use rtfm_core::{ControlRecord, MessageEvent};
use serenity::all::{
    ChannelId, Command, Context, EventHandler, GatewayIntents, Guild, GuildChannel, GuildId, Http,
    Interaction, Message, MessageId, MessageUpdateEvent, PartialGuildChannel, Reaction, Ready,
    ResumedEvent, UnavailableGuild, User,
};
use serenity::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::catchup::{self, CatchUp};
pub use crate::client::{http_client, Endpoint};
use crate::commands;
use crate::community::Community;
use crate::metrics;
use crate::outbox::Outbox;
use crate::pipeline::{Pipeline, Via};
use crate::records::{self, Incoming};
use crate::view::{authored_by, incoming_from, ChannelCache, ChannelInfo};

/// Intents RTFM needs: guild and DM messages with their content.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        // Channel and thread deletions, forum tags, and RTFM removed from or added to a server
        // (not privileged).
        | GatewayIntents::GUILDS
        // An asker's ✅ on the answer (not privileged).
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
}

pub struct Handler {
    pub pipeline: Arc<Pipeline>,
    pub producer: Producer,
    pub readiness: Readiness,
    pub shutdown: CancellationToken,
    pub bot_id: AtomicU64,
    pub connected_before: AtomicBool,
    /// Channel names and thread parents, fetched once per channel (no serenity cache).
    pub channels: Mutex<ChannelCache>,
    /// `DISCORD_GUILD_ID`: register `/rtfm` in this guild only (at once) instead of globally
    /// (which Discord may take up to an hour to show everywhere).
    pub command_guild: Option<u64>,
    /// Catching up on what was said while no session was open (on every READY).
    pub catch_up: Arc<CatchUp>,
    /// `QUERY_MAX_AGE_SECS`: older triggers found by a catch-up are not asked.
    pub catch_up_max_age: chrono::Duration,
    /// Members' and moderators' choices (`/rtfm forget-me`, `/rtfm-admin channels`).
    pub community: Option<Arc<Community>>,
}

impl Handler {
    pub fn new(
        pipeline: Arc<Pipeline>,
        producer: Producer,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            pipeline,
            producer,
            readiness,
            shutdown,
            bot_id: AtomicU64::new(0),
            connected_before: AtomicBool::new(false),
            channels: Mutex::new(ChannelCache::default()),
            command_guild: None,
            catch_up: Arc::new(CatchUp::default()),
            catch_up_max_age: chrono::Duration::hours(1),
            community: None,
        }
    }

    /// Handles the members' and moderators' choices.
    pub fn with_community(mut self, community: Arc<Community>) -> Self {
        self.community = Some(community);
        self
    }

    /// Shares the catch-up runner (the app waits for it at shutdown).
    pub fn with_catch_up(mut self, catch_up: Arc<CatchUp>) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Triggers older than `max_age` found by a catch-up are published, not asked.
    pub fn with_catch_up_max_age(mut self, max_age: chrono::Duration) -> Self {
        self.catch_up_max_age = max_age;
        self
    }

    /// Registers `/rtfm` in `guild` only (see [`Handler::command_guild`]).
    pub fn with_command_guild(mut self, guild: Option<u64>) -> Self {
        self.command_guild = guild;
        self
    }

    fn bot_id(&self) -> Option<u64> {
        Some(self.bot_id.load(Ordering::Relaxed)).filter(|id| *id != 0)
    }

    /// Ignore our own messages and other bots' (no loops).
    fn is_ignored(&self, author: &User) -> bool {
        author.bot || Some(author.id.get()) == self.bot_id()
    }

    async fn channel_info(
        &self,
        http: &Http,
        channel_id: ChannelId,
        guild_id: Option<GuildId>,
    ) -> ChannelInfo {
        if guild_id.is_none() {
            return ChannelInfo::default();
        }
        if let Some(known) = self
            .channels
            .lock()
            .ok()
            .and_then(|mut channels| channels.get(channel_id.get(), Instant::now()))
        {
            return known;
        }
        let fetched = match http.get_channel(channel_id).await {
            Ok(channel) => Some(
                channel
                    .guild()
                    .map(|guild_channel| ChannelInfo::of(&guild_channel))
                    .unwrap_or_default(),
            ),
            Err(err) => {
                warn!(channel_id = channel_id.get(), error = %err, "could not fetch the channel; asking again in a minute");
                None
            }
        };
        let info = fetched.clone().unwrap_or_default();
        if let Ok(mut channels) = self.channels.lock() {
            channels.insert(channel_id.get(), fetched, Instant::now());
        }
        info
    }

    async fn incoming(&self, ctx: &Context, message: &Message) -> Incoming {
        let channel = self
            .channel_info(&ctx.http, message.channel_id, message.guild_id)
            .await;
        incoming_from(message, message.guild_id.map(GuildId::get), &channel)
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.bot_id.store(ready.user.id.get(), Ordering::Relaxed);
        if self.connected_before.swap(true, Ordering::Relaxed) {
            metrics::GATEWAY_RECONNECTS.inc();
        }
        self.readiness.set("discord", true);
        info!(
            bot_id = ready.user.id.get(),
            guilds = ready.guilds.len(),
            "connected to the Discord gateway"
        );
        if let Some(community) = &self.community {
            let guilds: Vec<u64> = ready.guilds.iter().map(|guild| guild.id.get()).collect();
            let community = Arc::clone(community);
            tokio::spawn(async move { community.present_in(&guilds).await });
        }
        // A new session: Discord replays nothing of what was said before it.
        self.catch_up.start(
            catchup::Context {
                http: Arc::clone(&ctx.http),
                pipeline: Arc::clone(&self.pipeline),
                bot_id: ready.user.id.get(),
                max_age: self.catch_up_max_age,
                shutdown: self.shutdown.clone(),
            },
            ready.guilds.iter().map(|guild| guild.id.get()).collect(),
        );
        let definitions = commands::definitions();
        let registered = match self.command_guild {
            // The global commands of an earlier start go, or the guild would list them twice.
            Some(guild) => match Command::set_global_commands(&ctx.http, Vec::new()).await {
                Ok(_) => GuildId::new(guild)
                    .set_commands(&ctx.http, definitions)
                    .await
                    .map(|_| format!("in guild {guild}")),
                Err(err) => Err(err),
            },
            None => Command::set_global_commands(&ctx.http, definitions)
                .await
                .map(|_| "globally (Discord may take up to an hour to show them; set DISCORD_GUILD_ID for at once)".to_string()),
        };
        match registered {
            Ok(scope) => info!("registered the /rtfm and /rtfm-admin slash commands {scope}"),
            Err(err) => error!(error = %err, "could not register the slash commands"),
        }
    }

    async fn channel_delete(
        &self,
        _ctx: Context,
        channel: GuildChannel,
        _messages: Option<Vec<Message>>,
    ) {
        if let Some(community) = &self.community {
            let record = ControlRecord::channel(
                channel.guild_id.get().into(),
                channel.id.get().into(),
                false,
                "channel deleted",
            );
            community.note(record).await;
        }
    }

    async fn thread_delete(
        &self,
        _ctx: Context,
        thread: PartialGuildChannel,
        _full: Option<GuildChannel>,
    ) {
        if let Some(community) = &self.community {
            let record = ControlRecord::channel(
                thread.guild_id.get().into(),
                thread.id.get().into(),
                false,
                "thread deleted",
            );
            community.note(record).await;
        }
    }

    async fn guild_delete(&self, ctx: Context, incomplete: UnavailableGuild, _full: Option<Guild>) {
        // `unavailable` is an outage; without it, RTFM was removed from the server.
        if incomplete.unavailable {
            return;
        }
        if let Some(community) = &self.community {
            community.left(&ctx.http, incomplete.id).await;
        }
    }

    async fn reaction_add(&self, ctx: Context, reaction: Reaction) {
        if let Some(community) = &self.community {
            community.reacted(&ctx.http, &reaction, true).await;
        }
    }

    async fn reaction_remove(&self, ctx: Context, reaction: Reaction) {
        if let Some(community) = &self.community {
            community.reacted(&ctx.http, &reaction, false).await;
        }
    }

    async fn thread_update(&self, ctx: Context, _old: Option<GuildChannel>, new: GuildChannel) {
        if let Some(community) = &self.community {
            community.thread_changed(&ctx.http, &new).await;
        }
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        if let Some(community) = &self.community {
            community.present_in(&[guild.id.get()]).await;
        }
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        metrics::GATEWAY_RECONNECTS.inc();
        self.readiness.set("discord", true);
        info!("gateway session resumed");
    }

    async fn message(&self, ctx: Context, message: Message) {
        if self.is_ignored(&message.author) {
            return;
        }
        let incoming = self.incoming(&ctx, &message).await;
        let outbox = Outbox::Discord(Arc::clone(&ctx.http));
        if let Err(err) = self
            .pipeline
            .on_message(
                &incoming,
                self.bot_id(),
                Via::Message,
                &outbox,
                &self.shutdown,
            )
            .await
        {
            // The producer retries for its whole delivery timeout; failing here means Kafka has
            // been unreachable that long. The message is lost to the index, so say so loudly.
            error!(message_id = incoming.message_id, error = %format!("{err:#}"), "could not publish a message");
        }
    }

    async fn message_update(
        &self,
        ctx: Context,
        _old: Option<Message>,
        new: Option<Message>,
        event: MessageUpdateEvent,
    ) {
        let (Some(author), Some(content)) = (
            event
                .author
                .clone()
                .or_else(|| new.as_ref().map(|m| m.author.clone())),
            event.content.clone(),
        ) else {
            return; // embed-only updates carry no text
        };
        if self.is_ignored(&author) {
            return;
        }
        let channel = self
            .channel_info(&ctx.http, event.channel_id, event.guild_id)
            .await;
        let mut incoming = Incoming {
            message_id: event.id.get(),
            channel_id: event.channel_id.get(),
            guild_id: event.guild_id.map(GuildId::get),
            channel_name: channel.name.clone(),
            content,
            // When it was written (the edit keeps it): the event's, else the id's own time — not
            // now, or an old message edited later would count as new (a member's remember-me).
            timestamp: event
                .timestamp
                .and_then(|t| t.to_rfc3339())
                .or_else(|| event.id.created_at().to_rfc3339())
                .unwrap_or_else(rtfm_core::schema::now_timestamp),
            // An edit keeps what it replied to: from the event, else from the cached message.
            reply_to: event
                .message_reference
                .clone()
                .flatten()
                .or_else(|| new.as_ref().and_then(|m| m.message_reference.clone()))
                .and_then(|reference| reference.message_id)
                .map(MessageId::get),
            mentioned_user_ids: event
                .mentions
                .clone()
                .or_else(|| new.as_ref().map(|m| m.mentions.clone()))
                .unwrap_or_default()
                .iter()
                .map(|user| user.id.get())
                .collect(),
            thread_parent: channel.public_thread_parent,
            ..authored_by(&author)
        };
        incoming.is_trigger = self.pipeline.is_trigger(&incoming.content, self.bot_id());
        let record = records::discord_message(&incoming, MessageEvent::Edit);
        self.publish(&record, "edit", incoming.message_id).await;
    }

    async fn message_delete(
        &self,
        _ctx: Context,
        channel_id: ChannelId,
        deleted: MessageId,
        guild_id: Option<GuildId>,
    ) {
        self.publish_deletions(channel_id, &[deleted], guild_id)
            .await;
    }

    async fn message_delete_bulk(
        &self,
        _ctx: Context,
        channel_id: ChannelId,
        deleted: Vec<MessageId>,
        guild_id: Option<GuildId>,
    ) {
        self.publish_deletions(channel_id, &deleted, guild_id).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(command) = interaction {
            self.on_command(&ctx, &command).await;
        }
    }
}

impl Handler {
    async fn publish_deletions(
        &self,
        channel_id: ChannelId,
        deleted: &[MessageId],
        guild_id: Option<GuildId>,
    ) {
        for id in deleted {
            let record = records::deletion(id.get(), channel_id.get(), guild_id.map(GuildId::get));
            self.publish(&record, "delete", id.get()).await;
        }
    }

    /// Publishes an edit or a delete (`kind`); a failure is logged (Kafka was unreachable for
    /// the producer's whole delivery timeout).
    async fn publish(&self, record: &rtfm_core::DiscordMessage, kind: &str, message_id: u64) {
        match self.producer.send(record).await {
            Ok(_) => {
                metrics::PUBLISHED.with_label_values(&[kind]).inc();
                info!(message_id, kind, "published");
            }
            Err(err) => error!(message_id, kind, error = %err, "could not publish"),
        }
    }
}

mod slash;
