//! Checks on what API clients send before any of it reaches Asterisk: phone numbers,
//! endpoints (dial strings), caller ids and channel variables.
//!
//! Asterisk splits a dial string on `&` (several endpoints dialled at once) and an
//! application's arguments on `,`; a `/` separates technology from resource. Anything that
//! would let a caller of the API smuggle a second endpoint, an option or a context into a
//! dial string is refused here, with a message naming the field.

use std::collections::BTreeMap;

/// Longest phone number accepted (digits, `*`, `#`, an optional leading `+`).
pub const MAX_PHONE_NUMBER: usize = 32;
/// Longest endpoint (dial string) accepted.
pub const MAX_ENDPOINT: usize = 128;
/// Longest caller id accepted.
pub const MAX_CALLER_ID: usize = 80;
/// Longest channel variable name accepted.
pub const MAX_VARIABLE_NAME: usize = 64;
/// Longest channel variable value accepted.
pub const MAX_VARIABLE_VALUE: usize = 1024;
/// Most channel variables one request may set.
pub const MAX_VARIABLES: usize = 32;
/// Channel technologies an endpoint may name (compared without regard to case).
pub const ALLOWED_TECHNOLOGIES: &[&str] = &["PJSIP", "SIP", "Local", "IAX2", "DAHDI"];

/// A value the API refuses; the message names the field and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The request field (`phoneNumber`, `endpoint`, ...).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(field: &str, problem: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// How a character is shown in a message: itself when printable, else its code.
fn shown(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("'{c}'")
    }
}

/// A phone number: an optional leading `+`, then 1 to [`MAX_PHONE_NUMBER`] digits, `*` or
/// `#`. Visual separators (`-`, `.`, `(`, `)`, spaces) are removed first, so
/// `090-1234-5678` is `09012345678`. Returns the number without separators.
///
/// # Errors
/// Empty, too long, or any other character.
pub fn phone_number(field: &str, value: &str) -> Result<String, ValidationError> {
    if value.chars().count() > MAX_PHONE_NUMBER * 2 {
        return Err(invalid(
            field,
            format!("is longer than {MAX_PHONE_NUMBER} characters"),
        ));
    }
    let mut number = String::with_capacity(value.len());
    for (index, c) in value.chars().enumerate() {
        match c {
            '0'..='9' | '*' | '#' => number.push(c),
            '+' if index == 0 => number.push(c),
            '+' => return Err(invalid(field, "'+' is allowed only at the start")),
            '-' | '.' | '(' | ')' | ' ' => {}
            other => {
                return Err(invalid(
                    field,
                    format!(
                        "{} is not allowed in a phone number (digits, '*', '#' and a leading '+' only)",
                        shown(other)
                    ),
                ));
            }
        }
    }
    let digits = number.trim_start_matches('+');
    if digits.is_empty() {
        return Err(invalid(field, "is empty (a phone number was expected)"));
    }
    if digits.len() > MAX_PHONE_NUMBER {
        return Err(invalid(
            field,
            format!("is longer than {MAX_PHONE_NUMBER} digits"),
        ));
    }
    Ok(number)
}

fn resource_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '*' | '#')
}

fn context_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Explains why `c` cannot be in an endpoint.
fn endpoint_problem(c: char) -> String {
    match c {
        '&' => "'&' is not allowed (Asterisk would dial several endpoints)".to_owned(),
        ',' => "',' is not allowed (Asterisk would read it as an argument separator)".to_owned(),
        '/' => "only one '/' is allowed, between technology and resource".to_owned(),
        '@' => "only one '@' is allowed, before the context or trunk".to_owned(),
        c if c.is_control() => format!("control character {} is not allowed", shown(c)),
        c if c.is_whitespace() => format!("whitespace {} is not allowed", shown(c)),
        c => format!("{} is not allowed", shown(c)),
    }
}

