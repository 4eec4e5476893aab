//! Abuse limits that are not a plain number compared in place: the request
//! rate of one connection (a token bucket with a strike count), open
//! connections per client IP, the client IP itself (peer address or a
//! trusted proxy header), and the allowed `Origin` list. Pure bookkeeping: no
//! sockets; the clock is passed in.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// A token bucket: `burst` tokens at most, refilled at `rate` per second;
/// `rate` 0 turns it off (every take succeeds). The clock is passed in.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            refilled: now,
        }
    }

    /// Refills for the time since the last call, then takes `wanted`
    /// tokens if the bucket holds them; `Err` carries what it holds, and
    /// nothing is taken.
    fn take(&mut self, wanted: f64, now: Instant) -> Result<(), f64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if wanted <= self.tokens {
            self.tokens -= wanted;
            Ok(())
        } else {
            Err(self.tokens)
        }
    }

    /// Gives back `tokens` (never above the burst).
    fn refund(&mut self, tokens: f64) {
        self.tokens = (self.tokens + tokens).min(self.burst);
    }
}

/// Per-connection request rate: every received frame takes a token. When
/// the bucket is empty the frame is refused (a strike); enough strikes inside
/// [`STRIKE_WINDOW`] end the connection.
#[derive(Debug)]
pub struct RequestRate {
    bucket: TokenBucket,
    strikes: u32,
    strikes_since: Instant,
    max_strikes: u32,
}

/// Window over which refused frames are counted towards a close.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// What to do with one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the rate.
    Allow,
    /// Over the rate: answer `rate_limited`, do not act on it.
    Refuse,
    /// Over the rate for too long: close with 1008.
    Close,
}

impl RequestRate {
    /// A full bucket of `burst` tokens refilled at `rate` per second; the
    /// `max_strikes`th refusal within [`STRIKE_WINDOW`] closes. `rate` 0
    /// turns the limit off.
    pub fn new(rate: f64, burst: u32, max_strikes: u32, now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(rate, burst, now),
            strikes: 0,
            strikes_since: now,
            max_strikes: max_strikes.max(1),
        }
    }

    /// Takes a token for one frame received at `now`.
    pub fn check(&mut self, now: Instant) -> RateVerdict {
        match self.bucket.take(1.0, now) {
            Ok(()) => RateVerdict::Allow,
            Err(_) => self.strike(now),
        }
    }

    /// Gives back the token a frame took, for a request that turned out to
    /// cost nothing worth limiting (an acknowledgement of new messages).
    pub fn refund(&mut self) {
        self.bucket.refund(1.0);
    }

    /// Counts a refusal decided elsewhere (a request over the symbol
    /// budget) as a strike, as if the frame had found the bucket empty.
    pub fn strike(&mut self, now: Instant) -> RateVerdict {
        if now.saturating_duration_since(self.strikes_since) > STRIKE_WINDOW {
            self.strikes = 0;
            self.strikes_since = now;
        }
        self.strikes += 1;
        if self.strikes >= self.max_strikes {
            RateVerdict::Close
        } else {
            RateVerdict::Refuse
        }
    }
}

/// Per-connection symbol budget: every symbol a `subscribe` or
/// `unsubscribe` names takes a token, so the work a connection can ask for
/// is bounded in symbols per second, not only in requests per second. A
/// request is taken whole or refused whole.
#[derive(Debug)]
pub struct SymbolBudget(TokenBucket);

impl SymbolBudget {
    /// A full bucket of `burst` symbols refilled at `rate` per second;
    /// `rate` 0 turns the budget off.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        Self(TokenBucket::new(rate, burst, now))
    }

    /// Takes `symbols` tokens at `now`; `Err` carries the whole symbols the
    /// bucket holds now, and nothing is taken.
    pub fn take(&mut self, symbols: usize, now: Instant) -> Result<(), usize> {
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let wanted = symbols as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.0
            .take(wanted, now)
            .map_err(|held| held.floor() as usize)
    }
}

/// Open connections per client IP. A [`IpSlot`] holds one place and gives
/// it back when dropped. Holds one map entry per IP with an open
/// connection, so its size is bounded by the connection limit.
#[derive(Debug, Default)]
pub struct IpSlots {
    open: Arc<Mutex<FxHashMap<IpAddr, u32>>>,
}

/// One connection's place in [`IpSlots`].
#[derive(Debug)]
pub struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<FxHashMap<IpAddr, u32>>>,
}

impl IpSlots {
    /// Takes a place for `ip` unless it already holds `max` (0 = no limit).
    pub fn try_acquire(&self, ip: IpAddr, max: u32) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if max > 0 && *count >= max {
            if *count == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            open: Arc::clone(&self.open),
        })
    }

    /// Connections open from `ip`.
    pub fn count(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The client's IP: the last address of `header_value` (what the trusted
/// proxy in front appended) when a proxy header is configured and present
/// and parses, else the TCP peer.
pub fn client_ip(peer: IpAddr, header_value: Option<&[u8]>) -> IpAddr {
    header_value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}

/// Whether a browser `Origin` may connect: no list allows all; otherwise an
/// exact (case-insensitive) entry or a `*` pattern such as
/// `https://*.example.com` must match.
pub fn origin_allowed(allowed: &[String], origin: &[u8]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry.contains('*') {
            glob(&entry, &origin)
        } else {
            entry == origin
        }
    })
}

