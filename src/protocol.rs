//! The client protocol codec (DESIGN.md §3): parse client requests, encode
//! server replies. Pure functions: no sockets, no clock.
//!
//! Client control messages are low-volume, so they are parsed with
//! `serde_json` into a `Value` first (its recursion limit turns deeply nested
//! input into a plain error) and then read field by field, which gives a
//! precise `bad_request` message for each mistake. Unknown fields are ignored.

use serde::Serialize;
use serde_json::Value;
use tickgate_feeds::Symbol;

pub use crate::fanout::Priority;

/// Longest `id` string echoed back; longer ones are refused.
const MAX_ID_STRING: usize = 128;
/// Longest rendering of a refused symbol echoed back in an error.
const MAX_ECHOED_SYMBOL: usize = 40;

/// A request id: echoed back verbatim in the reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(serde_json::Number),
    Text(String),
}

/// Opt-in delivery options of a `subscribe` (tickgate extensions); a
/// subscribe without them gets the contract behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeOptions {
    /// `max_rate`: at most this many updates per second per symbol.
    pub max_rate: Option<f64>,
    /// `delta`: updates carry only changed fields.
    pub delta: bool,
    /// `meta`: updates carry `conflated` and `received_ts`.
    pub meta: bool,
    /// `resume`: symbol → seq the client already holds; the snapshot leaves
    /// out symbols whose seq is still current.
    pub resume: Vec<(String, u64)>,
    /// `trades`: every trade of these symbols, in order, in `trades` frames.
    pub trades: bool,
    /// `priority`: how these symbols rank when the connection falls behind.
    pub priority: Option<Priority>,
}

fn parse_priority(value: &str) -> Option<Priority> {
    Priority::ALL.into_iter().find(|p| p.as_str() == value)
}

/// Highest `max_rate` a client may ask for.
pub const MAX_RATE_LIMIT: f64 = 1000.0;

fn parse_options(
    object: &mut serde_json::Map<String, Value>,
) -> Result<SubscribeOptions, &'static str> {
    let mut options = SubscribeOptions::default();
    match object.remove("max_rate") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => match n.as_f64() {
            Some(rate) if rate > 0.0 && rate <= MAX_RATE_LIMIT => options.max_rate = Some(rate),
            _ => {
                return Err(
                    "\"max_rate\" must be a number of updates per second above 0 and at most 1000",
                );
            }
        },
        Some(_) => return Err("\"max_rate\" must be a number"),
    }
    for (key, slot, complaint) in [
        (
            "delta",
            &mut options.delta,
            "\"delta\" must be true or false",
        ),
        ("meta", &mut options.meta, "\"meta\" must be true or false"),
        (
            "trades",
            &mut options.trades,
            "\"trades\" must be true or false",
        ),
    ] {
        match object.remove(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(flag)) => *slot = flag,
            Some(_) => return Err(complaint),
        }
    }
    match object.remove("priority") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => match parse_priority(&text) {
            Some(priority) => options.priority = Some(priority),
            None => return Err("\"priority\" must be \"visible\", \"normal\" or \"background\""),
        },
        Some(_) => return Err("\"priority\" must be \"visible\", \"normal\" or \"background\""),
    }
    match object.remove("resume") {
        None | Some(Value::Null) => {}
        Some(Value::Object(held)) => {
            for (symbol, seq) in held {
                let Some(seq) = seq.as_u64() else {
                    return Err(
                        "\"resume\" must map symbols to the seq the client holds (non-negative integers)",
                    );
                };
                options.resume.push((symbol, seq));
            }
        }
        Some(_) => return Err("\"resume\" must be an object of symbol: seq"),
    }
    Ok(options)
}

