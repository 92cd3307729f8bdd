//! Keeps a namespace's egress deny-list current with the nftables engine: loads a file, then
//! on every Enter reads the file again and makes the filter equal to it with `sync` (the
//! fewest adds and removes, or one atomic swap when most of the list changed: what a
//! blocklist manager does between feed updates); `q` and Enter removes everything.
//!
//! ```text
//! ip netns add demo
//! cargo run -p filter-nftables --example keep_current_with_nftables -- demo blocklist.txt
//! ```

use std::path::Path;

use filter_core::{CidrList, EgressFilter, NetNs, ParseOptions, Tag};
use filter_nftables::NftablesFilter;

fn read(file: &str) -> Result<CidrList, Box<dyn std::error::Error>> {
    Ok(CidrList::parse_file(
        Path::new(file),
        &ParseOptions::default(),
    )?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, netns, file] = &args[..] else {
        return Err(
            "usage: keep_current_with_nftables <network namespace> <deny-list file>".into(),
        );
    };
    let mut filter = NftablesFilter::new(NetNs::named(netns), Tag::new("example")?)?;
    filter.load(&read(file)?)?;
    println!("table inet {}: {:?}", filter.table(), filter.stats()?);
    loop {
        println!("Enter: apply {file} again; q: remove the filter");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() == "q" {
            break;
        }
        let report = filter.sync(&read(file)?)?;
        println!(
            "-{} +{}{} in {:.3} s: {:?}",
            report.removed,
            report.added,
            if report.replaced { " (swapped)" } else { "" },
            report.seconds,
            filter.stats()?
        );
    }
    filter.teardown()?;
    Ok(())
}
