//! What the community tests share: a guild with channels, a thread, a private thread and
//! members; commands as Discord sends them; what reached the fake or the index.

pub use processor::store::{Field, Scalar};
pub use rtfm_core::ControlRecord;
pub use test_support::chroma_proxy::ChromaProxy;
pub use test_support::fake_discord::{Invoked, PostKind, Posted};

use super::*;

pub const GUILD: u64 = 71;
pub const OTHER_GUILD: u64 = 72;
pub const GENERAL: u64 = 7101;
pub const HELP: u64 = 7102;
pub const OPS: u64 = 7103;
pub const THREAD: u64 = 7104;
/// A private thread of #help.
pub const PRIVATE: u64 = 7105;
pub const ELSEWHERE: u64 = 7201;
pub const MEMBER: u64 = 8801;
pub const OTHER: u64 = 8802;
pub const MODERATOR: u64 = 8803;
/// Manage Server.
pub const MANAGE_GUILD: u64 = 1 << 5;

pub fn world(fake: &FakeDiscord) {
    fake.add_channel(GENERAL, Some(GUILD), "general");
    fake.add_channel(HELP, Some(GUILD), "help");
    fake.add_channel(OPS, Some(GUILD), "ops");
    fake.add_thread(THREAD, GENERAL, true, "deploys");
    fake.add_thread(PRIVATE, HELP, false, "escalations");
    fake.add_channel(ELSEWHERE, Some(OTHER_GUILD), "elsewhere");
}

pub fn say(fake: &FakeDiscord, channel: u64, author: u64, text: &str) -> u64 {
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
pub fn invoke(
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
pub fn member(subcommand: &str) -> Invoked {
    Invoked {
        command: "rtfm".into(),
        subcommand: Some(subcommand.into()),
        ..Invoked::default()
    }
}

/// `/rtfm-admin <subcommand>` by someone with `permissions`.
pub fn admin(subcommand: &str, permissions: u64) -> Invoked {
    Invoked {
        command: "rtfm-admin".into(),
        subcommand: Some(subcommand.into()),
        permissions,
        ..Invoked::default()
    }
}

/// `/rtfm-admin channels` by someone with `permissions`.
pub fn channels(action: &str, channel: Option<u64>, permissions: u64) -> Invoked {
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
pub fn shown(fake: &FakeDiscord, id: u64) -> Vec<Posted> {
    fake.attempts()
        .into_iter()
        .filter(|post| post.interaction_id == Some(id))
        .collect()
}

pub async fn until_shown(fake: &FakeDiscord, id: u64, what: &str, needle: &str) -> Posted {
    eventually(WAIT, what, || async {
        shown(fake, id)
            .into_iter()
            .find(|post| post.content().contains(needle))
    })
    .await
}

pub fn by(field: Field, id: u64) -> Filter {
    Filter::Eq(field, Scalar::Text(id.to_string()))
}

pub async fn stored(store: &ChromaStore, filter: Filter) -> usize {
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
pub async fn reply_to(fake: &FakeDiscord, id: u64) -> String {
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
pub async fn services(
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

/// Waits until `store` holds exactly `count` messages.
pub async fn until_indexed(store: &ChromaStore, count: usize) {
    eventually(WAIT, &format!("{count} messages indexed"), || async {
        (store.count().await.ok()? == count).then_some(())
    })
    .await;
}
