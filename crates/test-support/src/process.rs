//! Our binaries as real child processes (for end-to-end and fault tests): environment, a log
//! file per process (printed when a test fails), SIGKILL, SIGTERM and restart.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/<name>`, next to the running test binary.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

pub struct ServiceProcess {
    name: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    child: Option<Child>,
    /// Only `env` (no inherited variables, no test defaults), as a container gets it.
    exact_env: bool,
    /// A host name of its own (a UTS namespace), as each container of a scaled service has.
    hostname: Option<String>,
    pub stdin: Option<ChildStdin>,
    pub log: PathBuf,
    pub stdout_log: PathBuf,
}

impl ServiceProcess {
    /// Starts `name` with `env` (plus `RUST_LOG=info` unless given), logging to a temp file.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)], piped_stdin: bool) -> Self {
        Self::spawn_with(name, args, env, piped_stdin, false, None)
    }

    /// Starts `name` with exactly `env` and nothing inherited, as a container starts its
    /// command (`docker compose` gives a service only its image's and its own variables).
    pub fn spawn_exact(name: &str, args: &[&str], env: &[(&str, &str)], piped_stdin: bool) -> Self {
        Self::spawn_with(name, args, env, piped_stdin, true, None)
    }

    /// [`ServiceProcess::spawn_exact`] with a host name of its own, as each replica of
    /// `docker compose up --scale` has (`unshare --uts`; root only, as tests run here).
    pub fn spawn_exact_as_host(
        name: &str,
        hostname: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_with(name, args, env, false, true, Some(hostname.to_string()))
    }

    fn spawn_with(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        piped_stdin: bool,
        exact_env: bool,
        hostname: Option<String>,
    ) -> Self {
        let id = uuid::Uuid::new_v4();
        let mut process = Self {
            exact_env,
            hostname,
            name: name.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            child: None,
            stdin: None,
            log: log_dir().join(format!("rtfm-{name}-{id}.log")),
            stdout_log: log_dir().join(format!("rtfm-{name}-{id}.out")),
        };
        process.start(piped_stdin);
        process
    }

    fn start(&mut self, piped_stdin: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stdout_log)
            .expect("stdout file");
        let mut command = match &self.hostname {
            // unshare and sh exec in place: the pid stays the service's own.
            Some(hostname) => {
                let mut command = Command::new("unshare");
                command
                    .args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\""])
                    .arg(hostname)
                    .arg(binary(&self.name));
                command
            }
            None => Command::new(binary(&self.name)),
        };
        if self.exact_env {
            command.env_clear();
        } else {
            command
                .env("RUST_LOG", "info")
                .env_remove("GEMINI_API_KEY")
                .env_remove("DISCORD_TOKEN");
        }
        command
            .args(&self.args)
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(log));
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.name));
        self.stdin = child.stdin.take();
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Writes one line to the process's stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL: no destructors, no flush, no graceful anything.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `grace` for the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts the same command again (after a kill).
    pub fn restart(&mut self) {
        self.kill_9();
        self.start(false);
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout_log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill_9();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.name,
                self.log.display(),
                tail(&self.log_text(), 60)
            );
            eprintln!(
                "--- {} stdout ---\n{}",
                self.name,
                tail(&self.stdout_text(), 40)
            );
        }
        // A failed test keeps its processes' logs (scripts/test.sh's summary points at them).
        if std::env::var_os("RTFM_KEEP_LOGS").is_some() || std::thread::panicking() {
            eprintln!("kept {} log: {}", self.name, self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
            let _ = std::fs::remove_file(&self.stdout_log);
        }
    }
}

/// Where process logs go: `RTFM_TEST_LOG_DIR` (set by scripts/test.sh), else the temp dir.
fn log_dir() -> PathBuf {
    match std::env::var_os("RTFM_TEST_LOG_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            // Best effort: if it cannot be created, opening the log file reports the error.
            let _ = std::fs::create_dir_all(&dir);
            dir
        }
        _ => std::env::temp_dir(),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `processor` binary on `kafka`'s private topics and a Chroma `collection`, with its
/// `/healthz` `/readyz` `/metrics` on a free port (returned). `extra` overrides the defaults.
/// No instance id is set: like a user's processes, each gets its default (unique per live
/// process, the same again after a restart).
pub fn spawn_processor(
    kafka: &rtfm_core::kafka::KafkaConfig,
    chroma: &str,
    collection: &str,
    extra: &[(&str, &str)],
) -> (ServiceProcess, String) {
    let own = [
        ("CHROMA_URL", chroma),
        ("CHROMA_COLLECTION", collection),
        ("INGEST_BATCH_LINGER_MS", "50"),
    ];
    spawn_service("processor", kafka, &own, extra)
}

/// The `bot` binary against a fake Discord at `discord_api_url`, on `kafka`'s private topics.
pub fn spawn_bot(
    kafka: &rtfm_core::kafka::KafkaConfig,
    discord_api_url: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> (ServiceProcess, String) {
    // Its high-water marks, per set of topics (the file is named after them), out of $HOME.
    let state = std::env::temp_dir().join("rtfm-bot-tests");
    let state = state.display().to_string();
    let own = [
        ("DISCORD_TOKEN", token),
        ("DISCORD_API_URL", discord_api_url),
        ("BOT_STATE_DIR", state.as_str()),
    ];
    spawn_service("bot", kafka, &own, extra)
}

/// One of our services on `kafka`'s private topics with `HTTP_ADDR` on a free port (returned),
/// then `own` and `extra` settings (later ones override).
fn spawn_service(
    binary: &str,
    kafka: &rtfm_core::kafka::KafkaConfig,
    own: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (ServiceProcess, String) {
    let http = format!("127.0.0.1:{}", crate::free_port());
    let mut env = vec![
        ("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers.as_str()),
        ("KAFKA_TOPIC_SUFFIX", kafka.topic_suffix.as_str()),
        ("HTTP_ADDR", http.as_str()),
    ];
    env.extend_from_slice(own);
    env.extend_from_slice(extra);
    (ServiceProcess::spawn(binary, &[], &env, false), http)
}
