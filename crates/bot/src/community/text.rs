//! What the members' and moderators' commands say: receipts, the channel list, refusals, and
//! which reactions and forum tags mark an answer (pure).

use chrono::Utc;
use rtfm_core::control::{ChannelPolicy, ControlState};
use rtfm_core::schema::Subject;

/// Reactions that mark an answer.
pub(super) const SOLVED_EMOJI: [&str; 3] = ["✅", "✔️", "☑️"];

/// Whether a forum tag says the post is solved.
pub fn is_solved_tag(name: &str) -> bool {
    let name = name.to_lowercase();
    ["solved", "answered", "resolved", "fixed"]
        .iter()
        .any(|word| name.contains(word))
        && !name.contains("unsolved")
        && !name.contains("unanswered")
        && !name.contains("unresolved")
}

/// Discord's limit on a message's content.
pub(super) const CONTENT_LIMIT: usize = 2000;

pub const IN_A_SERVER: &str =
    "This command works in a server: run it there (RTFM keeps its choices per server).";
pub const NOT_A_MODERATOR: &str =
    "Only members who can manage this server choose which channels RTFM reads. Nothing changed.";
pub const NOT_RECORDED: &str = "Your choice could not be recorded just now (RTFM's message bus is unreachable). Nothing changed; please try again in a few minutes.";
pub const NAME_A_CHANNEL: &str =
    "Name the channel: `/rtfm-admin channels action:exclude channel:#…`. Nothing changed.";

pub(super) fn clip(text: &str) -> String {
    if text.chars().count() <= CONTENT_LIMIT {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(CONTENT_LIMIT - 1).collect();
    clipped.push('…');
    clipped
}

/// The receipt's text.
pub fn receipt_text(subject: Subject, removed: u64, at: chrono::DateTime<Utc>) -> String {
    let when = at.format("%Y-%m-%d %H:%M UTC");
    let messages = if removed == 1 { "message" } else { "messages" };
    match subject {
        Subject::Member(_) => format!(
            "🧾 Receipt: RTFM removed {removed} of your {messages} from its index of this server ({when}). \
             It neither indexes nor quotes your messages here from now on; `/rtfm remember-me` resumes for new ones."
        ),
        Subject::Channel(channel) => format!(
            "🧾 Receipt: RTFM removed {removed} {messages} of <#{channel}> (and its threads) from its index ({when})."
        ),
        Subject::Guild => format!("🧾 Receipt: RTFM removed {removed} {messages} of this server ({when})."),
    }
}

/// `/rtfm-admin channels action:list`.
pub fn channel_list(state: &ControlState, policy: ChannelPolicy, guild: u64) -> String {
    let mut text = match policy {
        ChannelPolicy::All => {
            "RTFM reads every channel it can see, except those excluded (`INDEX_CHANNELS=all`)."
                .to_string()
        }
        ChannelPolicy::OptIn => {
            "RTFM reads only the channels a moderator included (`INDEX_CHANNELS=opt-in`)."
                .to_string()
        }
    };
    let chosen = state.channels_of(guild.into());
    let line = |indexed: bool| {
        chosen
            .iter()
            .filter(|(_, choice)| choice.indexed == indexed)
            .map(|(channel, choice)| {
                format!(
                    "<#{channel}> ({}, {})",
                    choice.reason.as_deref().unwrap_or("chosen"),
                    choice.at.format("%Y-%m-%d")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (label, indexed) in [("Included", true), ("Excluded", false)] {
        let listed = line(indexed);
        if !listed.is_empty() {
            text.push_str(&format!("\n**{label}:** {listed}"));
        }
    }
    if chosen.is_empty() {
        text.push_str("\nNo channel chosen yet.");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtfm_core::ControlRecord;

    #[test]
    fn receipts_and_lists_say_what_happened_in_plain_words() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T22:41:00Z")
            .expect("time")
            .to_utc();
        let receipt = receipt_text(Subject::Member(7.into()), 37, at);
        assert!(receipt.contains("removed 37 of your messages"), "{receipt}");
        assert!(receipt.contains("2026-12-07 22:41 UTC"), "{receipt}");
        assert!(receipt_text(Subject::Channel(9.into()), 1, at).contains("1 message of <#9>"));
        let mut state = ControlState::default();
        state.apply(&ControlRecord::channel(
            1.into(),
            10.into(),
            false,
            "excluded by a moderator",
        ));
        state.apply(&ControlRecord::channel(
            1.into(),
            11.into(),
            true,
            "included by a moderator",
        ));
        state.apply(&ControlRecord::channel(
            2.into(),
            12.into(),
            false,
            "excluded by a moderator",
        ));
        let list = channel_list(&state, ChannelPolicy::All, 1);
        assert!(list.contains("**Excluded:** <#10>"), "{list}");
        assert!(list.contains("**Included:** <#11>"), "{list}");
        assert!(!list.contains("<#12>"), "another guild's choice: {list}");
        assert!(
            channel_list(&ControlState::default(), ChannelPolicy::OptIn, 1)
                .contains("No channel chosen yet")
        );
        for tag in ["Solved", "✅ answered", "Resolved!"] {
            assert!(is_solved_tag(tag), "{tag}");
        }
        for tag in ["unsolved", "Unanswered", "question", "bug"] {
            assert!(!is_solved_tag(tag), "{tag}");
        }
        assert_eq!(clip(&"x".repeat(3000)).chars().count(), CONTENT_LIMIT);
    }
}
