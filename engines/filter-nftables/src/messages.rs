//! nf_tables requests (`include/uapi/linux/netfilter/nf_tables.h`), built as `nft` builds
//! them: a table, an output-hook chain, hash sets (one per family and prefix length),
//! elements, and one rule per set (`meta nfproto ipv4 ip daddr & 255.255.255.0 @set counter
//! drop`).

use nfnetlink::{Message, NLM_F_CREATE, NLM_F_EXCL};

use crate::keys::Width;

/// `NFNL_SUBSYS_NFTABLES`: the subsystem of every message, and the batches' resource id.
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NLM_F_APPEND: u16 = 0x800;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
pub(crate) const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
pub(crate) const NFT_MSG_GETGEN: u16 = 16;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_EXPR_NAME: u16 = 1;
pub(crate) const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_BITWISE_OP: u16 = 6;
/// `NFT_BITWISE_MASK_XOR` (`NFT_BITWISE_BOOL` before Linux 6.13): `(reg & mask) ^ xor`.
const NFT_BITWISE_MASK_XOR: u32 = 0;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_SET_ID: u16 = 4;
pub(crate) const NFTA_COUNTER_BYTES: u16 = 1;
pub(crate) const NFTA_COUNTER_PACKETS: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(crate) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;

const NFT_SET_TIMEOUT: u32 = 0x10;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;
const NFT_META_NFPROTO: u32 = 15;
const NFT_CMP_EQ: u32 = 0;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
/// nft's datatypes `ipv4_addr` and `ipv6_addr`.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
/// `NFTNL_UDATA_SET_KEYBYTEORDER` = big endian: how `nft list` learns to print the keys as
/// addresses (the bytes `nft` itself sends).
const SET_USERDATA: [u8; 6] = [0, 4, 2, 0, 0, 0];

/// The chain every filter's rules live in.
pub(crate) const CHAIN: &str = "output";

/// What a set holds: every set is a hash of addresses (the kernel's fastest back-end per
/// packet), one per prefix length the list has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SetKind {
    /// Host addresses (`/32`, `/128`): the only set whose keys may carry a timeout.
    Hash,
    /// The networks of the prefixes of one shorter length, matched by the destination
    /// masked to that length.
    Prefix(u8),
}

fn nft(command: u16, flags: u16, family: u8) -> Message {
    Message::new(NFNL_SUBSYS_NFTABLES << 8 | command, flags, family, 0)
}

/// `add table inet <name>`, refused if it exists.
pub(crate) fn new_table(table: &str) -> Message {
    let mut msg = nft(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, NFPROTO_INET);
    msg.attr_str(NFTA_TABLE_NAME, table)
        .attr_be32(NFTA_TABLE_FLAGS, 0);
    msg
}

/// `delete table inet <name>`: everything in it goes too.
pub(crate) fn delete_table(table: &str) -> Message {
    let mut msg = nft(NFT_MSG_DELTABLE, 0, NFPROTO_INET);
    msg.attr_str(NFTA_TABLE_NAME, table);
    msg
}

/// `add chain inet <table> output { type filter hook output priority 0; policy accept; }`.
pub(crate) fn new_chain(table: &str) -> Message {
    let mut msg = nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, NFPROTO_INET);
    msg.attr_str(NFTA_CHAIN_TABLE, table)
        .attr_str(NFTA_CHAIN_NAME, CHAIN)
        .attr_str(NFTA_CHAIN_TYPE, "filter")
        .attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
        .begin(NFTA_CHAIN_HOOK)
        .attr_be32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT)
        .attr_be32(NFTA_HOOK_PRIORITY, 0)
        .end();
    msg
}

