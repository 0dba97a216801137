//! RTFM's presence in a server: removed (GUILD_DELETE without `unavailable`) and back
//! (GUILD_CREATE, or listed in READY). serenity handles each event in a task of its own, so a
//! removal and a return can be handled in either order or at once. Both hold
//! [`Community::presence`] from their check to their record, and a removal asks Discord
//! whether RTFM is in the server before recording that it left: whichever order they run in,
//! a server RTFM is in ends up recorded as present.

use std::time::Duration;

use rtfm_core::ControlRecord;
use serenity::all::{GuildId, Http};
use tracing::{info, warn};

use super::Community;

impl Community {
    /// RTFM was removed from `guild` (so the gateway said): recorded, unless Discord shows
    /// the server to RTFM again by now. Not knowing (Discord unreachable) records it; the
    /// grace period covers that.
    pub async fn left(&self, http: &Http, guild: GuildId) {
        let _presence = self.presence.lock().await;
        if http.get_channels(guild).await.is_ok() {
            info!(
                guild_id = guild.get(),
                "removed from a server and already back in it; nothing recorded"
            );
            return;
        }
        let record = ControlRecord::presence(
            guild.get().into(),
            false,
            "RTFM was removed from the server",
        );
        self.note(record).await;
    }

    /// RTFM is in `guilds` (a new gateway session lists them): any of them recorded as left
    /// is marked present again, before its grace period ends and its data goes.
    pub async fn present_in(&self, guilds: &[u64]) {
        let _presence = self.presence.lock().await;
        // What was recorded before (by an earlier process, or a removal handled just now)
        // must be read first: a server RTFM is back in, still recorded as left, would lose
        // its data after the grace period.
        let mut backoff =
            rtfm_core::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        while let Err(err) = self.follower.caught_up(Duration::from_secs(30)).await {
            warn!(error = %err, "waiting for the community's choices to check the servers RTFM is in");
            if !backoff.wait(&self.shutdown).await {
                return;
            }
        }
        let returned: Vec<u64> = {
            let state = self.follower.state();
            guilds
                .iter()
                .copied()
                .filter(|guild| {
                    state
                        .guild((*guild).into())
                        .is_some_and(|choice| !choice.indexed)
                })
                .collect()
        };
        for guild in returned {
            self.note(ControlRecord::presence(
                guild.into(),
                true,
                "RTFM is in the server again",
            ))
            .await;
        }
    }
}
