//! The community's choices as every service reads them: the latest record per key of
//! `rtfm-control` folded into a [`ControlState`], and the one rule that decides whether a
//! message may be indexed or quoted ([`ControlState::admits`]). Pure: reading the topic is
//! [`crate::kafka::follow`]'s.
//!
//! The rule, for a message of guild `g`, channel `c` (a thread's parent `p`), author `u`,
//! written at `t`:
//! - RTFM was removed from `g` → no;
//! - `u` chose forget-me in `g` → no; `u` chose remember-me at time `r` → only if `t ≥ r`
//!   (what was said while forgotten, or before, stays forgotten even if it is read again);
//! - `c` or `p` was excluded (or deleted) → no; under `INDEX_CHANNELS=opt-in`, only if `c` or
//!   `p` was included.
//!
//! Direct messages have no guild and no moderators: always yes.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::ids::{ChannelId, GuildId, MessageId, UserId};
use crate::schema::{parse_timestamp, ControlKind, ControlRecord, Subject};

/// `INDEX_CHANNELS`: which channels RTFM reads when no moderator chose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelPolicy {
    /// Every channel it can see, except those excluded.
    #[default]
    All,
    /// Only channels a moderator included.
    OptIn,
}

impl ChannelPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelPolicy::All => "all",
            ChannelPolicy::OptIn => "opt-in",
        }
    }
}

/// What every service that reads the choices is told about the policy.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ControlSettings {
    /// Which channels are indexed where no moderator chose: `all` (every channel RTFM can
    /// see, except those excluded with `/rtfm-admin channels`) or `opt-in` (only those
    /// included).
    #[arg(
        long = "index-channels",
        env = "INDEX_CHANNELS",
        value_enum,
        default_value = "all"
    )]
    pub index_channels: ChannelPolicy,
}

/// The latest choice about a member, channel or guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub indexed: bool,
    pub at: DateTime<Utc>,
    pub by: Option<UserId>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

/// What a removal came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub request_id: String,
    pub removed: u64,
    pub done: bool,
    pub at: DateTime<Utc>,
}

/// Why a message is not indexed or quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its author chose forget-me (or said it while forgotten).
    Member,
    /// Its channel is excluded, deleted or (opt-in) not included.
    Channel,
    /// RTFM was removed from its guild.
    Guild,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Member => "member",
            Refusal::Channel => "channel",
            Refusal::Guild => "guild",
        }
    }
}

/// A message as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subjected {
    pub guild: Option<GuildId>,
    pub channel: ChannelId,
    /// The parent channel of a thread or forum post.
    pub parent: Option<ChannelId>,
    pub author: UserId,
    /// When it was written (unknown: treated as old).
    pub at: Option<DateTime<Utc>>,
}

/// Every choice made, by key.
#[derive(Debug, Clone, Default)]
pub struct ControlState {
    members: HashMap<(GuildId, UserId), Choice>,
    channels: HashMap<(GuildId, ChannelId), Choice>,
    guilds: HashMap<GuildId, Choice>,
    receipts: HashMap<(GuildId, Subject), Receipt>,
    /// Threads (forum posts) tagged solved, by guild.
    solved_threads: HashSet<(GuildId, ChannelId)>,
    /// Messages their asker marked as the answer, by guild.
    solved_messages: HashSet<(GuildId, MessageId)>,
}

impl ControlState {
    /// Folds one record in (a later record of the same key replaces the earlier one).
    pub fn apply(&mut self, record: &ControlRecord) {
        let guild = record.guild_id;
        let at = parse_timestamp(&record.at).unwrap_or_default();
        let choice = || Choice {
            indexed: record.indexed.unwrap_or(true),
            at,
            by: record.by,
            reason: record.reason.clone(),
            request_id: record.request_id.clone(),
        };
        match record.kind {
            ControlKind::Member => {
                if let Some(user) = record.user_id {
                    self.members.insert((guild, user), choice());
                }
            }
            ControlKind::Channel => {
                if let Some(channel) = record.channel_id {
                    self.channels.insert((guild, channel), choice());
                }
            }
            ControlKind::Guild => {
                self.guilds.insert(guild, choice());
            }
            ControlKind::Solved => {
                let (Some(channel), solved) = (record.channel_id, record.solved == Some(true))
                else {
                    return;
                };
                match (record.message_id, solved) {
                    (Some(message), true) => self.solved_messages.insert((guild, message)),
                    (Some(message), false) => self.solved_messages.remove(&(guild, message)),
                    (None, true) => self.solved_threads.insert((guild, channel)),
                    (None, false) => self.solved_threads.remove(&(guild, channel)),
                };
            }
            ControlKind::Receipt => {
                if let Some(subject) = record.subject() {
                    self.receipts.insert(
                        (guild, subject),
                        Receipt {
                            request_id: record.request_id.clone().unwrap_or_default(),
                            removed: record.removed.unwrap_or_default(),
                            done: record.done.unwrap_or_default(),
                            at,
                        },
                    );
                }
            }
        }
    }