/// A parsed client request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Subscribe {
        id: Option<RequestId>,
        symbols: Vec<String>,
        options: SubscribeOptions,
    },
    Unsubscribe {
        id: Option<RequestId>,
        symbols: Vec<String>,
    },
    Ping {
        id: Option<RequestId>,
    },
    /// *Extension*: present or refresh a token (`{"op":"auth","token":"…"}`).
    Auth {
        id: Option<RequestId>,
        token: String,
    },
    /// *Extension*: rank subscribed symbols for the slow-consumer ladder
    /// (`{"op":"priority","visible":[…],"background":[…],"normal":[…]}`).
    Priority {
        id: Option<RequestId>,
        /// Each priority with the symbol texts given for it.
        classes: Vec<(Priority, Vec<String>)>,
    },
}

/// Stable error codes of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or a missing or wrong-typed field.
    BadRequest,
    /// `op` names no known operation.
    UnknownOp,
    /// A symbol is malformed (length or characters), or cannot be tracked.
    InvalidSymbol,
    /// The connection's subscription limit would be exceeded.
    TooManySubscriptions,
    /// The client may not see this symbol.
    NotEntitled,
    /// Too many requests.
    RateLimited,
    /// Missing or bad credentials.
    Unauthorized,
    /// *Extension*: a `priority` request named symbols this connection does
    /// not hold.
    NotSubscribed,
}

impl ErrorCode {
    /// The wire name, also used as a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownOp => "unknown_op",
            Self::InvalidSymbol => "invalid_symbol",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::NotEntitled => "not_entitled",
            Self::RateLimited => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::NotSubscribed => "not_subscribed",
        }
    }
}

/// A request that could not be parsed, with the id when one was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    pub id: Option<RequestId>,
    pub code: ErrorCode,
    pub message: String,
}

impl RequestError {
    fn bad(id: Option<RequestId>, message: impl Into<String>) -> Self {
        Self {
            id,
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }

    /// The `error` frame for this failure.
    pub fn to_frame(&self) -> String {
        error(self.id.as_ref(), self.code, &self.message, &[])
    }
}

/// Parses one text frame.
pub fn parse_request(text: &str) -> Result<Request, RequestError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RequestError::bad(None, format!("not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(RequestError::bad(None, "a request must be a JSON object"));
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(RequestId::Number(n)),
        Some(Value::String(s)) if s.len() <= MAX_ID_STRING => Some(RequestId::Text(s)),
        Some(Value::String(_)) => {
            return Err(RequestError::bad(
                None,
                format!("\"id\" must be at most {MAX_ID_STRING} bytes"),
            ));
        }
        Some(_) => {
            return Err(RequestError::bad(
                None,
                "\"id\" must be a number or a string",
            ));
        }
    };
    let op = match object.remove("op") {
        Some(Value::String(op)) => op,
        Some(_) => return Err(RequestError::bad(id, "\"op\" must be a string")),
        None => return Err(RequestError::bad(id, "missing \"op\"")),
    };
    match op.as_str() {
        "subscribe" | "unsubscribe" => {
            let symbols = match object.remove("symbols") {
                Some(Value::Array(items)) => strings(items).ok_or_else(|| {
                    RequestError::bad(id.clone(), "\"symbols\" must be an array of strings")
                })?,
                Some(_) => {
                    return Err(RequestError::bad(
                        id,
                        "\"symbols\" must be an array of strings",
                    ));
                }
                None => return Err(RequestError::bad(id, "missing \"symbols\"")),
            };
            if symbols.is_empty() {
                return Err(RequestError::bad(id, "\"symbols\" is empty"));
            }
            Ok(if op == "subscribe" {
                let options = parse_options(&mut object)
                    .map_err(|message| RequestError::bad(id.clone(), message))?;
                Request::Subscribe {
                    id,
                    symbols,
                    options,
                }
            } else {
                Request::Unsubscribe { id, symbols }
            })
        }
        "ping" => Ok(Request::Ping { id }),
        "priority" => {
            let mut classes = Vec::new();
            for priority in Priority::ALL.into_iter().rev() {
                let key = priority.as_str();
                match object.remove(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        let texts = strings(items).ok_or_else(|| {
                            RequestError::bad(
                                id.clone(),
                                format!("\"{key}\" must be an array of strings"),
                            )
                        })?;
                        classes.push((priority, texts));
                    }
                    Some(_) => {
                        return Err(RequestError::bad(
                            id,
                            format!("\"{key}\" must be an array of strings"),
                        ));
                    }
                }
            }
            if classes.iter().all(|(_, texts)| texts.is_empty()) {
                return Err(RequestError::bad(
                    id,
                    "\"priority\" needs symbols in \"visible\", \"normal\" or \"background\"",
                ));
            }
            Ok(Request::Priority { id, classes })
        }
        "auth" => match object.remove("token") {
            Some(Value::String(token)) if !token.is_empty() => Ok(Request::Auth { id, token }),
            _ => Err(RequestError::bad(
                id,
                "\"token\" must be a non-empty string",
            )),
        },
        _ => Err(RequestError {
            id,
            code: ErrorCode::UnknownOp,
            message: format!(
                "unknown op {:?}; expected subscribe, unsubscribe, ping, priority or auth",
                truncate(&op, 32)
            ),
        }),
    }
}