/// `add set inet <table> <set> { type ipv4_addr; [flags interval;] [size <size>;] }`, with
/// `id` to name it in the same batch. A size (not 0) makes the kernel pick a fixed-size hash
/// over its resizable one, and refuses elements past it (`ENFILE`).
pub(crate) fn new_set(
    table: &str,
    set: &str,
    id: u32,
    width: Width,
    kind: SetKind,
    size: u32,
    timeouts: bool,
) -> Message {
    let (key_type, key_len) = match width {
        Width::V4 => (TYPE_IPADDR, 4),
        Width::V6 => (TYPE_IP6ADDR, 16),
    };
    let flags = match kind {
        // Keys that may carry a timeout: the kernel picks its resizable hash, which keeps time.
        SetKind::Hash if timeouts => NFT_SET_TIMEOUT,
        SetKind::Hash | SetKind::Prefix(_) => 0,
    };
    let mut msg = nft(NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL, NFPROTO_INET);
    msg.attr_str(NFTA_SET_TABLE, table)
        .attr_str(NFTA_SET_NAME, set)
        .attr_be32(NFTA_SET_FLAGS, flags)
        .attr_be32(NFTA_SET_KEY_TYPE, key_type)
        .attr_be32(NFTA_SET_KEY_LEN, key_len)
        .attr_be32(NFTA_SET_ID, id);
    if size != 0 {
        msg.begin(NFTA_SET_DESC)
            .attr_be32(NFTA_SET_DESC_SIZE, size)
            .end();
    }
    msg.attr(NFTA_SET_USERDATA, &SET_USERDATA);
    msg
}

/// `delete set inet <table> <set>`.
pub(crate) fn delete_set(table: &str, set: &str) -> Message {
    let mut msg = nft(NFT_MSG_DELSET, 0, NFPROTO_INET);
    msg.attr_str(NFTA_SET_TABLE, table)
        .attr_str(NFTA_SET_NAME, set);
    msg
}

/// One message adding (or deleting) elements of a set created in the same batch (`id`) or
/// before (`id` 0). Elements go in with [`push_element`] and the message is closed with
/// [`Message::end`].
pub(crate) fn elements(table: &str, set: &str, id: u32, add: bool) -> Message {
    let command = if add {
        NFT_MSG_NEWSETELEM
    } else {
        NFT_MSG_DELSETELEM
    };
    let flags = if add { NLM_F_CREATE } else { 0 };
    let mut msg = nft(command, flags, NFPROTO_INET);
    msg.attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
        .attr_str(NFTA_SET_ELEM_LIST_SET, set);
    if id != 0 {
        msg.attr_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
    }
    msg.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
    msg
}

/// One host key added with a timeout, in milliseconds.
pub(crate) fn push_timed_key(msg: &mut Message, index: u16, key: &[u8], timeout_ms: u64) {
    msg.begin(index)
        .attr(NFTA_SET_ELEM_TIMEOUT, &timeout_ms.to_be_bytes())
        .begin(NFTA_SET_ELEM_KEY)
        .attr(NFTA_DATA_VALUE, key)
        .end()
        .end();
}

/// The `index`th element of a message (numbered from 1, as libnftnl numbers them): its key.
pub(crate) fn push_element(msg: &mut Message, index: u16, key: &[u8]) {
    msg.begin(index)
        .begin(NFTA_SET_ELEM_KEY)
        .attr(NFTA_DATA_VALUE, key)
        .end()
        .end();
}

fn expression(msg: &mut Message, name: &str, body: impl FnOnce(&mut Message)) {
    msg.begin(NFTA_LIST_ELEM)
        .attr_str(NFTA_EXPR_NAME, name)
        .begin(NFTA_EXPR_DATA);
    body(msg);
    msg.end().end();
}

