//! `tickgate watch`: a command-line subscriber. Connects to a gateway,
//! subscribes to symbols and prints a live, refreshing table (or JSON lines
//! with `--json`), so an SRE can check a deployment from a shell or a pod.
//!
//! It stays up through gateway restarts: a lost connection is retried with
//! capped, jittered backoff and the subscription resumed with the seqs and
//! epoch it holds (docs/protocol.md, Epochs). Each row shows its age and
//! whether it is halted, its feed stale or down, or its quote too old, so a
//! silent gateway never looks like a quiet market. [`board`] holds the rows
//! and draws them; this file owns the connection.

mod board;

use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickgate_feeds::backoff::Backoff;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

pub use board::SortKey;
use board::{Board, Link};

use crate::binary::{self, BinaryDecoder};

/// Dialling and the WebSocket handshake together, per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// No frame for this long (three gateway heartbeats): the link is dead.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(15);
/// First reconnect delay ceiling and the cap (each delay is jittered down to half).
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often the table is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// Largest frame accepted from the gateway (a snapshot of many symbols).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Options of `tickgate watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Gateway WebSocket URL (the client listener's `/ws`).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Bearer token sent on the upgrade request (when the gateway requires one).
    #[arg(long)]
    pub token: Option<String>,
    /// Print every received quote as one JSON line instead of a table, plus
    /// `connected`, `reconnecting`, `status` and `trading` lines.
    #[arg(long)]
    pub json: bool,
    /// Row order of the table.
    #[arg(long, value_enum, default_value_t = SortKey::Symbol)]
    pub sort: SortKey,
    /// A row without a new quote for this many seconds is marked STALE.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub stale_after: f64,
    /// Stop after this many seconds (runs until Ctrl-C when absent).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Ask the gateway for its binary encoding (WebSocket subprotocol
    /// `tickgate.v1.bin`: MessagePack frames) instead of JSON text.
    #[arg(long)]
    pub binary: bool,
    /// Symbols to watch, e.g. AAPL MSFT NVDA (case does not matter; commas work too).
    #[arg(required = true, value_name = "SYMBOL")]
    pub symbols: Vec<String>,
}

/// Why `watch` could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Not a `ws://` URL.
    #[error(
        "{0} is not a ws:// URL (wss:// needs a TLS-enabled build of watch; use ws:// inside the cluster)"
    )]
    BadUrl(String),
    /// A seconds option that is negative, zero where it cannot be, or not finite.
    #[error("--{option} must be a positive number of seconds, not {value}")]
    BadSeconds { option: &'static str, value: f64 },
    /// Nothing answers at the address (first attempt only; later ones are retried).
    #[error("cannot connect to {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// An HTTP server answered, but this path is not the WebSocket endpoint.
    #[error(
        "{url} is not the gateway's WebSocket endpoint (the server answered the upgrade with HTTP {status}): clients connect to /ws, try {suggestion}"
    )]
    NotWebSocket {
        url: String,
        status: u16,
        suggestion: String,
    },
    /// The gateway answered the upgrade with an error status.
    #[error("the gateway refused the connection: HTTP {status}{hint}")]
    Refused { status: u16, hint: &'static str },
    /// Every symbol was refused: there is nothing to watch.
    #[error("no symbol could be subscribed")]
    NothingSubscribed,
}

