//! What every feed parser shares: the [`ParseError`] enum whose `kind()` is
//! the `reason` metric label, the [`Decoded`] output one message turns into,
//! the reusable simd-json scratch, and typed field readers.
//!
//! Parsers are pure: bytes in, ticks and rejects out. No clock, no I/O, no
//! metrics; the runner counts and logs what they report.

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};
use simd_json::{Buffers, Tape};

use crate::model::{Symbol, SymbolError, Tick, VenueEvent};

/// Default cap on one message (a line or a WebSocket frame), in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why one message, or one element of an array message, was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all: truncated, binary garbage, invalid UTF-8.
    #[error("message is not valid JSON")]
    MalformedJson,
    /// Longer than the configured limit; skipped without parsing.
    #[error("message is {len} bytes, over the {max}-byte limit")]
    Oversize { len: usize, max: usize },
    /// A field (or an array element) has the wrong JSON type.
    #[error("`{field}` has the wrong JSON type")]
    WrongType { field: &'static str },
    /// A tick without a symbol.
    #[error("tick has no symbol")]
    MissingSymbol,
    /// A symbol tickgate cannot represent.
    #[error("symbol is invalid: {0}")]
    InvalidSymbol(SymbolError),
    /// A decimal string that is not a number.
    #[error("`{field}` is not a decimal number")]
    BadNumber { field: &'static str },
    /// A timestamp string that is not RFC 3339 / ISO 8601 UTC.
    #[error("`{field}` is not a timestamp tickgate understands")]
    BadTimestamp { field: &'static str },
    /// A venue sequence number older than one already applied.
    #[error("sequence {got} is older than {last}, already applied")]
    OutOfOrder { last: u64, got: u64 },
}

impl ParseError {
    /// Stable snake_case name, used as the `reason` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::Oversize { .. } => "oversize",
            Self::WrongType { .. } => "wrong_type",
            Self::MissingSymbol => "missing_symbol",
            Self::InvalidSymbol(_) => "invalid_symbol",
            Self::BadNumber { .. } => "bad_number",
            Self::BadTimestamp { .. } => "bad_timestamp",
            Self::OutOfOrder { .. } => "out_of_order",
        }
    }

    /// Every reason label a parser can report, for docs and dashboards.
    pub const KINDS: [&'static str; 8] = [
        "malformed_json",
        "oversize",
        "wrong_type",
        "missing_symbol",
        "invalid_symbol",
        "bad_number",
        "bad_timestamp",
        "out_of_order",
    ];
}

/// A control message from the venue, surfaced for logging and counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The venue reported an error (for example Alpaca `407 slow client`).
    UpstreamError { code: Option<i64>, message: String },
    /// The venue refused the credentials or the entitlement (Alpaca 401,
    /// 402, 404, 406, 409; Polygon `auth_failed`; a Coinbase authentication
    /// error). The connection cannot deliver data: the runner ends it and
    /// reports the feed `down` with reason `auth`, backing off without reset.
    AuthFailed { code: Option<i64>, message: String },
    /// Connected, authenticated, subscribed and similar status messages.
    /// Never data: a greeting neither makes a feed live nor resets its backoff.
    Status(String),
}

/// What one upstream message decoded into. Reused across messages: the
/// caller clears it (the allocation stays).
#[derive(Debug, Default)]
pub struct Decoded {
    /// Good ticks, in message order.
    pub ticks: Vec<Tick>,
    /// One entry per skipped message or element; good elements are kept.
    pub rejects: Vec<ParseError>,
    /// Real upstream gaps detected (messages the venue says we missed).
    pub gaps: u64,
    /// Venue control messages.
    pub notices: Vec<Notice>,
    /// Venue heartbeats (Coinbase `heartbeat`): proof that a subscription is
    /// alive, which keeps a live feed from going stale but is not data.
    pub heartbeats: u64,
    /// Halts, resumes, trade corrections and cancels, in message order.
    pub events: Vec<VenueEvent>,
}

impl Decoded {
    /// Empties every list, keeping the allocations.
    pub fn clear(&mut self) {
        self.ticks.clear();
        self.rejects.clear();
        self.gaps = 0;
        self.notices.clear();
        self.heartbeats = 0;
        self.events.clear();
    }
}

