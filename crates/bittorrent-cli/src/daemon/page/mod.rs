//! The built-in web page, compiled into the binary: no build step, no CDN.
//! The daemon serves [`INDEX_HTML`] at `/` and `/index.html`, [`APP_JS`] at
//! `/app.js`, [`STYLE_CSS`] at `/style.css`, each with its
//! [`asset`] content type. The page talks to the Web API with relative
//! URLs (`api/v2/...`), so it also works behind a reverse proxy's sub-path.
//!
//! Elements the browser test drives: `#login-user`, `#login-pass`,
//! `#login-button` (shown when the API answers 403), `#magnet-input`,
//! `#torrent-file`, `#add-button`, `#torrent-list` with one
//! `tr[data-hash=HASH]` per torrent (cells `.name`, `.size`, `.progress`,
//! `.dlspeed`, `.upspeed`, `.state`, `.ratio`; buttons `.pause-button` or
//! `.resume-button`, `.files-button`, `.delete-button`), the file list row
//! `tr[data-files-of=HASH]` with `input[type=checkbox][data-index=I]`, and
//! `#delete-dialog` with `#delete-files` and `#delete-confirm`.

/// The page.
pub const INDEX_HTML: &str = include_str!("index.html");
/// Its script.
pub const APP_JS: &str = include_str!("app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("style.css");

/// The asset served at `path` ("/", "/index.html", "/app.js", "/style.css")
/// and its content type; `None` for any other path.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" => Some((INDEX_HTML, "text/html; charset=utf-8")),
        "/app.js" => Some((APP_JS, "text/javascript; charset=utf-8")),
        "/style.css" => Some((STYLE_CSS, "text/css; charset=utf-8")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_ids_the_browser_test_uses() {
        for id in [
            "login-user",
            "login-pass",
            "login-button",
            "magnet-input",
            "torrent-file",
            "add-button",
            "torrent-list",
            "delete-dialog",
            "delete-files",
            "delete-confirm",
        ] {
            assert!(INDEX_HTML.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(INDEX_HTML.contains("src=\"app.js\""));
        assert!(INDEX_HTML.contains("href=\"style.css\""));
    }

    #[test]
    fn no_external_resources_and_no_inner_html() {
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn"));
        }
        assert!(
            !APP_JS.contains("innerHTML"),
            "API strings go through textContent"
        );
    }

    #[test]
    fn assets_by_path() {
        assert_eq!(asset("/").map(|(_, t)| t), Some("text/html; charset=utf-8"));
        assert_eq!(asset("/app.js").map(|(body, _)| body), Some(APP_JS));
        assert_eq!(asset("/style.css").map(|(body, _)| body), Some(STYLE_CSS));
        assert_eq!(asset("/secret"), None);
    }
}