/// An endpoint (dial string) `Tech/resource[@context]`: `PJSIP/100`,
/// `PJSIP/0312345678@trunk`, `Local/777@default`. The technology must be one of
/// [`ALLOWED_TECHNOLOGIES`] and is returned in that list's spelling.
///
/// # Errors
/// Empty, longer than [`MAX_ENDPOINT`], an unknown technology, a second endpoint (`&`), an
/// argument separator (`,`), an extra `/` or `@`, whitespace or control characters.
pub fn endpoint(field: &str, value: &str) -> Result<String, ValidationError> {
    if value.is_empty() {
        return Err(invalid(field, "is empty (an endpoint was expected)"));
    }
    if value.chars().count() > MAX_ENDPOINT {
        return Err(invalid(
            field,
            format!("is longer than {MAX_ENDPOINT} characters"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '&' | ',') || c.is_control() || c.is_whitespace())
    {
        return Err(invalid(field, endpoint_problem(c)));
    }
    let Some((tech, rest)) = value.split_once('/') else {
        return Err(invalid(
            field,
            "is not an endpoint: expected Tech/resource (e.g. PJSIP/100) or a phone number",
        ));
    };
    let Some(tech) = ALLOWED_TECHNOLOGIES
        .iter()
        .find(|allowed| allowed.eq_ignore_ascii_case(tech))
    else {
        return Err(invalid(
            field,
            format!(
                "technology '{tech}' is not allowed (one of {})",
                ALLOWED_TECHNOLOGIES.join(", ")
            ),
        ));
    };
    let (resource, context) = match rest.split_once('@') {
        Some((resource, context)) => (resource, Some(context)),
        None => (rest, None),
    };
    if resource.is_empty() {
        return Err(invalid(field, "has no resource after the '/'"));
    }
    if let Some(c) = resource.chars().find(|c| !resource_char(*c)) {
        return Err(invalid(field, endpoint_problem(c)));
    }
    if let Some(context) = context {
        if context.is_empty() {
            return Err(invalid(field, "has nothing after the '@'"));
        }
        if let Some(c) = context.chars().find(|c| !context_char(*c)) {
            return Err(invalid(field, endpoint_problem(c)));
        }
    }
    Ok(match context {
        Some(context) => format!("{tech}/{resource}@{context}"),
        None => format!("{tech}/{resource}"),
    })
}

/// A transfer or dial target: an endpoint (it contains a `/`) as [`endpoint`] checks it, or
/// a phone number (as [`phone_number`] checks it) put into `template` in place of
/// `{number}` (e.g. `PJSIP/{number}@trunk`).
///
/// # Errors
/// As [`endpoint`] or [`phone_number`].
pub fn dial_target(field: &str, value: &str, template: &str) -> Result<String, ValidationError> {
    if value.contains('/') {
        endpoint(field, value)
    } else {
        // A value with letters or separators is neither: say what was expected.
        let number = phone_number(field, value).map_err(|error| {
            if value.contains('&') || value.contains(',') {
                invalid(
                    field,
                    endpoint_problem(if value.contains('&') { '&' } else { ',' }),
                )
            } else {
                invalid(
                    field,
                    format!(
                        "{}; expected a phone number or an endpoint such as PJSIP/100",
                        error.problem
                    ),
                )
            }
        })?;
        Ok(dial_string(template, &number))
    }
}

/// `template` with `{number}` replaced by `number` (already checked).
pub fn dial_string(template: &str, number: &str) -> String {
    template.replace("{number}", number)
}

/// Checks an operator's dial template (`--originate-endpoint`): it names `{number}` once
/// and is an endpoint once a number is put in.
///
/// # Errors
/// No `{number}`, or not an endpoint with a number in it.
pub fn dial_template(field: &str, template: &str) -> Result<(), ValidationError> {
    if template.matches("{number}").count() != 1 {
        return Err(invalid(field, "must contain {number} exactly once"));
    }
    endpoint(field, &dial_string(template, "0123456789")).map(|_| ())
}

fn no_control(field: &str, value: &str) -> Result<(), ValidationError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(invalid(
            field,
            format!("control character {} is not allowed", shown(c)),
        )),
        None => Ok(()),
    }
}

