//! Keeps a namespace's egress deny-list current with the nftables engine: loads a file, then
//! on every Enter reads the file again and applies the difference (what a blocklist manager
//! does between feed updates); `q` and Enter removes everything.
//!
//! ```text
//! ip netns add demo
//! cargo run -p filter-nftables --example keep_current_with_nftables -- demo blocklist.txt
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use filter_core::{CidrList, EgressFilter, NetNs, ParseOptions, Tag};
use filter_nftables::NftablesFilter;
use ipnet::IpNet;

fn read(file: &str) -> Result<BTreeSet<IpNet>, Box<dyn std::error::Error>> {
    let list = CidrList::parse_file(Path::new(file), &ParseOptions::default())?;
    Ok(list.iter().map(|n| n.trunc()).collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, netns, file] = &args[..] else {
        return Err(
            "usage: keep_current_with_nftables <network namespace> <deny-list file>".into(),
        );
    };
    let mut current = read(file)?;
    let mut filter = NftablesFilter::new(NetNs::named(netns), Tag::new("example")?)?;
    filter.load(&current.iter().copied().collect())?;
    println!("table inet {}: {:?}", filter.table(), filter.stats()?);
    loop {
        println!("Enter: apply {file} again; q: remove the filter");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() == "q" {
            break;
        }
        let wanted = read(file)?;
        let gone: Vec<IpNet> = current.difference(&wanted).copied().collect();
        let came: Vec<IpNet> = wanted.difference(&current).copied().collect();
        filter.remove(&gone)?;
        filter.add(&came)?;
        println!("-{} +{}: {:?}", gone.len(), came.len(), filter.stats()?);
        current = wanted;
    }
    filter.teardown()?;
    Ok(())
}
