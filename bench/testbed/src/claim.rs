//! Which `egb-*` objects belong to a benchmark run, and whether that run still lives.
//!
//! A run (an `egress-bench run`, a testbed of a test) claims its tag before it makes
//! anything: it holds an exclusive `flock` on `/run/egress-bench/<tag>.lock`, with its pid
//! written inside, for as long as it lives. The kernel drops the lock when the process ends,
//! however it ends (kill -9 included), so:
//!
//! - a second run cannot take a tag a live run holds (two runs with one `--run-id` would
//!   share names, and one's exit would remove the other's objects);
//! - `cleanup` removes the objects of runs whose lock file is there but no longer held (they
//!   died), and leaves alone those of live runs and every `egb-*` object no run claimed: a
//!   filter installed by a program embedding the engine crates is never the benchmark's.
//!
//! `/run` is emptied at boot, as are the namespaces and kernel objects the claims speak for.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use filter_core::{Error, Result, Tag};
use nix::fcntl::{Flock, FlockArg};

/// Where the claims live.
pub const CLAIMS_DIR: &str = "/run/egress-bench";

fn path_of(tag: &str) -> PathBuf {
    PathBuf::from(CLAIMS_DIR).join(format!("{tag}.lock"))
}

/// A held claim on a tag: the tag's objects belong to this process while it lives.
/// Clones share one lock; the file goes when the last is dropped.
#[derive(Clone)]
pub struct RunClaim(Arc<Held>);

struct Held {
    tag: String,
    lock: Option<Flock<File>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Removed while still locked, so nobody takes a file that is about to go.
        let _ = fs::remove_file(path_of(&self.tag));
        drop(self.lock.take());
    }
}

/// The claims this process holds, by tag, so that a testbed, its sink pair and the run that
/// made them share one.
static HELD: Mutex<Option<HashMap<String, Weak<Held>>>> = Mutex::new(None);

impl RunClaim {
    /// Claims `tag` for this process, or shares the claim this process already holds.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the live run (its pid) that holds the tag;
    /// [`Error::Io`] when the claims folder cannot be written (needs root).
    pub fn take(tag: &Tag) -> Result<Self> {
        Self::try_take(tag)?.map_err(|pid| {
            Error::InvalidInput(format!(
                "run id {} is in use by a live run (pid {pid}): pick another --run-id",
                tag.as_str().trim_start_matches(filter_core::OBJECT_PREFIX)
            ))
        })
    }

    /// Claims a fresh random tag, drawing again (a few times) when a live run holds one.
    ///
    /// # Errors
    /// As [`take`](Self::take), when every draw is held.
    pub fn fresh() -> Result<(Tag, Self)> {
        for _ in 0..5 {
            let tag = Tag::random();
            if let Ok(claim) = Self::try_take(&tag)? {
                return Ok((tag, claim));
            }
        }
        let tag = Tag::random();
        let claim = Self::take(&tag)?;
        Ok((tag, claim))
    }

    /// Claims `tag`, or shares this process's claim of it; `Err(pid)` inside when another
    /// live run holds it.
    fn try_take(tag: &Tag) -> Result<std::result::Result<Self, String>> {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        let held = held.get_or_insert_with(HashMap::new);
        if let Some(claim) = held.get(tag.as_str()).and_then(Weak::upgrade) {
            return Ok(Ok(Self(claim)));
        }
        let mut file = match lock(tag.as_str())? {
            Ok(file) => file,
            Err(pid) => return Ok(Err(pid)),
        };
        file.set_len(0)
            .map_err(|e| Error::io("writing a run claim", e))?;
        file.rewind()
            .map_err(|e| Error::io("writing a run claim", e))?;
        writeln!(file, "{}", std::process::id())
            .map_err(|e| Error::io("writing a run claim", e))?;
        let claim = Arc::new(Held {
            tag: tag.as_str().to_owned(),
            lock: Some(file),
        });
        held.insert(tag.as_str().to_owned(), Arc::downgrade(&claim));
        Ok(Ok(Self(claim)))
    }

    /// The claimed tag.
    pub fn tag(&self) -> &str {
        &self.0.tag
    }
}

impl std::fmt::Debug for RunClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunClaim({})", self.0.tag)
    }
}

/// Removes the claim files this process holds, when it is about to exit without running
/// destructors (on a signal, once its objects are gone).
pub(crate) fn release_all() {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    for tag in held.iter().flat_map(HashMap::keys) {
        let _ = fs::remove_file(path_of(tag));
    }
}

/// Locks the claim file of `tag`: the locked file, or the pid of the live run holding it.
fn lock(tag: &str) -> Result<std::result::Result<Flock<File>, String>> {
    fs::create_dir_all(CLAIMS_DIR)
        .map_err(|e| Error::io(format!("creating {CLAIMS_DIR} (needs root)"), e))?;
    let path = path_of(tag);
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => {
                // The file may have been removed (by its last owner or a cleanup) between
                // opening and locking it: then lock the one at the path now.
                let same = fs::metadata(&path)
                    .ok()
                    .zip(locked.metadata().ok())
                    .is_some_and(|(now, ours)| now.ino() == ours.ino());
                if same {
                    return Ok(Ok(locked));
                }
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Ok(Err(pid.trim().to_owned()));
            }
            Err((_, errno)) => {
                return Err(Error::io(
                    format!("locking {}", path.display()),
                    std::io::Error::from(errno),
                ));
            }
        }
    }
}

/// A claim found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A run that lives: its tag and pid.
    Live {
        /// The tag (`egb-<id>`).
        tag: String,
        /// Its process id, as it wrote it.
        pid: String,
    },
    /// A run that died without cleaning up: its tag.
    Dead {
        /// The tag (`egb-<id>`).
        tag: String,
    },
}

impl Claim {
    /// The claimed tag.
    pub fn tag(&self) -> &str {
        match self {
            Self::Live { tag, .. } | Self::Dead { tag } => tag,
        }
    }
}

/// Every claim on the machine, live or dead.
///
/// # Errors
/// [`Error::Io`] when the claims folder exists but cannot be read.
pub fn claims() -> Result<Vec<Claim>> {
    let entries = match fs::read_dir(CLAIMS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {CLAIMS_DIR}"), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {CLAIMS_DIR}"), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tag) = name.strip_suffix(".lock") else {
            continue;
        };
        let mine = HELD
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|held| held.get(tag).and_then(Weak::upgrade))
            .is_some();
        if mine {
            found.push(Claim::Live {
                tag: tag.to_owned(),
                pid: std::process::id().to_string(),
            });
            continue;
        }
        // Asking is taking the lock for a moment: released at once.
        match lock(tag)? {
            Ok(_released) => found.push(Claim::Dead {
                tag: tag.to_owned(),
            }),
            Err(pid) => found.push(Claim::Live {
                tag: tag.to_owned(),
                pid,
            }),
        }
    }
    found.sort_by(|a, b| a.tag().cmp(b.tag()));
    Ok(found)
}

/// Takes over the claim of a dead run, so that nobody starts a run under its tag while its
/// objects are removed; `None` when the run lives after all. Dropping the returned claim
/// removes the claim file.
///
/// # Errors
/// As [`RunClaim::take`].
pub fn adopt_dead(tag: &str) -> Result<Option<RunClaim>> {
    Ok(RunClaim::try_take(&Tag::from_name(tag)?)?.ok())
}