/// One feed's message decoder: the generic JSON format or a venue's.
///
/// `decode` parses `buf` in place (simd-json rewrites it) and appends to
/// `out`; it never panics, whatever the bytes.
pub trait Decoder: Send {
    fn decode(&mut self, buf: &mut [u8], out: &mut Decoded);

    /// Called when a new upstream connection starts: forget per-connection
    /// state such as sequence numbers.
    fn reset(&mut self) {}
}

/// Reusable simd-json state: its buffers and tape survive between messages,
/// so steady-state parsing does not allocate for them.
#[derive(Default)]
pub struct JsonScratch {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl std::fmt::Debug for JsonScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonScratch")
    }
}

impl JsonScratch {
    /// Parses `buf` in place and hands the root value to `visit`.
    pub fn parse<R>(
        &mut self,
        buf: &mut [u8],
        visit: impl FnOnce(Value<'_, '_>) -> R,
    ) -> Result<R, ParseError> {
        if buf.is_empty() {
            return Err(ParseError::MalformedJson);
        }
        let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
        let result = match simd_json::fill_tape(buf, &mut self.buffers, &mut tape) {
            Ok(()) if !tape.0.is_empty() => Ok(visit(tape.as_value())),
            _ => Err(ParseError::MalformedJson),
        };
        self.tape = Some(tape.reset());
        result
    }
}

impl JsonScratch {
    /// What every decoder does around its own reading: refuse a message above
    /// `max_bytes`, parse it in place and hand the root to `visit`; oversize
    /// and malformed messages land in `out.rejects`.
    pub(crate) fn decode_bounded(
        &mut self,
        buf: &mut [u8],
        max_bytes: usize,
        out: &mut Decoded,
        visit: impl FnOnce(Value<'_, '_>, &mut Decoded),
    ) {
        if buf.len() > max_bytes {
            let (len, max) = (buf.len(), max_bytes);
            out.rejects.push(ParseError::Oversize { len, max });
            return;
        }
        if let Err(error) = self.parse(buf, |root| visit(root, out)) {
            out.rejects.push(error);
        }
    }
}

/// Calls `each` for every element when `root` is an array, or once for
/// `root` itself otherwise.
pub(crate) fn for_each_element<'t, 'i>(root: Value<'t, 'i>, mut each: impl FnMut(Value<'t, 'i>)) {
    match root.as_array() {
        Some(array) => array.iter().for_each(each),
        None => each(root),
    }
}

/// A JSON number as `f64`; `null` or absent is `None`; anything else is a
/// wrong type.
pub(crate) fn number(obj: &Object<'_, '_>, field: &'static str) -> Result<Option<f64>, ParseError> {
    let Some(value) = obj.get(field) else {
        return Ok(None);
    };
    value_number(value).ok_or(ParseError::WrongType { field })
}

/// `Some(None)` for null, `Some(Some(x))` for a number, `None` otherwise.
fn value_number(value: Value<'_, '_>) -> Option<Option<f64>> {
    if value.is_null() {
        return Some(None);
    }
    if let Some(x) = value.as_f64() {
        return Some(Some(x));
    }
    if let Some(x) = value.as_u64() {
        return Some(Some(x as f64));
    }
    value.as_i64().map(|x| Some(x as f64))
}

/// A decimal carried as a string (`"4388.01"`) as venues do; a bare number
/// is accepted too.
pub(crate) fn decimal(
    obj: &Object<'_, '_>,
    field: &'static str,
) -> Result<Option<f64>, ParseError> {
    let Some(value) = obj.get(field) else {
        return Ok(None);
    };
    if let Some(text) = value.as_str() {
        return parse_decimal(text)
            .map(Some)
            .ok_or(ParseError::BadNumber { field });
    }
    value_number(value).ok_or(ParseError::WrongType { field })
}

/// Strict decimal: optional sign, digits, optional fraction, optional
/// exponent. Refuses `NaN`, `inf`, hex and empty strings, which `f64`'s own
/// parser would partly accept.
pub(crate) fn parse_decimal(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let first = body.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'.') {
        return None;
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    text.parse().ok()
}

/// An unsigned integer field (`null` or absent is `None`).
pub(crate) fn unsigned(
    obj: &Object<'_, '_>,
    field: &'static str,
) -> Result<Option<u64>, ParseError> {
    let Some(value) = obj.get(field) else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    value
        .as_u64()
        .map(Some)
        .ok_or(ParseError::WrongType { field })
}

