//! Feed configuration: the `[[feeds]]` TOML table the gateway embeds, and its
//! validation into a [`FeedPlan`] the runner can trust (durations, parsed
//! URLs, compiled symbol filters). Every problem in a list of feeds is
//! reported at once.

use std::path::PathBuf;

use serde::Deserialize;

use crate::parse::DEFAULT_MAX_MESSAGE_BYTES;
use crate::venue::{Credentials, HandshakeError, Venue};

/// One `[[feeds]]` entry, as written in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Unique feed name; the `feed` metric label and the name in logs.
    pub name: String,
    /// What kind of upstream this is.
    pub kind: FeedKind,
    /// `ws://` / `wss://` URL (kinds `ws` and the venues; venues default to
    /// their public endpoint).
    #[serde(default)]
    pub url: Option<String>,
    /// `host:port` to connect to (kind `tcp`).
    #[serde(default)]
    pub address: Option<String>,
    /// `.jsonl` recording to play (kind `replay`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Message format of `tcp`, `ws` and `replay` feeds: `json` (the generic
    /// format, default) or a venue name to read that venue's messages.
    #[serde(default)]
    pub format: Option<String>,
    /// Text message sent after connecting (kind `ws`).
    #[serde(default)]
    pub subscribe: Option<String>,
    /// Symbols to subscribe to at a venue (tickgate or venue names).
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Venue credentials (`key`, `secret`, or `key_env`/`secret_env`).
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Only symbols matching one of these pass: exact names or patterns with
    /// `*` (any run of characters) and `?` (one character), e.g. `BTC-*`.
    #[serde(default)]
    pub filter: Vec<String>,
    /// Prepended to every symbol of this feed (after filtering), e.g. `CB:`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// No data for this long marks the feed stale.
    #[serde(default = "defaults::staleness_ms")]
    pub staleness_ms: u64,
    /// A connection silent for this long is dropped and re-established
    /// (0 = never).
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Time allowed for TCP connect, TLS and WebSocket handshakes.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// First reconnect delay; doubles per failure, with jitter.
    #[serde(default = "defaults::backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Cap of the reconnect delay.
    #[serde(default = "defaults::backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Longest accepted line or frame; longer ones are skipped and counted.
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    /// Replay pace: 1.0 = as recorded (by the ticks' `ts`), 2.0 = twice as
    /// fast, 0 = as fast as possible. Default 1.0.
    #[serde(default)]
    pub speed: Option<f64>,
    /// Replay: start over at the end of the file.
    #[serde(default, rename = "loop")]
    pub looped: bool,
    /// Replay: replace each tick's `ts` with the time it is sent.
    #[serde(default)]
    pub restamp: bool,
    /// Extra PEM CA certificate(s) trusted for `wss://`, besides the public
    /// web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This feed backs up the named primary: its ticks pass only while the
    /// primary is not live.
    #[serde(default)]
    pub backup_for: Option<String>,
    /// `/readyz` waits for this feed to be live.
    #[serde(default)]
    pub required: bool,
    /// Local time of day (`HH:MM`, 24-hour, in `session_tz`) at which a new
    /// trading session starts: `volume`, `open`, `high` and `low` start
    /// over. Default `04:00` for kinds `polygon` and `alpaca`, `00:00`
    /// otherwise (docs/feeds.md, "Trading sessions").
    #[serde(default)]
    pub session_start: Option<String>,
    /// IANA time zone of `session_start`. Default `America/New_York` for
    /// kinds `polygon` and `alpaca`, `UTC` otherwise.
    #[serde(default)]
    pub session_tz: Option<String>,
    /// Simulator: average ticks per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Simulator: random-walk seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Simulator: use only the first N symbols of its universe.
    #[serde(default)]
    pub universe: Option<usize>,
    /// Simulator: occasional bursts of five times the rate.
    #[serde(default)]
    pub bursts: Option<bool>,
    /// NATS: servers, stream, subject prefix, credentials, TLS (kind `nats`;
    /// every key has a default, see docs/nats.md).
    #[serde(default)]
    pub nats: Option<NatsSettings>,
}

mod defaults {
    pub(super) fn staleness_ms() -> u64 {
        5_000
    }
    pub(super) fn idle_timeout_ms() -> u64 {
        60_000
    }
    pub(super) fn connect_timeout_ms() -> u64 {
        10_000
    }
    pub(super) fn backoff_min_ms() -> u64 {
        250
    }
    pub(super) fn backoff_max_ms() -> u64 {
        30_000
    }
    pub(super) fn max_message_bytes() -> usize {
        super::DEFAULT_MAX_MESSAGE_BYTES
    }
}

