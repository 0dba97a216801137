use super::*;
use serde_json::json;

use test_support::repo::{
    documented_message as example_message, documented_query as example_query,
    documented_response as example_response, with, without,
};

fn round_trip<T: Record>(value: Value) -> Value {
    let bytes = serde_json::to_vec(&value).expect("test json");
    let record = T::decode(&bytes).expect("example payload decodes");
    serde_json::from_slice(&record.encode()).expect("encoded json")
}

fn decode_error<T: Record + std::fmt::Debug>(value: Value) -> String {
    let bytes = serde_json::to_vec(&value).expect("test json");
    T::decode(&bytes).expect_err("must be rejected").to_string()
}

#[test]
fn documented_examples_round_trip_unchanged() {
    assert_eq!(
        round_trip::<DiscordMessage>(example_message()),
        example_message()
    );
    assert_eq!(round_trip::<BotQuery>(example_query()), example_query());
    assert_eq!(
        round_trip::<BotResponse>(example_response()),
        example_response()
    );
}

#[test]
fn unknown_fields_are_tolerated_and_preserved() {
    let value = with(example_message(), "future_field", json!({"x": 1}));
    assert_eq!(round_trip::<DiscordMessage>(value.clone()), value);
    let mut response = example_response();
    response["metadata"]["temperature"] = json!(0.2);
    assert_eq!(round_trip::<BotResponse>(response.clone()), response);
}

#[test]
fn optional_objects_default_to_empty() {
    let message = DiscordMessage::decode(
        &serde_json::to_vec(&without(example_message(), "metadata")).expect("json"),
    )
    .expect("decodes");
    assert!(message.metadata.is_empty());
    let query =
        BotQuery::decode(&serde_json::to_vec(&without(example_query(), "context")).expect("json"))
            .expect("decodes");
    assert!(query.context.is_empty());
    let response = BotResponse::decode(
        &serde_json::to_vec(&without(example_response(), "metadata")).expect("json"),
    )
    .expect("decodes");
    assert_eq!(response.metadata, ResponseMetadata::default());
}

#[test]
fn naive_python_timestamps_are_accepted_as_utc() {
    let value = with(
        example_message(),
        "timestamp",
        json!("2025-11-02T12:34:56.789012"),
    );
    let bytes = serde_json::to_vec(&value).expect("json");
    let message = DiscordMessage::decode(&bytes).expect("naive timestamp decodes");
    assert_eq!(
        message.timestamp_utc().map(|t| t.to_rfc3339()),
        Some("2025-11-02T12:34:56.789012+00:00".to_string())
    );
    assert!(parse_timestamp("2025-11-02T12:34:56+02:00").is_some());
    assert!(parse_timestamp("2025-11-02T12:34:56").is_some());
}

#[test]
fn malformed_json_is_rejected_with_its_position() {
    let err = DiscordMessage::decode(b"{\"message_id\": ").expect_err("rejected");
    assert!(matches!(err, SchemaError::Json { .. }), "{err}");
}

#[test]
fn missing_field_is_rejected_naming_it() {
    let err = decode_error::<DiscordMessage>(without(example_message(), "content"));
    assert!(err.contains("content"), "{err}");
    let err = decode_error::<DiscordMessage>(without(example_message(), "username"));
    assert!(err.contains("username"), "{err}");
    let err = decode_error::<BotQuery>(without(example_query(), "question"));
    assert!(err.contains("question"), "{err}");
    let err = decode_error::<BotResponse>(without(example_response(), "response_text"));
    assert!(err.contains("response_text"), "{err}");
}

#[test]
fn wrong_type_is_rejected_naming_the_field() {
    let err = decode_error::<DiscordMessage>(with(example_message(), "user_id", json!(987654321)));
    assert!(err.contains("user_id"), "{err}");
    let err = decode_error::<BotResponse>(with(
        example_response(),
        "metadata",
        json!({"confidence": "high"}),
    ));
    assert!(err.contains("metadata.confidence"), "{err}");
}

#[test]
fn non_decimal_ids_are_rejected() {
    for field in ["message_id", "user_id", "channel_id"] {
        let err = decode_error::<DiscordMessage>(with(example_message(), field, json!("12a4")));
        assert!(err.contains(field) && err.contains("decimal"), "{err}");
    }
    let err = decode_error::<BotQuery>(with(example_query(), "original_message_id", json!("")));
    assert!(
        err.contains("original_message_id") && err.contains("empty"),
        "{err}"
    );
    let err = decode_error::<DiscordMessage>(with(example_message(), "guild_id", json!("-5")));
    assert!(err.contains("guild_id"), "{err}");
}

