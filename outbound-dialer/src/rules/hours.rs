//! Calling hours: a window of local time (default 08:00–21:00) in the callee's time zone,
//! taken from the number's CSV column (`timezone`, `tz` or `time_zone`: an IANA name such
//! as `Europe/Berlin`), else derived from its country calling code (numbers are stored as
//! digits, read as international E.164 without the `+`; for `+1`, the US, Canada and the
//! Caribbean, from its area code), else the campaign's `--default-timezone` (also for
//! countries with several zones: RU/KZ, AU, BR, MX, ID, ...). The tables are in
//! `hours/zones.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr as _;

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone as _, Timelike as _, Utc,
};
use chrono_tz::Tz;

use super::RuleError;

/// Names of the per-number data column that carries the callee's time zone.
pub const TIMEZONE_COLUMNS: [&str; 3] = ["timezone", "tz", "time_zone"];

/// A daily window of local time, `start` included, `end` excluded, in seconds of the
/// day; `end` may be 86 400 (midnight at the end), and `start > end` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    start: u32,
    end: u32,
}

const HOUR: u32 = 3600;
const DAY: u32 = 24 * HOUR;

impl Default for CallingWindow {
    fn default() -> Self {
        CallingWindow {
            start: 8 * HOUR,
            end: 21 * HOUR,
        }
    }
}

fn write_time(f: &mut fmt::Formatter<'_>, secs: u32) -> fmt::Result {
    write!(f, "{:02}:{:02}", secs / HOUR, secs % HOUR / 60)?;
    if secs % 60 != 0 {
        write!(f, ":{:02}", secs % 60)?;
    }
    Ok(())
}

impl fmt::Display for CallingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_time(f, self.start)?;
        f.write_str("-")?;
        write_time(f, self.end)
    }
}

impl CallingWindow {
    /// Always open (`00:00-24:00`).
    pub const ALWAYS: CallingWindow = CallingWindow { start: 0, end: DAY };

    /// Reads `08:00-21:00` (`HH:MM[:SS]-HH:MM[:SS]`; `24:00` as the end; an end before
    /// the start wraps past midnight).
    ///
    /// # Errors
    /// Anything else, or an empty window (start = end).
    pub fn parse(text: &str) -> Result<CallingWindow, RuleError> {
        let bad = || RuleError::new(format!("{text:?} is not a window like 08:00-21:00"));
        let (start, end) = text.trim().split_once('-').ok_or_else(bad)?;
        let seconds = |time: &str| -> Result<u32, RuleError> {
            let parts: Vec<&str> = time.trim().split(':').collect();
            let well_formed = matches!(parts.len(), 2 | 3)
                && (1..=2).contains(&parts[0].len())
                && parts[1..].iter().all(|p| p.len() == 2)
                && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()));
            if !well_formed {
                return Err(bad());
            }
            let num = |t: &str| t.parse::<u32>().map_err(|_| bad());
            let h = num(parts[0])?;
            let m = num(parts[1])?;
            let s = parts.get(2).map_or(Ok(0), |s| num(s))?;
            if m >= 60 || s >= 60 || h > 24 || (h == 24 && (m, s) != (0, 0)) {
                return Err(bad());
            }
            Ok(h * HOUR + m * 60 + s)
        };
        let (start, end) = (seconds(start)?, seconds(end)?);
        if start == DAY {
            return Err(bad());
        }
        if start == end {
            return Err(RuleError::new(format!(
                "{text:?} is empty (use 00:00-24:00 for always)"
            )));
        }
        Ok(CallingWindow { start, end })
    }

    /// Whether a local time of day (in seconds) is inside.
    fn contains(&self, second: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&second)
        } else {
            second >= self.start || second < self.end
        }
    }

    /// Whether `now` is inside the window in zone `tz`.
    pub fn is_open(&self, tz: Tz, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&tz);
        self.contains(local.num_seconds_from_midnight())
    }

    /// `now` when the window is open in `tz`, else the next instant it opens.
    pub fn next_open(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(tz, now) {
            return now;
        }
        let local = now.with_timezone(&tz);
        let start =
            NaiveTime::from_num_seconds_from_midnight_opt(self.start, 0).unwrap_or(NaiveTime::MIN);
        // Today's opening if it is still ahead, else tomorrow's (or the day after, when a
        // time change makes a day odd).
        let today = local.date_naive();
        for day in 0..3 {
            let Some(date) = today.checked_add_signed(Duration::days(day)) else {
                break;
            };
            if let Some(open) = opening_on(tz, date, start) {
                if open > now {
                    return open;
                }
            }
        }
        // Unreachable for real zones; never leave a number waiting forever.
        now + Duration::hours(1)
    }
}

