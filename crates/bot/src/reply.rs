//! Splitting an answer into Discord messages (pure).
//!
//! Discord allows 2 000 characters per message. Answers are split on paragraph, then line,
//! then word boundaries; a fenced code block cut by a split is closed at the end of one part and
//! reopened (with its language) at the start of the next, so each part renders correctly.

/// Discord's per-message limit, in characters.
pub const DISCORD_LIMIT: usize = 2_000;

/// Splits `text` into parts of at most `limit` characters.
pub fn split_reply(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(64);
    // A wrapped line plus a reopened fence and a closing fence always fit in one part.
    let max_line = limit - FENCE_ROOM;
    let mut parts = Vec::new();
    let mut part = Part::default();
    for line in hard_wrapped_lines(text, max_line) {
        let after = toggle(part.end_fence(), &line);
        while !part.lines.is_empty() && part.len_with(&line, after.is_some()) > limit {
            parts.push(part.flush(limit / 2));
        }
        part.lines.push(line);
    }
    if part.lines.iter().any(|line| !line.trim().is_empty()) {
        let open = part.end_fence();
        let mut last = part.render(&part.lines);
        if open.is_some() {
            last.push_str("\n```");
        }
        parts.push(last);
    }
    parts
}

/// Room kept for a reopened fence (with a language tag) and a closing fence.
const FENCE_ROOM: usize = 24;

/// The part being filled: the fence open when it starts, and its lines.
#[derive(Default)]
struct Part {
    start_fence: Option<String>,
    lines: Vec<String>,
}

impl Part {
    fn fence_after(&self, count: usize) -> Option<String> {
        self.lines[..count]
            .iter()
            .fold(self.start_fence.clone(), |state, line| toggle(state, line))
    }

    fn end_fence(&self) -> Option<String> {
        self.fence_after(self.lines.len())
    }

    fn render(&self, lines: &[String]) -> String {
        let mut text = String::new();
        if let Some(fence) = &self.start_fence {
            text.push_str(fence);
            text.push('\n');
        }
        text.push_str(&lines.join("\n"));
        text
    }

    /// Characters of this part with `line` added, plus a closing fence if one will be open.
    fn len_with(&self, line: &str, fence_open: bool) -> usize {
        let start = self
            .start_fence
            .as_ref()
            .map_or(0, |fence| fence.chars().count() + 1);
        let body: usize = self.lines.iter().map(|l| l.chars().count() + 1).sum();
        start + body + line.chars().count() + if fence_open { 4 } else { 0 }
    }

    /// Takes a finished part off the front: up to the last blank line if that keeps at least
    /// `min_len` characters, else everything. What stays continues the next part.
    fn flush(&mut self, min_len: usize) -> String {
        let mut cut = self.lines.len();
        let mut rest_from = cut;
        if let Some(blank) = self.lines.iter().rposition(|line| line.trim().is_empty()) {
            let head_len: usize = self.lines[..blank]
                .iter()
                .map(|l| l.chars().count() + 1)
                .sum();
            if blank > 0 && head_len >= min_len {
                cut = blank;
                rest_from = blank + 1;
            }
        }
        let open = self.fence_after(cut);
        let mut text = self.render(&self.lines[..cut]);
        if open.is_some() {
            text.push_str("\n```");
        }
        let rest = self.lines.split_off(rest_from);
        *self = Part {
            start_fence: open,
            lines: rest,
        };
        text
    }
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// The fence state after `line`: a fence line opens (remembering its tag) or closes a block.
fn toggle(state: Option<String>, line: &str) -> Option<String> {
    if !is_fence(line) {
        return state;
    }
    match state {
        Some(_) => None,
        None => {
            let tag: String = line.trim().chars().take(FENCE_ROOM - 8).collect();
            Some(tag)
        }
    }
}

/// The lines of `text`, each at most `max` characters (long lines wrap at spaces when possible).
fn hard_wrapped_lines(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let mut rest: Vec<char> = line.chars().collect();
        while rest.len() > max {
            let cut = rest[..max]
                .iter()
                .rposition(|c| *c == ' ')
                .filter(|&i| i > max / 2)
                .unwrap_or(max);
            lines.push(rest[..cut].iter().collect());
            let skip = if cut < rest.len() && rest[cut] == ' ' {
                cut + 1
            } else {
                cut
            };
            rest = rest[skip..].to_vec();
        }
        lines.push(rest.into_iter().collect());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fences_balanced(part: &str) -> bool {
        part.lines().filter(|line| is_fence(line)).count() % 2 == 0
    }

    #[test]
    fn short_answers_stay_whole() {
        assert_eq!(
            split_reply("hello\n\nworld", DISCORD_LIMIT),
            vec!["hello\n\nworld".to_string()]
        );
    }

    #[test]
    fn a_five_thousand_character_answer_splits_on_paragraphs_under_the_limit() {
        let paragraph = "word ".repeat(99).trim_end().to_string(); // 494 chars
        let text = vec![paragraph.clone(); 10].join("\n\n"); // ~4 960 chars
        let parts = split_reply(&text, DISCORD_LIMIT);
        assert_eq!(parts.len(), 3);
        for part in &parts {
            assert!(part.chars().count() <= DISCORD_LIMIT);
            assert!(
                part.starts_with("word") && part.ends_with("word"),
                "splits at paragraph boundaries: {part:?}"
            );
        }
        let rejoined: String = parts.join("\n\n");
        assert_eq!(rejoined, text);
    }

    #[test]
    fn code_blocks_are_closed_and_reopened_across_parts() {
        let code: String = (0..120)
            .map(|i| format!("let value_{i} = compute({i});\n"))
            .collect();
        let text = format!("Here is the fix:\n```rust\n{code}```\nDone.");
        let parts = split_reply(&text, DISCORD_LIMIT);
        assert!(parts.len() >= 2);
        for part in &parts {
            assert!(
                part.chars().count() <= DISCORD_LIMIT,
                "{}",
                part.chars().count()
            );
            assert!(fences_balanced(part), "unbalanced: {part}");
        }
        assert!(parts[1].starts_with("```rust\n"), "{}", &parts[1][..40]);
    }

    #[test]
    fn one_huge_line_is_wrapped() {
        let parts = split_reply(&"x".repeat(5_000), DISCORD_LIMIT);
        assert!(parts.len() >= 3);
        assert!(parts
            .iter()
            .all(|part| part.chars().count() <= DISCORD_LIMIT));
        assert_eq!(parts.concat().len(), 5_000);
    }

    proptest::proptest! {
        #[test]
        fn every_part_fits_and_fences_balance(text in "(\\PC{0,80}\n|```\n|\n\n){0,120}") {
            let parts = split_reply(&text, 300);
            for part in &parts {
                proptest::prop_assert!(part.chars().count() <= 300, "{} chars", part.chars().count());
                proptest::prop_assert!(fences_balanced(part), "unbalanced part {:?}", part);
            }
        }
    }
}
