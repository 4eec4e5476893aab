//! The command line of `tickgate loadtest`: its options, the protocol and
//! symbol-source choices, and the checks that turn bad values into one usage
//! error (exit status 64) before anything connects.

use std::net::SocketAddr;
use std::time::Duration;

use super::universe::Popularity;
use super::{MAX_CLIENTS, MAX_DURATION};

/// Which protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerMode {
    /// tickgate's client protocol (also spoken by the peers in benches/peers).
    Tickgate,
    /// The NATS text protocol over WebSocket (nats-server's websocket listener);
    /// each symbol is the subject `md.<SYMBOL>`.
    Nats,
    /// Socket.IO v5 over engine.io v4, WebSocket transport only (the URL is
    /// `ws://HOST:PORT/socket.io/?EIO=4&transport=websocket`): the client
    /// emits `subscribe` with `{"symbols":[…]}`, waits for `subscribed` and
    /// reads the quotes of `update` events.
    #[value(name = "socketio")]
    #[serde(rename = "socketio")]
    SocketIo,
}

/// Where the symbols come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolSource {
    /// `LT0000`, `LT0001`, … (use with a feed of ours).
    Generated,
    /// The gateway's simulator universe, most active first (use with `tickgate --sim-rate`).
    Simulator,
}

/// `tickgate loadtest` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// WebSocket URL of the server under test (ws:// or wss://).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Client protocol.
    #[arg(long, value_enum, default_value = "tickgate")]
    pub mode: PeerMode,
    /// Number of client connections (at most 50,000).
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// New connections per second while connecting.
    #[arg(long, default_value_t = 2_000.0)]
    pub connect_rate: f64,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Symbols each client subscribes to (0: connect and stay idle).
    #[arg(long, default_value_t = 10)]
    pub symbols_per_client: usize,
    /// Size of the symbol universe.
    #[arg(long, default_value_t = 100)]
    pub universe: usize,
    /// Where symbol names come from.
    #[arg(long, value_enum, default_value = "generated")]
    pub symbol_source: SymbolSource,
    /// How subscriptions spread over the universe.
    #[arg(long, value_enum, default_value = "uniform")]
    pub popularity: Popularity,
    /// Zipf exponent s (weight of rank r is 1/r^s).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_exponent: f64,
    /// Measured phase, after every client has subscribed (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Act as the generic TCP feed: listen here and write JSON lines to every
    /// connection (point the server's `--feed tcp://ADDR` at it).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "feed_nats")]
    pub feed_listen: Option<SocketAddr>,
    /// Act as the feed by publishing `md.<SYMBOL>` to nats-server at this address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub feed_nats: Option<SocketAddr>,
    /// Feed: ticks per second over the whole universe.
    #[arg(long, default_value_t = 1_000.0)]
    pub feed_rate: f64,
    /// Feed: how ticks spread over the universe (uniform is round-robin).
    #[arg(long, value_enum, default_value = "uniform")]
    pub feed_popularity: Popularity,
    /// Feed: how long to wait for the server to connect to the feed.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub feed_wait: Duration,
    /// Share of clients (0..1) that stop reading during the run.
    #[arg(long, default_value_t = 0.0)]
    pub stall_share: f64,
    /// When stalled clients stop reading, counted from the start of the feed.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub stall_after: Duration,
    /// How long stalled clients stop reading.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub stall_for: Duration,
    /// Receive buffer (SO_RCVBUF) of stalled clients, so the kernel does not
    /// absorb the stall.
    #[arg(long, default_value_t = 4096)]
    pub stall_recv_buffer: u32,
    /// A slow reader: every client pauses this long after each read of its
    /// socket (0: reads as fast as it can). With a small `--read-buffer` it
    /// reads at most that many bytes per pause, so the gateway can offer
    /// more than it reads, and the age of what it receives shows whether
    /// it gets the latest values or a backlog.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub read_pause: Duration,
    /// Every client drops its connection at this time (from the start of the
    /// feed) and reconnects at once: a reconnect storm.
    #[arg(long, value_parser = parse_duration)]
    pub reconnect_at: Option<Duration>,
    /// After the feed stops, wait at most this long for clients to catch up.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub drain: Duration,
    /// Per-connection limit on the opening handshake.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// Initial read buffer per client in bytes (grows to the largest frame).
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// For wss://: PEM file of a CA to trust besides the public roots (for
    /// example the one `tickgate dev-cert` writes).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Bearer token sent in the `Authorization` header.
    #[arg(long)]
    pub token: Option<String>,
    /// Ask tickgate for its binary encoding (WebSocket subprotocol
    /// `tickgate.v1.bin`: MessagePack frames) instead of JSON text.
    #[arg(long)]
    pub binary: bool,
    /// Acknowledge what was read (`{"op":"ack"}`) after every N messages,
    /// so tickgate keeps at most its window unacknowledged and conflates
    /// the rest; N at most the gateway's `connection.ack_window_frames`
    /// (8 by default). 0: no acknowledgements.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub ack_every: u64,
    /// PID of the server under test: report its CPU time and resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Runtime worker threads of the load tester (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print one JSON report on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Free-form label copied into the report (scenario scripts use it).
    #[arg(long, default_value = "")]
    pub label: String,
}

