//! Where the real services are. `scripts/test.sh` starts them and exports their addresses; when
//! a developer runs `cargo test` by hand, the address files the scripts write under
//! `.rtfm/run/` are read instead. A missing or dead service is a test failure that says how to
//! start it.

use std::path::PathBuf;

use rtfm_core::kafka::admin::Admin;
use rtfm_core::kafka::KafkaConfig;

const HOW_TO_START: &str = "start the services with `scripts/kafka.sh start` and \
`scripts/chroma.sh start` (or run the whole suite with `scripts/test.sh`)";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// `KEY` from the environment, else from `.rtfm/run/<file>` written by the start scripts.
fn address(key: &str, file: &str) -> Option<String> {
    if let Ok(value) = std::env::var(key) {
        if !value.is_empty() {
            return Some(value);
        }
    }
    let run_dir = std::env::var("RTFM_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".rtfm/run"));
    let text = std::fs::read_to_string(run_dir.join(file)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

/// The bootstrap address of the real broker.
pub fn kafka_bootstrap() -> String {
    address("KAFKA_BOOTSTRAP_SERVERS", "kafka.env").unwrap_or_else(|| {
        panic!("KAFKA_BOOTSTRAP_SERVERS is not set and no broker was started: {HOW_TO_START}")
    })
}

/// The URL of the real Chroma server.
pub fn chroma_url() -> String {
    address("CHROMA_URL", "chroma.env").unwrap_or_else(|| {
        panic!("CHROMA_URL is not set and no Chroma server was started: {HOW_TO_START}")
    })
}

/// The Confluent-compatible API of the real schema registry (Apicurio Registry) that
/// `scripts/test.sh` starts (`scripts/registry.sh start`).
pub fn schema_registry_url() -> String {
    address("SCHEMA_REGISTRY_URL", "registry.env").unwrap_or_else(|| {
        panic!("SCHEMA_REGISTRY_URL is not set and no registry was started: run scripts/registry.sh start (scripts/test.sh does)")
    })
}

/// A config with a private topic suffix whose topics (and DLQs) exist on the real broker.
pub async fn kafka_with_topics() -> KafkaConfig {
    let config = KafkaConfig::new(kafka_bootstrap()).with_topic_suffix(crate::unique_suffix());
    broker_ready(&config).await;
    create_topics(&config).await;
    config
}

/// Creates `config`'s topics (and DLQs) on its broker, replication factor 1.
pub async fn create_topics(config: &KafkaConfig) {
    Admin::connect(config)
        .await
        .unwrap_or_else(|err| panic!("cannot reach the Kafka broker: {err}; {HOW_TO_START}"))
        .create(1, false)
        .await
        .unwrap_or_else(|err| panic!("cannot create test topics: {err}"));
}

/// Once per test binary: waits until the broker serves consumer groups and transactions. A
/// broker that has just started creates its internal topics on first use, which takes seconds;
/// without this barrier the first test to join a group pays for it inside its own timeouts.
pub async fn broker_ready(config: &KafkaConfig) {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            rtfm_core::kafka::group::wait_for_coordinators(
                config,
                std::time::Duration::from_secs(120),
            )
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "the Kafka broker never served groups and transactions: {err}; {HOW_TO_START}"
                )
            });
        })
        .await;
}

/// A private Kafka broker (for tests that restart it), run by `scripts/kafka.sh` in its own
/// run directory. Stopped on drop.
pub struct PrivateKafka {
    run_dir: PathBuf,
    pub bootstrap: String,
}

