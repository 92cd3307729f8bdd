//! How long a run may take (its budget) and is expected to take, and waiting for the
//! kernel to give memory back between runs.

use std::time::{Duration, Instant};

use super::Options;
use super::plan::{Job, Registry, SCALE_SEND_PATH_MAX_LOAD};

/// The budget of a run: the flat budget (with --scale, plus 5 s per million entries) and
/// the time its measurements need.
pub(super) fn budget(job: &Job, options: &Options, registry: &Registry) -> Duration {
    Duration::from_secs(
        if options.scale {
            options.budget + 5 * job.size / 1_000_000
        } else {
            options.budget
        } + measuring_seconds(job, options, registry),
    )
}

/// Seconds a run is expected to take: one and a half for the testbed, a load guess that grows
/// with the list (about 2 s per million entries here for the fast engines), and its
/// measurements without the budget's margins. Used to tell the time left, not to stop
/// anything: for the default sweep it comes to about 39 minutes, which took 37 here.
pub(super) fn expected_seconds(job: &Job, options: &Options, registry: &Registry) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "an estimate")]
    let load = job.size as f64 / 1e6 * 2.0;
    let mut seconds = 1.5 + load;
    if job.send_path {
        seconds += 15.0 + load;
        if !options.scale && !options.quick {
            seconds += 25.0;
        }
    }
    if job.updates {
        seconds += options.update_seconds + 3.0;
    }
    if job.new_flows {
        seconds += 8.0;
    }
    if registry.times_program(job) {
        seconds += 5.0;
    }
    seconds
}

/// Seconds a run's measurements take beyond the load, with room to spare: the send path
/// (with and without the filter, and during the update feed), paired traffic, the update
/// feed and the program's timing. Added to the budget, so that only a slow load or a hang
/// stops a run.
pub(super) fn measuring_seconds(job: &Job, options: &Options, registry: &Registry) -> u64 {
    let mut seconds = 0;
    if job.send_path {
        // One and many destinations and the none-vs-none check, plus a second load.
        seconds += 40;
        if !options.scale {
            // Paired traffic: a none-vs-none check and four cases, N-A-A-N rounds.
            seconds += 45;
        }
        if job.updates {
            seconds += 20;
        }
        if job.new_flows {
            seconds += 20;
        }
    }
    if job.updates {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "seconds of a feed"
        )]
        let feed = options.update_seconds.ceil() as u64;
        seconds += feed + 15;
    }
    if registry.times_program(job) {
        seconds += 20;
    }
    seconds
}

/// The kernel frees a big map or set after its file is closed, in the background: wait (up to
/// two minutes) until memory is back near where the sweep started, so one run's leftovers do
/// not count against the next one's memory checks.
pub(super) fn wait_for_memory(at_start: Option<u64>) {
    let Some(start) = at_start else { return };
    let began = Instant::now();
    let deadline = began + Duration::from_secs(120);
    while filter_core::memory::available().is_some_and(|now| now < start / 100 * 95)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    if began.elapsed() > Duration::from_secs(2) {
        eprintln!(
            "  waited {:.0} s for the kernel to give back the last run's memory",
            began.elapsed().as_secs_f64()
        );
    }
}

/// What the scale test expects of a run from the last size it loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Projection {
    /// The load's projected seconds: linear in the entries, with a tenth to spare.
    pub(super) load: f64,
    /// Whether the send path (a second load) is still measured.
    pub(super) send_path: bool,
    /// The run's projected seconds: the loads and half a minute for the rest.
    pub(super) whole: f64,
    /// Whether that is over the budget: then the run is skipped, not tried.
    pub(super) over_budget: bool,
}

/// Projects a run of `size` entries from the last load seen (`(entries, seconds)`): the send
/// path is left out past [`SCALE_SEND_PATH_MAX_LOAD`], and the run is over budget when the
/// whole projection is.
pub(super) fn project(
    last: (u64, f64),
    size: u64,
    send_path: bool,
    budget: Duration,
) -> Projection {
    #[expect(clippy::cast_precision_loss, reason = "a projection")]
    let load = last.1 * size as f64 / last.0.max(1) as f64 * 1.1;
    let send_path = send_path && load <= SCALE_SEND_PATH_MAX_LOAD.as_secs_f64();
    let whole = load * if send_path { 2.0 } else { 1.0 } + 30.0;
    Projection {
        load,
        send_path,
        whole,
        over_budget: whole > budget.as_secs_f64(),
    }
}