/// `add rule inet <table> output meta nfproto <family> <ip|ip6> daddr [& <mask>] @<set>
/// counter drop`: the destination masked to `prefix_len` bits when one is given.
pub(crate) fn new_rule(
    table: &str,
    set: &str,
    set_id: u32,
    width: Width,
    prefix_len: Option<u8>,
) -> Message {
    let (nfproto, offset, len) = match width {
        Width::V4 => (NFPROTO_IPV4, 16, 4),
        Width::V6 => (NFPROTO_IPV6, 24, 16),
    };
    let mut msg = nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, NFPROTO_INET);
    msg.attr_str(NFTA_RULE_TABLE, table)
        .attr_str(NFTA_RULE_CHAIN, CHAIN)
        .begin(NFTA_RULE_EXPRESSIONS);
    expression(&mut msg, "meta", |m| {
        m.attr_be32(NFTA_META_KEY, NFT_META_NFPROTO)
            .attr_be32(NFTA_META_DREG, NFT_REG_1);
    });
    expression(&mut msg, "cmp", |m| {
        m.attr_be32(NFTA_CMP_SREG, NFT_REG_1)
            .attr_be32(NFTA_CMP_OP, NFT_CMP_EQ)
            .begin(NFTA_CMP_DATA)
            .attr(NFTA_DATA_VALUE, &[nfproto])
            .end();
    });
    expression(&mut msg, "payload", |m| {
        m.attr_be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
            .attr_be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER)
            .attr_be32(NFTA_PAYLOAD_OFFSET, offset)
            .attr_be32(NFTA_PAYLOAD_LEN, len);
    });
    if let Some(prefix_len) = prefix_len {
        let mask = width.key(width.mask(prefix_len));
        let zeros = vec![0u8; mask.len()];
        expression(&mut msg, "bitwise", |m| {
            m.attr_be32(NFTA_BITWISE_SREG, NFT_REG_1)
                .attr_be32(NFTA_BITWISE_DREG, NFT_REG_1)
                .attr_be32(NFTA_BITWISE_OP, NFT_BITWISE_MASK_XOR)
                .attr_be32(NFTA_BITWISE_LEN, len)
                .begin(NFTA_BITWISE_MASK)
                .attr(NFTA_DATA_VALUE, &mask)
                .end()
                .begin(NFTA_BITWISE_XOR)
                .attr(NFTA_DATA_VALUE, &zeros)
                .end();
        });
    }
    expression(&mut msg, "lookup", |m| {
        m.attr_be32(NFTA_LOOKUP_SREG, NFT_REG_1)
            .attr_str(NFTA_LOOKUP_SET, set);
        if set_id != 0 {
            m.attr_be32(NFTA_LOOKUP_SET_ID, set_id);
        }
    });
    expression(&mut msg, "counter", |_| {});
    expression(&mut msg, "immediate", |m| {
        m.attr_be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)
            .begin(NFTA_IMMEDIATE_DATA)
            .begin(NFTA_DATA_VERDICT)
            .attr_be32(NFTA_VERDICT_CODE, NF_DROP)
            .end()
            .end();
    });
    msg.end();
    msg
}

/// `flush chain inet <table> output`: every rule of the chain.
pub(crate) fn flush_chain(table: &str) -> Message {
    let mut msg = nft(NFT_MSG_DELRULE, 0, NFPROTO_INET);
    msg.attr_str(NFTA_RULE_TABLE, table)
        .attr_str(NFTA_RULE_CHAIN, CHAIN);
    msg
}

/// A dump of the rules of the table's chain (for their counters).
pub(crate) fn get_rules(table: &str) -> Message {
    let mut msg = nft(NFT_MSG_GETRULE, nfnetlink::NLM_F_DUMP, NFPROTO_INET);
    msg.attr_str(NFTA_RULE_TABLE, table)
        .attr_str(NFTA_RULE_CHAIN, CHAIN);
    msg
}

/// A dump of the elements of one set (to count them).
pub(crate) fn get_set_elements(table: &str, set: &str) -> Message {
    let mut msg = nft(NFT_MSG_GETSETELEM, nfnetlink::NLM_F_DUMP, NFPROTO_INET);
    msg.attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
        .attr_str(NFTA_SET_ELEM_LIST_SET, set);
    msg
}

