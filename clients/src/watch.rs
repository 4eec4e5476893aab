//! `tickgate watch`: a command-line subscriber. Connects to a gateway,
//! subscribes to symbols and prints a live, refreshing table (or JSON lines
//! with `--json`), so an SRE can check a deployment from a shell or a pod.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Options of `tickgate watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Gateway WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Bearer token sent on the upgrade request (when the gateway requires one).
    #[arg(long)]
    pub token: Option<String>,
    /// Print every received quote as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds (runs until Ctrl-C when absent).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Symbols to watch, e.g. AAPL MSFT NVDA.
    #[arg(required = true, value_name = "SYMBOL")]
    pub symbols: Vec<String>,
}

/// Why `watch` could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "{0} is not a ws:// URL (wss:// needs a TLS-enabled build of watch; use ws:// inside the cluster)"
    )]
    BadUrl(String),
    #[error("cannot connect to {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the gateway refused the connection: HTTP {status}{hint}")]
    Refused { status: u16, hint: &'static str },
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("the gateway closed the connection ({code}: {reason})")]
    Closed { code: u16, reason: String },
    #[error("no symbol could be subscribed")]
    NothingSubscribed,
}

/// Runs the subscriber until the duration ends or the connection closes.
pub async fn run(args: WatchArgs) -> Result<(), WatchError> {
    let url = args.url.clone();
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| WatchError::BadUrl(url.clone()))?;
    let host_port = rest.split('/').next().unwrap_or_default().to_owned();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| WatchError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    if let Some(token) = &args.token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        request.headers_mut().insert("authorization", value);
    }
    let unreachable = |reason: String| WatchError::Unreachable {
        url: url.clone(),
        reason,
    };
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&host_port))
        .await
        .map_err(|_| unreachable("timed out after 5 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| match e {
            WsError::Http(response) => {
                let status = response.status().as_u16();
                let hint = match status {
                    401 => " (missing or refused token: pass --token)",
                    403 => " (origin or token not allowed)",
                    503 => " (gateway full or draining: try another instance)",
                    _ => "",
                };
                WatchError::Refused { status, hint }
            }
            other => unreachable(other.to_string()),
        })?;
    let subscribe = serde_json::json!({"op": "subscribe", "symbols": args.symbols, "id": 1});
    ws.send(Message::text(subscribe.to_string()))
        .await
        .map_err(|e| WatchError::Lost(e.to_string()))?;

    let mut table = Table::new(args.json);
    let deadline = args
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let mut subscribed_any = false;
    loop {
        let sleep_until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep_until_deadline => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = redraw.tick(), if !args.json => table.draw(&url),
            frame = ws.next() => {
                let frame = match frame {
                    None => return Err(WatchError::Lost("the gateway ended the stream".into())),
                    Some(Err(e)) => return Err(WatchError::Lost(e.to_string())),
                    Some(Ok(frame)) => frame,
                };
                match frame {
                    Message::Text(text) => {
                        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                        match message.get("type").and_then(Value::as_str) {
                            Some("subscribed") => {
                                subscribed_any = true;
                                if let Some(Value::Array(pending)) = message.get("no_data") {
                                    let names: Vec<&str> = pending.iter().filter_map(Value::as_str).collect();
                                    eprintln!("watch: no data yet for {} (waiting for a feed to publish)", names.join(", "));
                                }
                            }
                            Some("snapshot" | "update") => table.merge(&message),
                            Some("error") => {
                                let code = message.get("code").and_then(Value::as_str).unwrap_or("error");
                                let text = message.get("message").and_then(Value::as_str).unwrap_or("");
                                let symbols = message.get("symbols").map(Value::to_string).unwrap_or_default();
                                eprintln!("watch: {code}: {text} {symbols}");
                                if !subscribed_any && message.get("id") == Some(&Value::from(1)) && code != "too_many_subscriptions" {
                                    // Every symbol refused: no subscribed ack follows.
                                    let all_refused = message
                                        .get("symbols")
                                        .and_then(Value::as_array)
                                        .is_some_and(|refused| refused.len() >= args.symbols.len());
                                    if all_refused {
                                        return Err(WatchError::NothingSubscribed);
                                    }
                                }
                            }
                            Some("status") => eprintln!("watch: feed status {}", Value::Object(message)),
                            _ => {}
                        }
                    }
                    Message::Close(frame) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                        return Err(WatchError::Closed { code, reason });
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = ws.close(None).await;
    if !args.json {
        table.draw(&url);
    }
    Ok(())
}

/// Latest state per symbol, merged field by field.
struct Table {
    json: bool,
    quotes: BTreeMap<String, Map<String, Value>>,
    updates: u64,
}

impl Table {
    fn new(json: bool) -> Self {
        Self {
            json,
            quotes: BTreeMap::new(),
            updates: 0,
        }
    }

    fn merge(&mut self, frame: &Map<String, Value>) {
        let Some(Value::Array(quotes)) = frame.get("quotes") else {
            return;
        };
        let mut out = std::io::stdout().lock();
        for quote in quotes {
            let Value::Object(fields) = quote else {
                continue;
            };
            let Some(symbol) = fields.get("symbol").and_then(Value::as_str) else {
                continue;
            };
            self.updates += 1;
            if self.json {
                let _ = writeln!(out, "{quote}");
            }
            let entry = self.quotes.entry(symbol.to_owned()).or_default();
            for (key, value) in fields {
                entry.insert(key.clone(), value.clone());
            }
        }
        let _ = out.flush();
    }

    fn draw(&self, url: &str) {
        let mut screen = String::from("\x1b[H\x1b[2J");
        screen.push_str(&format!(
            "tickgate watch  {url}  ({} quotes received)\n\n",
            self.updates
        ));
        screen.push_str(&format!(
            "{:<10} {:>12} {:>12} {:>12} {:>9} {:>14} {:>8}\n",
            "SYMBOL", "BID", "ASK", "LAST", "CHG%", "VOLUME", "SEQ"
        ));
        let number = |q: &Map<String, Value>, k: &str| q.get(k).and_then(Value::as_f64);
        let cell = |v: Option<f64>, decimals: usize| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
        };
        for (symbol, q) in &self.quotes {
            screen.push_str(&format!(
                "{:<10} {:>12} {:>12} {:>12} {:>9} {:>14} {:>8}\n",
                symbol,
                cell(number(q, "bid"), 2),
                cell(number(q, "ask"), 2),
                cell(number(q, "last"), 2),
                cell(number(q, "change_pct"), 2),
                cell(number(q, "volume"), 0),
                q.get("seq").map(Value::to_string).unwrap_or_default(),
            ));
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(screen.as_bytes());
        let _ = out.flush();
    }
}
