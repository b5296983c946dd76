//! The live monitor page: `GET /` (HTML), `GET /monitor.js` and `GET /monitor.css`, built
//! into the binary from `voiceai-gateway/monitor/` (no build step, nothing fetched from
//! elsewhere, so it works on a machine without internet).
//!
//! The page itself holds no call data and is served without the token: it asks the
//! operator for the token when the API answers 401, keeps it in `sessionStorage`, reads
//! `/ws/monitor` with it and acts on calls through the REST API. A strict
//! Content-Security-Policy allows only the page's own script, style and connections, and
//! no framing (the disconnect buttons cannot be clickjacked).

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
const INDEX_HTML: &str = include_str!("../../monitor/index.html");
/// Its script (vanilla JavaScript, no dependencies).
const MONITOR_JS: &str = include_str!("../../monitor/monitor.js");
/// Its style sheet.
const MONITOR_CSS: &str = include_str!("../../monitor/monitor.css");

/// What the page may load and talk to: itself only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The files change with the binary: always revalidate.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the monitor page.
#[utoipa::path(
    get,
    path = "/",
    tag = "monitor",
    summary = "The live monitor page (HTML)",
    description = "Active calls, recent ended calls, DTMF and transcripts of a selected call, \
        disconnect and transfer buttons. Served without the token; the page asks for it.",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /monitor.js`.
#[utoipa::path(
    get,
    path = "/monitor.js",
    tag = "monitor",
    summary = "The monitor page's script",
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String))
)]
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", MONITOR_JS)
}

/// `GET /monitor.css`.
#[utoipa::path(
    get,
    path = "/monitor.css",
    tag = "monitor",
    summary = "The monitor page's style sheet",
    responses((status = 200, description = "The style sheet", content_type = "text/css", body = String))
)]
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", MONITOR_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(INDEX_HTML.contains(r#"src="/monitor.js""#));
        assert!(INDEX_HTML.contains(r#"href="/monitor.css""#));
        // Nothing from elsewhere: no CDN, no external fonts.
        for file in [INDEX_HTML, MONITOR_JS, MONITOR_CSS] {
            assert!(!file.contains("http://") && !file.contains("https://"));
            assert!(!file.contains("//cdn") && !file.contains("@import"));
        }
        // Call data reaches the page only as text, never as markup.
        assert!(!MONITOR_JS.contains("innerHTML"));
    }
}
