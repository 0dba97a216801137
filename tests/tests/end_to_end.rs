//! The whole system as users run it: the real `bot` and `processor` binaries as separate
//! processes, the real Kafka broker and Chroma server, a fake Discord and a fake model.

use std::time::Duration;

use processor::store::{ChromaStore, StoreConfig, VectorStore};
use serde_json::Value;
use test_support::fake_discord::{self, FakeDiscord};
use test_support::fake_model::{Behaviour, FakeModel};
use test_support::process::{spawn_bot, spawn_processor, ServiceProcess};
use test_support::{eventually, free_port, http_get, services};

const WAIT: Duration = Duration::from_secs(120);
const DISCORD_TOKEN: &str = "SECRET-DISCORD-TOKEN-e2e-7f3a";
const GEMINI_KEY: &str = "SECRET-GEMINI-KEY-e2e-91c2";

fn collection() -> String {
    format!("e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn store(chroma: &str, collection: &str) -> ChromaStore {
    ChromaStore::connect(&StoreConfig::new(chroma, collection))
        .await
        .unwrap_or_else(|err| {
            panic!("Chroma at {chroma}: {err}; start it with scripts/chroma.sh start")
        })
}

/// The collection, once it holds `count` messages.
async fn indexed(chroma: &str, collection: &str, count: usize) -> ChromaStore {
    let store = store(chroma, collection).await;
    eventually(WAIT, &format!("{count} messages indexed"), || async {
        (store.count().await.ok()? == count).then_some(())
    })
    .await;
    store
}

/// The bodies of the messages the bot posted in reply to message `id`.
fn replies_to(fake: &FakeDiscord, id: u64) -> Vec<Value> {
    fake.posts()
        .into_iter()
        .filter(|post| post.reply_to() == Some(id))
        .map(|post| post.body)
        .collect()
}

/// The processor binary, waited for until `/readyz` says ready.
async fn start_processor(
    kafka: &rtfm_core::kafka::KafkaConfig,
    chroma: &str,
    collection: &str,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let mut env = vec![("RUST_LOG", "debug")];
    env.extend_from_slice(extra);
    let (process, http) = spawn_processor(kafka, chroma, collection, &env);
    let readyz = format!("http://{http}/readyz");
    eventually(WAIT, "processor /readyz", || async {
        (http_get(&readyz).await?.0 == 200).then_some(())
    })
    .await;
    process
}

/// Private topics, a private collection, and the processor binary on them answering
/// extractively (no model).
async fn extractive_processor() -> (
    rtfm_core::kafka::KafkaConfig,
    String,
    String,
    ServiceProcess,
) {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let processor = start_processor(
        &kafka,
        &chroma,
        &collection,
        &[("LLM_PROVIDER", "extractive")],
    )
    .await;
    (kafka, chroma, collection, processor)
}

/// The bot binary against `fake`, waited for until it is on the gateway with `/rtfm` registered.
async fn start_bot(
    kafka: &rtfm_core::kafka::KafkaConfig,
    fake: &FakeDiscord,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let (bot, _) = spawn_bot(kafka, &fake.base_url(), DISCORD_TOKEN, extra);
    eventually(WAIT, "the bot on the gateway", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;
    bot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_mode_answers_a_line_end_to_end() {
    let (kafka, chroma, collection, _processor) = extractive_processor().await;
    let http = format!("127.0.0.1:{}", free_port());
    let logs = tempfile::NamedTempFile::new().expect("temp file");
    let log_path = logs.path().to_string_lossy().to_string();
    let mut bot = ServiceProcess::spawn(
        "bot",
        &["--console"],
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers.as_str()),
            ("KAFKA_TOPIC_SUFFIX", kafka.topic_suffix.as_str()),
            ("HTTP_ADDR", http.as_str()),
            ("USER", "tester"),
            ("CONSOLE_LOG_FILE", log_path.as_str()),
        ],
        true,
    );
    bot.type_line("the deploy key is rotated with vaultctl rotate --key deploy --force");
    indexed(&chroma, &collection, 1).await;
    bot.type_line("rtfm how do I rotate the deploy key?");
    bot.close_stdin();
    let status = bot
        .wait_exit(WAIT)
        .expect("the console exits after answering");
    assert!(status.success());
    let out = bot.stdout_text();
    assert!(
        out.contains("rtfm> Here's what the chat history says:"),
        "{out}"
    );
    assert!(
        out.contains("vaultctl rotate --key deploy --force"),
        "{out}"
    );
    // The terminal is a chat: no jump links that lead nowhere, no log lines; the logs are in
    // the file the terminal was told about.
    assert!(!out.contains("https://discord.com/channels/"), "{out}");
    assert!(!out.contains(" INFO "), "{out}");
    let terminal = bot.log_text();
    assert!(
        terminal.contains(&format!("logs go to {log_path}")),
        "{terminal}"
    );
    assert!(!terminal.contains(" INFO "), "{terminal}");
    let logged = std::fs::read_to_string(logs.path()).expect("console log");
    assert!(logged.contains("front end"), "{logged}");
}

struct Conversation {
    fake: FakeDiscord,
}

const G1: u64 = 1;
const G2: u64 = 2;
const C11: u64 = 11;
const C12: u64 = 12;
const C21: u64 = 21;

impl Conversation {
    async fn start() -> Self {
        let fake = FakeDiscord::start().await;
        fake.add_channel(C11, Some(G1), "general");
        fake.add_channel(C12, Some(G1), "infra");
        fake.add_channel(C21, Some(G2), "general");
        Self { fake }
    }

    fn say(&self, id: u64, channel: u64, guild: u64, user: u64, text: &str) {
        self.fake.push_message(fake_discord::message(
            id,
            channel,
            Some(guild),
            fake_discord::user(user, &format!("user{user}"), false),
            text,
        ));
    }

    fn replies_to(&self, id: u64) -> Vec<Value> {
        replies_to(&self.fake, id)
    }
}

/// Runs the Discord conversation through both binaries; `gemini` adds a fake model.
async fn conversation_is_answered(gemini: bool) {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let model = FakeModel::start().await;
    model.always(Behaviour::Answer("Here is how: see [2].".into()));
    let model_url = model.gemini_base_url();
    let processor_env: Vec<(&str, &str)> = if gemini {
        vec![
            ("GEMINI_API_KEY", GEMINI_KEY),
            ("GEMINI_BASE_URL", model_url.as_str()),
        ]
    } else {
        vec![("LLM_PROVIDER", "extractive")]
    };
    let mut processor = start_processor(&kafka, &chroma, &collection, &processor_env).await;
    let conversation = Conversation::start().await;
    let fake = &conversation.fake;
    // Every crate at debug (serenity, reqwest, hyper, rdkafka, tungstenite …): a secret must
    // not leak even where we do not write the log line ourselves.
    let mut bot = start_bot(&kafka, fake, &[("RUST_LOG", "debug")]).await;

    // Several users, two guilds, three channels.
    conversation.say(1001, C11, G1, 101, "how do I rotate the deploy key?");
    conversation.say(
        1002,
        C11,
        G1,
        102,
        "run vaultctl rotate --key deploy --force, then restart the bot",
    );
    conversation.say(1003, C11, G1, 101, "thanks, that worked");
    conversation.say(1101, C12, G1, 103, "where is the staging database?");
    conversation.say(
        1102,
        C12,
        G1,
        104,
        "staging db lives at db-staging.internal port 5432",
    );
    conversation.say(2001, C21, G2, 201, "how do we rotate our deploy key here?");
    conversation.say(
        2002,
        C21,
        G2,
        202,
        "in this project the deploy key rotates with keyctl spin --all",
    );
    let store = indexed(&chroma, &collection, 7).await;

    conversation.say(1010, C11, G1, 105, "rtfm how can I rotate the deploy key?");
    conversation.say(1110, C12, G1, 106, "<@1000> where is the staging database?");
    fake.push_interaction(fake_discord::slash_command(
        2010,
        C21,
        G2,
        fake_discord::user(203, "user203", false),
        "how do I rotate the deploy key?",
    ));
    eventually(WAIT, "three answers", || async {
        (!conversation.replies_to(1010).is_empty()
            && !conversation.replies_to(1110).is_empty()
            && !fake.followups().is_empty())
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let first = conversation.replies_to(1010);
    assert_eq!(first.len(), 1, "one reply per trigger");
    let text = first[0]["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("https://discord.com/channels/1/11/1002"),
        "cites the answer: {text}"
    );
    assert!(
        !text.contains("keyctl") && !text.contains("/2/21/"),
        "nothing from guild 2: {text}"
    );
    let second = conversation.replies_to(1110);
    assert_eq!(second.len(), 1);
    let text = second[0]["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("https://discord.com/channels/1/12/1102"),
        "{text}"
    );
    let followups = fake.followups();
    assert_eq!(followups.len(), 1);
    let text = followups[0]["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("https://discord.com/channels/2/21/2002"),
        "{text}"
    );
    assert!(
        !text.contains("vaultctl") && !text.contains("/1/11/"),
        "nothing from guild 1: {text}"
    );
    if !gemini {
        assert!(conversation.replies_to(1010)[0]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("vaultctl rotate"));
    } else {
        assert!(model
            .requests()
            .iter()
            .all(|request| request.headers.get("x-goog-api-key").is_some()));
        assert!(conversation.replies_to(1010)[0]["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Here is how: see [2]."));
    }
    for post in fake.posts() {
        let parse = post.body["allowed_mentions"]["parse"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        assert_eq!(parse, 0, "no mass mentions: {}", post.body);
    }
    assert_eq!(fake.posts().len(), 2, "exactly the two replies");

    // Graceful shutdown on SIGTERM: both exit 0 well within the grace period.
    let bot_status = bot
        .terminate(Duration::from_secs(20))
        .expect("bot exits on SIGTERM");
    assert!(bot_status.success(), "{bot_status:?}");
    let processor_status = processor
        .terminate(Duration::from_secs(20))
        .expect("processor exits on SIGTERM");
    assert!(processor_status.success(), "{processor_status:?}");

    // Secrets never reach a log line, even at debug level.
    for (name, log) in [("bot", bot.log_text()), ("processor", processor.log_text())] {
        assert!(!log.is_empty(), "{name} logged something");
        assert!(
            !log.contains(DISCORD_TOKEN) && !log.contains(GEMINI_KEY),
            "a secret leaked into the {name} log"
        );
        // The slash command's interaction token is a credential for 15 minutes.
        assert!(
            !log.contains("interaction-token-2010"),
            "an interaction token leaked into the {name} log"
        );
    }
    store.drop_collection().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_discord_conversation_is_answered_end_to_end_with_extractive_answers() {
    conversation_is_answered(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_discord_conversation_is_answered_end_to_end_with_gemini() {
    conversation_is_answered(true).await;
}

/// `POST url` with a JSON body → the JSON answer (2xx required).
async fn post_json(url: &str, body: Value) -> Value {
    let (status, answer) = test_support::http_post_json(url, &body).await;
    assert!(
        (200..300).contains(&status),
        "POST {url}: {status} {answer}"
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fake_discord_program_drives_the_real_bot_over_its_control_api() {
    let (kafka, chroma, collection, _processor) = extractive_processor().await;
    // The README's "try the bot without a Discord account", as a user would run it.
    let fake_addr = format!("127.0.0.1:{}", free_port());
    let _fake = ServiceProcess::spawn(
        "fake-discord",
        &["--addr", &fake_addr, "--nonce-window-secs", "0"],
        &[],
        false,
    );
    let fake = format!("http://{fake_addr}");
    let (_bot, _) = spawn_bot(&kafka, &fake, "any-token-will-do", &[]);
    eventually(WAIT, "GET /_fake/ready", || async {
        (http_get(&format!("{fake}/_fake/ready")).await?.0 == 200).then_some(())
    })
    .await;

    let fact = post_json(
        &format!("{fake}/_fake/messages"),
        serde_json::json!({"channel_id": "20", "guild_id": "10", "author_id": "42",
            "username": "ann", "content": "the staging database listens on port 6543"}),
    )
    .await;
    let fact_id = fact["message_id"].as_str().expect("message_id").to_string();
    indexed(&chroma, &collection, 1).await;
    let question = post_json(
        &format!("{fake}/_fake/messages"),
        serde_json::json!({"channel_id": "20", "guild_id": "10", "author_id": "43",
            "username": "bob", "content": "rtfm which port does the staging database use?",
            "reply_to_message_id": null}),
    )
    .await;
    let question_id = question["message_id"]
        .as_str()
        .expect("message_id")
        .to_string();
    let slash = post_json(
        &format!("{fake}/_fake/interactions"),
        serde_json::json!({"channel_id": "20", "guild_id": "10", "user_id": "44",
            "username": "cy", "question": "what port is staging on?"}),
    )
    .await;
    let token = slash["token"].as_str().expect("token").to_string();

    let posts = eventually(
        WAIT,
        "a reply and a follow-up in GET /_fake/posts",
        || async {
            let (_, body) = http_get(&format!("{fake}/_fake/posts")).await?;
            let posts: Vec<Value> = serde_json::from_str(&body).ok()?;
            let reply = posts.iter().any(|p| {
                p["kind"] == "message"
                    && p["message_reference"]["message_id"] == question_id.as_str()
            });
            let followup = posts
                .iter()
                .any(|p| p["kind"] == "followup" && p["interaction_token"] == token.as_str());
            (reply && followup).then_some(posts)
        },
    )
    .await;
    for post in &posts {
        assert_eq!(post["deduplicated"], false);
        assert_eq!(post["channel_id"], "20");
        let content = post["content"].as_str().unwrap_or_default();
        assert!(
            content.contains("6543"),
            "the answer quotes the fact: {content}"
        );
        assert!(
            content.contains(&format!("/10/20/{fact_id}")),
            "and links it: {content}"
        );
    }
    assert_eq!(posts.len(), 2, "one answer each: {posts:#?}");
}

/// `RETRIEVAL_SCOPE=guild` with a private channel: the bot reads the guild's permissions from
/// Discord and stamps what the asking channel's readers may read; the processor's filter
/// enforces it. A question in a public channel finds the answer in another public channel but
/// nothing of the private channel or of a public thread inside it; a question in the private
/// channel sees the public channels too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guild_wide_questions_never_quote_a_channel_their_readers_cannot_read() {
    const GUILD: u64 = 3;
    const GENERAL: u64 = 31;
    const HELP: u64 = 32;
    const MODS: u64 = 33;
    const MODS_THREAD: u64 = 34;
    const MOD_ROLE: u64 = 500;
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let _processor = start_processor(
        &kafka,
        &chroma,
        &collection,
        &[("LLM_PROVIDER", "extractive"), ("RETRIEVAL_SCOPE", "guild")],
    )
    .await;
    let fake = FakeDiscord::start().await;
    fake.add_channel(GENERAL, Some(GUILD), "general");
    fake.add_channel(HELP, Some(GUILD), "help");
    fake.add_channel(MODS, Some(GUILD), "mods");
    fake.set_overwrites(
        MODS,
        vec![
            fake_discord::role_overwrite(GUILD, 0, fake_discord::VIEW_CHANNEL),
            fake_discord::role_overwrite(
                MOD_ROLE,
                fake_discord::VIEW_CHANNEL | fake_discord::READ_MESSAGE_HISTORY,
                0,
            ),
        ],
    );
    // A public thread of the private channel: readable by the channel's readers only.
    fake.add_thread(MODS_THREAD, MODS, true, "incident");
    let _bot = start_bot(&kafka, &fake, &[("GUILD_PERMISSIONS_TTL_SECS", "600")]).await;
    let say = |id: u64, channel: u64, user: u64, text: &str| {
        fake.push_message(fake_discord::message(
            id,
            channel,
            Some(GUILD),
            fake_discord::user(user, &format!("user{user}"), false),
            text,
        ))
    };
    say(
        3201,
        HELP,
        301,
        "rotate the deploy key with vaultctl rotate --key deploy --force",
    );
    say(
        3202,
        HELP,
        302,
        "the staging database listens on db-staging.internal port 5432",
    );
    say(
        3301,
        MODS,
        303,
        "the prod deploy key is rotated with secretctl spin --vault prod-keys",
    );
    say(
        3401,
        MODS_THREAD,
        304,
        "rotate the root deploy key with keyvault-rotate --root",
    );
    let store = indexed(&chroma, &collection, 4).await;
    // All of a question's reply text, once there is some.
    let reply_to = |id: u64| {
        let replies: Vec<String> = replies_to(&fake, id)
            .iter()
            .map(|body| body["content"].as_str().unwrap_or_default().to_string())
            .collect();
        (!replies.is_empty()).then(|| replies.join("\n"))
    };

    say(3101, GENERAL, 305, "rtfm how do I rotate the deploy key?");
    let public = eventually(WAIT, "the public question answered", || async {
        reply_to(3101)
    })
    .await;
    assert!(
        public.contains("vaultctl rotate") && public.contains("/3/32/3201"),
        "the other public channel answers: {public}"
    );
    for private in ["secretctl", "keyvault-rotate", "/3/33/", "/3/34/"] {
        assert!(
            !public.contains(private),
            "a public question quoted the private channel ({private}): {public}"
        );
    }

    say(
        3302,
        MODS,
        303,
        "rtfm which port does the staging database use?",
    );
    say(3303, MODS, 303, "rtfm how is the prod deploy key rotated?");
    let (staging, prod) = eventually(WAIT, "the private questions answered", || async {
        Some((reply_to(3302)?, reply_to(3303)?))
    })
    .await;
    assert!(
        staging.contains("/3/32/3202"),
        "a private channel's readers see the public channels: {staging}"
    );
    assert!(prod.contains("/3/33/3301"), "and their own channel: {prod}");
    // One lookup of channels and roles for the guild, reused by the later questions.
    assert_eq!(fake.guild_lookups(), 2);
    store.drop_collection().await.expect("cleanup");
}
