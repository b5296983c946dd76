//! The Twilio-compatible call-control endpoint: bots written for Twilio end and transfer
//! calls through Twilio's REST API (Pipecat POSTs `Status=completed` to
//! `{base_url}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`), so the gateway
//! serves that path.
//!
//! - `POST`, form-urlencoded: `Status=completed` (or `canceled`) hangs the call up;
//!   `Twiml` with `<Hangup/>` (or `<Reject/>`) hangs up, with `<Dial>number-or-endpoint</Dial>`
//!   (or `<Dial><Number>..</Number></Dial>`) transfers; other verbs are skipped (the first of
//!   these in the document wins). Answers a minimal Twilio Call resource.
//! - `GET`: the Call resource.
//!
//! Basic auth with the account SID and the auth token ([`super::ApiConfig`]), compared in
//! constant time: 401 code 20003 otherwise. An unknown account or call SID: 404 code 20404,
//! which Pipecat takes as "already ended". The call SID is the gateway's call id.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::auth::url_pairs;
use super::{AppState, validate};
use crate::calls::{CallCommand, CallSnapshot, CallStatus, CommandError, Direction};

/// Twilio's API version, the first path segment.
const API_VERSION: &str = "2010-04-01";

/// Twilio's error body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TwilioError {
    code: u32,
    message: String,
    more_info: String,
    status: u16,
}

/// An error answered in Twilio's shape.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: u32,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    fn not_found(account_sid: &str, call_sid: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}.json was not found"
            ),
        )
    }

    fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = TwilioError {
            code: self.code,
            message: self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

/// Whether the request's Basic auth is the configured account SID and password; with no
/// password configured, anything passes.
fn authenticated(headers: &HeaderMap, account_sid: &str, password: Option<&str>) -> bool {
    let Some(password) = password else {
        return true;
    };
    let Some(credentials) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
    else {
        return false;
    };
    let Some(colon) = credentials.iter().position(|byte| *byte == b':') else {
        return false;
    };
    let (user, pass) = (&credentials[..colon], &credentials[colon + 1..]);
    let user_ok = user.ct_eq(account_sid.as_bytes());
    let pass_ok = pass.ct_eq(password.as_bytes());
    bool::from(user_ok & pass_ok)
}

/// Twilio's Call resource, the fields bots and SDKs read.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallResource {
    sid: String,
    account_sid: String,
    api_version: &'static str,
    from: String,
    to: String,
    status: &'static str,
    direction: &'static str,
    date_created: Option<String>,
    date_updated: String,
    start_time: Option<String>,
    end_time: Option<String>,
    duration: Option<String>,
    parent_call_sid: Option<String>,
    answered_by: Option<String>,
    price: Option<String>,
    price_unit: &'static str,
    uri: String,
}

/// Twilio's status for a call.
fn twilio_status(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Ringing => "ringing",
        CallStatus::Ended => "completed",
        _ => "in-progress",
    }
}

fn resource(account_sid: &str, call: &CallSnapshot, status: &'static str) -> CallResource {
    let start_time = rfc2822_of(&call.start_time);
    let ended = status == "completed";
    CallResource {
        sid: call.call_id.clone(),
        account_sid: account_sid.to_owned(),
        api_version: API_VERSION,
        from: call.caller_number.clone(),
        to: call.called_number.clone(),
        status,
        direction: match call.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound-api",
        },
        date_created: start_time.clone(),
        date_updated: rfc2822(SystemTime::now()),
        start_time,
        end_time: call
            .end_time
            .as_deref()
            .and_then(rfc2822_of)
            .or_else(|| ended.then(|| rfc2822(SystemTime::now()))),
        duration: ended.then(|| call.duration.to_string()),
        parent_call_sid: None,
        answered_by: None,
        price: None,
        price_unit: "USD",
        uri: format!(
            "/{API_VERSION}/Accounts/{account_sid}/Calls/{}.json",
            call.call_id
        ),
    }
}

/// An RFC 3339 time as Twilio writes times (RFC 2822, `+0000`).
fn rfc2822_of(text: &str) -> Option<String> {
    humantime::parse_rfc3339(text).ok().map(rfc2822)
}