impl FeedConfig {
    /// A config of `kind` named `name` with every other key at its default.
    pub fn new(name: impl Into<String>, kind: FeedKind) -> Self {
        Self {
            name: name.into(),
            kind,
            url: None,
            address: None,
            path: None,
            format: None,
            subscribe: None,
            symbols: Vec::new(),
            credentials: None,
            filter: Vec::new(),
            prefix: None,
            staleness_ms: defaults::staleness_ms(),
            idle_timeout_ms: defaults::idle_timeout_ms(),
            connect_timeout_ms: defaults::connect_timeout_ms(),
            backoff_min_ms: defaults::backoff_min_ms(),
            backoff_max_ms: defaults::backoff_max_ms(),
            max_message_bytes: defaults::max_message_bytes(),
            speed: None,
            looped: false,
            restamp: false,
            ca_file: None,
            backup_for: None,
            required: false,
            session_start: None,
            session_tz: None,
            rate: None,
            seed: None,
            universe: None,
            bursts: None,
            nats: None,
        }
    }
}

/// The kinds of feed tickgate can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    /// The embedded simulator.
    Sim,
    /// Generic JSON lines over TCP (tickgate connects out).
    Tcp,
    /// Generic JSON over WebSocket (`ws://` or `wss://`).
    Ws,
    /// A `.jsonl` recording played back.
    Replay,
    /// Polygon (Massive) stocks WebSocket.
    Polygon,
    /// Alpaca stocks v2 WebSocket.
    Alpaca,
    /// Coinbase Exchange WebSocket (`ticker` + `heartbeat`).
    Coinbase,
    /// Binance spot WebSocket (`bookTicker` + `trade`).
    Binance,
    /// A `tickgate publish` JetStream stream (docs/nats.md).
    Nats,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Tcp => "tcp",
            Self::Ws => "ws",
            Self::Replay => "replay",
            Self::Polygon => "polygon",
            Self::Alpaca => "alpaca",
            Self::Coinbase => "coinbase",
            Self::Binance => "binance",
            Self::Nats => "nats",
        }
    }

    /// The venue whose format and handshake this kind uses.
    pub fn venue(self) -> Option<Venue> {
        Venue::from_name(self.as_str())
    }
}

/// A problem with one feed's configuration; the message names the feed and
/// the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedConfigError {
    /// A key the kind requires is absent.
    #[error("feed `{feed}`: kind `{kind}` needs `{key}`")]
    Missing {
        feed: String,
        kind: &'static str,
        key: &'static str,
    },
    /// A key has a value tickgate cannot use.
    #[error("feed `{feed}`: `{key}` {problem}")]
    Invalid {
        feed: String,
        key: &'static str,
        problem: String,
    },
    /// The venue handshake cannot be built.
    #[error("feed `{feed}`: {source}")]
    Handshake {
        feed: String,
        source: HandshakeError,
    },
    /// Two feeds share a name.
    #[error("feed name `{0}` is used twice")]
    DuplicateName(String),
    /// `backup_for` names no feed, itself, or another backup.
    #[error("feed `{feed}`: `backup_for = \"{primary}\"` {problem}")]
    BadBackup {
        feed: String,
        primary: String,
        problem: &'static str,
    },
}

mod filter;
mod nats;
mod plan;

