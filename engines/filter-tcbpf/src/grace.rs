//! Space a table gives back (a chunk, a leaf's line, a subdirectory), reused only once no
//! program run can still be reading it: one that looked at the old slot or cell just before
//! it changed may still read what it pointed to. User space cannot wait for the kernel's
//! RCU grace period, so freed items wait [`GRACE_MS`], thousands of times a program run.

use std::collections::VecDeque;

use crate::sys;

/// How long an item given back waits before it is reused, in milliseconds.
pub(crate) const GRACE_MS: u64 = 50;

/// Items given back, oldest first, with when (`CLOCK_MONOTONIC_COARSE`, milliseconds: a
/// few nanoseconds to read, where a precise clock read costs tens on every change).
#[derive(Debug, Default)]
pub(crate) struct Quarantine {
    items: VecDeque<(u32, u64)>,
}

impl Quarantine {
    /// Gives `item` back now.
    pub(crate) fn push(&mut self, item: u32) {
        self.items.push_back((item, sys::coarse_ms()));
    }

    /// The oldest item given back at least [`GRACE_MS`] ago.
    pub(crate) fn pop(&mut self) -> Option<u32> {
        let (item, at) = *self.items.front()?;
        if sys::coarse_ms().saturating_sub(at) < GRACE_MS {
            return None;
        }
        self.items.pop_front();
        Some(item)
    }

    /// How many items [`pop`](Self::pop) would hand out now.
    pub(crate) fn reusable(&self) -> usize {
        let now = sys::coarse_ms();
        // In time order: the reusable ones come first.
        self.items
            .partition_point(|&(_, at)| now.saturating_sub(at) >= GRACE_MS)
    }

    /// Items given back, reusable or not.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_wait_out_the_grace_period_in_order() {
        let mut quarantine = Quarantine::default();
        quarantine.push(7);
        quarantine.push(9);
        assert_eq!((quarantine.pop(), quarantine.reusable()), (None, 0));
        std::thread::sleep(std::time::Duration::from_millis(GRACE_MS + 10));
        assert_eq!(quarantine.reusable(), 2);
        assert_eq!((quarantine.pop(), quarantine.pop()), (Some(7), Some(9)));
        assert_eq!((quarantine.pop(), quarantine.len()), (None, 0));
    }
}
