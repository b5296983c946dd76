//! Calling hours: a window of local time (default 08:00–21:00) in the callee's time zone,
//! taken from the number's CSV column (`timezone`, `tz` or `time_zone`: an IANA name such
//! as `Europe/Berlin`), else derived from its country calling code (numbers are stored as
//! digits, read as international E.164 without the `+`), else the campaign's
//! `--default-timezone` (also for countries with several zones: US/CA/RU/AU/BR/MX/...).

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
    /// The campaign default (no or an ambiguous country code).
    Default,
}

/// The campaign's calling hours: the window and how callees' zones are found.
#[derive(Debug, Clone, PartialEq)]
pub struct CallingHours {
    window: CallingWindow,
    default_zone: Tz,
}

impl CallingHours {
    /// `window` in each callee's zone; `default_zone` where it cannot be told.
    pub fn new(window: CallingWindow, default_zone: Tz) -> Self {
        CallingHours {
            window,
            default_zone,
        }
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
        match zone_of_country_code(number) {
            Some(tz) => Ok((tz, ZoneSource::CountryCode)),
            None => Ok((self.default_zone, ZoneSource::Default)),
        }
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

/// Country calling codes whose country has one civil time (or one that nearly all its
/// numbers use), longest codes first within each length. Codes not here (among them
/// 1, 7, 52, 55, 61, 62: several zones) use the campaign default.
const COUNTRY_ZONES: &[(&str, Tz)] = &[
    // Three digits.
    ("212", Tz::Africa__Casablanca),
    ("213", Tz::Africa__Algiers),
    ("216", Tz::Africa__Tunis),
    ("233", Tz::Africa__Accra),
    ("234", Tz::Africa__Lagos),
    ("254", Tz::Africa__Nairobi),
    ("255", Tz::Africa__Dar_es_Salaam),
    ("256", Tz::Africa__Kampala),
    ("351", Tz::Europe__Lisbon),
    ("352", Tz::Europe__Luxembourg),
    ("353", Tz::Europe__Dublin),
    ("354", Tz::Atlantic__Reykjavik),
    ("356", Tz::Europe__Malta),
    ("357", Tz::Asia__Nicosia),
    ("358", Tz::Europe__Helsinki),
    ("359", Tz::Europe__Sofia),
    ("370", Tz::Europe__Vilnius),
    ("371", Tz::Europe__Riga),
    ("372", Tz::Europe__Tallinn),
    ("373", Tz::Europe__Chisinau),
    ("374", Tz::Asia__Yerevan),
    ("375", Tz::Europe__Minsk),
    ("380", Tz::Europe__Kyiv),
    ("381", Tz::Europe__Belgrade),
    ("385", Tz::Europe__Zagreb),
    ("386", Tz::Europe__Ljubljana),
    ("420", Tz::Europe__Prague),
    ("421", Tz::Europe__Bratislava),
    ("852", Tz::Asia__Hong_Kong),
    ("880", Tz::Asia__Dhaka),
    ("886", Tz::Asia__Taipei),
    ("961", Tz::Asia__Beirut),
    ("962", Tz::Asia__Amman),
    ("965", Tz::Asia__Kuwait),
    ("966", Tz::Asia__Riyadh),
    ("971", Tz::Asia__Dubai),
    ("972", Tz::Asia__Jerusalem),
    ("974", Tz::Asia__Qatar),
    ("994", Tz::Asia__Baku),
    ("995", Tz::Asia__Tbilisi),
    ("998", Tz::Asia__Tashkent),
    // Two digits.
    ("20", Tz::Africa__Cairo),
    ("27", Tz::Africa__Johannesburg),
    ("30", Tz::Europe__Athens),
    ("31", Tz::Europe__Amsterdam),
    ("32", Tz::Europe__Brussels),
    ("33", Tz::Europe__Paris),
    ("34", Tz::Europe__Madrid),
    ("36", Tz::Europe__Budapest),
    ("39", Tz::Europe__Rome),
    ("40", Tz::Europe__Bucharest),
    ("41", Tz::Europe__Zurich),
    ("43", Tz::Europe__Vienna),
    ("44", Tz::Europe__London),
    ("45", Tz::Europe__Copenhagen),
    ("46", Tz::Europe__Stockholm),
    ("47", Tz::Europe__Oslo),
    ("48", Tz::Europe__Warsaw),
    ("49", Tz::Europe__Berlin),
    ("51", Tz::America__Lima),
    ("53", Tz::America__Havana),
    ("54", Tz::America__Argentina__Buenos_Aires),
    ("56", Tz::America__Santiago),
    ("57", Tz::America__Bogota),
    ("58", Tz::America__Caracas),
    ("60", Tz::Asia__Kuala_Lumpur),
    ("63", Tz::Asia__Manila),
    ("64", Tz::Pacific__Auckland),
    ("65", Tz::Asia__Singapore),
    ("66", Tz::Asia__Bangkok),
    ("81", Tz::Asia__Tokyo),
    ("82", Tz::Asia__Seoul),
    ("84", Tz::Asia__Ho_Chi_Minh),
    ("86", Tz::Asia__Shanghai),
    ("90", Tz::Europe__Istanbul),
    ("91", Tz::Asia__Kolkata),
    ("92", Tz::Asia__Karachi),
    ("94", Tz::Asia__Colombo),
    ("98", Tz::Asia__Tehran),
];

/// Country codes of countries with several zones: the default applies, never a guess
/// from a longer code that merely starts the same way.
const AMBIGUOUS_CODES: &[&str] = &["1", "7", "52", "55", "61", "62"];

/// The zone of a number's country calling code, when its country has one.
pub fn zone_of_country_code(number: &str) -> Option<Tz> {
    // A leading 0 is a national or trunk prefix: no country code to read.
    if number.starts_with('0') {
        return None;
    }
    for len in 1..=3 {
        let prefix = number.get(..len)?;
        if AMBIGUOUS_CODES.contains(&prefix) {
            return None;
        }
        if let Some((_, tz)) = COUNTRY_ZONES.iter().find(|(code, _)| *code == prefix) {
            return Some(*tz);
        }
    }
    None
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
        // Several zones (US/CA, RU/KZ, MX, BR, AU, ID) and national numbers: the default.
        for number in [
            "12125550000",
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
