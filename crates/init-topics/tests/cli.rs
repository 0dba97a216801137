//! `init-topics` as users run it, against the real broker.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use test_support::{services, unique_suffix};

fn init_topics(bootstrap: &str, suffix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_init-topics"))
        .args(["--bootstrap-servers", bootstrap])
        .args(args)
        .env("KAFKA_TOPIC_SUFFIX", suffix)
        .env("KAFKA_REQUEST_TIMEOUT_SECS", "5")
        .env("RUST_LOG", "error")
        .output()
        .expect("init-topics runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn line_for<'a>(text: &'a str, topic: &str) -> &'a str {
    text.lines()
        .find(|line| line.split_whitespace().next() == Some(topic))
        .unwrap_or_else(|| panic!("no line for {topic} in:\n{text}"))
}

#[test]
fn create_is_idempotent_and_list_and_delete_see_the_same_topics() {
    let bootstrap = services::kafka_bootstrap();
    let suffix = unique_suffix();

    let first = init_topics(&bootstrap, &suffix, &["--action", "create"]);
    assert!(first.status.success(), "{first:?}");
    let text = stdout(&first);
    assert_eq!(
        text.lines().count(),
        6,
        "three topics and three DLQs:\n{text}"
    );
    let messages = format!("discord-messages{suffix}");
    assert!(line_for(&text, &messages).ends_with("created"), "{text}");

    let second = init_topics(&bootstrap, &suffix, &["--action", "create"]);
    assert!(second.status.success(), "{second:?}");
    let text = stdout(&second);
    for line in text.lines() {
        assert!(
            line.ends_with("exists"),
            "second create changes nothing: {line}"
        );
    }

    let listed = init_topics(&bootstrap, &suffix, &["--action", "list"]);
    assert!(listed.status.success());
    let text = stdout(&listed);
    assert!(
        line_for(&text, &messages).contains("partitions=3")
            && line_for(&text, &messages).contains("retention.ms=604800000"),
        "{text}"
    );
    let queries = format!("bot-queries{suffix}");
    assert!(
        line_for(&text, &queries).contains("retention.ms=86400000"),
        "{text}"
    );
    let responses = format!("bot-responses{suffix}");
    assert!(
        line_for(&text, &responses).contains("partitions=3"),
        "{text}"
    );
    let dlq = format!("bot-responses{suffix}.dlq");
    assert!(
        line_for(&text, &dlq).contains("retention.ms=604800000"),
        "{text}"
    );

    let deleted = init_topics(&bootstrap, &suffix, &["--action", "delete"]);
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(line_for(&stdout(&deleted), &messages).ends_with("deleted"));
    // Deletion is asynchronous on the broker; list until it shows them gone.
    let started = Instant::now();
    loop {
        let listed = stdout(&init_topics(&bootstrap, &suffix, &["--action", "list"]));
        if listed.lines().all(|line| line.ends_with("missing")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "topics still listed:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn delete_leaves_topics_that_are_not_ours_alone() {
    let bootstrap = services::kafka_bootstrap();
    let ours = unique_suffix();
    let theirs = unique_suffix();
    assert!(init_topics(&bootstrap, &ours, &["--action", "create"])
        .status
        .success());
    assert!(init_topics(&bootstrap, &theirs, &["--action", "create"])
        .status
        .success());
    assert!(init_topics(&bootstrap, &ours, &["--action", "delete"])
        .status
        .success());
    let listed = stdout(&init_topics(&bootstrap, &theirs, &["--action", "list"]));
    assert!(
        listed.lines().all(|line| line.ends_with("exists")),
        "{listed}"
    );
}

#[test]
fn create_with_fix_repairs_drifted_retention() {
    let bootstrap = services::kafka_bootstrap();
    let suffix = unique_suffix();
    assert!(init_topics(&bootstrap, &suffix, &["--action", "create"])
        .status
        .success());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let topic = format!("bot-queries{suffix}");
    runtime.block_on(async {
        let config = rtfm_core::kafka::KafkaConfig::new(&bootstrap).with_topic_suffix(&suffix);
        let admin = rtfm_core::kafka::admin::Admin::connect(&config)
            .await
            .expect("admin");
        admin.set_retention(&topic, 1_000).await.expect("alter");
    });
    let report = stdout(&init_topics(&bootstrap, &suffix, &["--action", "create"]));
    assert!(
        line_for(&report, &topic).contains("drifted: retention.ms 1000 → 86400000"),
        "{report}"
    );
    let report = stdout(&init_topics(
        &bootstrap,
        &suffix,
        &["--action", "create", "--fix"],
    ));
    assert!(line_for(&report, &topic).contains("fixed"), "{report}");
    let listed = stdout(&init_topics(&bootstrap, &suffix, &["--action", "list"]));
    assert!(
        line_for(&listed, &topic).contains("retention.ms=86400000"),
        "{listed}"
    );
}

#[test]
fn an_unreachable_broker_fails_fast_naming_the_address() {
    // A port nothing listens on.
    let address = format!("127.0.0.1:{}", test_support::free_port());
    let started = Instant::now();
    let output = init_topics(&address, "", &["--action", "create"]);
    let elapsed = started.elapsed();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&address) && stderr.contains("unreachable"),
        "{stderr}"
    );
    // Bounded: the request timeout is 5 s here; allow generous slack for a loaded machine.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}