/// The instant local `start` happens on `date` in `tz`: the earlier one when clocks go
/// back, the first minute after the gap when clocks jump over it.
fn opening_on(tz: Tz, date: NaiveDate, start: NaiveTime) -> Option<DateTime<Utc>> {
    let mut local = date.and_time(start);
    for _ in 0..=180 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(at) => return Some(at.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, _) => return Some(earlier.with_timezone(&Utc)),
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    None
}

/// Where a number's zone came from (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneSource {
    /// The number's time zone column.
    Column,
    /// Its country calling code.
    CountryCode,
    /// Its NANP area code (`+1`).
    AreaCode,
    /// The campaign default (no or an ambiguous country code, an unknown area code).
    Default,
}

/// The campaign's calling hours: the window and how callees' zones are found.
#[derive(Debug, Clone, PartialEq)]
pub struct CallingHours {
    window: CallingWindow,
    default_zone: Tz,
    national: Option<NationalNumbers>,
}

impl CallingHours {
    /// `window` in each callee's zone; `default_zone` where it cannot be told.
    pub fn new(window: CallingWindow, default_zone: Tz) -> Self {
        CallingHours {
            window,
            default_zone,
            national: None,
        }
    }

    /// The country of numbers written in national form, if the list has them.
    pub fn national(&self) -> Option<&NationalNumbers> {
        self.national.as_ref()
    }

    /// Reads numbers written in national form as numbers of `national`'s country.
    pub fn with_national(mut self, national: Option<NationalNumbers>) -> Self {
        self.national = national;
        self
    }

    /// The window.
    pub fn window(&self) -> CallingWindow {
        self.window
    }

    /// The zone used where a number's own cannot be told.
    pub fn default_zone(&self) -> Tz {
        self.default_zone
    }

    /// Whether the window applies at all (not `00:00-24:00`).
    pub fn limits(&self) -> bool {
        self.window != CallingWindow::ALWAYS
    }

