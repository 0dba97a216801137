//! `init-topics`: create, list or delete RTFM's Kafka topics (and their dead-letter topics).
//!
//! `create` is idempotent and reports `exists` for topics already there; `--fix` resets a
//! drifted `retention.ms`. `delete` touches only our topics. An unreachable broker fails within
//! `KAFKA_REQUEST_TIMEOUT_SECS` with a non-zero exit and the address in the message.

use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rtfm_core::kafka::admin::{Admin, TopicReport};
use rtfm_core::kafka::KafkaConfig;
use rtfm_core::{BotQuery, BotResponse, DiscordMessage, Record, TopicKind};

mod registry;

#[derive(Debug, Parser)]
#[command(
    name = "init-topics",
    version,
    about = "Create, list or delete RTFM's Kafka topics"
)]
struct Args {
    #[command(flatten)]
    kafka: KafkaConfig,

    /// What to do with the topics.
    #[arg(long, env = "INIT_TOPICS_ACTION", value_enum, default_value = "create")]
    action: Action,

    /// Replication factor of newly created topics (1 on a single broker).
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    replication_factor: i32,

    /// With `create`: reset `retention.ms` of existing topics that drifted from the table.
    #[arg(long, env = "INIT_TOPICS_FIX")]
    fix: bool,

    /// Seconds to wait for an unreachable broker before giving up (0: fail at once). Compose
    /// waits, so that a broker that is slow to come up is waited out, not a failed start.
    #[arg(long = "wait-secs", env = "INIT_TOPICS_WAIT_SECS", default_value_t = 0)]
    wait_secs: u64,

    /// With `create`: a schema registry's Confluent-compatible API; the topics' JSON Schemas
    /// are registered there (subjects `<topic>-value`, BACKWARD compatibility) and a change
    /// that would break consumers is refused.
    #[arg(long, env = "SCHEMA_REGISTRY_URL")]
    schema_registry_url: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Action {
    Create,
    List,
    Delete,
}

fn main() -> ExitCode {
    let (args, unset) = rtfm_core::config::parse::<Args>();
    rtfm_core::telemetry::init_tracing();
    rtfm_core::config::log_unset(&unset);
    rtfm_core::supervise::block_on(async move { report(run(&args).await) })
}

fn report(result: anyhow::Result<Vec<String>>) -> ExitCode {
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("init-topics: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Vec<String>> {
    let admin = connect(args)
        .await
        .with_context(|| format!("while connecting to {}", args.kafka.bootstrap_servers))?;
    let reports = match args.action {
        Action::Create => {
            let reports = admin
                .create(args.replication_factor, args.fix)
                .await
                .context("while creating topics")?;
            // The broker creates its group and transaction state lazily; do it now so the first
            // processor does not wait for it.
            rtfm_core::kafka::group::wait_for_coordinators(&args.kafka, Duration::from_secs(60))
                .await
                .context("while waiting for the broker's group and transaction coordinators")?;
            reports
        }
        Action::List => admin.list().await.context("while listing topics")?,
        Action::Delete => admin.delete().await.context("while deleting topics")?,
    };
    let mut lines: Vec<String> = reports.iter().map(format_report).collect();
    if let (Action::Create, Some(url)) = (args.action, &args.schema_registry_url) {
        lines.extend(register_schemas(args, url).await?);
    }
    Ok(lines)
}

/// Connects to the broker, trying again for up to `--wait-secs` while it is unreachable.
async fn connect(args: &Args) -> anyhow::Result<Admin> {
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait_secs);
    let mut backoff =
        rtfm_core::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let never = tokio_util::sync::CancellationToken::new();
    loop {
        match Admin::connect(&args.kafka).await {
            Ok(admin) => return Ok(admin),
            Err(err) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "waiting for the Kafka broker");
                backoff.wait(&never).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Registers the four topics' schemas (see [`registry`]); one line per subject.
async fn register_schemas(args: &Args, url: &str) -> anyhow::Result<Vec<String>> {
    let registry = registry::Registry::new(url, args.kafka.request_timeout());
    let topics = args.kafka.topics();
    let schemas = [
        (TopicKind::DiscordMessages, DiscordMessage::wire_schema()),
        (TopicKind::BotQueries, BotQuery::wire_schema()),
        (TopicKind::BotResponses, BotResponse::wire_schema()),
        (
            TopicKind::Control,
            rtfm_core::schema::ControlRecord::wire_schema(),
        ),
    ];
    let mut lines = Vec::new();
    for (kind, schema) in schemas {
        let subject = format!("{}-value", topics.name(kind));
        let registered = registry.register(&subject, &schema).await?;
        lines.push(format!(
            "{:<32} schema id={} (BACKWARD)",
            registered.subject, registered.id
        ));
    }
    Ok(lines)
}

fn format_report(report: &TopicReport) -> String {
    let partitions = report
        .partitions
        .map_or("-".to_string(), |partitions| partitions.to_string());
    let retention = report
        .retention_ms
        .map_or("-".to_string(), |ms| ms.to_string());
    format!(
        "{:<32} partitions={:<3} retention.ms={:<11} {}",
        report.name, partitions, retention, report.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn cli_accepts_the_documented_flags() {
        let args = Args::try_parse_from([
            "init-topics",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--action",
            "list",
        ])
        .expect("parses");
        assert_eq!(args.kafka.bootstrap_servers, "127.0.0.1:1");
        assert!(matches!(args.action, Action::List));
    }
}
