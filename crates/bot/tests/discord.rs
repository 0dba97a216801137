//! The real bot, in-process, against a fake Discord (REST + gateway) and the real Kafka broker.

use std::collections::BTreeSet;
use std::time::Duration;

use rtfm_core::kafka::{KafkaConfig, Producer};
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, DiscordMessage, MessageEvent, Record, ResponseMetadata};
use serde_json::{json, Map, Value};
use test_support::app::{self, Running};
use test_support::fake_discord::{self, Failure, FakeDiscord, FakeOptions, BOT_ID};
use test_support::topic::TopicReader;
use test_support::{eventually, services};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const GUILD: u64 = 10;
const CHANNEL: u64 = 20;

/// One test's bot, in-process, built as `main` builds it ([`bot::App::build`]) and connected to
/// a fake Discord, on the test's private topics.
struct TestBot {
    /// Its `/healthz`, `/readyz` and `/metrics`.
    http_addr: std::net::SocketAddr,
    running: Running,
}

impl TestBot {
    /// The bot's config for `fake` and `kafka`; `extra` adds flags. The fake is reached as a
    /// proxy (serenity's rate limiter off) unless `extra` says otherwise (see
    /// [`TestBot::as_in_production`]).
    fn config(fake: &FakeDiscord, kafka: &KafkaConfig, extra: &[&str]) -> bot::Config {
        let reach: Vec<String> = if extra.contains(&"--discord-test-endpoint") {
            Vec::new()
        } else {
            vec!["--discord-api-url".into(), fake.base_url()]
        };
        let mut args: Vec<String> = vec![
            "--discord-token".into(),
            "fake-discord-token-abc".into(),
            // Per test: the file is named after the test's private topics.
            "--bot-state-dir".into(),
            std::env::temp_dir()
                .join("rtfm-bot-tests")
                .display()
                .to_string(),
        ];
        args.extend(reach);
        args.extend(extra.iter().map(|arg| arg.to_string()));
        app::config("bot", kafka, &args)
    }

