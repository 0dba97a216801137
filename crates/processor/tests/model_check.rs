//! The answering model's key and name are checked at start (a test binary of its own: the
//! check's gauge is process-wide). Real Kafka and Chroma, a fake Gemini.

mod common;

use common::*;
use test_support::fake_model::{Behaviour, FakeModel};
use test_support::{eventually, http_get, metric_value};

async fn accepted(processor: &TestProcessor) -> Option<f64> {
    let (_, metrics) = http_get(&format!("http://{}/metrics", processor.http_addr)).await?;
    metric_value(&metrics, "rtfm_model_accepted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_model_key_shows_at_start_answers_stay_extractive_and_it_clears_when_fixed() {
    let fake = FakeModel::start().await;
    fake.always(Behaviour::Fail(401));
    let base = fake.gemini_base_url();
    let processor = TestProcessor::start(
        &[],
        &[
            "--gemini-api-key",
            "rotated-key-123",
            "--gemini-base-url",
            &base,
        ],
    )
    .await;
    eventually(WAIT, "the refusal seen at start", || async {
        (accepted(&processor).await? == 0.0).then_some(())
    })
    .await;
    let (status, body) = processor.readyz().await;
    assert_eq!(status, 200, "answers still work (extractively): {body}");
    assert_eq!(
        fake.requests().len(),
        0,
        "no question was needed to find out"
    );

    // The operator fixes the key: the check passes again without a restart.
    fake.always(Behaviour::Answer("Rotate it with vaultctl [2].".into()));
    eventually(WAIT, "the key accepted", || async {
        (accepted(&processor).await? == 1.0).then_some(())
    })
    .await;
    assert!(fake.model_checks() >= 2);
    processor.stop().await;
}
