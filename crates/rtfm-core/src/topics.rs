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
/// Consumer group that carries out the community's choices (deletions, receipts).
pub const GROUP_CONTROL_APPLIER: &str = "rtfm-control-applier";

/// One of our topics: the three of the contract, and the community's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    DiscordMessages,
    BotQueries,
    BotResponses,
    /// `rtfm-control`: compacted, the latest choice per member, channel and guild
    /// ([`crate::control`]).
    Control,
}

/// The static description of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub base_name: &'static str,
    pub partitions: i32,
    /// `-1`: kept for ever (a compacted topic keeps the latest record per key).
    pub retention_ms: i64,
    /// `cleanup.policy=compact`: the latest record per key is kept, older ones go.
    pub compacted: bool,
    /// The consumer group that reads it.
    pub consumer_group: &'static str,
}

/// One topic to create: its name, partitions, retention and clean-up policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPlan {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: i64,
    pub compacted: bool,
}

impl TopicKind {
    pub const ALL: [TopicKind; 4] = [
        TopicKind::DiscordMessages,
        TopicKind::BotQueries,
        TopicKind::BotResponses,
        TopicKind::Control,
    ];

    pub const fn spec(self) -> TopicSpec {
        match self {
            TopicKind::DiscordMessages => TopicSpec {
                base_name: "discord-messages",
                partitions: 3,
                retention_ms: 7 * DAY_MS,
                compacted: false,
                consumer_group: GROUP_MESSAGE_PROCESSOR,
            },
            TopicKind::BotQueries => TopicSpec {
                base_name: "bot-queries",
                partitions: 3,
                retention_ms: DAY_MS,
                compacted: false,
                consumer_group: GROUP_QUERY_PROCESSOR,
            },
            TopicKind::BotResponses => TopicSpec {
                base_name: "bot-responses",
                partitions: 3,
                retention_ms: DAY_MS,
                compacted: false,
                consumer_group: GROUP_RESPONSE_SENDER,
            },
            // One partition: the choices are few (one record per member who opted out and per
            // channel a moderator chose), and one order is simpler to reason about.
            TopicKind::Control => TopicSpec {
                base_name: "rtfm-control",
                partitions: 1,
                retention_ms: -1,
                compacted: true,
                consumer_group: GROUP_CONTROL_APPLIER,
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

    /// Every topic to create: our four topics and their DLQs (which are never compacted).
    pub fn all(&self) -> Vec<TopicPlan> {
        TopicKind::ALL
            .iter()
            .flat_map(|&kind| {
                let spec = kind.spec();
                [
                    TopicPlan {
                        name: self.name(kind),
                        partitions: spec.partitions,
                        retention_ms: spec.retention_ms,
                        compacted: spec.compacted,
                    },
                    TopicPlan {
                        name: self.dead_letter(kind),
                        partitions: spec.partitions,
                        retention_ms: DLQ_RETENTION_MS,
                        compacted: false,
                    },
                ]
            })
            .collect()
    }

    /// Which of our topics a name is, if any (a DLQ counts as ours too).
    pub fn is_ours(&self, name: &str) -> bool {
        self.all().iter().any(|plan| plan.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_contract() {
        let topics = Topics::default();
        let table: Vec<_> = topics
            .all()
            .into_iter()
            .map(|plan| {
                (
                    plan.name,
                    plan.partitions,
                    plan.retention_ms,
                    plan.compacted,
                )
            })
            .collect();
        assert_eq!(
            table,
            vec![
                ("discord-messages".to_string(), 3, 7 * DAY_MS, false),
                ("discord-messages.dlq".to_string(), 3, 7 * DAY_MS, false),
                ("bot-queries".to_string(), 3, DAY_MS, false),
                ("bot-queries.dlq".to_string(), 3, 7 * DAY_MS, false),
                ("bot-responses".to_string(), 3, DAY_MS, false),
                ("bot-responses.dlq".to_string(), 3, 7 * DAY_MS, false),
                ("rtfm-control".to_string(), 1, -1, true),
                ("rtfm-control.dlq".to_string(), 1, 7 * DAY_MS, false),
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
