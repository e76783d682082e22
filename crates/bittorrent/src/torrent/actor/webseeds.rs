//! The web seeds' tasks (BEP 19): started with the running phase, one per
//! usable URL, under the torrent's cancel token; their commands come from
//! the core's actions and their events go to the core.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use crate::metainfo::{check_web_seed_url, MetaInfo};
use crate::torrent::actor::mailbox::Mailbox;
use crate::torrent::actor::tasks::Tasks;
use crate::torrent::actor::{Phase, Shell};
use crate::webseed::{self, WebSeedCommand, WebSeedConfig, WebSeedEvent, WebSeedHandle, WebSeedId};

/// The web seeds' tasks, their handles and the mailbox they report into.
pub(super) struct WebSeedTasks {
    pub(super) tasks: Tasks<()>,
    handles: HashMap<WebSeedId, (WebSeedHandle, CancellationToken)>,
    /// Where the tasks report (made with the first).
    pub(super) events: Mailbox<WebSeedEvent>,
}

impl WebSeedTasks {
    pub(super) fn new(events: Mailbox<WebSeedEvent>) -> Self {
        Self {
            tasks: Tasks::default(),
            handles: HashMap::new(),
            events,
        }
    }
}

impl Shell {
    /// Starts a task per web seed of `meta` (its `url-list` and the
    /// torrent's own), unless the session turned web seeds off. They stay
    /// idle until the core hands them a run (after the check).
    pub(super) fn start_web_seeds(&mut self, meta: &Arc<MetaInfo>) {
        if !self.config.web_seeds || self.stopping {
            return;
        }
        let urls = web_seed_urls(&meta.url_list, &self.pending.web_seeds);
        if urls.is_empty() {
            return;
        }
        let mut config = match WebSeedConfig::new() {
            Ok(config) => config,
            Err(e) => {
                log::error!("{} no HTTP client for web seeds: {e}", self.tag);
                return;
            }
        };
        config.limits = self.connector.limits().clone();
        log::info!("{} {} web seeds", self.tag, urls.len());
        for url in urls {
            let Phase::Running(running) = &mut self.phase else {
                return;
            };
            let Some(id) = running.core.add_web_seed(Arc::from(url.as_str())) else {
                log::warn!("{} too many web seeds; ignoring the rest", self.tag);
                break;
            };
            let cancel = self.cancel.child_token();
            let handle = webseed::spawn(
                id,
                &url,
                Arc::clone(meta),
                config.clone(),
                self.web.events.sender(),
                cancel.clone(),
                self.web.tasks.set(),
            );
            self.web.handles.insert(id, (handle, cancel));
        }
    }

    pub(super) fn on_web_seed_event(&mut self, event: WebSeedEvent) {
        if let Some(core) = self.core() {
            core.web_seed_event(event, Instant::now());
        }
    }

    /// Hands a command to a web seed's task; a task that is gone is
    /// dropped by the core (its run goes back to the picker).
    pub(super) fn send_web_seed(&mut self, id: WebSeedId, command: WebSeedCommand) {
        if self.stopping {
            return;
        }
        let sent = self
            .web
            .handles
            .get(&id)
            .is_some_and(|(handle, _)| handle.send(command));
        if !sent {
            self.web_seed_gone(id);
        }
    }

    /// Stops a web seed's task for good (the core dropped it).
    pub(super) fn stop_web_seed(&mut self, id: WebSeedId) {
        if let Some((_, cancel)) = self.web.handles.remove(&id) {
            cancel.cancel();
        }
    }

    /// A web seed's task ended. Tasks end only when cancelled, so outside
    /// shutdown this is a failure: every web seed whose task is gone is
    /// dropped.
    pub(super) fn on_web_seed_task_ended(&mut self, ended: Result<(), JoinError>) {
        if let Err(e) = ended {
            if !e.is_cancelled() {
                log::error!("{} a web seed task failed: {e}", self.tag);
            }
        }
        let gone: Vec<(WebSeedId, Arc<str>)> = (self.web.handles.values())
            .filter(|(handle, _)| handle.is_closed())
            .map(|(handle, _)| (handle.id, Arc::clone(&handle.url)))
            .collect();
        for (id, url) in gone {
            log::debug!("{} the task of web seed {url} ended", self.tag);
            self.web_seed_gone(id);
        }
    }

    fn web_seed_gone(&mut self, id: WebSeedId) {
        self.stop_web_seed(id);
        if let Some(core) = self.core() {
            core.drop_web_seed(id, "its task ended".into(), Instant::now());
        }
    }
}

/// The usable web seed URLs of a torrent: the metainfo's `url-list`, then
/// the torrent's own, each URL once (compared parsed, so `HTTP://Host/f` is
/// `http://host/f`), in order.
fn web_seed_urls(listed: &[String], extra: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    listed
        .iter()
        .chain(extra)
        .filter(|url| match check_web_seed_url(url) {
            Ok(parsed) => seen.insert(parsed.to_string()),
            Err(e) => {
                log::debug!("ignoring web seed: {e}");
                false
            }
        })
        .map(|url| url.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_seeds_are_listed_then_given_each_once() {
        let listed = ["http://a/f".to_owned(), "http://b/".to_owned()];
        let extra = [
            "HTTP://A/f".to_owned(),
            " http://c/d/ ".to_owned(),
            "/relative".to_owned(),
            "http://b/".to_owned(),
        ];
        assert_eq!(
            web_seed_urls(&listed, &extra),
            ["http://a/f", "http://b/", "http://c/d/"]
        );
        assert!(web_seed_urls(&[], &[]).is_empty());
    }
}
