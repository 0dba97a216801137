//! Who this processor is: a unique, stable instance id without anyone having to set one.
//!
//! The id is the instance's Kafka `transactional.id` (a restarted instance fences its dead
//! predecessor's open transaction) and its static group membership id (a restarted instance
//! takes its partitions back at once). So it must be
//! - **unique among live processes**: two live processes with one id fence each other;
//! - **stable across a restart of the same process slot**, so the fencing above happens.
//!
//! Default: `<host name>-<slot>`. The host name comes from the OS (in a container, the
//! container's own), and the slot is the lowest number whose lock file this process can lock
//! exclusively in the temp directory (one lock-file namespace per set of topics, so processors
//! of different deployments or test runs never share slots). The OS releases the lock when the
//! process dies, even by SIGKILL, so a restarted process gets the same slot back; two live
//! processes on one host always get different slots. `PROCESSOR_INSTANCE_ID` overrides it all;
//! two live processes given the same id are detected by Kafka (fencing), and the processor
//! then stops with an error that names the id instead of running on without partitions.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The id, and the slot lock that keeps it ours while this value lives.
#[derive(Debug)]
pub struct Instance {
    id: String,
    _slot: Option<File>,
}

impl Instance {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `explicit` (PROCESSOR_INSTANCE_ID) if set, else `<host>-<slot>` in `namespace`.
    pub fn acquire(explicit: Option<&str>, namespace: &str) -> anyhow::Result<Self> {
        if let Some(id) = explicit.filter(|id| !id.is_empty()) {
            let id = sanitize(id);
            return Ok(Self { id, _slot: None });
        }
        let dir = std::env::temp_dir().join("rtfm-processor-slots");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("while creating the slot directory {}", dir.display()))?;
        let (slot, file) = lock_lowest_free_slot(&dir, &sanitize(namespace))?;
        Ok(Self {
            id: format!("{}-{slot}", sanitize(&host_name())),
            _slot: Some(file),
        })
    }
}

const MAX_SLOTS: u32 = 4096;

fn lock_lowest_free_slot(dir: &Path, namespace: &str) -> anyhow::Result<(u32, File)> {
    for slot in 0..MAX_SLOTS {
        let path: PathBuf = dir.join(format!("{namespace}.{slot}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("while opening the slot lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => return Ok((slot, file)),
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("while locking {}", path.display()))
            }
        }
    }
    anyhow::bail!(
        "all {MAX_SLOTS} processor slots in {} are taken; set PROCESSOR_INSTANCE_ID",
        dir.display()
    )
}

/// The OS's host name (Linux: the kernel's; elsewhere `HOSTNAME` if exported), else `processor`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "processor".to_string())
}

/// Kafka ids allow `[A-Za-z0-9._-]` and at most 249 characters.
fn sanitize(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if cleaned.is_empty() {
        "processor".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    #[test]
    fn live_instances_get_distinct_ids_and_a_freed_slot_is_reused() {
        let namespace = namespace();
        let first = Instance::acquire(None, &namespace).expect("first");
        let second = Instance::acquire(None, &namespace).expect("second");
        let third = Instance::acquire(None, &namespace).expect("third");
        let host = sanitize(&host_name());
        assert_eq!(first.id(), format!("{host}-0"));
        assert_eq!(second.id(), format!("{host}-1"));
        assert_eq!(third.id(), format!("{host}-2"));
        // The process in slot 1 dies (its lock goes with it) and restarts: same id again.
        drop(second);
        let restarted = Instance::acquire(None, &namespace).expect("restarted");
        assert_eq!(restarted.id(), format!("{host}-1"));
    }

    #[test]
    fn other_namespaces_do_not_share_slots() {
        let a = Instance::acquire(None, &namespace()).expect("a");
        let b = Instance::acquire(None, &namespace()).expect("b");
        assert_eq!(a.id(), b.id(), "slot 0 in each namespace");
    }

    #[test]
    fn an_explicit_id_wins_and_is_made_kafka_safe() {
        let instance = Instance::acquire(Some("eu west/1"), &namespace()).expect("explicit");
        assert_eq!(instance.id(), "eu_west_1");
    }
}