/// A request for the ruleset generation: its reply marks the end of a batch's replies.
pub(crate) fn get_generation() -> Message {
    nft(NFT_MSG_GETGEN, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex bytes, spaces and newlines ignored.
    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The attributes after the 16-byte netlink header (`nfgenmsg` included).
    fn body(msg: &mut Message) -> Vec<u8> {
        msg.finish(1)[16..].to_vec()
    }

    /// `nft --debug=mnl -f` (nftables 1.0.6) adding elements 10.0.0.0 and 192.0.2.1 to set
    /// `deny4` of table `egb-x` (id 1).
    #[test]
    fn element_message_matches_nft() {
        let mut msg = elements("egb-x", "deny4", 1, true);
        for (i, key) in [0x0a00_0000, 0xc000_0201].into_iter().enumerate() {
            let index = u16::try_from(i + 1).unwrap();
            push_element(&mut msg, index, &Width::V4.key(key));
        }
        msg.end();
        let nft = hex("01 00 00 00 0a 00 01 00 65 67 62 2d 78 00 00 00
             0a 00 02 00 64 65 6e 79 34 00 00 00 08 00 04 00
             00 00 00 01 24 00 03 80 10 00 01 80 0c 00 01 80
             08 00 01 00 0a 00 00 00 10 00 02 80 0c 00 01 80
             08 00 01 00 c0 00 02 01");
        assert_eq!(body(&mut msg), nft);
    }

    /// `nft --debug=mnl` for `meta nfproto ipv4 ip daddr & 255.255.255.0 @deny4 counter
    /// drop` in chain `output` of table `egb-x`, the set created in the same batch (id 1).
    #[test]
    fn rule_message_matches_nft() {
        let mut msg = new_rule("egb-x", "deny4", 1, Width::V4, Some(24));
        let nft = hex("01 00 00 00 0a 00 01 00 65 67 62 2d 78 00 00 00
             0b 00 02 00 6f 75 74 70 75 74 00 00 48 01 04 80
             24 00 01 80 09 00 01 00 6d 65 74 61 00 00 00 00
             14 00 02 80 08 00 02 00 00 00 00 0f 08 00 01 00
             00 00 00 01 2c 00 01 80 08 00 01 00 63 6d 70 00
             20 00 02 80 08 00 01 00 00 00 00 01 08 00 02 00
             00 00 00 00 0c 00 03 80 05 00 01 00 02 00 00 00
             34 00 01 80 0c 00 01 00 70 61 79 6c 6f 61 64 00
             24 00 02 80 08 00 01 00 00 00 00 01 08 00 02 00
             00 00 00 01 08 00 03 00 00 00 00 10 08 00 04 00
             00 00 00 04 4c 00 01 80 0c 00 01 00 62 69 74 77
             69 73 65 00 3c 00 02 80 08 00 01 00 00 00 00 01
             08 00 02 00 00 00 00 01 08 00 06 00 00 00 00 00
             08 00 03 00 00 00 00 04 0c 00 04 80 08 00 01 00
             ff ff ff 00 0c 00 05 80 08 00 01 00 00 00 00 00
             30 00 01 80 0b 00 01 00 6c 6f 6f 6b 75 70 00 00
             20 00 02 80 08 00 02 00 00 00 00 01 0a 00 01 00
             64 65 6e 79 34 00 00 00 08 00 04 00 00 00 00 01
             14 00 01 80 0c 00 01 00 63 6f 75 6e 74 65 72 00
             04 00 02 80 30 00 01 80 0e 00 01 00 69 6d 6d 65
             64 69 61 74 65 00 00 00 1c 00 02 80 08 00 01 00
             00 00 00 00 10 00 02 80 0c 00 02 80 08 00 01 00
             00 00 00 00");
        assert_eq!(body(&mut msg), nft);
    }

    /// The rule of the hosts' set has no mask: the same message without the `bitwise`
    /// expression.
    #[test]
    fn hosts_rule_has_no_mask() {
        let mut masked = new_rule("egb-x", "deny4", 1, Width::V4, Some(24));
        let mut plain = new_rule("egb-x", "deny4", 1, Width::V4, None);
        let (masked, plain) = (body(&mut masked), body(&mut plain));
        assert_eq!(masked.len() - plain.len(), 0x4c);
        assert!(!plain.windows(7).any(|w| w == b"bitwise"));
    }

    /// `nft --debug=mnl` creating `set deny4 { type ipv4_addr; size 65536; }` (id 1).
    #[test]
    fn set_message_matches_nft() {
        let mut msg = new_set("egb-x", "deny4", 1, Width::V4, SetKind::Hash, 65_536, false);
        let nft = hex("01 00 00 00 0a 00 01 00 65 67 62 2d 78 00 00 00
             0a 00 02 00 64 65 6e 79 34 00 00 00 08 00 03 00
             00 00 00 00 08 00 04 00 00 00 00 07 08 00 05 00
             00 00 00 04 08 00 0a 00 00 00 00 01 0c 00 09 80
             08 00 01 00 00 01 00 00 0a 00 0d 00 00 04 02 00
             00 00 00 00");
        assert_eq!(body(&mut msg), nft);
    }
}
