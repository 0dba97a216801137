//! The processor with a hosted model (Gemini, an OpenAI-compatible server) faked: what it is
//! sent, what it answers, and the breaker that labels the fallback when the model fails.

mod common;

use std::time::Duration;

use common::*;
use test_support::fake_model::{Behaviour, FakeModel};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gemini_receives_key_model_and_quoted_sources_and_its_answer_is_published() {
    let fake = FakeModel::start().await;
    fake.always(Behaviour::Answer("Rotate it with vaultctl [2].".into()));
    let base = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &conversation(),
        &[
            "--gemini-api-key",
            "test-gemini-key-123",
            "--gemini-base-url",
            &base,
        ],
    )
    .await;
    processor.until_indexed(5).await;

    processor
        .ask(7_200_001, "how do I rotate the deploy key?")
        .await;
    let mut reader = ResponseReader::new(&processor.kafka);
    reader.until("the answer", |seen| !seen.is_empty()).await;
    let answer = &reader.seen[0];
    assert!(
        answer
            .response_text
            .starts_with("Rotate it with vaultctl [2]."),
        "{}",
        answer.response_text
    );
    assert_eq!(answer.metadata.provider.as_deref(), Some("gemini"));
    assert_eq!(answer.metadata.model, "gemini-2.5-flash");
    assert!(!answer.metadata.degraded);
    assert_eq!(answer.metadata.source_message_ids.len(), 1);
    assert!(
        answer
            .response_text
            .contains("<https://discord.com/channels/1/11/"),
        "{}",
        answer.response_text
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        request
            .headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok()),
        Some("test-gemini-key-123")
    );
    let prompt = request.body["contents"][0]["parts"][0]["text"]
        .as_str()
        .expect("prompt text");
    assert!(
        prompt.contains("vaultctl rotate --key deploy --force"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Question: \"how do I rotate the deploy key?\""),
        "{prompt}"
    );
    assert!(request.body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .expect("system")
        .contains("chat history"));
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openai_compatible_model_is_called_with_bearer_key_and_model_name() {
    let fake = FakeModel::start().await;
    let base = fake.openai_base_url();
    let processor = TestProcessor::start(
        &conversation(),
        &[
            "--llm-provider",
            "openai",
            "--openai-base-url",
            &base,
            "--openai-model",
            "qwen2.5",
            "--openai-api-key",
            "sk-test-openai",
        ],
    )
    .await;
    processor.until_indexed(5).await;
    let answer = processor.answer(7_300_001, "deploy key rotation?").await;
    assert_eq!(answer.metadata.provider.as_deref(), Some("openai"));
    assert_eq!(answer.metadata.model, "qwen2.5");
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["model"], "qwen2.5");
    assert_eq!(
        request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk-test-openai")
    );
    assert_eq!(request.body["messages"][0]["role"], "system");
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_model_trips_the_breaker_and_users_get_labelled_extractive_answers() {
    let fake = FakeModel::start().await;
    fake.always(Behaviour::Fail(500));
    let base = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &conversation(),
        &breaker_flags(
            &base,
            &[
                "--llm-breaker-threshold",
                "2",
                "--llm-breaker-cooldown-secs",
                "3600",
            ],
        ),
    )
    .await;
    processor.until_indexed(5).await;
    for i in 0..4 {
        processor
            .ask(7_400_001 + i, "how do I rotate the deploy key?")
            .await;
    }
    let mut reader = ResponseReader::new(&processor.kafka);
    reader.until("four answers", |seen| seen.len() >= 4).await;
    for answer in &reader.seen {
        assert!(answer.metadata.degraded, "{answer:?}");
        assert_eq!(answer.metadata.provider.as_deref(), Some("extractive"));
        assert!(
            answer
                .response_text
                .starts_with("⚠️ The language model is unavailable"),
            "{}",
            answer.response_text
        );
        assert!(answer.response_text.contains("vaultctl"));
    }
    // Two answers × (1 try + 1 retry) reach the model; then the breaker is open.
    assert_eq!(
        fake.requests().len(),
        4,
        "the breaker stops calls after the threshold"
    );
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_that_recovers_is_used_again_after_the_breaker_cooldown() {
    let fake = FakeModel::start().await;
    fake.then(Behaviour::RateLimit(0));
    fake.then(Behaviour::Stall(Duration::from_secs(5)));
    fake.always(Behaviour::Answer("Use vaultctl [2].".into()));
    let base = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &conversation(),
        &breaker_flags(
            &base,
            &[
                "--llm-timeout-secs",
                "1",
                "--llm-breaker-threshold",
                "1",
                "--llm-breaker-cooldown-secs",
                "2",
            ],
        ),
    )
    .await;
    processor.until_indexed(5).await;
    let mut reader = ResponseReader::new(&processor.kafka);
    // 429 then a stall past the 1 s timeout: the answer falls back and the breaker opens.
    processor
        .ask(7_500_001, "how do I rotate the deploy key?")
        .await;
    reader
        .until("the degraded answer", |seen| !seen.is_empty())
        .await;
    assert!(reader.seen[0].metadata.degraded);
    // While open: no model call.
    processor
        .ask(7_500_002, "how do I rotate the deploy key?")
        .await;
    reader
        .until("the second answer", |seen| seen.len() >= 2)
        .await;
    assert!(reader.seen[1].metadata.degraded);
    assert_eq!(fake.requests().len(), 2);
    // After the cooldown the half-open probe succeeds and the breaker closes.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    processor
        .ask(7_500_003, "how do I rotate the deploy key?")
        .await;
    reader
        .until("the third answer", |seen| seen.len() >= 3)
        .await;
    assert!(!reader.seen[2].metadata.degraded, "{:?}", reader.seen[2]);
    assert_eq!(reader.seen[2].metadata.provider.as_deref(), Some("gemini"));
    processor.stop().await;
}

/// Gemini at `base` with one retry 10 ms apart, and `extra` (the breaker's settings).
fn breaker_flags<'a>(base: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec![
        "--gemini-api-key",
        "k",
        "--gemini-base-url",
        base,
        "--llm-max-retries",
        "1",
        "--llm-retry-base-ms",
        "10",
    ];
    flags.extend_from_slice(extra);
    flags
}
