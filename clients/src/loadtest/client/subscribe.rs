//! The subscribe request a client sends once connected, in each protocol:
//! a tickgate `subscribe` op, NATS `SUB`s closed by a `PING`, or the
//! Socket.IO `subscribe` event (sent only once the namespace is connected).

use crate::loadtest::PeerMode;
use crate::loadtest::plan::ClientPlan;
use crate::loadtest::shared::Shared;
use crate::loadtest::ws::{Io, WsClient, WsError};

/// Sends the client's subscription, if its protocol sends one right after
/// the handshake.
pub(super) async fn subscribe(
    client: &mut WsClient<Box<dyn Io>>,
    plan: &ClientPlan,
    shared: &Shared,
) -> Result<(), WsError> {
    if plan.symbols.is_empty() {
        return Ok(());
    }
    let names = plan
        .symbols
        .iter()
        .map(|&s| shared.universe.name(s as usize));
    match shared.mode {
        PeerMode::Tickgate => client.send(1, tickgate_request(names).as_bytes()).await,
        PeerMode::Nats => client.send(2, nats_request(names).as_bytes()).await,
        // Sent once the Socket.IO connection is confirmed (see `session`).
        PeerMode::SocketIo => Ok(()),
    }
}

/// `{"op":"subscribe","id":1,"symbols":[…]}`.
fn tickgate_request<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let mut request = String::with_capacity(32 + names.len() * 10);
    request.push_str(r#"{"op":"subscribe","id":1,"symbols":"#);
    push_symbol_list(&mut request, names);
    request.push('}');
    request
}

/// `CONNECT`, one `SUB md.<SYMBOL> <sid>` per symbol, then `PING`.
fn nats_request<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let mut request = String::with_capacity(32 + names.len() * 10);
    request.push_str(
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"tickgate-loadtest\",\"protocol\":1}\r\n",
    );
    for (sid, name) in names.enumerate() {
        request.push_str("SUB md.");
        request.push_str(name);
        request.push_str(&format!(" {sid}\r\n"));
    }
    // The PONG to this PING proves every SUB above is registered.
    request.push_str("PING\r\n");
    request
}

/// The Socket.IO `subscribe` event: engine.io message (4), Socket.IO EVENT
/// (2) on the main namespace, no ack id.
pub(super) fn socketio_request<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let mut request = String::with_capacity(32 + names.len() * 10);
    request.push_str(r#"42["subscribe",{"symbols":"#);
    push_symbol_list(&mut request, names);
    request.push_str("}]");
    request
}

/// Appends the client's symbols as a JSON array of strings.
fn push_symbol_list<'a>(request: &mut String, names: impl Iterator<Item = &'a str>) {
    request.push('[');
    for (i, name) in names.enumerate() {
        if i > 0 {
            request.push(',');
        }
        request.push('"');
        request.push_str(name);
        request.push('"');
    }
    request.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["AAPL", "MSFT"];

    #[test]
    fn tickgate_subscribes_with_one_op() {
        assert_eq!(
            tickgate_request(NAMES.into_iter()),
            r#"{"op":"subscribe","id":1,"symbols":["AAPL","MSFT"]}"#
        );
    }

    #[test]
    fn nats_subscribes_one_subject_per_symbol_then_pings() {
        let request = nats_request(NAMES.into_iter());
        assert!(request.starts_with("CONNECT {"));
        assert!(request.ends_with("\r\nSUB md.AAPL 0\r\nSUB md.MSFT 1\r\nPING\r\n"));
    }

    #[test]
    fn socketio_emits_a_subscribe_event() {
        assert_eq!(
            socketio_request(NAMES.into_iter()),
            r#"42["subscribe",{"symbols":["AAPL","MSFT"]}]"#
        );
        assert_eq!(
            socketio_request(std::iter::empty()),
            r#"42["subscribe",{"symbols":[]}]"#
        );
    }
}