/// Why a run of `size` entries would not fit in memory, projected from the last run of the
/// same filter (`(entries, bytes it needed at once)`: user space, its own or a child's like
/// `nft -f`, plus the kernel's share) with a fifth to spare, against three quarters of
/// `available`; `None` when it fits or nothing can be said.
pub(super) fn memory_shortfall(
    last: (u64, u64),
    size: u64,
    available: Option<u64>,
) -> Option<String> {
    let available = available?;
    if size <= last.0 || last.0 == 0 {
        return None;
    }
    // Past this many bytes per entry, what a small run needed is mostly a fixed cost
    // (preallocated maps: the Cilium model's conntrack, the DIR-24-8 table), not growth: no
    // filter here needs more per entry (nft -f, the hungriest, ~420 B).
    const MAX_BYTES_PER_ENTRY: f64 = 4096.0;
    #[expect(clippy::cast_precision_loss, reason = "a projection")]
    let (bytes, entries) = (last.1 as f64, last.0 as f64);
    let per_entry = (bytes / entries).min(MAX_BYTES_PER_ENTRY);
    let fixed = bytes - per_entry * entries;
    #[expect(clippy::cast_precision_loss, reason = "a projection")]
    let needed = (fixed + per_entry * size as f64) * 1.2;
    #[expect(clippy::cast_precision_loss, reason = "a projection")]
    let usable = available as f64 * 0.75;
    let gib = |b: f64| b / f64::from(1 << 30);
    (needed > usable).then(|| {
        format!(
            "not run: would need ~{:.1} GiB of {:.1} GiB available (projected from {:.2} GiB at {} \
             entries; the machine keeps a quarter)",
            gib(needed),
            gib(available as f64),
            gib(last.1 as f64),
            last.0
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{memory_shortfall, project};

    /// nft -f needed 4 GiB at 10M: 50M would need ~24 GiB, more than 24 GiB of a machine
    /// can spare; a run no larger than the last is never refused.
    #[test]
    fn memory_projections_refuse_what_would_not_fit() {
        let gib = 1u64 << 30;
        let why = memory_shortfall((10_000_000, 4 * gib), 50_000_000, Some(24 * gib)).unwrap();
        assert!(
            why.contains("would need ~24.0 GiB of 24.0 GiB available"),
            "{why}"
        );
        assert!(memory_shortfall((10_000_000, 4 * gib), 10_000_000, Some(gib)).is_none());
        assert!(memory_shortfall((1_000_000, gib / 10), 10_000_000, Some(24 * gib)).is_none());
        assert!(memory_shortfall((1_000_000, gib), 10_000_000, None).is_none());
        // 224 MiB at 1,000 entries is preallocated maps, not 230 KB per entry.
        assert!(memory_shortfall((1_000, 224 << 20), 100_000, Some(24 * gib)).is_none());
        assert!(memory_shortfall((1_000, 224 << 20), 10_000_000, Some(24 * gib)).is_some());
    }

    /// A load of 20 s at 10M projects to 110 s at 50M: no send path past 100 s, and over a
    /// 100 s budget; within a 300 s budget it runs, load only.
    #[test]
    fn projections_leave_out_the_send_path_then_skip() {
        let p = project(
            (10_000_000, 20.0),
            50_000_000,
            true,
            Duration::from_secs(100),
        );
        assert!((p.load - 110.0).abs() < 1e-9);
        assert!(!p.send_path && p.over_budget);
        let p = project(
            (10_000_000, 20.0),
            50_000_000,
            true,
            Duration::from_secs(300),
        );
        assert!(!p.send_path && !p.over_budget);
        let p = project(
            (10_000_000, 5.0),
            50_000_000,
            true,
            Duration::from_secs(300),
        );
        assert!(p.send_path && (p.whole - (2.0 * 27.5 + 30.0)).abs() < 1e-9);
    }
}
