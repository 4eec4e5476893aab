//! NATS JetStream: the bus between one `tickgate publish` process and many
//! gateway replicas (docs/nats.md).
//!
//! What lives here, shared by both roles:
//! - [`NatsSettings`]: the `nats` table (servers, stream, subject prefix,
//!   credentials, TLS), validated into a [`NatsPlan`]; [`NatsPlan::connect`]
//!   opens a client that reconnects by itself and reports its link state.
//! - The subject scheme: `<prefix>.<escaped symbol>` ([`subject_for`],
//!   [`symbol_of`]) and the publisher heartbeat subject `<prefix>.$hb`.
//! - The wire format: a quote is its client-protocol JSON (every field,
//!   `seq` and `ts` included); [`decode_quote`] turns one back into a
//!   [`Tick`] carrying `seq`, so every replica adopts the publisher's `seq`.
//!
//! And the gateway side, the `kind = "nats"` feed ([`run`]): on every
//! (re)connect it loads the last message of every subject (an ordered
//! consumer with `DeliverPolicy::LastPerSubject`), reports `live` once that
//! load is complete, then follows live messages. It reports `down` while
//! NATS is unreachable, `stale` when the publisher's heartbeats stop or say
//! its upstream is not live. Nothing here buffers without bound: ticks go to
//! the gateway through the pipeline's bounded channel, and the only map kept
//! holds one `seq` per symbol of the stream.

use std::time::Duration;

mod client;
mod consumer;
mod feed;
mod plan;
mod subject;
mod wire;

pub use crate::config::NatsSettings;
pub use client::{Link, reconnect_delay};
pub use consumer::open_last_per_subject;
pub(crate) use feed::run;
pub use plan::{NatsPlan, SettingsProblem};
pub use subject::{HEARTBEAT_TOKEN, escape_symbol, subject_for, symbol_of, unescape_token};
pub use wire::{Heartbeat, decode_published, decode_quote, encode_quote};

/// Time allowed for one JetStream API request (stream info, consumer create).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
