//! End-to-end tests of `bittorrent-cli` against independent BitTorrent peers on loopback.
