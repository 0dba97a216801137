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
        .env_remove("SCHEMA_REGISTRY_URL")
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
        8,
        "four topics and four DLQs:\n{text}"
    );
    let messages = format!("discord-messages{suffix}");
    assert!(line_for(&text, &messages).ends_with("created"), "{text}");
    // The community's choices: compacted, kept for ever, one partition.
    let control = line_for(&text, &format!("rtfm-control{suffix}"));
    assert!(
        control.contains("partitions=1") && control.contains("retention.ms=-1"),
        "{text}"
    );

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

#[test]
fn with_wait_secs_a_broker_that_comes_up_late_is_waited_for() {
    let broker = services::PrivateKafka::start();
    broker.stop();
    let suffix = unique_suffix();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_init-topics"))
        .args([
            "--bootstrap-servers",
            &broker.bootstrap,
            "--action",
            "create",
        ])
        .args(["--wait-secs", "120"])
        .env("KAFKA_TOPIC_SUFFIX", &suffix)
        .env("KAFKA_REQUEST_TIMEOUT_SECS", "3")
        .env_remove("SCHEMA_REGISTRY_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("init-topics runs");
    // The broker comes back once init-topics is waiting for it.
    let started = Instant::now();
    while !std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .contains("waiting for the Kafka broker")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "init-topics never waited"
        );
        assert!(
            child.try_wait().expect("status").is_none(),
            "init-topics gave up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.resume();
    let output = child.wait_with_output().expect("init-topics ends");
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("created"), "{output:?}");
}

mod schema_registry {
    //! Against a real schema registry (Apicurio Registry 3.0.9 from Maven Central, started by
    //! `scripts/registry.sh`), through its Confluent-compatible API.

    use super::*;
    use rtfm_core::{BotQuery, BotResponse, DiscordMessage, Record};
    use serde_json::{json, Value};

