//! `bittorrent-cli`: download torrents from the command line.

fn main() {}
