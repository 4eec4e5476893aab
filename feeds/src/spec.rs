//! `--feed SPEC`: a feed on one command-line word, parsed into the same
//! [`FeedConfig`] a `[[feeds]]` table gives.
//!
//! ```text
//! sim                                   the simulator
//! sim?rate=500&seed=7&universe=50       simulator options
//! tcp://HOST:PORT?name=lines            generic JSON lines over TCP
//! ws://HOST:PORT/PATH#name=x            generic JSON over WebSocket
//! wss://HOST/PATH?venue=query#subscribe=%7B%22op%22%3A1%7D
//! replay:PATH?speed=2&loop=true         a .jsonl recording
//! coinbase?symbols=BTC-USD,ETH-USD      a venue at its public endpoint
//! binance+wss://HOST/ws#symbols=BTC-USDT
//! ```
//!
//! Options are `key=value` pairs joined by `&`, after `?` — except on
//! `ws://`/`wss://` URLs, whose own query belongs to the server: there they
//! go after `#`. Keys are the `[[feeds]]` keys; lists (`symbols`, `filter`)
//! are comma-separated; values may be percent-encoded.

use std::path::PathBuf;
use std::str::FromStr;

use crate::config::{FeedConfig, FeedKind};
use crate::venue::{Credentials, Venue};

/// A parsed `--feed` value; `.0` is the feed's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSpec(pub FeedConfig);

/// Why a `--feed` value was refused; the message quotes the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--feed {spec:?}: {problem}")]
pub struct FeedSpecError {
    pub spec: String,
    pub problem: String,
}

impl FromStr for FeedSpec {
    type Err = FeedSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        parse(spec).map(FeedSpec).map_err(|problem| FeedSpecError {
            spec: spec.to_string(),
            problem,
        })
    }
}

impl FeedSpec {
    /// Parses one `--feed` value.
    pub fn parse(spec: &str) -> Result<FeedConfig, FeedSpecError> {
        spec.parse::<FeedSpec>().map(|s| s.0)
    }
}

fn parse(spec: &str) -> Result<FeedConfig, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(
            "empty; expected sim, tcp://HOST:PORT, ws://…, wss://…, replay:PATH or a venue".into(),
        );
    }
    let (venue, rest) = match spec.split_once('+') {
        Some((name, url)) if url.starts_with("ws://") || url.starts_with("wss://") => {
            let venue = Venue::from_name(name)
                .ok_or_else(|| format!("unknown venue `{name}` before `+`; expected polygon, alpaca, coinbase or binance"))?;
            (Some(venue), url)
        }
        _ => (None, spec),
    };
    let mut config;
    let options;
    if rest.starts_with("ws://") || rest.starts_with("wss://") {
        let (url, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let kind = venue.map_or(FeedKind::Ws, venue_kind);
        config = FeedConfig::new(default_name(kind, url), kind);
        config.url = Some(url.to_string());
        options = fragment;
    } else if let Some(body) = rest.strip_prefix("tcp://") {
        let (address, query) = body.split_once('?').unwrap_or((body, ""));
        config = FeedConfig::new(default_name(FeedKind::Tcp, address), FeedKind::Tcp);
        config.address = Some(address.trim_end_matches('/').to_string());
        options = query;
    } else if let Some(body) = rest.strip_prefix("replay:") {
        let (path, query) = body.split_once('?').unwrap_or((body, ""));
        if path.is_empty() {
            return Err("replay needs a file path: replay:PATH".into());
        }
        let path = percent_decode(path)?;
        config = FeedConfig::new(default_name(FeedKind::Replay, &path), FeedKind::Replay);
        config.path = Some(PathBuf::from(path));
        options = query;
    } else {
        let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
        let kind = match head {
            "sim" => FeedKind::Sim,
            name => Venue::from_name(name).map(venue_kind).ok_or_else(|| {
                format!(
                    "unknown feed `{name}`; expected sim, tcp://HOST:PORT, ws://URL, wss://URL, replay:PATH, \
                     polygon, alpaca, coinbase, binance or VENUE+wss://URL"
                )
            })?,
        };
        config = FeedConfig::new(kind.as_str(), kind);
        options = query;
    }
    for pair in options.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("option `{pair}` is not key=value"))?;
        apply_option(&mut config, key, &percent_decode(value)?)?;
    }
    if let Err(errors) = config.validate() {
        let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(problems.join("; "));
    }
    Ok(config)
}

fn venue_kind(venue: Venue) -> FeedKind {
    match venue {
        Venue::Polygon => FeedKind::Polygon,
        Venue::Alpaca => FeedKind::Alpaca,
        Venue::Coinbase => FeedKind::Coinbase,
        Venue::Binance => FeedKind::Binance,
    }
}

/// `kind-<host, port or file stem>`, restricted to name characters.
fn default_name(kind: FeedKind, target: &str) -> String {
    let target = target
        .trim_start_matches("wss://")
        .trim_start_matches("ws://");
    let target = match kind {
        FeedKind::Replay => std::path::Path::new(target)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("file"),
        _ => target.split(['/', '?']).next().unwrap_or(target),
    };
    let cleaned: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!("{}-{}", kind.as_str(), cleaned.trim_matches('-'))
}

