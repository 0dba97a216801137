//! A private Chroma server for tests that stop and restart it (so they never disturb the
//! shared one). Uses the `chroma` executable of the venv that `scripts/chroma.sh` installs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ChromaProcess {
    pub port: u16,
    data: tempfile_dir::TempDir,
    child: Option<Child>,
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn chroma_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("RTFM_CHROMA_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var("RTFM_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".cache/rtfm")
        });
    let venv = std::env::var("RTFM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache.join("venv"));
    venv.join("bin/chroma")
}

impl ChromaProcess {
    pub fn start() -> Self {
        let port = crate::free_port();
        let data = std::env::temp_dir().join(format!("rtfm-chroma-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data).expect("chroma data dir");
        let mut process = Self {
            port,
            data: tempfile_dir::TempDir(data),
            child: None,
        };
        process.resume();
        process
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and data.
    pub fn resume(&mut self) {
        let bin = chroma_bin();
        let child = Command::new(&bin)
            .args([
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--path",
            ])
            .arg(&self.data.0)
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {} ({err}); install it with `scripts/chroma.sh install`",
                    bin.display()
                )
            });
        self.child = Some(child);
        let started = Instant::now();
        while !heartbeat(self.port) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "private chroma did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (SIGKILL: the harshest outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChromaProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn heartbeat(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}
