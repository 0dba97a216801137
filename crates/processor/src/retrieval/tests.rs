use super::*;

fn stored(id: &str, epoch: f64) -> crate::store::StoredMessage {
    let mut metadata = serde_json::Map::new();
    metadata.insert("timestamp_epoch".into(), json!(epoch));
    metadata.insert("channel_id".into(), json!("5"));
    crate::store::StoredMessage {
        id: id.into(),
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
        "4",
        &settings,
    );
    let ids: Vec<_> = kept.iter().map(|hit| hit.message.id.as_str()).collect();
    assert_eq!(ids, vec!["2", "3"]);
}

#[test]
fn a_group_ranks_the_hit_then_answers_then_the_rest() {
    let message = SourceMessage::sample;
    let group = SourceGroup {
        hit_id: "2".into(),
        similarity: 0.9,
        messages: vec![
            message("0", Role::Context),
            message("1", Role::Question),
            message("2", Role::Hit),
            message("3", Role::Context),
            message("4", Role::Answer),
        ],
    };
    let ids: Vec<_> = group
        .ranked()
        .into_iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(ids, vec!["2", "4", "1", "3", "0"]);
}

#[test]
fn jump_links_use_me_for_dms() {
    assert_eq!(
        jump_link(Some("1"), "2", "3"),
        "https://discord.com/channels/1/2/3"
    );
    assert_eq!(
        jump_link(None, "2", "3"),
        "https://discord.com/channels/@me/2/3"
    );
}

#[test]
fn numbered_sources_list_each_message_once() {
    let message = |id: &str| {
        SourceMessage::sample(
            id,
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
                hit_id: "2".into(),
                similarity: 0.9,
                messages: vec![message("1"), message("2"), message("3")],
            },
            SourceGroup {
                hit_id: "3".into(),
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
