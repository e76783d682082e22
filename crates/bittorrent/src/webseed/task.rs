//! One web seed's task: fetches runs of pieces over HTTP range requests.
//!
//! The loop waits for a [`WebSeedCommand::Fetch`], turns the run into range
//! requests ([`ranges::parts`]), sends them one after the other over the
//! shared keep-alive client, checks each answer's head
//! ([`answer::check_head`]), streams its body into one piece buffer at a
//! time ([`answer::Assembler`]) and sends each whole piece with
//! `send().await`, so a torrent that does not keep up slows the download
//! rather than growing a queue. Then it reports the run's end.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use log::{debug, warn};
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metainfo::MetaInfo;
use crate::ratelimit::Pause;
use crate::store::Layout;
use crate::webseed::answer::{check_head, Asked, Assembler, SpeedCheck};
use crate::webseed::ranges::{self, Part};
use crate::webseed::urls::FilePaths;
use crate::webseed::{WebSeedCommand, WebSeedConfig, WebSeedError, WebSeedEvent, WebSeedId};

/// Why a run stopped early.
enum Stop {
    /// The server failed; reported in `RunEnded`.
    Failed(WebSeedError),
    /// The torrent is gone (its event channel closed): the task ends.
    Gone,
}

impl From<WebSeedError> for Stop {
    fn from(error: WebSeedError) -> Self {
        Stop::Failed(error)
    }
}

/// What the task owns.
pub(crate) struct Task {
    id: WebSeedId,
    url: Arc<str>,
    meta: Arc<MetaInfo>,
    config: WebSeedConfig,
    events: mpsc::Sender<WebSeedEvent>,
}

/// What a run needs, built when the first run starts.
struct Geometry {
    layout: Layout,
    paths: FilePaths,
}

impl Task {
    pub(crate) fn new(
        id: WebSeedId,
        url: Arc<str>,
        meta: Arc<MetaInfo>,
        config: WebSeedConfig,
        events: mpsc::Sender<WebSeedEvent>,
    ) -> Self {
        Self {
            id,
            url,
            meta,
            config,
            events,
        }
    }

