//! One daemon per store. Two `cemsd run` on one store file would both append, mix their
//! series and move each other's sink cursors; SQLite alone does not stop that. The daemon
//! holds an exclusive `flock(2)` on a lock file beside the store for its whole run, and the
//! file names the holder's PID for the message the second one prints.
//!
//! The kernel drops the lock when the process ends, however it ends, so a crash never leaves
//! a stale lock behind; the file itself stays and is reused.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StoreLock {
    _file: Flock<File>,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}: another cemsd ({}) runs on this store", path.display(), holder_text(*pid))]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("{}: cannot open the store's lock file: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot lock the store: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: Errno,
    },
}

impl LockError {
    /// Whether a restart cannot help: another daemon holds the store, or its directory is
    /// not ours to write. See [`super::StoreError::needs_operator`].
    pub fn needs_operator(&self) -> bool {
        match self {
            LockError::Held { .. } => true,
            LockError::Open { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::IsADirectory
            ),
            LockError::Lock { .. } => false,
        }
    }
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("PID {pid}"),
        None => "PID unknown".to_string(),
    }
}

/// `cemsd.db` → `cemsd.db.lock`, in the store's directory.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StoreLock {
    /// Takes the lock for the store at `store` without waiting, creating the store's
    /// directory and the lock file when needed, and writes our PID into it.
    pub fn acquire(store: &Path) -> Result<StoreLock, LockError> {
        let path = lock_path(store);
        let open_failed = |source| LockError::Open {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_failed)?;
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_failed)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    pid: read_pid(&mut file),
                    path,
                })
            }
            Err((_, source)) => return Err(LockError::Lock { path, source }),
        };
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data());
        written.map_err(open_failed)?;
        Ok(StoreLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_store_fails_naming_the_holder_and_a_released_one_is_taken_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store = dir.path().join("data").join("cemsd.db");
        let first = StoreLock::acquire(&store).unwrap_or_else(|e| panic!("first lock: {e}"));
        assert_eq!(first.path(), dir.path().join("data").join("cemsd.db.lock"));
        match StoreLock::acquire(&store) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("a second lock must fail as held, got {other:?}"),
        }
        // Another store in the same directory is another lock.
        let other = StoreLock::acquire(&dir.path().join("data").join("other.db"));
        assert!(other.is_ok(), "{other:?}");
        drop(first);
        assert!(StoreLock::acquire(&store).is_ok());
    }

    #[test]
    fn the_message_names_the_other_pid() {
        let held = LockError::Held {
            path: PathBuf::from("/var/lib/cemsd/cemsd.db.lock"),
            pid: Some(4242),
        };
        assert_eq!(
            held.to_string(),
            "/var/lib/cemsd/cemsd.db.lock: another cemsd (PID 4242) runs on this store"
        );
    }
}
