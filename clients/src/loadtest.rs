//! `tickgate loadtest`: opens many WebSocket clients against a gateway (or a
//! peer server speaking the same contract, or nats-server), optionally acts
//! as the gateway's upstream feed, and reports what the clients saw.
//!
//! A run has four phases: connect (N clients at a controlled rate, each
//! subscribing to K symbols), go (the feed, if ours, starts writing ticks),
//! drain (the feed stops; wait until every client holds every symbol's latest
//! seq, or the drain limit), report. Everything is bounded: client count,
//! run time, drain time.
//!
//! Tick-to-client latency is the client's receive time minus the quote's
//! `ts` (set by the feed when the tick was generated, so it covers the feed
//! hop, the gateway and the client socket). Delivery is counted by `seq`:
//! every quote carries its symbol's sequence number, so a client knows
//! exactly how many ticks it was never sent (conflated) and whether it ends
//! holding the latest one.
//!
//! - `args`: the options and their checks (exit status 64 on bad ones).
//! - `target`: the `--url` taken apart and resolved.
//! - `run`: the four phases, from connecting to the report's inputs.
//! - `plan`: each client's symbols, stall and source address.
//! - `shared`: what the client tasks share and add their totals to.
//! - `progress`: the once-a-second line on stderr.
//! - `ws`: a minimal WebSocket client (cheap per frame, small buffers).
//! - `scan`: reads type, symbol, seq and ts out of frames without a parser.
//! - `client`: one simulated dashboard (tickgate protocol, NATS over WS, or
//!   Socket.IO over engine.io's WebSocket transport).
//! - `feed`: the upstream: JSON lines over TCP, or NATS `PUB`.
//! - `universe`: symbols, popularity, tick lines.
//! - `report`: totals, percentiles, CPU and memory, text and JSON output.

mod args;
mod client;
mod feed;
mod plan;
mod progress;
mod report;
mod run;
mod scan;
mod shared;
mod target;
mod universe;
mod ws;

use std::process::ExitCode;
use std::time::Duration;

pub use args::{LoadtestArgs, PeerMode, SymbolSource};
pub use universe::Popularity;

use self::args::UsageError;

/// Most clients one run may open.
pub const MAX_CLIENTS: usize = 50_000;
/// Longest measured phase of one run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Runs a load test to completion and prints its report. Exit status 64 for
/// bad arguments, 1 when the run could not be carried out, 0 otherwise.
pub fn main(args: LoadtestArgs) -> ExitCode {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tickgate loadtest: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match runtime.block_on(run::run(args)) {
        Ok(report) => {
            report.print(json);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tickgate loadtest: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
