//! Web API authentication as qBittorrent 5.0 does it: passwords stored as
//! PBKDF2-HMAC-SHA512 hashes in qBittorrent's format, SID sessions with an
//! idle timeout, bans after repeated failed logins, the CSRF check on
//! Origin/Referer against Host, and the loopback bypass. Pure: the caller
//! passes `now`. Passwords are held in [`Secret`], which never prints.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use ring::pbkdf2::{self, PBKDF2_HMAC_SHA512};
use subtle::ConstantTimeEq;

/// PBKDF2 rounds (qBittorrent's).
const ITERATIONS: u32 = 100_000;
/// Salt length, bytes.
const SALT_LEN: usize = 16;
/// Derived key length, bytes.
const KEY_LEN: usize = 64;
/// Length of a session id.
pub const SID_LEN: usize = 32;

/// A password or other secret: its `Debug` and `Display` print
/// `[redacted]`, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, for hashing or printing once on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A stored password hash that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a qBittorrent password hash (@ByteArray(SALT:KEY), base64, 64-byte key)")]
pub struct BadHash;

/// A password hash in qBittorrent's format: base64 salt, `:`, base64
/// PBKDF2-HMAC-SHA512 key (100 000 rounds, 16-byte salt, 64-byte key),
/// written in its config as `@ByteArray(SALT:KEY)`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    salt: Vec<u8>,
    key: [u8; KEY_LEN],
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// PBKDF2-HMAC-SHA512 rounds, as ring takes them.
const ROUNDS: NonZeroU32 = match NonZeroU32::new(ITERATIONS) {
    Some(n) => n,
    None => panic!("ITERATIONS is not 0"),
};

/// PBKDF2-HMAC-SHA512 of `password` with `salt`.
fn derive(password: &str, salt: &[u8]) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::derive(
        PBKDF2_HMAC_SHA512,
        ROUNDS,
        salt,
        password.as_bytes(),
        &mut key,
    );
    key
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn generate(password: &Secret) -> Self {
        let salt: [u8; SALT_LEN] = rand::thread_rng().r#gen();
        Self {
            key: derive(password.expose(), &salt),
            salt: salt.to_vec(),
        }
    }

    /// Reads `SALT:KEY` or `@ByteArray(SALT:KEY)` (as qBittorrent's config
    /// holds it).
    ///
    /// # Errors
    /// [`BadHash`] when the text is not of that form.
    pub fn parse(text: &str) -> Result<Self, BadHash> {
        let text = text.trim();
        let inner = text
            .strip_prefix("@ByteArray(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(text);
        let (salt, key) = inner.split_once(':').ok_or(BadHash)?;
        let salt = BASE64.decode(salt).map_err(|_| BadHash)?;
        let key = BASE64.decode(key).map_err(|_| BadHash)?;
        let key: [u8; KEY_LEN] = key.try_into().map_err(|_| BadHash)?;
        if salt.is_empty() {
            return Err(BadHash);
        }
        Ok(Self { salt, key })
    }

    /// The `@ByteArray(SALT:KEY)` form qBittorrent's config holds.
    pub fn to_config_string(&self) -> String {
        format!(
            "@ByteArray({}:{})",
            BASE64.encode(&self.salt),
            BASE64.encode(self.key)
        )
    }

    /// Whether `password` matches (ring compares in constant time).
    pub fn verify(&self, password: &str) -> bool {
        pbkdf2::verify(
            PBKDF2_HMAC_SHA512,
            ROUNDS,
            &self.salt,
            password.as_bytes(),
            &self.key,
        )
        .is_ok()
    }
}

/// The configured credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password's hash.
    pub password: PasswordHash,
}

impl Credentials {
    /// Whether a login matches. Both parts are always checked (the password
    /// hash even when the name is wrong) and compared in constant time, so
    /// the answer's timing tells nothing.
    pub fn check(&self, username: &str, password: &str) -> bool {
        let name_ok: bool = username.as_bytes().ct_eq(self.username.as_bytes()).into();
        let password_ok = self.password.verify(password);
        name_ok & password_ok
    }
}

/// A random temporary password (qBittorrent 4.6+ prints one when none is
/// set): 12 letters and digits.
pub fn temporary_password() -> Secret {
    Secret(random_token(12))
}

/// `len` random letters and digits from the thread's CSPRNG.
fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Whether a client needs no login: `bypass_local_auth` is on and it
/// connects from loopback (127.0.0.0/8, ::1, or ::ffff:127.x).
pub fn bypasses_auth(bypass_local_auth: bool, client: IpAddr) -> bool {
    bypass_local_auth && client.to_canonical().is_loopback()
}

/// The logged-in sessions, by SID. Invariant: at most `max` sessions; an
/// expired one is never accepted (it is removed when seen).
#[derive(Debug)]
pub struct Sessions {
    /// SID -> last use.
    last_seen: HashMap<String, Instant>,
    timeout: Duration,
    max: usize,
}

impl Sessions {
    /// A table whose sessions end after `timeout` idle, holding at most
    /// `max` (the least recently used goes first).
    pub fn new(timeout: Duration, max: usize) -> Self {
        Self {
            last_seen: HashMap::new(),
            timeout,
            max: max.max(1),
        }
    }

