//! The campaign's numbers: validation of one number, and a streaming reader of number
//! lists (plain, or CSV with a `number`/`phone` column) that reports bad lines and never
//! holds more than one bounded line in memory.
//!
//! [`normalize`] is the gate between input files and dial strings: whatever it accepts is
//! ASCII digits only, so nothing read from a file can add a channel, an option or a
//! second destination to `PJSIP/<number>@<trunk>`.

mod input;
mod reader;

use std::collections::BTreeMap;
use std::fmt;

pub use input::{FILE_VAR, NUMBER_VAR, NumberInput, NumbersError, ReadSummary, Source};
pub use reader::{Format, HeaderError, NumberReader};

/// Fewest digits a number may have (short codes such as `112` are numbers too).
pub const MIN_DIGITS: usize = 3;
/// Most digits a number may have (E.164 allows 15; carriers' prefixes add a few).
pub const MAX_DIGITS: usize = 20;
/// Longest input line kept; a longer one is read through in chunks and reported invalid.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Characters of a bad line quoted in its report.
pub const EXCERPT_CHARS: usize = 60;

/// Why a string is not a number that may be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNumber {
    /// Nothing but separators.
    #[error("has no digits")]
    Empty,
    /// A character that is neither a digit nor a separator.
    #[error("{} is not allowed in a number (only digits, spaces, '-', '.', '(', ')' and one leading '+')", describe(*.0))]
    Character(char),
    /// A `+` after a digit or a second `+`.
    #[error("'+' is allowed once, before the digits")]
    MisplacedPlus,
    /// Fewer than [`MIN_DIGITS`] digits.
    #[error("has {0} digits, at least {MIN_DIGITS} are needed")]
    TooShort(usize),
    /// More than [`MAX_DIGITS`] digits.
    #[error("has {0} digits, at most {MAX_DIGITS} are allowed")]
    TooLong(usize),
}

/// Names a refused character so that invisible ones show in a report.
fn describe(ch: char) -> String {
    if ch.is_control() || ch.is_whitespace() {
        format!("control or space character U+{:04X}", u32::from(ch))
    } else if ch == ',' || ch == ';' {
        format!("{ch:?} (columns need a CSV header with a number or phone column)")
    } else {
        format!("{ch:?}")
    }
}

/// The number as it is dialled: the digits of `raw` once spaces, tabs, `-`, `.`, `(`, `)`
/// and one `+` before the digits are removed.
///
/// A leading `00` is kept: whether it is an international prefix depends on the trunk's
/// dial plan, and rewriting it would dial another number on a trunk that expects it. So
/// `+44 20 7946 0000` and `0044 20 7946 0000` are two different numbers here.
///
/// # Errors
/// Anything but ASCII digits and those separators (letters, `&`, `,`, `/`, `@`, `;`, `*`,
/// `#`, control characters, non-ASCII digits), and fewer than [`MIN_DIGITS`] or more than
/// [`MAX_DIGITS`] digits.
pub fn normalize(raw: &str) -> Result<String, InvalidNumber> {
    let mut digits = String::with_capacity(raw.len().min(MAX_DIGITS + 1));
    let mut count = 0usize;
    let mut plus = false;
    for ch in raw.chars() {
        match ch {
            '0'..='9' => {
                count += 1;
                // Past the limit only the count matters; the string stays bounded.
                if count <= MAX_DIGITS {
                    digits.push(ch);
                }
            }
            ' ' | '\t' | '-' | '.' | '(' | ')' => {}
            '+' if !plus && count == 0 => plus = true,
            '+' => return Err(InvalidNumber::MisplacedPlus),
            other => return Err(InvalidNumber::Character(other)),
        }
    }
    match count {
        0 => Err(InvalidNumber::Empty),
        n if n < MIN_DIGITS => Err(InvalidNumber::TooShort(n)),
        n if n > MAX_DIGITS => Err(InvalidNumber::TooLong(n)),
        _ => Ok(digits),
    }
}

/// Whether `name` can be an Asterisk channel variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// One valid number of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberEntry {
    /// Line of the input it came from (1-based; 0 when it came from `OUTBOUND_NUMBER`).
    pub line: u64,
    /// The normalised number (see [`normalize`]).
    pub number: String,
    /// The line's other columns by header name, passed to the call as channel variables.
    pub data: BTreeMap<String, String>,
}

/// A line that holds no usable number; it is reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    /// Line of the input (1-based).
    pub line: u64,
    /// What is wrong with it.
    pub reason: LineError,
    /// The line's start, lossily decoded, control characters replaced, at most
    /// [`EXCERPT_CHARS`] characters (then `…`).
    pub excerpt: String,
}

