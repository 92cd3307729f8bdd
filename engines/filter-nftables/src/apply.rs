//! Changing the kernel's ruleset: a load fills new sets and adds the rules last, a replace
//! swaps the rules to new sets in one transaction, adds and removes send the element
//! difference.

use filter_core::{Error, Family, Result};
use ipnet::IpNet;

use crate::layout::{MAX_HASH_SIZE, MadeSet, family_index, set_name, sets_for, width};
use crate::messages::{self, SetKind};
use crate::state::{self, Delta, FamilyState};
use crate::transactions::Transactions;
use crate::{BYTES_PER_ELEMENT, Loaded, Loader, NftablesFilter};

impl NftablesFilter {
    /// Deletes the table, ignoring a missing one.
    pub(crate) fn delete_table(&mut self) -> Result<()> {
        let mut tx = self.new_transactions();
        let table = self.table().to_owned();
        tx.push(
            &mut messages::delete_table(&table),
            format!("deleting table inet {table}"),
        );
        match self.commit(tx) {
            Err(Error::Kernel { code: 2, .. }) => Ok(()), // ENOENT
            other => other,
        }
    }

    /// Checks what a load needs against the memory there is, before anything changes.
    pub(crate) fn check(families: &[FamilyState; 2]) -> Result<()> {
        for family in families {
            for kind in family.kinds() {
                let keys = family.element_count(kind);
                if keys > MAX_HASH_SIZE as usize {
                    return Err(Error::Limit {
                        limit: "nftables fixed-size hash set size",
                        requested: keys as u64,
                        max: u64::from(MAX_HASH_SIZE),
                        hint: "entries of one prefix length per family: the kernel allocates \
                               the set's buckets in one block below 2 GiB; aggregate the list \
                               (--aggregate) or use ipset or tcbpf-dir"
                            .into(),
                    });
                }
            }
        }
        let elements: u64 = families.iter().map(FamilyState::entries).sum();
        filter_core::memory::require(
            "kernel memory for the nftables sets",
            elements * BYTES_PER_ELEMENT,
            "free memory, or load a shorter or aggregated list (--aggregate)",
        )
    }

    /// Fills new sets of `generation` (`sets`) with `families`' elements, creating the table
    /// and chain first when `create` (a load): the transactions before the rules go in. Each
    /// batch is sent as soon as it is complete, so the elements never exist as messages all
    /// at once.
    pub(crate) fn fill(
        &mut self,
        tx: &mut Transactions,
        generation: u32,
        families: &[FamilyState; 2],
        sets: &[MadeSet],
        create: bool,
    ) -> Result<()> {
        let table = self.table().to_owned();
        if create {
            tx.push(
                &mut messages::new_table(&table),
                format!("creating table inet {table}"),
            );
            tx.push(
                &mut messages::new_chain(&table),
                format!("creating chain {}", messages::CHAIN),
            );
        }
        for (i, &(family, kind, size)) in sets.iter().enumerate() {
            let set = set_name(family, kind, generation);
            let id = u32::try_from(i + 1).expect("a set per prefix length");
            tx.push(
                &mut messages::new_set(&table, &set, id, width(family), kind, size, self.timeouts),
                format!("creating set {set}"),
            );
        }
        // The sets exist once the first transaction commits: elements name them.
        tx.cut();
        for &(family, kind, _) in sets {
            let mut elements = families[family_index(family)].element_iter(kind).peekable();
            while tx.element_message(&table, generation, (family, kind), &mut elements, true) {
                self.send_complete(tx)?;
            }
        }
        tx.cut();
        self.send_complete(tx)
    }

    /// The rules that match `sets` of `generation`: a shorter length's set is looked up with
    /// the destination masked to it.
    pub(crate) fn rules(&self, tx: &mut Transactions, generation: u32, sets: &[MadeSet]) {
        let table = self.table().to_owned();
        for &(family, kind, _) in sets {
            let set = set_name(family, kind, generation);
            let prefix_len = match kind {
                SetKind::Hash => None,
                SetKind::Prefix(len) => Some(len),
            };
            tx.push(
                &mut messages::new_rule(&table, &set, 0, width(family), prefix_len),
                format!("adding the rule that matches set {set}"),
            );
        }
    }

    pub(crate) fn load_netlink(&mut self, families: [FamilyState; 2]) -> Result<()> {
        let sets = sets_for(&families);
        let mut tx = self.new_transactions();
        let filled = self.fill(&mut tx, 0, &families, &sets, true);
        self.rules(&mut tx, 0, &sets);
        if let Err(e) = filled.and_then(|()| self.commit(tx)) {
            let _ = self.delete_table();
            return Err(e);
        }
        self.loaded = Some(Loaded {
            generation: 0,
            sets,
            families,
        });
        Ok(())
    }

