//! Wrapping u16 sequence-number arithmetic.

/// `a` comes after `b`, modulo 2^16 (within half the space).
pub(crate) fn after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Packets from `from` (inclusive) to `to` (exclusive), wrapping.
pub(crate) fn distance(from: u16, to: u16) -> usize {
    usize::from(to.wrapping_sub(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        assert!(after(1, 0));
        assert!(after(0, 65_535));
        assert!(!after(65_535, 0));
        assert!(!after(5, 5));
        assert!(after(0x7fff, 0));
        assert!(!after(0x8000, 0));
        assert_eq!(distance(65_534, 2), 4);
        assert_eq!(distance(3, 3), 0);
    }
}
