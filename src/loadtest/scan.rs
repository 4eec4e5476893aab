//! Reading just enough of a received frame: the message type, and for each
//! quote its `symbol`, `seq` and `ts`. A byte scan, not a JSON parse: the
//! load generator must stay cheaper per frame than the server under test.

use super::ws::find;

/// What a tickgate-protocol text frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageType {
    Update,
    Snapshot,
    Subscribed,
    Heartbeat,
    Error,
    Other,
}

/// The `type` of a server message (`{"type":"…"` is always first in
/// tickgate's frames; other orders fall back to a search).
pub(crate) fn message_type(frame: &[u8]) -> MessageType {
    const PREFIX: &[u8] = br#"{"type":""#;
    let rest = if let Some(rest) = frame.strip_prefix(PREFIX) {
        rest
    } else if let Some(pos) = find(frame, br#""type":""#) {
        &frame[pos + 8..]
    } else {
        return MessageType::Other;
    };
    let word = rest.split(|&b| b == b'"').next().unwrap_or_default();
    match word {
        b"update" => MessageType::Update,
        b"snapshot" => MessageType::Snapshot,
        b"subscribed" => MessageType::Subscribed,
        b"heartbeat" => MessageType::Heartbeat,
        b"error" => MessageType::Error,
        _ => MessageType::Other,
    }
}

/// One quote's identity and age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteRef<'a> {
    pub(crate) symbol: &'a [u8],
    pub(crate) seq: u64,
    pub(crate) ts: u64,
}

/// Calls `each` for every quote object in `frame` (any object with a
/// `"symbol"` key followed by `"seq"` and `"ts"`). Quotes missing a field
/// report 0 for it.
pub(crate) fn for_each_quote<'a>(frame: &'a [u8], mut each: impl FnMut(QuoteRef<'a>)) {
    const SYMBOL: &[u8] = br#""symbol":""#;
    let mut pos = 0;
    while let Some(found) = find(&frame[pos..], SYMBOL) {
        let start = pos + found + SYMBOL.len();
        let len = frame[start..]
            .iter()
            .position(|&b| b == b'"')
            .unwrap_or(frame.len() - start);
        let symbol = &frame[start..start + len];
        // The quote ends where the next one starts (or at the frame's end).
        let body_start = start + len;
        let body_end = find(&frame[body_start..], SYMBOL).map_or(frame.len(), |p| body_start + p);
        let body = &frame[body_start..body_end];
        each(QuoteRef {
            symbol,
            seq: number_after(body, br#""seq":"#),
            ts: number_after(body, br#""ts":"#),
        });
        pos = body_end;
    }
}

/// The unsigned integer after `key` in `body`, or 0.
fn number_after(body: &[u8], key: &[u8]) -> u64 {
    let Some(at) = find(body, key) else {
        return 0;
    };
    body[at + key.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, &d| {
            n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        })
}

/// The `code` of an error message, for the report.
pub(crate) fn error_code(frame: &[u8]) -> String {
    const KEY: &[u8] = br#""code":""#;
    find(frame, KEY)
        .and_then(|at| {
            let rest = &frame[at + KEY.len()..];
            let len = rest.iter().position(|&b| b == b'"')?;
            Some(String::from_utf8_lossy(&rest[..len]).into_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_quote_of_an_update_frame() {
        let frame = br#"{"type":"update","quotes":[{"symbol":"AAPL","seq":12,"bid":1.5,"ts":1764000000000001},{"symbol":"LT0001","seq":3,"ts":9}]}"#;
        assert_eq!(message_type(frame), MessageType::Update);
        let mut quotes = Vec::new();
        for_each_quote(frame, |q| quotes.push((q.symbol.to_vec(), q.seq, q.ts)));
        assert_eq!(
            quotes,
            vec![
                (b"AAPL".to_vec(), 12, 1_764_000_000_000_001),
                (b"LT0001".to_vec(), 3, 9)
            ]
        );
    }

    #[test]
    fn reads_types_and_error_codes() {
        assert_eq!(
            message_type(br#"{"type":"subscribed","id":1}"#),
            MessageType::Subscribed
        );
        assert_eq!(
            message_type(br#"{"id":1,"type":"snapshot"}"#),
            MessageType::Snapshot
        );
        assert_eq!(message_type(b"PING"), MessageType::Other);
        assert_eq!(
            error_code(br#"{"type":"error","code":"invalid_symbol"}"#),
            "invalid_symbol"
        );
    }
}
