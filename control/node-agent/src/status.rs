//! What the agent says about itself: in step with the store at a revision, or stale (the
//! last good list still enforced) and why. Written as one JSON object to a file, replaced
//! atomically, and as a line on standard error when the state changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Not yet in step: no read of the store has succeeded since start.
    Starting,
    /// The filter equals the union of the chunks at `revision`.
    InSync,
    /// The store cannot be read or watched: the last good list stays enforced.
    Stale,
}

/// One status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The state.
    pub state: State,
    /// The store revision the filter reflects (0 before the first read).
    pub revision: i64,
    /// Chunks in force.
    pub chunks: usize,
    /// Entries in force (the union of the chunks, as the filter holds it).
    pub entries: usize,
    /// Chunks refused (each keeps its last good version), as `key: why`.
    pub refused: Vec<String>,
    /// Whether the filter was adopted from an earlier agent at start.
    pub adopted: bool,
    /// Syncs applied since start.
    pub syncs: u64,
    /// How long the last sync took, in milliseconds.
    pub last_sync_ms: f64,
    /// Why the agent is stale or starting, when it is.
    pub error: Option<String>,
    /// When this was written, in milliseconds since the Unix epoch.
    pub at_unix_ms: u128,
}

/// Where the status goes.
#[derive(Debug, Clone)]
pub struct Reporter {
    path: Option<PathBuf>,
    last: Option<(State, Option<String>)>,
}

impl Reporter {
    /// Reports to standard error, and to `path` when given.
    pub fn new(path: Option<&Path>) -> Self {
        Self {
            path: path.map(Path::to_path_buf),
            last: None,
        }
    }

    /// Writes `status` (the file every time; standard error when the state or error changed).
    pub fn report(&mut self, status: &mut Status) {
        status.at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let json =
            serde_json::to_string(status).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        let key = (status.state, status.error.clone());
        if self.last.as_ref() != Some(&key) {
            eprintln!("agent: {json}");
            self.last = Some(key);
        }
        if let Some(path) = &self.path {
            let tmp = path.with_extension("tmp");
            let written = std::fs::write(&tmp, format!("{json}\n"))
                .and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = written {
                eprintln!("agent: cannot write the status to {}: {e}", path.display());
            }
        }
    }
}

/// Reads a status file.
///
/// # Errors
/// When the file cannot be read or is not a status.
pub fn read(path: &Path) -> std::io::Result<Status> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}
