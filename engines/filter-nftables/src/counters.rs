//! The rules' counters: packets and bytes dropped, read back from the kernel.

use filter_core::Result;
use nfnetlink::{NLMSG_DONE, NLMSG_ERROR, Socket, attributes, be64, messages};

use crate::NftablesError;
use crate::messages::{self};

/// Packets and bytes the counters of `table`'s rules have seen, from a dump of its chain on
/// `socket` (a request of its own, sequence number 1).
pub(crate) fn counters(socket: &mut Socket, table: &str) -> Result<(u64, u64)> {
    let seq = 1;
    socket.send(messages::get_rules(table).finish(seq))?;
    let (mut packets, mut bytes) = (0, 0);
    loop {
        for (kind, reply_seq, body) in messages(socket.receive()?) {
            if reply_seq != seq {
                continue;
            }
            match kind {
                NLMSG_DONE => return Ok((packets, bytes)),
                NLMSG_ERROR => {
                    let code = nfnetlink::error_code(body).unwrap_or(0);
                    if code != 0 {
                        return Err(NftablesError::refused(
                            format!("listing the rules of table inet {table}"),
                            -code,
                        )
                        .into());
                    }
                }
                _ => {
                    let (p, b) = rule_counters(body.get(4..).unwrap_or_default());
                    packets += p;
                    bytes += b;
                }
            }
        }
    }
}

/// The counter expression's packets and bytes in a rule message's attributes.
fn rule_counters(attrs: &[u8]) -> (u64, u64) {
    let mut sum = (0, 0);
    let exprs = attributes(attrs).filter(|&(k, _)| k == messages::NFTA_RULE_EXPRESSIONS);
    for (_, list) in exprs {
        for (_, expr) in attributes(list).filter(|&(k, _)| k == messages::NFTA_LIST_ELEM) {
            let name = attributes(expr).find(|&(k, _)| k == messages::NFTA_EXPR_NAME);
            if name.is_none_or(|(_, n)| n != b"counter\0") {
                continue;
            }
            for (_, data) in attributes(expr).filter(|&(k, _)| k == messages::NFTA_EXPR_DATA) {
                for (k, v) in attributes(data) {
                    match k {
                        messages::NFTA_COUNTER_PACKETS => sum.0 += be64(v).unwrap_or(0),
                        messages::NFTA_COUNTER_BYTES => sum.1 += be64(v).unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
    }
    sum
}
