//! Feed configuration: the `[[feeds]]` TOML table the gateway embeds, and its
//! validation into a [`FeedPlan`] the runner can trust (durations, parsed
//! URLs, compiled symbol filters). Every problem in a list of feeds is
//! reported at once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::model::Symbol;
use crate::nats::{NatsPlan, NatsSettings};
use crate::parse::DEFAULT_MAX_MESSAGE_BYTES;
use crate::sim::SimConfig;
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

/// A validated feed, ready to run.
#[derive(Debug, Clone)]
pub struct FeedPlan {
    pub name: Arc<str>,
    pub source: SourcePlan,
    pub filter: SymbolFilter,
    pub prefix: Option<String>,
    pub staleness: Duration,
    /// `None`: never drop a silent connection.
    pub idle_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub max_message_bytes: usize,
    pub backup_for: Option<Arc<str>>,
    pub required: bool,
}

/// Where a validated feed reads from.
#[derive(Debug, Clone)]
pub enum SourcePlan {
    Sim(SimConfig),
    Tcp {
        address: String,
        format: Option<Venue>,
    },
    Ws {
        url: Uri,
        /// Sent in order after connecting.
        handshake: Vec<String>,
        format: Option<Venue>,
        ca_file: Option<PathBuf>,
    },
    Replay {
        path: PathBuf,
        speed: f64,
        looped: bool,
        restamp: bool,
        format: Option<Venue>,
    },
    /// A `tickgate publish` stream: load the last value of every subject,
    /// then follow.
    Nats(NatsPlan),
}