#[cfg(test)]
impl LoadtestArgs {
    /// The options `tickgate loadtest FLAGS…` would give.
    pub(crate) fn for_test(flags: &[&str]) -> Self {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: LoadtestArgs,
        }
        let argv = std::iter::once("loadtest").chain(flags.iter().copied());
        Cli::try_parse_from(argv).expect("flags parse").args
    }
}

/// Bad arguments: the run exits with status 64 before it starts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Every problem with `args`, reported at once.
pub(crate) fn validate(args: &LoadtestArgs) -> Result<(), UsageError> {
    let mut problems = Vec::new();
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        problems.push(format!("--clients must be 1..={MAX_CLIENTS}"));
    }
    if args.duration > MAX_DURATION || args.duration.is_zero() {
        problems.push("--duration must be more than 0 and at most 10m".to_owned());
    }
    if args.connect_rate.is_nan() || args.connect_rate <= 0.0 {
        problems.push("--connect-rate must be positive".to_owned());
    }
    if !(0.0..=1.0).contains(&args.stall_share) {
        problems.push("--stall-share must be between 0 and 1".to_owned());
    }
    if args.universe == 0 || args.universe > 100_000 {
        problems.push("--universe must be 1..=100000".to_owned());
    }
    if args.feed_rate.is_nan() || args.feed_rate <= 0.0 || args.feed_rate > 10_000_000.0 {
        problems.push("--feed-rate must be more than 0 and at most 10,000,000".to_owned());
    }
    if args.drain > Duration::from_secs(60) {
        problems.push("--drain must be at most 60s".to_owned());
    }
    if args.mode == PeerMode::SocketIo
        && !(args.url.contains("EIO=4") && args.url.contains("transport=websocket"))
    {
        problems.push(
            "--mode socketio needs a URL like ws://HOST:PORT/socket.io/?EIO=4&transport=websocket"
                .to_owned(),
        );
    }
    if let Some(addr) = args.feed_listen.or(args.feed_nats)
        && !addr.ip().is_loopback()
    {
        problems.push("the feed talks to loopback addresses only".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(UsageError(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn parse(flags: &[&str]) -> LoadtestArgs {
        LoadtestArgs::for_test(flags)
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration(" 1.5s "), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn the_defaults_are_a_valid_run() {
        let args = parse(&[]);
        assert_eq!(args.url, "ws://127.0.0.1:8080/ws");
        assert_eq!(args.mode, PeerMode::Tickgate);
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.drain, Duration::from_secs(3));
        assert!(validate(&args).is_ok());
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let args = parse(&[
            "--clients",
            "0",
            "--feed-rate",
            "0",
            "--stall-share",
            "1.5",
            "--drain",
            "2m",
        ]);
        let UsageError(message) = validate(&args).expect_err("four problems");
        assert_eq!(
            message,
            "--clients must be 1..=50000; --stall-share must be between 0 and 1; \
             --feed-rate must be more than 0 and at most 10,000,000; --drain must be at most 60s"
        );
    }

    #[test]
    fn run_length_and_client_count_are_bounded() {
        assert!(validate(&parse(&["--clients", "50000", "--duration", "10m"])).is_ok());
        assert!(validate(&parse(&["--clients", "50001"])).is_err());
        assert!(validate(&parse(&["--duration", "601s"])).is_err());
        assert!(validate(&parse(&["--duration", "0s"])).is_err());
    }

    #[test]
    fn socketio_needs_the_websocket_transport_url() {
        assert!(validate(&parse(&["--mode", "socketio"])).is_err());
        let url = "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket";
        assert!(validate(&parse(&["--mode", "socketio", "--url", url])).is_ok());
    }

    #[test]
    fn the_feed_listens_on_loopback_only() {
        assert!(validate(&parse(&["--feed-listen", "127.0.0.1:9000"])).is_ok());
        assert!(validate(&parse(&["--feed-nats", "10.0.0.1:4222"])).is_err());
        assert!(
            Cli::try_parse_from([
                "loadtest",
                "--feed-listen",
                "127.0.0.1:9000",
                "--feed-nats",
                "127.0.0.1:4222",
            ])
            .is_err(),
            "one feed at a time"
        );
    }
}