    pub(crate) fn replace_netlink(&mut self, families: [FamilyState; 2]) -> Result<()> {
        let loaded = self.loaded.as_ref().ok_or(Error::NotLoaded)?;
        let (old, old_sets) = (loaded.generation, loaded.sets.clone());
        let new = old + 1;
        let sets = sets_for(&families);
        let table = self.table().to_owned();
        let mut tx = self.new_transactions();
        let filled = self.fill(&mut tx, new, &families, &sets, false);
        // One transaction: the rules move to the new sets and the old sets go.
        tx.push(
            &mut messages::flush_chain(&table),
            "flushing the chain's rules".into(),
        );
        self.rules(&mut tx, new, &sets);
        for &(family, kind, _) in &old_sets {
            let set = set_name(family, kind, old);
            tx.push(
                &mut messages::delete_set(&table, &set),
                format!("deleting set {set}"),
            );
        }
        if std::mem::take(&mut self.fail_next_swap) {
            tx.push(
                &mut messages::delete_set(&table, "injected"),
                "deleting set injected (a failure injected by a test)".into(),
            );
        }
        if let Err(e) = filled.and_then(|()| self.commit(tx)) {
            // The old rules and sets are untouched; the new sets go. Each in a transaction
            // of its own: a set the failed transaction never made is not there to delete
            // (ENOENT), any other refusal is a failed undo, said with the failure.
            for &(family, kind, _) in &sets {
                let set = set_name(family, kind, new);
                let mut undo = self.new_transactions();
                undo.push(
                    &mut messages::delete_set(&table, &set),
                    format!("deleting set {set} after a failed replace"),
                );
                match self.commit(undo) {
                    Ok(()) | Err(Error::Kernel { code: 2, .. }) => {}
                    Err(restore) => {
                        return Err(Error::RestoreFailed {
                            failed: Box::new(e),
                            restore: Box::new(restore),
                        });
                    }
                }
            }
            return Err(e);
        }
        self.loaded = Some(Loaded {
            generation: new,
            sets,
            families,
        });
        Ok(())
    }

    /// Sends element changes, one transaction when they fit.
    pub(crate) fn commit_deltas(&mut self, deltas: &[Delta; 2]) -> Result<()> {
        let generation = self.loaded.as_ref().ok_or(Error::NotLoaded)?.generation;
        let table = self.table().to_owned();
        let mut tx = self.new_transactions();
        for (family, delta) in Family::BOTH.into_iter().zip(deltas) {
            for kind in delta.kinds() {
                let (gone, came) = delta.of(kind);
                tx.elements(&table, generation, (family, kind), gone, false);
                tx.elements(&table, generation, (family, kind), came, true);
            }
        }
        self.commit(tx)
    }

    /// Whether the sets made for this generation can take every `(family, kind, keys)`
    /// wanted: each set there, and within its size (no set is needed for no keys).
    fn sets_hold(&self, mut wanted: impl Iterator<Item = (Family, SetKind, usize)>) -> bool {
        let Some(loaded) = self.loaded.as_ref() else {
            return false;
        };
        wanted.all(|(family, kind, keys)| {
            keys == 0
                || loaded
                    .sets
                    .iter()
                    .any(|&(f, k, size)| f == family && k == kind && keys <= size as usize)
        })
    }

    /// Makes the sets hold `families`: the element difference in one transaction, or new sets
    /// swapped in when a set would outgrow its size or a prefix length has no set yet.
    pub(crate) fn apply(&mut self, families: [FamilyState; 2]) -> Result<()> {
        let fits = self.sets_hold(Family::BOTH.into_iter().zip(&families).flat_map(
            |(family, state)| {
                state
                    .kinds()
                    .into_iter()
                    .map(move |kind| (family, kind, state.element_count(kind)))
            },
        ));
        let loaded = self.loaded.as_ref().ok_or(Error::NotLoaded)?;
        match self.loader {
            // New sets made for the list, swapped in atomically.
            Loader::Netlink if !fits => self.replace_netlink(families),
            Loader::Netlink => {
                let deltas = [0, 1].map(|i| loaded.families[i].delta_to(&families[i]));
                self.commit_deltas(&deltas)?;
                if let Some(loaded) = self.loaded.as_mut() {
                    loaded.families = families;
                }
                Ok(())
            }
            Loader::Script => self.script(families),
        }
    }

    /// Adds or removes entries: the keys they change, in time proportional to them (not to
    /// the list), one transaction.
    pub(crate) fn apply_change(&mut self, entries: &[IpNet], add: bool) -> Result<()> {
        self.forget_expired();
        if add {
            // A plain add of a timed address makes it permanent again.
            self.make_permanent(entries)?;
        } else {
            for (expiring, family) in self.expiring.iter_mut().zip(Family::BOTH) {
                for net in entries.iter().filter(|n| Family::of(n.addr()) == family) {
                    expiring.remove(&state::key_of(net));
                }
            }
        }
        let loaded = self.loaded.as_ref().ok_or(Error::NotLoaded)?;
        let plans: [state::Plan; 2] = std::array::from_fn(|i| {
            let family = Family::BOTH[i];
            let mine: Vec<IpNet> = entries
                .iter()
                .filter(|n| Family::of(n.addr()) == family)
                .copied()
                .collect();
            loaded.families[i].plan(&mine, add)
        });
        let fits = self.sets_hold(
            Family::BOTH
                .into_iter()
                .zip(loaded.families.iter().zip(&plans))
                .flat_map(|(family, (state, plan))| {
                    plan.delta
                        .kinds()
                        .map(move |kind| (family, kind, state.count_after(plan, kind)))
                }),
        );
        if !fits || self.loader == Loader::Script {
            let mut families = loaded.families.clone();
            for (family, plan) in families.iter_mut().zip(plans) {
                family.apply(plan);
            }
            return self.apply(families);
        }
        let [p4, p6] = plans;
        self.commit_deltas(&[p4.delta.clone(), p6.delta.clone()])?;
        if let Some(loaded) = self.loaded.as_mut() {
            let [f4, f6] = &mut loaded.families;
            f4.apply(p4);
            f6.apply(p6);
        }
        Ok(())
    }
}
