//! The `want` argument of `find_node` and `get_peers` (BEP 32).

use crate::bencode::Node;
use crate::dht::krpc::put_bytes;

/// The `want` argument of `find_node` and `get_peers` (BEP 32): which
/// address families the querier wants nodes of, `nodes` (`n4`) and/or
/// `nodes6` (`n6`). Neither (the default) means the argument is absent: the
/// family of the address the query came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: IPv4 nodes.
    pub n4: bool,
    /// `n6`: IPv6 nodes.
    pub n6: bool,
}

impl Want {
    /// Whether nodes of this family (`v6`) go in the answer to a query that
    /// came over `from_v6`.
    pub fn allows(self, v6: bool, from_v6: bool) -> bool {
        match self {
            Want {
                n4: false,
                n6: false,
            } => v6 == from_v6,
            Want { n4, n6 } => (n4 && !v6) || (n6 && v6),
        }
    }

    pub(crate) fn is_absent(self) -> bool {
        !self.n4 && !self.n6
    }

    /// Reads a `want` list; entries other than `n4`/`n6` are ignored, and so
    /// is a `want` that is not a list.
    pub(crate) fn decode(node: Option<&Node<'_>>) -> Want {
        let mut want = Want::default();
        for entry in node.and_then(|n| n.value.as_list()).unwrap_or_default() {
            match entry.value.as_bytes() {
                Some(b"n4") => want.n4 = true,
                Some(b"n6") => want.n6 = true,
                _ => {}
            }
        }
        want
    }

    pub(crate) fn encode(self, out: &mut Vec<u8>) {
        if self.is_absent() {
            return;
        }
        put_bytes(b"want", out);
        out.push(b'l');
        if self.n4 {
            put_bytes(b"n4", out);
        }
        if self.n6 {
            put_bytes(b"n6", out);
        }
        out.push(b'e');
    }
}
