//! ARI's `Date`: a timestamp as Asterisk writes it, kept as text.

use std::fmt;

/// A point in time as ARI sends it, e.g. `2026-11-22T04:16:09.015+0000`.
///
/// Kept as the exact string Asterisk sent (so nothing is lost or reformatted on the way
/// through); [`Timestamp::unix_millis`] reads it as milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    /// Wraps a timestamp string.
    pub fn new(text: impl Into<String>) -> Self {
        Timestamp(text.into())
    }

    /// The timestamp as Asterisk sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Milliseconds since the Unix epoch, or `None` when the text is not of the form
    /// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HHMM|±HH:MM)`.
    pub fn unix_millis(&self) -> Option<i64> {
        parse_unix_millis(&self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Timestamp {
    fn from(text: &str) -> Self {
        Timestamp(text.to_owned())
    }
}

impl From<String> for Timestamp {
    fn from(text: String) -> Self {
        Timestamp(text)
    }
}

fn digits(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian), after Howard
/// Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn parse_unix_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (
        digits(text, 0..4)?,
        digits(text, 5..7)?,
        digits(text, 8..10)?,
    );
    let (hour, minute, second) = (
        digits(text, 11..13)?,
        digits(text, 14..16)?,
        digits(text, 17..19)?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let scaled: String = fraction[..len]
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        millis = scaled.parse::<i64>().ok()?;
        rest = &fraction[len..];
    }
    let offset_minutes = match rest.as_bytes().first() {
        Some(b'Z') if rest.len() == 1 => 0,
        Some(sign @ (b'+' | b'-')) => {
            let zone = rest[1..].replace(':', "");
            if zone.len() != 4 {
                return None;
            }
            let minutes = digits(&zone, 0..2)? * 60 + digits(&zone, 2..4)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_asterisk_timestamps() {
        assert_eq!(
            Timestamp::from("1970-01-01T00:00:00.000+0000").unix_millis(),
            Some(0)
        );
        assert_eq!(
            Timestamp::from("2026-11-22T04:16:09.015+0000").unix_millis(),
            Some(1_795_320_969_015)
        );
        assert_eq!(
            Timestamp::from("2026-11-22T05:16:09.015+0100").unix_millis(),
            Some(1_795_320_969_015)
        );
        assert_eq!(
            Timestamp::from("2026-11-22T04:16:09Z").unix_millis(),
            Some(1_795_320_969_000)
        );
        assert_eq!(
            Timestamp::from("2026-11-21T23:16:09.5-05:00").unix_millis(),
            Some(1_795_320_969_500)
        );
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-22T04:16:09",
            "2026-11-22T04:16:09.+0000",
            "2026-11-22 04:16:09Z",
            "２026-11-22T04:16:09Z",
        ] {
            assert_eq!(Timestamp::from(bad).unix_millis(), None, "{bad}");
        }
    }
}