impl fmt::Display for InvalidLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} ({:?})",
            self.line, self.reason, self.excerpt
        )
    }
}

/// What is wrong with an input line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("is longer than {max} bytes ({len} bytes)")]
    TooLong {
        /// The limit.
        max: usize,
        /// The line's length.
        len: u64,
    },
    /// The line is not UTF-8 text.
    #[error("is not UTF-8 text")]
    NotText,
    /// The number (the whole line, or its number column) is refused.
    #[error("number {0}")]
    Number(#[from] InvalidNumber),
    /// A CSV line with another count of fields than the header.
    #[error("has {found} fields, the header has {expected}")]
    FieldCount {
        /// Fields on the line.
        found: usize,
        /// Columns of the header.
        expected: usize,
    },
    /// A CSV line with an unterminated quoted field (fields cannot span lines).
    #[error("has an unterminated quote (a field cannot span lines)")]
    UnterminatedQuote,
}

/// One line's result: a number, or the reason it is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A valid number.
    Entry(NumberEntry),
    /// A line that is skipped and reported.
    Invalid(InvalidLine),
}

/// The report's quote of a line: short, one line, no terminal control characters.
fn excerpt(bytes: &[u8]) -> String {
    // Four bytes per character at most: enough input for EXCERPT_CHARS characters.
    let head = &bytes[..bytes.len().min(EXCERPT_CHARS * 4 + 4)];
    let text = String::from_utf8_lossy(head);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|ch| if ch.is_control() { '\u{FFFD}' } else { ch })
        .collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() || head.len() < bytes.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_separators_and_one_leading_plus() {
        let cases = [
            ("5551234", "5551234"),
            ("+1 (555) 123-4567", "15551234567"),
            ("555.123.4567", "5551234567"),
            ("\t 555 1234 \t", "5551234"),
            ("(+44) 20 7946 0000", "442079460000"),
            ("0044 20 7946 0000", "00442079460000"),
            ("112", "112"),
            ("12345678901234567890", "12345678901234567890"),
            ("--555--", "555"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(expected), "{raw:?}");
        }
    }

    #[test]
    fn normalize_refuses_dial_string_characters_and_bad_lengths() {
        let cases = [
            ("1000&Local/x", InvalidNumber::Character('&')),
            ("1,2", InvalidNumber::Character(',')),
            ("555;1234", InvalidNumber::Character(';')),
            ("100@evil", InvalidNumber::Character('@')),
            ("PJSIP/100@trunk", InvalidNumber::Character('P')),
            ("555/1234", InvalidNumber::Character('/')),
            ("555\n1234", InvalidNumber::Character('\n')),
            ("555\r", InvalidNumber::Character('\r')),
            ("555\0", InvalidNumber::Character('\0')),
            ("555*12#", InvalidNumber::Character('*')),
            ("555٣٣٣", InvalidNumber::Character('٣')),
            ("555\u{a0}1234", InvalidNumber::Character('\u{a0}')),
            ("1+555", InvalidNumber::MisplacedPlus),
            ("++555", InvalidNumber::MisplacedPlus),
            ("", InvalidNumber::Empty),
            (" - () ", InvalidNumber::Empty),
            ("+", InvalidNumber::Empty),
            ("12", InvalidNumber::TooShort(2)),
            ("123456789012345678901", InvalidNumber::TooLong(21)),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn refusals_name_the_character() {
        let message = normalize("1000&Local/x").unwrap_err().to_string();
        assert!(message.contains("'&'"), "{message}");
        let message = normalize("555\u{1b}[2J").unwrap_err().to_string();
        assert!(message.contains("U+001B"), "{message}");
        let message = normalize("1,2").unwrap_err().to_string();
        assert!(message.contains("CSV header"), "{message}");
    }

    #[test]
    fn a_very_long_number_does_not_grow_the_result() {
        let raw = "9".repeat(100_000);
        assert_eq!(normalize(&raw), Err(InvalidNumber::TooLong(100_000)));
    }

    #[test]
    fn variable_names() {
        for good in ["name", "_x", "A1_b2", "customer_id"] {
            assert!(is_variable_name(good), "{good}");
        }
        for bad in ["", "1a", "first name", "a-b", "ä", "a.b", "${x}"] {
            assert!(!is_variable_name(bad), "{bad}");
        }
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"abc"), "abc");
        let long = excerpt("x".repeat(500).as_bytes());
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(excerpt(b"a\x1b[2Jb\xff"), "a\u{FFFD}[2Jb\u{FFFD}");
    }
}
