//! `docker compose up` without Docker: compose's own configuration, run as local processes.
//!
//! Docker cannot run on our machines, so this test does what compose would do with a fresh
//! `.env` copied from `.env.example` and an empty shell: for each service built from our image
//! it takes the `command`, and the environment compose would give it (the image's `ENV`, then
//! `env_file: .env`, then `environment:` with `${X:-…}` resolved against `.env`), and starts it
//! with exactly that environment. Only what a container changes is mapped: the host names
//! `kafka` and `chroma` to the test's real broker and Chroma server, container ports to free
//! local ones, the image's model directory to the local one, `/tmp` to a private one. Then
//! every service must become ready (and its healthcheck pass) and stay up: the topics are
//! created, the processor is ready, and the bot — with no `DISCORD_TOKEN` — offers its console
//! on the terminal compose attaches (`stdin_open`), where a question is answered. Then the
//! processor is scaled to three replicas, each in a host of its own (`unshare --uts`), as
//! `docker compose up --scale processor=3` runs them, and a question is answered again.
//!
//! The third-party images cannot run here; their healthchecks are held to what each image
//! ships (table below, with where it was read) and the Chroma one is run against the real
//! Chroma server.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;
use test_support::process::ServiceProcess;
use test_support::repo::read;
use test_support::{eventually, free_port, http_get, metric_value, services};

const WAIT: Duration = Duration::from_secs(180);

fn compose() -> Value {
    serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is valid YAML")
}

/// The binaries each third-party image ships that a healthcheck may call, and where that was
/// read. A healthcheck calling anything else would keep the service "unhealthy" for ever.
const IMAGE_BINARIES: [(&str, &[&str], &str); 2] = [
    (
        "apache/kafka:4.1.1",
        &["bash", "sh", "/opt/kafka/bin/kafka-broker-api-versions.sh"],
        "apache/kafka docker/jvm/Dockerfile at 4.1.1: eclipse-temurin:21-jre-alpine, bash kept, wget removed, no curl; bin/ in /opt/kafka/bin",
    ),
    (
        "chromadb/chroma:1.5.9",
        &["bash", "sh", "head", "grep"],
        "chroma-core/chroma rust/Dockerfile at 1.5.9: debian:stable-slim + dumb-init, libssl-dev, ca-certificates; no curl, wget or python (chroma-core/chroma#5910, neomjs/neo#10908)",
    ),
];

/// `.env` as compose reads it: `NAME=value` lines, comments and blank lines skipped.
fn dot_env() -> BTreeMap<String, String> {
    read(".env.example")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_string(), unquote(value.trim()).to_string()))
        .collect()
}

