//! The bot in-process against the strict fake Discord and the real Kafka broker: what it
//! publishes, triggers, notices, reconnects, and the fake's own shapes.

mod common;

use common::*;

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
    let _: serenity::all::Guild =
        serde_json::from_value(fake_discord::guild_create(3)).expect("GUILD_CREATE");
    let invoked = fake_discord::Invoked {
        command: "rtfm-admin".into(),
        subcommand: Some("channels".into()),
        options: serde_json::Map::from_iter([
            ("action".to_string(), json!("exclude")),
            ("channel".to_string(), json!("2")),
        ]),
        permissions: 32,
    };
    for guild in [Some(3), None] {
        let interaction: serenity::all::Interaction = serde_json::from_value(
            fake_discord::command_interaction(6, 2, guild, human(4), &invoked),
        )
        .expect("a moderator's command, in a guild and in a DM");
        let serenity::all::Interaction::Command(command) = interaction else {
            panic!("a command");
        };
        assert_eq!(
            bot::commands::parse(&command.data.name, &command.data.options),
            bot::commands::Invocation::Channels {
                action: bot::commands::ChannelAction::Exclude,
                channel: Some(2)
            }
        );
        assert_eq!(command.guild_id.is_some(), guild.is_some());
    }
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
        assert_eq!(query.guild_id, Some(10.into()));
        assert!(uuid::Uuid::parse_str(query.query_id.as_str()).is_ok());
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
        &response(query.query_id.as_str(), 206, "Deploy with `make deploy`."),
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
    assert_eq!(query.visible_channel_ids, Some(vec![(CHANNEL + 1).into()]));
    ask(302, CHANNEL + 2, GUILD);
    let query = queries.next(WAIT).await;
    assert_eq!(
        query.visible_channel_ids,
        Some(vec![CHANNEL.into(), (CHANNEL + 1).into()]),
        "a private channel's readers may read the public ones"
    );
    assert_eq!(fake.guild_lookups(), 2, "one lookup per guild, reused");
    // A guild the fake does not know answers 404 Unknown Guild.
    ask(303, 77, 99);
    let query = queries.next(WAIT).await;
    assert_eq!(query.guild_id, Some(99.into()));
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
        (edit.event, edit.message_id, edit.content.as_str()),
        (MessageEvent::Edit, 701.into(), "fixed typo")
    );
    fake.push_delete(702, CHANNEL, Some(GUILD));
    let delete = messages.next(WAIT).await;
    assert_eq!(
        (delete.event, delete.message_id),
        (MessageEvent::Delete, 702.into())
    );
    fake.push_delete_bulk(&[703, 704], CHANNEL, Some(GUILD));
    let ids: BTreeSet<rtfm_core::ids::MessageId> =
        [messages.next(WAIT).await, messages.next(WAIT).await]
            .into_iter()
            .map(|m| m.message_id)
            .collect();
    assert_eq!(ids, BTreeSet::from([703.into(), 704.into()]));
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
    let mut ids: Vec<_> = messages.records().iter().map(|m| m.message_id).collect();
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
