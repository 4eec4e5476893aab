//! The gateway under test, fed by the generic TCP feed (`tcp://ADDR`, JSON
//! lines) instead of the simulator. Used by the scenario scripts while the
//! `tickgate` binary has no `--feed` flag; same library, same defaults.
//!
//! Build: `cargo build --release --example bench-gateway`
//! Usage: `bench-gateway LISTEN_ADDR FEED_ADDR [MAX_CONNECTIONS]`

use std::process::ExitCode;
use std::time::Duration;

use tickgate::config::Config;
use tickgate::{FeedSetup, Gateway};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench-gateway LISTEN_ADDR FEED_ADDR [MAX_CONNECTIONS]");
        return ExitCode::from(64);
    }
    let mut config = Config::default();
    let (Ok(listen), Ok(admin)) = (args[1].parse(), "127.0.0.1:0".parse()) else {
        eprintln!("bench-gateway: LISTEN_ADDR must be ADDR:PORT");
        return ExitCode::from(64);
    };
    config.server.listen = listen;
    config.server.admin_listen = admin;
    if let Some(max) = args.get(3).and_then(|m| m.parse().ok()) {
        config.limits.max_connections = max;
    }
    let feed = match tickgate_feeds::FeedSpec::parse(&format!("tcp://{}", args[2])) {
        Ok(feed) => feed,
        Err(error) => {
            eprintln!("bench-gateway: {error}");
            return ExitCode::from(64);
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        let gateway = match Gateway::start(config, FeedSetup::External).await {
            Ok(gateway) => gateway,
            Err(error) => {
                eprintln!("bench-gateway: {error}");
                return ExitCode::FAILURE;
            }
        };
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        if let Err(errors) =
            tickgate_feeds::spawn(&feed, gateway.feed_sender(), stop.clone(), &tracker)
        {
            eprintln!("bench-gateway: {errors:?}");
            return ExitCode::FAILURE;
        }
        println!(
            "{{\"event\":\"listening\",\"client\":\"{}\"}}",
            gateway.client_addr()
        );
        tickgate::shutdown::signal().await;
        stop.cancel();
        gateway.shutdown(Duration::from_secs(2)).await;
        ExitCode::SUCCESS
    })
}
