//! Connecting to Discord as an admin does it for the first time, against a fake Discord that
//! refuses what Discord refuses: a wrong token (401 on REST, close 4004 on the gateway), the
//! Message Content intent not enabled for the application (close 4014), and `DISCORD_GUILD_ID`
//! registering `/rtfm` in that guild only.

use std::time::Duration;

use rtfm_core::kafka::KafkaConfig;
use test_support::app::{self, Running};
use test_support::fake_discord::{FakeDiscord, FakeOptions};
use test_support::{eventually, services};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "MTAwMA.fake.right-token";

fn config(fake: &FakeDiscord, kafka: &KafkaConfig, token: &str, extra: &[&str]) -> bot::Config {
    let mut args: Vec<String> = vec![
        "--discord-token".into(),
        token.into(),
        "--discord-api-url".into(),
        fake.base_url(),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    app::config("bot", kafka, &args)
}

async fn strict_fake(message_content_intent: bool) -> FakeDiscord {
    FakeDiscord::start_with(FakeOptions {
        bot_token: Some(TOKEN.to_string()),
        message_content_intent,
        ..FakeOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_discord_refuses_stops_the_bot_at_start_with_how_to_fix_it() {
    let fake = strict_fake(true).await;
    let kafka = services::kafka_with_topics().await;
    let outcome = bot::App::build(
        config(&fake, &kafka, "MTAwMA.fake.wrong-token", &[]),
        CancellationToken::new(),
    )
    .await;
    let Err(err) = outcome else {
        panic!("the bot started with a token Discord refuses");
    };
    let message = format!("{err:#}");
    assert!(
        message.contains("Discord refused DISCORD_TOKEN") && message.contains("Reset Token"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-token"),
        "the token is never shown: {message}"
    );
    assert!(fake.unauthorized() >= 1);
    assert_eq!(fake.identifies(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_message_content_intent_the_bot_stops_and_says_which_switch_to_turn_on() {
    let fake = strict_fake(false).await;
    let kafka = services::kafka_with_topics().await;
    let shutdown = CancellationToken::new();
    let app = bot::App::build(config(&fake, &kafka, TOKEN, &[]), shutdown)
        .await
        .expect("the token is accepted");
    let outcome = tokio::time::timeout(WAIT, app.run_until_stopped())
        .await
        .expect("the bot gives up instead of reconnecting for ever");
    let Err(err) = outcome else {
        panic!("the bot ran without the Message Content intent");
    };
    let message = format!("{err:#}");
    assert!(
        message.contains("4014") && message.contains("Message Content Intent"),
        "{message}"
    );
    assert!(fake.refused_identifies() >= 1);
    assert_eq!(fake.identifies(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discord_guild_id_registers_the_slash_command_in_that_guild_only() {
    let fake = strict_fake(true).await;
    let kafka = services::kafka_with_topics().await;
    // An earlier start registered /rtfm globally.
    let earlier = reqwest::Client::new()
        .put(format!(
            "{}/api/v10/applications/1000/commands",
            fake.base_url()
        ))
        .header("authorization", format!("Bot {TOKEN}"))
        .json(&serde_json::json!([{"name": "rtfm", "description": "d", "type": 1}]))
        .send()
        .await
        .expect("fake answers");
    assert!(earlier.status().is_success());
    assert!(!fake.commands().is_empty());
    let shutdown = CancellationToken::new();
    let app = bot::App::build(
        config(&fake, &kafka, TOKEN, &["--discord-guild-id", "4242"]),
        shutdown.clone(),
    )
    .await
    .expect("builds");
    let running = Running::spawn_built("bot", shutdown, app.run_until_stopped());
    let commands = eventually(WAIT, "/rtfm registered in guild 4242", || async {
        let commands = fake.guild_commands(4242);
        (!commands.is_empty()).then_some(commands)
    })
    .await;
    assert_eq!(commands[0]["name"], "rtfm");
    assert!(
        fake.commands().is_empty(),
        "nothing registered globally (an earlier global /rtfm is cleared)"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_guild_id_the_slash_command_is_registered_globally() {
    let fake = strict_fake(true).await;
    let kafka = services::kafka_with_topics().await;
    let shutdown = CancellationToken::new();
    let app = bot::App::build(config(&fake, &kafka, TOKEN, &[]), shutdown.clone())
        .await
        .expect("builds");
    let running = Running::spawn_built("bot", shutdown, app.run_until_stopped());
    eventually(WAIT, "/rtfm registered globally", || async {
        (!fake.commands().is_empty()).then_some(())
    })
    .await;
    assert!(fake.guild_commands(4242).is_empty());
    running.stop().await;
}

/// `bot invite-url`, as the admin runs it (the binary, in a directory without `.env`).
fn invite_url(env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = std::process::Command::new(test_support::process::binary("bot"));
    command
        .arg("invite-url")
        .current_dir(dir.path())
        .env_remove("DISCORD_TOKEN")
        .env_remove("DISCORD_APPLICATION_ID")
        .env_remove("DISCORD_GUILD_ID");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("bot invite-url runs")
}

#[test]
fn invite_url_prints_the_link_with_the_permissions_and_explains_them() {
    // The token's first part is base64 of the application id 123456789012345678.
    let output = invite_url(&[
        (
            "DISCORD_TOKEN",
            "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.not-a-real-secret",
        ),
        ("DISCORD_GUILD_ID", "77"),
    ]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("client_id=123456789012345678&scope=bot+applications.commands&permissions=274877975552&guild_id=77"),
        "{text}"
    );
    assert!(text.contains("Read Message History") && text.contains("Message Content Intent"));
    assert!(!text.contains("not-a-real-secret"));
}

#[test]
fn invite_url_with_an_empty_token_and_no_id_says_what_to_pass() {
    let output = invite_url(&[("DISCORD_TOKEN", ""), ("DISCORD_APPLICATION_ID", "")]);
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(errors.contains("--application-id"), "{errors}");
    let output = invite_url(&[("DISCORD_APPLICATION_ID", "555")]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("client_id=555&"));
}

#[test]
fn a_env_file_line_that_cannot_be_read_stops_the_bot_naming_the_variable_not_the_value() {
    // dotenvy stops at the first bad line: running on half a configuration would be silent.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(".env"),
        "DISCORD_APPLICATION_ID=555\nRTFM_TRIGGERS=rtfm,Read The Manual\n",
    )
    .expect(".env");
    let output = std::process::Command::new(test_support::process::binary("bot"))
        .arg("invite-url")
        .current_dir(dir.path())
        .env_remove("DISCORD_TOKEN")
        .env_remove("DISCORD_APPLICATION_ID")
        .env_remove("RTFM_TRIGGERS")
        .output()
        .expect("bot runs");
    assert_eq!(output.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("cannot read .env") && errors.contains("RTFM_TRIGGERS"),
        "{errors}"
    );
    assert!(
        !errors.contains("Read The Manual"),
        "the value is never shown: {errors}"
    );
}
