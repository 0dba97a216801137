//! `/rtfm-admin status`: what RTFM knows of a server and what it could not answer, for its
//! moderators. Indexed messages per channel (the store's tally), the questions of the last
//! [`WEEK`] and how many found an answer (the question log of [`crate::asked`]), the latest
//! questions that found nothing — each with the members whose earlier messages came closest
//! to it, whom a moderator could ask — and how many members chose forget-me (a count, never
//! names). RTFM never pings anyone: the names are plain text, in a reply only the moderator
//! sees.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rtfm_core::ids::{ChannelId, GuildId, UserId};
use rtfm_core::text::group_digits;
use serde_json::Value;

use crate::embedding::Embedder;
use crate::gate::Gate;
use crate::index::IndexedMessage;
use crate::store::{Field, Filter, StoreError, VectorStore};

/// The period the overview covers, in seconds.
pub const WEEK: f64 = 7.0 * 86_400.0;
/// Questions not answered, listed at most.
const UNANSWERED_SHOWN: usize = 5;
/// Channels listed at most (the largest).
const CHANNELS_SHOWN: usize = 15;
/// Members suggested per unanswered question at most.
const CLOSEST_SHOWN: usize = 3;

/// A question that found nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Unanswered {
    pub question: String,
    pub channel_id: ChannelId,
    pub epoch: f64,
    /// Authors of the messages nearest to it (display names), nearest first.
    pub closest: Vec<String>,
}

/// What the overview shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Messages indexed per channel (or thread), largest first.
    pub channels: Vec<(String, usize)>,
    pub asked: usize,
    pub answered: usize,
    /// The latest questions that found nothing, newest first.
    pub unanswered: Vec<Unanswered>,
    /// Members of the server who chose forget-me.
    pub forgotten: usize,
}

/// Where the overview reads from.
pub struct Overview<'a> {
    pub messages: &'a dyn VectorStore,
    pub questions: &'a dyn VectorStore,
    pub embedder: &'a Embedder,
    pub gate: &'a Gate,
}

fn in_guild(guild: GuildId) -> Filter {
    Filter::Eq(Field::Guild, guild.into())
}

impl Overview<'_> {
    /// The report for `guild` at `now` (seconds since the epoch).
    pub async fn report(&self, guild: GuildId, now: f64) -> Result<Report, StoreError> {
        let mut channels: Vec<(String, usize)> = self
            .messages
            .tally(&in_guild(guild), Field::Channel)
            .await?
            .into_iter()
            .collect();
        channels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let week = Filter::all_of([
            in_guild(guild),
            Filter::Between(Field::Epoch, now - WEEK, now + 86_400.0),
        ]);
        // A forgotten member's question is not shown, even while its removal runs.
        let questions: Vec<crate::store::StoredMessage> = self
            .questions
            .get(&week, &[], None)
            .await?
            .into_iter()
            .filter(|question| {
                self.gate
                    .admits_indexed(&IndexedMessage::from_stored(question))
            })
            .collect();
        let answered_flag = |metadata: &serde_json::Map<String, Value>| {
            metadata.get(Field::Answered.key()).and_then(Value::as_bool) != Some(false)
        };
        let answered = questions
            .iter()
            .filter(|question| answered_flag(&question.metadata))
            .count();
        let mut open: Vec<&crate::store::StoredMessage> = questions
            .iter()
            .filter(|question| !answered_flag(&question.metadata))
            .collect();
        let epoch = |question: &crate::store::StoredMessage| {
            question
                .metadata
                .get(Field::Epoch.key())
                .and_then(Value::as_f64)
                .unwrap_or_default()
        };
        open.sort_by(|a, b| epoch(b).total_cmp(&epoch(a)));
        let mut unanswered = Vec::new();
        for question in open.into_iter().take(UNANSWERED_SHOWN) {
            let asked = IndexedMessage::from_stored(question);
            unanswered.push(Unanswered {
                question: question.document.clone(),
                channel_id: asked.channel_id,
                epoch: epoch(question),
                closest: self.closest(guild, &question.document, asked.user_id).await,
            });
        }
        let forgotten = self
            .gate
            .follower()
            .map_or(0, |follower| follower.state().forgotten_members(guild));
        Ok(Report {
            channels,
            asked: questions.len(),
            answered,
            unanswered,
            forgotten,
        })
    }

    /// Authors of the messages nearest to `question` in the guild (not its asker, nobody the
    /// community's choices keep out), nearest first. Best effort: empty if it cannot tell.
    async fn closest(&self, guild: GuildId, question: &str, asker: UserId) -> Vec<String> {
        let Ok(embedding) = self.embedder.embed_one(question).await else {
            return Vec::new();
        };
        let Ok(hits) = self.messages.query(&embedding, &in_guild(guild), 20).await else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for hit in hits {
            let message = IndexedMessage::from_stored(&hit.message);
            if message.user_id == asker || !self.gate.admits_indexed(&message) {
                continue;
            }
            let name = message
                .display_name
                .clone()
                .unwrap_or_else(|| message.username.clone());
            if !names.contains(&name) {
                names.push(name);
            }
            if names.len() == CLOSEST_SHOWN {
                break;
            }
        }
        names
    }
}