/// Runs the subscriber until the duration ends or Ctrl-C. Fails at once
/// when the first connection cannot be made (a wrong URL should not look
/// like a gateway that is restarting); after that, it reconnects forever.
pub async fn run(args: WatchArgs) -> Result<(), WatchError> {
    let mut target = Target::parse(&args.url)?;
    target.binary = args.binary;
    let stale_after = seconds("stale-after", args.stale_after)?;
    let symbols = normalize_symbols(&args.symbols);
    let mut board = Board::new(&symbols, args.sort, stale_after);
    let mut out = Output { json: args.json };
    let stop_at = match args.duration {
        Some(s) => Some(Instant::now() + seconds("duration", s)?),
        None => None,
    };
    let stop = async {
        match stop_at {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {},
                _ = tokio::signal::ctrl_c() => {},
            },
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX, seed);
    let mut session = Session {
        symbols,
        epoch: None,
        next_id: 1,
        connected_once: false,
    };
    let mut attempt = 0u32;
    loop {
        let ended = tokio::select! {
            () = &mut stop => break,
            ended = session.run(&target, args.token.as_deref(), &mut board, &mut out) => ended,
        };
        let reason = match ended {
            Ended::Lost { reason, subscribed } => {
                if subscribed {
                    backoff.reset();
                    attempt = 0;
                }
                reason
            }
            Ended::Failed(error) if !session.connected_once => return Err(error),
            Ended::Failed(WatchError::NothingSubscribed) => {
                return Err(WatchError::NothingSubscribed);
            }
            Ended::Failed(error) => error.to_string(),
        };
        attempt += 1;
        let delay = backoff.next_delay();
        let next_at = Instant::now() + delay;
        out.line(&json!({"type": "reconnecting", "attempt": attempt, "delay_ms": delay.as_millis() as u64, "reason": reason}));
        if !out.json {
            eprintln!(
                "watch: connection lost ({reason}); reconnecting in {} ms",
                delay.as_millis()
            );
        }
        board.set_link(Link::Reconnecting {
            attempt,
            next_at: next_at.into_std(),
            reason,
        });
        let mut redraw = tokio::time::interval(REDRAW);
        loop {
            tokio::select! {
                () = &mut stop => {
                    out.draw(&board, &target.url);
                    return Ok(());
                }
                () = tokio::time::sleep_until(next_at) => break,
                _ = redraw.tick() => out.draw(&board, &target.url),
            }
        }
    }
    out.draw(&board, &target.url);
    Ok(())
}

/// How one connection ended.
enum Ended {
    /// It was open and went away (closed, reset, silent); `subscribed` when
    /// the gateway had acknowledged the subscription on it.
    Lost { reason: String, subscribed: bool },
    /// It could not be made, or the gateway refused everything.
    Failed(WatchError),
}

/// What carries over from one connection to the next.
struct Session {
    symbols: Vec<String>,
    /// The gateway epoch of the seqs held (from the last `subscribed`).
    epoch: Option<String>,
    next_id: u64,
    connected_once: bool,
}

