//! The Web API server: axum routes (`/api/v2/...`, the page, `/metrics`,
//! `/stream/...`), body limits, the connection cap, graceful shutdown.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::daemon::api::app;
use crate::daemon::listener::{CappedListener, PeerAddr, MAX_CONNECTIONS};
use crate::daemon::service::Daemon;

/// The largest body of an ordinary request (forms of hashes and settings).
pub const MAX_FORM_BODY: usize = 1024 * 1024;
/// The largest `torrents/add` body: qBittorrent's limit on a .torrent file
/// (100 MiB), for all the files of one request together.
pub const MAX_ADD_BODY: usize = 100 * 1024 * 1024;

/// A read endpoint: GET or POST, as qBittorrent takes both.
macro_rules! read {
    ($handler:expr) => {
        get($handler).post($handler)
    };
}

/// Every route.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let api = Router::new()
        .route("/app/version", read!(app::version))
        .route("/app/webapiVersion", read!(app::webapi_version))
        .route("/app/buildInfo", read!(app::build_info))
        .route("/app/preferences", read!(app::preferences))
        .route("/app/setPreferences", post(app::set_preferences))
        .route("/app/shutdown", post(app::shutdown));
    Router::new()
        .nest("/api/v2", api)
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .with_state(daemon)
}

/// Serves the API on `listener` until the daemon stops.
pub async fn serve(daemon: Arc<Daemon>, listener: TcpListener) {
    let stop = daemon.stop.clone();
    let app = router(daemon).into_make_service_with_connect_info::<PeerAddr>();
    let listener = CappedListener::new(listener, MAX_CONNECTIONS);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        log::error!("Web API server failed: {e}");
    }
}
