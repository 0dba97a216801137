//! Credentials never resurface: people paste tokens, keys and passwords into support channels,
//! and whatever RTFM keeps it may quote to anyone later. [`redact`] replaces every credential
//! of a known format with `[redacted <kind>]` and leaves the rest of the text as it was, so the
//! message stays searchable. The bot redacts before it publishes (nothing reaches Kafka), and
//! the processor again before it embeds and stores (records published by anything else).
//!
//! What is recognised ([`KINDS`], each tested below with a made-up value of the real format):
//!
//! | kind | format |
//! |---|---|
//! | private key | a `-----BEGIN … PRIVATE KEY-----` block, to its END line (or the end of the text) |
//! | AWS key | access key ids `AKIA…`/`ASIA…` (20 characters) |
//! | Google API key | `AIza` + 35 characters |
//! | GitHub token | `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 or more, `github_pat_…` |
//! | GitLab token | `glpat-` + 20 or more |
//! | Slack token | `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxo-` …; Slack webhook URLs |
//! | Discord token | a bot token (three dot-separated base64url parts, the first 24–28 long); webhook URLs |
//! | OpenAI/Stripe key | `sk-…`/`sk-proj-…` (20 or more), `sk_live_…`, `rk_test_…` |
//! | JWT | `eyJ….eyJ….…` |
//! | bearer token | `Bearer ` + 20 or more token characters |
//! | password in a URL | `scheme://user:password@host`: the password only |
//! | assignment | `password=…`, `passwd: …`, `secret=…`, `api_key=…`, `token=…`, `client_secret: …` and the like: the value only |

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// One kind of credential: its name in the replacement, and its pattern. Where the pattern has
/// a group named `secret`, only that group is replaced (the rest is context worth keeping).
pub struct Kind {
    pub name: &'static str,
    pattern: Regex,
}

fn kind(name: &'static str, pattern: &str) -> Kind {
    Kind {
        name,
        // Constant patterns: they compile (the tests below run every one).
        pattern: Regex::new(pattern).expect("valid credential pattern"),
    }
}

/// Every kind, most specific first (a private key block before any token inside it).
pub static KINDS: LazyLock<Vec<Kind>> = LazyLock::new(|| {
    vec![
        kind(
            "private key",
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z ]*PRIVATE KEY-----|\z)",
        ),
        kind(
            "AWS key",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[0-9A-Z]{16}\b",
        ),
        kind("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}"),
        kind(
            "GitHub token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        ),
        kind("GitLab token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
        kind("Slack token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),
        kind(
            "Slack webhook",
            r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
        ),
        kind(
            "Discord webhook",
            r"https://(?:canary\.|ptb\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]+",
        ),
        kind(
            "Discord token",
            r"\b[A-Za-z0-9_\-]{24,28}\.[A-Za-z0-9_\-]{6,7}\.[A-Za-z0-9_\-]{27,40}\b",
        ),
        kind(
            "JWT",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ),
        kind(
            "API key",
            r"\b(?:sk-(?:proj-)?[A-Za-z0-9_\-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,})",
        ),
        kind(
            "bearer token",
            r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/\-]{20,}=*)",
        ),
        kind(
            "password",
            r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:(?P<secret>[^\s@/]+)@",
        ),
        kind(
            "secret",
            r#"(?i)\b[A-Za-z0-9_\-]*?(?:password|passwd|pwd|secret|api[_\-]?key|apikey|access[_\-]?key|access[_\-]?token|auth[_\-]?token|token|client[_\-]?secret|private[_\-]?key)\s*[:=]\s*(?P<secret>"[^"\n]+"|'[^'\n]+'|[^\s,;"'`]+)"#,
        ),
    ]
});

/// `text` with every credential replaced by `[redacted <kind>]` (borrowed when there was none).
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut current: Cow<'_, str> = Cow::Borrowed(text);
    for kind in KINDS.iter() {
        if !kind.pattern.is_match(&current) {
            continue;
        }
        let replacement = format!("[redacted {}]", kind.name);
        let replaced = kind
            .pattern
            .replace_all(&current, |captures: &regex::Captures<'_>| {
                match (captures.get(0), captures.name("secret")) {
                    (Some(whole), Some(secret)) => {
                        let start = secret.start() - whole.start();
                        let end = secret.end() - whole.start();
                        let whole = whole.as_str();
                        format!("{}{replacement}{}", &whole[..start], &whole[end..])
                    }
                    _ => replacement.clone(),
                }
            })
            .into_owned();
        current = Cow::Owned(replaced);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made-up values in each kind's real format (none of them is a live credential).
    const SAMPLES: &[(&str, &str)] = &[
        ("AWS key", "AKIAIOSFODNN7EXAMPLE"),
        ("Google API key", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
        ("GitHub token", "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"),
        ("GitHub token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
        ("GitLab token", "glpat-x1y2z3A4B5C6D7E8F9G0"),
        ("Slack token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
        ("Slack webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
        ("Discord webhook", "https://discord.com/api/webhooks/123456789012345678/AbCdEf-GhIjKl_MnOpQr"),
        ("Discord token", "MTA1MjM0NTY3ODkwMTIzNDU2Nw.GaBcDe.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
        ("JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ("API key", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
        ("API key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ];

    #[test]
    fn every_kind_is_replaced_and_the_rest_kept() {
        for (name, secret) in SAMPLES {
            let text = format!("here is mine: {secret} — does it work?");
            let redacted = redact(&text);
            assert!(!redacted.contains(secret), "{name}: {redacted}");
            assert_eq!(
                redacted,
                format!("here is mine: [redacted {name}] — does it work?"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_private_key_block_goes_whole_even_unterminated() {
        let block = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----";
        let text = format!("my key:\n{block}\nwhy is ssh refusing it?");
        assert_eq!(
            redact(&text),
            "my key:\n[redacted private key]\nwhy is ssh refusing it?"
        );
        let cut = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA";
        assert_eq!(redact(cut), "[redacted private key]");
    }

    #[test]
    fn only_the_secret_part_of_an_assignment_a_url_or_a_header_goes() {
        let cases = [
            (
                "DB_PASSWORD=hunter22 and it fails",
                "DB_PASSWORD=[redacted secret] and it fails",
            ),
            ("password: \"correct horse\"", "password: [redacted secret]"),
            (
                "client_secret = 'abc123'",
                "client_secret = [redacted secret]",
            ),
            (
                "api_key=abcdef, region=eu",
                "api_key=[redacted secret], region=eu",
            ),
            (
                "postgres://app:s3cr3t@db.internal:5432/app",
                "postgres://app:[redacted password]@db.internal:5432/app",
            ),
            (
                "curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345'",
                "curl -H 'Authorization: Bearer [redacted bearer token]'",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(redact(text), expected, "{text}");
        }
    }

    #[test]
    fn ordinary_chat_is_left_alone() {
        for text in [
            "how do I reset my password?",
            "the token expired, so I logged in again",
            "see https://docs.example.com/guide#setup and run make",
            "ids like 123456789012345678 are not secrets",
            "use `git push origin main`",
            "a sentence. Another one. And a third one here.",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        for (_, secret) in SAMPLES {
            let once = redact(secret).into_owned();
            assert_eq!(redact(&once), once);
        }
    }
}
