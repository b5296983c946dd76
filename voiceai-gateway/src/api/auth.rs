//! Bearer-token auth (`BACKEND_AUTH_TOKEN`) for every route but `/health` and `/ready`;
//! the WebSockets also accept the token as a `token` query parameter, since browsers
//! cannot set headers on a WebSocket. Tokens are compared in constant time and never
//! logged.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub(crate) fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The bearer token of an `Authorization` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `token` query parameter, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    url_pairs(query)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value)
}

/// The pairs of a query string or form body, percent- and `+`-decoded.
pub(crate) fn url_pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(name), percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refuses a request without the configured token (401); lets everything through when no
/// token is configured.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config.auth_token.as_deref() else {
        return next.run(request).await;
    };
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer)
        .is_some_and(|token| token_matches(token, expected));
    let allowed = from_header
        || (request.uri().path().starts_with("/ws/")
            && request
                .uri()
                .query()
                .and_then(query_token)
                .is_some_and(|token| token_matches(&token, expected)));
    if allowed {
        next.run(request).await
    } else {
        tracing::info!(
            path = request.uri().path(),
            "request refused: no valid token"
        );
        ApiError::unauthorized().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_query_parameters() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secreT", "secret"));
        assert!(!token_matches("secret2", "secret"));
        assert!(!token_matches("", "secret"));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(query_token("a=1&token=s%2Fx+y"), Some("s/x y".to_owned()));
        assert_eq!(query_token("tokens=1"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e3%81%82"), "あ");
    }
}
