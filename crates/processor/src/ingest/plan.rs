//! What a batch of `discord-messages` records amounts to in the index (pure).

use std::collections::HashMap;

use rtfm_core::ids::MessageId;
use rtfm_core::{DiscordMessage, MessageEvent};

/// What a batch does to the index after collapsing repeated ids (last event wins).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Index into the batch of each record to upsert.
    pub upserts: Vec<usize>,
    pub deletes: Vec<MessageId>,
    pub skipped: usize,
    /// Records the community's choices keep out (forgotten members, excluded channels): their
    /// ids are deleted, in case an earlier version of them is stored.
    pub refused: usize,
}

/// Pure: decides per message id what the batch amounts to. An edit that empties a message
/// removes it; a new empty message is skipped.
pub fn plan(batch: &[&DiscordMessage]) -> Plan {
    plan_admitted(batch, |_| true)
}

/// [`plan`], keeping out what `admits` refuses: a refused record's id is deleted whatever
/// its event (an earlier version may be stored; deleting an id that is not is harmless).
pub fn plan_admitted(batch: &[&DiscordMessage], admits: impl Fn(&DiscordMessage) -> bool) -> Plan {
    let mut last: HashMap<MessageId, usize> = HashMap::new();
    for (index, message) in batch.iter().enumerate() {
        last.insert(message.message_id, index);
    }
    let mut plan = Plan::default();
    for (index, message) in batch.iter().enumerate() {
        if last.get(&message.message_id) != Some(&index) {
            plan.skipped += 1;
            continue;
        }
        if !admits(message) {
            plan.refused += 1;
            plan.deletes.push(message.message_id);
            continue;
        }
        let empty = message.content.trim().is_empty();
        match (message.event, empty, message.is_trigger) {
            (MessageEvent::Delete, _, _) | (MessageEvent::Edit, true, _) => {
                plan.deletes.push(message.message_id)
            }
            // A question to the bot is never evidence; an edit that turned a message into one
            // takes the earlier text out of the index.
            (MessageEvent::Edit, false, true) => plan.deletes.push(message.message_id),
            (MessageEvent::Create, true, _) | (MessageEvent::Create, false, true) => {
                plan.skipped += 1
            }
            _ => plan.upserts.push(index),
        }
    }
    plan
}