/// `Tue, 31 Aug 2010 20:36:28 +0000`.
fn rfc2822(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// What a TwiML document asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TwimlAction {
    /// `<Hangup/>` or `<Reject/>`.
    Hangup,
    /// `<Dial>target</Dial>`: the target as written (a number or an endpoint).
    Dial(String),
}

/// XML's predefined entities and character references; anything else is kept as is.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One piece of a TwiML document.
enum Piece<'a> {
    /// `<Name ...>` (`closing`: `</Name>`; `empty`: `<Name/>`).
    Tag {
        name: &'a str,
        closing: bool,
        empty: bool,
    },
    /// Text between tags.
    Text(&'a str),
}

/// Splits `text` into tags and text; comments, declarations and processing instructions
/// are dropped. Tolerant: an unclosed `<` ends the document.
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            out.push(Piece::Text(rest));
            break;
        };
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        rest = &rest[open..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(close) = rest.find('>') else {
            break;
        };
        let inner = &rest[1..close];
        rest = &rest[close + 1..];
        if inner.starts_with('?') || inner.starts_with('!') {
            continue;
        }
        let closing = inner.starts_with('/');
        let inner = inner.trim_start_matches('/');
        let empty = inner.ends_with('/');
        let name = inner
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        out.push(Piece::Tag {
            name,
            closing,
            empty,
        });
    }
    out
}

/// The first `<Hangup/>`, `<Reject/>` or `<Dial>` of a TwiML document.
fn parse_twiml(text: &str) -> Result<TwimlAction, String> {
    let pieces = pieces(text);
    let mut index = 0;
    while index < pieces.len() {
        if let Piece::Tag {
            name,
            closing: false,
            empty,
        } = pieces[index]
        {
            if name.eq_ignore_ascii_case("Hangup") || name.eq_ignore_ascii_case("Reject") {
                return Ok(TwimlAction::Hangup);
            }
            if name.eq_ignore_ascii_case("Dial") {
                if empty {
                    return Err("<Dial/> names no number or endpoint".to_owned());
                }
                let mut target = String::new();
                for piece in &pieces[index + 1..] {
                    match piece {
                        Piece::Text(text) => target.push_str(text),
                        Piece::Tag { name, closing, .. } => {
                            if *closing && name.eq_ignore_ascii_case("Dial") {
                                break;
                            }
                            if !*closing && !name.eq_ignore_ascii_case("Number") {
                                return Err(format!(
                                    "<Dial><{name}> is not supported: dial a number or an endpoint such as PJSIP/100"
                                ));
                            }
                        }
                    }
                }
                let target = decode_entities(target.trim());
                if target.is_empty() {
                    return Err("<Dial> names no number or endpoint".to_owned());
                }
                return Ok(TwimlAction::Dial(target));
            }
        }
        index += 1;
    }
    Err("Twiml has neither <Hangup/> nor <Dial>".to_owned())
}

/// What the request asks of the call.
fn requested_action(form: &[(String, String)], template: &str) -> Result<CallCommand, Failure> {
    let value = |key: &str| {
        form.iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };
    if let Some(status) = value("Status") {
        return match status {
            "completed" | "canceled" => Ok(CallCommand::Hangup),
            other => Err(Failure::bad_request(
                21218,
                format!(
                    "Status '{}' is not supported: use completed or canceled",
                    other.escape_debug()
                ),
            )),
        };
    }
    if let Some(twiml) = value("Twiml") {
        return match parse_twiml(twiml) {
            Ok(TwimlAction::Hangup) => Ok(CallCommand::Hangup),
            Ok(TwimlAction::Dial(target)) => {
                validate::dial_target("Twiml <Dial>", &target, template)
                    .map(|endpoint| CallCommand::Transfer { endpoint })
                    .map_err(|error| Failure::bad_request(12100, error.to_string()))
            }
            Err(problem) => Err(Failure::bad_request(12100, problem)),
        };
    }
    if value("Url").is_some() {
        return Err(Failure::bad_request(
            21205,
            "Url is not supported by this gateway: send Twiml or Status",
        ));
    }
    Err(Failure::bad_request(
        21218,
        "nothing to do: send Status=completed, or Twiml with <Hangup/> or <Dial>",
    ))
}

