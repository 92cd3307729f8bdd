//! What the kernel holds, read back from it: the rules' counters (packets and bytes
//! dropped) and the sets' element counts.

use filter_core::Result;
use nfnetlink::{NLMSG_DONE, NLMSG_ERROR, Socket, attributes, be64, messages};

use crate::NftablesError;
use crate::messages::{self};

/// Sends a dump request and hands each reply's attributes to `each`, until the dump ends;
/// a refusal names `what`.
fn dump(
    socket: &mut Socket,
    request: &mut nfnetlink::Message,
    what: &str,
    mut each: impl FnMut(&[u8]),
) -> Result<()> {
    let seq = 1;
    socket.send(request.finish(seq))?;
    loop {
        for (kind, reply_seq, body) in messages(socket.receive()?) {
            if reply_seq != seq {
                continue;
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = nfnetlink::error_code(body).unwrap_or(0);
                    if code != 0 {
                        return Err(NftablesError::refused(what.to_owned(), -code).into());
                    }
                }
                _ => each(body.get(4..).unwrap_or_default()),
            }
        }
    }
}

/// Packets and bytes the counters of `table`'s rules have seen, from a dump of its chain on
/// `socket` (a request of its own, sequence number 1).
pub(crate) fn counters(socket: &mut Socket, table: &str) -> Result<(u64, u64)> {
    let (mut packets, mut bytes) = (0, 0);
    dump(
        socket,
        &mut messages::get_rules(table),
        &format!("listing the rules of table inet {table}"),
        |attrs| {
            let (p, b) = rule_counters(attrs);
            packets += p;
            bytes += b;
        },
    )?;
    Ok((packets, bytes))
}

/// The elements the kernel holds in set `set` of `table`, from a dump.
pub(crate) fn element_count(socket: &mut Socket, table: &str, set: &str) -> Result<u64> {
    let mut count = 0;
    dump(
        socket,
        &mut messages::get_set_elements(table, set),
        &format!("listing the elements of set {set} of table inet {table}"),
        |attrs| {
            for (_, list) in
                attributes(attrs).filter(|&(k, _)| k == messages::NFTA_SET_ELEM_LIST_ELEMENTS)
            {
                count += attributes(list)
                    .filter(|&(k, _)| k == messages::NFTA_LIST_ELEM)
                    .count() as u64;
            }
        },
    )?;
    Ok(count)
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
