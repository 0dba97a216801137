//! Slash commands deferred and not yet given their one follow-up, kept on disk next to the
//! high-water marks, so that a restarted bot still ends every interaction: with its answer
//! (the token also travels with the question and its response), or — when no answer comes in
//! time — with the "no answer in time" notice. Without this, a question whose answer never
//! came left its asker on "thinking…" after a restart.
//!
//! The file holds interaction tokens, credentials for 15 minutes: it is readable by its owner
//! only, and an entry leaves it as soon as its follow-up is sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// One deferred command.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiting {
    /// The interaction token (never logged: see the `Debug` impl).
    pub token: String,
    pub channel_id: u64,
    /// When it was asked (Unix seconds).
    pub asked_at: i64,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("token", &"[REDACTED]")
            .field("channel_id", &self.channel_id)
            .field("asked_at", &self.asked_at)
            .finish()
    }
}

/// The deferred commands (query id → command), in memory and (with a path) on disk.
#[derive(Debug, Default)]
pub struct Deferred {
    path: Option<PathBuf>,
    waiting: Mutex<BTreeMap<String, Waiting>>,
}

impl Deferred {
    /// Kept in memory only (console mode).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Reads `path` (missing: none waiting; unreadable: moved aside with a warning).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let waiting = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                let aside = path.with_extension("unreadable");
                warn!(path = %path.display(), error = %err, "the deferred-commands file is not readable; moved aside");
                let _ = std::fs::rename(path, &aside);
                BTreeMap::new()
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => {
                return Err(err).with_context(|| format!("while reading {}", path.display()))
            }
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            waiting: Mutex::new(waiting),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A command was deferred and its question published.
    pub fn add(&self, query_id: &str, waiting: Waiting) {
        let snapshot = {
            let mut map = self.lock();
            map.insert(query_id.to_string(), waiting);
            map.clone()
        };
        self.save(&snapshot);
    }

    /// A command got its follow-up (or can no longer get one).
    pub fn remove(&self, query_id: &str) {
        let snapshot = {
            let mut map = self.lock();
            if map.remove(query_id).is_none() {
                return;
            }
            map.clone()
        };
        self.save(&snapshot);
    }

    /// Every command still waiting.
    pub fn all(&self) -> Vec<(String, Waiting)> {
        self.lock()
            .iter()
            .map(|(id, waiting)| (id.clone(), waiting.clone()))
            .collect()
    }

    /// Writes the file (owner-only), by rename; a failure is logged (the command then ends
    /// with the gateway session's memory, as before).
    fn save(&self, snapshot: &BTreeMap<String, Waiting>) {
        let Some(path) = &self.path else {
            return;
        };
        let written = serde_json::to_vec(snapshot)
            .map_err(std::io::Error::from)
            .and_then(|bytes| crate::marks::replace_file(path, &bytes));
        if let Err(err) = written {
            warn!(path = %path.display(), error = %err, "could not save the deferred commands");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(token: &str) -> Waiting {
        Waiting {
            token: token.into(),
            channel_id: 5,
            asked_at: 1_700_000_000,
        }
    }

    #[test]
    fn a_deferred_command_survives_a_restart_until_it_is_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("interactions.json");
        let deferred = Deferred::load(&path).expect("load");
        deferred.add("q1", waiting("token-1"));
        deferred.add("q2", waiting("token-2"));
        deferred.remove("q1");
        let again = Deferred::load(&path).expect("load");
        assert_eq!(again.all(), vec![("q2".to_string(), waiting("token-2"))]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner-only: it holds tokens");
        }
        assert!(!format!("{:?}", again.all()).contains("token-2"));
    }
}
