//! Kafka connection settings, shared by every binary through `#[command(flatten)]`.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::topics::Topics;

/// Where the broker is and which copy of the topics to use.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaConfig {
    /// Kafka bootstrap servers (host:port[,host:port…]).
    #[arg(
        long = "bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:29092"
    )]
    pub bootstrap_servers: String,

    /// Appended to every topic and consumer-group name; empty in production. Tests use a
    /// random suffix to get private topics on a shared broker.
    #[arg(long, env = "KAFKA_TOPIC_SUFFIX", default_value = "")]
    pub topic_suffix: String,

    /// How long an admin or metadata request may take before we give up on the broker.
    #[arg(long, env = "KAFKA_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Compression of the records our producers write. gzip (the default, as the seed's
    /// producers write) is the one codec every Kafka client reads without extra libraries:
    /// kafka-python needs an extra package for lz4 and snappy.
    #[arg(long, env = "KAFKA_COMPRESSION", value_enum, default_value = "gzip")]
    pub compression: Compression,
}

/// A producer's `compression.type` (librdkafka as built here has these four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

impl KafkaConfig {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic_suffix: String::new(),
            request_timeout_secs: 10,
            compression: Compression::Gzip,
        }
    }

    pub fn with_topic_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.topic_suffix = suffix.into();
        self
    }

    pub fn topics(&self) -> Topics {
        Topics::new(self.topic_suffix.clone())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// Settings every client shares.
    pub(crate) fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id)
            // Fail connection attempts fast; librdkafka keeps retrying in the background.
            .set("socket.connection.setup.timeout.ms", "5000")
            .set("reconnect.backoff.max.ms", "2000")
            .set("log.connection.close", "false");
        config
    }
}
