//! tickgate's client programs: they speak to a gateway from the outside and
//! are not used by it. The `tickgate` binary runs them as subcommands.
//!
//! - [`loadtest`]: `tickgate loadtest`: many WebSocket clients against a
//!   gateway (or a peer server), optionally its TCP feed, and a report of
//!   throughput, tick-to-client latency and delivery.
//! - [`watch`]: `tickgate watch`: a command-line subscriber that prints a
//!   live table or JSON lines.
//! - [`binary`]: the decoder of the gateway's binary encoding, shared by
//!   both and by the gateway's own tests.

pub mod binary;
// The load generator paces its plain feed threads with `thread::sleep`, and
// its runtime's tasks end with the run (the process exits after the report):
// neither rule of the gateway's clippy.toml fits a one-shot client.
#[allow(clippy::disallowed_methods)]
pub mod loadtest;
pub mod watch;
