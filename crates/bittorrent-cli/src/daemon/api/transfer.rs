//! `transfer/*` besides `info`: the alternative-speed toggle and the global
//! limits of the mode in force, and the page's static files.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

use crate::daemon::error::ApiError;
use crate::daemon::params::Params;
use crate::daemon::prefs::{rate_limits, PrefChanges};
use crate::daemon::service::Daemon;

/// `transfer/speedLimitsMode`: `1` when the alternative limits are in force.
pub async fn speed_limits_mode(State(daemon): State<Arc<Daemon>>) -> &'static str {
    if daemon.read(|m| m.config.alt_speed_enabled) {
        "1"
    } else {
        "0"
    }
}

/// Tells the session the rate limits in force now.
async fn apply_rates(daemon: &Daemon) -> Result<(), ApiError> {
    let changes = PrefChanges {
        rates: true,
        ..PrefChanges::default()
    };
    daemon.apply_preferences(&changes).await
}

/// `transfer/toggleSpeedLimitsMode`.
pub async fn toggle_speed_limits_mode(State(daemon): State<Arc<Daemon>>) -> Result<(), ApiError> {
    daemon.change(|m| m.config.alt_speed_enabled = !m.config.alt_speed_enabled);
    apply_rates(&daemon).await
}

/// `transfer/setSpeedLimitsMode` (`mode`: 0 or 1).
pub async fn set_speed_limits_mode(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let alt = match params.required("mode")? {
        "0" => false,
        "1" => true,
        other => return Err(ApiError::bad(format!("mode: not 0 or 1: {other}"))),
    };
    daemon.change(|m| m.config.alt_speed_enabled = alt);
    apply_rates(&daemon).await
}

/// Sets the download (or upload) limit of the mode in force.
async fn set_limit(daemon: &Daemon, params: &Params, download: bool) -> Result<(), ApiError> {
    let limit: i64 = params
        .number("limit")?
        .ok_or_else(|| ApiError::bad("Missing required parameter: limit"))?;
    let limit = u64::try_from(limit).unwrap_or(0);
    daemon.change(|m| {
        let p = &mut m.config.preferences;
        let slot = match (m.config.alt_speed_enabled, download) {
            (false, true) => &mut p.dl_limit,
            (false, false) => &mut p.up_limit,
            (true, true) => &mut p.alt_dl_limit,
            (true, false) => &mut p.alt_up_limit,
        };
        *slot = limit;
    });
    apply_rates(daemon).await
}

/// `transfer/setDownloadLimit` (`limit`, bytes/s; 0 none).
pub async fn set_download_limit(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    set_limit(&daemon, &params, true).await
}

/// `transfer/setUploadLimit`.
pub async fn set_upload_limit(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    set_limit(&daemon, &params, false).await
}

/// `transfer/downloadLimit`: bytes/s of the mode in force (0 none).
pub async fn download_limit(State(daemon): State<Arc<Daemon>>) -> String {
    let limits = daemon.read(|m| rate_limits(&m.config.preferences, m.config.alt_speed_enabled));
    limits.download.unwrap_or(0).to_string()
}

/// `transfer/uploadLimit`.
pub async fn upload_limit(State(daemon): State<Arc<Daemon>>) -> String {
    let limits = daemon.read(|m| rate_limits(&m.config.preferences, m.config.alt_speed_enabled));
    limits.upload.unwrap_or(0).to_string()
}

/// `/`, `/index.html`, `/app.js`, `/style.css`: the built-in page.
pub async fn page(uri: Uri) -> Response {
    match crate::daemon::page::asset(uri.path()) {
        Some((body, content_type)) => ([(CONTENT_TYPE, content_type)], body).into_response(),
        None => ApiError::NotFound("Not found".into()).into_response(),
    }
}
