//! The `tickgate` binary: parses flags and the config file, then runs the
//! gateway until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tickgate::config::{Config, LogFormat};
use tickgate::{FeedSetup, Gateway};
use tracing_subscriber::EnvFilter;

/// Exit status for configuration and usage errors (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// tickgate: market-data fan-out gateway. With no options it runs the
/// embedded simulator feed, serves WebSocket clients and the dashboard on
/// http://127.0.0.1:8080 (/ws, /) and metrics on http://127.0.0.1:9090
/// (/metrics, /healthz, /readyz).
#[derive(Debug, Parser)]
#[command(name = "tickgate", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (see config/tickgate.example.toml). Flags given
    /// on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Client listener address (WebSocket at /ws, dashboard at /).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Admin listener address (/metrics, /healthz, /readyz).
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<std::net::SocketAddr>,
    /// An upstream feed, repeatable; replaces the simulator and the config
    /// file's [[feeds]]. SPEC is one of: sim[?rate=N&seed=N],
    /// tcp://HOST:PORT[?name=X] (JSON lines), ws://URL or wss://URL[#name=X&subscribe=MSG]
    /// (JSON frames), replay:PATH[?speed=N&loop=true], coinbase|binance|polygon|alpaca[?symbols=A,B],
    /// VENUE+wss://URL. Every option: docs/feeds.md.
    #[arg(long = "feed", value_name = "SPEC")]
    feeds: Vec<tickgate_feeds::FeedSpec>,
    /// Simulator: average ticks per second over the universe.
    #[arg(long, value_name = "N")]
    sim_rate: Option<f64>,
    /// Simulator: random seed (the same seed gives the same ticks).
    #[arg(long, value_name = "N")]
    sim_seed: Option<u64>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// TLS (wss) listener address; default 127.0.0.1:8443 once a
    /// certificate and key are given.
    #[arg(long, value_name = "ADDR:PORT")]
    tls_listen: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key, turns the wss listener on.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for mutual TLS: clients must present a certificate
    /// issued by one of these CAs.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Load and validate the configuration, report every problem, and exit
    /// (status 0 when valid, 64 otherwise).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands; without one, the gateway runs.
// Parsed once per process: the size difference between variants is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Open many WebSocket clients against a gateway (or a peer server),
    /// optionally act as its TCP feed, and report throughput, tick-to-client
    /// latency and delivery. Bounded in clients and time.
    Loadtest(tickgate_clients::loadtest::LoadtestArgs),
    /// Write a development CA and a server certificate for localhost,
    /// 127.0.0.1 and ::1 signed by it, for trying wss:// locally.
    DevCert(DevCertArgs),
    /// Subscribe to symbols on a gateway and print a live table (or JSON
    /// lines with --json): a quick check of a deployment from a shell or pod.
    Watch(tickgate_clients::watch::WatchArgs),
    /// Run the configured feeds and publish one quote per symbol to a NATS
    /// JetStream stream (the [publish] section) that gateway replicas load
    /// with a `kind = "nats"` feed. Serves /metrics, /healthz, /readyz on
    /// the admin listener. See docs/nats.md.
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// TOML configuration: [publish], [[feeds]] (or [simulator]),
    /// server.admin_listen, [log] (see config/publish.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Admin listener address (/metrics, /healthz, /readyz).
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Validate the configuration and exit (0 when valid, 64 otherwise).
    #[arg(long)]
    check_config: bool,
}

/// Runs `tickgate publish` until SIGINT/SIGTERM.
fn publish(args: &PublishArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    };
    if let (Ok(config), Some(admin)) = (&mut config, args.admin_listen) {
        config.server.admin_listen = admin;
    }
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tickgate publish: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    let runtime = match runtime("tickgate publish", Threads::Multi) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let publisher = match tickgate::publish::Publisher::bind(config).await {
            Ok(publisher) => publisher,
            Err(error) => {
                eprintln!("tickgate publish: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        println!(
            "{{\"event\":\"listening\",\"role\":\"publish\",\"admin\":\"{}\"}}",
            publisher.admin_addr()
        );
        let shutdown = tokio_util::sync::CancellationToken::new();
        let on_signal = shutdown.clone();
        // Lives until the process exits; the publisher has no task tracker.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            tickgate::shutdown::signal().await;
            tracing::info!("shutting down: publishing what is pending");
            on_signal.cancel();
        });
        match publisher.run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tickgate publish: {error}");
                ExitCode::from(EXIT_CONFIG)
            }
        }
    })
}

#[derive(Debug, clap::Args)]
struct DevCertArgs {
    /// Directory for ca.pem, ca-key.pem, server.pem and server-key.pem
    /// (created if missing). A CA already there is reused.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace the CA in DIR instead of reusing it (clients must trust the
    /// new ca.pem).
    #[arg(long)]
    new_ca: bool,
}

