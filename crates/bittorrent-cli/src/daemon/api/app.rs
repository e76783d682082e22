//! `/api/v2/app/*`: version, build info, preferences, shutdown.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};

use crate::daemon::error::ApiError;
use crate::daemon::params::Params;
use crate::daemon::prefs::PrefChanges;
use crate::daemon::qbt::auth::PasswordHash;
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
    let prefs = daemon.read(|m| m.config.preferences.clone());
    let mut value = serde_json::to_value(&prefs).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("web_ui_port".into(), daemon.options.api_port.into());
    }
    Ok(Json(value))
}

/// `app/setPreferences` (`json`: an object of the keys to change). Listen
/// port, encryption, DHT and PEX take effect at the next start.
pub async fn set_preferences(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let json = params.required("json")?.to_owned();
    let applied = daemon.change(|m| {
        let before = m.config.preferences.clone();
        let applied = m.config.preferences.apply_json(&json)?;
        let changes =
            PrefChanges::between(&before, &m.config.preferences, m.config.alt_speed_enabled);
        Ok::<_, crate::daemon::qbt::prefs::PrefsError>((
            applied,
            changes,
            m.config.preferences.clone(),
        ))
    });
    let (applied, changes, prefs) = applied.map_err(|e| ApiError::bad(e.to_string()))?;
    let password = match applied.password {
        // PBKDF2 is slow on purpose: off the async workers.
        Some(secret) => Some(
            tokio::task::spawn_blocking(move || PasswordHash::generate(&secret))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(hash) = &password {
        let text = hash.to_config_string();
        daemon.change(|m| m.config.password_hash = text);
    }
    daemon.auth.update(&prefs, password);
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
