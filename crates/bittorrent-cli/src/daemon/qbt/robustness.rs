//! Property tests: every parser of request input in `qbt` answers any text
//! with a value or a typed error, never a panic (the binary crate cannot
//! host a cargo-fuzz target, so proptest stands in).

use proptest::prelude::*;

use crate::daemon::qbt::auth::{is_cross_site, OriginHeaders, PasswordHash};
use crate::daemon::qbt::params::{
    parse_file_ids, parse_file_priority, parse_hashes, parse_rate_limit, parse_ratio_limit,
    parse_seeding_time_limit, parse_tags,
};
use crate::daemon::qbt::prefs::Preferences;
use crate::daemon::qbt::query::InfoQuery;

proptest! {
    #[test]
    fn parameter_parsers_never_panic(text in "\\PC{0,80}") {
        let _ = parse_hashes(&text);
        let _ = parse_file_ids(&text);
        let _ = parse_file_priority(&text);
        let _ = parse_tags(&text);
        let _ = parse_rate_limit("limit", &text);
        let _ = parse_ratio_limit(&text);
        let _ = parse_seeding_time_limit(&text);
        let _ = PasswordHash::parse(&text);
        let _ = InfoQuery::from_params(|_| Some(text.as_str()));
    }

    #[test]
    fn hash_lists_of_valid_hashes_parse(hashes in prop::collection::vec("[0-9a-fA-F]{40}", 1..5)) {
        prop_assert!(parse_hashes(&hashes.join("|")).is_ok());
    }

    #[test]
    fn set_preferences_never_panics(
        key in prop::sample::select(vec![
            "dl_limit", "listen_port", "max_ratio", "max_ratio_enabled", "encryption",
            "max_seeding_time", "max_seeding_time_enabled", "web_ui_password", "dht", "save_path",
        ]),
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| if v.is_finite() { v.to_string() } else { "0".to_owned() }),
            "\\PC{0,20}".prop_map(|s| serde_json::Value::String(s).to_string()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            Just("[1]".to_owned()),
        ],
    ) {
        let mut prefs = Preferences::default();
        let before = prefs.clone();
        if prefs.apply_json(&format!("{{\"{key}\": {value}}}")).is_err() {
            prop_assert_eq!(prefs, before);
        }
    }

    #[test]
    fn csrf_check_never_panics(
        host in "\\PC{0,40}",
        origin in proptest::option::of("\\PC{0,40}"),
        referer in proptest::option::of("\\PC{0,40}"),
    ) {
        let _ = is_cross_site(&OriginHeaders {
            host: Some(&host),
            x_forwarded_host: None,
            origin: origin.as_deref(),
            referer: referer.as_deref(),
        });
    }
}
