//! The community decides what RTFM keeps, end to end: the real `bot` and `processor` binaries,
//! the real broker and Chroma, the strict fake Discord. A member's forget-me (three channels
//! and a thread), its receipt, remember-me; moderators excluding and including channels; the
//! refusals that change nothing; a processor killed in the middle of a removal.

mod common;

use common::community::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forget_me_removes_a_member_everywhere_with_an_exact_receipt_and_remember_me_resumes() {
    let fake = FakeDiscord::start().await;
    world(&fake);
    // Deletions can be held back: the answers must not wait for them.
    let proxy = ChromaProxy::start(&services::chroma_url()).await;
    let (kafka, chroma, collection, _processor, _bot) = services(&fake, Some(&proxy)).await;
    // The commands as Discord shows them: the moderators' one is for Manage Server only.
    let registered = fake.commands();
    let admin = registered
        .iter()
        .find(|command| command["name"] == "rtfm-admin")
        .expect("/rtfm-admin registered");
    assert_eq!(admin["default_member_permissions"], "32");

    let facts = [
        (GENERAL, "the orion service listens on port 7311"),
        (HELP, "orion logs live in /var/log/orion/current"),
        (OPS, "restart orion with systemctl restart orion-7311"),
        (THREAD, "orion deploys go through the blue-green pipeline"),
    ];
    for (channel, text) in facts {
        say(&fake, channel, MEMBER, text);
    }
    say(
        &fake,
        GENERAL,
        OTHER,
        "the vega service listens on port 9120",
    );
    let store = store(&chroma, &collection).await;
    until_indexed(&store, 5).await;
    let before = say(
        &fake,
        GENERAL,
        OTHER,
        "rtfm which port does the orion service listen on?",
    );
    assert!(
        reply_to(&fake, before).await.contains("7311"),
        "the member's answer is quoted before forget-me"
    );

    proxy.refuse_deletes(true);
    let forget = invoke(&fake, Some(GUILD), HELP, MEMBER, member("forget-me"));
    let done = until_shown(
        &fake,
        forget,
        "forget-me acknowledged",
        "neither indexes nor quotes",
    )
    .await;
    assert!(done.ephemeral, "only the member sees it");
    // From the moment it answered, no answer quotes them, while their messages are still
    // stored (the deletion is held back).
    let after = say(&fake, GENERAL, OTHER, "rtfm orion port 7311 listen?");
    let answer = reply_to(&fake, after).await;
    assert!(!answer.contains("orion service listens"), "{answer}");
    assert_eq!(
        stored(&store, by(Field::Author, MEMBER)).await,
        4,
        "not deleted yet"
    );
    proxy.refuse_deletes(false);
    let receipt = until_shown(&fake, forget, "the receipt", "Receipt").await;
    assert!(receipt.ephemeral);
    assert!(
        receipt.content().contains("removed 4 of your messages"),
        "the receipt counts exactly: {}",
        receipt.content()
    );
    assert_eq!(stored(&store, by(Field::Author, MEMBER)).await, 0);
    assert_eq!(stored(&store, by(Field::Author, OTHER)).await, 1);
    // The control API lists them with their interaction and visibility.
    let listed = test_support::http_get(&format!("{}/_fake/posts", fake.base_url()))
        .await
        .expect("posts")
        .1;
    assert!(
        listed.contains(&format!("\"interaction_id\":\"{forget}\"")),
        "{listed}"
    );
    assert!(listed.contains("\"ephemeral\":true"));

    // Their next message is not indexed (the other member's, sent after it, is).
    say(&fake, OPS, MEMBER, "orion canaries run every 10 minutes");
    say(&fake, OPS, OTHER, "vega canaries run every hour");
    eventually(WAIT, "the other member's message indexed", || async {
        (stored(&store, by(Field::Author, OTHER)).await == 2).then_some(())
    })
    .await;
    assert_eq!(stored(&store, by(Field::Author, MEMBER)).await, 0);
    // Their records still in discord-messages, read again (a consumer-group reset, a backfill
    // publishing the history again), are not indexed again.
    let mut topic: TopicReader<DiscordMessage> = TopicReader::new(&kafka);
    let theirs: Vec<DiscordMessage> = topic
        .until("the member's records", WAIT, |seen| {
            seen.iter()
                .filter(|received| received.record.user_id == MEMBER.to_string())
                .count()
                >= 5
        })
        .await
        .iter()
        .map(|received| received.record.clone())
        .filter(|record| record.user_id == MEMBER.to_string())
        .collect();
    let producer = Producer::new(&kafka, "replay").expect("producer");
    for record in &theirs {
        producer.send(record).await.expect("acked");
    }
    services::until_group_passed_all::<DiscordMessage>(
        &kafka,
        rtfm_core::topics::GROUP_MESSAGE_PROCESSOR,
        WAIT,
    )
    .await;
    assert_eq!(
        stored(&store, by(Field::Author, MEMBER)).await,
        0,
        "{} records of theirs read again, none indexed",
        theirs.len()
    );

    // Twice is harmless: nothing is left to remove.
    let again = invoke(&fake, Some(GUILD), HELP, MEMBER, member("forget-me"));
    let second = until_shown(&fake, again, "the second receipt", "Receipt").await;
    assert!(
        second.content().contains("removed 0 of your messages"),
        "{}",
        second.content()
    );

    let remember = invoke(&fake, Some(GUILD), HELP, MEMBER, member("remember-me"));
    until_shown(
        &fake,
        remember,
        "remember-me acknowledged",
        "indexes your new messages",
    )
    .await;
    say(&fake, OPS, MEMBER, "orion now listens on port 7400");
    eventually(WAIT, "the member's new message indexed", || async {
        (stored(&store, by(Field::Author, MEMBER)).await == 1).then_some(())
    })
    .await;
    assert!(
        !shown(&fake, forget)
            .iter()
            .any(|post| post.content().contains("7311")),
        "receipts carry counts, not content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderators_exclude_and_include_channels_and_everyone_else_changes_nothing() {
    let fake = FakeDiscord::start().await;
    world(&fake);
    // History the inclusion reads back (older than anything said live).
    let history: Vec<_> = (0..250u64)
        .map(|n| {
            fake_discord::message(
                fake.next_message_id(),
                HELP,
                Some(GUILD),
                fake_discord::user(OTHER, "helper", false),
                &format!("help archive entry {n}: the answer is {}", n * 7),
            )
        })
        .collect();
    fake.add_history(HELP, history);
    let (kafka, chroma, collection, _processor, _bot) = services(&fake, None).await;
    say(&fake, HELP, OTHER, "the atlas cluster runs postgres 16");
    say(&fake, GENERAL, OTHER, "the atlas cluster backs up nightly");
    say(
        &fake,
        PRIVATE,
        OTHER,
        "atlas escalations go to the database team",
    );
    let store = store(&chroma, &collection).await;
    until_indexed(&store, 3).await;

    // A member without Manage Server: refused, privately, nothing recorded.
    let refused = invoke(
        &fake,
        Some(GUILD),
        HELP,
        OTHER,
        channels("exclude", Some(HELP), 0),
    );
    let refusal = until_shown(&fake, refused, "the refusal", "Only members who can manage").await;
    assert_eq!(refusal.kind, PostKind::Response);
    assert!(refusal.ephemeral);
    // In a DM, and for another guild's channel: explained, nothing recorded.
    let dm = invoke(&fake, None, GENERAL, MEMBER, member("forget-me"));
    until_shown(&fake, dm, "the DM hint", "works in a server").await;
    let foreign = invoke(
        &fake,
        Some(GUILD),
        HELP,
        MODERATOR,
        channels("exclude", Some(ELSEWHERE), MANAGE_GUILD),
    );
    until_shown(
        &fake,
        foreign,
        "another guild's channel",
        "not a channel of this server",
    )
    .await;
    let unseen = invoke(
        &fake,
        Some(GUILD),
        HELP,
        MODERATOR,
        channels("exclude", Some(7_999), MANAGE_GUILD),
    );
    until_shown(
        &fake,
        unseen,
        "a channel RTFM cannot see",
        "cannot see that channel",
    )
    .await;
    let before = say(
        &fake,
        HELP,
        OTHER,
        "rtfm which postgres does the atlas cluster run?",
    );
    assert!(reply_to(&fake, before).await.contains("postgres 16"));
    let mut control: TopicReader<ControlRecord> = TopicReader::new(&kafka);

    // A moderator excludes #help: its messages leave Chroma and answers, with a receipt.
    let exclude = invoke(
        &fake,
        Some(GUILD),
        GENERAL,
        MODERATOR,
        channels("exclude", Some(HELP), MANAGE_GUILD),
    );
    let receipt = until_shown(&fake, exclude, "the exclusion's receipt", "Receipt").await;
    assert!(
        receipt
            .content()
            .contains(&format!("removed 2 messages of <#{HELP}>")),
        "{}",
        receipt.content()
    );
    assert_eq!(stored(&store, by(Field::Channel, HELP)).await, 0);
    assert_eq!(
        stored(&store, by(Field::Channel, PRIVATE)).await,
        0,
        "its private thread too"
    );
    assert_eq!(stored(&store, by(Field::Channel, GENERAL)).await, 1);
    let after = say(
        &fake,
        HELP,
        OTHER,
        "rtfm which postgres does the atlas cluster run?",
    );
    let answer = reply_to(&fake, after).await;
    assert!(!answer.contains("postgres 16"), "{answer}");
    let records = control
        .until("the exclusion and its receipts", WAIT, |seen| {
            seen.len() >= 3
        })
        .await;
    assert!(
        records
            .iter()
            .all(|received| { received.record.channel_id == Some(HELP.into()) }),
        "nothing recorded for the refused commands: {:?}",
        records
            .iter()
            .map(|received| &received.record)
            .collect::<Vec<_>>()
    );
    say(&fake, HELP, OTHER, "atlas failover takes 30 seconds");
    say(&fake, GENERAL, OTHER, "atlas failover is manual");
    eventually(WAIT, "the #general message indexed", || async {
        (stored(&store, by(Field::Channel, GENERAL)).await == 2).then_some(())
    })
    .await;
    assert_eq!(
        stored(&store, by(Field::Channel, HELP)).await,
        0,
        "#help is not read"
    );

    let list = invoke(
        &fake,
        Some(GUILD),
        GENERAL,
        MODERATOR,
        channels("list", None, MANAGE_GUILD),
    );
    until_shown(&fake, list, "the list", &format!("**Excluded:** <#{HELP}>")).await;

    // Included again: its history is read back, with progress in the command's response.
    let include = invoke(
        &fake,
        Some(GUILD),
        GENERAL,
        MODERATOR,
        channels("include", Some(HELP), MANAGE_GUILD),
    );
    let finished = until_shown(&fake, include, "the inclusion done", "read its history").await;
    assert_eq!(finished.kind, PostKind::Edit);
    assert!(finished.ephemeral);
    eventually(WAIT, "#help's history indexed", || async {
        (stored(&store, by(Field::Channel, HELP)).await >= 250).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_processor_killed_in_the_middle_of_a_removal_finishes_it_with_the_same_count() {
    let fake = FakeDiscord::start().await;
    world(&fake);
    // Deletions held back: the processor dies after counting, before deleting everything.
    let proxy = ChromaProxy::start(&services::chroma_url()).await;
    let (kafka, chroma, collection, mut processor, _bot) = services(&fake, Some(&proxy)).await;
    let producer = Producer::new(&kafka, "community-test").expect("producer");
    const MESSAGES: u64 = 600;
    let records: Vec<DiscordMessage> = (0..MESSAGES)
        .map(|n| DiscordMessage {
            user_id: MEMBER.into(),
            guild_id: Some(GUILD.into()),
            ..message(
                9_000_000 + n,
                [GENERAL, HELP, OPS][n as usize % 3],
                format!("note {n} about the orion rollout"),
            )
        })
        .collect();
    join_all(records.iter().map(|record| producer.send(record)))
        .await
        .into_iter()
        .for_each(|sent| {
            sent.expect("acked");
        });
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "the member's messages indexed", || async {
        (stored(&store, by(Field::Author, MEMBER)).await == MESSAGES as usize).then_some(())
    })
    .await;

    proxy.refuse_deletes(true);
    let forget = invoke(&fake, Some(GUILD), HELP, MEMBER, member("forget-me"));
    // The count is recorded before anything is deleted; the processor dies while deleting.
    let mut control: TopicReader<ControlRecord> = TopicReader::new(&kafka);
    control
        .until("the counted receipt", WAIT, |seen| {
            seen.iter()
                .any(|received| received.record.done == Some(false))
        })
        .await;
    eventually(WAIT, "the deletion tried", || async {
        (proxy.refused() > 0).then_some(())
    })
    .await;
    processor.kill_9();
    // Half of it went before the crash.
    let half: Vec<rtfm_core::ids::MessageId> =
        (0..MESSAGES / 2).map(|n| (9_000_000 + n).into()).collect();
    store.delete(&half).await.expect("delete");
    proxy.refuse_deletes(false);
    let (_again, _) = common::processor(&kafka, &proxy.url(), &collection, &[]);
    let receipt = until_shown(&fake, forget, "the receipt", "Receipt").await;
    assert!(
        receipt
            .content()
            .contains(&format!("removed {MESSAGES} of your messages")),
        "the count recorded before the crash, not what was left after it: {}",
        receipt.content()
    );
    assert_eq!(stored(&store, by(Field::Author, MEMBER)).await, 0);
}
