//! Backend URLs: validation, redaction for messages, the per-number map file, and the
//! choice of a call's URL.
//!
//! The map file's format is in the [backend module's docs](crate::backend#the-url-map-file-backend-map).

use std::collections::BTreeMap;
use std::path::Path;

use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::{BackendError, BackendSettings};

/// The URL without what may be secret: user info, query and fragment are left out
/// (`wss://user:pw@host/p?token=x` → `wss://host/p?…`). Used in every message and log line
/// that names a backend.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, secret) = tail.split_at(path_end);
    let mut redacted = String::with_capacity(url.len().min(256));
    if !scheme.is_empty() {
        redacted.push_str(scheme);
        redacted.push_str("://");
    }
    redacted.push_str(host);
    redacted.push_str(path);
    if !secret.is_empty() {
        redacted.push_str("?…");
    }
    redacted.chars().filter(|c| !c.is_control()).collect()
}

/// Checks that `url` is a usable backend URL: `ws://` or `wss://`, a host, and nothing an
/// HTTP request line refuses.
///
/// # Errors
/// [`BackendError::InvalidUrl`], naming the URL (redacted) and what is wrong.
pub fn validate_url(url: &str) -> Result<(), BackendError> {
    let invalid = |reason: &str| BackendError::InvalidUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("expected ws://host/... or wss://host/..."));
    };
    if !scheme.eq_ignore_ascii_case("ws") && !scheme.eq_ignore_ascii_case("wss") {
        return Err(invalid("the scheme must be ws or wss"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("white space or control characters"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("no host"));
    }
    url.into_client_request()
        .map_err(|e| invalid(&format!("not a valid URL ({e})")))?;
    Ok(())
}

/// Reads the per-number map file (format: [the backend module's docs](crate::backend#the-url-map-file-backend-map)).
///
/// # Errors
/// [`BackendError::MapRead`] when the file cannot be read; [`BackendError::MapLine`],
/// naming the file and the line, for a line that is not `number url`, a URL that is not
/// `ws://` / `wss://`, or a number given twice.
pub fn load_url_map(path: &Path) -> Result<BTreeMap<String, String>, BackendError> {
    let text = std::fs::read_to_string(path).map_err(|source| BackendError::MapRead {
        path: path.to_owned(),
        source,
    })?;
    parse_url_map(&text).map_err(|(line, message)| BackendError::MapLine {
        path: path.to_owned(),
        line,
        message,
    })
}

/// Parses the map file's text; an error is its line number (from 1) and what is wrong.
fn parse_url_map(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut map = BTreeMap::new();
    let mut first_line = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let content = strip_comment(line).trim();
        if content.is_empty() {
            continue;
        }
        let mut fields = content.split_whitespace();
        let (Some(dialled), Some(url)) = (fields.next(), fields.next()) else {
            return Err((
                number,
                format!("expected `<dialled number> <ws:// or wss:// URL>`, got {content:?}"),
            ));
        };
        if fields.next().is_some() {
            return Err((
                number,
                "expected exactly two fields, `<dialled number> <URL>`".to_owned(),
            ));
        }
        if dialled.chars().any(char::is_control) || dialled.len() > 64 {
            return Err((number, format!("unusable dialled number {dialled:?}")));
        }
        validate_url(url).map_err(|e| (number, e.to_string()))?;
        if let Some(first) = first_line.insert(dialled.to_owned(), number) {
            return Err((
                number,
                format!("number {dialled:?} is already mapped on line {first}"),
            ));
        }
        map.insert(dialled.to_owned(), url.to_owned());
    }
    Ok(map)
}

/// The line without its comment: from a `#` at its start or after white space.
fn strip_comment(line: &str) -> &str {
    let mut previous_blank = true;
    for (at, c) in line.char_indices() {
        if c == '#' && previous_blank {
            return &line[..at];
        }
        previous_blank = c.is_whitespace();
    }
    line
}

