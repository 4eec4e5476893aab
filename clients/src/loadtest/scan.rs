//! Reading what the load tester needs from a received frame: the message
//! type, the error code, and for each quote its `symbol`, `seq` and `ts`.
//! Parsed with simd-json (the stack's JSON parser) on a reused per-thread
//! buffer, so steady state allocates nothing per frame.

use std::cell::RefCell;

use simd_json::prelude::*;
use simd_json::tape::Value;
use tickgate_feeds::parse::JsonScratch;

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

impl MessageType {
    fn of(name: &str) -> Self {
        match name {
            "update" => Self::Update,
            "snapshot" => Self::Snapshot,
            "subscribed" => Self::Subscribed,
            "heartbeat" => Self::Heartbeat,
            "error" => Self::Error,
            _ => Self::Other,
        }
    }
}

/// One quote's identity and age, borrowed from the parse buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteRef<'a> {
    pub(crate) symbol: &'a [u8],
    pub(crate) seq: u64,
    pub(crate) ts: u64,
}

/// What [`scan`] found besides the quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scanned {
    pub(crate) kind: MessageType,
    /// The `code` of an `error` message.
    pub(crate) code: Option<String>,
}

thread_local! {
    /// The copy of the frame simd-json parses in place, and its buffers.
    static SCRATCH: RefCell<(Vec<u8>, JsonScratch)> = RefCell::default();
}

/// Parses `frame` and calls `each` for every quote in it: the `quotes` of a
/// snapshot or update, a bare quote object (peers that send one quote per
/// message), or each element of an array of quotes. A Socket.IO event's
/// arguments (`["update",{…}]`, the part after the `42` packet prefix) are
/// read the same way, the event name standing in for `type`. Quotes missing
/// `seq` or `ts` report 0 for it; a frame that is not JSON is `Other`.
pub(crate) fn scan(frame: &[u8], mut each: impl FnMut(MessageType, QuoteRef<'_>)) -> Scanned {
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (buf, json) = &mut *guard;
        buf.clear();
        buf.extend_from_slice(frame);
        json.parse(buf, |root| {
            let object = root.as_object();
            let field = |key: &str| object.as_ref().and_then(|o| o.get(key));
            let kind = field("type")
                .and_then(|t| t.into_string())
                .map_or(MessageType::Other, MessageType::of);
            let code = (kind == MessageType::Error).then(|| {
                field("code")
                    .and_then(|c| c.into_string())
                    .unwrap_or("unknown")
                    .to_owned()
            });
            if let Some(quotes) = field("quotes").and_then(|q| q.as_array()) {
                quotes.iter().for_each(|q| visit(kind, q, &mut each));
            } else if field("symbol").is_some() {
                visit(kind, root, &mut each);
            } else if let Some(items) = root.as_array() {
                let mut items = items.iter().peekable();
                if let Some(event) = items.peek().and_then(|first| first.into_string()) {
                    // A Socket.IO event: its name, then its arguments.
                    let kind = MessageType::of(event);
                    items
                        .skip(1)
                        .for_each(|arg| event_argument(kind, arg, &mut each));
                    return Scanned { kind, code: None };
                }
                items.for_each(|q| visit(kind, q, &mut each));
            }
            Scanned { kind, code }
        })
        .unwrap_or(Scanned {
            kind: MessageType::Other,
            code: None,
        })
    })
}

/// The WebSocket subprotocol of tickgate's binary encoding.
pub(crate) const BINARY_SUBPROTOCOL: &str = "tickgate.v1.bin";

/// The symbol names a binary connection has been told, by id (ids count
/// from 0 in order of first use; docs/protocol.md, "Binary encoding").
#[derive(Debug, Default)]
pub(crate) struct BinaryIds(Vec<Box<[u8]>>);

/// The parts of a binary frame the load tester reads; every other key
/// (prices, sizes, ids of requests) is skipped unparsed.
#[derive(serde::Deserialize)]
struct BinaryFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    code: Option<&'a str>,
    #[serde(borrow, default)]
    defs: Vec<(u64, &'a str)>,
    #[serde(default)]
    quotes: Vec<BinaryQuote>,
}

