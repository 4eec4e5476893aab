//! The `tickgate` binary: parses flags and the config file, then runs the
//! gateway until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Simulator: average ticks per second over the universe.
    #[arg(long, value_name = "N")]
    sim_rate: Option<f64>,
    /// Simulator: random seed (the same seed gives the same ticks).
    #[arg(long, value_name = "N")]
    sim_seed: Option<u64>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Load and validate the configuration, report every problem, and exit
    /// (status 0 when valid, 64 otherwise).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands; without one, the gateway runs.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Open many WebSocket clients against a gateway (or a peer server),
    /// optionally act as its TCP feed, and report throughput, tick-to-client
    /// latency and delivery. Bounded in clients and time.
    Loadtest(tickgate::loadtest::LoadtestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Loadtest(args)) = cli.command {
        return tickgate::loadtest::main(args);
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tickgate: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
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
    if let Some(rate) = cli.sim_rate {
        config.simulator.ticks_per_second = rate;
    }
    if let Some(seed) = cli.sim_seed {
        config.simulator.seed = seed;
    }
    if let Some(format) = cli.log_format {
        config.log.format = format;
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
    let grace = Duration::from_millis(config.shutdown.grace_period_ms);
    let gateway = match Gateway::start(config, FeedSetup::Simulator).await {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("tickgate: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // One machine-readable line on stdout so scripts and tests can find the
    // ports (useful with port 0).
    println!(
        "{{\"event\":\"listening\",\"client\":\"{}\",\"admin\":\"{}\"}}",
        gateway.client_addr(),
        gateway.admin_addr()
    );
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
