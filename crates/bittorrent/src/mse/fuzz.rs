//! The entry of the `mse_handshake` fuzz target (fuzz/): arbitrary bytes fed
//! to the receiver and initiator state machines, raw and as the corruption
//! of a genuine exchange. Not an API.

use std::sync::Arc;

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::mse::crypto::KEY_LEN;
use crate::mse::handshake::{Initiator, Receiver, MAX_IA, MAX_PAD};
use crate::mse::{Established, Methods, MseError};
use crate::types::InfoHash;

/// Bytes a machine may hold unconsumed while waiting (plus one chunk): the
/// longest wait is for an IA after every other part.
const MAX_BUFFERED: usize = KEY_LEN + MAX_PAD + 20 + 20 + 14 + MAX_PAD + 2 + MAX_IA;

type Step<'a> = Box<dyn FnMut(&mut BytesMut, &mut Vec<u8>) -> StepResult + 'a>;
type StepResult = Result<Option<Established>, MseError>;

/// Runs `data` (its first byte steers chunk sizes and seeds) through both
/// machines. Panics only when an invariant breaks: a machine holding more
/// than `MAX_BUFFERED` bytes unconsumed.
pub fn handshake(data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(ctl % 97) + 1;
    let mut rng = StdRng::seed_from_u64(u64::from(ctl));
    let torrents: Arc<[InfoHash]> = Arc::from(vec![InfoHash([1; 20]), InfoHash([2; 20])]);
    let methods = [Methods::BOTH, Methods::RC4, Methods::PLAINTEXT][usize::from(ctl % 3)];
    let mut receiver = Receiver::new(&mut rng, methods, Arc::clone(&torrents));
    feed(Box::new(|i, o| receiver.step(i, o)), data, chunk);
    let mut initiator = Initiator::new(&mut rng, InfoHash([1; 20]), methods, &mut Vec::new());
    feed(Box::new(|i, o| initiator.step(i, o)), data, chunk);
    corrupted_exchange(&mut rng, methods, torrents, data, ctl & 0x80 != 0);
}

/// Feeds `data` in chunks until the machine finishes or fails.
fn feed(mut step: Step<'_>, data: &[u8], chunk: usize) {
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    for part in data.chunks(chunk) {
        input.extend_from_slice(part);
        match step(&mut input, &mut out) {
            Ok(None) => assert!(input.len() <= MAX_BUFFERED + chunk, "{}", input.len()),
            Ok(Some(_)) | Err(_) => return,
        }
    }
}

/// A genuine initiator and receiver, the bytes of one direction xored with
/// `data`: both end (done, failed or starved) without breaking a bound.
fn corrupted_exchange(
    rng: &mut StdRng,
    methods: Methods,
    torrents: Arc<[InfoHash]>,
    data: &[u8],
    corrupt_receiver_side: bool,
) {
    let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
    let mut a = Initiator::new(rng, InfoHash([2; 20]), methods, &mut a_out);
    let mut b = Receiver::new(rng, Methods::BOTH, torrents);
    let (mut a_in, mut b_in) = (BytesMut::new(), BytesMut::new());
    let (mut a_live, mut b_live) = (true, true);
    let mut sent = 0usize;
    // A handshake is four messages: a few rounds end it either way.
    for _ in 0..16 {
        if a_out.is_empty() && b_out.is_empty() {
            break;
        }
        let mut to_b = std::mem::take(&mut a_out);
        let mut to_a = std::mem::take(&mut b_out);
        let flow = if corrupt_receiver_side {
            &mut to_b
        } else {
            &mut to_a
        };
        for byte in flow.iter_mut() {
            *byte ^= data.get(sent).copied().unwrap_or(0);
            sent += 1;
        }
        b_in.extend_from_slice(&to_b);
        a_in.extend_from_slice(&to_a);
        if b_live {
            b_live = matches!(b.step(&mut b_in, &mut b_out), Ok(None));
            assert!(b_in.len() <= MAX_BUFFERED + to_b.len());
        }
        if a_live {
            a_live = matches!(a.step(&mut a_in, &mut a_out), Ok(None));
            assert!(a_in.len() <= MAX_BUFFERED + to_a.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_entry_runs_on_samples() {
        handshake(&[]);
        handshake(&[0]);
        handshake(&[0x80; 700]);
        for ctl in 0..=255u8 {
            let mut data = vec![ctl; 1500];
            data[0] = ctl;
            handshake(&data);
        }
    }
}