#[derive(serde::Deserialize)]
struct BinaryQuote {
    s: Option<u64>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    ts: u64,
}

/// [`scan`] for a binary (`tickgate.v1.bin`) frame: learns the frame's
/// `defs`, then calls `each` for every quote whose id is known. A frame
/// that is not a MessagePack map is `Other`.
pub(crate) fn scan_binary(
    frame: &[u8],
    ids: &mut BinaryIds,
    mut each: impl FnMut(MessageType, QuoteRef<'_>),
) -> Scanned {
    let Ok(parsed) = rmp_serde::from_slice::<BinaryFrame<'_>>(frame) else {
        return Scanned {
            kind: MessageType::Other,
            code: None,
        };
    };
    for (id, name) in parsed.defs {
        let Ok(id) = usize::try_from(id) else {
            continue;
        };
        if id >= ids.0.len() {
            ids.0.resize(id + 1, Box::default());
        }
        ids.0[id] = name.as_bytes().into();
    }
    let kind = parsed.kind.map_or(MessageType::Other, MessageType::of);
    for quote in parsed.quotes {
        let Some(symbol) = quote
            .s
            .and_then(|id| usize::try_from(id).ok())
            .and_then(|id| ids.0.get(id))
            .filter(|name| !name.is_empty())
        else {
            continue;
        };
        each(
            kind,
            QuoteRef {
                symbol,
                seq: quote.seq,
                ts: quote.ts,
            },
        );
    }
    let code = (kind == MessageType::Error).then(|| parsed.code.unwrap_or("unknown").to_owned());
    Scanned { kind, code }
}