/// The items of a JSON array when every one is a string.
fn strings(items: Vec<Value>) -> Option<Vec<String>> {
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Symbols of a request, validated and de-duplicated in request order.
#[derive(Debug, Default, PartialEq)]
pub struct SymbolList {
    pub valid: Vec<Symbol>,
    /// Refused texts, shortened for echoing.
    pub invalid: Vec<String>,
}

/// Validates requested symbol texts.
pub fn parse_symbols(texts: &[String]) -> SymbolList {
    let mut list = SymbolList::default();
    let mut seen = rustc_hash::FxHashSet::default();
    for text in texts {
        match Symbol::parse(text) {
            Ok(symbol) => {
                if seen.insert(symbol) {
                    list.valid.push(symbol);
                }
            }
            Err(_) => list
                .invalid
                .push(truncate(text, MAX_ECHOED_SYMBOL).to_owned()),
        }
    }
    list
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply<'a> {
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        symbols: &'a [Symbol],
        #[serde(skip_serializing_if = "<[Symbol]>::is_empty")]
        no_data: &'a [Symbol],
    },
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        symbols: &'a [Symbol],
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        ts: u64,
    },
    Heartbeat {
        ts: u64,
    },
    Authenticated {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
        exp: u64,
    },
    Status {
        feed: &'a str,
        state: &'a str,
        symbols: &'a [Symbol],
    },
    Priority {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        #[serde(skip_serializing_if = "<[Symbol]>::is_empty")]
        visible: &'a [Symbol],
        #[serde(skip_serializing_if = "<[Symbol]>::is_empty")]
        normal: &'a [Symbol],
        #[serde(skip_serializing_if = "<[Symbol]>::is_empty")]
        background: &'a [Symbol],
    },
    Slow {
        state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rate_hz: Option<f64>,
        #[serde(skip_serializing_if = "<[Symbol]>::is_empty")]
        symbols: &'a [Symbol],
        behind_ms: u64,
        message: &'a str,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "<[&str]>::is_empty")]
        symbols: &'a [&'a str],
    },
}

fn encode(reply: &Reply<'_>) -> String {
    // Replies hold only strings and numbers: serialization cannot fail.
    serde_json::to_string(reply).unwrap_or_default()
}

/// `{"type":"subscribed",...}`
pub fn subscribed(id: Option<&RequestId>, symbols: &[Symbol], no_data: &[Symbol]) -> String {
    encode(&Reply::Subscribed {
        id,
        symbols,
        no_data,
    })
}

/// `{"type":"unsubscribed",...}`
pub fn unsubscribed(id: Option<&RequestId>, symbols: &[Symbol]) -> String {
    encode(&Reply::Unsubscribed { id, symbols })
}

/// `{"type":"pong",...}`
pub fn pong(id: Option<&RequestId>, ts: u64) -> String {
    encode(&Reply::Pong { id, ts })
}

