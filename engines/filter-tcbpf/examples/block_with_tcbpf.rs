//! Blocks the CIDRs of a deny-list file on one interface of an existing network namespace
//! with the tc eBPF engine (the constant-time table with `--dir`), shows the statistics and
//! the program's own cost per packet, and removes everything when you press Enter.
//!
//! ```text
//! ip netns add demo
//! ip -n demo link add demo0 type veth peer name demo1 && ip -n demo link set demo0 up
//! cargo run -p filter-tcbpf --example block_with_tcbpf -- demo demo0 blocklist.txt --dir
//! ```

use std::net::IpAddr;
use std::path::Path;

use filter_core::{CidrList, CostProbe, EgressFilter, NetNs, ParseOptions, Tag};
use filter_tcbpf::{Attach, Table, TcbpfFilter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (netns, interface, file, table) = match &args[..] {
        [_, netns, interface, file] => (netns, interface, file, Table::LpmTrie),
        [_, netns, interface, file, dir] if dir == "--dir" => {
            (netns, interface, file, Table::Dir24)
        }
        _ => {
            return Err(
                "usage: block_with_tcbpf <network namespace> <interface> <deny-list file> [--dir]"
                    .into(),
            );
        }
    };
    let list = CidrList::parse_file(Path::new(file), &ParseOptions::default())?;
    println!("{file}: {:?}", list.stats());
    let mut filter = TcbpfFilter::new(
        NetNs::named(netns),
        Tag::new("example")?,
        interface,
        Attach::Auto,
    )
    .with_table(table);
    let start = std::time::Instant::now();
    filter.load(&list)?;
    println!(
        "loaded in {:?} ({}): {:?}",
        start.elapsed(),
        filter.backend(),
        filter.stats()?
    );
    // The program timed in the kernel on a packet to the first entry and to an address
    // outside the test range that the list may or may not hold.
    // The first entry counts as a hit, 192.0.2.1 as a miss.
    let mut probes = Vec::new();
    if let Some(net) = list.iter().next() {
        let hit = if net.addr().is_ipv4() {
            CostProbe::V4Hit
        } else {
            CostProbe::V6Hit
        };
        probes.push((hit, net.addr()));
    }
    probes.push((CostProbe::V4Miss, IpAddr::from([192, 0, 2, 1])));
    for cost in filter.program_costs(&probes)? {
        println!("  {:<45} {:>8.1} ns", cost.case, cost.median_ns);
    }
    println!("press Enter to remove the filter");
    std::io::stdin().read_line(&mut String::new())?;
    filter.teardown()?;
    Ok(())
}