impl PrivateKafka {
    pub fn start() -> Self {
        let run_dir = std::env::temp_dir().join(format!("rtfm-kafka-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&run_dir).expect("run dir");
        let mut kafka = Self {
            run_dir,
            bootstrap: String::new(),
        };
        kafka.script("start");
        let text = std::fs::read_to_string(kafka.run_dir.join("kafka.env")).expect("kafka.env");
        let bootstrap = text
            .lines()
            .find_map(|line| line.strip_prefix("KAFKA_BOOTSTRAP_SERVERS="))
            .expect("bootstrap address")
            .to_string();
        kafka.bootstrap = bootstrap;
        kafka
    }

    fn script(&self, action: &str) {
        let status = std::process::Command::new(workspace_root().join("scripts/kafka.sh"))
            .arg(action)
            .env("RTFM_RUN_DIR", &self.run_dir)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("scripts/kafka.sh runs");
        assert!(status.success(), "scripts/kafka.sh {action} failed");
    }

    /// Stops the broker (SIGTERM, like an operator's restart) and starts it again on the same
    /// port and data.
    pub fn restart(&self) {
        self.script("restart");
    }

    pub fn stop(&self) {
        self.script("stop");
    }

    /// Starts a stopped broker again on the same port and data.
    pub fn resume(&self) {
        self.script("resume");
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = std::process::Command::new(workspace_root().join("scripts/kafka.sh"))
            .arg("stop")
            .env("RTFM_RUN_DIR", &self.run_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Waits until consumer group `group` (base name) has committed past every `(partition,
/// offset)` of `kind`'s topic. Our consumers commit an offset only after its effect (an upsert,
/// a Discord post) happened, so this is a barrier for "everything for these records is done",
/// where a sleep would only be a guess.
pub async fn until_group_passed(
    config: &KafkaConfig,
    group: &str,
    kind: rtfm_core::TopicKind,
    positions: &[(i32, i64)],
    timeout: std::time::Duration,
) {
    crate::eventually(
        timeout,
        &format!(
            "group {group} to commit past {} positions of {kind:?}",
            positions.len()
        ),
        || async {
            group_passed(config, group, kind, positions)
                .await
                .then_some(())
        },
    )
    .await;
}

/// Whether group `group` (base name) has committed past every `(partition, offset)` of
/// `kind`'s topic now (false when the offsets cannot be read).
pub async fn group_passed(
    config: &KafkaConfig,
    group: &str,
    kind: rtfm_core::TopicKind,
    positions: &[(i32, i64)],
) -> bool {
    let Ok(committed) = rtfm_core::kafka::group::committed_offsets(config, group, kind).await
    else {
        return false;
    };
    positions
        .iter()
        .all(|(partition, offset)| committed.get(partition).is_some_and(|next| next > offset))
}

/// Waits (at most `timeout`) until `kind`'s dead-letter topic holds at least `count` records;
/// returns them all (so the caller can assert there are not more).
pub async fn until_dead_lettered(
    kafka: &KafkaConfig,
    kind: rtfm_core::TopicKind,
    count: usize,
    timeout: std::time::Duration,
) -> Vec<rtfm_core::kafka::dead_letters::DeadLetter> {
    let what = format!("{count} dead letters of {}", kafka.topics().name(kind));
    crate::eventually(timeout, &what, || async {
        let dead = rtfm_core::kafka::dead_letters::read_all(kafka, kind, timeout)
            .await
            .ok()?;
        (dead.len() >= count).then_some(dead)
    })
    .await
}

/// Waits until group `group` has committed past every record now on `T`'s topic; returns how
/// many valid records that was (a snapshot read, so the caller can assert the count).
pub async fn until_group_passed_all<T: rtfm_core::Record>(
    config: &KafkaConfig,
    group: &str,
    timeout: std::time::Duration,
) -> usize {
    let positions: Vec<(i32, i64)> =
        rtfm_core::kafka::dead_letters::read_records::<T>(config, timeout)
            .await
            .unwrap_or_else(|err| panic!("cannot read the topic back: {err}"))
            .into_iter()
            .map(|(partition, offset, _)| (partition, offset))
            .collect();
    until_group_passed(config, group, T::TOPIC, &positions, timeout).await;
    positions.len()
}
