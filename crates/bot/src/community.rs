//! What members and moderators choose with slash commands: `/rtfm forget-me`, `/rtfm
//! remember-me` and `/rtfm-admin channels` (see [`crate::commands`]). Each choice is written to
//! `rtfm-control` and acknowledged by Kafka before the command answers, so every processor
//! obeys it from that moment (they read the topic to its end before each batch and question);
//! the removals are the processors' and come back as receipts, which the command's asker gets
//! as an ephemeral follow-up while the interaction's token lives.
//!
//! Every reply here is ephemeral (only the person who ran the command sees it), and every
//! refusal changes nothing: a moderator's command run without Manage Server (Discord lets a
//! server open the command to others, so the bot checks again), a command in a DM, a channel
//! RTFM cannot see or of another guild.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rtfm_core::control::ChannelPolicy;
use rtfm_core::kafka::Follower;
use rtfm_core::text::group_digits;
use rtfm_core::ControlRecord;
use serenity::all::{
    Channel, ChannelId, CommandInteraction, GuildChannel, Http, Reaction, ReactionType,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::backfill::{self, BackfillArgs, Publisher};
use crate::commands::{may_moderate, ChannelAction, Invocation};
use crate::interactions::{Deferred, Waiting};
use crate::pipeline::Pipeline;
use crate::walk::Watcher;

mod text;
use text::SOLVED_EMOJI;
pub use text::{
    channel_list, is_solved_tag, receipt_text, IN_A_SERVER, NAME_A_CHANNEL, NOT_A_MODERATOR,
    NOT_RECORDED,
};
mod presence;
mod respond;
use respond::{edit_response, follow_up, reply_now};

/// The members' and moderators' choices.
pub struct Community {
    /// Its producer and triggers serve here too.
    pub pipeline: Arc<Pipeline>,
    pub follower: Arc<Follower>,
    pub policy: ChannelPolicy,
    /// Commands waiting for a receipt (request id → token), on disk.
    pub waiting: Arc<Deferred>,
    /// Where an inclusion's backfill keeps its checkpoints.
    pub state_dir: PathBuf,
    pub shutdown: CancellationToken,
    /// Held while a server's presence is checked and recorded (`presence`): serenity handles
    /// each event in a task of its own, and a removal and a return must not interleave.
    pub presence: tokio::sync::Mutex<()>,
}

impl Community {
    /// Handles a member's or moderator's command (not `ask`, which is the pipeline's).
    pub async fn handle(
        self: &Arc<Self>,
        http: &Arc<Http>,
        command: &CommandInteraction,
        invocation: Invocation,
        bot_id: Option<u64>,
    ) {
        let Some(guild) = command.guild_id.map(|guild| guild.get()) else {
            reply_now(http, command, IN_A_SERVER).await;
            return;
        };
        let user = command.user.id.get();
        if invocation.is_admin()
            && !may_moderate(
                command
                    .member
                    .as_ref()
                    .and_then(|member| member.permissions),
            )
        {
            info!(
                guild_id = guild,
                user_id = user,
                "a moderators' command refused: no Manage Server"
            );
            reply_now(http, command, NOT_A_MODERATOR).await;
            return;
        }
        let request = command.id.get().to_string();
        match invocation {
            Invocation::ForgetMe | Invocation::RememberMe => {
                let forget = invocation == Invocation::ForgetMe;
                if !self.defer(http, command).await {
                    return;
                }
                let record = ControlRecord::member(guild.into(), user.into(), !forget)
                    .requested(user.into(), &request);
                let text = if forget {
                    "Done: from now on RTFM neither indexes nor quotes your messages in this server. \
                     It is removing what it stored; the receipt with the count follows here."
                } else {
                    "Done: RTFM indexes your new messages in this server again. What it removed stays removed."
                };
                self.record(http, command, &record, forget, text).await;
            }
            Invocation::Channels {
                action: ChannelAction::List,
                ..
            } => {
                let text = channel_list(&self.follower.state(), self.policy, guild);
                reply_now(http, command, &text).await;
            }
            Invocation::Channels { channel: None, .. } => {
                reply_now(http, command, NAME_A_CHANNEL).await
            }
            Invocation::Channels {
                action,
                channel: Some(channel),
            } => {
                if !self.defer(http, command).await {
                    return;
                }
                let token = command.token.as_str();
                match http.get_channel(ChannelId::new(channel.max(1))).await {
                    Ok(Channel::Guild(found)) if found.guild_id.get() == guild => {}
                    Ok(_) => {
                        follow_up(
                            http,
                            token,
                            &format!(
                                "<#{channel}> is not a channel of this server. Nothing changed."
                            ),
                        )
                        .await;
                        return;
                    }
                    Err(err) => {
                        info!(channel_id = channel, error = %err, "a moderator named a channel RTFM cannot see");
                        follow_up(http, token, "RTFM cannot see that channel (it does not exist, or RTFM lacks View Channel there). Nothing changed.").await;
                        return;
                    }
                }
                let include = action == ChannelAction::Include;
                let reason = if include {
                    "included by a moderator"
                } else {
                    "excluded by a moderator"
                };
                let record = ControlRecord::channel(guild.into(), channel.into(), include, reason)
                    .requested(user.into(), &request);
                if include {
                    let text = format!("Included <#{channel}>: reading its history…");
                    if self.record(http, command, &record, false, &text).await {
                        self.read_history(http, command, channel, bot_id);
                    }
                } else {
                    let text = format!(
                        "Excluded <#{channel}>: RTFM no longer indexes or quotes it. It is removing what it stored; the receipt follows here."
                    );
                    self.record(http, command, &record, true, &text).await;
                }
            }
            Invocation::Status => {
                if !self.defer(http, command).await {
                    return;
                }
                let incoming = crate::records::Incoming {
                    message_id: command.id.get(),
                    channel_id: command.channel_id.get(),
                    guild_id: Some(guild),
                    content: "/rtfm-admin status".into(),
                    timestamp: rtfm_core::schema::now_timestamp(),
                    is_trigger: true,
                    ..crate::view::authored_by(&command.user)
                };
                let target = crate::outbox::Target {
                    channel_id: command.channel_id.get(),
                    reply_to: None,
                    interaction_token: Some(command.token.clone()),
                };
                let outbox = crate::outbox::Outbox::Discord(Arc::clone(http));
                if let Err(err) = self
                    .pipeline
                    .ask_command(&incoming, "status", target, &outbox, &self.shutdown)
                    .await
                {
                    error!(error = %format!("{err:#}"), "could not ask for the status");
                }
            }
            Invocation::Ask(_) | Invocation::Unknown(_) => {
                reply_now(http, command, "RTFM does not know this command.").await;
            }
        }
    }

    /// Records what Discord told the bot (a channel or thread deleted, RTFM removed from or
    /// added to a server), waiting through a Kafka outage: such an event comes once.
    pub async fn note(&self, record: ControlRecord) {
        let key = record.compaction_key().to_string();
        match self
            .pipeline
            .producer
            .send_until_acked(&record, &self.shutdown)
            .await
        {
            Some(_) => info!(key = %key, reason = ?record.reason, "recorded"),
            None => warn!(key = %key, "shut down before the event was recorded"),
        }
    }

    /// A ✅ added (or taken back) on a message: recorded as the answer when the one who
    /// reacted asked — it replies to their message, or it is in their thread or forum post —
    /// and is not its author.
    pub async fn reacted(&self, http: &Http, reaction: &Reaction, added: bool) {
        let solved_emoji = matches!(&reaction.emoji, ReactionType::Unicode(emoji) if SOLVED_EMOJI.contains(&emoji.as_str()));
        let (Some(guild), Some(user), true) = (reaction.guild_id, reaction.user_id, solved_emoji)
        else {
            return;
        };
        let (channel, message_id) = (reaction.channel_id, reaction.message_id);
        let message = match http.get_message(channel, message_id).await {
            Ok(message) => message,
            Err(err) => {
                warn!(message_id = message_id.get(), error = %err, "could not read the message marked ✅");
                return;
            }
        };
        if message.author.id == user {
            return; // nobody marks their own message as the answer
        }
        let replies_to_them = message
            .referenced_message
            .as_ref()
            .is_some_and(|asked| asked.author.id == user);
        let their_thread = !replies_to_them
            && matches!(http.get_channel(channel).await, Ok(Channel::Guild(thread)) if thread.owner_id == Some(user) && thread.thread_metadata.is_some());
        if !(replies_to_them || their_thread) {
            return;
        }
        let record = ControlRecord::solved(
            guild.get().into(),
            channel.get().into(),
            Some(message_id.get().into()),
            added,
        );
        self.note(record).await;
    }

    /// A thread changed: a forum post tagged solved (or answered, resolved) is recorded as
    /// solved, and as not solved once the tag is taken off.
    pub async fn thread_changed(&self, http: &Http, thread: &GuildChannel) {
        let Some(parent) = thread.parent_id else {
            return;
        };
        let Ok(Channel::Guild(forum)) = http.get_channel(parent).await else {
            return;
        };
        let solved = forum
            .available_tags
            .iter()
            .any(|tag| thread.applied_tags.contains(&tag.id) && is_solved_tag(&tag.name));
        let (guild, id) = (thread.guild_id.get().into(), thread.id.get().into());
        if self.follower.state().thread_solved(guild, id) == solved {
            return; // a thread update about something else
        }
        self.note(ControlRecord::solved(guild, id, None, solved))
            .await;
    }

    /// Acknowledges within Discord's 3 s, privately.
    async fn defer(&self, http: &Http, command: &CommandInteraction) -> bool {
        match command.defer_ephemeral(http).await {
            Ok(()) => true,
            Err(err) => {
                error!(error = %err, "could not acknowledge a command");
                false
            }
        }
    }

    /// Writes `record` and answers `text` once Kafka has it (or that nothing changed); with
    /// `receipt`, the command waits for its receipt.
    async fn record(
        &self,
        http: &Http,
        command: &CommandInteraction,
        record: &ControlRecord,
        receipt: bool,
        text: &str,
    ) -> bool {
        let token = command.token.as_str();
        if let Err(err) = self.pipeline.producer.send(record).await {
            error!(key = record.compaction_key(), error = %err, "could not record a choice");
            follow_up(http, token, NOT_RECORDED).await;
            return false;
        }
        info!(key = record.compaction_key(), "choice recorded");
        if receipt {
            self.waiting.add(
                &command.id.get().to_string(),
                Waiting {
                    token: token.to_string(),
                    channel_id: command.channel_id.get(),
                    asked_at: Utc::now().timestamp(),
                },
            );
        }
        follow_up(http, token, text).await
    }

    /// Reads an included channel's history into `discord-messages`, showing the progress in
    /// the command's response.
    fn read_history(
        self: &Arc<Self>,
        http: &Arc<Http>,
        command: &CommandInteraction,
        channel: u64,
        bot_id: Option<u64>,
    ) {
        let (community, http) = (Arc::clone(self), Arc::clone(http));
        let token = command.token.clone();
        tokio::spawn(async move {
            let (progress, mut shown) = tokio::sync::watch::channel((0usize, 0usize));
            let watcher = Watcher(Arc::new(move |read, about| {
                let _ = progress.send((read, about));
            }));
            let show_http = Arc::clone(&http);
            let show_token = token.clone();
            let shower = tokio::spawn(async move {
                while shown.changed().await.is_ok() {
                    let (read, about) = *shown.borrow_and_update();
                    let text = format!(
                        "Included <#{channel}>: read {} of about {} messages…",
                        group_digits(read),
                        group_digits(about.max(read))
                    );
                    edit_response(&show_http, &show_token, &text).await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
            let args = BackfillArgs {
                guild: Vec::new(),
                channel: vec![channel],
                limit: None,
                before: None,
                concurrency: 4,
                checkpoint: None,
            };
            let publisher = Publisher {
                producer: &community.pipeline.producer,
                triggers: &community.pipeline.triggers,
                bot_id,
            };
            let checkpoint = community.state_dir.join(format!("include-{channel}.json"));
            let result = backfill::run_watched(
                &http,
                publisher,
                checkpoint,
                &args,
                Some(watcher),
                &community.shutdown,
            )
            .await;
            shower.abort();
            let text = match result {
                Ok(report) if report.complete => format!(
                    "Included <#{channel}>: read its history, {} messages sent for indexing.",
                    group_digits(report.published)
                ),
                Ok(report) => format!(
                    "Included <#{channel}>: {} messages of its history read so far; RTFM stopped before the end and goes on when you include it again.",
                    group_digits(report.published)
                ),
                Err(err) => {
                    warn!(channel_id = channel, error = %format!("{err:#}"), "an included channel's history could not be read");
                    format!("Included <#{channel}>: new messages are indexed, but its history could not be read now; include it again to retry.")
                }
            };
            edit_response(&http, &token, &text).await;
        });
    }

    /// Sends each receipt to the command waiting for it, while its token lives.
    pub async fn deliver_receipts(self: Arc<Self>, http: Arc<Http>) -> anyhow::Result<()> {
        let mut changes = self.follower.changes();
        loop {
            for (request, waiting) in self.waiting.all() {
                let found = self
                    .follower
                    .state()
                    .receipt_for(&request)
                    .filter(|(_, _, receipt)| receipt.done)
                    .map(|(_, subject, receipt)| (subject, receipt.removed, receipt.at));
                if let Some((subject, removed, at)) = found {
                    follow_up(&http, &waiting.token, &receipt_text(subject, removed, at)).await;
                    info!(request_id = %request, removed, "receipt delivered");
                    self.waiting.remove(&request);
                } else if Utc::now().timestamp() - waiting.asked_at > 14 * 60 {
                    // The token dies at 15 minutes; the removal goes on regardless.
                    info!(request_id = %request, "no receipt while the command could still be answered");
                    self.waiting.remove(&request);
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}
