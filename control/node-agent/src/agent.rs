//! The agent's loop: read every chunk, make the filter equal to their union, then follow
//! the source's changes from that revision, applying them once they settle. Any failure to
//! reach the source leaves the filter as it is (stale, reported); a compacted history is
//! followed by a full read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use filter_core::EgressFilter;

use crate::source::{Change, Failure, Source};
use crate::state::{Changes, Chunks};
use crate::status::{Reporter, State, Status};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the status is written, besides standard error.
    pub status: Option<std::path::PathBuf>,
    /// How long changes must be quiet before they are applied (a publish of many chunks is
    /// then one sync, not one per chunk), but never longer than a second after the first.
    pub settle: Duration,
    /// How long to wait before trying the source again after a failure.
    pub retry: Duration,
}

/// The settle time `egress-bench agent` uses unless told otherwise, in milliseconds: a
/// publish's chunks arrive within a few milliseconds of each other.
pub const DEFAULT_SETTLE_MS: u64 = 20;

/// The longest a change waits for the changes after it to settle: a store that never goes
/// quiet still has its changes applied this often.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// How many times longer a pending whole-list load waits than entry changes do.
const BULK_PATIENCE: u32 = 5;

/// How often the loop looks at the stop flag and the settle time.
const TICK: Duration = Duration::from_millis(20);

/// Keeps `filter` equal to the union of `source`'s chunks until `stop` is set; `adopted`
/// says whether it was taken over from an earlier agent (reported). The filter is left as
/// it is on return: a filter made to outlive the process stays enforced.
///
/// # Errors
/// When the async runtime cannot start.
pub fn run(
    filter: &mut dyn EgressFilter,
    adopted: bool,
    source: &mut impl Source,
    config: &Config,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut agent = Agent {
        filter,
        config,
        chunks: Chunks::default(),
        reporter: Reporter::new(config.status.as_deref()),
        status: Status {
            state: State::Starting,
            revision: 0,
            chunks: 0,
            entries: 0,
            refused: Vec::new(),
            adopted,
            syncs: 0,
            last_sync_ms: 0.0,
            error: None,
            at_unix_ms: 0,
        },
        stop,
    };
    agent.reporter.report(&mut agent.status);
    runtime.block_on(agent.follow(source));
    Ok(())
}

/// Why a session with the source ended.
enum Ended {
    Failed(Failure),
    /// The filter refused the list: the old list stays; read everything again later.
    Refused(String),
    Stop,
}

struct Agent<'a> {
    filter: &'a mut dyn EgressFilter,
    config: &'a Config,
    chunks: Chunks,
    reporter: Reporter,
    status: Status,
    stop: &'a AtomicBool,
}

