//! One unit of NATS work the publish loop waits for. At most one runs at a
//! time, so a symbol's quotes reach the stream in `seq` order.

use std::future::Future;
use std::pin::Pin;

use async_nats::jetstream;
use tickgate_feeds::Symbol;

use super::book::Outgoing;

/// A running job.
pub(super) type Job = Pin<Box<dyn Future<Output = JobDone> + Send>>;

/// How a job ended.
pub(super) enum JobDone {
    /// A batch finished: how many were acknowledged, which symbols failed.
    Published {
        acked: u64,
        failed: Vec<Symbol>,
        /// The first failure: `send` or `ack`, and what went wrong.
        error: Option<(&'static str, String)>,
    },
    /// The stream was checked (and created when missing: `Ok(true)`).
    Stream(Result<bool, String>),
}

/// Publishes every quote of the batch, then awaits all acknowledgements.
/// After the first send error the rest of the batch is not sent; every
/// symbol not acknowledged comes back in `failed`.
pub(super) async fn publish_batch(context: jetstream::Context, batch: Vec<Outgoing>) -> JobDone {
    let mut acks = Vec::with_capacity(batch.len());
    let mut failed = Vec::new();
    let mut error = None;
    for (symbol, subject, payload) in batch {
        if error.is_some() {
            failed.push(symbol);
            continue;
        }
        match context.publish(subject, payload).await {
            Ok(ack) => acks.push((symbol, ack)),
            Err(e) => {
                error = Some(("send", e.to_string()));
                failed.push(symbol);
            }
        }
    }
    let mut acked = 0;
    for (symbol, ack) in acks {
        match ack.await {
            Ok(_) => acked += 1,
            Err(e) => {
                error.get_or_insert(("ack", e.to_string()));
                failed.push(symbol);
            }
        }
    }
    JobDone::Published {
        acked,
        failed,
        error,
    }
}
