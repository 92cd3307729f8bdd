//! `run --updates`: a feed of adds and removes applied to a loaded filter while probe streams
//! check that what must stay denied never passes and what must stay allowed never drops.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, EgressFilter, Family};
use ipnet::IpNet;
use testbed::{ALLOWED_V4, ALLOWED_V6, DENIED_V4, DENIED_V6, Testbed};

/// Gap between the packets of the streams that watch for violations.
const WATCH_INTERVAL: Duration = Duration::from_micros(50);

/// An address of the testbed's probe network that no list holds: the target of the
/// call-to-enforcement measurement.
const LATENCY_TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 200, 1);

/// Times the call-to-enforcement latency is measured; the median is reported.
const LATENCY_ROUNDS: usize = 5;

/// How fast the feed goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the filter takes the calls.
    Max,
    /// This many entries changed per second.
    PerSecond(f64),
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
            _ => Err(format!(
                "--updates {s:?}: give `max` or entries per second (a positive number)"
            )),
        }
    }
}

/// Options of the update feed.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// Also apply a feed of adds and removes after the load, while probe streams check
    /// that addresses that stay denied never pass and those that stay allowed never drop:
    /// `max` (as fast as the filter takes them) or entries per second.
    #[arg(long)]
    pub updates: Option<Rate>,
    /// Entries per add or remove call (1: single-entry updates).
    #[arg(long, default_value_t = 1, requires = "updates")]
    pub update_batch: usize,
    /// How long the feed runs, in seconds.
    #[arg(long, default_value_t = 5.0, requires = "updates")]
    pub update_duration: f64,
}

use records::stats::percentile;
pub use records::{Stream, Updates};

/// Entries the feed cycles through: generated with another seed, in the family the list
/// holds, none of them in the list.
fn pool(list: &CidrList, family: Family, size: usize) -> Vec<IpNet> {
    let held: std::collections::HashSet<IpNet> = list.iter().map(|n| n.trunc()).collect();
    generate(size, 0xfeed_5eed, Mix::Default, &[family])
        .iter()
        .filter(|n| !held.contains(&n.trunc()))
        .collect()
}

/// The feed: a window of churn entries kept in the list. Each step adds the next entries of
/// the pool and removes those added a window earlier, so the list's size stays steady while
/// every entry of it turns over, as under a threat feed.
pub struct Feed {
    pool: Vec<IpNet>,
    batch: usize,
    window: usize,
    step: usize,
    rate: Rate,
    start: Instant,
    /// Entries added and removed so far (each counts as one update).
    pub updates: u64,
    /// The time each add or remove call took, microseconds.
    pub calls_us: Vec<f64>,
}

impl Feed {
    /// A feed of entries not in `list`, in `family`, `batch` per call, paced to `rate`.
    pub fn new(list: &CidrList, family: Family, batch: usize, rate: Rate) -> Self {
        let pool = pool(list, family, 200_000);
        let batch = batch.max(1);
        // At most a quarter of the list extra at any time: maps sized for the list (tries
        // made for twice its entries) take the window.
        let window = (list.len() / 4).min(pool.len() / 2).max(batch);
        Self {
            window,
            pool,
            batch,
            step: 0,
            rate,
            start: Instant::now(),
            updates: 0,
            calls_us: Vec::new(),
        }
    }

    fn at(&self, step: usize) -> Vec<IpNet> {
        (0..self.batch)
            .map(|j| self.pool[(step * self.batch + j) % self.pool.len()])
            .collect()
    }

