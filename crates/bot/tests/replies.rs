//! Replies: exactly once whatever Discord does (errors, 502 after creating, timeouts, no nonce
//! deduplication, a restart), split under the limit, one channel never holding up another.

mod common;

use common::*;

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
    reply.channel_id = other.into();
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
        answer.channel_id = channel.into();
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
        answer.channel_id = channel.into();
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