impl Session {
    /// One connection: dial, subscribe (resuming when it can), then read
    /// frames into the board until the link ends.
    async fn run(
        &mut self,
        target: &Target,
        token: Option<&str>,
        board: &mut Board,
        out: &mut Output,
    ) -> Ended {
        let mut ws = match target.connect(token).await {
            Ok(ws) => ws,
            Err(error) => return Ended::Failed(error),
        };
        self.connected_once = true;
        let id = self.next_id;
        self.next_id += 1;
        let mut subscribe =
            json!({"op": "subscribe", "symbols": self.symbols, "id": id, "meta": true});
        let seqs = board.seqs();
        if let Some(epoch) = &self.epoch
            && !seqs.is_empty()
        {
            subscribe["resume"] = Value::Object(seqs);
            subscribe["epoch"] = Value::from(epoch.clone());
        }
        if let Err(e) = ws.send(Message::text(subscribe.to_string())).await {
            return Ended::Lost {
                reason: e.to_string(),
                subscribed: false,
            };
        }

        let mut subscribed = false;
        // Symbol ids are per connection: a new one starts a new table.
        let mut decoder = target.binary.then(BinaryDecoder::default);
        let mut redraw = tokio::time::interval(REDRAW);
        let mut last_frame = Instant::now();
        board.heard(last_frame.into_std());
        let mut pinged = false;
        loop {
            let silence = tokio::time::sleep_until(last_frame + SILENCE_TIMEOUT);
            // Half-way through a silence, ask for a pong: a healthy gateway
            // that sends no heartbeats stays connected through a quiet market.
            let ping_at = tokio::time::sleep_until(last_frame + SILENCE_TIMEOUT / 2);
            let frame = tokio::select! {
                () = silence => {
                    return Ended::Lost { reason: format!("no frame for {} s", SILENCE_TIMEOUT.as_secs()), subscribed };
                }
                () = ping_at, if !pinged => {
                    pinged = true;
                    let ping = json!({"op": "ping", "id": self.next_id});
                    self.next_id += 1;
                    if let Err(e) = ws.send(Message::text(ping.to_string())).await {
                        return Ended::Lost { reason: e.to_string(), subscribed };
                    }
                    continue;
                }
                _ = redraw.tick() => {
                    out.draw(board, &target.url);
                    continue;
                }
                frame = ws.next() => frame,
            };
            let message = match frame {
                None => {
                    return Ended::Lost {
                        reason: "the gateway ended the stream".into(),
                        subscribed,
                    };
                }
                Some(Err(e)) => {
                    return Ended::Lost {
                        reason: e.to_string(),
                        subscribed,
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Ended::Lost {
                        reason: format!("closed by the gateway ({code}: {reason})"),
                        subscribed,
                    };
                }
                Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(text.as_str()).ok(),
                Some(Ok(Message::Binary(bytes))) => match decoder.as_mut() {
                    Some(decoder) => match decoder.decode(&bytes) {
                        Ok(message) => Some(message),
                        // An id never defined: nothing after it can be read
                        // right; start over on a new connection.
                        Err(e) => {
                            return Ended::Lost {
                                reason: format!("undecodable binary frame: {e}"),
                                subscribed,
                            };
                        }
                    },
                    None => continue,
                },
                Some(Ok(_)) => continue,
            };
            last_frame = Instant::now();
            pinged = false;
            let now = last_frame.into_std();
            board.heard(now);
            let Some(Value::Object(message)) = message else {
                continue;
            };
            match message.get("type").and_then(Value::as_str) {
                Some("subscribed") => {
                    subscribed = true;
                    let epoch = message
                        .get("epoch")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let acked = message
                        .get("symbols")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    board.subscribed(&acked);
                    board.set_link(Link::Live {
                        epoch: epoch.clone(),
                    });
                    out.line(&json!({"type": "connected", "url": target.url, "epoch": epoch, "symbols": acked}));
                    self.epoch = epoch;
                    if let Some(Value::Array(pending)) = message.get("no_data") {
                        let names: Vec<&str> = pending.iter().filter_map(Value::as_str).collect();
                        eprintln!(
                            "watch: no data yet for {} (waiting for a feed to publish)",
                            names.join(", ")
                        );
                    }
                }
                Some("snapshot" | "update") => {
                    for quote in board.quotes(&message, now) {
                        out.line(quote);
                    }
                }
                Some("status") if board.status(&message) => out.line(&Value::Object(message)),
                Some("trading") if board.trading(&message) => out.line(&Value::Object(message)),
                Some("error") => {
                    let code = message
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("error");
                    let text = message.get("message").and_then(Value::as_str).unwrap_or("");
                    let symbols = message
                        .get("symbols")
                        .map(Value::to_string)
                        .unwrap_or_default();
                    eprintln!("watch: {code}: {text} {symbols}");
                    let refused_all = message.get("id") == Some(&Value::from(id))
                        && !subscribed
                        && code != "too_many_subscriptions"
                        && message
                            .get("symbols")
                            .and_then(Value::as_array)
                            .is_some_and(|refused| refused.len() >= self.symbols.len());
                    if refused_all {
                        return Ended::Failed(WatchError::NothingSubscribed);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Where to connect, parsed once.
struct Target {
    url: String,
    /// Ask for the binary encoding (`--binary`).
    binary: bool,
    host_port: String,
    /// The path of the URL (`/ws` when right).
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, WatchError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| WatchError::BadUrl(url.to_owned()))?;
        let (host_port, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if host_port.is_empty() {
            return Err(WatchError::BadUrl(url.to_owned()));
        }
        Ok(Self {
            url: url.to_owned(),
            host_port: host_port.to_owned(),
            binary: false,
            path: path.split('?').next().unwrap_or_default().to_owned(),
        })
    }

    /// Dials and upgrades, within [`CONNECT_TIMEOUT`].
    async fn connect(&self, token: Option<&str>) -> Result<WebSocketStream<TcpStream>, WatchError> {
        let unreachable = |reason: String| WatchError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| unreachable(e.to_string()))?;
        if let Some(token) = token
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            request.headers_mut().insert("authorization", value);
        }
        if self.binary {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(binary::SUBPROTOCOL),
            );
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let dial = async {
            let stream = TcpStream::connect(&self.host_port)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let (ws, _) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                    .await
                    .map_err(|e| match e {
                        WsError::Http(response) => self.refused(response.status().as_u16()),
                        other => unreachable(other.to_string()),
                    })?;
            Ok(ws)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, dial)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no WebSocket handshake within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
    }

    /// Explains an HTTP answer to the upgrade. 200 or 404 on a path other
    /// than `/ws` is a URL missing its `/ws`: the page or nothing is there.
    fn refused(&self, status: u16) -> WatchError {
        if matches!(status, 200 | 404) && self.path != "/ws" {
            let base = self.url.trim_end_matches(&*self.path).trim_end_matches('/');
            let base = base.split('?').next().unwrap_or(base);
            return WatchError::NotWebSocket {
                url: self.url.clone(),
                status,
                suggestion: format!("{base}/ws"),
            };
        }
        let hint = match status {
            401 => " (missing or refused token: pass --token)",
            403 => " (origin or token not allowed)",
            404 => {
                " (no WebSocket endpoint here: is this the admin port? clients connect to the client listener, 8080 by default)"
            }
            503 => " (gateway full or draining: try another instance)",
            _ => "",
        };
        WatchError::Refused { status, hint }
    }
}

/// Where the board and the JSON lines go.
struct Output {
    json: bool,
}

impl Output {
    /// One JSON line (`--json` only).
    fn line(&mut self, value: &Value) {
        if !self.json {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
        let _ = stdout.flush();
    }

    /// Redraws the table (not with `--json`).
    fn draw(&mut self, board: &Board, url: &str) {
        if self.json {
            return;
        }
        let screen = board.render(url, std::time::Instant::now());
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "\x1b[H\x1b[2J{screen}");
        let _ = stdout.flush();
    }
}

/// Upper-cased, split on commas, without duplicates or empty names, in the
/// order given. Anything else is left for the gateway to judge.
fn normalize_symbols(given: &[String]) -> Vec<String> {
    let mut symbols: Vec<String> = Vec::new();
    for symbol in given.iter().flat_map(|s| s.split(',')) {
        let symbol = symbol.trim().to_ascii_uppercase();
        if !symbol.is_empty() && !symbols.contains(&symbol) {
            symbols.push(symbol);
        }
    }
    symbols
}

fn seconds(option: &'static str, value: f64) -> Result<Duration, WatchError> {
    Duration::try_from_secs_f64(value).map_err(|_| WatchError::BadSeconds { option, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_upper_cased_split_and_deduplicated() {
        let given = [
            "aapl".into(),
            "msft,nvda".into(),
            "AAPL".into(),
            " brk.b ".into(),
            ",".into(),
        ];
        assert_eq!(normalize_symbols(&given), ["AAPL", "MSFT", "NVDA", "BRK.B"]);
    }

    #[test]
    fn a_url_without_ws_gets_the_right_one_suggested() {
        for (url, suggestion) in [
            ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"),
            ("ws://127.0.0.1:8080/", "ws://127.0.0.1:8080/ws"),
            ("ws://gw:8080/socket", "ws://gw:8080/ws"),
        ] {
            let target = Target::parse(url).expect("parses");
            match target.refused(200) {
                WatchError::NotWebSocket { suggestion: s, .. } => {
                    assert_eq!(s, suggestion, "{url}")
                }
                other => panic!("{url}: {other}"),
            }
        }
        let admin = Target::parse("ws://127.0.0.1:9090/ws").expect("parses");
        assert!(admin.refused(404).to_string().contains("admin port"));
        assert!(Target::parse("http://x/ws").is_err());
        assert!(Target::parse("ws:///ws").is_err());
    }

    #[test]
    fn seconds_options_refuse_nonsense() {
        assert!(seconds("duration", -1.0).is_err());
        assert!(seconds("duration", f64::NAN).is_err());
        assert_eq!(
            seconds("duration", 1.5).ok(),
            Some(Duration::from_millis(1500))
        );
    }
}
