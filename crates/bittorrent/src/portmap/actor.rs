//! The port mapper's task: waits for the schedule's next instant, talks to
//! the gateway, publishes the result; on cancellation deletes its mappings.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::portmap::client::{self, Granted, Live};
use crate::portmap::schedule::{Action, Schedule};
use crate::portmap::{MapTransport, MappedPort, PortMapConfig};

/// The mapper's state.
struct Mapper {
    config: PortMapConfig,
    /// The port to map per transport.
    ports: Vec<(MapTransport, u16)>,
    schedule: Schedule,
    live: HashMap<MapTransport, Live>,
    /// The last failure per transport: a repeat is logged at debug level,
    /// so a network without a gateway costs one error line, not one per retry.
    last_failure: HashMap<MapTransport, String>,
    /// A step interrupted by shutdown.
    in_flight: Option<(MapTransport, Action)>,
    published: watch::Sender<Vec<MappedPort>>,
    events: broadcast::Sender<Event>,
}

/// Maps each of `ports` until `cancel` fires, then deletes the mappings
/// (bounded by [`PortMapConfig::shutdown_timeout`]).
pub(crate) async fn run(
    config: PortMapConfig,
    ports: Vec<(MapTransport, u16)>,
    published: watch::Sender<Vec<MappedPort>>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
) {
    let transports: Vec<MapTransport> = ports.iter().map(|&(t, _)| t).collect();
    let mut mapper = Mapper {
        schedule: Schedule::new(&transports, Instant::now()),
        config,
        ports,
        live: HashMap::new(),
        last_failure: HashMap::new(),
        in_flight: None,
        published,
        events,
    };
    mapper.serve(&cancel).await;
    // One bound for what is left: a mapping request cut short (asked again,
    // so that whatever the gateway made of it is known), then the deletions.
    // A renewal cut short needs nothing: its mapping is still recorded.
    let timeout = mapper.config.shutdown_timeout;
    let stop_at = tokio::time::Instant::now() + timeout;
    if let Some((transport, Action::Map)) = mapper.in_flight.take() {
        let _ = tokio::time::timeout_at(stop_at, mapper.step(transport, Action::Map)).await;
    }
    if tokio::time::timeout_at(stop_at, mapper.remove_all())
        .await
        .is_err()
    {
        log::error!("port mapping: deleting the mappings took over {timeout:?}; left to expire");
    }
}

impl Mapper {
    /// Maps and renews as the schedule says until `cancel` fires. A step
    /// cut short by it is left in `in_flight` for the shutdown.
    async fn serve(&mut self, cancel: &CancellationToken) {
        while let Some(at) = self.schedule.next_due() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(at.into()) => {}
            }
            for (transport, action) in self.schedule.due(Instant::now()) {
                let done = tokio::select! {
                    _ = cancel.cancelled() => false,
                    _ = self.step(transport, action) => true,
                };
                if !done {
                    self.in_flight = Some((transport, action));
                    return;
                }
            }
        }
    }

    /// Maps or renews `transport`, then records the outcome.
    async fn step(&mut self, transport: MapTransport, action: Action) {
        let Some(port) = self.port(transport) else {
            return;
        };
        // The live mapping stays recorded until its renewal fails, so that a
        // renewal cut short by shutdown still has it deleted.
        let outcome = match (action, self.live.get(&transport).cloned()) {
            (Action::Renew(protocol), Some(live)) => client::renew(live, transport)
                .await
                .map(|g| (protocol, g))
                .map_err(|e| format!("renewing with {protocol}: {e}")),
            _ => self.map(transport, port).await,
        };
        match outcome {
            Ok((protocol, granted)) => self.granted(transport, port, protocol, granted),
            Err(message) => {
                self.live.remove(&transport);
                self.unpublish(transport);
                let delay = self.schedule.failed(transport, Instant::now());
                let line = format!("port mapping: {transport} port {port}: {message}");
                if self.last_failure.get(&transport) == Some(&message) {
                    log::debug!("{line}; retrying in {delay:?}");
                } else {
                    log::error!("{line}; retrying in {delay:?}");
                    self.last_failure.insert(transport, message.clone());
                }
                let _ = self
                    .events
                    .send(Event::PortMappingFailed { transport, message });
            }
        }
    }

    /// Tries the configured protocols in order.
    async fn map(
        &self,
        transport: MapTransport,
        port: u16,
    ) -> Result<(crate::portmap::PortMapProtocol, Granted), String> {
        let mut errors = Vec::new();
        for &protocol in &self.config.protocols {
            match client::map(&self.config, protocol, transport, port).await {
                Ok(granted) => return Ok((protocol, granted)),
                Err(e) => {
                    log::debug!("port mapping: {transport} {port} over {protocol}: {e}");
                    errors.push(format!("{protocol}: {e}"));
                }
            }
        }
        Err(errors.join("; "))
    }

    fn granted(
        &mut self,
        transport: MapTransport,
        port: u16,
        protocol: crate::portmap::PortMapProtocol,
        granted: Granted,
    ) {
        let Granted {
            live,
            external,
            lifetime,
        } = granted;
        self.schedule
            .mapped(transport, protocol, lifetime, Instant::now());
        self.last_failure.remove(&transport);
        self.live.insert(transport, live);
        let mapped = MappedPort {
            protocol,
            transport,
            internal_port: port,
            external,
        };
        let mut changed = false;
        self.published.send_modify(|list| {
            list.retain(|m| m.transport != transport || *m == mapped);
            if !list.contains(&mapped) {
                list.push(mapped);
                changed = true;
            }
        });
        if changed {
            log::info!(
                "port mapping: {transport} port {port} mapped to {external} by {protocol} \
                 (lease {lifetime:?})"
            );
            let _ = self.events.send(Event::PortMapped {
                protocol,
                transport,
                internal_port: port,
                external,
            });
        } else {
            log::debug!("port mapping: {transport} port {port} renewed for {lifetime:?}");
        }
    }

    /// Deletes every live mapping from the gateway.
    async fn remove_all(&mut self) {
        for (transport, live) in std::mem::take(&mut self.live) {
            match client::remove(live, transport).await {
                Ok(()) => log::info!("port mapping: {transport} mapping deleted"),
                Err(e) => log::error!("port mapping: deleting the {transport} mapping: {e}"),
            }
            self.unpublish(transport);
        }
    }

    fn unpublish(&self, transport: MapTransport) {
        self.published.send_if_modified(|list| {
            let before = list.len();
            list.retain(|m| m.transport != transport);
            list.len() != before
        });
    }

    fn port(&self, transport: MapTransport) -> Option<u16> {
        self.ports
            .iter()
            .find(|&&(t, _)| t == transport)
            .map(|&(_, p)| p)
    }
}