pub use filter::SymbolFilter;
pub use nats::NatsSettings;
pub use plan::{FeedPlan, SourcePlan, validate_all};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionClock;
    use std::time::Duration;

    fn parse(toml_text: &str) -> Vec<FeedConfig> {
        #[derive(Deserialize)]
        struct File {
            feeds: Vec<FeedConfig>,
        }
        toml::from_str::<File>(toml_text).expect("parses").feeds
    }

    #[test]
    fn a_mixed_feed_list_validates() {
        let feeds = parse(
            r#"
            [[feeds]]
            name = "sim"
            kind = "sim"
            rate = 500.0
            seed = 7

            [[feeds]]
            name = "cb"
            kind = "coinbase"
            url = "wss://127.0.0.1:9443/"
            symbols = ["BTC-USD", "ETH-USD"]
            filter = ["BTC-*"]
            required = true

            [[feeds]]
            name = "cb-backup"
            kind = "ws"
            url = "ws://127.0.0.1:9000/ticks"
            subscribe = '{"op":"subscribe"}'
            backup_for = "cb"
            staleness_ms = 2000

            [[feeds]]
            name = "lines"
            kind = "tcp"
            address = "127.0.0.1:7000"
            prefix = "T:"

            [[feeds]]
            name = "tape"
            kind = "replay"
            path = "feeds/testdata/generic.jsonl"
            speed = 0.0
            loop = true
            format = "json"
            "#,
        );
        let plans = validate_all(&feeds).expect("valid");
        assert_eq!(plans.len(), 5);
        assert!(
            matches!(&plans[1].source, SourcePlan::Ws { handshake, .. } if handshake.len() == 1)
        );
        assert!(plans[1].filter.allows("BTC-USD") && !plans[1].filter.allows("ETH-USD"));
        assert_eq!(plans[2].backup_for.as_deref(), Some("cb"));
        assert_eq!(plans[2].staleness, Duration::from_secs(2));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let result = toml::from_str::<FeedConfig>("name = \"a\"\nkind = \"sim\"\nspeeed = 2.0\n");
        assert!(result.is_err());
    }

    #[test]
    fn every_problem_is_reported_with_feed_and_key() {
        let mut bad = FeedConfig::new("bad feed", FeedKind::Tcp);
        bad.url = Some("ws://x".into());
        bad.backoff_min_ms = 10_000;
        bad.backoff_max_ms = 100;
        let mut venue = FeedConfig::new("poly", FeedKind::Polygon);
        venue.symbols = vec!["AAPL".into()];
        let mut orphan = FeedConfig::new("orphan", FeedKind::Sim);
        orphan.backup_for = Some("nowhere".into());
        let errors = validate_all(&[bad, venue, orphan, FeedConfig::new("orphan", FeedKind::Sim)])
            .expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let joined = text.join("\n");
        for needle in [
            "feed `bad feed`: `name`",
            "kind `tcp` needs `address`",
            "`url` does not apply to kind `tcp`",
            "`backoff_min_ms` must not exceed",
            "polygon needs `key`",
            "feed name `orphan` is used twice",
            "names no configured feed",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
    }

    #[test]
    fn session_boundaries_default_by_kind_and_are_configurable() {
        let feeds = parse(
            r#"
            [[feeds]]
            name = "sim"
            kind = "sim"

            [[feeds]]
            name = "alpaca"
            kind = "alpaca"
            credentials = { key = "k", secret = "s" }
            symbols = ["AAPL"]

            [[feeds]]
            name = "tokyo"
            kind = "tcp"
            address = "127.0.0.1:7000"
            session_start = "08:45"
            session_tz = "Asia/Tokyo"

            [[feeds]]
            name = "stream"
            kind = "nats"
            "#,
        );
        let plans = validate_all(&feeds).expect("valid");
        let clock = |i: usize| plans[i].session.clone();
        assert_eq!(clock(0), Some(SessionClock::utc_midnight()));
        assert_eq!(
            clock(1),
            Some(SessionClock::parse("04:00", "America/New_York").expect("valid"))
        );
        assert_eq!(
            clock(2),
            Some(SessionClock::parse("08:45", "Asia/Tokyo").expect("valid"))
        );
        assert_eq!(clock(3), None, "a NATS feed carries the publisher's day");
    }

    #[test]
    fn a_bad_session_boundary_is_refused_with_its_key() {
        let mut bad_start = FeedConfig::new("a", FeedKind::Sim);
        bad_start.session_start = Some("9:30".into());
        let mut bad_zone = FeedConfig::new("b", FeedKind::Sim);
        bad_zone.session_tz = Some("America/New_Yrok".into());
        let mut both = FeedConfig::new("c", FeedKind::Sim);
        both.session_start = Some("25:00".into());
        both.session_tz = Some("EST+5".into());
        let mut nats = FeedConfig::new("d", FeedKind::Nats);
        nats.session_tz = Some("UTC".into());
        let errors = validate_all(&[bad_start, bad_zone, both, nats]).expect_err("invalid");
        let joined = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "feed `a`: `session_start` must be a time of day as HH:MM (24-hour), such as \"04:00\"; got \"9:30\"",
            "feed `b`: `session_tz` must be an IANA time zone such as \"America/New_York\" or \"UTC\"; got \"America/New_Yrok\"",
            "feed `c`: `session_start` must be a time of day",
            "feed `c`: `session_tz` must be an IANA time zone",
            "feed `d`: `session_tz` does not apply to kind `nats`",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
        assert_eq!(errors.len(), 5, "{joined}");
    }

    #[test]
    fn globs_match_like_shell_patterns() {
        let filter = SymbolFilter::new(&["BTC-*".into(), "A?PL".into(), "*.B".into()]).expect("ok");
        for yes in ["BTC-USD", "BTC-", "AAPL", "BRK.B"] {
            assert!(filter.allows(yes), "{yes}");
        }
        for no in ["ETH-BTC", "APL", "AAPLX", "BRK.A"] {
            assert!(!filter.allows(no), "{no}");
        }
        assert!(SymbolFilter::new(&["A B".into()]).is_err());
        assert!(SymbolFilter::default().allows("ANY"));
    }
}