/// A caller id (`"Name" <number>` or a number): at most [`MAX_CALLER_ID`] characters, no
/// control characters. Surrounding whitespace is removed.
///
/// # Errors
/// Too long, or a control character.
pub fn caller_id(field: &str, value: &str) -> Result<String, ValidationError> {
    let value = value.trim();
    if value.chars().count() > MAX_CALLER_ID {
        return Err(invalid(
            field,
            format!("is longer than {MAX_CALLER_ID} characters"),
        ));
    }
    no_control(field, value)?;
    Ok(value.to_owned())
}

/// A channel variable name: a letter or `_` first (`_`/`__` make it inherited), then
/// letters, digits, `_`, `-`, `.`; a dialplan function (`CALLERID(name)`,
/// `PJSIP_HEADER(add,X-Id)`) may add one parenthesised argument list.
fn variable_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let field = format!("{field}.{}", name.escape_debug());
    if name.is_empty() {
        return Err(invalid(&field, "a variable name is empty"));
    }
    if name.chars().count() > MAX_VARIABLE_NAME {
        return Err(invalid(
            &field,
            format!("variable name is longer than {MAX_VARIABLE_NAME} characters"),
        ));
    }
    let (base, arguments) = match name.split_once('(') {
        Some((base, rest)) => match rest.strip_suffix(')') {
            Some(arguments) => (base, Some(arguments)),
            None => return Err(invalid(&field, "variable name has an unclosed '('")),
        },
        None => (name, None),
    };
    let first_ok = base
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok {
        return Err(invalid(
            &field,
            "variable name must start with a letter or '_'",
        ));
    }
    if let Some(c) = base
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(invalid(
            &field,
            format!("{} is not allowed in a variable name", shown(c)),
        ));
    }
    if let Some(c) = arguments.and_then(|arguments| {
        arguments
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',')))
    }) {
        return Err(invalid(
            &field,
            format!("{} is not allowed in a function argument", shown(c)),
        ));
    }
    Ok(())
}

