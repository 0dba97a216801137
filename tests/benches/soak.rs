//! Soak run (#26): the bot and the processor, as built for users (release), under a steady
//! conversation for a long while — plain messages, message triggers and `/rtfm` commands over
//! several channels, against the strict fake Discord and the real Kafka and Chroma. Every few
//! minutes it samples both services' resident memory and checks that every trigger older than a
//! minute has its one reply and every command its one follow-up. Prints a table and a verdict:
//! memory flat (the last sample within 15 % of the one after warm-up), nothing stuck.
//!
//!   cargo build --profile bench --bins && cargo bench -p rtfm-tests --bench soak -- [--minutes 30]
//!
//! Needs KAFKA_BOOTSTRAP_SERVERS and CHROMA_URL (scripts/kafka.sh and scripts/chroma.sh).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use processor::store::{ChromaStore, StoreConfig};
use test_support::fake_discord::{self, FakeDiscord, FakeOptions, PostKind};
use test_support::process::{spawn_bot, spawn_processor, ServiceProcess};
use test_support::services;

/// Resident memory of a process now (MiB), from /proc.
fn rss_mib(process: &ServiceProcess) -> f64 {
    process
        .pid()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One sample: minute, bot and processor RSS (MiB), triggers and commands so far, stuck ones.
type Row = (u64, f64, f64, usize, usize, usize, usize);

/// A message posted now, as Discord dispatches it.
fn live(id: u64, channel: u64, author: u64, content: &str) -> serde_json::Value {
    fake_discord::message_now(id, channel, Some(7), author, content)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let minutes: u64 = args
        .iter()
        .position(|arg| arg == "--minutes")
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(30);
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = format!("soak_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let fake = FakeDiscord::start_with(FakeOptions {
        nonce_window: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await;
    let channels = [71u64, 72, 73, 74];
    for channel in channels {
        fake.add_channel(channel, Some(7), &format!("soak-{channel}"));
    }
    let (processor, _) = spawn_processor(
        &kafka,
        &chroma,
        &collection,
        &[("LLM_PROVIDER", "extractive")],
    );
    let (bot, _) = spawn_bot(
        &kafka,
        &fake.base_url(),
        "soak-token",
        &[("RATE_LIMIT_PER_MINUTE", "100000")],
    );
    test_support::eventually(Duration::from_secs(120), "the bot connected", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;

    // The conversation: every second, four plain messages; every 5 s a message trigger; every
    // 15 s a slash command.
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let mut triggers: Vec<(u64, Instant)> = Vec::new();
    let mut commands: Vec<(u64, Instant)> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut next_sample = started;
    let mut tick = 0u64;
    println!(
        "soak: {minutes} min; sampling every {} s",
        if minutes >= 10 { 120 } else { 30 }
    );
    while Instant::now() < end {
        for (n, channel) in channels.iter().enumerate() {
            let id = fake.next_message_id();
            fake.push_message(live(
                id,
                *channel,
                100 + (tick + n as u64) % 40,
                &format!(
                    "status update {tick} from channel {channel}: the build on runner {n} is green"
                ),
            ));
        }
        if tick.is_multiple_of(5) {
            let id = fake.next_message_id();
            let channel = channels[(tick / 5) as usize % channels.len()];
            fake.push_message(live(
                id,
                channel,
                150 + tick % 30,
                "rtfm is the build on runner 2 green?",
            ));
            triggers.push((id, Instant::now()));
        }
        if tick.is_multiple_of(15) {
            let id = fake.next_message_id();
            let channel = channels[(tick / 15) as usize % channels.len()];
            fake.push_interaction(fake_discord::slash_command(
                id,
                channel,
                7,
                fake_discord::user(200 + tick % 30, "asker", false),
                "which runner is green?",
            ));
            commands.push((id, Instant::now()));
        }
        if Instant::now() >= next_sample {
            let attempts = fake.attempts();
            let replied: BTreeSet<u64> = attempts.iter().filter_map(|p| p.reply_to()).collect();
            let followed: BTreeSet<u64> = attempts
                .iter()
                .filter(|p| p.kind == PostKind::Followup)
                .filter_map(|p| p.interaction_id)
                .collect();
            let minute_ago = Instant::now() - Duration::from_secs(60);
            let stuck_triggers = triggers
                .iter()
                .filter(|(id, at)| *at < minute_ago && !replied.contains(id))
                .count();
            let stuck_commands = commands
                .iter()
                .filter(|(id, at)| *at < minute_ago && !followed.contains(id))
                .count();
            rows.push((
                started.elapsed().as_secs() / 60,
                rss_mib(&bot),
                rss_mib(&processor),
                triggers.len(),
                commands.len(),
                stuck_triggers,
                stuck_commands,
            ));
            next_sample += Duration::from_secs(if minutes >= 10 { 120 } else { 30 });
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Everything asked gets its answer once the conversation stops.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = fake.attempts();
    let replied: Vec<u64> = attempts.iter().filter_map(|p| p.reply_to()).collect();
    let once = |id: &u64| replied.iter().filter(|r| *r == id).count() == 1;
    let unanswered = triggers.iter().filter(|(id, _)| !once(id)).count();
    let followed: Vec<u64> = attempts
        .iter()
        .filter(|p| p.kind == PostKind::Followup)
        .filter_map(|p| p.interaction_id)
        .collect();
    let unfollowed = commands
        .iter()
        .filter(|(id, _)| followed.iter().filter(|f| *f == id).count() != 1)
        .count();

    println!("\n| minute | bot RSS MiB | processor RSS MiB | triggers | commands | stuck triggers | stuck commands |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (minute, bot_rss, processor_rss, t, c, st, sc) in &rows {
        println!("| {minute} | {bot_rss:.1} | {processor_rss:.1} | {t} | {c} | {st} | {sc} |");
    }
    let warm = rows.get(1).or(rows.first());
    let last = rows.last();
    let growth = |pick: fn(&Row) -> f64| match (warm, last) {
        (Some(warm), Some(last)) => (pick(last) - pick(warm)) / pick(warm) * 100.0,
        _ => f64::NAN,
    };
    let bot_growth = growth(|row| row.1);
    let processor_growth = growth(|row| row.2);
    let messages = tick * channels.len() as u64;
    println!(
        "\nsoak: {minutes} min, {messages} plain messages, {} triggers ({unanswered} without exactly one reply), {} /rtfm commands ({unfollowed} without exactly one follow-up); RSS after warm-up → end: bot {bot_growth:+.1} %, processor {processor_growth:+.1} %",
        triggers.len(),
        commands.len()
    );
    let flat = bot_growth.abs() <= 15.0 && processor_growth.abs() <= 15.0;
    println!(
        "verdict: memory {}, {}",
        if flat { "flat" } else { "NOT flat" },
        if unanswered + unfollowed == 0 {
            "nothing stuck"
        } else {
            "SOMETHING STUCK"
        }
    );
    drop(bot);
    drop(processor);
    if let Ok(store) = ChromaStore::connect(&StoreConfig::new(&chroma, &collection)).await {
        let _ = store.drop_collection().await;
    }
}