    /// Flags that run the bot exactly as in production — `https://discord.com/api/v10`,
    /// serenity's rate limiter on — with only `discord.com` resolved to the fake's TLS port and
    /// the fake's CA trusted.
    fn as_in_production(fake: &FakeDiscord) -> Vec<String> {
        let ca = std::env::temp_dir().join(format!("rtfm-fake-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca, fake_discord::CA_PEM).expect("write the fake's CA");
        vec![
            "--discord-test-endpoint".into(),
            fake.tls_addr.to_string(),
            "--discord-test-ca".into(),
            ca.display().to_string(),
        ]
    }

    /// Starts it and waits for its READY and its `/rtfm` registration.
    async fn start(fake: &FakeDiscord, kafka: &KafkaConfig, extra: &[&str]) -> Self {
        let identified = fake.identifies();
        let shutdown = CancellationToken::new();
        let app = bot::App::build(Self::config(fake, kafka, extra), shutdown.clone())
            .await
            .expect("the bot builds");
        let http_addr = app.http_addr();
        let running = Running::spawn_built("bot", shutdown, app.run_until_stopped());
        eventually(WAIT, "the bot to identify and register /rtfm", || async {
            (fake.identifies() > identified && !fake.commands().is_empty()).then_some(())
        })
        .await;
        Self { http_addr, running }
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

async fn setup() -> (FakeDiscord, KafkaConfig) {
    let fake = FakeDiscord::start().await;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    (fake, services::kafka_with_topics().await)
}

/// As [`setup`], with a fake Discord that deduplicates no nonce at all (as after its window).
async fn setup_without_nonce_deduplication() -> (FakeDiscord, KafkaConfig) {
    let fake = FakeDiscord::start_with(FakeOptions {
        nonce_window: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    (fake, services::kafka_with_topics().await)
}

/// Publishes one record to the test's topics (as the processor would) and waits for the ack.
async fn publish<T: Record>(kafka: &KafkaConfig, record: &T) -> rtfm_core::kafka::Delivered {
    Producer::new(kafka, "test")
        .expect("producer")
        .send(record)
        .await
        .expect("acked")
}

/// Waits until the bot has committed past the response at `delivered`: it is done with it.
async fn until_done(kafka: &KafkaConfig, delivered: &rtfm_core::kafka::Delivered) {
    services::until_group_passed(
        kafka,
        rtfm_core::topics::GROUP_RESPONSE_SENDER,
        rtfm_core::TopicKind::BotResponses,
        &[(delivered.partition, delivered.offset)],
        WAIT,
    )
    .await;
}

/// The processor's answer to a slash question: it echoes the question's interaction (see
/// processor::answer), which is how the bot finds its follow-up token.
fn slash_answer(query: &BotQuery, id: u64, text: &str) -> BotResponse {
    let interaction = query
        .context
        .get("interaction")
        .cloned()
        .expect("the question carries its interaction");
    let mut answer = response(&query.query_id, id, text);
    answer
        .metadata
        .extra
        .insert("interaction".into(), interaction);
    answer
}

/// `/rtfm question:<question>` asked by member 42 in `CHANNEL` (interaction `id`).
fn slash(id: u64, question: &str) -> Value {
    fake_discord::slash_command(id, CHANNEL, GUILD, human(42), question)
}

fn human(id: u64) -> Value {
    fake_discord::user(id, &format!("human{id}"), false)
}

fn response(query_id: &str, original: u64, text: &str) -> BotResponse {
    BotResponse {
        response_id: uuid::Uuid::new_v4().to_string(),
        query_id: query_id.into(),
        original_message_id: original.to_string(),
        response_text: text.into(),
        channel_id: CHANNEL.to_string(),
        timestamp: now_timestamp(),
        metadata: ResponseMetadata {
            model: "test".into(),
            ..Default::default()
        },
        guild_id: Some(GUILD.to_string()),
        extra: Map::new(),
    }
}

#[test]
fn fake_payloads_deserialize_with_serenity_types() {
    let message: serenity::all::Message =
        serde_json::from_value(fake_discord::message(1, 2, Some(3), human(4), "hi"))
            .expect("message");
    assert_eq!(message.content, "hi");
    let interaction: serenity::all::Interaction =
        serde_json::from_value(fake_discord::slash_command(5, 2, 3, human(4), "why?"))
            .expect("interaction");
    assert!(matches!(
        interaction,
        serenity::all::Interaction::Command(_)
    ));
    let _: serenity::all::MessageUpdateEvent = serde_json::from_value(json!({
        "id": "1", "channel_id": "2", "guild_id": "3", "author": human(4), "content": "edited"
    }))
    .expect("update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_human_message_is_published_with_the_seed_schema_and_bots_are_ignored() {
    let (fake, kafka) = setup().await;
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    // Ready once on the gateway with Kafka reachable (`App::build` bound the endpoint).
    let readyz = format!("http://{}/readyz", bot.http_addr);
    eventually(WAIT, "the bot ready on /readyz", || async {
        let (status, body) = test_support::http_get(&readyz).await?;
        (status == 200 && body.contains("discord: ready")).then_some(())
    })
    .await;
    fake.push_message(fake_discord::message(
        101,
        CHANNEL,
        Some(GUILD),
        fake_discord::user(7, "otherbot", true),
        "beep rtfm",
    ));
    fake.push_message(fake_discord::message(
        102,
        CHANNEL,
        Some(GUILD),
        fake_discord::user(BOT_ID, "rtfm", true),
        "my own words",
    ));
    fake.push_message(fake_discord::message(
        103,
        CHANNEL,
        Some(GUILD),
        human(42),
        "Hello, this is a test message",
    ));
    let record = messages.next(WAIT).await;
    let json: Value = serde_json::from_slice(&record.encode()).expect("json");
    assert_eq!(
        json,
        json!({"message_id": "103", "content": "Hello, this is a test message", "username": "human42",
               "user_id": "42", "channel_id": "20", "timestamp": "2025-11-02T12:34:56.789Z",
               "metadata": {"channel_name": "general"}, "guild_id": "10"})
    );
    assert!(
        messages
            .nothing_within(Duration::from_secs(2))
            .await
            .is_none(),
        "bot messages are never ingested"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_trigger_form_publishes_one_question_and_lookalikes_do_not() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    let cases = [
        (
            201,
            "rtfm how do I rotate the key?",
            "how do I rotate the key?",
        ),
        (202, "RTFM where are the docs", "where are the docs"),
        (
            203,
            "Read The F***ing Manual: what is the port?",
            "what is the port?",
        ),
        (204, "<@1000> who owns the deploy?", "who owns the deploy?"),
    ];
    for (id, content, expected) in cases {
        fake.push_message(fake_discord::message(
            id,
            CHANNEL,
            Some(GUILD),
            human(42),
            content,
        ));
        let query = queries.next(WAIT).await;
        assert_eq!(query.question, expected);
        assert_eq!(query.original_message_id, id.to_string());
        assert_eq!(query.guild_id.as_deref(), Some("10"));
        assert!(uuid::Uuid::parse_str(&query.query_id).is_ok());
    }
    fake.push_message(fake_discord::message(
        205,
        CHANNEL,
        Some(GUILD),
        human(42),
        "artfmx is a package",
    ));
    assert!(
        queries
            .nothing_within(Duration::from_secs(2))
            .await
            .is_none(),
        "not a whole word"
    );

    fake.push_interaction(fake_discord::slash_command(
        206,
        CHANNEL,
        GUILD,
        human(43),
        "how do I deploy?",
    ));
    let query = queries.next(WAIT).await;
    assert_eq!(query.question, "how do I deploy?");
    assert_eq!(query.user_id, "43");
    let callbacks = fake.callbacks();
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].0, 206);
    assert_eq!(callbacks[0].1["type"], 5, "deferred acknowledgement");
    // Its answer arrives as the interaction's follow-up.
    publish(
        &kafka,
        &response(&query.query_id, 206, "Deploy with `make deploy`."),
    )
    .await;
    eventually(WAIT, "the follow-up", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    assert_eq!(fake.followups()[0]["content"], "Deploy with `make deploy`.");
    bot.stop().await;
}

/// Each question carries the channels everyone who can read its channel can read (from the
/// guild's permissions, looked up once); a guild whose permissions Discord will not give the
/// bot gets none: its questions search their own channel only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_carries_the_channels_its_readers_may_read_and_fails_closed() {
    let (fake, kafka) = setup().await;
    fake.add_channel(CHANNEL + 1, Some(GUILD), "help");
    fake.add_channel(CHANNEL + 2, Some(GUILD), "staff");
    fake.set_overwrites(
        CHANNEL + 2,
        vec![fake_discord::role_overwrite(
            GUILD,
            0,
            fake_discord::VIEW_CHANNEL,
        )],
    );
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    let ask = |id: u64, channel: u64, guild: u64| {
        fake.push_message(fake_discord::message(
            id,
            channel,
            Some(guild),
            human(42),
            "rtfm where are the docs?",
        ))
    };
    ask(301, CHANNEL, GUILD);
    let query = queries.next(WAIT).await;
    assert_eq!(
        query.visible_channel_ids,
        Some(vec![(CHANNEL + 1).to_string()])
    );
    ask(302, CHANNEL + 2, GUILD);
    let query = queries.next(WAIT).await;
    assert_eq!(
        query.visible_channel_ids,
        Some(vec![CHANNEL.to_string(), (CHANNEL + 1).to_string()]),
        "a private channel's readers may read the public ones"
    );
    assert_eq!(fake.guild_lookups(), 2, "one lookup per guild, reused");
    // A guild the fake does not know answers 404 Unknown Guild.
    ask(303, 77, 99);
    let query = queries.next(WAIT).await;
    assert_eq!(query.guild_id.as_deref(), Some("99"));
    assert_eq!(query.visible_channel_ids, Some(vec![]));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_trigger_gets_the_usage_hint() {
    let (fake, kafka) = setup().await;
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_message(fake_discord::message(
        301,
        CHANNEL,
        Some(GUILD),
        human(42),
        "rtfm",
    ));
    eventually(WAIT, "the usage hint", || async {
        (!fake.posts().is_empty()).then_some(())
    })
    .await;
    let post = &fake.posts()[0];
    assert_eq!(post.content(), bot::trigger::USAGE_HINT);
    assert_eq!(post.reply_to(), Some(301));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_answer_is_one_split_reply_posted_once_and_never_pings_everyone() {
    let (fake, kafka) = setup().await;
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    let producer = Producer::new(&kafka, "test").expect("producer");
    let paragraph = format!("@everyone @here <@&555> <@777> {}", "word ".repeat(95));
    let text = vec![paragraph; 10].join("\n\n");
    assert!(text.chars().count() > 4_900);
    let answer = response("query-long", 401, &text);
    producer.send(&answer).await.expect("acked");
    producer.send(&answer).await.expect("acked twice");
    let parts = bot::reply::split_reply(&text, bot::reply::DISCORD_LIMIT).len();
    assert!(parts >= 3);
    eventually(WAIT, "every part", || async {
        (fake.posts().len() >= parts).then_some(())
    })
    .await;
    // A different response afterwards proves the duplicate was consumed, not just slow.
    producer
        .send(&response("query-after", 402, "done"))
        .await
        .expect("acked");
    fake.until_posted("the next answer", WAIT, |p| p.content() == "done")
        .await;
    let posts = fake.posts();
    assert_eq!(
        posts.len(),
        parts + 1,
        "the duplicate delivery posted nothing: {:#?}",
        posts.iter().map(|p| p.content().len()).collect::<Vec<_>>()
    );
    assert_eq!(posts[0].reply_to(), Some(401), "posted as a reply");
    assert_eq!(posts[1].reply_to(), None);
    for post in &posts {
        assert!(post.content().chars().count() <= 2_000);
        let mentions = &post.body["allowed_mentions"];
        assert!(
            mentions["parse"]
                .as_array()
                .is_none_or(|parse| parse.is_empty()),
            "{mentions}"
        );
        assert!(mentions["roles"]
            .as_array()
            .is_none_or(|roles| roles.is_empty()));
        assert!(mentions["users"]
            .as_array()
            .is_none_or(|users| users.is_empty()));
        assert_eq!(post.body["enforce_nonce"], true);
        assert!(post.body["nonce"]
            .as_str()
            .is_some_and(|nonce| nonce.len() <= 25));
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_bot_does_not_post_an_answer_twice_even_without_nonce_deduplication() {
    // Nonce window 0: however long the bot was down, Discord would not deduplicate.
    let (fake, kafka) = setup_without_nonce_deduplication().await;
    let producer = Producer::new(&kafka, "test").expect("producer");
    // Message 501 is not in the channel (deleted): Discord posts the reply without its
    // reference, and the restarted bot must still recognise it as its answer.
    let answer = response("query-restart", 501, "the answer");
    producer.send(&answer).await.expect("acked");
    let first = TestBot::start(&fake, &kafka, &[]).await;
    eventually(WAIT, "the answer", || async {
        (fake.posts().len() == 1).then_some(())
    })
    .await;
    first.stop().await;
    // Redelivered after the restart (e.g. the offset commit was lost): the bot finds its own
    // reply in the channel and does not post again.
    producer.send(&answer).await.expect("acked");
    let second = TestBot::start(&fake, &kafka, &[]).await;
    producer
        .send(&response("query-sentinel", 502, "sentinel"))
        .await
        .expect("acked");
    fake.until_posted("the sentinel", WAIT, |p| p.content() == "sentinel")
        .await;
    second.stop().await;
    let attempts: Vec<_> = fake
        .attempts()
        .into_iter()
        .filter(|p| p.content() == "the answer")
        .collect();
    assert_eq!(attempts.len(), 1, "one POST of the answer: {attempts:#?}");
    assert!(!attempts[0].deduplicated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discord_errors_are_retried_and_the_reply_is_delivered_once() {
    let (fake, kafka) = setup().await;
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.fail_next_posts(&[
        Failure::Status(500),
        Failure::RateLimited(0.2),
        Failure::Status(503),
    ]);
    publish(&kafka, &response("query-retry", 601, "eventually")).await;
    eventually(WAIT, "the reply after the errors", || async {
        (!fake.posts().is_empty()).then_some(())
    })
    .await;
    // A stopped bot posts nothing more: everything it did is in the record now.
    bot.stop().await;
    assert_eq!(fake.attempts().len(), 1, "the failed calls created nothing");
    assert_eq!(fake.posts()[0].content(), "eventually");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_created_while_discord_answers_502_is_not_posted_twice() {
    // Discord created the message, and the client still saw 502 (a gateway timeout between
    // them). The bot looks for it in the channel before it posts again (and a retry would
    // carry the same nonce, which Discord deduplicates within its window).
    let (fake, kafka) = setup().await;
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.fail_next_posts(&[Failure::CreatedThen(502)]);
    let delivered = publish(&kafka, &response("query-created-502", 602, "made it")).await;
    until_done(&kafka, &delivered).await;
    bot.stop().await;
    assert_eq!(fake.posts().len(), 1, "one message in the channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_nonce_deduplication_a_reply_created_despite_a_502_is_found_not_posted_again() {
    // Nonce window 0: Discord would post the retry again; the bot looks in the channel first.
    let (fake, kafka) = setup_without_nonce_deduplication().await;
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.fail_next_posts(&[Failure::CreatedThen(502)]);
    let delivered = publish(
        &kafka,
        &response("query-created-502-w0", 603, "made it once"),
    )
    .await;
    until_done(&kafka, &delivered).await;
    bot.stop().await;
    let attempts = fake.attempts();
    assert_eq!(
        attempts.len(),
        1,
        "posted once, found, not posted again: {attempts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_follow_up_created_despite_a_502_is_found_not_posted_again() {
    // Follow-ups carry no nonce at all.
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_interaction(slash(905, "how do I deploy?"));
    let query = queries.next(WAIT).await;
    let answer = slash_answer(&query, 905, "deploy with make deploy");
    fake.fail_next_posts(&[Failure::CreatedThen(502)]);
    let delivered = publish(&kafka, &answer).await;
    until_done(&kafka, &delivered).await;
    bot.stop().await;
    let followups = fake.followups();
    assert_eq!(followups.len(), 1, "one follow-up: {followups:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_and_a_follow_up_created_while_the_client_timed_out_are_found_not_posted_again() {
    // Discord created both and never answered within the bot's 30 s request timeout; no nonce
    // deduplication either. The bot treats a timeout as "maybe created" and looks first.
    let (fake, kafka) = setup_without_nonce_deduplication().await;
    let other = 21u64;
    fake.add_channel(other, Some(GUILD), "other");
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_interaction(slash(906, "how do I deploy?"));
    let query = queries.next(WAIT).await;
    let hang = Failure::CreatedThenHang(Duration::from_secs(32));
    fake.fail_next_posts(&[hang, hang]);
    let mut reply = response("query-timed-out", 604, "posted once");
    reply.channel_id = other.to_string();
    let answer = slash_answer(&query, 906, "deploy with make deploy");
    let (first, second) = tokio::join!(publish(&kafka, &reply), publish(&kafka, &answer));
    services::until_group_passed(
        &kafka,
        rtfm_core::topics::GROUP_RESPONSE_SENDER,
        rtfm_core::TopicKind::BotResponses,
        &[
            (first.partition, first.offset),
            (second.partition, second.offset),
        ],
        Duration::from_secs(120),
    )
    .await;
    bot.stop().await;
    let replies: Vec<_> = fake
        .attempts()
        .into_iter()
        .filter(|p| p.channel_id == other)
        .collect();
    assert_eq!(replies.len(), 1, "the reply, once: {replies:#?}");
    let followups = fake.followups();
    assert_eq!(followups.len(), 1, "one follow-up: {followups:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_content_over_2000_characters_as_discord_does() {
    let (fake, _kafka) = setup().await;
    let post = |content: String| {
        let url = format!("{}/api/v10/channels/{CHANNEL}/messages", fake.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .header("authorization", "Bot fake-discord-token-abc")
                .json(&json!({"content": content}))
                .send()
                .await
                .expect("fake answers")
        }
    };
    let refused = post("x".repeat(2001)).await;
    assert_eq!(refused.status().as_u16(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], 50035, "{body}");
    assert_eq!(
        post("é".repeat(2000)).await.status().as_u16(),
        200,
        "characters, not bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_republish_and_deletes_publish_delete_events() {
    let (fake, kafka) = setup().await;
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_update(json!({"id": "701", "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string(), "author": human(42), "content": "fixed typo", "edited_timestamp": "2025-11-02T12:40:00.000000+00:00"}));
    let edit = messages.next(WAIT).await;
    assert_eq!(
        (edit.event, edit.message_id.as_str(), edit.content.as_str()),
        (MessageEvent::Edit, "701", "fixed typo")
    );
    fake.push_delete(702, CHANNEL, Some(GUILD));
    let delete = messages.next(WAIT).await;
    assert_eq!(
        (delete.event, delete.message_id.as_str()),
        (MessageEvent::Delete, "702")
    );
    fake.push_delete_bulk(&[703, 704], CHANNEL, Some(GUILD));
    let ids: BTreeSet<String> = [messages.next(WAIT).await, messages.next(WAIT).await]
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(ids, BTreeSet::from(["703".to_string(), "704".to_string()]));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_over_the_rate_limit_gets_one_notice() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &["--rate-limit-per-minute", "3"]).await;
    for i in 0..6 {
        fake.push_message(fake_discord::message(
            801 + i,
            CHANNEL,
            Some(GUILD),
            human(42),
            &format!("rtfm question {i}"),
        ));
    }
    for _ in 0..3 {
        queries.next(WAIT).await;
    }
    assert!(
        queries
            .nothing_within(Duration::from_secs(2))
            .await
            .is_none(),
        "only 3 questions pass"
    );
    fake.until_posted("the notice", WAIT, |p| {
        p.content().starts_with("⏳ You've asked")
    })
    .await;
    let notices = fake
        .posts()
        .iter()
        .filter(|p| p.content().starts_with("⏳ You've asked"))
        .count();
    assert_eq!(notices, 1);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bot_resumes_after_a_gateway_reconnect_and_keeps_working() {
    let (fake, kafka) = setup().await;
    let mut messages: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    let identified = fake.identifies();
    fake.request_reconnect();
    // Said while the session is away: Discord replays it to the resumed session (and the fake
    // sends nothing to a socket that has not resumed yet).
    for id in 890..895 {
        fake.push_message(fake_discord::message(
            id,
            CHANNEL,
            Some(GUILD),
            human(42),
            "during the reconnect",
        ));
    }
    eventually(WAIT, "a resume", || async {
        (fake.resumes() >= 1).then_some(())
    })
    .await;
    fake.push_message(fake_discord::message(
        901,
        CHANNEL,
        Some(GUILD),
        human(42),
        "after the reconnect",
    ));
    messages
        .until("the six messages", WAIT, |seen| seen.len() >= 6)
        .await;
    messages.nothing_within(Duration::from_secs(1)).await;
    bot.stop().await;
    let mut ids: Vec<&str> = messages
        .records()
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["890", "891", "892", "893", "894", "901"], "each once");
    assert_eq!(
        fake.identifies(),
        identified,
        "resumed, not identified again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_answer_in_time_tells_the_asker_it_is_delayed() {
    let (fake, kafka) = setup().await;
    let bot = TestBot::start(&fake, &kafka, &["--response-timeout-secs", "2"]).await;
    fake.push_message(fake_discord::message(
        951,
        CHANNEL,
        Some(GUILD),
        human(42),
        "rtfm anyone there?",
    ));
    fake.until_posted("the delay notice", WAIT, |p| {
        p.content() == bot::questions::DELAYED_NOTICE && p.reply_to() == Some(951)
    })
    .await;
    assert!(fake.typing().contains(&CHANNEL), "typing… while waiting");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_posts_follow_ups_and_history_in_shapes_serenity_reads() {
    use serenity::all::{
        ChannelId, CreateInteractionResponse, CreateInteractionResponseFollowup,
        CreateInteractionResponseMessage, CreateMessage, GetMessages, InteractionId, MessageId,
        MessageReference,
    };
    use serenity::builder::Builder;
    let fake = FakeDiscord::start().await;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    fake.push_interaction(fake_discord::slash_command(
        777,
        CHANNEL,
        GUILD,
        human(5),
        "why?",
    ));
    let http = serenity::http::HttpBuilder::new("fake-token")
        .proxy(fake.base_url())
        .ratelimiter_disabled(true)
        .application_id(serenity::all::ApplicationId::new(BOT_ID))
        .build();
    fake.add_history(
        CHANNEL,
        vec![fake_discord::message(
            55,
            CHANNEL,
            Some(GUILD),
            human(5),
            "a question",
        )],
    );
    let reply_to = |id: u64, fail_if_not_exists: bool| {
        CreateMessage::new().content("a reply").reference_message(
            MessageReference::from((ChannelId::new(CHANNEL), MessageId::new(id)))
                .fail_if_not_exists(fail_if_not_exists),
        )
    };
    let posted = ChannelId::new(CHANNEL)
        .send_message(&http, reply_to(55, false))
        .await
        .expect("serenity reads the created message");
    assert_eq!(
        posted.message_reference.and_then(|r| r.message_id),
        Some(MessageId::new(55))
    );
    // A reply to a message that is gone: posted plain, or refused, as Discord does.
    let plain = ChannelId::new(CHANNEL)
        .send_message(&http, reply_to(56, false).content("to a deleted message"))
        .await
        .expect("posted without its reference");
    assert!(plain.message_reference.is_none());
    let refused = ChannelId::new(CHANNEL)
        .send_message(&http, reply_to(56, true))
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("Invalid Form Body"),
        "{refused}"
    );
    let token = "interaction-token-777";
    let early = CreateInteractionResponseFollowup::new()
        .content("before any response")
        .execute(&http, (None, token))
        .await
        .expect_err("a follow-up needs a response first");
    assert!(early.to_string().contains("Unknown Webhook"), "{early}");
    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new())
        .execute(&http, (InteractionId::new(777), token))
        .await
        .expect("deferred");
    let twice = CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new())
        .execute(&http, (InteractionId::new(777), token))
        .await
        .expect_err("one response per interaction");
    assert!(
        twice.to_string().contains("already been acknowledged"),
        "{twice}"
    );
    // The first follow-up replaces the public "thinking…": public whatever its flags.
    let followup = CreateInteractionResponseFollowup::new()
        .content("a follow-up")
        .ephemeral(true)
        .execute(&http, (None, token))
        .await
        .expect("serenity reads the follow-up");
    assert_eq!(followup.content, "a follow-up");
    CreateInteractionResponseFollowup::new()
        .content("a private one")
        .ephemeral(true)
        .execute(&http, (None, token))
        .await
        .expect("a second follow-up");
    let shown: Vec<(String, bool)> = fake
        .attempts()
        .iter()
        .filter(|p| p.kind == fake_discord::PostKind::Followup)
        .map(|p| (p.content().to_string(), p.ephemeral))
        .collect();
    assert_eq!(
        shown,
        [
            ("a follow-up".to_string(), false),
            ("a private one".to_string(), true)
        ]
    );
    // An interaction not answered within 3 s is gone (10062).
    fake.push_interaction(fake_discord::slash_command(
        778,
        CHANNEL,
        GUILD,
        human(5),
        "late?",
    ));
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let late = CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new())
        .execute(&http, (InteractionId::new(778), "interaction-token-778"))
        .await
        .expect_err("too late");
    assert!(late.to_string().contains("Unknown interaction"), "{late}");
    let history = ChannelId::new(CHANNEL)
        .messages(
            &http,
            GetMessages::new().after(MessageId::new(1)).limit(100),
        )
        .await
        .expect("serenity reads the history");
    let own: Vec<bot::history::OwnMessage> =
        history.iter().map(bot::history::OwnMessage::from).collect();
    assert!(own.contains(&bot::history::OwnMessage {
        content: "a reply".into(),
        reply_to: Some(55),
        interaction: None
    }));
    assert!(own.contains(&bot::history::OwnMessage {
        content: "a follow-up".into(),
        reply_to: None,
        interaction: Some(777)
    }));
    let me = http.get_current_user().await.expect("users/@me");
    assert_eq!(me.id.get(), BOT_ID);
    // An expired token is refused, as Discord does after 15 minutes.
    fake.expire_interaction_tokens();
    assert!(CreateInteractionResponseFollowup::new()
        .content("too late")
        .execute(&http, (None, "interaction-token-777"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limited_slash_command_gets_a_notice_only_the_asker_sees() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &["--rate-limit-per-minute", "1"]).await;
    // The first one uses the user's quota (and notifies nothing); the second is over it. The
    // gateway hands events to concurrent tasks, so the second is sent only once the first is
    // known to have been counted (its question was published).
    let slash = |id| slash(id, "how do I deploy?");
    fake.push_interaction(slash(901));
    assert_eq!(queries.next(WAIT).await.original_message_id, "901");
    fake.push_interaction(slash(902));
    // Its response itself, ephemeral: a follow-up after a public defer would be public.
    let notice = eventually(WAIT, "the notice", || async {
        fake.callbacks()
            .into_iter()
            .find(|(id, _)| *id == 902)
            .map(|(_, body)| body)
    })
    .await;
    bot.stop().await;
    assert_eq!(notice["type"], 4, "a message, not a deferral: {notice}");
    assert_eq!(notice["data"]["flags"], 64, "only the asker sees it");
    assert!(notice["data"]["content"]
        .as_str()
        .is_some_and(|text| text.starts_with("⏳ You've asked")));
    assert!(
        fake.attempts().is_empty(),
        "no follow-up: {:#?}",
        fake.attempts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_command_without_an_answer_in_time_gets_one_notice_and_the_late_answer_goes_to_the_channel(
) {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let bot = TestBot::start(&fake, &kafka, &["--slash-deadline-secs", "2"]).await;
    fake.push_interaction(slash(903, "how do I deploy?"));
    let query = queries.next(WAIT).await;
    eventually(WAIT, "the timeout notice", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    publish(&kafka, &response(&query.query_id, 903, "late answer")).await;
    fake.until_posted("the late answer in the channel", WAIT, |p| {
        p.content() == "late answer"
    })
    .await;
    bot.stop().await;
    let attempts = fake.attempts();
    let followups: Vec<_> = attempts
        .iter()
        .filter(|p| p.kind == fake_discord::PostKind::Followup)
        .collect();
    assert_eq!(followups.len(), 1, "exactly one follow-up: {attempts:#?}");
    assert_eq!(followups[0].content(), bot::questions::SLASH_TIMEOUT_NOTICE);
    // It replaces the public "thinking…": public, as Discord shows it, so it says so for all.
    assert!(!followups[0].ephemeral);
    assert_eq!(
        attempts.len(),
        2,
        "the notice and the answer: {attempts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_bot_finishes_a_slash_command_whose_token_is_still_alive() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_interaction(slash(904, "how do I deploy?"));
    let query = queries.next(WAIT).await;
    first.stop().await;
    assert_eq!(
        query.context["interaction"]["token"],
        "interaction-token-904"
    );
    let answer = slash_answer(&query, 904, "answered after a restart");
    let second = TestBot::start(&fake, &kafka, &[]).await;
    publish(&kafka, &answer).await;
    eventually(WAIT, "the follow-up from the new process", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    second.stop().await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].kind, fake_discord::PostKind::Followup);
    assert_eq!(attempts[0].interaction_id, Some(904));
    assert_eq!(attempts[0].content(), "answered after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_or_rate_limited_channel_never_holds_up_another_channel() {
    let (fake, kafka) = setup().await;
    let (refused, limited, healthy) = (21u64, 22u64, CHANNEL);
    fake.add_channel(refused, Some(GUILD), "private");
    fake.add_channel(limited, Some(GUILD), "busy");
    fake.refuse_channel(refused, 403);
    fake.limit_channel(limited, 1.0);
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    let producer = Producer::new(&kafka, "test").expect("producer");
    let to = |channel: u64, query: &str, text: &str| {
        let mut answer = response(query, 950, text);
        answer.channel_id = channel.to_string();
        answer
    };
    // Same key order as Discord would see them: the stuck channels first.
    producer
        .send(&to(refused, "q-refused", "to the private channel"))
        .await
        .expect("acked");
    producer
        .send(&to(limited, "q-limited", "to the busy channel"))
        .await
        .expect("acked");
    producer
        .send(&to(healthy, "q-healthy", "to the healthy channel"))
        .await
        .expect("acked");
    fake.until_posted("the healthy channel's reply", WAIT, |p| {
        p.channel_id == healthy
    })
    .await;
    assert!(
        fake.posts().iter().all(|p| p.channel_id != limited),
        "the busy channel is still waiting for its bucket, and nobody waited for it"
    );
    // The refused one is dead-lettered with Discord's reason; the busy one goes out once its
    // route has room again.
    // The refused reply.
    let dead =
        services::until_dead_lettered(&kafka, rtfm_core::TopicKind::BotResponses, 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("403"), "{}", dead[0].error);
    fake.unlimit_channel(limited);
    fake.until_posted("the busy channel's reply", WAIT, |p| {
        p.channel_id == limited
    })
    .await;
    bot.stop().await;
    assert_eq!(
        fake.attempts().len(),
        2,
        "one reply each, none to the refused channel"
    );
}

/// Waits until the bot's durable marks (its state file) hold `marks` (channel → message):
/// what a restart will catch up from. Stopping a bot earlier may cut the wait for a message's
/// acknowledgement short, and the next start then publishes it again (harmless, the processor
/// upserts; but not what these tests count).
async fn until_marked(kafka: &KafkaConfig, marks: &[(u64, u64)]) {
    let path = std::env::temp_dir()
        .join("rtfm-bot-tests")
        .join(format!("bot-state{}.json", kafka.topic_suffix));
    eventually(WAIT, "the marks saved", || async {
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        marks
            .iter()
            .all(|(channel, message)| {
                saved["channels"][channel.to_string()] == json!(message.to_string())
            })
            .then_some(())
    })
    .await;
}

/// A message of guild `GUILD` posted now.
fn recent(id: u64, channel: u64, author: u64, content: &str) -> Value {
    fake_discord::message_now(id, channel, Some(GUILD), author, content)
}

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
    // A live question after the catch-up: once it is asked, everything before it was too.
    fake.push_message(recent(110, CHANNEL, 49, "rtfm and a live question?"));
    queries
        .until("the live question", WAIT, |seen| {
            seen.iter().any(|q| q.record.original_message_id == "110")
        })
        .await;
    messages.nothing_within(Duration::from_secs(2)).await;
    second.stop().await;

    let published: Vec<&str> = messages
        .records()
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
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
        thread_message.thread_parent_channel_id.as_deref(),
        Some("20"),
        "a public thread's message is scoped through its parent"
    );
    let asked: Vec<&str> = queries
        .records()
        .iter()
        .map(|q| q.original_message_id.as_str())
        .collect();
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
    let mut published: Vec<&str> = messages
        .records()
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    published.sort();
    assert_eq!(published, ["201", "202", "203"], "nothing published twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_channels_backlog_never_stops_the_replies_of_the_others() {
    // Before: one dispatcher handed responses to per-channel queues of 64 and waited when one
    // was full, so a rate-limited channel with a backlog stopped every channel (and polling).
    let (fake, kafka) = setup().await;
    let slow = 22u64;
    let healthy: Vec<u64> = (30..40).collect();
    fake.add_channel(slow, Some(GUILD), "busy");
    for channel in &healthy {
        fake.add_channel(*channel, Some(GUILD), &format!("healthy-{channel}"));
    }
    fake.limit_channel(slow, 1.0);
    let producer = Producer::new(&kafka, "test").expect("producer");
    let to = |channel: u64, query: String, text: String| {
        let mut answer = response(&query, 950, &text);
        answer.channel_id = channel.to_string();
        answer
    };
    for n in 0..100 {
        producer
            .send(&to(slow, format!("q-slow-{n}"), format!("slow {n}")))
            .await
            .expect("acked");
    }
    // After the backlog in every partition: ten channels over the three partitions.
    for channel in &healthy {
        producer
            .send(&to(
                *channel,
                format!("q-healthy-{channel}"),
                format!("healthy {channel}"),
            ))
            .await
            .expect("acked");
    }
    let bot = TestBot::start(&fake, &kafka, &[]).await;
    eventually(WAIT, "every healthy channel's reply", || async {
        let posted: BTreeSet<u64> = fake
            .posts()
            .iter()
            .map(|p| p.channel_id)
            .filter(|channel| *channel != slow)
            .collect();
        (posted.len() == healthy.len()).then_some(())
    })
    .await;
    assert!(
        fake.posts().iter().all(|p| p.channel_id != slow),
        "the busy channel is still waiting for its bucket"
    );
    fake.unlimit_channel(slow);
    eventually(WAIT, "the busy channel's hundred replies", || async {
        (fake.posts().iter().filter(|p| p.channel_id == slow).count() == 100).then_some(())
    })
    .await;
    bot.stop().await;
    let slow_texts: Vec<String> = fake
        .posts()
        .iter()
        .filter(|p| p.channel_id == slow)
        .map(|p| p.content().to_string())
        .collect();
    let expected: Vec<String> = (0..100).map(|n| format!("slow {n}")).collect();
    assert_eq!(slow_texts, expected, "in order, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_command_deferred_before_a_restart_still_gets_its_one_follow_up() {
    let (fake, kafka) = setup().await;
    let mut queries: TopicReader<BotQuery> = TopicReader::new(&kafka);
    let first = TestBot::start(&fake, &kafka, &[]).await;
    fake.push_interaction(slash(905, "how do I deploy?"));
    queries.next(WAIT).await;
    first.stop().await;
    fake.until_disconnected(WAIT).await;
    // No answer ever comes (say the processor is down): the restarted bot still ends the
    // command at its deadline instead of leaving the asker on "thinking…".
    let second = TestBot::start(&fake, &kafka, &["--slash-deadline-secs", "2"]).await;
    eventually(WAIT, "the notice", || async {
        (!fake.followups().is_empty()).then_some(())
    })
    .await;
    second.stop().await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].interaction_id, Some(905));
    assert_eq!(attempts[0].content(), bot::questions::SLASH_TIMEOUT_NOTICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_as_in_production_serenitys_rate_limiter_keeps_to_discords_buckets() {
    let fake = FakeDiscord::start_with(FakeOptions {
        rate_limits: Some(fake_discord::RateLimits {
            per_route: 3,
            window: Duration::from_secs(2),
            global_per_second: 50,
        }),
        ..FakeOptions::default()
    })
    .await;
    let other = 21u64;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    fake.add_channel(other, Some(GUILD), "other");
    let kafka = services::kafka_with_topics().await;

    // The fake refuses what Discord refuses: without a limiter, the fourth post in the window
    // is a 429.
    let unlimited = serenity::http::HttpBuilder::new("fake-token")
        .proxy(fake.base_url())
        .ratelimiter_disabled(true)
        .build();
    let mut refused = 0;
    for n in 0..4 {
        let post = serenity::all::CreateMessage::new().content(format!("unlimited {n}"));
        if serenity::all::ChannelId::new(other)
            .send_message(&unlimited, post)
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 1,
        "the fourth post in the bucket's window is refused"
    );
    assert_eq!(fake.rate_limited(), (1, 0));

    // The bot as production runs it: it waits for the bucket instead of being refused.
    let args = TestBot::as_in_production(&fake);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bot = TestBot::start(&fake, &kafka, &args).await;
    let producer = Producer::new(&kafka, "test").expect("producer");
    for n in 0..8 {
        producer
            .send(&response(
                &format!("q-bucket-{n}"),
                960 + n,
                &format!("answer {n}"),
            ))
            .await
            .expect("acked");
    }
    eventually(WAIT, "eight answers", || async {
        (fake
            .posts()
            .iter()
            .filter(|p| p.content().starts_with("answer"))
            .count()
            == 8)
            .then_some(())
    })
    .await;
    bot.stop().await;
    let answers: Vec<String> = fake
        .attempts()
        .iter()
        .filter(|p| p.content().starts_with("answer"))
        .map(|p| p.content().to_string())
        .collect();
    assert_eq!(answers.len(), 8, "each once: {answers:?}");
    assert_eq!(
        fake.rate_limited(),
        (1, 0),
        "serenity kept to the announced buckets: no 429 for the bot"
    );
}
