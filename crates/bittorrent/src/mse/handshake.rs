//! The MSE/PE handshake as two sans-IO state machines. Each is fed the
//! bytes received so far (it consumes what it has used) and appends what to
//! send; it ends with an [`Established`] stream or an [`MseError`]. Nothing
//! here waits, reads a clock or touches a socket.
//!
//! ```text
//! 1 A->B: Ya, PadA
//! 2 B->A: Yb, PadB
//! 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! 5 A->B: ENCRYPT2(payload)
//! ```
//!
//! Every wait is bounded: the hash after PadA within 512 + 20 bytes, the
//! encrypted VC after PadB within 512 + 8, PadC/PadD at most 512 bytes and
//! the initial payload (IA) at most [`MAX_IA`].

use bytes::{Buf, BytesMut};
use rand::{Rng, RngCore};

use crate::mse::crypto::{hash, obfuscated_skey, KeyPair, Keystream, KEY_LEN};
use crate::mse::{Established, Methods, MseError};
use crate::types::InfoHash;

/// The longest padding (PadA..PadD) the spec allows.
pub(crate) const MAX_PAD: usize = 512;
/// The longest initial payload we accept (a BitTorrent handshake is 68
/// bytes; some clients add their first messages).
pub(crate) const MAX_IA: usize = 4096;
/// The verification constant: eight zero bytes.
const VC: [u8; 8] = [0; 8];

/// One step of a state machine.
enum Progress {
    /// Moved on; try the next state with what is left.
    Next,
    /// Needs more bytes.
    Wait,
    /// The handshake is over.
    Done(Established),
}

/// Runs `advance` (one side's state machine) until it needs more bytes or
/// the handshake is over.
fn drive(
    mut advance: impl FnMut(&mut BytesMut, &mut Vec<u8>) -> Result<Progress, MseError>,
    input: &mut BytesMut,
    out: &mut Vec<u8>,
) -> Result<Option<Established>, MseError> {
    loop {
        match advance(input, out)? {
            Progress::Next => {}
            Progress::Wait => return Ok(None),
            Progress::Done(done) => return Ok(Some(done)),
        }
    }
}

/// Appends `Y` and a random padding of 0..=512 random bytes.
fn send_public(keys: &KeyPair, rng: &mut impl RngCore, out: &mut Vec<u8>) {
    out.extend_from_slice(&keys.public);
    let pad = rng.gen_range(0..=MAX_PAD);
    let start = out.len();
    out.resize(start + pad, 0);
    rng.fill_bytes(&mut out[start..]);
}

/// Takes the peer's public key off `input` and derives S.
fn take_secret(keys: &KeyPair, input: &mut BytesMut) -> Result<[u8; KEY_LEN], MseError> {
    let mut theirs = [0u8; KEY_LEN];
    input.copy_to_slice(&mut theirs);
    keys.shared_secret(&theirs).ok_or(MseError::BadPublicKey)
}

/// Finds `pattern` at an offset of at most `max_skip` in `input` and drops
/// everything up to and including it. `Ok(false)`: not there yet.
fn sync_on(input: &mut BytesMut, pattern: &[u8], max_skip: usize) -> Result<bool, MseError> {
    let window = &input[..input.len().min(max_skip + pattern.len())];
    match window.windows(pattern.len()).position(|w| w == pattern) {
        Some(at) => {
            input.advance(at + pattern.len());
            Ok(true)
        }
        None if input.len() >= max_skip + pattern.len() => Err(MseError::NoSync),
        None => Ok(false),
    }
}

/// Takes `len` bytes off `input` and decrypts them, if there are that many.
fn take_decrypted(input: &mut BytesMut, len: usize, dec: &mut Keystream) -> Option<BytesMut> {
    if input.len() < len {
        return None;
    }
    let mut part = input.split_to(len);
    dec.apply(&mut part);
    Some(part)
}

