//! Blocks the CIDRs of a deny-list file inside an existing network namespace with the ipset
//! engine, shows the statistics, and removes everything when you press Enter.
//!
//! ```text
//! ip netns add demo
//! cargo run -p filter-ipset --example block_with_ipset -- demo blocklist.txt
//! ```

use std::path::Path;

use filter_core::{CidrList, EgressFilter, NetNs, ParseOptions, Tag};
use filter_ipset::Backend;
use filter_ipset::IpsetFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, netns, file] = &args[..] else {
        return Err("usage: block_with_ipset <network namespace> <deny-list file>".into());
    };
    let list = CidrList::parse_file(Path::new(file), &ParseOptions::default())?;
    println!("{file}: {:?}", list.stats());
    let mut filter = IpsetFilter::new(NetNs::named(netns), Tag::new("example")?, Backend::Nft)?;
    let start = std::time::Instant::now();
    filter.load(&list)?;
    println!("loaded in {:?}: {:?}", start.elapsed(), filter.stats()?);
    println!("press Enter to remove the filter");
    std::io::stdin().read_line(&mut String::new())?;
    filter.teardown()?;
    Ok(())
}