#[test]
fn ids_past_64_bits_are_rejected_loudly_and_the_largest_accepted() {
    let err = decode_error::<DiscordMessage>(with(
        example_message(),
        "channel_id",
        json!("18446744073709551616"),
    ));
    assert!(
        err.contains("channel_id") && err.contains("larger"),
        "{err}"
    );
    let largest = with(
        example_message(),
        "channel_id",
        json!("18446744073709551615"),
    );
    assert!(DiscordMessage::decode(&serde_json::to_vec(&largest).expect("json")).is_ok());
}

#[test]
fn query_and_response_ids_may_be_any_non_empty_string() {
    let query = with(
        example_query(),
        "query_id",
        json!("9d3c7c1e-3a51-4f6e-9c5e-0e1d2b3a4c5d"),
    );
    assert!(BotQuery::decode(&serde_json::to_vec(&query).expect("json")).is_ok());
    let err = decode_error::<BotQuery>(with(example_query(), "query_id", json!("  ")));
    assert!(err.contains("query_id"), "{err}");
    let err = decode_error::<BotResponse>(with(example_response(), "response_id", json!("")));
    assert!(err.contains("response_id"), "{err}");
}

#[test]
fn unparseable_timestamp_is_rejected() {
    let err =
        decode_error::<DiscordMessage>(with(example_message(), "timestamp", json!("yesterday")));
    assert!(
        err.contains("timestamp") && err.contains("ISO 8601"),
        "{err}"
    );
}

#[test]
fn content_over_discord_limit_is_rejected_not_truncated() {
    let at_limit = with(
        example_message(),
        "content",
        json!("é".repeat(MAX_CONTENT_CHARS)),
    );
    assert!(DiscordMessage::decode(&serde_json::to_vec(&at_limit).expect("json")).is_ok());
    let err = decode_error::<DiscordMessage>(with(
        example_message(),
        "content",
        json!("x".repeat(MAX_CONTENT_CHARS + 1)),
    ));
    assert!(err.contains("content") && err.contains("4001"), "{err}");
}

#[test]
fn visible_channels_are_ids_and_at_most_a_guilds_worth() {
    let listed = with(example_query(), "visible_channel_ids", json!(["1", "22"]));
    assert_eq!(round_trip::<BotQuery>(listed.clone()), listed);
    let query = BotQuery::decode(&serde_json::to_vec(&listed).expect("json")).expect("ok");
    assert_eq!(query.visible_channel_ids, Some(vec![1.into(), 22.into()]));
    let err = decode_error::<BotQuery>(with(
        example_query(),
        "visible_channel_ids",
        json!(["1", "general"]),
    ));
    assert!(err.contains("visible_channel_ids"), "{err}");
    let too_many: Vec<String> = (1..=MAX_VISIBLE_CHANNELS + 1)
        .map(|id| id.to_string())
        .collect();
    let err = decode_error::<BotQuery>(with(
        example_query(),
        "visible_channel_ids",
        json!(too_many),
    ));
    assert!(err.contains("more than 500"), "{err}");
    let err = decode_error::<BotQuery>(with(example_query(), "visible_channel_ids", json!("1")));
    assert!(err.contains("visible_channel_ids"), "{err}");
}

#[test]
fn question_over_limit_is_rejected() {
    let err = decode_error::<BotQuery>(with(
        example_query(),
        "question",
        json!("x".repeat(MAX_CONTENT_CHARS + 1)),
    ));
    assert!(err.contains("question"), "{err}");
}

#[test]
fn response_text_over_limit_is_rejected() {
    let err = decode_error::<BotResponse>(with(
        example_response(),
        "response_text",
        json!("x".repeat(MAX_RESPONSE_CHARS + 1)),
    ));
    assert!(
        err.contains("response_text") && err.contains("16000"),
        "{err}"
    );
}

#[test]
fn unknown_float_fields_round_trip_exactly() {
    // Found by the mutation fuzzer: without serde_json's `float_roundtrip` the last digits
    // of such a number changed on every decode/encode.
    let value = with(example_message(), "x_ratio", json!(1.250658860442029e-76));
    let once = DiscordMessage::decode(&serde_json::to_vec(&value).expect("json"))
        .expect("decodes")
        .encode();
    let twice = DiscordMessage::decode(&once).expect("decodes").encode();
    assert_eq!(once, twice);
}

#[test]
fn huge_records_are_rejected_before_parsing() {
    let bytes = vec![b' '; MAX_RECORD_BYTES + 1];
    assert_eq!(
        DiscordMessage::decode(&bytes),
        Err(SchemaError::TooLarge(MAX_RECORD_BYTES + 1))
    );
}

