//! `bot backfill` against a fake Discord with Discord's limits and the real Kafka broker: a
//! whole guild (channels, active and archived threads, forum posts), resumable from its
//! durable checkpoint, within the rate limits as production runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rtfm_core::kafka::KafkaConfig;
use rtfm_core::DiscordMessage;
use serde_json::Value;
use test_support::fake_discord::{self, FakeDiscord, FakeOptions, RateLimits};
use test_support::services;
use test_support::topic::TopicReader;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const GUILD: u64 = 10;
const CHANNEL: u64 = 20;

fn human(id: u64) -> Value {
    fake_discord::user(id, &format!("human{id}"), false)
}

/// `count` messages of member 42 in `channel`, ids from `first`.
fn history(channel: u64, first: u64, count: u64) -> Vec<Value> {
    (first..first + count)
        .map(|id| {
            fake_discord::message(
                id,
                channel,
                Some(GUILD),
                human(42),
                &format!("old message {id}"),
            )
        })
        .collect()
}

/// The backfill's config: the test's topics, a checkpoint file of its own; `extra` flags.
fn config(fake: &FakeDiscord, kafka: &KafkaConfig, extra: &[String]) -> bot::Config {
    let mut args: Vec<String> = vec!["--discord-token".into(), "fake-discord-token-abc".into()];
    if extra.iter().any(|arg| arg == "--discord-test-endpoint") {
        args.extend(extra.iter().cloned());
    } else {
        args.extend(["--discord-api-url".into(), fake.base_url()]);
    }
    test_support::app::config("bot", kafka, &args)
}

fn args(guild: Vec<u64>, channel: Vec<u64>) -> bot::backfill::BackfillArgs {
    bot::backfill::BackfillArgs {
        guild,
        channel,
        limit: None,
        before: None,
        concurrency: 4,
        checkpoint: Some(
            std::env::temp_dir().join(format!("rtfm-backfill-{}.json", uuid::Uuid::new_v4())),
        ),
    }
}

/// Reads `count` distinct messages from the topic and then makes sure nothing else comes:
/// message id → how often it was published.
async fn published(
    reader: &mut TopicReader<DiscordMessage>,
    count: usize,
) -> BTreeMap<rtfm_core::ids::MessageId, (usize, DiscordMessage)> {
    let mut seen: BTreeMap<rtfm_core::ids::MessageId, (usize, DiscordMessage)> = BTreeMap::new();
    while seen.len() < count {
        let message = reader.next(WAIT).await;
        seen.entry(message.message_id).or_insert((0, message)).0 += 1;
    }
    if let Some(extra) = reader.nothing_within(Duration::from_secs(2)).await {
        seen.entry(extra.message_id).or_insert((0, extra)).0 += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_publishes_history_and_resumes_after_an_interruption() {
    let fake = FakeDiscord::start().await;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    let kafka = services::kafka_with_topics().await;
    fake.add_history(CHANNEL, history(CHANNEL, 10_001, 250));
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let args = args(Vec::new(), vec![CHANNEL]);
    let checkpoint = args.checkpoint.clone().expect("named");
    let config = config(&fake, &kafka, &[]);

    fake.fail_history_after(Some(2));
    let refused = bot::backfill(config.clone(), args.clone(), CancellationToken::new())
        .await
        .expect("a refused channel is reported, not an error");
    assert_eq!(refused.refused, 1, "the third page is refused");
    assert_eq!(refused.published, 200);
    assert!(checkpoint.exists(), "progress was saved");
    let saved = std::fs::read_to_string(&checkpoint).expect("checkpoint");
    assert!(saved.contains("\"before\": \"10051\""), "{saved}");

    fake.fail_history_after(None);
    let report = bot::backfill(config, args, CancellationToken::new())
        .await
        .expect("resumed run");
    assert!(report.complete);
    assert_eq!((report.published, report.refused), (250, 0));
    assert!(
        !checkpoint.exists(),
        "a complete run removes its checkpoint"
    );

    let seen = published(&mut messages, 250).await;
    assert_eq!(seen.len(), 250);
    assert!(
        seen.values()
            .all(|(times, message)| *times == 1 && message.guild_id == Some(10.into())),
        "the resumed run started where the first stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_of_a_guild_reads_every_channel_thread_and_forum_post_within_the_rate_limits() {
    let fake = FakeDiscord::start_with(FakeOptions {
        rate_limits: Some(RateLimits {
            per_route: 3,
            window: Duration::from_secs(1),
            global_per_second: 50,
        }),
        ..FakeOptions::default()
    })
    .await;
    let kafka = services::kafka_with_topics().await;
    let (other, forum) = (21u64, 30u64);
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    fake.add_channel(other, Some(GUILD), "help");
    fake.add_forum(forum, GUILD, "questions");
    fake.add_channel(99, Some(77), "another guild's");
    fake.add_history(CHANNEL, history(CHANNEL, 100_001, 430));
    fake.add_history(other, history(other, 200_001, 120));
    fake.add_history(99, history(99, 900_001, 5));
    let mut expected = 430 + 120;
    // Threads of `general`: one active, 110 archived (more than one page of the listing), one
    // private archived; and forum posts, one archived.
    let mut thread = |id: u64, parent: u64, public: bool, archived: bool, count: u64| {
        fake.add_thread(id, parent, public, &format!("thread {id}"));
        fake.add_history(id, history(id, id + 1, count));
        if archived {
            fake.archive_thread(id);
        }
        expected += count as usize;
    };
    thread(300_000, CHANNEL, true, false, 150);
    for n in 0..110 {
        thread(400_000 + n * 10, CHANNEL, true, true, 2);
    }
    thread(500_000, CHANNEL, false, true, 3);
    thread(600_000, forum, true, false, 4);
    thread(700_000, forum, true, true, 5);
    fake.add_history(
        CHANNEL,
        vec![fake_discord::message(
            100_900,
            CHANNEL,
            Some(GUILD),
            human(43),
            "rtfm how do I reset my password?",
        )],
    );
    expected += 1;

    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let production = fake.production_flags();
    let report = bot::backfill(
        config(&fake, &kafka, &production),
        args(vec![GUILD], Vec::new()),
        CancellationToken::new(),
    )
    .await
    .expect("backfill");
    assert!(report.complete, "{report:?}");
    assert_eq!(report.channels, 2 + 1 + 110 + 1 + 2, "channels and threads");
    assert_eq!((report.published, report.refused), (expected, 0));

    let seen = published(&mut messages, expected).await;
    assert_eq!(
        seen.len(),
        expected,
        "every message of the guild, and none of another guild"
    );
    assert!(seen.values().all(|(times, _)| *times == 1), "each once");
    let channels: BTreeSet<String> = seen
        .values()
        .map(|(_, m)| m.channel_id.to_string())
        .collect();
    // The newest and the oldest archived thread: both pages of the archived listing.
    for id in ["300000", "400000", "401090", "500000", "600000", "700000"] {
        assert!(channels.contains(id), "thread {id} read: {channels:?}");
    }
    let trigger = &seen[&100900.into()].1;
    assert!(
        trigger.is_trigger,
        "a question to the bot is flagged, never evidence"
    );
    assert!(!seen[&100001.into()].1.is_trigger);
    let (route_429s, global_429s) = fake.rate_limited();
    println!("429s answered while backfilling: {route_429s} per route, {global_429s} global");
}
