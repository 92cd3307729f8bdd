//! Blocks the CIDRs of a deny-list file inside an existing network namespace with one
//! iptables rule per CIDR, shows the statistics, and removes everything when you press Enter.
//!
//! ```text
//! ip netns add demo
//! cargo run -p filter-iptables --example block_with_iptables -- demo blocklist.txt legacy
//! ```

use std::path::Path;

use filter_core::{CidrList, EgressFilter, NetNs, ParseOptions, Tag};
use filter_iptables::{Backend, IptablesFilter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (netns, file, backend) = match &args[..] {
        [_, netns, file] => (netns, file, Backend::Nft),
        [_, netns, file, backend] => (netns, file, backend.parse()?),
        _ => {
            return Err(
                "usage: block_with_iptables <network namespace> <deny-list file> [nft|legacy]"
                    .into(),
            );
        }
    };
    let list = CidrList::parse_file(Path::new(file), &ParseOptions::default())?;
    let mut filter = IptablesFilter::new(NetNs::named(netns), Tag::new("example")?, backend);
    let start = std::time::Instant::now();
    filter.load(&list)?;
    let took = start.elapsed();
    let stats = filter.stats()?;
    println!("loaded {} rules in {took:?}", list.len());
    println!(
        "IPv4 rules {}, IPv6 rules {}",
        stats.entries_v4, stats.entries_v6
    );
    println!("press Enter to remove the filter");
    std::io::stdin().read_line(&mut String::new())?;
    filter.teardown()?;
    Ok(())
}