/// Checks auth and the SIDs; the call and the account SID on success.
fn lookup(
    state: &AppState,
    headers: &HeaderMap,
    account_sid: &str,
    call_sid: &str,
) -> Result<(CallSnapshot, String), Failure> {
    let configured = state.config.twilio_account_sid.as_str();
    if !authenticated(headers, configured, state.config.twilio_password()) {
        tracing::info!("Twilio call update refused: wrong or missing Basic auth");
        return Err(Failure::unauthenticated());
    }
    let call_sid_bare = call_sid.strip_suffix(".json");
    let shown_sid = call_sid_bare.unwrap_or(call_sid);
    if account_sid != configured {
        return Err(Failure::not_found(account_sid, shown_sid));
    }
    let call = call_sid_bare
        .and_then(|sid| state.calls.get(sid))
        .ok_or_else(|| Failure::not_found(account_sid, shown_sid))?;
    Ok((call, configured.to_owned()))
}

/// The form `update_call` reads (`application/x-www-form-urlencoded`), for the API's
/// description: the handler reads the pairs itself, in order ([`requested_action`]).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only its schema is used.
pub(crate) struct UpdateCallForm {
    /// `completed` or `canceled`: hang the call up.
    #[schema(rename = "Status")]
    status: Option<String>,
    /// TwiML: `<Hangup/>` or `<Reject/>` hangs up, `<Dial>number-or-endpoint</Dial>` (or
    /// `<Dial><Number>..</Number></Dial>`) transfers; other verbs are skipped.
    #[schema(rename = "Twiml")]
    twiml: Option<String>,
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`.
#[utoipa::path(
    get,
    path = "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}",
    tag = "twilio",
    summary = "Twilio-compatible: fetch a call",
    description = "Twilio's Call resource for bots written for Twilio. Basic auth: the account SID \
        and the Twilio auth token (or the API token).",
    security(("twilio_basic" = [])),
    params(
        ("account_sid" = String, Path, description = "The configured account SID"),
        ("call_sid" = String, Path, description = "The call id followed by `.json`"),
    ),
    responses(
        (status = 200, description = "The call", body = CallResource),
        (status = 401, description = "Wrong credentials (code 20003)", body = TwilioError),
        (status = 404, description = "Unknown account or call (code 20404)", body = TwilioError),
    )
)]
pub(crate) async fn fetch_call(
    State(state): State<AppState>,
    Path((account_sid, call_sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match lookup(&state, &headers, &account_sid, &call_sid) {
        Ok((call, account)) => {
            Json(resource(&account, &call, twilio_status(call.status))).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`.
#[utoipa::path(
    post,
    path = "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}",
    tag = "twilio",
    summary = "Twilio-compatible: end or transfer a call",
    description = "What Pipecat and other Twilio bots POST to end (`Status=completed`) or \
        transfer (`Twiml=<Response><Dial>...</Dial></Response>`) their call. Basic auth as \
        for GET.",
    security(("twilio_basic" = [])),
    params(
        ("account_sid" = String, Path, description = "The configured account SID"),
        ("call_sid" = String, Path, description = "The call id followed by `.json`"),
    ),
    request_body(content = UpdateCallForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done; the call as it is now", body = CallResource),
        (status = 400, description = "Nothing to do, or the call cannot be redirected (code 21220)", body = TwilioError),
        (status = 401, description = "Wrong credentials (code 20003)", body = TwilioError),
        (status = 404, description = "Unknown account or call (code 20404)", body = TwilioError),
        (status = 429, description = "The call is busy with earlier commands (code 20429)", body = TwilioError),
    )
)]
pub(crate) async fn update_call(
    State(state): State<AppState>,
    Path((account_sid, call_sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (call, account) = match lookup(&state, &headers, &account_sid, &call_sid) {
        Ok(found) => found,
        Err(failure) => return failure.into_response(),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let error = super::error::body_rejection(&rejection, state.config.max_body_bytes);
            return Failure::new(error.code, 20001, error.message).into_response();
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return Failure::bad_request(20001, "the form body is not UTF-8").into_response();
    };
    let form: Vec<(String, String)> = url_pairs(text).collect();
    let command = match requested_action(&form, &state.config.dial_template) {
        Ok(command) => command,
        Err(failure) => return failure.into_response(),
    };
    let hangup = command == CallCommand::Hangup;
    // A ringing call's task takes any command as its cancellation; a transferred call is
    // no longer the gateway's to redirect.
    if !hangup && matches!(call.status, CallStatus::Ringing | CallStatus::Transferring) {
        return Failure::bad_request(21220, "Call is not in-progress. Cannot redirect.")
            .into_response();
    }
    match state.calls.command(&call.call_id, command.clone()) {
        Ok(()) => {
            match &command {
                CallCommand::Transfer { endpoint } => tracing::info!(
                    call_id = %call.call_id, channel_id = %call.channel_id, %endpoint,
                    "transfer requested by the bot (Twilio REST)"
                ),
                _ => tracing::info!(
                    call_id = %call.call_id, channel_id = %call.channel_id,
                    "hang-up requested by the bot (Twilio REST)"
                ),
            }
            let status = if hangup {
                "completed"
            } else {
                twilio_status(call.status)
            };
            Json(resource(&account, &call, status)).into_response()
        }
        // Ending a call that is over is done already.
        Err(CommandError::Ended(_)) if hangup => {
            Json(resource(&account, &call, "completed")).into_response()
        }
        Err(CommandError::Ended(_)) => {
            Failure::bad_request(21220, "Call is not in-progress. Cannot redirect.").into_response()
        }
        Err(CommandError::NotFound(_)) => {
            Failure::not_found(&account, &call.call_id).into_response()
        }
        Err(CommandError::Busy(_)) => Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            20429,
            "Too Many Requests: the call is busy with earlier commands",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_hangup_dial_and_garbage() {
        assert_eq!(
            parse_twiml("<?xml version=\"1.0\"?><Response><Hangup/></Response>"),
            Ok(TwimlAction::Hangup)
        );
        assert_eq!(
            parse_twiml("<Response><Say>bye</Say><Hangup></Hangup></Response>"),
            Ok(TwimlAction::Hangup)
        );
        assert_eq!(
            parse_twiml("<Response><Dial timeout=\"20\"> +81312345678 </Dial><Hangup/></Response>"),
            Ok(TwimlAction::Dial("+81312345678".into()))
        );
        assert_eq!(
            parse_twiml("<Response><Dial><Number>100</Number></Dial></Response>"),
            Ok(TwimlAction::Dial("100".into()))
        );
        assert_eq!(
            parse_twiml("<Response><!-- <Hangup/> --><Dial>Local/777@default</Dial></Response>"),
            Ok(TwimlAction::Dial("Local/777@default".into()))
        );
        assert_eq!(
            parse_twiml("<Dial>PJSIP/1&amp;PJSIP/2</Dial>"),
            Ok(TwimlAction::Dial("PJSIP/1&PJSIP/2".into()))
        );
        assert!(parse_twiml("<Dial><Sip>sip:a@b</Sip></Dial>").is_err());
        assert!(parse_twiml("<Dial/>").is_err());
        assert!(parse_twiml("<Dial>   </Dial>").is_err());
        for garbage in [
            "",
            "<",
            "<<<>>>",
            "<Dial",
            "&#xFFFFFFFF;",
            "<!--",
            "\u{0}<\u{1}>",
            "<Response><Say>",
        ] {
            assert!(parse_twiml(garbage).is_err(), "{garbage:?}");
        }
        assert_eq!(
            decode_entities("a&lt;b&#62;&#x41;&bogus;&"),
            "a<b>A&bogus;&"
        );
    }

    #[test]
    fn twilio_dates() {
        assert_eq!(rfc2822(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_283_286_988);
        assert_eq!(rfc2822(at), "Tue, 31 Aug 2010 20:36:28 +0000");
        assert_eq!(
            rfc2822_of("2024-02-29T23:59:59.123Z").as_deref(),
            Some("Thu, 29 Feb 2024 23:59:59 +0000")
        );
    }

    #[test]
    fn basic_auth_in_constant_time() {
        let mut headers = HeaderMap::new();
        assert!(!authenticated(&headers, "AC1", Some("tok")));
        assert!(authenticated(&headers, "AC1", None));
        let good = base64::engine::general_purpose::STANDARD.encode("AC1:tok");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {good}").parse().unwrap(),
        );
        assert!(authenticated(&headers, "AC1", Some("tok")));
        assert!(!authenticated(&headers, "AC2", Some("tok")));
        assert!(!authenticated(&headers, "AC1", Some("tok2")));
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(!authenticated(&headers, "AC1", Some("tok")));
    }
}
