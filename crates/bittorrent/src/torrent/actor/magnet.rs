//! The metadata phase of a magnet's torrent: candidates go to the fetch
//! (`torrent/metadata.rs`), which returns the verified info dictionary; then
//! the store is made and the torrent runs as if from a .torrent file.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::extension::metadata::metainfo_from_metadata;
use crate::magnet::Magnet;
use crate::metainfo::MetaInfo;
use crate::peer::connect::Connector;
use crate::torrent::core::swarm::Ourselves;
use crate::torrent::error::MetadataPhaseError;
use crate::torrent::metadata::{self, FetchParams};
use crate::torrent::StoreFactory;

/// Candidates queued for the fetch at most.
const CANDIDATES: usize = 1024;
/// DHT lookups for peers while the metadata is missing.
pub(super) const LOOKUP_EVERY: Duration = Duration::from_secs(10);

type Fetch = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// A magnet whose info dictionary is being fetched.
pub(super) struct MetadataPhase {
    magnet: Magnet,
    make_store: StoreFactory,
    candidates: mpsc::Sender<SocketAddr>,
    /// Our listen endpoints: never asked.
    ourselves: Arc<Ourselves>,
    fetch: Fetch,
    /// When to look for peers on the DHT next.
    pub next_lookup: Instant,
}

impl MetadataPhase {
    pub(super) fn start(
        magnet: Magnet,
        make_store: StoreFactory,
        config: &SessionConfig,
        connector: Connector,
        ourselves: Arc<Ourselves>,
        cancel: CancellationToken,
        now: Instant,
    ) -> Self {
        log::info!(
            "[{}] fetching metadata from peers",
            magnet.info_hash.short()
        );
        let (candidates, candidates_rx) = mpsc::channel(CANDIDATES);
        let params = FetchParams {
            info_hash: magnet.info_hash,
            our_id: config.peer_id,
            connect_timeout: config.connect_timeout,
            connector,
        };
        let fetch = Box::pin(metadata::fetch(params, candidates_rx, cancel));
        Self {
            magnet,
            make_store,
            candidates,
            ourselves,
            fetch,
            next_lookup: now,
        }
    }

    /// The magnet's trackers, one tier each.
    pub(super) fn tiers(&self) -> Vec<Vec<String>> {
        self.magnet
            .trackers
            .iter()
            .map(|t| vec![t.clone()])
            .collect()
    }

    /// Peers to ask for the metadata (dropped if the fetch is far behind).
    pub(super) fn add_candidates(&self, peers: impl IntoIterator<Item = SocketAddr>) {
        for addr in peers {
            if self.ourselves.contains(&addr) {
                log::debug!("{addr} is our own listen endpoint; not asked for metadata");
                continue;
            }
            let _ = self.candidates.try_send(addr);
        }
    }

    /// The fetch: the verified info dictionary, or `None` once cancelled.
    pub(super) fn fetch(&mut self) -> &mut Fetch {
        &mut self.fetch
    }

    /// Turns the fetched dictionary into the metainfo; the store factory
    /// comes along.
    pub(super) fn into_meta(
        self,
        info: &[u8],
    ) -> Result<(MetaInfo, StoreFactory), MetadataPhaseError> {
        let meta = metainfo_from_metadata(info, &self.magnet.trackers)?;
        Ok((meta, self.make_store))
    }
}
