//! The topic table: every topic, its partitions and retention, its dead-letter topic, and the
//! consumer groups that read it. The one place these numbers live.

use std::fmt;

const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Retention of every dead-letter topic: long enough for a human to look.
pub const DLQ_RETENTION_MS: i64 = 7 * DAY_MS;

/// Consumer group of the processor's ingestion path.
pub const GROUP_MESSAGE_PROCESSOR: &str = "discord-message-processor";
/// Consumer group of the processor's answering path.
pub const GROUP_QUERY_PROCESSOR: &str = "bot-query-processor";
/// Consumer group of the bot's reply sender.
pub const GROUP_RESPONSE_SENDER: &str = "bot-response-sender";

/// One of our three topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    DiscordMessages,
    BotQueries,
    BotResponses,
}

/// The static description of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub base_name: &'static str,
    pub partitions: i32,
    pub retention_ms: i64,
    /// The consumer group that reads it.
    pub consumer_group: &'static str,
}

impl TopicKind {
    pub const ALL: [TopicKind; 3] = [
        TopicKind::DiscordMessages,
        TopicKind::BotQueries,
        TopicKind::BotResponses,
    ];

    pub const fn spec(self) -> TopicSpec {
        match self {
            TopicKind::DiscordMessages => TopicSpec {
                base_name: "discord-messages",
                partitions: 3,
                retention_ms: 7 * DAY_MS,
                consumer_group: GROUP_MESSAGE_PROCESSOR,
            },
            TopicKind::BotQueries => TopicSpec {
                base_name: "bot-queries",
                partitions: 3,
                retention_ms: DAY_MS,
                consumer_group: GROUP_QUERY_PROCESSOR,
            },
            TopicKind::BotResponses => TopicSpec {
                base_name: "bot-responses",
                partitions: 3,
                retention_ms: DAY_MS,
                consumer_group: GROUP_RESPONSE_SENDER,
            },
        }
    }
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().base_name)
    }
}

/// Topic and group names as deployed. Production uses the bare names; a non-empty suffix
/// (`KAFKA_TOPIC_SUFFIX`) gives every topic and group a private copy, which is how tests run in
/// parallel against one broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    suffix: String,
}

impl Topics {
    pub fn new(suffix: impl Into<String>) -> Self {
        Self {
            suffix: suffix.into(),
        }
    }

    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    pub fn name(&self, kind: TopicKind) -> String {
        format!("{}{}", kind.spec().base_name, self.suffix)
    }

    pub fn dead_letter(&self, kind: TopicKind) -> String {
        format!("{}.dlq", self.name(kind))
    }

    pub fn group(&self, base_group: &str) -> String {
        format!("{base_group}{}", self.suffix)
    }

    /// Every topic to create, with its partitions and retention: the three topics and their DLQs.
    pub fn all(&self) -> Vec<(String, i32, i64)> {
        TopicKind::ALL
            .iter()
            .flat_map(|&kind| {
                let spec = kind.spec();
                [
                    (self.name(kind), spec.partitions, spec.retention_ms),
                    (self.dead_letter(kind), spec.partitions, DLQ_RETENTION_MS),
                ]
            })
            .collect()
    }

    /// Which of our topics a name is, if any (a DLQ counts as ours too).
    pub fn is_ours(&self, name: &str) -> bool {
        self.all().iter().any(|(ours, _, _)| ours == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_contract() {
        let topics = Topics::default();
        assert_eq!(
            topics.all(),
            vec![
                ("discord-messages".to_string(), 3, 7 * DAY_MS),
                ("discord-messages.dlq".to_string(), 3, 7 * DAY_MS),
                ("bot-queries".to_string(), 3, DAY_MS),
                ("bot-queries.dlq".to_string(), 3, 7 * DAY_MS),
                ("bot-responses".to_string(), 3, DAY_MS),
                ("bot-responses.dlq".to_string(), 3, 7 * DAY_MS),
            ]
        );
        assert_eq!(
            TopicKind::DiscordMessages.spec().consumer_group,
            "discord-message-processor"
        );
        assert_eq!(
            TopicKind::BotQueries.spec().consumer_group,
            "bot-query-processor"
        );
        assert_eq!(
            TopicKind::BotResponses.spec().consumer_group,
            "bot-response-sender"
        );
    }

    #[test]
    fn a_suffix_isolates_topics_and_groups() {
        let topics = Topics::new("-t42");
        assert_eq!(topics.name(TopicKind::BotQueries), "bot-queries-t42");
        assert_eq!(
            topics.dead_letter(TopicKind::BotQueries),
            "bot-queries-t42.dlq"
        );
        assert_eq!(
            topics.group(GROUP_QUERY_PROCESSOR),
            "bot-query-processor-t42"
        );
        assert!(topics.is_ours("bot-responses-t42.dlq"));
        assert!(!topics.is_ours("bot-responses"));
    }
}