    /// The task's loop: one run per command, until `cancel` fires, the
    /// handle is dropped or the torrent is gone.
    pub(crate) async fn run(
        self,
        mut commands: mpsc::Receiver<WebSeedCommand>,
        cancel: CancellationToken,
    ) {
        let mut geometry = None;
        loop {
            let command = tokio::select! {
                _ = cancel.cancelled() => return,
                command = commands.recv() => match command {
                    Some(command) => command,
                    None => return,
                },
            };
            let WebSeedCommand::Fetch { pieces } = command;
            let geometry = geometry.get_or_insert_with(|| Geometry {
                layout: Layout::from_meta_info(&self.meta),
                paths: FilePaths::new(&self.meta),
            });
            let run = self.fetch(geometry, pieces.clone());
            tokio::pin!(run);
            let (next, result) = loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    command = commands.recv() => match command {
                        Some(command) => warn!(
                            "web seed {}: {command:?} while busy, ignored",
                            self.url
                        ),
                        None => return,
                    },
                    result = &mut run => break result,
                }
            };
            let outcome = match result {
                Ok(()) => Ok(()),
                Err(Stop::Failed(error)) => Err(error),
                Err(Stop::Gone) => return,
            };
            let ended = WebSeedEvent::RunEnded {
                seed: self.id,
                undelivered: next.max(pieces.start).min(pieces.end)..pieces.end,
                outcome,
            };
            if self.events.send(ended).await.is_err() {
                return;
            }
        }
    }

    /// Fetches the run `pieces`; returns the first piece not delivered and
    /// why the run stopped, if it did.
    async fn fetch(&self, geometry: &Geometry, pieces: Range<u32>) -> (u32, Result<(), Stop>) {
        let mut assembler = Assembler::new(pieces.clone());
        let Some(parts) = ranges::parts(&geometry.layout, pieces.clone()) else {
            warn!(
                "web seed {}: run {pieces:?} is not within the torrent's {} pieces",
                self.url,
                geometry.layout.piece_count()
            );
            let error = WebSeedError::BadAnswer(format!("run {pieces:?} outside the torrent"));
            return (pieces.start, Err(Stop::Failed(error)));
        };
        debug!(
            "web seed {}: fetching pieces {pieces:?} in {} requests",
            self.url,
            parts
                .iter()
                .filter(|p| matches!(p, Part::Fetch { .. }))
                .count()
        );
        let mut speed = SpeedCheck::new(self.config.min_rate, self.config.slow_window, now());
        let mut result = Ok(());
        for part in parts {
            result = match part {
                Part::Zeros(count) => {
                    self.zeros(geometry, &mut assembler, &mut speed, count)
                        .await
                }
                Part::Fetch {
                    file,
                    offset,
                    length,
                } => {
                    let asked = Asked {
                        offset,
                        length,
                        file_length: geometry.layout.files[file].length,
                    };
                    let fetch = Fetch {
                        geometry,
                        assembler: &mut assembler,
                        speed: &mut speed,
                    };
                    self.request(fetch, file, asked).await
                }
            };
            if result.is_err() {
                break;
            }
        }
        (assembler.next(), result)
    }

    /// Adds `count` zeros (pad files) to the run, delivering the pieces they
    /// complete.
    async fn zeros(
        &self,
        geometry: &Geometry,
        assembler: &mut Assembler,
        speed: &mut SpeedCheck,
        mut count: u64,
    ) -> Result<(), Stop> {
        while count > 0 {
            if let Some((index, data)) = assembler.fill_zeros(&geometry.layout, &mut count) {
                self.deliver(speed, index, data).await?;
            }
        }
        Ok(())
    }

    /// One range request of the run: its bytes go into the run's pieces.
    async fn request(&self, fetch: Fetch<'_>, file: usize, asked: Asked) -> Result<(), Stop> {
        let Some(url) = fetch.geometry.paths.url(&self.url, file) else {
            let error = WebSeedError::BadAnswer(format!("no URL for file {file}"));
            warn!("web seed {}: {error}", self.url);
            return Err(error.into());
        };
        let result = self.stream(fetch, &url, asked).await;
        if let Err(Stop::Failed(error)) = &result {
            let range = format!("bytes {}-{}", asked.offset, asked.last());
            // The torrent logs the failure and what it decides (retry or
            // drop) once; this line adds which file and range.
            debug!("web seed {}: {url} ({range}): {error}", self.url);
        }
        result
    }

    /// Sends the range request for `asked` to `url` and checks the answer's
    /// head, then reads its body into the run.
    async fn stream(&self, fetch: Fetch<'_>, url: &str, asked: Asked) -> Result<(), Stop> {
        debug!(
            "web seed {}: GET {url} bytes={}-{}",
            self.url,
            asked.offset,
            asked.last()
        );
        let request = self
            .config
            .client
            .get(url)
            .header(RANGE, format!("bytes={}-{}", asked.offset, asked.last()))
            .send();
        let response = within(self.config.slow_window, "no answer", request).await??;
        let content_range = response.headers().get(CONTENT_RANGE).map(|v| v.as_bytes());
        check_head(
            response.status().as_u16(),
            content_range,
            response.content_length(),
            asked,
        )?;
        self.body(fetch, response, asked).await
    }

    /// Streams the body of a checked answer into the run's pieces,
    /// delivering each piece it completes.
    async fn body(
        &self,
        fetch: Fetch<'_>,
        mut response: reqwest::Response,
        asked: Asked,
    ) -> Result<(), Stop> {
        let Fetch {
            geometry,
            assembler,
            speed,
        } = fetch;
        let window = self.config.slow_window;
        let mut left = asked.length;
        while left > 0 {
            let Some(chunk) = within(window, "no data", response.chunk()).await?? else {
                let error = WebSeedError::Connection(format!(
                    "answer ended after {} of {} bytes",
                    asked.length - left,
                    asked.length
                ));
                return Err(error.into());
            };
            if chunk.len() as u64 > left {
                return Err(too_long(asked).into());
            }
            speed.record(chunk.len(), now())?;
            self.throttle(speed, chunk.len()).await;
            left -= chunk.len() as u64;
            let mut data = &chunk[..];
            while !data.is_empty() {
                if let Some((index, piece)) = assembler.fill(&geometry.layout, &mut data) {
                    self.deliver(speed, index, piece).await?;
                }
            }
        }
        // Read the body's end: a longer body is a wrong answer, and a body
        // read to its end lets the connection be reused.
        if within(window, "no end of answer", response.chunk())
            .await??
            .is_some()
        {
            return Err(too_long(asked).into());
        }
        // The client gives the connection back to its pool from a task of
        // its own once the answer is read: let it run before the next
        // request, which would otherwise open a second connection.
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Charges a chunk of body to the download limits and waits out any
    /// debt before reading on (the server then sees TCP backpressure). The
    /// wait does not count against the server's speed.
    async fn throttle(&self, speed: &mut SpeedCheck, bytes: usize) {
        let limits = &self.config.limits;
        let started = now();
        let turn = limits.received(bytes as u64, started);
        if turn.is_none() {
            return;
        }
        let mut pause = Pause::default();
        pause.set(turn, started);
        while let Some(until) = pause.until(now(), |at| limits.receive_ready_at(at)) {
            tokio::time::sleep_until(until.into()).await;
        }
        speed.exclude(now().saturating_duration_since(started));
    }

    /// Sends a whole piece to the torrent, waiting for room; the wait does
    /// not count against the server's speed.
    async fn deliver(&self, speed: &mut SpeedCheck, index: u32, data: Bytes) -> Result<(), Stop> {
        let piece = WebSeedEvent::Piece {
            seed: self.id,
            index,
            data,
        };
        let started = now();
        let sent = self.events.send(piece).await;
        speed.exclude(now().saturating_duration_since(started));
        sent.map_err(|_| Stop::Gone)
    }
}

/// The run's state a request writes to.
struct Fetch<'a> {
    geometry: &'a Geometry,
    assembler: &'a mut Assembler,
    speed: &'a mut SpeedCheck,
}

fn too_long(asked: Asked) -> WebSeedError {
    WebSeedError::BadAnswer(format!("body longer than the {} bytes asked", asked.length))
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// `future` (a reqwest call), given at most `window`: a timeout is
/// [`WebSeedError::TooSlow`], a reqwest error is mapped by [`http_error`].
async fn within<T>(
    window: Duration,
    what: &str,
    future: impl std::future::Future<Output = Result<T, reqwest::Error>>,
) -> Result<Result<T, WebSeedError>, WebSeedError> {
    match tokio::time::timeout(window, future).await {
        Ok(result) => Ok(result.map_err(http_error)),
        Err(_) => Err(WebSeedError::TooSlow(format!(
            "{what} for {:.1} s",
            window.as_secs_f64()
        ))),
    }
}

/// A reqwest error as a web seed error, with its cause (reqwest's own
/// message is only "error sending request").
fn http_error(error: reqwest::Error) -> WebSeedError {
    if error.is_redirect() {
        return WebSeedError::Redirects;
    }
    if error.is_timeout() {
        return WebSeedError::TooSlow(error.to_string());
    }
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    WebSeedError::Connection(message)
}

#[cfg(test)]
mod tests;
