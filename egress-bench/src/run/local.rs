//! A run in a testbed this process builds: client and server namespaces joined by a veth.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use filter_core::{Family, Tag, count};
use testbed::{ALLOWED_V4, ALLOWED_V6, DENIED_V4, DENIED_V6, Testbed};

use super::record as new_record;
use super::{ENFORCEMENT_INTERVAL, RunArgs, finish, new_spinner, verdict};
use crate::filters::FilterKind;
use crate::list;
use crate::record::{Figures, Verdict};
use crate::system;

/// Builds the testbed, loads, verifies and measures, and writes the record.
pub(super) fn run(args: &RunArgs) -> Result<()> {
    let (tag, _claim) = super::claim_tag(args)?;
    let (list, list_info) = list::build(&args.list)?;
    let families = list_info.families.list();
    let environment = system::environment();

    let bed = Testbed::with_tag(tag.clone()).context("building the testbed (needs root)")?;
    let placement = args.placement(bed.client(), &tag, bed.client_link(), bed.workload())?;
    let mut filter = args
        .filter
        .build(&placement)
        .with_context(|| format!("setting up the {} filter", args.filter.name()))?;

    let watched: IpAddr = if families.contains(&Family::V4) {
        DENIED_V4.into()
    } else {
        DENIED_V6.into()
    };
    // Traffic runs alternate with a twin testbed without a filter; both are compared
    // before the load, to show how close to equal the method gets here.
    let traffic_settings = crate::traffic::Settings {
        rounds: args.traffic_rounds.max(1),
        leg: Duration::from_millis(args.traffic_leg_ms.max(10)),
        flows: args.flows.max(1),
        ..crate::traffic::Settings::default()
    };
    let twin = if args.traffic {
        Some(Testbed::new().context("building the twin testbed for traffic")?)
    } else {
        None
    };
    let none_vs_none = match &twin {
        Some(twin) => {
            let spinner = new_spinner("traffic: none vs none".into());
            let check = crate::traffic::none_vs_none(&bed, twin, &traffic_settings)
                .context("measuring traffic without a filter on both testbeds")?;
            spinner.finish_and_clear();
            Some(check)
        }
        None => None,
    };
    let memory_before = system::AllocationBaseline::read();
    let watch = bed.watch_enforcement(watched, ENFORCEMENT_INTERVAL)?;
    std::thread::sleep(Duration::from_millis(5));
    let spinner = new_spinner(format!(
        "loading {} into {}",
        count(list.len() as u64, "entry", "entries"),
        filter.name()
    ));
    let start = Instant::now();
    let loaded = filter.load(&list);
    let load_time = start.elapsed();
    spinner.finish_and_clear();
    std::thread::sleep(Duration::from_millis(50));
    let enforcement = watch.finish(start)?;
    loaded.with_context(|| format!("loading the list into the {} filter", filter.name()))?;
    // After the load: how a list is held can depend on the list.
    let backend = filter.backend();
    let mut warnings = filter.warnings();

    let verdict = verify(&bed, args.filter, families)?;
    let figures = if verdict.ok {
        // Read before traffic runs: sockets and queues would count as the filter's memory.
        let allocations = memory_before
            .zip(system::kernel_allocations())
            .map(|(before, after)| before.delta_to(after));
        let updates = match args.updates.updates {
            Some(_) => {
                let spinner = new_spinner("applying the update feed under probes".into());
                let updates =
                    crate::updates::measure(&bed, filter.as_mut(), &list, families, &args.updates)
                        .context("applying the update feed")?;
                spinner.finish_and_clear();
                Some(updates)
            }
            None => None,
        };
        let traffic = match &twin {
            Some(twin) => {
                let spinner = new_spinner("sending traffic with and without the filter".into());
                let traffic =
                    crate::traffic::measure(&bed, twin, none_vs_none.clone(), &traffic_settings)
                        .context("measuring traffic through the filter")?;
                spinner.finish_and_clear();
                Some(traffic)
            }
            None => None,
        };
        let stats = filter.stats().context("reading the filter's statistics")?;
        let kernel_count = if list.len() <= records::KERNEL_COUNT_MAX {
            filter
                .kernel_count()
                .context("reading back what the kernel holds")?
        } else {
            None
        };
        let program_costs = if args.no_program_cost {
            Vec::new()
        } else {
            let probes = testbed::cost_probes(families);
            let timing = new_spinner(format!(
                "timing the {} program (BPF_PROG_TEST_RUN)",
                filter.name()
            ));
            let costs = filter
                .program_costs(&probes)
                .context("timing the filter program")?;
            timing.finish_and_clear();
            costs
        };
        let start = Instant::now();
        filter.teardown().context("tearing the filter down")?;
        let teardown_time = start.elapsed();
        let send_path = if args.send_path {
            Some(measure_send_path(args, &tag, &list)?)
        } else {
            None
        };
        Some(Figures {
            load_seconds: load_time.as_secs_f64(),
            enforcement_seconds: enforcement.after.map(|d| d.as_secs_f64()),
            enforcement_resolution_us: Some(enforcement.resolution.as_secs_f64() * 1e6),
            enforcement_max_gap_us: Some(enforcement.max_gap.as_secs_f64() * 1e6),
            teardown_seconds: teardown_time.as_secs_f64(),
            stats,
            kernel_count,
            program_costs,
            send_path,
            traffic,
            updates,
            kernel_allocations: allocations,
        })
    } else {
        None
    };
    drop(filter);
    if let Some(twin) = twin {
        twin.remove().context("removing the twin testbed")?;
    }
    bed.remove().context("removing the testbed")?;

    if let Some(count) = figures.as_ref().and_then(|f| f.kernel_count)
        && !count.agrees()
    {
        warnings.push(format!(
            "the kernel holds {:?} ({:?}) where the engine's bookkeeping says {:?}: its entry \
             counts are not to be trusted",
            count.read, count.unit, count.expected
        ));
    }
    let found = (list_info, verdict, figures, environment);
    let mut record = new_record(args, backend, &tag, found);
    record.warnings = warnings;
    finish(args, &record)
}

