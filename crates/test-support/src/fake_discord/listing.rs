//! What the bot reads of a guild: its channels, its threads (active and archived) and a
//! channel's history, rate-limited like the routes that post when limits are on.

use super::rest::{error_response, guild_lookup, id_field, take_token, unknown_guild};
use super::*;

/// Channel types (Discord API reference, Channel object): text, public thread, private
/// thread, forum.
const TEXT: u8 = 0;
const PUBLIC_THREAD: u8 = 11;
const PRIVATE_THREAD: u8 = 12;
pub(super) const FORUM: u8 = 15;

#[derive(serde::Deserialize)]
pub(super) struct HistoryQuery {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /channels/{id}/messages`: a page of the channel's history, newest first.
pub(super) async fn channel_history(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let mut inner = fake.lock();
    let rate_headers = match take_token(&mut inner, &format!("history-{channel}")) {
        Ok(headers) => headers,
        Err(limited) => return *limited,
    };
    inner.history_requests += 1;
    *inner.history_reads.entry(channel).or_default() += 1;
    if inner
        .history_failures_after
        .is_some_and(|pages| inner.history_requests > pages)
    {
        return error_response(StatusCode::FORBIDDEN, 50001, "Missing Access");
    }
    let mut messages: Vec<Value> = inner
        .history
        .get(&channel)
        .map(|messages| {
            messages
                .iter()
                .filter(|message| {
                    let id = id_field(message, "id");
                    query.before.is_none_or(|before| id < before)
                        && query.after.is_none_or(|after| id > after)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    if query.after.is_some() && query.before.is_none() {
        // `after`: the oldest `limit` messages after it (Discord still lists them newest first).
        messages.sort_by_key(|message| id_field(message, "id"));
        messages.truncate(limit);
        messages.reverse();
    } else {
        messages.sort_by_key(|message| std::cmp::Reverse(id_field(message, "id")));
        messages.truncate(limit);
    }
    let mut response = Json(Value::Array(messages)).into_response();
    super::rest::add_headers(&mut response, rate_headers);
    response
}

pub(super) fn guild_channel_json(inner: &Inner, channel: u64, guild: u64, name: &str) -> Value {
    let overwrites = inner.overwrites.get(&channel).cloned().unwrap_or_default();
    let (kind, parent) = match inner.threads.get(&channel) {
        Some((parent, public)) => (
            if *public {
                PUBLIC_THREAD
            } else {
                PRIVATE_THREAD
            },
            json!(parent.to_string()),
        ),
        None => (
            inner.kinds.get(&channel).copied().unwrap_or(TEXT),
            Value::Null,
        ),
    };
    let mut json = json!({
        "id": channel.to_string(), "type": kind, "guild_id": guild.to_string(), "name": name,
        "position": 0, "permission_overwrites": overwrites, "nsfw": false,
        "rate_limit_per_user": 0, "parent_id": parent, "topic": null,
        "last_message_id": inner.history.get(&channel)
            .and_then(|messages| messages.iter().map(|message| id_field(message, "id")).max())
            .map(|id| id.to_string()),
    });
    if let Some(tags) = inner.forum_tags.get(&channel) {
        json["available_tags"] = Value::Array(
            tags.iter()
                .map(|(id, name)| json!({"id": id.to_string(), "name": name, "moderated": false, "emoji_id": null, "emoji_name": null}))
                .collect(),
        );
    }
    if let Some(tags) = inner.applied_tags.get(&channel) {
        json["applied_tags"] = json!(tags.iter().map(u64::to_string).collect::<Vec<_>>());
    }
    if let Some(owner) = inner.owners.get(&channel) {
        json["owner_id"] = json!(owner.to_string());
    }
    if inner.threads.contains_key(&channel) {
        let archived = inner.archived.get(&channel);
        json["thread_metadata"] = json!({
            "archived": archived.is_some(), "auto_archive_duration": 1440,
            "archive_timestamp": archived.cloned().unwrap_or_else(|| "2026-01-01T00:00:00+00:00".into()),
            "locked": false,
        });
    }
    json
}

/// `GET /guilds/{id}/channels`: the guild's channels with their overwrites (no threads).
pub(super) async fn guild_channels(
    State(fake): State<FakeDiscord>,
    Path(guild): Path<u64>,
) -> Response {
    let Some(inner) = guild_lookup(&fake, guild) else {
        return unknown_guild();
    };
    let mut channels: Vec<(u64, String)> = inner
        .channels
        .iter()
        .filter(|(id, (in_guild, _))| *in_guild == Some(guild) && !inner.threads.contains_key(id))
        .map(|(id, (_, name))| (*id, name.clone()))
        .collect();
    channels.sort();
    let channels: Vec<Value> = channels
        .iter()
        .map(|(id, name)| guild_channel_json(&inner, *id, guild, name))
        .collect();
    Json(Value::Array(channels)).into_response()
}

/// `GET /guilds/{id}/threads/active`: the guild's threads that are not archived.
pub(super) async fn guild_active_threads(
    State(fake): State<FakeDiscord>,
    Path(guild): Path<u64>,
) -> Response {
    let Some(inner) = guild_lookup(&fake, guild) else {
        return unknown_guild();
    };
    let mut threads: Vec<u64> = inner
        .threads
        .keys()
        .copied()
        .filter(|id| {
            !inner.archived.contains_key(id)
                && inner
                    .channels
                    .get(id)
                    .is_some_and(|(g, _)| *g == Some(guild))
        })
        .collect();
    threads.sort();
    let threads = threads_json(&inner, &threads, guild);
    Json(json!({"threads": threads, "members": [], "has_more": false})).into_response()
}

fn threads_json(inner: &Inner, threads: &[u64], guild: u64) -> Vec<Value> {
    threads
        .iter()
        .map(|id| {
            let name = inner
                .channels
                .get(id)
                .map(|(_, name)| name.clone())
                .unwrap_or_default();
            guild_channel_json(inner, *id, guild, &name)
        })
        .collect()
}

#[derive(serde::Deserialize)]
pub(super) struct ArchivedQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// Which archived threads a listing shows.
#[derive(Clone, Copy)]
enum Archived {
    /// `GET /channels/{id}/threads/archived/public`.
    Public,
    /// `GET /channels/{id}/threads/archived/private` (needs Manage Threads; granted here).
    Private,
}

pub(super) async fn archived_public(
    fake: State<FakeDiscord>,
    channel: Path<u64>,
    query: Query<ArchivedQuery>,
) -> Response {
    archived(fake, channel, query, Archived::Public)
}

pub(super) async fn archived_private(
    fake: State<FakeDiscord>,
    channel: Path<u64>,
    query: Query<ArchivedQuery>,
) -> Response {
    archived(fake, channel, query, Archived::Private)
}

/// A parent channel's archived threads, most recently archived first, paged by archive time:
/// Discord takes `before` as an ISO 8601 timestamp here (Discord API reference, "List Public
/// Archived Threads"), and refuses anything else with 400, code 50035.
fn archived(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
    Query(query): Query<ArchivedQuery>,
    which: Archived,
) -> Response {
    let before = match query
        .before
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(before)) => Some(before),
        Some(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                50035,
                "Invalid Form Body (before: Could not parse ISO8601 timestamp)",
            )
        }
    };
    let mut inner = fake.lock();
    let rate_headers = match take_token(&mut inner, &format!("threads-{channel}")) {
        Ok(headers) => headers,
        Err(limited) => return *limited,
    };
    let Some(guild) = inner.channels.get(&channel).and_then(|(guild, _)| *guild) else {
        return error_response(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    let mut threads: Vec<(chrono::DateTime<chrono::FixedOffset>, u64)> = inner
        .threads
        .iter()
        .filter(|(_, (parent, public))| {
            *parent == channel && *public == matches!(which, Archived::Public)
        })
        .filter_map(|(id, _)| {
            let at = chrono::DateTime::parse_from_rfc3339(inner.archived.get(id)?).ok()?;
            before.is_none_or(|before| at < before).then_some((at, *id))
        })
        .collect();
    threads.sort_by(|a, b| b.cmp(a));
    let limit = query.limit.unwrap_or(50).clamp(2, 100);
    let has_more = threads.len() > limit;
    threads.truncate(limit);
    let ids: Vec<u64> = threads.iter().map(|(_, id)| *id).collect();
    let threads = threads_json(&inner, &ids, guild);
    let mut response =
        Json(json!({"threads": threads, "members": [], "has_more": has_more})).into_response();
    super::rest::add_headers(&mut response, rate_headers);
    response
}