    /// The callee's zone: its column, its country code, or the default.
    ///
    /// # Errors
    /// A column that names no IANA zone (the number is not dialled: its hours are
    /// unknown).
    pub fn zone_of(
        &self,
        number: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(Tz, ZoneSource), RuleError> {
        let column = data
            .iter()
            .find(|(key, value)| {
                TIMEZONE_COLUMNS.contains(&key.to_ascii_lowercase().as_str())
                    && !value.trim().is_empty()
            })
            .map(|(_, value)| value.trim());
        if let Some(name) = column {
            return parse_zone(name).map(|tz| (tz, ZoneSource::Column));
        }
        let international = match &self.national {
            Some(national) => national.international(number),
            None => std::borrow::Cow::Borrowed(number),
        };
        Ok(zone_by_number(&international).unwrap_or((self.default_zone, ZoneSource::Default)))
    }

    /// `now` when the number may be called now, else when it may.
    ///
    /// # Errors
    /// As [`CallingHours::zone_of`].
    pub fn next_open(
        &self,
        number: &str,
        data: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, RuleError> {
        if !self.limits() {
            return Ok(now);
        }
        let (tz, _) = self.zone_of(number, data)?;
        Ok(self.window.next_open(tz, now))
    }
}

/// The country whose numbers a list writes in national form (without the country code),
/// for the time-zone lookup only: the number is dialled as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalNumbers {
    code: String,
}

impl NationalNumbers {
    /// A country calling code (`1`, `44`; a leading `+` is allowed).
    ///
    /// # Errors
    /// Not 1 to 3 digits, or no country's code.
    pub fn parse(text: &str) -> Result<NationalNumbers, RuleError> {
        let code = text.trim();
        let code = code.strip_prefix('+').unwrap_or(code);
        if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RuleError::new(
                "a country calling code is 1 to 3 digits (1 for the US and Canada, 44 for the UK)",
            ));
        }
        let known = code == "1"
            || zones::COUNTRY_ZONES.iter().any(|(c, _)| *c == code)
            || zones::AMBIGUOUS_CODES.iter().any(|(c, _)| *c == code);
        if !known {
            return Err(RuleError::new(format!(
                "+{code} is no country calling code this dialer knows"
            )));
        }
        Ok(NationalNumbers {
            code: code.to_owned(),
        })
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// `number` as international digits: for `1` (the NANP) a 10-digit number gets the
    /// `1`, `011…` loses its international prefix; elsewhere a number with the trunk
    /// prefix `0` gets the code in its place and `00…` loses its international prefix.
    /// Others are taken as international already.
    pub fn international<'a>(&self, number: &'a str) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        if self.code == "1" {
            if let Some(rest) = number.strip_prefix("011") {
                return Cow::Borrowed(rest);
            }
            let national = number.len() == 10 && matches!(number.as_bytes()[0], b'2'..=b'9');
            if national {
                return Cow::Owned(format!("1{number}"));
            }
            return Cow::Borrowed(number);
        }
        if let Some(rest) = number.strip_prefix("00") {
            return Cow::Borrowed(rest);
        }
        match number.strip_prefix('0') {
            Some(rest) => Cow::Owned(format!("{}{rest}", self.code)),
            None => Cow::Borrowed(number),
        }
    }
}

