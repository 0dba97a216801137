//! Topic administration for `init-topics`: create (idempotent), list, delete (ours only), and
//! repair drifted retention. Every call is bounded by the config's request timeout, so an
//! unreachable broker is a fast, clear error rather than a hang.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::kafka::error::ClientError;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::util::Timeout;

use crate::kafka::config::KafkaConfig;
use crate::topics::Topics;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "Kafka broker at {bootstrap} is unreachable (no metadata within {timeout:?}): {source}"
    )]
    Unreachable {
        bootstrap: String,
        timeout: Duration,
        source: ClientError,
    },
    #[error("admin request to {bootstrap} failed: {source}")]
    Request {
        bootstrap: String,
        source: ClientError,
    },
    #[error("topic `{topic}`: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// What happened to (or what we found about) one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    Created,
    Exists,
    /// Exists, but its `retention.ms` or partition count differs from the table.
    Drifted(String),
    /// Its `retention.ms` was changed back to the table's value (`--fix`).
    Fixed(String),
    Missing,
    Deleted,
}

impl fmt::Display for TopicStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicStatus::Created => f.write_str("created"),
            TopicStatus::Exists => f.write_str("exists"),
            TopicStatus::Drifted(what) => write!(f, "exists, drifted: {what}"),
            TopicStatus::Fixed(what) => write!(f, "exists, fixed: {what}"),
            TopicStatus::Missing => f.write_str("missing"),
            TopicStatus::Deleted => f.write_str("deleted"),
        }
    }
}

/// One line of `init-topics` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    pub name: String,
    pub partitions: Option<i32>,
    pub retention_ms: Option<i64>,
    pub status: TopicStatus,
}

/// A connected admin client for our topics.
pub struct Admin {
    client: Arc<AdminClient<DefaultClientContext>>,
    topics: Topics,
    bootstrap: String,
    timeout: Duration,
}

impl Admin {
    /// Connects and proves the broker answers a metadata request within the request timeout.
    pub async fn connect(config: &KafkaConfig) -> Result<Self, AdminError> {
        let timeout = config.request_timeout();
        let bootstrap = config.bootstrap_servers.clone();
        let client: AdminClient<DefaultClientContext> = config
            .client_config("init-topics")
            .create()
            .map_err(|source: KafkaError| AdminError::Request {
                bootstrap: bootstrap.clone(),
                source: source.into(),
            })?;
        let admin = Self {
            client: Arc::new(client),
            topics: config.topics(),
            bootstrap,
            timeout,
        };
        admin.existing().await?;
        Ok(admin)
    }