    fn create_with_registry(bootstrap: &str, suffix: &str, registry: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_init-topics"))
            .args(["--bootstrap-servers", bootstrap, "--action", "create"])
            .env("KAFKA_TOPIC_SUFFIX", suffix)
            .env("KAFKA_REQUEST_TIMEOUT_SECS", "5")
            .env("SCHEMA_REGISTRY_URL", registry)
            .env("RUST_LOG", "error")
            .output()
            .expect("init-topics runs")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    /// Every registered version of `subject`, oldest first (none: empty).
    async fn versions(registry: &str, subject: &str) -> Vec<Value> {
        let url = format!("{registry}/subjects/{subject}/versions");
        let response = client().get(&url).send().await.expect("registry answers");
        if response.status().as_u16() == 404 {
            return Vec::new();
        }
        let numbers: Vec<i64> = response.json().await.expect("version list");
        let mut schemas = Vec::new();
        for number in numbers {
            let url = format!("{registry}/subjects/{subject}/versions/{number}");
            let version: Value = client()
                .get(&url)
                .send()
                .await
                .expect("registry answers")
                .json()
                .await
                .expect("version");
            let text = version["schema"].as_str().expect("schema text");
            schemas.push(serde_json::from_str(text).expect("schema json"));
        }
        schemas
    }

    /// Registers `schema` as an earlier deployment would have (the registry's default
    /// compatibility, which checks nothing on a new subject).
    async fn preregister(registry: &str, subject: &str, schema: &Value) {
        let response = client()
            .post(format!("{registry}/subjects/{subject}/versions"))
            .json(&json!({"schemaType": "JSON", "schema": schema.to_string()}))
            .send()
            .await
            .expect("registry answers");
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    async fn compatibility(registry: &str, subject: &str) -> Value {
        client()
            .get(format!("{registry}/config/{subject}"))
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("config")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_registers_each_topics_schema_with_backward_compatibility_once() {
        let registry = services::schema_registry_url();
        let bootstrap = services::kafka_bootstrap();
        let suffix = unique_suffix();
        let first = create_with_registry(&bootstrap, &suffix, &registry);
        assert!(first.status.success(), "{first:?}");
        let text = stdout(&first);
        for (topic, schema) in [
            ("discord-messages", DiscordMessage::wire_schema()),
            ("bot-queries", BotQuery::wire_schema()),
            ("bot-responses", BotResponse::wire_schema()),
        ] {
            let subject = format!("{topic}{suffix}-value");
            assert!(line_for(&text, &subject).contains("schema id="), "{text}");
            assert_eq!(versions(&registry, &subject).await, vec![schema]);
            let config = compatibility(&registry, &subject).await;
            assert!(config.to_string().contains("BACKWARD"), "{config}");
        }
        // Again: nothing new is registered, the same ids come back.
        let second = create_with_registry(&bootstrap, &suffix, &registry);
        assert!(second.status.success(), "{second:?}");
        let subject = format!("discord-messages{suffix}-value");
        assert_eq!(versions(&registry, &subject).await.len(), 1);
        let ids = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|line| line.contains("schema id="))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(ids(&text), ids(&stdout(&second)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_field_added_since_the_registered_schema_is_accepted_as_a_new_version() {
        let registry = services::schema_registry_url();
        let bootstrap = services::kafka_bootstrap();
        let suffix = unique_suffix();
        // An earlier RTFM, before `edited_content` existed.
        let subject = format!("discord-messages{suffix}-value");
        let mut earlier = DiscordMessage::wire_schema();
        earlier["properties"]
            .as_object_mut()
            .expect("properties")
            .remove("edited_content");
        preregister(&registry, &subject, &earlier).await;
        let output = create_with_registry(&bootstrap, &suffix, &registry);
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            versions(&registry, &subject).await,
            vec![earlier, DiscordMessage::wire_schema()]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schema_change_that_would_break_consumers_is_refused_and_nothing_registered() {
        let registry = services::schema_registry_url();
        let bootstrap = services::kafka_bootstrap();
        let suffix = unique_suffix();
        // An earlier deployment's schema in which message ids were numbers: our string ids
        // would break its consumers.
        let subject = format!("discord-messages{suffix}-value");
        let mut earlier = DiscordMessage::wire_schema();
        earlier["properties"]["message_id"] = json!({"type": "integer"});
        preregister(&registry, &subject, &earlier).await;
        let output = create_with_registry(&bootstrap, &suffix, &registry);
        assert!(!output.status.success(), "{output:?}");
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(
            errors.contains(&format!("refused the new schema of {subject}"))
                && errors.contains("BACKWARD"),
            "{errors}"
        );
        assert_eq!(
            versions(&registry, &subject).await,
            vec![earlier],
            "nothing registered"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stricter_level_an_operator_chose_is_kept() {
        let registry = services::schema_registry_url();
        let bootstrap = services::kafka_bootstrap();
        let suffix = unique_suffix();
        let subject = format!("bot-queries{suffix}-value");
        let set = client()
            .put(format!("{registry}/config/{subject}"))
            .json(&json!({"compatibility": "FULL_TRANSITIVE"}))
            .send()
            .await
            .expect("registry answers");
        assert!(set.status().is_success());
        let output = create_with_registry(&bootstrap, &suffix, &registry);
        assert!(output.status.success(), "{output:?}");
        let config = compatibility(&registry, &subject).await;
        assert!(config.to_string().contains("FULL_TRANSITIVE"), "{config}");
    }

    #[test]
    fn an_unreachable_registry_is_a_clear_error_naming_it() {
        let bootstrap = services::kafka_bootstrap();
        let suffix = unique_suffix();
        let dead = format!("http://127.0.0.1:{}", test_support::free_port());
        let output = create_with_registry(&bootstrap, &suffix, &dead);
        assert!(!output.status.success());
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(
            errors.contains(&dead) && errors.contains("unreachable"),
            "{errors}"
        );
    }
}