    /// Changes the idle timeout (`web_ui_session_timeout`).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Starts a session and returns its new random SID (32 letters and
    /// digits).
    pub fn start(&mut self, now: Instant) -> String {
        self.remove_expired(now);
        while self.last_seen.len() >= self.max {
            let oldest = self
                .last_seen
                .iter()
                .min_by_key(|(_, seen)| **seen)
                .map(|(sid, _)| sid.clone());
            match oldest {
                Some(sid) => self.last_seen.remove(&sid),
                None => break,
            };
        }
        let sid = loop {
            let sid = random_token(SID_LEN);
            if !self.last_seen.contains_key(&sid) {
                break sid;
            }
        };
        self.last_seen.insert(sid.clone(), now);
        sid
    }

    /// Whether `sid` is a live session; if so its idle time restarts.
    pub fn touch(&mut self, sid: &str, now: Instant) -> bool {
        let Some(seen) = self.last_seen.get_mut(sid) else {
            return false;
        };
        if now.saturating_duration_since(*seen) > self.timeout {
            self.last_seen.remove(sid);
            return false;
        }
        *seen = now;
        true
    }

    /// Ends a session (logout).
    pub fn end(&mut self, sid: &str) {
        self.last_seen.remove(sid);
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    fn remove_expired(&mut self, now: Instant) {
        let timeout = self.timeout;
        self.last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) <= timeout);
    }
}

/// Failed logins of one address.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

/// Login bans: after `max_failures` failed logins from one address it is
/// banned for `ban` (qBittorrent: 5 and 3600 s); `max_failures` 0 never
/// bans. Invariant: at most `max_entries` addresses are remembered (the
/// oldest unbanned ones are forgotten first).
#[derive(Debug)]
pub struct LoginBans {
    failures: HashMap<IpAddr, Failures>,
    max_failures: u32,
    ban: Duration,
    max_entries: usize,
}

impl LoginBans {
    /// Bans after `max_failures` for `ban`, remembering up to `max_entries`
    /// addresses.
    pub fn new(max_failures: u32, ban: Duration, max_entries: usize) -> Self {
        Self {
            failures: HashMap::new(),
            max_failures,
            ban,
            max_entries: max_entries.max(1),
        }
    }

    /// Changes the settings (`web_ui_max_auth_fail_count`,
    /// `web_ui_ban_duration`); running bans keep their end.
    pub fn configure(&mut self, max_failures: u32, ban: Duration) {
        self.max_failures = max_failures;
        self.ban = ban;
    }

    /// Whether `ip` is banned now (an ended ban is forgotten).
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        match self.failures.get(&ip).and_then(|f| f.banned_until) {
            Some(until) if now < until => true,
            Some(_) => {
                self.failures.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failed login; returns whether `ip` is now banned.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let ip = ip.to_canonical();
        if !self.failures.contains_key(&ip) && self.failures.len() >= self.max_entries {
            self.forget_one();
        }
        let entry = self.failures.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            banned_until: None,
        });
        entry.count += 1;
        entry.last = now;
        if entry.count >= self.max_failures {
            entry.banned_until = Some(now + self.ban);
        }
        entry.banned_until.is_some()
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// A successful login clears the address's failures.
    pub fn record_success(&mut self, ip: IpAddr) {
        self.failures.remove(&ip.to_canonical());
    }

    /// Forgets the oldest unbanned address, else the oldest.
    fn forget_one(&mut self) {
        let victim = self
            .failures
            .iter()
            .min_by_key(|(_, f)| (f.banned_until.is_some(), f.last))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.failures.remove(&ip);
        }
    }
}

/// The headers the CSRF check reads (each `None` when absent or empty).
#[derive(Clone, Copy, Debug, Default)]
pub struct OriginHeaders<'a> {
    /// `Host`.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Host` (a reverse proxy's; preferred over `Host`).
    pub x_forwarded_host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
}

/// A header's value unless it is blank.
fn nonempty(header: Option<&str>) -> Option<&str> {
    header.filter(|v| !v.trim().is_empty())
}

/// Host and explicit port of a URL, or of a Host header (taken as
/// `http://HOST`).
fn host_port(text: &str) -> Option<(String, Option<u16>)> {
    let url = if text.contains("://") {
        url::Url::parse(text).ok()?
    } else {
        url::Url::parse(&format!("http://{text}")).ok()?
    };
    Some((url.host_str()?.to_owned(), url.port()))
}

/// qBittorrent's CSRF check: a request is cross-site when its `Origin`
/// (else its `Referer`) names another host or port than the one it was sent
/// to (`X-Forwarded-Host`, else `Host`). A request with neither header
/// passes (API clients send none); scheme is not compared.
pub fn is_cross_site(headers: &OriginHeaders<'_>) -> bool {
    let Some(source) = nonempty(headers.origin).or(nonempty(headers.referer)) else {
        return false;
    };
    let target = nonempty(headers.x_forwarded_host)
        .or(nonempty(headers.host))
        .and_then(host_port);
    match (target, host_port(source)) {
        (Some(target), Some(source)) => target != source,
        _ => true,
    }
}

#[cfg(test)]
mod tests;
