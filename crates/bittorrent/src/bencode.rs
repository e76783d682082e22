//! A strict bencode decoder that remembers where each value lies in the input
//! (so the info-hash is taken over the exact bytes), with a nesting limit.
