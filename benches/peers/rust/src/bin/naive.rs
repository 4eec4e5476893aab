//! Peer (a): the tokio-tungstenite broadcast server a team writes in an
//! afternoon. One `tokio::sync::broadcast` channel carries every tick; each
//! connection filters by its symbols and sends (and flushes) one frame per
//! tick. Default WebSocket settings (128 KiB read buffer per connection).
//!
//! Usage: naive LISTEN_ADDR FEED_ADDR   (speaks the contract in benches/README.md)

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

struct Tick {
    symbol: String,
    frame: Utf8Bytes,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, feed) = (args[1].clone(), args[2].clone());
    let listener = TcpListener::bind(&listen).await?;
    println!("{{\"event\":\"listening\",\"client\":\"{}\"}}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<Arc<Tick>>(4096);
    let feed_tx = tx.clone();
    tokio::spawn(async move {
        let stream = loop {
            match TcpStream::connect(&feed).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let Some(symbol) = value["symbol"].as_str() else {
                continue;
            };
            let frame = format!(r#"{{"type":"update","quotes":[{line}]}}"#);
            let _ = feed_tx.send(Arc::new(Tick {
                symbol: symbol.to_owned(),
                frame: frame.into(),
            }));
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let rx = tx.subscribe();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            serve(ws, rx).await;
        });
    }
}

async fn serve(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    mut rx: broadcast::Receiver<Arc<Tick>>,
) {
    let mut symbols = HashSet::new();
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(request) = serde_json::from_str::<serde_json::Value>(&text)
                        && request["op"] == "subscribe"
                    {
                        for s in request["symbols"].as_array().into_iter().flatten() {
                            if let Some(s) = s.as_str() {
                                symbols.insert(s.to_owned());
                            }
                        }
                        if ws.send(Message::text(r#"{"type":"subscribed"}"#)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            tick = rx.recv() => match tick {
                Ok(tick) => {
                    if symbols.contains(&tick.symbol)
                        && ws.send(Message::Text(tick.frame.clone())).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