/// *Extension*: `{"type":"authenticated","id":..,"sub":..,"exp":..}`, the
/// reply to an accepted `auth`; `exp` (seconds since the epoch) is when the
/// connection ends unless another `auth` refreshes it.
pub fn authenticated(id: Option<&RequestId>, sub: Option<&str>, exp: u64) -> String {
    encode(&Reply::Authenticated { id, sub, exp })
}

/// `{"type":"heartbeat","ts":...}`: a keep-alive browsers can see.
pub fn heartbeat(ts: u64) -> String {
    encode(&Reply::Heartbeat { ts })
}

/// `{"type":"status","feed":...,"state":...,"symbols":[...]}`: the feed
/// these symbols come from changed state (`stale`, `down`, `live`).
pub fn status(feed: &str, state: &str, symbols: &[Symbol]) -> String {
    encode(&Reply::Status {
        feed,
        state,
        symbols,
    })
}

/// *Extension*: `{"type":"priority","id":..,"visible":[..],"normal":[..],
/// "background":[..]}`, the symbols whose priority a `priority` request set.
pub fn priority(
    id: Option<&RequestId>,
    visible: &[Symbol],
    normal: &[Symbol],
    background: &[Symbol],
) -> String {
    encode(&Reply::Priority {
        id,
        visible,
        normal,
        background,
    })
}

/// *Extension*: `{"type":"slow","state":"slowed",...}`: this connection is
/// behind, and the symbols of `priority` are now limited to `rate_hz`.
pub fn slowed(priority: Priority, rate_hz: f64, symbols: &[Symbol], behind_ms: u64) -> String {
    let message = format!(
        "this connection is not keeping up; its {} symbols are limited to {rate_hz} updates per second until it catches up",
        priority.as_str()
    );
    encode(&Reply::Slow {
        state: "slowed",
        priority: Some(priority.as_str()),
        rate_hz: Some(rate_hz),
        symbols,
        behind_ms,
        message: &message,
    })
}

/// *Extension*: `{"type":"slow","state":"restored",...}`: caught up, every
/// symbol is back at full rate.
pub fn restored(behind_ms: u64) -> String {
    encode(&Reply::Slow {
        state: "restored",
        priority: None,
        rate_hz: None,
        symbols: &[],
        behind_ms,
        message: "caught up; every symbol is back at full rate",
    })
}

/// `{"type":"error",...}`
pub fn error(id: Option<&RequestId>, code: ErrorCode, message: &str, symbols: &[&str]) -> String {
    encode(&Reply::Error {
        id,
        code,
        message,
        symbols,
    })
}

