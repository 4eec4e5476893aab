//! Trading sessions: where a feed's day fields start over (docs/feeds.md,
//! "Trading sessions"). Time is always a parameter.

/// A trading session, named by the local date on which it starts in its
/// feed's time zone, with the instant it starts. Later sessions compare
/// greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionDay {
    date: jiff::civil::Date,
    start_micros: u64,
}

impl SessionDay {
    /// The local date on which the session starts.
    pub fn date(self) -> jiff::civil::Date {
        self.date
    }

    /// When the session starts, µs since the Unix epoch.
    pub fn start_micros(self) -> u64 {
        self.start_micros
    }
}

/// Where one trading session ends and the next begins: a local time of day
/// in an IANA time zone, e.g. 04:00 in `America/New_York` for US equities or
/// 00:00 `UTC` for crypto. Time is always a parameter: nothing here reads a
/// clock.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionClock {
    start: jiff::civil::Time,
    tz: jiff::tz::TimeZone,
}

/// Why a session boundary from the config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionClockError {
    /// `session_start` is not a time of day.
    #[error("must be a time of day as HH:MM (24-hour), such as \"04:00\"; got {0:?}")]
    BadStart(String),
    /// `session_tz` is not in the time zone database.
    #[error("must be an IANA time zone such as \"America/New_York\" or \"UTC\"; got {0:?}")]
    UnknownZone(String),
}

impl SessionClock {
    /// Sessions start at midnight UTC.
    pub fn utc_midnight() -> Self {
        Self {
            start: jiff::civil::Time::MIN,
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// Sessions starting at local time `start` in `tz`.
    pub fn new(start: jiff::civil::Time, tz: jiff::tz::TimeZone) -> Self {
        Self { start, tz }
    }

    /// Parses `start` (`HH:MM`, 24-hour) and looks up `zone` in the bundled
    /// IANA time zone database.
    pub fn parse(start: &str, zone: &str) -> Result<Self, SessionClockError> {
        Ok(Self::new(
            Self::parse_start(start)?,
            Self::parse_zone(zone)?,
        ))
    }

    /// Parses a session start time of day: `HH:MM`, two digits each, 00:00
    /// to 23:59.
    pub fn parse_start(text: &str) -> Result<jiff::civil::Time, SessionClockError> {
        let bad = || SessionClockError::BadStart(text.to_string());
        let (hour, minute) = text.split_once(':').ok_or_else(bad)?;
        let two_digits = |part: &str| -> Result<i8, SessionClockError> {
            if part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        jiff::civil::Time::new(two_digits(hour)?, two_digits(minute)?, 0, 0).map_err(|_| bad())
    }

    /// Looks up an IANA time zone name in the time zone database bundled
    /// with tickgate (the host's /usr/share/zoneinfo is not needed).
    pub fn parse_zone(name: &str) -> Result<jiff::tz::TimeZone, SessionClockError> {
        jiff::tz::TimeZone::get(name).map_err(|_| SessionClockError::UnknownZone(name.to_string()))
    }

    /// The session the instant `micros` (µs since the Unix epoch) falls in:
    /// the last local start time at or before it. On a day whose start time
    /// does not exist (a DST gap) the session starts that much later by the
    /// clock (02:30 becomes 03:30); on a day it occurs twice, at the first.
    /// `None` only for an instant outside the calendar's range.
    pub fn session_of(&self, micros: u64) -> Option<SessionDay> {
        let at = jiff::Timestamp::from_microsecond(i64::try_from(micros).ok()?).ok()?;
        let today = self.tz.to_datetime(at).date();
        let date = if at >= self.start_of(today)? {
            today
        } else {
            today.yesterday().ok()?
        };
        let start_micros = u64::try_from(self.start_of(date)?.as_microsecond()).ok()?;
        Some(SessionDay { date, start_micros })
    }

    /// The instant the session of local date `date` starts.
    fn start_of(&self, date: jiff::civil::Date) -> Option<jiff::Timestamp> {
        self.tz
            .to_ambiguous_timestamp(jiff::civil::DateTime::from_parts(date, self.start))
            .compatible()
            .ok()
    }
}

/// A [`SessionClock`] that remembers the last session it found and when the
/// next one starts, so the ticks of one session are stamped with two
/// comparisons instead of a time zone look-up each.
#[derive(Debug, Clone)]
pub struct SessionStamper {
    clock: SessionClock,
    /// The last session found and the start of the one after it (µs).
    current: Option<(SessionDay, u64)>,
}

impl SessionStamper {
    pub fn new(clock: SessionClock) -> Self {
        Self {
            clock,
            current: None,
        }
    }

    /// The same answer as [`SessionClock::session_of`].
    pub fn session_of(&mut self, micros: u64) -> Option<SessionDay> {
        if let Some((day, next_start)) = self.current
            && (day.start_micros..next_start).contains(&micros)
        {
            return Some(day);
        }
        let day = self.clock.session_of(micros)?;
        self.current = day
            .date
            .tomorrow()
            .ok()
            .and_then(|next| self.clock.start_of(next))
            .and_then(|next| u64::try_from(next.as_microsecond()).ok())
            .map(|next_start| (day, next_start));
        Some(day)
    }
}