    /// A tombstone (a record with no value) for `key`: the choice is gone.
    pub fn forget_key(&mut self, key: &str) {
        let parts: Vec<&str> = key.split(':').collect();
        let id = |index: usize| parts.get(index).and_then(|id| id.parse::<u64>().ok());
        match (parts.first().copied(), id(1).map(GuildId::new)) {
            (Some("member"), Some(guild)) => {
                id(2).map(|user| self.members.remove(&(guild, user.into())));
            }
            (Some("channel"), Some(guild)) => {
                id(2).map(|channel| self.channels.remove(&(guild, channel.into())));
            }
            (Some("guild"), Some(guild)) => {
                self.guilds.remove(&guild);
            }
            (Some("solved"), Some(guild)) => match (id(2), id(3)) {
                (_, Some(message)) => {
                    self.solved_messages.remove(&(guild, message.into()));
                }
                (Some(channel), None) => {
                    self.solved_threads.remove(&(guild, channel.into()));
                }
                _ => {}
            },
            (Some("receipt"), Some(guild)) => {
                let subject = match (parts.get(2).copied(), id(3)) {
                    (Some("member"), Some(user)) => Subject::Member(user.into()),
                    (Some("channel"), Some(channel)) => Subject::Channel(channel.into()),
                    _ => Subject::Guild,
                };
                self.receipts.remove(&(guild, subject));
            }
            _ => {}
        }
    }

    /// Whether a message may be indexed and quoted (see the module documentation).
    pub fn admits(&self, policy: ChannelPolicy, message: &Subjected) -> Result<(), Refusal> {
        let Some(guild) = message.guild else {
            return Ok(());
        };
        if self
            .guilds
            .get(&guild)
            .is_some_and(|choice| !choice.indexed)
        {
            return Err(Refusal::Guild);
        }
        if let Some(choice) = self.members.get(&(guild, message.author)) {
            let said_after = message.at.is_some_and(|at| at >= choice.at);
            if !choice.indexed || !said_after {
                return Err(Refusal::Member);
            }
        }
        let chosen: Vec<&Choice> = std::iter::once(message.channel)
            .chain(message.parent)
            .filter_map(|channel| self.channels.get(&(guild, channel)))
            .collect();
        if chosen.iter().any(|choice| !choice.indexed) {
            return Err(Refusal::Channel);
        }
        if policy == ChannelPolicy::OptIn && chosen.is_empty() {
            return Err(Refusal::Channel);
        }
        Ok(())
    }

    /// Whether a message was marked as an answer: by its asker (✅), or as part of a forum
    /// post (thread) tagged solved.
    pub fn is_solved(&self, guild: GuildId, channel: ChannelId, message: MessageId) -> bool {
        self.solved_messages.contains(&(guild, message))
            || self.solved_threads.contains(&(guild, channel))
    }

    /// Whether a thread (forum post) is tagged solved.
    pub fn thread_solved(&self, guild: GuildId, thread: ChannelId) -> bool {
        self.solved_threads.contains(&(guild, thread))
    }

    /// A member's latest choice in a guild.
    pub fn member(&self, guild: GuildId, user: UserId) -> Option<&Choice> {
        self.members.get(&(guild, user))
    }

    /// A channel's latest state in a guild.
    pub fn channel(&self, guild: GuildId, channel: ChannelId) -> Option<&Choice> {
        self.channels.get(&(guild, channel))
    }

    /// Every channel of a guild with a choice, by id.
    pub fn channels_of(&self, guild: GuildId) -> Vec<(ChannelId, &Choice)> {
        let mut channels: Vec<(ChannelId, &Choice)> = self
            .channels
            .iter()
            .filter(|((of, _), _)| *of == guild)
            .map(|((_, channel), choice)| (*channel, choice))
            .collect();
        channels.sort_by_key(|(channel, _)| *channel);
        channels
    }

    /// RTFM's presence in a guild, when it changed.
    pub fn guild(&self, guild: GuildId) -> Option<&Choice> {
        self.guilds.get(&guild)
    }

    /// Guilds RTFM was removed from, with when.
    pub fn removed_guilds(&self) -> Vec<(GuildId, DateTime<Utc>)> {
        self.guilds
            .iter()
            .filter(|(_, choice)| !choice.indexed)
            .map(|(guild, choice)| (*guild, choice.at))
            .collect()
    }

    /// The latest receipt about a subject in a guild.
    pub fn receipt(&self, guild: GuildId, subject: Subject) -> Option<&Receipt> {
        self.receipts.get(&(guild, subject))
    }

    /// The receipt answering `request_id`, with its guild and subject.
    pub fn receipt_for(&self, request_id: &str) -> Option<(GuildId, Subject, &Receipt)> {
        self.receipts
            .iter()
            .find(|(_, receipt)| receipt.request_id == request_id)
            .map(|((guild, subject), receipt)| (*guild, *subject, receipt))
    }

    /// Members who chose forget-me, per guild (for counts; never shown by name).
    pub fn forgotten_members(&self, guild: GuildId) -> usize {
        self.members
            .iter()
            .filter(|((of, _), choice)| *of == guild && !choice.indexed)
            .count()
    }
}

#[cfg(test)]
mod tests;
