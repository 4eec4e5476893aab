//! The binary encoding on the wire: a client that offers the
//! `tickgate.v1.bin` subprotocol gets every server message as a MessagePack
//! binary frame that decodes to exactly what a JSON client of the same
//! gateway receives; a client that does not offer it sees today's protocol.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::{WAIT, gateway_without_feeds, inject, quote_tick, test_config};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickgate::protocol::binary::{BinaryDecoder, SUBPROTOCOL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A client that asked for `protocols` at the upgrade; decodes binary
/// frames into their JSON form.
struct Client {
    ws: WebSocketStream<TcpStream>,
    decoder: BinaryDecoder,
    binary_frames: usize,
    text_frames: usize,
}

impl Client {
    async fn connect(addr: SocketAddr, protocols: Option<&str>) -> (Self, Option<String>) {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("request");
        if let Some(protocols) = protocols {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                protocols.parse().expect("header value"),
            );
        }
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        let (ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("websocket handshake");
        let chosen = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let client = Self {
            ws,
            decoder: BinaryDecoder::default(),
            binary_frames: 0,
            text_frames: 0,
        };
        (client, chosen)
    }

    async fn send(&mut self, request: Value) {
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .expect("send");
    }

    /// The next message other than a heartbeat, as JSON.
    async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
                .expect("open")
                .expect("no error");
            let message = match frame {
                Message::Binary(bytes) => {
                    self.binary_frames += 1;
                    self.decoder.decode(&bytes).expect("a valid binary frame")
                }
                Message::Text(text) => {
                    self.text_frames += 1;
                    serde_json::from_str(&text).expect("JSON")
                }
                _ => continue,
            };
            if message["type"] != "heartbeat" {
                return message;
            }
        }
    }

    async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Reads until every symbol's latest quote has reached `seq`; returns
    /// each symbol's latest quote.
    async fn until_seq(&mut self, symbols: &[&str], seq: u64) -> BTreeMap<String, Value> {
        let mut latest: BTreeMap<String, Value> = BTreeMap::new();
        while !symbols.iter().all(|s| {
            latest
                .get(*s)
                .is_some_and(|q| q["seq"].as_u64() >= Some(seq))
        }) {
            let message = self.next().await;
            if let Some(quotes) = message["quotes"].as_array() {
                for quote in quotes {
                    let symbol = quote["symbol"].as_str().expect("symbol").to_owned();
                    latest.insert(symbol, quote.clone());
                }
            }
        }
        latest
    }
}

#[tokio::test]
async fn a_binary_client_receives_exactly_what_a_json_client_does() {
    let gateway = gateway_without_feeds(test_config()).await;
    let addr = gateway.client_addr();
    let symbols = ["AAPL", "MSFT", "BRK.B"];
    inject(
        &gateway,
        symbols.iter().map(|s| quote_tick(s, 100.0)).collect(),
    )
    .await;

    let (mut binary, chosen) =
        Client::connect(addr, Some(&format!("x-other, {SUBPROTOCOL}"))).await;
    assert_eq!(chosen.as_deref(), Some(SUBPROTOCOL));
    let (mut json_client, chosen) = Client::connect(addr, None).await;
    assert_eq!(chosen, None);
    for client in [&mut binary, &mut json_client] {
        client
            .send(json!({"op":"subscribe","id":1,"symbols":symbols}))
            .await;
        let subscribed = client.next_of_type("subscribed").await;
        assert_eq!(subscribed["id"], 1);
        assert_eq!(subscribed["symbols"], json!(symbols));
        let snapshot = client.next_of_type("snapshot").await;
        assert_eq!(snapshot["quotes"].as_array().map(Vec::len), Some(3));
    }

    // Prices with 1 to 4 decimals, one that is no short decimal at all, a
    // size that is not integral.
    let prices = [231.38, 0.0001, 1e-12, 42.5, 99.123_4, 1.0 / 3.0];
    for (i, price) in prices.iter().enumerate() {
        let mut ticks: Vec<_> = symbols.iter().map(|s| quote_tick(s, *price)).collect();
        ticks[1].bid_size = Some(12.5 + i as f64);
        inject(&gateway, ticks).await;
    }
    let last_seq = 1 + prices.len() as u64;
    let from_binary = binary.until_seq(&symbols, last_seq).await;
    let from_json = json_client.until_seq(&symbols, last_seq).await;
    assert_eq!(from_binary, from_json);
    assert_eq!(from_binary["MSFT"]["bid"], json!(1.0 / 3.0));
    assert_eq!(
        binary.text_frames, 0,
        "a binary client gets binary frames only"
    );
    // subscribed, snapshot and at least one update (the rest may conflate).
    assert!(binary.binary_frames >= 3);
    assert_eq!(json_client.binary_frames, 0);

    // Errors and pongs have their binary form too, and the connection
    // stays usable after a bad request.
    binary.send(json!({"op":"nonsense","id":7})).await;
    let error = binary.next_of_type("error").await;
    assert_eq!(
        (&error["id"], &error["code"]),
        (&json!(7), &json!("unknown_op"))
    );
    binary.send(json!({"op":"ping","id":8})).await;
    assert_eq!(binary.next_of_type("pong").await["id"], 8);
    assert_eq!(binary.text_frames, 0);
}

#[tokio::test]
async fn a_client_offering_other_subprotocols_gets_json_and_no_protocol_header() {
    let gateway = gateway_without_feeds(test_config()).await;
    let addr = gateway.client_addr();
    for offered in ["x-other", "tickgate.v1.binary", "TICKGATE.V1.BIN", ""] {
        let head = response_head(
            addr,
            &format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Protocol: {offered}\r\n\r\n"
            ),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101"), "{offered:?}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
            "{offered:?} chose a protocol: {head}"
        );
    }
}

/// The status line and headers the gateway answers `request` with.
async fn response_head(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.expect("read") == 0 {
                break;
            }
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("an answer");
    String::from_utf8_lossy(&head).into_owned()
}
