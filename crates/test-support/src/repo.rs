//! What the tests read from the repository itself: its files (deployment files, scripts), the
//! public corpus of `eval/`, and the contract's documented example payloads.

use std::path::PathBuf;

use serde_json::{json, Value};

/// The workspace's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the repository, by its path from the root; panics naming it if it cannot be read.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The message texts of the public IRC corpus (`eval/ubuntu-irc-qa/corpus.jsonl`), in order.
pub fn corpus_texts() -> Vec<String> {
    read("eval/ubuntu-irc-qa/corpus.jsonl")
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|value| value["content"].as_str().map(str::to_string))
        .collect()
}

/// The contract's documented `discord-messages` payload (DESIGN.md, "Wire schemas").
pub fn documented_message() -> Value {
    json!({"message_id": "1234567890", "content": "Hello, this is a test message", "username": "user#1234",
     "user_id": "987654321", "channel_id": "111222333", "timestamp": "2025-11-02T12:34:56.789Z",
     "metadata": {"channel_name": "general"}})
}

/// The contract's documented `bot-queries` payload.
pub fn documented_query() -> Value {
    json!({"query_id": "query_abc123", "original_message_id": "1234567890", "question": "what is the API endpoint?",
     "username": "user#1234", "user_id": "987654321", "channel_id": "111222333",
     "timestamp": "2025-11-02T12:34:56.789Z", "context": {}})
}

/// The contract's documented `bot-responses` payload.
pub fn documented_response() -> Value {
    json!({"response_id": "response_xyz789", "query_id": "query_abc123", "original_message_id": "1234567890",
     "response_text": "The API endpoint is /api/v1/data", "channel_id": "111222333",
     "timestamp": "2025-11-02T12:34:57.123Z",
     "metadata": {"model": "gemini-2.5-flash", "confidence": 0.95, "sources_count": 3}})
}

/// `value` with `field` set to `new`.
pub fn with(mut value: Value, field: &str, new: Value) -> Value {
    value[field] = new;
    value
}

/// `value` without `field`.
pub fn without(mut value: Value, field: &str) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove(field);
    }
    value
}