    /// Our topics that exist, with their partition counts.
    async fn existing(&self) -> Result<HashMap<String, i32>, AdminError> {
        let client = Arc::clone(&self.client);
        let timeout = self.timeout;
        let metadata = tokio::task::spawn_blocking(move || {
            client
                .inner()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .map(|topic| (topic.name().to_string(), topic.partitions().len() as i32))
                        .collect::<HashMap<_, _>>()
                })
        })
        .await
        .map_err(|_| AdminError::Request {
            bootstrap: self.bootstrap.clone(),
            source: ClientError::canceled(),
        })?;
        metadata.map_err(|source| AdminError::Unreachable {
            bootstrap: self.bootstrap.clone(),
            timeout: self.timeout,
            source: source.into(),
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    fn request_error(&self, source: KafkaError) -> AdminError {
        AdminError::Request {
            bootstrap: self.bootstrap.clone(),
            source: source.into(),
        }
    }

    /// `retention.ms` of each named topic.
    async fn retention(&self, names: &[String]) -> Result<HashMap<String, i64>, AdminError> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let specifiers: Vec<ResourceSpecifier<'_>> = names
            .iter()
            .map(|name| ResourceSpecifier::Topic(name))
            .collect();
        let results = self
            .client
            .describe_configs(specifiers.iter(), &self.options())
            .await
            .map_err(|source| self.request_error(source))?;
        let mut retention = HashMap::new();
        for (name, result) in names.iter().zip(results) {
            let resource = result.map_err(|code| AdminError::Topic {
                topic: name.clone(),
                code,
            })?;
            if let Some(value) = resource
                .get("retention.ms")
                .and_then(|entry| entry.value.as_deref())
                .and_then(|value| value.parse().ok())
            {
                retention.insert(name.clone(), value);
            }
        }
        Ok(retention)
    }

    /// Creates the missing topics; reports existing ones, and with `fix` resets drifted
    /// `retention.ms`. Running it twice leaves the same state.
    pub async fn create(
        &self,
        replication_factor: i32,
        fix: bool,
    ) -> Result<Vec<TopicReport>, AdminError> {
        let existing = self.existing().await?;
        let wanted = self.topics.all();
        let missing: Vec<_> = wanted
            .iter()
            .filter(|plan| !existing.contains_key(&plan.name))
            .collect();
        let retention_values: Vec<String> = missing
            .iter()
            .map(|plan| plan.retention_ms.to_string())
            .collect();
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .zip(&retention_values)
            .map(|(plan, retention)| {
                let topic = NewTopic::new(
                    &plan.name,
                    plan.partitions,
                    TopicReplication::Fixed(replication_factor),
                )
                .set("retention.ms", retention);
                if plan.compacted {
                    topic.set("cleanup.policy", "compact")
                } else {
                    topic
                }
            })
            .collect();
        let mut created = HashMap::new();
        if !new_topics.is_empty() {
            let results = self
                .client
                .create_topics(new_topics.iter(), &self.options())
                .await
                .map_err(|source| self.request_error(source))?;
            for result in results {
                match result {
                    Ok(name) => {
                        created.insert(name, TopicStatus::Created);
                    }
                    // Someone else created it between our metadata read and now.
                    Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        created.insert(name, TopicStatus::Exists);
                    }
                    Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
                }
            }
        }

        let present: Vec<String> = wanted
            .iter()
            .filter(|plan| existing.contains_key(&plan.name))
            .map(|plan| plan.name.clone())
            .collect();
        let retention = self.retention(&present).await?;
        let mut reports = Vec::new();
        for plan in wanted {
            let (name, partitions, retention_ms) = (plan.name, plan.partitions, plan.retention_ms);
            if let Some(status) = created.remove(&name) {
                reports.push(TopicReport {
                    name,
                    partitions: Some(partitions),
                    retention_ms: Some(retention_ms),
                    status,
                });
                continue;
            }
            let actual_partitions = existing.get(&name).copied();
            let actual_retention = retention.get(&name).copied();
            let mut drift = Vec::new();
            if actual_partitions.is_some_and(|actual| actual < partitions) {
                drift.push(format!(
                    "{} partitions, expected {partitions} (add them with kafka-topics --alter)",
                    actual_partitions.unwrap_or_default()
                ));
            }
            let retention_drifted = actual_retention != Some(retention_ms);
            let mut status = TopicStatus::Exists;
            if retention_drifted {
                let what = format!(
                    "retention.ms {} → {retention_ms}",
                    actual_retention.map_or("unset".to_string(), |ms| ms.to_string())
                );
                if fix {
                    self.set_retention(&name, retention_ms).await?;
                    status = TopicStatus::Fixed(what);
                } else {
                    drift.push(format!("{what} (run with --fix)"));
                }
            }
            if !drift.is_empty() {
                status = TopicStatus::Drifted(drift.join("; "));
            }
            reports.push(TopicReport {
                name,
                partitions: actual_partitions,
                retention_ms: if fix {
                    Some(retention_ms)
                } else {
                    actual_retention
                },
                status,
            });
        }
        Ok(reports)
    }

    /// Sets `retention.ms` of one topic (also used by tests to simulate drift).
    pub async fn set_retention(&self, topic: &str, retention_ms: i64) -> Result<(), AdminError> {
        let value = retention_ms.to_string();
        let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", &value);
        let results = self
            .client
            .alter_configs([&alter], &self.options())
            .await
            .map_err(|source| self.request_error(source))?;
        for result in results {
            result.map_err(|(_, code)| AdminError::Topic {
                topic: topic.to_string(),
                code,
            })?;
        }
        Ok(())
    }

    /// Our topics with partitions and retention; missing ones are reported as missing.
    pub async fn list(&self) -> Result<Vec<TopicReport>, AdminError> {
        let existing = self.existing().await?;
        let present: Vec<String> = self
            .topics
            .all()
            .into_iter()
            .map(|plan| plan.name)
            .filter(|name| existing.contains_key(name))
            .collect();
        let retention = self.retention(&present).await?;
        Ok(self
            .topics
            .all()
            .into_iter()
            .map(|plan| plan.name)
            .map(|name| TopicReport {
                partitions: existing.get(&name).copied(),
                retention_ms: retention.get(&name).copied(),
                status: if existing.contains_key(&name) {
                    TopicStatus::Exists
                } else {
                    TopicStatus::Missing
                },
                name,
            })
            .collect())
    }

    /// Deletes one of our topics, without its dead-letter topic (a test takes `rtfm-control`
    /// away to see the services wait for it).
    pub async fn delete_topic(&self, kind: crate::topics::TopicKind) -> Result<(), AdminError> {
        self.delete_names(&[self.topics.name(kind).as_str()]).await
    }

    async fn delete_names(&self, names: &[&str]) -> Result<(), AdminError> {
        let results = self
            .client
            .delete_topics(names, &self.options())
            .await
            .map_err(|source| self.request_error(source))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
            }
        }
        Ok(())
    }

    /// Deletes our topics (and only ours).
    pub async fn delete(&self) -> Result<Vec<TopicReport>, AdminError> {
        let existing = self.existing().await?;
        let ours: Vec<String> = self
            .topics
            .all()
            .into_iter()
            .map(|plan| plan.name)
            .collect();
        let present: Vec<&str> = ours
            .iter()
            .filter(|name| existing.contains_key(*name) && self.topics.is_ours(name))
            .map(String::as_str)
            .collect();
        if !present.is_empty() {
            self.delete_names(&present).await?;
        }
        Ok(ours
            .into_iter()
            .map(|name| TopicReport {
                status: if existing.contains_key(&name) {
                    TopicStatus::Deleted
                } else {
                    TopicStatus::Missing
                },
                partitions: None,
                retention_ms: None,
                name,
            })
            .collect())
    }
}
