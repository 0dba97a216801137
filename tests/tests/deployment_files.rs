//! Docker can't run on our machines, so `docker-compose.yml`, `Dockerfile` and `.env.example`
//! are checked statically against the code: services, ports, commands and variable names.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;
use test_support::repo::{read, root};

fn compose() -> Value {
    serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("service `{name}` missing"))
}

fn env_of(service: &Value) -> BTreeSet<String> {
    service["environment"]
        .as_mapping()
        .map(|map| {
            map.keys()
                .filter_map(|key| key.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn env_value<'a>(service: &'a Value, key: &str) -> &'a str {
    service["environment"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} not set"))
}

/// Every `env = "NAME"` in the sources of our crates.
fn env_names_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("tests") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                collect_env_names(&path, &mut names);
            }
        }
    }
    names
}

fn collect_env_names(path: &Path, names: &mut BTreeSet<String>) {
    let text = std::fs::read_to_string(path).expect("source");
    // Unit tests (a module's trailing `#[cfg(test)]` part) declare variables of their own.
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    for part in text.split("env = \"").skip(1) {
        if let Some(name) = part.split('"').next() {
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                names.insert(name.to_string());
            }
        }
    }
}

fn env_example_names() -> BTreeSet<String> {
    read(".env.example")
        .lines()
        .map(|line| line.trim_start_matches("# ").trim())
        .filter_map(|line| {
            line.split_once('=')
                .map(|(name, _)| name.trim().to_string())
        })
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .collect()
}

