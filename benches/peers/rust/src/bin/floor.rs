//! Peer (e): the floor. Blocking sockets, no protocol work on the hot path:
//! each feed line becomes one pre-encoded WebSocket frame, written with one
//! `write` to every connected client. It ignores which symbols a client asked
//! for (valid for the broadcast scenario, where everyone wants everything), so
//! it measures the kernel's cost of one frame per tick per client.
//!
//! Usage: floor LISTEN_ADDR FEED_ADDR   (speaks the contract in benches/README.md)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listener = TcpListener::bind(&args[1])?;
    println!("{{\"event\":\"listening\",\"client\":\"{}\"}}", listener.local_addr()?);
    let clients: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let feed_clients = Arc::clone(&clients);
    let feed = args[2].clone();
    thread::spawn(move || run_feed(&feed, &feed_clients));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let clients = Arc::clone(&clients);
        thread::spawn(move || {
            if let Some(stream) = handshake(stream) {
                clients.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
            }
        });
    }
    Ok(())
}

fn handshake(mut stream: TcpStream) -> Option<TcpStream> {
    stream.set_nodelay(true).ok()?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf[len..]).ok()?;
        if n == 0 || len + n == buf.len() {
            return None;
        }
        len += n;
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let key = request.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim().to_owned())
    })?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).ok()?;
    // The subscribe request: one client frame; its content does not matter here.
    let _ = stream.read(&mut buf).ok()?;
    stream.write_all(&frame(br#"{"type":"subscribed"}"#)).ok()?;
    Some(stream)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x81);
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if payload.len() <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn run_feed(addr: &str, clients: &Mutex<Vec<TcpStream>>) {
    let stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut lines = BufReader::with_capacity(1 << 16, stream);
    let mut line = Vec::new();
    let mut payload = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        payload.clear();
        payload.extend_from_slice(br#"{"type":"update","quotes":["#);
        payload.extend_from_slice(text);
        payload.extend_from_slice(b"]}");
        let frame = frame(&payload);
        clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain_mut(|c| c.write_all(&frame).is_ok());
    }
}
