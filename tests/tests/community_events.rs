//! The community decides what RTFM keeps, as Discord tells it: deleted threads and channels
//! and a server RTFM left leave the index (after a grace period, and not for an outage);
//! moderators' status; an asker's ✅ and a forum post's solved tag; opt-in channels. The real
//! binaries, broker and Chroma, the strict fake Discord.

mod common;

use common::community::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_threads_and_channels_and_a_server_rtfm_left_leave_the_index() {
    const BACK: u64 = 73;
    const BACK_CHANNEL: u64 = 7301;
    // Removed and added back at once: the bot may handle the two events in either order.
    const AT_ONCE: u64 = 74;
    const AT_ONCE_CHANNEL: u64 = 7401;
    let fake = FakeDiscord::start().await;
    world(&fake);
    fake.add_channel(BACK_CHANNEL, Some(BACK), "back");
    fake.add_channel(AT_ONCE_CHANNEL, Some(AT_ONCE), "at-once");
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    // A removed server's messages stay 10.8 s here (168 hours by default).
    let (_processor, _) = processor(
        &kafka,
        &chroma,
        &collection,
        &[("INDEX_GUILD_GRACE_HOURS", "0.003")],
    );
    let _bot = bot(&kafka, &fake);
    eventually(WAIT, "the bot on the gateway", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;
    for (channel, text) in [
        (GENERAL, "general knowledge"),
        (THREAD, "a thread's knowledge"),
        (HELP, "help knowledge"),
        (OPS, "ops knowledge"),
    ] {
        say(&fake, channel, OTHER, text);
    }
    for (channel, guild) in [
        (ELSEWHERE, OTHER_GUILD),
        (BACK_CHANNEL, BACK),
        (AT_ONCE_CHANNEL, AT_ONCE),
    ] {
        let id = fake.next_message_id();
        fake.push_message(fake_discord::message_now(
            id,
            channel,
            Some(guild),
            OTHER,
            "elsewhere",
        ));
    }
    let store = store(&chroma, &collection).await;
    until_indexed(&store, 7).await;

    fake.delete_channel(THREAD);
    eventually(WAIT, "the deleted thread's messages gone", || async {
        (stored(&store, by(Field::Channel, THREAD)).await == 0).then_some(())
    })
    .await;
    fake.delete_channel(HELP);
    eventually(WAIT, "the deleted channel's messages gone", || async {
        (stored(&store, by(Field::Channel, HELP)).await == 0).then_some(())
    })
    .await;
    assert_eq!(stored(&store, by(Field::Channel, GENERAL)).await, 1);

    // An outage is not a removal; a removal waits out the grace period; a server RTFM is
    // added back to within it keeps its messages.
    fake.guild_outage(GUILD);
    fake.remove_from_guild(OTHER_GUILD);
    fake.remove_from_guild(BACK);
    fake.remove_from_guild(AT_ONCE);
    fake.add_to_guild(AT_ONCE);
    let mut control: TopicReader<ControlRecord> = TopicReader::new(&kafka);
    control
        .until("RTFM recorded as removed from a server", WAIT, |seen| {
            seen.iter().any(|received| {
                received.record.guild_id == BACK.to_string()
                    && received.record.indexed == Some(false)
            })
        })
        .await;
    fake.add_to_guild(BACK);
    control
        .until("RTFM recorded as back in the server", WAIT, |seen| {
            seen.iter().any(|received| {
                received.record.guild_id == BACK.to_string()
                    && received.record.indexed == Some(true)
            })
        })
        .await;
    let elsewhere = || Filter::Eq(Field::Guild, Scalar::Text(OTHER_GUILD.to_string()));
    assert_eq!(
        store
            .get(&elsewhere(), &[], None)
            .await
            .expect("chroma")
            .len(),
        1,
        "kept during the grace period"
    );
    eventually(
        WAIT,
        "the left server's messages gone after the grace period",
        || async {
            store
                .get(&elsewhere(), &[], None)
                .await
                .ok()?
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let back = Filter::Eq(Field::Guild, Scalar::Text(BACK.to_string()));
    assert_eq!(
        store.get(&back, &[], None).await.expect("chroma").len(),
        1,
        "the server RTFM came back to"
    );
    let at_once = Filter::Eq(Field::Guild, Scalar::Text(AT_ONCE.to_string()));
    assert_eq!(
        store.get(&at_once, &[], None).await.expect("chroma").len(),
        1,
        "the server RTFM was removed from and added back to at once"
    );
    // Long after both events were handled (the grace period passed), the latest word on that
    // server, if any, is not that RTFM left it.
    control.nothing_within(Duration::from_secs(2)).await;
    let latest = control
        .records()
        .iter()
        .rev()
        .find(|record| {
            record.guild_id == AT_ONCE.to_string()
                && record.kind == rtfm_core::schema::ControlKind::Guild
        })
        .map(|record| record.indexed);
    assert_ne!(
        latest,
        Some(Some(false)),
        "recorded as gone although it is back"
    );
    assert_eq!(
        stored(&store, by(Field::Channel, GENERAL)).await,
        1,
        "an outage removes nothing"
    );
    assert_eq!(stored(&store, by(Field::Channel, OPS)).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_shows_moderators_what_rtfm_knows_and_what_it_could_not_answer() {
    let fake = FakeDiscord::start().await;
    world(&fake);
    let (_kafka, chroma, collection, _processor, _bot) = services(&fake, None).await;
    say(
        &fake,
        GENERAL,
        OTHER,
        "the deploy key is rotated with vaultctl rotate --key deploy",
    );
    say(
        &fake,
        GENERAL,
        OTHER,
        "vaultctl needs the ops role to rotate keys",
    );
    say(
        &fake,
        HELP,
        MODERATOR,
        "the staging database is reset every sunday night",
    );
    let store = store(&chroma, &collection).await;
    until_indexed(&store, 3).await;
    let answered = say(
        &fake,
        GENERAL,
        MEMBER,
        "rtfm how do I rotate the deploy key?",
    );
    assert!(reply_to(&fake, answered).await.contains("vaultctl"));
    let open = say(
        &fake,
        GENERAL,
        MEMBER,
        "rtfm who won the chess olympiad held in elista in 1998?",
    );
    assert!(reply_to(&fake, open).await.contains("couldn't find"));

    let refused = invoke(&fake, Some(GUILD), GENERAL, MEMBER, admin("status", 0));
    until_shown(&fake, refused, "the refusal", "Only members who can manage").await;
    let status = invoke(
        &fake,
        Some(GUILD),
        GENERAL,
        MODERATOR,
        admin("status", MANAGE_GUILD),
    );
    let shown = until_shown(&fake, status, "the status", "RTFM in this server").await;
    assert!(shown.ephemeral, "only the moderator sees it");
    let text = shown.content();
    assert!(
        text.contains(&format!(
            "Indexed: 3 messages — <#{GENERAL}> 2 · <#{HELP}> 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("2 questions, 1 answered (50 %), 1 not found"),
        "{text}"
    );
    assert!(
        text.contains("“who won the chess olympiad held in elista in 1998?”"),
        "{text}"
    );
    assert!(text.contains("closest earlier answers by human"), "{text}");
    assert!(!text.contains("<@"), "nobody is pinged: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_askers_check_mark_and_a_solved_tag_mark_the_answer_and_rank_it_higher() {
    const FORUM: u64 = 7110;
    const POST: u64 = 7111;
    const ASKER: u64 = 8810;
    const HELPER_A: u64 = 8811;
    const HELPER_B: u64 = 8812;
    let fake = FakeDiscord::start().await;
    world(&fake);
    fake.add_forum(FORUM, GUILD, "support");
    fake.set_forum_tags(FORUM, &[(1, "Solved"), (2, "bug")]);
    fake.add_thread(POST, FORUM, true, "staging after the migration");
    fake.set_thread_owner(POST, ASKER);
    let (kafka, chroma, collection, _processor, _bot) = services(&fake, None).await;
    say(
        &fake,
        POST,
        ASKER,
        "staging has been broken since the migration, any ideas?",
    );
    let a = say(
        &fake,
        POST,
        HELPER_A,
        "to reset the staging database run db-reset --env staging",
    );
    let b = say(
        &fake,
        POST,
        HELPER_B,
        "resetting the staging database also works from the admin console",
    );
    let store = store(&chroma, &collection).await;
    until_indexed(&store, 3).await;
    // Which of the two answers comes first: `true` for A's.
    let a_first = |text: &str| {
        let (a, b) = (text.find("db-reset"), text.find("admin console"));
        assert!(a.is_some() && b.is_some(), "both quoted: {text}");
        a < b
    };
    let ask = || {
        say(
            &fake,
            POST,
            OTHER,
            "rtfm how do I reset the staging database?",
        )
    };
    let before = a_first(&reply_to(&fake, ask()).await);
    // The one that came second is what the asker marks.
    let (marked, marked_is_a) = if before { (b, false) } else { (a, true) };

    let mut control: TopicReader<ControlRecord> = TopicReader::new(&kafka);
    // Not marks: a ✅ by someone who did not ask, and by the author on their own message.
    let author = if marked_is_a { HELPER_A } else { HELPER_B };
    fake.react(POST, marked, OTHER, "✅", true);
    fake.react(POST, marked, author, "✅", true);
    // The asker's ✅ (it is their forum post) marks it.
    fake.react(POST, marked, ASKER, "✅", true);
    let marks = control
        .until("the asker's mark", WAIT, |seen| !seen.is_empty())
        .await;
    assert_eq!(marks.len(), 1, "only the asker's ✅ counts: {marks:?}");
    assert_eq!(marks[0].record.message_id, Some(marked.into()));
    assert_eq!(marks[0].record.solved, Some(true));
    let text = reply_to(&fake, ask()).await;
    assert_eq!(
        a_first(&text),
        marked_is_a,
        "the marked answer first: {text}"
    );
    // Taken back: the order returns.
    fake.react(POST, marked, ASKER, "✅", false);
    let marks = control
        .until("the mark taken back", WAIT, |seen| seen.len() >= 2)
        .await;
    assert_eq!(
        marks[1].record.solved,
        Some(false),
        "nothing else recorded: {marks:?}"
    );
    assert_eq!(a_first(&reply_to(&fake, ask()).await), before);

    // A forum post tagged Solved (and untagged).
    fake.tag_thread(POST, &[2]);
    fake.tag_thread(POST, &[2, 1]);
    let tagged = control
        .until("the post tagged solved", WAIT, |seen| seen.len() >= 3)
        .await;
    let record = &tagged[2].record;
    assert_eq!(
        (record.channel_id, record.message_id, record.solved),
        (Some(POST.into()), None, Some(true)),
        "a tag other than solved records nothing; Solved marks the post"
    );
    fake.tag_thread(POST, &[2]);
    control
        .until("the tag taken off", WAIT, |seen| {
            seen.len() >= 4 && seen[3].record.solved == Some(false)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_opt_in_only_the_channels_a_moderator_included_are_read() {
    let fake = FakeDiscord::start().await;
    world(&fake);
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let (_processor, _) = processor(
        &kafka,
        &chroma,
        &collection,
        &[("INDEX_CHANNELS", "opt-in")],
    );
    let _bot = spawn_bot(
        &kafka,
        &fake.base_url(),
        "fault-token",
        &[
            ("INDEX_CHANNELS", "opt-in"),
            ("RATE_LIMIT_PER_MINUTE", "1000"),
        ],
    )
    .0;
    eventually(WAIT, "the bot on the gateway", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;
    say(
        &fake,
        GENERAL,
        OTHER,
        "the nebula service runs on port 6100",
    );
    say(&fake, HELP, OTHER, "nebula logs rotate daily");
    services::until_group_passed_all::<DiscordMessage>(
        &kafka,
        rtfm_core::topics::GROUP_MESSAGE_PROCESSOR,
        WAIT,
    )
    .await;
    let store = store(&chroma, &collection).await;
    assert_eq!(
        store.count().await.expect("count"),
        0,
        "nothing included, nothing read"
    );
    let list = invoke(
        &fake,
        Some(GUILD),
        GENERAL,
        MODERATOR,
        channels("list", None, MANAGE_GUILD),
    );
    until_shown(
        &fake,
        list,
        "the policy",
        "only the channels a moderator included",
    )
    .await;
    let include = invoke(
        &fake,
        Some(GUILD),
        GENERAL,
        MODERATOR,
        channels("include", Some(GENERAL), MANAGE_GUILD),
    );
    until_shown(&fake, include, "the inclusion done", "read its history").await;
    eventually(WAIT, "#general read back", || async {
        (stored(&store, by(Field::Channel, GENERAL)).await == 1).then_some(())
    })
    .await;
    say(&fake, GENERAL, OTHER, "nebula deploys on fridays");
    say(&fake, HELP, OTHER, "nebula alerts go to #ops");
    eventually(WAIT, "the new #general message indexed", || async {
        (stored(&store, by(Field::Channel, GENERAL)).await == 2).then_some(())
    })
    .await;
    services::until_group_passed_all::<DiscordMessage>(
        &kafka,
        rtfm_core::topics::GROUP_MESSAGE_PROCESSOR,
        WAIT,
    )
    .await;
    assert_eq!(
        stored(&store, by(Field::Channel, HELP)).await,
        0,
        "#help was never included"
    );
}
