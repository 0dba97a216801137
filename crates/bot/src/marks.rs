//! Durable high-water marks: per channel, the newest message the bot has published, kept in a
//! small JSON file (`BOT_STATE_DIR`, a volume under compose) so that a restarted bot knows
//! where each channel's catch-up starts ([`crate::catchup`]).
//!
//! Discord replays nothing to a new gateway session, so what was posted while the bot was
//! down is found only through these marks. A mark only ever moves forward, and only after
//! Kafka acknowledged the message; it is written at most every few seconds (atomically: a
//! temporary file renamed over the old one), so after a crash the catch-up starts a little
//! early and publishes a few messages again — harmless, the processor upserts by id.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// What the file holds. Ids as strings, as Discord writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    /// Channel (or thread) → newest published message.
    #[serde(with = "ids")]
    channels: BTreeMap<u64, u64>,
    /// When the marks began (a first start), as a message id: where channels start that have
    /// no mark yet when there is none at all (a bot that stopped before its first save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
}

/// A message id (a Discord snowflake) for the time `at`: ids of later messages are larger.
pub fn snowflake_at(at: chrono::DateTime<chrono::Utc>) -> u64 {
    const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;
    u64::try_from(at.timestamp_millis() - DISCORD_EPOCH_MS).unwrap_or(0) << 22
}

mod ids {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<u64, u64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, u64>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                Ok((
                    k.parse().map_err(serde::de::Error::custom)?,
                    v.parse().map_err(serde::de::Error::custom)?,
                ))
            })
            .collect()
    }
}

/// The marks, in memory and (with a path) on disk.
#[derive(Debug)]
pub struct Marks {
    path: Option<PathBuf>,
    state: Mutex<State>,
    /// Whether there was an earlier run to catch up from (a file was found).
    had_earlier_run: bool,
    dirty: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    channels: BTreeMap<u64, u64>,
    /// See [`Saved::since`].
    since: Option<u64>,
    /// While a catch-up runs, a live message must not move the mark of a channel not yet
    /// caught up (a crash would then skip the gap): its advance waits here.
    catching_up: Option<CatchingUp>,
}

#[derive(Debug, Default)]
struct CatchingUp {
    done: HashSet<u64>,
    deferred: BTreeMap<u64, u64>,
}

fn raise(channels: &mut BTreeMap<u64, u64>, channel: u64, message: u64) -> bool {
    let mark = channels.entry(channel).or_insert(0);
    let raised = message > *mark;
    *mark = (*mark).max(message);
    raised
}

