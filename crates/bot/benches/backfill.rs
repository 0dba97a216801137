//! How fast `bot backfill` reads a big server within Discord's rate limits (#29): the strict
//! fake Discord with its default limits (each channel's history a bucket of 5 requests per 5 s,
//! 50 requests/s in all; `fake_discord::RateLimits`), reached exactly as in production (TLS as
//! `discord.com`, serenity's rate limiter on), and the real Kafka broker. The guild's messages
//! are spread evenly over its channels; each row is one whole backfill of it.
//!
//!   cargo bench -p bot --bench backfill -- [--messages 100000] [--channels 20] [--concurrency 4,8,16]
//!
//! Needs KAFKA_BOOTSTRAP_SERVERS (scripts/kafka.sh start).

use std::time::{Duration, Instant};

use test_support::fake_discord::{self, FakeDiscord, FakeOptions, RateLimits};
use test_support::services;
use tokio_util::sync::CancellationToken;

const GUILD: u64 = 10;

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == name)?;
    args.get(at + 1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages: u64 = arg("--messages").unwrap_or(100_000);
    let channels: u64 = arg("--channels").unwrap_or(20).max(1);
    let concurrency: Vec<usize> = arg::<String>("--concurrency")
        .unwrap_or_else(|| "4,8,16".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let limits = RateLimits::default();
    let fake = FakeDiscord::start_with(FakeOptions {
        rate_limits: Some(limits),
        ..FakeOptions::default()
    })
    .await;
    let per_channel = messages / channels;
    for channel in 0..channels {
        let id = 1_000 + channel;
        fake.add_channel(id, Some(GUILD), &format!("channel-{channel}"));
        let first = 1_000_000_000 * (channel + 1);
        fake.add_history(
            id,
            (first..first + per_channel)
                .map(|message| {
                    fake_discord::message(
                        message,
                        id,
                        Some(GUILD),
                        fake_discord::user(42 + message % 50, "member", false),
                        &format!("message {message}: how do I configure the thing, and why does it fail?"),
                    )
                })
                .collect(),
        );
    }
    let kafka = services::kafka_with_topics().await;
    let config: bot::Config = test_support::app::config(
        "bot",
        &kafka,
        &[
            vec![
                "--discord-token".to_string(),
                "fake-discord-token-abc".to_string(),
            ],
            fake.production_flags(),
        ]
        .concat(),
    );
    println!(
        "backfill of {} messages in {channels} channels; limits: {} requests per {:?} per channel, {}/s in all",
        per_channel * channels,
        limits.per_route,
        limits.window,
        limits.global_per_second
    );
    println!("| channels at once | messages | seconds | messages/min | time for 100 k | 429s (route, global) |");
    println!("|---:|---:|---:|---:|---:|---|");
    for at_once in concurrency {
        // Fresh buckets for each row.
        tokio::time::sleep(limits.window).await;
        let before = fake.rate_limited();
        let args = bot::backfill::BackfillArgs {
            guild: vec![GUILD],
            channel: Vec::new(),
            limit: None,
            before: None,
            concurrency: at_once,
            checkpoint: Some(
                std::env::temp_dir()
                    .join(format!("rtfm-bench-backfill-{}.json", uuid::Uuid::new_v4())),
            ),
        };
        let started = Instant::now();
        let report = bot::backfill(config.clone(), args, CancellationToken::new())
            .await
            .expect("backfill");
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            report.complete && report.published as u64 == per_channel * channels,
            "{report:?}"
        );
        let after = fake.rate_limited();
        let per_minute = report.published as f64 / seconds * 60.0;
        println!(
            "| {at_once} | {} | {seconds:.1} | {per_minute:.0} | {} | ({}, {}) |",
            report.published,
            minutes(100_000.0 / per_minute),
            after.0 - before.0,
            after.1 - before.1
        );
    }
}

fn minutes(minutes: f64) -> String {
    let duration = Duration::from_secs_f64(minutes * 60.0);
    format!("{}:{:02}", duration.as_secs() / 60, duration.as_secs() % 60)
}