/// Channel variables: at most [`MAX_VARIABLES`], names as Asterisk spells them, values at
/// most [`MAX_VARIABLE_VALUE`] characters without control characters.
///
/// # Errors
/// Too many, a bad name or a bad value.
pub fn variables(field: &str, variables: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if variables.len() > MAX_VARIABLES {
        return Err(invalid(
            field,
            format!("more than {MAX_VARIABLES} variables"),
        ));
    }
    for (name, value) in variables {
        variable_name(field, name)?;
        let value_field = format!("{field}.{}", name);
        if value.chars().count() > MAX_VARIABLE_VALUE {
            return Err(invalid(
                &value_field,
                format!("value is longer than {MAX_VARIABLE_VALUE} characters"),
            ));
        }
        no_control(&value_field, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "PJSIP/{number}@trunk";

    #[test]
    fn phone_numbers_are_digits_with_an_optional_plus() {
        assert_eq!(phone_number("p", "+819012345678").unwrap(), "+819012345678");
        assert_eq!(phone_number("p", "090-1234-5678").unwrap(), "09012345678");
        assert_eq!(phone_number("p", "*67#").unwrap(), "*67#");
        assert_eq!(phone_number("p", "(03) 1234.5678").unwrap(), "0312345678");
        for bad in [
            "", "+", "--", "1+2", "++1", "12a", "1&2", "1,2", "1/2", "1\n2", "1\u{0}",
        ] {
            let error = phone_number("phoneNumber", bad).unwrap_err();
            assert_eq!(error.field, "phoneNumber", "{bad:?}");
        }
        assert!(phone_number("p", &"1".repeat(MAX_PHONE_NUMBER)).is_ok());
        assert!(phone_number("p", &"1".repeat(MAX_PHONE_NUMBER + 1)).is_err());
        assert!(phone_number("p", &"-".repeat(10_000)).is_err());
    }

    #[test]
    fn endpoints_are_one_tech_resource_and_context() {
        assert_eq!(endpoint("e", "PJSIP/100").unwrap(), "PJSIP/100");
        assert_eq!(endpoint("e", "pjsip/100").unwrap(), "PJSIP/100");
        assert_eq!(
            endpoint("e", "Local/777@default").unwrap(),
            "Local/777@default"
        );
        assert_eq!(
            endpoint("e", "PJSIP/+81312345678@trunk").unwrap(),
            "PJSIP/+81312345678@trunk"
        );
        assert_eq!(endpoint("e", "IAX2/peer-1").unwrap(), "IAX2/peer-1");
    }

    #[test]
    fn dial_string_injection_is_refused_with_a_clear_message() {
        let cases = [
            ("PJSIP/100&PJSIP/200", "'&'"),
            ("PJSIP/100,30,tT", "','"),
            ("Local/777@default/n", "only one '/'"),
            ("SIP/trunk/0312345678", "only one '/'"),
            ("PJSIP/100@a@b", "only one '@'"),
            ("PJSIP/100\r\nAction: Originate", "control character"),
            ("PJSIP/10 0", "whitespace"),
            ("PJSIP/100\u{0}", "control character"),
            ("Console/dsp", "technology 'Console'"),
            ("/100", "technology ''"),
            ("PJSIP/", "no resource"),
            ("PJSIP/100@", "nothing after"),
            ("PJSIP/${SHELL(rm -rf /)}", "not allowed"),
            ("PJSIP/1;x", "';'"),
            ("100", "Tech/resource"),
        ];
        for (value, expected) in cases {
            let error = endpoint("endpoint", value).unwrap_err();
            assert_eq!(error.field, "endpoint");
            assert!(
                error.to_string().contains(expected),
                "{value:?}: {error} (expected {expected:?})"
            );
        }
        let long = format!("PJSIP/{}", "1".repeat(MAX_ENDPOINT));
        assert!(endpoint("e", &long).unwrap_err().problem.contains("longer"));
    }

    #[test]
    fn a_dial_target_is_an_endpoint_or_a_number_through_the_template() {
        assert_eq!(
            dial_target("e", "100", TEMPLATE).unwrap(),
            "PJSIP/100@trunk"
        );
        assert_eq!(
            dial_target("e", "+81-3-1234", TEMPLATE).unwrap(),
            "PJSIP/+8131234@trunk"
        );
        assert_eq!(
            dial_target("e", "Local/777@default", TEMPLATE).unwrap(),
            "Local/777@default"
        );
        let error = dial_target("endpoint", "100&200", TEMPLATE).unwrap_err();
        assert!(error.to_string().contains("'&'"), "{error}");
        let error = dial_target("endpoint", "100,tT", TEMPLATE).unwrap_err();
        assert!(error.to_string().contains("','"), "{error}");
        let error = dial_target("endpoint", "alice", TEMPLATE).unwrap_err();
        assert!(error.to_string().contains("PJSIP/100"), "{error}");
    }

    #[test]
    fn templates_caller_ids_and_variables() {
        assert!(dial_template("t", TEMPLATE).is_ok());
        assert!(dial_template("t", "PJSIP/trunk").is_err());
        assert!(dial_template("t", "PJSIP/{number}&PJSIP/{number}").is_err());
        assert_eq!(
            caller_id("c", " \"Sales\" <0312345678> ").unwrap(),
            "\"Sales\" <0312345678>"
        );
        assert!(caller_id("c", "x\ny").is_err());
        assert!(caller_id("c", &"x".repeat(MAX_CALLER_ID + 1)).is_err());

        let ok: BTreeMap<String, String> = [
            ("CUSTOMER_ID", "42"),
            ("__INHERITED", "yes"),
            ("CALLERID(name)", "Sales"),
            ("PJSIP_HEADER(add,X-Id)", "abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert!(variables("variables", &ok).is_ok());
        for (name, value) in [
            ("1ABC", "x"),
            ("A B", "x"),
            ("A=B", "x"),
            ("SHELL(rm -rf)", "x"),
            ("CALLERID(name", "x"),
            ("", "x"),
            ("OK", "line\nbreak"),
            ("OK", "\u{1b}[31m"),
        ] {
            let one = BTreeMap::from([(name.to_owned(), value.to_owned())]);
            let error = variables("variables", &one).unwrap_err();
            assert!(error.field.starts_with("variables."), "{error}");
        }
        let many: BTreeMap<String, String> = (0..=MAX_VARIABLES)
            .map(|n| (format!("V{n}"), String::new()))
            .collect();
        assert!(variables("variables", &many).is_err());
    }
}
