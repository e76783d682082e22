//! Tests of passwords, sessions, bans and the CSRF check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::daemon::qbt::auth::{
    bypasses_auth, is_cross_site, temporary_password, BadHash, Credentials, LoginBans,
    OriginHeaders, PasswordHash, Secret, Sessions, SID_LEN,
};

/// qBittorrent's well-known default hash of "adminadmin" (its config before
/// 4.6), so our hashes are checked against qBittorrent's own.
const QBT_ADMINADMIN: &str = "@ByteArray(ARQ77eY1NUZaQsuDHbIMCA==:0WMRkYTUWVT9wVvdDtHAjU9b3b7uB8NR1Gur2hmQCvCDpm39Q+PsJRJPaCU51dEiz+dTzh8qbPsL8WkFljQYFQ==)";

#[test]
fn verifies_a_hash_made_by_qbittorrent() {
    let hash = PasswordHash::parse(QBT_ADMINADMIN).unwrap();
    assert!(hash.verify("adminadmin"));
    assert!(!hash.verify("adminadmin "));
    assert!(!hash.verify(""));
    assert_eq!(hash.to_config_string(), QBT_ADMINADMIN);
    // The bare SALT:KEY form reads the same.
    let bare = &QBT_ADMINADMIN["@ByteArray(".len()..QBT_ADMINADMIN.len() - 1];
    assert_eq!(PasswordHash::parse(bare).unwrap(), hash);
}

#[test]
fn generated_hashes_round_trip_with_fresh_salts() {
    let secret = Secret::new("correct horse".to_owned());
    let a = PasswordHash::generate(&secret);
    let b = PasswordHash::generate(&secret);
    assert_ne!(a, b, "each hash has its own salt");
    let text = a.to_config_string();
    assert!(text.starts_with("@ByteArray(") && text.ends_with(')'));
    let (salt, key) = text[11..text.len() - 1].split_once(':').unwrap();
    assert_eq!(
        (salt.len(), key.len()),
        (24, 88),
        "16-byte salt, 64-byte key"
    );
    let read = PasswordHash::parse(&text).unwrap();
    assert!(read.verify("correct horse"));
    assert!(!read.verify("correct horsE"));
}

#[test]
fn malformed_hashes_are_refused() {
    for bad in [
        "",
        "@ByteArray()",
        "nocolon",
        "!!!:AAAA",
        "ARQ77eY1NUZaQsuDHbIMCA==:c2hvcnQ=",
        ":0WMRkYTUWVT9wVvdDtHAjU9b3b7uB8NR1Gur2hmQCvCDpm39Q+PsJRJPaCU51dEiz+dTzh8qbPsL8WkFljQYFQ==",
    ] {
        assert_eq!(PasswordHash::parse(bad), Err(BadHash), "{bad:?}");
    }
}

#[test]
fn credentials_need_both_name_and_password() {
    let creds = Credentials {
        username: "admin".to_owned(),
        password: PasswordHash::parse(QBT_ADMINADMIN).unwrap(),
    };
    assert!(creds.check("admin", "adminadmin"));
    assert!(!creds.check("Admin", "adminadmin"));
    assert!(!creds.check("admin", "wrong"));
}

#[test]
fn secrets_never_print() {
    let secret = temporary_password();
    assert_eq!(secret.expose().len(), 12);
    assert!(secret.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    let hash = PasswordHash::generate(&secret);
    assert_eq!(format!("{hash:?}"), "PasswordHash([redacted])");
}

#[test]
fn sessions_expire_after_idle_time_and_refresh_on_use() {
    let t0 = Instant::now();
    let mut sessions = Sessions::new(Duration::from_secs(3600), 10);
    let sid = sessions.start(t0);
    assert_eq!(sid.len(), SID_LEN);
    assert!(sid.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(sessions.touch(&sid, t0 + Duration::from_secs(3000)));
    // Used at 3000 s, so alive at 6000 s.
    assert!(sessions.touch(&sid, t0 + Duration::from_secs(6000)));
    assert!(!sessions.touch(&sid, t0 + Duration::from_secs(9601)));
    assert!(
        !sessions.touch(&sid, t0 + Duration::from_secs(9602)),
        "removed"
    );
    assert!(!sessions.touch("unknown", t0));
    let other = sessions.start(t0);
    sessions.end(&other);
    assert!(!sessions.touch(&other, t0));
}

#[test]
fn session_table_is_bounded_and_drops_the_least_recently_used() {
    let t0 = Instant::now();
    let mut sessions = Sessions::new(Duration::from_secs(3600), 3);
    let a = sessions.start(t0);
    let b = sessions.start(t0 + Duration::from_secs(1));
    let c = sessions.start(t0 + Duration::from_secs(2));
    assert!(sessions.touch(&a, t0 + Duration::from_secs(3)));
    let d = sessions.start(t0 + Duration::from_secs(4));
    assert_eq!(sessions.len(), 3);
    assert!(
        !sessions.touch(&b, t0 + Duration::from_secs(5)),
        "oldest dropped"
    );
    for sid in [&a, &c, &d] {
        assert!(sessions.touch(sid, t0 + Duration::from_secs(5)));
    }
}

#[test]
fn five_failures_ban_an_address_for_the_ban_time() {
    let t0 = Instant::now();
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut bans = LoginBans::new(5, Duration::from_secs(3600), 100);
    for i in 0..4 {
        assert!(!bans.record_failure(ip, t0 + Duration::from_secs(i)));
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(i)));
    }
    assert!(bans.record_failure(ip, t0 + Duration::from_secs(4)));
    assert!(bans.is_banned(ip, t0 + Duration::from_secs(5)));
    assert!(!bans.is_banned(other, t0 + Duration::from_secs(5)));
    assert!(bans.is_banned(ip, t0 + Duration::from_secs(3603)));
    assert!(!bans.is_banned(ip, t0 + Duration::from_secs(3604)));
    // The ban is over and forgotten: the count starts again.
    assert!(!bans.record_failure(ip, t0 + Duration::from_secs(3605)));
}

