//! [`ApiError`]: why a request is refused, as qBittorrent answers it (a
//! status code and a short plain-text body).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused request. Nothing was changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: a missing or malformed parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401: a cross-site request (Origin or Referer is another host).
    #[error("Unauthorized")]
    Unauthorized,
    /// 403: not logged in.
    #[error("Forbidden")]
    Forbidden,
    /// 403: too many failed logins from this address.
    #[error("Your IP address has been banned after too many failed authentication attempts.")]
    Banned,
    /// 404: an unknown torrent (or file).
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the state (an existing category...).
    #[error("{0}")]
    Conflict(String),
    /// 413: a body over the size limit.
    #[error("Request body too large")]
    TooLarge,
    /// 415: a torrent file that is not valid.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// 500: the session or the disk failed.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// 404 for a torrent that is not there.
    pub fn no_torrent() -> Self {
        Self::NotFound("Torrent not found".into())
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Banned => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(message) = &self {
            log::error!("Web API: {message}");
        }
        if self == Self::TooLarge {
            // The rest of the body is not read: the connection cannot be
            // used again, and the client must know it.
            return (
                self.status(),
                [
                    ("content-type", "text/plain; charset=UTF-8"),
                    ("connection", "close"),
                ],
                self.to_string(),
            )
                .into_response();
        }
        (
            self.status(),
            [("content-type", "text/plain; charset=UTF-8")],
            self.to_string(),
        )
            .into_response()
    }
}

impl From<bittorrent::session::SessionError> for ApiError {
    fn from(e: bittorrent::session::SessionError) -> Self {
        Self::Internal(e.to_string())
    }
}
