//! The JSON Schemas RTFM publishes (docs/schemas/, and what `init-topics` registers with a
//! schema registry), checked by the reference Python validator (`jsonschema`, installed by
//! `scripts/seed_clients.sh`): the seed's documented payloads and what the seed's bot really
//! writes are valid; records that break the contract are not.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rtfm_core::{BotQuery, BotResponse, DiscordMessage, Record};
use serde_json::{json, Value};
use test_support::repo::{
    documented_message as message, documented_query as query, documented_response as response,
    with, without,
};

fn validator_dir() -> PathBuf {
    let cache = std::env::var("RTFM_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/rtfm")
        });
    let dir = cache.join("seed-clients/jsonschema-4.23.0");
    assert!(
        dir.join(".complete").exists(),
        "jsonschema is not installed in {}: run scripts/seed_clients.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// One verdict per payload: "valid" or "invalid: …".
fn validate(schema: &Value, payloads: &[Value]) -> Vec<String> {
    let mut schema_file = tempfile::NamedTempFile::new().expect("temp file");
    schema_file
        .write_all(schema.to_string().as_bytes())
        .expect("write schema");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seed_clients/validate.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(schema_file.path())
        .env("PYTHONPATH", validator_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    for payload in payloads {
        writeln!(stdin, "{payload}").expect("write payload");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("validator ends");
    assert!(
        output.status.success(),
        "validate.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(verdicts.len(), payloads.len(), "one verdict per payload");
    verdicts
}

#[test]
fn the_seeds_documented_and_real_payloads_are_valid() {
    let messages = [
        message(),
        // What the seed's bot.py writes: aware and naive isoformat() timestamps, "DM".
        with(
            message(),
            "timestamp",
            json!("2025-11-02T12:34:56.789012+00:00"),
        ),
        with(
            with(message(), "timestamp", json!("2025-11-02T12:34:56.789012")),
            "metadata",
            json!({"channel_name": "DM"}),
        ),
        // Ours: added fields, an edit and a delete as they travel.
        with(message(), "guild_id", json!("42")),
        with(
            with(without(message(), "content"), "event", json!("edit")),
            "edited_content",
            json!("new text"),
        ),
        with(without(message(), "content"), "event", json!("delete")),
        // A field a newer producer adds.
        // metadata is a free map.
        with(
            message(),
            "metadata",
            json!({"channel_name": "general", "x": [1, 2]}),
        ),
    ];
    for verdict in validate(&DiscordMessage::wire_schema(), &messages) {
        assert_eq!(verdict, "valid");
    }
    let queries = [
        query(),
        with(query(), "timestamp", json!("2025-11-02T12:34:56.789012")),
    ];
    for verdict in validate(&BotQuery::wire_schema(), &queries) {
        assert_eq!(verdict, "valid");
    }
    for verdict in validate(&BotResponse::wire_schema(), &[response()]) {
        assert_eq!(verdict, "valid");
    }
}

#[test]
fn records_that_break_the_contract_are_invalid() {
    let broken_messages = [
        with(message(), "message_id", json!(1234567890)),
        without(message(), "username"),
        with(message(), "content", json!(["not", "text"])),
        with(message(), "event", json!("renamed")),
        with(message(), "metadata", json!("general")),
        // A created message without its text.
        without(message(), "content"),
        // A field no registered schema has yet: its producer registers the schema first.
        with(message(), "some_future_field", json!({"x": 1})),
    ];
    for (payload, verdict) in broken_messages
        .iter()
        .zip(validate(&DiscordMessage::wire_schema(), &broken_messages))
    {
        assert!(verdict.starts_with("invalid"), "{payload} was {verdict}");
    }
    let broken_queries = [
        without(query(), "question"),
        with(query(), "context", json!([])),
    ];
    for verdict in validate(&BotQuery::wire_schema(), &broken_queries) {
        assert!(verdict.starts_with("invalid"), "{verdict}");
    }
    let broken_responses = [with(
        response(),
        "metadata",
        json!({"model": "m", "confidence": "high", "sources_count": 3}),
    )];
    for verdict in validate(&BotResponse::wire_schema(), &broken_responses) {
        assert!(verdict.starts_with("invalid"), "{verdict}");
    }
}
