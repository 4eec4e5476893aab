//! The NATS client: connect with the plan's servers, credentials and TLS,
//! reconnect by itself with capped backoff, and report the link state.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use tokio::sync::watch;
use tracing::debug;

use super::REQUEST_TIMEOUT;
use super::plan::{Auth, NatsPlan};
use crate::now_micros;

/// Whether the client is connected, and how many times it has connected: a
/// change of `generation` means a new connection (reload the snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    pub connected: bool,
    pub generation: u64,
}

impl NatsPlan {
    /// Opens a client that keeps reconnecting by itself (its first connect
    /// too), with capped exponential delays between `backoff_min` and
    /// `backoff_max`. Connection changes are published on the returned
    /// watch. Fails only when the credentials file cannot be read.
    pub async fn connect(
        &self,
        name: &str,
        connect_timeout: Duration,
        backoff_min: Duration,
        backoff_max: Duration,
    ) -> Result<(async_nats::Client, watch::Receiver<Link>), String> {
        let options = match &self.auth {
            Auth::None => ConnectOptions::new(),
            Auth::UserPassword(user, password) => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => ConnectOptions::with_token(token.clone()),
            Auth::NKey(seed) => ConnectOptions::with_nkey(seed.clone()),
            Auth::CredsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
        };
        let mut options = options
            .name(name)
            .retry_on_initial_connect()
            .connection_timeout(connect_timeout)
            .ping_interval(Duration::from_secs(10))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .reconnect_delay_callback(move |attempts| {
                reconnect_delay(backoff_min, backoff_max, attempts)
            });
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        let (link_tx, link_rx) = watch::channel(Link::default());
        let link_tx = Arc::new(link_tx);
        let client_name: Arc<str> = Arc::from(name);
        let options = options.event_callback(move |event| {
            let link_tx = Arc::clone(&link_tx);
            let client_name = Arc::clone(&client_name);
            async move {
                match event {
                    Event::Connected => link_tx.send_modify(|link| {
                        link.connected = true;
                        link.generation += 1;
                    }),
                    Event::Disconnected => link_tx.send_modify(|link| link.connected = false),
                    other => debug!(client = &*client_name, "nats event: {other}"),
                }
            }
        });
        let client = options
            .connect(self.servers.clone())
            .await
            .map_err(|error| error.to_string())?;
        Ok((client, link_rx))
    }
}

/// Delay before reconnect attempt `attempts` (1-based): none for the first,
/// then doubling from `min`, capped at `max`, with up to 50 % jitter.
pub fn reconnect_delay(min: Duration, max: Duration, attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = (attempts - 2).min(30) as u32;
    let ceiling = min.saturating_mul(1 << doublings).min(max);
    let half = ceiling / 2;
    let spread = (ceiling - half).as_micros() as u64;
    let jitter = if spread == 0 {
        0
    } else {
        now_micros().wrapping_mul(0x9E37_79B9_7F4A_7C15) % (spread + 1)
    };
    half + Duration::from_micros(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_and_stay_capped() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(reconnect_delay(min, max, 1), Duration::ZERO);
        for attempts in 2..100 {
            let delay = reconnect_delay(min, max, attempts);
            assert!(delay <= max && delay >= min / 2, "{attempts}: {delay:?}");
        }
    }
}
