//! Downtime is not data loss: what was said while the bot was away is caught up.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_stopped_before_it_saved_any_mark_still_catches_up_from_its_first_start() {
    let (fake, kafka) = setup().await;
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    first.stop().await; // no message yet: no mark of any channel
    fake.until_disconnected(WAIT).await;
    let id = bot::marks::snowflake_at(chrono::Utc::now()) + 1;
    fake.push_message(recent(id, CHANNEL, 42, "said while the bot was down"));
    let second = TestBot::start(&fake, &kafka, &[]).await;
    let published = messages.next(WAIT).await;
    assert_eq!(published.message_id, id.to_string());
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_was_said_while_the_bot_was_down_is_published_and_its_questions_asked_once() {
    const QUIET: u64 = 21;
    const NEW_CHANNEL: u64 = 22;
    const THREAD: u64 = 23;
    let (fake, kafka) = setup().await;
    fake.add_channel(QUIET, Some(GUILD), "quiet");
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_message(recent(101, CHANNEL, 42, "before the outage"));
    fake.push_message(recent(102, QUIET, 42, "the quiet channel's last word"));
    messages
        .until("the two live messages", WAIT, |seen| seen.len() == 2)
        .await;
    until_marked(&kafka, &[(CHANNEL, 101), (QUIET, 102)]).await;
    first.stop().await;
    fake.until_disconnected(WAIT).await;

    // While the bot is down: Discord keeps the messages, and will never send them to the next
    // session (the fake dispatches them to no one).
    fake.push_message(recent(103, CHANNEL, 43, "said while the bot was down"));
    fake.push_message(recent(104, CHANNEL, 44, "rtfm how do I reset my password?"));
    // Older than QUERY_MAX_AGE_SECS (the default timestamp is 2025): published, not asked.
    fake.push_message(fake_discord::message(
        105,
        CHANNEL,
        Some(GUILD),
        human(45),
        "rtfm is this too old to answer?",
    ));
    // Answered by the bot before it died, which never saved its mark: not asked again.
    fake.push_message(recent(106, CHANNEL, 46, "rtfm was this answered already?"));
    let mut reply = fake_discord::message(
        107,
        CHANNEL,
        Some(GUILD),
        fake_discord::user(BOT_ID, "rtfm", true),
        "the earlier answer",
    );
    reply["message_reference"] = json!({"message_id": "106", "channel_id": CHANNEL.to_string()});
    fake.add_history(CHANNEL, vec![reply]);
    fake.add_channel(NEW_CHANNEL, Some(GUILD), "created-while-down");
    fake.push_message(recent(108, NEW_CHANNEL, 47, "first words in a new channel"));
    fake.add_thread(THREAD, CHANNEL, true, "a thread");
    fake.push_message(recent(109, THREAD, 48, "said in a thread"));

    let reads_before = fake.history_reads(QUIET);
    let second = TestBot::start(&fake, &kafka, &[]).await;
    messages
        .until("the messages said while the bot was down", WAIT, |seen| {
            seen.len() >= 8
        })
        .await;
    // A live question while the catch-up may still be asking its own: the catch-up asks a
    // channel's triggers once the channel is read, so the two may come in either order.
    fake.push_message(recent(110, CHANNEL, 49, "rtfm and a live question?"));
    queries
        .until("the caught-up and the live question", WAIT, |seen| {
            ["104", "110"]
                .iter()
                .all(|id| seen.iter().any(|q| q.record.original_message_id == *id))
        })
        .await;
    queries.nothing_within(Duration::from_secs(2)).await;
    messages.nothing_within(Duration::from_secs(2)).await;
    second.stop().await;

    let published: Vec<_> = messages.records().iter().map(|m| m.message_id).collect();
    let mut sorted = published.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["101", "102", "103", "104", "105", "106", "108", "109", "110"],
        "each message once, the bot's own never: {published:?}"
    );
    let thread_message = messages
        .records()
        .into_iter()
        .find(|m| m.message_id == "109")
        .expect("the thread's message");
    assert_eq!(
        thread_message.thread_parent_channel_id,
        Some(20.into()),
        "a public thread's message is scoped through its parent"
    );
    let mut asked: Vec<_> = queries
        .records()
        .iter()
        .map(|q| q.original_message_id)
        .collect();
    asked.sort();
    assert_eq!(
        asked,
        ["104", "110"],
        "the unanswered recent trigger, once; not the old one, not the answered one"
    );
    assert_eq!(
        fake.history_reads(QUIET),
        reads_before,
        "a channel with nothing new costs no request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_catch_up_a_restart_publishes_nothing_again() {
    let (fake, kafka) = setup().await;
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_message(recent(201, CHANNEL, 42, "live"));
    messages
        .until("the live message", WAIT, |seen| seen.len() == 1)
        .await;
    until_marked(&kafka, &[(CHANNEL, 201)]).await;
    first.stop().await;
    fake.until_disconnected(WAIT).await;
    fake.push_message(recent(202, CHANNEL, 43, "while down"));
    let second = TestBot::start(&fake, &kafka, &[]).await;
    messages
        .until("the caught-up message", WAIT, |seen| seen.len() == 2)
        .await;
    until_marked(&kafka, &[(CHANNEL, 202)]).await;
    second.stop().await;
    fake.until_disconnected(WAIT).await;
    let third = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_message(recent(203, CHANNEL, 44, "sentinel"));
    messages
        .until("the sentinel", WAIT, |seen| seen.len() >= 3)
        .await;
    messages.nothing_within(Duration::from_secs(2)).await;
    third.stop().await;
    let mut published: Vec<_> = messages.records().iter().map(|m| m.message_id).collect();
    published.sort();
    assert_eq!(published, ["201", "202", "203"], "nothing published twice");
}
