//! nf_tables transactions: messages batched up to the kernel's limits, sent in order, and
//! their replies read, a refusal named by the message that caused it.

use filter_core::{Family, Result};
use nfnetlink::{Batch, Message, NLMSG_ERROR, messages};

use crate::keys::Element;
use crate::layout::{describe, set_name, width};
use crate::messages::{self, SetKind};
use crate::{BATCH_BYTES, MESSAGE_BYTES, NftablesError, NftablesFilter};

/// A transaction as sent: its bytes and the sequence numbers it used.
pub(crate) type Sent = (Vec<u8>, std::ops::Range<u32>);

/// Transactions under construction: messages are appended to the current batch, and a full
/// batch is set aside for sending. What each message carried is kept to name a refusal.
pub(crate) struct Transactions {
    done: Vec<Sent>,
    current: Batch,
    /// Per message sequence number: what it was doing.
    what: Vec<(u32, String)>,
}

impl Transactions {
    pub(crate) fn new(first_seq: u32) -> Self {
        Self {
            done: Vec::new(),
            current: Batch::new(messages::NFNL_SUBSYS_NFTABLES, first_seq),
            what: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, msg: &mut Message, what: String) {
        if self.current.len() + msg.len() > BATCH_BYTES && !self.current.is_empty() {
            self.cut();
        }
        let seq = self.current.push(msg);
        self.what.push((seq, what));
    }

    /// Closes the current batch: what follows goes in a new transaction.
    pub(crate) fn cut(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let next = Batch::new(messages::NFNL_SUBSYS_NFTABLES, 0);
        let full = std::mem::replace(&mut self.current, next);
        let (bytes, seqs) = full.finish();
        let after = seqs.end;
        self.done.push((bytes, seqs));
        self.current = Batch::new(messages::NFNL_SUBSYS_NFTABLES, after);
    }

    /// Element messages adding (or deleting) `elements` of a set of `generation`.
    pub(crate) fn elements(
        &mut self,
        table: &str,
        generation: u32,
        set: (Family, SetKind),
        elements: &[Element],
        add: bool,
    ) {
        let mut elements = elements.iter().copied().peekable();
        while self.element_message(table, generation, set, &mut elements, add) {}
    }

    /// One message of element changes taken from `elements` (as many as fit), pushed;
    /// `false` once `elements` is exhausted and nothing was pushed.
    pub(crate) fn element_message(
        &mut self,
        table: &str,
        generation: u32,
        (family, kind): (Family, SetKind),
        elements: &mut std::iter::Peekable<impl Iterator<Item = Element>>,
        add: bool,
    ) -> bool {
        let Some(&first) = elements.peek() else {
            return false;
        };
        let set = set_name(family, kind, generation);
        let w = width(family);
        let mut msg = messages::elements(table, &set, 0, add);
        let (mut count, mut last) = (0usize, first);
        while msg.len() < MESSAGE_BYTES {
            let Some(key) = elements.next() else {
                break;
            };
            count += 1;
            let index = u16::try_from(count).expect("a message holds few elements");
            messages::push_element(&mut msg, index, &w.key(key));
            last = key;
        }
        msg.end();
        let what = format!(
            "{} {count} elements of set {set} ({} to {})",
            if add { "adding" } else { "deleting" },
            describe(family, kind, first),
            describe(family, kind, last),
        );
        self.push(&mut msg, what);
        true
    }

    /// Batches that are complete (cut), taken out to be sent while the rest is built.
    pub(crate) fn take_complete(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.done)
    }

    /// Messages adding host keys with a timeout of `ms` milliseconds to `set`.
    pub(crate) fn timed_keys(
        &mut self,
        table: &str,
        set: &str,
        family: Family,
        keys: &[u128],
        ms: u64,
    ) {
        let w = width(family);
        for chunk in keys.chunks(1_000) {
            let mut msg = messages::elements(table, set, 0, true);
            for (i, &k) in chunk.iter().enumerate() {
                let index = u16::try_from(i + 1).expect("1,000 keys a message");
                messages::push_timed_key(&mut msg, index, &w.key(k), ms);
            }
            msg.end();
            let first = describe(family, SetKind::Hash, chunk[0]);
            self.push(
                &mut msg,
                format!(
                    "adding {} addresses from {first} to set {set} for {ms} ms",
                    chunk.len()
                ),
            );
        }
    }

    /// Every batch, the current one last.
    pub(crate) fn finish(mut self) -> (Vec<Sent>, Vec<(u32, String)>) {
        if !self.current.is_empty() {
            self.cut();
        }
        (self.done, self.what)
    }
}

impl NftablesFilter {
    /// Sends transactions in order; stops at the first the kernel refuses, naming what the
    /// refused message was doing.
    pub(crate) fn commit(&mut self, tx: Transactions) -> Result<()> {
        let (batches, what) = tx.finish();
        self.send_batches(batches, &what)
    }

    /// Sends the batches `tx` has completed so far, so that a long load holds one batch
    /// of messages at a time rather than all of them.
    pub(crate) fn send_complete(&mut self, tx: &mut Transactions) -> Result<()> {
        let batches = tx.take_complete();
        if batches.is_empty() {
            return Ok(());
        }
        let what = std::mem::take(&mut tx.what);
        let sent = self.send_batches(batches, &what);
        tx.what = what;
        sent
    }

    fn send_batches(&mut self, batches: Vec<Sent>, what: &[(u32, String)]) -> Result<()> {
        for (bytes, seqs) in batches {
            self.socket.send(&bytes)?;
            self.seq = self.seq.max(seqs.end);
            self.wait(seqs, what)?;
        }
        Ok(())
    }

    /// Reads the replies to a transaction: errors name their message; the reply to a
    /// generation request sent after it marks the end.
    pub(crate) fn wait(
        &mut self,
        seqs: std::ops::Range<u32>,
        what: &[(u32, String)],
    ) -> Result<()> {
        let marker = self.seq;
        self.seq += 1;
        self.socket
            .send(messages::get_generation().finish(marker))?;
        let mut refused = None;
        loop {
            for (kind, seq, body) in messages(self.socket.receive()?) {
                if kind == NLMSG_ERROR && seqs.contains(&seq) {
                    let code = nfnetlink::error_code(body).unwrap_or(0);
                    if code != 0 && refused.is_none() {
                        let operation = what.iter().find(|(s, _)| *s == seq).map_or_else(
                            || "an nftables transaction".to_owned(),
                            |(_, w)| w.clone(),
                        );
                        refused = Some(NftablesError::refused(operation, -code));
                    }
                }
                if seq == marker {
                    return refused.map_or(Ok(()), |e| Err(e.into()));
                }
            }
        }
    }

    pub(crate) fn new_transactions(&self) -> Transactions {
        Transactions::new(self.seq)
    }
}
