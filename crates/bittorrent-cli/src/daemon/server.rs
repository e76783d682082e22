//! The Web API server: axum routes (`/api/v2/...`, the page, `/metrics`,
//! `/stream/...`), body limits, the connection cap, graceful shutdown.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::daemon::api::{actions, add, app, categories, stream, transfer, views};
use crate::daemon::auth;
use crate::daemon::error::ApiError;
use crate::daemon::listener::{CappedListener, PeerAddr, IDLE_TIMEOUT, MAX_CONNECTIONS};
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

/// Every route behind the login check.
fn protected(daemon: &Arc<Daemon>) -> Router<Arc<Daemon>> {
    let api = Router::new()
        .route("/app/version", read!(app::version))
        .route("/app/webapiVersion", read!(app::webapi_version))
        .route("/app/buildInfo", read!(app::build_info))
        .route("/app/preferences", read!(app::preferences))
        .route("/app/setPreferences", post(app::set_preferences))
        .route("/app/shutdown", post(app::shutdown))
        .route("/transfer/info", read!(views::transfer_info))
        .route(
            "/transfer/speedLimitsMode",
            read!(transfer::speed_limits_mode),
        )
        .route(
            "/transfer/toggleSpeedLimitsMode",
            post(transfer::toggle_speed_limits_mode),
        )
        .route(
            "/transfer/setSpeedLimitsMode",
            post(transfer::set_speed_limits_mode),
        )
        .route("/transfer/downloadLimit", read!(transfer::download_limit))
        .route("/transfer/uploadLimit", read!(transfer::upload_limit))
        .route(
            "/transfer/setDownloadLimit",
            post(transfer::set_download_limit),
        )
        .route("/transfer/setUploadLimit", post(transfer::set_upload_limit))
        .route("/sync/maindata", read!(views::maindata))
        .route("/torrents/info", read!(views::info))
        .route("/torrents/properties", read!(views::properties))
        .route("/torrents/files", read!(views::files))
        .route("/torrents/trackers", read!(views::trackers))
        .route("/torrents/pieceStates", read!(views::piece_states))
        .merge(torrent_actions());
    Router::new()
        .nest("/api/v2", api)
        .route("/metrics", get(views::metrics))
        .route(
            "/stream/{hash}/{index}",
            get(stream::stream).head(stream::stream),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(daemon),
            auth::require_login,
        ))
}

/// The `torrents/*` routes that change something.
fn torrent_actions() -> Router<Arc<Daemon>> {
    Router::new()
        .route(
            "/torrents/add",
            post(add::add).layer(DefaultBodyLimit::max(MAX_ADD_BODY)),
        )
        .route("/torrents/delete", post(actions::delete))
        .route("/torrents/stop", post(actions::stop))
        .route("/torrents/pause", post(actions::stop))
        .route("/torrents/start", post(actions::start))
        .route("/torrents/resume", post(actions::start))
        .route("/torrents/recheck", post(actions::recheck))
        .route("/torrents/reannounce", post(actions::reannounce))
        .route("/torrents/addPeers", post(actions::add_peers))
        .route("/torrents/setForceStart", post(actions::set_force_start))
        .route(
            "/torrents/setDownloadLimit",
            post(actions::set_download_limit),
        )
        .route("/torrents/setUploadLimit", post(actions::set_upload_limit))
        .route("/torrents/downloadLimit", read!(actions::download_limit))
        .route("/torrents/uploadLimit", read!(actions::upload_limit))
        .route("/torrents/setShareLimits", post(actions::set_share_limits))
        .route(
            "/torrents/toggleSequentialDownload",
            post(actions::toggle_sequential),
        )
        .route(
            "/torrents/toggleFirstLastPiecePrio",
            post(actions::toggle_first_last),
        )
        .route("/torrents/topPrio", post(actions::top_prio))
        .route("/torrents/bottomPrio", post(actions::bottom_prio))
        .route("/torrents/increasePrio", post(actions::increase_prio))
        .route("/torrents/decreasePrio", post(actions::decrease_prio))
        .route("/torrents/setLocation", post(actions::set_location))
        .route("/torrents/rename", post(actions::rename))
        .route("/torrents/filePrio", post(actions::file_prio))
        .route("/torrents/categories", read!(categories::categories))
        .route(
            "/torrents/createCategory",
            post(categories::create_category),
        )
        .route("/torrents/editCategory", post(categories::edit_category))
        .route(
            "/torrents/removeCategories",
            post(categories::remove_categories),
        )
        .route("/torrents/setCategory", post(categories::set_category))
        .route("/torrents/tags", read!(categories::tags))
        .route("/torrents/createTags", post(categories::create_tags))
        .route("/torrents/deleteTags", post(categories::delete_tags))
        .route("/torrents/addTags", post(categories::add_tags))
        .route("/torrents/removeTags", post(categories::remove_tags))
}

/// Every route.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let open = Router::new()
        .route("/api/v2/auth/login", post(auth::login))
        .route("/api/v2/auth/logout", post(auth::logout))
        .route("/", get(transfer::page))
        .route("/index.html", get(transfer::page))
        .route("/app.js", get(transfer::page))
        .route("/style.css", get(transfer::page));
    open.merge(protected(&daemon))
        .layer(middleware::from_fn_with_state(Arc::clone(&daemon), flush))
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .with_state(daemon)
}

/// Writes what a request changed before its answer goes out: an answered
/// change survives a kill right after it.
async fn flush(State(daemon): State<Arc<Daemon>>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if daemon.save(false).await.is_err() {
        return ApiError::Internal("cannot save the change".into()).into_response();
    }
    response
}

/// Serves the API on `listener` until the daemon stops.
pub async fn serve(daemon: Arc<Daemon>, listener: TcpListener) {
    let stop = daemon.stop.clone();
    let app = router(daemon).into_make_service_with_connect_info::<PeerAddr>();
    let listener = CappedListener::new(listener, MAX_CONNECTIONS, IDLE_TIMEOUT);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        log::error!("Web API server failed: {e}");
    }
}