fn apply_option(config: &mut FeedConfig, key: &str, value: &str) -> Result<(), String> {
    fn num<T: FromStr>(key: &str, value: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("option `{key}` wants a number, got {value:?}"))
    }
    fn flag(key: &str, value: &str) -> Result<bool, String> {
        match value {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("option `{key}` wants true or false, got {value:?}")),
        }
    }
    let list = |value: &str| -> Vec<String> {
        value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    match key {
        "name" => config.name = value.to_string(),
        "format" => config.format = Some(value.to_string()),
        "subscribe" => config.subscribe = Some(value.to_string()),
        "symbols" => config.symbols = list(value),
        "filter" => config.filter = list(value),
        "prefix" => config.prefix = Some(value.to_string()),
        "key_env" => {
            config
                .credentials
                .get_or_insert_with(Credentials::default)
                .key_env = Some(value.to_string())
        }
        "secret_env" => {
            config
                .credentials
                .get_or_insert_with(Credentials::default)
                .secret_env = Some(value.to_string())
        }
        "staleness_ms" => config.staleness_ms = num(key, value)?,
        "idle_timeout_ms" => config.idle_timeout_ms = num(key, value)?,
        "connect_timeout_ms" => config.connect_timeout_ms = num(key, value)?,
        "backoff_min_ms" => config.backoff_min_ms = num(key, value)?,
        "backoff_max_ms" => config.backoff_max_ms = num(key, value)?,
        "max_message_bytes" => config.max_message_bytes = num(key, value)?,
        "speed" => config.speed = Some(num(key, value)?),
        "loop" => config.looped = flag(key, value)?,
        "restamp" => config.restamp = flag(key, value)?,
        "ca_file" => config.ca_file = Some(PathBuf::from(value)),
        "backup_for" => config.backup_for = Some(value.to_string()),
        "required" => config.required = flag(key, value)?,
        "session_start" => config.session_start = Some(value.to_string()),
        "session_tz" => config.session_tz = Some(value.to_string()),
        "rate" => config.rate = Some(num(key, value)?),
        "seed" => config.seed = Some(num(key, value)?),
        "universe" => config.universe = Some(num(key, value)?),
        "bursts" => config.bursts = Some(flag(key, value)?),
        "key" | "secret" => {
            return Err(format!(
                "option `{key}` would put a secret on the command line; use `{key}_env=VARIABLE`"
            ));
        }
        _ => return Err(format!("unknown option `{key}`")),
    }
    Ok(())
}

/// Decodes `%XX` escapes (and `+` stays `+`).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {text:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("percent escapes in {text:?} are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> FeedConfig {
        FeedSpec::parse(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(spec: &str) -> String {
        FeedSpec::parse(spec).expect_err("should fail").to_string()
    }

    #[test]
    fn every_kind_has_a_spec() {
        let sim = ok("sim?rate=250&seed=9&universe=20&bursts=false");
        assert_eq!((sim.kind, sim.name.as_str()), (FeedKind::Sim, "sim"));
        assert_eq!(
            (sim.rate, sim.seed, sim.universe, sim.bursts),
            (Some(250.0), Some(9), Some(20), Some(false))
        );

        let tcp = ok("tcp://127.0.0.1:7000?name=lines&staleness_ms=1500&required=true");
        assert_eq!(tcp.address.as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(
            (tcp.name.as_str(), tcp.staleness_ms, tcp.required),
            ("lines", 1500, true)
        );
        let equities = ok("tcp://127.0.0.1:7000?session_start=04:00&session_tz=America/New_York");
        assert_eq!(
            (
                equities.session_start.as_deref(),
                equities.session_tz.as_deref()
            ),
            (Some("04:00"), Some("America/New_York"))
        );

        let ws = ok(
            "wss://example.invalid:8443/stream?x=1#subscribe=%7B%22op%22%3A%22sub%22%7D&ca_file=/tmp/ca.pem",
        );
        assert_eq!(
            ws.url.as_deref(),
            Some("wss://example.invalid:8443/stream?x=1")
        );
        assert_eq!(ws.subscribe.as_deref(), Some(r#"{"op":"sub"}"#));
        assert_eq!(ws.name, "ws-example.invalid-8443");

        let replay = ok("replay:feeds/testdata/generic.jsonl?speed=0&loop=true");
        assert_eq!((replay.speed, replay.looped), (Some(0.0), true));
        assert_eq!(replay.name, "replay-generic");

        let cb = ok("coinbase+wss://127.0.0.1:9/#symbols=BTC-USD,ETH-USD&filter=BTC-*");
        assert_eq!(
            (cb.kind, cb.symbols.len(), cb.filter.len()),
            (FeedKind::Coinbase, 2, 1)
        );
        let bn = ok("binance?symbols=btcusdt&backup_for=cb");
        assert_eq!((bn.kind, bn.url.as_deref()), (FeedKind::Binance, None));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(err("").contains("empty"));
        assert!(err("nats://x").contains("unknown feed `nats://x`"));
        assert!(err("kraken+wss://x").contains("unknown venue `kraken`"));
        assert!(err("tcp://nohost").contains("`address` must be HOST:PORT"));
        assert!(err("tcp://h:1?speed=2").contains("`speed` does not apply to kind `tcp`"));
        assert!(err("sim?rate=fast").contains("`rate` wants a number"));
        assert!(err("sim?colour=blue").contains("unknown option `colour`"));
        assert!(err("sim?loop").contains("not key=value"));
        assert!(err("replay:").contains("file path"));
        assert!(err("polygon?symbols=AAPL&key=abc").contains("key_env"));
        assert!(err("polygon?symbols=AAPL").contains("polygon needs `key`"));
        assert!(err("coinbase").contains("non-empty `symbols`"));
        assert!(err("ws://h/#subscribe=%zz").contains("percent escape"));
    }
}
