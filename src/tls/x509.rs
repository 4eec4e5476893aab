//! The few facts tickgate reads from a certificate itself: its serial number
//! and validity window, for logs, the expiry gauge and start-up warnings.
//!
//! A deliberately tiny DER walk over the fixed prefix of `TBSCertificate`
//! (RFC 5280 §4.1); rustls and webpki do the real parsing and verification.

/// Serial number and validity of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Big-endian serial number, without leading zero bytes.
    pub serial: Vec<u8>,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Where a certificate's validity window stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    NotYetValid,
    Expired,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

impl CertificateSummary {
    /// Reads a DER certificate; `None` when it is not shaped like one.
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (certificate, _) = expect(der, SEQUENCE)?;
        let (tbs, _) = expect(certificate, SEQUENCE)?;
        let tbs = match tlv(tbs)? {
            (VERSION, _, rest) => rest,
            _ => tbs,
        };
        let (serial, rest) = expect(tbs, INTEGER)?;
        let (_signature_algorithm, rest) = expect(rest, SEQUENCE)?;
        let (_issuer, rest) = expect(rest, SEQUENCE)?;
        let (validity, _) = expect(rest, SEQUENCE)?;
        let (not_before, rest) = time(validity)?;
        let (not_after, _) = time(rest)?;
        let first_significant = serial
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(serial.len().saturating_sub(1));
        Some(Self {
            serial: serial[first_significant..].to_vec(),
            not_before,
            not_after,
        })
    }

    /// The serial number as lowercase hex, e.g. `1001`.
    pub fn serial_hex(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the certificate is valid at `now` (seconds since the epoch).
    pub fn validity_at(&self, now: i64) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }
}

/// One DER tag-length-value: (tag, content, rest).
pub(crate) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (length, rest) = rest.split_at(octets);
        let length = length
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, rest)
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = tlv(input)?;
    (found == tag).then_some((content, rest))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as seconds since the epoch.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, content, rest) = tlv(input)?;
    let text = std::str::from_utf8(content).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, digits) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| digits.get(i..i + 2).and_then(|d| d.parse::<i64>().ok());
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second, rest))
}

/// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, for log lines.
pub fn utc_timestamp(seconds: i64) -> String {
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SerialNumber};

    fn certificate(serial: u64, not_before: i64, not_after: i64) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("time");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("time");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_serial_and_validity_of_a_generated_certificate() {
        // 2026-11-24T00:00:00Z and 2051-01-01T12:30:05Z (GeneralizedTime).
        let der = certificate(0x1001, 1_795_478_400, 2_556_189_005);
        let summary = CertificateSummary::parse(&der).expect("parses");
        assert_eq!(summary.serial_hex(), "1001");
        assert_eq!(summary.not_before, 1_795_478_400);
        assert_eq!(summary.not_after, 2_556_189_005);
        assert_eq!(summary.validity_at(1_795_478_399), Validity::NotYetValid);
        assert_eq!(summary.validity_at(1_795_478_400), Validity::Valid);
        assert_eq!(summary.validity_at(2_556_189_006), Validity::Expired);
    }

    #[test]
    fn a_serial_with_its_high_bit_set_keeps_every_byte() {
        let der = certificate(0xff00_0000_0000_0001, 0, 86_400);
        let summary = CertificateSummary::parse(&der).expect("parses");
        assert_eq!(summary.serial_hex(), "ff00000000000001");
    }

    #[test]
    fn civil_dates_match_known_epochs() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 24), 20_781);
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(2_556_189_005), "2051-01-01T12:30:05Z");
        for days in [-1, 0, 59, 60, 11_016, 11_017, 20_781, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(CertificateSummary::parse(b""), None);
        assert_eq!(CertificateSummary::parse(b"\x30\x82\xff\xff"), None);
        assert_eq!(
            CertificateSummary::parse(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            None
        );
    }
}
