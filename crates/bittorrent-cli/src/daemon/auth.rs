//! Login and the check in front of every protected route, over the pure
//! parts in `qbt::auth`: credentials, SID sessions, login bans, the CSRF
//! check, the loopback bypass.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, REFERER, SET_COOKIE};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::daemon::error::ApiError;
use crate::daemon::listener::PeerAddr;
use crate::daemon::params::Params;
use crate::daemon::qbt::auth::{
    bypasses_auth, is_cross_site, Credentials, LoginBans, OriginHeaders, PasswordHash, Secret,
    Sessions,
};
use crate::daemon::qbt::prefs::Preferences;
use crate::daemon::service::Daemon;

/// Most live sessions (the oldest is dropped past it).
const MAX_SESSIONS: usize = 1024;
/// Most addresses whose failed logins are counted.
const MAX_BAN_ENTRIES: usize = 4096;

/// The Web API's login state.
pub struct Auth {
    credentials: Mutex<Credentials>,
    sessions: Mutex<Sessions>,
    bans: Mutex<LoginBans>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Auth {
    /// Login state for `credentials`, with the preferences' timeouts.
    pub fn new(credentials: Credentials, prefs: &Preferences) -> Self {
        Self {
            credentials: Mutex::new(credentials),
            sessions: Mutex::new(Sessions::new(
                Duration::from_secs(prefs.web_ui_session_timeout),
                MAX_SESSIONS,
            )),
            bans: Mutex::new(LoginBans::new(
                prefs.web_ui_max_auth_fail_count,
                Duration::from_secs(prefs.web_ui_ban_duration),
                MAX_BAN_ENTRIES,
            )),
        }
    }

    /// Takes new preferences (user name, timeouts) and, if given, a new password.
    pub fn update(&self, prefs: &Preferences, password: Option<PasswordHash>) {
        let mut credentials = lock(&self.credentials);
        credentials.username.clone_from(&prefs.web_ui_username);
        if let Some(password) = password {
            credentials.password = password;
        }
        lock(&self.sessions).set_timeout(Duration::from_secs(prefs.web_ui_session_timeout));
        lock(&self.bans).configure(
            prefs.web_ui_max_auth_fail_count,
            Duration::from_secs(prefs.web_ui_ban_duration),
        );
    }
}

/// The credentials at start: `--web-password` (hashed, to persist), else the
/// stored hash, else on a loopback API address a temporary password printed
/// once on stderr. Returns them and the hash to store, if new.
///
/// # Errors
/// No password on a non-loopback address, or a stored hash that is not one.
pub fn startup_credentials(
    username: &str,
    given: Option<&str>,
    stored: &str,
    api: SocketAddr,
) -> Result<(Credentials, Option<String>), String> {
    let credentials = |password| Credentials {
        username: username.to_owned(),
        password,
    };
    if let Some(password) = given {
        if password.is_empty() {
            return Err("--web-password is empty".into());
        }
        let hash = PasswordHash::generate(&Secret::new(password.to_owned()));
        let text = hash.to_config_string();
        return Ok((credentials(hash), Some(text)));
    }
    if !stored.is_empty() {
        let hash = PasswordHash::parse(stored).map_err(|e| format!("config.json: {e}"))?;
        return Ok((credentials(hash), None));
    }
    if !api.ip().to_canonical().is_loopback() {
        return Err(format!(
            "no Web API password is set and {api} is not a loopback address: \
             give one with --web-password"
        ));
    }
    let password = crate::daemon::qbt::auth::temporary_password();
    eprintln!(
        "The Web API user name is: {username}. A temporary password for this run: {}",
        password.expose()
    );
    Ok((credentials(PasswordHash::generate(&password)), None))
}

/// The client's `SID` cookie.
fn sid(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == "SID")
        .map(|(_, value)| value)
}

/// Whether the request comes from another site (qBittorrent's CSRF check).
fn cross_site(headers: &HeaderMap) -> bool {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    is_cross_site(&OriginHeaders {
        host: get(HOST.as_str()),
        x_forwarded_host: get("x-forwarded-host"),
        origin: get(ORIGIN.as_str()),
        referer: get(REFERER.as_str()),
    })
}

/// In front of every protected route: 401 for a cross-site request, 403
/// without a live session (unless the loopback bypass applies).
pub async fn require_login(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    req: Request,
    next: Next,
) -> Response {
    if cross_site(req.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    let bypass = daemon.read(|m| m.config.preferences.bypass_local_auth);
    let allowed = bypasses_auth(bypass, peer.ip())
        || sid(req.headers())
            .is_some_and(|sid| lock(&daemon.auth.sessions).touch(sid, Instant::now()));
    if !allowed {
        return ApiError::Forbidden.into_response();
    }
    next.run(req).await
}

/// `auth/login` (`username`, `password`): `Ok.` and a `SID` cookie, or
/// `Fails.`; 403 for an address banned after too many failures.
pub async fn login(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    if cross_site(&headers) {
        return Err(ApiError::Unauthorized);
    }
    let ip = peer.ip().to_canonical();
    let now = Instant::now();
    if lock(&daemon.auth.bans).is_banned(ip, now) {
        return Err(ApiError::Banned);
    }
    let username = params.get("username").unwrap_or("").to_owned();
    let password = params.get("password").unwrap_or("").to_owned();
    let credentials = lock(&daemon.auth.credentials).clone();
    // PBKDF2 is slow on purpose: off the async workers.
    let ok = tokio::task::spawn_blocking(move || credentials.check(&username, &password))
        .await
        .unwrap_or(false);
    if !ok {
        if lock(&daemon.auth.bans).record_failure(ip, now) {
            log::warn!("Web API: {ip} banned after failed logins");
        }
        return Ok("Fails.".into_response());
    }
    lock(&daemon.auth.bans).record_success(ip);
    let sid = lock(&daemon.auth.sessions).start(now);
    let cookie = format!("SID={sid}; HttpOnly; SameSite=Strict; path=/");
    Ok(([(SET_COOKIE, cookie)], "Ok.").into_response())
}

/// `auth/logout`.
pub async fn logout(State(daemon): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    if let Some(sid) = sid(&headers) {
        lock(&daemon.auth.sessions).end(sid);
    }
    ().into_response()
}