/// A string field (`null` or absent is `None`).
pub(crate) fn text<'i>(
    obj: &Object<'_, 'i>,
    field: &'static str,
) -> Result<Option<&'i str>, ParseError> {
    let Some(value) = obj.get(field) else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    value
        .into_string()
        .map(Some)
        .ok_or(ParseError::WrongType { field })
}

/// The required symbol field, validated.
pub(crate) fn symbol_field(
    obj: &Object<'_, '_>,
    field: &'static str,
) -> Result<Symbol, ParseError> {
    let name = text(obj, field)?.ok_or(ParseError::MissingSymbol)?;
    Symbol::parse(name).map_err(ParseError::InvalidSymbol)
}

/// Milliseconds since the epoch to microseconds, refusing overflow.
pub(crate) fn millis_to_micros(ms: u64) -> Option<u64> {
    ms.checked_mul(1_000)
}

/// Parses an RFC 3339 / ISO 8601 UTC timestamp such as
/// `2021-02-22T15:51:45.335689322Z` or `2017-09-02T17:05:49.25+00:00` to
/// microseconds since the Unix epoch. Fractions of 0 to 9 digits are accepted
/// and truncated to microseconds; offsets other than UTC are applied.
pub fn rfc3339_micros(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = b.get(range)?;
        part.iter().try_fold(0u64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
        })
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    if day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0u64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        for (i, d) in fraction[..len].iter().enumerate().take(6) {
            micros += u64::from(d - b'0') * 10u64.pow(5 - i as u32);
        }
        rest = &fraction[len..];
    }
    let offset_secs: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let all = [*h1, *h2, *m1, *m2];
            if !all.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let mins = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let secs = hours * 3600 + mins * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_accepts_three_to_nine_fraction_digits() {
        let base = 1_614_009_105_000_000; // 2021-02-22T15:51:45Z
        assert_eq!(rfc3339_micros("2021-02-22T15:51:45Z"), Some(base));
        assert_eq!(
            rfc3339_micros("2021-02-22T15:51:45.208Z"),
            Some(base + 208_000)
        );
        assert_eq!(
            rfc3339_micros("2021-02-22T15:51:45.335689Z"),
            Some(base + 335_689)
        );
        assert_eq!(
            rfc3339_micros("2021-02-22T15:51:45.335689322Z"),
            Some(base + 335_689)
        );
        assert_eq!(
            rfc3339_micros("2021-02-22T16:51:45.5+01:00"),
            Some(base + 500_000)
        );
        assert_eq!(rfc3339_micros("2021-02-22T10:51:45-05:00"), Some(base));
    }

    #[test]
    fn rfc3339_refuses_near_misses() {
        for bad in [
            "",
            "2021-02-22",
            "2021-02-22T15:51:45",
            "2021-02-30T15:51:45Z",
            "2021-13-01T00:00:00Z",
            "2021-02-22T25:51:45Z",
            "2021-02-22T15:51:45.Z",
            "2021-02-22T15:51:45.1234567890Z",
            "2021-02-22T15:51:45Zjunk",
            "1969-12-31T23:59:59Z",
            "2021-02-22T15:51:45+1:00",
            "２０２１-02-22T15:51:45Z",
        ] {
            assert_eq!(rfc3339_micros(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decimals_are_strict() {
        assert_eq!(parse_decimal("4388.01000000"), Some(4388.01));
        assert_eq!(parse_decimal("77289"), Some(77289.0));
        assert_eq!(parse_decimal("-1.5"), Some(-1.5));
        assert_eq!(parse_decimal("1e3"), Some(1000.0));
        for bad in [
            "", "NaN", "inf", "-inf", "0x10", "1,5", " 1", "1 ", "abc", "-",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scratch_survives_garbage_and_reuses_itself() {
        let mut scratch = JsonScratch::default();
        for junk in [&b""[..], b"{", b"\xff\xfe", b"[1,", b"nul", b"\"abc"] {
            let mut buf = junk.to_vec();
            assert_eq!(
                scratch.parse(&mut buf, |_| ()),
                Err(ParseError::MalformedJson)
            );
        }
        let mut good = br#"{"a":1}"#.to_vec();
        assert_eq!(scratch.parse(&mut good, |v| v.is_object()), Ok(true));
    }
}
