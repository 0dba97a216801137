//! Which channels a guild-wide question may search (`RETRIEVAL_SCOPE=guild` on the processor):
//! the question's channel and the channels that **everyone** who can read it can read too, so
//! an answer never shows a private channel's messages (or their jump links) to people who
//! could not read them there.
//!
//! The rule, from Discord's documented permission computation (base permissions are the union
//! of the member's roles, always including `@everyone`; then the channel's `@everyone`
//! overwrite, then the role overwrites — denies before allows —, then the member's own):
//! a channel is readable by every member when `@everyone`, after the channel's `@everyone`
//! overwrite, has `VIEW_CHANNEL` and `READ_MESSAGE_HISTORY`, and no role or member overwrite of
//! the channel denies either. Every member's base permissions include `@everyone`'s, so no
//! member ends up without them. This is conservative: a private channel whose readers include
//! every reader of the question's channel is left out (it would need every member's roles).
//! A public thread is read by exactly the readers of its parent, so a question in one may also
//! search the parent. Private threads are never stamped with a parent by the bot, so their
//! messages are only seen from inside them.
//!
//! The bot looks the guild's channels and roles up over REST (`GET /guilds/{id}/channels`,
//! `GET /guilds/{id}/roles`) and keeps the result for a short while per guild; a failed
//! lookup stamps nothing but the question's own channel (fail closed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serenity::all::{GuildId, Http, PermissionOverwriteType};
use tracing::{debug, warn};

/// `ADMINISTRATOR`: every permission in every channel.
pub const ADMINISTRATOR: u64 = 1 << 3;
/// `VIEW_CHANNEL`.
pub const VIEW_CHANNEL: u64 = 1 << 10;
/// `READ_MESSAGE_HISTORY`: without it a member sees only messages sent while they look.
pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
const READ: u64 = VIEW_CHANNEL | READ_MESSAGE_HISTORY;

/// Whom a channel permission overwrite is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverwriteFor {
    Role(u64),
    Member(u64),
}

/// One permission overwrite of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overwrite {
    pub target: OverwriteFor,
    pub allow: u64,
    pub deny: u64,
}

/// A guild channel as far as reading it is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAccess {
    pub id: u64,
    pub overwrites: Vec<Overwrite>,
}

/// The channels of a guild every member can read (and read the history of), given the
/// `@everyone` role's permissions. The `@everyone` role's id is the guild's id.
pub fn readable_by_everyone(guild_id: u64, everyone: u64, channels: &[ChannelAccess]) -> Vec<u64> {
    if everyone & ADMINISTRATOR != 0 {
        return channels.iter().map(|channel| channel.id).collect();
    }
    channels
        .iter()
        .filter(|channel| {
            let mut permissions = everyone;
            let mut others_deny = 0;
            for overwrite in &channel.overwrites {
                match overwrite.target {
                    OverwriteFor::Role(role) if role == guild_id => {
                        permissions = (permissions & !overwrite.deny) | overwrite.allow;
                    }
                    _ => others_deny |= overwrite.deny,
                }
            }
            permissions & READ == READ && others_deny & READ == 0
        })
        .map(|channel| channel.id)
        .collect()
}

/// What a question asked in `channel_id` (a public thread of `thread_parent`, if any) may
/// search besides its own channel: the channels everyone can read, and a public thread's
/// parent. At most [`rtfm_core::schema::MAX_VISIBLE_CHANNELS`].
pub fn visible_from(
    channel_id: u64,
    thread_parent: Option<u64>,
    everyone_reads: &[u64],
) -> Vec<rtfm_core::ids::ChannelId> {
    let mut visible: Vec<u64> = thread_parent.into_iter().collect();
    visible.extend(
        everyone_reads
            .iter()
            .copied()
            .filter(|id| *id != channel_id && Some(*id) != thread_parent),
    );
    visible.truncate(rtfm_core::schema::MAX_VISIBLE_CHANNELS);
    visible.into_iter().map(Into::into).collect()
}

/// The per-guild lookups, kept for `ttl` (permission changes apply within it).
pub struct Visibility {
    ttl: Duration,
    cache: Mutex<HashMap<u64, Lookup>>,
}

/// One guild's channels readable by everyone, and when Discord was asked.
#[derive(Clone)]
struct Lookup {
    at: Instant,
    readable: Arc<Vec<u64>>,
}

impl Visibility {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// What a question asked in `channel_id` of `guild_id` may search besides that channel;
    /// empty when Discord could not be asked (the question then searches its channel only).
    pub async fn for_question(
        &self,
        http: &Http,
        guild_id: u64,
        channel_id: u64,
        thread_parent: Option<u64>,
    ) -> Vec<rtfm_core::ids::ChannelId> {
        match self.everyone_reads(http, guild_id).await {
            Ok(channels) => visible_from(channel_id, thread_parent, &channels),
            Err(err) => {
                warn!(guild_id, channel_id, error = %err, "could not read the guild's channel permissions; the question searches its own channel only");
                thread_parent.into_iter().map(Into::into).collect()
            }
        }
    }

