use super::*;
use rtfm_core::ids::MessageId;
use serde_json::json;

use crate::store::{StoredMessage, VectorStore};

fn stored(id: &str, epoch: f64) -> crate::store::StoredMessage {
    let mut metadata = serde_json::Map::new();
    metadata.insert("timestamp_epoch".into(), json!(epoch));
    metadata.insert("channel_id".into(), json!("5"));
    crate::store::StoredMessage {
        id: id.parse().expect("an id"),
        document: format!("text {id}"),
        metadata,
    }
}

fn hit(id: &str, similarity: f32) -> Hit {
    Hit {
        message: stored(id, 0.0),
        similarity,
    }
}

#[test]
fn hits_below_threshold_and_the_trigger_itself_are_dropped() {
    let settings = RetrievalSettings {
        max_sources: 2,
        ..Default::default()
    };
    let kept = select_hits(
        vec![
            hit("1", 0.2),
            hit("2", 0.9),
            hit("3", 0.5),
            hit("4", 0.7),
            hit("2", 0.9),
        ],
        MessageId::new(4),
        &settings,
    );
    let ids: Vec<_> = kept.iter().map(|hit| hit.message.id).collect();
    assert_eq!(ids, vec!["2", "3"]);
}

#[test]
fn a_group_ranks_the_hit_then_answers_then_the_rest() {
    let message = |id: &str, role| SourceMessage::sample(id.parse().expect("an id"), role);
    let group = SourceGroup {
        hit_id: 2.into(),
        similarity: 0.9,
        messages: vec![
            message("0", Role::Context),
            message("1", Role::Question),
            message("2", Role::Hit),
            message("3", Role::Context),
            message("4", Role::Answer),
        ],
    };
    let ids: Vec<_> = group.ranked().into_iter().map(|m| m.message_id).collect();
    assert_eq!(ids, vec!["2", "4", "1", "3", "0"]);
}

#[test]
fn jump_links_use_me_for_dms() {
    assert_eq!(
        jump_link(Some(1.into()), 2.into(), 3.into()),
        "https://discord.com/channels/1/2/3"
    );
    assert_eq!(
        jump_link(None, 2.into(), 3.into()),
        "https://discord.com/channels/@me/2/3"
    );
}

#[test]
fn numbered_sources_list_each_message_once() {
    let message = |id: &str| {
        SourceMessage::sample(
            id.parse().expect("an id"),
            if id == "1" {
                Role::Context
            } else {
                Role::Answer
            },
        )
    };
    let retrieved = Retrieved {
        groups: vec![
            SourceGroup {
                hit_id: 2.into(),
                similarity: 0.9,
                messages: vec![message("1"), message("2"), message("3")],
            },
            SourceGroup {
                hit_id: 3.into(),
                similarity: 0.8,
                messages: vec![message("2"), message("3"), message("4")],
            },
        ],
    };
    let ids: Vec<_> = retrieved
        .numbered()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(ids, vec!["2", "3", "4"], "context is not a source");
    assert!((retrieved.best_similarity() - 0.9).abs() < 1e-6);
}

/// A message of guild 1 as ingestion stores it.
fn indexed(
    id: &str,
    channel: &str,
    guild: &str,
    minute: u32,
    reply_to: Option<&str>,
) -> StoredMessage {
    let message = rtfm_core::DiscordMessage {
        message_id: id.parse().expect("an id"),
        channel_id: channel.parse().expect("an id"),
        guild_id: Some(guild.parse().expect("an id")),
        user_id: format!("9{id}").parse().expect("an id"),
        username: format!("user{id}"),
        content: format!("message {id}"),
        timestamp: format!("2025-11-02T12:{minute:02}:00Z"),
        reply_to_message_id: reply_to.map(|id| id.parse().expect("an id")),
        ..Default::default()
    };
    StoredMessage {
        id: message.message_id,
        document: message.content.clone(),
        metadata: crate::index::metadata_for(&message),
    }
}

#[tokio::test]
async fn search_over_the_in_memory_store_ranks_expands_and_keeps_to_the_reach() {
    // The question's vector is [1, 0]; each message's vector says how close it is.
    let store = crate::store::MemoryStore::new();
    let messages = [
        (indexed("10", "5", "1", 0, None), vec![0.9, 0.1]),
        // A reply to the hit, far from the question's wording, a while later.
        (indexed("11", "5", "1", 20, Some("10")), vec![0.0, 1.0]),
        (indexed("12", "5", "1", 40, None), vec![0.6, 0.8]),
        // Closer than anything, but in another guild and another channel.
        (indexed("20", "7", "2", 0, None), vec![1.0, 0.0]),
        // The question itself.
        (indexed("30", "5", "1", 50, None), vec![1.0, 0.0]),
    ];
    let (stored, vectors): (Vec<_>, Vec<_>) = messages.into_iter().unzip();
    store.upsert(&stored, &vectors).await.expect("upsert");
    let settings = RetrievalSettings::default();
    let search = Search {
        store: &store,
        settings: &settings,
        gate: &crate::gate::Gate::open(),
    };
    let query = BotQuery {
        guild_id: Some(1.into()),
        channel_id: 5.into(),
        original_message_id: 30.into(),
        ..Default::default()
    };
    let found = search
        .run(&query, &[1.0, 0.0], std::time::Instant::now())
        .await
        .expect("search");
    let hits: Vec<MessageId> = found.groups.iter().map(|group| group.hit_id).collect();
    assert_eq!(
        hits,
        ["10", "12"],
        "best first, never the question, never another guild"
    );
    let first: Vec<(MessageId, Role)> = found.groups[0]
        .messages
        .iter()
        .map(|message| (message.message_id, message.role))
        .collect();
    assert!(
        first.contains(&(11.into(), Role::Answer)),
        "the reply joins its hit: {first:?}"
    );
}