#[test]
fn compose_has_every_service_with_health_and_ordering() {
    let compose = compose();
    for name in ["kafka", "chroma", "init-topics", "processor", "bot"] {
        service(&compose, name);
    }
    let init = service(&compose, "init-topics");
    assert_eq!(init["depends_on"]["kafka"]["condition"], "service_healthy");
    let command: Vec<&str> = init["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[..3], ["init-topics", "--action", "create"]);
    assert!(
        command.contains(&"--wait-secs"),
        "init-topics waits for a broker that is slow to come up: {command:?}"
    );
    let processor = service(&compose, "processor");
    assert_eq!(
        processor["depends_on"]["init-topics"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(
        processor["depends_on"]["chroma"]["condition"],
        "service_healthy"
    );
    let bot = service(&compose, "bot");
    assert_eq!(
        bot["depends_on"]["processor"]["condition"],
        "service_healthy"
    );
    for name in ["kafka", "chroma", "processor", "bot"] {
        assert!(
            service(&compose, name).get("healthcheck").is_some(),
            "{name} has a healthcheck"
        );
    }
}

#[test]
fn kafka_listens_on_kafka_9092_inside_and_localhost_29092_on_the_host() {
    let compose = compose();
    let kafka = service(&compose, "kafka");
    let advertised = env_value(kafka, "KAFKA_ADVERTISED_LISTENERS");
    assert!(
        advertised.contains("PLAINTEXT://kafka:9092") && advertised.contains("localhost:29092"),
        "{advertised}"
    );
    let ports: Vec<&str> = kafka["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ports.contains(&"29092:29092"));
    assert_eq!(
        env_value(kafka, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"),
        "false",
        "init-topics creates the topics"
    );
    for name in ["init-topics", "processor", "bot"] {
        assert_eq!(
            env_value(service(&compose, name), "KAFKA_BOOTSTRAP_SERVERS"),
            "kafka:9092"
        );
    }
    assert_eq!(
        env_value(service(&compose, "processor"), "CHROMA_URL"),
        "http://chroma:8000"
    );
    let chroma_ports: Vec<&str> = service(&compose, "chroma")["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(chroma_ports.contains(&"8000:8000"));
}

#[test]
fn compose_only_sets_variables_the_code_reads() {
    let known = env_names_in_code();
    let compose = compose();
    for name in ["init-topics", "processor", "bot"] {
        for variable in env_of(service(&compose, name)) {
            assert!(
                known.contains(&variable),
                "{name} sets {variable}, which no binary reads"
            );
        }
    }
}

#[test]
fn env_example_documents_exactly_the_variables_the_code_reads() {
    let in_code = env_names_in_code();
    let documented = env_example_names();
    let missing: Vec<_> = in_code.difference(&documented).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    let extra: Vec<_> = documented
        .difference(&in_code)
        .filter(|name| !["RUST_LOG", "LOG_FORMAT"].contains(&name.as_str()))
        .collect();
    assert!(extra.is_empty(), ".env.example documents unknown {extra:?}");
}

#[test]
fn dockerfile_is_multi_stage_and_ships_all_four_binaries() {
    let dockerfile = read("Dockerfile");
    assert_eq!(
        dockerfile
            .lines()
            .filter(|line| line.starts_with("FROM "))
            .count(),
        3,
        "build + model + runtime stages"
    );
    for binary in ["bot", "processor", "init-topics", "kafka-smoke"] {
        assert!(
            dockerfile.contains(&format!("--bin {binary}")),
            "builds {binary}"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "copies {binary}"
        );
    }
    assert!(dockerfile.contains("slim"), "slim runtime image");
    assert!(dockerfile.contains("USER "), "does not run as root");
}

#[test]
fn the_processor_can_be_scaled_with_docker_compose_scale() {
    let compose = compose();
    let processor = service(&compose, "processor");
    // Replicas of one service share its definition: anything fixed per container collides.
    assert!(
        processor.get("container_name").is_none(),
        "a fixed container_name stops --scale"
    );
    assert!(
        processor.get("ports").is_none(),
        "a published host port stops --scale"
    );
    assert!(
        !env_of(processor).contains("PROCESSOR_INSTANCE_ID"),
        "a fixed instance id makes replicas fence each other"
    );
    assert!(
        !env_of(processor).contains("HOSTNAME"),
        "the container's own host name is the default instance id"
    );
}

#[test]
fn the_image_carries_the_local_model_where_the_processor_looks() {
    let dockerfile = read("Dockerfile");
    let model_dir = dockerfile
        .lines()
        .find_map(|line| line.trim().strip_prefix("EMBEDDING_MODEL_DIR="))
        .expect("the image sets EMBEDDING_MODEL_DIR")
        .trim();
    // Every file the local embedder opens (processor::embedding) is copied into that directory.
    let copy = dockerfile
        .lines()
        .find(|line| line.starts_with("COPY --from=model "))
        .expect("the model stage's output is copied into the image");
    assert!(
        copy.trim_end().trim_end_matches('/').ends_with(model_dir),
        "{copy}"
    );
    for file in [
        processor::embedding::MODEL_FILE,
        processor::embedding::INT8_MODEL_FILE,
        processor::embedding::TOKENIZER_FILE,
        processor::embedding::RUNTIME_FILE,
    ] {
        assert!(
            dockerfile.contains(&format!("/model/{file}")),
            "the model stage copies {file}"
        );
    }
    assert!(
        dockerfile.contains("scripts/model.sh"),
        "the image gets the model the way the local set-up does"
    );
}

#[test]
fn a_env_file_copied_from_env_example_is_read_whole_by_dotenvy_and_by_bash() {
    // Every binary reads .env with dotenvy, which stops at the first line it cannot read;
    // scripts/up.sh sources it with bash. An unquoted value with spaces breaks both.
    let path = root().join(".env.example");
    let names: Vec<String> = dotenvy::from_path_iter(&path)
        .expect(".env.example opens")
        .map(|item| item.map(|(name, _)| name))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("dotenvy cannot read .env.example: {err}"));
    let uncommented = read(".env.example")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .count();
    assert_eq!(names.len(), uncommented, "every line read: {names:?}");
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg("set -euo pipefail; set -a; source \"$1\"; [ \"$RTFM_TRIGGERS\" = 'rtfm,Read The F***ing Manual' ]")
        .arg("bash")
        .arg(&path)
        .output()
        .expect("bash runs");
    assert!(
        bash.status.success(),
        "bash cannot source .env.example: {}",
        String::from_utf8_lossy(&bash.stderr)
    );
}
