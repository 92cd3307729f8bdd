//! Per-entry timeouts: host addresses in hosts' sets that keep time, forgotten here when the
//! kernel drops them, and made permanent again by a plain add.

use filter_core::{EgressFilter, Error, Family, Result};
use ipnet::IpNet;

use crate::keys::Element;
use crate::layout::set_name;
use crate::messages::SetKind;
use crate::state::{self};
use crate::{Loader, NftablesFilter};

impl NftablesFilter {
    /// Forgets host addresses whose timeout has passed (100 ms early, so that a delete never
    /// asks for one the kernel already dropped; one re-added meanwhile is taken as present).
    pub(crate) fn forget_expired(&mut self) {
        let Some(loaded) = self.loaded.as_mut() else {
            return;
        };
        let soon = std::time::Instant::now() + std::time::Duration::from_millis(100);
        for (state, expiring) in loaded.families.iter_mut().zip(&mut self.expiring) {
            state.forget_hosts(&expiring.take_expired(soon));
        }
    }

    /// Puts the host addresses of `entries` that carry a timeout back without one, in one
    /// transaction (each deleted and added again), so that they stop expiring.
    pub(crate) fn make_permanent(&mut self, entries: &[IpNet]) -> Result<()> {
        if self.expiring.iter().all(filter_core::Deadlines::is_empty) {
            return Ok(());
        }
        let keys: [Vec<u128>; 2] = std::array::from_fn(|i| {
            let family = Family::BOTH[i];
            let mut mine: Vec<u128> = entries
                .iter()
                .filter(|n| Family::of(n.addr()) == family)
                .map(state::key_of)
                .filter(|k| self.expiring[i].contains(k))
                .collect();
            mine.sort_unstable();
            mine.dedup();
            mine
        });
        if keys.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let loaded = self.loaded.as_ref().ok_or(Error::NotLoaded)?;
        let generation = loaded.generation;
        let table = self.table().to_owned();
        let mut tx = self.new_transactions();
        for (family, mine) in Family::BOTH.into_iter().zip(&keys) {
            let elements: Vec<Element> = mine.clone();
            tx.elements(
                &table,
                generation,
                (family, SetKind::Hash),
                &elements,
                false,
            );
            tx.elements(&table, generation, (family, SetKind::Hash), &elements, true);
        }
        self.commit(tx)?;
        for (expiring, mine) in self.expiring.iter_mut().zip(&keys) {
            for k in mine {
                expiring.remove(k);
            }
        }
        Ok(())
    }

    /// Native for host addresses (`/32`, `/128`): each goes into the hosts' set with its own
    /// timeout (milliseconds), one transaction; an address already there is put back with
    /// the timeout. Other prefixes merge into ranges with their neighbours, so they cannot
    /// carry a time of their own here. Needs a filter made [with timeouts](NftablesFilter::with_timeouts).
    pub(crate) fn add_timed(&mut self, entries: &[IpNet], ttl: std::time::Duration) -> Result<()> {
        if !self.timeouts || self.loader == Loader::Script {
            return Err(Error::Unsupported {
                feature: "per-entry timeouts",
                engine: self.name(),
                hint: "make the filter with timeouts (NftablesFilter::with_timeouts, option \
                       timeouts=true)"
                    .into(),
            });
        }
        if let Some(net) = entries
            .iter()
            .find(|n| n.prefix_len() != n.max_prefix_len())
        {
            return Err(Error::Unsupported {
                feature: "timeouts on prefixes other than host addresses",
                engine: self.name(),
                hint: format!(
                    "{net} would merge into a range with its neighbours; add it with add()"
                ),
            });
        }
        self.forget_expired();
        let loaded = self.loaded.as_ref().ok_or(Error::NotLoaded)?;
        let generation = loaded.generation;
        let table = self.table().to_owned();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut tx = self.new_transactions();
        let mut keys: [Vec<u128>; 2] = Default::default();
        for (i, family) in Family::BOTH.into_iter().enumerate() {
            let mut mine: Vec<u128> = entries
                .iter()
                .filter(|n| Family::of(n.addr()) == family)
                .map(state::key_of)
                .collect();
            mine.sort_unstable();
            mine.dedup();
            let present: Vec<Element> = mine
                .iter()
                .filter(|&&k| loaded.families[i].has_host(k))
                .copied()
                .collect();
            let set = set_name(family, SetKind::Hash, generation);
            tx.elements(&table, generation, (family, SetKind::Hash), &present, false);
            tx.timed_keys(&table, &set, family, &mine, ms);
            keys[i] = mine;
        }
        self.commit(tx)?;
        let deadline = std::time::Instant::now() + ttl;
        if let Some(loaded) = self.loaded.as_mut() {
            for (i, mine) in keys.iter().enumerate() {
                loaded.families[i].insert_hosts(mine);
                for &k in mine {
                    self.expiring[i].insert(k, deadline);
                }
            }
        }
        Ok(())
    }
}