impl Agent<'_> {
    async fn follow(&mut self, source: &mut impl Source) {
        loop {
            let why = match self.session(source).await {
                Ended::Stop => return,
                Ended::Failed(Failure::Compacted(revision)) => {
                    eprintln!(
                        "agent: the history was compacted (to revision {revision}) past the \
                         revision followed: reading the whole list again"
                    );
                    continue;
                }
                Ended::Failed(Failure::Unreachable(why)) | Ended::Refused(why) => why,
            };
            if self.status.state == State::InSync {
                self.status.state = State::Stale;
            }
            self.status.error = Some(why);
            self.reporter.report(&mut self.status);
            if self.wait(self.config.retry).await {
                return;
            }
        }
    }

    /// Sleeps `span` in short steps; whether asked to stop meanwhile.
    async fn wait(&self, span: Duration) -> bool {
        let until = Instant::now() + span;
        while Instant::now() < until {
            if self.stopping() {
                return true;
            }
            tokio::time::sleep(TICK).await;
        }
        self.stopping()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A full read, then the changes, until something ends it.
    async fn session(&mut self, source: &mut impl Source) -> Ended {
        let snapshot = match source.read().await {
            Ok(snapshot) => snapshot,
            Err(failure) => return Ended::Failed(failure),
        };
        let mut revision = snapshot.revision;
        self.chunks = self.chunks.resync(
            snapshot
                .chunks
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice())),
        );
        if let Err(refused) = self.apply(revision, true) {
            return refused;
        }
        if let Err(failure) = source.follow(revision).await {
            return Ended::Failed(failure);
        }
        // The first and the last change not yet applied.
        let mut pending: Option<(Instant, Instant)> = None;
        loop {
            if self.stopping() {
                return Ended::Stop;
            }
            let (quiet, longest) = self.patience();
            if pending
                .is_some_and(|(first, last)| last.elapsed() >= quiet || first.elapsed() >= longest)
            {
                pending = None;
                if let Err(refused) = self.apply(revision, false) {
                    return refused;
                }
            }
            // Wait no longer than the settle time left: a change is applied `settle` after
            // the last one, not at the next tick.
            let wait = pending.map_or(TICK, |(_, last)| {
                quiet
                    .saturating_sub(last.elapsed())
                    .clamp(Duration::from_millis(1), TICK)
            });
            let changes = match source.next(wait).await {
                Ok(Some(changes)) => changes,
                Ok(None) => continue,
                Err(failure) => return Ended::Failed(failure),
            };
            let mut changed = false;
            for change in &changes.changes {
                changed |= match change {
                    Change::Put(key, value) => self.chunks.put(key, value),
                    Change::Delete(key) => self.chunks.delete(key),
                };
            }
            revision = revision.max(changes.revision);
            if changed {
                let now = Instant::now();
                pending = Some((pending.map_or(now, |(first, _)| first), now));
            } else if pending.is_none() {
                // Nothing in force changed (a refused chunk, a progress note): say so.
                self.status.revision = revision;
                self.status.state = State::InSync;
                self.status.error = None;
                self.refresh_refused();
                self.reporter.report(&mut self.status);
            }
        }
    }

    /// How long pending changes wait for quiet, and at most. Entry changes: `settle` and
    /// [`MAX_DELAY`]. A pending whole-list load (a publish under way) waits
    /// [`BULK_PATIENCE`] times longer for both: every load of a partial list is a whole
    /// table built and thrown away when the rest arrives.
    fn patience(&self) -> (Duration, Duration) {
        if self.chunks.whole_pending() {
            (
                self.config.settle * BULK_PATIENCE,
                MAX_DELAY * BULK_PATIENCE,
            )
        } else {
            (self.config.settle, MAX_DELAY)
        }
    }

    fn refresh_refused(&mut self) {
        self.status.refused = self.chunks.refused().map(ToString::to_string).collect();
    }

    /// Makes the filter equal to the chunks' union: after a full read by `sync` with the
    /// whole list (the fewest changes, or one swap); when more than [`WHOLE_LIST_SHARE`](crate::state::WHOLE_LIST_SHARE) of
    /// it changed, by `replace` (a fresh copy swapped in); otherwise by adding and removing
    /// just the entries that came and went, which costs what changed, whatever the list's
    /// length. On failure the filter keeps what
    /// it had (every engine's change either applies or leaves the old list), and the next
    /// session starts with a full read.
    fn apply(&mut self, revision: i64, whole: bool) -> Result<(), Ended> {
        let started = Instant::now();
        self.refresh_refused();
        let changes = self.chunks.take_changes();
        let swapped = whole || matches!(changes, Changes::Whole(_));
        let refused = |e: filter_core::Error| {
            Ended::Refused(format!(
                "the filter refused the list at revision {revision} (the last good list \
                 stays): {e}"
            ))
        };
        match changes {
            // After a full read: the fewest changes against what the filter holds.
            Changes::Whole(union) if whole => {
                self.filter.sync(&union).map_err(refused)?;
            }
            _ if whole => {
                self.filter.sync(&self.chunks.union()).map_err(refused)?;
            }
            Changes::Whole(union) => {
                match self.filter.replace(&union) {
                    Err(filter_core::Error::NotLoaded) => self.filter.sync(&union).map(drop),
                    other => other,
                }
                .map_err(refused)?;
            }
            Changes::Entries(delta) => {
                if !delta.came.is_empty() {
                    self.filter.add(&delta.came).map_err(refused)?;
                }
                if !delta.went.is_empty() {
                    self.filter.remove(&delta.went).map_err(refused)?;
                }
            }
        }
        if swapped {
            eprintln!(
                "agent: revision {revision}: the whole list ({} entries) loaded in {:.0} ms",
                self.chunks.entries(),
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        self.status.state = State::InSync;
        self.status.revision = revision;
        self.status.chunks = self.chunks.len();
        self.status.entries = self.chunks.entries();
        self.status.syncs += 1;
        self.status.last_sync_ms = started.elapsed().as_secs_f64() * 1e3;
        self.status.error = None;
        self.reporter.report(&mut self.status);
        Ok(())
    }
}
