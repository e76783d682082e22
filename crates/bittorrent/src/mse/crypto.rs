//! The primitives of MSE/PE: 768-bit Diffie-Hellman over the spec's prime
//! with generator 2, the SHA-1 hashes that name the handshake's parts, and
//! the two RC4 streams (first 1024 bytes of each discarded).

use crypto_bigint::modular::{ConstMontyForm, ConstMontyParams};
use crypto_bigint::{impl_modulus, U192, U768};
use rand::RngCore;
use sha1::{Digest, Sha1};

use crate::mse::rc4::Rc4;

/// Bytes of a DH public key or shared secret: 768 bits, big-endian.
pub(crate) const KEY_LEN: usize = 96;
/// Bits of a private key: the spec asks for at least 128; 160 as others use.
const PRIVATE_BITS: u32 = 160;
/// Keystream bytes thrown away before use (RC4's first bytes leak the key).
const DISCARD: usize = 1024;

impl_modulus!(
    DhPrime,
    U768,
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    "The 768-bit prime P of MSE/PE."
);

type Residue = ConstMontyForm<DhPrime, { U768::LIMBS }>;

/// One side's Diffie-Hellman key pair.
pub(crate) struct KeyPair {
    private: U192,
    /// Our public key, `2^private mod P`, as sent on the wire.
    pub public: [u8; KEY_LEN],
}

impl KeyPair {
    /// A fresh key pair with a random 160-bit private key.
    pub(crate) fn generate(rng: &mut impl RngCore) -> Self {
        let mut private = [0u8; 24];
        rng.fill_bytes(&mut private[4..]);
        Self::from_private(&private[4..])
    }

    /// The key pair of a given private key (up to 24 bytes, big-endian).
    pub(crate) fn from_private(private: &[u8]) -> Self {
        let mut be = [0u8; 24];
        let len = private.len().min(24);
        be[24 - len..].copy_from_slice(&private[private.len() - len..]);
        let private = U192::from_be_slice(&be);
        let public = pow(&U768::from_u8(2), &private);
        Self { private, public }
    }

    /// The shared secret S with the peer whose public key is `theirs`, or
    /// `None` for a key no honest peer sends (0, 1, P-1 or not below P).
    pub(crate) fn shared_secret(&self, theirs: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
        let y = U768::from_be_slice(theirs);
        let p_minus_one = DhPrime::MODULUS.get().wrapping_sub(&U768::ONE);
        if y <= U768::ONE || y >= p_minus_one {
            return None;
        }
        Some(pow(&y, &self.private))
    }
}

/// `base^exp mod P`, in constant time for the exponent's 160 bits.
fn pow(base: &U768, exp: &U192) -> [u8; KEY_LEN] {
    Residue::new(base)
        .pow_bounded_exp(exp, PRIVATE_BITS)
        .retrieve()
        .to_be_bytes()
}

/// SHA-1 over the concatenation of `parts`.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut sha = Sha1::new();
    for part in parts {
        sha.update(part);
    }
    sha.finalize().into()
}

/// `HASH('req2', SKEY) xor HASH('req3', S)`: how the initiator names the
/// torrent without showing its info-hash.
pub(crate) fn obfuscated_skey(skey: &[u8; 20], secret: &[u8; KEY_LEN]) -> [u8; 20] {
    xor(&hash(&[b"req2", skey]), &hash(&[b"req3", secret]))
}

/// The byte-wise xor of two hashes.
pub(crate) fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// An RC4 keystream, its first [`DISCARD`] bytes already spent. (Boxed:
/// RC4's state is 258 bytes, and streams move between handshake states.)
pub(crate) struct Keystream(Box<Rc4>);

impl Keystream {
    /// The stream keyed `HASH(name, S, SKEY)`; `name` is `keyA` (what the
    /// initiator sends) or `keyB` (what the receiver sends).
    pub(crate) fn new(name: &[u8], secret: &[u8; KEY_LEN], skey: &[u8; 20]) -> Self {
        let key = hash(&[name, secret, skey]);
        Self::from_key(&key)
    }

    fn from_key(key: &[u8; 20]) -> Self {
        let mut rc4 = Rc4::new(key);
        rc4.apply(&mut [0u8; DISCARD]);
        Self(Box::new(rc4))
    }

