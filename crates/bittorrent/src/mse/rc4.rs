//! RC4, as MSE/PE uses it: every byte of an encrypted connection goes
//! through [`Rc4::apply`], so it is written for speed.
//!
//! Hand-written rather than RustCrypto's `rc4` (a byte-at-a-time loop,
//! ~505 MB/s on one core here): this one makes eight keystream bytes, then
//! xors them into the buffer as one 64-bit word, ~1.5× faster on the same
//! core (`tests::bench_256_mib`, 256 MiB in 256 KiB buffers, CPU time). RC4
//! is serial by nature (each byte's state depends on the last), so the gain
//! is in the loads and stores around it. Checked against RFC 6229.
//!
//! Near the ceiling for software RC4 here (a scratch comparison, one core of
//! this machine, CPU time): this loop ~850 MB/s; OpenSSL 3.0's hand-written
//! x86-64 assembly ~925 MB/s; libtorrent's C byte loop (its `rc4_encrypt`
//! shape, gcc -O2/-O3) ~550 MB/s. Slower variants tried: a `u32` state
//! (OpenSSL's `RC4_INT` layout, ~765), `S[i+1]` loaded one step ahead (~833),
//! 32-bit masked `i`/`j` (~765), 16 bytes per xor (~810).

/// An RC4 cipher state.
#[derive(Clone)]
pub(crate) struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// The state after the key schedule for `key` (1 to 256 bytes; an empty
    /// key is taken as one zero byte).
    pub(crate) fn new(key: &[u8]) -> Self {
        let key = if key.is_empty() { &[0u8][..] } else { key };
        let mut s: [u8; 256] = std::array::from_fn(|k| k as u8);
        let mut j = 0u8;
        for (i, k) in (0..256).zip(key.iter().cycle()) {
            j = j.wrapping_add(s[i]).wrapping_add(*k);
            s.swap(i, usize::from(j));
        }
        Self { s, i: 0, j: 0 }
    }

    /// The next keystream byte.
    #[inline(always)]
    fn next_byte(s: &mut [u8; 256], i: &mut u8, j: &mut u8) -> u8 {
        *i = i.wrapping_add(1);
        let si = s[usize::from(*i)];
        *j = j.wrapping_add(si);
        let sj = s[usize::from(*j)];
        s[usize::from(*i)] = sj;
        s[usize::from(*j)] = si;
        s[usize::from(si.wrapping_add(sj))]
    }

    /// Xors the next `buf.len()` keystream bytes into `buf` in place
    /// (encrypts or decrypts).
    pub(crate) fn apply(&mut self, buf: &mut [u8]) {
        let Self { s, i, j } = self;
        let (mut i, mut j) = (*i, *j);
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            let mut key = 0u64;
            for n in 0..8 {
                key |= u64::from(Self::next_byte(s, &mut i, &mut j)) << (8 * n);
            }
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            word.copy_from_slice(&(u64::from_le_bytes(bytes) ^ key).to_le_bytes());
        }
        for byte in words.into_remainder() {
            *byte ^= Self::next_byte(s, &mut i, &mut j);
        }
        (self.i, self.j) = (i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` keystream bytes from `offset` on.
    fn keystream(key: &[u8], offset: usize, len: usize) -> String {
        let mut rc4 = Rc4::new(key);
        rc4.apply(&mut vec![0u8; offset]);
        let mut out = vec![0u8; len];
        rc4.apply(&mut out);
        hex::encode(out)
    }

    #[test]
    fn matches_rfc_6229() {
        // RFC 6229 section 2, key 0x0102030405 (40 bits).
        let key = [1, 2, 3, 4, 5];
        let at = |offset| keystream(&key, offset, 16);
        assert_eq!(at(0), "b2396305f03dc027ccc3524a0a1118a8");
        assert_eq!(at(16), "6982944f18fc82d589c403a47a0d0919");
        // Where MSE/PE streams start, after the 1024 discarded bytes.
        assert_eq!(at(1024), "30abbcc7c20b01609f23ee2d5f6bb7df");
        // Key 0x0102..10 (128 bits).
        let key: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        assert_eq!(keystream(&key, 0, 16), "9ac7cc9a609d1ef7b2932899cde41b97");
    }

    #[test]
    fn any_chunking_gives_the_same_stream() {
        let key = b"an MSE/PE key, 20 by";
        let mut whole = vec![0u8; 5000];
        Rc4::new(key).apply(&mut whole);
        for step in [1, 3, 7, 8, 9, 64, 1000] {
            let mut rc4 = Rc4::new(key);
            let mut parts = vec![0u8; 5000];
            for chunk in parts.chunks_mut(step) {
                rc4.apply(chunk);
            }
            assert!(parts == whole, "chunks of {step}");
        }
        // Decrypting with a fresh state gives the input back.
        let plain: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = plain.clone();
        Rc4::new(key).apply(&mut sealed);
        assert_ne!(sealed, plain);
        Rc4::new(key).apply(&mut sealed);
        assert_eq!(sealed, plain);
    }

    /// The CPU time this thread has used, where Linux tells it.
    fn thread_cpu() -> Option<std::time::Duration> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        Some(std::time::Duration::from_nanos(
            stat.split(' ').next()?.parse().ok()?,
        ))
    }

    /// Not a test: RC4's speed on one core, in MB/s of CPU time, over 256
    /// MiB in 256 KiB buffers (the size a block upload seals), beside a
    /// byte-at-a-time loop (the shape of libtorrent's `rc4_encrypt`). Run:
    /// `cargo test --release -p bittorrent --lib mse::rc4::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_256_mib() {
        fn byte_loop(rc4: &mut Rc4, buf: &mut [u8]) {
            let Rc4 { s, i, j } = rc4;
            for byte in buf {
                *byte ^= Rc4::next_byte(s, i, j);
            }
        }
        let mut buf = vec![0u8; 256 * 1024];
        let rounds = 1024;
        for (name, apply) in [
            ("Rc4::apply", Rc4::apply as fn(&mut Rc4, &mut [u8])),
            ("byte loop", byte_loop),
        ] {
            let mut rc4 = Rc4::new(b"an MSE/PE key, 20 by");
            let wall = std::time::Instant::now();
            let cpu = thread_cpu();
            for _ in 0..rounds {
                apply(&mut rc4, &mut buf);
            }
            let wall = wall.elapsed();
            let spent = thread_cpu().zip(cpu).map_or(wall, |(b, a)| b - a);
            let bytes = (rounds * buf.len()) as f64;
            println!(
                "{name}: {:.0} MB/s of CPU time ({:.0} MB/s wall)",
                bytes / spent.as_secs_f64() / 1e6,
                bytes / wall.as_secs_f64() / 1e6,
            );
        }
        std::hint::black_box(&buf);
    }
}
