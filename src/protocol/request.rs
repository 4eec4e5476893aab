//! Client requests: parsed with `serde_json` into a `Value` first (its
//! recursion limit turns deeply nested input into a plain error), then read
//! field by field for a precise `bad_request` message for each mistake.
//! Unknown fields are ignored.

use serde::Serialize;
use serde_json::Value;
use tickgate_feeds::Symbol;

use crate::fanout::Priority;

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
    /// `epoch`: the gateway epoch the `resume` seqs were received in (from
    /// an earlier `subscribed` reply); a resume from any other epoch, or
    /// without one, gets full quotes.
    pub epoch: Option<String>,
    /// `trades`: every trade of these symbols, in order, in `trades` frames.
    pub trades: bool,
    /// `priority`: how these symbols rank when the connection falls behind.
    pub priority: Option<Priority>,
}

fn parse_priority(value: &str) -> Option<Priority> {
    Priority::ALL.into_iter().find(|p| p.as_str() == value)
}

/// Longest `epoch` a client may echo (the gateway's own are far shorter).
pub const MAX_EPOCH_LEN: usize = 64;

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
    match object.remove("epoch") {
        None | Some(Value::Null) => {}
        Some(Value::String(epoch)) if !epoch.is_empty() && epoch.len() <= MAX_EPOCH_LEN => {
            options.epoch = Some(epoch);
        }
        Some(_) => {
            return Err(
                "\"epoch\" must be the non-empty string of at most 64 bytes a `subscribed` reply carried",
            );
        }
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
    /// *Extension*: the client has read `frames` messages of this
    /// connection in all (`{"op":"ack","frames":120}`); no reply.
    Ack {
        frames: u64,
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
        "ack" => match object.remove("frames") {
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Request::Ack {
                frames: n.as_u64().unwrap_or_default(),
            }),
            _ => Err(RequestError::bad(
                id,
                "\"frames\" must be the number of messages read (a non-negative integer)",
            )),
        },
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
