//! `kafka-smoke`: proves each topic works end to end. For every selected topic it produces one
//! valid, unique record, reads it back from the produced offset with a fresh consumer, checks it
//! decodes to what was sent, and prints one line with the round-trip latency. Exit 0 only if
//! every selected topic passed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rtfm_core::ids::{MessageId, QueryId};
use rtfm_core::kafka::{fetch_at, KafkaConfig, Producer};
use rtfm_core::schema::{now_timestamp, Record};
use rtfm_core::{BotQuery, BotResponse, DiscordMessage, ResponseMetadata};
use serde_json::Map;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-smoke",
    version,
    about = "Round-trip one record through each RTFM topic"
)]
struct Args {
    #[command(flatten)]
    kafka: KafkaConfig,

    /// Which topic(s) to test.
    #[arg(long, env = "KAFKA_SMOKE_TEST", value_enum, default_value = "all")]
    test: Which,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    All,
    Discord,
    Queries,
    Responses,
}

fn main() -> ExitCode {
    let (args, unset) = rtfm_core::config::parse::<Args>();
    rtfm_core::telemetry::init_tracing();
    rtfm_core::config::log_unset(&unset);
    rtfm_core::supervise::block_on(smoke(args))
}

async fn smoke(args: Args) -> ExitCode {
    let producer = match Producer::new(&args.kafka, "kafka-smoke") {
        Ok(producer) => producer,
        Err(err) => {
            eprintln!("kafka-smoke: {err}");
            return ExitCode::FAILURE;
        }
    };
    if !producer.broker_reachable(args.kafka.request_timeout()) {
        eprintln!(
            "kafka-smoke: Kafka broker at {} is unreachable (no metadata within {:?})",
            args.kafka.bootstrap_servers,
            args.kafka.request_timeout()
        );
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    let checks: [(Which, &str); 3] = [
        (Which::Discord, "discord-messages"),
        (Which::Queries, "bot-queries"),
        (Which::Responses, "bot-responses"),
    ];
    for (which, name) in checks {
        if args.test != Which::All && args.test != which {
            continue;
        }
        let result = match which {
            Which::Discord => round_trip(&args.kafka, &producer, discord_message()).await,
            Which::Queries => round_trip(&args.kafka, &producer, bot_query()).await,
            _ => round_trip(&args.kafka, &producer, bot_response()).await,
        };
        match result {
            Ok(latency) => println!(
                "PASS {name:<18} round trip {:.1} ms",
                latency.as_secs_f64() * 1e3
            ),
            Err(err) => {
                failed = true;
                println!("FAIL {name:<18} {err:#}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn round_trip<T: Record + PartialEq + std::fmt::Debug>(
    config: &KafkaConfig,
    producer: &Producer,
    record: T,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let delivered = producer.send(&record).await.context("while producing")?;
    let read: T = fetch_at(
        config,
        delivered.partition,
        delivered.offset,
        config.request_timeout(),
    )
    .await
    .context("while consuming it back")?;
    let latency = started.elapsed();
    if read != record {
        bail!("read back a different record: sent {record:?}, got {read:?}");
    }
    Ok(latency)
}

/// A snowflake-shaped id unique enough for a smoke test.
fn unique_id() -> MessageId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    MessageId::new((nanos % 10u128.pow(19)) as u64)
}

fn discord_message() -> DiscordMessage {
    let mut metadata = Map::new();
    metadata.insert("channel_name".into(), "kafka-smoke".into());
    DiscordMessage {
        message_id: unique_id(),
        content: format!("kafka-smoke {}", uuid::Uuid::new_v4()),
        username: "kafka-smoke".into(),
        user_id: 1.into(),
        channel_id: 1.into(),
        timestamp: now_timestamp(),
        metadata,
        guild_id: None,
        event: Default::default(),
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

fn bot_query() -> BotQuery {
    BotQuery {
        query_id: QueryId::random(),
        original_message_id: unique_id(),
        question: "kafka-smoke: is the pipeline alive?".into(),
        username: "kafka-smoke".into(),
        user_id: 1.into(),
        channel_id: 1.into(),
        timestamp: now_timestamp(),
        context: Map::new(),
        guild_id: None,
        visible_channel_ids: None,
        extra: Map::new(),
    }
}

fn bot_response() -> BotResponse {
    BotResponse {
        response_id: uuid::Uuid::new_v4().to_string(),
        query_id: QueryId::random(),
        original_message_id: unique_id(),
        response_text: "kafka-smoke: yes".into(),
        channel_id: 1.into(),
        timestamp: now_timestamp(),
        metadata: ResponseMetadata {
            model: "kafka-smoke".into(),
            ..Default::default()
        },
        guild_id: None,
        extra: Map::new(),
    }
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
    fn smoke_records_are_valid() {
        assert!(discord_message().validate().is_ok());
        assert!(bot_query().validate().is_ok());
        assert!(bot_response().validate().is_ok());
    }
}
