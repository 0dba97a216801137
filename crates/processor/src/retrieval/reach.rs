//! What a question may see: its reach, from the query as the bot stamped it.

use rtfm_core::ids::{ChannelId, GuildId};
use rtfm_core::BotQuery;

use super::Scope;
use crate::index::IndexedMessage;
use crate::store::{Field, Filter};

/// What a question may see, as the asker may see it.
///
/// - guild + channel scope: that guild **and** (that channel, or a public thread of it);
/// - guild + guild scope: that guild **and** (that channel or one of the query's
///   `visible_channel_ids` — the channels the bot found readable by everyone who can read the
///   question's channel — or a public thread of one of them). A query without the field (an
///   older bot) gets channel scope: nothing is widened on a guess;
/// - no guild (a DM): that channel **and** `is_dm` — so a query that omits its guild cannot
///   reach a guild channel by naming its id.
///
/// The store is asked with the channel part only ([`Reach::filter`]) and every message it
/// returns is checked against the whole rule ([`Reach::admits`]). What a `where` costs Chroma grows
/// with the records each operand matches, so `guild_id == g` costs time in proportion to the
/// whole guild (measured with `scripts/probe_chroma_where.py`; figures in decision 0007)
/// while it can only remove
/// messages whose stored guild contradicts their channel's: Discord's channel ids are unique
/// across guilds. Checking it on the returned messages instead keeps the rule exact at a cost
/// that does not grow with the guild.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    /// `None`: a DM.
    guild: Option<GuildId>,
    channels: Vec<ChannelId>,
}

impl Reach {
    pub fn of(query: &BotQuery, scope: Scope) -> Self {
        let mut channels = vec![query.channel_id];
        if query.guild_id.is_some() && scope == Scope::Guild {
            for visible in query.visible_channel_ids.iter().flatten() {
                if !channels.contains(visible) {
                    channels.push(*visible);
                }
            }
        }
        Self {
            guild: query.guild_id,
            channels,
        }
    }

    /// The filter the store applies: the channels (and, in a guild, their public threads).
    pub fn filter(&self) -> Filter {
        let channels = Filter::any_of(Field::Channel, &self.channels);
        if self.guild.is_none() {
            return channels;
        }
        Filter::either([
            channels,
            Filter::any_of(Field::ThreadParent, &self.channels),
        ])
    }

    /// Whether `message` is inside the reach: the whole rule, guild or DM included.
    pub fn admits(&self, message: &IndexedMessage) -> bool {
        let listed =
            |channel: Option<ChannelId>| channel.is_some_and(|id| self.channels.contains(&id));
        match self.guild {
            None => message.is_dm && message.guild_id.is_none() && listed(Some(message.channel_id)),
            Some(guild) => {
                message.guild_id == Some(guild)
                    && (listed(Some(message.channel_id)) || listed(message.thread_parent))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(guild: Option<&str>, channel: &str, visible: Option<&[&str]>) -> BotQuery {
        BotQuery {
            guild_id: guild.map(|id| id.parse().expect("an id")),
            channel_id: channel.parse().expect("an id"),
            visible_channel_ids: visible.map(|channels| {
                channels
                    .iter()
                    .map(|id| id.parse().expect("an id"))
                    .collect()
            }),
            ..Default::default()
        }
    }

    /// A stored message of `guild` (None: a DM) in `channel`, optionally in a thread of
    /// `parent`.
    fn stored_in(guild: Option<&str>, channel: &str, parent: Option<&str>) -> IndexedMessage {
        IndexedMessage {
            id: 100.into(),
            guild_id: guild.map(|id| id.parse().expect("an id")),
            is_dm: guild.is_none(),
            channel_id: channel.parse().expect("an id"),
            thread_parent: parent.map(|id| id.parse().expect("an id")),
            ..Default::default()
        }
    }

    #[test]
    fn a_channel_question_sees_its_channel_and_its_threads_inside_its_guild() {
        let only_its_channel = Filter::Or(vec![
            Filter::Eq(Field::Channel, "2".into()),
            Filter::Eq(Field::ThreadParent, "2".into()),
        ]);
        for reach in [
            Reach::of(&asked(Some("1"), "2", None), Scope::Channel),
            // Channel scope ignores the visible channels.
            Reach::of(&asked(Some("1"), "2", Some(&["3"])), Scope::Channel),
            // Guild scope without the bot's word on visibility does not widen.
            Reach::of(&asked(Some("1"), "2", None), Scope::Guild),
        ] {
            assert_eq!(reach.filter(), only_its_channel);
            assert!(reach.admits(&stored_in(Some("1"), "2", None)));
            assert!(
                reach.admits(&stored_in(Some("1"), "5", Some("2"))),
                "its thread"
            );
            assert!(!reach.admits(&stored_in(Some("1"), "3", None)));
            assert!(!reach.admits(&stored_in(Some("1"), "5", Some("3"))));
            // The channel's id stored under another guild, or as a DM: not admitted.
            assert!(!reach.admits(&stored_in(Some("9"), "2", None)));
            assert!(!reach.admits(&stored_in(None, "2", None)));
        }
    }

    #[test]
    fn a_guild_question_sees_only_the_channels_the_bot_found_visible() {
        let reach = Reach::of(&asked(Some("1"), "2", Some(&["3", "2", "4"])), Scope::Guild);
        let channels = || vec!["2".into(), "3".into(), "4".into()];
        assert_eq!(
            reach.filter(),
            Filter::Or(vec![
                Filter::In(Field::Channel, channels()),
                Filter::In(Field::ThreadParent, channels()),
            ])
        );
        for channel in ["2", "3", "4"] {
            assert!(reach.admits(&stored_in(Some("1"), channel, None)));
            assert!(!reach.admits(&stored_in(Some("7"), channel, None)));
        }
        assert!(reach.admits(&stored_in(Some("1"), "8", Some("4"))));
        assert!(!reach.admits(&stored_in(Some("1"), "5", None)));
    }

    #[test]
    fn a_dm_only_sees_its_dm_channel_even_with_guild_scope() {
        for scope in [Scope::Channel, Scope::Guild] {
            let reach = Reach::of(&asked(None, "9", Some(&["3"])), scope);
            assert_eq!(reach.filter(), Filter::Eq(Field::Channel, "9".into()));
            assert!(reach.admits(&stored_in(None, "9", None)));
            assert!(!reach.admits(&stored_in(None, "3", None)));
            // A DM question naming a guild channel's id reaches nothing in it.
            assert!(!reach.admits(&stored_in(Some("1"), "9", None)));
            let unmarked = IndexedMessage {
                is_dm: false,
                ..stored_in(None, "9", None)
            };
            assert!(!reach.admits(&unmarked), "stored without is_dm");
        }
    }
}