/// Ends the handshake: what is left of `input` is payload, decrypted in
/// place when RC4 was chosen, and follows `prefix` (the IA, if any).
fn establish(
    input: &mut BytesMut,
    mut prefix: BytesMut,
    method: Methods,
    enc: Keystream,
    mut dec: Keystream,
    info_hash: InfoHash,
) -> Established {
    let mut rest = input.split();
    let keys = if method == Methods::RC4 {
        dec.apply(&mut rest);
        Some((enc, dec))
    } else {
        None
    };
    prefix.unsplit(rest);
    Established {
        keys,
        prefix,
        info_hash,
    }
}

/// The side that dials: A in the spec.
pub(crate) struct Initiator {
    keys: KeyPair,
    skey: InfoHash,
    provide: Methods,
    pad_c: usize,
    state: InitiatorState,
}

enum InitiatorState {
    /// Waiting for Yb.
    Public,
    /// Waiting for ENCRYPT(VC) somewhere after PadB.
    Verify {
        enc: Keystream,
        dec: Keystream,
        vc: [u8; 8],
    },
    /// Waiting for crypto_select and len(PadD).
    Select {
        enc: Keystream,
        dec: Keystream,
    },
    /// Waiting for PadD.
    PadD {
        enc: Keystream,
        dec: Keystream,
        method: Methods,
        len: usize,
    },
    Over,
}

impl Initiator {
    /// Starts a handshake for the torrent `skey`, offering `provide`;
    /// appends step 1 (Ya, PadA) to `out`.
    pub(crate) fn new(
        rng: &mut impl RngCore,
        skey: InfoHash,
        provide: Methods,
        out: &mut Vec<u8>,
    ) -> Self {
        let keys = KeyPair::generate(rng);
        send_public(&keys, rng, out);
        Self {
            keys,
            skey,
            provide,
            pad_c: rng.gen_range(0..=MAX_PAD),
            state: InitiatorState::Public,
        }
    }

    /// Consumes what it can of `input`, appends what to send to `out`.
    ///
    /// # Errors
    /// Any [`MseError`] of the protocol; the connection is then useless.
    pub(crate) fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<Option<Established>, MseError> {
        drive(|input, out| self.advance(input, out), input, out)
    }