/// `*`-only glob over arbitrary text (origins hold characters symbol
/// patterns do not).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|&i| after.is_char_boundary(i))
                .any(|i| glob(rest, &after[i..]))
        }
    }
}

/// Checks `limits.allowed_origins` entries; used by config validation.
pub fn origin_problems(allowed: &[String]) -> Vec<String> {
    allowed
        .iter()
        .filter(|o| {
            o.is_empty() || o.chars().any(char::is_whitespace) || o.matches('*').count() > 2
        })
        .map(|o| {
            format!(
                "limits.allowed_origins: {o:?} is not an origin such as \"https://app.example.com\""
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_budget_takes_whole_requests_and_refills() {
        let start = Instant::now();
        let mut budget = SymbolBudget::new(100.0, 1000, start);
        assert_eq!(budget.take(1000, start), Ok(()));
        assert_eq!(budget.take(1, start), Err(0));
        // Half a second refills 50 symbols: 60 are refused whole, 50 pass.
        let later = start + Duration::from_millis(500);
        assert_eq!(budget.take(60, later), Err(50));
        assert_eq!(budget.take(50, later), Ok(()));
        // Never more than the burst, however long the pause.
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(budget.take(1001, much_later), Err(1000));
        let off = &mut SymbolBudget::new(0.0, 1, start);
        assert_eq!(off.take(1_000_000, start), Ok(()));
    }

    #[test]
    fn bucket_allows_burst_then_refuses_then_closes() {
        let start = Instant::now();
        let mut rate = RequestRate::new(10.0, 5, 3, start);
        for _ in 0..5 {
            assert_eq!(rate.check(start), RateVerdict::Allow);
        }
        assert_eq!(rate.check(start), RateVerdict::Refuse);
        assert_eq!(rate.check(start), RateVerdict::Refuse);
        assert_eq!(rate.check(start), RateVerdict::Close);
    }

    #[test]
    fn bucket_refills_at_its_rate_and_strikes_expire() {
        let start = Instant::now();
        let mut rate = RequestRate::new(10.0, 1, 2, start);
        assert_eq!(rate.check(start), RateVerdict::Allow);
        assert_eq!(rate.check(start), RateVerdict::Refuse);
        let later = start + Duration::from_millis(100);
        assert_eq!(rate.check(later), RateVerdict::Allow);
        let much_later = start + STRIKE_WINDOW + Duration::from_secs(1);
        assert_eq!(rate.check(much_later), RateVerdict::Allow);
        assert_eq!(rate.check(much_later), RateVerdict::Refuse);
        let off = &mut RequestRate::new(0.0, 1, 1, start);
        for _ in 0..1000 {
            assert_eq!(off.check(start), RateVerdict::Allow);
        }
    }

    #[test]
    fn ip_slots_count_and_release() {
        let slots = IpSlots::default();
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let a = slots.try_acquire(ip, 2).expect("first");
        let b = slots.try_acquire(ip, 2).expect("second");
        assert!(slots.try_acquire(ip, 2).is_none());
        assert!(
            slots
                .try_acquire("10.0.0.2".parse().expect("ip"), 2)
                .is_some()
        );
        drop(a);
        assert_eq!(slots.count(ip), 1);
        drop(b);
        assert_eq!(slots.count(ip), 0);
        assert!(slots.open.lock().expect("lock").is_empty());
        let _unlimited: Vec<_> = (0..100).map(|_| slots.try_acquire(ip, 0)).collect();
        assert_eq!(slots.count(ip), 100);
    }

    #[test]
    fn client_ip_takes_the_last_forwarded_address_or_the_peer() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        assert_eq!(client_ip(peer, None), peer);
        assert_eq!(
            client_ip(peer, Some(b"1.2.3.4, 5.6.7.8")),
            "5.6.7.8".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(peer, Some(b"garbage")), peer);
        assert_eq!(
            client_ip(peer, Some(b"2001:db8::1")),
            "2001:db8::1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn origins_match_exactly_or_by_pattern() {
        let allowed = vec![
            "https://md.example.com".to_owned(),
            "https://*.example.org".to_owned(),
        ];
        assert!(origin_allowed(&[], b"https://evil.test"));
        assert!(origin_allowed(&allowed, b"https://MD.example.com"));
        assert!(origin_allowed(&allowed, b"https://a.example.org"));
        assert!(!origin_allowed(&allowed, b"https://example.org.evil.test"));
        assert!(!origin_allowed(&allowed, b"http://md.example.com"));
        assert!(!origin_allowed(&allowed, b"null"));
        assert!(!origin_allowed(&allowed, &[0xff, 0xfe]));
    }
}
