//! The filter program's own time per packet (`BPF_PROG_TEST_RUN`) across list sizes and
//! prefix mixes: hit and miss (warm cache), and one lookup of a random address (cold).
//! Needs root. `cargo +1.99 bench -p filter-tcbpf`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, Family};
use filter_tcbpf::Table;
use filter_tcbpf::cost::{Case, Standalone};
use filter_tcbpf_common::COLD_LOOKUPS;

const HIT: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
const MISS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

fn list(n: usize, mix: Mix) -> CidrList {
    let mut list = generate(n, 1, mix, &[Family::V4]);
    list.push("198.19.255.0/24".parse().unwrap());
    list
}

fn test_run(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcbpf program per packet");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    let sizes = [1, 1_000, 100_000, 1_000_000, 10_000_000];
    for (table, mix, n) in [Table::LpmTrie, Table::Dir24]
        .into_iter()
        .flat_map(|t| Mix::ALL.into_iter().map(move |m| (t, m)))
        .flat_map(|(t, m)| sizes.into_iter().map(move |n| (t, m, n)))
    {
        // Other mixes at 1M only: that is where they differ.
        if mix != Mix::Default && n != 1_000_000 {
            continue;
        }
        {
            let list = list(n, mix);
            let mut program =
                Standalone::load(&list, table).expect("loading the program needs root");
            let id = |case: &str| BenchmarkId::new(format!("{} {mix} {case}", table.name()), n);
            for (case, what) in [
                ("hit", Case::Filter(IpAddr::V4(HIT))),
                ("miss", Case::Filter(IpAddr::V4(MISS))),
                ("empty", Case::Empty),
            ] {
                group.bench_function(id(case), |b| {
                    b.iter_custom(|iters| {
                        let repeat = u32::try_from(iters).unwrap_or(u32::MAX);
                        program.time(what, repeat).unwrap() * repeat
                    });
                });
            }
            group.bench_function(id("cold lookup"), |b| {
                b.iter_custom(|iters| {
                    let repeat =
                        u32::try_from(iters.div_ceil(u64::from(COLD_LOOKUPS))).unwrap_or(u32::MAX);
                    let with = program.time(Case::ColdLookups, repeat).unwrap();
                    let without = program.time(Case::ColdBase, repeat).unwrap();
                    with.saturating_sub(without) / COLD_LOOKUPS
                        * u32::try_from(iters).unwrap_or(u32::MAX)
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, test_run);
criterion_main!(benches);