impl FeedConfig {
    /// Checks this one feed; every problem found is returned.
    pub fn validate(&self) -> Result<FeedPlan, Vec<FeedConfigError>> {
        let mut errors = Vec::new();
        let feed = || self.name.clone();
        let kind = self.kind.as_str();
        let invalid = |key, problem: &str| FeedConfigError::Invalid {
            feed: feed(),
            key,
            problem: problem.to_string(),
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errors.push(invalid(
                "name",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let filter = SymbolFilter::new(&self.filter).unwrap_or_else(|bad| {
            errors.push(invalid(
                "filter",
                &format!("has an invalid pattern {bad:?}"),
            ));
            SymbolFilter::default()
        });
        if let Some(prefix) = &self.prefix
            && Symbol::parse(&format!("{prefix}X")).is_err()
        {
            errors.push(invalid(
                "prefix",
                "must be short and use only letters, digits and . - _ / : ^",
            ));
        }
        for (key, value) in [
            ("staleness_ms", self.staleness_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("backoff_min_ms", self.backoff_min_ms),
            ("backoff_max_ms", self.backoff_max_ms),
        ] {
            if value == 0 {
                errors.push(invalid(key, "must be greater than 0"));
            }
        }
        if self.backoff_min_ms > self.backoff_max_ms {
            errors.push(invalid("backoff_min_ms", "must not exceed backoff_max_ms"));
        }
        if self.max_message_bytes < 64 {
            errors.push(invalid("max_message_bytes", "must be at least 64"));
        }
        let format = match self.format.as_deref() {
            None | Some("json") => None,
            Some(name) => Venue::from_name(name).or_else(|| {
                errors.push(invalid(
                    "format",
                    "must be json, polygon, alpaca, coinbase or binance",
                ));
                None
            }),
        };
        let mut unused = |key: &'static str, present: bool, used_by: &[FeedKind]| {
            if present && !used_by.contains(&self.kind) {
                errors.push(invalid(key, &format!("does not apply to kind `{kind}`")));
            }
        };
        use FeedKind::*;
        let venues = [Polygon, Alpaca, Coinbase, Binance];
        let ws_like = [Ws, Polygon, Alpaca, Coinbase, Binance];
        unused("url", self.url.is_some(), &ws_like);
        unused("address", self.address.is_some(), &[Tcp]);
        unused("path", self.path.is_some(), &[Replay]);
        unused("format", self.format.is_some(), &[Tcp, Ws, Replay]);
        unused("subscribe", self.subscribe.is_some(), &[Ws]);
        unused("symbols", !self.symbols.is_empty(), &venues);
        unused("credentials", self.credentials.is_some(), &venues);
        unused("ca_file", self.ca_file.is_some(), &ws_like);
        unused("speed", self.speed.is_some(), &[Replay]);
        unused("loop", self.looped, &[Replay]);
        unused("restamp", self.restamp, &[Replay]);
        unused("nats", self.nats.is_some(), &[Nats]);
        for (key, present) in [
            ("rate", self.rate.is_some()),
            ("seed", self.seed.is_some()),
            ("universe", self.universe.is_some()),
            ("bursts", self.bursts.is_some()),
        ] {
            unused(key, present, &[Sim]);
        }
        let source = self.source_plan(format, &mut errors);
        let plan = FeedPlan {
            name: Arc::from(self.name.as_str()),
            source,
            filter,
            prefix: self.prefix.clone(),
            staleness: Duration::from_millis(self.staleness_ms),
            idle_timeout: (self.idle_timeout_ms > 0)
                .then(|| Duration::from_millis(self.idle_timeout_ms)),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            backoff_min: Duration::from_millis(self.backoff_min_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_message_bytes: self.max_message_bytes,
            backup_for: self.backup_for.as_deref().map(Arc::from),
            required: self.required,
        };
        if errors.is_empty() {
            Ok(plan)
        } else {
            Err(errors)
        }
    }

    fn source_plan(&self, format: Option<Venue>, errors: &mut Vec<FeedConfigError>) -> SourcePlan {
        let feed = self.name.clone();
        let kind = self.kind.as_str();
        let mut missing = |key| {
            errors.push(FeedConfigError::Missing {
                feed: feed.clone(),
                kind,
                key,
            });
        };
        match self.kind {
            FeedKind::Sim => {
                let defaults = SimConfig::default();
                let rate = self.rate.unwrap_or(defaults.ticks_per_second);
                if !(rate.is_finite() && rate > 0.0) {
                    errors.push(self.invalid("rate", "must be a positive number"));
                }
                SourcePlan::Sim(SimConfig {
                    ticks_per_second: rate,
                    seed: self.seed.unwrap_or(defaults.seed),
                    symbols: self.universe.or(defaults.symbols),
                    bursts: self.bursts.unwrap_or(defaults.bursts),
                })
            }
            FeedKind::Tcp => {
                let address = self.address.clone().unwrap_or_default();
                if self.address.is_none() {
                    missing("address");
                } else if !valid_host_port(&address) {
                    errors.push(self.invalid("address", "must be HOST:PORT"));
                }
                SourcePlan::Tcp { address, format }
            }
            FeedKind::Replay => {
                if self.path.is_none() {
                    missing("path");
                }
                let speed = self.speed.unwrap_or(1.0);
                if !(speed.is_finite() && speed >= 0.0) {
                    errors.push(self.invalid("speed", "must be 0 (as fast as possible) or more"));
                }
                SourcePlan::Replay {
                    path: self.path.clone().unwrap_or_default(),
                    speed,
                    looped: self.looped,
                    restamp: self.restamp,
                    format,
                }
            }
            FeedKind::Ws => {
                if self.url.is_none() {
                    missing("url");
                }
                let url = self.url.as_deref().unwrap_or("ws://invalid");
                SourcePlan::Ws {
                    url: self.ws_url(url, errors),
                    handshake: self.subscribe.iter().cloned().collect(),
                    format,
                    ca_file: self.ca_file.clone(),
                }
            }
            FeedKind::Polygon | FeedKind::Alpaca | FeedKind::Coinbase | FeedKind::Binance => {
                let venue = self.kind.venue().unwrap_or(Venue::Coinbase);
                let url = self.url.as_deref().unwrap_or(venue.default_url());
                let credentials = self.credentials.clone().unwrap_or_default().resolved();
                let handshake =
                    venue
                        .handshake(&self.symbols, &credentials)
                        .unwrap_or_else(|source| {
                            errors.push(FeedConfigError::Handshake {
                                feed: self.name.clone(),
                                source,
                            });
                            Vec::new()
                        });
                SourcePlan::Ws {
                    url: self.ws_url(url, errors),
                    handshake,
                    format: Some(venue),
                    ca_file: self.ca_file.clone(),
                }
            }
            FeedKind::Nats => {
                let settings = self.nats.clone().unwrap_or_default();
                match settings.validate() {
                    Ok(plan) => SourcePlan::Nats(plan),
                    Err(problems) => {
                        errors.extend(problems.into_iter().map(|(key, problem)| {
                            FeedConfigError::Invalid {
                                feed: self.name.clone(),
                                key,
                                problem,
                            }
                        }));
                        SourcePlan::Sim(SimConfig::default())
                    }
                }
            }
        }
    }

    fn invalid(&self, key: &'static str, problem: &str) -> FeedConfigError {
        FeedConfigError::Invalid {
            feed: self.name.clone(),
            key,
            problem: problem.to_string(),
        }
    }

    fn ws_url(&self, url: &str, errors: &mut Vec<FeedConfigError>) -> Uri {
        match url.parse::<Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("ws" | "wss"))
                    && uri.host().is_some_and(|h| !h.is_empty()) =>
            {
                uri
            }
            _ => {
                errors.push(self.invalid("url", "must be a ws:// or wss:// URL with a host"));
                Uri::from_static("ws://invalid")
            }
        }
    }
}

fn valid_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Validates a whole `[[feeds]]` list: each feed, unique names, and that
/// every `backup_for` names a feed that is not itself a backup.
pub fn validate_all(configs: &[FeedConfig]) -> Result<Vec<FeedPlan>, Vec<FeedConfigError>> {
    let mut errors = Vec::new();
    let mut plans = Vec::new();
    let mut names = HashSet::new();
    for config in configs {
        if !names.insert(config.name.as_str()) {
            errors.push(FeedConfigError::DuplicateName(config.name.clone()));
        }
        match config.validate() {
            Ok(plan) => plans.push(plan),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    for config in configs {
        let Some(primary) = &config.backup_for else {
            continue;
        };
        let problem = match configs.iter().find(|c| &c.name == primary) {
            None => Some("names no configured feed"),
            Some(p) if p.name == config.name => Some("names the feed itself"),
            Some(p) if p.backup_for.is_some() => Some("names a feed that is itself a backup"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(FeedConfigError::BadBackup {
                feed: config.name.clone(),
                primary: primary.clone(),
                problem,
            });
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}

/// Which symbols a feed passes on: empty = all; otherwise a symbol passes
/// when it matches any pattern (`*` = any run, `?` = one character).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolFilter {
    patterns: Vec<String>,
}

impl SymbolFilter {
    /// Compiles `patterns`; returns the first pattern that is not a valid
    /// symbol with wildcards.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        for pattern in patterns {
            let plain = pattern.replace(['*', '?'], "A");
            if Symbol::parse(&plain).is_err() {
                return Err(pattern.clone());
            }
        }
        Ok(Self {
            patterns: patterns.to_vec(),
        })
    }

    /// Whether `symbol` passes.
    pub fn allows(&self, symbol: &str) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|p| glob_match(p.as_bytes(), symbol.as_bytes()))
    }

    /// True when every symbol passes.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Iterative glob match with `*` and `?`, linear in practice.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

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