    fn advance(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<Progress, MseError> {
        self.state = match std::mem::replace(&mut self.state, InitiatorState::Over) {
            InitiatorState::Public if input.len() < KEY_LEN => InitiatorState::Public,
            InitiatorState::Public => self.send_step3(input, out)?,
            InitiatorState::Verify { enc, mut dec, vc } => {
                if !sync_on(input, &vc, MAX_PAD)? {
                    self.state = InitiatorState::Verify { enc, dec, vc };
                    return Ok(Progress::Wait);
                }
                dec.apply(&mut VC.clone());
                InitiatorState::Select { enc, dec }
            }
            InitiatorState::Select { enc, mut dec } => match take_decrypted(input, 6, &mut dec) {
                None => InitiatorState::Select { enc, dec },
                Some(part) => {
                    let (method, len) = self.selected(&part)?;
                    InitiatorState::PadD {
                        enc,
                        dec,
                        method,
                        len,
                    }
                }
            },
            InitiatorState::PadD {
                enc,
                mut dec,
                method,
                len,
            } => match take_decrypted(input, len, &mut dec) {
                None => InitiatorState::PadD {
                    enc,
                    dec,
                    method,
                    len,
                },
                Some(_) => {
                    let done = establish(input, BytesMut::new(), method, enc, dec, self.skey);
                    return Ok(Progress::Done(done));
                }
            },
            InitiatorState::Over => return Err(MseError::Finished),
        };
        Ok(match self.state {
            InitiatorState::Public => Progress::Wait,
            InitiatorState::Select { .. } if input.len() < 6 => Progress::Wait,
            InitiatorState::PadD { len, .. } if input.len() < len => Progress::Wait,
            _ => Progress::Next,
        })
    }
}

impl Initiator {
    /// Takes Yb and sends step 3 (no IA: our BitTorrent handshake follows
    /// once the method is known).
    fn send_step3(
        &self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<InitiatorState, MseError> {
        let skey = self.skey.0;
        let secret = take_secret(&self.keys, input)?;
        let mut enc = Keystream::new(b"keyA", &secret, &skey);
        let dec = Keystream::new(b"keyB", &secret, &skey);
        // What ENCRYPT(VC) looks like: the first keystream bytes.
        let mut vc = VC;
        Keystream::new(b"keyB", &secret, &skey).apply(&mut vc);
        out.extend_from_slice(&hash(&[b"req1", &secret]));
        out.extend_from_slice(&obfuscated_skey(&skey, &secret));
        let start = out.len();
        out.extend_from_slice(&VC);
        out.extend_from_slice(&self.provide.0.to_be_bytes());
        out.extend_from_slice(&(self.pad_c as u16).to_be_bytes());
        out.resize(out.len() + self.pad_c, 0);
        out.extend_from_slice(&0u16.to_be_bytes()); // no IA
        enc.apply(&mut out[start..]);
        Ok(InitiatorState::Verify { enc, dec, vc })
    }

    /// Checks crypto_select (one method, one we offered) and len(PadD).
    fn selected(&self, part: &[u8]) -> Result<(Methods, usize), MseError> {
        let method = Methods(u32::from_be_bytes([part[0], part[1], part[2], part[3]]));
        if !method.is_single() || self.provide.0 & method.0 == 0 {
            return Err(MseError::BadSelect(method.0));
        }
        let len = usize::from(u16::from_be_bytes([part[4], part[5]]));
        if len > MAX_PAD {
            return Err(MseError::PadTooLong(len));
        }
        Ok((method, len))
    }
}

/// The side that accepts: B in the spec. It learns the torrent (SKEY) from
/// the initiator's obfuscated hash, among the torrents it serves.
pub(crate) struct Receiver {
    keys: KeyPair,
    allowed: Methods,
    torrents: std::sync::Arc<[InfoHash]>,
    step2: Option<Vec<u8>>,
    pad_d: usize,
    state: ReceiverState,
}

enum ReceiverState {
    /// Waiting for Ya.
    Public,
    /// Waiting for HASH('req1', S) somewhere after PadA.
    Sync {
        secret: [u8; KEY_LEN],
    },
    /// Waiting for HASH('req2', SKEY) xor HASH('req3', S).
    Skey {
        secret: [u8; KEY_LEN],
    },
    /// Waiting for VC, crypto_provide and len(PadC).
    Provide(Keys),
    /// Waiting for PadC and len(IA).
    PadC {
        keys: Keys,
        method: Methods,
        len: usize,
    },
    /// Waiting for the IA.
    Ia {
        keys: Keys,
        method: Methods,
        len: usize,
    },
    Over,
}

struct Keys {
    enc: Keystream,
    dec: Keystream,
    skey: InfoHash,
}

impl Receiver {
    /// Ready for an initiator's handshake for one of `torrents`; accepts
    /// the methods in `allowed` (RC4 chosen over plaintext when both are).
    pub(crate) fn new(
        rng: &mut impl RngCore,
        allowed: Methods,
        torrents: std::sync::Arc<[InfoHash]>,
    ) -> Self {
        let keys = KeyPair::generate(rng);
        let mut step2 = Vec::new();
        send_public(&keys, rng, &mut step2);
        Self {
            keys,
            allowed,
            torrents,
            step2: Some(step2),
            pad_d: rng.gen_range(0..=MAX_PAD),
            state: ReceiverState::Public,
        }
    }

    /// Consumes what it can of `input`, appends what to send to `out`.
    ///
    /// # Errors
    /// Any [`MseError`] of the protocol; the connection is then useless.
    pub(crate) fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<Option<Established>, MseError> {
        drive(|input, out| self.advance(input, out), input, out)
    }

