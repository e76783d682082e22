//! `/api/v2/app/*`: version, build info, preferences, shutdown.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Map, Value};

use crate::daemon::error::ApiError;
use crate::daemon::params::Params;
use crate::daemon::service::Daemon;

/// qBittorrent's version we answer as (DAEMON-SPEC).
pub const APP_VERSION: &str = "v5.0.0";
/// The Web API version.
pub const WEBAPI_VERSION: &str = "2.11.2";

/// `app/version`.
pub async fn version() -> &'static str {
    APP_VERSION
}

/// `app/webapiVersion`.
pub async fn webapi_version() -> &'static str {
    WEBAPI_VERSION
}

/// `app/buildInfo`.
pub async fn build_info() -> Json<Value> {
    Json(json!({
        "qt": "",
        "libtorrent": concat!("bittorrent ", env!("CARGO_PKG_VERSION")),
        "boost": "",
        "openssl": "",
        "zlib": "",
        "bitness": usize::BITS,
        "platform": std::env::consts::OS,
    }))
}

/// `app/preferences`: the supported keys (rates in bytes/s, times in minutes).
pub async fn preferences(State(daemon): State<Arc<Daemon>>) -> Result<Json<Value>, ApiError> {
    let (prefs, username) =
        daemon.read(|m| (m.config.preferences.clone(), m.config.username.clone()));
    let mut value = serde_json::to_value(&prefs).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("web_ui_username".into(), username.into());
        map.insert("web_ui_port".into(), daemon.options.api_port.into());
        map.insert("temp_path_enabled".into(), false.into());
        map.insert("scheduler_enabled".into(), false.into());
        map.insert("max_inactive_seeding_time_enabled".into(), false.into());
        map.insert("max_inactive_seeding_time".into(), (-1).into());
    }
    Ok(Json(value))
}

/// `app/setPreferences` (`json`: an object of the keys to change). Listen
/// port, encryption, DHT and PEX take effect at the next start.
pub async fn set_preferences(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let json: Map<String, Value> = serde_json::from_str(params.required("json")?)
        .map_err(|e| ApiError::bad(format!("json: {e}")))?;
    // Hashed once h-qbt's password module is merged.
    let password_hash: Option<String> = None;
    let changes = daemon.change(|m| {
        let changes = m.config.preferences.apply(&json)?;
        if let Some(name) = &changes.username {
            m.config.username.clone_from(name);
        }
        if let Some(hash) = &password_hash {
            m.config.password_hash.clone_from(hash);
        }
        Ok::<_, String>(changes)
    });
    let changes = changes.map_err(ApiError::BadRequest)?;
    daemon.apply_preferences(&changes).await?;
    if changes.restart {
        log::info!("listen port, encryption, DHT or PEX changed: in effect at the next start");
    }
    Ok(().into_response())
}

/// `app/shutdown`: a graceful stop (state saved, trackers told `stopped`).
pub async fn shutdown(State(daemon): State<Arc<Daemon>>) -> Response {
    log::info!("shutdown asked over the Web API");
    daemon.stop.cancel();
    ().into_response()
}