    /// Encrypts or decrypts `buf` in place, advancing the stream.
    pub(crate) fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply(buf);
    }
}

impl std::fmt::Debug for Keystream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keystream")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // Vectors computed once with an independent implementation: Python 3's
    // built-in pow() and hashlib, and a ten-line textbook RC4 in Python
    // (itself checked against RFC 6229). The private keys are
    // SHA-1("initiator private key") and SHA-1("receiver private key"),
    // SKEY is the bytes 0..20.
    const XA: &str = "0a3a180010cf2eeabfde20962cc95c87f4e89548";
    const XB: &str = "1c9b4e474c3d26158e5d2707ee6b05aaba72778c";
    const YA: &str = "625209f2e378cfde02b48bf972f592e33b02985e437abee70bb550dc3816eb21fa2628cfa88122a84827d19fc9aaff476a2853be33a9002e738821c5fc962a638a8399e5c50ace66d855621bbf805f91ede65e7df6546b926ca114bbc5b2cf05";
    const YB: &str = "821949c9fa596208546e2675d9d11665e2c4e5ba1ae32c56a977ad10e3e6a763c63346d8cd083964be5a04214535456dac7163b6dfb6f334055cc4b7cd13a01ec604a59fcdd32754619482050834b86d88e9822e922dfa1d9cd324d6cc9bd492";
    const S: &str = "5d566f6b7a598a13456e7bfde5fe68034507e314aea90973388fdc7a134d545b01e59cc2392ea21daa011b91be948453230ad736eb99226753af87a7fd92a66af4e48b6034173a94a2b8a849c0bc4139d68079506aad450d1621e048e8baed81";
    const REQ1: &str = "249d8bb4d8f9794673d58c3666c6deb59977b816";
    const REQ23: &str = "f27ef0174e8dee85d97acc06477d5a27905e9cf0";
    const STREAM_A: &str = "5ca110cf5e3d4c1cfafdee5a6cb37e87";
    const STREAM_B: &str = "875e6e56ebdbf8346fdbb6d3a851de64";

    fn skey() -> [u8; 20] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn dh_matches_the_reference_vectors() {
        let a = KeyPair::from_private(&unhex::<20>(XA));
        let b = KeyPair::from_private(&unhex::<20>(XB));
        assert_eq!(hex::encode(a.public), YA);
        assert_eq!(hex::encode(b.public), YB);
        let s = a.shared_secret(&b.public).unwrap();
        assert_eq!(hex::encode(s), S);
        assert_eq!(b.shared_secret(&a.public).unwrap(), s);
        assert_eq!(hex::encode(hash(&[b"req1", &s])), REQ1);
        assert_eq!(hex::encode(obfuscated_skey(&skey(), &s)), REQ23);
    }

    #[test]
    fn keystreams_match_the_reference_vectors() {
        let s = unhex::<96>(S);
        for (name, expected) in [(&b"keyA"[..], STREAM_A), (b"keyB", STREAM_B)] {
            let mut ks = Keystream::new(name, &s, &skey());
            let mut buf = [0u8; 16];
            ks.apply(&mut buf);
            assert_eq!(hex::encode(buf), expected);
        }
    }

    #[test]
    fn degenerate_public_keys_are_refused() {
        let a = KeyPair::from_private(&unhex::<20>(XA));
        let mut p_minus_one = unhex::<96>(&format!("{:0>192}", "")); // zero
        assert!(a.shared_secret(&p_minus_one).is_none());
        p_minus_one[95] = 1;
        assert!(a.shared_secret(&p_minus_one).is_none());
        let p = DhPrime::MODULUS.get().to_be_bytes();
        assert!(a.shared_secret(&p).is_none());
        assert!(a.shared_secret(&[0xff; 96]).is_none());
        let mut two = [0u8; 96];
        two[95] = 2;
        assert!(a.shared_secret(&two).is_some());
    }

    #[test]
    fn generated_keys_agree() {
        let mut rng = rand::rngs::mock::StepRng::new(7, 0x9e37_79b9_7f4a_7c15);
        let (a, b) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        assert_ne!(a.public, b.public);
        assert_eq!(a.shared_secret(&b.public), b.shared_secret(&a.public));
    }
}
