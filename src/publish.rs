//! `tickgate publish`: runs the configured feeds, merges their ticks into one
//! Quote per symbol with the publisher's own `seq`, and publishes each quote
//! (compact JSON, every field) to `<prefix>.<escaped symbol>` on a JetStream
//! stream that keeps one message per subject: the stream is the distributed
//! last-value snapshot every gateway replica loads (docs/nats.md).
//!
//! Owns: the quote book (one quote per symbol, and the pending set of
//! symbols whose latest quote is not yet acknowledged by JetStream; at most
//! one entry per symbol, so it is bounded by the universe), the stream's
//! settings and the heartbeat. Hands on: quotes to NATS; `/metrics`,
//! `/healthz`, `/readyz` on the admin listener.
//!
//! Start-up order matters for `seq`: before any feed runs, the publisher
//! loads the stream's last quotes and continues from their `seq`, so a
//! restarted publisher never goes back to 1 (gateways would refuse that as
//! stale).
//!
//! While NATS is away nothing is queued beyond the pending set: a symbol that
//! ticks again replaces its pending quote (counted in
//! `tickgate_publish_superseded_total`), and on reconnect the latest quote of
//! every pending symbol is published.
//!
//! - `settings`: the `[publish]` section and its checks.
//! - `book`: what to publish per symbol, and in which order (pure).
//! - `stream`: the stream's settings, creating or updating it, loading it.
//! - `job`: one batch of publishes and its acknowledgements, awaited
//!   together with a deadline per publish.
//! - `lease`: active/standby between two publishers (`publish.lease`).
//! - `run`: the publish loop that drives them.
//! - `upstream`, `readiness`, `admin`: the publisher's feeds, what
//!   `/readyz` decides from them, and the admin listener.

mod admin;
mod book;
mod job;
mod lease;
mod readiness;
mod run;
mod stream;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream;
use tickgate_feeds::backoff::Backoff;
use tickgate_feeds::nats::NatsPlan;
use tickgate_feeds::now_micros;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::readiness::Readiness;
use self::run::PublishLoop;
use crate::config::Config;
use crate::telemetry;

/// Feed events waiting for the publisher loop; a full queue makes feeds wait.
const FEED_QUEUE: usize = 1024;

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot listen on {addr} (admin): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid [publish] section: {0}")]
    Config(String),
    #[error("cannot start feeds: {0}")]
    Feeds(String),
    #[error("cannot connect to NATS: {0}")]
    Nats(String),
    #[error(
        "the publisher lease was lost to another publisher; exiting so a supervisor restarts this one as standby"
    )]
    LeaseLost,
}

/// A bound publisher, ready to [`Publisher::run`].
pub struct Publisher {
    config: Config,
    plan: NatsPlan,
    admin: TcpListener,
    admin_addr: SocketAddr,
}

impl Publisher {
    /// Validates `[publish]` and binds the admin listener.
    pub async fn bind(config: Config) -> Result<Self, PublishError> {
        let plan = config.publish.nats.validate().map_err(|problems| {
            PublishError::Config(
                crate::config::publish_problems(&problems)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let addr = config.server.admin_listen;
        let admin = TcpListener::bind(addr)
            .await
            .map_err(|source| PublishError::Bind { addr, source })?;
        let admin_addr = admin
            .local_addr()
            .map_err(|source| PublishError::Bind { addr, source })?;
        Ok(Self {
            config,
            plan,
            admin,
            admin_addr,
        })
    }

    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Runs until `shutdown` is cancelled; then publishes what is pending
    /// (bounded by the publish timeout) and stops the feeds.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PublishError> {
        let handle = telemetry::install();
        let readiness = Arc::new(Readiness::default());
        let tracker = TaskTracker::new();
        tracker.spawn(admin::serve_admin(
            self.admin,
            handle,
            Arc::clone(&readiness),
            tracker.clone(),
            shutdown.clone(),
        ));
        let publish = &self.config.publish;
        let (client, link) = self
            .plan
            .connect(
                "tickgate publish",
                publish.connect_timeout,
                publish.backoff_min,
                publish.backoff_max,
            )
            .await
            .map_err(PublishError::Nats)?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(publish.publish_timeout);
        let mut publish_loop = PublishLoop {
            config: publish.clone(),
            plan: self.plan.clone(),
            client,
            context,
            link,
            readiness: Arc::clone(&readiness),
            book: book::QuoteBook::default(),
            backoff: Backoff::new(publish.backoff_min, publish.backoff_max, now_micros()),
        };
        let result = async {
            let mut lease = None;
            if publish.lease {
                readiness.standby.store(true, Ordering::Relaxed);
                telemetry::publish_active(false);
                let holder = lease_holder();
                match lease::acquire(&publish_loop.context, publish, holder, &shutdown).await {
                    Some(held) => lease = Some(held),
                    None => return Ok(()),
                }
                readiness.standby.store(false, Ordering::Relaxed);
            }
            telemetry::publish_active(true);
            if !publish_loop.load(&shutdown).await {
                return Ok(());
            }
            let (tx, rx) = mpsc::channel(FEED_QUEUE);
            let required = upstream::start_feeds(&self.config, tx, &shutdown, &tracker)?;
            if publish_loop.run(rx, required, &shutdown, lease).await {
                Ok(())
            } else {
                telemetry::publish_active(false);
                Err(PublishError::LeaseLost)
            }
        }
        .await;
        shutdown.cancel();
        tracker.close();
        let _ = timeout(Duration::from_secs(5), tracker.wait()).await;
        result
    }
}

/// How this publisher names itself in the lease: the host (the pod name in
/// Kubernetes) and the process.
fn lease_holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown-host".to_owned());
    format!("{host} pid {}", std::process::id())
}