    /// One step: an add and, once the window is full, a remove; then waits as the rate asks.
    ///
    /// # Errors
    /// When the filter refuses a change.
    pub fn step(&mut self, filter: &mut dyn EgressFilter) -> Result<()> {
        let t = Instant::now();
        filter
            .add(&self.at(self.step))
            .context("adding entries of the feed")?;
        self.calls_us.push(t.elapsed().as_secs_f64() * 1e6);
        self.updates += self.batch as u64;
        if self.step * self.batch >= self.window {
            let t = Instant::now();
            filter
                .remove(&self.at(self.step - self.window / self.batch))
                .context("removing entries of the feed")?;
            self.calls_us.push(t.elapsed().as_secs_f64() * 1e6);
            self.updates += self.batch as u64;
        }
        self.step += 1;
        if let Rate::PerSecond(r) = self.rate {
            #[expect(clippy::cast_precision_loss, reason = "a pace")]
            let due = Duration::from_secs_f64(self.updates as f64 / r);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    }

    /// Removes the window of churn entries: the filter holds the list as loaded again.
    ///
    /// # Errors
    /// When the filter refuses the removal.
    pub fn undo(&self, filter: &mut dyn EgressFilter) -> Result<()> {
        let live: Vec<IpNet> = (self.step.saturating_sub(self.window / self.batch)..self.step)
            .flat_map(|i| (0..self.batch).map(move |j| i * self.batch + j))
            .map(|i| self.pool[i % self.pool.len()])
            .collect();
        filter.remove(&live).context("removing the feed's entries")
    }

    /// Updates per second since the feed began.
    pub fn rate_so_far(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let updates = self.updates as f64;
        updates / self.start.elapsed().as_secs_f64()
    }
}

/// Applies the feed to `filter` (loaded with `list`) in `bed`, then measures how long an
/// add takes to be enforced, and leaves the filter holding `list` again.
pub fn measure(
    bed: &Testbed,
    filter: &mut dyn EgressFilter,
    list: &CidrList,
    families: &[Family],
    args: &UpdateArgs,
) -> Result<Updates> {
    let rate = args.updates.context("no --updates")?;
    let family = if families.contains(&Family::V4) {
        Family::V4
    } else {
        Family::V6
    };
    let (denied, allowed): (IpAddr, IpAddr) = match family {
        Family::V4 => (DENIED_V4.into(), ALLOWED_V4.into()),
        Family::V6 => (DENIED_V6.into(), ALLOWED_V6.into()),
    };
    let denied_watch = bed.watch_enforcement(denied, WATCH_INTERVAL)?;
    let allowed_watch = bed.watch_enforcement(allowed, WATCH_INTERVAL)?;
    let duration = Duration::from_secs_f64(args.update_duration.max(0.1));
    let mut feed = Feed::new(list, family, args.update_batch, rate);
    let start = Instant::now();
    while start.elapsed() < duration {
        feed.step(filter)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(20));
    let (denied_seen, allowed_seen) = (denied_watch.finish(start)?, allowed_watch.finish(start)?);
    feed.undo(filter)?;

    let enforcement_us = if family == Family::V4 {
        Some(enforcement_latency(bed, filter)?)
    } else {
        None
    };
    let calls = std::mem::take(&mut feed.calls_us);
    anyhow::ensure!(!calls.is_empty(), "the update feed made no call");
    let stays_denied = Stream {
        address: denied,
        sent: denied_seen.sent,
        delivered: denied_seen.delivered,
    };
    let stays_allowed = Stream {
        address: allowed,
        sent: allowed_seen.sent,
        delivered: allowed_seen.delivered,
    };
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let updates_per_second = feed.updates as f64 / seconds;
    Ok(Updates {
        requested: match rate {
            Rate::Max => "max".into(),
            Rate::PerSecond(r) => format!("{r}"),
        },
        batch: feed.batch,
        seconds,
        updates: feed.updates,
        calls: calls.len() as u64,
        updates_per_second,
        call_us: [
            percentile(&calls, 0.5),
            percentile(&calls, 0.99),
            calls.iter().copied().fold(0.0, f64::max),
        ],
        enforcement_us,
        violations: stays_denied.delivered + (stays_allowed.sent - stays_allowed.delivered),
        stays_denied,
        stays_allowed,
    })
}

/// The median time from the start of an add call until packets to the added network stop
/// getting through, in microseconds; the network is removed after each round.
fn enforcement_latency(bed: &Testbed, filter: &mut dyn EgressFilter) -> Result<f64> {
    let net = IpNet::V4(ipnet::Ipv4Net::new_assert(LATENCY_TARGET, 24));
    let mut rounds = Vec::new();
    for _ in 0..LATENCY_ROUNDS {
        let watch = bed.watch_enforcement(LATENCY_TARGET.into(), Duration::from_micros(20))?;
        std::thread::sleep(Duration::from_millis(5));
        let start = Instant::now();
        filter
            .add(&[net])
            .context("adding the latency probe's network")?;
        std::thread::sleep(Duration::from_millis(10));
        let seen = watch.finish(start)?;
        filter
            .remove(&[net])
            .context("removing the latency probe's network")?;
        if let Some(after) = seen.after {
            rounds.push(after.as_secs_f64() * 1e6);
        }
    }
    anyhow::ensure!(
        !rounds.is_empty(),
        "an added network was never enforced: packets to {LATENCY_TARGET} kept getting through"
    );
    Ok(percentile(&rounds, 0.5))
}
