use super::*;
use rtfm_core::MessageEvent;
use serde_json::Map;

fn message(id: &str, content: &str, event: MessageEvent) -> DiscordMessage {
    DiscordMessage {
        message_id: id.parse().expect("an id"),
        content: content.into(),
        username: "u".into(),
        user_id: 1.into(),
        channel_id: 2.into(),
        timestamp: "2025-11-02T12:34:56Z".into(),
        metadata: Map::new(),
        guild_id: None,
        event,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

#[test]
fn questions_to_the_bot_are_never_indexed() {
    let mut trigger = message("1", "rtfm which port?", MessageEvent::Create);
    trigger.is_trigger = true;
    let mut edited_into_trigger = message("2", "rtfm which port?", MessageEvent::Edit);
    edited_into_trigger.is_trigger = true;
    let batch = [
        trigger,
        edited_into_trigger,
        message("3", "port 5432", MessageEvent::Create),
    ];
    let refs: Vec<&DiscordMessage> = batch.iter().collect();
    let plan = plan(&refs);
    assert_eq!(plan.upserts, vec![2]);
    assert_eq!(plan.deletes, vec!["2"]);
    assert_eq!(plan.skipped, 1);
}

#[test]
fn the_last_event_per_id_wins_and_empty_messages_are_skipped() {
    let batch = [
        message("1", "hello", MessageEvent::Create),
        message("2", "  ", MessageEvent::Create),
        message("1", "hello, edited", MessageEvent::Edit),
        message("3", "bye", MessageEvent::Create),
        message("3", "", MessageEvent::Delete),
        message("4", "", MessageEvent::Edit),
    ];
    let refs: Vec<&DiscordMessage> = batch.iter().collect();
    let plan = plan(&refs);
    assert_eq!(plan.upserts, vec![2]);
    assert_eq!(plan.deletes, vec!["3", "4"]);
    assert_eq!(plan.skipped, 3);
}
