//! Which messages belong to a hit's conversation (pure).
//!
//! A reply rarely repeats the words of its question, so a hit is expanded into its
//! conversation. On Discord a conversation shows itself by id: replies
//! (`reply_to_message_id`, followed both ways and two hops deep, with no time window — a reply
//! two days later still belongs), `<@id>` mentions of the hit's author, and threads started
//! from a message. Where people still type names (and on IRC-style chat), a later message that
//! names the hit's author (username, display name or nickname) within the window answers it
//! too. Plain time-adjacent messages are kept as context, ranked last and never quoted as
//! evidence.

use std::collections::HashSet;

use rtfm_core::ids::MessageId;

use crate::index::IndexedMessage;

/// Similarity to the question above which a nearby unaddressed message counts as part of the
/// conversation (all-MiniLM-L6-v2 puts unrelated chat at 0.0–0.3; `processor eval` measures).
pub const RELATED_TO_QUESTION: f32 = 0.4;

/// A message's part in a hit's conversation, in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The message the vector search found.
    Hit,
    /// Answers the hit: replies to it (or to its replies), mentions or names its author
    /// afterwards, follows it in its thread, or answers the same question.
    Answer,
    /// The question the hit answers (the message it replies to, the thread's starter).
    Question,
    /// Only near in time.
    Context,
}

impl Role {
    /// Part of the conversation proper (quoted as evidence), not just nearby.
    pub fn is_conversation(self) -> bool {
        self != Role::Context
    }
}

/// How far around a hit to look.
#[derive(Debug, Clone, Copy)]
pub struct Expansion {
    /// Time-adjacent messages kept either side as context.
    pub neighbors: usize,
    /// Seconds around the hit for context and for mentions or names.
    pub window_secs: f64,
}

/// The hit's conversation among `candidates` (its channel's messages around it in time plus
/// the messages linked to it by replies and threads at any distance), in time order, never
/// containing `excluded` (the question being answered now).
pub fn conversation(
    hit: &IndexedMessage,
    candidates: &[IndexedMessage],
    expansion: Expansion,
    excluded: MessageId,
) -> Vec<(IndexedMessage, Role)> {
    let mut seen = HashSet::new();
    let mut messages: Vec<&IndexedMessage> = std::iter::once(hit)
        .chain(candidates.iter())
        .filter(|message| message.id != excluded && seen.insert(message.id))
        .collect();
    messages.sort_by(|a, b| {
        a.epoch
            .total_cmp(&b.epoch)
            // Snowflakes grow with time.
            .then_with(|| a.id.cmp(&b.id))
    });
    let Some(position) = messages.iter().position(|message| message.id == hit.id) else {
        return Vec::new();
    };
    let within =
        |message: &IndexedMessage| (message.epoch - hit.epoch).abs() <= expansion.window_secs;
    let replies_to = |id: MessageId| -> HashSet<MessageId> {
        messages
            .iter()
            .filter(|message| message.reply_to == Some(id))
            .map(|message| message.id)
            .collect()
    };
    let direct = replies_to(hit.id);
    let second: HashSet<MessageId> = direct.iter().flat_map(|id| replies_to(*id)).collect();
    let names = hit.names();
    // Messages by the hit's author near it: a reply to any of them is addressed to the author
    // (Discord's "nick: …" — people reply to whichever of the asker's messages is handy).
    let by_author: HashSet<MessageId> = messages
        .iter()
        .filter(|message| message.user_id == hit.user_id && within(message))
        .map(|message| message.id)
        .collect();
    let max_answers = 3 * expansion.neighbors.max(1) + 3;
    let mut roles: Vec<Option<Role>> = vec![None; messages.len()];
    roles[position] = Some(Role::Hit);
    let mut answers = 0;
    for (index, message) in messages.iter().enumerate() {
        if index == position {
            continue;
        }
        let after = index > position;
        let role = if hit.reply_to == Some(message.id) || hit.thread_starter == Some(message.id) {
            Some(Role::Question)
        } else if direct.contains(&message.id)
            || second.contains(&message.id)
            || message.thread_starter == Some(hit.id)
            || (hit.reply_to.is_some() && message.reply_to == hit.reply_to)
            || (after
                && hit.thread_starter.is_some()
                && message.thread_starter == hit.thread_starter)
            || (after
                && within(message)
                && message.user_id != hit.user_id
                && (message.mentions.contains(&hit.user_id)
                    || message
                        .reply_to
                        .is_some_and(|parent| by_author.contains(&parent))
                    || names
                        .iter()
                        .any(|name| mentions_name(&message.content, name))))
        {
            (answers < max_answers).then(|| {
                answers += 1;
                Role::Answer
            })
        } else {
            None
        };
        roles[index] = role;
    }
    // Unaddressed messages right around the hit that are about the question anyway (two
    // signals agreeing: near in time and near in meaning) answer it when they follow it, and
    // state the question when they precede it. "lunch?" next to the hit stays context.
    for (index, message) in messages.iter().enumerate() {
        let related = message
            .relevance
            .is_some_and(|relevance| relevance >= RELATED_TO_QUESTION);
        if roles[index].is_none() && related && within(message) && answers < max_answers {
            if index > position {
                roles[index] = Some(Role::Answer);
                answers += 1;
            } else {
                roles[index] = Some(Role::Question);
            }
        }
    }
    // Context: the nearest messages either side in time, within the window.
    let start = position.saturating_sub(expansion.neighbors);
    for index in start..=(position + expansion.neighbors).min(messages.len() - 1) {
        if roles[index].is_none() && within(messages[index]) {
            roles[index] = Some(Role::Context);
        }
    }
    messages
        .into_iter()
        .zip(roles)
        .filter_map(|(message, role)| role.map(|role| (message.clone(), role)))
        .collect()
}

