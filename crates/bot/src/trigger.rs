//! Trigger detection and question extraction (pure).
//!
//! A message triggers RTFM when it contains one of the trigger phrases (the seed's `rtfm` and
//! `Read The F***ing Manual`, any case) **as whole words** — "rtfm" inside "artfmx" does not —
//! or mentions the bot. The question is the message with the trigger removed, trimmed.

use regex::Regex;

/// The seed's reply to a trigger without a question.
pub const USAGE_HINT: &str =
    "Ask me something and I'll look it up in what this channel already said: \
`rtfm how do I rotate the API key?` (or mention me, or use `/rtfm question:`).";

/// The default trigger phrases.
pub const DEFAULT_TRIGGERS: &str = "rtfm,Read The F***ing Manual";

/// Compiled trigger phrases.
#[derive(Debug, Clone)]
pub struct Triggers {
    phrases: Regex,
}

/// What a triggering message asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// Not a trigger.
    None,
    /// A trigger with nothing after it: answer with the usage hint.
    Empty,
    Question(String),
}

impl Triggers {
    /// `phrases`: comma-separated. Fails only when no phrase is given.
    pub fn new(phrases: &str) -> Result<Self, String> {
        let alternatives: Vec<String> = phrases
            .split(',')
            .map(str::trim)
            .filter(|phrase| !phrase.is_empty())
            .map(|phrase| {
                // Whitespace inside a phrase matches any run of whitespace.
                phrase
                    .split_whitespace()
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join(r"\s+")
            })
            .collect();
        if alternatives.is_empty() {
            return Err("RTFM_TRIGGERS must name at least one phrase".to_string());
        }
        // "Whole word": not preceded or followed by a word character. The regex crate has no
        // look-around, so the boundary characters are matched and kept when cutting.
        let pattern = format!(r"(?i)(^|[^\w])({})([^\w]|$)", alternatives.join("|"));
        let phrases = Regex::new(&pattern).map_err(|err| format!("RTFM_TRIGGERS: {err}"))?;
        Ok(Self { phrases })
    }

    /// Detects a trigger in `content`; `bot_id` enables the mention trigger.
    pub fn detect(&self, content: &str, bot_id: Option<u64>) -> Detected {
        let mut text = content.to_string();
        let mut triggered = false;
        if let Some(bot_id) = bot_id {
            for mention in [format!("<@{bot_id}>"), format!("<@!{bot_id}>")] {
                if text.contains(&mention) {
                    text = text.replace(&mention, " ");
                    triggered = true;
                }
            }
        }
        if let Some(found) = self.phrases.captures(&text) {
            // Group 2 is the phrase itself; keep the boundary characters around it.
            if let Some(phrase) = found.get(2) {
                text = format!("{} {}", &text[..phrase.start()], &text[phrase.end()..]);
                triggered = true;
            }
        }
        if !triggered {
            return Detected::None;
        }
        let question = clean_question(&text);
        if question.is_empty() {
            Detected::Empty
        } else {
            Detected::Question(question)
        }
    }
}

/// Trims whitespace and the punctuation people put after a trigger ("rtfm: …", "rtfm, …").
fn clean_question(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '-' | '—'))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triggers() -> Triggers {
        Triggers::new(DEFAULT_TRIGGERS).expect("default triggers")
    }

    #[test]
    fn the_phrase_in_any_case_triggers_and_is_removed() {
        for text in [
            "rtfm how do I rotate the key?",
            "RTFM how do I rotate the key?",
            "Rtfm: how do I rotate the key?",
            "how do I rotate the key? rtfm",
        ] {
            assert_eq!(
                triggers().detect(text, None),
                Detected::Question("how do I rotate the key?".into()),
                "{text}"
            );
        }
        assert_eq!(
            triggers().detect("read the f***ing manual where is the config", None),
            Detected::Question("where is the config".into())
        );
        assert_eq!(
            triggers().detect("Read  The F***ing Manual, where is the config", None),
            Detected::Question("where is the config".into())
        );
    }

    #[test]
    fn only_whole_words_trigger() {
        for text in [
            "artfmx is a tool",
            "rtfmx",
            "xrtfm",
            "rtfm_bot says hi",
            "nothing here",
        ] {
            assert_eq!(triggers().detect(text, None), Detected::None, "{text}");
        }
        assert_eq!(
            triggers().detect("(rtfm) where?", None),
            Detected::Question("( ) where?".into())
        );
    }

    #[test]
    fn a_mention_of_the_bot_triggers() {
        assert_eq!(
            triggers().detect("<@42> where are the docs?", Some(42)),
            Detected::Question("where are the docs?".into())
        );
        assert_eq!(
            triggers().detect("<@!42> where are the docs?", Some(42)),
            Detected::Question("where are the docs?".into())
        );
        assert_eq!(
            triggers().detect("<@43> where are the docs?", Some(42)),
            Detected::None
        );
    }

    #[test]
    fn a_trigger_without_a_question_is_empty() {
        for text in ["rtfm", "  RTFM  ", "rtfm:", "<@42>"] {
            assert_eq!(triggers().detect(text, Some(42)), Detected::Empty, "{text}");
        }
    }

    #[test]
    fn custom_triggers_replace_the_defaults() {
        let custom = Triggers::new("docs please, halp").expect("valid");
        assert_eq!(
            custom.detect("halp the build fails", None),
            Detected::Question("the build fails".into())
        );
        assert_eq!(
            custom.detect("DOCS   please: where?", None),
            Detected::Question("where?".into())
        );
        assert_eq!(custom.detect("rtfm where?", None), Detected::None);
        assert!(Triggers::new(" , ").is_err());
    }

    proptest::proptest! {
        #[test]
        fn detection_never_panics(text in "\\PC{0,200}", bot in proptest::option::of(0u64..100)) {
            let _ = triggers().detect(&text, bot);
        }
    }
}