/// A snapshot answering a `subscribe` with `resume`: `"resumed":true` says
/// the resume was honoured, `unchanged` counts the symbols left out because
/// the client's seq is current.
pub fn snapshot_resumed(quotes: &[String], unchanged: usize) -> String {
    let mut frame = snapshot(quotes);
    frame.truncate(frame.len() - 1);
    frame.push_str(&format!(r#","resumed":true,"unchanged":{unchanged}}}"#));
    frame
}

/// `{"type":"snapshot","quotes":[...]}` from pre-encoded quotes.
pub fn snapshot(quotes: &[String]) -> String {
    let mut frame = String::with_capacity(32 + quotes.iter().map(|q| q.len() + 1).sum::<usize>());
    frame.push_str(r#"{"type":"snapshot","quotes":["#);
    for (i, quote) in quotes.iter().enumerate() {
        if i > 0 {
            frame.push(',');
        }
        frame.push_str(quote);
    }
    frame.push_str("]}");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(text: &str) -> ErrorCode {
        parse_request(text).expect_err("should fail").code
    }

    #[test]
    fn parses_the_three_ops_and_ignores_unknown_fields() {
        assert_eq!(
            parse_request(
                r#"{"op":"subscribe","symbols":["AAPL","MSFT"],"id":1,"extra":{"x":[1]}}"#
            ),
            Ok(Request::Subscribe {
                id: Some(RequestId::Number(1.into())),
                symbols: vec!["AAPL".into(), "MSFT".into()],
                options: SubscribeOptions::default(),
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"unsubscribe","symbols":["AAPL"],"id":"a"}"#),
            Ok(Request::Unsubscribe {
                id: Some(RequestId::Text("a".into())),
                symbols: vec!["AAPL".into()]
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"ping"}"#),
            Ok(Request::Ping { id: None })
        );
    }

    #[test]
    fn malformed_requests_are_bad_request_with_the_id_when_readable() {
        for text in [
            "",
            "not json",
            "[1,2]",
            "\"subscribe\"",
            "{\"op\":",
            r#"{"symbols":["A"]}"#,
            r#"{"op":7}"#,
            r#"{"op":"subscribe"}"#,
            r#"{"op":"subscribe","symbols":"AAPL"}"#,
            r#"{"op":"subscribe","symbols":[1,2]}"#,
            r#"{"op":"subscribe","symbols":[]}"#,
            r#"{"op":"ping","id":{"a":1}}"#,
            r#"{"op":"ping","id":[1]}"#,
        ] {
            assert_eq!(code_of(text), ErrorCode::BadRequest, "{text}");
        }
        let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(code_of(&nested), ErrorCode::BadRequest);
        let err = parse_request(r#"{"op":"subscribe","symbols":"X","id":9}"#).expect_err("bad");
        assert_eq!(err.id, Some(RequestId::Number(9.into())));
        assert_eq!(
            code_of(&format!(r#"{{"op":"ping","id":"{}"}}"#, "x".repeat(200))),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn unknown_op_is_its_own_code() {
        assert_eq!(code_of(r#"{"op":"buy","id":1}"#), ErrorCode::UnknownOp);
    }

    #[test]
    fn auth_op_carries_a_token_string() {
        assert_eq!(
            parse_request(r#"{"op":"auth","token":"a.b.c","id":4}"#),
            Ok(Request::Auth {
                id: Some(RequestId::Number(4.into())),
                token: "a.b.c".into()
            })
        );
        for text in [
            r#"{"op":"auth"}"#,
            r#"{"op":"auth","token":""}"#,
            r#"{"op":"auth","token":7}"#,
        ] {
            assert_eq!(code_of(text), ErrorCode::BadRequest, "{text}");
        }
    }

    #[test]
    fn symbols_are_validated_deduplicated_and_echo_is_bounded() {
        let texts: Vec<String> = ["AAPL", "AAPL", "??", "MSFT", &"Z".repeat(100)]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let list = parse_symbols(&texts);
        assert_eq!(
            list.valid.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["AAPL", "MSFT"]
        );
        assert_eq!(list.invalid, vec!["??".to_owned(), "Z".repeat(40)]);
    }

    #[test]
    fn replies_match_the_contract() {
        let id = RequestId::Number(1.into());
        let aapl = Symbol::parse("AAPL").expect("valid");
        assert_eq!(
            subscribed(Some(&id), &[aapl], &[]),
            r#"{"type":"subscribed","id":1,"symbols":["AAPL"]}"#
        );
        assert_eq!(
            subscribed(None, &[aapl], &[aapl]),
            r#"{"type":"subscribed","symbols":["AAPL"],"no_data":["AAPL"]}"#
        );
        assert_eq!(pong(Some(&id), 5), r#"{"type":"pong","id":1,"ts":5}"#);
        assert_eq!(
            error(Some(&id), ErrorCode::InvalidSymbol, "bad", &["??"]),
            r#"{"type":"error","id":1,"code":"invalid_symbol","message":"bad","symbols":["??"]}"#
        );
        assert_eq!(
            snapshot(&["{}".into(), "{}".into()]),
            r#"{"type":"snapshot","quotes":[{},{}]}"#
        );
        assert_eq!(snapshot(&[]), r#"{"type":"snapshot","quotes":[]}"#);
    }
}
