//! Active/standby between publishers: the one holding the lease in a
//! JetStream key-value bucket publishes; any other waits (docs/nats.md).
//!
//! The lease is one key whose message the bucket keeps for `lease_ttl`
//! (`max_age`) after it was last written. The holder rewrites it every third
//! of that, each time only if the key is still at the revision it wrote
//! (compare-and-set), and trusts the lease until `lease_ttl` after it *sent*
//! the last successful write: by then the bucket may have dropped the key and
//! a standby may hold it, so the holder stops first. A standby creates the
//! key only when absent (after the holder's key expired, or the holder
//! released it on a clean shutdown).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::PublishConfig;

/// The key that holds the lease.
const KEY: &str = "active";

/// A held lease: valid until `valid_until` unless renewed.
pub(super) struct Lease {
    store: kv::Store,
    holder: Bytes,
    revision: u64,
    ttl: Duration,
    valid_until: Instant,
}

/// Waits until this publisher holds the lease; `None` when shutdown came
/// first. `holder` names this publisher in the bucket (for operators).
pub(super) async fn acquire(
    context: &jetstream::Context,
    config: &PublishConfig,
    holder: String,
    shutdown: &CancellationToken,
) -> Option<Lease> {
    let ttl = config.lease_ttl;
    let retry = ttl / 3;
    let bucket = config.lease_bucket.clone();
    let holder = Bytes::from(holder);
    let mut waiting_logged = false;
    // Opened once, then kept while standing by: each retry is one create;
    // opened again after a failed attempt (see below).
    let mut store: Option<kv::Store> = None;
    loop {
        let attempt = async {
            if store.is_none() {
                let opened = open_bucket(context, config)
                    .await
                    .map_err(|e| format!("cannot open the lease bucket {bucket}: {e}"))?;
                store = Some(opened);
            }
            let opened = store.as_ref().expect("opened above");
            let asked_at = Instant::now();
            match opened.create(KEY, holder.clone()).await {
                Ok(revision) => Ok(Some(Lease {
                    store: opened.clone(),
                    holder: holder.clone(),
                    revision,
                    ttl,
                    valid_until: asked_at + ttl,
                })),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(format!("cannot take the lease: {e}")),
            }
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return None,
            outcome = timeout(ttl, attempt) => outcome,
        };
        match outcome {
            Ok(Ok(Some(lease))) => {
                info!(bucket = %bucket, "holding the publisher lease: active");
                return Some(lease);
            }
            Ok(Ok(None)) if !waiting_logged => {
                waiting_logged = true;
                info!(bucket = %bucket, "another publisher holds the lease: standby");
            }
            Ok(Ok(None)) => {}
            // The bucket is opened again after a failure: it is kept in
            // memory, so a NATS restart loses it, and the store opened
            // before could never take the lease (nobody else recreates it).
            Ok(Err(error)) => {
                warn!("{error}");
                store = None;
            }
            Err(_) => {
                warn!("no answer from NATS about the lease within {ttl:?}");
                store = None;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = sleep(retry) => {}
        }
    }
}

/// The bucket's stream, created as a key-value bucket of history 1 whose
/// entries live `lease_ttl`. Created here rather than through
/// `create_key_value`, which first asks for account details in a form older
/// nats-server releases (2.9) do not send; the stream is what that call
/// would create.
async fn open_bucket(
    context: &jetstream::Context,
    config: &PublishConfig,
) -> Result<kv::Store, async_nats::Error> {
    let bucket = &config.lease_bucket;
    context
        .get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("tickgate publish: which publisher is active".to_owned()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: config.lease_ttl,
            storage: stream::StorageType::Memory,
            num_replicas: config.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await?;
    Ok(context.get_key_value(bucket.clone()).await?)
}

impl Lease {
    /// When the lease must be renewed next.
    pub(super) fn renew_at(&self) -> Instant {
        self.valid_until - self.ttl * 2 / 3
    }

    /// Whether this publisher may still publish at `now`.
    pub(super) fn valid(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// Rewrites the lease if it is still ours. False once it is lost: taken
    /// by another publisher, or not renewed before it ran out.
    pub(super) async fn renew(&mut self) -> bool {
        let asked_at = Instant::now();
        if !self.valid(asked_at) {
            return false;
        }
        let left = self.valid_until - asked_at;
        let write = self.store.update(KEY, self.holder.clone(), self.revision);
        match timeout(left, write).await {
            Ok(Ok(revision)) => {
                self.revision = revision;
                self.valid_until = asked_at + self.ttl;
                true
            }
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                warn!("the publisher lease was taken over: {e}");
                false
            }
            // NATS did not answer or refused for another reason: keep
            // publishing while the lease is still ours, try again soon.
            Ok(Err(e)) => {
                warn!("cannot renew the publisher lease: {e}");
                self.valid(Instant::now())
            }
            Err(_) => false,
        }
    }

    /// Gives the lease up at once (clean shutdown), so a standby need not
    /// wait for it to run out. Only our own revision is deleted.
    pub(super) async fn release(self) {
        let delete = self.store.delete_expect_revision(KEY, Some(self.revision));
        if let Ok(Err(e)) = timeout(self.ttl / 3, delete).await {
            warn!("could not release the publisher lease: {e}");
        }
    }
}
