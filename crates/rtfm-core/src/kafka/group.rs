//! The group side of the broker: waiting until its group and transaction coordinators exist,
//! and reading a consumer group's committed offsets.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::util::Timeout;

use crate::kafka::admin::AdminError;
use crate::kafka::config::KafkaConfig;
use crate::kafka::error::ClientError;

/// Waits until the broker can serve consumer groups and transactions, i.e. until its internal
/// `__consumer_offsets` and `__transaction_state` topics exist and have leaders.
///
/// Why: a broker creates them lazily, on the first group or transaction request, and on a
/// freshly started broker (slow, cold JVM) that takes seconds during which every group join and
/// `init_transactions` is answered "coordinator not available". `init-topics --action create`
/// calls this so the first processor does not pay for it; the test suite calls it once per
/// broker so no test's timing includes the broker's first minute.
pub async fn wait_for_coordinators(
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<(), AdminError> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::TopicPartitionList;

    let deadline = std::time::Instant::now() + timeout;
    let bootstrap = config.bootstrap_servers.clone();
    let unreachable = |source: ClientError| AdminError::Unreachable {
        bootstrap: bootstrap.clone(),
        timeout,
        source,
    };
    // Group coordinator: fetching committed offsets needs it (and creates __consumer_offsets).
    let group_config = config.clone();
    let topic = config
        .topics()
        .name(crate::topics::TopicKind::DiscordMessages);
    let groups = tokio::task::spawn_blocking(move || -> Result<(), KafkaError> {
        let consumer: BaseConsumer = group_config
            .client_config("coordinator-check")
            .set(
                "group.id",
                format!("rtfm-coordinator-check-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .create()?;
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&topic, 0);
        loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            match consumer.committed_offsets(
                partitions.clone(),
                Timeout::After(remaining.max(Duration::from_millis(500))),
            ) {
                Ok(_) => return Ok(()),
                Err(err) if std::time::Instant::now() >= deadline => return Err(err),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    })
    .await
    .map_err(|_| unreachable(ClientError::canceled()))?;
    groups.map_err(|err| unreachable(err.into()))?;

    // Transaction coordinator: registering a transactional id needs it (and creates
    // __transaction_state).
    let transactional_id = format!("rtfm-coordinator-check-{}", uuid::Uuid::new_v4());
    loop {
        match crate::kafka::TransactionalProducer::new(config, &transactional_id).await {
            Ok(_) => return Ok(()),
            Err(err) if std::time::Instant::now() >= deadline => {
                return Err(AdminError::Unreachable {
                    bootstrap: config.bootstrap_servers.clone(),
                    timeout,
                    source: match err {
                        crate::kafka::TransactionError::Create { source, .. } => source,
                        _ => ClientError::canceled(),
                    },
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The offsets consumer group `group` (base name; the topic suffix is appended) has committed on
/// the topic of `kind`, by partition; partitions without a commit are absent.
///
/// A barrier for tests and operators: once a group has committed past a record, everything the
/// group does for that record (an upsert, a Discord post) has happened, because our consumers
/// store an offset only after its effect is durable.
pub async fn committed_offsets(
    config: &KafkaConfig,
    group: &str,
    kind: crate::topics::TopicKind,
) -> Result<HashMap<i32, i64>, AdminError> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::TopicPartitionList;

    let topics = config.topics();
    let topic = topics.name(kind);
    let group_id = topics.group(group);
    let client_config = config.clone();
    let timeout = config.request_timeout();
    let bootstrap = config.bootstrap_servers.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<HashMap<i32, i64>, KafkaError> {
        // Never subscribes: an OffsetFetch does not join the group or disturb its members.
        let consumer: BaseConsumer = client_config
            .client_config("offset-reader")
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Timeout::After(timeout))?;
        let mut partitions = TopicPartitionList::new();
        for meta in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(&topic, meta.id());
        }
        let committed = consumer.committed_offsets(partitions, Timeout::After(timeout))?;
        let offsets = committed
            .elements()
            .iter()
            .filter_map(|e| {
                e.offset()
                    .to_raw()
                    .filter(|o| *o >= 0)
                    .map(|o| (e.partition(), o))
            })
            .collect();
        Ok(offsets)
    })
    .await
    .map_err(|_| AdminError::Request {
        bootstrap: bootstrap.clone(),
        source: ClientError::canceled(),
    })?;
    result.map_err(|source| AdminError::Request {
        bootstrap,
        source: source.into(),
    })
}