#[test]
fn edit_and_delete_events_travel_without_content_so_the_seeds_processor_skips_them() {
    // The seed's processor stores the `content` of every record it reads as a new message
    // (and skips one without it); an edit or a delete is not a new message.
    let delete = without(with(example_message(), "event", json!("delete")), "content");
    let message: DiscordMessage =
        DiscordMessage::decode(&serde_json::to_vec(&delete).expect("json")).expect("decodes");
    assert_eq!(message.event, MessageEvent::Delete);
    assert_eq!(round_trip::<DiscordMessage>(delete.clone()), delete);

    let edited = DiscordMessage {
        event: MessageEvent::Edit,
        content: "the new text".into(),
        ..DiscordMessage::decode(&serde_json::to_vec(&example_message()).expect("json"))
            .expect("decodes")
    };
    let wire: Value = serde_json::from_slice(&edited.encode()).expect("json");
    assert!(wire.get("content").is_none(), "{wire}");
    assert_eq!(wire["edited_content"], "the new text");
    assert_eq!(
        DiscordMessage::decode(&edited.encode()).expect("decodes"),
        edited,
        "decode gives the edit its text back as content"
    );
}

#[test]
fn a_created_message_without_text_keeps_its_empty_content_on_the_wire() {
    // Discord messages with only attachments have no text; they are still created messages.
    let value = with(example_message(), "content", json!(""));
    assert_eq!(round_trip::<DiscordMessage>(value.clone()), value);
}

#[test]
fn a_create_carrying_edited_content_keeps_its_content() {
    let value = with(example_message(), "edited_content", json!("something else"));
    let message: DiscordMessage =
        DiscordMessage::decode(&serde_json::to_vec(&value).expect("json")).expect("decodes");
    assert_eq!(message.content, "Hello, this is a test message");
}

#[test]
fn an_edit_in_the_earlier_form_with_content_still_decodes() {
    let value = with(example_message(), "event", json!("edit"));
    let message: DiscordMessage =
        DiscordMessage::decode(&serde_json::to_vec(&value).expect("json")).expect("decodes");
    assert_eq!(message.content, "Hello, this is a test message");
}

#[test]
fn an_edit_over_the_content_limit_is_rejected() {
    let value = with(
        with(example_message(), "event", json!("edit")),
        "edited_content",
        json!("x".repeat(MAX_CONTENT_CHARS + 1)),
    );
    let err = decode_error::<DiscordMessage>(without(value, "content"));
    assert!(err.contains("content"), "{err}");
}