/// A value without the quotes around it, as compose reads `.env`.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Compose's interpolation of `${NAME}`, `${NAME:-default}` and `${NAME-default}` against
/// `vars` (the shell is empty, so only `.env` counts).
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            panic!("unclosed ${{ in {text}");
        };
        let expression = &rest[start + 2..start + end];
        let value = if let Some((name, default)) = expression.split_once(":-") {
            vars.get(name)
                .filter(|value| !value.is_empty())
                .cloned()
                .unwrap_or_else(|| default.to_string())
        } else if let Some((name, default)) = expression.split_once('-') {
            vars.get(name)
                .cloned()
                .unwrap_or_else(|| default.to_string())
        } else {
            vars.get(expression).cloned().unwrap_or_default()
        };
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The `ENV` of the Dockerfile's last stage (the image every service of ours runs).
fn image_env() -> BTreeMap<String, String> {
    let dockerfile = read("Dockerfile");
    let last_stage = dockerfile.rsplit("\nFROM ").next().expect("a stage");
    let joined = last_stage.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ENV "))
        .flat_map(|assignments| assignments.split_whitespace().map(str::to_string))
        .filter_map(|assignment| {
            assignment
                .split_once('=')
                .map(|(name, value)| (name.to_string(), value.to_string()))
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One of our services as compose would start it, mapped onto this machine.
struct Service {
    command: Vec<String>,
    env: BTreeMap<String, String>,
    healthcheck: Vec<String>,
}

/// What a container changes, applied to a value: host names, ports, paths.
struct Mapping {
    replacements: Vec<(String, String)>,
}

impl Mapping {
    fn apply(&self, text: &str) -> String {
        self.replacements
            .iter()
            .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
    }
}

fn service(compose: &Value, name: &str, mapping: &Mapping) -> Service {
    let definition = &compose["services"][name];
    assert_eq!(
        definition["build"].as_str(),
        Some("."),
        "{name} runs our image"
    );
    let dot_env = dot_env();
    let mut env = image_env();
    let reads_dot_env = definition["env_file"]
        .as_sequence()
        .is_some_and(|files| files.iter().any(|file| file["path"] == ".env"));
    if reads_dot_env {
        env.extend(dot_env.clone());
    }
    if let Some(variables) = definition["environment"].as_mapping() {
        for (key, value) in variables {
            let key = key.as_str().expect("variable name").to_string();
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => panic!("{name}: {key} = {other:?}"),
            };
            env.insert(key, interpolate(&value, &dot_env));
        }
    }
    let env: BTreeMap<String, String> = env
        .into_iter()
        .map(|(key, value)| (key, mapping.apply(&value)))
        .collect();
    for (key, value) in &env {
        assert!(
            !value.contains("kafka:") && !value.contains("chroma:") && !value.contains("/opt/"),
            "{name}: {key}={value} points into the compose network or image and is not mapped"
        );
    }
    Service {
        command: strings(&definition["command"]),
        env,
        healthcheck: strings(&definition["healthcheck"]["test"])
            .iter()
            .map(|part| mapping.apply(part))
            .collect(),
    }
}

/// Starts `service` with exactly its environment (and `PATH`, which the image also has).
fn start(service: &Service, piped_stdin: bool) -> ServiceProcess {
    start_as(service, None, piped_stdin)
}

/// [`start`], in a host of its own (a replica of `docker compose up --scale`).
fn start_as(service: &Service, hostname: Option<&str>, piped_stdin: bool) -> ServiceProcess {
    let mut env: Vec<(&str, &str)> = service
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let path = std::env::var("PATH").unwrap_or_default();
    env.push(("PATH", &path));
    let args: Vec<&str> = service.command[1..].iter().map(String::as_str).collect();
    match hostname {
        Some(hostname) => {
            ServiceProcess::spawn_exact_as_host(&service.command[0], hostname, &args, &env)
        }
        None => ServiceProcess::spawn_exact(&service.command[0], &args, &env, piped_stdin),
    }
}

/// Runs a healthcheck (`CMD` argv or `CMD-SHELL` script) here, within the 5 s compose gives
/// it (`timeout`); true if it exits 0.
fn healthcheck_passes(test: &[String]) -> bool {
    let mut command = Command::new("timeout");
    command.arg("5");
    match test.first().map(String::as_str) {
        Some("CMD") => {
            command.args(&test[1..]);
        }
        Some("CMD-SHELL") => {
            command.arg("sh").arg("-c").arg(&test[1]);
        }
        other => panic!("unknown healthcheck form {other:?}"),
    }
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn third_party_healthchecks_call_only_what_their_images_ship() {
    let compose = compose();
    for (image, binaries, source) in IMAGE_BINARIES {
        let (name, definition) = compose["services"]
            .as_mapping()
            .expect("services")
            .iter()
            .find(|(_, definition)| definition["image"] == image)
            .unwrap_or_else(|| panic!("no service runs {image}"));
        let test = strings(&definition["healthcheck"]["test"]);
        let program = match test[0].as_str() {
            "CMD" => test[1].clone(),
            // A shell script: its first word (sh itself is in every image).
            _ => test[1]
                .split_whitespace()
                .next()
                .expect("a word")
                .to_string(),
        };
        assert!(
            binaries.contains(&program.as_str()),
            "{name:?}'s healthcheck calls {program}, which {image} does not ship ({source})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compose_configuration_starts_every_service_with_a_fresh_env_file() {
    let bootstrap = services::kafka_bootstrap();
    let chroma = services::chroma_url();
    let chroma_host_port = chroma.trim_start_matches("http://").to_string();
    let model_dir = std::env::var("EMBEDDING_MODEL_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/rtfm/models/all-MiniLM-L6-v2",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let container_tmp = tempfile::tempdir().expect("temp dir");
    let (processor_port, bot_port) = (free_port(), free_port());
    let mapping = Mapping {
        replacements: vec![
            ("kafka:9092".into(), bootstrap.clone()),
            ("http://chroma:8000".into(), chroma.clone()),
            ("0.0.0.0:8081".into(), format!("127.0.0.1:{processor_port}")),
            (
                "localhost:8081".into(),
                format!("127.0.0.1:{processor_port}"),
            ),
            ("0.0.0.0:8080".into(), format!("127.0.0.1:{bot_port}")),
            ("localhost:8080".into(), format!("127.0.0.1:{bot_port}")),
            ("/opt/rtfm/model".into(), model_dir),
        ],
    };
    let compose = compose();

    // Chroma's healthcheck, run against the real Chroma server: passes while it answers, and
    // fails where nothing listens (it can fail).
    let chroma_check: Vec<String> = strings(&compose["services"]["chroma"]["healthcheck"]["test"]);
    let probe = |target: &str| -> Vec<String> {
        chroma_check
            .iter()
            .map(|part| part.replace("127.0.0.1/8000", target))
            .collect()
    };
    assert!(
        healthcheck_passes(&probe(&chroma_host_port.replace(':', "/"))),
        "the chroma healthcheck fails against a running Chroma at {chroma}"
    );
    assert!(
        !healthcheck_passes(&probe(&format!("127.0.0.1/{}", free_port()))),
        "the chroma healthcheck passes where nothing listens"
    );

    // init-topics: runs to completion (service_completed_successfully).
    let init = service(&compose, "init-topics", &mapping);
    let mut init_process = start(&init, false);
    let status = init_process.wait_exit(WAIT).expect("init-topics finishes");
    assert!(status.success(), "init-topics: {}", init_process.log_text());

    // processor: ready, and its healthcheck passes.
    let mut processor_service = service(&compose, "processor", &mapping);
    processor_service
        .env
        .insert("TMPDIR".into(), container_tmp.path().display().to_string());
    // As in a .env where someone uncommented the keys and left them empty: no key at all.
    for key in ["GEMINI_API_KEY", "OPENAI_API_KEY", "CHROMA_AUTH_TOKEN"] {
        processor_service.env.insert(key.into(), String::new());
    }
    let mut processor = start(&processor_service, false);
    let readyz = format!("http://127.0.0.1:{processor_port}/readyz");
    eventually(WAIT, "the processor ready", || async {
        (http_get(&readyz).await?.0 == 200).then_some(())
    })
    .await;
    assert!(healthcheck_passes(&processor_service.healthcheck));
    let processor_log = processor.log_text();
    assert!(
        processor_log.contains("empty variables treated as unset")
            && processor_log.contains("GEMINI_API_KEY")
            && processor_log.contains(r#"provider="extractive""#),
        "{processor_log}"
    );

    // bot: no DISCORD_TOKEN in a fresh .env, so `DISCORD_TOKEN: ${DISCORD_TOKEN:-}` is empty —
    // which must mean console mode, not a crash loop. Compose keeps its stdin open.
    let mut bot_service = service(&compose, "bot", &mapping);
    assert_eq!(
        bot_service.env.get("DISCORD_TOKEN").map(String::as_str),
        Some("")
    );
    bot_service
        .env
        .insert("TMPDIR".into(), container_tmp.path().display().to_string());
    bot_service.env.insert("USER".into(), "admin".into());
    let mut bot = start(&bot_service, true);
    let healthz = format!("http://127.0.0.1:{bot_port}/healthz");
    eventually(WAIT, "the bot's /healthz", || async {
        (http_get(&healthz).await?.0 == 200).then_some(())
    })
    .await;
    assert!(healthcheck_passes(&bot_service.healthcheck));
    let fact = "the team wiki lives at wiki.example.org/handbook, ask ann for an account";
    bot.type_line(fact);
    let metrics = format!("http://127.0.0.1:{processor_port}/metrics");
    eventually(
        WAIT,
        "the processor to index the console's message",
        || async {
            let (_, text) = http_get(&metrics).await?;
            let upserted =
                metric_value(&text, r#"rtfm_messages_ingested_total{outcome="upserted"}"#)?;
            (upserted >= 1.0).then_some(())
        },
    )
    .await;
    bot.type_line("rtfm where does the team wiki live?");
    let answer = eventually(WAIT, "the console's answer quoting the fact", || async {
        let out = bot.stdout_text();
        (out.contains("rtfm> ") && out.contains("wiki.example.org/handbook")).then_some(out)
    })
    .await;
    assert!(
        !answer.contains(" INFO "),
        "no log lines in the chat: {answer}"
    );
    let terminal = bot.log_text();
    assert!(terminal.contains("logs go to"), "{terminal}");
    let logs = std::fs::read_to_string(container_tmp.path().join("rtfm-bot-console.log"))
        .expect("the console's log file in the container's /tmp");
    assert!(
        logs.contains("empty variables treated as unset") && logs.contains("DISCORD_TOKEN"),
        "{logs}"
    );

    // `docker compose up --scale processor=3`: two more replicas of the same service, each in
    // a host of its own (no instance id is configured; each derives one from its host name),
    // join the groups, and questions are still answered.
    let mut replicas = Vec::new();
    let mut replica_tmps = Vec::new();
    for replica in ["processor-2", "processor-3"] {
        let port = free_port();
        let mut replica_service = service(&compose, "processor", &mapping);
        // Each container has its own filesystem, so its own /tmp.
        let tmp = tempfile::tempdir().expect("temp dir");
        replica_service
            .env
            .insert("TMPDIR".into(), tmp.path().display().to_string());
        replica_tmps.push(tmp);
        replica_service
            .env
            .insert("HTTP_ADDR".into(), format!("127.0.0.1:{port}"));
        let process = start_as(&replica_service, Some(replica), false);
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        eventually(WAIT, &format!("{replica} ready"), || async {
            (http_get(&readyz).await?.0 == 200).then_some(())
        })
        .await;
        let log = process.log_text();
        assert!(
            log.contains(&format!(r#"instance_id="{replica}-0""#)),
            "{replica} derives its own instance id: {log}"
        );
        replicas.push(process);
    }
    eventually(WAIT, "every replica assigned partitions", || async {
        replicas
            .iter()
            .all(|replica| {
                replica
                    .log_text()
                    .contains("partitions assigned role=ingest")
            })
            .then_some(())
    })
    .await;
    bot.type_line("rtfm who gives out accounts for the team wiki?");
    eventually(WAIT, "a second answer with three processors", || async {
        // Each answer quotes the fact once; a notice in between quotes nothing.
        let out = bot.stdout_text();
        (out.matches("wiki.example.org/handbook").count() >= 2).then_some(())
    })
    .await;

    // Everything stays up (compose would restart a service that exits: a crash loop), and
    // stops cleanly on SIGTERM, as `docker compose down` sends it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bot.is_running(), "the bot exited: {}", bot.log_text());
    assert!(processor.is_running(), "the processor exited");
    let mut stopping = vec![("bot", &mut bot), ("processor", &mut processor)];
    for replica in replicas.iter_mut() {
        stopping.push(("processor replica", replica));
    }
    for (name, process) in stopping {
        let status = process.terminate(Duration::from_secs(30));
        assert!(
            status.is_some_and(|status| status.success()),
            "{name} did not stop cleanly on SIGTERM: {status:?}"
        );
    }
}

#[test]
fn compose_interpolation_follows_composes_rules() {
    let vars: BTreeMap<String, String> = [
        ("SET".to_string(), "value".to_string()),
        ("EMPTY".to_string(), String::new()),
    ]
    .into();
    assert_eq!(interpolate("${SET:-x}", &vars), "value");
    assert_eq!(interpolate("${EMPTY:-x}", &vars), "x");
    assert_eq!(interpolate("${EMPTY-x}", &vars), "");
    assert_eq!(interpolate("${UNSET-x}", &vars), "x");
    assert_eq!(interpolate("${UNSET:-}", &vars), "");
    assert_eq!(interpolate("a ${SET} b", &vars), "a value b");
}
