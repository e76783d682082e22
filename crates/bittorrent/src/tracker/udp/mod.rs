//! UDP trackers (BEP 15).
//!
//! [`packet`] encodes and decodes the datagrams (pure); [`UdpTracker`] runs
//! the exchanges over a tokio socket: `connect` for a connection id (cached
//! for a minute), then `announce` or `scrape`, each retransmitted on the
//! BEP's doubling timeout.

mod client;
#[cfg(test)]
pub(crate) mod fake;
pub mod packet;

pub use client::{is_udp_url, parse_udp_url, UdpTracker, UdpTrackerConfig, MAX_DATAGRAM_SIZE};
pub use packet::{AnnounceReply, PacketError, ScrapeInfo};