/// One argument of a Socket.IO event: a quote, an array of quotes, or an
/// object holding `quotes`.
fn event_argument(
    kind: MessageType,
    arg: Value<'_, '_>,
    each: &mut impl FnMut(MessageType, QuoteRef<'_>),
) {
    if let Some(items) = arg.as_array() {
        items.iter().for_each(|q| visit(kind, q, each));
    } else if let Some(quotes) = arg
        .as_object()
        .and_then(|o| o.get("quotes"))
        .and_then(|q| q.as_array())
    {
        quotes.iter().for_each(|q| visit(kind, q, each));
    } else {
        visit(kind, arg, each);
    }
}

fn visit(
    kind: MessageType,
    quote: Value<'_, '_>,
    each: &mut impl FnMut(MessageType, QuoteRef<'_>),
) {
    let Some(object) = quote.as_object() else {
        return;
    };
    let Some(symbol) = object.get("symbol").and_then(|s| s.into_string()) else {
        return;
    };
    let number = |key: &str| object.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    each(
        kind,
        QuoteRef {
            symbol: symbol.as_bytes(),
            seq: number("seq"),
            ts: number("ts"),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_quote_of_an_update_frame() {
        let frame = br#"{"type":"update","quotes":[{"symbol":"AAPL","seq":12,"bid":1.5,"ts":1764000000000001},{"symbol":"LT0001","seq":3,"ts":9}]}"#;
        let mut quotes = Vec::new();
        let scanned = scan(frame, |_, q| quotes.push((q.symbol.to_vec(), q.seq, q.ts)));
        assert_eq!(scanned.kind, MessageType::Update);
        assert_eq!(
            quotes,
            vec![
                (b"AAPL".to_vec(), 12, 1_764_000_000_000_001),
                (b"LT0001".to_vec(), 3, 9)
            ]
        );
    }

    #[test]
    fn reads_types_error_codes_and_bare_quotes() {
        let kind = |frame: &[u8]| scan(frame, |_, _| {}).kind;
        assert_eq!(
            kind(br#"{"type":"subscribed","id":1}"#),
            MessageType::Subscribed
        );
        assert_eq!(
            kind(br#"{"id":1,"type":"snapshot"}"#),
            MessageType::Snapshot
        );
        assert_eq!(kind(b"PING"), MessageType::Other);
        let error = scan(br#"{"type":"error","code":"invalid_symbol"}"#, |_, _| {});
        assert_eq!(error.code.as_deref(), Some("invalid_symbol"));
        let mut seen = Vec::new();
        scan(br#"{"symbol":"BRK.B","seq":4,"ts":5}"#, |_, q| {
            seen.push((q.symbol.to_vec(), q.seq))
        });
        scan(br#"[{"symbol":"A","seq":1},{"symbol":"B"}]"#, |_, q| {
            seen.push((q.symbol.to_vec(), q.seq))
        });
        assert_eq!(
            seen,
            vec![
                (b"BRK.B".to_vec(), 4),
                (b"A".to_vec(), 1),
                (b"B".to_vec(), 0)
            ]
        );
    }

    #[test]
    fn reads_socket_io_event_arguments() {
        let mut seen = Vec::new();
        let mut each =
            |kind: MessageType, q: QuoteRef<'_>| seen.push((kind, q.symbol.to_vec(), q.seq, q.ts));
        let update = scan(
            br#"["update",{"symbol":"LT0001","seq":7,"ts":9}]"#,
            &mut each,
        );
        assert_eq!(update.kind, MessageType::Update);
        let batch = scan(
            br#"["update",[{"symbol":"A","seq":1,"ts":2}],{"quotes":[{"symbol":"B","seq":3,"ts":4}]}]"#,
            &mut each,
        );
        assert_eq!(batch.kind, MessageType::Update);
        let subscribed = scan(br#"["subscribed",{"count":2}]"#, &mut each);
        assert_eq!(subscribed.kind, MessageType::Subscribed);
        use MessageType::Update;
        assert_eq!(
            seen,
            vec![
                (Update, b"LT0001".to_vec(), 7, 9),
                (Update, b"A".to_vec(), 1, 2),
                (Update, b"B".to_vec(), 3, 4)
            ]
        );
    }

    #[test]
    fn binary_frames_yield_their_quotes_once_their_ids_are_known() {
        let frame = |value: serde_json::Value| rmp_serde::to_vec_named(&value).expect("msgpack");
        let mut ids = BinaryIds::default();
        let mut seen = Vec::new();
        let first = frame(
            serde_json::json!({"type":"snapshot","defs":[[0,"AAPL"],[1,"MSFT"]],
            "quotes":[{"s":0,"seq":3,"bid":23138,"px":2,"ts":17},{"s":1,"seq":9,"ts":18}]}),
        );
        let scanned = scan_binary(&first, &mut ids, |kind, q| {
            seen.push((
                kind,
                String::from_utf8_lossy(q.symbol).into_owned(),
                q.seq,
                q.ts,
            ));
        });
        assert_eq!(scanned.kind, MessageType::Snapshot);
        // Later frames name known ids only; an unknown id is skipped.
        let second = frame(
            serde_json::json!({"type":"update","quotes":[{"s":1,"seq":10,"ts":19},{"s":7,"seq":1}]}),
        );
        scan_binary(&second, &mut ids, |kind, q| {
            seen.push((
                kind,
                String::from_utf8_lossy(q.symbol).into_owned(),
                q.seq,
                q.ts,
            ));
        });
        assert_eq!(
            seen,
            [
                (MessageType::Snapshot, "AAPL".to_owned(), 3, 17),
                (MessageType::Snapshot, "MSFT".to_owned(), 9, 18),
                (MessageType::Update, "MSFT".to_owned(), 10, 19),
            ]
        );
        let error = frame(serde_json::json!({"type":"error","code":"rate_limited","message":"…"}));
        let scanned = scan_binary(&error, &mut ids, |_, _| {});
        assert_eq!(scanned.code.as_deref(), Some("rate_limited"));
        assert_eq!(
            scan_binary(b"\xc1garbage", &mut ids, |_, _| {}).kind,
            MessageType::Other
        );
    }
}