/// Runs `tickgate watch`; exit status 1 when the gateway cannot be reached,
/// refuses the connection, or refuses every symbol.
fn watch(args: tickgate_clients::watch::WatchArgs) -> ExitCode {
    let runtime = match runtime("tickgate watch", Threads::One) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(tickgate_clients::watch::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tickgate watch: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How many worker threads a command's async runtime gets.
enum Threads {
    /// One per core: the gateway and the publisher.
    Multi,
    /// The calling thread only: `watch`, a single connection.
    One,
}

/// Builds the async runtime for `command`, or reports why it cannot start.
fn runtime(command: &str, threads: Threads) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = match threads {
        Threads::Multi => tokio::runtime::Builder::new_multi_thread(),
        Threads::One => tokio::runtime::Builder::new_current_thread(),
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("{command}: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process; an error only
    // means one is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Loadtest(args)) => return tickgate_clients::loadtest::main(args),
        Some(Command::DevCert(args)) => return dev_cert(&args),
        Some(Command::Watch(args)) => return watch(args),
        Some(Command::Publish(args)) => return publish(&args),
        None => {}
    }
    let config = match build_config(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tickgate: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    let runtime = match runtime("tickgate", Threads::Multi) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(run(config))
}

fn build_config(cli: &Cli) -> Result<Config, tickgate::config::ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
    }
    if let Some(admin) = cli.admin_listen {
        config.server.admin_listen = admin;
    }
    if !cli.feeds.is_empty() {
        config.feeds = cli.feeds.iter().map(|spec| spec.0.clone()).collect();
    }
    if let Some(rate) = cli.sim_rate {
        config.simulator.ticks_per_second = rate;
    }
    if let Some(seed) = cli.sim_seed {
        config.simulator.seed = seed;
    }
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    if let Some(listen) = cli.tls_listen {
        config.tls.listen = Some(listen);
    }
    if let Some(cert) = &cli.tls_cert {
        config.tls.cert = Some(cert.clone());
    }
    if let Some(key) = &cli.tls_key {
        config.tls.key = Some(key.clone());
    }
    if let Some(ca) = &cli.tls_client_ca {
        config.tls.client_ca = Some(ca.clone());
    }
    config.validate()?;
    Ok(config)
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config: Config) -> ExitCode {
    let grace = config.shutdown.grace_period;
    let gateway = match Gateway::start(config, FeedSetup::Configured).await {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("tickgate: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // One machine-readable line on stdout so scripts and tests can find the
    // ports (useful with port 0).
    let tls = gateway
        .tls_addr()
        .map(|addr| format!(",\"tls\":\"{addr}\""))
        .unwrap_or_default();
    println!(
        "{{\"event\":\"listening\",\"client\":\"{}\",\"admin\":\"{}\"{tls}}}",
        gateway.client_addr(),
        gateway.admin_addr()
    );
    if let Some(tls) = gateway.tls_addr() {
        tracing::info!(%tls, "wss listener: wss://{tls}/ws");
    }
    tracing::info!(
        client = %gateway.client_addr(),
        admin = %gateway.admin_addr(),
        "tickgate listening: open http://{}/ for the dashboard",
        gateway.client_addr()
    );
    tickgate::shutdown::signal().await;
    tracing::info!("shutting down: closing client connections");
    if gateway.shutdown(grace).await {
        tracing::info!("shutdown complete");
    } else {
        tracing::warn!("grace period over; exiting with tasks still running");
    }
    ExitCode::SUCCESS
}

/// `tickgate dev-cert`: writes the files and says what to do next.
fn dev_cert(args: &DevCertArgs) -> ExitCode {
    let files = match tickgate::tls::dev_cert::write(&args.out, args.new_ca) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("tickgate dev-cert: {error}");
            return ExitCode::FAILURE;
        }
    };
    let until = tickgate::tls::x509::utc_timestamp(files.server_not_after);
    let ca_line = if files.ca_reused {
        "kept      (the CA already there: trust in it carries over)"
    } else {
        "wrote     development CA: trust this one certificate in your browser or client"
    };
    println!("{}  {ca_line}", files.ca.display());
    if !files.ca_reused {
        println!(
            "{}  wrote     the CA's private key (0600): signs more certificates; keep it private",
            files.ca_key.display()
        );
    }
    println!(
        "{}  wrote     server certificate for {} (valid until {until})",
        files.server.display(),
        tickgate::tls::dev_cert::SERVER_NAMES.join(", ")
    );
    println!(
        "{}  wrote     its private key (0600)",
        files.server_key.display()
    );
    let (cert, key, ca) = (
        files.server.display(),
        files.server_key.display(),
        files.ca.display(),
    );
    println!();
    println!("next:");
    println!("  tickgate --tls-listen 127.0.0.1:8443 --tls-cert {cert} --tls-key {key}");
    println!("  curl --cacert {ca} https://localhost:8443/          # the dashboard over TLS");
    println!("  NODE_EXTRA_CA_CERTS={ca} node your-client.js        # wss://localhost:8443/ws");
    println!("  trust {ca} in a browser, then open https://localhost:8443/ (docs/tls.md)");
    ExitCode::SUCCESS
}
