//! Validating a [`FeedConfig`] into the [`FeedPlan`] the runner trusts.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::Uri;

use crate::model::{SessionClock, Symbol};
use crate::nats::NatsPlan;
use crate::sim::SimConfig;
use crate::venue::Venue;

use super::{FeedConfig, FeedConfigError, FeedKind, SymbolFilter};
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
    /// Where this feed's trading sessions start; the runner stamps each
    /// tick with its session. `None` (kind `nats`): the publisher's feeds
    /// roll the day fields over and their quotes carry the result.
    pub session: Option<SessionClock>,
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
        let all_but_nats = [Sim, Tcp, Ws, Replay, Polygon, Alpaca, Coinbase, Binance];
        unused("session_start", self.session_start.is_some(), &all_but_nats);
        unused("session_tz", self.session_tz.is_some(), &all_but_nats);
        for (key, present) in [
            ("rate", self.rate.is_some()),
            ("seed", self.seed.is_some()),
            ("universe", self.universe.is_some()),
            ("bursts", self.bursts.is_some()),
        ] {
            unused(key, present, &[Sim]);
        }
        let session = self.session_clock(&mut errors);
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
            session,
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

    /// The session boundary, with the kind's defaults: US equity venues
    /// start the day with the 04:00 New York pre-market, everything else
    /// at midnight UTC. `None` for kind `nats`.
    fn session_clock(&self, errors: &mut Vec<FeedConfigError>) -> Option<SessionClock> {
        let (start, zone) = match self.kind {
            FeedKind::Nats => return None,
            FeedKind::Polygon | FeedKind::Alpaca => ("04:00", "America/New_York"),
            _ => ("00:00", "UTC"),
        };
        let start = self.session_start.as_deref().unwrap_or(start);
        let zone = self.session_tz.as_deref().unwrap_or(zone);
        let start = SessionClock::parse_start(start)
            .map_err(|error| errors.push(self.invalid("session_start", &error.to_string())))
            .ok();
        let zone = SessionClock::parse_zone(zone)
            .map_err(|error| errors.push(self.invalid("session_tz", &error.to_string())))
            .ok();
        Some(SessionClock::new(start?, zone?))
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
