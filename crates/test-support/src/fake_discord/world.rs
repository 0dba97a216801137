//! What a test sets up in the fake: channels, threads, forums, permissions, history, and the
//! failures and limits it injects.

use super::*;

impl FakeDiscord {
    /// Posts to `channel_id` get 429 with `Retry-After: retry_after` (its route's bucket is
    /// empty) until [`FakeDiscord::unlimit_channel`]. Other channels are unaffected, as on
    /// Discord, where rate limits are per route.
    pub fn limit_channel(&self, channel_id: u64, retry_after: f64) {
        self.lock().limited_channels.insert(channel_id, retry_after);
    }
    pub fn unlimit_channel(&self, channel_id: u64) {
        self.lock().limited_channels.remove(&channel_id);
    }
    /// Posts to `channel_id` are refused from now on with `status` (403 Missing Access or
    /// 404 Unknown Channel).
    pub fn refuse_channel(&self, channel_id: u64, status: u16) {
        self.lock().refused_channels.insert(channel_id, status);
    }
    /// The next `POST …/messages` calls fail like this, in order.
    pub fn fail_next_posts(&self, failures: &[Failure]) {
        self.lock().failures.extend(failures.iter().copied());
    }
    /// From now on every `n`-th `POST …/messages` fails like `failure` (e.g. 5 % created, then
    /// 502: `fail_every(20, Failure::CreatedThen(502))`).
    pub fn fail_every(&self, n: u64, failure: Failure) {
        self.lock().periodic_failure = Some((n.max(1), failure));
    }
    /// After `pages` successful history pages, history requests get 403 (an interruption).
    pub fn fail_history_after(&self, pages: Option<usize>) {
        let mut inner = self.lock();
        inner.history_failures_after = pages;
        inner.history_requests = 0;
    }
    pub fn add_channel(&self, channel_id: u64, guild_id: Option<u64>, name: &str) {
        self.lock()
            .channels
            .insert(channel_id, (guild_id, name.to_string()));
    }
    /// A thread of `parent` (public or private); its id is its starter message's id.
    pub fn add_thread(&self, thread_id: u64, parent: u64, public: bool, name: &str) {
        let mut inner = self.lock();
        let guild = inner.channels.get(&parent).and_then(|(guild, _)| *guild);
        inner.channels.insert(thread_id, (guild, name.to_string()));
        inner.threads.insert(thread_id, (parent, public));
    }
    /// A forum channel of `guild`: its messages live in its threads (posts).
    pub fn add_forum(&self, channel_id: u64, guild_id: u64, name: &str) {
        let mut inner = self.lock();
        inner
            .channels
            .insert(channel_id, (Some(guild_id), name.to_string()));
        inner.kinds.insert(channel_id, FORUM);
    }
    /// Archives a thread: it leaves the active listing for its parent's archived ones, the
    /// most recently archived first (each archive one second after the one before).
    pub fn archive_thread(&self, thread_id: u64) {
        let mut inner = self.lock();
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0)
            .unwrap_or_default()
            + chrono::Duration::seconds(inner.archived.len() as i64);
        inner.archived.insert(
            thread_id,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        );
    }
    /// Sets a channel's permission overwrites (see [`role_overwrite`]).
    pub fn set_overwrites(&self, channel_id: u64, overwrites: Vec<Value>) {
        self.lock().overwrites.insert(channel_id, overwrites);
    }
    /// Sets the permissions of a guild's `@everyone` role (whose id is the guild's).
    pub fn set_everyone_permissions(&self, guild_id: u64, permissions: u64) {
        self.lock()
            .everyone_permissions
            .insert(guild_id, permissions);
    }
    /// Deletes a channel (with its threads) or a thread, as Discord tells the bot (developer
    /// documentation, "Gateway Events"): CHANNEL_DELETE with the channel object, or
    /// THREAD_DELETE with `id`, `guild_id`, `parent_id` and `type`. Its history goes with it.
    pub fn delete_channel(&self, channel_id: u64) {
        let event = {
            let mut inner = self.lock();
            let Some((Some(guild), name)) = inner.channels.get(&channel_id).cloned() else {
                return;
            };
            let json = guild_channel_json(&inner, channel_id, guild, &name);
            let event = match inner.threads.get(&channel_id) {
                Some(_) => (
                    "THREAD_DELETE",
                    json!({"id": json["id"], "guild_id": json["guild_id"], "parent_id": json["parent_id"], "type": json["type"]}),
                ),
                None => ("CHANNEL_DELETE", json),
            };
            let threads: Vec<u64> = inner
                .threads
                .iter()
                .filter(|(_, (parent, _))| *parent == channel_id)
                .map(|(thread, _)| *thread)
                .collect();
            for gone in threads.into_iter().chain([channel_id]) {
                inner.channels.remove(&gone);
                inner.threads.remove(&gone);
                inner.history.remove(&gone);
            }
            event
        };
        self.dispatch(event.0, event.1);
    }
    /// A forum's tags, as moderators set them up (`available_tags`).
    pub fn set_forum_tags(&self, forum: u64, tags: &[(u64, &str)]) {
        self.lock().forum_tags.insert(
            forum,
            tags.iter()
                .map(|(id, name)| (*id, name.to_string()))
                .collect(),
        );
    }
    /// Who started a thread or forum post (`owner_id`).
    pub fn set_thread_owner(&self, thread: u64, owner: u64) {
        self.lock().owners.insert(thread, owner);
    }
    /// Applies tags to a forum post, as its owner or a moderator does: THREAD_UPDATE with the
    /// thread object and its `applied_tags`.
    pub fn tag_thread(&self, thread: u64, tags: &[u64]) {
        let json = {
            let mut inner = self.lock();
            inner.applied_tags.insert(thread, tags.to_vec());
            let Some((Some(guild), name)) = inner.channels.get(&thread).cloned() else {
                return;
            };
            guild_channel_json(&inner, thread, guild, &name)
        };
        self.dispatch("THREAD_UPDATE", json);
    }
    /// `user` reacts to a message with `emoji` (MESSAGE_REACTION_ADD), or takes the reaction
    /// back (`added: false`, MESSAGE_REACTION_REMOVE).
    pub fn react(&self, channel: u64, message: u64, user: u64, emoji: &str, added: bool) {
        let (guild, author) = {
            let inner = self.lock();
            let guild = inner.channels.get(&channel).and_then(|(guild, _)| *guild);
            let author = inner
                .history
                .get(&channel)
                .and_then(|messages| messages.iter().find(|m| id_field(m, "id") == message))
                .map(|found| found["author"]["id"].clone());
            (guild, author)
        };
        let mut event = json!({
            "user_id": user.to_string(), "channel_id": channel.to_string(),
            "message_id": message.to_string(), "emoji": {"id": null, "name": emoji},
            "burst": false, "type": 0,
        });
        if let Some(guild) = guild {
            event["guild_id"] = json!(guild.to_string());
        }
        if let (true, Some(author)) = (added, author) {
            event["message_author_id"] = author;
        }
        let kind = if added {
            "MESSAGE_REACTION_ADD"
        } else {
            "MESSAGE_REACTION_REMOVE"
        };
        self.dispatch(kind, event);
    }
    /// The bot is removed from `guild_id` (kicked, or the guild deleted): GUILD_DELETE without
    /// `unavailable`, which is how Discord tells that from an outage (`unavailable: true`).
    pub fn remove_from_guild(&self, guild_id: u64) {
        self.lock().left_guilds.insert(guild_id);
        self.dispatch("GUILD_DELETE", json!({"id": guild_id.to_string()}));
    }
    /// A guild outage: GUILD_DELETE with `unavailable: true` (the bot is still a member).
    pub fn guild_outage(&self, guild_id: u64) {
        self.dispatch(
            "GUILD_DELETE",
            json!({"id": guild_id.to_string(), "unavailable": true}),
        );
    }
    /// The bot is added to `guild_id` (again): GUILD_CREATE with the guild object.
    pub fn add_to_guild(&self, guild_id: u64) {
        self.lock().left_guilds.remove(&guild_id);
        self.dispatch("GUILD_CREATE", payloads::guild_create(guild_id));
    }
    /// Stores history served by `GET /channels/{id}/messages`.
    pub fn add_history(&self, channel_id: u64, messages: Vec<Value>) {
        self.lock()
            .history
            .entry(channel_id)
            .or_default()
            .extend(messages);
    }
}