/// An IANA zone name (`Europe/Berlin`, `UTC`; case as the database spells it, or any).
///
/// # Errors
/// A name that is no zone.
pub fn parse_zone(name: &str) -> Result<Tz, RuleError> {
    Tz::from_str(name)
        .ok()
        .or_else(|| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .copied()
                .find(|tz| tz.name().eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| {
            RuleError::new(format!(
                "{name:?} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)"
            ))
        })
}

mod zones;

/// The zone of a number (international E.164 digits, without the `+`) when it can be told
/// from the number: for `+1` (the NANP: the US, Canada, the Caribbean) from its area code,
/// for other countries from the country calling code (and, for the few regions of a
/// country on another time whose numbers show it, a longer prefix). `None` (the campaign
/// default applies): a national number (leading 0), a country with several zones (`+7`,
/// `+52`, `+55`, `+61`, `+62`, ...), a NANP number that is not `1` + 10 digits, a
/// toll-free or unknown area code, or one with no majority zone (867).
pub fn zone_of_country_code(number: &str) -> Option<Tz> {
    zone_by_number(number).map(|(tz, _)| tz)
}

/// [`zone_of_country_code`], and whether the area code or the country code told it.
fn zone_by_number(number: &str) -> Option<(Tz, ZoneSource)> {
    // A leading 0 is a national or trunk prefix: no country code to read.
    if number.starts_with('0') {
        return None;
    }
    // Country codes are prefix-free: the first that matches is the number's.
    for len in 1..=3 {
        let code = number.get(..len)?;
        if code == "1" {
            return zone_of_nanp(number).map(|tz| (tz, ZoneSource::AreaCode));
        }
        if zones::AMBIGUOUS_CODES.iter().any(|(c, _)| *c == code) {
            return None;
        }
        if let Some((_, tz)) = zones::COUNTRY_ZONES.iter().find(|(c, _)| *c == code) {
            let region = zones::REGION_ZONES
                .iter()
                .filter(|(prefix, _)| number.starts_with(prefix))
                .max_by_key(|(prefix, _)| prefix.len());
            return Some((region.map_or(*tz, |(_, tz)| *tz), ZoneSource::CountryCode));
        }
    }
    None
}

/// The zone of a NANP number, `1` + 10 digits, from its area code.
fn zone_of_nanp(number: &str) -> Option<Tz> {
    let digits = number.strip_prefix('1')?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    zone_of_area_code(digits.get(..3)?.parse().ok()?)
}

/// The zone of a NANP area code: its own zone, the zone of most of its numbers when it
/// spans two, `None` when it is not geographic, not in service or has no majority zone.
pub fn zone_of_area_code(area_code: u16) -> Option<Tz> {
    if zones::NANP_NO_MAJORITY
        .iter()
        .any(|(code, _)| *code == area_code)
    {
        return None;
    }
    if let Some((_, tz, _)) = zones::NANP_SPANNING
        .iter()
        .find(|(code, _, _)| *code == area_code)
    {
        return Some(*tz);
    }
    zones::NANP_ZONES
        .iter()
        .find(|(_, codes)| codes.contains(&area_code))
        .map(|(tz, _)| *tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::clock::{Clock as _, FakeClock, parse_utc};

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn windows_parse_and_print() {
        assert_eq!(CallingWindow::default().to_string(), "08:00-21:00");
        assert_eq!(
            CallingWindow::parse("9:30-17:00").unwrap().to_string(),
            "09:30-17:00"
        );
        let window = CallingWindow::parse("12:00:05-12:30").unwrap();
        assert_eq!(window.to_string(), "12:00:05-12:30");
        let utc = Tz::UTC;
        assert!(!window.is_open(utc, parse_utc("2026-01-01T12:00:04Z")));
        assert!(window.is_open(utc, parse_utc("2026-01-01T12:00:05Z")));
        assert_eq!(
            window.next_open(utc, parse_utc("2026-01-01T12:00:01Z")),
            parse_utc("2026-01-01T12:00:05Z")
        );
        assert_eq!(
            CallingWindow::parse("00:00-24:00").unwrap(),
            CallingWindow::ALWAYS
        );
        for bad in [
            "",
            "8-21",
            "08:00",
            "08:00-08:00",
            "25:00-26:00",
            "08:60-09:00",
            "24:00-08:00",
            "08:00-24:01",
        ] {
            assert!(CallingWindow::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_window_is_read_in_the_callees_zone() {
        let hours = CallingHours::new(CallingWindow::default(), Tz::UTC);
        // 07:30 UTC is 08:30 in Berlin (winter) but 07:30 in London.
        let clock = FakeClock::at_rfc3339("2026-01-15T07:30:00Z");
        let now = clock.now();
        let berlin = hours
            .next_open("4930123456", &BTreeMap::new(), now)
            .unwrap();
        assert_eq!(berlin, now, "open in Berlin");
        let london = hours
            .next_open("442079460000", &BTreeMap::new(), now)
            .unwrap();
        assert_eq!(london, parse_utc("2026-01-15T08:00:00Z"));
    }

    #[test]
    fn next_open_is_the_next_local_opening() {
        let window = CallingWindow::default();
        let ny = Tz::America__New_York;
        // 21:00 in New York (EST, UTC-5) is 02:00 UTC: closed until 08:00 EST = 13:00 UTC.
        let clock = FakeClock::at_rfc3339("2026-01-16T02:00:00Z");
        assert!(!window.is_open(ny, clock.now()));
        assert_eq!(
            window.next_open(ny, clock.now()),
            parse_utc("2026-01-16T13:00:00Z")
        );
        // One minute before closing it is open; at closing it is not.
        clock.set(parse_utc("2026-01-16T01:59:00Z"));
        assert!(window.is_open(ny, clock.now()));
        clock.advance(std::time::Duration::from_secs(60));
        assert!(!window.is_open(ny, clock.now()));
        // Early morning: today's opening.
        clock.set(parse_utc("2026-01-16T12:00:00Z"));
        assert_eq!(
            window.next_open(ny, clock.now()),
            parse_utc("2026-01-16T13:00:00Z")
        );
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(window.is_open(ny, clock.now()));
        assert_eq!(window.next_open(ny, clock.now()), clock.now());
    }

    #[test]
    fn openings_follow_daylight_saving_time() {
        let window = CallingWindow::default();
        let berlin = Tz::Europe__Berlin;
        // Summer: 08:00 CEST is 06:00 UTC; winter 07:00 UTC.
        assert_eq!(
            window.next_open(berlin, parse_utc("2026-07-01T03:00:00Z")),
            parse_utc("2026-07-01T06:00:00Z")
        );
        assert_eq!(
            window.next_open(berlin, parse_utc("2026-01-01T03:00:00Z")),
            parse_utc("2026-01-01T07:00:00Z")
        );
        // An opening inside the spring-forward gap (02:30 on 2026-03-29 does not exist
        // in Berlin) moves to the first minute after it.
        let night = CallingWindow::parse("02:30-05:00").unwrap();
        assert_eq!(
            night.next_open(berlin, parse_utc("2026-03-28T23:00:00Z")),
            parse_utc("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn a_window_past_midnight_wraps() {
        let window = CallingWindow::parse("22:00-02:00").unwrap();
        let utc = Tz::UTC;
        assert!(window.is_open(utc, parse_utc("2026-01-01T23:00:00Z")));
        assert!(window.is_open(utc, parse_utc("2026-01-01T01:00:00Z")));
        assert!(!window.is_open(utc, parse_utc("2026-01-01T12:00:00Z")));
        assert_eq!(
            window.next_open(utc, parse_utc("2026-01-01T12:00:00Z")),
            parse_utc("2026-01-01T22:00:00Z")
        );
    }

    #[test]
    fn zones_come_from_the_column_then_the_country_code_then_the_default() {
        let hours = CallingHours::new(CallingWindow::default(), Tz::America__Chicago);
        let (tz, from) = hours
            .zone_of("12125550000", &data(&[("TimeZone", "Asia/Tokyo")]))
            .unwrap();
        assert_eq!((tz, from), (Tz::Asia__Tokyo, ZoneSource::Column));
        assert_eq!(
            hours.zone_of("4930123456", &BTreeMap::new()).unwrap(),
            (Tz::Europe__Berlin, ZoneSource::CountryCode)
        );
        assert_eq!(
            hours.zone_of("380441234567", &BTreeMap::new()).unwrap(),
            (Tz::Europe__Kyiv, ZoneSource::CountryCode)
        );
        // A NANP number by its area code.
        assert_eq!(
            hours.zone_of("12125550000", &BTreeMap::new()).unwrap(),
            (Tz::America__New_York, ZoneSource::AreaCode)
        );
        // Several zones (RU/KZ, MX, BR, AU, ID), national numbers, a NANP number whose
        // zone cannot be told (toll-free, no majority, not 1 + 10 digits): the default.
        for number in [
            "18005550000",
            "18675550000",
            "1212555000",
            "121255500001",
            "1001",
            "74951234567",
            "525512345678",
            "5511987654321",
            "61212345678",
            "622112345678",
            "0301234567",
        ] {
            assert_eq!(
                hours.zone_of(number, &BTreeMap::new()).unwrap(),
                (Tz::America__Chicago, ZoneSource::Default),
                "{number}"
            );
        }
        let error = hours
            .zone_of("4930123456", &data(&[("tz", "Mars/Olympus")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("Mars/Olympus"), "{error}");
        // An empty column falls back to the code.
        assert_eq!(
            hours
                .zone_of("4930123456", &data(&[("tz", " ")]))
                .unwrap()
                .1,
            ZoneSource::CountryCode
        );
    }

    #[test]
    fn national_numbers_are_read_in_their_country() {
        let none = BTreeMap::new();
        let at = |national: &str, number: &str| {
            CallingHours::new(CallingWindow::default(), Tz::UTC)
                .with_national(Some(NationalNumbers::parse(national).unwrap()))
                .zone_of(number, &none)
                .unwrap()
        };
        // Without it, 305… (Miami) reads as +30 (Greece): what the option is for.
        let plain = CallingHours::new(CallingWindow::default(), Tz::UTC);
        assert_eq!(
            plain.zone_of("3055551234", &none).unwrap().0,
            Tz::Europe__Athens
        );
        assert_eq!(
            at("1", "3055551234"),
            (Tz::America__New_York, ZoneSource::AreaCode)
        );
        assert_eq!(
            at("+1", "2135550100"),
            (Tz::America__Los_Angeles, ZoneSource::AreaCode)
        );
        assert_eq!(
            at("1", "13125550100").0,
            Tz::America__Chicago,
            "already with its 1"
        );
        assert_eq!(
            at("1", "011442079460000").0,
            Tz::Europe__London,
            "dialled abroad"
        );
        assert_eq!(
            at("1", "5551234"),
            (Tz::UTC, ZoneSource::Default),
            "7 digits"
        );
        assert_eq!(
            at("44", "02079460000"),
            (Tz::Europe__London, ZoneSource::CountryCode)
        );
        assert_eq!(at("44", "00493012345678").0, Tz::Europe__Berlin);
        assert_eq!(
            at("44", "493012345678").0,
            Tz::Europe__Berlin,
            "international already"
        );
        for bad in ["", "+", "1234", "x1", "999"] {
            assert!(NationalNumbers::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nanp_numbers_get_their_area_codes_zone() {
        for (area_code, zone) in [
            (212, Tz::America__New_York),
            (689, Tz::America__New_York),
            (305, Tz::America__New_York),
            (213, Tz::America__Los_Angeles),
            (312, Tz::America__Chicago),
            (303, Tz::America__Denver),
            (602, Tz::America__Phoenix),
            (808, Tz::Pacific__Honolulu),
            (907, Tz::America__Anchorage),
            (416, Tz::America__Toronto),
            (514, Tz::America__Toronto),
            (604, Tz::America__Vancouver),
            (403, Tz::America__Edmonton),
            (306, Tz::America__Regina),
            (204, Tz::America__Winnipeg),
            (902, Tz::America__Halifax),
            (709, Tz::America__St_Johns),
            (787, Tz::America__Puerto_Rico),
            (876, Tz::America__Jamaica),
            (809, Tz::America__Santo_Domingo),
            (441, Tz::Atlantic__Bermuda),
            (671, Tz::Pacific__Guam),
            // Spanning two zones: the zone of most of its numbers.
            (850, Tz::America__Chicago),
            (812, Tz::America__New_York),
            (208, Tz::America__Boise),
            (605, Tz::America__Chicago),
        ] {
            assert_eq!(zone_of_area_code(area_code), Some(zone), "{area_code}");
            let number = format!("1{area_code}5550123");
            assert_eq!(zone_of_country_code(&number), Some(zone), "{number}");
        }
        // Not geographic, not in service, no majority: the default.
        for area_code in [800, 888, 900, 555, 867, 999, 100] {
            assert_eq!(zone_of_area_code(area_code), None, "{area_code}");
        }
        // At 13:30 UTC in January: 08:30 in New York (open), 05:30 in Los Angeles.
        let hours = CallingHours::new(CallingWindow::default(), Tz::UTC);
        let now = parse_utc("2026-01-15T13:30:00Z");
        assert_eq!(
            hours
                .next_open("12125550123", &BTreeMap::new(), now)
                .unwrap(),
            now
        );
        assert_eq!(
            hours
                .next_open("12135550123", &BTreeMap::new(), now)
                .unwrap(),
            parse_utc("2026-01-15T16:00:00Z")
        );
    }

    #[test]
    fn the_nanp_tables_hold_each_area_code_once() {
        let mut seen = std::collections::BTreeSet::new();
        let spanning = zones::NANP_SPANNING.iter().map(|(code, _, _)| *code);
        let no_majority = zones::NANP_NO_MAJORITY.iter().map(|(code, _)| *code);
        let single = zones::NANP_ZONES
            .iter()
            .flat_map(|(_, codes)| codes.iter().copied());
        for code in single.chain(spanning).chain(no_majority) {
            assert!(seen.insert(code), "{code} is listed twice");
            // NXX, N = 2-9; N11 codes are services, not areas.
            assert!((200..=999).contains(&code) && code % 100 != 11, "{code}");
        }
        assert!(seen.len() > 400, "{}", seen.len());
        // Every spanning entry says where the rest of its numbers are.
        assert!(
            zones::NANP_SPANNING
                .iter()
                .all(|(_, _, why)| why.contains("time"))
        );
    }

    #[test]
    fn countries_get_their_zone_and_several_zones_the_default() {
        for (number, zone) in [
            ("4930123456", Tz::Europe__Berlin),
            ("33142685300", Tz::Europe__Paris),
            ("819012345678", Tz::Asia__Tokyo),
            ("5491123456789", Tz::America__Argentina__Buenos_Aires),
            ("27211234567", Tz::Africa__Johannesburg),
            ("2348012345678", Tz::Africa__Lagos),
            ("211912345678", Tz::Africa__Juba),
            ("3546123456", Tz::Atlantic__Reykjavik),
            ("97142345678", Tz::Asia__Dubai),
            ("6421234567", Tz::Pacific__Auckland),
            ("6723221234", Tz::Pacific__Norfolk),
            ("59899123456", Tz::America__Montevideo),
            ("299321000", Tz::America__Nuuk),
            // Mainland Spain and its Canary Islands, Portugal and the Azores, Reunion and
            // Mayotte: told apart by area code.
            ("34915551234", Tz::Europe__Madrid),
            ("34928123456", Tz::Atlantic__Canary),
            ("351213456789", Tz::Europe__Lisbon),
            ("351296123456", Tz::Atlantic__Azores),
            ("262262123456", Tz::Indian__Reunion),
            ("262269612345", Tz::Indian__Mayotte),
        ] {
            assert_eq!(zone_of_country_code(number), Some(zone), "{number}");
        }
        // Several zones, international networks, unassigned codes, national numbers.
        for number in [
            "74951234567",
            "77012345678",
            "525512345678",
            "5511987654321",
            "61212345678",
            "622112345678",
            "243812345678",
            "68675012345",
            "80012345678",
            "88216123456",
            "2801234567",
            "0301234567",
        ] {
            assert_eq!(zone_of_country_code(number), None, "{number}");
        }
    }

    #[test]
    fn the_country_table_is_prefix_free_and_disjoint_from_the_ambiguous_codes() {
        let codes: Vec<&str> = zones::COUNTRY_ZONES.iter().map(|(c, _)| *c).collect();
        let ambiguous: Vec<&str> = zones::AMBIGUOUS_CODES.iter().map(|(c, _)| *c).collect();
        for (i, a) in codes.iter().chain(&ambiguous).enumerate() {
            assert!((1..=3).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_digit()));
            for b in codes.iter().chain(&ambiguous).skip(i + 1) {
                assert!(!a.starts_with(b) && !b.starts_with(a), "{a} and {b}");
            }
        }
        // A region's prefix lies inside a country code of the table.
        for (prefix, _) in zones::REGION_ZONES {
            assert!(
                codes
                    .iter()
                    .any(|c| prefix.starts_with(c) && prefix.len() > c.len()),
                "{prefix}"
            );
        }
        assert!(codes.len() > 190, "{}", codes.len());
    }

    #[test]
    fn always_open_never_waits() {
        let hours = CallingHours::new(CallingWindow::ALWAYS, Tz::UTC);
        assert!(!hours.limits());
        let now = parse_utc("2026-01-01T03:00:00Z");
        assert_eq!(hours.next_open("1000", &BTreeMap::new(), now).unwrap(), now);
    }

    #[test]
    fn zone_names_parse() {
        assert_eq!(parse_zone("Europe/Berlin").unwrap(), Tz::Europe__Berlin);
        assert_eq!(parse_zone("europe/berlin").unwrap(), Tz::Europe__Berlin);
        assert_eq!(parse_zone("UTC").unwrap(), Tz::UTC);
        assert!(parse_zone("Nowhere/City").is_err());
    }
}