/// Builds a sink pair, checks none against none, loads the list into one side and measures
/// what the filter adds per packet.
fn measure_send_path(
    args: &RunArgs,
    tag: &Tag,
    list: &filter_core::CidrList,
) -> Result<crate::sendpath::SendPath> {
    use crate::sendpath;
    let spinner = new_spinner(format!(
        "measuring the send path with and without {}",
        args.filter.name()
    ));
    let pair = testbed::sink::SinkPair::new(tag.clone()).context("building the sink namespaces")?;
    let settings = sendpath::Settings::default();
    let placement = args.placement(
        pair.filtered(),
        tag,
        pair.filtered_link(),
        pair.workloads().map(|[a, _]| a),
    )?;
    let in_cgroups = placement.target.kind() == filter_core::TargetKind::Cgroup;
    let sides = sendpath::Sides::of(&pair, in_cgroups)?;
    let none = sendpath::baseline(&sides, &settings)?;
    let mut filter = args.filter.build(&placement)?;
    filter
        .load(list)
        .context("loading the list into the sink namespace")?;
    let mut result = sendpath::with_filter(&sides, none, &settings);
    if args.new_flows
        && let Ok(send_path) = result.as_mut()
    {
        match sendpath::new_flows(&sides, &settings) {
            Ok(paired) => send_path.new_flows = Some(paired),
            Err(e) => result = Err(e),
        }
    }
    if in_cgroups && let Ok(send_path) = result.as_mut() {
        match sendpath::connects(&sides, &settings)
            .and_then(|udp| Ok((udp, sendpath::tcp_connects(&sides, &settings)?)))
        {
            Ok((udp, tcp)) => {
                send_path.connects = Some(udp);
                send_path.tcp_connects = Some(tcp);
            }
            Err(e) => result = Err(e),
        }
    }
    if let (Ok(send_path), Some(rate)) = (result.as_mut(), args.updates.updates) {
        let batch = args.updates.update_batch;
        match send_path_during_updates(&sides, filter.as_mut(), list, rate, batch, &settings) {
            Ok(during) => send_path.during_updates = Some(during),
            Err(e) => result = Err(e),
        }
    }
    filter.teardown()?;
    drop(filter);
    pair.remove()?;
    spinner.finish_and_clear();
    result
}

/// The send path with many destinations while an update feed (IPv4, as the packets) runs on
/// the other CPU; the filter holds `list` again afterwards.
fn send_path_during_updates(
    sides: &crate::sendpath::Sides,
    filter: &mut dyn filter_core::EgressFilter,
    list: &filter_core::CidrList,
    rate: crate::updates::Rate,
    batch: usize,
    settings: &crate::sendpath::Settings,
) -> Result<crate::sendpath::DuringUpdates> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut feed = crate::updates::Feed::new(list, Family::V4, batch, rate);
    let stop = AtomicBool::new(false);
    let (paired, fed) = std::thread::scope(|scope| {
        let feeder = scope.spawn(|| -> Result<f64> {
            crate::sendpath::pin_away();
            while !stop.load(Ordering::Relaxed) {
                feed.step(filter)?;
            }
            Ok(feed.rate_so_far())
        });
        let paired = crate::sendpath::many_destinations(sides, settings);
        stop.store(true, Ordering::Relaxed);
        (
            paired,
            feeder.join().expect("the feed thread does not panic"),
        )
    });
    let updates_per_second = fed?;
    feed.undo(filter)?;
    Ok(crate::sendpath::DuringUpdates {
        paired: paired?,
        updates_per_second,
        batch: batch.max(1),
    })
}

/// Probes the denied and allowed addresses of every loaded family.
fn verify(bed: &Testbed, kind: FilterKind, families: &[Family]) -> Result<Verdict> {
    let pairs: Vec<(IpAddr, IpAddr)> = families
        .iter()
        .map(|family| match family {
            Family::V4 => (DENIED_V4.into(), ALLOWED_V4.into()),
            Family::V6 => (DENIED_V6.into(), ALLOWED_V6.into()),
        })
        .collect();
    verdict(kind, &pairs, |address| Ok(bed.probe(address)?))
}