#[test]
fn a_success_clears_failures_and_zero_never_bans() {
    let t0 = Instant::now();
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut bans = LoginBans::new(2, Duration::from_secs(60), 100);
    bans.record_failure(ip, t0);
    bans.record_success(ip);
    assert!(!bans.record_failure(ip, t0));
    let mut never = LoginBans::new(0, Duration::from_secs(60), 100);
    for _ in 0..100 {
        assert!(!never.record_failure(ip, t0));
    }
    assert!(!never.is_banned(ip, t0));
}

#[test]
fn ban_table_is_bounded_and_forgets_unbanned_addresses_first() {
    let t0 = Instant::now();
    let mut bans = LoginBans::new(2, Duration::from_secs(60), 4);
    let banned = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));
    bans.record_failure(banned, t0);
    assert!(bans.record_failure(banned, t0));
    for i in 0..50u8 {
        let at = t0 + Duration::from_secs(u64::from(i) + 1);
        bans.record_failure(IpAddr::V4(Ipv4Addr::new(2, 0, 0, i)), at);
        assert!(bans.len() <= 4);
    }
    assert!(bans.is_banned(banned, t0 + Duration::from_secs(51)));
}

#[test]
fn ipv4_mapped_addresses_count_as_their_ipv4() {
    let t0 = Instant::now();
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
    let mut bans = LoginBans::new(2, Duration::from_secs(60), 10);
    bans.record_failure(v4, t0);
    assert!(bans.record_failure(mapped, t0));
    assert!(bans.is_banned(v4, t0));
}

#[test]
fn loopback_bypass_only_when_configured() {
    let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
    let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
    assert!(bypasses_auth(true, v4) && bypasses_auth(true, v6) && bypasses_auth(true, mapped));
    assert!(!bypasses_auth(true, lan));
    assert!(!bypasses_auth(false, v4));
}

fn headers<'a>(
    host: &'a str,
    origin: Option<&'a str>,
    referer: Option<&'a str>,
) -> OriginHeaders<'a> {
    OriginHeaders {
        host: Some(host),
        x_forwarded_host: None,
        origin,
        referer,
    }
}

#[test]
fn csrf_compares_origin_then_referer_with_host() {
    let host = "127.0.0.1:8080";
    assert!(
        !is_cross_site(&headers(host, None, None)),
        "API clients send neither"
    );
    assert!(!is_cross_site(&headers(
        host,
        Some("http://127.0.0.1:8080"),
        None
    )));
    assert!(is_cross_site(&headers(
        host,
        Some("http://evil.example"),
        None
    )));
    assert!(is_cross_site(&headers(
        host,
        Some("http://127.0.0.1:9090"),
        None
    )));
    assert!(!is_cross_site(&headers(
        host,
        None,
        Some("http://127.0.0.1:8080/index.html")
    )));
    assert!(is_cross_site(&headers(
        host,
        None,
        Some("http://evil.example:8080/x")
    )));
    // Origin wins over Referer.
    assert!(is_cross_site(&headers(
        host,
        Some("http://evil.example"),
        Some("http://127.0.0.1:8080/")
    )));
    // Host names compare case-insensitively; the scheme is not compared.
    assert!(!is_cross_site(&headers(
        "LocalHost:8080",
        Some("https://localhost:8080"),
        None
    )));
    assert!(is_cross_site(&headers(host, Some("null"), None)));
    assert!(!is_cross_site(&headers(
        "[::1]:8080",
        Some("http://[::1]:8080"),
        None
    )));
}

#[test]
fn csrf_prefers_the_forwarded_host() {
    let behind_proxy = OriginHeaders {
        host: Some("127.0.0.1:8080"),
        x_forwarded_host: Some("torrents.example.org"),
        origin: Some("https://torrents.example.org"),
        referer: None,
    };
    assert!(!is_cross_site(&behind_proxy));
    let no_host = OriginHeaders {
        origin: Some("http://a"),
        ..OriginHeaders::default()
    };
    assert!(is_cross_site(&no_host));
}
