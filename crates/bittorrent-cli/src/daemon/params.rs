//! [`Params`]: a request's parameters, from its query string and its
//! form-encoded body together (qBittorrent reads both), for handlers to pick.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;

use crate::daemon::error::ApiError;

/// The parameters of a request; a name given twice keeps its last value.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters from a query string or a form body.
    pub fn parse(text: &[u8]) -> Self {
        Params(form_urlencoded::parse(text).into_owned().collect())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or 400.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming the missing parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad(format!("Missing required parameter: {name}")))
    }

    /// A boolean parameter (`true`/`false`), `default` when absent.
    ///
    /// # Errors
    /// 400 for another value.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(v) => Err(ApiError::bad(format!("{name}: not a boolean: {v}"))),
        }
    }

    /// A number parameter, `None` when absent or empty.
    ///
    /// # Errors
    /// 400 when it does not parse.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("{name}: not a number: {v}"))),
        }
    }

    /// Adds parameters (a multipart form's text fields).
    pub fn push(&mut self, name: String, value: String) {
        self.0.push((name, value));
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
        let form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body =
            Bytes::from_request(req, state)
                .await
                .map_err(|e| match e.status().as_u16() {
                    413 => ApiError::TooLarge,
                    _ => ApiError::bad(e.body_text()),
                })?;
        if form || (!body.is_empty() && !body.starts_with(b"--")) {
            params.0.extend(Params::parse(&body).0);
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_flags_and_numbers() {
        let p = Params::parse(b"a=1&b=x%20y&a=2&t=true&f=false&e=");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some("x y"));
        assert_eq!(p.required("zz").unwrap_err().status(), 400);
        assert!(p.flag("t", false).unwrap());
        assert!(!p.flag("f", true).unwrap());
        assert!(p.flag("e", true).unwrap());
        assert!(p.flag("b", true).is_err());
        assert_eq!(p.number::<i64>("a").unwrap(), Some(2));
        assert_eq!(p.number::<i64>("e").unwrap(), None);
        assert!(p.number::<i64>("b").is_err());
    }
}
