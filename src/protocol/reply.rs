//! Server replies and notices, each encoded to one JSON text frame. The
//! data frames (`update`, `trades`, `trades_lost`) are built by
//! [`crate::fanout::encode`].

use serde::Serialize;
use tickgate_feeds::Symbol;

use super::request::{ErrorCode, RequestError, RequestId};
use crate::fanout::Priority;
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply<'a> {
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        symbols: &'a [Symbol],
        #[serde(skip_serializing_if = "<[Symbol]>::is_empty")]
        no_data: &'a [Symbol],
        epoch: &'a str,
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
pub fn subscribed(
    id: Option<&RequestId>,
    symbols: &[Symbol],
    no_data: &[Symbol],
    epoch: &str,
) -> String {
    encode(&Reply::Subscribed {
        id,
        symbols,
        no_data,
        epoch,
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

/// A snapshot answering a `subscribe` whose `resume` came from another
/// epoch (or named none): every quote is in it, and `"resumed":false` says
/// the held seqs were not used.
pub fn snapshot_not_resumed(quotes: &[String]) -> String {
    let mut frame = snapshot(quotes);
    frame.truncate(frame.len() - 1);
    frame.push_str(r#","resumed":false}"#);
    frame
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

impl RequestError {
    /// The `error` frame for this failure.
    pub fn to_frame(&self) -> String {
        error(self.id.as_ref(), self.code, &self.message, &[])
    }
}
