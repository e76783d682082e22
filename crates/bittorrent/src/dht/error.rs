//! Errors of DHT operations.

/// Why a DHT operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DhtError {
    /// The DHT task has ended (cancelled, or every handle dropped).
    #[error("the DHT has stopped")]
    Stopped,
    /// No node to start a lookup from: the routing table is empty and no
    /// bootstrap address is configured.
    #[error("the DHT knows no nodes")]
    NoNodes,
    /// Too many lookups are running; try again later.
    #[error("too many DHT lookups running")]
    Busy,
}