impl Marks {
    /// Marks kept in memory only (console mode, unit tests).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            state: Mutex::default(),
            had_earlier_run: false,
            dirty: AtomicBool::new(false),
        }
    }

    /// Reads `path` (missing: a first start, and the file is written at once with the time
    /// the marks begin, so a bot stopped before its first save still catches up from there).
    /// A file that cannot be read as marks is moved aside (`.unreadable`) with a warning: the
    /// bot then starts as on a first start rather than not at all.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("while creating the state folder {}", dir.display()))?;
        }
        let saved = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => Some(saved),
                Err(err) => {
                    let aside = path.with_extension("unreadable");
                    warn!(path = %path.display(), error = %err, aside = %aside.display(), "the state file is not readable; moved aside, nothing to catch up this time");
                    let _ = std::fs::rename(path, &aside);
                    None
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(err).with_context(|| format!("while reading {}", path.display()))
            }
        };
        let had_earlier_run = saved.is_some();
        let (channels, since) = match saved {
            Some(saved) => (saved.channels, saved.since.and_then(|id| id.parse().ok())),
            None => (BTreeMap::new(), Some(snowflake_at(chrono::Utc::now()))),
        };
        let marks = Self {
            path: Some(path.to_path_buf()),
            state: Mutex::new(State {
                channels,
                since,
                catching_up: None,
            }),
            had_earlier_run,
            dirty: AtomicBool::new(!had_earlier_run),
        };
        marks.save()?;
        Ok(marks)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A message of `channel` was handled (published, and its question asked). During a
    /// catch-up that has not reached `channel` yet, the mark waits for it.
    pub fn advance(&self, channel: u64, message: u64) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(catching_up) = state.catching_up.as_mut() {
            if !catching_up.done.contains(&channel) {
                raise(&mut catching_up.deferred, channel, message);
                return;
            }
        }
        if raise(&mut state.channels, channel, message) {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// A catch-up starts: live messages no longer move the marks of channels it has not
    /// finished.
    pub fn begin_catch_up(&self) {
        self.lock().catching_up = Some(CatchingUp::default());
    }

    /// The catch-up handled `channel` up to `caught_up_to`: its mark moves there (or to a
    /// newer live message), and live messages move it again from now on.
    pub fn finish_channel(&self, channel: u64, caught_up_to: Option<u64>) {
        let mut state = self.lock();
        let state = &mut *state;
        let mut raised = false;
        if let Some(catching_up) = state.catching_up.as_mut() {
            catching_up.done.insert(channel);
            if let Some(live) = catching_up.deferred.remove(&channel) {
                raised |= raise(&mut state.channels, channel, live);
            }
        }
        if let Some(to) = caught_up_to {
            raised |= raise(&mut state.channels, channel, to);
        }
        if raised {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// The catch-up ended. `complete`: every channel it could see was caught up, so the live
    /// messages of the others (not listed: a direct message, a channel it cannot read) move
    /// their marks; interrupted: those channels keep their old marks and are caught up next
    /// time from there.
    pub fn end_catch_up(&self, complete: bool) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(catching_up) = state.catching_up.take() else {
            return;
        };
        if complete {
            for (channel, live) in catching_up.deferred {
                if raise(&mut state.channels, channel, live) {
                    self.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    /// The newest handled message of `channel`.
    pub fn get(&self, channel: u64) -> Option<u64> {
        self.lock().channels.get(&channel).copied()
    }

    /// The newest handled message of any channel: where a channel without a mark of its own
    /// (created, or first visible, while the bot was down) starts.
    pub fn newest(&self) -> Option<u64> {
        let state = self.lock();
        state.channels.values().copied().max().or(state.since)
    }

    /// Every channel with a mark (direct messages included, which no guild lists).
    pub fn channels(&self) -> Vec<u64> {
        self.lock().channels.keys().copied().collect()
    }

    /// Whether an earlier run left marks (else there is nothing to catch up).
    pub fn had_earlier_run(&self) -> bool {
        self.had_earlier_run
    }

    /// Writes the marks if they changed: to a temporary file, then renamed over the old one.
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let saved = {
            let state = self.lock();
            Saved {
                version: 1,
                channels: state.channels.clone(),
                since: state.since.map(|id| id.to_string()),
            }
        };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::from);
        bytes
            .and_then(|bytes| replace_file(path, &bytes))
            .map_err(|err| {
                self.dirty.store(true, Ordering::Release);
                anyhow::Error::new(err).context(format!("while writing {}", path.display()))
            })
    }
}

/// Replaces `path` with `bytes` whole, never half-written: written to a temporary file (readable
/// by its owner only) that is then renamed over it.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&temporary)?, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_move_forward_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state").join("bot-state.json");
        let marks = Marks::load(&path).expect("load");
        assert!(!marks.had_earlier_run(), "no file: a first start");
        marks.advance(1, 100);
        marks.advance(1, 90);
        marks.advance(2, 300);
        assert_eq!(marks.get(1), Some(100));
        marks.save().expect("save");
        let again = Marks::load(&path).expect("load");
        assert!(again.had_earlier_run());
        assert_eq!(again.get(1), Some(100));
        assert_eq!(again.get(2), Some(300));
        assert_eq!(again.newest(), Some(300));
        assert_eq!(again.channels(), vec![1, 2]);
    }

    #[test]
    fn a_first_start_is_written_at_once_so_a_bot_stopped_before_any_mark_still_catches_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bot-state.json");
        let before = snowflake_at(chrono::Utc::now());
        let first = Marks::load(&path).expect("load");
        assert!(!first.had_earlier_run());
        drop(first); // stopped (or killed) before any message and any save
        let again = Marks::load(&path).expect("load");
        assert!(again.had_earlier_run(), "the first start left its file");
        let since = again.newest().expect("where to catch up from");
        assert!(since >= before && since <= snowflake_at(chrono::Utc::now()));
        again.advance(7, since + 5);
        assert_eq!(
            again.newest(),
            Some(since + 5),
            "a mark, once there, is newer"
        );
    }

    #[test]
    fn snowflakes_follow_discords_epoch() {
        // Discord's documentation example: 175928847299117063 was made at 1462015105796 ms.
        let at = chrono::DateTime::from_timestamp_millis(1_462_015_105_796).expect("time");
        assert_eq!(snowflake_at(at) >> 22, 175_928_847_299_117_063 >> 22);
    }

    #[test]
    fn a_live_message_does_not_move_a_mark_the_catch_up_has_not_reached() {
        let marks = Marks::in_memory();
        marks.advance(1, 100);
        marks.advance(2, 200);
        marks.begin_catch_up();
        marks.advance(1, 150);
        marks.advance(2, 250);
        assert_eq!(marks.get(1), Some(100), "1 is not caught up yet");
        marks.finish_channel(1, Some(140));
        assert_eq!(
            marks.get(1),
            Some(150),
            "caught up: the live message counts"
        );
        marks.advance(1, 160);
        assert_eq!(marks.get(1), Some(160));
        marks.end_catch_up(false);
        assert_eq!(
            marks.get(2),
            Some(200),
            "interrupted before 2: its gap is caught up next time"
        );
        marks.begin_catch_up();
        marks.advance(3, 300);
        marks.end_catch_up(true);
        assert_eq!(
            marks.get(3),
            Some(300),
            "complete: unlisted channels move too"
        );
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bot-state.json");
        std::fs::write(&path, b"{not json").expect("write");
        let marks = Marks::load(&path).expect("load");
        assert!(!marks.had_earlier_run());
        assert!(path.with_extension("unreadable").exists());
        assert_eq!(marks.channels(), Vec::<u64>::new(), "as on a first start");
        assert!(path.exists(), "a fresh file, from now");
    }
}