proptest::proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = DiscordMessage::decode(&bytes);
        let _ = BotQuery::decode(&bytes);
        let _ = BotResponse::decode(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_json_strings(text in "\\PC{0,300}") {
        let _ = DiscordMessage::decode(text.as_bytes());
        let _ = BotQuery::decode(text.as_bytes());
        let _ = BotResponse::decode(text.as_bytes());
    }

    /// Well-formed JSON that is wrong in every way validation must catch: the documented
    /// payloads with fields removed, retyped, replaced by huge or odd Unicode strings, and
    /// extra fields added. The parser accepts all of it; validation decides.
    #[test]
    fn mutated_documented_payloads_are_validated_not_just_parsed(
        which in 0usize..3,
        mutations in proptest::collection::vec((0usize..16, mutation()), 1..5),
    ) {
        let original = [example_message(), example_query(), example_response()][which].clone();
        let mut value = original.clone();
        let fields: Vec<String> = original.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        for (index, mutation) in &mutations {
            let field = fields[index % fields.len()].clone();
            let object = value.as_object_mut().expect("object");
            match mutation {
                Mutation::Remove => {
                    object.remove(&field);
                }
                Mutation::Retype(new) => {
                    object.insert(field, new.clone());
                }
                Mutation::Text(text) => {
                    object.insert(field, Value::String(text.clone()));
                }
                Mutation::Extra(name, extra) => {
                    object.insert(name.clone(), extra.clone());
                }
            }
        }
        // What validation must refuse, judged on the final record.
        let mut must_fail = None;
        for field in &fields {
            let before = &original[field.as_str()];
            match value.get(field.as_str()) {
                None if !["metadata", "context"].contains(&field.as_str()) => {
                    must_fail = Some(format!("required `{field}` missing"));
                }
                None => {}
                Some(after) if before.is_string() && !after.is_string() => {
                    must_fail = Some(format!("string `{field}` is {after}"));
                }
                Some(after) if before.is_object() && !after.is_object() => {
                    must_fail = Some(format!("object `{field}` is {after}"));
                }
                Some(Value::String(text))
                    if field.ends_with("_id")
                        && field != "query_id"
                        && field != "response_id"
                        && !text.chars().all(|c| c.is_ascii_digit()) =>
                {
                    must_fail = Some(format!("id `{field}` = {text:?}"));
                }
                Some(_) => {}
            }
        }
        let bytes = serde_json::to_vec(&value).expect("json");
        let results = [
            DiscordMessage::decode(&bytes).map(|r| r.encode()),
            BotQuery::decode(&bytes).map(|r| r.encode()),
            BotResponse::decode(&bytes).map(|r| r.encode()),
        ];
        match &results[which] {
            Ok(encoded) => {
                proptest::prop_assert!(must_fail.is_none(), "accepted although {:?}: {value}", must_fail);
                // What is accepted round-trips to the same record.
                let again = match which {
                    0 => DiscordMessage::decode(encoded).map(|r| r.encode()),
                    1 => BotQuery::decode(encoded).map(|r| r.encode()),
                    _ => BotResponse::decode(encoded).map(|r| r.encode()),
                };
                proptest::prop_assert_eq!(again.as_ref(), Ok(encoded));
            }
            Err(err) => proptest::prop_assert!(!err.to_string().is_empty()),
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove,
    Retype(Value),
    Text(String),
    Extra(String, Value),
}

fn odd_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "\\PC{0,40}",
        // Right-to-left override, zero-width joiners, combining marks, emoji, NUL, BOM.
        proptest::sample::select(vec![
            "\u{202e}evil",
            "a\u{200d}b",
            "e\u{301}\u{301}\u{301}",
            "🦀🔥",
            "nul\u{0}byte",
            "\u{feff}bom",
            "",
            " ",
            "12345678901234567890123",
            "-1",
            "١٢٣",
        ])
        .prop_map(str::to_string),
        (1usize..20_000).prop_map(|n| "y".repeat(n)),
        "[0-9]{1,20}",
    ]
}

fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
    use proptest::prelude::*;
    let wrong_type = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
        Just(json!([1, "two"])),
        Just(json!({"nested": {"deeper": []}})),
        any::<f64>().prop_map(|f| json!(f)),
    ];
    prop_oneof![
        Just(Mutation::Remove),
        wrong_type.clone().prop_map(Mutation::Retype),
        odd_text().prop_map(Mutation::Text),
        (
            "[a-z_]{1,12}",
            prop_oneof![wrong_type, odd_text().prop_map(Value::String)]
        )
            .prop_map(|(name, value)| Mutation::Extra(format!("x_{name}"), value)),
    ]
}

#[test]
fn published_json_schemas_match_the_rust_types() {
    // docs/schemas/ is what a schema registry receives (init-topics registers the same
    // schemas); RTFM_UPDATE_SCHEMAS=1 rewrites it after a deliberate change of a wire type.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas");
    for (topic, schema) in [
        ("discord-messages", DiscordMessage::wire_schema()),
        ("bot-queries", BotQuery::wire_schema()),
        ("bot-responses", BotResponse::wire_schema()),
        ("rtfm-control", super::ControlRecord::wire_schema()),
    ] {
        let path = dir.join(format!("{topic}.schema.json"));
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&schema).expect("schema json")
        );
        if std::env::var_os("RTFM_UPDATE_SCHEMAS").is_some() {
            std::fs::create_dir_all(&dir).expect("docs/schemas");
            std::fs::write(&path, &text).expect("write schema");
        }
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            published,
            text,
            "{} is not the schema of the Rust type; after a deliberate change run \
             RTFM_UPDATE_SCHEMAS=1 cargo test -p rtfm-core published_json_schemas",
            path.display()
        );
    }
}

#[test]
fn schemas_require_the_contracts_fields_and_are_closed_but_their_free_maps_open() {
    let message = DiscordMessage::wire_schema();
    let required: Vec<&str> = message["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in [
        "message_id",
        "username",
        "user_id",
        "channel_id",
        "timestamp",
    ] {
        assert!(required.contains(&field), "{field}: {message}");
    }
    assert!(!required.contains(&"guild_id") && !required.contains(&"content"));
    // Closed: BACKWARD then admits an added optional field (an open schema refuses it).
    assert_eq!(message["additionalProperties"], json!(false), "{message}");
    assert_eq!(message["title"], "discord-messages");
    assert_ne!(
        message["properties"]["metadata"]["additionalProperties"],
        json!(false),
        "{message}"
    );
}
