//! What a test reads back from the fake: every post and attempt, interaction responses, the
//! gateway sessions, rate-limit refusals, lookups and reads.

use super::*;

impl FakeDiscord {
    /// The bot's flags that run it exactly as in production — `https://discord.com/api/v10`,
    /// serenity's rate limiter on — with only `discord.com` resolved to this fake's TLS port and
    /// its CA (written to a temporary file) trusted.
    pub fn production_flags(&self) -> Vec<String> {
        let ca = std::env::temp_dir().join(format!("rtfm-fake-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca, CA_PEM).expect("write the fake's CA");
        vec![
            "--discord-test-endpoint".into(),
            self.tls_addr.to_string(),
            "--discord-test-ca".into(),
            ca.display().to_string(),
        ]
    }

    /// Messages the bot created in channels (not deduplicated, not follow-ups).
    pub fn posts(&self) -> Vec<Posted> {
        self.lock()
            .posts
            .iter()
            .filter(|post| post.kind == PostKind::Message && !post.deduplicated)
            .cloned()
            .collect()
    }
    /// Waits (at most `timeout`) until an accepted channel message matches `matches`.
    pub async fn until_posted(
        &self,
        what: &str,
        timeout: std::time::Duration,
        matches: impl Fn(&Posted) -> bool,
    ) -> Posted {
        crate::eventually(timeout, what, || async {
            self.posts().into_iter().find(|post| matches(post))
        })
        .await
    }
    /// Every message-creating call, in order: messages and follow-ups, including the ones
    /// Discord deduplicated by nonce. "Exactly one reply" is asserted on this list.
    pub fn attempts(&self) -> Vec<Posted> {
        self.lock().posts.clone()
    }
    /// Bodies of the interaction follow-ups that were accepted.
    pub fn followups(&self) -> Vec<Value> {
        self.lock()
            .posts
            .iter()
            .filter(|post| post.kind == PostKind::Followup)
            .map(|post| post.body.clone())
            .collect()
    }
    /// (interaction id, body) of every interaction response.
    pub fn callbacks(&self) -> Vec<(u64, Value)> {
        self.lock().callbacks.clone()
    }
    pub fn commands(&self) -> Vec<Value> {
        self.lock().commands.clone()
    }
    pub fn typing(&self) -> Vec<u64> {
        self.lock().typing.clone()
    }
    pub fn identifies(&self) -> usize {
        self.lock().identifies
    }
    /// IDENTIFYs refused with a close code (4004 bad token, 4014 disallowed intent).
    pub fn refused_identifies(&self) -> usize {
        self.lock().refused_identifies
    }
    /// REST calls refused with 401.
    pub fn unauthorized(&self) -> usize {
        self.lock().unauthorized
    }
    /// The commands registered in `guild` only (none if `/rtfm` was registered globally).
    pub fn guild_commands(&self, guild: u64) -> Vec<Value> {
        self.lock()
            .guild_commands
            .get(&guild)
            .cloned()
            .unwrap_or_default()
    }
    /// 429s answered so far: (a route's bucket, the global limit).
    pub fn rate_limited(&self) -> (usize, usize) {
        self.lock().rate_limited
    }
    pub fn resumes(&self) -> usize {
        self.lock().resumes
    }
    /// Waits until no gateway socket is open (a stopped bot's is closed): what is pushed from
    /// then on reaches no session.
    pub async fn until_disconnected(&self, timeout: std::time::Duration) {
        crate::eventually(timeout, "every gateway socket closed", || async {
            (self.lock().open_sockets == 0).then_some(())
        })
        .await
    }
    pub fn unknown_routes(&self) -> Vec<String> {
        self.lock().unknown_routes.clone()
    }
    /// How many history pages of `channel` the bot read.
    pub fn history_reads(&self, channel: u64) -> usize {
        self.lock()
            .history_reads
            .get(&channel)
            .copied()
            .unwrap_or(0)
    }
    /// How often the bot read a guild's channels or roles.
    pub fn guild_lookups(&self) -> usize {
        self.lock().guild_lookups
    }
}