    async fn everyone_reads(&self, http: &Http, guild_id: u64) -> serenity::Result<Arc<Vec<u64>>> {
        if let Some(lookup) = self.cached(guild_id) {
            if lookup.at.elapsed() < self.ttl {
                return Ok(lookup.readable);
            }
        }
        let guild = GuildId::new(guild_id);
        let (channels, roles) = tokio::join!(http.get_channels(guild), http.get_guild_roles(guild));
        let (channels, roles) = (channels?, roles?);
        let everyone = roles
            .iter()
            .find(|role| role.id.get() == guild_id)
            .map(|role| role.permissions.bits())
            .unwrap_or(0);
        let access: Vec<ChannelAccess> = channels
            .iter()
            .map(|channel| ChannelAccess {
                id: channel.id.get(),
                overwrites: channel
                    .permission_overwrites
                    .iter()
                    .map(|overwrite| match overwrite.kind {
                        PermissionOverwriteType::Role(role) => Overwrite {
                            target: OverwriteFor::Role(role.get()),
                            allow: overwrite.allow.bits(),
                            deny: overwrite.deny.bits(),
                        },
                        PermissionOverwriteType::Member(user) => Overwrite {
                            target: OverwriteFor::Member(user.get()),
                            allow: overwrite.allow.bits(),
                            deny: overwrite.deny.bits(),
                        },
                        // A kind serenity does not know yet: taken as denying reading.
                        _ => Overwrite {
                            target: OverwriteFor::Member(0),
                            allow: 0,
                            deny: READ,
                        },
                    })
                    .collect(),
            })
            .collect();
        let readable = Arc::new(readable_by_everyone(guild_id, everyone, &access));
        debug!(
            guild_id,
            channels = channels.len(),
            readable = readable.len(),
            "guild channel permissions read"
        );
        if let Ok(mut cache) = self.cache.lock() {
            let lookup = Lookup {
                at: Instant::now(),
                readable: readable.clone(),
            };
            cache.insert(guild_id, lookup);
        }
        Ok(readable)
    }

    fn cached(&self, guild_id: u64) -> Option<Lookup> {
        self.cache.lock().ok()?.get(&guild_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUILD: u64 = 1;
    const EVERYONE: u64 = VIEW_CHANNEL | READ_MESSAGE_HISTORY | (1 << 11);

    fn channel(id: u64, overwrites: &[Overwrite]) -> ChannelAccess {
        ChannelAccess {
            id,
            overwrites: overwrites.to_vec(),
        }
    }

    fn role(id: u64, allow: u64, deny: u64) -> Overwrite {
        Overwrite {
            target: OverwriteFor::Role(id),
            allow,
            deny,
        }
    }

    #[test]
    fn a_channel_hidden_from_everyone_is_not_readable_by_everyone() {
        let channels = [
            channel(10, &[]),
            channel(
                11,
                &[role(GUILD, 0, VIEW_CHANNEL), role(500, VIEW_CHANNEL, 0)],
            ),
            channel(12, &[role(GUILD, 0, READ_MESSAGE_HISTORY)]),
        ];
        assert_eq!(readable_by_everyone(GUILD, EVERYONE, &channels), vec![10]);
    }

    #[test]
    fn any_role_or_member_denied_reading_makes_a_channel_not_everyones() {
        let member_denied = Overwrite {
            target: OverwriteFor::Member(77),
            allow: 0,
            deny: VIEW_CHANNEL,
        };
        let channels = [
            channel(10, &[role(600, 0, READ_MESSAGE_HISTORY)]),
            channel(11, &[member_denied]),
            // Denying something else (sending) still lets everyone read.
            channel(12, &[role(600, 0, 1 << 11)]),
        ];
        assert_eq!(readable_by_everyone(GUILD, EVERYONE, &channels), vec![12]);
    }

    #[test]
    fn a_channel_opened_to_everyone_by_its_overwrite_is_readable() {
        // A guild whose @everyone cannot read by default, with one channel opened up.
        let channels = [channel(10, &[]), channel(11, &[role(GUILD, READ, 0)])];
        assert_eq!(readable_by_everyone(GUILD, 0, &channels), vec![11]);
        // @everyone with ADMINISTRATOR reads everything.
        assert_eq!(
            readable_by_everyone(GUILD, ADMINISTRATOR, &channels),
            vec![10, 11]
        );
    }

    #[test]
    fn a_question_sees_everyones_channels_and_its_public_threads_parent() {
        assert_eq!(visible_from(10, None, &[10, 12, 13]), vec!["12", "13"]);
        assert_eq!(visible_from(99, Some(11), &[10, 11]), vec!["11", "10"]);
        let many: Vec<u64> = (1..=600).collect();
        assert_eq!(
            visible_from(1000, None, &many).len(),
            rtfm_core::schema::MAX_VISIBLE_CHANNELS
        );
    }
}
