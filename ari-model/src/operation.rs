//! What every generated operation tells a client: method, path, parameters, response
//! kind and documented errors. Building requests needs no I/O, so it lives here.

use std::collections::BTreeMap;

/// HTTP method of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl HttpMethod {
    /// The method name, e.g. `POST`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// What a successful response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// A JSON body decoding to `Operation::Response`.
    Json,
    /// Raw bytes (e.g. a recording file); stream them.
    Binary,
    /// No body (204).
    Empty,
    /// The request upgrades to a WebSocket (the events socket).
    WebSocket,
}

/// A documented error response of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorResponse {
    /// HTTP status.
    pub status: u16,
    /// What the status means for this operation, from the spec.
    pub reason: &'static str,
}

/// One ARI operation with its parameters filled in.
pub trait Operation {
    /// What a successful call returns (`()` when there is no body, `Vec<u8>` for binary).
    type Response;
    /// Resource file the operation belongs to, e.g. `channels`.
    const RESOURCE: &'static str;
    /// Operation name in the spec, e.g. `originate`.
    const NICKNAME: &'static str;
    /// HTTP method.
    const METHOD: HttpMethod;
    /// Path template under `/ari`, e.g. `/channels/{channelId}`.
    const PATH_TEMPLATE: &'static str;
    /// What the response carries.
    const RESPONSE_KIND: ResponseKind;
    /// Documented error responses.
    const ERRORS: &'static [ErrorResponse];

    /// The path under `/ari` with path parameters filled in and percent-encoded.
    fn path(&self) -> String;
    /// Query parameters, unencoded; lists are already joined with commas.
    fn query(&self) -> Vec<(&'static str, String)>;
    /// The JSON body, if the operation takes one.
    fn body(&self) -> Option<serde_json::Value>;

    /// The documented reason for `status`, if the spec lists one.
    fn error_reason(status: u16) -> Option<&'static str> {
        Self::ERRORS
            .iter()
            .find(|e| e.status == status)
            .map(|e| e.reason)
    }
}

/// A value that travels in a query string.
pub trait QueryValue {
    /// The value as ARI expects it in the query string (unencoded).
    fn to_query(&self) -> String;
}

impl QueryValue for String {
    fn to_query(&self) -> String {
        self.clone()
    }
}

impl QueryValue for bool {
    fn to_query(&self) -> String {
        if *self { "true" } else { "false" }.to_owned()
    }
}

impl QueryValue for i64 {
    fn to_query(&self) -> String {
        self.to_string()
    }
}

impl<T: QueryValue> QueryValue for Vec<T> {
    fn to_query(&self) -> String {
        self.iter()
            .map(QueryValue::to_query)
            .collect::<Vec<_>>()
            .join(",")
    }
}

macro_rules! query_value_via_as_str {
    ($($ty:ty),* $(,)?) => {
        $(impl QueryValue for $ty {
            fn to_query(&self) -> String {
                self.as_str().to_owned()
            }
        })*
    };
}

query_value_via_as_str!(
    crate::ids::ChannelId,
    crate::ids::BridgeId,
    crate::ids::PlaybackId,
    crate::ids::RecordingName,
    crate::ids::SoundId,
    crate::ids::ApplicationName,
    crate::ids::DeviceName,
    crate::ids::MailboxName,
    crate::ids::ModuleName,
);

/// Channel variables or other key/value pairs sent in a body (`{"variables": {...}}`).
pub type Variables = BTreeMap<String, String>;

/// A body value as JSON. The body types of the model (string maps, lists of plain
/// structs) always serialise; `Null` stands in should one ever not.
pub fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("1700000000.1"), "1700000000.1");
        assert_eq!(encode_path_segment("a/b c;d"), "a%2Fb%20c%3Bd");
        assert_eq!(encode_path_segment("PJSIP/100"), "PJSIP%2F100");
        assert_eq!(encode_path_segment("ü"), "%C3%BC");
    }

    #[test]
    fn lists_join_with_commas() {
        assert_eq!(vec!["a".to_owned(), "b".to_owned()].to_query(), "a,b");
        assert_eq!(true.to_query(), "true");
    }
}