/// The backend URL for a call: the channel variable's value (if set and valid), else the
/// map's entry for the dialled number, else the default.
///
/// An invalid variable value is logged (redacted) and passed over.
///
/// # Errors
/// [`BackendError::InvalidUrl`] when the URL chosen from the map or the default is not
/// usable (configuration normally refuses those at start).
pub fn resolve_url(
    settings: &BackendSettings,
    dialled: &str,
    variable: Option<&str>,
) -> Result<String, BackendError> {
    if let Some(value) = variable.map(str::trim).filter(|v| !v.is_empty()) {
        match validate_url(value) {
            Ok(()) => return Ok(value.to_owned()),
            Err(error) => tracing::warn!(
                variable = %settings.url_variable,
                %error,
                "ignoring the channel's backend URL"
            ),
        }
    }
    let url = settings
        .url_by_number
        .get(dialled)
        .unwrap_or(&settings.default_url);
    validate_url(url)?;
    Ok(url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_query_and_fragment() {
        for (url, redacted) in [
            ("wss://bot.example.com/path", "wss://bot.example.com/path"),
            (
                "wss://user:secret@bot.example.com:8443/p?token=abc#x",
                "wss://bot.example.com:8443/p?…",
            ),
            ("ws://h?x", "ws://h?…"),
            ("ws://a@b@h/", "ws://h/"),
            ("nonsense", "nonsense"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    #[test]
    fn only_ws_and_wss_urls_with_a_host_are_valid() {
        for url in [
            "ws://127.0.0.1:8765/",
            "wss://bot.example.com/stream?x=1",
            "WS://h",
            "ws://[::1]:9000/a",
        ] {
            assert!(validate_url(url).is_ok(), "{url}");
        }
        for url in [
            "",
            "http://h/",
            "127.0.0.1:8765",
            "ws://",
            "ws:///path",
            "ws://:80/",
            "ws://h/a b",
            "ws://h/\n",
        ] {
            let error = validate_url(url).unwrap_err();
            assert!(matches!(error, BackendError::InvalidUrl { .. }), "{url}");
        }
        let message = validate_url("http://u:pw@h/?token=t")
            .unwrap_err()
            .to_string();
        assert!(
            !message.contains("pw") && !message.contains("token"),
            "{message}"
        );
    }

    #[test]
    fn the_map_reads_numbers_urls_and_comments() {
        let map = parse_url_map(
            "# numbers\n\n  0312345678   wss://bots.example.com/sales\n\
             +8131\tws://127.0.0.5:8765/support   # support\n8000 ws://h/#frag\n",
        )
        .unwrap();
        assert_eq!(
            map,
            BTreeMap::from([
                ("0312345678".into(), "wss://bots.example.com/sales".into()),
                ("+8131".into(), "ws://127.0.0.5:8765/support".into()),
                ("8000".into(), "ws://h/#frag".into()),
            ])
        );
        assert_eq!(parse_url_map("").unwrap(), BTreeMap::new());
    }

    #[test]
    fn bad_map_lines_are_named() {
        for (text, line, says) in [
            ("1 ws://h/\n2\n", 2, "expected"),
            ("1 http://h/", 1, "scheme"),
            ("1 ws://h/ extra", 1, "two fields"),
            ("# c\n1 ws://a/\n1 ws://b/", 3, "line 2"),
        ] {
            let (at, message) = parse_url_map(text).unwrap_err();
            assert_eq!(at, line, "{text:?}");
            assert!(message.contains(says), "{message}");
        }
    }

    #[test]
    fn the_map_file_error_names_the_file_and_line() {
        let path = std::env::temp_dir().join(format!("backend-map-{}.txt", fastrand::u64(..)));
        std::fs::write(&path, "8000 ws://ok/\n9000 https://nope/\n").unwrap();
        let message = load_url_map(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("line 2"), "{message}");
        let missing = load_url_map(Path::new("/nonexistent/backend.map")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/backend.map"));
    }

    #[test]
    fn variable_then_map_then_default() {
        let mut settings = BackendSettings::new("ws://default/");
        settings
            .url_by_number
            .insert("8000".into(), "ws://mapped/".into());
        let resolve = |dialled, variable| resolve_url(&settings, dialled, variable).unwrap();
        assert_eq!(resolve("8000", Some("wss://var/")), "wss://var/");
        assert_eq!(resolve("8000", Some(" wss://var/ ")), "wss://var/");
        assert_eq!(resolve("8000", None), "ws://mapped/");
        assert_eq!(resolve("8000", Some("")), "ws://mapped/");
        assert_eq!(resolve("8000", Some("http://bad/")), "ws://mapped/");
        assert_eq!(resolve("9000", None), "ws://default/");
        assert_eq!(resolve("9000", Some("junk")), "ws://default/");
        settings.default_url = "http://x/".into();
        assert!(resolve_url(&settings, "9000", None).is_err());
    }
}
