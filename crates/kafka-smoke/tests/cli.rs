//! `kafka-smoke` against the real broker and against a dead port.

use std::process::{Command, Output};

use test_support::services;

fn smoke(bootstrap: &str, suffix: &str, test: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-smoke"))
        .args(["--bootstrap-servers", bootstrap, "--test", test])
        .env("KAFKA_TOPIC_SUFFIX", suffix)
        .env("KAFKA_REQUEST_TIMEOUT_SECS", "5")
        .env("RUST_LOG", "error")
        .output()
        .expect("kafka-smoke runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn all_topics_pass_against_the_real_broker() {
    let config = services::kafka_with_topics().await;
    let output = smoke(&config.bootstrap_servers, &config.topic_suffix, "all");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for topic in ["discord-messages", "bot-queries", "bot-responses"] {
        assert!(
            stdout.lines().any(|line| line.starts_with("PASS")
                && line.contains(topic)
                && line.contains(" ms")),
            "{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_topic_can_be_selected() {
    let config = services::kafka_with_topics().await;
    let output = smoke(&config.bootstrap_servers, &config.topic_suffix, "queries");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("bot-queries"));
}

#[test]
fn a_dead_port_fails_clearly() {
    let address = format!("127.0.0.1:{}", test_support::free_port());
    let output = smoke(&address, "", "all");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&address) && stderr.contains("unreachable"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_topics_fail_the_smoke_test() {
    // Topics were never created for this suffix and auto-creation is off on the broker.
    let output = smoke(
        &services::kafka_bootstrap(),
        &test_support::unique_suffix(),
        "discord",
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("FAIL"));
}
