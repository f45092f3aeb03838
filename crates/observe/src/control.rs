//! Who may steer a job over HTTP: the checks every mutating route (`POST /api/savepoints`,
//! `POST /api/stop`) passes before its command reaches the job.
//!
//! - The body must be declared JSON (`Content-Type: application/json`). A web page can only send
//!   that cross-origin after a CORS preflight, which this server never grants, so a page open in
//!   the operator's browser cannot stop a job listening on `127.0.0.1` with a plain `fetch`.
//! - A request that names an `Origin` must come from the server's own origin (its `Host`).
//! - When a token is set (`--control-token`, or `RILL_CONTROL_TOKEN`), `Authorization: Bearer
//!   <token>` must carry it.
//! - Control is served only where it is safe by default: on a separate control address when one
//!   is given; otherwise on the metrics address when that is a loopback address or a token is
//!   set. Elsewhere (`/metrics` public on `0.0.0.0` without a token) the routes answer 403.

use axum::http::{header, HeaderMap, StatusCode};

/// The environment variable holding the control token, if any.
pub const CONTROL_TOKEN_VAR: &str = "RILL_CONTROL_TOKEN";

/// The secret control requests must carry; never printed (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct ControlToken(String);

impl ControlToken {
    /// A token; `None` for an empty one.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.is_empty()).then_some(ControlToken(token))
    }

    /// The token given, else the one in `RILL_CONTROL_TOKEN`, if any.
    pub fn given_or_from_env(given: Option<ControlToken>) -> Option<Self> {
        given.or_else(|| std::env::var(CONTROL_TOKEN_VAR).ok().and_then(ControlToken::new))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlToken(***)")
    }
}

/// Whether the metrics address also serves control, when no separate control address is given:
/// only on a loopback address, or with a token.
pub fn control_on_metrics_addr(addr: std::net::SocketAddr, token: Option<&ControlToken>) -> bool {
    addr.ip().is_loopback() || token.is_some()
}

/// Why a control request is refused: its status and reason.
pub(crate) type Refusal = (StatusCode, &'static str);

/// Checks a control request's headers against the rules above.
pub(crate) fn check(headers: &HeaderMap, token: Option<&str>) -> Result<(), Refusal> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let json = text(header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "control requests must be sent as Content-Type: application/json",
        ));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest).trim_end_matches('/');
        if text(header::HOST) != Some(origin_host) {
            return Err((StatusCode::FORBIDDEN, "cross-origin control requests are refused"));
        }
    }
    if let Some(token) = token {
        let expected = format!("Bearer {token}");
        if text(header::AUTHORIZATION) != Some(expected.as_str()) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "control requests need the control token (Authorization: Bearer ...)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().unwrap());
        }
        map
    }

    const JSON: (header::HeaderName, &str) = (header::CONTENT_TYPE, "application/json");
    const HOST: (header::HeaderName, &str) = (header::HOST, "127.0.0.1:9249");

    #[test]
    fn a_json_request_from_the_same_origin_or_from_a_tool_passes() {
        assert_eq!(check(&headers(&[JSON, HOST]), None), Ok(()));
        assert_eq!(check(&headers(&[JSON, HOST, (header::ORIGIN, "http://127.0.0.1:9249")]), None), Ok(()));
        let charset = (header::CONTENT_TYPE, "application/json; charset=utf-8");
        assert_eq!(check(&headers(&[charset, HOST]), None), Ok(()));
    }

    #[test]
    fn a_body_not_declared_json_is_refused() {
        let plain = (header::CONTENT_TYPE, "text/plain");
        assert_eq!(check(&headers(&[HOST]), None).unwrap_err().0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(check(&headers(&[plain, HOST]), None).unwrap_err().0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn a_request_from_another_origin_is_refused() {
        let evil = (header::ORIGIN, "https://example.com");
        assert_eq!(check(&headers(&[JSON, HOST, evil]), None).unwrap_err().0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn with_a_token_only_a_request_that_carries_it_passes() {
        assert_eq!(check(&headers(&[JSON, HOST]), Some("s3cret")).unwrap_err().0, StatusCode::UNAUTHORIZED);
        let wrong = (header::AUTHORIZATION, "Bearer guess");
        assert_eq!(check(&headers(&[JSON, HOST, wrong]), Some("s3cret")).unwrap_err().0, StatusCode::UNAUTHORIZED);
        let right = (header::AUTHORIZATION, "Bearer s3cret");
        assert_eq!(check(&headers(&[JSON, HOST, right]), Some("s3cret")), Ok(()));
    }
}
