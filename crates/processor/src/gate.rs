//! The community's choices where the processor obeys them: what may be indexed
//! ([`Gate::admits_record`]) and what may be quoted ([`Gate::admits_indexed`]), after the
//! barrier ([`Gate::barrier`]) that makes every choice acknowledged before a batch or a
//! question was read binding on it. The rule itself is [`rtfm_core::control`]'s.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rtfm_core::control::{ChannelPolicy, Refusal, Subjected};
use rtfm_core::kafka::{Follower, NotCaughtUp};
use rtfm_core::schema::parse_timestamp;
use rtfm_core::{BotQuery, DiscordMessage};

use crate::index::IndexedMessage;

/// How long a batch or a question waits for the choices to be read to their end before the
/// wait counts as an outage.
pub const BARRIER_WAIT: Duration = Duration::from_secs(5);

/// The choices as this process reads them; [`Gate::open`] admits everything (evaluation,
/// benchmarks, tests of ranking).
#[derive(Clone, Default)]
pub struct Gate {
    following: Option<(Arc<Follower>, ChannelPolicy)>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("following", &self.following.is_some())
            .finish()
    }
}

impl Gate {
    pub fn open() -> Self {
        Self::default()
    }

    pub fn following(follower: Arc<Follower>, policy: ChannelPolicy) -> Self {
        Self {
            following: Some((follower, policy)),
        }
    }

    pub fn follower(&self) -> Option<&Arc<Follower>> {
        self.following.as_ref().map(|(follower, _)| follower)
    }

    /// Waits until every choice written before now is read (see the module documentation).
    pub async fn barrier(&self) -> Result<(), NotCaughtUp> {
        match &self.following {
            Some((follower, _)) => follower.caught_up(BARRIER_WAIT).await,
            None => Ok(()),
        }
    }

    fn admits(&self, message: &Subjected) -> Result<(), Refusal> {
        match &self.following {
            Some((follower, policy)) => follower.state().admits(*policy, message),
            None => Ok(()),
        }
    }

    /// Whether a record of `discord-messages` may be indexed.
    pub fn admits_record(&self, message: &DiscordMessage) -> Result<(), Refusal> {
        self.admits(&Subjected {
            guild: message.guild_id,
            channel: message.channel_id,
            parent: message
                .thread_parent_channel_id
                .or(message.private_thread_parent_channel_id),
            author: message.user_id,
            at: parse_timestamp(&message.timestamp),
        })
    }

    /// Whether a question's asker is kept out (their question is then not kept for
    /// "asked before?").
    pub fn admits_query(&self, query: &BotQuery) -> bool {
        self.admits(&Subjected {
            guild: query.guild_id,
            channel: query.channel_id,
            parent: None,
            author: query.user_id,
            at: Some(Utc::now()),
        })
        .is_ok()
    }

    /// Whether a stored message was marked as an answer (its asker's ✅, a forum post tagged
    /// solved).
    pub fn solved(&self, message: &IndexedMessage) -> bool {
        let (Some((follower, _)), Some(guild)) = (&self.following, message.guild_id) else {
            return false;
        };
        follower
            .state()
            .is_solved(guild, message.channel_id, message.id)
    }

    /// Whether a stored message may be quoted (or linked).
    pub fn admits_indexed(&self, message: &IndexedMessage) -> bool {
        let at = DateTime::<Utc>::from_timestamp_millis((message.epoch * 1000.0) as i64)
            .filter(|_| message.epoch > 0.0);
        self.admits(&Subjected {
            guild: message.guild_id,
            channel: message.channel_id,
            parent: message.thread_parent.or(message.private_thread_parent),
            author: message.user_id,
            at,
        })
        .is_ok()
    }
}