/// `text` names `name` as a whole word (case-insensitive); names shorter than 3 characters
/// never match (too many false positives).
pub fn mentions_name(text: &str, name: &str) -> bool {
    let name = name.to_lowercase();
    if name.chars().count() < 3 {
        return false;
    }
    let text = text.to_lowercase();
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_');
        boundary(before) && boundary(after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, epoch: f64, user: u64, content: &str) -> IndexedMessage {
        IndexedMessage {
            id: id.into(),
            content: content.into(),
            channel_id: 5.into(),
            user_id: user.into(),
            username: format!("user{user}"),
            epoch,
            ..Default::default()
        }
    }

    const NARROW: Expansion = Expansion {
        neighbors: 1,
        window_secs: 600.0,
    };

    fn roles(members: &[(IndexedMessage, Role)]) -> Vec<(u64, Role)> {
        members.iter().map(|(m, r)| (m.id.get(), *r)).collect()
    }

    #[test]
    fn time_neighbours_are_context_and_the_question_being_asked_is_never_included() {
        let candidates: Vec<_> = (1..=9).map(|i| message(i, i as f64, 9, "chat")).collect();
        let members = conversation(&candidates[4], &candidates, NARROW, MessageId::new(6));
        assert_eq!(
            roles(&members),
            vec![(4, Role::Context), (5, Role::Hit), (7, Role::Context)]
        );
    }

    #[test]
    fn replies_are_followed_both_ways_two_hops_deep_with_no_time_window() {
        let mut question = message(1, 0.0, 1, "how do I unpack a rar?");
        question.reply_to = None;
        let mut hit = message(2, 10.0, 2, "unrar x file.rar");
        hit.reply_to = Some(1.into());
        let mut thanks = message(3, 2.0 * 86_400.0, 1, "it works");
        thanks.reply_to = Some(2.into());
        let mut follow_up = message(4, 3.0 * 86_400.0, 2, "great");
        follow_up.reply_to = Some(3.into());
        let mut other_answer = message(5, 50_000.0, 3, "or use 7z");
        other_answer.reply_to = Some(1.into());
        let unrelated = message(6, 20.0, 4, "lunch?");
        let candidates = vec![question, thanks, follow_up, other_answer, unrelated];
        let members = conversation(&hit, &candidates, NARROW, MessageId::new(0));
        assert_eq!(
            roles(&members),
            vec![
                (1, Role::Question),
                (2, Role::Hit),
                (6, Role::Context),
                (5, Role::Answer),
                (3, Role::Answer),
                (4, Role::Answer),
            ]
        );
    }

    #[test]
    fn a_later_mention_or_typed_name_of_the_author_answers_within_the_window() {
        let mut hit = message(1, 0.0, 7, "my wifi drops");
        hit.display_name = Some("Yohannes".into());
        let mentioning = |id: u64, epoch: f64, text: &str| IndexedMessage {
            mentions: vec![7.into()],
            ..message(id, epoch, 8, text)
        };
        let candidates = vec![
            mentioning(2, 30.0, "<@7> try a newer kernel"),
            message(3, 40.0, 9, "yohannes: check dmesg"),
            mentioning(4, 5_000.0, "<@7> too late to count"),
            message(5, 50.0, 7, "I, user7, mention myself"),
        ];
        let members = conversation(&hit, &candidates, NARROW, MessageId::new(0));
        let answers: Vec<_> = members
            .iter()
            .filter(|(_, role)| *role == Role::Answer)
            .map(|(m, _)| m.id.get())
            .collect();
        assert_eq!(answers, vec![2, 3]);
    }

    #[test]
    fn a_reply_to_another_message_of_the_author_nearby_is_addressed_to_the_author() {
        let hit = message(1, 0.0, 7, "my wifi drops");
        let follow_up = message(2, 20.0, 7, "on ubuntu 24.04");
        let mut reply = message(3, 60.0, 8, "try a newer kernel");
        reply.reply_to = Some(2.into());
        let members = conversation(&hit, &[follow_up, reply], NARROW, MessageId::new(0));
        assert!(
            members
                .iter()
                .any(|(m, role)| m.id.get() == 3 && *role == Role::Answer),
            "{members:?}"
        );
    }

    #[test]
    fn a_nearby_message_about_the_question_answers_it_and_small_talk_does_not() {
        let hit = message(1, 0.0, 7, "how do I rotate the deploy key?");
        let answer = IndexedMessage {
            relevance: Some(0.62),
            ..message(2, 60.0, 8, "run vaultctl rotate --key deploy")
        };
        let lunch = IndexedMessage {
            relevance: Some(0.04),
            ..message(3, 70.0, 9, "lunch anyone?")
        };
        let wide = Expansion {
            neighbors: 3,
            ..NARROW
        };
        let members = conversation(&hit, &[answer, lunch], wide, MessageId::new(0));
        assert_eq!(
            roles(&members),
            vec![(1, Role::Hit), (2, Role::Answer), (3, Role::Context)]
        );
    }

    #[test]
    fn a_thread_belongs_to_the_message_it_was_started_from() {
        let starter = message(1, 0.0, 1, "deploys fail on friday");
        let mut in_thread = message(2, 7_200.0, 2, "the cron job locks the db");
        in_thread.thread_starter = Some(1.into());
        in_thread.channel_id = 1.into();
        let from_starter = conversation(
            &starter,
            std::slice::from_ref(&in_thread),
            NARROW,
            MessageId::new(0),
        );
        assert_eq!(
            roles(&from_starter),
            vec![(1, Role::Hit), (2, Role::Answer)]
        );
        let from_thread = conversation(&in_thread, &[starter], NARROW, MessageId::new(0));
        assert_eq!(
            roles(&from_thread),
            vec![(1, Role::Question), (2, Role::Hit)]
        );
    }

    #[test]
    fn names_match_as_whole_words_only() {
        assert!(mentions_name("yohannes, why not WinRAR?", "yohannes"));
        assert!(mentions_name("try this @Alice", "alice"));
        assert!(!mentions_name("malice aforethought", "alice"));
        assert!(!mentions_name("bo: hi", "bo"), "short names never match");
    }
}
