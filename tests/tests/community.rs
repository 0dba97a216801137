//! The community decides what RTFM keeps, end to end: the real `bot` and `processor` binaries,
//! the real broker and Chroma, the strict fake Discord. A member's forget-me (three channels
//! and a thread), its receipt, remember-me; moderators excluding and including channels; the
//! refusals that change nothing; a processor killed in the middle of a removal.

mod common;

use common::*;
use processor::store::{Field, Scalar};
use rtfm_core::ControlRecord;
use test_support::chroma_proxy::ChromaProxy;
use test_support::fake_discord::{Invoked, PostKind, Posted};

const GUILD: u64 = 71;
const OTHER_GUILD: u64 = 72;
const GENERAL: u64 = 7101;
const HELP: u64 = 7102;
const OPS: u64 = 7103;
const THREAD: u64 = 7104;
/// A private thread of #help.
const PRIVATE: u64 = 7105;
const ELSEWHERE: u64 = 7201;
const MEMBER: u64 = 8801;
const OTHER: u64 = 8802;
const MODERATOR: u64 = 8803;
/// Manage Server.
const MANAGE_GUILD: u64 = 1 << 5;

fn world(fake: &FakeDiscord) {
    fake.add_channel(GENERAL, Some(GUILD), "general");
    fake.add_channel(HELP, Some(GUILD), "help");
    fake.add_channel(OPS, Some(GUILD), "ops");
    fake.add_thread(THREAD, GENERAL, true, "deploys");
    fake.add_thread(PRIVATE, HELP, false, "escalations");
    fake.add_channel(ELSEWHERE, Some(OTHER_GUILD), "elsewhere");
}

fn say(fake: &FakeDiscord, channel: u64, author: u64, text: &str) -> u64 {
    let id = fake.next_message_id();
    fake.push_message(fake_discord::message_now(
        id,
        channel,
        Some(GUILD),
        author,
        text,
    ));
    id
}

/// Runs a slash command; returns the interaction's id.
fn invoke(
    fake: &FakeDiscord,
    guild: Option<u64>,
    channel: u64,
    user: u64,
    invoked: Invoked,
) -> u64 {
    let id = fake.next_message_id();
    fake.push_interaction(fake_discord::command_interaction(
        id,
        channel,
        guild,
        fake_discord::user(user, &format!("member{user}"), false),
        &invoked,
    ));
    id
}

/// `/rtfm <subcommand>` by a member.
fn member(subcommand: &str) -> Invoked {
    Invoked {
        command: "rtfm".into(),
        subcommand: Some(subcommand.into()),
        ..Invoked::default()
    }
}

/// `/rtfm-admin <subcommand>` by someone with `permissions`.
fn admin(subcommand: &str, permissions: u64) -> Invoked {
    Invoked {
        command: "rtfm-admin".into(),
        subcommand: Some(subcommand.into()),
        permissions,
        ..Invoked::default()
    }
}

/// `/rtfm-admin channels` by someone with `permissions`.
fn channels(action: &str, channel: Option<u64>, permissions: u64) -> Invoked {
    let mut options = Map::from_iter([("action".to_string(), json!(action))]);
    if let Some(channel) = channel {
        options.insert("channel".into(), json!(channel.to_string()));
    }
    Invoked {
        command: "rtfm-admin".into(),
        subcommand: Some("channels".into()),
        options,
        permissions,
    }
}

/// What the bot showed the person who ran interaction `id` (responses, follow-ups, edits).
fn shown(fake: &FakeDiscord, id: u64) -> Vec<Posted> {
    fake.attempts()
        .into_iter()
        .filter(|post| post.interaction_id == Some(id))
        .collect()
}

async fn until_shown(fake: &FakeDiscord, id: u64, what: &str, needle: &str) -> Posted {
    eventually(WAIT, what, || async {
        shown(fake, id)
            .into_iter()
            .find(|post| post.content().contains(needle))
    })
    .await
}

fn by(field: Field, id: u64) -> Filter {
    Filter::Eq(field, Scalar::Text(id.to_string()))
}

async fn stored(store: &ChromaStore, filter: Filter) -> usize {
    store
        .get(
            &Filter::all_of([by(Field::Guild, GUILD), filter]),
            &[],
            None,
        )
        .await
        .expect("chroma")
        .len()
}

/// The text of the bot's reply to message `id`.
async fn reply_to(fake: &FakeDiscord, id: u64) -> String {
    eventually(WAIT, "the answer", || async {
        fake.posts()
            .into_iter()
            .find(|post| post.reply_to() == Some(id))
            .map(|post| post.content().to_string())
    })
    .await
}

/// Private topics and collection, the processor (on Chroma through `proxy` if given) and the
/// bot on them.
async fn services(
    fake: &FakeDiscord,
    proxy: Option<&ChromaProxy>,
) -> (KafkaConfig, String, String, ServiceProcess, ServiceProcess) {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let via = proxy.map_or_else(|| chroma.clone(), ChromaProxy::url);
    let (processor, _) = processor(&kafka, &via, &collection, &[]);
    let bot = bot(&kafka, fake);
    eventually(WAIT, "the bot on the gateway", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;
    (kafka, chroma, collection, processor, bot)
}

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
    eventually(WAIT, "five messages indexed", || async {
        (store.count().await.ok()? == 5).then_some(())
    })
    .await;
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
    eventually(WAIT, "three messages indexed", || async {
        (store.count().await.ok()? == 3).then_some(())
    })
    .await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_threads_and_channels_and_a_server_rtfm_left_leave_the_index() {
    const BACK: u64 = 73;
    const BACK_CHANNEL: u64 = 7301;
    let fake = FakeDiscord::start().await;
    world(&fake);
    fake.add_channel(BACK_CHANNEL, Some(BACK), "back");
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
    for (channel, guild) in [(ELSEWHERE, OTHER_GUILD), (BACK_CHANNEL, BACK)] {
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
    eventually(WAIT, "six messages indexed", || async {
        (store.count().await.ok()? == 6).then_some(())
    })
    .await;

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
    fake.add_to_guild(BACK);
    let mut control: TopicReader<ControlRecord> = TopicReader::new(&kafka);
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
    eventually(WAIT, "three messages indexed", || async {
        (store.count().await.ok()? == 3).then_some(())
    })
    .await;
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
    eventually(WAIT, "three messages indexed", || async {
        (store.count().await.ok()? == 3).then_some(())
    })
    .await;
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
