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

fn report(result: anyhow::Result<Vec<TopicReport>>) -> ExitCode {
    match result {
        Ok(reports) => {
            for report in reports {
                println!("{}", format_report(&report));
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("init-topics: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Vec<TopicReport>> {
    let admin = Admin::connect(&args.kafka)
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
    Ok(reports)
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