/// A quoted question on one line, at most 150 characters.
fn quoted(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(150).collect();
    if line.chars().count() > 150 {
        short.push('…');
    }
    format!("“{short}”")
}

/// The most a reply may hold and still be one Discord message: the command's reply is
/// ephemeral, and only its first message takes the reply's visibility, so the overview must
/// never be split.
pub const REPLY_LIMIT: usize = 1_900;

/// The reply (Discord markdown, plain names, channel mentions that ping nobody), at most
/// [`REPLY_LIMIT`] characters: unanswered questions that would not fit are counted instead.
pub fn render(report: &Report) -> String {
    let total: usize = report.channels.iter().map(|(_, count)| count).sum();
    let mut text = String::from("**RTFM in this server**\n");
    let mut shown: Vec<String> = report
        .channels
        .iter()
        .take(CHANNELS_SHOWN)
        .map(|(channel, count)| format!("<#{channel}> {}", group_digits(*count)))
        .collect();
    if report.channels.len() > CHANNELS_SHOWN {
        shown.push(format!(
            "and {} more",
            report.channels.len() - CHANNELS_SHOWN
        ));
    }
    text.push_str(&format!("Indexed: {} messages", group_digits(total)));
    if !shown.is_empty() {
        text.push_str(&format!(" — {}", shown.join(" · ")));
    }
    let not_found = report.asked - report.answered;
    let rate = (report.answered * 100)
        .checked_div(report.asked)
        .map(|percent| format!(" ({percent} %)"))
        .unwrap_or_default();
    text.push_str(&format!(
        "\nLast 7 days: {} questions, {} answered{rate}, {not_found} not found.",
        group_digits(report.asked),
        group_digits(report.answered)
    ));
    text.push_str(&format!(
        "\nMembers who chose forget-me: {}.",
        report.forgotten
    ));
    if !report.unanswered.is_empty() {
        text.push_str("\n**Not answered** — answer one once, and RTFM will the next time:");
        for (shown, open) in report.unanswered.iter().enumerate() {
            let when = DateTime::<Utc>::from_timestamp(open.epoch as i64, 0)
                .map(|at| at.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let mut line = format!(
                "\n• {} — <#{}>, {when}",
                quoted(&open.question),
                open.channel_id
            );
            if !open.closest.is_empty() {
                line.push_str(&format!(
                    "; closest earlier answers by {}",
                    open.closest.join(", ")
                ));
            }
            let more = format!("\n… and {} more", report.unanswered.len() - shown);
            if text.chars().count() + line.chars().count() + more.chars().count() > REPLY_LIMIT {
                text.push_str(&more);
                break;
            }
            text.push_str(&line);
        }
    }
    text
}

/// The numbers alone, for the tests and the logs.
pub fn counts(report: &Report) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("asked", report.asked),
        ("answered", report.answered),
        (
            "indexed",
            report.channels.iter().map(|(_, count)| count).sum(),
        ),
        ("forgotten", report.forgotten),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overview_reads_as_a_moderator_would_want_it() {
        let report = Report {
            channels: vec![("10".into(), 12_345), ("11".into(), 7)],
            asked: 4,
            answered: 3,
            unanswered: vec![Unanswered {
                question: "how do I rotate\nthe staging cert?".into(),
                channel_id: 11.into(),
                epoch: 1_796_600_000.0,
                closest: vec!["ann".into(), "bob".into()],
            }],
            forgotten: 2,
        };
        let text = render(&report);
        assert!(
            text.contains("Indexed: 12 352 messages — <#10> 12 345 · <#11> 7"),
            "{text}"
        );
        assert!(
            text.contains("4 questions, 3 answered (75 %), 1 not found"),
            "{text}"
        );
        assert!(text.contains("forget-me: 2."), "{text}");
        assert!(
            text.contains("• “how do I rotate the staging cert?” — <#11>"),
            "{text}"
        );
        assert!(
            text.contains("closest earlier answers by ann, bob"),
            "{text}"
        );
        assert!(!text.contains("<@"), "nobody is mentioned");
        let empty = render(&Report::default());
        assert!(empty.contains("Indexed: 0 messages\n"), "{empty}");
        assert!(
            empty.contains("0 questions, 0 answered, 0 not found"),
            "{empty}"
        );
        assert_eq!(counts(&report)["indexed"], 12_352);
        // The longest overview still fits one message.
        let long = Report {
            channels: (0..40)
                .map(|n| (format!("1234567890123456{n:03}"), 99_999))
                .collect(),
            unanswered: (0..5)
                .map(|_| Unanswered {
                    question: "x".repeat(400),
                    channel_id: 12345678901234567890.into(),
                    epoch: 1_796_600_000.0,
                    closest: vec!["a".repeat(32), "b".repeat(32), "c".repeat(32)],
                })
                .collect(),
            ..report
        };
        let text = render(&long);
        assert!(
            text.chars().count() <= REPLY_LIMIT,
            "{} characters",
            text.chars().count()
        );
        assert!(text.contains("more"), "{text}");
    }
}
