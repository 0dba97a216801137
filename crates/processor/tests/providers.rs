//! A bad day at a provider is not bad data: the embedding API refusing the key for a while,
//! and a chat API answering 429 with a `Retry-After` that is not a number. Real Kafka and
//! Chroma, a fake model API as strict as the providers.

mod common;

use common::*;
use rtfm_core::TopicKind;
use test_support::eventually;
use test_support::fake_model::{Behaviour, FakeModel};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_embedding_key_refused_for_a_while_holds_ingestion_and_dead_letters_nothing() {
    let fake = FakeModel::start().await;
    // A rotated key: every embedding call answers 401 until the operator fixes it.
    fake.always(Behaviour::Fail(401));
    let total = 40u64;
    let messages: Vec<_> = (0..total)
        .map(|i| {
            message(
                8_900_000 + i,
                Some("1"),
                "11",
                &format!("hosted message {i}"),
                i as u32,
            )
        })
        .collect();
    let gemini = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &messages,
        &hosted_embedding_flags(
            &gemini,
            &[
                "--ingest-max-backoff-secs",
                "1",
                "--llm-provider",
                "extractive",
            ],
        ),
    )
    .await;
    let readyz = eventually(WAIT, "not ready, saying why", || async {
        let (status, body) = processor.readyz().await;
        (status == 503 && body.contains("HTTP 401")).then_some(body)
    })
    .await;
    assert!(readyz.contains("EMBEDDING_API_KEY"), "{readyz}");
    let refused = fake.requests().len();
    assert!(refused >= 1);
    // The operator fixes the key.
    fake.always(Behaviour::Answer(String::new()));
    processor.until_indexed(total as usize).await;
    let dead = rtfm_core::kafka::dead_letters::read_all(
        &processor.kafka,
        TopicKind::DiscordMessages,
        WAIT,
    )
    .await
    .expect("dead-letter topic readable");
    processor.stop().await;
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_that_is_not_a_number_is_ignored_and_the_question_answered() {
    let fake = FakeModel::start().await;
    // Before: `Duration::from_secs_f64(NaN)` panicked and the processor shut down.
    for value in ["NaN", "-1", "inf", "soon"] {
        fake.then(Behaviour::RetryAfter(value.to_string()));
    }
    fake.always(Behaviour::Answer("Rotate it with vaultctl [1].".into()));
    let base = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &[message(
            8_950_001,
            Some("1"),
            "11",
            "rotate keys with vaultctl",
            0,
        )],
        &[
            "--gemini-api-key",
            "k",
            "--gemini-base-url",
            &base,
            "--llm-max-retries",
            "4",
            "--llm-retry-base-ms",
            "10",
        ],
    )
    .await;
    processor.until_indexed(1).await;
    let answer = &processor.answer(8_950_002, "how do I rotate keys?").await;
    assert!(!answer.metadata.degraded, "the model answered: {answer:?}");
    assert!(answer.response_text.contains("vaultctl"), "{answer:?}");
    assert_eq!(fake.requests().len(), 5, "four refusals, then the answer");
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_embedding_key_shows_at_start_before_any_message_and_clears_when_fixed() {
    let fake = FakeModel::start().await;
    fake.always(Behaviour::Fail(401));
    let processor = TestProcessor::start(
        &[],
        &hosted_embedding_flags(&fake.gemini_base_url(), &["--llm-provider", "extractive"]),
    )
    .await;
    let readyz = eventually(WAIT, "not ready at start, saying why", || async {
        let (status, body) = processor.readyz().await;
        (status == 503 && body.contains("embedding: not ready")).then_some(body)
    })
    .await;
    assert!(readyz.contains("401"), "{readyz}");
    // The operator fixes the key: the check passes again without a restart or a message.
    fake.always(Behaviour::Answer(String::new()));
    eventually(WAIT, "ready once the key is accepted", || async {
        (processor.readyz().await.0 == 200).then_some(())
    })
    .await;
    processor.stop().await;
}
