//! Reading a channel's history over REST: pages for `bot backfill`, and the bot's check for
//! its own earlier answer before it re-posts one that may be a redelivery.
//!
//! Why the check exists: Discord deduplicates a `nonce` only for a few minutes, so after a
//! longer outage a response that was posted but not committed would be posted again. Kafka
//! tells the bot which responses may be redeliveries (those already in a partition when the bot
//! was assigned it); for those the bot looks for its own reply to the question in the channel
//! and posts only what is missing. Pure matching lives in [`answered_parts`].

use std::time::Duration;

use rtfm_core::backoff::Backoff;
use serenity::all::{ChannelId, GetMessages, Http, Message, MessageId, MessageInteractionMetadata};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How far after the question the bot looks for its own answer (pages of 100 messages).
pub const MAX_CHECK_PAGES: usize = 20;

/// One page, retrying 429/5xx and transport errors (serenity's own rate limiter handles 429 in
/// production); any other refusal is an error.
pub async fn page(
    http: &Http,
    channel_id: ChannelId,
    request: GetMessages,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<Message>> {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        match channel_id.messages(http, request).await {
            Ok(page) => return Ok(page),
            Err(serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(
                response,
            ))) if response.status_code.as_u16() != 429 && response.status_code.as_u16() < 500 => {
                anyhow::bail!(
                    "Discord refused the history request: HTTP {} {}",
                    response.status_code,
                    response.error.message
                );
            }
            Err(err) => {
                warn!(error = %err, "history request failed; retrying");
                if !backoff.wait(shutdown).await {
                    anyhow::bail!("interrupted");
                }
            }
        }
    }
}

/// How many of `parts` the bot (`me`) already posted in answer to `original` (a message it
/// replied to, or the interaction it followed up), looking at up to [`MAX_CHECK_PAGES`] pages
/// of the channel after `original`.
pub async fn already_posted(
    http: &Http,
    channel_id: u64,
    original: u64,
    parts: &[String],
    shutdown: &CancellationToken,
) -> anyhow::Result<usize> {
    let me = http.get_current_user().await?.id.get();
    let channel = ChannelId::new(channel_id);
    let mut after = MessageId::new(original.max(1));
    let mut mine = Vec::new();
    for _ in 0..MAX_CHECK_PAGES {
        let mut batch = page(
            http,
            channel,
            GetMessages::new().after(after).limit(100),
            shutdown,
        )
        .await?;
        batch.sort_by_key(|message| message.id);
        let Some(last) = batch.last().map(|message| message.id) else {
            break;
        };
        let full = batch.len() == 100;
        mine.extend(
            batch
                .into_iter()
                .filter(|message| message.author.id.get() == me)
                .map(|message| OwnMessage::from(&message)),
        );
        let answered = answered_parts(&mine, original, parts);
        if answered == parts.len() || !full {
            return Ok(answered);
        }
        after = last;
    }
    Ok(answered_parts(&mine, original, parts))
}

/// What the check needs of one of the bot's own messages.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnMessage {
    pub content: String,
    /// The message it replies to (`message_reference`).
    pub reply_to: Option<u64>,
    /// The interaction it answers (`interaction_metadata`), for slash-command follow-ups.
    pub interaction: Option<u64>,
}

impl From<&Message> for OwnMessage {
    fn from(message: &Message) -> Self {
        Self {
            content: message.content.clone(),
            reply_to: crate::view::replies_to(message),
            interaction: message
                .interaction_metadata
                .as_deref()
                .and_then(|meta| match meta {
                    MessageInteractionMetadata::Command(command) => Some(command.id.get()),
                    _ => None,
                }),
        }
    }
}

/// Of `parts`, how many are already among `mine` (the bot's messages after `original`, oldest
/// first): the first part is the one that answers `original` with the same text, and each next
/// part is a later message of the bot with the next part's text.
///
/// The first part answers `original` when it replies to it or follows up its interaction — or
/// when it is a plain message with the same text: Discord posts a reply whose message was
/// deleted without the reference (`fail_if_not_exists: false`), and a slash answer whose token
/// expired goes to the channel as a plain message. A plain message of the bot's with exactly
/// the answer's text, after the question, is taken as that answer.
pub fn answered_parts(mine: &[OwnMessage], original: u64, parts: &[String]) -> usize {
    let Some(first) = parts.first() else {
        return 0;
    };
    let Some(start) = mine.iter().position(|message| {
        let plain = message.reply_to.is_none() && message.interaction.is_none();
        (plain || message.reply_to == Some(original) || message.interaction == Some(original))
            && &message.content == first
    }) else {
        return 0;
    };
    let mut answered = 1;
    for message in &mine[start + 1..] {
        match parts.get(answered) {
            Some(next) if &message.content == next => answered += 1,
            Some(_) => {}
            None => break,
        }
    }
    answered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(content: &str, reply_to: Option<u64>, interaction: Option<u64>) -> OwnMessage {
        OwnMessage {
            content: content.into(),
            reply_to,
            interaction,
        }
    }

    fn parts(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| text.to_string()).collect()
    }

    #[test]
    fn nothing_posted_means_nothing_answered() {
        assert_eq!(answered_parts(&[], 7, &parts(&["a"])), 0);
        let other = [own("a", Some(8), None), own("notice", Some(7), None)];
        assert_eq!(
            answered_parts(&other, 7, &parts(&["a"])),
            0,
            "a reply to another message, or a notice to this one, is not the answer"
        );
    }

    #[test]
    fn a_complete_answer_is_found_by_its_reply_or_its_interaction() {
        let reply = [own("a", Some(7), None)];
        assert_eq!(answered_parts(&reply, 7, &parts(&["a"])), 1);
        let followup = [own("a", None, Some(7))];
        assert_eq!(answered_parts(&followup, 7, &parts(&["a"])), 1);
        let plain = [own("a", None, None)];
        assert_eq!(
            answered_parts(&plain, 7, &parts(&["a"])),
            1,
            "posted without its reference (the question was deleted)"
        );
    }

    #[test]
    fn a_split_answer_cut_off_half_way_reports_the_parts_that_made_it() {
        let mine = [
            own("a", Some(7), None),
            own("answer to someone else", Some(9), None),
            own("b", None, None),
        ];
        assert_eq!(answered_parts(&mine, 7, &parts(&["a", "b", "c"])), 2);
        assert_eq!(answered_parts(&mine[..1], 7, &parts(&["a", "b", "c"])), 1);
    }
}
