//! `Content-Type` from a file name's extension.

/// The type of anything whose extension is not in the table.
pub const DEFAULT: &str = "application/octet-stream";

/// Extension (lowercase) → media type.
const TABLE: &[(&str, &str)] = &[
    // Video
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("mkv", "video/x-matroska"),
    ("webm", "video/webm"),
    ("avi", "video/x-msvideo"),
    ("mov", "video/quicktime"),
    ("mpg", "video/mpeg"),
    ("mpeg", "video/mpeg"),
    ("ts", "video/mp2t"),
    ("ogv", "video/ogg"),
    ("wmv", "video/x-ms-wmv"),
    ("flv", "video/x-flv"),
    // Audio
    ("mp3", "audio/mpeg"),
    ("flac", "audio/flac"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("wav", "audio/wav"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    // Subtitles and text
    ("srt", "application/x-subrip"),
    ("vtt", "text/vtt"),
    ("txt", "text/plain; charset=utf-8"),
    ("nfo", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("json", "application/json"),
    ("xml", "application/xml"),
    // Images
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("bmp", "image/bmp"),
    ("ico", "image/x-icon"),
    ("avif", "image/avif"),
    // Documents and archives
    ("pdf", "application/pdf"),
    ("epub", "application/epub+zip"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("7z", "application/x-7z-compressed"),
    ("rar", "application/vnd.rar"),
    ("xz", "application/x-xz"),
    ("iso", "application/x-iso9660-image"),
    ("torrent", "application/x-bittorrent"),
];

/// The `Content-Type` for a path (`/`-separated or not), from its extension,
/// compared case-insensitively; [`DEFAULT`] when unknown or absent.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return DEFAULT;
    };
    if stem.is_empty() {
        // A dotfile such as ".mp4" has no extension.
        return DEFAULT;
    }
    TABLE
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(ext))
        .map_or(DEFAULT, |&(_, mime)| mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extensions() {
        for (path, mime) in [
            ("a.mp4", "video/mp4"),
            ("a.mkv", "video/x-matroska"),
            ("a.webm", "video/webm"),
            ("a.avi", "video/x-msvideo"),
            ("a.mov", "video/quicktime"),
            ("a.mp3", "audio/mpeg"),
            ("a.flac", "audio/flac"),
            ("a.ogg", "audio/ogg"),
            ("a.opus", "audio/ogg"),
            ("a.wav", "audio/wav"),
            ("a.m4a", "audio/mp4"),
            ("a.srt", "application/x-subrip"),
            ("a.vtt", "text/vtt"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.html", "text/html; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.png", "image/png"),
            ("a.gif", "image/gif"),
            ("a.webp", "image/webp"),
            ("a.pdf", "application/pdf"),
            ("a.zip", "application/zip"),
            ("a.iso", "application/x-iso9660-image"),
        ] {
            assert_eq!(content_type(path), mime, "{path}");
        }
    }

    #[test]
    fn case_insensitive() {
        assert_eq!(content_type("MOVIE.MKV"), "video/x-matroska");
        assert_eq!(content_type("Song.Mp3"), "audio/mpeg");
    }

    #[test]
    fn last_extension_of_last_segment() {
        assert_eq!(content_type("Show/Season 1/ep1.mp4"), "video/mp4");
        assert_eq!(content_type("archive.tar.gz"), "application/gzip");
        assert_eq!(content_type("dir.mp4/readme"), DEFAULT);
    }

    #[test]
    fn unknown_or_missing_extension() {
        assert_eq!(content_type("a.xyz"), DEFAULT);
        assert_eq!(content_type("README"), DEFAULT);
        assert_eq!(content_type(".mp4"), DEFAULT);
        assert_eq!(content_type("a."), DEFAULT);
        assert_eq!(content_type(""), DEFAULT);
    }
}