    fn advance(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<Progress, MseError> {
        let (next, waiting) = match std::mem::replace(&mut self.state, ReceiverState::Over) {
            ReceiverState::Public if input.len() < KEY_LEN => (ReceiverState::Public, true),
            ReceiverState::Public => {
                let secret = take_secret(&self.keys, input)?;
                out.extend(self.step2.take().unwrap_or_default());
                (ReceiverState::Sync { secret }, false)
            }
            ReceiverState::Sync { secret } => {
                let found = sync_on(input, &hash(&[b"req1", &secret]), MAX_PAD)?;
                match found {
                    true => (ReceiverState::Skey { secret }, false),
                    false => (ReceiverState::Sync { secret }, true),
                }
            }
            ReceiverState::Skey { secret } if input.len() < 20 => {
                (ReceiverState::Skey { secret }, true)
            }
            ReceiverState::Skey { secret } => (
                ReceiverState::Provide(self.find_skey(input, &secret)?),
                false,
            ),
            ReceiverState::Provide(mut keys) => match self.provide(input, &mut keys)? {
                None => (ReceiverState::Provide(keys), true),
                Some((method, len)) => (ReceiverState::PadC { keys, method, len }, false),
            },
            ReceiverState::PadC {
                mut keys,
                method,
                len,
            } => match take_decrypted(input, len + 2, &mut keys.dec) {
                None => (ReceiverState::PadC { keys, method, len }, true),
                Some(part) => {
                    let len = usize::from(u16::from_be_bytes([part[len], part[len + 1]]));
                    if len > MAX_IA {
                        return Err(MseError::IaTooLong(len));
                    }
                    (ReceiverState::Ia { keys, method, len }, false)
                }
            },
            ReceiverState::Ia {
                mut keys,
                method,
                len,
            } => match take_decrypted(input, len, &mut keys.dec) {
                None => (ReceiverState::Ia { keys, method, len }, true),
                Some(ia) => return Ok(Progress::Done(self.answer(input, ia, keys, method, out))),
            },
            ReceiverState::Over => return Err(MseError::Finished),
        };
        self.state = next;
        Ok(if waiting {
            Progress::Wait
        } else {
            Progress::Next
        })
    }

    /// Takes the obfuscated SKEY and finds its torrent among ours.
    fn find_skey(&self, input: &mut BytesMut, secret: &[u8; KEY_LEN]) -> Result<Keys, MseError> {
        let mut theirs = [0u8; 20];
        input.copy_to_slice(&mut theirs);
        let skey = self
            .torrents
            .iter()
            .find(|ih| obfuscated_skey(&ih.0, secret) == theirs)
            .copied()
            .ok_or(MseError::UnknownTorrent)?;
        Ok(Keys {
            enc: Keystream::new(b"keyB", secret, &skey.0),
            dec: Keystream::new(b"keyA", secret, &skey.0),
            skey,
        })
    }

    /// Reads VC, crypto_provide and len(PadC); chooses the method.
    fn provide(
        &self,
        input: &mut BytesMut,
        keys: &mut Keys,
    ) -> Result<Option<(Methods, usize)>, MseError> {
        let Some(part) = take_decrypted(input, 14, &mut keys.dec) else {
            return Ok(None);
        };
        if part[..8] != VC {
            return Err(MseError::BadVerification);
        }
        let provide = u32::from_be_bytes([part[8], part[9], part[10], part[11]]);
        let common = provide & self.allowed.0;
        // Plaintext when both ends allow it, as libtorrent does by default
        // (`prefer_rc4` off): the handshake is still obfuscated, and RC4
        // would cost both ends a pass over every byte. RC4 when the peer
        // (or our `Require` policy) asks for it alone.
        let method = if common & Methods::PLAINTEXT.0 != 0 {
            Methods::PLAINTEXT
        } else if common & Methods::RC4.0 != 0 {
            Methods::RC4
        } else {
            return Err(MseError::NoCommonMethod(provide));
        };
        let len = usize::from(u16::from_be_bytes([part[12], part[13]]));
        if len > MAX_PAD {
            return Err(MseError::PadTooLong(len));
        }
        Ok(Some((method, len)))
    }

    /// Sends step 4 and ends the handshake, the IA first in the payload.
    fn answer(
        &mut self,
        input: &mut BytesMut,
        ia: BytesMut,
        mut keys: Keys,
        method: Methods,
        out: &mut Vec<u8>,
    ) -> Established {
        let start = out.len();
        out.extend_from_slice(&VC);
        out.extend_from_slice(&method.0.to_be_bytes());
        out.extend_from_slice(&(self.pad_d as u16).to_be_bytes());
        out.resize(out.len() + self.pad_d, 0);
        keys.enc.apply(&mut out[start..]);
        establish(input, ia, method, keys.enc, keys.dec, keys.skey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::sync::Arc;

    fn torrents() -> Arc<[InfoHash]> {
        Arc::from(vec![InfoHash([7; 20]), InfoHash([9; 20])])
    }

    /// Runs both machines against each other, handing bytes over in chunks
    /// of `chunk`; returns both ends.
    fn run(
        seed: u64,
        provide: Methods,
        allowed: Methods,
        chunk: usize,
    ) -> Result<(Established, Established), MseError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
        let mut a = Initiator::new(&mut rng, InfoHash([9; 20]), provide, &mut a_out);
        let mut b = Receiver::new(&mut rng, allowed, torrents());
        let (mut a_in, mut b_in) = (BytesMut::new(), BytesMut::new());
        let (mut a_done, mut b_done) = (None, None);
        for _ in 0..10_000 {
            let n = chunk.min(a_out.len());
            b_in.extend(a_out.drain(..n));
            let n = chunk.min(b_out.len());
            a_in.extend(b_out.drain(..n));
            if b_done.is_none() {
                b_done = b.step(&mut b_in, &mut b_out)?;
            }
            if a_done.is_none() {
                a_done = a.step(&mut a_in, &mut a_out)?;
            }
            if a_done.is_some() && b_done.is_some() && a_out.is_empty() && b_out.is_empty() {
                break;
            }
        }
        Ok((a_done.unwrap(), b_done.unwrap()))
    }

    fn check_link(a: &mut Established, b: &mut Established) {
        let (ae, ad) = a.keys.as_mut().unwrap();
        let (be, bd) = b.keys.as_mut().unwrap();
        let mut msg = *b"hello, receiver";
        ae.apply(&mut msg);
        bd.apply(&mut msg);
        assert_eq!(&msg, b"hello, receiver");
        let mut msg = *b"hello, initiator";
        be.apply(&mut msg);
        ad.apply(&mut msg);
        assert_eq!(&msg, b"hello, initiator");
    }

    #[test]
    fn both_sides_agree_on_rc4_in_any_chunking() {
        for (seed, chunk) in [(1, 1), (2, 7), (3, 100), (4, 4096)] {
            let (mut a, mut b) = run(seed, Methods::BOTH, Methods::RC4, chunk).unwrap();
            assert_eq!(b.info_hash, InfoHash([9; 20]));
            assert!(a.prefix.is_empty() && b.prefix.is_empty());
            check_link(&mut a, &mut b);
        }
    }

    #[test]
    fn plaintext_is_chosen_when_both_ends_allow_it() {
        let (a, b) = run(7, Methods::BOTH, Methods::BOTH, 50).unwrap();
        assert!(a.keys.is_none() && b.keys.is_none());
        let (a, b) = run(8, Methods::RC4, Methods::BOTH, 50).unwrap();
        assert!(a.keys.is_some() && b.keys.is_some());
    }

    #[test]
    fn plaintext_is_chosen_when_only_it_is_common() {
        let (a, b) = run(5, Methods::BOTH, Methods::PLAINTEXT, 50).unwrap();
        assert!(a.keys.is_none() && b.keys.is_none());
        let (a, b) = run(6, Methods::PLAINTEXT, Methods::BOTH, 50).unwrap();
        assert!(a.keys.is_none() && b.keys.is_none());
    }

    #[test]
    fn no_common_method_fails() {
        assert!(matches!(
            run(7, Methods::PLAINTEXT, Methods::RC4, 50),
            Err(MseError::NoCommonMethod(1))
        ));
    }

    #[test]
    fn an_unknown_torrent_fails() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut a_out = Vec::new();
        let mut a = Initiator::new(&mut rng, InfoHash([1; 20]), Methods::BOTH, &mut a_out);
        let mut b = Receiver::new(&mut rng, Methods::BOTH, torrents());
        let mut b_in = BytesMut::from(&a_out[..]);
        let mut b_out = Vec::new();
        assert!(b.step(&mut b_in, &mut b_out).unwrap().is_none());
        let mut a_in = BytesMut::from(&b_out[..]);
        a_out.clear();
        assert!(a.step(&mut a_in, &mut a_out).unwrap().is_none());
        b_in.extend_from_slice(&a_out);
        assert!(matches!(
            b.step(&mut b_in, &mut b_out),
            Err(MseError::UnknownTorrent)
        ));
    }

    #[test]
    fn garbage_fails_within_the_bounds() {
        // Random bytes: the receiver gives up within Ya + 512 + 20 bytes.
        let mut rng = StdRng::seed_from_u64(9);
        let mut b = Receiver::new(&mut rng, Methods::BOTH, torrents());
        let mut garbage = vec![0u8; 2000];
        rng.fill_bytes(&mut garbage);
        let mut out = Vec::new();
        let mut input = BytesMut::new();
        let mut fed = 0;
        let err = loop {
            input.extend_from_slice(&garbage[fed..fed + 1]);
            fed += 1;
            match b.step(&mut input, &mut out) {
                Ok(None) => assert!(input.len() <= KEY_LEN + MAX_PAD + 20),
                Ok(Some(_)) => panic!("garbage accepted"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, MseError::NoSync), "{err:?}");
        assert_eq!(fed, KEY_LEN + MAX_PAD + 20);
        // The initiator gives up within Yb + 512 + 8.
        let mut out = Vec::new();
        let mut a = Initiator::new(&mut rng, InfoHash([9; 20]), Methods::BOTH, &mut out);
        let mut input = BytesMut::from(&garbage[..KEY_LEN + MAX_PAD + 7]);
        assert!(a.step(&mut input, &mut out).unwrap().is_none());
        input.extend_from_slice(&[0]);
        assert!(matches!(
            a.step(&mut input, &mut out),
            Err(MseError::NoSync)
        ));
    }

    #[test]
    fn the_initial_payload_and_what_follows_reach_the_receiver() {
        // An initiator that sends an IA (as some clients do), written by
        // hand from the primitives, then more payload at once.
        let mut rng = StdRng::seed_from_u64(10);
        let mut b = Receiver::new(&mut rng, Methods::BOTH, torrents());
        let a = KeyPair::generate(&mut rng);
        let mut input = BytesMut::from(&a.public[..]);
        input.extend_from_slice(&[0xaa; 33]); // PadA
        let mut out = Vec::new();
        assert!(b.step(&mut input, &mut out).unwrap().is_none());
        let mut yb = [0u8; KEY_LEN];
        yb.copy_from_slice(&out[..KEY_LEN]);
        let secret = a.shared_secret(&yb).unwrap();
        let skey = [7u8; 20];
        let mut enc = Keystream::new(b"keyA", &secret, &skey);
        input.extend_from_slice(&hash(&[b"req1", &secret]));
        input.extend_from_slice(&obfuscated_skey(&skey, &secret));
        let mut rest = Vec::new();
        rest.extend_from_slice(&VC);
        rest.extend_from_slice(&2u32.to_be_bytes());
        rest.extend_from_slice(&3u16.to_be_bytes());
        rest.extend_from_slice(&[0; 3]);
        rest.extend_from_slice(&5u16.to_be_bytes());
        rest.extend_from_slice(b"first");
        rest.extend_from_slice(b" and then");
        enc.apply(&mut rest);
        input.extend_from_slice(&rest);
        let done = b.step(&mut input, &mut out).unwrap().unwrap();
        assert_eq!(done.info_hash, InfoHash(skey));
        assert_eq!(&done.prefix[..], b"first and then");
        assert!(done.keys.is_some());
    }
}
